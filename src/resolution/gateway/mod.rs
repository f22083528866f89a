//! The caching gateway (DESIGN §3): a DNS server and HTTP reader for
//! applications that resolves any identifier in the federation starting
//! from the national node's addresses and key alone.
//!
//! A query is answered from L1 when a fresh entry is there (on the UDP
//! threads, without touching the runtime); otherwise from L2 after the
//! entry is verified again, otherwise from upstream through the
//! [`Resolver`], which follows referrals and verifies every delegation and
//! record before anything is cached. Concurrent misses on one key share
//! one upstream resolution (single-flight). Popular entries are refreshed
//! before they expire (prefetch); when the upstream zone cannot be reached,
//! expired entries are served with a short TTL up to a limit (RFC 8767).
//! Identifier names are cached as their verified record, from which every
//! type is answered (TXT, URI, TYPE65280, NODATA for the rest); other
//! names in the federation (apexes, name servers) as the zone's response.

pub mod cache;
pub mod config;
pub mod http;
pub mod l2;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::rr::{Name, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};
use tokio::sync::OnceCell;

use self::cache::{Block, Body, Entry, Key, L1, Source};
pub use self::config::GatewayConfig;
use self::l2::{L2, Stored, StoredZone};
use crate::clock::Clock;
use crate::dns::mapping;
use crate::dns::query::{self, Checked, Client, Transport};
use crate::dns::response::{Rcode, Response, Summary};
use crate::dns::server::{Now, Responder};
use crate::dns::wire::{WireName, rtype};
use crate::ident::delegation::TrustedZone;
use crate::ident::identifier::{Apex, Identifier, Prefix};
use crate::ident::keys::PublicKey;
use crate::ident::record::SignedRecord;
use crate::resolution::resolver::{Outcome, ResolveError, Resolver};
use crate::telemetry;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("root key {path}: {reason}")]
    RootKey {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error(transparent)]
    L2(#[from] l2::L2Error),
    #[error("data directory {0}: {1}")]
    DataDir(std::path::PathBuf, std::io::Error),
    /// The DNS listeners could not start.
    #[error("DNS listener: {0}")]
    DnsListen(#[from] crate::dns::server::ServerError),
    /// The HTTP listener could not bind its address.
    #[error("HTTP listener {addr}: {source}")]
    HttpListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The key that signs forwarded events could not be made or read.
    #[error("gateway key: {0}")]
    Key(String),
}

/// The gateway's counters, read by `/v1/gateway` and the tests. Every
/// event is recorded through one method here, which also moves the
/// Prometheus counter of the same event, so the two cannot drift.
#[derive(Debug, Default)]
pub struct Stats {
    pub l1_hits: AtomicU64,
    pub l1_misses: AtomicU64,
    pub l2_hits: AtomicU64,
    pub l2_misses: AtomicU64,
    pub stale: AtomicU64,
    pub verification_failures: AtomicU64,
    pub prefetches: AtomicU64,
    /// Upstream resolutions started (each may send several queries).
    pub resolutions: AtomicU64,
}

/// A cache tier, as the metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tier {
    L1,
    L2,
}

impl Stats {
    /// A cache lookup in `tier` found a usable entry, or not.
    fn lookup(&self, tier: Tier, hit: bool) {
        let (counter, tier_label, result) = match (tier, hit) {
            (Tier::L1, true) => (&self.l1_hits, "l1", "hit"),
            (Tier::L1, false) => (&self.l1_misses, "l1", "miss"),
            (Tier::L2, true) => (&self.l2_hits, "l2", "hit"),
            (Tier::L2, false) => (&self.l2_misses, "l2", "miss"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::GATEWAY_CACHE, "tier" => tier_label, "result" => result)
            .increment(1);
    }

    /// An expired entry was served because upstream failed (RFC 8767),
    /// over DNS or HTTP.
    fn served_stale(&self) {
        self.stale.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::GATEWAY_STALE).increment(1);
    }

    /// An upstream answer or a cached record failed verification.
    fn verification_failed(&self) {
        self.verification_failures.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(telemetry::GATEWAY_VERIFY_FAILURES).increment(1);
    }

    fn prefetch_started(&self) {
        self.prefetches.fetch_add(1, Ordering::Relaxed);
    }

    fn resolution_started(&self) {
        self.resolutions.fetch_add(1, Ordering::Relaxed);
    }
}

