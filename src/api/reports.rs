//! Status reports: `POST /v1/reports`, signed (RFC 9421) by an active
//! provider, covering many of its resources at once. A report is not a
//! record: it is checked here (signature, body, ownership, sequence) and
//! kept by [`crate::capacity`] as the latest status per resource.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::auth::{self, SignedBody};
use super::error::ApiError;
use super::state::Shared;
use crate::capacity::report::Report;
use crate::telemetry;

pub(super) async fn submit(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    // Its own task: once the batch is queued the report commits, and the
    // in-memory state must follow even if the client goes away.
    let outcome = tokio::spawn(async move {
        let (provider, verified) = auth::verify_provider(&state, &req).await?;
        let report = Report::parse(&req.body, state.capacity.limits())?;
        let accepted = state
            .capacity
            .report(&provider, &verified.key.key_id(), report)
            .await?;
        Ok::<_, ApiError>(accepted)
    })
    .await
    .unwrap_or_else(|e| Err(ApiError::internal(format!("report task failed: {e}"))));
    let label = match &outcome {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    };
    metrics::counter!(telemetry::REPORTS, "outcome" => label).increment(1);
    let accepted = outcome?;
    metrics::counter!(telemetry::REPORTED_RESOURCES).increment(accepted.resources as u64);
    Ok(Json(accepted).into_response())
}
