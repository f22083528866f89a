//! Handle-style values (RFC 3651 §3.1) and the signed record (DESIGN §2).
//!
//! One canonical encoder: a record is encoded with postcard in the field
//! order written down in `schema/record.md`; the signature is Ed25519 over
//! `SIGNING_CONTEXT || canonical bytes`. Decoding is strict, in the manner
//! of a TLS codec: every byte must be consumed, the record must validate,
//! and re-encoding must give back exactly the input, so one record has one
//! encoding and a tampered or padded blob is refused, never repaired.

use serde::{Deserialize, Serialize};

use crate::ident::identifier::{Class, Identifier};
use crate::ident::keys::{KeyId, NodeKey, PublicKey, Signature, SigningContext};

/// Domain separation for record signatures (`SigningContext::Record`).
pub const SIGNING_CONTEXT: &[u8] = SigningContext::Record.prefix();
/// The format byte that starts every encoded record.
pub const FORMAT_VERSION: u8 = 1;
/// Most values a record may hold.
pub const MAX_VALUES: usize = 64;
/// Most bytes in one value's data.
pub const MAX_DATA_LEN: usize = 4096;
/// Largest TTL a DNS resolver honours (RFC 2181 §8).
pub const MAX_TTL: u32 = 0x7fff_ffff;
/// Largest encoded signed record (fits one DNS RR with room to spare).
pub const MAX_ENCODED_LEN: usize = 16 * 1024;
const SIGNATURE_LEN: usize = 64;

/// Why a record is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("malformed encoding: {0}")]
    Encoding(String),
    #[error("encoding is not canonical")]
    NotCanonical,
    #[error("unsupported record format {0}")]
    Format(u8),
    #[error("invalid value type {0:?}: 1-32 of A-Z 0-9 . _")]
    ValueType(String),
    #[error("invalid record: {0}")]
    Invalid(String),
    #[error("record of {0} bytes is larger than {MAX_ENCODED_LEN}")]
    TooLarge(usize),
    #[error("signature does not verify")]
    BadSignature,
    #[error("record was issued by key {issuer}, not {key}")]
    WrongIssuer { issuer: KeyId, key: KeyId },
}

/// A value type: `URL`, `EMAIL`, `DESC`, `HS_PUBKEY`, `HS_ADMIN`,
/// `CP.RESOURCE`, `CP.ENDPOINT`, `CP.STATUS`, `CP.DELEGATION`, `CP.TXN`, …
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueType(String);