type Flight = Arc<OnceCell<Result<Arc<Entry>, ResolveError>>>;

/// The gateway: resolver, caches and counters.
pub struct Gateway {
    config: GatewayConfig,
    resolver: Resolver,
    l1: L1,
    l2: Option<L2>,
    apex: Apex,
    /// The root zone's name, lower-case wire form.
    root_name: WireName,
    inflight: Mutex<HashMap<Key, Flight>>,
    /// The resolver's `learned` count when delegations were last saved to L2.
    zones_saved: AtomicU64,
    runtime: tokio::runtime::Handle,
    /// Decides freshness, TTLs left and serve-stale; the resolver shares it.
    clock: Clock,
    pub stats: Stats,
    /// What the gateway sees, forwarded to its node when configured.
    pub events: Arc<crate::events::Forwarder>,
}

/// A borrowed cache key, so a lookup allocates nothing.
#[derive(Clone, Copy)]
struct KeyRef<'a>(&'a [u8], u16);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Same as `(Box<[u8]>, u16)`.
        self.0.hash(state);
        self.1.hash(state);
    }
}

impl quick_cache::Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *key.0 == *self.0 && key.1 == self.1
    }
}

/// What a cache key stands for upstream.
#[derive(Debug, Clone)]
enum Lookup {
    Identifier(Identifier),
    Name(Name, u16),
}

/// The first label holds a hyphen: maybe an identifier's suffix label.
fn maybe_identifier(qname: &[u8]) -> bool {
    let Some(&len) = qname.first() else {
        return false;
    };
    qname
        .get(1..1 + usize::from(len))
        .is_some_and(|l| l.contains(&b'-'))
}

fn encode_rr(r: &Record) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    enc.set_name_encoding(NameEncoding::UncompressedLowercase);
    r.emit(&mut enc).ok()?;
    Some(buf)
}

impl Gateway {
    /// Opens the gateway's store and restores its verified delegations.
    /// Must be called inside a tokio runtime.
    pub fn open(config: GatewayConfig) -> Result<Arc<Gateway>, GatewayError> {
        Gateway::open_with_clock(config, Clock::system())
    }

    /// [`Gateway::open`] with the clock that decides TTLs, freshness and
    /// delegation validity (tests pass a manual one).
    pub fn open_with_clock(
        config: GatewayConfig,
        clock: Clock,
    ) -> Result<Arc<Gateway>, GatewayError> {
        config.validate()?;
        let apex = config.apex()?;
        let root_prefix = config.root_prefix()?;
        let key =
            PublicKey::load(&config.upstream.root_key_file).map_err(|e| GatewayError::RootKey {
                path: config.upstream.root_key_file.clone(),
                reason: e.to_string(),
            })?;
        let root_name = WireName::parse(&root_prefix.zone_name(&apex)).map_err(|e| {
            crate::config::ConfigError::Invalid {
                key: "upstream.root_prefix",
                reason: e.to_string(),
            }
        })?;
        let resolver = Resolver::new(
            TrustedZone::root(root_prefix, key, config.upstream.root_servers.clone()),
            apex.clone(),
            Duration::from_millis(config.upstream.timeout_ms),
            config.cache.max_ttl,
        )
        .with_clock(clock.clone())
        .validating_denial(config.upstream.validate_denial);
        let l2 = if config.cache.l2 {
            let dir = &config.data_dir;
            std::fs::create_dir_all(dir).map_err(|e| GatewayError::DataDir(dir.clone(), e))?;
            let l2 = L2::open(&dir.join("gateway-cache.redb"))?;
            let keep = config.cache.stale_limit_secs;
            match l2.sweep(clock.now(), keep) {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired gateway cache entries"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweeping the gateway cache failed"),
            }
            for (prefix, z) in l2.zones()? {
                let restored = SignedRecord::decode(&z.record)
                    .map_err(|e| ResolveError::Decode {
                        what: "cached delegation record",
                        reason: e.to_string(),
                    })
                    .and_then(|r| resolver.restore_zone(&r, z.expires));
                if let Err(e) = restored {
                    tracing::info!(%prefix, error = %e, "cached delegation not restored");
                }
            }
            Some(l2)
        } else {
            None
        };
        let l1 = L1::new(config.cache.max_entries, config.cache.max_bytes);
        Ok(Arc::new(Gateway {
            config,
            resolver,
            l1,
            l2,
            apex,
            root_name,
            inflight: Mutex::new(HashMap::new()),
            zones_saved: AtomicU64::new(0),
            runtime: tokio::runtime::Handle::current(),
            events: Arc::new(crate::events::Forwarder::new(clock.clone())),
            clock,
            stats: Stats::default(),
        }))
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// A verification failure as a security event (forwarded to the node
    /// when `[events] report_to` is set).
    fn report_failure(&self, key: &Key, why: &str) {
        if self.config.events.report_to.is_some() {
            use crate::events::Sink;
            let name = WireName::from_wire_unchecked(&key.0).to_string();
            self.events.record(
                crate::events::Kind::VerificationFailure,
                "gateway",
                &name,
                why,
            );
        }
    }

