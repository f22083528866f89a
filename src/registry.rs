//! The registry: issuance and lifecycle of identifier records.
//!
//! The one place where records are made. Issuing assigns the next serial
//! for (prefix, class), builds and signs the record with the node key,
//! commits record and serial mark in one durable store transaction, and only
//! then publishes the record to the hot tier and returns it. A code that was
//! ever committed is never assigned again: tombstones keep their code, and
//! the serial high-water mark only grows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dns::mapping;
use crate::dns::zone::{Zone, ZoneError};
use crate::identifier::{Apex, Class, Identifier, Prefix, Serial};
use crate::keys::NodeKey;
use crate::record::{Record, RecordError, RecordStatus, SignedRecord, Value};
use crate::store::{Store, StoreError, WriteBatch};

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
        let mut issued = self.issue_many(vec![new])?;
        issued
            .pop()
            .ok_or_else(|| RegistryError::SerialsExhausted("empty batch".into()))
    }

    /// Issues many identifiers in one durable commit (bulk provisioning).
    pub fn issue_many(&self, news: Vec<NewRecord>) -> Result<Vec<SignedRecord>, RegistryError> {
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
        self.commit_new(records, marks)
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
        let mut out = self.commit_new(vec![signed], marks)?;
        out.pop()
            .ok_or_else(|| RegistryError::SerialsExhausted("empty batch".into()))
    }

    fn commit_new(
        &self,
        records: Vec<SignedRecord>,
        marks: HashMap<(Prefix, Class), u64>,
    ) -> Result<Vec<SignedRecord>, RegistryError> {
        self.store.write(WriteBatch {
            records: records.clone(),
            serials: marks.into_iter().map(|((p, c), v)| (p, c, v)).collect(),
        })?;
        for r in &records {
            self.publish(r)?;
        }
        Ok(records)
    }

    /// Replaces the values of a record (version + 1).
    pub fn update(
        &self,
        id: &Identifier,
        values: Vec<Value>,
    ) -> Result<SignedRecord, RegistryError> {
        self.change(id, |r| {
            r.values = values;
            Ok(())
        })
    }

    /// Sets the status of a record (pending → active on approval).
    pub fn set_status(
        &self,
        id: &Identifier,
        status: RecordStatus,
    ) -> Result<SignedRecord, RegistryError> {
        self.change(id, |r| {
            r.status = status;
            Ok(())
        })
    }

    /// Withdraws a record: a signed tombstone that keeps the code taken.
    pub fn withdraw(&self, id: &Identifier) -> Result<SignedRecord, RegistryError> {
        self.change(id, |r| {
            r.status = RecordStatus::Withdrawn;
            r.values.clear();
            Ok(())
        })
    }

    fn change(
        &self,
        id: &Identifier,
        edit: impl FnOnce(&mut Record) -> Result<(), RegistryError>,
    ) -> Result<SignedRecord, RegistryError> {
        let current = self
            .store
            .get(id)?
            .ok_or_else(|| RegistryError::NotFound(id.clone()))?;
        let mut record = current.record().clone();
        if record.status == RecordStatus::Withdrawn {
            return Err(RegistryError::Withdrawn(id.clone()));
        }
        edit(&mut record)?;
        record.version += 1;
        record.updated = now().max(record.updated);
        record.issuer = self.key.public().key_id();
        let signed = record.sign(&self.key)?;
        // The store refuses a version that is not newer, so two racing
        // changes cannot both land on the same version.
        self.store.write(WriteBatch {
            records: vec![signed.clone()],
            serials: vec![],
        })?;
        // Publish whatever is newest now, so a slower racing writer can
        // never put an older version back into the hot tier.
        let latest = self.store.get(id)?.unwrap_or_else(|| signed.clone());
        self.publish(&latest)?;
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
        let name = mapping::owner(signed, &self.apex)
            .map_err(|e| ZoneError::OutOfZone(format!("{}: {e}", signed.record().identifier)))?;
        self.zone
            .set(&name, &mapping::rrsets(signed, self.default_ttl))?;
        Ok(())
    }
}
