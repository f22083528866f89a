//! The embedded store: redb, with durable commits and group commit.
//!
//! Writers hand their batch to one writer thread and wait. The thread takes
//! every batch that is queued, applies them in one write transaction (each
//! batch checked on its own, so one stale batch fails alone), commits once
//! with `Durability::Immediate`, and only then answers every waiting
//! writer. Under load many writes share one fsync; alone, a write costs one.
//! Readers use their own read transactions and never wait for the writer.
//!
//! Nonce expiry is decided by the store's [`Clock`] (the system clock unless
//! [`Options::clock`] says otherwise), read once per commit.
//!
//! A backup is one read transaction (a snapshot: commits go on beside it)
//! copied table by table into a new file through `Filler`, the one writer
//! of this file format from outside the commit path, which the memory
//! store's backup uses too. [`verify_file`] reads such a file back before a
//! restore puts it in place.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::backends::FileBackend;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use super::{BackupInfo, Done, Lookup, Store, StoreError, Table, WriteBatch, Written};
use crate::clock::Clock;
use crate::ident::identifier::{Class, Identifier, Prefix};
use crate::ident::record::SignedRecord;

/// Canonical identifier → `SignedRecord::encode` bytes.
const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// `"<prefix>/<CLASS>"` → serial high-water mark.
const SERIALS: TableDefinition<&str, u64> = TableDefinition::new("serials");
/// Store-wide counters: `zone_serial`, `format`.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Consumed request nonce (`"<key id>/<nonce>"`) → expiry (Unix seconds).
const NONCES: TableDefinition<&str, u64> = TableDefinition::new("nonces");
/// Consumed nonce key → what its request produced (an identifier).
const NONCE_ANSWERS: TableDefinition<&str, &str> = TableDefinition::new("nonce_answers");
/// (expiry, nonce key), so expired nonces are found without a full scan.
const NONCE_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("nonce_expiry");
/// (table name, key) → value: the rows other systems commit with records.
const ROWS: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("rows");
/// Log index → leaf: the transparency log's entries, appended with the
/// change they record. Its length is `meta["log_size"]`.
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
/// Most expired nonces one commit removes (keeps commits short).
const PRUNE_PER_COMMIT: usize = 1024;

const FORMAT: u64 = 1;
/// redb's page cache (its own default is 1 GiB).
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;
/// Most batches one commit takes.
const MAX_GROUP: usize = 4096;

fn db_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

pub(super) fn serial_key(prefix: &Prefix, class: Class) -> String {
    format!("{prefix}/{}", class.code())
}

type Reply = Done;

/// How a [`RedbStore`] is opened.
#[derive(Debug, Clone)]
pub struct Options {
    /// redb's page cache. It only serves the write path and start-up
    /// (queries never read the store), so it can be small.
    pub cache_bytes: usize,
    /// Decides nonce expiry; tests pass a manual clock.
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            cache_bytes: DEFAULT_CACHE_BYTES,
            clock: Clock::system(),
        }
    }
}

/// The redb-backed store.
pub struct RedbStore {
    db: Arc<Database>,
    queue: Mutex<Option<mpsc::Sender<(WriteBatch, Reply)>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    commits: Arc<AtomicU64>,
    clock: Clock,
}

