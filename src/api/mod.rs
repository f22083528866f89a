//! The HTTP API (axum): signed registration and lifecycle of identifiers,
//! and reads in native and Handle.Net JSON (DESIGN §3–4).
//!
//! Every mutation passes [`auth::verify`] (RFC 9421 signature, RFC 9530
//! digest, time window, known key) and then goes through the registry,
//! which signs, commits durably together with the request's nonce, updates
//! the hot tier, and only then returns: a `201` is an acknowledged write.
//! Checking a request and signing its record is CPU work of some 100 µs
//! done in the handler; the durable commit is awaited (the store's writer
//! completes it), so no thread is parked per request. Reads that touch
//! the store run on the blocking pool.
//! Every failure is an [`ApiError`]: a 4xx/5xx with `{"error", "reason"}`.
//! The routes are listed once in [`ROUTES`]; `schema/openapi.yaml`
//! describes the same set and a test holds the two together.

pub mod auth;
pub mod batch;
pub mod body;
pub mod client;
pub mod error;
pub mod handles;
pub mod httpsig;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::json;

use self::auth::SignedBody;
use self::body::{DelegationRequest, IssueRequest, ProviderRequest, UpdateRequest};
pub use self::error::ApiError;
use crate::config::Policy;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::keys::{KeyId, PublicKey};
use crate::ident::record::{RecordStatus, SignedRecord};
use crate::registry::{Change, NewRecord, ProviderKey, Registry};
use crate::telemetry;

/// Every route: method and path, as in `schema/openapi.yaml`.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/node"),
    ("POST", "/v1/providers"),
    ("POST", "/v1/identifiers"),
    ("GET", "/v1/identifiers/{prefix}/{suffix}"),
    ("PUT", "/v1/identifiers/{prefix}/{suffix}"),
    ("DELETE", "/v1/identifiers/{prefix}/{suffix}"),
    ("POST", "/v1/admin/providers/{prefix}/{suffix}/approve"),
    ("GET", "/v1/delegations"),
    ("POST", "/v1/admin/delegations"),
    ("DELETE", "/v1/admin/delegations/{prefix}"),
    ("GET", "/api/handles/{prefix}/{suffix}"),
];

/// What the handlers share.
pub struct ApiState {
    pub registry: Arc<Registry>,
    pub policy: Policy,
    pub signature_window_secs: u64,
    pub max_body_bytes: usize,
    /// The node admin's key: approves providers; not the record-signing key.
    pub admin_key: PublicKey,
    pub default_ttl: u32,
    /// Where DNS is served, for `/v1/node`.
    pub dns_addr: Option<SocketAddr>,
    /// The delegations from the root to this node (root first).
    pub chain: Vec<SignedRecord>,
    /// One provider registration at a time, so a key registers once.
    provider_lock: tokio::sync::Mutex<()>,
    /// Verifies concurrent request signatures together.
    batcher: Arc<batch::Batcher>,
}

impl ApiState {
    pub fn new(
        registry: Arc<Registry>,
        policy: Policy,
        signature_window_secs: u64,
        max_body_bytes: usize,
        admin_key: PublicKey,
        default_ttl: u32,
    ) -> ApiState {
        ApiState {
            registry,
            policy,
            signature_window_secs,
            max_body_bytes,
            admin_key,
            default_ttl,
            dns_addr: None,
            chain: Vec::new(),
            provider_lock: tokio::sync::Mutex::new(()),
            batcher: Arc::new(batch::Batcher::default()),
        }
    }
}

type Shared = State<Arc<ApiState>>;

/// The router over `state`.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/node", get(node_info))
        .route("/v1/providers", post(register_provider))
        .route("/v1/identifiers", post(register_resource))
        .route(
            "/v1/identifiers/{prefix}/{suffix}",
            get(read_identifier)
                .put(update_identifier)
                .delete(withdraw_identifier),
        )
        .route(
            "/v1/admin/providers/{prefix}/{suffix}/approve",
            post(approve_provider),
        )
        .route("/v1/delegations", get(list_delegations))
        .route("/v1/admin/delegations", post(create_delegation))
        .route("/v1/admin/delegations/{prefix}", delete(revoke_delegation))
        .route("/api/handles/{prefix}/{suffix}", get(read_handle))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state)
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        "no such endpoint; see schema/openapi.yaml",
    )
}

