//! The one mapping from a failure to an HTTP status and a JSON body
//! `{"error": code, "reason": text}`, for the node's API and the gateway's
//! HTTP reader alike.
//!
//! Every error code cpid sends is a [`Code`], defined once in the table
//! below together with its status: a handler says *what* went wrong
//! (`ApiError::new(Code::NotOwner, reason)`) and only this module decides
//! the status and the code string. Codes are stable and documented in
//! `schema/openapi.yaml` (a test holds [`Code::ALL`] and the spec
//! together); reasons are for people. Lower layers' errors
//! ([`SigError`], [`StoreError`], [`RegistryError`]) are mapped to a code
//! here and nowhere else.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::httpsig::{Field, SigError};
use crate::registry::RegistryError;
use crate::store::StoreError;

/// Declares [`Code`] with its status and wire string, and [`Code::ALL`],
/// from one table, so no code can be added without a status and a name.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident => ($status:ident, $text:literal), )*) => {
        /// What went wrong, as the API reports it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The HTTP status this failure is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }

            /// The stable string in the body's `error` field.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    // The request itself.
    /// No such endpoint.
    NoRoute => (NOT_FOUND, "no_route"),
    /// The endpoint does not take that method.
    MethodNotAllowed => (METHOD_NOT_ALLOWED, "method_not_allowed"),
    BodyUnreadable => (BAD_REQUEST, "body_unreadable"),
    BodyTooLarge => (PAYLOAD_TOO_LARGE, "body_too_large"),
    /// The body did not arrive within `[http.limits] body_timeout_ms` of
    /// the request's head; the connection is closed.
    BodyTimeout => (REQUEST_TIMEOUT, "body_timeout"),
    /// Too many requests from this address or signed by this key
    /// (`[http.limits]`); `Retry-After` says when to try again.
    RateLimited => (TOO_MANY_REQUESTS, "rate_limited"),
    UnsupportedMediaType => (UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    /// The body is not JSON.
    InvalidJson => (BAD_REQUEST, "invalid_json"),
    /// The body is JSON of the wrong shape.
    InvalidRequest => (UNPROCESSABLE_ENTITY, "invalid_request"),
    /// A field or value is not what its type promises.
    InvalidValue => (UNPROCESSABLE_ENTITY, "invalid_value"),
    InvalidIdentifier => (BAD_REQUEST, "invalid_identifier"),
    InvalidPrefix => (BAD_REQUEST, "invalid_prefix"),
    /// A query parameter is not one the endpoint takes.
    InvalidQuery => (BAD_REQUEST, "invalid_query"),

    // The signature (RFC 9421) and digest (RFC 9530).
    MissingSignature => (UNAUTHORIZED, "missing_signature"),
    MalformedSignature => (UNAUTHORIZED, "malformed_signature"),
    MissingDigest => (BAD_REQUEST, "missing_digest"),
    MalformedDigest => (BAD_REQUEST, "malformed_digest"),
    DigestMismatch => (BAD_REQUEST, "digest_mismatch"),
    BadComponent => (UNAUTHORIZED, "bad_component"),
    UnsupportedAlgorithm => (UNAUTHORIZED, "unsupported_algorithm"),
    BadSignature => (UNAUTHORIZED, "bad_signature"),
    /// The signature does not cover what it must.
    SignatureCoverage => (UNAUTHORIZED, "signature_coverage"),
    MissingCreated => (UNAUTHORIZED, "missing_created"),
    /// Outside the node's time window (or it passed before the commit).
    StaleRequest => (UNAUTHORIZED, "stale_request"),
    ExpiredRequest => (UNAUTHORIZED, "expired_request"),
    MissingNonce => (UNAUTHORIZED, "missing_nonce"),
    InvalidNonce => (UNAUTHORIZED, "invalid_nonce"),
    MissingKeyid => (UNAUTHORIZED, "missing_keyid"),
    /// The keyid is not a registered provider's (nor the admin's).
    UnknownKey => (UNAUTHORIZED, "unknown_key"),
    /// The nonce was used before: the request was carried out once.
    ReplayedNonce => (CONFLICT, "replayed_nonce"),

    // Who may do what.
    InactiveKey => (FORBIDDEN, "inactive_key"),
    NotAdmin => (FORBIDDEN, "not_admin"),
    NotOwner => (FORBIDDEN, "not_owner"),
    ClassNotAllowed => (FORBIDDEN, "class_not_allowed"),
    /// A transaction step signed by someone other than the party whose
    /// step it is.
    NotParty => (FORBIDDEN, "not_party"),
    /// A buyer's key on a provider's request, or the other way round.
    WrongRole => (FORBIDDEN, "wrong_role"),

    // The registry's state.
    KeyRegistered => (CONFLICT, "key_registered"),
    NotPending => (CONFLICT, "not_pending"),
    NotAProvider => (UNPROCESSABLE_ENTITY, "not_a_provider"),
    NotDelegated => (NOT_FOUND, "not_delegated"),
    /// A child's key rollover is already in its overlap.
    Rolling => (CONFLICT, "rollover_in_progress"),
    NotFound => (NOT_FOUND, "not_found"),
    Withdrawn => (GONE, "withdrawn"),
    Taken => (CONFLICT, "taken"),
    VersionConflict => (CONFLICT, "version_conflict"),
    OutsidePrefix => (UNPROCESSABLE_ENTITY, "outside_prefix"),
    InvalidRecord => (UNPROCESSABLE_ENTITY, "invalid_record"),
    InvalidDelegation => (UNPROCESSABLE_ENTITY, "invalid_delegation"),
    SerialsExhausted => (INSUFFICIENT_STORAGE, "serials_exhausted"),
    /// A status report whose sequence number is not above the reporter's
    /// last (`last_seq` in the body).
    OutOfSequence => (CONFLICT, "out_of_sequence"),
    /// A status report for a resource that is pending or withdrawn.
    NotActive => (CONFLICT, "not_active"),
    /// A transaction step its current state does not allow (the reason
    /// names the state).
    IllegalStep => (CONFLICT, "illegal_step"),
    /// An acceptance that would book more units than the resource has in
    /// some instant of the window (the reason names the window).
    CapacityConflict => (CONFLICT, "capacity_conflict"),
    /// Concurrent steps kept changing what this one read; retry.
    Busy => (SERVICE_UNAVAILABLE, "busy"),
    /// A schedule whose requirement no resource fits (the reason is the
    /// selection's explanation).
    NothingFits => (CONFLICT, "nothing_fits"),
    /// A schedule whose best candidate is at another node, signed with a
    /// key id that node cannot resolve: sign with the buyer's identifier.
    NeedsIdentifierKeyid => (UNPROCESSABLE_ENTITY, "needs_identifier_keyid"),
    /// A child node did not take a forwarded schedule.
    ForwardFailed => (BAD_GATEWAY, "forward_failed"),

    // The node itself.
    /// A witness submission (C2SP tlog-witness) that cannot be read.
    MalformedCheckpoint => (BAD_REQUEST, "malformed_checkpoint"),
    /// A checkpoint of a log this node does not witness.
    UnknownLog => (NOT_FOUND, "unknown_log"),
    /// A checkpoint without a valid signature by its log's key.
    CheckpointSignature => (FORBIDDEN, "checkpoint_signature"),
    /// A checkpoint that does not extend the one this witness cosigned.
    InconsistentCheckpoint => (UNPROCESSABLE_ENTITY, "inconsistent_checkpoint"),
    StoreUnavailable => (SERVICE_UNAVAILABLE, "store_unavailable"),
    ShuttingDown => (SERVICE_UNAVAILABLE, "shutting_down"),
    /// The listener serves `[http.limits] max_connections` already; sent
    /// on accept, before the request is read, then the connection closes.
    TooManyConnections => (SERVICE_UNAVAILABLE, "too_many_connections"),
    Internal => (INTERNAL_SERVER_ERROR, "internal"),

    // The gateway's reader only (see [`Code::GATEWAY_ONLY`]).
    /// An upstream answer did not verify against the chain of keys.
    VerificationFailed => (BAD_GATEWAY, "verification_failed"),
    /// No upstream answered.
    UpstreamUnavailable => (BAD_GATEWAY, "upstream_unavailable"),
}