impl RedbStore {
    /// Opens or creates the database file with the default [`Options`].
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        RedbStore::open_with(path, Options::default())
    }

    /// Opens or creates the database file.
    pub fn open_with(path: &Path, options: Options) -> Result<RedbStore, StoreError> {
        // The file's lock can be held for a moment by someone who is not
        // an owner: a store whose last handle went in one of its own commit
        // callbacks closes when its writer thread ends, and a child process
        // forked by another thread holds the parent's open files (and so
        // redb's flock) until it execs. Seen as a spurious "in use" on a
        // fresh file under a test run that spawns tools; an open waits up
        // to a second before calling the file in use.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        let db = loop {
            match Database::builder()
                .set_cache_size(options.cache_bytes)
                .create(path)
            {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen)
                    if std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                    return Err(StoreError::InUse(path.display().to_string()));
                }
                Err(other) => return Err(db_err(other)),
            }
        };
        let db = Arc::new(db);
        {
            let txn = db.begin_write().map_err(db_err)?;
            {
                txn.open_table(RECORDS).map_err(db_err)?;
                txn.open_table(SERIALS).map_err(db_err)?;
                txn.open_table(NONCES).map_err(db_err)?;
                txn.open_table(NONCE_EXPIRY).map_err(db_err)?;
                txn.open_table(NONCE_ANSWERS).map_err(db_err)?;
                txn.open_table(ROWS).map_err(db_err)?;
                txn.open_table(LOG).map_err(db_err)?;
                let mut meta = txn.open_table(META).map_err(db_err)?;
                let format = meta.get("format").map_err(db_err)?.map(|v| v.value());
                match format {
                    None => {
                        meta.insert("format", FORMAT).map_err(db_err)?;
                    }
                    Some(FORMAT) => {}
                    Some(other) => {
                        return Err(StoreError::Database(format!(
                            "store format {other} is not supported (expected {FORMAT})"
                        )));
                    }
                }
            }
            txn.commit().map_err(db_err)?;
        }
        let (tx, rx) = mpsc::channel();
        let commits = Arc::new(AtomicU64::new(0));
        let writer = {
            let db = db.clone();
            let commits = commits.clone();
            let clock = options.clock.clone();
            std::thread::Builder::new()
                .name("store-writer".into())
                .spawn(move || writer_loop(&db, &rx, &commits, &clock))
                .map_err(db_err)?
        };
        Ok(RedbStore {
            db,
            queue: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            commits,
            clock: options.clock,
        })
    }

    /// Commits made so far (group commit shows as commits < writes).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

impl Drop for RedbStore {
    fn drop(&mut self) {
        if let Ok(mut q) = self.queue.lock() {
            q.take();
        }
        // The last reference can go in a commit's done callback, on the
        // writer itself: it cannot wait for itself, and ends on its own
        // once the closed queue is drained.
        if let Ok(mut w) = self.writer.lock()
            && let Some(handle) = w.take()
            && handle.thread().id() != std::thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

fn writer_loop(
    db: &Database,
    rx: &mpsc::Receiver<(WriteBatch, Reply)>,
    commits: &AtomicU64,
    clock: &Clock,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(item) => group.push(item),
                Err(_) => break,
            }
        }
        let (batches, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        let started = std::time::Instant::now();
        let outcome = commit_group(db, &batches, clock.now());
        metrics::histogram!(crate::telemetry::STORE_COMMIT_SECONDS)
            .record(started.elapsed().as_secs_f64());
        match outcome {
            Ok(results) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (reply, result) in replies.into_iter().zip(results) {
                    reply(result);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for reply in replies {
                    reply(Err(StoreError::Database(msg.clone())));
                }
            }
        }
    }
}

/// The tables a batch is judged against, inside the commit's transaction
/// (so batches applied earlier in the same group count).
struct TxnLookup<'a, 't> {
    records: &'a redb::Table<'t, &'static str, &'static [u8]>,
    nonces: &'a redb::Table<'t, &'static str, u64>,
    rows: &'a redb::Table<'t, (&'static str, &'static [u8]), &'static [u8]>,
}

impl Lookup for TxnLookup<'_, '_> {
    fn version(&mut self, identifier: &str) -> Result<Option<u64>, StoreError> {
        self.records
            .get(identifier)
            .map_err(db_err)?
            .map(|v| stored_version(identifier, v.value()))
            .transpose()
    }

    fn nonce_expires(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.nonces.get(key).map_err(db_err)?.map(|v| v.value()))
    }

    fn row(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .rows
            .get((table.name(), key))
            .map_err(db_err)?
            .map(|v| v.value().to_vec()))
    }
}

