//! The risk assessment (DESIGN §6, F): what in a node's configuration and
//! state is unsafe, each finding with a severity and a concrete fix.
//!
//! One function, [`assess`], decides every finding from the configuration,
//! the files it names (key modes, the delegation chain) and, when there is
//! one, the store's [`State`] (the delegations this node gave, how far its
//! transparency log's checkpoint lags). `cpid doctor` gathers that state
//! from a stopped node's store opened read-only ([`State::read_stopped`]);
//! a running node gathers it from memory ([`State::of_serving`]) for the
//! admin-signed `GET /v1/admin/risk`. Both answer the same [`Report`].
//!
//! The checks (ids are stable; a subject follows a `/`):
//!
//! | check | severity |
//! |---|---|
//! | `key.mode` — node key, admin key, config file holding TSIG secrets readable by group/others | high |
//! | `key.admin-is-node` — the admin key is the record-signing key | high |
//! | `key.admin-on-node` — the admin's private key lives in the data directory | low |
//! | `data.mode` — the data directory is open to group/others | medium |
//! | `registration.open` — `open` policy on the national / a regional / a deeper node | high / medium / low |
//! | `dns.rrl` — DNS on a non-loopback address without response-rate limiting | high |
//! | `http.unlimited` — HTTP on a non-loopback address with no per-address rate | medium |
//! | `transfer.unsigned` — a secondary may transfer without TSIG | high |
//! | `dnssec.off` — no DNSSEC signing | medium |
//! | `delegation.expiring` / `delegation.expired` — own or a child's | medium / high |
//! | `delegation.chain` — the configured chain cannot be read | high |
//! | `log.checkpoint` — committed leaves older than the limit not in a checkpoint | medium (serving) / low (stopped) |
//! | `advisory` — a crate cpid was built with has a RustSec vulnerability / informational advisory | high / low |
//! | `advisory.db` — no advisory database to check against | info |
//!
//! This module never changes anything: it reads, and says what to do.

pub mod advisory;
mod checks;
mod state;

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::config::Config;

pub use self::state::State;

/// Why an assessment could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RiskError {
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("transparency log: {0}")]
    Log(#[from] crate::tlog::log::LogError),
    #[error("report: {0}")]
    Report(String),
}

/// How bad a finding is. Ordered worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
    Info,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Info => "info",
        }
    }
}

/// One finding: what was found and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Unique in a report: the check, then `/` and the subject when a
    /// check can fire more than once (`transfer.unsigned/192.0.2.0/24`).
    pub id: String,
    /// The check that fired (a stable name, see the module doc).
    pub check: String,
    pub severity: Severity,
    pub found: String,
    /// A concrete command or configuration line.
    pub fix: String,
}

impl Finding {
    fn new(
        check: &str,
        subject: Option<&str>,
        severity: Severity,
        found: String,
        fix: String,
    ) -> Finding {
        Finding {
            id: match subject {
                Some(s) => format!("{check}/{s}"),
                None => check.to_string(),
            },
            check: check.to_string(),
            severity,
            found,
            fix,
        }
    }
}

/// Where the state behind a report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// A running node's memory (`GET /v1/admin/risk`).
    RunningNode,
    /// A stopped node's store, read-only.
    Store,
    /// No store yet: configuration and files only.
    ConfigurationOnly,
}

/// A whole assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The node's prefix.
    pub node: String,
    pub basis: Basis,
    /// Unix seconds the assessment was made at.
    pub assessed_at: u64,
    /// Worst first, then by id.
    pub findings: Vec<Finding>,
}

impl Report {
    /// How many findings of `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// The process exit code: 2 with a high finding, 0 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.count(Severity::High) > 0 { 2 } else { 0 }
    }

    /// The report as JSON, with counts per severity.
    pub fn to_json(&self) -> serde_json::Value {
        let mut counts = serde_json::Map::new();
        for s in Severity::ALL {
            counts.insert(s.as_str().into(), self.count(s).into());
        }
        serde_json::json!({
            "node": self.node,
            "basis": self.basis,
            "assessed_at": self.assessed_at,
            "counts": counts,
            "findings": self.findings,
        })
    }

    /// Reads [`Report::to_json`]'s output back (the CLI over the API).
    pub fn from_json(value: &serde_json::Value) -> Result<Report, RiskError> {
        serde_json::from_value(value.clone()).map_err(|e| RiskError::Report(e.to_string()))
    }

    /// The report for a terminal.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let basis = match self.basis {
            Basis::RunningNode => "the running node",
            Basis::Store => "the stopped node's store",
            Basis::ConfigurationOnly => "configuration only (no store yet)",
        };
        let counts: Vec<String> = Severity::ALL
            .iter()
            .map(|s| format!("{} {}", self.count(*s), s.as_str()))
            .collect();
        let _ = writeln!(
            out,
            "risk assessment of node {} ({basis}): {}",
            self.node,
            counts.join(", ")
        );
        for f in &self.findings {
            let _ = writeln!(
                out,
                "\n{:<6} {}\n  found: {}\n  fix:   {}",
                f.severity.as_str().to_uppercase(),
                f.id,
                f.found,
                f.fix
            );
        }
        if self.findings.is_empty() {
            let _ = writeln!(out, "\nno findings");
        }
        out
    }
}

/// Whether the node limits DNS response rates (`[dns.rrl] enabled`).
pub fn rrl_enabled(config: &Config) -> bool {
    config.dns.rrl.enabled
}

/// Whether the node signs its zone with DNSSEC (`[dns.dnssec] enabled`).
/// `None` would mean a build without signing; every build signs now.
pub fn dnssec_enabled(config: &Config) -> Option<bool> {
    Some(config.dns.dnssec.enabled)
}

/// Assesses the node `config` describes, with the store's `state` when
/// there is one, at `now` (Unix seconds).
pub fn assess(config: &Config, state: Option<&State>, now: u64) -> Report {
    let mut findings = Vec::new();
    checks::key_files(config, &mut findings);
    checks::registration(config, &mut findings);
    checks::listeners(config, &mut findings);
    checks::transfer(config, &mut findings);
    checks::dnssec(config, &mut findings);
    checks::delegations(config, state, now, &mut findings);
    if let Some(s) = state {
        checks::checkpoint(config, s, now, &mut findings);
    }
    checks::advisories(config, &mut findings);
    findings.sort_by(|a, b| a.severity.cmp(&b.severity).then_with(|| a.id.cmp(&b.id)));
    Report {
        node: config.node.prefix.clone(),
        basis: match state {
            Some(s) if s.serving => Basis::RunningNode,
            Some(_) => Basis::Store,
            None => Basis::ConfigurationOnly,
        },
        assessed_at: now,
        findings,
    }
}
