//! The situation: `GET /v1/situation` (live totals, filtered by region,
//! class or model and grouped by any of them, with the coverage of the
//! province-level regions, for this node alone or with every node below
//! it), `GET /v1/situation/summary` (the signed summary a parent pulls) and
//! `GET /v1/situation/history`.

use axum::Json;
use axum::extract::{Query, State};

use super::error::{ApiError, Code};
use super::state::Shared;
use crate::capacity::history::View;
use crate::capacity::situation::{Situation, situation};
use crate::capacity::summary::SignedSummary;
use crate::capacity::totals::{Filter, GroupBy};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SituationQuery {
    region: Option<String>,
    class: Option<String>,
    model: Option<String>,
    /// Comma-separated subset of `region,class,model`; default all three.
    group_by: Option<String>,
    /// `federation` (default: with every node below this one) or `own`.
    scope: Option<String>,
}

/// A query string read into `T`, or a 400 `invalid_query` naming what is wrong.
pub(super) struct CheckedQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for CheckedQuery<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| CheckedQuery(q))
            .map_err(|e| ApiError::new(Code::InvalidQuery, e.body_text()))
    }
}

pub(super) async fn read(
    State(state): Shared,
    CheckedQuery(q): CheckedQuery<SituationQuery>,
) -> Result<Json<Situation>, ApiError> {
    let group = match &q.group_by {
        Some(g) => GroupBy::parse(g).map_err(|e| ApiError::new(Code::InvalidQuery, e))?,
        None => GroupBy::default(),
    };
    let filter = Filter {
        region: q.region,
        class: q.class.map(|c| c.to_ascii_uppercase()),
        model: q.model,
    };
    let federation = match q.scope.as_deref() {
        None | Some("federation") => true,
        Some("own") => false,
        Some(other) => {
            return Err(ApiError::new(
                Code::InvalidQuery,
                format!("scope {other:?} is not own or federation"),
            ));
        }
    };
    let capacity = &state.capacity;
    let now = capacity.clock().now();
    let rows = if federation {
        capacity.federation_rows()
    } else {
        capacity.rows()
    };
    let mut s = situation(&rows, now, &filter, group);
    if federation {
        s.scope = "federation";
    }
    s.children = capacity.rollup.nodes(now);
    Ok(Json(s))
}

/// `GET /v1/situation/summary`: this node's signed summary
/// (`schema/summary.md`), which its parent pulls.
pub(super) async fn summary(State(state): Shared) -> Result<Json<SignedSummary>, ApiError> {
    let registry = &state.registry;
    state
        .capacity
        .summary(registry.prefix(), registry.key())
        .map(Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    /// Minute points, newest last; default 60.
    minutes: Option<usize>,
    /// Hourly points; default 0.
    hours: Option<usize>,
    region: Option<String>,
}

/// `GET /v1/situation/history`: the totals' history and its anomalies.
pub(super) async fn history(
    State(state): Shared,
    CheckedQuery(q): CheckedQuery<HistoryQuery>,
) -> Result<Json<View>, ApiError> {
    let minutes = q.minutes.unwrap_or(60);
    let hours = q.hours.unwrap_or(0);
    if minutes > 525_600 || hours > 87_600 {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "minutes must be at most 525600 and hours at most 87600",
        ));
    }
    if let Some(r) = &q.region
        && !(r.len() == 2 && r.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ApiError::new(
            Code::InvalidQuery,
            "region is a two-digit GB/T 2260 province code",
        ));
    }
    let capacity = state.capacity.clone();
    let view =
        tokio::task::spawn_blocking(move || capacity.history(minutes, hours, q.region.as_deref()))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(view))
}