/// Applies every batch that passes its checks, in one durable transaction,
/// judging nonces at `now`. Returns one result per batch; `Err` only when
/// the whole commit failed.
fn commit_group(
    db: &Database,
    batches: &[WriteBatch],
    now: u64,
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut txn = db.begin_write().map_err(db_err)?;
    txn.set_durability(Durability::Immediate).map_err(db_err)?;
    let mut results = Vec::with_capacity(batches.len());
    {
        let mut records = txn.open_table(RECORDS).map_err(db_err)?;
        let mut serials = txn.open_table(SERIALS).map_err(db_err)?;
        let mut nonces = txn.open_table(NONCES).map_err(db_err)?;
        let mut expiry = txn.open_table(NONCE_EXPIRY).map_err(db_err)?;
        let mut answers = txn.open_table(NONCE_ANSWERS).map_err(db_err)?;
        let mut rows = txn.open_table(ROWS).map_err(db_err)?;
        let mut log = txn.open_table(LOG).map_err(db_err)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        let log_start = meta
            .get("log_size")
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        let mut log_size = log_start;
        let first_serial = meta
            .get("zone_serial")
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        let mut serial = first_serial;
        for batch in batches {
            let verdict = super::judge(
                batch,
                now,
                &mut TxnLookup {
                    records: &records,
                    nonces: &nonces,
                    rows: &rows,
                },
            );
            match verdict {
                Ok(None) => {}
                // A stored record this batch would replace cannot be read:
                // refuse this batch, not the others sharing the commit.
                Ok(Some(refusal)) | Err(refusal @ StoreError::Corrupt { .. }) => {
                    results.push(Err(refusal));
                    continue;
                }
                Err(e) => return Err(e),
            }
            for n in &batch.nonces {
                nonces.insert(n.key.as_str(), n.expires).map_err(db_err)?;
                answers
                    .insert(n.key.as_str(), n.answer.as_str())
                    .map_err(db_err)?;
                expiry
                    .insert((n.expires, n.key.as_str()), ())
                    .map_err(db_err)?;
            }
            for r in &batch.records {
                let key = r.record().identifier.to_string();
                records.insert(key.as_str(), r.as_bytes()).map_err(db_err)?;
            }
            for row in &batch.rows {
                rows.insert((row.table.name(), row.key.as_slice()), row.value.as_slice())
                    .map_err(db_err)?;
            }
            let first = log_size;
            for leaf in &batch.leaves {
                log.insert(log_size, leaf.as_slice()).map_err(db_err)?;
                log_size += 1;
            }
            for (prefix, class, mark) in &batch.serials {
                let key = serial_key(prefix, *class);
                let current = serials
                    .get(key.as_str())
                    .map_err(db_err)?
                    .map_or(0, |v| v.value());
                if *mark > current {
                    serials.insert(key.as_str(), *mark).map_err(db_err)?;
                }
            }
            let moved = super::moves_serial(batch, serial);
            if moved {
                serial = super::next_zone_serial(serial, now, batch.serial_floor);
            }
            results.push(Ok(Written {
                leaves: first..log_size,
                serial: moved.then_some(serial as u32),
            }));
        }
        prune_nonces(&mut nonces, &mut expiry, &mut answers, now)?;
        if log_size != log_start {
            meta.insert("log_size", log_size).map_err(db_err)?;
        }
        if serial != first_serial {
            meta.insert("zone_serial", serial).map_err(db_err)?;
        }
    }
    txn.commit().map_err(db_err)?;
    Ok(results)
}

/// Forgets up to `PRUNE_PER_COMMIT` nonces whose window has passed.
fn prune_nonces(
    nonces: &mut redb::Table<&str, u64>,
    expiry: &mut redb::Table<(u64, &str), ()>,
    answers: &mut redb::Table<&str, &str>,
    now: u64,
) -> Result<(), StoreError> {
    let mut expired: Vec<(u64, String)> = Vec::new();
    for item in expiry.range(..(now, "")).map_err(db_err)? {
        let (k, _) = item.map_err(db_err)?;
        let (at, key) = k.value();
        expired.push((at, key.to_string()));
        if expired.len() >= PRUNE_PER_COMMIT {
            break;
        }
    }
    for (at, key) in &expired {
        expiry.remove((*at, key.as_str())).map_err(db_err)?;
        // A nonce re-inserted later carries a later expiry; keep it.
        let current = nonces.get(key.as_str()).map_err(db_err)?.map(|v| v.value());
        if current == Some(*at) {
            nonces.remove(key.as_str()).map_err(db_err)?;
            answers.remove(key.as_str()).map_err(db_err)?;
        }
    }
    Ok(())
}

