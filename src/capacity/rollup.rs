//! The national roll-up: a node pulls each delegated child's signed
//! summary from the API URL in the delegation record, checks it against
//! the child's key from the same record, and keeps the last one that
//! verified. The node's own summary carries those verbatim, so the
//! national node holds every node's figures, each under its own node's
//! signature; the federation's totals are the sum of every node's *own*
//! totals, so nothing is counted twice.
//!
//! A summary that fails is not used: the last good one stays, ageing, and
//! the failure is shown beside it. Figures age with their summary: older
//! than 3 pull intervals they count as stale, older than 4 as unknown, as
//! a resource's own status does with its reporting interval.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use serde::Serialize;

// A summary ages by pull intervals as a resource's status does by its
// reporting intervals: the same thresholds.
use super::status::{Freshness, STALE_AFTER, UNKNOWN_AFTER};
use super::summary::{ChildEntry, NodeFigures, SignedSummary, SummaryError};
use super::totals::{Rows, merge};
use crate::ident::delegation::Delegation;
use crate::ident::keys::{PublicKey, to_hex};

/// A child to pull: from a delegation in force that names an API.
#[derive(Debug, Clone)]
pub struct Target {
    pub prefix: String,
    /// The child's keys in force, newest first: two during its key
    /// rollover's overlap, when its summary may be signed by either.
    pub keys: Vec<PublicKey>,
    pub api: String,
}

/// Why a pull did not give a usable summary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    #[error("{0}")]
    Transport(String),
    #[error("{api} answered {status}")]
    Status { api: String, status: u16 },
    #[error(transparent)]
    Verification(#[from] SummaryError),
}

impl PullError {
    /// The `result` label of the pull counter.
    pub fn label(&self) -> &'static str {
        match self {
            PullError::Transport(_) | PullError::Status { .. } => "unreachable",
            PullError::Verification(_) => "verification_failed",
        }
    }
}

#[derive(Debug, Clone)]
struct Child {
    /// The key that verified the last summary (the newest key before one did).
    key: String,
    /// Every key in force for the child, newest first.
    keys: Vec<String>,
    api: Option<String>,
    /// The last summary that verified, verbatim, and what it held.
    signed: Option<SignedSummary>,
    figures: Vec<NodeFigures>,
    error: Option<String>,
}

/// One node of the federation below this one, as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChildView {
    pub prefix: String,
    pub api: Option<String>,
    /// Unix seconds at which its figures were read there.
    pub at: Option<u64>,
    pub age_secs: Option<u64>,
    /// How its figures count here: `fresh`, `stale` (older than 3 pull
    /// intervals) or `unknown` (older than 4, or none).
    pub freshness: Freshness,
    /// Its latest summary verified (and so is in use).
    pub verified: bool,
    pub error: Option<String>,
}

/// The children's summaries this node holds.
#[derive(Debug)]
pub struct Rollup {
    pull_secs: u64,
    children: RwLock<BTreeMap<String, Child>>,
    /// Every child has been pulled once since start (or there is nothing
    /// to pull): until then the federation's figures are incomplete.
    settled: std::sync::atomic::AtomicBool,
}

impl Rollup {
    /// `pull_secs` 0 turns pulling off.
    pub fn new(pull_secs: u64) -> Rollup {
        Rollup {
            pull_secs,
            children: RwLock::new(BTreeMap::new()),
            settled: std::sync::atomic::AtomicBool::new(pull_secs == 0),
        }
    }

