//! The value rules: what each value type must hold and who may write it.
//!
//! One set of rules for every way a value gets in: the HTTP API, `cpid zone
//! import` of a TOML file, and the systems that write values themselves.
//! A value is checked for what its type promises (a URL is an absolute
//! http(s) URL without credentials, an e-mail address looks like one, a
//! `CP.RESOURCE` is a descriptor of the capacity standard
//! ([`crate::ident::resource`], `schema/resource.md`) for the identifier's
//! class) before anything is signed.
//! Types the node writes itself (`HS_PUBKEY`, `HS_ADMIN`, `CP.DELEGATION`)
//! and the Handle indices reserved for them are refused from clients.
//! Records signed by this node and re-imported from a master file are not
//! put through these rules (they keep the node-written values they were
//! signed with); the record rules and the node-key check cover them.

use serde::{Deserialize, Serialize};

use crate::ident::identifier::Class;
use crate::ident::record::{MAX_DATA_LEN, MAX_TTL, MAX_VALUES, Value, ValueType};
use crate::ident::resource::{ResourceDescriptor, ResourceError};

/// Index of the `HS_ADMIN` value shown by the Handle API (Handle convention).
pub const HS_ADMIN_INDEX: u32 = 100;
/// Index of a provider's `HS_PUBKEY` value (Handle convention).
pub const HS_PUBKEY_INDEX: u32 = 300;
/// The value type that carries a provider's public key (SPKI PEM).
pub const HS_PUBKEY: &str = "HS_PUBKEY";
/// Classes a provider may register (PV, US, TX and ND are issued otherwise).
pub fn is_resource_class(class: Class) -> bool {
    matches!(
        class,
        Class::Gc | Class::Ic | Class::Sc | Class::St | Class::Nl | Class::As
    )
}
/// Classes that have their own signed flows and are never created from a
/// declarative file.
pub const FLOW_CLASSES: [Class; 2] = [Class::Us, Class::Tx];
/// Value types only the node writes.
pub const RESERVED_TYPES: [&str; 5] = [
    "HS_ADMIN",
    HS_PUBKEY,
    "CP.DELEGATION",
    "CP.TXN",
    "CP.TXSTEP",
];
/// The value type of a capacity descriptor (`schema/resource.md`).
pub const CP_RESOURCE: &str = "CP.RESOURCE";
/// Value types whose data must be a JSON object (`CP.RESOURCE` is checked
/// further, by the capacity standard).
pub const JSON_TYPES: [&str; 4] = [CP_RESOURCE, "CP.STATUS", "CP.TXN", "CP.TXSTEP"];

/// Why a value or class is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("{0}")]
    Invalid(String),
    #[error("a provider registers resources of class GC, IC, SC, ST, NL or AS, not {}", .0.code())]
    ClassNotAllowed(Class),
    #[error("class {} has its own signed flow and cannot be created from a file", .0.code())]
    FlowClass(Class),
    /// A `CP.RESOURCE` that breaks the capacity standard; `error.pointer`
    /// is the bad field inside the descriptor.
    #[error("{at}: CP.RESOURCE {error} (schema/resource.md)")]
    Resource { at: String, error: ResourceError },
}

fn invalid(reason: impl Into<String>) -> ValueError {
    ValueError::Invalid(reason.into())
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

/// Text a person reads: not blank, short, no control characters.
pub fn check_text(field: &str, s: &str, max: usize) -> Result<(), ValueError> {
    if s.trim().is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field} must be 1 to {max} bytes of text without control characters"
        )));
    }
    Ok(())
}

/// Checks a class a provider asks for.
pub fn resource_class(code: &str) -> Result<Class, ValueError> {
    let class = Class::parse(code).map_err(|e| invalid(format!("class: {e}")))?;
    if !is_resource_class(class) {
        return Err(ValueError::ClassNotAllowed(class));
    }
    Ok(class)
}

/// Checks a class a declarative file asks for.
pub fn file_class(class: Class) -> Result<Class, ValueError> {
    if FLOW_CLASSES.contains(&class) {
        return Err(ValueError::FlowClass(class));
    }
    Ok(class)
}

pub fn check_email(field: &str, s: &str) -> Result<(), ValueError> {
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

pub fn check_url(field: &str, s: &str) -> Result<(), ValueError> {
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

/// Checks and orders client values for a record of `class`: indices
/// assigned or checked, types allowed, data what the type promises.
pub fn client_values(
    inputs: Vec<ValueInput>,
    class: Class,
    at: u64,
) -> Result<Vec<Value>, ValueError> {
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
            CP_RESOURCE => {
                ResourceDescriptor::parse_for(&v.data, class).map_err(|error| {
                    ValueError::Resource {
                        at: at_value.clone(),
                        error,
                    }
                })?;
            }
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
        let v = client_values(inputs, Class::Ic, 1).unwrap();
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
                client_values(vec![input(kind, data)], Class::Ic, 1).is_err(),
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
        assert!(client_values(twice, Class::Ic, 1).is_err());
        for ok in [
            ("CP.ENDPOINT", "https://a.example/v1"),
            ("URL", "http://[2001:db8::1]:8080/x"),
            ("URL", "https://a.example:443/"),
            ("EMAIL", "noc@lingang.example"),
        ] {
            assert!(
                client_values(vec![input(ok.0, ok.1)], Class::Ic, 1).is_ok(),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn a_resource_descriptor_is_checked_for_the_records_class() {
        let pool = r#"{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card",
            "units_total":8,"devices":[{"model":"A800","count":8,"peak_tflops":{"fp16":312}}]}"#;
        assert!(client_values(vec![input("CP.RESOURCE", pool)], Class::Ic, 1).is_ok());
        match client_values(vec![input("CP.RESOURCE", pool)], Class::Gc, 1) {
            Err(ValueError::Resource { error, .. }) => assert_eq!(error.pointer, "/class"),
            other => panic!("{other:?}"),
        }
        let bad = pool.replace("312", "0");
        match client_values(vec![input("CP.RESOURCE", &bad)], Class::Ic, 1) {
            Err(ValueError::Resource { error, .. }) => {
                assert_eq!(error.pointer, "/devices/0/peak_tflops/fp16")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn transactions_and_buyers_are_not_made_from_files() {
        assert!(file_class(Class::Tx).is_err());
        assert!(file_class(Class::Us).is_err());
        assert_eq!(file_class(Class::Ic), Ok(Class::Ic));
        assert_eq!(
            resource_class("PV"),
            Err(ValueError::ClassNotAllowed(Class::Pv))
        );
    }
}
