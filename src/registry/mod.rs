//! The registry: the one commit path for every change to the node's records.
//!
//! Issue, update, status change (provider approval), withdraw, import at a
//! fixed code, import of records signed elsewhere by this node's key, and
//! delegation all become a [`Plan`] of [`Step`]s, and every plan travels the
//! same way ([`Registry::commit`] or [`Registry::commit_async`], which
//! differ only in how they wait for the disk):
//!
//! 1. **build**: assign serials, apply the change to the stored record
//!    (version + 1), check the result;
//! 2. **sign** with the node key (`ident::record`);
//! 3. **one store batch**: the records, the serial marks, the request nonce
//!    and any extra rows the plan carries (a log leaf, a reservation, a zone
//!    history entry) in one durable transaction;
//! 4. **publish** to the hot tier (as one [`Zone::apply`] at the serial the
//!    store gave the batch) and the provider and delegation indexes, from
//!    the store's `done` callback, so batches are published one at a time
//!    in commit order and every serial a secondary sees is complete;
//! 5. **observers**, which only update in-memory state.
//!
//! Steps 4 and 5 run after the write is durable and cannot fail it: a
//! publication error is logged and counted and the write is acknowledged,
//! because it *was* made (the next start publishes from the store).
//! A code that was ever committed is never assigned again: tombstones keep
//! their code, and the serial high-water mark only grows.

mod delegations;
mod providers;
pub mod zonefile;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use self::delegations::DelegationIndex;
use self::providers::ProviderIndex;
pub use self::providers::ProviderKey;
use crate::clock::Clock;
use crate::dns::mapping;
use crate::dns::zone::{Edit, Zone, ZoneError};
use crate::ident::identifier::{Apex, Class, Identifier, Prefix, Serial};
use crate::ident::keys::{KeyId, NodeKey};
use crate::ident::record::{Record, RecordError, RecordStatus, SignedRecord, Value};
use crate::store::{Expect, Nonce, Row, Store, StoreError, WriteBatch, Written};
use crate::telemetry;

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
    #[error("a plan must change a record, move the serial or write a row")]
    EmptyPlan,
    #[error("{0} is changed twice in one plan")]
    TwiceInPlan(Identifier),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Zone(#[from] ZoneError),
    #[error("delegation: {0}")]
    Delegation(String),
    #[error("a key rollover of {prefix} is under way until {until} (unix seconds)")]
    Rolling { prefix: String, until: u64 },
}

/// The id of the key every stored record was last found signed by
/// ([`Registry::resign_foreign`]).
const SIGNING_KEY: crate::store::Table = crate::store::Table::new("node.signing_key");
const SIGNING_KEY_ROW: &[u8] = b"key_id";

/// Classes whose records are commercial data: committed and signed like
/// every record, never put in the hot tier (no DNS answer) nor shown by
/// public reads; the parties read them with signed requests.
impl Publisher {
    /// Step 4 for one durable batch: its records' edits as one zone change
    /// at the batch's serial.
    fn publish(&self, records: &[SignedRecord], serial: Option<u32>) {
        let mut edits = Vec::new();
        for signed in records {
            match self.edits(signed) {
                Ok(e) => edits.extend(e),
                Err(e) => {
                    metrics::counter!(telemetry::PUBLISH_FAILURES).increment(1);
                    tracing::error!(
                        record = %signed.record().identifier,
                        error = %e,
                        "committed but not published to the hot tier; the next start publishes it"
                    );
                }
            }
        }
        if let Err(e) = self.node.zone.apply(edits, serial) {
            metrics::counter!(telemetry::PUBLISH_FAILURES).increment(1);
            tracing::error!(error = %e, "committed but the hot tier refused the change; the next start publishes it");
        }
    }

    /// Updates the indexes for a record and returns the zone edits that
    /// publish it.
    fn edits(&self, signed: &SignedRecord) -> Result<Vec<Edit>, RegistryError> {
        self.providers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .publish(signed.record());
        if is_private(signed.record().identifier.class()) {
            return Ok(Vec::new());
        }
        let name = mapping::owner(signed, &self.node.apex)
            .map_err(|e| ZoneError::OutOfZone(format!("{}: {e}", signed.record().identifier)))?;
        let mut edits = vec![Edit::Set(
            name,
            mapping::rrsets(signed, self.node.default_ttl),
        )];
        self.delegation_edits(signed, &mut edits)?;
        Ok(edits)
    }
}