    /// Whether the first round of pulls has finished.
    pub fn settled(&self) -> bool {
        self.settled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the end of a round of pulls.
    pub fn round_done(&self) {
        self.settled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn pull_secs(&self) -> u64 {
        self.pull_secs
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Child>> {
        self.children.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Child>> {
        self.children.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the delegations in force now (revoked and expired ones are
    /// dropped with what was pulled from them; a changed key or API starts
    /// afresh) and returns the children to pull.
    pub fn targets(&self, delegations: &[Delegation], now: u64) -> Vec<Target> {
        let mut children = self.write();
        let mut live = BTreeSet::new();
        let mut targets = Vec::new();
        // Two delegations of a prefix in force are its key rollover's
        // overlap: one child, either key.
        let mut by_prefix: BTreeMap<&str, Vec<&Delegation>> = BTreeMap::new();
        for d in delegations {
            if d.revoked.is_some() || now < d.not_before || now > d.not_after {
                continue;
            }
            by_prefix.entry(d.prefix.as_str()).or_default().push(d);
        }
        for (prefix, mut ds) in by_prefix {
            ds.sort_by_key(|d| std::cmp::Reverse(d.not_before));
            let keys: Vec<PublicKey> = ds.iter().filter_map(|d| d.public_key().ok()).collect();
            let (Some(newest), Some(key)) = (ds.first(), keys.first()) else {
                continue;
            };
            live.insert(prefix.to_string());
            let hex: Vec<String> = keys.iter().map(|k| to_hex(&k.to_bytes())).collect();
            let fresh = Child {
                key: to_hex(&key.to_bytes()),
                keys: hex.clone(),
                api: newest.api.clone(),
                signed: None,
                figures: Vec::new(),
                error: newest
                    .api
                    .is_none()
                    .then(|| "the delegation names no API to pull from".to_string()),
            };
            let entry = children
                .entry(prefix.to_string())
                .or_insert_with(|| fresh.clone());
            if !hex.contains(&entry.key) || entry.api != fresh.api {
                *entry = fresh;
            } else {
                entry.keys = hex;
            }
            if let Some(api) = &newest.api {
                targets.push(Target {
                    prefix: prefix.to_string(),
                    keys,
                    api: api.clone(),
                });
            }
        }
        children.retain(|prefix, _| live.contains(prefix));
        targets
    }

    /// The time of the child's last accepted summary.
    pub fn last_at(&self, prefix: &str) -> Option<u64> {
        self.read()
            .get(prefix)
            .and_then(|c| c.figures.first())
            .and_then(|f| f.at)
    }

    /// Keeps the outcome of a pull of `target`.
    pub fn settle(
        &self,
        target: &Target,
        outcome: Result<(SignedSummary, Vec<NodeFigures>, PublicKey), PullError>,
        now: u64,
    ) {
        let mut children = self.write();
        let Some(child) = children.get_mut(&target.prefix) else {
            return; // revoked while the pull was in flight
        };
        let keys: Vec<String> = target.keys.iter().map(|k| to_hex(&k.to_bytes())).collect();
        if child.keys != keys {
            return;
        }
        match outcome {
            Ok((signed, mut figures, key)) => {
                child.key = to_hex(&key.to_bytes());
                // Age by this node's clock: a child's clock running ahead
                // must not keep its figures fresh once it falls silent.
                for f in &mut figures {
                    f.at = f.at.map(|at| at.min(now));
                }
                child.signed = Some(signed);
                child.figures = figures;
                child.error = None;
            }
            Err(e) => child.error = Some(e.to_string()),
        }
    }

    /// The children as this node's own summary carries them.
    pub fn entries(&self) -> Vec<ChildEntry> {
        self.read()
            .iter()
            .map(|(prefix, c)| ChildEntry {
                prefix: prefix.clone(),
                key: c.key.clone(),
                api: c.api.clone(),
                signed: c.signed.clone(),
                error: c.error.clone(),
            })
            .collect()
    }

    fn freshness(&self, age: Option<u64>) -> Freshness {
        match age {
            None => Freshness::Unknown,
            Some(_) if self.pull_secs == 0 => Freshness::Fresh,
            Some(a) if a > UNKNOWN_AFTER * self.pull_secs => Freshness::Unknown,
            Some(a) if a > STALE_AFTER * self.pull_secs => Freshness::Stale,
            Some(_) => Freshness::Fresh,
        }
    }

    /// Every node below this one, depth first in prefix order.
    pub fn nodes(&self, now: u64) -> Vec<ChildView> {
        let children = self.read();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for (prefix, c) in children.iter() {
            if c.figures.is_empty() {
                out.push(ChildView {
                    prefix: prefix.clone(),
                    api: c.api.clone(),
                    at: None,
                    age_secs: None,
                    freshness: Freshness::Unknown,
                    verified: false,
                    error: Some(c.error.clone().unwrap_or_else(|| "not pulled yet".into())),
                });
                continue;
            }
            for (i, f) in c.figures.iter().enumerate() {
                if !seen.insert(f.prefix.clone()) {
                    continue;
                }
                let age = f.at.map(|at| now.saturating_sub(at));
                // The child's own entry carries this node's latest pull
                // error; a descendant's carries what its parent saw.
                let error = if i == 0 {
                    c.error.clone()
                } else {
                    f.error.clone()
                };
                out.push(ChildView {
                    prefix: f.prefix.clone(),
                    api: if i == 0 { c.api.clone() } else { f.api.clone() },
                    at: f.at,
                    age_secs: age,
                    freshness: self.freshness(age),
                    verified: f.rows.is_some() && error.is_none(),
                    error,
                });
            }
        }
        out
    }

    /// The sum of every node's own totals below this one, each aged by its
    /// summary's age. A prefix met twice counts once.
    pub fn rows(&self, now: u64) -> Rows {
        let children = self.read();
        let mut seen = BTreeSet::new();
        let mut out = Rows::default();
        for f in children.values().flat_map(|c| c.figures.iter()) {
            let (Some(rows), Some(at)) = (&f.rows, f.at) else {
                continue;
            };
            if !seen.insert(f.prefix.clone()) {
                continue;
            }
            let floor = self.freshness(Some(now.saturating_sub(at)));
            merge(&mut out, &rows.at_least(floor));
        }
        out
    }

    /// Each direct child with the API its delegation names and whether
    /// any node of its subtree, by a summary still fresh, has rows that
    /// `wanted` accepts (`None`: no verified summary yet). What a
    /// federated selection routes by; each node's rows are judged as they
    /// are, without merging the subtree's.
    pub fn route(
        &self,
        now: u64,
        wanted: impl Fn(&Rows) -> bool,
    ) -> Vec<(String, Option<String>, Option<bool>)> {
        let children = self.read();
        children
            .iter()
            .map(|(prefix, c)| {
                let mut any = None;
                for f in &c.figures {
                    let (Some(r), Some(at)) = (&f.rows, f.at) else {
                        continue;
                    };
                    let fresh = self.freshness(Some(now.saturating_sub(at))) == Freshness::Fresh;
                    any = Some(any.unwrap_or(false) || (fresh && wanted(r)));
                }
                (prefix.clone(), c.api.clone(), any)
            })
            .collect()
    }

    /// Gauges per child for `/metrics`: its summary's age and whether the
    /// latest one verified.
    pub fn exposition(&self, now: u64, out: &mut String) {
        use std::fmt::Write;
        let nodes = self.nodes(now);
        let _ = writeln!(
            out,
            "# HELP cpid_rollup_summary_age_seconds Age of the figures held for each node below this one."
        );
        let _ = writeln!(out, "# TYPE cpid_rollup_summary_age_seconds gauge");
        for n in nodes.iter().filter(|n| n.age_secs.is_some()) {
            let _ = writeln!(
                out,
                "cpid_rollup_summary_age_seconds{{prefix=\"{}\"}} {}",
                n.prefix,
                n.age_secs.unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP cpid_rollup_summary_verified Whether the latest summary of each node below this one verified (1) or not (0)."
        );
        let _ = writeln!(out, "# TYPE cpid_rollup_summary_verified gauge");
        for n in &nodes {
            let _ = writeln!(
                out,
                "cpid_rollup_summary_verified{{prefix=\"{}\"}} {}",
                n.prefix,
                u8::from(n.verified)
            );
        }
    }
}

/// What a pull of `target` answered (`status`, `body`), checked: a usable
/// summary, the figures it holds and the child key that signed it, or why
/// not. The HTTP request itself
/// is the caller's (the node's), so this module needs no client.
pub fn check(
    target: &Target,
    answer: Result<(u16, Vec<u8>), String>,
    last: Option<u64>,
    now: u64,
) -> Result<(SignedSummary, Vec<NodeFigures>, PublicKey), PullError> {
    let (status, body) = answer.map_err(PullError::Transport)?;
    if status != 200 {
        return Err(PullError::Status {
            api: target.api.clone(),
            status,
        });
    }
    let signed = SignedSummary::parse(&body)?;
    let mut first_error = None;
    for key in &target.keys {
        match signed.verify(key, &target.prefix, last, now) {
            Ok(figures) => return Ok((signed, figures, *key)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(match first_error {
        Some(e) => e.into(),
        None => PullError::Transport(format!("{} has no key in force", target.prefix)),
    })
}
