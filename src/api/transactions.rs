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
use serde_json::value::RawValue;

use super::auth::{self, SignedBody, Signer};
use super::error::{ApiError, Code};
use super::respond::{answered_with, blocking, run_mutation};
use super::situation::CheckedQuery;
use super::state::{ApiState, Shared};
use crate::events::Kind;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::record::{RecordJson, SignedRecord};
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
/// state, the document and the step that made this version. The document
/// and the step are the record's own `CP.TXN` and `CP.TXSTEP` values,
/// written out as the JSON they are (checked to be JSON, never parsed
/// into a tree and printed again).
#[derive(serde::Serialize)]
pub(super) struct TxAnswer<'a> {
    #[serde(flatten)]
    record: RecordJson<'a>,
    issuer_public_key: &'a str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<&'a RawValue>,
}

impl<'a> TxAnswer<'a> {
    /// `tx_state` is the state the record's document holds: the step that
    /// made it says so, or the document was read to check who may see it.
    pub(super) fn new(
        state: &'a ApiState,
        signed: &'a SignedRecord,
        tx_state: TxState,
    ) -> TxAnswer<'a> {
        let raw = |kind: &str| {
            signed
                .record()
                .values
                .iter()
                .find(|v| v.kind.as_str() == kind)
                .and_then(|v| serde_json::from_str::<&RawValue>(&v.data).ok())
        };
        TxAnswer {
            record: RecordJson::new(signed),
            issuer_public_key: &state.issuer_pem,
            state: tx_state.as_str(),
            step: raw(trade::CP_TXSTEP),
            transaction: raw(trade::CP_TXN),
        }
    }

    /// As a JSON value, for answers that embed it.
    pub(super) fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
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
    let answer = TxAnswer::new(&state, &signed, TxState::Proposed);
    let mut response = (StatusCode::CREATED, Json(answer)).into_response();
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
    let answer = TxAnswer::new(&state, &signed, kind.transition().1);
    Ok(Json(answer).into_response())
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
            Ok(Json(TxAnswer::new(&state, &signed, doc.state)).into_response())
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
                && let Some((signed, doc)) = s.trades.get(&id)?
            {
                out.push((signed, doc.state));
            }
        }
        Ok(out)
    })
    .await?;
    let next = if more {
        records
            .last()
            .map(|(r, _)| r.record().identifier.to_string())
    } else {
        None
    };
    let items: Vec<serde_json::Value> = records
        .iter()
        .map(|(r, tx_state)| TxAnswer::new(&state, r, *tx_state).to_value())
        .collect();
    Ok(Json(serde_json::json!({
        "party": party,
        "transactions": items,
        "next": next,
    }))
    .into_response())
}
