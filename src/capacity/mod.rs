//! Resource aggregation (system C, DESIGN §5): live status of every
//! resource, and totals that follow it.
//!
//! Status is not a record. A signed report ([`report`]) changes no record,
//! signs nothing and touches no DNS data: it is stored whole, with the
//! reporter's sequence number, as one row of [`status::LATEST_REPORT`] in
//! one store batch (the store's writer
//! shares one commit among concurrent batches, so many reports cost one
//! fsync) and only then applied in memory. [`Capacity`] watches every
//! committed record (it is a registry [`Observer`]) and every accepted
//! report, and keeps [`totals::Totals`] up to date by subtracting a
//! resource's old contribution and adding its new one; freshness changes
//! with time are applied from a deadline queue, so nothing is ever
//! recomputed over all resources.

pub mod faults;
pub mod history;
pub mod quality;
pub mod report;
pub mod rollup;
pub mod situation;
pub mod status;
pub mod summary;
pub mod totals;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque, btree_map};
use std::sync::{Arc, Mutex, RwLock};

use self::history::{History, Period, Point, View};
use self::quality::{Duplicates, Finding, Reason};
use self::report::{Report, ReportLimits};
use self::status::{
    Freshness, LATEST_REPORT, REPORTER_SEQ, STATUS, Status, StoredReport, StoredStatus,
};
use self::totals::{Contribution, Rows, Totals};
use crate::clock::Clock;
use crate::ident::identifier::Identifier;
use crate::ident::keys::KeyId;
use crate::ident::record::{RecordStatus, SignedRecord};
use crate::ident::resource::DeviceTable;
use crate::registry::Observer;
use crate::store::{Row, Store, StoreError, WriteBatch};

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    #[error("{id} is not a registered resource of this node")]
    UnknownResource { id: Identifier, pointer: String },
    #[error("{id} is not owned by the signing provider")]
    NotOwner { id: Identifier, pointer: String },
    #[error("{id} is {status}: only an active resource reports status")]
    NotActive {
        id: Identifier,
        pointer: String,
        status: &'static str,
    },
    /// The sequence number is not above the last accepted one (a replay
    /// when equal).
    #[error("sequence {got} of agent {agent:?} is not above the last accepted {last}")]
    OutOfOrder { agent: String, got: u64, last: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A report accepted and durable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Accepted {
    pub agent: String,
    pub seq: u64,
    pub resources: usize,
    /// Node time the report was accepted.
    pub at: u64,
}

#[derive(Debug)]
struct Entry {
    /// Version of the record seen; 0 before any.
    version: u64,
    owner: Option<Identifier>,
    status_of_record: Option<RecordStatus>,
    contribution: Option<Contribution>,
    status: Option<Status>,
    /// The node-wide acceptance order of the report that set `status`: of
    /// two reports in the same second, the later accepted wins, at run
    /// time and when read back at start alike.
    status_order: u64,
    freshness: Freshness,
    deadline: Option<u64>,
    /// Plausibility findings on the record's descriptor.
    descriptor_findings: Vec<Finding>,
    /// The reasons counted for this entry in `Inner::reason_counts`.
    reasons: Vec<Reason>,
}

impl Entry {
    /// Every finding on this resource now, except duplicates (kept across
    /// resources in [`Duplicates`]).
    fn findings(&self) -> Vec<Finding> {
        if self.status_of_record != Some(RecordStatus::Active) {
            return Vec::new();
        }
        let mut out = self.descriptor_findings.clone();
        if let (Some(s), Some(c)) = (&self.status, &self.contribution) {
            out.extend(quality::status_findings(
                c.units_total,
                s.units_available,
                s.units_in_use,
                s.utilization,
            ));
        }
        match self.freshness {
            Freshness::Fresh => {}
            Freshness::Stale => out.push(freshness_finding(Reason::Stale, self.status.as_ref())),
            Freshness::Unknown => {
                out.push(freshness_finding(Reason::Unknown, self.status.as_ref()))
            }
        }
        out
    }
}

fn freshness_finding(reason: Reason, status: Option<&Status>) -> Finding {
    let detail = match status {
        Some(s) => format!(
            "last reported at {} by agent {:?}, every {} s",
            s.reported_at, s.agent, s.interval_secs
        ),
        None => "never reported".into(),
    };
    Finding {
        reason,
        pointer: String::new(),
        detail,
    }
}

/// A refused report worth a provider's attention.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProviderEvent {
    pub at: u64,
    pub reason: Reason,
    /// The resource or `agent:<id>` it concerns.
    pub id: String,
    pub detail: String,
}

