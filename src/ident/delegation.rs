//! Delegations and the chain of trust (DESIGN §1–3).
//!
//! A delegation is a record like any other: an `ND` identifier issued by the
//! parent node under its own prefix, signed by the parent's node key, whose
//! one `CP.DELEGATION` value (JSON) names the child prefix, the child's
//! public key, the child's DNS servers and a validity window. Revoking it is
//! a new version with `revoked` set, so the parent can keep publishing the
//! signed revocation. A chain is the delegations from the national root
//! down to a node, root first; checking it needs only the root key.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ident::identifier::{Apex, Class, Prefix};
use crate::ident::keys::{KeyId, PublicKey};
use crate::ident::record::{RecordStatus, SignedRecord};

/// The value type of a delegation.
pub const DELEGATION_TYPE: &str = "CP.DELEGATION";
/// The value index a delegation is stored at.
pub const DELEGATION_INDEX: u32 = 1;

/// What a parent states about a child zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delegation {
    /// The child prefix, one segment below the parent's.
    pub prefix: String,
    /// The child's node key: 64 hex digits (the raw Ed25519 public key).
    pub key: String,
    /// The child's name servers, with the socket addresses they answer on.
    pub servers: Vec<Server>,
    /// The child's HTTP API (`http://host:port`), where the parent pulls
    /// its situation summary; absent for a child that serves no API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Unix seconds; the delegation is valid in `[not_before, not_after]`.
    pub not_before: u64,
    pub not_after: u64,
    /// Unix seconds of revocation; a revoked delegation never becomes valid again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
}

/// An API URL a parent may pull from: `http://`, a host, an optional
/// port and no path, query or credentials. (The node's HTTP client has no
/// TLS: an `https://` URL could never be pulled, so it is refused here
/// rather than failing at every pull.)
/// Where a parent also publishes a child's delegation record:
/// `<child's last segment>._delegation.<parent zone>`. At the cut itself
/// the record is data below a delegation point, which a stock secondary
/// (Knot, NSD) leaves out of its referrals; here it is ordinary
/// authoritative data, so a gateway behind secondaries still finds it.
/// `None` for the root, which has no parent.
pub fn alias_name(child: &Prefix, apex: &Apex) -> Option<String> {
    let parent = child.parent()?;
    let label = child.segments().last()?;
    Some(format!("{label}._delegation.{}", parent.zone_name(apex)))
}

pub fn check_api_url(api: &str) -> Result<(), String> {
    let rest = api
        .strip_prefix("http://")
        .ok_or_else(|| format!("api {api:?}: not an http:// URL"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let host_ok = !authority.is_empty()
        && authority.len() <= 255
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    if !host_ok {
        return Err(format!(
            "api {api:?}: only scheme, host and port, e.g. http://192.0.2.1:8054"
        ));
    }
    Ok(())
}

/// One name server of a delegated zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Fully qualified host name (glue and NS target).
    pub name: String,
    /// Where it answers DNS; the port is carried because glue cannot.
    pub addresses: Vec<SocketAddr>,
}

/// Why a link of a chain is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("{what} is not a delegation record: {why}")]
    NotADelegation { what: String, why: String },
    #[error("delegation {record} is not signed by the key of {parent} ({key}): {why}")]
    BadSignature {
        record: String,
        parent: String,
        key: KeyId,
        why: String,
    },
    #[error("delegation {record} was issued under {issued_under}, not by the parent zone {parent}")]
    WrongParent {
        record: String,
        issued_under: String,
        parent: String,
    },
    #[error("delegation of {prefix} is not one level below {parent}")]
    NotAChild { prefix: String, parent: String },
    #[error("delegation of {prefix} expired at {not_after} (now {now})")]
    Expired {
        prefix: String,
        not_after: u64,
        now: u64,
    },
    #[error("delegation of {prefix} is not valid before {not_before} (now {now})")]
    NotYetValid {
        prefix: String,
        not_before: u64,
        now: u64,
    },
    #[error("delegation of {prefix} was revoked at {at} (record {record})")]
    Revoked {
        prefix: String,
        at: u64,
        record: String,
    },
    #[error("delegation of {prefix} was withdrawn (record {record})")]
    Withdrawn { prefix: String, record: String },
    #[error("the chain ends at {ends}, but the node is {node}")]
    WrongEnd { ends: String, node: String },
    #[error("the chain ends with key {ends}, but the node key is {node}")]
    WrongKey { ends: KeyId, node: KeyId },
    #[error("{record} is signed by key {key}, which is not a key of zone {zone}")]
    UnknownKey {
        record: String,
        zone: String,
        key: KeyId,
    },
    #[error("record {record} is not under zone {zone}")]
    OutOfZone { record: String, zone: String },
    #[error("record {record}: {why}")]
    BadRecord { record: String, why: String },
}

