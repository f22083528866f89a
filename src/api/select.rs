//! Selection (system D) and scheduling (system A) over HTTP.
//!
//! `POST /v1/select` (unsigned: a selection changes nothing) answers a
//! requirement with this node's candidates and those of the children whose
//! signed summaries show fresh matching capacity: the requirement is
//! forwarded to them as it came, each child candidate's record is resolved
//! and verified from the root key and compared with what the child claims,
//! and the merged set is scored again and ranked here. `hops` says which
//! child was asked, how long it took and what it gave.
//!
//! `POST /v1/schedule` (signed by a buyer) selects the same way and
//! proposes on the best candidate: here when this node holds it, else by
//! forwarding the buyer's signed request, unchanged, to the child whose
//! subtree holds it (which needs the buyer's identifier as `keyid`, so the
//! resource's node can resolve the key). The proposal keeps the buyer's
//! signed requirement as the step that made it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::auth::{self, SignedBody};
use super::client::ApiClient;
use super::error::{ApiError, Code};
use super::httpsig;
use super::respond::{answered_with, run_mutation};
use super::state::{ApiState, Shared};
use super::transactions::{TxAnswer, kept, location};
use crate::capacity::totals::Rows;
use crate::capacity::{Capacity, Glance};
use crate::ident::identifier::{Identifier, Prefix};
use crate::select::{Availability, Candidate, Exclusion, Requirement, Selection};
use crate::trade::{ProposeRequest, Trades};

/// The live state and calendars a selection reads.
struct Live<'a> {
    capacity: &'a Capacity,
    trades: &'a Trades,
}

impl Availability for Live<'_> {
    fn glance(&self, ids: &[&Identifier]) -> Vec<Option<Glance>> {
        self.capacity.glance(ids)
    }

    fn booked(&self, ids: &[&Identifier], start: u64, end: u64) -> Vec<u64> {
        self.trades.booked_many(ids, start, end)
    }
}

/// One node's part in a selection.
#[derive(Debug, Clone, Serialize)]
pub struct Hop {
    pub node: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// `local`, `answered`, `skipped` or `failed`.
    pub outcome: &'static str,
    /// Wall time of this hop as seen here, milliseconds.
    pub ms: f64,
    pub considered: u64,
    /// Candidates it returned, and of those, verified here.
    pub candidates: usize,
    pub verified: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The hops the child reported below itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hops: Vec<serde_json::Value>,
}

impl Hop {
    fn skipped(node: String, api: Option<String>, reason: &str) -> Hop {
        Hop {
            node,
            api,
            outcome: "skipped",
            ms: 0.0,
            considered: 0,
            candidates: 0,
            verified: 0,
            reason: Some(reason.to_string()),
            hops: Vec::new(),
        }
    }
}

fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Whether a child's summary shows fresh capacity `req` could use: units
/// available now for a window starting within the hour (as the local
/// selection counts them), else units in all.
fn shows(rows: &Rows, req: &Requirement, model: Option<&str>, now: u64) -> bool {
    let class_ok = |c: &str| req.class.map_or(c != "NL", |k| k.code() == c);
    let units = i64::try_from(req.units.unwrap_or(1)).unwrap_or(i64::MAX);
    let soon = req.start < now.saturating_add(3600);
    let units_ok = rows.units.iter().any(|u| {
        let have = if soon {
            u.units_available.fresh
        } else {
            u.units_total.fresh
        };
        class_ok(&u.class) && have >= units
    });
    let model_ok = model.is_none_or(|m| {
        rows.peaks
            .iter()
            .any(|p| class_ok(&p.class) && p.model.to_lowercase() == m && p.devices.fresh > 0)
    });
    units_ok && model_ok
}

/// A child's candidate as this node answers it: its record resolved from
/// the root key, under the child's prefix, fitting the requirement for the
/// units claimed (`Selector::vet`); `None` when it does not verify.
async fn vetted(
    state: &ApiState,
    child: &Prefix,
    c: &Candidate,
    req: &Requirement,
) -> Option<Candidate> {
    let directory = state.directory.as_ref()?;
    let id = Identifier::parse(&c.identifier).ok()?;
    let node = Prefix::parse(&c.node).ok()?;
    if !(child.contains(&node) && node == *id.prefix()) {
        return None;
    }
    let signed = directory.record(&id).await.ok()??;
    state.selector.vet(signed.record(), c, req)
}

/// Most hops kept from a child's answer, per level and in depth.
const MAX_HOPS: usize = 32;
const MAX_HOP_DEPTH: usize = 6;

