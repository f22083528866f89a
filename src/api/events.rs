//! `GET /v1/events`: the security-event feed, for the node's admin only.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::auth::{self, SignedBody};
use super::error::{ApiError, Code};
use super::respond::blocking;
use super::situation::CheckedQuery;
use super::state::Shared;
use crate::events::{Event, Kind};

/// Most events one page holds.
const MAX_PAGE: usize = 1000;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Only events after this sequence number (the `next` of a previous
    /// page); every kept one by default.
    after: Option<u64>,
    kind: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/events[?after=…][&kind=…][&limit=…]`, signed by the admin key:
/// coalesced events, oldest first. What was recorded since the last write
/// is written first, so a reader sees everything up to now.
pub(super) async fn list(
    State(state): Shared,
    CheckedQuery(q): CheckedQuery<EventsQuery>,
    req: SignedBody,
) -> Result<Json<Value>, ApiError> {
    auth::verify_admin(&state, &req, "reads security events").await?;
    let kind = q
        .kind
        .as_deref()
        .map(|k| {
            Kind::parse(k).ok_or_else(|| {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                ApiError::new(
                    Code::InvalidQuery,
                    format!("kind {k:?} is not one of {}", known.join(", ")),
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            format!("limit is 1 to {MAX_PAGE}"),
        ));
    }
    let feed = state.events.clone();
    let (events, dropped) = blocking(move || {
        feed.flush()?;
        Ok((feed.list(q.after, kind, limit)?, feed.dropped()))
    })
    .await?;
    let next = events.last().map(|e| e.seq).or(q.after);
    Ok(Json(json!({
        "events": events,
        "next": next,
        "dropped": dropped,
    })))
}

/// Most events one forwarded batch holds.
const MAX_FORWARDED: usize = 1000;
/// Longest source, subject or detail kept from a reporter.
const MAX_TEXT: usize = 512;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Forwarded {
    events: Vec<Event>,
}

/// `POST /v1/events`: a gateway forwards what it saw, coalesced, signed
/// by a key in `[events] reporter_keys`. `202` once recorded (written with
/// the node's own at the next flush).
pub(super) async fn forwarded(
    State(state): Shared,
    req: SignedBody,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let reporters = state.reporters.clone();
    let verified = auth::verify(&state, &req, |keyid| {
        reporters
            .iter()
            .find(|k| k.key_id().to_string() == keyid)
            .copied()
            .ok_or_else(|| {
                ApiError::new(
                    Code::UnknownKey,
                    format!("{keyid} is not a key in this node's [events] reporter_keys"),
                )
            })
    })
    .await?;
    let body: Forwarded = super::body::parse_json(&req.body)?;
    if body.events.len() > MAX_FORWARDED {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("at most {MAX_FORWARDED} events a batch"),
        ));
    }
    for (i, e) in body.events.iter().enumerate() {
        if e.count == 0
            || e.first > e.last
            || [&e.source, &e.subject, &e.detail]
                .iter()
                .any(|t| t.len() > MAX_TEXT)
        {
            return Err(ApiError::new(
                Code::InvalidValue,
                format!(
                    "/events/{i}: count at least 1, first <= last, texts at most {MAX_TEXT} bytes"
                ),
            ));
        }
    }
    let reporter = format!("reporter {}", verified.key.key_id());
    state.events.record_forwarded(&reporter, &body.events);
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({ "accepted": body.events.len() })),
    ))
}