/// The tables of a backup file being written, in one write transaction:
/// the one place outside the commit path that writes this file format.
/// Each backend's [`Store::backup`] feeds it the rows of its snapshot;
/// the index tables (nonce expiry) and the counters (`log_size`,
/// `format`) follow from what it is given.
pub(super) struct Filler<'t> {
    records: redb::Table<'t, &'static str, &'static [u8]>,
    serials: redb::Table<'t, &'static str, u64>,
    nonces: redb::Table<'t, &'static str, u64>,
    answers: redb::Table<'t, &'static str, &'static str>,
    expiry: redb::Table<'t, (u64, &'static str), ()>,
    rows: redb::Table<'t, (&'static str, &'static [u8]), &'static [u8]>,
    log: redb::Table<'t, u64, &'static [u8]>,
    zone_serial: u64,
    info: BackupInfo,
}

impl Filler<'_> {
    /// A record's stored bytes under its canonical identifier text.
    pub(super) fn record(&mut self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.records.insert(key, bytes).map_err(db_err)?;
        self.info.records += 1;
        Ok(())
    }

    /// A serial high-water mark under its `"<prefix>/<CLASS>"` key.
    pub(super) fn serial(&mut self, key: &str, mark: u64) -> Result<(), StoreError> {
        self.serials.insert(key, mark).map_err(db_err)?;
        Ok(())
    }

    /// A consumed nonce with its expiry and answer.
    pub(super) fn nonce(
        &mut self,
        key: &str,
        expires: u64,
        answer: &str,
    ) -> Result<(), StoreError> {
        self.nonces.insert(key, expires).map_err(db_err)?;
        self.answers.insert(key, answer).map_err(db_err)?;
        self.expiry.insert((expires, key), ()).map_err(db_err)?;
        self.info.nonces += 1;
        Ok(())
    }

    /// A row of another system's table.
    pub(super) fn row(&mut self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.rows.insert((table, key), value).map_err(db_err)?;
        self.info.rows += 1;
        Ok(())
    }

    /// The next log leaf: `index` must be the log's size so far, so a
    /// backup's log has no gap.
    pub(super) fn leaf(&mut self, index: u64, leaf: &[u8]) -> Result<(), StoreError> {
        if index != self.info.log_size {
            return Err(StoreError::Corrupt {
                key: format!("log/{index}"),
                reason: format!("expected leaf {} next", self.info.log_size),
            });
        }
        self.log.insert(index, leaf).map_err(db_err)?;
        self.info.log_size += 1;
        Ok(())
    }

    pub(super) fn zone_serial(&mut self, serial: u64) {
        self.zone_serial = serial;
    }
}

/// Creates the store file `out` (refused when it exists) and fills it with
/// `fill` in one durable transaction; removes it again when anything
/// fails.
pub(super) fn write_backup(
    out: &Path,
    fill: impl FnOnce(&mut Filler<'_>) -> Result<(), StoreError>,
) -> Result<BackupInfo, StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| backup_err(out, e))?;
    let result = fill_backup(out, file, fill);
    if result.is_err() {
        let _ = std::fs::remove_file(out);
    }
    result
}

