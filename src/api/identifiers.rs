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
use super::situation::CheckedQuery;
use super::state::{ApiState, Shared};
use crate::capacity::LiveStatus;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::record::{RecordStatus, SignedRecord};
use crate::ident::values::HS_PUBKEY_INDEX;
use crate::registry::{Change, NewRecord, is_private};

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
    let current = s
        .registry
        .get(&id)?
        .filter(|r| !is_private(r.record().identifier.class()))
        .ok_or_else(|| not_found(&id))?;
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

/// `POST /v1/identifiers/{id}/key`: a provider or buyer replaces its key.
/// Signed by its current key, or by the node's admin when that key is
/// lost; the record's HS_PUBKEY value becomes the new key in one commit
/// (version + 1, in the transparency log), and from then on the old key
/// is unknown here. A key another party holds is refused.
pub(super) async fn replace_key(
    State(state): Shared,
    IdPath(id): IdPath,
    req: SignedBody,
) -> Result<Response, ApiError> {
    mutation(state, "replace_key", false, move |s| async move {
        if !matches!(id.class(), Class::Pv | Class::Us) {
            return Err(ApiError::new(
                Code::ClassNotAllowed,
                format!("{id}: only a provider's (PV) or buyer's (US) key is replaced here"),
            ));
        }
        let (signer, verified) = auth::verify_party(&s, &req).await?;
        match &signer {
            auth::Signer::Admin => {}
            auth::Signer::Party(p) if *p == id => {}
            auth::Signer::Party(p) => {
                return Err(ApiError::new(
                    Code::NotOwner,
                    format!("{p} cannot replace the key of {id}: its own key or the admin's signs"),
                ));
            }
        }
        let body: body::KeyRequest = body::parse_json(&req.body)?;
        let new = body.key()?;
        if let Some(holder) = s.registry.provider_key(&new.key_id()) {
            return Err(ApiError::new(
                Code::KeyRegistered,
                format!("the new key is already {}'s", holder.provider),
            ));
        }
        let current = s.registry.get(&id)?.ok_or_else(|| not_found(&id))?;
        let now = s.registry.clock().now();
        let mut values = current.record().values.clone();
        let Some(slot) = values.iter_mut().find(|v| v.index == HS_PUBKEY_INDEX) else {
            return Err(ApiError::new(
                Code::NotAProvider,
                format!("{id} holds no key to replace"),
            ));
        };
        slot.data = new.to_public_pem();
        slot.timestamp = now;
        let key = verified.nonce.key.clone();
        let result = s
            .registry
            .change_async(&id, Change::Values(values), Some(verified.nonce))
            .await;
        answered(&s, &key, result)
    })
    .await
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
    // A transaction is not public: it reads as absent here.
    let found = blocking(move || {
        s.registry
            .get(&id)?
            .filter(|r| !is_private(r.record().identifier.class()))
            .ok_or_else(|| not_found(&id))
    })
    .await?;
    let mut body = record_json(&state, &found);
    if let (Some(live), Some(obj)) = (
        state.capacity.live(&found.record().identifier),
        body.as_object_mut(),
    ) {
        obj.insert("live_status".into(), live_json(&live));
    }
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

/// A resource's live status beside its record: reported by its provider,
/// not part of what the node signed.
fn live_json(live: &LiveStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(live).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "note".into(),
            "live status reported by the provider; not signed record content".into(),
        );
    }
    v
}

/// Most records in one page of `GET /v1/identifiers?owner=`.
const MAX_PAGE: usize = 500;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// The provider whose resources are listed.
    owner: String,
    /// The last identifier of the previous page.
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/identifiers?owner=…[&after=…][&limit=…]`: the resources a
/// provider holds (not withdrawn), in identifier order, a page at a time;
/// `next` is the `after` of the next page, absent on the last.
pub(super) async fn list(
    State(state): Shared,
    CheckedQuery(q): CheckedQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let owner = Identifier::parse(&q.owner)
        .map_err(|e| ApiError::new(Code::InvalidQuery, format!("owner: {e}")))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            format!("limit is 1 to {MAX_PAGE}"),
        ));
    }
    // One more than asked, to know whether a next page exists.
    let mut ids = state.capacity.owned(&owner, q.after.as_deref(), limit + 1);
    let more = ids.len() > limit;
    ids.truncate(limit);
    let s = state.clone();
    let records = blocking(move || {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = s.registry.get(&id)? {
                out.push(r);
            }
        }
        Ok(out)
    })
    .await?;
    let next = if more {
        records.last().map(|r| r.record().identifier.to_string())
    } else {
        None
    };
    let items: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut v = crate::ident::record::to_json(r);
            if let (Some(live), Some(obj)) = (
                state.capacity.live(&r.record().identifier),
                v.as_object_mut(),
            ) {
                obj.insert("live_status".into(), live_json(&live));
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({
        "owner": owner.to_string(),
        "identifiers": items,
        "next": next,
    }))
    .into_response())
}