/// Most events kept per provider.
const EVENTS_KEPT: usize = 20;

/// The data-quality view of a node's resources (`GET /v1/quality`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QualityReport {
    pub at: u64,
    /// Findings per reason, across all providers.
    pub counts: BTreeMap<Reason, u64>,
    pub providers: Vec<ProviderQuality>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ProviderQuality {
    pub provider: String,
    pub resources: usize,
    /// [`quality::score`] of its resources' findings.
    pub score: f64,
    pub findings: Vec<ResourceFinding>,
    /// Refused reports (sequence going backwards, resources not its own).
    pub events: Vec<ProviderEvent>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceFinding {
    pub id: String,
    #[serde(flatten)]
    pub finding: Finding,
}

impl Entry {
    /// Takes `s` (accepted as `order`) unless the status held is newer:
    /// later reported, or accepted later in the same second.
    fn keep_newest(&mut self, s: Status, order: u64) {
        let newer = self
            .status
            .as_ref()
            .is_none_or(|old| (old.reported_at, self.status_order) <= (s.reported_at, order));
        if newer {
            self.status = Some(s);
            self.status_order = order;
        }
    }

    fn new() -> Entry {
        Entry {
            version: 0,
            owner: None,
            status_of_record: None,
            contribution: None,
            status: None,
            status_order: 0,
            freshness: Freshness::Unknown,
            deadline: None,
            descriptor_findings: Vec::new(),
            reasons: Vec::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Identifier, Entry>,
    totals: Totals,
    /// When each resource's freshness next changes: the resources due at
    /// each second. Hashed within the second, so moving a resource (every
    /// report does) costs no identifier comparisons.
    deadlines: BTreeMap<u64, HashSet<Identifier>>,
    /// (owner, identifier) of every resource record not withdrawn.
    by_owner: BTreeSet<(String, String)>,
    duplicates: Duplicates,
    /// Findings per reason over all entries (duplicates aside).
    reason_counts: BTreeMap<Reason, i64>,
    /// Recent refused reports per provider.
    events: HashMap<String, VecDeque<ProviderEvent>>,
}

impl Inner {
    fn set_deadline(&mut self, id: &Identifier, now: u64) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        let next = e.status.as_ref().and_then(|s| s.next_change(now));
        if next == e.deadline {
            return;
        }
        if let Some(old) = e.deadline.take()
            && let btree_map::Entry::Occupied(mut due) = self.deadlines.entry(old)
        {
            due.get_mut().remove(id);
            if due.get().is_empty() {
                due.remove();
            }
        }
        e.deadline = next;
        if let Some(at) = next {
            self.deadlines.entry(at).or_default().insert(id.clone());
        }
    }

    /// Changes one entry with its contribution taken out and put back.
    fn change(&mut self, id: &Identifier, now: u64, f: impl FnOnce(&mut Entry)) {
        let e = self.entries.entry(id.clone()).or_insert_with(Entry::new);
        if let Some(c) = &e.contribution {
            self.totals.apply(c, e.status.as_ref(), e.freshness, -1);
        }
        for r in e.reasons.drain(..) {
            *self.reason_counts.entry(r).or_default() -= 1;
        }
        f(e);
        e.freshness = e
            .status
            .as_ref()
            .map_or(Freshness::Unknown, |s| s.freshness(now));
        if let Some(c) = &e.contribution {
            self.totals.apply(c, e.status.as_ref(), e.freshness, 1);
        }
        e.reasons = e.findings().iter().map(|f| f.reason).collect();
        for r in &e.reasons {
            *self.reason_counts.entry(*r).or_default() += 1;
        }
        self.reason_counts.retain(|_, n| *n != 0);
        self.set_deadline(id, now);
    }

    /// Applies every freshness change due by `now`.
    fn advance(&mut self, now: u64) {
        while let Some(first) = self.deadlines.first_entry() {
            if *first.key() > now {
                break;
            }
            // A resource's next deadline is after `now`, so none of these
            // lands back in a bucket this loop still has to visit.
            for id in first.remove() {
                if let Some(e) = self.entries.get_mut(&id) {
                    e.deadline = None;
                }
                self.change(&id, now, |_| {});
            }
        }
    }
}

/// A set of resources one report covered: its hash and sorted ids.
type CoveredSet = (u64, Vec<String>);

/// The live status and totals of one node's resources.
pub struct Capacity {
    store: Arc<dyn Store>,
    clock: Clock,
    limits: ReportLimits,
    table: &'static DeviceTable,
    inner: RwLock<Inner>,
    /// Last accepted sequence per reporter (`<key id>/<agent>`), including
    /// reports whose commit is still in flight.
    reporters: Mutex<HashMap<String, u64>>,
    /// Per reporter, the sets of resources of its latest report rows (set
    /// hash, sorted ids), most recent first; locked inside `reporters`.
    sets: Mutex<HashMap<String, VecDeque<CoveredSet>>>,
    /// The next report's acceptance order (persisted with the report).
    order: std::sync::atomic::AtomicU64,
    history: Mutex<History>,
    /// The children's signed summaries (the national roll-up).
    pub rollup: rollup::Rollup,
    /// Where findings are reported as security events (set once by the
    /// node; none in tools and unit tests).
    events: std::sync::OnceLock<Arc<dyn crate::events::Sink>>,
}

/// One resource's live state as a selection weighs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Glance {
    pub freshness: Freshness,
    pub health: Option<report::Health>,
    pub units_available: Option<i64>,
    pub age_secs: Option<u64>,
    pub interval_secs: Option<u32>,
    /// Data-quality findings on it now (duplicates included).
    pub findings: usize,
}

/// One resource's live status as read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LiveStatus {
    pub freshness: Freshness,
    /// Seconds since the last report; absent when never reported.
    pub age_secs: Option<u64>,
    #[serde(flatten)]
    pub status: Option<Status>,
}