/// A child's `hops` as this node passes them on: the known fields only,
/// bounded in number, depth and length.
fn trimmed_hops(v: Option<&serde_json::Value>, depth: usize) -> Vec<serde_json::Value> {
    let Some(list) = v.and_then(serde_json::Value::as_array) else {
        return Vec::new();
    };
    if depth >= MAX_HOP_DEPTH {
        return Vec::new();
    }
    list.iter()
        .take(MAX_HOPS)
        .filter_map(|h| {
            let o = h.as_object()?;
            let mut out = serde_json::Map::new();
            for k in ["node", "api", "outcome", "reason"] {
                if let Some(t) = o.get(k).and_then(serde_json::Value::as_str) {
                    let t: String = t.chars().filter(|c| !c.is_control()).take(200).collect();
                    out.insert(k.into(), t.into());
                }
            }
            for k in ["ms", "considered", "candidates", "verified"] {
                if let Some(n) = o.get(k).filter(|n| n.is_number()) {
                    out.insert(k.into(), n.clone());
                }
            }
            let below = trimmed_hops(o.get("hops"), depth + 1);
            if !below.is_empty() {
                out.insert("hops".into(), below.into());
            }
            Some(serde_json::Value::Object(out))
        })
        .collect()
}

/// The header that lists the nodes a request was forwarded through.
pub const FORWARDED_BY: &str = "cpid-forwarded-by";

/// The nodes a request came through, refused when this node is among them
/// (a loop) or the chain is longer than any tree of nodes.
fn forwarded_by(
    state: &ApiState,
    headers: &axum::http::HeaderMap,
) -> Result<Vec<String>, ApiError> {
    let chain: Vec<String> = headers
        .get(FORWARDED_BY)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let own = state.registry.prefix().to_string();
    if chain.len() > MAX_HOP_DEPTH || chain.contains(&own) {
        return Err(ApiError::new(
            Code::InvalidRequest,
            format!("forwarded through {}: a loop or too deep", chain.join(",")),
        ));
    }
    Ok(chain)
}

/// The header value a forward from this node carries.
fn forward_chain(state: &ApiState, chain: &[String]) -> Option<HeaderValue> {
    let mut all = chain.to_vec();
    all.push(state.registry.prefix().to_string());
    HeaderValue::from_str(&all.join(",")).ok()
}

