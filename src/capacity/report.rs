//! The body of a signed status report (`POST /v1/reports`): one reporter
//! (the signing key's agent), one sequence number, many resources.
//!
//! Parsing is strict (unknown fields are refused) and every refusal names
//! the field by JSON pointer, as descriptors do. Counts are signed on the
//! wire on purpose: a negative count is a data-quality finding, not a
//! syntax error, so the provider learns about it from `/v1/quality` while
//! the figure is kept out of the totals.

use serde::{Deserialize, Serialize};

use crate::ident::identifier::Identifier;

/// Longest agent id.
pub const MAX_AGENT_LEN: usize = 64;

/// A resource's health as its reporter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Degraded,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }

    /// `Degraded` when `degraded`, else `Ok`.
    pub fn degraded_if(degraded: bool) -> Health {
        if degraded {
            Health::Degraded
        } else {
            Health::Ok
        }
    }
}

/// A status report as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The reporter's id, unique per signing key: 1–64 of `A-Z a-z 0-9 . _ -`.
    pub agent: String,
    /// Grows with every report of (signing key, agent); starts at 1.
    pub seq: u64,
    /// How often this agent reports; bounds the freshness of what it says.
    pub interval_secs: u32,
    pub resources: Vec<ResourceStatusBody>,
}

/// One resource's live figures, in the descriptor's `unit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceStatusBody {
    /// The resource's identifier (`86.31.1005/IC-000001-4`).
    pub id: String,
    pub units_available: i64,
    pub units_in_use: i64,
    pub health: Health,
    /// Share of the resource busy, 0 to 1, when the reporter measures it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilization: Option<f64>,
}

/// A report the node will look at: parsed, within the limits, identifiers
/// read.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub agent: String,
    pub seq: u64,
    pub interval_secs: u32,
    pub resources: Vec<(Identifier, ResourceStatusBody)>,
}

/// What a node accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportLimits {
    pub min_interval_secs: u32,
    pub max_interval_secs: u32,
    pub max_resources: usize,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            min_interval_secs: 5,
            max_interval_secs: 3600,
            max_resources: 1000,
        }
    }
}

/// A refused report: the field (JSON pointer, `""` for the whole body) and
/// why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {reason}", if .pointer.is_empty() { "(body)" } else { .pointer.as_str() })]
pub struct ReportError {
    /// The body is not JSON at all (as opposed to JSON of the wrong shape).
    pub syntax: bool,
    pub pointer: String,
    pub reason: String,
}

fn refuse(pointer: impl Into<String>, reason: impl Into<String>) -> ReportError {
    ReportError {
        syntax: false,
        pointer: pointer.into(),
        reason: reason.into(),
    }
}

/// Agent id: 1–64 of ASCII letters, digits and `. _ -`.
pub fn is_agent_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_AGENT_LEN
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

