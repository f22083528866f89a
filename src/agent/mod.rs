//! The provider's agent (`cpid agent`): it registers the inventory's
//! resources that the node does not hold yet, then reports their live
//! status on its own every interval (DESIGN §5, "an agent").
//!
//! This module is the agent's logic without HTTP: the node is behind the
//! [`Node`] trait (implemented over `api::client::ApiClient`), so the loop
//! is tested with a fake. Its parts: [`inventory`] (the TOML file: what
//! runs here), [`host`] (live figures of this machine), [`state`] (the
//! durable sequence number and identifiers).
//!
//! - **Finding its records again.** Each registered record carries a value
//!   of type [`INVENTORY_TYPE`] with data `<agent>/<name>`;
//!   [`Agent::reconcile`] lists the provider's records and registers only
//!   the inventory items whose tag is not among them, so a restart, a lost
//!   state file or a second host never registers a resource twice. The
//!   inventory is the truth: to retire a resource, take it out of the
//!   inventory (and withdraw its record).
//! - **Sequence numbers** grow per (signing key, agent id) and survive a
//!   restart: [`Agent::tick`] makes the next one durable *before* it sends
//!   (`state` says why). A node that refuses a report as out of order
//!   (`409`) has seen a higher number (a lost or restored state file): the
//!   agent moves past the node's number, or past the Unix time in seconds
//!   when the node does not say it, and sends once more.
//! - **Failures.** An unreachable node (or a `5xx`, or `429`) is retried
//!   with exponential backoff from 1 s up to the interval, with jitter
//!   ([`Backoff`]); any other refusal is logged, and the next interval
//!   lists the records again before it reports. A resource whose figures
//!   cannot be read this time (a stale or broken status file) is left out
//!   of that report: the node then shows it `stale`, which is the truth.
//!   The agent never stops on an error; only `stop` ends [`Agent::run`].

pub mod host;
pub mod http;
pub mod inventory;
pub mod manual;
pub mod state;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::api::body::{IssueRequest, ValueInput};
use crate::api::client::ClientError;
use crate::ident::identifier::Identifier;
use crate::ident::record::Record;
use crate::ident::values::CP_RESOURCE;

pub use crate::capacity::report::{Health, ReportBody, ResourceStatusBody};
pub use host::HostFigures;
pub use http::HttpNode;
pub use inventory::{Inventory, InventoryError, InventoryItem, Source};
pub use state::{StateError, StateFile};

/// The value type that tags a record with `<agent>/<name>`.
pub const INVENTORY_TYPE: &str = "CP.INVENTORY";
/// Largest status file read (`source = "file"`).
const MAX_STATUS_FILE_LEN: u64 = 64 << 10;
/// A status file older than this many intervals is not reported.
pub const STATUS_FILE_STALE_INTERVALS: u64 = 3;

/// One resource's live figures, before its identifier is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStatus {
    pub units_available: i64,
    pub units_in_use: i64,
    pub health: Health,
    pub utilization: Option<f64>,
}

/// What a `status_file` holds (`source = "file"`), e.g. written by a
/// scheduler: `{"units_available": 6, "units_in_use": 2, "health": "ok",
/// "utilization": 0.25}` (`utilization` optional). The file is reported
/// only while it is fresh: modified within
/// [`STATUS_FILE_STALE_INTERVALS`] intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStatus {
    pub units_available: i64,
    pub units_in_use: i64,
    pub health: Health,
    #[serde(default)]
    pub utilization: Option<f64>,
}

/// A record the provider owns, as the node lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub id: String,
    /// The data of its [`INVENTORY_TYPE`] value, if it has one.
    pub inventory_tag: Option<String>,
}

impl OwnedRecord {
    /// The identifier and tag of a record.
    pub fn from_record(r: &Record) -> OwnedRecord {
        OwnedRecord {
            id: r.identifier.to_string(),
            inventory_tag: r
                .values
                .iter()
                .find(|v| v.kind.as_str() == INVENTORY_TYPE)
                .map(|v| v.data.clone()),
        }
    }
}

/// Why the agent could not do something.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The node could not be reached (retried with backoff).
    #[error("node unreachable: {0}")]
    Unreachable(String),
    /// The node answered with an error status.
    #[error("node refused ({status} {code}): {reason}")]
    Refused {
        status: u16,
        code: String,
        reason: String,
        /// On `409` out of order: the last sequence number the node
        /// accepted from this agent, when it says.
        last_seq: Option<u64>,
    },
    /// The node answered success with something that is not what it
    /// promises, or the request could not be made.
    #[error("{0}")]
    Node(String),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    /// No resource has figures to report (none registered yet, or none
    /// readable); no sequence number was used.
    #[error("agent {agent}: nothing to report")]
    NothingToReport { agent: String },
}

