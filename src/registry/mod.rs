//! The registry: issuance and lifecycle of identifier records.
//!
//! The one place where records are made. Issuing assigns the next serial
//! for (prefix, class), builds and signs the record with the node key,
//! commits record and serial mark in one durable store transaction, and only
//! then publishes the record to the hot tier and returns it. A code that was
//! ever committed is never assigned again: tombstones keep their code, and
//! the serial high-water mark only grows.

pub mod zonefile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dns::mapping;
use crate::dns::wire::{WireName, rtype};
use crate::dns::zone::{RrSet, Zone, ZoneError};
use crate::ident::delegation::{DELEGATION_INDEX, DELEGATION_TYPE, Delegation};
use crate::ident::identifier::{Apex, Class, Identifier, Prefix, Serial};
use crate::ident::keys::{KeyId, NodeKey, PublicKey};
use crate::ident::record::{Record, RecordError, RecordStatus, SignedRecord, Value, ValueType};
use crate::store::{Nonce, Store, StoreError, WriteBatch};

/// The value type that carries a provider's public key (SPKI PEM).
pub const HS_PUBKEY: &str = "HS_PUBKEY";

/// Why a registry operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    #[error("prefix {prefix} is outside this node's prefix {node}")]
    OutsidePrefix { prefix: Prefix, node: Prefix },
    #[error("no record for {0}")]
    NotFound(Identifier),
    #[error("{0} is withdrawn")]
    Withdrawn(Identifier),
    #[error("{0} already exists or existed")]
    Taken(Identifier),
    #[error("{0} was not issued by this node's key")]
    ForeignIssuer(Identifier),
    #[error("serial space of {0} exhausted")]
    SerialsExhausted(String),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("delegation: {0}")]
    Delegation(String),
}

/// What a caller asks to be issued.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Defaults to the node's prefix; may be any prefix below it.
    pub prefix: Option<Prefix>,
    pub class: Class,
    pub owner: Option<Identifier>,
    pub values: Vec<Value>,
    pub status: RecordStatus,
}

pub struct Registry {
    store: Arc<dyn Store>,
    key: NodeKey,
    prefix: Prefix,
    apex: Apex,
    zone: Arc<Zone>,
    default_ttl: u32,
    /// Serials handed out but maybe not yet committed, per (prefix, class).
    next: Mutex<HashMap<(Prefix, Class), u64>>,
    /// Provider keys, kept in step with every published PV record.
    providers: RwLock<ProviderIndex>,
    /// This node's delegations to its children, kept in step with every
    /// published ND record that carries one.
    delegations: RwLock<DelegationIndex>,
}

/// Child prefix → its newest delegation record, and record → child prefix
/// (a withdrawn record no longer says which prefix it delegated).
#[derive(Default)]
struct DelegationIndex {
    by_prefix: HashMap<Prefix, SignedRecord>,
    by_record: HashMap<Identifier, Prefix>,
}

/// A change to an existing record.
#[derive(Debug, Clone)]
pub enum Change {
    /// New values (version + 1).
    Values(Vec<Value>),
    /// A new status (pending → active on approval).
    Status(RecordStatus),
    /// A signed tombstone that keeps the code taken.
    Withdraw,
}

/// A registered provider key and the provider it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderKey {
    pub provider: Identifier,
    pub status: RecordStatus,
    pub key: PublicKey,
}

/// Key id → provider, and provider → its keys (to drop replaced keys).
#[derive(Default)]
struct ProviderIndex {
    by_key: HashMap<KeyId, ProviderKey>,
    by_provider: HashMap<Identifier, Vec<KeyId>>,
}

