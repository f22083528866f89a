//! Transactions (system A, `schema/transaction.md`): `POST
//! /v1/transactions` (a buyer's proposal), `POST
//! /v1/transactions/{prefix}/{suffix}/{step}` (accept, reject, activate,
//! settle, cancel: each signed by the party whose step it is), and the
//! signed reads `GET /v1/transactions/{prefix}/{suffix}` and `GET
//! /v1/transactions` (the signer's own: a provider's inbox, a buyer's
//! transactions; the admin's: all). Transactions are commercial data: every
//! read here is signed, and public reads and DNS never show them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::{self, SignedBody, Signer};
use super::error::{ApiError, Code};
use super::respond::{answered_with, blocking, record_json, run_mutation};
use super::situation::CheckedQuery;
use super::state::{ApiState, Shared};
use crate::events::Kind;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::record::SignedRecord;
use crate::trade::{self, Actor, SignedRequest, StepKind, TxState};

/// Most transactions in one page of a list.
const MAX_PAGE: usize = 500;

/// The party's signed request, as the transaction keeps it.
pub(super) fn kept(req: &SignedBody) -> Result<SignedRequest, ApiError> {
    let h = |name: &str| {
        req.parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let body = std::str::from_utf8(&req.body)
        .map_err(|_| ApiError::new(Code::InvalidJson, "the body is not UTF-8"))?;
    Ok(SignedRequest {
        method: req.parts.method.as_str().to_string(),
        path: req.parts.uri.path_and_query().map_or_else(
            || req.parts.uri.path().to_string(),
            |p| p.as_str().to_string(),
        ),
        content_digest: h("content-digest"),
        signature_input: h("signature-input"),
        signature: h("signature"),
        body: body.to_string(),
    })
}

/// A transaction as answered: the signed record (with `encoded`), the
/// document and the step that made this version.
pub(super) fn tx_json(state: &ApiState, signed: &SignedRecord) -> serde_json::Value {
    let mut v = record_json(state, signed);
    if let (Some((doc, step)), Some(obj)) = (trade::parse(signed), v.as_object_mut()) {
        obj.insert("state".into(), doc.state.as_str().into());
        obj.insert(
            "transaction".into(),
            serde_json::to_value(&doc).unwrap_or_default(),
        );
        if let Some(step) = step {
            obj.insert(
                "step".into(),
                serde_json::to_value(&step).unwrap_or_default(),
            );
        }
    }
    v
}

pub(super) fn location(id: &Identifier) -> String {
    format!("/v1/transactions/{id}")
}

/// `POST /v1/transactions`: a buyer proposes; `201` with the `TX`.
pub(super) async fn propose(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    let s = state.clone();
    let signed = run_mutation("tx_propose", async move {
        let body = trade::parse_proposal(&req.body)?;
        let (buyer, verified) = auth::verify_buyer(&s, &req).await?;
        let key = verified.nonce.key.clone();
        let result = s
            .trades
            .propose(&buyer, &body, kept(&req)?, Some(verified.nonce))
            .await;
        answered_with(&s, &key, result)
    })
    .await?;
    let mut response = (StatusCode::CREATED, Json(tx_json(&state, &signed))).into_response();
    if let Ok(v) = HeaderValue::from_str(&location(&signed.record().identifier)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `POST /v1/transactions/{prefix}/{suffix}/{step}`.
pub(super) async fn step(
    State(state): Shared,
    Path((prefix, suffix, step)): Path<(String, String, String)>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let id = tx_id(&prefix, &suffix)?;
    let kind = StepKind::parse(&step)
        .filter(|k| !matches!(k, StepKind::Propose | StepKind::Expire))
        .ok_or_else(|| {
            ApiError::new(
                Code::NoRoute,
                format!("no step {step:?}: accept, reject, activate, settle or cancel"),
            )
        })?;
    let s = state.clone();
    let signed = run_mutation("tx_step", async move {
        let body = trade::parse_step(&req.body)?;
        let (signer, verified) = auth::verify_party(&s, &req).await?;
        let actor = match signer {
            Signer::Party(p) => Actor::Party(p),
            Signer::Admin => {
                return Err(ApiError::new(
                    Code::NotParty,
                    format!(
                        "{kind} on {id} is a party's step; the admin reads transactions but takes no steps",
                        kind = kind.as_str()
                    ),
                ));
            }
        };
        let key = verified.nonce.key.clone();
        let who = match &actor {
            Actor::Party(p) => p.to_string(),
            _ => String::new(),
        };
        let result = s
            .trades
            .step(&id, kind, &actor, &body, Some(kept(&req)?), Some(verified.nonce))
            .await;
        let answer = answered_with(&s, &key, result);
        if let Err(e) = &answer
            && matches!(e.code, Code::IllegalStep | Code::NotParty | Code::WrongRole)
        {
            s.event(Kind::RefusedStep, &who, &id.to_string(), &e.reason);
        }
        answer
    })
    .await?;
    Ok(Json(tx_json(&state, &signed)).into_response())
}

fn tx_id(prefix: &str, suffix: &str) -> Result<Identifier, ApiError> {
    let id = Identifier::parse(&format!("{prefix}/{suffix}"))
        .map_err(|e| ApiError::new(Code::InvalidIdentifier, e.to_string()))?;
    if id.class() != Class::Tx {
        return Err(ApiError::new(
            Code::InvalidIdentifier,
            format!("{id} is not a transaction (TX) identifier"),
        ));
    }
    Ok(id)
}

/// Only the buyer, the provider and the admin read a transaction; anyone
/// else learns nothing, not even that it exists.
fn may_read(signer: &Signer, doc: &trade::TxDoc) -> bool {
    match signer {
        Signer::Admin => true,
        Signer::Party(p) => {
            let p = p.to_string();
            p == doc.buyer || p == doc.provider
        }
    }
}

/// `GET /v1/transactions/{prefix}/{suffix}`, signed.
pub(super) async fn read(
    State(state): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let id = tx_id(&prefix, &suffix)?;
    let (signer, _) = auth::verify_party(&state, &req).await?;
    let s = state.clone();
    let lookup = id.clone();
    let found = blocking(move || Ok(s.trades.get(&lookup)?)).await?;
    match found {
        Some((signed, doc)) if may_read(&signer, &doc) => {
            Ok(Json(tx_json(&state, &signed)).into_response())
        }
        _ => Err(ApiError::new(
            Code::NotFound,
            format!("no transaction {id} for this signer"),
        )),
    }
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// Only transactions in this state.
    state: Option<String>,
    /// The admin only: one party's transactions.
    party: Option<String>,
    /// The last identifier of the previous page.
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/transactions[?state=…][&party=…][&after=…][&limit=…]`, signed:
/// the signer's transactions (a provider's inbox is `?state=proposed`),
/// or for the admin every one (or one party's).
pub(super) async fn list(
    State(state): Shared,
    CheckedQuery(q): CheckedQuery<ListQuery>,
    req: SignedBody,
) -> Result<Response, ApiError> {
    let (signer, _) = auth::verify_party(&state, &req).await?;
    let wanted = q
        .state
        .as_deref()
        .map(|s| {
            TxState::parse(s).ok_or_else(|| {
                ApiError::new(
                    Code::InvalidQuery,
                    format!("state {s:?} is not a transaction state"),
                )
            })
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            Code::InvalidQuery,
            format!("limit is 1 to {MAX_PAGE}"),
        ));
    }
    let party = match (&signer, q.party) {
        (Signer::Admin, p) => p,
        (Signer::Party(me), None) => Some(me.to_string()),
        (Signer::Party(_), Some(_)) => {
            return Err(ApiError::new(
                Code::NotAdmin,
                "only the node's admin key lists another party's transactions",
            ));
        }
    };
    let mut ids = state
        .trades
        .list(party.as_deref(), wanted, q.after.as_deref(), limit + 1);
    let more = ids.len() > limit;
    ids.truncate(limit);
    let s = state.clone();
    let records = blocking(move || {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(id) = Identifier::parse(&id)
                && let Some((signed, _)) = s.trades.get(&id)?
            {
                out.push(signed);
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
    let items: Vec<serde_json::Value> = records.iter().map(|r| tx_json(&state, r)).collect();
    Ok(Json(serde_json::json!({
        "party": party,
        "transactions": items,
        "next": next,
    }))
    .into_response())
}