impl Delegation {
    pub fn prefix(&self) -> Result<Prefix, String> {
        Prefix::parse(&self.prefix).map_err(|e| e.to_string())
    }

    pub fn public_key(&self) -> Result<PublicKey, String> {
        let bytes = hex32(&self.key).ok_or("key is not 64 hex digits")?;
        PublicKey::from_bytes(&bytes).map_err(|e| e.to_string())
    }

    /// Every server address, in order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.servers
            .iter()
            .flat_map(|s| s.addresses.iter().copied())
            .collect()
    }

    /// The checks that need no key: well-formed fields and a sane window.
    pub fn check(&self) -> Result<(), String> {
        let prefix = self.prefix()?;
        if prefix.depth() < 2 {
            return Err("the national root is not delegated".into());
        }
        let key = self.public_key()?;
        if key.is_weak() {
            return Err("child key is a weak (small-order) key".into());
        }
        if self.servers.is_empty() || self.servers.len() > 8 {
            return Err("1 to 8 servers".into());
        }
        for s in &self.servers {
            crate::dns::wire::WireName::parse(&s.name)
                .map_err(|e| format!("server name {:?}: {e}", s.name))?;
            if s.addresses.is_empty() || s.addresses.len() > 8 {
                return Err(format!("server {}: 1 to 8 addresses", s.name));
            }
            if s.addresses.iter().any(|a| a.port() == 0) {
                return Err(format!("server {}: port 0", s.name));
            }
        }
        if let Some(api) = &self.api {
            check_api_url(api)?;
        }
        if self.not_before > self.not_after {
            return Err("not_before is after not_after".into());
        }
        Ok(())
    }

    /// The delegation carried by a record, if it is one (no signature check).
    pub fn from_record(signed: &SignedRecord) -> Result<Delegation, TrustError> {
        let r = signed.record();
        let not = |why: &str| TrustError::NotADelegation {
            what: r.identifier.to_string(),
            why: why.to_string(),
        };
        if r.identifier.class() != Class::Nd {
            return Err(not("not an ND identifier"));
        }
        match r.status {
            RecordStatus::Active => {}
            RecordStatus::Withdrawn => {
                return Err(TrustError::Withdrawn {
                    prefix: "?".into(),
                    record: r.identifier.to_string(),
                });
            }
            // Not yet approved: never a link of a chain.
            RecordStatus::Pending => return Err(not("the record is pending, not active")),
        }
        let mut values = r
            .values
            .iter()
            .filter(|v| v.kind.as_str() == DELEGATION_TYPE);
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(not("needs exactly one CP.DELEGATION value"));
        };
        let d: Delegation =
            serde_json::from_str(&value.data).map_err(|e| not(&format!("CP.DELEGATION: {e}")))?;
        d.check().map_err(|e| not(&e))?;
        Ok(d)
    }
}