impl Code {
    /// Codes only a gateway sends; a node's spec does not list them.
    pub const GATEWAY_ONLY: [Code; 2] = [Code::VerificationFailed, Code::UpstreamUnavailable];
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: Code,
    pub reason: String,
    /// For a replayed request: the identifier the original request wrote.
    pub answer: Option<String>,
    /// For a refused `CP.RESOURCE`: the JSON pointer (RFC 6901) of the bad
    /// field inside the descriptor (`schema/resource.md`).
    pub pointer: Option<String>,
    /// For a status report out of sequence: the reporter's last accepted
    /// sequence number.
    pub last_seq: Option<u64>,
    /// For a rate-limited request: seconds until it may be sent again
    /// (the `Retry-After` header).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: Code, reason: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason: reason.into(),
            answer: None,
            pointer: None,
            last_seq: None,
            retry_after: None,
        }
    }

    /// A request refused by a rate limit, to be retried after `wait`
    /// (rounded up to whole seconds, at least one).
    pub fn rate_limited(reason: impl Into<String>, wait: std::time::Duration) -> ApiError {
        let mut e = ApiError::new(Code::RateLimited, reason);
        let secs = wait
            .as_secs()
            .saturating_add(u64::from(wait.subsec_nanos() > 0));
        e.retry_after = Some(secs.max(1));
        e
    }

    /// The HTTP status (decided by the code).
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// A replayed nonce; with the identifier the original request wrote
    /// when it is known, so a retry learns the first answer.
    pub fn replayed(answer: Option<String>) -> ApiError {
        let mut e = ApiError::new(
            Code::ReplayedNonce,
            "this request's nonce was already used by this key: it was carried out once \
             (see identifier and Location); sign a new request to change anything",
        );
        e.answer = answer.filter(|a| !a.is_empty());
        e
    }

    pub fn internal(reason: impl Into<String>) -> ApiError {
        ApiError::new(Code::Internal, reason)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status().as_u16(),
            self.code,
            self.reason
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code.as_str(), "reason": self.reason });
        if let (Some(pointer), Some(obj)) = (&self.pointer, body.as_object_mut()) {
            obj.insert("pointer".into(), pointer.as_str().into());
        }
        if let (Some(last), Some(obj)) = (self.last_seq, body.as_object_mut()) {
            obj.insert("last_seq".into(), last.into());
        }
        let location = self
            .answer
            .as_ref()
            .map(|id| format!("/v1/identifiers/{id}"));
        if let (Some(id), Some(loc), Some(fields)) = (&self.answer, &location, body.as_object_mut())
        {
            fields.insert("identifier".into(), id.as_str().into());
            fields.insert("location".into(), loc.as_str().into());
        }
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(v) = location.and_then(|l| axum::http::HeaderValue::from_str(&l).ok()) {
            response
                .headers_mut()
                .insert(axum::http::header::LOCATION, v);
        }
        response
    }
}