async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Runs a mutation to completion even if the client goes away, counts its
/// outcome and answers with the record (`201` + `Location` when it issued
/// one). Once a write is queued the commit will happen, so what follows the
/// commit (publishing to the hot tier and the provider-key index, releasing
/// the provider lock) must happen too: hyper drops a handler whose
/// connection closes, but not a spawned task.
async fn mutation(
    state: &ApiState,
    kind: &'static str,
    issues: bool,
    work: impl std::future::Future<Output = Result<SignedRecord, ApiError>> + Send + 'static,
) -> Result<Response, ApiError> {
    let signed = run_mutation(kind, work).await?;
    Ok(if issues {
        created(state, &signed)
    } else {
        Json(record_json(state, &signed)).into_response()
    })
}

/// Runs a mutation in its own task (so it completes if the client goes
/// away) and counts its outcome.
async fn run_mutation(
    kind: &'static str,
    work: impl std::future::Future<Output = Result<SignedRecord, ApiError>> + Send + 'static,
) -> Result<SignedRecord, ApiError> {
    let result = match tokio::spawn(work).await {
        Ok(r) => r,
        Err(e) => Err(ApiError::internal(format!("request task failed: {e}"))),
    };
    count(kind, &result);
    result
}

/// Runs registry work off the reactor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

fn not_found(id: &Identifier) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no record for {id}"),
    )
}

fn path_identifier(prefix: &str, suffix: &str) -> Result<Identifier, ApiError> {
    Identifier::parse(&format!("{prefix}/{suffix}"))
        .map_err(|e| ApiError::bad_request("invalid_identifier", e.to_string()))
}

/// A registry result as the API answers it: a duplicate that the store's
/// writer refused (it raced the original) is told what the original wrote.
fn answered(
    s: &ApiState,
    nonce_key: &str,
    result: Result<SignedRecord, crate::registry::RegistryError>,
) -> Result<SignedRecord, ApiError> {
    result.map_err(|e| {
        let err = ApiError::from(e);
        if err.code != "replayed_nonce" {
            return err;
        }
        ApiError::replayed(s.registry.store().nonce_answer(nonce_key).ok().flatten())
    })
}

/// Counts a mutation's outcome.
fn count(kind: &'static str, result: &Result<SignedRecord, ApiError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.code,
    };
    metrics::counter!(telemetry::REGISTRATIONS, "kind" => kind, "outcome" => outcome).increment(1);
}

/// The native JSON of a record, with the key that signed it.
fn record_json(state: &ApiState, signed: &SignedRecord) -> serde_json::Value {
    let mut v = crate::ident::record::to_json(signed);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "issuer_public_key".into(),
            state.registry.key().public().to_public_pem().into(),
        );
    }
    v
}

fn location(id: &Identifier) -> String {
    format!("/v1/identifiers/{id}")
}

fn created(state: &ApiState, signed: &SignedRecord) -> Response {
    created_with(signed, record_json(state, signed))
}

/// `201` with `Location` and `body`.
fn created_with(signed: &SignedRecord, body: serde_json::Value) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location(&signed.record().identifier)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// A key id as cpid writes it: exactly 32 lower-case hex digits.
fn parse_key_id(keyid: &str) -> Option<KeyId> {
    let canonical = keyid.len() == 32
        && keyid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(keyid.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyId(out))
}

/// The registered provider that owns `keyid`, whatever its status.
fn provider_of(state: &ApiState, keyid: &str) -> Result<ProviderKey, ApiError> {
    parse_key_id(keyid)
        .and_then(|id| state.registry.provider_key(&id))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "unknown_key",
                format!("keyid {keyid:?} is not the key of a registered provider"),
            )
        })
}

async fn register_provider(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    let s = state.clone();
    mutation(
        &state,
        "provider",
        true,
        async move { provider(&s, &req).await },
    )
    .await
}

