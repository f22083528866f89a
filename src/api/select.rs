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
use super::transactions::{kept, location, tx_json};
use crate::capacity::totals::{Contribution, Rows};
use crate::capacity::{Capacity, Glance};
use crate::ident::identifier::{Identifier, Prefix};
use crate::ident::record::RecordStatus;
use crate::ident::resource::DeviceTable;
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

/// Whether a child's summary shows fresh capacity `req` could use.
fn shows(rows: &Rows, req: &Requirement, model: Option<&str>) -> bool {
    let class_ok = |c: &str| req.class.map_or(c != "NL", |k| k.code() == c);
    let units = i64::try_from(req.units.unwrap_or(1)).unwrap_or(i64::MAX);
    let units_ok = rows
        .units
        .iter()
        .any(|u| class_ok(&u.class) && u.units_available.fresh >= units);
    let model_ok = model.is_none_or(|m| {
        rows.peaks
            .iter()
            .any(|p| class_ok(&p.class) && p.model.to_lowercase() == m && p.devices.fresh > 0)
    });
    units_ok && model_ok
}

/// Checks a child's candidate against its record as resolved from the
/// root key: active, under the child's prefix, and the class, region,
/// units and price the child claims.
async fn verified(state: &ApiState, child: &Prefix, c: &Candidate) -> bool {
    let Some(directory) = &state.directory else {
        return false;
    };
    let Ok(id) = Identifier::parse(&c.identifier) else {
        return false;
    };
    let under_child =
        Prefix::parse(&c.node).is_ok_and(|node| child.contains(&node) && node == *id.prefix());
    if !under_child {
        return false;
    }
    let Ok(Some(signed)) = directory.record(&id).await else {
        return false;
    };
    let r = signed.record();
    if r.status != RecordStatus::Active {
        return false;
    }
    let Some((contribution, descriptor)) = Contribution::of(r, DeviceTable::builtin()) else {
        return false;
    };
    let price_ok = match (&descriptor.price_per_unit_hour, &c.price) {
        (None, None) => true,
        (Some(p), Some(q)) => p.amount == q.per_unit_hour && p.currency == q.currency,
        _ => false,
    };
    contribution.class.code() == c.class
        && contribution.region == c.region
        && contribution.units_total == c.units_total
        && c.units_free <= c.units_total
        && price_ok
}

/// This node's selection merged with its children's, not yet finished.
pub async fn federated(
    state: &Arc<ApiState>,
    req: &Requirement,
    body: &Bytes,
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
        .route(now, |rows| shows(rows, req, model.as_deref()));
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
        asked.spawn_blocking(move || {
            let started = Instant::now();
            let mut headers = HeaderMap::new();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let answer =
                ApiClient::with_timeout(&api, timeout).send("POST", "/v1/select", headers, body);
            (prefix, api, started.elapsed(), answer)
        });
    }
    while let Some(joined) = asked.join_next().await {
        let Ok((prefix, api, took, answer)) = joined else {
            continue;
        };
        let mut hop = Hop::skipped(prefix.clone(), Some(api), "");
        hop.ms = millis(took);
        hop.outcome = "failed";
        let child = match answer {
            Err(e) => {
                hop.reason = Some(e.to_string());
                hops.push(hop);
                continue;
            }
            Ok(a) if a.status != 200 => {
                hop.reason = Some(format!(
                    "HTTP {}: {}",
                    a.status,
                    a.text.chars().take(200).collect::<String>()
                ));
                hops.push(hop);
                continue;
            }
            Ok(a) => a.body,
        };
        let mut child = child;
        let below = child
            .as_object_mut()
            .and_then(|o| {
                o.remove("node");
                o.remove("hops")
            })
            .and_then(|h| h.as_array().cloned())
            .unwrap_or_default();
        let parsed: Result<Selection, _> = serde_json::from_value(child);
        let Ok(mut theirs) = parsed else {
            hop.reason = Some("its answer is not a selection".into());
            hops.push(hop);
            continue;
        };
        let Ok(child_prefix) = Prefix::parse(&prefix) else {
            continue;
        };
        let offered = std::mem::take(&mut theirs.candidates);
        hop.candidates = offered.len();
        for c in offered {
            if verified(state, &child_prefix, &c).await {
                theirs.candidates.push(c);
            } else {
                tracing::warn!(candidate = %c.identifier, child = %prefix, "child candidate did not verify");
                theirs.exclude(Exclusion::Unverified);
            }
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
pub(super) async fn select(State(state): Shared, body: Bytes) -> Result<Response, ApiError> {
    if body.len() > state.max_body_bytes {
        return Err(ApiError::new(
            Code::BodyTooLarge,
            format!("at most {} bytes", state.max_body_bytes),
        ));
    }
    let now = state.capacity.clock().now();
    let req = Requirement::parse(&body, now)?;
    let (mut selection, hops) = federated(&state, &req, &body).await;
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
    let (buyer, verified_req) = auth::verify_buyer(&state, &req).await?;
    let (mut selection, hops) = federated(&state, &requirement, &req.body).await;
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
        return forward_schedule(&state, &req, &best, now).await;
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
        "transaction": tx_json(&state, &signed),
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
    best: &Candidate,
    now: u64,
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
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
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
