//! What one leaf of the log holds: a committed record, or for records that
//! are not public (transactions) only their digest.
//!
//! The first byte says which (`schema/log.md`):
//!
//! - `0x01` then the signed record's bytes exactly as stored and served
//!   (`SignedRecord::as_bytes`): anyone can check the node's signature;
//! - `0x02` then the version (u64, big-endian), the SHA-256 of the signed
//!   record's bytes, and the identifier's text: the parties can prove
//!   their copy without the log revealing it.

use sha2::{Digest, Sha256};

use crate::ident::identifier::Identifier;
use crate::ident::record::{RecordError, SignedRecord};

const RECORD: u8 = 0x01;
const PRIVATE: u8 = 0x02;

/// A leaf, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Record(SignedRecord),
    Private {
        identifier: Identifier,
        version: u64,
        digest: [u8; 32],
    },
}

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("empty log entry")]
    Empty,
    #[error("log entry of unknown kind {0:#04x}")]
    Kind(u8),
    #[error("log entry: {0}")]
    Record(#[from] RecordError),
    #[error("private log entry: {0}")]
    Private(String),
}

/// The leaf for a committed record; `private` records are logged by digest.
pub fn leaf(signed: &SignedRecord, private: bool) -> Vec<u8> {
    let bytes = signed.as_bytes();
    if !private {
        let mut out = Vec::with_capacity(1 + bytes.len());
        out.push(RECORD);
        out.extend_from_slice(bytes);
        return out;
    }
    let rec = signed.record();
    let id = rec.identifier.to_string();
    let mut out = Vec::with_capacity(1 + 8 + 32 + id.len());
    out.push(PRIVATE);
    out.extend_from_slice(&rec.version.to_be_bytes());
    out.extend_from_slice(&digest(bytes));
    out.extend_from_slice(id.as_bytes());
    out
}

/// SHA-256 of a signed record's bytes, as a private leaf holds it.
pub fn digest(signed_bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(signed_bytes).into()
}

/// The identifier text and version a leaf is about, without decoding the
/// record whole (the integrator's index over leaves the commit path wrote).
pub fn identity(leaf: &[u8]) -> Result<(String, u64), EntryError> {
    let (&kind, rest) = leaf.split_first().ok_or(EntryError::Empty)?;
    match kind {
        RECORD => {
            let (id, version) = crate::ident::record::peek_identity(rest)?;
            Ok((id.to_string(), version))
        }
        PRIVATE => match Entry::parse(leaf)? {
            Entry::Private {
                identifier,
                version,
                ..
            } => Ok((identifier.to_string(), version)),
            Entry::Record(_) => Err(EntryError::Kind(kind)),
        },
        other => Err(EntryError::Kind(other)),
    }
}

impl Entry {
    /// Strict: a record leaf must decode as a canonical signed record.
    pub fn parse(bytes: &[u8]) -> Result<Entry, EntryError> {
        let (&kind, rest) = bytes.split_first().ok_or(EntryError::Empty)?;
        match kind {
            RECORD => Ok(Entry::Record(SignedRecord::decode(rest)?)),
            PRIVATE => {
                let (version, rest) = rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| EntryError::Private("no version".into()))?;
                let (digest, id) = rest
                    .split_first_chunk::<32>()
                    .ok_or_else(|| EntryError::Private("no digest".into()))?;
                let id = std::str::from_utf8(id)
                    .map_err(|_| EntryError::Private("identifier is not UTF-8".into()))?;
                let identifier =
                    Identifier::parse(id).map_err(|e| EntryError::Private(e.to_string()))?;
                Ok(Entry::Private {
                    identifier,
                    version: u64::from_be_bytes(*version),
                    digest: *digest,
                })
            }
            other => Err(EntryError::Kind(other)),
        }
    }

    pub fn identifier(&self) -> &Identifier {
        match self {
            Entry::Record(r) => &r.record().identifier,
            Entry::Private { identifier, .. } => identifier,
        }
    }

    pub fn version(&self) -> u64 {
        match self {
            Entry::Record(r) => r.record().version,
            Entry::Private { version, .. } => *version,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::ident::identifier::Class;
    use crate::ident::keys::NodeKey;
    use crate::ident::record::{Record, RecordStatus};

    fn signed(class: Class, version: u64) -> SignedRecord {
        let key = NodeKey::generate().unwrap();
        let id = Identifier::new(
            crate::ident::identifier::Prefix::parse("86.31").unwrap(),
            class,
            crate::ident::identifier::Serial::new(7).unwrap(),
        );
        Record {
            identifier: id,
            owner: None,
            version,
            status: RecordStatus::Active,
            issuer: key.public().key_id(),
            created: 1_800_000_000,
            updated: 1_800_000_000,
            values: Vec::new(),
        }
        .sign(&key)
        .unwrap()
    }

    #[test]
    fn a_leaf_names_its_record_and_version_without_a_full_decode() {
        for (class, private) in [(Class::Gc, false), (Class::Tx, true)] {
            let r = signed(class, 3);
            let leaf = leaf(&r, private);
            let (id, version) = identity(&leaf).unwrap();
            assert_eq!((id, version), (r.record().identifier.to_string(), 3));
            let entry = Entry::parse(&leaf).unwrap();
            assert_eq!(entry.identifier(), &r.record().identifier);
            assert_eq!(entry.version(), 3);
        }
        assert!(identity(&[]).is_err());
        assert!(identity(&[0x01, 0x02]).is_err());
        assert!(identity(&[0x09, 0x00]).is_err());
    }
}
