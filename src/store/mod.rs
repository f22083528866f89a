//! Storage behind one narrow trait, so the registry never knows which
//! engine holds its records.
//!
//! The contract every backend keeps (`tests/integration/store.rs` runs the
//! same tests against each one):
//!
//! - a `write` returns only once its batch is durable — for a backend that
//!   persists at all; [`memory::MemoryStore`] keeps nothing past its life;
//! - a batch is atomic: its records, serial marks, nonces and rows land
//!   together or not at all, and a refused batch in a shared commit fails
//!   alone;
//! - a serial mark never goes down (a lower mark is ignored, not an error);
//! - a record never replaces one with an equal or higher version;
//! - a nonce is consumed once while it lives (`expires >= now`), is refused
//!   at commit when it has already expired, and stops counting once the
//!   store's clock ([`crate::clock::Clock`], injectable) passes its expiry;
//! - the zone serial grows with every commit that changed a record or a
//!   serial mark, and only then (rows alone are not a zone change), to
//!   `max(serial + 1, now, floor)`: the time in Unix seconds as Knot's
//!   `unixtime` policy, so a store rebuilt from an export starts above the
//!   serials its secondaries saw, and never below a batch's `serial_floor`
//!   (an import carries the exported zone's serial that way);
//! - a batch that expects a row to hold a value (or to be absent) is
//!   refused whole when it does not, judged against earlier batches of the
//!   same commit too: the compare-and-set behind the capacity calendar;
//! - rows read back by (table, key), and a scan walks one table in key
//!   order from a start key until its callback says stop;
//! - a batch's log leaves are appended in order at consecutive indices from
//!   the log's size at its commit, never rewritten, and a refused batch
//!   appends none: there is no change without its leaf, nor a leaf without
//!   its change;
//! - a stored record that no longer decodes is reported as corrupt, never
//!   skipped;
//! - a backup ([`Store::backup`]) is every table as of one moment between
//!   two commits, written as a new redb store file while writers go on:
//!   it holds a batch whole or not at all, and every batch committed before
//!   it began.
//!
//! How a batch is judged (`judge`) is written once here; a backend only
//! supplies the lookups and applies what passes.

pub mod memory;
pub mod redb;

use std::collections::HashMap;
use std::path::Path;

use crate::ident::identifier::{Class, Identifier, Prefix};
use crate::ident::record::SignedRecord;

/// One atomic unit of change.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub records: Vec<SignedRecord>,
    /// New serial high-water marks per (prefix, class).
    pub serials: Vec<(Prefix, Class, u64)>,
    /// Request nonces this change consumes. The batch fails with
    /// [`StoreError::Replay`] when one was already consumed, so a signed
    /// request changes the store at most once, across restarts too.
    pub nonces: Vec<Nonce>,
    /// Rows of other systems' tables that commit with the records (a log
    /// leaf, a reservation, a zone-history entry): all or nothing with them.
    pub rows: Vec<Row>,
    /// Rows that must still hold what the writer read when it built the
    /// batch (OpenStack Placement's generation check): the batch fails with
    /// [`StoreError::RowChanged`] when one of them changed meanwhile.
    pub expect: Vec<Expect>,
    /// Entries appended to the node's transparency log at its next indices,
    /// in the same transaction as everything else in the batch.
    pub leaves: Vec<Vec<u8>>,
    /// The zone serial after this batch is above this (a zone import gives
    /// the serial of the zone it came from).
    pub serial_floor: Option<u64>,
    /// The batch changes what the zone serves (a record DNS shows): it
    /// moves the zone serial on, to a serial of its own.
    pub publishes: bool,
}

/// What a durable batch was given: the log indices of its leaves (empty
/// when it had none), and the zone serial it moved the zone to (`None`
/// when it left the serial alone). Every batch that moves the serial gets
/// one of its own, and `done` callbacks run in commit order, so a
/// publisher that follows them sees each serial once, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub leaves: std::ops::Range<u64>,
    pub serial: Option<u32>,
}

impl WriteBatch {
    /// True when writing it would change nothing (an import of records the
    /// store already holds): the registry then skips the commit and its fsync.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.serials.is_empty()
            && self.nonces.is_empty()
            && self.rows.is_empty()
            && self.expect.is_empty()
            && self.leaves.is_empty()
            && self.serial_floor.is_none()
    }
}