async fn provider(s: &ApiState, req: &SignedBody) -> Result<SignedRecord, ApiError> {
    let body: ProviderRequest = body::parse_json(&req.body)?;
    let (key, values) = body.into_values(crate::clock::system_now())?;
    let own_id = key.key_id().to_string();
    let verified = auth::verify(s, req, |keyid| {
        if keyid == own_id {
            Ok(key)
        } else {
            Err(ApiError::unauthorized(
                "unknown_key",
                format!("a registration is signed by the key it registers: keyid must be {own_id}"),
            ))
        }
    })
    .await?;
    let _one = s.provider_lock.lock().await;
    if let Some(existing) = s.registry.provider_key(&key.key_id()) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_registered",
            format!("this key already belongs to provider {}", existing.provider),
        ));
    }
    let status = match s.policy {
        Policy::Open => RecordStatus::Active,
        Policy::Review => RecordStatus::Pending,
    };
    let new = NewRecord {
        prefix: None,
        class: Class::Pv,
        owner: None,
        values,
        status,
    };
    let key = verified.nonce.key.clone();
    answered(
        s,
        &key,
        s.registry.issue_async(new, Some(verified.nonce)).await,
    )
}

async fn register_resource(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    let s = state.clone();
    mutation(
        &state,
        "resource",
        true,
        async move { resource(&s, &req).await },
    )
    .await
}

/// Verifies a request signed by an active provider; returns the provider.
async fn verify_provider(
    s: &ApiState,
    req: &SignedBody,
) -> Result<(Identifier, auth::Verified), ApiError> {
    let mut provider = None;
    let verified = auth::verify(s, req, |keyid| {
        let p = provider_of(s, keyid)?;
        let key = p.key;
        provider = Some(p);
        Ok(key)
    })
    .await?;
    let p = provider.ok_or_else(|| ApiError::internal("no provider after verification"))?;
    // Only a verified request learns the provider's status.
    if p.status != RecordStatus::Active {
        return Err(ApiError::forbidden(
            "inactive_key",
            format!(
                "provider {} is {}; it cannot act until it is active",
                p.provider,
                p.status.as_str()
            ),
        ));
    }
    Ok((p.provider, verified))
}

async fn resource(s: &ApiState, req: &SignedBody) -> Result<SignedRecord, ApiError> {
    let (owner, verified) = verify_provider(s, req).await?;
    let body: IssueRequest = body::parse_json(&req.body)?;
    let class = body::resource_class(&body.class)?;
    let values = body::values(body.values, crate::clock::system_now())?;
    let new = NewRecord {
        prefix: None,
        class,
        owner: Some(owner),
        values,
        status: RecordStatus::Active,
    };
    let key = verified.nonce.key.clone();
    answered(
        s,
        &key,
        s.registry.issue_async(new, Some(verified.nonce)).await,
    )
}

/// Verifies an owner's request on an existing record and applies `change`.
async fn owner_change(
    s: &ApiState,
    id: Identifier,
    req: &SignedBody,
    change: impl FnOnce(&SignedBody) -> Result<Change, ApiError>,
) -> Result<SignedRecord, ApiError> {
    let (provider, verified) = verify_provider(s, req).await?;
    let change = change(req)?;
    let current = s.registry.get(&id)?.ok_or_else(|| not_found(&id))?;
    if current.record().owner.as_ref() != Some(&provider) {
        return Err(ApiError::forbidden(
            "not_owner",
            format!("{id} is not owned by the signing provider"),
        ));
    }
    let key = verified.nonce.key.clone();
    let result = s
        .registry
        .change_async(&id, change, Some(verified.nonce))
        .await;
    answered(s, &key, result)
}

async fn update_identifier(
    State(state): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let id = path_identifier(&prefix, &suffix)?;
    let s = state.clone();
    let work = async move {
        owner_change(&s, id, &req, |req| {
            let body: UpdateRequest = body::parse_json(&req.body)?;
            Ok(Change::Values(body::values(
                body.values,
                crate::clock::system_now(),
            )?))
        })
        .await
    };
    mutation(&state, "update", false, work).await
}

