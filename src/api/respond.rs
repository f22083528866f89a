//! How a handler's work becomes an answer: mutations run to completion in
//! their own task and are counted, registry results are mapped (a replay
//! learns what the original request wrote), and records are answered in
//! native JSON with the key that signed them.

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Code};
use super::state::ApiState;
use crate::events::Kind;
use crate::ident::identifier::Identifier;
use crate::ident::record::SignedRecord;
use crate::registry::RegistryError;
use crate::telemetry;

/// Runs a mutation to completion even if the client goes away, counts its
/// outcome and answers with the record (`201` + `Location` when it issued
/// one). Once a write is queued the commit will happen, so what follows the
/// commit (publishing to the hot tier and the provider-key index, releasing
/// the provider lock) must happen too: hyper drops a handler whose
/// connection closes, but not a spawned task.
pub(super) async fn mutation<F, W>(
    state: Arc<ApiState>,
    kind: &'static str,
    issues: bool,
    work: W,
) -> Result<Response, ApiError>
where
    W: FnOnce(Arc<ApiState>) -> F,
    F: std::future::Future<Output = Result<SignedRecord, ApiError>> + Send + 'static,
{
    let signed = run_mutation(kind, work(state.clone())).await?;
    let mut body = record_json(&state, &signed);
    with_log_index(&state, &signed, &mut body);
    Ok(if issues {
        created_with(&signed, body)
    } else {
        Json(body).into_response()
    })
}

/// Adds `log_index`, the leaf of the transparency log that holds this
/// version, to a write's answer (`GET /v1/log/proof/…` proves it).
pub(super) fn with_log_index(
    state: &ApiState,
    signed: &SignedRecord,
    body: &mut serde_json::Value,
) {
    let rec = signed.record();
    // A just-committed leaf is in the log's memory: no store read.
    if let (Ok(Some(index)), Some(obj)) = (
        state.log.index_of(&rec.identifier, rec.version),
        body.as_object_mut(),
    ) {
        obj.insert("log_index".into(), index.into());
    }
}

/// Runs a mutation in its own task (so it completes if the client goes
/// away) and counts its outcome.
pub(super) async fn run_mutation(
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
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))?
}

/// A registry result as the API answers it: a duplicate that the store's
/// writer refused (it raced the original) is told what the original wrote.
pub(super) fn answered(
    s: &ApiState,
    nonce_key: &str,
    result: Result<SignedRecord, RegistryError>,
) -> Result<SignedRecord, ApiError> {
    result.map_err(|e| {
        let err = ApiError::from(e);
        if err.code != Code::ReplayedNonce {
            return err;
        }
        replayed(s, nonce_key)
    })
}

/// The answer to a request whose nonce a concurrent copy consumed first,
/// reported as a replay by the signing key.
fn replayed(s: &ApiState, nonce_key: &str) -> ApiError {
    let key_id = nonce_key.split('/').next().unwrap_or_default();
    s.event(
        Kind::Replay,
        key_id,
        nonce_key,
        "nonce consumed by a concurrent copy",
    );
    ApiError::replayed(s.registry.store().nonce_answer(nonce_key).ok().flatten())
}

/// [`answered`] for the steps of other systems whose errors wrap the
/// registry's (a transaction step).
pub(super) fn answered_with<E: Into<ApiError>>(
    s: &ApiState,
    nonce_key: &str,
    result: Result<SignedRecord, E>,
) -> Result<SignedRecord, ApiError> {
    result.map_err(|e| {
        let err: ApiError = e.into();
        if err.code != Code::ReplayedNonce {
            return err;
        }
        replayed(s, nonce_key)
    })
}

/// Counts a mutation's outcome.
fn count(kind: &'static str, result: &Result<SignedRecord, ApiError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    };
    metrics::counter!(telemetry::REGISTRATIONS, "kind" => kind, "outcome" => outcome).increment(1);
}

/// The native JSON of a record, with the key that signed it.
pub(super) fn record_json(state: &ApiState, signed: &SignedRecord) -> serde_json::Value {
    let mut v = crate::ident::record::to_json(signed);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("issuer_public_key".into(), state.issuer_pem.clone().into());
    }
    v
}

fn location(id: &Identifier) -> String {
    format!("/v1/identifiers/{id}")
}

/// `201` with `Location` and `body`.
pub(super) fn created_with(signed: &SignedRecord, body: serde_json::Value) -> Response {
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location(&signed.record().identifier)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// The identifier named by a `{prefix}/{suffix}` path.
/// The identifier named by a `{prefix}/{suffix}` route, parsed once for
/// every handler (node and gateway); a bad one is a 400 `invalid_identifier`.
pub struct IdPath(pub Identifier);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<IdPath, ApiError> {
        let axum::extract::Path((prefix, suffix)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::new(Code::InvalidIdentifier, e.body_text()))?;
        Identifier::parse(&format!("{prefix}/{suffix}"))
            .map(IdPath)
            .map_err(|e| ApiError::new(Code::InvalidIdentifier, e.to_string()))
    }
}

pub(super) fn not_found(id: &Identifier) -> ApiError {
    ApiError::new(Code::NotFound, format!("no record for {id}"))
}
