//! Delegations to child nodes: ND records that carry a `CP.DELEGATION`,
//! the zone cuts they make in the hot tier, and the index of those in
//! force per child prefix: one, or two during a key rollover's overlap
//! (the old key's delegation beside the new one until the overlap ends).

use std::collections::HashMap;

use super::{Change, NewRecord, Plan, Publisher, Registry, RegistryError, Step};
use crate::dns::dnssec;
use crate::dns::wire::{WireName, rtype};
use crate::dns::zone::{CutSpec, Edit, RrSet, ZoneError};
use crate::ident::delegation::{DELEGATION_INDEX, DELEGATION_TYPE, Delegation};
use crate::ident::identifier::{Class, Identifier, Prefix};
use crate::ident::record::{RecordStatus, SignedRecord, Value, ValueType};
use crate::store::Nonce;

/// Child prefix → the latest version of every delegation record made for
/// it, and record → child prefix (a withdrawn record no longer says which
/// prefix it delegated).
#[derive(Default)]
pub(super) struct DelegationIndex {
    by_prefix: HashMap<Prefix, Vec<(SignedRecord, Delegation)>>,
    by_record: HashMap<Identifier, Prefix>,
}

/// Newest first: the delegation that took effect last, then the higher serial.
fn newest_first(v: &mut [(SignedRecord, Delegation)]) {
    v.sort_by(|(ra, da), (rb, db)| {
        (db.not_before, rb.record().identifier.serial().value())
            .cmp(&(da.not_before, ra.record().identifier.serial().value()))
    });
}

impl DelegationIndex {
    /// The delegations of `prefix` not revoked, newest first.
    fn in_force(&self, prefix: &Prefix) -> Vec<(SignedRecord, Delegation)> {
        let mut v: Vec<_> = self
            .by_prefix
            .get(prefix)
            .into_iter()
            .flatten()
            .filter(|(_, d)| d.revoked.is_none())
            .cloned()
            .collect();
        newest_first(&mut v);
        v
    }
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
    /// Keeps the index and the zone cut of a delegation in step with its
    /// record.
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
                // A withdrawn delegation record: the cut goes with it
                // unless another delegation of the prefix stands.
                if let Some(prefix) = index.by_record.remove(&r.identifier) {
                    if let Some(v) = index.by_prefix.get_mut(&prefix) {
                        v.retain(|(s, _)| s.record().identifier != r.identifier);
                    }
                    self.publish_cut(&mut index, &prefix, edits)?;
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
        let records = index.by_prefix.entry(prefix.clone()).or_default();
        records.retain(|(s, _)| s.record().identifier != r.identifier);
        records.push((signed.clone(), delegation));
        index.by_record.insert(r.identifier.clone(), prefix.clone());
        self.publish_cut(&mut index, &prefix, edits)
    }