impl ValueType {
    /// Case-insensitive; stored upper-case.
    pub fn parse(s: &str) -> Result<ValueType, RecordError> {
        let ok = (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
        if ok {
            Ok(ValueType(s.to_ascii_uppercase()))
        } else {
            Err(RecordError::ValueType(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a value type in canonical (upper-case) form; no allocation.
    fn is_canonical(s: &str) -> bool {
        (1..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'.' || b == b'_')
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One typed value of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    /// 1..=65535, unique and ascending within a record.
    pub index: u32,
    pub kind: ValueType,
    pub data: String,
    /// Seconds; 0 means the node's default.
    pub ttl: u32,
    /// Unix seconds of the value's last change.
    pub timestamp: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordStatus {
    Active,
    /// Waiting for approval; not resolvable.
    Pending,
    /// A tombstone: keeps its code from reuse, resolves as NXDOMAIN.
    Withdrawn,
}

impl RecordStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordStatus::Active => "active",
            RecordStatus::Pending => "pending",
            RecordStatus::Withdrawn => "withdrawn",
        }
    }
}

/// An identifier record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub identifier: Identifier,
    /// The provider or user that controls the record.
    pub owner: Option<Identifier>,
    /// 1 at issue, +1 with every change.
    pub version: u64,
    pub status: RecordStatus,
    /// Key id of the node key that signed it.
    pub issuer: KeyId,
    pub created: u64,
    pub updated: u64,
    pub values: Vec<Value>,
}

/// The encoded form, field order fixed by `schema/record.md`.
#[derive(Serialize, Deserialize)]
struct RecordWire {
    format: u8,
    identifier: String,
    owner: Option<String>,
    version: u64,
    status: RecordStatus,
    issuer: [u8; 16],
    created: u64,
    updated: u64,
    values: Vec<ValueWire>,
}

/// The leading fields of the layout, borrowed: enough to know which
/// record and version some bytes hold without decoding them whole.
#[derive(Deserialize)]
struct RecordHead<'a> {
    format: u8,
    identifier: &'a str,
    // Read past in its place (postcard is positional), never used.
    _owner: Option<&'a str>,
    version: u64,
}

/// The identifier text and version of encoded record bytes, read from
/// their first fields only (no validation, no signature check): for
/// indexes over bytes that were checked when they were stored.
pub fn peek_identity(bytes: &[u8]) -> Result<(&str, u64), RecordError> {
    let (head, _): (RecordHead<'_>, _) =
        postcard::take_from_bytes(bytes).map_err(|e| RecordError::Encoding(e.to_string()))?;
    if head.format != FORMAT_VERSION {
        return Err(RecordError::Format(head.format));
    }
    Ok((head.identifier, head.version))
}

/// The same layout, borrowed, for encoding without copying the strings.
#[derive(Serialize)]
struct RecordWireRef<'a> {
    format: u8,
    identifier: &'a str,
    owner: Option<&'a str>,
    version: u64,
    status: RecordStatus,
    issuer: [u8; 16],
    created: u64,
    updated: u64,
    values: Vec<ValueWireRef<'a>>,
}

#[derive(Serialize)]
struct ValueWireRef<'a> {
    index: u32,
    kind: &'a str,
    data: &'a str,
    ttl: u32,
    timestamp: u64,
}

#[derive(Serialize, Deserialize)]
struct ValueWire {
    index: u32,
    kind: String,
    data: String,
    ttl: u32,
    timestamp: u64,
}

impl Record {
    pub fn validate(&self) -> Result<(), RecordError> {
        let bad = |why: String| Err(RecordError::Invalid(why));
        if self.version == 0 {
            return bad("version starts at 1".into());
        }
        if self.created > self.updated {
            return bad("created after updated".into());
        }
        if self.values.len() > MAX_VALUES {
            return bad(format!("more than {MAX_VALUES} values"));
        }
        if self.status == RecordStatus::Withdrawn && !self.values.is_empty() {
            return bad("a withdrawn record keeps no values".into());
        }
        if let Some(owner) = &self.owner
            && !matches!(owner.class(), Class::Pv | Class::Us)
        {
            return bad(format!("owner {owner} is not a provider (PV) or user (US)"));
        }
        let mut last = 0u32;
        for v in &self.values {
            if v.index == 0 || v.index > 65_535 {
                return bad(format!("value index {} outside 1..=65535", v.index));
            }
            if v.index <= last {
                return bad(format!("value index {} not ascending", v.index));
            }
            last = v.index;
            if v.ttl > MAX_TTL {
                return bad(format!(
                    "value {} ttl {} above 2^31-1 (RFC 2181 §8)",
                    v.index, v.ttl
                ));
            }
            if v.data.len() > MAX_DATA_LEN {
                return bad(format!(
                    "value {} data longer than {MAX_DATA_LEN} bytes",
                    v.index
                ));
            }
            if !ValueType::is_canonical(v.kind.as_str()) {
                return Err(RecordError::ValueType(v.kind.0.clone()));
            }
        }
        Ok(())
    }

    /// The canonical bytes (postcard of the wire struct).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, RecordError> {
        let identifier = self.identifier.to_string();
        let owner = self.owner.as_ref().map(ToString::to_string);
        let wire = RecordWireRef {
            format: FORMAT_VERSION,
            identifier: &identifier,
            owner: owner.as_deref(),
            version: self.version,
            status: self.status,
            issuer: self.issuer.0,
            created: self.created,
            updated: self.updated,
            values: self
                .values
                .iter()
                .map(|v| ValueWireRef {
                    index: v.index,
                    kind: v.kind.as_str(),
                    data: &v.data,
                    ttl: v.ttl,
                    timestamp: v.timestamp,
                })
                .collect(),
        };
        // Sized up front: growing the Vec as postcard writes was the largest
        // cost of loading a big store (perf: realloc ~22 % of start-up).
        let estimate = 64
            + identifier.len()
            + owner.as_ref().map_or(0, String::len)
            + self
                .values
                .iter()
                .map(|v| 24 + v.kind.as_str().len() + v.data.len())
                .sum::<usize>();
        postcard::to_extend(&wire, Vec::with_capacity(estimate))
            .map_err(|e| RecordError::Encoding(e.to_string()))
    }

