//! The one place that checks signed requests (DESIGN §4).
//!
//! A mutation is accepted only when its body fits the limit, is JSON, its
//! RFC 9421 signature covers `@method`, `@path` (or `@target-uri`) and
//! `content-digest`, carries `created` (within the node's window), `nonce`
//! and `keyid`, the RFC 9530 digest matches the body, the key is known and
//! the signature verifies (batched with concurrent requests, see
//! [`super::batch`]). The nonce is not consumed
//! here: it travels with the write and the store consumes it in the same
//! commit, so a request changes the node at most once, even across a
//! restart, and a request that is refused consumes nothing.
//!
//! Who may sign what is decided here too: a provider registration is
//! signed by the key it registers ([`verify_self_signed`]), a resource
//! change by an active provider ([`verify_provider`]), an approval or a
//! delegation by the node's admin key ([`verify_admin`]). Handlers call one
//! of these and never look at signatures, nonces or keys themselves.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, request::Parts};

use super::error::{ApiError, Code};
use super::state::ApiState;
use crate::api::httpsig::{self, Message, SigError};
use crate::events::Kind;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::keys::{KeyId, PublicKey};
use crate::ident::record::RecordStatus;
use crate::registry::ProviderKey;
use crate::store::Nonce;
use crate::telemetry;

/// Longest nonce accepted.
const MAX_NONCE_LEN: usize = 128;

/// A request whose body has been read within the limit, not yet verified.
pub struct SignedBody {
    pub parts: Parts,
    pub body: Bytes,
}

impl FromRequest<std::sync::Arc<ApiState>> for SignedBody {
    type Rejection = ApiError;

    async fn from_request(
        req: Request,
        state: &std::sync::Arc<ApiState>,
    ) -> Result<Self, Self::Rejection> {
        let limit = state.max_body_bytes;
        let (parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                too_large(limit)
            } else {
                ApiError::new(Code::BodyUnreadable, format!("reading the body: {e}"))
            }
        })?;
        if !body.is_empty() {
            let json = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                return Err(ApiError::new(
                    Code::UnsupportedMediaType,
                    "request bodies must be application/json",
                ));
            }
        }
        Ok(SignedBody { parts, body })
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        Code::BodyTooLarge,
        format!("request bodies are limited to {limit} bytes"),
    )
}

/// A request whose signature verified.
#[derive(Debug)]
pub struct Verified {
    pub key: PublicKey,
    /// The nonce to consume with the write this request makes.
    pub nonce: Nonce,
}

/// Who sent a request, as security events name it: the client's address
/// when the listener knows it.
pub fn source(parts: &Parts) -> String {
    peer(parts).map_or_else(|| "unknown".to_string(), |ip| ip.to_string())
}