    pub fn l1(&self) -> &L1 {
        &self.l1
    }

    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Upstream DNS queries sent since start.
    pub fn upstream_queries(&self) -> u64 {
        self.resolver.queries()
    }

    /// Makes every write to L2 durable (shutdown, tests).
    pub fn flush(&self) {
        if let Some(l2) = &self.l2 {
            l2.flush();
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The L1 entry for a question, trying the identifier form first.
    /// Returns the entry and the type it is keyed under; allocates nothing.
    fn l1_entry(&self, qname: &[u8], qtype: u16) -> Option<(u16, Arc<Entry>)> {
        if maybe_identifier(qname)
            && let Some(e) = self.l1.get(&KeyRef(qname, rtype::CPREC))
        {
            return Some((rtype::CPREC, e));
        }
        let e = self.l1.get(&KeyRef(qname, qtype))?;
        Some((qtype, e))
    }

    /// What a question stands for upstream, and its cache key.
    fn lookup(&self, qname: &[u8], qtype: u16) -> Option<(Key, Lookup)> {
        let text = WireName::from_wire_unchecked(qname).to_string();
        if maybe_identifier(qname)
            && let Ok(id) = Identifier::from_dns_name(&text, &self.apex)
        {
            return Some(((qname.into(), rtype::CPREC), Lookup::Identifier(id)));
        }
        let name = Name::from_ascii(&text).ok()?;
        Some(((qname.into(), qtype), Lookup::Name(name, qtype)))
    }

    /// The SOA of a zone, for NODATA answers from a record.
    fn zone_soa(&self, apex: &[u8]) -> Option<Arc<Entry>> {
        let e = self.l1.get(&KeyRef(apex, rtype::SOA))?;
        e.is_fresh(self.clock.now()).then_some(e)
    }

    /// The wire name of a zone's apex (where its SOA is cached).
    fn zone_apex(&self, zone: &str) -> Box<[u8]> {
        Prefix::parse(zone)
            .ok()
            .and_then(|p| WireName::parse(&p.zone_name(&self.apex)).ok())
            .map(|n| n.as_bytes().into())
            .unwrap_or_default()
    }

    fn write(&self, c: &Checked<'_>, e: &Entry, out: &mut Vec<u8>, stale: bool) -> Option<Summary> {
        let ttl = if stale {
            self.config.cache.stale_ttl
        } else {
            e.remaining(self.clock.now())
        };
        if e.needs_soa(c.qtype()) {
            let soa = self.zone_soa(&e.zone_apex)?;
            return Some(e.write(c, out, ttl, soa.soa_block()));
        }
        Some(e.write(c, out, ttl, None))
    }

    /// Starts a background refresh of a popular entry about to expire.
    fn maybe_prefetch(self: &Arc<Self>, qname: &[u8], keyed: u16, e: &Arc<Entry>, now: u64) {
        if !self.config.cache.prefetch || e.ttl < 10 {
            return;
        }
        let hits = e.hits.fetch_add(1, Ordering::Relaxed);
        let remaining = e.remaining(now);
        if hits < 2 || remaining * 10 > e.ttl || e.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some((key, lookup)) = self.lookup(qname, keyed) else {
            return;
        };
        self.stats.prefetch_started();
        let (this, e) = (self.clone(), e.clone());
        self.runtime.spawn(async move {
            let _ = this.fetch_with(&key, &lookup, true).await;
            e.refreshing.store(false, Ordering::Release);
        });
    }

    /// Single-flight: one upstream resolution per key at a time; every
    /// caller gets its result.
    async fn fetch(&self, key: &Key, lookup: &Lookup) -> Result<Arc<Entry>, ResolveError> {
        self.fetch_with(key, lookup, false).await
    }

    /// [`Gateway::fetch`]; `refresh` resolves even when L1 holds a fresh
    /// entry (prefetch). Otherwise the flight's leader looks at L1 once
    /// more: a caller that missed L1 just before an earlier flight filled it
    /// must not start a second upstream resolution.
    async fn fetch_with(
        &self,
        key: &Key,
        lookup: &Lookup,
        refresh: bool,
    ) -> Result<Arc<Entry>, ResolveError> {
        let flight = {
            let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.clone()).or_default().clone()
        };
        let result = flight
            .get_or_init(|| async {
                if !refresh
                    && let Some(e) = self.l1.get(&KeyRef(&key.0, key.1))
                    && e.is_fresh(self.clock.now())
                {
                    return Ok(e);
                }
                self.stats.resolution_started();
                self.resolve(key, lookup).await
            })
            .await
            .clone();
        let mut map = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            map.remove(key);
        }
        result
    }