/// This node's selection merged with its children's, not yet finished.
pub async fn federated(
    state: &Arc<ApiState>,
    req: &Requirement,
    body: &Bytes,
    chain: &[String],
) -> (Selection, Vec<Hop>) {
    let now = state.capacity.clock().now();
    let started = Instant::now();
    let s = state.clone();
    let r = req.clone();
    let local = tokio::task::spawn_blocking(move || {
        let live = Live {
            capacity: &s.capacity,
            trades: &s.trades,
        };
        s.selector.select(&r, now, &live)
    })
    .await;
    let mut selection = match local {
        Ok(sel) => sel,
        Err(e) => {
            tracing::error!(error = %e, "selection task failed");
            Selection {
                considered: 0,
                matched: 0,
                candidates: Vec::new(),
                excluded: Default::default(),
                explanation: String::new(),
                weights: state.selector.weights(req),
                window: crate::select::Window {
                    start: req.start,
                    end: req.end,
                },
                cheapest: Default::default(),
            }
        }
    };
    let mut hops = vec![Hop {
        node: state.registry.prefix().to_string(),
        api: None,
        outcome: "local",
        ms: millis(started.elapsed()),
        considered: selection.considered,
        candidates: selection.candidates.len(),
        verified: selection.candidates.len(),
        reason: None,
        hops: Vec::new(),
    }];
    let model = state.selector.model_key(req);
    let timeout = Duration::from_millis(state.selector.config().forward_timeout_ms);
    let mut asked = tokio::task::JoinSet::new();
    let routes = state
        .capacity
        .rollup
        .route(now, |rows| shows(rows, req, model.as_deref(), now));
    let via = forward_chain(state, chain);
    for (prefix, api, shown) in routes {
        let Some(api) = api else {
            hops.push(Hop::skipped(prefix, None, "its delegation names no API"));
            continue;
        };
        match shown {
            None => {
                hops.push(Hop::skipped(prefix, Some(api), "no verified summary yet"));
                continue;
            }
            Some(false) => {
                hops.push(Hop::skipped(
                    prefix,
                    Some(api),
                    "its summary shows no fresh matching capacity",
                ));
                continue;
            }
            Some(true) => {}
        }
        let body = body.to_vec();
        let via = via.clone();
        asked.spawn_blocking(move || {
            let started = Instant::now();
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Some(v) = via {
                headers.insert(FORWARDED_BY, v);
            }
            let answer =
                ApiClient::with_timeout(&api, timeout).send("POST", "/v1/select", headers, body);
            (prefix, api, started.elapsed(), answer)
        });
    }
    let limit = state.selector.limit(req);
    let mut seen: std::collections::HashSet<String> = selection
        .candidates
        .iter()
        .map(|c| c.identifier.clone())
        .collect();
    while let Some(joined) = asked.join_next().await {
        let (prefix, api, took, answer) = match joined {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "forwarded selection task failed");
                continue;
            }
        };
        let mut hop = Hop::skipped(prefix.clone(), Some(api), "");
        hop.ms = millis(took);
        hop.outcome = "failed";
        let mut child = match answer {
            Err(e) => {
                hop.reason = Some(e.to_string());
                hops.push(hop);
                continue;
            }
            Ok(a) if a.status != 200 => {
                let text: String = a
                    .text
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(200)
                    .collect();
                hop.reason = Some(format!("HTTP {}: {text}", a.status));
                hops.push(hop);
                continue;
            }
            Ok(a) => a.body,
        };
        let below = trimmed_hops(child.get("hops"), 1);
        if let Some(o) = child.as_object_mut() {
            o.remove("node");
            o.remove("hops");
        }
        let (Ok(mut theirs), Ok(child_prefix)) = (
            serde_json::from_value::<Selection>(child),
            Prefix::parse(&prefix),
        ) else {
            hop.reason = Some("its answer is not a selection".into());
            hops.push(hop);
            continue;
        };
        let offered = std::mem::take(&mut theirs.candidates);
        hop.candidates = offered.len();
        // A child answers at most the limit; more is not looked at.
        let dropped = offered.len().saturating_sub(limit);
        for c in offered.into_iter().take(limit) {
            let kept = match vetted(state, &child_prefix, &c, req).await {
                Some(v) if seen.insert(v.identifier.clone()) => Some(v),
                _ => None,
            };
            match kept {
                Some(v) => theirs.candidates.push(v),
                None => {
                    tracing::warn!(candidate = %c.identifier, child = %prefix, "child candidate did not verify");
                    theirs.exclude(Exclusion::Unverified);
                }
            }
        }
        for _ in 0..dropped {
            theirs.exclude(Exclusion::Unverified);
        }
        hop.verified = theirs.candidates.len();
        hop.considered = theirs.considered;
        hop.outcome = "answered";
        hop.reason = None;
        hop.hops = below;
        selection.merge(theirs);
        hops.push(hop);
    }
    (selection, hops)
}

/// A finished selection as answered.
fn selection_json(state: &ApiState, selection: &Selection, hops: &[Hop]) -> serde_json::Value {
    let mut v = serde_json::to_value(selection).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("node".into(), state.registry.prefix().to_string().into());
        o.insert(
            "hops".into(),
            serde_json::to_value(hops).unwrap_or_default(),
        );
    }
    v
}

/// `POST /v1/select`.
pub(super) async fn select(
    State(state): Shared,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if body.len() > state.max_body_bytes {
        return Err(ApiError::new(
            Code::BodyTooLarge,
            format!("at most {} bytes", state.max_body_bytes),
        ));
    }
    let now = state.capacity.clock().now();
    let req = Requirement::parse(&body, now)?;
    let chain = forwarded_by(&state, &headers)?;
    let (mut selection, hops) = federated(&state, &req, &body, &chain).await;
    finish(&state, &req, &mut selection);
    metrics::counter!(crate::telemetry::SELECTIONS, "kind" => "select", "outcome" => if selection.candidates.is_empty() { "none" } else { "some" }).increment(1);
    Ok(Json(selection_json(&state, &selection, &hops)).into_response())
}

fn finish(state: &ApiState, req: &Requirement, selection: &mut Selection) {
    let scale = state.selector.config().latency_scale_ms;
    selection.finish(req, scale, state.selector.limit(req));
}

