//! The one client of the node's HTTP API: it signs its requests (RFC 9421,
//! covering `@method`, `@path` and `content-digest`, with `created`,
//! `nonce`, `keyid` and `alg`), for the CLI, federation set-up, the tests
//! and the benchmark.
//!
//! Two levels: typed calls ([`ApiClient::register_provider`],
//! [`ApiClient::register`], [`ApiClient::update`], [`ApiClient::withdraw`],
//! [`ApiClient::approve`], [`ApiClient::delegate`], [`ApiClient::revoke`],
//! [`ApiClient::backup`])
//! send the very request structs the server parses (`api::body`) and
//! answer the signed record, or [`ClientError::Api`] with the node's
//! `{"error", "reason"}` as an [`ApiFailure`]; and raw calls
//! ([`ApiClient::send`], [`ApiClient::get`], [`ApiClient::signed`]) that
//! answer any status, for tests that send what a client never would.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Uri};
use serde::{Deserialize, Serialize};

use crate::api::body::{DelegationRequest, IssueRequest, ProviderRequest, UpdateRequest};
use crate::api::error::Code;
use crate::api::httpsig::{self, Message, SignOptions};
use crate::capacity::report::ReportBody;
use crate::capacity::totals::{ByFreshness, UnitRow};
use crate::ident::delegation::ChainFile;
use crate::ident::identifier::{Identifier, Prefix};
use crate::ident::keys::NodeKey;
use crate::ident::record::SignedRecord;

/// The components cpid clients sign.
pub const COMPONENTS: [&str; 3] = ["@method", "@path", "content-digest"];

/// Why a request could not be made (an HTTP error status is not one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("invalid request: {0}")]
    Request(String),
    #[error("cannot sign the request: {0}")]
    Sign(#[from] httpsig::SigError),
    #[error("no randomness for a nonce: {0}")]
    Random(String),
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    /// The node answered with an error status.
    #[error(transparent)]
    Api(#[from] ApiFailure),
    /// The node answered success with a body that is not what it promises.
    #[error("{request}: unexpected answer: {reason}")]
    Answer { request: String, reason: String },
}

/// A request the node refused or failed: the status and the
/// `{"error", "reason"}` body (`api::error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{request}: {code}: {reason}")]
pub struct ApiFailure {
    /// `METHOD /path`, for the message.
    pub request: String,
    pub status: u16,
    /// The error code (`"error"`), or `"error"` when the body had none.
    pub code: String,
    /// The reason, or the body's text when it was not the API's JSON.
    pub reason: String,
    /// `out_of_sequence`: the reporter's last accepted sequence number.
    pub last_seq: Option<u64>,
}

impl ApiFailure {
    /// Whether the node refused with `code`.
    pub fn is(&self, code: Code) -> bool {
        self.code == code.as_str()
    }
}

/// A record the node answered with: the signed record (decoded and
/// checked for shape, not verified: the caller trusts the node it chose),
/// its native JSON as the node wrote it, and `Location` when one was sent.
#[derive(Debug, Clone)]
pub struct RecordReply {
    pub record: SignedRecord,
    pub json: serde_json::Value,
    pub location: Option<String>,
}

/// A transaction as a node answers it: the signed `TX` record and its
/// document.
#[derive(Debug, Clone)]
pub struct TxReply {
    pub record: SignedRecord,
    pub doc: crate::trade::TxDoc,
    pub json: serde_json::Value,
}

fn tx_reply(request: &str, r: ApiResponse) -> Result<TxReply, ClientError> {
    let reply = record_reply(request, r)?;
    let doc = crate::trade::parse(&reply.record)
        .map(|(doc, _)| doc)
        .ok_or_else(|| ClientError::Answer {
            request: request.to_string(),
            reason: "the record is not a transaction".into(),
        })?;
    Ok(TxReply {
        record: reply.record,
        doc,
        json: reply.json,
    })
}

/// A delegation the parent made: its record and the child's chain, root
/// first (what `cpid admin delegate --out` writes).
#[derive(Debug, Clone)]
pub struct Delegated {
    pub reply: RecordReply,
    pub chain: ChainFile,
}

/// `GET /v1/situation` as a client reads it (`capacity::situation`
/// writes it). Fields a newer node adds are ignored, and `children` is
/// there only when the node pulls child summaries.
#[derive(Debug, Clone, Deserialize)]
pub struct SituationReply {
    pub at: u64,
    /// `own` or `federation` (absent from nodes before the roll-up).
    #[serde(default)]
    pub scope: Option<String>,
    pub group_by: Vec<String>,
    pub resources: ByFreshness,
    pub units: Vec<UnitRow>,
    pub peaks: Vec<PeakReply>,
    pub coverage: CoverageReply,
    #[serde(default)]
    pub children: Option<Vec<ChildReply>>,
}

/// A figure in TFLOPS per freshness.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct TflopsReply {
    pub fresh: f64,
    pub stale: f64,
    pub unknown: f64,
}