    /// Resolves upstream, verifies, builds the entry and caches it.
    async fn resolve(&self, key: &Key, lookup: &Lookup) -> Result<Arc<Entry>, ResolveError> {
        let result = match lookup {
            Lookup::Identifier(id) => self.resolve_identifier(id).await,
            Lookup::Name(name, qtype) => self.resolve_name(name, *qtype).await,
        };
        let entry = match result {
            Ok(e) => Arc::new(e),
            Err(e) => {
                if matches!(e, ResolveError::Denial { .. }) {
                    metrics::counter!(telemetry::GATEWAY_DENIAL_FAILURES).increment(1);
                }
                if e.is_verification() {
                    self.stats.verification_failed();
                    self.report_failure(key, &e.to_string());
                    tracing::warn!(key = %WireName::from_wire_unchecked(&key.0), error = %e, "upstream answer failed verification; not served, not cached");
                }
                return Err(e);
            }
        };
        self.save_zones();
        if entry.ttl > 0 {
            self.l1.insert(key.clone(), entry.clone());
            if let Some(l2) = &self.l2 {
                l2.put(
                    key.clone(),
                    Stored {
                        source: entry.source.clone(),
                        zone: entry.zone.clone(),
                        stored: entry.stored,
                        ttl: entry.ttl,
                    },
                );
            }
        } else {
            self.l1.remove(key);
        }
        metrics::gauge!(telemetry::GATEWAY_L1_ENTRIES).set(self.l1.len() as f64);
        metrics::gauge!(telemetry::GATEWAY_L1_BYTES).set(self.l1.bytes() as f64);
        Ok(entry)
    }

    /// Persists the delegations the resolver trusts now.
    fn save_zones(&self) {
        let Some(l2) = &self.l2 else { return };
        let learned = self.resolver.learned();
        if self.zones_saved.swap(learned, Ordering::AcqRel) == learned {
            return;
        }
        for (zone, expires) in self.resolver.zones() {
            if let Some(via) = &zone.via {
                l2.put_zone(
                    zone.prefix.to_string(),
                    StoredZone {
                        record: via.as_bytes().to_vec(),
                        expires,
                    },
                );
            }
        }
    }

    async fn resolve_identifier(&self, id: &Identifier) -> Result<Entry, ResolveError> {
        let (outcome, path) = self.resolver.resolve_identifier(id).await?;
        let zone = path.last().map_or_else(
            || self.resolver.root().prefix.to_string(),
            |z| z.prefix.to_string(),
        );
        let stored = self.clock.now();
        match outcome {
            Outcome::Record { record, ttl } => {
                if self.config.upstream.require_witnessed {
                    self.check_witnessed(&record, &path).await?;
                }
                let ttl = ttl.min(self.config.cache.max_ttl);
                // The zone's SOA answers NODATA for this name later.
                self.ensure_soa(&zone).await;
                Ok(self.record_entry(record, zone, stored, ttl))
            }
            Outcome::Negative { soa, ttl } => {
                let authorities: Vec<Vec<u8>> = soa.iter().filter_map(encode_rr).collect();
                // The resolver verified the denial (or the tombstone).
                let source = Source::Message {
                    rcode: Rcode::NxDomain.code() as u8,
                    answers: Vec::new(),
                    authorities,
                    additionals: Vec::new(),
                    validated: self.resolver.validates_denial(),
                };
                let ttl = ttl.min(self.config.cache.max_negative_ttl);
                self.message_entry(source, zone, stored, ttl)
                    .ok_or(ResolveError::Unencodable("negative answer"))
            }
        }
    }