/// `POST /v1/schedule`: select, then propose on the best candidate.
pub(super) async fn schedule(State(state): Shared, req: SignedBody) -> Result<Response, ApiError> {
    let now = state.capacity.clock().now();
    let requirement = Requirement::parse(&req.body, now)?;
    let chain = forwarded_by(&state, &req.parts.headers)?;
    let (buyer, verified_req) = auth::verify_buyer(&state, &req).await?;
    let (mut selection, hops) = federated(&state, &requirement, &req.body, &chain).await;
    finish(&state, &requirement, &mut selection);
    let Some(best) = selection.candidates.first().cloned() else {
        metrics::counter!(crate::telemetry::SELECTIONS, "kind" => "schedule", "outcome" => "none")
            .increment(1);
        return Err(ApiError::new(
            Code::NothingFits,
            format!("nothing to schedule: {}", selection.explanation),
        ));
    };
    metrics::counter!(crate::telemetry::SELECTIONS, "kind" => "schedule", "outcome" => "some")
        .increment(1);
    if best.node != state.registry.prefix().to_string() {
        return forward_schedule(&state, &req, verified_req.nonce, &best, now, &chain).await;
    }
    let proposal = ProposeRequest {
        resource: best.identifier.clone(),
        units: best.units.into(),
        start: requirement.start.into(),
        end: requirement.end.into(),
        max_price_per_unit_hour: requirement.max_price.as_ref().map(|p| p.amount.into()),
    };
    let s = state.clone();
    let signed = run_mutation("tx_schedule", async move {
        let key = verified_req.nonce.key.clone();
        let result = s
            .trades
            .propose(&buyer, &proposal, kept(&req)?, Some(verified_req.nonce))
            .await;
        answered_with(&s, &key, result)
    })
    .await?;
    let body = serde_json::json!({
        "transaction": TxAnswer::new(&state, &signed, crate::trade::TxState::Proposed).to_value(),
        "selection": selection_json(&state, &selection, &hops),
    });
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location(&signed.record().identifier)) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// Sends the buyer's signed schedule, unchanged, to the child whose
/// subtree holds `best`, and answers what it answers.
async fn forward_schedule(
    state: &Arc<ApiState>,
    req: &SignedBody,
    nonce: crate::store::Nonce,
    best: &Candidate,
    now: u64,
    chain: &[String],
) -> Result<Response, ApiError> {
    let by_identifier = httpsig::parse(&req.parts.headers)
        .ok()
        .and_then(|r| r.params.keyid)
        .is_some_and(|k| Identifier::parse(&k).is_ok());
    if !by_identifier {
        return Err(ApiError::new(
            Code::NeedsIdentifierKeyid,
            format!(
                "the best candidate {} is held by node {}, which cannot look up this key id: \
                 sign with your buyer identifier as keyid (cpid schedule --as <US identifier>)",
                best.identifier, best.node
            ),
        ));
    }
    let node = Prefix::parse(&best.node)
        .map_err(|e| ApiError::internal(format!("candidate node {}: {e}", best.node)))?;
    let child = state
        .capacity
        .rollup
        .route(now, |_| true)
        .into_iter()
        .find_map(|(prefix, api, _)| {
            let p = Prefix::parse(&prefix).ok()?;
            p.contains(&node).then_some((prefix, api?))
        })
        .ok_or_else(|| {
            ApiError::new(
                Code::ForwardFailed,
                format!("no child with an API holds {}", best.node),
            )
        })?;
    let mut headers = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE.as_str(),
        "content-digest",
        "signature-input",
        "signature",
    ] {
        if let Some(v) = req.parts.headers.get(name) {
            headers.insert(axum::http::HeaderName::from_static(name), v.clone());
        }
    }
    if let Some(v) = forward_chain(state, chain) {
        headers.insert(FORWARDED_BY, v);
    }
    // The request acts once: its nonce is spent here before it goes on, so
    // a replay to this node cannot schedule again elsewhere.
    let spent = crate::store::WriteBatch {
        nonces: vec![nonce],
        ..Default::default()
    };
    crate::store::write_async(state.registry.store().as_ref(), spent).await?;
    let body = req.body.to_vec();
    let (prefix, api) = child;
    let timeout =
        Duration::from_millis(state.selector.config().forward_timeout_ms.saturating_mul(2));
    let target = api.clone();
    let answer = tokio::task::spawn_blocking(move || {
        ApiClient::with_timeout(&target, timeout).send("POST", "/v1/schedule", headers, body)
    })
    .await
    .map_err(|e| ApiError::internal(format!("forward task failed: {e}")))?
    .map_err(|e| ApiError::new(Code::ForwardFailed, format!("child {prefix} at {api}: {e}")))?;
    let status = StatusCode::from_u16(answer.status)
        .ok()
        .filter(|s| s.is_success() || s.is_client_error() || s.is_server_error())
        .unwrap_or(StatusCode::BAD_GATEWAY);
    let mut body = answer.body;
    if let Some(o) = body.as_object_mut() {
        // The node that took it, as the deepest forwarder named it.
        o.entry("scheduled_by").or_insert_with(|| prefix.into());
        o.entry("scheduled_by_api").or_insert_with(|| api.into());
    }
    let mut response = (status, Json(body)).into_response();
    if let Some(loc) = answer.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(response)
}