/// One peak row: devices and dense peak of one region, class, model and
/// precision.
#[derive(Debug, Clone, Deserialize)]
pub struct PeakReply {
    pub region: String,
    pub class: String,
    pub model: String,
    pub precision: String,
    pub devices: ByFreshness,
    pub total_tflops: TflopsReply,
    pub available_tflops: TflopsReply,
}

/// Coverage of the 31 mainland province-level regions.
#[derive(Debug, Clone, Deserialize)]
pub struct CoverageReply {
    pub regions_total: usize,
    pub regions_fresh: usize,
    pub regions_silent: usize,
    pub ratio: f64,
    pub provinces: Vec<ProvinceReply>,
}

/// One province: its figures and state (`fresh`, `silent`, `none`).
#[derive(Debug, Clone, Deserialize)]
pub struct ProvinceReply {
    pub code: String,
    pub name: String,
    pub resources: ByFreshness,
    pub units_total: ByFreshness,
    pub units_available: ByFreshness,
    pub state: String,
}

/// A delegated child's summary as the parent last pulled it.
#[derive(Debug, Clone, Deserialize)]
pub struct ChildReply {
    pub prefix: String,
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub age_secs: Option<f64>,
    pub verified: bool,
    #[serde(default)]
    pub freshness: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

/// A fresh random nonce (128 bits, hex).
pub fn nonce() -> Result<String, ClientError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ClientError::Random(e.to_string()))?;
    Ok(crate::ident::keys::to_hex(&bytes))
}

/// The headers that make a request signed: `Content-Digest`,
/// `Signature-Input`, `Signature` (and `Content-Type` when there is a body).
pub fn signed_headers(
    method: &str,
    path: &str,
    body: &[u8],
    key: &NodeKey,
    nonce: &str,
    created: i64,
) -> Result<HeaderMap, ClientError> {
    let keyid = key.public().key_id().to_string();
    signed_headers_as(method, path, body, key, &keyid, nonce, created)
}

/// [`signed_headers`] with the `keyid` given: a party's identifier when it
/// signs at a node other than its own.
pub fn signed_headers_as(
    method: &str,
    path: &str,
    body: &[u8],
    key: &NodeKey,
    keyid: &str,
    nonce: &str,
    created: i64,
) -> Result<HeaderMap, ClientError> {
    let uri: Uri = path
        .parse()
        .map_err(|e| ClientError::Request(format!("{path}: {e}")))?;
    let header = |v: &str| {
        HeaderValue::from_str(v).map_err(|e| ClientError::Request(format!("header {v:?}: {e}")))
    };
    let mut headers = HeaderMap::new();
    if !body.is_empty() {
        headers.insert(http::header::CONTENT_TYPE, header("application/json")?);
    }
    headers.insert("content-digest", header(&httpsig::content_digest(body))?);
    let (input, signature) = httpsig::sign(
        &Message {
            method,
            uri: &uri,
            headers: &headers,
            scheme: "http",
        },
        &SignOptions {
            label: "sig1",
            components: &COMPONENTS,
            created,
            expires: None,
            nonce: Some(nonce),
            keyid,
        },
        key,
    )?;
    headers.insert("signature-input", header(&input)?);
    headers.insert("signature", header(&signature)?);
    Ok(headers)
}

/// A response: status, JSON body (or `null`), `Location`.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: u16,
    pub body: serde_json::Value,
    pub text: String,
    pub location: Option<String>,
}

/// A client of one node's HTTP API.
pub struct ApiClient {
    base: String,
    agent: ureq::Agent,
    /// The `keyid` signed requests carry instead of the key id.
    party: Option<String>,
}

impl ApiClient {
    /// `base` is like `http://127.0.0.1:8053`.
    pub fn new(base: &str) -> ApiClient {
        ApiClient::with_timeout(base, Duration::from_secs(30))
    }

