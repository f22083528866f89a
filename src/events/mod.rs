//! The security-event feed (system E): what went wrong, from where, about
//! what — signature failures, replays, refused steps, verification
//! failures, split views, data-quality findings, rate limiting.
//!
//! Every system reports through one [`Sink`]. Recording is a counter bump
//! and a map update under a short lock: events are coalesced per
//! (kind, source, subject) and written in one store batch per interval, so
//! a flood of bad requests costs a bigger count, not more writes, and
//! nothing here runs on the DNS path. The feed is durable and bounded: a
//! ring of `capacity` rows, the oldest overwritten first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::store::{Expect, Row, Store, StoreError, Table, WriteBatch};

/// `seq % capacity` (u64 BE) → the event's JSON.
pub const EVENTS: Table = Table::new("events");
/// `"next"` → the next sequence number (u64 BE).
pub const EVENTS_META: Table = Table::new("events.meta");

const NEXT: &[u8] = b"next";
/// Distinct (kind, source, subject) kept between two flushes; beyond it a
/// flood's events are counted as dropped, not remembered.
const MAX_PENDING: usize = 10_000;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Kind {
    /// A signed request whose signature, digest, window or key failed.
    SignatureFailure,
    /// A signed request sent again (its nonce was consumed).
    Replay,
    /// A transaction step by the wrong party or in the wrong state.
    RefusedStep,
    /// A record, delegation or summary that failed verification (at a
    /// node pulling from its children, or at a gateway).
    VerificationFailure,
    /// A log that showed two inconsistent checkpoints.
    SplitView,
    /// A refused or implausible status report or descriptor.
    QualityFinding,
    /// A client held back by a rate limit.
    RateLimited,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::SignatureFailure,
        Kind::Replay,
        Kind::RefusedStep,
        Kind::VerificationFailure,
        Kind::SplitView,
        Kind::QualityFinding,
        Kind::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::SignatureFailure => "signature_failure",
            Kind::Replay => "replay",
            Kind::RefusedStep => "refused_step",
            Kind::VerificationFailure => "verification_failure",
            Kind::SplitView => "split_view",
            Kind::QualityFinding => "quality_finding",
            Kind::RateLimited => "rate_limited",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// One coalesced event as the feed keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub kind: Kind,
    /// Who caused it: a client address, a node's prefix, a key id.
    pub source: String,
    /// What it was about: an identifier, a path, a log origin.
    pub subject: String,
    /// The last reason given, for people.
    pub detail: String,
    /// How many times it happened in the interval.
    pub count: u64,
    /// Unix seconds of the first and last time in the interval.
    pub first: u64,
    pub last: u64,
}

/// Where every system reports what it sees.
pub trait Sink: Send + Sync {
    fn record(&self, kind: Kind, source: &str, subject: &str, detail: &str);
}

/// A sink that drops everything (tools and tests without a feed).
pub struct Discard;

impl Sink for Discard {
    fn record(&self, _: Kind, _: &str, _: &str, _: &str) {}
}

struct Pending {
    detail: String,
    count: u64,
    first: u64,
    last: u64,
}

/// Events gathered between two writes (or two forwards), one per
/// (kind, source, subject), bounded.
#[derive(Default)]
pub struct Coalescer {
    pending: Mutex<HashMap<(Kind, String, String), Pending>>,
    dropped: AtomicU64,
}

impl Coalescer {
    /// Counts `count` occurrences seen from `first` to `last`.
    pub fn add(
        &self,
        kind: Kind,
        source: &str,
        subject: &str,
        detail: &str,
        count: u64,
        at: (u64, u64),
    ) {
        let (first, last) = at;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let key = (kind, source.to_string(), subject.to_string());
        if let Some(p) = pending.get_mut(&key) {
            p.count = p.count.saturating_add(count);
            p.first = p.first.min(first);
            p.last = p.last.max(last);
            detail.clone_into(&mut p.detail);
            return;
        }
        if pending.len() >= MAX_PENDING {
            self.dropped.fetch_add(count, Ordering::Relaxed);
            metrics::counter!(crate::telemetry::SECURITY_EVENTS_DROPPED).increment(count);
            return;
        }
        pending.insert(
            key,
            Pending {
                detail: detail.to_string(),
                count,
                first,
                last,
            },
        );
    }

    /// Everything gathered, oldest first (sequence numbers unset).
    pub fn take(&self) -> Vec<Event> {
        let taken = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        let mut events: Vec<Event> = taken
            .into_iter()
            .map(|((kind, source, subject), p)| Event {
                seq: 0,
                kind,
                source,
                subject,
                detail: p.detail,
                count: p.count,
                first: p.first,
                last: p.last,
            })
            .collect();
        events.sort_by(|a, b| (a.first, a.kind.as_str()).cmp(&(b.first, b.kind.as_str())));
        events
    }