pub(crate) fn hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A zone whose key is trusted: the root (by configuration) or a zone
/// reached through verified delegations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedZone {
    pub prefix: Prefix,
    /// The key in force: the newest delegation's.
    pub key: PublicKey,
    /// Keys of older delegations still in their rollover overlap (newest
    /// first): what they signed is accepted until the overlap ends, which
    /// `valid_until` does not pass.
    pub retiring: Vec<PublicKey>,
    /// Where its servers answer (empty for the root: those come from configuration).
    pub servers: Vec<SocketAddr>,
    /// Unix seconds after which the delegation behind it is no longer valid.
    pub valid_until: u64,
    /// The delegation record that made it trusted (none for the root).
    pub via: Option<SignedRecord>,
}

impl TrustedZone {
    pub fn root(prefix: Prefix, key: PublicKey, servers: Vec<SocketAddr>) -> TrustedZone {
        TrustedZone {
            prefix,
            key,
            retiring: Vec::new(),
            servers,
            valid_until: u64::MAX,
            via: None,
        }
    }

    /// Every key whose signatures this zone's records may carry, the key
    /// in force first.
    pub fn keys(&self) -> impl Iterator<Item = &PublicKey> {
        std::iter::once(&self.key).chain(self.retiring.iter())
    }

    /// The zone's key with this id, if it is one of its keys.
    pub fn key_for(&self, id: &KeyId) -> Option<&PublicKey> {
        self.keys().find(|k| &k.key_id() == id)
    }

    /// The key that signed `signed`, or why it is not one of this zone's.
    fn signer_of(&self, signed: &SignedRecord) -> Result<&PublicKey, TrustError> {
        let issuer = signed.record().issuer;
        self.key_for(&issuer).ok_or_else(|| TrustError::UnknownKey {
            record: signed.record().identifier.to_string(),
            zone: self.prefix.to_string(),
            key: issuer,
        })
    }

    /// One zone from two verified delegations of the same prefix (a key
    /// rollover's overlap): the one that took effect later is in force,
    /// the other's key retires, and the pair is trusted only as long as
    /// both are valid, so a cache asks again when the overlap ends.
    pub fn merge(self, other: TrustedZone) -> TrustedZone {
        let since = |z: &TrustedZone| {
            z.via.as_ref().map(|r| {
                let d = Delegation::from_record(r)
                    .map(|d| d.not_before)
                    .unwrap_or(0);
                (d, r.record().identifier.serial().value())
            })
        };
        let (mut newer, older) = if since(&other) > since(&self) {
            (other, self)
        } else {
            (self, other)
        };
        for k in older.keys() {
            if newer.key_for(&k.key_id()).is_none() {
                newer.retiring.push(*k);
            }
        }
        newer.valid_until = newer.valid_until.min(older.valid_until);
        newer
    }

    /// Checks a delegation record presented by this zone: issued under this
    /// zone's prefix, signed by its key, for a prefix one level below, in
    /// its validity window and not revoked. Returns the child zone.
    pub fn verify_delegation(
        &self,
        signed: &SignedRecord,
        now: u64,
    ) -> Result<TrustedZone, TrustError> {
        let r = signed.record();
        let record = r.identifier.to_string();
        if r.identifier.prefix() != &self.prefix {
            return Err(TrustError::WrongParent {
                record,
                issued_under: r.identifier.prefix().to_string(),
                parent: self.prefix.to_string(),
            });
        }
        let signer = self.signer_of(signed)?;
        signed
            .verify(signer)
            .map_err(|e| TrustError::BadSignature {
                record: record.clone(),
                parent: self.prefix.to_string(),
                key: signer.key_id(),
                why: e.to_string(),
            })?;
        let d = Delegation::from_record(signed)?;
        let prefix = d.prefix().map_err(|why| TrustError::NotADelegation {
            what: record.clone(),
            why,
        })?;
        if prefix.parent().as_ref() != Some(&self.prefix) {
            return Err(TrustError::NotAChild {
                prefix: prefix.to_string(),
                parent: self.prefix.to_string(),
            });
        }
        if let Some(at) = d.revoked {
            return Err(TrustError::Revoked {
                prefix: d.prefix,
                at,
                record,
            });
        }
        if now > d.not_after {
            return Err(TrustError::Expired {
                prefix: d.prefix,
                not_after: d.not_after,
                now,
            });
        }
        if now < d.not_before {
            return Err(TrustError::NotYetValid {
                prefix: d.prefix,
                not_before: d.not_before,
                now,
            });
        }
        let key = d.public_key().map_err(|why| TrustError::NotADelegation {
            what: record.clone(),
            why,
        })?;
        Ok(TrustedZone {
            prefix,
            key,
            retiring: Vec::new(),
            servers: d.addresses(),
            valid_until: d.not_after.min(self.valid_until),
            via: Some(signed.clone()),
        })
    }