impl From<&SigError> for Code {
    fn from(e: &SigError) -> Code {
        match e {
            SigError::Missing(Field::ContentDigest) => Code::MissingDigest,
            SigError::Missing(Field::SignatureInput | Field::Signature) => Code::MissingSignature,
            SigError::Malformed {
                field: Field::ContentDigest,
                ..
            } => Code::MalformedDigest,
            SigError::Malformed { .. } => Code::MalformedSignature,
            SigError::Component(_) => Code::BadComponent,
            SigError::Algorithm(_) => Code::UnsupportedAlgorithm,
            SigError::Digest(_) => Code::DigestMismatch,
            SigError::BadSignature => Code::BadSignature,
        }
    }
}

impl From<SigError> for ApiError {
    fn from(e: SigError) -> ApiError {
        ApiError::new(Code::from(&e), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Replay(_) => ApiError::replayed(None),
            StoreError::StaleNonce(_) => ApiError::new(
                Code::StaleRequest,
                "the request's window passed before it could be committed; sign a new request",
            ),
            StoreError::Conflict { .. } => ApiError::new(Code::VersionConflict, e.to_string()),
            StoreError::RowChanged { .. } => ApiError::new(Code::Busy, e.to_string()),
            StoreError::Closed => ApiError::new(Code::ShuttingDown, e.to_string()),
            StoreError::Database(_)
            | StoreError::Corrupt { .. }
            | StoreError::Interrupted
            | StoreError::InUse(_)
            | StoreError::Backup { .. } => {
                tracing::error!(error = %e, "store failure on the HTTP path");
                ApiError::new(Code::StoreUnavailable, e.to_string())
            }
        }
    }
}

impl From<crate::capacity::report::ReportError> for ApiError {
    fn from(e: crate::capacity::report::ReportError) -> ApiError {
        if e.syntax {
            return ApiError::new(Code::InvalidJson, e.reason);
        }
        let mut api = ApiError::new(Code::InvalidValue, e.to_string());
        api.pointer = Some(e.pointer);
        api
    }
}