/// A table of rows kept beside the records, named by the system that owns
/// it. Names are ASCII and must not repeat; the store's own tables are not
/// reachable this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table(&'static str);

impl Table {
    pub const fn new(name: &'static str) -> Table {
        Table(name)
    }

    pub fn name(&self) -> &'static str {
        self.0
    }
}

/// One row written (or replaced) by a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub table: Table,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// A row as a batch expects to find it at commit time: `value` `None`
/// means the row must be absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub table: Table,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// A consumed request nonce, kept until `expires` (Unix seconds) has passed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Nonce {
    /// Scoped by the signing key: `"<key id>/<nonce>"`.
    pub key: String,
    pub expires: u64,
    /// What the request produced (the identifier it wrote), so a retry can
    /// be told the original answer. Filled in by the registry.
    pub answer: String,
}

/// Why the store failed or refused a write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Database(String),
    #[error("stored record {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("version conflict on {identifier}: stored {stored}, offered {offered}")]
    Conflict {
        identifier: Identifier,
        stored: u64,
        offered: u64,
    },
    /// A row the batch was built on changed before it could commit; the
    /// writer reads again and retries.
    #[error("row {key} of {table} changed since it was read")]
    RowChanged { table: &'static str, key: String },
    #[error("nonce {0} was already used")]
    Replay(String),
    #[error("nonce {0} expired before its write could commit")]
    StaleNonce(String),
    #[error("the store's writer has stopped")]
    Closed,
    #[error("the caller stopped the scan")]
    Interrupted,
    /// The store file is held open by another process (a running node).
    #[error("{0} is in use by another process (a running node?); stop it first")]
    InUse(String),
    /// A backup file could not be written, or is not a cpid store.
    #[error("backup {path}: {reason}")]
    Backup { path: String, reason: String },
}

/// What a backup holds: as [`Store::backup`] wrote it, or as
/// [`redb::verify_file`] found it in a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackupInfo {
    /// Records (every identifier's latest version).
    pub records: u64,
    /// Leaves of the transparency log.
    pub log_size: u64,
    /// Rows of the other systems' tables (statuses, calendars, the log's
    /// hashes and checkpoint, security events …).
    pub rows: u64,
    /// Consumed request nonces, live or not yet pruned.
    pub nonces: u64,
    /// The size of the file.
    pub bytes: u64,
}

/// Whether `batch` moves the zone serial on from `current`.
pub(crate) fn moves_serial(batch: &WriteBatch, current: u64) -> bool {
    batch.publishes || batch.serial_floor.is_some_and(|f| f >= current)
}

/// The zone serial a changing commit moves to (see the module contract).
pub(crate) fn next_zone_serial(current: u64, now: u64, floor: Option<u64>) -> u64 {
    current
        .saturating_add(1)
        .max(now)
        .max(floor.map_or(0, |f| f.saturating_add(1)))
}

/// Whether a consumed nonce still counts at `now`. One rule for the
/// commit-time replay check and for [`Store::nonce_answer`].
pub(crate) fn nonce_live(expires: u64, now: u64) -> bool {
    expires >= now
}

