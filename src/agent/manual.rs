//! A status report written by hand (`cpid report`): figures from the
//! command line, `ID=AVAIL/INUSE[:HEALTH]` per resource, sent once.
//!
//! Sequence numbers: with an explicit `seq` the report carries exactly
//! that number and nothing is remembered (the caller keeps count). Without
//! one, the number comes from a [`StateFile`] kept per key (the same file
//! format and the same rule as the agent: written before it is sent), and
//! a node that has seen a higher number (`409`, a lost state file) is
//! answered by moving past it and sending once more.

use super::{AgentError, Health, ReportBody, ResourceStatusBody, StateFile};
use crate::api::client::ApiClient;
use crate::capacity::report::{MAX_AGENT_LEN, is_agent_id};
use crate::ident::identifier::Identifier;
use crate::ident::keys::NodeKey;

/// A resource argument that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{arg:?}: {reason} (expected ID=AVAILABLE/IN_USE[:ok|degraded|down], e.g. 86.31.1005/IC-000001-4=6/2:ok)"
)]
pub struct StatusArgError {
    pub arg: String,
    pub reason: String,
}

/// Reads `ID=AVAIL/INUSE[:HEALTH]` (health `ok` when left out). Counts
/// may be negative: the node keeps such a figure out of its totals and
/// reports it in `/v1/quality`, which is what a test of that path wants.
pub fn parse_status(arg: &str) -> Result<ResourceStatusBody, StatusArgError> {
    let fail = |reason: String| StatusArgError {
        arg: arg.to_string(),
        reason,
    };
    let (id, figures) = arg
        .split_once('=')
        .ok_or_else(|| fail("no '=' between the identifier and the figures".into()))?;
    let id = Identifier::parse(id).map_err(|e| fail(format!("identifier {id:?}: {e}")))?;
    let (counts, health) = match figures.split_once(':') {
        Some((c, h)) => (c, Some(h)),
        None => (figures, None),
    };
    let health = match health {
        None | Some("ok") => Health::Ok,
        Some("degraded") => Health::Degraded,
        Some("down") => Health::Down,
        Some(other) => {
            return Err(fail(format!(
                "health {other:?} is not ok, degraded or down"
            )));
        }
    };
    let (available, in_use) = counts
        .split_once('/')
        .ok_or_else(|| fail("no '/' between units available and units in use".into()))?;
    let number = |what: &str, s: &str| {
        s.parse::<i64>()
            .map_err(|_| fail(format!("units {what} {s:?} is not a whole number")))
    };
    Ok(ResourceStatusBody {
        id: id.to_string(),
        units_available: number("available", available)?,
        units_in_use: number("in use", in_use)?,
        health,
        utilization: None,
    })
}

/// Why a hand report was not sent or not taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManualError {
    #[error(transparent)]
    Arg(#[from] StatusArgError),
    #[error("agent id {0:?} is not 1 to {MAX_AGENT_LEN} of letters, digits and . _ -")]
    AgentId(String),
    #[error("give at least one resource as ID=AVAILABLE/IN_USE[:HEALTH]")]
    NoResources,
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// Where the sequence number of a hand report comes from.
pub enum Sequence<'a> {
    /// Exactly this number; nothing remembered.
    Given(u64),
    /// The next number of the state file, past the node's on `409`.
    State(&'a mut StateFile),
}

/// A hand report the node holds.
#[derive(Debug, Clone)]
pub struct Sent {
    pub body: ReportBody,
    /// The node had already accepted this sequence number (a retry of a
    /// report whose answer was lost, or a repeated `--seq`): it kept the
    /// figures it took then, not these.
    pub earlier: bool,
}

/// Builds the report of `args` and sends it once; answers what the node
/// took. `now` (Unix seconds) is the floor when a `409` does not say the
/// node's number.
pub fn send(
    client: &ApiClient,
    key: &NodeKey,
    agent: &str,
    interval_secs: u32,
    args: &[String],
    seq: Sequence<'_>,
    now: u64,
) -> Result<Sent, ManualError> {
    if !is_agent_id(agent) {
        return Err(ManualError::AgentId(agent.to_string()));
    }
    let resources = args
        .iter()
        .map(|a| parse_status(a))
        .collect::<Result<Vec<_>, _>>()?;
    if resources.is_empty() {
        return Err(ManualError::NoResources);
    }
    let mut body = ReportBody {
        agent: agent.to_string(),
        seq: 0,
        interval_secs,
        resources,
    };
    // `at` is absent when the node answered that it already holds the number.
    let post = |body: &ReportBody| -> Result<bool, AgentError> {
        Ok(client.report(body, key)?.at.is_none())
    };
    match seq {
        Sequence::Given(n) => {
            body.seq = n;
            let earlier = post(&body)?;
            Ok(Sent { body, earlier })
        }
        Sequence::State(state) => {
            body.seq = state.next_seq(agent).map_err(AgentError::from)?;
            match post(&body) {
                Err(AgentError::Refused {
                    status: 409,
                    last_seq,
                    ..
                }) => {
                    let refused = body.seq;
                    body.seq = state
                        .next_seq_above(agent, last_seq.unwrap_or(now))
                        .map_err(AgentError::from)?;
                    tracing::warn!(
                        agent,
                        refused,
                        node_seq = ?last_seq,
                        seq = body.seq,
                        "the node has seen a higher sequence number; sending again past it"
                    );
                    let earlier = post(&body)?;
                    Ok(Sent { body, earlier })
                }
                other => Ok(Sent {
                    earlier: other?,
                    body,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_argument_reads_with_or_without_health() {
        let s = parse_status("86.31.1005/IC-000001-4=6/2").unwrap();
        assert_eq!(s.id, "86.31.1005/IC-000001-4");
        assert_eq!((s.units_available, s.units_in_use), (6, 2));
        assert_eq!(s.health, Health::Ok);
        let s = parse_status("86.31.1005/IC-000001-4=0/8:down").unwrap();
        assert_eq!(s.health, Health::Down);
        assert_eq!(
            parse_status("86.31.1005/IC-000001-4=-1/0")
                .unwrap()
                .units_available,
            -1
        );
    }

    #[test]
    fn a_bad_status_argument_says_what_is_wrong() {
        for (arg, says) in [
            ("86.31.1005/IC-000001-4", "no '='"),
            ("86.31.1005/IC-000001-5=6/2", "identifier"),
            ("86.31.1005/IC-000001-4=6", "no '/'"),
            (
                "86.31.1005/IC-000001-4=six/2",
                "\"six\" is not a whole number",
            ),
            ("86.31.1005/IC-000001-4=6/2:fine", "\"fine\" is not ok"),
        ] {
            let e = parse_status(arg).unwrap_err().to_string();
            assert!(e.contains(says), "{arg}: {e}");
        }
    }
}