    /// Puts back what a failed write or forward took.
    pub fn restore(&self, events: Vec<Event>) {
        for e in events {
            self.add(
                e.kind,
                &e.source,
                &e.subject,
                &e.detail,
                e.count,
                (e.first, e.last),
            );
        }
    }

    /// Occurrences not kept because too many distinct events came at once.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The node's durable, bounded, coalescing feed.
pub struct Feed {
    store: Arc<dyn Store>,
    clock: Clock,
    capacity: u64,
    pending: Coalescer,
    /// The next sequence number; only [`Feed::flush`] moves it.
    next: Mutex<u64>,
}

fn ring_key(seq: u64, capacity: u64) -> Vec<u8> {
    (seq % capacity.max(1)).to_be_bytes().to_vec()
}

impl Feed {
    /// Opens the feed kept in `store`, holding at most `capacity` events.
    pub fn open(store: Arc<dyn Store>, clock: Clock, capacity: u64) -> Result<Feed, StoreError> {
        let next = store
            .row(EVENTS_META, NEXT)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes);
        Ok(Feed {
            store,
            clock,
            capacity: capacity.max(1),
            pending: Coalescer::default(),
            next: Mutex::new(next),
        })
    }

    /// Events recorded but not written yet because the pending table was
    /// full (a flood of distinct sources); counted in `/metrics` too.
    pub fn dropped(&self) -> u64 {
        self.pending.dropped()
    }

    /// Records events another system gathered and forwarded (a gateway's),
    /// their sources prefixed with `reporter`.
    pub fn record_forwarded(&self, reporter: &str, events: &[Event]) {
        for e in events {
            metrics::counter!(crate::telemetry::SECURITY_EVENTS, "kind" => e.kind.as_str())
                .increment(e.count);
            self.pending.add(
                e.kind,
                &format!("{reporter}: {}", e.source),
                &e.subject,
                &e.detail,
                e.count,
                (e.first, e.last),
            );
        }
    }

    /// Writes what was recorded since the last flush as one batch.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let events = self.pending.take();
        if events.is_empty() {
            return Ok(0);
        }
        // More than the ring holds: the oldest would be overwritten anyway.
        let skip = events.len().saturating_sub(self.capacity as usize);
        let mut rows = Vec::with_capacity(events.len() - skip + 1);
        let start = *next;
        let mut seq = start;
        for mut e in events.iter().skip(skip).cloned() {
            e.seq = seq;
            let value = serde_json::to_vec(&e).map_err(|e| StoreError::Database(e.to_string()))?;
            rows.push(Row {
                table: EVENTS,
                key: ring_key(seq, self.capacity),
                value,
            });
            seq += 1;
        }
        rows.push(Row {
            table: EVENTS_META,
            key: NEXT.to_vec(),
            value: seq.to_be_bytes().to_vec(),
        });
        let expect = vec![Expect {
            table: EVENTS_META,
            key: NEXT.to_vec(),
            value: (start > 0).then(|| start.to_be_bytes().to_vec()),
        }];
        let written = rows.len() - 1;
        if let Err(e) = self.store.write(WriteBatch {
            rows,
            expect,
            ..WriteBatch::default()
        }) {
            // Kept for the next flush, merged with what came meanwhile.
            self.pending.restore(events);
            return Err(e);
        }
        *next = seq;
        Ok(written)
    }

    /// Events with a sequence number above `after` (all kept ones when
    /// `None`), oldest first, at most `limit`, of `kind` when given.
    pub fn list(
        &self,
        after: Option<u64>,
        kind: Option<Kind>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let next = *self.next.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = next.saturating_sub(self.capacity);
        let from = after.map_or(oldest, |a| a.saturating_add(1)).max(oldest);
        let mut out = Vec::new();
        for seq in from..next {
            if out.len() >= limit {
                break;
            }
            let Some(v) = self.store.row(EVENTS, &ring_key(seq, self.capacity))? else {
                continue;
            };
            let e: Event = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                key: format!("event {seq}"),
                reason: e.to_string(),
            })?;
            if e.seq == seq && kind.is_none_or(|k| k == e.kind) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Flushes every `interval` until the task is aborted.
    pub async fn run(self: Arc<Self>, interval: Duration) {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let feed = self.clone();
            match tokio::task::spawn_blocking(move || feed.flush()).await {
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "security events not written; kept for the next try")
                }
                Err(e) => tracing::warn!(error = %e, "security-event flush failed"),
                Ok(Ok(_)) => {}
            }
        }
    }
}

impl Sink for Feed {
    fn record(&self, kind: Kind, source: &str, subject: &str, detail: &str) {
        metrics::counter!(crate::telemetry::SECURITY_EVENTS, "kind" => kind.as_str()).increment(1);
        let now = self.clock.now();
        self.pending
            .add(kind, source, subject, detail, 1, (now, now));
    }
}

