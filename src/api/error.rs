//! The one mapping from a failure to an HTTP status and a JSON body
//! `{"error": code, "reason": text}`. Codes are stable and documented in
//! `schema/openapi.yaml`; reasons are for people.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::httpsig::SigError;
use crate::registry::RegistryError;
use crate::store::StoreError;

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: String,
    /// For a replayed request: the identifier the original request wrote.
    pub answer: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            reason: reason.into(),
            answer: None,
        }
    }

    /// 409 for a nonce already used; with the identifier the original
    /// request wrote when it is known, so a retry learns the first answer.
    pub fn replayed(answer: Option<String>) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::CONFLICT,
            "replayed_nonce",
            "this request's nonce was already used by this key: it was carried out once \
             (see identifier and Location); sign a new request to change anything",
        );
        e.answer = answer.filter(|a| !a.is_empty());
        e
    }

    pub fn bad_request(code: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, reason)
    }

    pub fn unauthorized(code: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, reason)
    }

    pub fn forbidden(code: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, reason)
    }

    pub fn unprocessable(code: &'static str, reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, reason)
    }

    pub fn internal(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", reason)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.code, self.reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.code, "reason": self.reason });
        let location = self
            .answer
            .as_ref()
            .map(|id| format!("/v1/identifiers/{id}"));
        if let (Some(id), Some(loc)) = (&self.answer, &location) {
            body["identifier"] = id.as_str().into();
            body["location"] = loc.as_str().into();
        }
        let mut response = (self.status, Json(body)).into_response();
        if let Some(v) = location.and_then(|l| axum::http::HeaderValue::from_str(&l).ok()) {
            response
                .headers_mut()
                .insert(axum::http::header::LOCATION, v);
        }
        response
    }
}

impl From<SigError> for ApiError {
    fn from(e: SigError) -> ApiError {
        let status = match e {
            SigError::Digest(_)
            | SigError::Missing("content-digest")
            | SigError::Malformed {
                field: "content-digest",
                ..
            } => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, e.reason(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Replay(_) => ApiError::replayed(None),
            StoreError::StaleNonce(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "stale_request",
                "the request's window passed before it could be committed; sign a new request",
            ),
            StoreError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "version_conflict", e.to_string())
            }
            StoreError::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                e.to_string(),
            ),
            StoreError::Database(_) | StoreError::Corrupt { .. } | StoreError::Interrupted => {
                tracing::error!(error = %e, "store failure on the HTTP path");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    e.to_string(),
                )
            }
        }
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> ApiError {
        match e {
            RegistryError::OutsidePrefix { .. } => {
                ApiError::unprocessable("outside_prefix", e.to_string())
            }
            RegistryError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            RegistryError::Withdrawn(_) => {
                ApiError::new(StatusCode::GONE, "withdrawn", e.to_string())
            }
            RegistryError::Taken(_) => ApiError::new(StatusCode::CONFLICT, "taken", e.to_string()),
            RegistryError::Delegation(_) => {
                ApiError::unprocessable("invalid_delegation", e.to_string())
            }
            RegistryError::Record(_) => ApiError::unprocessable("invalid_record", e.to_string()),
            RegistryError::SerialsExhausted(_) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "serials_exhausted",
                e.to_string(),
            ),
            RegistryError::Store(s) => s.into(),
            RegistryError::ForeignIssuer(_)
            | RegistryError::Zone(_)
            | RegistryError::EmptyPlan
            | RegistryError::TwiceInPlan(_) => {
                tracing::error!(error = %e, "registry failure on the HTTP path");
                ApiError::internal(e.to_string())
            }
        }
    }
}