    /// Validates and signs with the node key.
    pub fn sign(self, key: &NodeKey) -> Result<SignedRecord, RecordError> {
        self.validate()?;
        let key_id = key.public().key_id();
        if self.issuer != key_id {
            return Err(RecordError::WrongIssuer {
                issuer: self.issuer,
                key: key_id,
            });
        }
        let canonical = self.canonical_bytes()?;
        if canonical.len() + SIGNATURE_LEN > MAX_ENCODED_LEN {
            return Err(RecordError::TooLarge(canonical.len() + SIGNATURE_LEN));
        }
        let signature = key.sign(SigningContext::Record, &canonical);
        let mut encoded = canonical;
        encoded.extend_from_slice(&signature.0);
        Ok(SignedRecord {
            record: self,
            signature,
            encoded: encoded.into_boxed_slice(),
        })
    }

    /// The smallest value TTL, or `default` when the record has none.
    pub fn min_ttl(&self, default: u32) -> u32 {
        self.values
            .iter()
            .map(|v| if v.ttl == 0 { default } else { v.ttl })
            .min()
            .unwrap_or(default)
    }
}

/// A record with the issuing node's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    record: Record,
    signature: Signature,
    /// The encoded form, kept because every consumer (store, DNS, HTTP)
    /// needs exactly these bytes and recomputing them is the costly part.
    encoded: Box<[u8]>,
}

impl SignedRecord {
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// The record, without its signature (to build the next version).
    pub fn into_record(self) -> Record {
        self.record
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Wire, disk and DNS (TYPE65280 RDATA) form: canonical bytes followed
    /// by the 64-byte signature.
    pub fn encode(&self) -> Vec<u8> {
        self.encoded.to_vec()
    }

    /// The encoded form without copying.
    pub fn as_bytes(&self) -> &[u8] {
        &self.encoded
    }

    fn canonical(&self) -> &[u8] {
        // `encoded` always ends with the signature (see `decode`, `sign`).
        self.encoded
            .split_last_chunk::<SIGNATURE_LEN>()
            .map_or(&[], |(canonical, _)| canonical)
    }

    /// Strict decoding; see the module documentation.
    pub fn decode(bytes: &[u8]) -> Result<SignedRecord, RecordError> {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let split = bytes
            .len()
            .checked_sub(SIGNATURE_LEN)
            .ok_or_else(|| RecordError::Encoding("shorter than a signature".into()))?;
        let (body, sig) = bytes.split_at(split);
        match body.first() {
            Some(&FORMAT_VERSION) => {}
            Some(&other) => return Err(RecordError::Format(other)),
            None => return Err(RecordError::Encoding("empty record".into())),
        }
        let (wire, rest): (RecordWire, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| RecordError::Encoding(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RecordError::Encoding(format!(
                "{} bytes after the record",
                rest.len()
            )));
        }
        let parse_id =
            |s: &str| Identifier::parse(s).map_err(|e| RecordError::Invalid(e.to_string()));
        let record = Record {
            identifier: parse_id(&wire.identifier)?,
            owner: wire.owner.as_deref().map(parse_id).transpose()?,
            version: wire.version,
            status: wire.status,
            issuer: KeyId(wire.issuer),
            created: wire.created,
            updated: wire.updated,
            values: wire
                .values
                .into_iter()
                .map(|v| {
                    Ok(Value {
                        index: v.index,
                        kind: ValueType::parse(&v.kind)?,
                        data: v.data,
                        ttl: v.ttl,
                        timestamp: v.timestamp,
                    })
                })
                .collect::<Result<_, RecordError>>()?,
        };
        record.validate()?;
        if record.canonical_bytes()? != body {
            return Err(RecordError::NotCanonical);
        }
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(sig);
        Ok(SignedRecord {
            record,
            signature: Signature(signature),
            encoded: bytes.into(),
        })
    }

    /// Checks the signature with `verify_strict` and that `key` is the issuer.
    pub fn verify(&self, key: &PublicKey) -> Result<(), RecordError> {
        let key_id = key.key_id();
        if self.record.issuer != key_id {
            return Err(RecordError::WrongIssuer {
                issuer: self.record.issuer,
                key: key_id,
            });
        }
        key.verify_strict(SigningContext::Record, self.canonical(), &self.signature)
            .map_err(|_| RecordError::BadSignature)
    }
}

/// The record as JSON (for `cpid resolve --json` and the HTTP API).
pub fn to_json(signed: &SignedRecord) -> serde_json::Value {
    serde_json::to_value(RecordJson::new(signed)).unwrap_or_default()
}

/// The JSON form of a record, borrowed from it: what [`to_json`] makes a
/// `serde_json::Value` of, and what an answer that embeds the record
/// writes out directly (no tree of values in between). Fields in the
/// order a JSON object sorts them.
#[derive(Serialize)]
pub struct RecordJson<'a> {
    created: u64,
    /// The signed record's bytes, hex: what a client verifies.
    encoded: String,
    identifier: String,
    issuer: String,
    owner: Option<String>,
    signature: String,
    status: &'static str,
    updated: u64,
    values: Vec<ValueJson<'a>>,
    version: u64,
}

