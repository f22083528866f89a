//! Parties: providers (`POST /v1/providers`) and buyers (`POST
//! /v1/users`), each a registration signed by the key it registers; active
//! at once under the open policy, pending under review, when the admin
//! approves (`POST /v1/admin/providers/{prefix}/{suffix}/approve`,
//! `/v1/admin/users/…/approve`).

use axum::extract::State;
use axum::response::Response;

use super::auth::{self, SignedBody};
use super::body::{self, ProviderRequest};
use super::error::{ApiError, Code};
use super::respond::{IdPath, answered, mutation, not_found};
use super::state::{ApiState, Shared};
use crate::config::Policy;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::record::{RecordStatus, SignedRecord};
use crate::registry::{Change, NewRecord};

pub(super) async fn register(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    mutation(state, "provider", true, |s| async move {
        party(&s, &req, Class::Pv).await
    })
    .await
}

/// `POST /v1/users`: a buyer, registered like a provider (same body).
pub(super) async fn register_user(
    State(state): Shared,
    req: SignedBody,
) -> Result<Response, ApiError> {
    mutation(state, "user", true, |s| async move {
        party(&s, &req, Class::Us).await
    })
    .await
}

/// A self-signed registration of a provider or a buyer: one key, one party.
async fn party(s: &ApiState, req: &SignedBody, class: Class) -> Result<SignedRecord, ApiError> {
    let body: ProviderRequest = body::parse_json(&req.body)?;
    let (key, values) = body.into_values(s.registry.clock().now())?;
    let verified = auth::verify_self_signed(s, req, key).await?;
    let _one = s.provider_lock.lock().await;
    if let Some(existing) = s.registry.provider_key(&key.key_id()) {
        return Err(ApiError::new(
            Code::KeyRegistered,
            format!("this key already belongs to {}", existing.provider),
        ));
    }
    let status = match s.policy {
        Policy::Open => RecordStatus::Active,
        Policy::Review => RecordStatus::Pending,
    };
    let new = NewRecord {
        prefix: None,
        class,
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

pub(super) async fn approve(
    State(state): Shared,
    IdPath(id): IdPath,
    req: SignedBody,
) -> Result<Response, ApiError> {
    mutation(state, "approve", false, |s| async move {
        approve_pending(&s, id, &req, Class::Pv).await
    })
    .await
}

pub(super) async fn approve_user(
    State(state): Shared,
    IdPath(id): IdPath,
    req: SignedBody,
) -> Result<Response, ApiError> {
    mutation(state, "approve", false, |s| async move {
        approve_pending(&s, id, &req, Class::Us).await
    })
    .await
}

async fn approve_pending(
    s: &ApiState,
    id: Identifier,
    req: &SignedBody,
    class: Class,
) -> Result<SignedRecord, ApiError> {
    let verified = auth::verify_admin(s, req, "approves providers and buyers").await?;
    if id.class() != class {
        let what = if class == Class::Pv {
            "provider"
        } else {
            "buyer"
        };
        return Err(ApiError::new(
            Code::NotAProvider,
            format!("{id} is not a {what} ({}) identifier", class.code()),
        ));
    }
    let current = s.registry.get(&id)?.ok_or_else(|| not_found(&id))?;
    if current.record().status != RecordStatus::Pending {
        return Err(ApiError::new(
            Code::NotPending,
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
