//! Request bodies of the HTTP API and the checks on what they carry.
//!
//! Bodies are strict JSON (unknown fields are refused). A value is checked
//! for what its type promises (a URL is an absolute http(s) URL, a
//! capacity descriptor is a JSON object …) before anything is signed, so an
//! invalid value is a 422 that names it, never a stored record. The same
//! structs are what [`super::client`] serialises, so a client cannot send
//! a shape the server does not parse.

use serde::{Deserialize, Serialize};

use super::error::{ApiError, Code};
use crate::ident::identifier::{self, Class};
use crate::ident::keys::PublicKey;
use crate::ident::record::{MAX_DATA_LEN, MAX_TTL, MAX_VALUES, Value, ValueType};
use crate::ident::values::HS_PUBKEY;

/// Index of the `HS_ADMIN` value shown by the Handle API (Handle convention).
pub const HS_ADMIN_INDEX: u32 = 100;
/// Index of a provider's `HS_PUBKEY` value (Handle convention).
pub const HS_PUBKEY_INDEX: u32 = 300;
/// Classes a provider may register (PV, US, TX and ND are issued otherwise).
pub const RESOURCE_CLASSES: [Class; 6] = [
    Class::Gc,
    Class::Ic,
    Class::Sc,
    Class::St,
    Class::Nl,
    Class::As,
];
/// Value types only the node writes.
const RESERVED_TYPES: [&str; 3] = ["HS_ADMIN", HS_PUBKEY, "CP.DELEGATION"];
/// Value types whose data must be a JSON object.
const JSON_TYPES: [&str; 3] = ["CP.RESOURCE", "CP.STATUS", "CP.TXN"];

/// `POST /v1/providers`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderRequest {
    pub name: String,
    /// Organisation code (e.g. the unified social credit code).
    pub organisation: String,
    /// Contact e-mail address.
    pub contact: String,
    /// GB/T 2260 province code, e.g. "31".
    pub region: String,
    /// The provider's Ed25519 public key, SPKI PEM; it must sign the request.
    pub public_key: String,
}

/// `POST /v1/admin/delegations`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DelegationRequest {
    /// The child prefix, one segment below the node's, e.g. "86.31".
    pub prefix: String,
    /// The child node's Ed25519 public key, SPKI PEM.
    pub public_key: String,
    /// The child's name servers and the socket addresses they answer on.
    pub servers: Vec<crate::ident::delegation::Server>,
    /// Validity in days from now (default 365, at most 3650).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_days: Option<u64>,
}

impl DelegationRequest {
    pub fn into_delegation(
        self,
        now: u64,
    ) -> Result<crate::ident::delegation::Delegation, ApiError> {
        let key = PublicKey::from_public_pem(&self.public_key)
            .map_err(|e| invalid(format!("public_key: {e}")))?;
        let days = self.valid_days.unwrap_or(365);
        if !(1..=3650).contains(&days) {
            return Err(invalid("valid_days must be 1 to 3650"));
        }
        let d = crate::ident::delegation::Delegation {
            prefix: identifier::Prefix::parse(&self.prefix)
                .map_err(|e| invalid(format!("prefix: {e}")))?
                .to_string(),
            key: crate::ident::keys::to_hex(&key.to_bytes()),
            servers: self.servers,
            not_before: now,
            not_after: now + days * 86_400,
            revoked: None,
        };
        d.check().map_err(invalid)?;
        Ok(d)
    }
}

/// `POST /v1/identifiers`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Two-letter class code, e.g. "IC". The identifier is issued under
    /// the node's own prefix: prefixes below it belong to child nodes.
    pub class: String,
    pub values: Vec<ValueInput>,
}

/// `PUT /v1/identifiers/{prefix}/{suffix}`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub values: Vec<ValueInput>,
}

/// One value as a client sends it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ValueInput {
    /// 1..=65535 except 100 and 300; assigned in order when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: String,
    /// Seconds; 0 or absent means the node's default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ttl: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Parses a JSON body: syntax errors are 400, wrong shapes 422.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::new(Code::InvalidRequest, e.to_string()),
        _ => ApiError::new(Code::InvalidJson, e.to_string()),
    })
}

fn invalid(reason: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidValue, reason)
}

fn check_text(field: &str, s: &str, max: usize) -> Result<(), ApiError> {
    if s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must be 1 to {max} bytes of text without control characters"
        )));
    }
    Ok(())
}

fn check_email(field: &str, s: &str) -> Result<(), ApiError> {
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(user, host)| {
            !user.is_empty()
                && host.split('.').count() >= 2
                && host.split('.').all(|label| {
                    !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                })
        });
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("{field} {s:?} is not an e-mail address")))
    }
}

