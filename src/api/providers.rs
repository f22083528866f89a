//! Providers: `POST /v1/providers` (a registration signed by the key it
//! registers; active at once under the open policy, pending under review)
//! and `POST /v1/admin/providers/{prefix}/{suffix}/approve` (the admin
//! makes a pending provider active).

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
        provider(&s, &req).await
    })
    .await
}

async fn provider(s: &ApiState, req: &SignedBody) -> Result<SignedRecord, ApiError> {
    let body: ProviderRequest = body::parse_json(&req.body)?;
    let (key, values) = body.into_values(s.registry.clock().now())?;
    let verified = auth::verify_self_signed(s, req, key).await?;
    let _one = s.provider_lock.lock().await;
    if let Some(existing) = s.registry.provider_key(&key.key_id()) {
        return Err(ApiError::new(
            Code::KeyRegistered,
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

pub(super) async fn approve(
    State(state): Shared,
    IdPath(id): IdPath,
    req: SignedBody,
) -> Result<Response, ApiError> {
    mutation(state, "approve", false, |s| async move {
        approve_pending(&s, id, &req).await
    })
    .await
}

async fn approve_pending(
    s: &ApiState,
    id: Identifier,
    req: &SignedBody,
) -> Result<SignedRecord, ApiError> {
    let verified = auth::verify_admin(s, req, "approves providers").await?;
    if id.class() != Class::Pv {
        return Err(ApiError::new(
            Code::NotAProvider,
            format!("{id} is not a provider (PV) identifier"),
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
