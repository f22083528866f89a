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
use crate::ident::record::{Value, ValueType};
pub use crate::ident::values::ValueInput;
use crate::ident::values::{self, HS_PUBKEY, HS_PUBKEY_INDEX, ValueError, check_email, check_text};

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

/// `POST /v1/identifiers/{PV or US id}/key`: the party's new key, signed
/// by its current key (or by the admin when that key is lost).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// The new Ed25519 public key, SPKI PEM.
    pub public_key: String,
}

impl KeyRequest {
    /// The new key, checked.
    pub fn key(&self) -> Result<PublicKey, ApiError> {
        let key = PublicKey::from_public_pem(&self.public_key)
            .map_err(|e| invalid(format!("public_key: {e}")))?;
        if key.is_weak() {
            return Err(invalid("public_key is a small-order (weak) Ed25519 key"));
        }
        Ok(key)
    }
}

/// `POST /v1/delegations/{prefix}/key`: a child's key rollover.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RollRequest {
    /// The child's new Ed25519 public key, SPKI PEM.
    pub public_key: String,
    /// Seconds the old key stays in force beside the new one (default
    /// 86 400, at most 30 days); 0 revokes it at once (a compromised key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_secs: Option<u64>,
}

/// The overlap a rollover gets unless the request names one: a day, well
/// beyond the TTL a gateway or validator caches a delegation for.
pub const DEFAULT_OVERLAP_SECS: u64 = 86_400;
const MAX_OVERLAP_SECS: u64 = 30 * 86_400;

impl RollRequest {
    /// The new key, checked, and the overlap.
    pub fn checked(&self) -> Result<(PublicKey, u64), ApiError> {
        let key = KeyRequest {
            public_key: self.public_key.clone(),
        }
        .key()?;
        let overlap = self.overlap_secs.unwrap_or(DEFAULT_OVERLAP_SECS);
        if overlap > MAX_OVERLAP_SECS {
            return Err(invalid(format!(
                "overlap_secs is at most {MAX_OVERLAP_SECS} (30 days)"
            )));
        }
        Ok((key, overlap))
    }
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
    /// The child's HTTP API, `http://host:port`: the parent pulls the
    /// child's situation summary there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
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
            api: self.api.map(|a| a.trim_end_matches('/').to_string()),
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

/// Parses a JSON body: syntax errors are 400, wrong shapes 422.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    Ok(serde_json::from_slice(body)?)
}

fn invalid(reason: impl Into<String>) -> ApiError {
    ApiError::new(Code::InvalidValue, reason)
}

impl From<ValueError> for ApiError {
    fn from(e: ValueError) -> ApiError {
        let code = match e {
            ValueError::ClassNotAllowed(_) => Code::ClassNotAllowed,
            _ => Code::InvalidValue,
        };
        let mut api = ApiError::new(code, e.to_string());
        if let ValueError::Resource { error, .. } = e {
            api.pointer = Some(error.pointer);
        }
        api
    }
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
    Ok(values::resource_class(code)?)
}

/// Checks and orders client values for a record of `class` (the rules of
/// [`crate::ident::values`]).
pub fn values(inputs: Vec<ValueInput>, class: Class, at: u64) -> Result<Vec<Value>, ApiError> {
    Ok(values::client_values(inputs, class, at)?)
}

#[cfg(test)]
mod tests {
    use super::*;

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