impl Report {
    /// Reads and checks a report body.
    pub fn parse(body: &[u8], limits: &ReportLimits) -> Result<Report, ReportError> {
        // The path is tracked only to name the field of a refusal: a body
        // that parses plainly needs none (same parser, same verdict).
        if let Ok(parsed) = serde_json::from_slice::<ReportBody>(body) {
            return Report::check(parsed, limits);
        }
        let mut de = serde_json::Deserializer::from_slice(body);
        let parsed: ReportBody = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let syntax = !matches!(e.inner().classify(), serde_json::error::Category::Data);
            let mut pointer = String::new();
            for seg in e.path().iter() {
                use serde_path_to_error::Segment;
                pointer.push('/');
                match seg {
                    Segment::Seq { index } => pointer.push_str(&index.to_string()),
                    Segment::Map { key } => {
                        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"))
                    }
                    Segment::Enum { variant } => pointer.push_str(variant),
                    Segment::Unknown => pointer.push('-'),
                }
            }
            let message = e.inner().to_string();
            // Serde names a missing field in the message, not the path; an
            // unknown one is already the last segment.
            for lead in ["missing field `", "duplicate field `"] {
                if let Some(name) = message
                    .strip_prefix(lead)
                    .and_then(|r| r.split_once('`'))
                    .map(|(n, _)| n)
                {
                    pointer.push('/');
                    pointer.push_str(name);
                }
            }
            ReportError {
                syntax,
                pointer: if syntax { String::new() } else { pointer },
                reason: message,
            }
        })?;
        de.end().map_err(|e| ReportError {
            syntax: true,
            pointer: String::new(),
            reason: e.to_string(),
        })?;
        Report::check(parsed, limits)
    }

    fn check(body: ReportBody, limits: &ReportLimits) -> Result<Report, ReportError> {
        if !is_agent_id(&body.agent) {
            return Err(refuse(
                "/agent",
                format!("an agent id is 1 to {MAX_AGENT_LEN} of letters, digits and . _ -"),
            ));
        }
        if body.seq == 0 {
            return Err(refuse("/seq", "sequence numbers start at 1"));
        }
        if !(limits.min_interval_secs..=limits.max_interval_secs).contains(&body.interval_secs) {
            return Err(refuse(
                "/interval_secs",
                format!(
                    "this node takes reports every {} to {} seconds",
                    limits.min_interval_secs, limits.max_interval_secs
                ),
            ));
        }
        if body.resources.is_empty() || body.resources.len() > limits.max_resources {
            return Err(refuse(
                "/resources",
                format!("a report covers 1 to {} resources", limits.max_resources),
            ));
        }
        let mut resources = Vec::with_capacity(body.resources.len());
        let mut seen = std::collections::HashSet::with_capacity(body.resources.len());
        for (i, r) in body.resources.into_iter().enumerate() {
            let id = Identifier::parse(&r.id)
                .map_err(|e| refuse(format!("/resources/{i}/id"), e.to_string()))?;
            if !seen.insert(id.clone()) {
                return Err(refuse(
                    format!("/resources/{i}/id"),
                    format!("{id} is reported twice"),
                ));
            }
            if let Some(u) = r.utilization
                && !u.is_finite()
            {
                return Err(refuse(
                    format!("/resources/{i}/utilization"),
                    "must be a number",
                ));
            }
            resources.push((id, r));
        }
        Ok(Report {
            agent: body.agent,
            seq: body.seq,
            interval_secs: body.interval_secs,
            resources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"agent":"dc1","seq":3,"interval_secs":30,"resources":[
        {"id":"86.31.1005/IC-000001-4","units_available":6,"units_in_use":2,"health":"ok"}]}"#;

    fn pointer(body: &str) -> String {
        Report::parse(body.as_bytes(), &ReportLimits::default())
            .unwrap_err()
            .pointer
    }

    #[test]
    fn a_report_parses() {
        let r = Report::parse(OK.as_bytes(), &ReportLimits::default()).unwrap();
        assert_eq!(r.seq, 3);
        assert_eq!(r.resources[0].1.units_available, 6);
    }

    #[test]
    fn refusals_name_the_field() {
        assert_eq!(pointer(&OK.replace(r#""seq":3"#, r#""seq":0"#)), "/seq");
        assert_eq!(pointer(&OK.replace(r#""seq":3,"#, "")), "/seq");
        assert_eq!(pointer(&OK.replace("\"dc1\"", "\"a b\"")), "/agent");
        assert_eq!(
            pointer(&OK.replace(r#""interval_secs":30"#, r#""interval_secs":1"#)),
            "/interval_secs"
        );
        assert_eq!(
            pointer(&OK.replace(r#""ok""#, r#""fine""#)),
            "/resources/0/health"
        );
        assert_eq!(
            pointer(&OK.replace(r#""units_in_use":2"#, r#""units_in_use":"2""#)),
            "/resources/0/units_in_use"
        );
        assert_eq!(
            pointer(&OK.replace(r#""health":"ok""#, r#""health":"ok","gpu":1"#)),
            "/resources/0/gpu"
        );
        assert_eq!(
            pointer(&OK.replace("IC-000001-4", "IC-000001-5")),
            "/resources/0/id"
        );
        let twice = OK.replace(
            "}]}",
            r#"},{"id":"86.31.1005/IC-000001-4","units_available":1,"units_in_use":0,"health":"ok"}]}"#,
        );
        assert_eq!(pointer(&twice), "/resources/1/id");
        assert_eq!(pointer("{"), "");
        assert_eq!(pointer(&format!("{OK}x")), "");
    }

    #[test]
    fn negative_counts_parse_for_data_quality() {
        let r = Report::parse(
            OK.replace(r#""units_available":6"#, r#""units_available":-6"#)
                .as_bytes(),
            &ReportLimits::default(),
        )
        .unwrap();
        assert_eq!(r.resources[0].1.units_available, -6);
    }
}