pub fn is_private(class: Class) -> bool {
    class == Class::Tx
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

/// A change to an existing record.
#[derive(Debug, Clone)]
pub enum Change {
    /// New values (version + 1).
    Values(Vec<Value>),
    /// A new status (pending → active on approval).
    Status(RecordStatus),
    /// A signed tombstone that keeps the code taken.
    Withdraw,
    /// The same content signed by the node's key in force (version + 1,
    /// also for a tombstone): after a node key rollover every record moves
    /// to the new key before the old one's overlap ends.
    Resign,
}

/// One record-level change of a [`Plan`].
#[derive(Debug, Clone)]
pub enum Step {
    /// A new identifier at the next serial of its (prefix, class).
    Issue(NewRecord),
    /// A new, active identifier at a code the caller chose (declarative
    /// import); the code must never have been committed.
    IssueAt {
        identifier: Identifier,
        owner: Option<Identifier>,
        values: Vec<Value>,
    },
    /// A change to a stored record (version + 1).
    Change { id: Identifier, change: Change },
    /// [`Step::Change`] to a record the caller has just read, without
    /// reading it again: version + 1 of `current`. The store refuses it
    /// when `current` is no longer the stored version, as it refuses two
    /// racing changes.
    ChangeFrom {
        current: SignedRecord,
        change: Change,
    },
    /// A record signed elsewhere by this node's key (master-file import or
    /// restore); skipped when the store holds this version or a newer one.
    Import(SignedRecord),
}

/// Everything one commit does: its steps, the request nonce it consumes,
/// and extra rows that ride in the same store transaction.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Refused as a whole when the nonce was consumed before (a replay).
    pub nonce: Option<Nonce>,
    pub rows: Vec<Row>,
    /// Rows that must still hold what the plan was built on (the capacity
    /// calendar's generation check); the whole plan fails otherwise.
    pub expect: Vec<Expect>,
    /// The zone serial after this plan is above this (an import of an
    /// exported zone carries that zone's serial).
    pub serial_floor: Option<u64>,
}

impl Plan {
    pub fn one(step: Step, nonce: Option<Nonce>) -> Plan {
        Plan {
            steps: vec![step],
            nonce,
            ..Plan::default()
        }
    }

    /// One change to a stored record.
    pub fn change(id: &Identifier, change: Change, nonce: Option<Nonce>) -> Plan {
        let step = Step::Change {
            id: id.clone(),
            change,
        };
        Plan::one(step, nonce)
    }
}

/// What a commit wrote: one entry per step, in order; `None` for an
/// import that was skipped because the store already had that version.
#[derive(Debug, Clone)]
pub struct Committed {
    pub records: Vec<Option<SignedRecord>>,
    /// The log indices of the written records' leaves, in their order.
    pub leaves: std::ops::Range<u64>,
}

impl Committed {
    /// The records written, skipping unchanged imports.
    pub fn written(&self) -> impl Iterator<Item = &SignedRecord> {
        self.records.iter().flatten()
    }

    /// The record the first step wrote.
    pub fn first(self) -> Result<SignedRecord, RegistryError> {
        self.records
            .into_iter()
            .next()
            .flatten()
            .ok_or(RegistryError::EmptyPlan)
    }
}

/// Told about every durable commit, after it is published. Observers keep
/// in-memory state (totals, metrics) and must not fail or block.
pub trait Observer: Send + Sync {
    fn committed(&self, records: &[SignedRecord]);
    /// After a commit (not at load): its written records' leaves start at
    /// log index `first_leaf`, one per record in order.
    fn logged(&self, _records: &[SignedRecord], _first_leaf: u64) {}
}

/// A plan after build and sign: the batch to write and what it answers.
struct Prepared {
    batch: WriteBatch,
    records: Vec<Option<SignedRecord>>,
}

/// What a registry is opened over: the node's store, key, prefix and the
/// hot-tier zone it publishes to.
pub struct Parts {
    pub store: Arc<dyn Store>,
    pub key: NodeKey,
    pub prefix: Prefix,
    pub apex: Apex,
    pub zone: Arc<Zone>,
    /// TTL of values that have none of their own.
    pub default_ttl: u32,
}

