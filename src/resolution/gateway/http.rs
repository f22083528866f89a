//! The gateway's HTTP reader: the same read shapes as a node
//! (`/api/handles/{prefix}/{suffix}` in Handle.Net JSON,
//! `/v1/identifiers/{prefix}/{suffix}` native), answered through the
//! gateway's verified caches, plus `/v1/gateway` counters, `/metrics` and
//! `/healthz`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Gateway;
use crate::api::handles;
use crate::ident::identifier::Identifier;

type Shared = State<Arc<Gateway>>;

/// Every route of the gateway's reader.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/gateway"),
    ("GET", "/v1/identifiers/{prefix}/{suffix}"),
    ("GET", "/api/handles/{prefix}/{suffix}"),
];

pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics_text))
        .route("/v1/gateway", get(stats))
        .route("/v1/identifiers/{prefix}/{suffix}", get(native))
        .route("/api/handles/{prefix}/{suffix}", get(handle))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "no_route", "reason": "no such endpoint" })),
            )
        })
        .with_state(gateway)
}

fn error(status: StatusCode, code: &str, reason: String) -> Response {
    (status, Json(json!({ "error": code, "reason": reason }))).into_response()
}

async fn lookup(
    g: &Arc<Gateway>,
    prefix: &str,
    suffix: &str,
) -> Result<Option<crate::ident::record::SignedRecord>, Response> {
    let id = Identifier::parse(&format!("{prefix}/{suffix}"))
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_identifier", e.to_string()))?;
    g.record(&id).await.map_err(|e| {
        let code = if e.is_verification() {
            "verification_failed"
        } else {
            "upstream_unavailable"
        };
        error(StatusCode::BAD_GATEWAY, code, e.to_string())
    })
}

async fn native(State(g): Shared, Path((prefix, suffix)): Path<(String, String)>) -> Response {
    match lookup(&g, &prefix, &suffix).await {
        Ok(Some(r)) => Json(crate::ident::record::to_json(&r)).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no record for {prefix}/{suffix}"),
        ),
        Err(r) => r,
    }
}

async fn handle(
    State(g): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let handle = format!("{prefix}/{suffix}");
    let filter = match handles::Filter::parse(query.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "responseCode": 2, "handle": handle, "message": e })),
            )
                .into_response();
        }
    };
    match lookup(&g, &prefix, &suffix).await {
        Ok(Some(r)) => {
            let ttl = g.config().cache.max_ttl;
            Json(handles::handle_json(&r, &filter, ttl).0).into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "responseCode": 100, "handle": handle })),
        )
            .into_response(),
        Err(r) => r,
    }
}

async fn stats(State(g): Shared) -> Json<serde_json::Value> {
    let s = &g.stats;
    let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    Json(json!({
        "l1": {
            "entries": g.l1().len(),
            "bytes": g.l1().bytes(),
            "max_entries": g.l1().max_entries(),
            "max_bytes": g.l1().max_bytes(),
            "hits": n(&s.l1_hits),
            "misses": n(&s.l1_misses),
        },
        "l2": { "hits": n(&s.l2_hits), "misses": n(&s.l2_misses) },
        "upstream_queries": g.upstream_queries(),
        "resolutions": n(&s.resolutions),
        "prefetches": n(&s.prefetches),
        "stale_answers": n(&s.stale),
        "verification_failures": n(&s.verification_failures),
        "delegations": g.resolver().zones().iter().map(|(z, exp)| json!({
            "prefix": z.prefix.to_string(),
            "key_id": z.key.key_id().to_string(),
            "servers": z.servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "expires": exp,
        })).collect::<Vec<_>>(),
    }))
}

async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        crate::telemetry::render(),
    )
        .into_response()
}