    /// Checks a record served by this zone: under its prefix, issued and
    /// signed by its key.
    pub fn verify_record(&self, signed: &SignedRecord) -> Result<(), TrustError> {
        let r = signed.record();
        if !self.prefix.contains(r.identifier.prefix()) {
            return Err(TrustError::OutOfZone {
                record: r.identifier.to_string(),
                zone: self.prefix.to_string(),
            });
        }
        signed
            .verify(self.signer_of(signed)?)
            .map_err(|e| TrustError::BadRecord {
                record: r.identifier.to_string(),
                why: e.to_string(),
            })
    }
}

/// Verifies a chain (root first) from the root key; returns every zone
/// from the root down to the last delegation's child.
pub fn verify_chain(
    root: &TrustedZone,
    chain: &[SignedRecord],
    now: u64,
) -> Result<Vec<TrustedZone>, TrustError> {
    let mut zones = vec![root.clone()];
    for link in chain {
        let parent = zones.last().cloned().unwrap_or_else(|| root.clone());
        zones.push(parent.verify_delegation(link, now)?);
    }
    Ok(zones)
}

/// Checks that a node with `prefix` and `key` may serve under `chain`.
pub fn verify_node_chain(
    root: &TrustedZone,
    chain: &[SignedRecord],
    prefix: &Prefix,
    key: &PublicKey,
    now: u64,
) -> Result<Vec<TrustedZone>, TrustError> {
    let zones = verify_chain(root, chain, now)?;
    let last = zones.last().unwrap_or(root);
    if &last.prefix != prefix {
        return Err(TrustError::WrongEnd {
            ends: last.prefix.to_string(),
            node: prefix.to_string(),
        });
    }
    if last.key.key_id() != key.key_id() {
        return Err(TrustError::WrongKey {
            ends: last.key.key_id(),
            node: key.key_id(),
        });
    }
    Ok(zones)
}

/// A node's chain held live, root first: read by its API and witness,
/// replaced when its parent serves a newer one (a key rollover above it).
#[derive(Debug, Clone, Default)]
pub struct LiveChain(std::sync::Arc<std::sync::RwLock<Vec<SignedRecord>>>);

impl LiveChain {
    pub fn new(chain: Vec<SignedRecord>) -> LiveChain {
        LiveChain(std::sync::Arc::new(std::sync::RwLock::new(chain)))
    }

    pub fn get(&self) -> Vec<SignedRecord> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set(&self, chain: Vec<SignedRecord>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = chain;
    }

    pub fn is_empty(&self) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// The parent's key as the chain names it: the child key of the
    /// second-to-last link (`None` for a child of the root, whose parent's
    /// key is the trust anchor, or an empty chain).
    pub fn parent_key(&self) -> Option<PublicKey> {
        let chain = self.0.read().unwrap_or_else(|e| e.into_inner());
        let above = chain.len().checked_sub(2).and_then(|i| chain.get(i))?;
        Delegation::from_record(above).ok()?.public_key().ok()
    }
}

/// A chain file: the delegation records, root first, as hex.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainFile {
    pub chain: Vec<String>,
}

impl ChainFile {
    pub fn from_records(records: &[SignedRecord]) -> ChainFile {
        ChainFile {
            chain: records
                .iter()
                .map(|r| crate::ident::keys::to_hex(r.as_bytes()))
                .collect(),
        }
    }

