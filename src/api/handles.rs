//! Records in the Handle.Net REST API JSON shape (`GET /api/handles/…`), so
//! Handle tooling can read cpid.
//!
//! `responseCode` 1 is success, 2 an error, 100 "handle not found" (HTTP
//! 404) and 200 "values not found" (the handle exists, the `type=` /
//! `index=` filters matched nothing). Each value has `index`, `type`,
//! `data {format, value}`, `ttl` and an ISO-8601 UTC `timestamp`. The
//! `HS_ADMIN` value (index 100, format `admin`) is the signed record's
//! owner, or the provider itself for a `PV` record, with the key at index
//! 300 as administrator, as in a Handle server.

use serde_json::{Value as Json, json};

use super::body::{HS_ADMIN_INDEX, HS_PUBKEY_INDEX};
use crate::ident::identifier::Class;
use crate::ident::record::SignedRecord;

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
    let code = if found { 1 } else { 200 };
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