fn backup_err(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Backup {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn fill_backup(
    out: &Path,
    file: std::fs::File,
    fill: impl FnOnce(&mut Filler<'_>) -> Result<(), StoreError>,
) -> Result<BackupInfo, StoreError> {
    let db = Database::builder()
        .set_cache_size(DEFAULT_CACHE_BYTES)
        .create_with_backend(FileBackend::new(file).map_err(db_err)?)
        .map_err(db_err)?;
    let mut txn = db.begin_write().map_err(db_err)?;
    txn.set_durability(Durability::Immediate).map_err(db_err)?;
    let mut info = {
        let mut filler = Filler {
            records: txn.open_table(RECORDS).map_err(db_err)?,
            serials: txn.open_table(SERIALS).map_err(db_err)?,
            nonces: txn.open_table(NONCES).map_err(db_err)?,
            answers: txn.open_table(NONCE_ANSWERS).map_err(db_err)?,
            expiry: txn.open_table(NONCE_EXPIRY).map_err(db_err)?,
            rows: txn.open_table(ROWS).map_err(db_err)?,
            log: txn.open_table(LOG).map_err(db_err)?,
            zone_serial: 0,
            info: BackupInfo::default(),
        };
        fill(&mut filler)?;
        let mut meta = txn.open_table(META).map_err(db_err)?;
        meta.insert("format", FORMAT).map_err(db_err)?;
        meta.insert("zone_serial", filler.zone_serial)
            .map_err(db_err)?;
        meta.insert("log_size", filler.info.log_size)
            .map_err(db_err)?;
        filler.info
    };
    txn.commit().map_err(db_err)?;
    db.close().map_err(db_err)?;
    info.bytes = std::fs::metadata(out)
        .map_err(|e| backup_err(out, e))?
        .len();
    Ok(info)
}

/// Checks that the file at `path` is a whole cpid store — redb's integrity
/// check, this format, every table, a log without gaps, every record
/// decoding under its own identifier — and tells what it holds. Opens the
/// file for writing (redb may repair an unclean file), so run it on a copy
/// you own: a downloaded backup, or a restore's copy before it is put in
/// place. A file held by a running node is [`StoreError::InUse`].
pub fn verify_file(path: &Path) -> Result<BackupInfo, StoreError> {
    let not_a_store = |reason: String| backup_err(path, format!("not a cpid store: {reason}"));
    let db = Database::builder()
        .set_cache_size(DEFAULT_CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .open(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                StoreError::InUse(path.display().to_string())
            }
            other => not_a_store(other.to_string()),
        })?;
    let mut info = BackupInfo::default();
    {
        let txn = db.begin_read().map_err(db_err)?;
        let missing = |name: &str, e: redb::TableError| not_a_store(format!("table {name}: {e}"));
        let meta = txn.open_table(META).map_err(|e| missing("meta", e))?;
        let counter = |name: &str| -> Result<Option<u64>, StoreError> {
            Ok(meta.get(name).map_err(db_err)?.map(|v| v.value()))
        };
        match counter("format")? {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(not_a_store(format!(
                    "format {other} is not supported (expected {FORMAT})"
                )));
            }
            None => return Err(not_a_store("no format mark".into())),
        }
        txn.open_table(SERIALS).map_err(|e| missing("serials", e))?;
        txn.open_table(NONCE_ANSWERS)
            .map_err(|e| missing("nonce_answers", e))?;
        txn.open_table(NONCE_EXPIRY)
            .map_err(|e| missing("nonce_expiry", e))?;
        let records = txn.open_table(RECORDS).map_err(|e| missing("records", e))?;
        for item in records.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let record = decode(k.value(), v.value())?;
            if record.record().identifier.to_string() != k.value() {
                return Err(StoreError::Corrupt {
                    key: k.value().to_string(),
                    reason: format!("holds the record of {}", record.record().identifier),
                });
            }
            info.records += 1;
        }
        let nonces = txn.open_table(NONCES).map_err(|e| missing("nonces", e))?;
        info.nonces = nonces.len().map_err(db_err)?;
        let rows = txn.open_table(ROWS).map_err(|e| missing("rows", e))?;
        info.rows = rows.len().map_err(db_err)?;
        let log = txn.open_table(LOG).map_err(|e| missing("log", e))?;
        info.log_size = counter("log_size")?.unwrap_or(0);
        let leaves = log.len().map_err(db_err)?;
        // Keys are distinct and ordered: n of them from 0 to n - 1 are
        // exactly 0..n.
        let first = log.first().map_err(db_err)?.map(|(k, _)| k.value());
        let last = log.last().map_err(db_err)?.map(|(k, _)| k.value());
        let whole = match (first, last) {
            (None, None) => info.log_size == 0,
            (Some(0), Some(last)) => leaves == info.log_size && last.checked_add(1) == Some(leaves),
            _ => false,
        };
        if !whole {
            return Err(not_a_store(format!(
                "the log has {leaves} leaves ({first:?}..={last:?}) for a size of {}",
                info.log_size
            )));
        }
    }
    db.close().map_err(db_err)?;
    info.bytes = std::fs::metadata(path)
        .map_err(|e| backup_err(path, e))?
        .len();
    Ok(info)
}