fn check_url(field: &str, s: &str) -> Result<(), ApiError> {
    let uri: http::Uri = s
        .parse()
        .map_err(|e| invalid(format!("{field} {s:?} is not a URL: {e}")))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(invalid(format!(
            "{field} {s:?} must be an absolute http or https URL"
        )));
    }
    let authority = uri.authority().map_or("", |a| a.as_str());
    // Credentials in a public record would be published to everyone.
    if authority.contains('@') {
        return Err(invalid(format!(
            "{field}: a URL must not carry credentials"
        )));
    }
    if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'))
        && uri.port_u16().is_none()
    {
        return Err(invalid(format!("{field} {s:?}: invalid port")));
    }
    Ok(())
}

impl ProviderRequest {
    /// Checks every field; returns the key and the provider's values.
    pub fn into_values(self, at: u64) -> Result<(PublicKey, Vec<Value>), ApiError> {
        check_text("name", &self.name, 128)?;
        let org = self.organisation.trim().to_ascii_uppercase();
        if org.is_empty()
            || org.len() > 32
            || !org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid(
                "organisation must be 1 to 32 letters, digits or hyphens",
            ));
        }
        check_email("contact", &self.contact)?;
        if identifier::province(&self.region).is_none() {
            return Err(invalid(format!(
                "region {:?} is not a GB/T 2260 province code (e.g. \"31\" for Shanghai)",
                self.region
            )));
        }
        let key = PublicKey::from_public_pem(&self.public_key)
            .map_err(|e| invalid(format!("public_key: {e}")))?;
        if key.is_weak() {
            return Err(invalid("public_key is a small-order (weak) Ed25519 key"));
        }
        let value = |index: u32, kind: &str, data: String| -> Result<Value, ApiError> {
            Ok(Value {
                index,
                kind: ValueType::parse(kind).map_err(|e| ApiError::internal(e.to_string()))?,
                data,
                ttl: 0,
                timestamp: at,
            })
        };
        let values = vec![
            value(1, "DESC", self.name.trim().to_string())?,
            value(2, "EMAIL", self.contact)?,
            value(3, "CP.ORG", org)?,
            value(4, "CP.REGION", self.region)?,
            value(HS_PUBKEY_INDEX, HS_PUBKEY, key.to_public_pem())?,
        ];
        Ok((key, values))
    }
}

/// Checks a class a provider asks for.
pub fn resource_class(code: &str) -> Result<Class, ApiError> {
    let class = Class::parse(code).map_err(|e| invalid(format!("class: {e}")))?;
    if !RESOURCE_CLASSES.contains(&class) {
        return Err(ApiError::new(
            Code::ClassNotAllowed,
            format!(
                "a provider registers resources of class GC, IC, SC, ST, NL or AS, not {}",
                class.code()
            ),
        ));
    }
    Ok(class)
}

