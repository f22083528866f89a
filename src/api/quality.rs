//! Data quality: `GET /v1/quality[?provider=…]`, every finding with its
//! reason code, per provider with a score, and the counts per reason.

use axum::Json;
use axum::extract::State;

use super::error::{ApiError, Code};
use super::respond::blocking;
use super::situation::CheckedQuery;
use super::state::Shared;
use crate::capacity::QualityReport;
use crate::ident::identifier::Identifier;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QualityQuery {
    provider: Option<String>,
}

pub(super) async fn read(
    State(state): Shared,
    CheckedQuery(q): CheckedQuery<QualityQuery>,
) -> Result<Json<QualityReport>, ApiError> {
    let provider = q
        .provider
        .map(|p| {
            Identifier::parse(&p)
                .map_err(|e| ApiError::new(Code::InvalidQuery, format!("provider: {e}")))
        })
        .transpose()?;
    // A walk over every resource: off the reactor.
    let report = blocking(move || Ok(state.capacity.quality(provider.as_ref()))).await?;
    Ok(Json(report))
}