    /// `require_witnessed`: the record's node proves it is a leaf of its
    /// log under a checkpoint that another node the gateway trusts (one of
    /// the zones it verified) cosigned as a witness.
    async fn check_witnessed(
        &self,
        record: &SignedRecord,
        path: &[TrustedZone],
    ) -> Result<(), ResolveError> {
        let root = self.resolver.root().clone();
        let zone = path.last().cloned().unwrap_or_else(|| root.clone());
        let api = match &zone.via {
            Some(via) => crate::ident::delegation::Delegation::from_record(via)
                .ok()
                .and_then(|d| d.api),
            None => self.config.upstream.root_api.clone(),
        }
        .ok_or_else(|| {
            ResolveError::Unwitnessed(format!(
                "zone {} names no API where its log can be read",
                zone.prefix
            ))
        })?;
        let mut known: Vec<TrustedZone> = self
            .resolver
            .zones()
            .into_iter()
            .map(|(z, _)| z)
            .chain(path.iter().cloned())
            .chain(std::iter::once(root))
            .filter(|z| z.prefix != zone.prefix)
            .collect();
        known.sort_by(|a, b| a.prefix.cmp(&b.prefix));
        known.dedup_by(|a, b| a.prefix == b.prefix);
        let witnesses: Vec<_> = known
            .iter()
            .flat_map(|z| {
                z.keys()
                    .filter_map(|k| crate::tlog::witness::verifier_of(&z.prefix, &self.apex, k))
                    .collect::<Vec<_>>()
            })
            .collect();
        if witnesses.is_empty() {
            return Err(ResolveError::Unwitnessed(format!(
                "no witness of zone {} is known yet",
                zone.prefix
            )));
        }
        let (record, keys) = (record.clone(), zone.keys().copied().collect::<Vec<_>>());
        tokio::task::spawn_blocking(move || {
            crate::tlog::audit::verify_inclusion(&api, &record, &keys, &witnesses)
        })
        .await
        .map_err(|e| ResolveError::Unwitnessed(e.to_string()))?
        .map(|_| ())
        .map_err(ResolveError::Unwitnessed)
    }

    async fn ensure_soa(&self, zone: &str) {
        if self.zone_soa(&self.zone_apex(zone)).is_some() {
            return;
        }
        let Ok(prefix) = Prefix::parse(zone) else {
            return;
        };
        let Ok(name) = Name::from_ascii(prefix.zone_name(&self.apex)) else {
            return;
        };
        let Ok(wire) = WireName::parse(&prefix.zone_name(&self.apex)) else {
            return;
        };
        let key: Key = (wire.as_bytes().into(), rtype::SOA);
        let _ = Box::pin(self.fetch(&key, &Lookup::Name(name, rtype::SOA))).await;
    }

    fn record_entry(&self, record: SignedRecord, zone: String, stored: u64, ttl: u32) -> Entry {
        let sets = mapping::rrsets(&record, ttl)
            .into_iter()
            .filter_map(|s| Some((s.rtype, Block::at_question(s.rtype, &s.rdatas)?)))
            .collect();
        let source = Source::Record(record.as_bytes().to_vec());
        let apex = self.zone_apex(&zone);
        Entry::new(
            Body::Record { record, sets },
            source,
            zone,
            apex,
            stored,
            ttl,
        )
    }

    fn message_entry(&self, source: Source, zone: String, stored: u64, ttl: u32) -> Option<Entry> {
        let Source::Message {
            rcode,
            answers,
            authorities,
            additionals,
            validated,
        } = &source
        else {
            return None;
        };
        // Only answers are cached; a failure is never kept.
        let rcode = match Rcode::from_code(u16::from(*rcode))? {
            rcode @ (Rcode::NoError | Rcode::NxDomain) => rcode,
            _ => return None,
        };
        let body = Body::Message {
            rcode,
            answer: Block::from_rrs(answers)?,
            authority: Block::from_rrs(authorities)?,
            additional: Block::from_rrs(additionals)?,
            authentic: *validated,
        };
        let apex = self.zone_apex(&zone);
        Some(Entry::new(body, source, zone, apex, stored, ttl))
    }

