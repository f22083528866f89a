//! Delegations to child nodes: ND records that carry a `CP.DELEGATION`,
//! the zone cuts they make in the hot tier, and the index of the one in
//! force per child prefix.

use std::collections::HashMap;

use super::{Change, NewRecord, Plan, Publisher, Registry, RegistryError, Step};
use crate::dns::dnssec;
use crate::dns::wire::{WireName, rtype};
use crate::dns::zone::{CutSpec, Edit, RrSet, ZoneError};
use crate::ident::delegation::{DELEGATION_INDEX, DELEGATION_TYPE, Delegation};
use crate::ident::identifier::{Class, Identifier, Prefix};
use crate::ident::record::{RecordStatus, SignedRecord, Value, ValueType};
use crate::store::Nonce;

/// Child prefix → its newest delegation record, and record → child prefix
/// (a withdrawn record no longer says which prefix it delegated).
#[derive(Default)]
pub(super) struct DelegationIndex {
    by_prefix: HashMap<Prefix, SignedRecord>,
    by_record: HashMap<Identifier, Prefix>,
}

/// The one value of a delegation record.
fn delegation_value(delegation: &Delegation, at: u64) -> Result<Value, RegistryError> {
    Ok(Value {
        index: DELEGATION_INDEX,
        kind: ValueType::parse(DELEGATION_TYPE)?,
        data: serde_json::to_string(delegation)
            .map_err(|e| RegistryError::Delegation(e.to_string()))?,
        ttl: 0,
        timestamp: at,
    })
}

/// The DS RDATA (SHA-256) for a child zone `cut` whose node key is `key`
/// (64 hex digits); `None` for a key that does not parse.
fn child_ds(cut: &WireName, key: &str) -> Option<Vec<u8>> {
    let raw = crate::ident::delegation::hex32(key)?;
    let dnskey = dnssec::dnskey_rdata(dnssec::FLAGS_CSK, &raw);
    dnssec::ds_rdata(cut.as_bytes(), &dnskey).ok()
}

impl Publisher {
    /// Keeps the zone cut of a delegation in step with its record: the
    /// signed record is served at the cut (revoked or not), the referral
    /// only while it is in force.
    pub(super) fn delegation_edits(
        &self,
        signed: &SignedRecord,
        edits: &mut Vec<Edit>,
    ) -> Result<(), RegistryError> {
        let r = signed.record();
        if r.identifier.class() != Class::Nd || r.identifier.prefix() != &self.node.prefix {
            return Ok(());
        }
        let mut index = self.delegations.write().unwrap_or_else(|e| e.into_inner());
        let delegation = match Delegation::from_record(signed) {
            Ok(d) => d,
            Err(_) => {
                // A withdrawn delegation record: the cut goes with it.
                if let Some(prefix) = index.by_record.remove(&r.identifier) {
                    index.by_prefix.remove(&prefix);
                    let cut = self.cut_name(&prefix)?;
                    edits.push(Edit::Cut(cut.clone(), None));
                    edits.push(Edit::Set(cut, Vec::new()));
                    edits.push(Edit::Set(self.alias_name(&prefix)?, Vec::new()));
                }
                return Ok(());
            }
        };
        let Ok(prefix) = delegation.prefix() else {
            return Ok(());
        };
        if prefix.parent().as_ref() != Some(&self.node.prefix) {
            tracing::warn!(record = %r.identifier, child = %prefix, "delegation is not for a child of this node; not published");
            return Ok(());
        }
        if let Some(current) = index.by_prefix.get(&prefix)
            && current.record().identifier != r.identifier
            && delegation.revoked.is_some()
        {
            // An older, revoked delegation must not hide the one in force.
            index.by_record.insert(r.identifier.clone(), prefix);
            return Ok(());
        }
        let cut = self.cut_name(&prefix)?;
        let ttl = r.min_ttl(self.node.default_ttl);
        let record_set = RrSet {
            rtype: rtype::CPREC,
            ttl,
            rdatas: vec![signed.as_bytes().to_vec()],
        };
        // The DS of the child's key (its node key signs its zone, flags
        // 257) beside the record at the cut, so a validator follows the
        // chain from this zone into the child's (RFC 4035 §2.4).
        let mut at_cut = vec![record_set.clone()];
        if delegation.revoked.is_none()
            && let Some(ds) = child_ds(&cut, &delegation.key)
        {
            at_cut.push(RrSet {
                rtype: rtype::DS,
                ttl,
                rdatas: vec![ds],
            });
        }
        edits.push(Edit::Set(cut.clone(), at_cut));
        edits.push(Edit::Set(
            self.alias_name(&prefix)?,
            vec![record_set.clone()],
        ));
        if delegation.revoked.is_some() {
            edits.push(Edit::Cut(cut, None));
        } else {
            let mut ns = Vec::new();
            let mut glue = Vec::new();
            for server in &delegation.servers {
                let name = WireName::parse(&server.name)
                    .map_err(|e| ZoneError::OutOfZone(format!("{}: {e}", server.name)))?;
                ns.push(name.as_bytes().to_vec());
                if name.is_within(&cut) {
                    glue.extend(server.addresses.iter().map(|a| (name.clone(), a.ip())));
                }
            }
            let ns = RrSet {
                rtype: rtype::NS,
                ttl,
                rdatas: ns,
            };
            edits.push(Edit::Cut(
                cut,
                Some(CutSpec {
                    authority: vec![ns, record_set],
                    glue,
                    ttl,
                }),
            ));
        }
        index.by_record.insert(r.identifier.clone(), prefix.clone());
        index.by_prefix.insert(prefix, signed.clone());
        Ok(())
    }