#[derive(Serialize)]
struct ValueJson<'a> {
    data: &'a str,
    index: u32,
    timestamp: u64,
    ttl: u32,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl<'a> RecordJson<'a> {
    pub fn new(signed: &'a SignedRecord) -> RecordJson<'a> {
        let r = signed.record();
        RecordJson {
            created: r.created,
            encoded: crate::ident::keys::to_hex(signed.as_bytes()),
            identifier: r.identifier.to_string(),
            issuer: r.issuer.to_string(),
            owner: r.owner.as_ref().map(ToString::to_string),
            signature: crate::ident::keys::to_hex(&signed.signature().0),
            status: r.status.as_str(),
            updated: r.updated,
            values: r
                .values
                .iter()
                .map(|v| ValueJson {
                    data: &v.data,
                    index: v.index,
                    timestamp: v.timestamp,
                    ttl: v.ttl,
                    kind: v.kind.as_str(),
                })
                .collect(),
            version: r.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::identifier::{Prefix, Serial};

    pub(crate) fn sample(key: &NodeKey) -> Record {
        Record {
            identifier: Identifier::new(
                Prefix::parse("86.31.1005").unwrap(),
                Class::Ic,
                Serial::new(167).unwrap(),
            ),
            owner: Some(Identifier::new(
                Prefix::parse("86.31").unwrap(),
                Class::Pv,
                Serial::new(1).unwrap(),
            )),
            version: 1,
            status: RecordStatus::Active,
            issuer: key.public().key_id(),
            created: 1_790_000_000,
            updated: 1_790_000_000,
            values: vec![
                Value {
                    index: 1,
                    kind: ValueType::parse("CP.RESOURCE").unwrap(),
                    data: r#"{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":8,"devices":[{"model":"A800","count":8,"peak_tflops":{"fp16":312}}]}"#.into(),
                    ttl: 3600,
                    timestamp: 1_790_000_000,
                },
                Value {
                    index: 2,
                    kind: ValueType::parse("CP.ENDPOINT").unwrap(),
                    data: "https://pool.example.internal/api".into(),
                    ttl: 300,
                    timestamp: 1_790_000_000,
                },
            ],
        }
    }

    /// The wire struct of a record, read back from its canonical bytes, for
    /// building encodings the decoder must refuse.
    fn owned_wire(signed: &SignedRecord) -> RecordWire {
        postcard::from_bytes(&signed.record().canonical_bytes().unwrap()).unwrap()
    }

    #[test]
    fn signed_record_round_trips_and_verifies() {
        let key = NodeKey::generate().unwrap();
        let signed = sample(&key).sign(&key).unwrap();
        let bytes = signed.encode();
        let back = SignedRecord::decode(&bytes).unwrap();
        assert_eq!(back, signed);
        back.verify(&key.public()).unwrap();
    }

    #[test]
    fn tampered_record_and_wrong_key_are_rejected() {
        let key = NodeKey::generate().unwrap();
        let signed = sample(&key).sign(&key).unwrap();
        let mut bytes = signed.encode();
        let at = bytes.len() - 70;
        bytes[at] ^= 0x01;
        if let Ok(r) = SignedRecord::decode(&bytes) {
            assert!(r.verify(&key.public()).is_err());
        }
        let other = NodeKey::generate().unwrap();
        assert!(matches!(
            signed.verify(&other.public()),
            Err(RecordError::WrongIssuer { .. })
        ));
    }

    #[test]
    fn trailing_bytes_and_non_canonical_encodings_are_rejected() {
        let key = NodeKey::generate().unwrap();
        let signed = sample(&key).sign(&key).unwrap();
        let body = signed.record().canonical_bytes().unwrap();
        // Trailing byte inside the body.
        let mut padded = body.clone();
        padded.push(0);
        padded.extend_from_slice(&signed.signature().0);
        assert!(SignedRecord::decode(&padded).is_err());
        // Lower-case identifier: same meaning, different bytes.
        let mut wire = owned_wire(&signed);
        wire.identifier = wire.identifier.to_ascii_lowercase();
        let mut lower = postcard::to_stdvec(&wire).unwrap();
        lower.extend_from_slice(&signed.signature().0);
        assert_eq!(SignedRecord::decode(&lower), Err(RecordError::NotCanonical));
        // Over-long varint for the version (1 written as 0x81 0x00).
        let mut wire = owned_wire(&signed);
        wire.version = 1;
        let enc = postcard::to_stdvec(&wire).unwrap();
        let id_len = 1 + wire.identifier.len();
        let owner_len = 1 + wire.owner.as_ref().map_or(0, |o| 1 + o.len());
        let pos = 1 + id_len + owner_len;
        assert_eq!(enc[pos], 1);
        let mut overlong = enc[..pos].to_vec();
        overlong.extend_from_slice(&[0x81, 0x00]);
        overlong.extend_from_slice(&enc[pos + 1..]);
        overlong.extend_from_slice(&signed.signature().0);
        assert!(SignedRecord::decode(&overlong).is_err());
    }

    #[test]
    fn invalid_records_cannot_be_signed() {
        let key = NodeKey::generate().unwrap();
        let mut r = sample(&key);
        r.values.swap(0, 1);
        assert!(r.clone().sign(&key).is_err(), "indices must ascend");
        let mut r = sample(&key);
        r.status = RecordStatus::Withdrawn;
        assert!(r.sign(&key).is_err(), "tombstones carry no values");
        let mut r = sample(&key);
        r.owner = Some(r.identifier.clone());
        assert!(r.sign(&key).is_err(), "owner must be PV or US");
        let mut r = sample(&key);
        r.values[0].ttl = MAX_TTL + 1;
        assert!(r.sign(&key).is_err(), "TTLs are 31-bit");
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics() {
        let key = NodeKey::generate().unwrap();
        let good = sample(&key).sign(&key).unwrap().encode();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..5_000 {
            let mut b = good.clone();
            match next() % 3 {
                0 => b.truncate((next() as usize) % good.len()),
                1 => {
                    let at = (next() as usize) % b.len();
                    b[at] ^= 1 << (next() % 8);
                }
                _ => b = (0..next() % 300).map(|_| next() as u8).collect(),
            }
            if let Ok(r) = SignedRecord::decode(&b) {
                let mut again = r.record().canonical_bytes().unwrap();
                again.extend_from_slice(&r.signature().0);
                assert_eq!(again, b);
            }
        }
    }
}