    async fn resolve_name(&self, name: &Name, qtype: u16) -> Result<Entry, ResolveError> {
        let answer = self.resolver.resolve(name, qtype).await?;
        let m = &answer.message;
        let zone = answer.path.last().map_or_else(
            || self.resolver.root().prefix.to_string(),
            |z| z.prefix.to_string(),
        );
        // The gateway validated what it keeps; the DNSSEC records it asked
        // for are not passed on.
        let enc = |rs: &[Record]| -> Vec<Vec<u8>> {
            rs.iter()
                .filter(|r| !matches!(u16::from(r.record_type()), rtype::RRSIG | rtype::NSEC))
                .filter_map(encode_rr)
                .collect()
        };
        let code = u16::from(m.metadata.response_code);
        let rcode = match Rcode::from_code(code) {
            Some(r @ (Rcode::NoError | Rcode::NxDomain)) => r.code() as u8,
            _ => {
                return Err(ResolveError::Upstream {
                    zone,
                    reason: format!("answered {}", m.metadata.response_code),
                });
            }
        };
        let mut rcode = rcode;
        if self.resolver.validates_denial() && m.answers.is_empty() {
            let owner = answer
                .path
                .last()
                .cloned()
                .unwrap_or_else(|| self.resolver.root().clone());
            let missing = crate::resolution::resolver::verify_denial(
                &owner.prefix.zone_name(self.resolver.apex()),
                &owner.keys().map(|k| k.to_bytes()).collect::<Vec<_>>(),
                name,
                qtype,
                m,
                self.clock.now() as u32,
            )?;
            // A compact denial of a missing name comes as NOERROR; the
            // gateway's clients are told NXDOMAIN (RFC 9824 §3.2).
            if missing {
                rcode = Rcode::NxDomain.code() as u8;
            }
        }
        // TTL: the smallest of the records; a negative answer's from its
        // SOA (RFC 2308 §5).
        let mut ttl = m.answers.iter().chain(&m.additionals).map(|r| r.ttl).min();
        if m.answers.is_empty() {
            ttl = m.authorities.iter().find_map(|r| match &r.data {
                hickory_proto::rr::RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            });
        }
        let cap = if m.answers.is_empty() {
            self.config.cache.max_negative_ttl
        } else {
            self.config.cache.max_ttl
        };
        let source = Source::Message {
            rcode,
            answers: enc(&m.answers),
            authorities: enc(&m.authorities),
            additionals: enc(&m.additionals),
            // The denial was verified above; other answers are not signed
            // records the gateway checks.
            validated: self.resolver.validates_denial() && m.answers.is_empty(),
        };
        self.message_entry(source, zone, self.clock.now(), ttl.unwrap_or(0).min(cap))
            .ok_or(ResolveError::Unencodable("answer"))
    }

    /// An L2 entry, verified again and rebuilt; `None` when absent or no
    /// longer acceptable.
    fn l2_entry(&self, key: &Key) -> Option<Arc<Entry>> {
        let l2 = self.l2.as_ref()?;
        let stored = l2.get(key).ok().flatten()?;
        let entry = match stored.source {
            Source::Record(bytes) => {
                let record = SignedRecord::decode(&bytes).ok()?;
                let prefix = Prefix::parse(&stored.zone).ok()?;
                let zone = self
                    .resolver
                    .zones()
                    .into_iter()
                    .map(|(z, _)| z)
                    .chain(std::iter::once(self.resolver.root().clone()))
                    .find(|z| z.prefix == prefix)?;
                if let Err(e) = zone.verify_record(&record) {
                    self.stats.verification_failed();
                    self.report_failure(key, &format!("cached record: {e}"));
                    tracing::warn!(error = %e, "cached record failed verification; dropped");
                    l2.remove(key.clone());
                    return None;
                }
                self.record_entry(record, stored.zone, stored.stored, stored.ttl)
            }
            source @ Source::Message { .. } => {
                self.message_entry(source, stored.zone, stored.stored, stored.ttl)?
            }
        };
        let entry = Arc::new(entry);
        self.l1.insert(key.clone(), entry.clone());
        Some(entry)
    }