/// The stored state a backend looks up to judge a batch.
pub(crate) trait Lookup {
    /// The version of the stored record with this canonical identifier.
    fn version(&mut self, identifier: &str) -> Result<Option<u64>, StoreError>;
    /// The expiry of a consumed nonce key, live or not yet pruned.
    fn nonce_expires(&mut self, key: &str) -> Result<Option<u64>, StoreError>;
    /// The value of a row.
    fn row(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Judges one batch at commit time `now` against what the store holds
/// (including batches applied earlier in the same commit). `Ok(None)`: apply
/// it; `Ok(Some(refusal))`: refuse it alone; `Err`: a lookup failed.
pub(crate) fn judge(
    batch: &WriteBatch,
    now: u64,
    lookup: &mut dyn Lookup,
) -> Result<Option<StoreError>, StoreError> {
    // Records of this same batch count as stored for the ones after them,
    // so a batch cannot carry two copies of one version.
    let mut seen: HashMap<&Identifier, u64> = HashMap::new();
    for r in &batch.records {
        let rec = r.record();
        let stored = match seen.get(&rec.identifier) {
            Some(v) => Some(*v),
            None => lookup.version(&rec.identifier.to_string())?,
        };
        if let Some(stored) = stored
            && stored >= rec.version
        {
            return Ok(Some(StoreError::Conflict {
                identifier: rec.identifier.clone(),
                stored,
                offered: rec.version,
            }));
        }
        seen.insert(&rec.identifier, rec.version);
    }
    for e in &batch.expect {
        if lookup.row(e.table, &e.key)? != e.value {
            return Ok(Some(StoreError::RowChanged {
                table: e.table.name(),
                key: String::from_utf8_lossy(&e.key).into_owned(),
            }));
        }
    }
    for n in &batch.nonces {
        // Judged at commit time: a request that went stale while queued
        // would otherwise be stored and pruned in the same commit, and a
        // copy could follow it.
        if !nonce_live(n.expires, now) {
            return Ok(Some(StoreError::StaleNonce(n.key.clone())));
        }
        if lookup
            .nonce_expires(&n.key)?
            .is_some_and(|at| nonce_live(at, now))
        {
            return Ok(Some(StoreError::Replay(n.key.clone())));
        }
    }
    Ok(None)
}

/// [`Store::submit`] for async callers: resolves once the batch is durable
/// or refused, without parking a thread while the commit runs.
pub async fn write_async(store: &dyn Store, batch: WriteBatch) -> Result<Written, StoreError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit(
        batch,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.await.map_err(|_| StoreError::Closed)?
}

/// Called exactly once with the outcome of a submitted batch.
pub type Done = Box<dyn FnOnce(Result<Written, StoreError>) + Send>;

/// The storage interface of a node.
pub trait Store: Send + Sync + 'static {
    /// Queues a batch; `done` is called exactly once, when it is durable
    /// (`Ok`) or refused. Lets async callers wait for a commit without
    /// parking a thread. A backend may share one commit among concurrent
    /// submissions (redb does) and may call `done` before `submit` returns
    /// (the memory store does), so `done` must not wait for the caller.
    /// `done` callbacks of durable batches run one at a time, in the order
    /// the batches were committed (the registry publishes in them).
    fn submit(&self, batch: WriteBatch, done: Done);
    /// Durable when it returns `Ok`.
    fn write(&self, batch: WriteBatch) -> Result<Written, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(
            batch,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        );
        rx.recv().map_err(|_| StoreError::Closed)?
    }
    fn get(&self, id: &Identifier) -> Result<Option<SignedRecord>, StoreError>;
    /// Calls `f` with every record, in the byte order of the canonical
    /// identifier text, from one consistent snapshot (writes that commit
    /// meanwhile are not seen). A disk backend streams them; `f` may write
    /// to the store.
    fn for_each_record(
        &self,
        f: &mut dyn FnMut(SignedRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Every record, in the order of [`Store::for_each_record`].
    fn records(&self) -> Result<Vec<SignedRecord>, StoreError> {
        let mut out = Vec::new();
        self.for_each_record(&mut |r| {
            out.push(r);
            Ok(())
        })?;
        Ok(out)
    }
    /// The serial high-water mark of (prefix, class); 0 when none.
    fn serial(&self, prefix: &Prefix, class: Class) -> Result<u64, StoreError>;
    /// Grows with every commit that changed something (RFC 1982 order).
    fn zone_serial(&self) -> Result<u32, StoreError>;
    fn len(&self) -> Result<u64, StoreError>;
    /// The answer recorded with a consumed nonce that has not expired yet
    /// by the store's clock.
    fn nonce_answer(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// True when a write already consumed this nonce key and it has not
    /// expired yet.
    fn nonce_used(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.nonce_answer(key)?.is_some())
    }
    /// The value of one row of `table`.
    fn row(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Calls `f` with the rows of `table` from `start` on, in key order,
    /// until it returns `false`.
    fn scan_rows(
        &self,
        table: Table,
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError>;
    fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
    /// Writes a consistent snapshot of every table — records, serial marks,
    /// the zone serial, nonces, rows and the log — as of one moment between
    /// two commits, as a new redb store file at `out` that
    /// [`redb::RedbStore::open`] opens as it is. Writers are not stopped
    /// (redb copies from one read transaction, the memory store from a copy
    /// taken under its lock). `out` must not exist: a backup never
    /// overwrites a file, and a failed one removes what it wrote.
    fn backup(&self, out: &Path) -> Result<BackupInfo, StoreError>;
    /// How many leaves the transparency log holds.
    fn log_size(&self) -> Result<u64, StoreError>;
    /// Calls `f` with the log's leaves from index `start` on, in order,
    /// until it returns `false`.
    fn log_entries(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError>;
}
