//! How a signed record appears in DNS (DESIGN §1 and §3).
//!
//! An identifier's name carries:
//! - TXT: human-readable `key=value` strings, one RR for the record's
//!   header and one per value;
//! - URI (RFC 7553): one RR per `URL` or `CP.ENDPOINT` value, priority = the
//!   value's index, weight 1;
//! - CPREC (private type 65280, RFC 6895 §3.1): the signed record exactly as
//!   `SignedRecord::encode` writes it, for verification by the client.
//!
//! Every RRset takes the smallest TTL of the values it is made from. A
//! withdrawn or pending record has no DNS presence: the name answers
//! NXDOMAIN.

use crate::ident::identifier::Apex;
use crate::ident::keys::PublicKey;
use crate::ident::record::{RecordStatus, SignedRecord};

use super::wire::{WireError, WireName, rtype, txt_rdata, uri_rdata};
use super::zone::RrSet;

/// The value types served as URI records.
const URI_TYPES: [&str; 2] = ["URL", "CP.ENDPOINT"];

/// The owner name of a record.
pub fn owner(record: &SignedRecord, apex: &Apex) -> Result<WireName, WireError> {
    WireName::parse(&record.record().identifier.to_dns_name(apex))
}

/// The RRsets published for a record; empty when it must not resolve.
pub fn rrsets(signed: &SignedRecord, default_ttl: u32) -> Vec<RrSet> {
    let r = signed.record();
    if r.status != RecordStatus::Active {
        return Vec::new();
    }
    let ttl_of = |t: u32| if t == 0 { default_ttl } else { t };
    let min_ttl = r.min_ttl(default_ttl);

    let mut header = vec![
        format!("id={}", r.identifier),
        format!("version={}", r.version),
        "status=active".to_string(),
        format!("issuer={}", r.issuer),
    ];
    if let Some(owner) = &r.owner {
        header.push(format!("owner={owner}"));
    }
    let mut txt = vec![txt_rdata(&header)];
    for v in &r.values {
        txt.push(txt_rdata(&[
            format!("index={}", v.index),
            kv("type", v.kind.as_str()),
            kv("data", &v.data),
        ]));
    }

    let uri_values: Vec<_> = r
        .values
        .iter()
        .filter(|v| URI_TYPES.contains(&v.kind.as_str()))
        .collect();
    let mut sets = vec![RrSet {
        rtype: rtype::TXT,
        ttl: min_ttl,
        rdatas: txt,
    }];
    if !uri_values.is_empty() {
        sets.push(RrSet {
            rtype: rtype::URI,
            ttl: uri_values
                .iter()
                .map(|v| ttl_of(v.ttl))
                .min()
                .unwrap_or(min_ttl),
            rdatas: uri_values
                .iter()
                .map(|v| uri_rdata(u16::try_from(v.index).unwrap_or(u16::MAX), 1, &v.data))
                .collect(),
        });
    }
    sets.push(RrSet {
        rtype: rtype::CPREC,
        ttl: min_ttl,
        rdatas: vec![signed.as_bytes().to_vec()],
    });
    sets
}

/// The node key published at the apex: a TXT for people and CPKEY (private
/// type 65281: one algorithm octet, 15 = Ed25519 as in RFC 8080, then the
/// 32-octet key) for programs.
pub fn node_key_rrsets(key: &PublicKey, ttl: u32) -> Vec<RrSet> {
    let mut cpkey = vec![15u8];
    cpkey.extend_from_slice(&key.to_bytes());
    vec![
        RrSet {
            rtype: rtype::TXT,
            ttl,
            rdatas: vec![txt_rdata(&[
                "cpid-node-key=1".to_string(),
                "alg=ed25519".to_string(),
                format!("key-id={}", key.key_id()),
                format!("key={}", crate::ident::keys::to_hex(&key.to_bytes())),
            ])],
        },
        RrSet {
            rtype: rtype::CPKEY,
            ttl,
            rdatas: vec![cpkey],
        },
    ]
}

/// `key=value`, sized once (`format!` regrows its buffer for long values,
/// which showed up in start-up profiles).
fn kv(key: &str, value: &str) -> String {
    let mut s = String::with_capacity(key.len() + 1 + value.len());
    s.push_str(key);
    s.push('=');
    s.push_str(value);
    s
}