    /// A client whose every request gives up after `timeout`.
    pub fn with_timeout(base: &str, timeout: Duration) -> ApiClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
            party: None,
        }
    }

    /// Signs as the party `id` (its identifier as `keyid`), so a node other
    /// than the one that registered it resolves its key through the
    /// federation.
    pub fn signing_as(mut self, id: Option<&Identifier>) -> ApiClient {
        self.party = id.map(ToString::to_string);
        self
    }

    /// Sends a request with the given headers.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<ApiResponse, ClientError> {
        let url = format!("{}{path}", self.base);
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(body)
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let transport = |e: ureq::Error| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
        let mut response = self.agent.run(request).map_err(transport)?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = response.body_mut().read_to_string().map_err(transport)?;
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Ok(ApiResponse {
            status,
            body,
            text,
            location,
        })
    }

    /// An unsigned request (reads).
    pub fn get(&self, path: &str) -> Result<ApiResponse, ClientError> {
        self.send("GET", path, HeaderMap::new(), Vec::new())
    }

    /// An unsigned read of a binary body (log tiles): status and bytes.
    pub fn get_bytes(&self, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
        let url = format!("{}{path}", self.base);
        let transport = |e: ureq::Error| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
        let mut response = self.agent.get(&url).call().map_err(transport)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_vec()
            .map_err(transport)?;
        Ok((status, body))
    }

    /// A signed request with a fresh nonce and the current time.
    ///
    /// When the connection fails, the very same signed request is sent once
    /// more: the node carries a nonce out at most once, so this cannot make
    /// a second identifier. If the first attempt had in fact been carried
    /// out, the node answers `409 replayed_nonce` naming what it made, and
    /// that record is fetched and returned as the answer.
    pub fn signed(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        key: &NodeKey,
    ) -> Result<ApiResponse, ClientError> {
        self.signed_body(method, path, body, key)
    }

    /// [`ApiClient::signed`] for any body that serialises to JSON.
    fn signed_body<T: Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: Option<&T>,
        key: &NodeKey,
    ) -> Result<ApiResponse, ClientError> {
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Request(e.to_string()))?,
            None => Vec::new(),
        };
        let created = i64::try_from(crate::clock::system_now()).unwrap_or(i64::MAX);
        let keyid = match &self.party {
            Some(p) => p.clone(),
            None => key.public().key_id().to_string(),
        };
        let headers = signed_headers_as(method, path, &bytes, key, &keyid, &nonce()?, created)?;
        match self.send(method, path, headers.clone(), bytes.clone()) {
            Err(ClientError::Transport { .. }) => {
                let again = self.send(method, path, headers, bytes)?;
                let done_before = again.status == 409
                    && field(&again.body, "error") == Some(Code::ReplayedNonce.as_str());
                match again.location.as_deref() {
                    Some(location) if done_before => {
                        // A read is safe to repeat (a pooled connection may
                        // have gone stale meanwhile).
                        let mut original = match self.get(location) {
                            Err(ClientError::Transport { .. }) => self.get(location)?,
                            other => other?,
                        };
                        // A withdrawal's record reads as 410 Gone: that is
                        // what the original DELETE achieved.
                        if original.status == 410 && method == "DELETE" {
                            original.status = 200;
                        }
                        Ok(original)
                    }
                    _ => Ok(again),
                }
            }
            first => first,
        }
    }
}

/// A string field of a JSON answer body.
fn field<'a>(body: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(serde_json::Value::as_str)
}

/// A `2xx` answer, or the node's refusal as an [`ApiFailure`].
fn success(request: &str, r: ApiResponse) -> Result<ApiResponse, ClientError> {
    if (200..300).contains(&r.status) {
        return Ok(r);
    }
    let code = field(&r.body, "error").unwrap_or("error").to_string();
    let reason = field(&r.body, "reason").unwrap_or(&r.text).to_string();
    Err(ApiFailure {
        request: request.to_string(),
        status: r.status,
        code,
        reason,
        last_seq: r.body.get("last_seq").and_then(serde_json::Value::as_u64),
    }
    .into())
}

/// The record in a node's answer (its `encoded` field).
fn record_reply(request: &str, r: ApiResponse) -> Result<RecordReply, ClientError> {
    let answer = |reason: String| ClientError::Answer {
        request: request.to_string(),
        reason,
    };
    let hex = field(&r.body, "encoded").ok_or_else(|| answer("no \"encoded\" record".into()))?;
    let bytes = crate::ident::delegation::from_hex(hex)
        .ok_or_else(|| answer("\"encoded\" is not hex".into()))?;
    let record = SignedRecord::decode(&bytes).map_err(|e| answer(e.to_string()))?;
    Ok(RecordReply {
        record,
        json: r.body,
        location: r.location,
    })
}