impl AgentError {
    /// Worth retrying soon: unreachable, overloaded (`429`) or failing
    /// (`5xx`).
    pub fn is_transient(&self) -> bool {
        match self {
            AgentError::Unreachable(_) => true,
            AgentError::Refused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

impl From<ClientError> for AgentError {
    fn from(e: ClientError) -> AgentError {
        match e {
            ClientError::Transport { .. } => AgentError::Unreachable(e.to_string()),
            ClientError::Api(f) => AgentError::Refused {
                status: f.status,
                code: f.code,
                reason: f.reason,
                last_seq: f.last_seq,
            },
            other => AgentError::Node(other.to_string()),
        }
    }
}

/// The node, as the agent needs it.
pub trait Node {
    /// Every record the provider owns (walking the paged owner listing).
    fn owned(&self) -> Result<Vec<OwnedRecord>, AgentError>;
    /// Registers `item` tagged `tag` ([`issue_request`]); returns the new
    /// identifier.
    fn register(&self, item: &InventoryItem, tag: &str) -> Result<String, AgentError>;
    /// Sends one signed report.
    fn report(&self, body: &ReportBody) -> Result<(), AgentError>;
}

/// The registration of `item`: its descriptor (`CP.RESOURCE`), its
/// endpoint (`URL`) and its tag ([`INVENTORY_TYPE`]).
pub fn issue_request(item: &InventoryItem, tag: &str) -> Result<IssueRequest, AgentError> {
    let value = |kind: &str, data: String| ValueInput {
        index: None,
        kind: kind.to_string(),
        data,
        ttl: 0,
    };
    let descriptor =
        serde_json::to_string(&item.descriptor).map_err(|e| AgentError::Node(e.to_string()))?;
    let mut values = vec![value(CP_RESOURCE, descriptor)];
    if let Some(url) = &item.endpoint {
        values.push(value("URL", url.clone()));
    }
    values.push(value(INVENTORY_TYPE, tag.to_string()));
    Ok(IssueRequest {
        class: item.descriptor.class.clone(),
        values,
    })
}

/// Exponential backoff with jitter: attempt n waits between half and all
/// of min(cap, 2^n s), and never less than 1 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(cap: Duration) -> Backoff {
        Backoff {
            cap: cap.max(Duration::from_secs(1)),
            attempt: 0,
        }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let base = Duration::from_secs(1u64 << self.attempt.min(20)).min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let mut b = [0u8; 8];
        let share = match getrandom::fill(&mut b) {
            Ok(()) => u64::from_le_bytes(b) as f64 / u64::MAX as f64,
            Err(_) => 1.0,
        };
        (base / 2 + base.mul_f64(share.clamp(0.0, 1.0) / 2.0))
            .max(Duration::from_secs(1))
            .min(base)
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Reads a status file: fresh, small, strict, utilization in 0..=1.
fn read_status_file(path: &Path, now: u64, interval: u32) -> Result<LiveStatus, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(|e| e.to_string())?;
    let modified = modified
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let max_age = STATUS_FILE_STALE_INTERVALS * u64::from(interval);
    let age = now.saturating_sub(modified);
    if age > max_age {
        return Err(format!("not updated for {age} s (more than {max_age} s)"));
    }
    let mut text = String::new();
    file.take(MAX_STATUS_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_STATUS_FILE_LEN {
        return Err(format!("larger than {MAX_STATUS_FILE_LEN} bytes"));
    }
    let s: FileStatus = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    if let Some(u) = s.utilization
        && !(0.0..=1.0).contains(&u)
    {
        return Err("utilization must be 0 to 1".into());
    }
    Ok(LiveStatus {
        units_available: s.units_available,
        units_in_use: s.units_in_use,
        health: s.health,
        utilization: s.utilization,
    })
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `item`'s live figures now, or why there are none this time.
fn live_status(
    item: &InventoryItem,
    host: Option<&HostFigures>,
    now: u64,
    interval: u32,
) -> Result<LiveStatus, String> {
    match &item.source {
        Source::Host => host
            .map(|h| host::host_status(&item.descriptor, h))
            .ok_or_else(|| "no host figures".to_string()),
        Source::Declared {
            units_available,
            units_in_use,
        } => Ok(LiveStatus {
            units_available: count(*units_available),
            units_in_use: count(*units_in_use),
            health: Health::Ok,
            utilization: None,
        }),
        Source::File(path) => read_status_file(path, now, interval)
            .map_err(|e| format!("status file {}: {e}", path.display())),
    }
}

/// What the agent would do with one inventory item (`cpid agent --check`).
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub name: String,
    /// The [`INVENTORY_TYPE`] tag its record carries.
    pub tag: String,
    /// Its identifier, when the state file knows it; `None`: registered
    /// unless the node already holds a record with the tag.
    pub id: Option<String>,
    /// The figures it would report now, or why none.
    pub status: Result<LiveStatus, String>,
}

/// What the agent would register and report now, from the inventory and
/// the identifiers a state file knows; asks no node, sends nothing.
pub fn plan(
    inventory: &Inventory,
    ids: &BTreeMap<String, String>,
    host: Option<&HostFigures>,
    now: u64,
) -> Vec<Planned> {
    inventory
        .items
        .iter()
        .map(|item| Planned {
            name: item.name.clone(),
            tag: inventory.tag(item),
            id: ids.get(&item.name).cloned(),
            status: live_status(item, host, now, inventory.interval_secs),
        })
        .collect()
}

/// The agent: an inventory, its state, a node.
pub struct Agent<N: Node> {
    node: N,
    inventory: Inventory,
    state: StateFile,
    host: Box<dyn FnMut() -> HostFigures + Send>,
    needs_reconcile: bool,
}

impl<N: Node> Agent<N> {
    /// An agent over `inventory`, holding its state file (locked).
    pub fn new(inventory: Inventory, node: N) -> Result<Agent<N>, AgentError> {
        let state = StateFile::open(&inventory.state_file)?;
        Ok(Agent {
            node,
            inventory,
            state,
            host: Box::new(host::collect),
            needs_reconcile: true,
        })
    }

    /// Takes host figures from `probe` instead of this machine (tests).
    pub fn with_host(mut self, probe: impl FnMut() -> HostFigures + Send + 'static) -> Self {
        self.host = Box::new(probe);
        self
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    pub fn node(&self) -> &N {
        &self.node
    }

    pub fn state(&self) -> &StateFile {
        &self.state
    }

    /// The state, to remember what the caller learnt (the provider).
    pub fn state_mut(&mut self) -> &mut StateFile {
        &mut self.state
    }

    /// Lists the provider's records and registers the inventory items not
    /// among them (by tag); returns (name, identifier) of every item that
    /// has a record, in inventory order. An item the node refuses is
    /// logged and left out (and tried again next interval); an unreachable
    /// node ends the walk with the error.
    pub fn reconcile(&mut self) -> Result<Vec<(String, String)>, AgentError> {
        let agent = self.inventory.agent.clone();
        let owned = self.node.owned()?;
        let mut by_tag: HashMap<&str, &str> = HashMap::new();
        for r in &owned {
            let Some(tag) = r.inventory_tag.as_deref() else {
                continue;
            };
            if Identifier::parse(&r.id).is_err() {
                tracing::warn!(id = r.id, "the node listed an invalid identifier; ignored");
                continue;
            }
            if let Some(first) = by_tag.get(tag) {
                tracing::warn!(
                    tag,
                    first,
                    also = r.id,
                    "two records carry one tag; the first is used"
                );
            } else {
                by_tag.insert(tag, &r.id);
            }
        }
        let mut ids = BTreeMap::new();
        let mut found = Vec::with_capacity(self.inventory.items.len());
        let mut complete = true;
        for item in &self.inventory.items {
            let tag = self.inventory.tag(item);
            let id = match by_tag.get(tag.as_str()) {
                Some(id) => (*id).to_string(),
                None => match self.node.register(item, &tag) {
                    Ok(id) if Identifier::parse(&id).is_ok() => {
                        tracing::info!(agent, resource = item.name, id, "registered");
                        id
                    }
                    Ok(id) => {
                        return Err(AgentError::Node(format!(
                            "registering {tag}: the node answered an invalid identifier {id:?}"
                        )));
                    }
                    Err(e) if e.is_transient() => {
                        // Keep what was registered so far (the tags find it
                        // again anyway).
                        let mut known = self.state.ids(&agent);
                        known.extend(ids);
                        self.state.set_ids(&agent, known)?;
                        return Err(e);
                    }
                    Err(e) => {
                        tracing::error!(agent, resource = item.name, error = %e, "registration refused");
                        complete = false;
                        continue;
                    }
                },
            };
            ids.insert(item.name.clone(), id.clone());
            found.push((item.name.clone(), id));
        }
        self.state.set_ids(&agent, ids)?;
        self.needs_reconcile = !complete;
        Ok(found)
    }

    /// Builds one report of the registered items, makes its sequence
    /// number durable, sends it; on `409` moves past the node's number and
    /// sends once more. Answers the report the node took.
    pub fn tick(&mut self, now: u64) -> Result<ReportBody, AgentError> {
        let agent = self.inventory.agent.clone();
        let interval = self.inventory.interval_secs;
        let ids = self.state.ids(&agent);
        let needs_host = self
            .inventory
            .items
            .iter()
            .any(|i| i.source == Source::Host && ids.contains_key(&i.name));
        let host = needs_host.then(|| (self.host)());
        let mut resources = Vec::with_capacity(ids.len());
        for item in &self.inventory.items {
            let Some(id) = ids.get(&item.name) else {
                tracing::debug!(agent, resource = item.name, "not registered yet");
                continue;
            };
            match live_status(item, host.as_ref(), now, interval) {
                Ok(s) => resources.push(ResourceStatusBody {
                    id: id.clone(),
                    units_available: s.units_available,
                    units_in_use: s.units_in_use,
                    health: s.health,
                    utilization: s.utilization,
                }),
                Err(reason) => {
                    tracing::warn!(
                        agent,
                        resource = item.name,
                        reason,
                        "left out of this report"
                    );
                }
            }
        }
        if resources.is_empty() {
            return Err(AgentError::NothingToReport { agent });
        }
        let mut body = ReportBody {
            seq: self.state.next_seq(&agent)?,
            agent,
            interval_secs: interval,
            resources,
        };
        let outcome = match self.node.report(&body) {
            Err(AgentError::Refused {
                status: 409,
                last_seq,
                ..
            }) => {
                let floor = last_seq.unwrap_or(now);
                let refused = body.seq;
                body.seq = self.state.next_seq_above(&body.agent, floor)?;
                tracing::warn!(
                    agent = body.agent,
                    refused,
                    node_seq = ?last_seq,
                    seq = body.seq,
                    "report out of order; sending again past the node's number"
                );
                self.node.report(&body)
            }
            other => other,
        };
        match outcome {
            Ok(()) => {
                tracing::info!(
                    agent = body.agent,
                    seq = body.seq,
                    resources = body.resources.len(),
                    outcome = "accepted",
                    "report sent"
                );
                Ok(body)
            }
            Err(e) => {
                tracing::warn!(
                    agent = body.agent,
                    seq = body.seq,
                    resources = body.resources.len(),
                    outcome = %e,
                    "report not taken"
                );
                Err(e)
            }
        }
    }

    /// Reconciles, then reports every interval until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        self.run_with(stop, &mut pause, &crate::clock::system_now);
    }

    /// [`Agent::run`] with the waiting and the clock given.
    fn run_with(
        &mut self,
        stop: &AtomicBool,
        wait: &mut dyn FnMut(&AtomicBool, Duration),
        now: &dyn Fn() -> u64,
    ) {
        let interval = Duration::from_secs(u64::from(self.inventory.interval_secs));
        let agent = self.inventory.agent.clone();
        let mut backoff = Backoff::new(interval);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if self.needs_reconcile {
                match self.reconcile() {
                    Ok(found) => {
                        tracing::info!(
                            agent,
                            registered = found.len(),
                            of = self.inventory.items.len(),
                            "inventory reconciled"
                        );
                    }
                    Err(e) if e.is_transient() => {
                        let d = backoff.next_delay();
                        tracing::warn!(agent, error = %e, retry_in = ?d, "cannot list or register");
                        wait(stop, d);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(agent, error = %e, "cannot reconcile the inventory");
                        wait(stop, interval);
                        continue;
                    }
                }
            }
            let next = match self.tick(now()) {
                Ok(_) => {
                    backoff.reset();
                    interval.saturating_sub(started.elapsed())
                }
                Err(e) if e.is_transient() => backoff.next_delay(),
                Err(e) => {
                    backoff.reset();
                    if matches!(e, AgentError::Refused { .. }) {
                        // The node may no longer hold a record: list again.
                        self.needs_reconcile = true;
                    } else {
                        tracing::error!(agent, error = %e, "no report this interval");
                    }
                    interval.saturating_sub(started.elapsed())
                }
            };
            wait(stop, next);
        }
    }
}

/// Sleeps `d`, waking early when `stop` is set.
fn pause(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(200)));
    }
}

#[cfg(test)]
mod tests;