/// A stopped node's store, opened read-only (`cpid doctor`): nothing is
/// written, not even a repair. A store a running node holds is
/// [`StoreError::InUse`]; ask that node over its API instead.
pub struct ReadOnly {
    db: redb::ReadOnlyDatabase,
}

impl ReadOnly {
    pub fn open(path: &Path) -> Result<ReadOnly, StoreError> {
        let db = Database::builder()
            .open_read_only(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::InUse(path.display().to_string())
                }
                other => db_err(other),
            })?;
        Ok(ReadOnly { db })
    }

    /// Every stored record, in key order.
    pub fn for_each_record(
        &self,
        f: &mut dyn FnMut(SignedRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RECORDS).map_err(db_err)?;
        for item in table.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            f(decode(k.value(), v.value())?)?;
        }
        Ok(())
    }

    /// A row of another system's table.
    pub fn row(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let rows = txn.open_table(ROWS).map_err(db_err)?;
        Ok(rows
            .get((table.name(), key))
            .map_err(db_err)?
            .map(|v| v.value().to_vec()))
    }

    /// Leaves of the transparency log.
    pub fn log_size(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        Ok(meta
            .get("log_size")
            .map_err(db_err)?
            .map_or(0, |v| v.value()))
    }

    /// The log's leaves from `start` on, until `f` answers false.
    pub fn log_entries(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        for item in log.range(start..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            if !f(k.value(), v.value()) {
                break;
            }
        }
        Ok(())
    }
}

/// Whether another process (a running node) holds the store file at
/// `path` open. A file that is missing or does not open is not in use.
pub fn in_use(path: &Path) -> bool {
    matches!(
        Database::builder().open_read_only(path),
        Err(redb::DatabaseError::DatabaseAlreadyOpen)
    )
}

fn stored_version(key: &str, bytes: &[u8]) -> Result<u64, StoreError> {
    SignedRecord::decode(bytes)
        .map(|r| r.record().version)
        .map_err(|e| StoreError::Corrupt {
            key: key.to_string(),
            reason: e.to_string(),
        })
}

