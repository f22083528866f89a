//! The gateway's HTTP reader: the same read shapes as a node
//! (`/api/handles/{prefix}/{suffix}` in Handle.Net JSON,
//! `/v1/identifiers/{prefix}/{suffix}` native), answered through the
//! gateway's verified caches, plus `/v1/gateway` counters, `/metrics` and
//! `/healthz`. Failures are the node API's: the same [`Code`]s, statuses and
//! bodies (`api::error`), and the same Handle.Net error body
//! ([`HandleError`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::Gateway;
use crate::api::error::{ApiError, Code};
use crate::api::handles::{self, HandleError};
use crate::api::respond::IdPath;
use crate::dns::wire::{WireName, rtype};
use crate::ident::identifier::Identifier;
use crate::ident::record::SignedRecord;

type Shared = State<Arc<Gateway>>;

/// Largest request body the reader takes: it has only `GET` routes.
pub const MAX_BODY_BYTES: usize = 1024;

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
        .route("/metrics", get(crate::api::node::metrics_text))
        .route("/v1/gateway", get(stats))
        .route("/v1/identifiers/{prefix}/{suffix}", get(native))
        .route("/api/handles/{prefix}/{suffix}", get(handle))
        .fallback(|| async { ApiError::new(Code::NoRoute, "no such endpoint") })
        .with_state(gateway)
}

/// The verified record for `id`, if it exists and resolves.
async fn lookup(g: &Arc<Gateway>, id: &Identifier) -> Result<Option<SignedRecord>, ApiError> {
    g.record(id).await.map_err(|e| {
        let code = if e.is_verification() {
            Code::VerificationFailed
        } else {
            Code::UpstreamUnavailable
        };
        ApiError::new(code, e.to_string())
    })
}

async fn native(State(g): Shared, IdPath(id): IdPath) -> Result<Response, ApiError> {
    match lookup(&g, &id).await? {
        Some(r) => Ok(Json(crate::ident::record::to_json(&r)).into_response()),
        None => Err(ApiError::new(Code::NotFound, format!("no record for {id}"))),
    }
}

async fn handle(
    State(g): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let handle = format!("{prefix}/{suffix}");
    let (id, filter) = match handles::request(&handle, query.as_deref()) {
        Ok(r) => r,
        Err(e) => return e.into_response(&handle),
    };
    match lookup(&g, &id).await {
        Ok(Some(r)) => {
            let default_ttl = issuer_default_ttl(&g, &id);
            Json(handles::handle_json(&r, &filter, default_ttl).0).into_response()
        }
        Ok(None) => HandleError::NotFound.into_response(&handle),
        Err(e) => HandleError::Failed(e).into_response(&handle),
    }
}

/// The issuing node's default TTL, for the values that carry none, so the
/// gateway shows the `ttl`s the node's own Handle read shows.
///
/// The default is not in the signed record; what travels is the TTL the
/// node put on the record's DNS answer, `min(value ttls, default)` with a
/// value of ttl 0 counting as the default (`dns::mapping::rrsets`). The
/// gateway kept that TTL in its cache entry for the name (just filled by
/// [`Gateway::record`]). When it is below every explicit value ttl it *is*
/// the default; when an explicit value ttl is at or below it, the default
/// is only known to be at least that, and the TTL is the best bound the
/// gateway has. Without a cache entry (ttl 0, or evicted meanwhile) the
/// gateway's own ceiling is all it knows.
fn issuer_default_ttl(g: &Gateway, id: &Identifier) -> u32 {
    g.config()
        .apex()
        .ok()
        .and_then(|apex| {
            let name = WireName::parse(&id.to_dns_name(&apex)).ok()?;
            let key: super::cache::Key = (name.as_bytes().into(), rtype::CPREC);
            g.l1().get(&key).map(|e| e.ttl)
        })
        .unwrap_or(g.config().cache.max_ttl)
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