async fn withdraw_identifier(
    State(state): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let id = path_identifier(&prefix, &suffix)?;
    let s = state.clone();
    let work = async move { owner_change(&s, id, &req, |_| Ok(Change::Withdraw)).await };
    mutation(&state, "withdraw", false, work).await
}

async fn approve_provider(
    State(state): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let id = path_identifier(&prefix, &suffix)?;
    let s = state.clone();
    mutation(&state, "approve", false, async move {
        approve(&s, id, &req).await
    })
    .await
}

async fn approve(s: &ApiState, id: Identifier, req: &SignedBody) -> Result<SignedRecord, ApiError> {
    let verified = verify_admin(s, req, "approves providers").await?;
    if id.class() != Class::Pv {
        return Err(ApiError::unprocessable(
            "not_a_provider",
            format!("{id} is not a provider (PV) identifier"),
        ));
    }
    let current = s.registry.get(&id)?.ok_or_else(|| not_found(&id))?;
    if current.record().status != RecordStatus::Pending {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_pending",
            format!("{id} is {}, not pending", current.record().status.as_str()),
        ));
    }
    let key = verified.nonce.key.clone();
    let active = Change::Status(RecordStatus::Active);
    let result = s
        .registry
        .change_async(&id, active, Some(verified.nonce))
        .await;
    answered(s, &key, result)
}

/// Verifies a request signed by the node's admin key.
async fn verify_admin(
    s: &ApiState,
    req: &SignedBody,
    what: &str,
) -> Result<auth::Verified, ApiError> {
    let admin_id = s.admin_key.key_id().to_string();
    let mut is_admin = false;
    let verified = auth::verify(s, req, |keyid| {
        if keyid == admin_id {
            is_admin = true;
            Ok(s.admin_key)
        } else {
            // A provider's key is verified, then refused as not the admin's.
            provider_of(s, keyid).map(|p| p.key)
        }
    })
    .await?;
    if !is_admin {
        return Err(ApiError::forbidden(
            "not_admin",
            format!("only the node's admin key {what}"),
        ));
    }
    Ok(verified)
}

async fn create_delegation(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    let s = state.clone();
    let work = async move {
        let verified = verify_admin(&s, &req, "delegates prefixes").await?;
        let body: DelegationRequest = body::parse_json(&req.body)?;
        let delegation = body.into_delegation(crate::clock::system_now())?;
        let key = verified.nonce.key.clone();
        let result = s.registry.delegate(&delegation, Some(verified.nonce)).await;
        answered(&s, &key, result)
    };
    let signed = run_mutation("delegate", work).await?;
    let mut chain = state.chain.clone();
    chain.push(signed.clone());
    let mut body = record_json(&state, &signed);
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "chain".into(),
            serde_json::to_value(crate::ident::delegation::ChainFile::from_records(&chain).chain)
                .unwrap_or_default(),
        );
    }
    Ok(created_with(&signed, body))
}

async fn revoke_delegation(
    State(state): Shared,
    Path(prefix): Path<String>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let prefix = crate::ident::identifier::Prefix::parse(&prefix)
        .map_err(|e| ApiError::bad_request("invalid_prefix", e.to_string()))?;
    let s = state.clone();
    mutation(&state, "revoke", false, async move {
        let verified = verify_admin(&s, &req, "revokes delegations").await?;
        if s.registry.delegation(&prefix).is_none() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_delegated",
                format!("{prefix} has no delegation in force at this node"),
            ));
        }
        let key = verified.nonce.key.clone();
        let result = s.registry.revoke(&prefix, Some(verified.nonce)).await;
        answered(&s, &key, result)
    })
    .await
}