/// Checks and orders client values: indices assigned or checked, types
/// allowed, data what the type promises.
pub fn values(inputs: Vec<ValueInput>, at: u64) -> Result<Vec<Value>, ApiError> {
    if inputs.is_empty() {
        return Err(invalid("at least one value is needed"));
    }
    if inputs.len() >= MAX_VALUES {
        return Err(invalid(format!("at most {} values", MAX_VALUES - 1)));
    }
    let mut next = 1u32;
    let mut out: Vec<Value> = Vec::with_capacity(inputs.len());
    for (n, v) in inputs.into_iter().enumerate() {
        let index = match v.index {
            Some(i) => i,
            None => {
                while next == HS_ADMIN_INDEX || next == HS_PUBKEY_INDEX {
                    next += 1;
                }
                next
            }
        };
        next = next.max(index.saturating_add(1));
        let at_value = format!("value {} (index {index})", n + 1);
        if index == 0 || index > 65_535 || index == HS_ADMIN_INDEX || index == HS_PUBKEY_INDEX {
            return Err(invalid(format!(
                "{at_value}: index must be in 1..=65535 and not 100 or 300 (HS_ADMIN, HS_PUBKEY)"
            )));
        }
        let kind = ValueType::parse(&v.kind).map_err(|e| invalid(format!("{at_value}: {e}")))?;
        if RESERVED_TYPES.contains(&kind.as_str()) {
            return Err(invalid(format!(
                "{at_value}: type {kind} is written by the node only"
            )));
        }
        if v.data.trim().is_empty() || v.data.len() > MAX_DATA_LEN {
            return Err(invalid(format!(
                "{at_value}: data must be 1 to {MAX_DATA_LEN} bytes, not only white space"
            )));
        }
        if v.data
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(invalid(format!(
                "{at_value}: data holds control characters"
            )));
        }
        if v.ttl > MAX_TTL {
            return Err(invalid(format!(
                "{at_value}: ttl above 2^31-1 (RFC 2181 §8)"
            )));
        }
        match kind.as_str() {
            "URL" | "CP.ENDPOINT" => check_url(&at_value, &v.data)?,
            "EMAIL" => check_email(&at_value, &v.data)?,
            t if JSON_TYPES.contains(&t) => {
                let parsed: serde_json::Value = serde_json::from_str(&v.data)
                    .map_err(|e| invalid(format!("{at_value}: {t} data is not JSON: {e}")))?;
                if !parsed.is_object() {
                    return Err(invalid(format!(
                        "{at_value}: {t} data must be a JSON object"
                    )));
                }
            }
            _ => {}
        }
        if out.iter().any(|o| o.index == index) {
            return Err(invalid(format!("{at_value}: index {index} is used twice")));
        }
        out.push(Value {
            index,
            kind,
            data: v.data,
            ttl: v.ttl,
            timestamp: at,
        });
    }
    out.sort_by_key(|v| v.index);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(kind: &str, data: &str) -> ValueInput {
        ValueInput {
            index: None,
            kind: kind.into(),
            data: data.into(),
            ttl: 0,
        }
    }

    #[test]
    fn indices_are_assigned_in_order_and_skip_the_reserved_ones() {
        let mut inputs = vec![input("DESC", "a")];
        inputs.push(ValueInput {
            index: Some(99),
            ..input("DESC", "b")
        });
        inputs.push(input("DESC", "c"));
        let v = values(inputs, 1).unwrap();
        assert_eq!(v.iter().map(|v| v.index).collect::<Vec<_>>(), [1, 99, 101]);
    }

    #[test]
    fn values_must_be_what_their_type_promises() {
        for (kind, data) in [
            ("URL", "ftp://x.example/"),
            ("URL", "not a url"),
            ("CP.ENDPOINT", "/relative"),
            ("EMAIL", "nobody"),
            ("CP.RESOURCE", "[1,2]"),
            ("CP.RESOURCE", "{broken"),
            ("HS_PUBKEY", "x"),
            ("HS_ADMIN", "x"),
            ("bad type!", "x"),
            ("DESC", ""),
            ("DESC", "  "),
            ("EMAIL", "x@."),
            ("EMAIL", "a@b..c"),
            ("URL", "http://user:pw@host.example/"),
            ("URL", "http://host.example:99999/"),
        ] {
            assert!(
                values(vec![input(kind, data)], 1).is_err(),
                "{kind} {data:?}"
            );
        }
        let twice = vec![
            ValueInput {
                index: Some(5),
                ..input("DESC", "a")
            },
            ValueInput {
                index: Some(5),
                ..input("DESC", "b")
            },
        ];
        assert!(values(twice, 1).is_err());
        for ok in [
            ("CP.ENDPOINT", "https://a.example/v1"),
            ("URL", "http://[2001:db8::1]:8080/x"),
            ("URL", "https://a.example:443/"),
            ("EMAIL", "noc@lingang.example"),
        ] {
            assert!(values(vec![input(ok.0, ok.1)], 1).is_ok(), "{ok:?}");
        }
    }

    #[test]
    fn providers_need_a_province_an_email_and_a_key() {
        let key = crate::ident::keys::NodeKey::generate().unwrap();
        let good = || ProviderRequest {
            name: "Lingang AI Computing Centre".into(),
            organisation: "91310000mA1k".into(),
            contact: "noc@lingang.example".into(),
            region: "31".into(),
            public_key: key.public().to_public_pem(),
        };
        let (k, v) = good().into_values(7).unwrap();
        assert_eq!(k, key.public());
        assert_eq!(v.last().unwrap().index, HS_PUBKEY_INDEX);
        assert_eq!(v[2].data, "91310000MA1K");
        let bad = [
            ProviderRequest {
                region: "99".into(),
                ..good()
            },
            ProviderRequest {
                contact: "x".into(),
                ..good()
            },
            ProviderRequest {
                public_key: "-----BEGIN PUBLIC KEY-----".into(),
                ..good()
            },
            ProviderRequest {
                name: " ".into(),
                ..good()
            },
        ];
        for b in bad {
            assert!(b.into_values(7).is_err());
        }
    }
}