impl ProviderIndex {
    fn publish(&mut self, record: &Record) {
        if record.identifier.class() != Class::Pv {
            return;
        }
        for old in self
            .by_provider
            .remove(&record.identifier)
            .unwrap_or_default()
        {
            self.by_key.remove(&old);
        }
        if record.status == RecordStatus::Withdrawn {
            return;
        }
        let keys: Vec<PublicKey> = record
            .values
            .iter()
            .filter(|v| v.kind.as_str() == HS_PUBKEY)
            .filter_map(|v| PublicKey::from_public_pem(&v.data).ok())
            .collect();
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            let id = key.key_id();
            ids.push(id);
            self.by_key.insert(
                id,
                ProviderKey {
                    provider: record.identifier.clone(),
                    status: record.status,
                    key,
                },
            );
        }
        self.by_provider.insert(record.identifier.clone(), ids);
    }
}

/// The one value of a delegation record.
fn delegation_value(delegation: &Delegation) -> Result<Value, RegistryError> {
    Ok(Value {
        index: DELEGATION_INDEX,
        kind: ValueType::parse(DELEGATION_TYPE)?,
        data: serde_json::to_string(delegation)
            .map_err(|e| RegistryError::Delegation(e.to_string()))?,
        ttl: 0,
        timestamp: now(),
    })
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Registry {
    /// Opens the registry over a store and fills the hot tier from it.
    pub fn open(
        store: Arc<dyn Store>,
        key: NodeKey,
        prefix: Prefix,
        apex: Apex,
        zone: Arc<Zone>,
        default_ttl: u32,
    ) -> Result<Registry, RegistryError> {
        let registry = Registry {
            store,
            key,
            prefix,
            apex,
            zone,
            default_ttl,
            next: Mutex::new(HashMap::new()),
            providers: RwLock::new(ProviderIndex::default()),
            delegations: RwLock::new(DelegationIndex::default()),
        };
        registry.load_zone()?;
        Ok(registry)
    }

    /// Streams every stored record into the hot tier.
    fn load_zone(&self) -> Result<(), RegistryError> {
        let mut failed = None;
        self.store
            .for_each_record(&mut |r| {
                if let Err(e) = self.publish_only(&r) {
                    failed = Some(e);
                    return Err(crate::store::StoreError::Database("load stopped".into()));
                }
                Ok(())
            })
            .map_err(|e| failed.take().unwrap_or(RegistryError::Store(e)))?;
        self.zone.advance_serial(self.store.zone_serial()?)?;
        Ok(())
    }

    pub fn prefix(&self) -> &Prefix {
        &self.prefix
    }

    pub fn apex(&self) -> &Apex {
        &self.apex
    }

    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    pub fn zone(&self) -> &Arc<Zone> {
        &self.zone
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The provider that registered `key_id` as its `HS_PUBKEY`, if any.
    pub fn provider_key(&self, key_id: &KeyId) -> Option<ProviderKey> {
        self.providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .get(key_id)
            .cloned()
    }

    pub fn get(&self, id: &Identifier) -> Result<Option<SignedRecord>, RegistryError> {
        Ok(self.store.get(id)?)
    }

    fn check_prefix(&self, prefix: &Prefix) -> Result<(), RegistryError> {
        if self.prefix.contains(prefix) {
            Ok(())
        } else {
            Err(RegistryError::OutsidePrefix {
                prefix: prefix.clone(),
                node: self.prefix.clone(),
            })
        }
    }

    fn reserve_serial(&self, prefix: &Prefix, class: Class) -> Result<Serial, RegistryError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let key = (prefix.clone(), class);
        let current = match next.get(&key) {
            Some(v) => *v,
            None => self.store.serial(prefix, class)?,
        };
        let value = current + 1;
        let serial = Serial::new(value)
            .map_err(|_| RegistryError::SerialsExhausted(format!("{prefix}/{}", class.code())))?;
        next.insert(key, value);
        Ok(serial)
    }

    /// Issues a new identifier; returns once the record is durable and served.
    pub fn issue(&self, new: NewRecord) -> Result<SignedRecord, RegistryError> {
        self.issue_batch(vec![new], Vec::new())?
            .pop()
            .ok_or_else(|| RegistryError::SerialsExhausted("empty batch".into()))
    }

    /// Issues many identifiers in one durable commit (bulk provisioning).
    pub fn issue_many(&self, news: Vec<NewRecord>) -> Result<Vec<SignedRecord>, RegistryError> {
        self.issue_batch(news, Vec::new())
    }

    fn issue_batch(
        &self,
        news: Vec<NewRecord>,
        nonces: Vec<Nonce>,
    ) -> Result<Vec<SignedRecord>, RegistryError> {
        let batch = self.prepare_new(news, nonces)?;
        self.store.write(batch.clone())?;
        self.after_commit(self.publish_all(&batch.records));
        Ok(batch.records)
    }

    /// Issues a new identifier, consuming `nonce` in the same commit (the
    /// store refuses the whole write when it was used before); the task
    /// waits for the group commit without holding a thread.
    pub async fn issue_async(
        &self,
        new: NewRecord,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        let batch = self.prepare_new(vec![new], nonce.into_iter().collect())?;
        crate::store::write_async(self.store.as_ref(), batch.clone()).await?;
        self.after_commit(self.publish_all(&batch.records));
        batch
            .records
            .into_iter()
            .next()
            .ok_or_else(|| RegistryError::SerialsExhausted("empty batch".into()))
    }

    /// Assigns serials and signs: the write batch that issues `news`.
    fn prepare_new(
        &self,
        news: Vec<NewRecord>,
        nonces: Vec<Nonce>,
    ) -> Result<WriteBatch, RegistryError> {
        let at = now();
        let mut records = Vec::with_capacity(news.len());
        let mut marks: HashMap<(Prefix, Class), u64> = HashMap::new();
        for new in news {
            let prefix = new.prefix.unwrap_or_else(|| self.prefix.clone());
            self.check_prefix(&prefix)?;
            let serial = self.reserve_serial(&prefix, new.class)?;
            let mark = marks.entry((prefix.clone(), new.class)).or_insert(0);
            *mark = (*mark).max(serial.value());
            let record = Record {
                identifier: Identifier::new(prefix, new.class, serial),
                owner: new.owner,
                version: 1,
                status: new.status,
                issuer: self.key.public().key_id(),
                created: at,
                updated: at,
                values: new.values,
            };
            records.push(record.sign(&self.key)?);
        }
        let answer = records
            .first()
            .map(|r| r.record().identifier.to_string())
            .unwrap_or_default();
        Ok(WriteBatch {
            records,
            serials: marks.into_iter().map(|((p, c), v)| (p, c, v)).collect(),
            nonces: nonces
                .into_iter()
                .map(|n| Nonce {
                    answer: answer.clone(),
                    ..n
                })
                .collect(),
        })
    }

    /// Issues a record at a code chosen by the caller (declarative import).
    /// The code must never have been committed, tombstones included.
    pub fn issue_at(
        &self,
        identifier: Identifier,
        owner: Option<Identifier>,
        values: Vec<Value>,
    ) -> Result<SignedRecord, RegistryError> {
        self.check_prefix(identifier.prefix())?;
        if self.store.get(&identifier)?.is_some() {
            return Err(RegistryError::Taken(identifier));
        }
        let at = now();
        let key = (identifier.prefix().clone(), identifier.class());
        let record = Record {
            identifier: identifier.clone(),
            owner,
            version: 1,
            status: RecordStatus::Active,
            issuer: self.key.public().key_id(),
            created: at,
            updated: at,
            values,
        };
        let signed = record.sign(&self.key)?;
        {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let entry = next.entry(key.clone()).or_insert(0);
            *entry = (*entry).max(identifier.serial().value());
        }
        let marks = HashMap::from([(key, identifier.serial().value())]);
        self.store.write(WriteBatch {
            records: vec![signed.clone()],
            serials: marks.into_iter().map(|((p, c), v)| (p, c, v)).collect(),
            nonces: Vec::new(),
        })?;
        self.publish(&signed)?;
        Ok(signed)
    }

    /// A write that committed is acknowledged whatever happens next: a
    /// failure to publish it is logged (the next start publishes from the
    /// store), never reported as a failed write.
    fn after_commit(&self, published: Result<(), RegistryError>) {
        if let Err(e) = published {
            tracing::error!(error = %e, "committed but not published to the hot tier");
        }
    }

    fn publish_all(&self, records: &[SignedRecord]) -> Result<(), RegistryError> {
        for r in records {
            self.publish_only(r)?;
        }
        self.zone.advance_serial(self.store.zone_serial()?)?;
        Ok(())
    }

    /// Replaces the values of a record (version + 1).
    pub fn update(
        &self,
        id: &Identifier,
        values: Vec<Value>,
    ) -> Result<SignedRecord, RegistryError> {
        self.change(id, Change::Values(values), None)
    }

    /// Sets the status of a record (pending → active on approval).
    pub fn set_status(
        &self,
        id: &Identifier,
        status: RecordStatus,
    ) -> Result<SignedRecord, RegistryError> {
        self.change(id, Change::Status(status), None)
    }

    /// Withdraws a record: a signed tombstone that keeps the code taken.
    pub fn withdraw(&self, id: &Identifier) -> Result<SignedRecord, RegistryError> {
        self.change(id, Change::Withdraw, None)
    }

    /// Applies a change (version + 1), consuming `nonce` in the same commit.
    pub fn change(
        &self,
        id: &Identifier,
        change: Change,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        let batch = self.prepare_change(id, change, nonce)?;
        self.store.write(batch.clone())?;
        self.publish_latest(id, batch)
    }

    /// [`Registry::change`] for async callers.
    pub async fn change_async(
        &self,
        id: &Identifier,
        change: Change,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        let batch = self.prepare_change(id, change, nonce)?;
        crate::store::write_async(self.store.as_ref(), batch.clone()).await?;
        self.publish_latest(id, batch)
    }

    /// The write batch that applies `change` to the stored record.
    fn prepare_change(
        &self,
        id: &Identifier,
        change: Change,
        nonce: Option<Nonce>,
    ) -> Result<WriteBatch, RegistryError> {
        let current = self
            .store
            .get(id)?
            .ok_or_else(|| RegistryError::NotFound(id.clone()))?;
        let mut record = current.record().clone();
        if record.status == RecordStatus::Withdrawn {
            return Err(RegistryError::Withdrawn(id.clone()));
        }
        match change {
            Change::Values(values) => record.values = values,
            Change::Status(status) => record.status = status,
            Change::Withdraw => {
                record.status = RecordStatus::Withdrawn;
                record.values.clear();
            }
        }
        record.version += 1;
        record.updated = now().max(record.updated);
        record.issuer = self.key.public().key_id();
        // The store refuses a version that is not newer, so two racing
        // changes cannot both land on the same version.
        Ok(WriteBatch {
            records: vec![record.sign(&self.key)?],
            serials: vec![],
            nonces: nonce
                .into_iter()
                .map(|n| Nonce {
                    answer: id.to_string(),
                    ..n
                })
                .collect(),
        })
    }

    /// After a committed change: publish whatever is newest now, so a
    /// slower racing writer can never put an older version back into the
    /// hot tier. Returns the record this change wrote.
    fn publish_latest(
        &self,
        id: &Identifier,
        batch: WriteBatch,
    ) -> Result<SignedRecord, RegistryError> {
        let signed = batch
            .records
            .into_iter()
            .next()
            .ok_or_else(|| RegistryError::NotFound(id.clone()))?;
        let published = self
            .store
            .get(id)
            .map_err(RegistryError::from)
            .and_then(|latest| self.publish(&latest.unwrap_or_else(|| signed.clone())));
        self.after_commit(published);
        Ok(signed)
    }

    /// Stores a record signed elsewhere by this node's key (zone import or
    /// restore). Verifies the signature; keeps the serial mark ahead of it.
    pub fn import(&self, signed: SignedRecord) -> Result<bool, RegistryError> {
        let r = signed.record();
        self.check_prefix(r.identifier.prefix())?;
        signed
            .verify(&self.key.public())
            .map_err(|_| RegistryError::ForeignIssuer(r.identifier.clone()))?;
        if let Some(existing) = self.store.get(&r.identifier)?
            && existing.record().version >= r.version
        {
            return Ok(false);
        }
        let id = &r.identifier;
        self.store.write(WriteBatch {
            records: vec![signed.clone()],
            serials: vec![(id.prefix().clone(), id.class(), id.serial().value())],
            nonces: vec![],
        })?;
        {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let key = (id.prefix().clone(), id.class());
            let entry = next.entry(key).or_insert(0);
            *entry = (*entry).max(id.serial().value());
        }
        self.publish(&signed)?;
        Ok(true)
    }

    fn publish(&self, signed: &SignedRecord) -> Result<(), RegistryError> {
        self.publish_only(signed)?;
        self.zone.advance_serial(self.store.zone_serial()?)?;
        Ok(())
    }

    /// Puts a record's RRsets in the hot tier without touching the SOA.
    fn publish_only(&self, signed: &SignedRecord) -> Result<(), RegistryError> {
        self.providers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .publish(signed.record());
        let name = mapping::owner(signed, &self.apex)
            .map_err(|e| ZoneError::OutOfZone(format!("{}: {e}", signed.record().identifier)))?;
        self.zone
            .set(&name, &mapping::rrsets(signed, self.default_ttl))?;
        self.publish_delegation(signed)
    }

    /// Keeps the zone cut of a delegation in step with its record: the
    /// signed record is served at the cut (revoked or not), the referral
    /// only while it is in force.
    fn publish_delegation(&self, signed: &SignedRecord) -> Result<(), RegistryError> {
        let r = signed.record();
        if r.identifier.class() != Class::Nd || r.identifier.prefix() != &self.prefix {
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
                    self.zone.set_cut(&cut, None)?;
                    self.zone.set(&cut, &[])?;
                }
                return Ok(());
            }
        };
        let Ok(prefix) = delegation.prefix() else {
            return Ok(());
        };
        if prefix.parent().as_ref() != Some(&self.prefix) {
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
        let ttl = r.min_ttl(self.default_ttl);
        let record_set = RrSet {
            rtype: rtype::CPREC,
            ttl,
            rdatas: vec![signed.as_bytes().to_vec()],
        };
        self.zone.set(&cut, std::slice::from_ref(&record_set))?;
        if delegation.revoked.is_some() {
            self.zone.set_cut(&cut, None)?;
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
            self.zone
                .set_cut(&cut, Some((&[ns, record_set], &glue, ttl)))?;
        }
        index.by_record.insert(r.identifier.clone(), prefix.clone());
        index.by_prefix.insert(prefix, signed.clone());
        Ok(())
    }

    fn cut_name(&self, prefix: &Prefix) -> Result<WireName, RegistryError> {
        WireName::parse(&prefix.zone_name(&self.apex))
            .map_err(|e| RegistryError::Zone(ZoneError::OutOfZone(format!("{prefix}: {e}"))))
    }

    /// The newest delegation record for each child prefix.
    pub fn delegations(&self) -> Vec<SignedRecord> {
        let index = self.delegations.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<SignedRecord> = index.by_prefix.values().cloned().collect();
        v.sort_by(|a, b| a.record().identifier.cmp(&b.record().identifier));
        v
    }

    /// The delegation record in force (not revoked) for `prefix`.
    pub fn delegation(&self, prefix: &Prefix) -> Option<(SignedRecord, Delegation)> {
        let index = self.delegations.read().unwrap_or_else(|e| e.into_inner());
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
        if prefix.parent().as_ref() != Some(&self.prefix) {
            return Err(invalid(format!(
                "{prefix} is not one level below this node's prefix {}",
                self.prefix
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
            values: vec![delegation_value(delegation)?],
            status: RecordStatus::Active,
        };
        self.issue_async(new, nonce).await
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
        delegation.revoked = Some(now());
        self.change_async(
            &signed.record().identifier,
            Change::Values(vec![delegation_value(&delegation)?]),
            nonce,
        )
        .await
    }
}