fn peer(parts: &Parts) -> Option<std::net::IpAddr> {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Checks the signature of `req`; `resolve` maps the `keyid` to the key
/// that must have signed (or refuses the key).
pub async fn verify(
    state: &ApiState,
    req: &SignedBody,
    resolve: impl FnOnce(&str) -> Result<PublicKey, ApiError>,
) -> Result<Verified, ApiError> {
    verify_parsed(state, req, httpsig::parse(&req.parts.headers), resolve).await
}

/// [`verify`] for a caller that has parsed the signature headers already
/// (to learn the `keyid` first).
async fn verify_parsed(
    state: &ApiState,
    req: &SignedBody,
    parsed: Result<httpsig::SignedRequest, SigError>,
    resolve: impl FnOnce(&str) -> Result<PublicKey, ApiError>,
) -> Result<Verified, ApiError> {
    let result = check(state, req, parsed, resolve).await;
    // A rate-limited request was counted and reported by `api::limits`.
    if let Err(e) = &result
        && e.code != Code::RateLimited
    {
        metrics::counter!(telemetry::SIGNATURE_FAILURES, "reason" => e.code.as_str()).increment(1);
        tracing::info!(error = %e, path = %req.parts.uri.path(), "signed request refused");
        let kind = if e.code == Code::ReplayedNonce {
            Kind::Replay
        } else {
            Kind::SignatureFailure
        };
        state.event(kind, &source(&req.parts), req.parts.uri.path(), &e.reason);
    }
    result
}

async fn check(
    state: &ApiState,
    req: &SignedBody,
    parsed: Result<httpsig::SignedRequest, SigError>,
    resolve: impl FnOnce(&str) -> Result<PublicKey, ApiError>,
) -> Result<Verified, ApiError> {
    let headers = &req.parts.headers;
    let signed = parsed?;
    let p = &signed.params;
    let covers = |c: &str| p.components.iter().any(|x| x == c);
    for (needed, present) in [
        ("\"@method\"", covers("@method")),
        (
            "\"@path\" or \"@target-uri\"",
            covers("@path") || covers("@target-uri"),
        ),
        ("\"content-digest\"", covers("content-digest")),
    ] {
        if !present {
            return Err(ApiError::new(
                Code::SignatureCoverage,
                format!("the signature must cover {needed}"),
            ));
        }
    }
    if let Some(alg) = &p.alg
        && alg != httpsig::ALG_ED25519
    {
        return Err(SigError::Algorithm(alg.clone()).into());
    }
    let created = p.created.ok_or_else(|| {
        ApiError::new(
            Code::MissingCreated,
            "the signature has no created parameter",
        )
    })?;
    let now = i64::try_from(state.registry.clock().now()).unwrap_or(i64::MAX);
    let window = i64::try_from(state.signature_window_secs).unwrap_or(i64::MAX);
    if created.abs_diff(now) > window.unsigned_abs() {
        return Err(ApiError::new(
            Code::StaleRequest,
            format!(
                "created={created} is {} s from the node's clock; the window is ±{window} s",
                created.abs_diff(now)
            ),
        ));
    }
    if let Some(expires) = p.expires
        && expires < now
    {
        return Err(ApiError::new(
            Code::ExpiredRequest,
            format!("the signature expired at {expires}"),
        ));
    }
    let nonce = p
        .nonce
        .as_deref()
        .ok_or_else(|| ApiError::new(Code::MissingNonce, "the signature has no nonce"))?;
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(ApiError::new(
            Code::InvalidNonce,
            format!("a nonce has 1 to {MAX_NONCE_LEN} characters"),
        ));
    }
    let keyid = p
        .keyid
        .as_deref()
        .ok_or_else(|| ApiError::new(Code::MissingKeyid, "the signature has no keyid"))?;
    httpsig::check_content_digest(headers, &req.body)?;
    let key = resolve(keyid)?;
    let message = Message {
        method: req.parts.method.as_str(),
        uri: &req.parts.uri,
        headers,
        scheme: "http",
    };
    let (base, signature) = httpsig::prepare(&message, &signed)?;
    if !state
        .batcher
        .verify(base.into_bytes(), signature, key)
        .await
    {
        return Err(SigError::BadSignature.into());
    }
    // The per-key rate, by the verified key (see `api::limits` for why
    // not before the signature is checked).
    state
        .limits
        .check_key(key.key_id(), peer(&req.parts), req.parts.uri.path())?;
    // Scoped by the verified key, not by how the keyid was spelled.
    let nonce = Nonce {
        key: format!("{}/{nonce}", key.key_id()),
        // Past this the request is stale anyway, so the nonce can go.
        expires: u64::try_from(created.saturating_add(window).saturating_add(1)).unwrap_or(0),
        answer: String::new(),
    };
    if let Some(answer) = state.registry.store().nonce_answer(&nonce.key)? {
        return Err(ApiError::replayed(Some(answer)));
    }
    Ok(Verified { key, nonce })
}