    /// The second place the record is served (`delegation::alias_name`).
    fn alias_name(&self, prefix: &Prefix) -> Result<WireName, RegistryError> {
        let name = crate::ident::delegation::alias_name(prefix, &self.node.apex)
            .ok_or_else(|| RegistryError::Delegation(format!("{prefix} has no parent")))?;
        WireName::parse(&name)
            .map_err(|e| RegistryError::Zone(ZoneError::OutOfZone(format!("{prefix}: {e}"))))
    }

    fn cut_name(&self, prefix: &Prefix) -> Result<WireName, RegistryError> {
        WireName::parse(&prefix.zone_name(&self.node.apex))
            .map_err(|e| RegistryError::Zone(ZoneError::OutOfZone(format!("{prefix}: {e}"))))
    }
}

impl Registry {
    /// The newest delegation record for each child prefix.
    pub fn delegations(&self) -> Vec<SignedRecord> {
        let index = self
            .publisher
            .delegations
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<SignedRecord> = index.by_prefix.values().cloned().collect();
        v.sort_by(|a, b| a.record().identifier.cmp(&b.record().identifier));
        v
    }

    /// The delegation record in force (not revoked) for `prefix`.
    pub fn delegation(&self, prefix: &Prefix) -> Option<(SignedRecord, Delegation)> {
        let index = self
            .publisher
            .delegations
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let signed = index.by_prefix.get(prefix)?;
        let d = Delegation::from_record(signed).ok()?;
        d.revoked.is_none().then(|| (signed.clone(), d))
    }

    /// Delegates a child prefix: issues an ND record carrying `delegation`,
    /// consuming `nonce` in the same commit.
    pub async fn delegate(
        &self,
        delegation: &Delegation,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        let invalid = |why: String| RegistryError::Delegation(why);
        delegation.check().map_err(invalid)?;
        let prefix = delegation.prefix().map_err(invalid)?;
        if prefix.parent().as_ref() != Some(&self.node.prefix) {
            return Err(invalid(format!(
                "{prefix} is not one level below this node's prefix {}",
                self.node.prefix
            )));
        }
        if delegation.revoked.is_some() {
            return Err(invalid("a new delegation cannot be revoked".into()));
        }
        if let Some((existing, _)) = self.delegation(&prefix) {
            return Err(RegistryError::Taken(existing.record().identifier.clone()));
        }
        let new = NewRecord {
            prefix: None,
            class: Class::Nd,
            owner: None,
            values: vec![delegation_value(delegation, self.clock.now())?],
            status: RecordStatus::Active,
        };
        self.commit_async(Plan::one(Step::Issue(new), nonce))
            .await?
            .first()
    }

    /// Revokes the delegation in force for `prefix` (a new version of its
    /// record with `revoked` set), consuming `nonce` in the same commit.
    pub async fn revoke(
        &self,
        prefix: &Prefix,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        let (signed, mut delegation) = self
            .delegation(prefix)
            .ok_or_else(|| RegistryError::Delegation(format!("{prefix} is not delegated")))?;
        let at = self.clock.now();
        delegation.revoked = Some(at);
        let change = Change::Values(vec![delegation_value(&delegation, at)?]);
        self.commit_async(Plan::change(&signed.record().identifier, change, nonce))
            .await?
            .first()
    }
}
