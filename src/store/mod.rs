//! Storage behind one narrow trait, so the registry never knows which
//! engine holds its records.
//!
//! The contract every backend keeps: a `write` returns only once its batch
//! is durable; a batch is atomic (records and serial marks together); a
//! serial mark never goes down; a record never replaces one with an equal
//! or higher version; and a stored record that no longer decodes is
//! reported as corrupt, never skipped.

pub mod redb;

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
    #[error("nonce {0} was already used")]
    Replay(String),
    #[error("nonce {0} expired before its write could commit")]
    StaleNonce(String),
    #[error("the store's writer has stopped")]
    Closed,
    #[error("the caller stopped the scan")]
    Interrupted,
}

/// [`Store::submit`] for async callers: resolves once the batch is durable
/// or refused, without parking a thread while the commit runs.
pub async fn write_async(store: &dyn Store, batch: WriteBatch) -> Result<(), StoreError> {
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
pub type Done = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The storage interface of a node.
pub trait Store: Send + Sync + 'static {
    /// Queues a batch; `done` is called once it is durable (`Ok`) or
    /// refused. Concurrent submissions share commits. Lets async callers
    /// wait for a commit without parking a thread.
    fn submit(&self, batch: WriteBatch, done: Done);
    /// Durable when it returns `Ok`; concurrent callers share commits.
    fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
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
    /// Calls `f` with every record, in identifier order, without holding
    /// them all in memory.
    fn for_each_record(
        &self,
        f: &mut dyn FnMut(SignedRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Every record, in identifier order.
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
    /// The answer recorded with a consumed nonce that has not expired yet.
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
}