/// A sink that forwards what it gathers to a node (`POST /v1/events`,
/// signed by the reporter's key), one batch per interval: what a gateway
/// sees reaches its node's feed.
pub struct Forwarder {
    clock: Clock,
    pending: Coalescer,
}

impl Forwarder {
    pub fn new(clock: Clock) -> Forwarder {
        Forwarder {
            clock,
            pending: Coalescer::default(),
        }
    }

    /// Sends what was gathered to the node at `api`, signed with `key`;
    /// kept for the next try when the node does not take it.
    pub fn forward(&self, api: &str, key: &crate::ident::keys::NodeKey) -> Result<usize, String> {
        let events = self.pending.take();
        if events.is_empty() {
            return Ok(0);
        }
        let body = serde_json::json!({ "events": events });
        let sent = crate::api::client::ApiClient::with_timeout(api, Duration::from_secs(5)).signed(
            "POST",
            "/v1/events",
            Some(&body),
            key,
        );
        match sent {
            Ok(r) if r.status == 202 => Ok(events.len()),
            Ok(r) => {
                // A refusal (a key the node does not know) would refuse
                // again: counted, not kept.
                metrics::counter!(crate::telemetry::SECURITY_EVENTS_DROPPED)
                    .increment(events.len() as u64);
                Err(format!(
                    "{api} refused the events: {} {}",
                    r.status,
                    r.text.trim()
                ))
            }
            Err(e) => {
                self.pending.restore(events);
                Err(format!("{api}: {e}"))
            }
        }
    }

    /// Forwards every `interval` until the task is aborted.
    pub async fn run(
        self: Arc<Self>,
        api: String,
        key: Arc<crate::ident::keys::NodeKey>,
        interval: Duration,
    ) {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let (me, api, key) = (self.clone(), api.clone(), key.clone());
            match tokio::task::spawn_blocking(move || me.forward(&api, &key)).await {
                Ok(Err(e)) => tracing::warn!(error = %e, "security events not forwarded"),
                Err(e) => tracing::warn!(error = %e, "security-event forward failed"),
                Ok(Ok(_)) => {}
            }
        }
    }
}

impl Sink for Forwarder {
    fn record(&self, kind: Kind, source: &str, subject: &str, detail: &str) {
        metrics::counter!(crate::telemetry::SECURITY_EVENTS, "kind" => kind.as_str()).increment(1);
        let now = self.clock.now();
        self.pending
            .add(kind, source, subject, detail, 1, (now, now));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn feed(store: &Arc<dyn Store>, capacity: u64) -> Feed {
        Feed::open(store.clone(), Clock::manual(1_800_000_000), capacity).unwrap()
    }

    #[test]
    fn repeats_coalesce_into_one_event_with_a_count() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let f = feed(&store, 100);
        for i in 0..1000 {
            f.record(
                Kind::SignatureFailure,
                "10.0.0.1",
                "/v1/identifiers",
                &format!("try {i}"),
            );
        }
        f.record(Kind::Replay, "10.0.0.1", "/v1/identifiers", "again");
        assert_eq!(f.flush().unwrap(), 2);
        let all = f.list(None, None, 10).unwrap();
        assert_eq!(all.len(), 2);
        let sig = all
            .iter()
            .find(|e| e.kind == Kind::SignatureFailure)
            .unwrap();
        assert_eq!((sig.count, sig.detail.as_str()), (1000, "try 999"));
        assert_eq!(f.flush().unwrap(), 0, "nothing new, no write");
    }

    #[test]
    fn the_ring_keeps_the_newest_and_a_reopened_feed_continues_it() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let f = feed(&store, 3);
        for i in 0..5 {
            f.record(Kind::RateLimited, &format!("10.0.0.{i}"), "dns", "");
            f.flush().unwrap();
        }
        let kept: Vec<u64> = f
            .list(None, None, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(kept, vec![2, 3, 4]);
        assert_eq!(f.list(Some(3), None, 10).unwrap()[0].seq, 4);
        let g = feed(&store, 3);
        g.record(
            Kind::SplitView,
            "86.31",
            "86.31.cpid.internal/log",
            "two heads",
        );
        g.flush().unwrap();
        let kept: Vec<u64> = g
            .list(None, None, 10)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(kept, vec![3, 4, 5]);
        assert_eq!(
            g.list(None, Some(Kind::SplitView), 10).unwrap()[0].source,
            "86.31"
        );
    }

    #[test]
    fn a_flood_of_distinct_sources_is_bounded_and_counted_as_dropped() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let f = feed(&store, 100);
        for i in 0..(MAX_PENDING + 50) {
            f.record(Kind::SignatureFailure, &format!("src{i}"), "/", "");
        }
        assert_eq!(f.dropped(), 50);
        assert_eq!(f.flush().unwrap(), 100, "the ring holds 100 of them");
    }
}