impl Capacity {
    /// Opens over `store`, reading the latest statuses and reporter
    /// sequences it holds. Records arrive through [`Observer`]: register it
    /// with the registry before the registry loads its zone.
    pub fn open(
        store: Arc<dyn Store>,
        clock: Clock,
        limits: ReportLimits,
        period: Period,
        pull_secs: u64,
    ) -> Result<Capacity, StoreError> {
        let now = clock.now();
        let history = History::open(store.as_ref(), period.minutes, period.hours, now)?;
        let mut inner = Inner::default();
        let mut bad = 0u64;
        // Newest wins: the same rule as for reports accepted while running.
        let newest = |inner: &mut Inner, id: &Identifier, s: Status, order: u64| {
            inner.change(id, now, |e| e.keep_newest(s, order));
        };
        let mut next_order = 1u64;
        // The earlier layout first (a store written before reports were
        // kept whole), then the reports.
        store.scan_rows(STATUS, b"", &mut |key, value| {
            let id = std::str::from_utf8(key)
                .ok()
                .and_then(|k| Identifier::parse(k).ok());
            match (id, Status::decode(value)) {
                (Some(id), Some(s)) => newest(&mut inner, &id, s, 0),
                _ => bad += 1,
            }
            true
        })?;
        let mut reporters: HashMap<String, u64> = HashMap::new();
        store.scan_rows(REPORTER_SEQ, b"", &mut |key, value| {
            if let (Ok(k), Ok(seq)) = (std::str::from_utf8(key), postcard::from_bytes(value)) {
                reporters.insert(k.to_string(), seq);
            }
            true
        })?;
        store.scan_rows(LATEST_REPORT, b"", &mut |_, value| {
            match StoredReport::decode(value) {
                Some(stored) => {
                    let reporter = format!("{}/{}", stored.key, stored.agent);
                    let seq = reporters.entry(reporter).or_insert(0);
                    *seq = (*seq).max(stored.seq);
                    next_order = next_order.max(stored.order.saturating_add(1));
                    for (id, s) in stored.statuses() {
                        match Identifier::parse(id) {
                            Ok(id) => newest(&mut inner, &id, s, stored.order),
                            Err(_) => bad += 1,
                        }
                    }
                }
                _ => bad += 1,
            }
            true
        })?;
        if bad > 0 {
            tracing::error!(rows = bad, "status rows that do not decode were skipped");
        }
        Ok(Capacity {
            store,
            clock,
            limits,
            table: DeviceTable::builtin(),
            inner: RwLock::new(inner),
            reporters: Mutex::new(reporters),
            sets: Mutex::new(HashMap::new()),
            order: std::sync::atomic::AtomicU64::new(next_order),
            history: Mutex::new(history),
            rollup: rollup::Rollup::new(pull_secs),
            events: std::sync::OnceLock::new(),
        })
    }