/// A key id as cpid writes it: exactly 32 lower-case hex digits.
fn parse_key_id(keyid: &str) -> Option<KeyId> {
    let canonical = keyid.len() == 32
        && keyid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !canonical {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(keyid.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(KeyId(out))
}

/// The registered provider that owns `keyid`, whatever its status.
fn provider_of(state: &ApiState, keyid: &str) -> Result<ProviderKey, ApiError> {
    parse_key_id(keyid)
        .and_then(|id| state.registry.provider_key(&id))
        .ok_or_else(|| {
            ApiError::new(
                Code::UnknownKey,
                format!("keyid {keyid:?} is not the key of a registered provider or buyer"),
            )
        })
}

/// Verifies a provider registration: it is signed by the key it registers.
pub async fn verify_self_signed(
    s: &ApiState,
    req: &SignedBody,
    key: PublicKey,
) -> Result<Verified, ApiError> {
    let own_id = key.key_id().to_string();
    verify(s, req, |keyid| {
        if keyid == own_id {
            Ok(key)
        } else {
            Err(ApiError::new(
                Code::UnknownKey,
                format!("a registration is signed by the key it registers: keyid must be {own_id}"),
            ))
        }
    })
    .await
}

/// Verifies a request signed by an active provider; returns the provider.
pub async fn verify_provider(
    s: &ApiState,
    req: &SignedBody,
) -> Result<(Identifier, Verified), ApiError> {
    let mut provider = None;
    let verified = verify(s, req, |keyid| {
        let p = provider_of(s, keyid)?;
        let key = p.key;
        provider = Some(p);
        Ok(key)
    })
    .await?;
    let p = provider.ok_or_else(|| ApiError::internal("no provider after verification"))?;
    if p.provider.class() != Class::Pv {
        return Err(ApiError::new(
            Code::WrongRole,
            format!("{} is a buyer; this request is a provider's", p.provider),
        ));
    }
    // Only a verified request learns the provider's status.
    if p.status != RecordStatus::Active {
        return Err(ApiError::new(
            Code::InactiveKey,
            format!(
                "provider {} is {}; it cannot act until it is active",
                p.provider,
                p.status.as_str()
            ),
        ));
    }
    Ok((p.provider, verified))
}

/// Verifies a request signed by an active buyer (`US`); returns the buyer.
pub async fn verify_buyer(
    s: &ApiState,
    req: &SignedBody,
) -> Result<(Identifier, Verified), ApiError> {
    let (signer, verified) = verify_party(s, req).await?;
    match signer {
        Signer::Party(id) if id.class() == Class::Us => Ok((id, verified)),
        Signer::Party(id) => Err(ApiError::new(
            Code::WrongRole,
            format!("{id} is a provider; this request is a buyer's (register with POST /v1/users)"),
        )),
        Signer::Admin => Err(ApiError::new(
            Code::WrongRole,
            "the admin key is not a buyer's; this request is a buyer's",
        )),
    }
}

/// Who signed a request that any active party or the admin may sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    Admin,
    /// An active provider (`PV`) or buyer (`US`).
    Party(Identifier),
}

/// Verifies a request signed by the admin, by an active provider or buyer
/// of this node (`keyid` its key id), or by a party registered at another
/// node of the federation (`keyid` its identifier, e.g. `86/US-000001-X`):
/// that party's record and key are resolved and verified from the root key.
pub async fn verify_party(s: &ApiState, req: &SignedBody) -> Result<(Signer, Verified), ApiError> {
    let admin_id = s.admin.get().key_id().to_string();
    // A keyid that names an identifier is a party of another node: its key
    // is found before the signature is checked against it.
    let parsed = httpsig::parse(&req.parts.headers);
    let foreign = match parsed
        .as_ref()
        .ok()
        .and_then(|r| r.params.keyid.as_deref())
        .and_then(|k| Identifier::parse(k).ok())
    {
        Some(id) => Some(foreign_party(s, &id).await?),
        None => None,
    };
    let mut party = None;
    let verified = verify_parsed(s, req, parsed, |keyid| {
        if let Some(p) = foreign {
            let key = p.key;
            party = Some(p);
            return Ok(key);
        }
        if keyid == admin_id {
            return Ok(s.admin.get());
        }
        let p = provider_of(s, keyid)?;
        let key = p.key;
        party = Some(p);
        Ok(key)
    })
    .await?;
    let Some(p) = party else {
        return Ok((Signer::Admin, verified));
    };
    if p.status != RecordStatus::Active {
        return Err(ApiError::new(
            Code::InactiveKey,
            format!(
                "{} is {}; it cannot act until it is active",
                p.provider,
                p.status.as_str()
            ),
        ));
    }
    Ok((Signer::Party(p.provider), verified))
}

/// The key of a provider or buyer named by identifier: from this node's
/// index when it is registered here, else resolved through the federation.
async fn foreign_party(s: &ApiState, id: &Identifier) -> Result<ProviderKey, ApiError> {
    let unknown = |why: String| ApiError::new(Code::UnknownKey, format!("keyid {id}: {why}"));
    if !matches!(id.class(), Class::Pv | Class::Us) {
        return Err(unknown(
            "only a provider (PV) or buyer (US) signs by identifier".into(),
        ));
    }
    let directory = s.directory.as_ref().ok_or_else(|| {
        unknown(
            "this node has no federation root configured to resolve other nodes' parties".into(),
        )
    })?;
    let found = directory
        .party(id)
        .await
        .map_err(|e| unknown(format!("cannot be resolved and verified: {e}")))?
        .ok_or_else(|| unknown("no active record with a key in the federation".into()))?;
    Ok(ProviderKey {
        provider: found.id,
        status: found.status,
        key: found.key,
    })
}

/// Verifies a request signed by the node's admin key; `what` completes
/// "only the node's admin key …" in the refusal.
pub async fn verify_admin(
    s: &ApiState,
    req: &SignedBody,
    what: &str,
) -> Result<Verified, ApiError> {
    let admin_id = s.admin.get().key_id().to_string();
    let mut is_admin = false;
    let verified = verify(s, req, |keyid| {
        if keyid == admin_id {
            is_admin = true;
            Ok(s.admin.get())
        } else {
            // A provider's key is verified, then refused as not the admin's.
            provider_of(s, keyid).map(|p| p.key)
        }
    })
    .await?;
    if !is_admin {
        return Err(ApiError::new(
            Code::NotAdmin,
            format!("only the node's admin key {what}"),
        ));
    }
    Ok(verified)
}
