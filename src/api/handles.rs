//! Records in the Handle.Net REST API JSON shape (`GET /api/handles/…`), so
//! Handle tooling can read cpid.
//!
//! `responseCode` 1 is success, 2 an error, 100 "handle not found" (HTTP
//! 404) and 200 "values not found" (the handle exists, the `type=` /
//! `index=` filters matched nothing). Each value has `index`, `type`,
//! `data {format, value}`, `ttl` and an ISO-8601 UTC `timestamp`. The
//! `HS_ADMIN` value (index 100, format `admin`) is the signed record's
//! owner, or the provider itself for a `PV` record, with the key at index
//! 300 as administrator, as in a Handle server. A value's `ttl` is its
//! own, or the issuing node's default when it has none (as in DNS).
//!
//! A read that finds nothing or fails answers the Handle.Net error body
//! (`{"responseCode", "handle", "message"}`), written only by
//! [`HandleError`], for the node and the gateway alike.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::error::ApiError;
use super::respond::blocking;
use super::state::Shared;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::record::{RecordStatus, SignedRecord};
use crate::ident::values::{HS_ADMIN_INDEX, HS_PUBKEY_INDEX};

/// Handle.Net `responseCode`s (Handle.Net REST API, "Response codes").
const RC_SUCCESS: u32 = 1;
const RC_ERROR: u32 = 2;
const RC_HANDLE_NOT_FOUND: u32 = 100;
const RC_VALUES_NOT_FOUND: u32 = 200;

/// Why a Handle read has no values to show.
#[derive(Debug)]
pub enum HandleError {
    /// The handle or the query cannot be read (`400`, code 2).
    Invalid(String),
    /// No active record has this handle (`404`, code 100).
    NotFound,
    /// The lookup failed: the status is the API's for that failure (code 2).
    Failed(ApiError),
}

impl HandleError {
    /// The Handle.Net error answer for `handle`.
    pub fn into_response(self, handle: &str) -> Response {
        let (status, body) = match self {
            HandleError::Invalid(message) => (
                StatusCode::BAD_REQUEST,
                json!({ "responseCode": RC_ERROR, "handle": handle, "message": message }),
            ),
            HandleError::NotFound => (
                StatusCode::NOT_FOUND,
                json!({ "responseCode": RC_HANDLE_NOT_FOUND, "handle": handle }),
            ),
            HandleError::Failed(e) => (
                e.status(),
                json!({ "responseCode": RC_ERROR, "handle": handle, "message": e.reason }),
            ),
        };
        (status, axum::Json(body)).into_response()
    }
}

/// The handle of a `{prefix}/{suffix}` path with its `type=`/`index=`
/// filter, or why they cannot be read.
pub fn request(handle: &str, query: Option<&str>) -> Result<(Identifier, Filter), HandleError> {
    let filter = Filter::parse(query).map_err(HandleError::Invalid)?;
    let id = Identifier::parse(handle).map_err(|e| HandleError::Invalid(e.to_string()))?;
    Ok((id, filter))
}

/// `GET /api/handles/{prefix}/{suffix}` on the node: active records only.
pub(super) async fn read(
    State(state): Shared,
    Path((prefix, suffix)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let handle = format!("{prefix}/{suffix}");
    let (id, filter) = match request(&handle, query.as_deref()) {
        Ok(r) => r,
        Err(e) => return e.into_response(&handle),
    };
    let s = state.clone();
    match blocking(move || Ok(s.registry.get(&id)?)).await {
        Ok(Some(r))
            if r.record().status == RecordStatus::Active
                && !crate::registry::is_private(r.record().identifier.class()) =>
        {
            axum::Json(handle_json(&r, &filter, state.default_ttl).0).into_response()
        }
        Ok(_) => HandleError::NotFound.into_response(&handle),
        Err(e) => HandleError::Failed(e).into_response(&handle),
    }
}

/// Handle's permission string for an administrator that may do everything
/// but add or delete naming authorities.
const ADMIN_PERMISSIONS: &str = "011111110011";

/// Which values to show.
#[derive(Debug, Default)]
pub struct Filter {
    pub types: Vec<String>,
    pub indices: Vec<u32>,
}

impl Filter {
    /// From a raw query string: `type=URL&type=EMAIL&index=1`.
    pub fn parse(query: Option<&str>) -> Result<Filter, String> {
        let mut f = Filter::default();
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "type" => f.types.push(v.to_ascii_uppercase()),
                "index" => f.indices.push(
                    v.parse()
                        .map_err(|_| format!("index={v} is not a number"))?,
                ),
                // Handle clients send `auth` and `pretty`; they change nothing here.
                _ => {}
            }
        }
        Ok(f)
    }

    fn admits(&self, index: u32, kind: &str) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == kind))
            && (self.indices.is_empty() || self.indices.contains(&index))
    }
}

/// ISO-8601 UTC with seconds, as Handle servers write it.
pub fn iso8601(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// The Handle JSON of an active record, and whether any value matched.
pub fn handle_json(signed: &SignedRecord, filter: &Filter, default_ttl: u32) -> (Json, bool) {
    let r = signed.record();
    let handle = r.identifier.to_string();
    let admin = match (&r.owner, r.identifier.class()) {
        (Some(owner), _) => Some(owner.to_string()),
        (None, Class::Pv) => Some(handle.clone()),
        (None, _) => None,
    };
    let mut values = Vec::new();
    let mut push = |index: u32, kind: &str, data: Json, ttl: u32, ts: u64| {
        if filter.admits(index, kind) {
            values.push(json!({
                "index": index,
                "type": kind,
                "data": data,
                "ttl": if ttl == 0 { default_ttl } else { ttl },
                "timestamp": iso8601(ts),
            }));
        }
    };
    let mut admin_done = false;
    for v in &r.values {
        if !admin_done && v.index > HS_ADMIN_INDEX {
            if let Some(a) = &admin {
                push(HS_ADMIN_INDEX, "HS_ADMIN", admin_data(a), 0, r.created);
            }
            admin_done = true;
        }
        push(
            v.index,
            v.kind.as_str(),
            json!({"format": "string", "value": v.data}),
            v.ttl,
            v.timestamp,
        );
    }
    if !admin_done && let Some(a) = &admin {
        push(HS_ADMIN_INDEX, "HS_ADMIN", admin_data(a), 0, r.created);
    }
    let found = !values.is_empty();
    let code = if found {
        RC_SUCCESS
    } else {
        RC_VALUES_NOT_FOUND
    };
    (
        json!({ "responseCode": code, "handle": handle, "values": values }),
        found,
    )
}

fn admin_data(admin: &str) -> Json {
    json!({
        "format": "admin",
        "value": { "handle": admin, "index": HS_PUBKEY_INDEX, "permissions": ADMIN_PERMISSIONS },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_790_000_000), "2026-09-21T14:13:20Z");
    }

    #[test]
    fn filters_read_repeated_keys() {
        let f = Filter::parse(Some("type=url&type=EMAIL&index=3&pretty")).unwrap();
        assert_eq!(f.types, ["URL", "EMAIL"]);
        assert_eq!(f.indices, [3]);
        assert!(f.admits(3, "URL") && !f.admits(4, "URL") && !f.admits(3, "DESC"));
        assert!(Filter::parse(Some("index=x")).is_err());
    }
}
