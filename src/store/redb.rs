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

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

use super::{Done, Lookup, Store, StoreError, Table, WriteBatch, Written};
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

fn serial_key(prefix: &Prefix, class: Class) -> String {
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
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Database(format!(
                    "{} is in use by another process (a running node?); stop it first",
                    path.display()
                )),
                other => db_err(other),
            })?;
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
        if let Ok(mut w) = self.writer.lock()
            && let Some(handle) = w.take()
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
    let mut changed = false;
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
                changed = true;
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
                    changed = true;
                }
            }
            results.push(Ok(Written {
                leaves: first..log_size,
            }));
        }
        prune_nonces(&mut nonces, &mut expiry, &mut answers, now)?;
        if log_size != log_start {
            meta.insert("log_size", log_size).map_err(db_err)?;
        }
        if changed {
            let serial = meta
                .get("zone_serial")
                .map_err(db_err)?
                .map_or(0, |v| v.value());
            meta.insert("zone_serial", serial + 1).map_err(db_err)?;
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
