//! The node itself: `GET /healthz` (the store answers), `GET /metrics`
//! (Prometheus text), `GET /v1/node` (prefix, zone, keys, policy and
//! the delegation chain a client needs to verify this node's records) and
//! `POST /v1/admin/key` (the admin replaces its own key).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::{self, SignedBody};
use super::body;
use super::error::{ApiError, Code};
use super::respond::blocking;
use super::state::Shared;
use crate::telemetry;

pub(super) async fn info(State(state): Shared) -> Json<serde_json::Value> {
    let reg = &state.registry;
    let public = reg.key().public();
    Json(json!({
        "prefix": reg.prefix().to_string(),
        "apex": reg.apex().as_str(),
        "zone": reg.zone().apex().to_string(),
        "key_id": public.key_id().to_string(),
        "public_key": public.to_public_pem(),
        "admin_key_id": state.admin.get().key_id().to_string(),
        "policy": state.policy.as_str(),
        "signature_window_secs": state.signature_window_secs,
        "dns": state.dns_addr.map(|a| a.to_string()),
        "chain": crate::ident::delegation::ChainFile::from_records(&state.chain.get()).chain,
    }))
}

/// `200` while the store answers; otherwise `503` naming why (a health
/// check's answer is "unavailable" whatever the failure was).
pub(super) async fn healthz(State(state): Shared) -> Response {
    let s = state.clone();
    match blocking(move || Ok(s.registry.store().len()?)).await {
        Ok(records) => Json(json!({ "status": "ok", "records": records })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e.code.as_str(), "reason": e.reason })),
        )
            .into_response(),
    }
}

/// Prometheus text exposition (shared with the gateway's reader).
/// The node's `/metrics`: the process's counters and the live capacity
/// gauges.
pub(super) async fn node_metrics(State(state): Shared) -> Response {
    let mut text = telemetry::render();
    crate::capacity::situation::exposition(&state.capacity.rows(), &mut text);
    crate::capacity::situation::quality_exposition(&state.capacity.finding_counts(), &mut text);
    let now = state.capacity.clock().now();
    state.capacity.rollup.exposition(now, &mut text);
    text.push_str(
        "# HELP cpid_transactions Transactions held by this node, by state.\n# TYPE cpid_transactions gauge\n",
    );
    for (tx_state, n) in state.trades.counts() {
        text.push_str(&format!(
            "cpid_transactions{{state=\"{}\"}} {n}\n",
            tx_state.as_str()
        ));
    }
    let (resources, lines) = state.selector.len();
    text.push_str(&format!(
        "# HELP cpid_select_indexed Resources and dedicated lines in the selection index.\n# TYPE cpid_select_indexed gauge\ncpid_select_indexed{{kind=\"resource\"}} {resources}\ncpid_select_indexed{{kind=\"line\"}} {lines}\n"
    ));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

pub async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        telemetry::render(),
    )
        .into_response()
}

/// `POST /v1/admin/key`: the admin key in force signs the new one in. The
/// new key is stored in the same commit that consumes the request's nonce
/// and wins over the configured key from then on, also after a restart.
pub(super) async fn replace_admin_key(
    State(state): Shared,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let verified = auth::verify_admin(&state, &req, "replaces the admin key").await?;
    let body: body::KeyRequest = body::parse_json(&req.body)?;
    let new = body.key()?;
    if new.key_id() == state.registry.key().public().key_id() {
        return Err(ApiError::new(
            Code::InvalidValue,
            "the admin key must not be the record-signing node key",
        ));
    }
    let old = state.admin.get();
    if new.key_id() == old.key_id() {
        return Err(ApiError::new(
            Code::InvalidValue,
            "public_key is the admin key in force already",
        ));
    }
    let plan = crate::registry::Plan {
        rows: vec![crate::store::Row {
            table: crate::node::ADMIN_KEY,
            key: crate::node::ADMIN_KEY_ROW.to_vec(),
            value: new.to_bytes().to_vec(),
        }],
        nonce: Some(verified.nonce),
        ..Default::default()
    };
    state.registry.commit_async(plan).await?;
    state.admin.set(new);
    tracing::info!(admin = %new.key_id(), previous = %old.key_id(), "admin key replaced");
    Ok(Json(json!({
        "admin_key_id": new.key_id().to_string(),
        "previous_key_id": old.key_id().to_string(),
    }))
    .into_response())
}
