//! The latest live status of one resource, as kept durably and judged for
//! freshness. A report is stored as it was accepted, one row per reporter
//! and set of resources (`report-latest`, postcard): a report of 100
//! resources is one write, not 100 spread over a table of a million. At
//! start the newest status of each resource across those rows is its
//! latest.
//!
//! Freshness follows Kubernetes node leases: a resource not reported for
//! 3 of its reporter's intervals is `stale`, after 4 `unknown`; a resource
//! never reported is `unknown`.

use serde::{Deserialize, Serialize};

use super::report::Health;
use crate::store::Table;

/// A reporter's last accepted report over each set of resources it
/// reported: key = [`report_row_key`], value = [`StoredReport`]. A
/// resource's latest status is in the row of the last report that named it.
pub const LATEST_REPORT: Table = Table::new("report-latest");
/// Last accepted sequence per reporter: key = `<key id>/<agent>`, postcard u64.
pub const REPORTER_SEQ: Table = Table::new("report-seq");
/// Earlier layout, still read at start: latest status per resource (key =
/// canonical identifier text).
pub const STATUS: Table = Table::new("status");
/// Sets of resources per reporter remembered to empty superseded rows.
pub const SETS_TRACKED: usize = 8;

/// A digest of a sorted set of identifiers (blake3, first 8 bytes).
pub fn set_hash(sorted_ids: &[String]) -> u64 {
    let mut h = blake3::Hasher::new();
    for id in sorted_ids {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let bytes = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(bytes.as_bytes().get(..8).unwrap_or(&[0u8; 8]));
    u64::from_be_bytes(first)
}

/// The row of `reporter`'s last report over the set `set`:
/// `<key id>/<agent>#<set hash, 16 hex digits>`.
pub fn report_row_key(reporter: &str, set: u64) -> Vec<u8> {
    format!("{reporter}#{set:016x}").into_bytes()
}

/// A reporter's last accepted report, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReport {
    pub seq: u64,
    /// Node-wide acceptance order: of two reports in one second, the later.
    pub order: u64,
    pub interval_secs: u32,
    /// Node time (Unix seconds) the report was accepted.
    pub reported_at: u64,
    pub agent: String,
    /// Key id (hex) of the provider key that signed it.
    pub key: String,
    pub resources: Vec<StoredStatus>,
}

/// One resource's figures in a [`StoredReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredStatus {
    /// Canonical identifier text.
    pub id: String,
    pub units_available: i64,
    pub units_in_use: i64,
    pub health: Health,
    pub utilization: Option<f64>,
}

impl StoredReport {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<StoredReport> {
        postcard::from_bytes(bytes).ok()
    }

    /// The report without its resources.
    pub fn header(&self) -> StoredReport {
        StoredReport {
            seq: self.seq,
            order: self.order,
            interval_secs: self.interval_secs,
            reported_at: self.reported_at,
            agent: self.agent.clone(),
            key: self.key.clone(),
            resources: Vec::new(),
        }
    }

    /// Each resource's status as this report set it.
    pub fn statuses(&self) -> impl Iterator<Item = (&str, Status)> + '_ {
        self.resources.iter().map(|r| {
            (
                r.id.as_str(),
                Status {
                    units_available: r.units_available,
                    units_in_use: r.units_in_use,
                    health: r.health,
                    utilization: r.utilization,
                    interval_secs: self.interval_secs,
                    reported_at: self.reported_at,
                    agent: self.agent.clone(),
                    seq: self.seq,
                    key: self.key.clone(),
                },
            )
        })
    }
}

/// Intervals without a report before a resource is `stale`.
pub const STALE_AFTER: u64 = 3;
/// Intervals without a report before a resource is `unknown`.
pub const UNKNOWN_AFTER: u64 = 4;

/// How current a resource's status is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Freshness {
    Fresh = 0,
    Stale = 1,
    Unknown = 2,
}

impl Freshness {
    pub const ALL: [Freshness; 3] = [Freshness::Fresh, Freshness::Stale, Freshness::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::Unknown => "unknown",
        }
    }
}

/// One resource's latest reported status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub units_available: i64,
    pub units_in_use: i64,
    pub health: Health,
    pub utilization: Option<f64>,
    pub interval_secs: u32,
    /// Node time (Unix seconds) the report was accepted.
    pub reported_at: u64,
    pub agent: String,
    pub seq: u64,
    /// Key id (hex) of the provider key that signed the report.
    pub key: String,
}

impl Status {
    /// The row value.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Status> {
        postcard::from_bytes(bytes).ok()
    }

    /// Freshness at `now`.
    pub fn freshness(&self, now: u64) -> Freshness {
        let age = now.saturating_sub(self.reported_at);
        let interval = u64::from(self.interval_secs.max(1));
        if age >= UNKNOWN_AFTER * interval {
            Freshness::Unknown
        } else if age >= STALE_AFTER * interval {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// When the freshness next changes, if it still will.
    pub fn next_change(&self, now: u64) -> Option<u64> {
        let interval = u64::from(self.interval_secs.max(1));
        match self.freshness(now) {
            Freshness::Fresh => Some(self.reported_at + STALE_AFTER * interval),
            Freshness::Stale => Some(self.reported_at + UNKNOWN_AFTER * interval),
            Freshness::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_after_three_intervals_unknown_after_four() {
        let s = Status {
            units_available: 1,
            units_in_use: 0,
            health: Health::Ok,
            utilization: None,
            interval_secs: 10,
            reported_at: 1000,
            agent: "a".into(),
            seq: 1,
            key: "k".into(),
        };
        assert_eq!(s.freshness(1029), Freshness::Fresh);
        assert_eq!(s.next_change(1029), Some(1030));
        assert_eq!(s.freshness(1030), Freshness::Stale);
        assert_eq!(s.next_change(1030), Some(1040));
        assert_eq!(s.freshness(1039), Freshness::Stale);
        assert_eq!(s.freshness(1040), Freshness::Unknown);
        assert_eq!(s.next_change(1040), None);
        assert_eq!(Status::decode(&s.encode()), Some(s));
    }
}