    /// The full answer path: L1, L2, upstream, stale.
    async fn answer(
        self: &Arc<Self>,
        msg: &[u8],
        transport: Transport,
    ) -> Option<(Vec<u8>, Summary)> {
        let mut out = Vec::new();
        let c = match query::check(msg, transport, &mut out) {
            Ok(c) => c,
            Err(done) => return done.map(|s| (out, s)),
        };
        if !crate::dns::wire::is_within(c.qname(), self.root_name.as_bytes()) {
            let s = Response::new(&c, Rcode::Refused).empty(&mut out);
            return Some((out, s));
        }
        let now = self.clock.now();
        let qtype = c.qtype();
        let (key, lookup) = match self.lookup(c.qname(), qtype) {
            Some(x) => x,
            None => {
                let s = Response::new(&c, Rcode::Refused).empty(&mut out);
                return Some((out, s));
            }
        };
        let mut stale = self.l1.get(&KeyRef(&key.0, key.1));
        if let Some(e) = &stale
            && e.is_fresh(now)
            && let Some(s) = self.write(&c, e, &mut out, false)
        {
            return Some((out, s));
        }
        if stale.is_none() {
            self.stats.lookup(Tier::L1, false);
            if let Some(e) = self.l2_entry(&key) {
                self.stats.lookup(Tier::L2, true);
                if e.is_fresh(now) {
                    if e.needs_soa(qtype)
                        && let Lookup::Identifier(_) = lookup
                    {
                        self.ensure_soa(&e.zone).await;
                    }
                    if let Some(s) = self.write(&c, &e, &mut out, false) {
                        return Some((out, s));
                    }
                }
                stale = Some(e);
            } else if self.l2.is_some() {
                self.stats.lookup(Tier::L2, false);
            }
        }
        let usable_stale = self.usable_stale(stale, now);
        // After a failed refresh, serve stale without asking again for a while.
        if let Some(e) = &usable_stale
            && !e.is_fresh(now)
            && now.saturating_sub(e.failed_at.load(Ordering::Relaxed))
                < self.config.cache.stale_recheck_secs
            && let Some(s) = self.serve_stale(&c, e, &mut out)
        {
            return Some((out, s));
        }
        match self.fetch(&key, &lookup).await {
            Ok(e) => {
                if e.needs_soa(qtype) {
                    self.ensure_soa(&e.zone).await;
                }
                // No SOA to answer NODATA with: the zone could not be asked.
                let s = self
                    .write(&c, &e, &mut out, false)
                    .unwrap_or_else(|| Response::new(&c, Rcode::ServFail).empty(&mut out));
                Some((out, s))
            }
            Err(err) => {
                if !err.is_verification()
                    && let Some(e) = &usable_stale
                {
                    e.failed_at.store(now, Ordering::Relaxed);
                    if let Some(s) = self.serve_stale(&c, e, &mut out) {
                        return Some((out, s));
                    }
                }
                tracing::debug!(error = %err, "resolution failed");
                let s = Response::new(&c, Rcode::from(&err)).empty(&mut out);
                Some((out, s))
            }
        }
    }

    /// The entry, when serve-stale (RFC 8767) allows it to stand in for
    /// a failed refresh: enabled and expired no longer than the limit.
    fn usable_stale(&self, entry: Option<Arc<Entry>>, now: u64) -> Option<Arc<Entry>> {
        let cache = &self.config.cache;
        entry.filter(|e| cache.serve_stale && e.expired_for(now) <= cache.stale_limit_secs)
    }

    /// Writes a stale entry with the stale TTL; the one place a DNS stale
    /// answer is counted.
    fn serve_stale(&self, c: &Checked<'_>, e: &Entry, out: &mut Vec<u8>) -> Option<Summary> {
        let s = self.write(c, e, out, true)?;
        self.stats.served_stale();
        Some(s)
    }

