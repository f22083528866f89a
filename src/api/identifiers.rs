//! Identifiers: `POST /v1/identifiers` (an active provider registers a
//! resource), `GET`, `PUT` and `DELETE /v1/identifiers/{prefix}/{suffix}`
//! (read; the owner updates or withdraws). A withdrawn record still reads,
//! as `410 Gone` with its last version: its code is never reissued.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::auth::{self, SignedBody};
use super::body::{self, IssueRequest, UpdateRequest};
use super::error::{ApiError, Code};
use super::respond::{IdPath, answered, blocking, mutation, not_found, record_json};
use super::state::{ApiState, Shared};
use crate::ident::identifier::Identifier;
use crate::ident::record::{RecordStatus, SignedRecord};
use crate::registry::{Change, NewRecord};

pub(super) async fn register(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    mutation(state, "resource", true, |s| async move {
        resource(&s, &req).await
    })
    .await
}

async fn resource(s: &ApiState, req: &SignedBody) -> Result<SignedRecord, ApiError> {
    let (owner, verified) = auth::verify_provider(s, req).await?;
    let body: IssueRequest = body::parse_json(&req.body)?;
    let class = body::resource_class(&body.class)?;
    let values = body::values(body.values, class, s.registry.clock().now())?;
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
    let (provider, verified) = auth::verify_provider(s, req).await?;
    let change = change(req)?;
    let current = s.registry.get(&id)?.ok_or_else(|| not_found(&id))?;
    if current.record().owner.as_ref() != Some(&provider) {
        return Err(ApiError::new(
            Code::NotOwner,
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

pub(super) async fn update(
    State(state): Shared,
    IdPath(id): IdPath,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let class = id.class();
    let work = move |s: Arc<ApiState>| async move {
        owner_change(&s, id, &req, |req| {
            let body: UpdateRequest = body::parse_json(&req.body)?;
            Ok(Change::Values(body::values(
                body.values,
                class,
                s.registry.clock().now(),
            )?))
        })
        .await
    };
    mutation(state, "update", false, work).await
}

pub(super) async fn withdraw(
    State(state): Shared,
    IdPath(id): IdPath,
    req: SignedBody,
) -> Result<Response, ApiError> {
    mutation(state, "withdraw", false, |s| async move {
        owner_change(&s, id, &req, |_| Ok(Change::Withdraw)).await
    })
    .await
}

pub(super) async fn read(State(state): Shared, IdPath(id): IdPath) -> Result<Response, ApiError> {
    let s = state.clone();
    let found = blocking(move || s.registry.get(&id)?.ok_or_else(|| not_found(&id))).await?;
    let mut body = record_json(&state, &found);
    if found.record().status == RecordStatus::Withdrawn {
        // The record and the error together: the last version stays readable.
        if let Some(obj) = body.as_object_mut() {
            obj.insert("error".into(), Code::Withdrawn.as_str().into());
            obj.insert(
                "reason".into(),
                format!(
                    "{} is withdrawn; its code is never reissued",
                    found.record().identifier
                )
                .into(),
            );
        }
        return Ok((Code::Withdrawn.status(), Json(body)).into_response());
    }
    Ok(Json(body).into_response())
}
