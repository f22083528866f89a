//! `GET /v1/admin/risk`: the node's risk assessment ([`crate::doctor`]),
//! for its admin only: what in its configuration and state is unsafe,
//! each finding with a severity and a fix. The same report `cpid doctor`
//! prints for a stopped node, made here from the serving node's memory.

use axum::Json;
use axum::extract::State;
use serde_json::Value;

use super::auth::{self, SignedBody};
use super::error::ApiError;
use super::respond::blocking;
use super::state::Shared;

/// `GET /v1/admin/risk`, signed by the admin key: the report as JSON
/// (`node`, `basis`, `assessed_at`, `counts`, `findings`).
pub(super) async fn read(State(state): Shared, req: SignedBody) -> Result<Json<Value>, ApiError> {
    auth::verify_admin(&state, &req, "reads the risk assessment").await?;
    let s = state.clone();
    // Reads key files, the chain file, the advisory database and the
    // log's uncovered leaves: off the reactor.
    let report = blocking(move || {
        let now = s.registry.clock().now();
        let st = crate::doctor::State::of_serving(&s.registry, &s.log)
            .map_err(|e| ApiError::internal(format!("risk assessment: {e}")))?;
        Ok(crate::doctor::assess(&s.config, Some(&st), now))
    })
    .await?;
    Ok(Json(report.to_json()))
}