    pub fn records(&self) -> Result<Vec<SignedRecord>, String> {
        self.chain
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let bytes = from_hex(h).ok_or_else(|| format!("link {i}: not hex"))?;
                SignedRecord::decode(&bytes).map_err(|e| format!("link {i}: {e}"))
            })
            .collect()
    }
}

/// Lower- or upper-case hex to bytes.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::identifier::Identifier;
    use crate::ident::keys::NodeKey;
    use crate::ident::record::{Record, Value, ValueType};

    fn delegation_record(
        parent: &NodeKey,
        parent_prefix: &str,
        serial: u64,
        d: &Delegation,
    ) -> SignedRecord {
        Record {
            identifier: Identifier::new(
                Prefix::parse(parent_prefix).unwrap(),
                Class::Nd,
                crate::ident::identifier::Serial::new(serial).unwrap(),
            ),
            owner: None,
            version: 1,
            status: RecordStatus::Active,
            issuer: parent.public().key_id(),
            created: 10,
            updated: 10,
            values: vec![Value {
                index: DELEGATION_INDEX,
                kind: ValueType::parse(DELEGATION_TYPE).unwrap(),
                data: serde_json::to_string(d).unwrap(),
                ttl: 0,
                timestamp: 10,
            }],
        }
        .sign(parent)
        .unwrap()
    }

    fn delegation(prefix: &str, child: &NodeKey) -> Delegation {
        Delegation {
            prefix: prefix.into(),
            key: crate::ident::keys::to_hex(&child.public().to_bytes()),
            servers: vec![Server {
                name: "ns1.31.86.cpid.internal".into(),
                addresses: vec!["127.0.0.1:5301".parse().unwrap()],
            }],
            api: Some("http://127.0.0.1:8054".into()),
            not_before: 0,
            not_after: 1000,
            revoked: None,
        }
    }

    #[test]
    fn an_api_url_is_scheme_host_and_port_only() {
        for good in [
            "http://127.0.0.1:8054",
            "http://node.example:80/",
            "http://[::1]:8054",
        ] {
            assert!(check_api_url(good).is_ok(), "{good}");
        }
        for bad in [
            "ftp://x",
            "https://node.example",
            "http://",
            "http://a/b",
            "http://u@h",
            "127.0.0.1:8054",
            "http://h?q",
        ] {
            assert!(check_api_url(bad).is_err(), "{bad}");
        }
        let key = NodeKey::generate().unwrap();
        let mut d = delegation("86.31", &key);
        d.api = Some("http://a/path".into());
        assert!(d.check().unwrap_err().contains("api"));
    }

    #[test]
    fn a_three_level_chain_verifies_and_each_broken_link_is_named() {
        let (root, region, industry) = (
            NodeKey::from_secret_bytes(&[1; 32]),
            NodeKey::from_secret_bytes(&[2; 32]),
            NodeKey::from_secret_bytes(&[3; 32]),
        );
        let anchor = TrustedZone::root(Prefix::parse("86").unwrap(), root.public(), vec![]);
        let l1 = delegation_record(&root, "86", 1, &delegation("86.31", &region));
        let l2 = delegation_record(&region, "86.31", 1, &delegation("86.31.1005", &industry));
        let p = Prefix::parse("86.31.1005").unwrap();
        let zones = verify_node_chain(
            &anchor,
            &[l1.clone(), l2.clone()],
            &p,
            &industry.public(),
            500,
        )
        .unwrap();
        assert_eq!(zones.len(), 3);
        assert_eq!(zones[2].servers, vec!["127.0.0.1:5301".parse().unwrap()]);

        // Signed by the wrong key: the industry node delegating to itself.
        let forged = delegation_record(&industry, "86.31", 2, &delegation("86.31.1005", &industry));
        assert!(matches!(
            verify_chain(&anchor, &[l1.clone(), forged.clone()], 500),
            Err(TrustError::UnknownKey { .. })
        ));
        // The region's own link with one bit of its signature flipped.
        let mut bytes = l2.as_bytes().to_vec();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = SignedRecord::decode(&bytes).unwrap();
        assert!(matches!(
            verify_chain(&anchor, &[l1.clone(), flipped], 500),
            Err(TrustError::BadSignature { .. })
        ));
        assert!(matches!(
            verify_chain(&anchor, &[l1.clone(), l2.clone()], 1001),
            Err(TrustError::Expired { .. })
        ));
        let mut revoked = delegation("86.31.1005", &industry);
        revoked.revoked = Some(400);
        let l2r = delegation_record(&region, "86.31", 1, &revoked);
        assert!(matches!(
            verify_chain(&anchor, &[l1.clone(), l2r], 500),
            Err(TrustError::Revoked { at: 400, .. })
        ));
        // Links out of order: the region's delegation presented to the root.
        assert!(matches!(
            verify_chain(&anchor, std::slice::from_ref(&l2), 500),
            Err(TrustError::WrongParent { .. })
        ));
        // A grandchild delegated directly by the root.
        let skip = delegation_record(&root, "86", 3, &delegation("86.31.1005", &industry));
        assert!(matches!(
            verify_chain(&anchor, &[skip], 500),
            Err(TrustError::NotAChild { .. })
        ));
        // The chain is fine but ends at another node.
        assert!(matches!(
            verify_node_chain(&anchor, &[l1], &p, &industry.public(), 500),
            Err(TrustError::WrongEnd { .. })
        ));
    }

    #[test]
    fn during_a_rollover_a_zone_is_trusted_under_both_keys_and_no_other() {
        let root = NodeKey::from_secret_bytes(&[1; 32]);
        let (old, new, stranger) = (
            NodeKey::from_secret_bytes(&[2; 32]),
            NodeKey::from_secret_bytes(&[4; 32]),
            NodeKey::from_secret_bytes(&[5; 32]),
        );
        let anchor = TrustedZone::root(Prefix::parse("86").unwrap(), root.public(), vec![]);
        let mut d_old = delegation("86.31", &old);
        d_old.not_after = 600;
        let mut d_new = delegation("86.31", &new);
        d_new.not_before = 400;
        let l_old = delegation_record(&root, "86", 1, &d_old);
        let l_new = delegation_record(&root, "86", 2, &d_new);
        let z_old = anchor.verify_delegation(&l_old, 500).unwrap();
        let z_new = anchor.verify_delegation(&l_new, 500).unwrap();
        // Either order: the later delegation's key is in force.
        for zone in [z_old.clone().merge(z_new.clone()), z_new.merge(z_old)] {
            assert_eq!(zone.key, new.public());
            assert_eq!(zone.retiring, vec![old.public()]);
            assert_eq!(zone.valid_until, 600, "trusted no longer than the overlap");
            for (key, serial) in [(&old, 1), (&new, 2)] {
                let child = delegation_record(key, "86.31", serial, &delegation("86.31.1005", key));
                zone.verify_record(&child).unwrap();
                zone.verify_delegation(&child, 500).unwrap();
            }
            let forged =
                delegation_record(&stranger, "86.31", 3, &delegation("86.31.1005", &stranger));
            assert!(matches!(
                zone.verify_record(&forged),
                Err(TrustError::UnknownKey { .. })
            ));
        }
    }

    #[test]
    fn chain_files_round_trip() {
        let root = NodeKey::from_secret_bytes(&[1; 32]);
        let region = NodeKey::from_secret_bytes(&[2; 32]);
        let l1 = delegation_record(&root, "86", 1, &delegation("86.31", &region));
        let file = ChainFile::from_records(std::slice::from_ref(&l1));
        let text = serde_json::to_string(&file).unwrap();
        let back: ChainFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back.records().unwrap(), vec![l1]);
        assert!(
            ChainFile {
                chain: vec!["zz".into()]
            }
            .records()
            .is_err()
        );
    }
}