impl From<crate::capacity::CapacityError> for ApiError {
    fn from(e: crate::capacity::CapacityError) -> ApiError {
        use crate::capacity::CapacityError as E;
        let reason = e.to_string();
        let (code, pointer, last) = match e {
            E::UnknownResource { pointer, .. } => (Code::NotFound, Some(pointer), None),
            E::NotOwner { pointer, .. } => (Code::NotOwner, Some(pointer), None),
            E::NotActive { pointer, .. } => (Code::NotActive, Some(pointer), None),
            E::OutOfOrder { last, .. } => (Code::OutOfSequence, None, Some(last)),
            E::Store(s) => return s.into(),
        };
        let mut api = ApiError::new(code, reason);
        api.pointer = pointer;
        api.last_seq = last;
        api
    }
}

/// A body that did not parse: syntax errors are 400, wrong shapes 422.
impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> ApiError {
        let code = match e.classify() {
            serde_json::error::Category::Data => Code::InvalidRequest,
            _ => Code::InvalidJson,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<crate::trade::TradeError> for ApiError {
    fn from(e: crate::trade::TradeError) -> ApiError {
        use crate::trade::TradeError as E;
        let reason = e.to_string();
        let (code, pointer) = match e {
            E::Body(e) => return e.into(),
            E::Invalid { pointer, .. } => (Code::InvalidValue, Some(pointer)),
            E::UnknownResource(_) => (Code::NotFound, Some("/resource".to_string())),
            E::InactiveResource { .. } => (Code::NotActive, Some("/resource".to_string())),
            E::NotFound(_) => (Code::NotFound, None),
            E::NotParty { .. } => (Code::NotParty, None),
            E::IllegalStep { .. } => (Code::IllegalStep, None),
            E::Conflict { .. } => (Code::CapacityConflict, None),
            E::TooLarge(_) => (Code::BodyTooLarge, None),
            E::Busy(_) => (Code::Busy, None),
            E::Registry(r) => return r.into(),
        };
        let mut api = ApiError::new(code, reason);
        api.pointer = pointer.filter(|p| !p.is_empty());
        api
    }
}

impl From<crate::select::RequirementError> for ApiError {
    fn from(e: crate::select::RequirementError) -> ApiError {
        let code = if e.reason.starts_with("not JSON") {
            Code::InvalidJson
        } else {
            Code::InvalidValue
        };
        let mut api = ApiError::new(code, e.to_string());
        api.pointer = Some(e.pointer).filter(|p| !p.is_empty());
        api
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        let code = match e {
            RegistryError::OutsidePrefix { .. } => Code::OutsidePrefix,
            RegistryError::NotFound(_) => Code::NotFound,
            RegistryError::Withdrawn(_) => Code::Withdrawn,
            RegistryError::Taken(_) => Code::Taken,
            RegistryError::Delegation(_) => Code::InvalidDelegation,
            RegistryError::Rolling { .. } => Code::Rolling,
            RegistryError::Record(_) => Code::InvalidRecord,
            RegistryError::SerialsExhausted(_) => Code::SerialsExhausted,
            RegistryError::Store(s) => return s.into(),
            RegistryError::ForeignIssuer(_)
            | RegistryError::Zone(_)
            | RegistryError::EmptyPlan
            | RegistryError::TwiceInPlan(_) => {
                tracing::error!(error = %e, "registry failure on the HTTP path");
                Code::Internal
            }
        };
        ApiError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_snake_case_and_errors_are_4xx_or_5xx() {
        let mut seen = std::collections::BTreeSet::new();
        for code in Code::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(
                code.status().is_client_error() || code.status().is_server_error(),
                "{s}"
            );
        }
    }

    #[test]
    fn signature_errors_about_the_digest_are_bad_requests() {
        let missing = ApiError::from(SigError::Missing(Field::ContentDigest));
        assert_eq!(
            (missing.status(), missing.code.as_str()),
            (StatusCode::BAD_REQUEST, "missing_digest")
        );
        let unsigned = ApiError::from(SigError::Missing(Field::Signature));
        assert_eq!(
            (unsigned.status(), unsigned.code.as_str()),
            (StatusCode::UNAUTHORIZED, "missing_signature")
        );
    }
}