pub struct Registry {
    node: Arc<Parts>,
    publisher: Arc<Publisher>,
    clock: Clock,
    /// Serials handed out but maybe not yet committed, per (prefix, class).
    next: Mutex<HashMap<(Prefix, Class), u64>>,
    observers: RwLock<Vec<Arc<dyn Observer>>>,
}

/// Step 4 of the commit path: what publishes durable records to the hot
/// tier and the indexes. Shared with the store's `done` callbacks.
struct Publisher {
    node: Arc<Parts>,
    /// Provider keys, kept in step with every published PV record.
    providers: RwLock<ProviderIndex>,
    /// This node's delegations to its children, kept in step with every
    /// published ND record that carries one.
    delegations: RwLock<DelegationIndex>,
}

impl Registry {
    /// Opens the registry over a store and fills the hot tier from it.
    pub fn open(node: Parts) -> Result<Registry, RegistryError> {
        Registry::open_observed(node, Vec::new())
    }

    /// [`Registry::open`] with observers that see every stored record as it
    /// is loaded, then every later commit.
    pub fn open_observed(
        node: Parts,
        observers: Vec<Arc<dyn Observer>>,
    ) -> Result<Registry, RegistryError> {
        let node = Arc::new(node);
        let registry = Registry {
            publisher: Arc::new(Publisher {
                node: node.clone(),
                providers: RwLock::new(ProviderIndex::default()),
                delegations: RwLock::new(DelegationIndex::default()),
            }),
            node,
            clock: Clock::system(),
            next: Mutex::new(HashMap::new()),
            observers: RwLock::new(observers),
        };
        registry.load_zone()?;
        Ok(registry)
    }

    /// Uses `clock` for record timestamps and revocation times.
    pub fn with_clock(mut self, clock: Clock) -> Registry {
        self.clock = clock;
        self
    }

    /// Adds an observer of every later commit.
    pub fn observe(&self, observer: Arc<dyn Observer>) {
        self.observers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(observer);
    }

    /// Streams every stored record into the hot tier.
    fn load_zone(&self) -> Result<(), RegistryError> {
        let mut failed = None;
        self.node
            .store
            .for_each_record(&mut |r| {
                let published = self
                    .publisher
                    .edits(&r)
                    .and_then(|edits| Ok(self.node.zone.apply(edits, None)?));
                if let Err(e) = published {
                    failed = Some(e);
                    return Err(StoreError::Interrupted);
                }
                for observer in self
                    .observers
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                {
                    observer.committed(std::slice::from_ref(&r));
                }
                Ok(())
            })
            .map_err(|e| failed.take().unwrap_or(RegistryError::Store(e)))?;
        self.node
            .zone
            .advance_serial(self.node.store.zone_serial()?)?;
        Ok(())
    }

    pub fn prefix(&self) -> &Prefix {
        &self.node.prefix
    }

    pub fn apex(&self) -> &Apex {
        &self.node.apex
    }

    pub fn key(&self) -> &NodeKey {
        &self.node.key
    }