fn decode(key: &str, bytes: &[u8]) -> Result<SignedRecord, StoreError> {
    SignedRecord::decode(bytes).map_err(|e| StoreError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

impl Store for RedbStore {
    fn submit(&self, batch: WriteBatch, done: Done) {
        let queue = match self.queue.lock() {
            Ok(q) => q,
            Err(_) => return done(Err(StoreError::Closed)),
        };
        match queue.as_ref() {
            Some(q) => {
                if let Err(mpsc::SendError((_, done))) = q.send((batch, done)) {
                    done(Err(StoreError::Closed));
                }
            }
            None => done(Err(StoreError::Closed)),
        }
    }

    fn get(&self, id: &Identifier) -> Result<Option<SignedRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RECORDS).map_err(db_err)?;
        let key = id.to_string();
        let value = table.get(key.as_str()).map_err(db_err)?;
        value.map(|v| decode(&key, v.value())).transpose()
    }

    fn for_each_record(
        &self,
        f: &mut dyn FnMut(SignedRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RECORDS).map_err(db_err)?;
        for item in table.iter().map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            f(decode(k.value(), v.value())?)?;
        }
        Ok(())
    }

    fn serial(&self, prefix: &Prefix, class: Class) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(SERIALS).map_err(db_err)?;
        let key = serial_key(prefix, class);
        Ok(table
            .get(key.as_str())
            .map_err(db_err)?
            .map_or(0, |v| v.value()))
    }

    fn zone_serial(&self) -> Result<u32, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(META).map_err(db_err)?;
        let v = table
            .get("zone_serial")
            .map_err(db_err)?
            .map_or(0, |v| v.value());
        // RFC 1982 serial arithmetic: wrap into 32 bits.
        Ok(v as u32)
    }

    fn nonce_answer(&self, key: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let nonces = txn.open_table(NONCES).map_err(db_err)?;
        let now = self.clock.now();
        let live = nonces
            .get(key)
            .map_err(db_err)?
            .is_some_and(|v| super::nonce_live(v.value(), now));
        if !live {
            return Ok(None);
        }
        let answers = txn.open_table(NONCE_ANSWERS).map_err(db_err)?;
        let answer = answers.get(key).map_err(db_err)?;
        Ok(Some(
            answer.map(|a| a.value().to_string()).unwrap_or_default(),
        ))
    }

    fn row(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let rows = txn.open_table(ROWS).map_err(db_err)?;
        Ok(rows
            .get((table.name(), key))
            .map_err(db_err)?
            .map(|v| v.value().to_vec()))
    }

    fn scan_rows(
        &self,
        table: Table,
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let rows = txn.open_table(ROWS).map_err(db_err)?;
        for item in rows.range((table.name(), start)..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            let (name, key) = k.value();
            if name != table.name() || !f(key, v.value()) {
                break;
            }
        }
        Ok(())
    }

    fn len(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let table = txn.open_table(RECORDS).map_err(db_err)?;
        table.len().map_err(db_err)
    }

    fn backup(&self, out: &Path) -> Result<BackupInfo, StoreError> {
        // One read transaction is one moment between two commits; the
        // writer goes on committing beside it.
        let txn = self.db.begin_read().map_err(db_err)?;
        write_backup(out, |f| {
            let records = txn.open_table(RECORDS).map_err(db_err)?;
            for item in records.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                f.record(k.value(), v.value())?;
            }
            let serials = txn.open_table(SERIALS).map_err(db_err)?;
            for item in serials.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                f.serial(k.value(), v.value())?;
            }
            let nonces = txn.open_table(NONCES).map_err(db_err)?;
            let answers = txn.open_table(NONCE_ANSWERS).map_err(db_err)?;
            for item in nonces.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let answer = answers.get(k.value()).map_err(db_err)?;
                f.nonce(
                    k.value(),
                    v.value(),
                    answer.as_ref().map_or("", |a| a.value()),
                )?;
            }
            let rows = txn.open_table(ROWS).map_err(db_err)?;
            for item in rows.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                let (table, key) = k.value();
                f.row(table, key, v.value())?;
            }
            let log = txn.open_table(LOG).map_err(db_err)?;
            for item in log.iter().map_err(db_err)? {
                let (k, v) = item.map_err(db_err)?;
                f.leaf(k.value(), v.value())?;
            }
            let meta = txn.open_table(META).map_err(db_err)?;
            f.zone_serial(
                meta.get("zone_serial")
                    .map_err(db_err)?
                    .map_or(0, |v| v.value()),
            );
            Ok(())
        })
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        Ok(meta
            .get("log_size")
            .map_err(db_err)?
            .map_or(0, |v| v.value()))
    }

    fn log_entries(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(db_err)?;
        let log = txn.open_table(LOG).map_err(db_err)?;
        for item in log.range(start..).map_err(db_err)? {
            let (k, v) = item.map_err(db_err)?;
            if !f(k.value(), v.value()) {
                break;
            }
        }
        Ok(())
    }
}