    /// The zone cut of `prefix` from the delegations the index holds for
    /// it. At the cut (and at its alias name) the records in force, newest
    /// first, with the DS of each one's key (its node key signs its zone,
    /// flags 257), so a validator follows the chain into the child under
    /// either key during a rollover (RFC 4035 §2.4); the referral's NS and
    /// glue are the newest one's. With none in force, the newest record
    /// (revoked) is still served there and nothing is referred.
    fn publish_cut(
        &self,
        index: &mut DelegationIndex,
        prefix: &Prefix,
        edits: &mut Vec<Edit>,
    ) -> Result<(), RegistryError> {
        let cut = self.cut_name(prefix)?;
        let alias = self.alias_name(prefix)?;
        let mut all = index.by_prefix.get(prefix).cloned().unwrap_or_default();
        if all.is_empty() {
            index.by_prefix.remove(prefix);
            edits.push(Edit::Cut(cut.clone(), None));
            edits.push(Edit::Set(cut, Vec::new()));
            edits.push(Edit::Set(alias, Vec::new()));
            return Ok(());
        }
        newest_first(&mut all);
        let mut shown = index.in_force(prefix);
        if shown.is_empty() {
            shown = all.into_iter().take(1).collect();
        }
        let ttl = shown
            .iter()
            .map(|(s, _)| s.record().min_ttl(self.node.default_ttl))
            .min()
            .unwrap_or(self.node.default_ttl);
        let record_set = RrSet {
            rtype: rtype::CPREC,
            ttl,
            rdatas: shown.iter().map(|(s, _)| s.as_bytes().to_vec()).collect(),
        };
        let mut ds: Vec<Vec<u8>> = Vec::new();
        for (_, d) in shown.iter().filter(|(_, d)| d.revoked.is_none()) {
            if let Some(rdata) = child_ds(&cut, &d.key)
                && !ds.contains(&rdata)
            {
                ds.push(rdata);
            }
        }
        let mut at_cut = vec![record_set.clone()];
        if !ds.is_empty() {
            at_cut.push(RrSet {
                rtype: rtype::DS,
                ttl,
                rdatas: ds,
            });
        }
        edits.push(Edit::Set(cut.clone(), at_cut));
        edits.push(Edit::Set(alias, vec![record_set.clone()]));
        match shown.first() {
            Some((_, newest)) if newest.revoked.is_none() => {
                let mut ns = Vec::new();
                let mut glue = Vec::new();
                for server in &newest.servers {
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
            _ => edits.push(Edit::Cut(cut, None)),
        }
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
    /// The latest version of every delegation record this node made,
    /// in force or not, by identifier.
    pub fn delegations(&self) -> Vec<SignedRecord> {
        let index = self
            .publisher
            .delegations
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<SignedRecord> = index
            .by_prefix
            .values()
            .flatten()
            .map(|(s, _)| s.clone())
            .collect();
        v.sort_by(|a, b| a.record().identifier.cmp(&b.record().identifier));
        v
    }

    /// The delegations of `prefix` not revoked, newest first: one, or two
    /// during a key rollover's overlap.
    pub fn delegations_in_force(&self, prefix: &Prefix) -> Vec<(SignedRecord, Delegation)> {
        self.publisher
            .delegations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .in_force(prefix)
    }

    /// The newest delegation in force (not revoked) for `prefix`.
    pub fn delegation(&self, prefix: &Prefix) -> Option<(SignedRecord, Delegation)> {
        self.delegations_in_force(prefix).into_iter().next()
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

    /// Revokes every delegation in force for `prefix` (new versions of
    /// their records with `revoked` set, in one commit), consuming `nonce`
    /// in the same commit. Returns the newest one's revocation.
    pub async fn revoke(
        &self,
        prefix: &Prefix,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        let in_force = self.delegations_in_force(prefix);
        if in_force.is_empty() {
            return Err(RegistryError::Delegation(format!(
                "{prefix} is not delegated"
            )));
        }
        let at = self.clock.now();
        let mut steps = Vec::new();
        for (signed, mut delegation) in in_force {
            delegation.revoked = Some(at);
            steps.push(Step::Change {
                id: signed.record().identifier.clone(),
                change: Change::Values(vec![delegation_value(&delegation, at)?]),
            });
        }
        let plan = Plan {
            steps,
            nonce,
            ..Plan::default()
        };
        self.commit_async(plan).await?.first()
    }

    /// Rolls the node key of the child `prefix` (DESIGN §6): in one commit,
    /// a new delegation with `key` (64 hex digits) and the servers, API and
    /// end of the one in force, and a new version of the old one that ends
    /// `overlap` seconds from now, or is revoked now when `overlap` is 0 (a
    /// compromised key). During the overlap the parent serves both, with
    /// both DS; afterwards the old one is revoked ([`Registry::retire_rolled`]).
    /// One rollover at a time per prefix.
    pub async fn roll(
        &self,
        prefix: &Prefix,
        key: &str,
        overlap: u64,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        let invalid = |why: String| RegistryError::Delegation(why);
        let in_force = self.delegations_in_force(prefix);
        let Some((current, old)) = in_force.first().cloned() else {
            return Err(invalid(format!("{prefix} is not delegated")));
        };
        if let Some((_, older)) = in_force.get(1) {
            return Err(RegistryError::Rolling {
                prefix: prefix.to_string(),
                until: older.not_after,
            });
        }
        if old.key.eq_ignore_ascii_case(key) {
            return Err(invalid(format!("{prefix} already has this key")));
        }
        let at = self.clock.now();
        let mut new = old.clone();
        new.key = key.to_ascii_lowercase();
        new.not_before = at;
        new.check().map_err(invalid)?;
        let mut retired = old;
        if overlap == 0 {
            retired.revoked = Some(at);
        } else {
            retired.not_after = retired.not_after.min(at.saturating_add(overlap));
        }
        let plan = Plan {
            steps: vec![
                Step::Issue(NewRecord {
                    prefix: None,
                    class: Class::Nd,
                    owner: None,
                    values: vec![delegation_value(&new, at)?],
                    status: RecordStatus::Active,
                }),
                Step::Change {
                    id: current.record().identifier.clone(),
                    change: Change::Values(vec![delegation_value(&retired, at)?]),
                },
            ],
            nonce,
            ..Plan::default()
        };
        self.commit_async(plan).await?.first()
    }

    /// Revokes, at the end of their overlap, the delegations a rollover
    /// left beside a newer one; returns how many. Run by the node every
    /// minute, so the old key's DS and delegation leave the zone.
    pub async fn retire_rolled(&self) -> Result<usize, RegistryError> {
        let now = self.clock.now();
        let due: Vec<(SignedRecord, Delegation)> = {
            let index = self
                .publisher
                .delegations
                .read()
                .unwrap_or_else(|e| e.into_inner());
            index
                .by_prefix
                .keys()
                .flat_map(|p| index.in_force(p).into_iter().skip(1))
                .filter(|(_, d)| d.not_after < now)
                .collect()
        };
        if due.is_empty() {
            return Ok(0);
        }
        let mut steps = Vec::new();
        for (signed, mut d) in due {
            d.revoked = Some(d.not_after);
            steps.push(Step::Change {
                id: signed.record().identifier.clone(),
                change: Change::Values(vec![delegation_value(&d, now)?]),
            });
        }
        let n = steps.len();
        self.commit_async(Plan {
            steps,
            ..Plan::default()
        })
        .await?;
        Ok(n)
    }
}