    pub fn zone(&self) -> &Arc<Zone> {
        &self.node.zone
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.node.store
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The provider or buyer that registered `key_id` as its `HS_PUBKEY`.
    pub fn provider_key(&self, key_id: &KeyId) -> Option<ProviderKey> {
        self.publisher
            .providers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
    }

    pub fn get(&self, id: &Identifier) -> Result<Option<SignedRecord>, RegistryError> {
        Ok(self.node.store.get(id)?)
    }

    // ---- the one commit path -------------------------------------------

    /// Builds, signs, writes and publishes `plan`; returns once it is
    /// durable and served. Blocks the calling thread for the commit.
    pub fn commit(&self, plan: Plan) -> Result<Committed, RegistryError> {
        let prepared = self.prepare(plan)?;
        let written = if prepared.batch.is_empty() {
            Written::default()
        } else {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            self.submit(prepared.batch.clone(), move |r| {
                let _ = tx.send(r);
            });
            rx.recv().map_err(|_| StoreError::Closed)??
        };
        Ok(self.finish(prepared, written))
    }

    /// [`Registry::commit`] for async callers: waits for the group commit
    /// without holding a thread.
    pub async fn commit_async(&self, plan: Plan) -> Result<Committed, RegistryError> {
        let prepared = self.prepare(plan)?;
        let written = if prepared.batch.is_empty() {
            Written::default()
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.submit(prepared.batch.clone(), move |r| {
                let _ = tx.send(r);
            });
            rx.await.map_err(|_| StoreError::Closed)??
        };
        Ok(self.finish(prepared, written))
    }

    /// Step 3 and, in the store's `done` callback (in commit order), step 4.
    fn submit(
        &self,
        batch: WriteBatch,
        reply: impl FnOnce(Result<Written, StoreError>) + Send + 'static,
    ) {
        let publisher = self.publisher.clone();
        let records = batch.records.clone();
        self.node.store.submit(
            batch,
            Box::new(move |result| {
                if let Ok(written) = &result {
                    publisher.publish(&records, written.serial);
                }
                reply(result);
            }),
        );
    }

    /// Steps 1–3: every step built and signed into one write batch.
    fn prepare(&self, plan: Plan) -> Result<Prepared, RegistryError> {
        // A plan may change no record when it only moves the zone serial
        // (secondaries then transfer fresh signatures) or writes rows.
        if plan.steps.is_empty() && plan.serial_floor.is_none() && plan.rows.is_empty() {
            return Err(RegistryError::EmptyPlan);
        }
        let at = self.clock.now();
        let mut marks: HashMap<(Prefix, Class), u64> = HashMap::new();
        let mut touched = HashSet::new();
        let mut records = Vec::with_capacity(plan.steps.len());
        for step in plan.steps {
            let signed = match step {
                Step::Issue(new) => Some(self.build_new(new, at, &mut marks)?),
                Step::IssueAt {
                    identifier,
                    owner,
                    values,
                } => Some(self.build_at(identifier, owner, values, at, &mut marks)?),
                Step::Change { id, change } => Some(self.build_change(&id, change, at)?),
                Step::ChangeFrom { current, change } => Some(self.build_next(current, change, at)?),
                Step::Import(signed) => self.check_import(signed, &mut marks)?,
            };
            if let Some(s) = &signed
                && !touched.insert(s.record().identifier.clone())
            {
                return Err(RegistryError::TwiceInPlan(s.record().identifier.clone()));
            }
            records.push(signed);
        }
        let answer = records
            .iter()
            .flatten()
            .next()
            .map(|r| r.record().identifier.to_string())
            .unwrap_or_default();
        let batch = WriteBatch {
            records: records.iter().flatten().cloned().collect(),
            serials: marks.into_iter().map(|((p, c), v)| (p, c, v)).collect(),
            nonces: plan
                .nonce
                .into_iter()
                .map(|n| Nonce {
                    answer: answer.clone(),
                    ..n
                })
                .collect(),
            rows: plan.rows,
            expect: plan.expect,
            leaves: records
                .iter()
                .flatten()
                .map(|r| crate::tlog::entry::leaf(r, is_private(r.record().identifier.class())))
                .collect(),
            serial_floor: plan.serial_floor,
            publishes: records
                .iter()
                .flatten()
                .any(|r| !is_private(r.record().identifier.class())),
        };
        Ok(Prepared { batch, records })
    }

    /// Step 5, after the batch is durable and published. Never fails the
    /// write.
    fn finish(&self, prepared: Prepared, written_at: Written) -> Committed {
        let written = prepared.batch.records;
        let observers = self.observers.read().unwrap_or_else(|e| e.into_inner());
        for observer in observers.iter() {
            observer.committed(&written);
            if !written_at.leaves.is_empty() {
                observer.logged(&written, written_at.leaves.start);
            }
        }
        Committed {
            records: prepared.records,
            leaves: written_at.leaves,
        }
    }

    fn check_prefix(&self, prefix: &Prefix) -> Result<(), RegistryError> {
        if self.node.prefix.contains(prefix) {
            Ok(())
        } else {
            Err(RegistryError::OutsidePrefix {
                prefix: prefix.clone(),
                node: self.node.prefix.clone(),
            })
        }
    }

    fn reserve_serial(&self, prefix: &Prefix, class: Class) -> Result<Serial, RegistryError> {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let key = (prefix.clone(), class);
        let current = match next.get(&key) {
            Some(v) => *v,
            None => self.node.store.serial(prefix, class)?,
        };
        let value = current + 1;
        let serial = Serial::new(value)
            .map_err(|_| RegistryError::SerialsExhausted(format!("{prefix}/{}", class.code())))?;
        next.insert(key, value);
        Ok(serial)
    }

    /// Keeps the serial mark of `id`'s (prefix, class) at or above its
    /// serial, in memory now and in the store with the batch.
    fn mark_serial(&self, id: &Identifier, marks: &mut HashMap<(Prefix, Class), u64>) {
        let key = (id.prefix().clone(), id.class());
        let serial = id.serial().value();
        {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let entry = next.entry(key.clone()).or_insert(0);
            *entry = (*entry).max(serial);
        }
        let mark = marks.entry(key).or_insert(0);
        *mark = (*mark).max(serial);
    }

    /// A first version, built and signed by this node.
    fn first_version(
        &self,
        identifier: Identifier,
        owner: Option<Identifier>,
        status: RecordStatus,
        values: Vec<Value>,
        at: u64,
    ) -> Result<SignedRecord, RegistryError> {
        Ok(Record {
            identifier,
            owner,
            version: 1,
            status,
            issuer: self.node.key.public().key_id(),
            created: at,
            updated: at,
            values,
        }
        .sign(&self.node.key)?)
    }

    fn build_new(
        &self,
        new: NewRecord,
        at: u64,
        marks: &mut HashMap<(Prefix, Class), u64>,
    ) -> Result<SignedRecord, RegistryError> {
        let prefix = new.prefix.unwrap_or_else(|| self.node.prefix.clone());
        self.check_prefix(&prefix)?;
        let serial = self.reserve_serial(&prefix, new.class)?;
        let id = Identifier::new(prefix, new.class, serial);
        self.mark_serial(&id, marks);
        self.first_version(id, new.owner, new.status, new.values, at)
    }

    fn build_at(
        &self,
        identifier: Identifier,
        owner: Option<Identifier>,
        values: Vec<Value>,
        at: u64,
        marks: &mut HashMap<(Prefix, Class), u64>,
    ) -> Result<SignedRecord, RegistryError> {
        self.check_prefix(identifier.prefix())?;
        if self.node.store.get(&identifier)?.is_some() {
            return Err(RegistryError::Taken(identifier));
        }
        self.mark_serial(&identifier, marks);
        self.first_version(identifier, owner, RecordStatus::Active, values, at)
    }

    /// The next version of a stored record. The store refuses a version
    /// that is not newer, so two racing changes cannot both land.
    fn build_change(
        &self,
        id: &Identifier,
        change: Change,
        at: u64,
    ) -> Result<SignedRecord, RegistryError> {
        let current = self
            .node
            .store
            .get(id)?
            .ok_or_else(|| RegistryError::NotFound(id.clone()))?;
        self.build_next(current, change, at)
    }

    /// The version after `current` with `change` applied, signed.
    fn build_next(
        &self,
        current: SignedRecord,
        change: Change,
        at: u64,
    ) -> Result<SignedRecord, RegistryError> {
        let mut record = current.into_record();
        if record.status == RecordStatus::Withdrawn && !matches!(change, Change::Resign) {
            return Err(RegistryError::Withdrawn(record.identifier));
        }
        match change {
            Change::Resign => {}
            Change::Values(values) => record.values = values,
            Change::Status(status) => record.status = status,
            Change::Withdraw => {
                record.status = RecordStatus::Withdrawn;
                record.values.clear();
            }
        }
        record.version += 1;
        record.updated = at.max(record.updated);
        record.issuer = self.node.key.public().key_id();
        Ok(record.sign(&self.node.key)?)
    }

    /// A record signed elsewhere by this key: checked, or `None` when the
    /// store already holds this version or a newer one.
    fn check_import(
        &self,
        signed: SignedRecord,
        marks: &mut HashMap<(Prefix, Class), u64>,
    ) -> Result<Option<SignedRecord>, RegistryError> {
        let id = signed.record().identifier.clone();
        self.check_prefix(id.prefix())?;
        signed
            .verify(&self.node.key.public())
            .map_err(|_| RegistryError::ForeignIssuer(id.clone()))?;
        if let Some(existing) = self.node.store.get(&id)?
            && existing.record().version >= signed.record().version
        {
            return Ok(None);
        }
        self.mark_serial(&id, marks);
        Ok(Some(signed))
    }

    // ---- the changes callers ask for, each one plan --------------------

    /// Issues a new identifier; returns once the record is durable and served.
    pub fn issue(&self, new: NewRecord) -> Result<SignedRecord, RegistryError> {
        self.commit(Plan::one(Step::Issue(new), None))?.first()
    }

    /// Issues many identifiers in one durable commit (bulk provisioning).
    pub fn issue_many(&self, news: Vec<NewRecord>) -> Result<Vec<SignedRecord>, RegistryError> {
        let plan = Plan {
            steps: news.into_iter().map(Step::Issue).collect(),
            ..Plan::default()
        };
        Ok(self.commit(plan)?.written().cloned().collect())
    }

    /// Issues a new identifier, consuming `nonce` in the same commit (the
    /// store refuses the whole write when it was used before).
    pub async fn issue_async(
        &self,
        new: NewRecord,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        self.commit_async(Plan::one(Step::Issue(new), nonce))
            .await?
            .first()
    }

    /// Issues a record at a code chosen by the caller (declarative import).
    pub fn issue_at(
        &self,
        identifier: Identifier,
        owner: Option<Identifier>,
        values: Vec<Value>,
    ) -> Result<SignedRecord, RegistryError> {
        let step = Step::IssueAt {
            identifier,
            owner,
            values,
        };
        self.commit(Plan::one(step, None))?.first()
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
        self.commit(Plan::change(id, change, nonce))?.first()
    }

    /// [`Registry::change`] for async callers.
    pub async fn change_async(
        &self,
        id: &Identifier,
        change: Change,
        nonce: Option<Nonce>,
    ) -> Result<SignedRecord, RegistryError> {
        self.commit_async(Plan::change(id, change, nonce))
            .await?
            .first()
    }

    /// Signs again with the node key every stored record another key
    /// signed (the key before a rollover), `batch` records per commit;
    /// returns how many. Each is a new version through the one commit
    /// path, so the log, the zone and transfers see it as any change.
    pub async fn resign_foreign(&self, batch: usize) -> Result<usize, RegistryError> {
        let key = self.node.key.public().key_id();
        // The scan reads every record: only when the key changed since the
        // last one finished.
        let signed_by = self.node.store.row(SIGNING_KEY, SIGNING_KEY_ROW)?;
        if signed_by.as_deref() == Some(&key.0[..]) {
            return Ok(0);
        }
        let mut foreign = Vec::new();
        let store = self.node.store.clone();
        let scan = tokio::task::spawn_blocking(move || {
            store.for_each_record(&mut |r| {
                if r.record().issuer != key {
                    foreign.push(r.record().identifier.clone());
                }
                Ok(())
            })?;
            Ok::<_, StoreError>(foreign)
        });
        let foreign = scan
            .await
            .map_err(|e| RegistryError::Store(StoreError::Database(e.to_string())))??;
        let mut done = 0;
        for ids in foreign.chunks(batch.max(1)) {
            let plan = Plan {
                steps: ids
                    .iter()
                    .map(|id| Step::Change {
                        id: id.clone(),
                        change: Change::Resign,
                    })
                    .collect(),
                ..Plan::default()
            };
            done += self.commit_async(plan).await?.written().count();
        }
        self.commit_async(Plan {
            rows: vec![Row {
                table: SIGNING_KEY,
                key: SIGNING_KEY_ROW.to_vec(),
                value: key.0.to_vec(),
            }],
            ..Plan::default()
        })
        .await?;
        Ok(done)
    }

    /// Stores a record signed elsewhere by this node's key (zone import or
    /// restore). Verifies the signature; keeps the serial mark ahead of it.
    /// False when the store already had this version or a newer one.
    pub fn import(&self, signed: SignedRecord) -> Result<bool, RegistryError> {
        let committed = self.commit(Plan::one(Step::Import(signed), None))?;
        Ok(committed.written().next().is_some())
    }
}
