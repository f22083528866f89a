//! A client for the HTTP API that signs its requests (RFC 9421, covering
//! `@method`, `@path` and `content-digest`, with `created`, `nonce`,
//! `keyid` and `alg`), for the CLI, the tests and the benchmark.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Uri};

use crate::api::httpsig::{self, Message, SignOptions};
use crate::ident::keys::NodeKey;

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
    let keyid = key.public().key_id().to_string();
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
            keyid: &keyid,
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
}

impl ApiClient {
    /// `base` is like `http://127.0.0.1:8053`.
    pub fn new(base: &str) -> ApiClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        ApiClient {
            base: base.trim_end_matches('/').to_string(),
            agent: ureq::Agent::new_with_config(config),
        }
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
        let bytes = match body {
            Some(b) => serde_json::to_vec(b).map_err(|e| ClientError::Request(e.to_string()))?,
            None => Vec::new(),
        };
        let created = i64::try_from(crate::clock::system_now()).unwrap_or(i64::MAX);
        let headers = signed_headers(method, path, &bytes, key, &nonce()?, created)?;
        match self.send(method, path, headers.clone(), bytes.clone()) {
            Err(ClientError::Transport { .. }) => {
                let again = self.send(method, path, headers, bytes)?;
                let done_before = again.status == 409 && again.body["error"] == "replayed_nonce";
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