    /// Resolves an identifier to its verified record through the caches
    /// (for the HTTP reader).
    pub async fn record(
        self: &Arc<Self>,
        id: &Identifier,
    ) -> Result<Option<SignedRecord>, ResolveError> {
        let name = WireName::parse(&id.to_dns_name(&self.apex))
            .map_err(|e| ResolveError::Name(e.to_string()))?;
        let key: Key = (name.as_bytes().into(), rtype::CPREC);
        let now = self.clock.now();
        let cached = self
            .l1
            .get(&KeyRef(&key.0, key.1))
            .or_else(|| self.l2_entry(&key));
        let entry = match cached {
            Some(e) if e.is_fresh(now) => e,
            stale => match self.fetch(&key, &Lookup::Identifier(id.clone())).await {
                Ok(e) => e,
                Err(err) if !err.is_verification() => match self.usable_stale(stale, now) {
                    Some(e) => {
                        self.stats.served_stale();
                        e
                    }
                    None => return Err(err),
                },
                Err(err) => return Err(err),
            },
        };
        Ok(match &entry.body {
            Body::Record { record, .. } => Some(record.clone()),
            Body::Message { .. } => None,
        })
    }
}

/// The gateway as the DNS server sees it (needs the `Arc` to spawn
/// prefetches and single-flight work).
pub struct GatewayResponder(pub Arc<Gateway>);

#[async_trait::async_trait]
impl Responder for GatewayResponder {
    fn respond_now(&self, msg: &[u8], client: &Client, out: &mut Vec<u8>) -> Now {
        let g = &self.0;
        let c = match query::check(msg, client.transport, out) {
            Ok(c) => c,
            Err(Some(s)) => return Now::Answered(s),
            Err(None) => return Now::Drop,
        };
        let now = g.clock.now();
        match g.l1_entry(c.qname(), c.qtype()) {
            Some((keyed, e)) if e.is_fresh(now) => match g.write(&c, &e, out, false) {
                Some(s) => {
                    g.stats.lookup(Tier::L1, true);
                    g.maybe_prefetch(c.qname(), keyed, &e, now);
                    Now::Answered(s)
                }
                None => Now::Later,
            },
            _ => Now::Later,
        }
    }

    async fn respond_later(&self, msg: Vec<u8>, client: Client) -> Option<(Vec<u8>, Summary)> {
        self.0.answer(&msg, client.transport).await
    }
}

/// A serving gateway's listeners.
pub struct RunningGateway {
    pub gateway: Arc<Gateway>,
    dns: crate::dns::server::DnsServer,
    http: crate::api::HttpServer,
    forwarder: Option<tokio::task::JoinHandle<()>>,
}

impl RunningGateway {
    pub fn dns_addr(&self) -> std::net::SocketAddr {
        self.dns.local_addr()
    }

    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http.local_addr()
    }

    /// Stops the listeners and makes the L2 cache durable.
    pub async fn shutdown(self) -> Result<(), crate::dns::server::ServerError> {
        if let Err(e) = self.http.shutdown().await {
            tracing::warn!(error = %e, "gateway HTTP listener stopped with an error");
        }
        self.dns.shutdown().await?;
        self.gateway.flush();
        if let Some(f) = self.forwarder {
            f.abort();
        }
        Ok(())
    }
}

/// Starts the DNS and HTTP listeners of a gateway. Must be called inside a
/// tokio runtime.
pub async fn serve(gateway: Arc<Gateway>) -> Result<RunningGateway, GatewayError> {
    crate::telemetry::install();
    let listen = gateway.config.dns_listen();
    let dns =
        crate::dns::server::DnsServer::start(Arc::new(GatewayResponder(gateway.clone())), &listen)
            .await?;
    let addr = gateway.config.http.listen;
    let http_err = |source| GatewayError::HttpListen { addr, source };
    let limits = Arc::new(crate::api::limits::Limits::new(
        &gateway.config.http.limits,
        http::MAX_BODY_BYTES,
        gateway.events.clone(),
    ));
    let http = crate::api::HttpServer::start(http::router(gateway.clone()), addr, limits)
        .await
        .map_err(http_err)?;
    let forwarder = match &gateway.config.events.report_to {
        Some(api) => {
            let key_file = gateway.config.key_file();
            if let Some(dir) = key_file.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| GatewayError::DataDir(dir.to_path_buf(), e))?;
            }
            let (key, _) = crate::ident::keys::NodeKey::load_or_generate(&key_file)
                .map_err(|e| GatewayError::Key(e.to_string()))?;
            Some(tokio::spawn(gateway.events.clone().run(
                api.clone(),
                Arc::new(key),
                Duration::from_secs(gateway.config.events.flush_secs),
            )))
        }
        None => None,
    };
    Ok(RunningGateway {
        gateway,
        dns,
        http,
        forwarder,
    })
}