/// Typed calls: each sends the request struct the server parses and
/// answers the record it wrote.
impl ApiClient {
    fn call<T: Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: Option<&T>,
        key: &NodeKey,
    ) -> Result<RecordReply, ClientError> {
        let request = format!("{method} {path}");
        let r = success(&request, self.signed_body(method, path, body, key)?)?;
        record_reply(&request, r)
    }

    /// `POST /v1/providers`, signed by the key being registered (the
    /// request's `public_key`); answers the provider's `PV` record.
    pub fn register_provider(
        &self,
        request: &ProviderRequest,
        key: &NodeKey,
    ) -> Result<RecordReply, ClientError> {
        self.call("POST", "/v1/providers", Some(request), key)
    }

    /// `POST /v1/users`, signed by the key being registered; answers the
    /// buyer's `US` record.
    pub fn register_user(
        &self,
        request: &ProviderRequest,
        key: &NodeKey,
    ) -> Result<RecordReply, ClientError> {
        self.call("POST", "/v1/users", Some(request), key)
    }

    /// `POST /v1/admin/users/{id}/approve`, signed by the admin key.
    pub fn approve_user(
        &self,
        id: &Identifier,
        admin: &NodeKey,
    ) -> Result<RecordReply, ClientError> {
        let path = format!("/v1/admin/users/{id}/approve");
        self.call::<()>("POST", &path, None, admin)
    }

    /// `POST /v1/transactions`: a buyer's proposal, signed by the buyer.
    pub fn propose(
        &self,
        request: &crate::trade::ProposeRequest,
        key: &NodeKey,
    ) -> Result<TxReply, ClientError> {
        let path = "/v1/transactions";
        let name = format!("POST {path}");
        tx_reply(
            &name,
            success(&name, self.signed_body("POST", path, Some(request), key)?)?,
        )
    }

    /// `POST /v1/transactions/{id}/{step}`, signed by the party whose step
    /// it is.
    pub fn tx_step(
        &self,
        id: &Identifier,
        step: crate::trade::StepKind,
        request: &crate::trade::StepRequest,
        key: &NodeKey,
    ) -> Result<TxReply, ClientError> {
        let path = format!("/v1/transactions/{id}/{}", step.as_str());
        let name = format!("POST {path}");
        tx_reply(
            &name,
            success(&name, self.signed_body("POST", &path, Some(request), key)?)?,
        )
    }

    /// `POST /v1/select` (unsigned): the ranked candidates, the reasons
    /// counted and the hops, as JSON.
    pub fn select(
        &self,
        requirement: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let body =
            serde_json::to_vec(requirement).map_err(|e| ClientError::Request(e.to_string()))?;
        Ok(success(
            "POST /v1/select",
            self.send("POST", "/v1/select", headers, body)?,
        )?
        .body)
    }

    /// `POST /v1/schedule`, signed by the buyer: selects and proposes on
    /// the best candidate. Answers the transaction (held by
    /// `scheduled_by_api` when a child node took it) and the whole answer.
    pub fn schedule(
        &self,
        requirement: &serde_json::Value,
        key: &NodeKey,
    ) -> Result<(TxReply, serde_json::Value), ClientError> {
        let name = "POST /v1/schedule";
        let r = success(
            name,
            self.signed_body("POST", "/v1/schedule", Some(requirement), key)?,
        )?;
        let whole = r.body.clone();
        let tx = ApiResponse {
            status: r.status,
            body: r.body.get("transaction").cloned().unwrap_or_default(),
            text: String::new(),
            location: r.location,
        };
        Ok((tx_reply(name, tx)?, whole))
    }

    /// `GET /v1/transactions/{id}`, signed by a party or the admin.
    pub fn tx_get(&self, id: &Identifier, key: &NodeKey) -> Result<TxReply, ClientError> {
        let path = format!("/v1/transactions/{id}");
        let name = format!("GET {path}");
        tx_reply(
            &name,
            success(&name, self.signed_body::<()>("GET", &path, None, key)?)?,
        )
    }

    /// `GET /v1/transactions?…`, signed: the signer's transactions (the
    /// admin's: all); `query` is the query string without `?`.
    pub fn tx_list(&self, query: &str, key: &NodeKey) -> Result<serde_json::Value, ClientError> {
        let path = if query.is_empty() {
            "/v1/transactions".to_string()
        } else {
            format!("/v1/transactions?{query}")
        };
        let name = format!("GET {path}");
        Ok(success(&name, self.signed_body::<()>("GET", &path, None, key)?)?.body)
    }

    /// `POST /v1/identifiers`, signed by an active provider's key.
    pub fn register(
        &self,
        request: &IssueRequest,
        key: &NodeKey,
    ) -> Result<RecordReply, ClientError> {
        self.call("POST", "/v1/identifiers", Some(request), key)
    }

    /// `PUT /v1/identifiers/{id}`: the owner replaces the values.
    pub fn update(
        &self,
        id: &Identifier,
        request: &UpdateRequest,
        key: &NodeKey,
    ) -> Result<RecordReply, ClientError> {
        self.call("PUT", &format!("/v1/identifiers/{id}"), Some(request), key)
    }

    /// `POST /v1/identifiers/{id}/key`: a provider or buyer replaces its
    /// key, signed by the current one (or by the admin's).
    pub fn replace_key(
        &self,
        id: &Identifier,
        request: &crate::api::body::KeyRequest,
        key: &NodeKey,
    ) -> Result<RecordReply, ClientError> {
        self.call(
            "POST",
            &format!("/v1/identifiers/{id}/key"),
            Some(request),
            key,
        )
    }

    /// `DELETE /v1/identifiers/{id}`: the owner withdraws it.
    pub fn withdraw(&self, id: &Identifier, key: &NodeKey) -> Result<RecordReply, ClientError> {
        self.call::<()>("DELETE", &format!("/v1/identifiers/{id}"), None, key)
    }

    /// `POST /v1/admin/providers/{id}/approve`, signed by the admin key.
    pub fn approve(&self, id: &Identifier, admin: &NodeKey) -> Result<RecordReply, ClientError> {
        let path = format!("/v1/admin/providers/{id}/approve");
        self.call::<()>("POST", &path, None, admin)
    }

    /// `POST /v1/admin/delegations`, signed by the admin key; answers the
    /// delegation record and the child's chain.
    pub fn delegate(
        &self,
        request: &DelegationRequest,
        admin: &NodeKey,
    ) -> Result<Delegated, ClientError> {
        let path = "/v1/admin/delegations";
        let name = format!("POST {path}");
        let r = success(&name, self.signed_body("POST", path, Some(request), admin)?)?;
        delegated(&name, r)
    }

    /// `POST /v1/delegations/{prefix}/key`: the child's new node key,
    /// signed by its key in force (or the parent's admin key); the answer
    /// carries the child's new chain, root first.
    pub fn roll(
        &self,
        prefix: &Prefix,
        request: &crate::api::body::RollRequest,
        signer: &NodeKey,
    ) -> Result<Delegated, ClientError> {
        let path = format!("/v1/delegations/{prefix}/key");
        let name = format!("POST {path}");
        let r = success(
            &name,
            self.signed_body("POST", &path, Some(request), signer)?,
        )?;
        delegated(&name, r)
    }

    /// `DELETE /v1/admin/delegations/{prefix}`, signed by the admin key.
    pub fn revoke(&self, prefix: &Prefix, admin: &NodeKey) -> Result<RecordReply, ClientError> {
        let path = format!("/v1/admin/delegations/{prefix}");
        self.call::<()>("DELETE", &path, None, admin)
    }

    /// `POST /v1/admin/backup`, signed by the admin key: the node's whole
    /// store as of one moment, a redb file, copied into `out` as it
    /// arrives (never held in memory). Not sent a second time when the
    /// connection fails: the first attempt spent the nonce.
    pub fn backup(
        &self,
        admin: &NodeKey,
        out: &mut dyn std::io::Write,
    ) -> Result<BackupReply, ClientError> {
        let path = "/v1/admin/backup";
        let name = format!("POST {path}");
        let url = format!("{}{path}", self.base);
        let transport = |e: &dyn std::fmt::Display| ClientError::Transport {
            url: url.clone(),
            reason: e.to_string(),
        };
        let created = i64::try_from(crate::clock::system_now()).unwrap_or(i64::MAX);
        let headers = signed_headers("POST", path, &[], admin, &nonce()?, created)?;
        let mut builder = http::Request::builder().method(Method::POST).uri(&url);
        for (k, v) in &headers {
            builder = builder.header(k, v);
        }
        let request = builder
            .body(Vec::new())
            .map_err(|e| ClientError::Request(e.to_string()))?;
        let mut response = self.agent.run(request).map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response
                .body_mut()
                .read_to_string()
                .map_err(|e| transport(&e))?;
            let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            let failed = ApiResponse {
                status,
                body,
                text,
                location: None,
            };
            return Err(success(&name, failed)
                .err()
                .unwrap_or_else(|| ClientError::Answer {
                    request: name.clone(),
                    reason: format!("status {status}"),
                }));
        }
        let count = |h: &str| {
            response
                .headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let records = count(crate::api::backup::RECORDS_HEADER);
        let log_size = count(crate::api::backup::LOG_SIZE_HEADER);
        let mut reader = response.body_mut().as_reader();
        let bytes = std::io::copy(&mut reader, out).map_err(|e| transport(&e))?;
        Ok(BackupReply {
            bytes,
            records,
            log_size,
        })
    }

    /// `POST /v1/reports`, signed by an active provider's key. A report
    /// whose first attempt was carried out although its answer was lost
    /// comes back `out_of_sequence` with `last_seq` equal to its own: that
    /// is success.
    pub fn report(&self, body: &ReportBody, key: &NodeKey) -> Result<ReportReply, ClientError> {
        let name = "POST /v1/reports";
        let r = self.signed_body("POST", "/v1/reports", Some(body), key)?;
        let r = match success(name, r) {
            Err(ClientError::Api(f))
                if f.is(Code::OutOfSequence) && f.last_seq == Some(body.seq) =>
            {
                return Ok(ReportReply {
                    seq: body.seq,
                    resources: body.resources.len(),
                    at: None,
                });
            }
            other => other?,
        };
        serde_json::from_value(r.body).map_err(|e| ClientError::Answer {
            request: name.into(),
            reason: e.to_string(),
        })
    }

    /// `GET /v1/situation` with `query` (`region`, `class`, `model`,
    /// `group_by`): the node's JSON as it wrote it, and read into a
    /// [`SituationReply`].
    pub fn situation(
        &self,
        query: &[(&str, &str)],
    ) -> Result<(SituationReply, serde_json::Value), ClientError> {
        let mut path = "/v1/situation".to_string();
        if !query.is_empty() {
            path.push('?');
            path.push_str(
                &form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query)
                    .finish(),
            );
        }
        let name = format!("GET {path}");
        let r = success(&name, self.get(&path)?)?;
        let reply = serde_json::from_value(r.body.clone()).map_err(|e| ClientError::Answer {
            request: name,
            reason: e.to_string(),
        })?;
        Ok((reply, r.body))
    }

    /// `GET /v1/identifiers?owner=`: every resource `owner` holds, walking
    /// the pages.
    pub fn owned(&self, owner: &Identifier) -> Result<Vec<RecordReply>, ClientError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/v1/identifiers?owner={owner}&limit=500");
            if let Some(a) = &after {
                path.push_str("&after=");
                path.push_str(a);
            }
            let name = format!("GET {path}");
            let r = success(&name, self.get(&path)?)?;
            let items = r
                .body
                .get("identifiers")
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default();
            for item in items {
                out.push(record_reply(
                    &name,
                    ApiResponse {
                        status: r.status,
                        body: item,
                        text: String::new(),
                        location: None,
                    },
                )?);
            }
            match r.body.get("next").and_then(serde_json::Value::as_str) {
                Some(next) => after = Some(next.to_string()),
                None => return Ok(out),
            }
        }
    }
}

/// A backup as the node sent it: the bytes received and the counts the
/// node announced (`cpid-backup-records`, `cpid-backup-log-size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupReply {
    pub bytes: u64,
    pub records: Option<u64>,
    pub log_size: Option<u64>,
}

/// What a node answered to an accepted report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ReportReply {
    pub seq: u64,
    pub resources: usize,
    /// Node time of acceptance (absent when learnt from a retry).
    #[serde(default)]
    pub at: Option<u64>,
}

/// A delegation record answer and the chain it carries, root first.
fn delegated(name: &str, r: ApiResponse) -> Result<Delegated, ClientError> {
    let chain: Vec<String> =
        serde_json::from_value(r.body.get("chain").cloned().unwrap_or_default()).map_err(|e| {
            ClientError::Answer {
                request: name.to_string(),
                reason: format!("chain: {e}"),
            }
        })?;
    Ok(Delegated {
        reply: record_reply(name, r)?,
        chain: ChainFile { chain },
    })
}
