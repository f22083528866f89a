//! Delegations: `GET /v1/delegations` (every delegation this node made and
//! its state), `POST /v1/admin/delegations` (the admin delegates a child
//! prefix; the answer carries the child's chain, root first) and
//! `DELETE /v1/admin/delegations/{prefix}` (the admin revokes one).

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;

use super::auth::{self, SignedBody};
use super::body::{self, DelegationRequest};
use super::error::{ApiError, Code};
use super::respond::{answered, created_with, mutation, record_json, run_mutation};
use super::state::Shared;
use crate::ident::delegation::{ChainFile, Delegation};
use crate::ident::identifier::Prefix;

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
    let mut chain = state.chain.clone();
    chain.push(signed.clone());
    let mut body = record_json(&state, &signed);
    if let Some(obj) = body.as_object_mut() {
        obj.insert(
            "chain".into(),
            serde_json::to_value(ChainFile::from_records(&chain).chain).unwrap_or_default(),
        );
    }
    Ok(created_with(&signed, body))
}

pub(super) async fn revoke(
    State(state): Shared,
    Path(prefix): Path<String>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let prefix =
        Prefix::parse(&prefix).map_err(|e| ApiError::new(Code::InvalidPrefix, e.to_string()))?;
    mutation(state, "revoke", false, |s| async move {
        let verified = auth::verify_admin(&s, &req, "revokes delegations").await?;
        if s.registry.delegation(&prefix).is_none() {
            return Err(ApiError::new(
                Code::NotDelegated,
                format!("{prefix} has no delegation in force at this node"),
            ));
        }
        let key = verified.nonce.key.clone();
        let result = s.registry.revoke(&prefix, Some(verified.nonce)).await;
        answered(&s, &key, result)
    })
    .await
}

pub(super) async fn list(State(state): Shared) -> Json<serde_json::Value> {
    let now = state.registry.clock().now();
    let items: Vec<serde_json::Value> = state
        .registry
        .delegations()
        .iter()
        .filter_map(|signed| {
            let d = Delegation::from_record(signed).ok()?;
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
