//! The HTTP API (axum): signed registration and lifecycle of identifiers,
//! and reads in native and Handle.Net JSON (DESIGN §3–4).
//!
//! Every mutation passes [`auth`] (RFC 9421 signature, RFC 9530 digest,
//! time window, known key, and who may sign what) and then goes through
//! the registry, which signs, commits durably together with the request's
//! nonce, updates the hot tier, and only then returns: a `201` is an
//! acknowledged write. Checking a request and signing its record is CPU
//! work of some 100 µs done in the handler; the durable commit is awaited
//! (the store's writer completes it), so no thread is parked per request.
//! Reads that touch the store run on the blocking pool.
//! Every failure is an [`ApiError`] whose [`error::Code`] decides the
//! status: a 4xx/5xx with `{"error", "reason"}`.
//!
//! This file is the router. The handlers live with their resource:
//! [`providers`], [`identifiers`], [`delegations`], [`handles`] (Handle.Net
//! reads), [`node`] (health, metrics, `/v1/node`), [`backup`] (the
//! admin's copy of the whole store), [`risk`] (the admin's risk
//! assessment) and [`page`] (the situation page a
//! browser opens at `/situation`); [`state`] is what
//! they share, [`respond`] how their work becomes an answer, [`body`] the
//! request bodies, [`client`] the signing client that sends those same
//! bodies. The routes are listed once in [`ROUTES`]; `schema/openapi.yaml`
//! describes the same set and a test holds the two together.

pub mod auth;
pub mod backup;
pub mod batch;
pub mod body;
pub mod client;
mod delegations;
pub mod error;
mod events;
pub mod handles;
pub mod httpsig;
mod identifiers;
pub mod limits;
mod log;
pub mod node;
pub mod page;
mod providers;
mod quality;
mod reports;
pub mod respond;
mod risk;
mod select;
mod server;
mod situation;
pub mod state;
mod transactions;

use std::sync::Arc;

use axum::Router;
use axum::routing::{delete, get, post};

pub use self::error::{ApiError, Code};
pub use self::server::{HttpServer, SHUTDOWN_GRACE};
pub use self::state::ApiState;

/// Every route: method and path, as in `schema/openapi.yaml`.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/node"),
    ("POST", "/v1/providers"),
    ("POST", "/v1/identifiers"),
    ("GET", "/v1/identifiers"),
    ("GET", "/v1/identifiers/{prefix}/{suffix}"),
    ("PUT", "/v1/identifiers/{prefix}/{suffix}"),
    ("DELETE", "/v1/identifiers/{prefix}/{suffix}"),
    ("POST", "/v1/identifiers/{prefix}/{suffix}/key"),
    ("POST", "/v1/admin/providers/{prefix}/{suffix}/approve"),
    ("POST", "/v1/users"),
    ("POST", "/v1/admin/users/{prefix}/{suffix}/approve"),
    ("POST", "/v1/transactions"),
    ("GET", "/v1/transactions"),
    ("GET", "/v1/transactions/{prefix}/{suffix}"),
    ("POST", "/v1/transactions/{prefix}/{suffix}/{step}"),
    ("POST", "/v1/select"),
    ("POST", "/v1/schedule"),
    ("GET", "/v1/delegations"),
    ("POST", "/v1/admin/delegations"),
    ("DELETE", "/v1/admin/delegations/{prefix}"),
    ("POST", "/v1/delegations/{prefix}/key"),
    ("POST", "/v1/admin/key"),
    ("GET", "/v1/delegations/{prefix}/chain"),
    ("GET", "/api/handles/{prefix}/{suffix}"),
    ("POST", "/v1/reports"),
    ("GET", "/v1/situation"),
    ("GET", "/v1/situation/history"),
    ("GET", "/v1/situation/summary"),
    ("GET", "/v1/quality"),
    ("GET", "/situation"),
    ("GET", "/situation/assets/{file}"),
    ("GET", "/v1/events"),
    ("POST", "/v1/events"),
    ("POST", "/v1/admin/backup"),
    ("GET", "/v1/admin/risk"),
    ("GET", "/log/checkpoint"),
    ("GET", "/log/tile/{path}"),
    ("GET", "/v1/log"),
    ("GET", "/v1/log/proof/{prefix}/{suffix}"),
    ("GET", "/v1/log/consistency"),
    ("POST", "/witness/add-checkpoint"),
];

/// The router over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(node::healthz))
        .route("/metrics", get(node::node_metrics))
        .route("/v1/node", get(node::info))
        .route("/v1/providers", post(providers::register))
        .route("/v1/users", post(providers::register_user))
        .route(
            "/v1/admin/users/{prefix}/{suffix}/approve",
            post(providers::approve_user),
        )
        .route(
            "/v1/transactions",
            post(transactions::propose).get(transactions::list),
        )
        .route(
            "/v1/transactions/{prefix}/{suffix}",
            get(transactions::read),
        )
        .route(
            "/v1/transactions/{prefix}/{suffix}/{step}",
            post(transactions::step),
        )
        .route(
            "/v1/identifiers",
            post(identifiers::register).get(identifiers::list),
        )
        .route("/v1/select", post(select::select))
        .route("/v1/schedule", post(select::schedule))
        .route("/v1/reports", post(reports::submit))
        .route("/v1/situation", get(situation::read))
        .route("/v1/situation/history", get(situation::history))
        .route("/v1/situation/summary", get(situation::summary))
        .route("/v1/quality", get(quality::read))
        .route("/situation", get(page::situation))
        .route("/situation/assets/{file}", get(page::asset))
        .route(
            "/v1/identifiers/{prefix}/{suffix}",
            get(identifiers::read)
                .put(identifiers::update)
                .delete(identifiers::withdraw),
        )
        .route(
            "/v1/identifiers/{prefix}/{suffix}/key",
            post(identifiers::replace_key),
        )
        .route(
            "/v1/admin/providers/{prefix}/{suffix}/approve",
            post(providers::approve),
        )
        .route("/v1/delegations", get(delegations::list))
        .route("/v1/delegations/{prefix}/key", post(delegations::roll))
        .route("/v1/admin/key", post(node::replace_admin_key))
        .route("/v1/delegations/{prefix}/chain", get(delegations::chain))
        .route("/v1/admin/delegations", post(delegations::create))
        .route(
            "/v1/admin/delegations/{prefix}",
            delete(delegations::revoke),
        )
        .route("/api/handles/{prefix}/{suffix}", get(handles::read))
        .route("/v1/events", get(events::list).post(events::forwarded))
        .route("/v1/admin/backup", post(backup::backup))
        .route("/v1/admin/risk", get(risk::read))
        .route("/log/checkpoint", get(log::checkpoint))
        .route("/log/tile/{*path}", get(log::tile))
        .route("/v1/log", get(log::info))
        .route("/v1/log/proof/{prefix}/{suffix}", get(log::proof))
        .route("/v1/log/consistency", get(log::consistency))
        .route("/witness/add-checkpoint", post(log::add_checkpoint))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

/// The answer for a path no route matches (node and gateway).
pub async fn no_route() -> ApiError {
    ApiError::new(Code::NoRoute, "no such endpoint; see schema/openapi.yaml")
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        Code::MethodNotAllowed,
        "this endpoint does not take that method",
    )
}
