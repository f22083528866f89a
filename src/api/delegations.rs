//! Delegations: `GET /v1/delegations` (every delegation this node made and
//! its state), `POST /v1/admin/delegations` (the admin delegates a child
//! prefix; the answer carries the child's chain, root first),
//! `DELETE /v1/admin/delegations/{prefix}` (the admin revokes one),
//! `POST /v1/delegations/{prefix}/key` (a child rolls its node key, signed
//! by its key in force or by the admin) and
//! `GET /v1/delegations/{prefix}/chain` (the child's chain as it stands,
//! which children fetch to follow a rollover above them).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;

use super::auth::{self, SignedBody};
use super::body::{self, DelegationRequest, RollRequest};
use super::error::{ApiError, Code};
use super::respond::{answered, created_with, mutation, record_json, run_mutation};
use super::state::{ApiState, Shared};
use crate::ident::delegation::{ChainFile, Delegation};
use crate::ident::identifier::Prefix;
use crate::ident::record::SignedRecord;

pub(super) async fn create(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    let s = state.clone();
    let work = async move {
        let verified = auth::verify_admin(&s, &req, "delegates prefixes").await?;
        let body: DelegationRequest = body::parse_json(&req.body)?;
        let delegation = body.into_delegation(s.registry.clock().now())?;
        let key = verified.nonce.key.clone();
        let result = s.registry.delegate(&delegation, Some(verified.nonce)).await;
        answered(&s, &key, result)
    };
    let signed = run_mutation("delegate", work).await?;
    let body = with_chain(&state, &signed);
    Ok(created_with(&signed, body))
}

/// A new delegation record as JSON with `chain`: the child's chain, root
/// first (this node's own chain and the record), which the child is
/// started with.
fn with_chain(state: &ApiState, signed: &SignedRecord) -> serde_json::Value {
    let mut chain = state.chain.get();
    chain.push(signed.clone());
    let mut body = record_json(state, signed);
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "chain".into(),
            serde_json::to_value(ChainFile::from_records(&chain).chain).unwrap_or_default(),
        );
    }
    body
}

/// The child prefix of a path, or `400 invalid_prefix`.
fn child_prefix(text: &str) -> Result<Prefix, ApiError> {
    Prefix::parse(text).map_err(|e| ApiError::new(Code::InvalidPrefix, e.to_string()))
}

/// `404 not_delegated` for a prefix with no delegation in force here.
fn not_delegated(prefix: &Prefix) -> ApiError {
    ApiError::new(
        Code::NotDelegated,
        format!("{prefix} has no delegation in force at this node"),
    )
}

pub(super) async fn revoke(
    State(state): Shared,
    Path(prefix): Path<String>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let prefix = child_prefix(&prefix)?;
    mutation(state, "revoke", false, |s| async move {
        let verified = auth::verify_admin(&s, &req, "revokes delegations").await?;
        if s.registry.delegation(&prefix).is_none() {
            return Err(not_delegated(&prefix));
        }
        let key = verified.nonce.key.clone();
        let result = s.registry.revoke(&prefix, Some(verified.nonce)).await;
        answered(&s, &key, result)
    })
    .await
}

/// `POST /v1/delegations/{prefix}/key`: the child's new node key takes
/// effect now; the old one stays in force for the overlap.
pub(super) async fn roll(
    State(state): Shared,
    Path(prefix): Path<String>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let prefix = child_prefix(&prefix)?;
    let s = state.clone();
    let p = prefix.clone();
    let work = async move {
        let in_force = s.registry.delegations_in_force(&p);
        if in_force.is_empty() {
            return Err(not_delegated(&p));
        }
        let admin_id = s.admin.get().key_id().to_string();
        let verified = auth::verify(&s, &req, |keyid| {
            if keyid == admin_id {
                return Ok(s.admin.get());
            }
            in_force
                .iter()
                .filter_map(|(_, d)| d.public_key().ok())
                .find(|k| k.key_id().to_string() == keyid)
                .ok_or_else(|| {
                    ApiError::new(
                        Code::UnknownKey,
                        format!(
                            "keyid {keyid:?} is neither {p}'s node key in force nor this node's admin key"
                        ),
                    )
                })
        })
        .await?;
        let body: RollRequest = body::parse_json(&req.body)?;
        let (key, overlap) = body.checked()?;
        let hex = crate::ident::keys::to_hex(&key.to_bytes());
        let nonce_key = verified.nonce.key.clone();
        let result = s
            .registry
            .roll(&p, &hex, overlap, Some(verified.nonce))
            .await;
        answered(&s, &nonce_key, result)
    };
    let signed = run_mutation("roll", work).await?;
    let mut body = with_chain(&state, &signed);
    if let Some(obj) = body.as_object_mut() {
        let retiring = state
            .registry
            .delegations_in_force(&prefix)
            .into_iter()
            .skip(1)
            .map(|(r, d)| json!({"identifier": r.record().identifier.to_string(), "key": d.key, "not_after": d.not_after}))
            .collect::<Vec<_>>();
        obj.insert("retiring".into(), retiring.into());
    }
    Ok(created_with(&signed, body))
}

/// `GET /v1/delegations/{prefix}/chain`: this node's chain and its newest
/// delegation in force for `prefix`, root first.
pub(super) async fn chain(
    State(state): Shared,
    Path(prefix): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let prefix = child_prefix(&prefix)?;
    let (newest, _) = state
        .registry
        .delegation(&prefix)
        .ok_or_else(|| not_delegated(&prefix))?;
    let mut chain = state.chain.get();
    chain.push(newest);
    Ok(Json(json!({
        "prefix": prefix.to_string(),
        "chain": ChainFile::from_records(&chain).chain,
    })))
}

pub(super) async fn list(State(state): Shared) -> Json<serde_json::Value> {
    let now = state.registry.clock().now();
    let items: Vec<serde_json::Value> = state
        .registry
        .delegations()
        .iter()
        .filter_map(|signed| {
            let d = Delegation::from_record(signed).ok()?;
            let newest = state
                .registry
                .delegation(&d.prefix().ok()?)
                .map(|(r, _)| r.record().identifier.clone());
            let status = if d.revoked.is_some() {
                "revoked"
            } else if newest.is_some_and(|n| n != signed.record().identifier) {
                // The old key's delegation during a rollover's overlap.
                "retiring"
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