    /// Reports data-quality findings to `sink` from now on.
    pub fn report_events_to(&self, sink: Arc<dyn crate::events::Sink>) {
        let _ = self.events.set(sink);
    }

    /// The sink findings go to, if any.
    pub fn events(&self) -> Option<&Arc<dyn crate::events::Sink>> {
        self.events.get()
    }

    pub fn limits(&self) -> &ReportLimits {
        &self.limits
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks that `owner` may report every resource of `report`.
    fn check_owner(&self, owner: &Identifier, report: &Report) -> Result<(), CapacityError> {
        let inner = self.read();
        for (i, (id, _)) in report.resources.iter().enumerate() {
            // Written only for a refusal: this loop runs for every resource.
            let pointer = || format!("/resources/{i}/id");
            let e = inner
                .entries
                .get(id)
                .filter(|e| e.version > 0)
                .ok_or_else(|| CapacityError::UnknownResource {
                    id: id.clone(),
                    pointer: pointer(),
                })?;
            if e.owner.as_ref() != Some(owner) {
                return Err(CapacityError::NotOwner {
                    id: id.clone(),
                    pointer: pointer(),
                });
            }
            match e.status_of_record {
                Some(RecordStatus::Active) => {}
                other => {
                    return Err(CapacityError::NotActive {
                        id: id.clone(),
                        pointer: pointer(),
                        status: other.map_or("unknown", RecordStatus::as_str),
                    });
                }
            }
        }
        Ok(())
    }

    /// Accepts a report signed by `key` of provider `owner`: checks
    /// ownership and order, writes the statuses and the reporter's sequence
    /// in one durable batch, then applies them. A refused report changes
    /// nothing.
    pub async fn report(
        &self,
        owner: &Identifier,
        key: &KeyId,
        report: Report,
    ) -> Result<Accepted, CapacityError> {
        if let Err(e) = self.check_owner(owner, &report) {
            if let CapacityError::NotOwner { id, .. } = &e {
                self.event(
                    owner,
                    Reason::NotOwner,
                    id.to_string(),
                    format!(
                        "agent {:?} reported a resource of another provider",
                        report.agent
                    ),
                );
            }
            return Err(e);
        }
        let at = self.clock.now();
        let reporter = format!("{key}/{}", report.agent);
        let (ids, resources): (Vec<Identifier>, Vec<StoredStatus>) = report
            .resources
            .into_iter()
            .map(|(id, r)| {
                let stored = StoredStatus {
                    id: id.to_string(),
                    units_available: r.units_available,
                    units_in_use: r.units_in_use,
                    health: r.health,
                    utilization: r.utilization,
                };
                (id, stored)
            })
            .unzip();
        let order = self
            .order
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stored = StoredReport {
            seq: report.seq,
            order,
            interval_secs: report.interval_secs,
            reported_at: at,
            agent: report.agent.clone(),
            key: key.to_string(),
            resources,
        };
        let statuses: Vec<(Identifier, Status)> = ids
            .into_iter()
            .zip(stored.statuses().map(|(_, s)| s))
            .collect();
        // The report as accepted is one row per (reporter, set of resources
        // it covers): each resource's latest status is in the row of the
        // last report that named it, whatever the reporter sent since.
        let mut covered: Vec<String> = stored.resources.iter().map(|r| r.id.clone()).collect();
        covered.sort_unstable();
        let set = status::set_hash(&covered);
        let mut rows = vec![
            Row {
                table: LATEST_REPORT,
                key: status::report_row_key(&reporter, set),
                value: stored.encode(),
            },
            Row {
                table: REPORTER_SEQ,
                key: reporter.clone().into_bytes(),
                value: postcard::to_stdvec(&report.seq).unwrap_or_default(),
            },
        ];
        let (tx, rx) = tokio::sync::oneshot::channel();
        let previous = {
            let mut reporters = self.reporters.lock().unwrap_or_else(|e| e.into_inner());
            let last = reporters.get(&reporter).copied().unwrap_or(0);
            if report.seq <= last {
                if report.seq < last {
                    drop(reporters);
                    self.event(
                        owner,
                        Reason::SequenceBackwards,
                        format!("agent:{}", report.agent),
                        format!("sequence {} after {last}", report.seq),
                    );
                }
                return Err(CapacityError::OutOfOrder {
                    agent: report.agent,
                    got: report.seq,
                    last,
                });
            }
            reporters.insert(reporter.clone(), report.seq);
            // A row whose every resource this report covers again holds
            // nothing current: emptied in the same batch, so rows do not
            // pile up when a reporter's set changes.
            let mut sets = self.sets.lock().unwrap_or_else(|e| e.into_inner());
            let tracked = sets.entry(reporter.clone()).or_default();
            tracked.retain(|(h, ids)| {
                let superseded =
                    *h != set && ids.iter().all(|id| covered.binary_search(id).is_ok());
                if superseded {
                    rows.push(Row {
                        table: LATEST_REPORT,
                        key: status::report_row_key(&reporter, *h),
                        value: StoredReport {
                            resources: Vec::new(),
                            ..stored.header()
                        }
                        .encode(),
                    });
                }
                !superseded
            });
            if !tracked.iter().any(|(h, _)| *h == set) {
                tracked.push_front((set, covered));
                tracked.truncate(status::SETS_TRACKED);
            }
            drop(sets);
            // Submitted under the lock, so one reporter's batches reach the
            // store in sequence order.
            self.store.submit(
                WriteBatch {
                    rows,
                    ..Default::default()
                },
                Box::new(move |r| {
                    let _ = tx.send(r);
                }),
            );
            last
        };
        let written = rx.await.map_err(|_| StoreError::Closed).and_then(|r| r);
        if let Err(e) = written {
            let mut reporters = self.reporters.lock().unwrap_or_else(|e| e.into_inner());
            if reporters.get(&reporter) == Some(&report.seq) {
                reporters.insert(reporter, previous);
            }
            return Err(e.into());
        }
        let n = statuses.len();
        let now = self.clock.now();
        let mut inner = self.write();
        inner.advance(now);
        // Implausible figures in an accepted report are security events
        // too (coalesced per provider and resource by the feed).
        let mut found = Vec::new();
        for (id, s) in statuses {
            inner.change(&id, now, |e| e.keep_newest(s, order));
            if self.events.get().is_some()
                && let Some(e) = inner.entries.get(&id)
                && let (Some(st), Some(c)) = (&e.status, &e.contribution)
            {
                for f in quality::status_findings(
                    c.units_total,
                    st.units_available,
                    st.units_in_use,
                    st.utilization,
                ) {
                    found.push((id.to_string(), f));
                }
            }
        }
        drop(inner);
        if let Some(sink) = self.events.get() {
            let source = owner.to_string();
            for (id, f) in found {
                sink.record(
                    crate::events::Kind::QualityFinding,
                    &source,
                    &id,
                    &format!("{}: {}", f.reason.as_str(), f.detail),
                );
            }
        }
        Ok(Accepted {
            agent: report.agent,
            seq: report.seq,
            resources: n,
            at,
        })
    }

    /// The latest status of a resource this node holds, with its freshness
    /// now; `None` for an identifier that is not a resource here.
    pub fn live(&self, id: &Identifier) -> Option<LiveStatus> {
        let now = self.clock.now();
        let inner = self.read();
        let e = inner.entries.get(id).filter(|e| e.version > 0)?;
        Some(LiveStatus {
            freshness: e
                .status
                .as_ref()
                .map_or(Freshness::Unknown, |s| s.freshness(now)),
            age_secs: e.status.as_ref().map(|s| now.saturating_sub(s.reported_at)),
            status: e.status.clone(),
        })
    }

    /// What a selection needs of each resource's live state, under one
    /// lock (`None` for an identifier that is not a resource here).
    pub fn glance(&self, ids: &[&Identifier]) -> Vec<Option<Glance>> {
        use std::fmt::Write;
        let now = self.clock.now();
        let inner = self.read();
        let mut text = String::new();
        let duplicated = inner.duplicates.counts();
        // A wide selection: the few resources with duplicates by
        // identifier, rather than each resource asked about by its text.
        let parsed: Option<HashMap<Identifier, usize>> =
            (!duplicated.is_empty() && duplicated.len() < ids.len()).then(|| {
                duplicated
                    .iter()
                    .filter_map(|(k, n)| Some((Identifier::parse(k).ok()?, *n)))
                    .collect()
            });
        ids.iter()
            .map(|id| {
                let e = inner.entries.get(*id).filter(|e| e.version > 0)?;
                let freshness = e
                    .status
                    .as_ref()
                    .map_or(Freshness::Unknown, |s| s.freshness(now));
                let mut findings =
                    e.descriptor_findings.len() + usize::from(freshness != Freshness::Fresh);
                if let Some(parsed) = &parsed {
                    findings += parsed.get(*id).copied().unwrap_or(0);
                } else if !duplicated.is_empty() {
                    text.clear();
                    let _ = write!(text, "{id}");
                    findings += duplicated.get(text.as_str()).copied().unwrap_or(0);
                }
                if let (Some(s), Some(c)) = (&e.status, &e.contribution) {
                    findings += quality::status_findings(
                        c.units_total,
                        s.units_available,
                        s.units_in_use,
                        s.utilization,
                    )
                    .len();
                }
                Some(Glance {
                    freshness,
                    health: e.status.as_ref().map(|s| s.health),
                    units_available: e.status.as_ref().map(|s| s.units_available),
                    age_secs: e.status.as_ref().map(|s| now.saturating_sub(s.reported_at)),
                    interval_secs: e.status.as_ref().map(|s| s.interval_secs),
                    findings,
                })
            })
            .collect()
    }

    /// The node's own totals now.
    pub fn rows(&self) -> Rows {
        let now = self.clock.now();
        let mut inner = self.write();
        inner.advance(now);
        inner.totals.rows()
    }

    /// This node's totals and every node's below it, as far as their
    /// summaries verified: the federation this node sees.
    pub fn federation_rows(&self) -> Rows {
        let mut rows = self.rows();
        totals::merge(&mut rows, &self.rollup.rows(self.clock.now()));
        rows
    }

    /// This node's signed summary: its own totals and its children's last
    /// verified summaries, verbatim.
    pub fn summary(
        &self,
        prefix: &crate::ident::identifier::Prefix,
        key: &crate::ident::keys::NodeKey,
    ) -> Result<summary::SignedSummary, serde_json::Error> {
        summary::Summary {
            schema: summary::SCHEMA.into(),
            prefix: prefix.to_string(),
            at: self.clock.now(),
            rows: self.rows(),
            children: self.rollup.entries(),
        }
        .sign(key)
    }

    /// Records the minute's point of the totals if this minute has none
    /// yet. Called from the node's upkeep and before history is read, so a
    /// point is the totals as first seen in its minute.
    pub fn tick(&self) -> Result<(), StoreError> {
        // Until the children have been pulled once the federation's figures
        // lack them: a point then would be a false dip after every start.
        if !self.rollup.settled() {
            return Ok(());
        }
        let now = self.clock.now();
        let minute = now - now % 60;
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.last_at().is_some_and(|last| last >= minute) {
            return Ok(());
        }
        let rows = history.push(Point::of(&self.federation_rows(), minute));
        history::persist(self.store.as_ref(), rows)
    }

    /// The last `minutes` minute points and `hours` hourly ones, optionally
    /// for one region, with the anomalies among the minute points.
    pub fn history(
        &self,
        minutes: usize,
        hours: usize,
        region: Option<&str>,
    ) -> Result<View, StoreError> {
        self.tick()?;
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        Ok(View {
            step_secs: 60,
            points: history.points(minutes, false, region),
            hourly: history.points(hours, true, region),
            anomalies: history.anomalies(minutes, region),
        })
    }

    /// Identifiers of the resources `owner` holds (not withdrawn), in
    /// identifier order after `after`, at most `limit`.
    pub fn owned(&self, owner: &Identifier, after: Option<&str>, limit: usize) -> Vec<Identifier> {
        let owner = owner.to_string();
        let inner = self.read();
        let start = (owner.clone(), after.unwrap_or("").to_string());
        inner
            .by_owner
            .range(start..)
            .take_while(|(o, _)| *o == owner)
            .filter(|(_, id)| Some(id.as_str()) != after)
            .take(limit)
            .filter_map(|(_, id)| Identifier::parse(id).ok())
            .collect()
    }

    fn record(&self, signed: &SignedRecord) {
        let r = signed.record();
        if !crate::ident::values::is_resource_class(r.identifier.class()) {
            return;
        }
        let now = self.clock.now();
        let mut inner = self.write();
        if inner
            .entries
            .get(&r.identifier)
            .is_some_and(|e| e.version >= r.version)
        {
            return;
        }
        let parsed = Contribution::of(r, self.table);
        let id = r.identifier.to_string();
        let descriptor_findings = match &parsed {
            Some((_, d)) => {
                let endpoints = r
                    .values
                    .iter()
                    .filter(|v| ENDPOINT_TYPES.contains(&v.kind.as_str()))
                    .map(|v| v.data.clone());
                inner.duplicates.insert(&id, quality::serials(d), endpoints);
                quality::descriptor_findings(d, self.table)
            }
            None => {
                inner.duplicates.remove(&id);
                Vec::new()
            }
        };
        let contribution = parsed.map(|(c, _)| c);
        let mut old_owner = None;
        inner.change(&r.identifier, now, |e| {
            old_owner = e.owner.take();
            e.version = r.version;
            e.owner = r.owner.clone();
            e.status_of_record = Some(r.status);
            e.contribution = contribution;
            e.descriptor_findings = descriptor_findings;
        });
        if let Some(o) = old_owner {
            inner.by_owner.remove(&(o.to_string(), id.clone()));
        }
        if let Some(o) = &r.owner
            && r.status != RecordStatus::Withdrawn
        {
            inner.by_owner.insert((o.to_string(), id));
        }
    }

    /// Notes a refused report for its provider's quality view.
    fn event(&self, owner: &Identifier, reason: Reason, id: String, detail: String) {
        metrics::counter!(crate::telemetry::QUALITY_EVENTS, "reason" => reason.as_str())
            .increment(1);
        if let Some(sink) = self.events.get() {
            sink.record(
                crate::events::Kind::QualityFinding,
                &owner.to_string(),
                &id,
                &format!("{}: {detail}", reason.as_str()),
            );
        }
        let at = self.clock.now();
        let mut inner = self.write();
        let list = inner.events.entry(owner.to_string()).or_default();
        if list.len() >= EVENTS_KEPT {
            list.pop_front();
        }
        list.push_back(ProviderEvent {
            at,
            reason,
            id,
            detail,
        });
    }

    /// Findings per reason now (duplicates included), for `/metrics`.
    pub fn finding_counts(&self) -> BTreeMap<Reason, u64> {
        let now = self.clock.now();
        let mut inner = self.write();
        inner.advance(now);
        let mut counts: BTreeMap<Reason, u64> = inner
            .reason_counts
            .iter()
            .map(|(r, n)| (*r, u64::try_from(*n).unwrap_or(0)))
            .collect();
        for f in inner.duplicates.all_findings() {
            *counts.entry(f).or_default() += 1;
        }
        counts
    }

    /// Every finding, per provider, with its score.
    pub fn quality(&self, provider: Option<&Identifier>) -> QualityReport {
        let now = self.clock.now();
        let mut inner = self.write();
        inner.advance(now);
        let mut per: BTreeMap<String, (usize, Vec<ResourceFinding>, Vec<usize>)> = BTreeMap::new();
        for (id, e) in &inner.entries {
            let Some(owner) = &e.owner else { continue };
            if e.status_of_record != Some(RecordStatus::Active)
                || provider.is_some_and(|p| p != owner)
            {
                continue;
            }
            let slot = per.entry(owner.to_string()).or_default();
            slot.0 += 1;
            let text = id.to_string();
            let mut found = e.findings();
            found.extend(inner.duplicates.findings(&text));
            if !found.is_empty() {
                slot.2.push(found.len());
            }
            slot.1
                .extend(found.into_iter().map(|finding| ResourceFinding {
                    id: text.clone(),
                    finding,
                }));
        }
        for owner in inner.events.keys() {
            if provider.is_none_or(|p| p.to_string() == *owner) {
                per.entry(owner.clone()).or_default();
            }
        }
        let mut counts: BTreeMap<Reason, u64> = BTreeMap::new();
        let providers = per
            .into_iter()
            .map(|(provider, (resources, mut findings, sizes))| {
                findings.sort_by(|a, b| a.id.cmp(&b.id));
                for f in &findings {
                    *counts.entry(f.finding.reason).or_default() += 1;
                }
                let events: Vec<ProviderEvent> = inner
                    .events
                    .get(&provider)
                    .map(|l| l.iter().cloned().collect())
                    .unwrap_or_default();
                for ev in &events {
                    *counts.entry(ev.reason).or_default() += 1;
                }
                ProviderQuality {
                    score: quality::score(resources, sizes.into_iter()),
                    provider,
                    resources,
                    findings,
                    events,
                }
            })
            .collect();
        QualityReport {
            at: now,
            counts,
            providers,
        }
    }
}

/// Value types that name a resource's endpoint, for duplicate detection.
const ENDPOINT_TYPES: [&str; 2] = ["URL", "CP.ENDPOINT"];

impl Observer for Capacity {
    fn committed(&self, records: &[SignedRecord]) {
        for r in records {
            self.record(r);
        }
    }
}