async fn list_delegations(State(state): Shared) -> Json<serde_json::Value> {
    let now = crate::clock::system_now();
    let items: Vec<serde_json::Value> = state
        .registry
        .delegations()
        .iter()
        .filter_map(|signed| {
            let d = crate::ident::delegation::Delegation::from_record(signed).ok()?;
            let status = if d.revoked.is_some() {
                "revoked"
            } else if now > d.not_after {
                "expired"
            } else if now < d.not_before {
                "not_yet_valid"
            } else {
                "active"
            };
            Some(json!({
                "prefix": d.prefix,
                "status": status,
                "identifier": signed.record().identifier.to_string(),
                "version": signed.record().version,
                "delegation": d,
                "record": crate::ident::keys::to_hex(signed.as_bytes()),
            }))
        })
        .collect();
    Json(json!({ "prefix": state.registry.prefix().to_string(), "delegations": items }))
}

async fn read_identifier(
    State(state): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = path_identifier(&prefix, &suffix)?;
    let s = state.clone();
    let found = blocking(move || s.registry.get(&id)?.ok_or_else(|| not_found(&id))).await?;
    let mut body = record_json(&state, &found);
    if found.record().status == RecordStatus::Withdrawn {
        if let Some(obj) = body.as_object_mut() {
            obj.insert("error".into(), "withdrawn".into());
            obj.insert(
                "reason".into(),
                format!(
                    "{} is withdrawn; its code is never reissued",
                    found.record().identifier
                )
                .into(),
            );
        }
        return Ok((StatusCode::GONE, Json(body)).into_response());
    }
    Ok(Json(body).into_response())
}

async fn read_handle(
    State(state): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let handle = format!("{prefix}/{suffix}");
    let error = |status: StatusCode, message: String| {
        (
            status,
            Json(json!({ "responseCode": 2, "handle": handle, "message": message })),
        )
            .into_response()
    };
    let filter = match handles::Filter::parse(query.as_deref()) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let id = match Identifier::parse(&handle) {
        Ok(id) => id,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let s = state.clone();
    let lookup = blocking(move || Ok(s.registry.get(&id)?)).await;
    match lookup {
        Ok(Some(r)) if r.record().status == RecordStatus::Active => {
            let (body, _) = handles::handle_json(&r, &filter, state.default_ttl);
            Json(body).into_response()
        }
        Ok(_) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "responseCode": 100, "handle": handle })),
        )
            .into_response(),
        Err(e) => error(e.status, e.reason),
    }
}

async fn node_info(State(state): Shared) -> Json<serde_json::Value> {
    let reg = &state.registry;
    let public = reg.key().public();
    Json(json!({
        "prefix": reg.prefix().to_string(),
        "apex": reg.apex().as_str(),
        "zone": reg.zone().apex().to_string(),
        "key_id": public.key_id().to_string(),
        "public_key": public.to_public_pem(),
        "admin_key_id": state.admin_key.key_id().to_string(),
        "policy": state.policy.as_str(),
        "signature_window_secs": state.signature_window_secs,
        "dns": state.dns_addr.map(|a| a.to_string()),
        "chain": crate::ident::delegation::ChainFile::from_records(&state.chain).chain,
    }))
}

async fn healthz(State(state): Shared) -> Response {
    let s = state.clone();
    match blocking(move || Ok(s.registry.store().len()?)).await {
        Ok(records) => Json(json!({ "status": "ok", "records": records })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e.code, "reason": e.reason })),
        )
            .into_response(),
    }
}

async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        telemetry::render(),
    )
        .into_response()
}

/// How long shutdown waits for open HTTP connections.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// A running HTTP listener.
pub struct HttpServer {
    local: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves the API. Must be called inside a tokio runtime.
    pub async fn start(state: Arc<ApiState>, addr: SocketAddr) -> std::io::Result<HttpServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(HttpServer {
            local,
            stop: Some(stop),
            task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Stops accepting and lets requests in flight finish (mutations run
    /// to completion in their own tasks regardless); connections still open
    /// after [`SHUTDOWN_GRACE`] are cut.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(joined) => joined.map_err(std::io::Error::other)?,
            Err(_) => {
                tracing::warn!(
                    "HTTP connections still open after {SHUTDOWN_GRACE:?}; closing them"
                );
                self.task.abort();
                Ok(())
            }
        }
    }
}
