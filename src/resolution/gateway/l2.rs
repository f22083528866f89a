//! L2: the gateway's on-disk cache (redb), which survives restarts.
//!
//! It keeps what an L1 entry was made from (the signed record, or the
//! response's RRs) and the delegations that make them verifiable, never a
//! ready answer: everything read back is checked again from the root key
//! before it is served. Writes go through one thread that batches them;
//! batches commit without fsync, and a durable commit follows at most a
//! second later and at shutdown — losing a second of cache to a crash
//! costs only upstream queries.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use serde::{Deserialize, Serialize};

use super::cache::{Key, Source};

/// key: qtype (2 bytes, big-endian) + lower-cased wire name → postcard(`Stored`).
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("entries");
/// child prefix → postcard(`StoredZone`).
const ZONES: TableDefinition<&str, &[u8]> = TableDefinition::new("zones");

/// Why L2 failed.
#[derive(Debug, thiserror::Error)]
#[error("gateway cache store: {0}")]
pub struct L2Error(String);

fn err(e: impl std::fmt::Display) -> L2Error {
    L2Error(e.to_string())
}

/// An entry as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub source: Source,
    pub zone: String,
    pub stored: u64,
    pub ttl: u32,
}

/// A verified delegation as stored: the record and the cache expiry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredZone {
    pub record: Vec<u8>,
    pub expires: u64,
}

enum Write {
    Entry(Key, Stored),
    Zone(String, StoredZone),
    Remove(Key),
    Flush(mpsc::Sender<()>),
}

/// The on-disk cache.
pub struct L2 {
    db: std::sync::Arc<Database>,
    tx: mpsc::Sender<Write>,
    writer: Option<JoinHandle<()>>,
}

fn entry_key(key: &Key) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + key.0.len());
    k.extend_from_slice(&key.1.to_be_bytes());
    k.extend_from_slice(&key.0);
    k
}

impl L2 {
    pub fn open(path: &Path) -> Result<L2, L2Error> {
        let db = std::sync::Arc::new(Database::create(path).map_err(err)?);
        {
            let w = db.begin_write().map_err(err)?;
            w.open_table(ENTRIES).map_err(err)?;
            w.open_table(ZONES).map_err(err)?;
            w.commit().map_err(err)?;
        }
        let (tx, rx) = mpsc::channel();
        let writer_db = db.clone();
        let writer = std::thread::Builder::new()
            .name("gateway-l2".into())
            .spawn(move || writer(&writer_db, &rx))
            .map_err(err)?;
        Ok(L2 {
            db,
            tx,
            writer: Some(writer),
        })
    }

    pub fn get(&self, key: &Key) -> Result<Option<Stored>, L2Error> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(ENTRIES).map_err(err)?;
        let Some(v) = t.get(entry_key(key).as_slice()).map_err(err)? else {
            return Ok(None);
        };
        // An entry that does not decode is dropped, not served.
        Ok(postcard::from_bytes(v.value()).ok())
    }

    pub fn put(&self, key: Key, stored: Stored) {
        let _ = self.tx.send(Write::Entry(key, stored));
    }

    pub fn remove(&self, key: Key) {
        let _ = self.tx.send(Write::Remove(key));
    }

    pub fn put_zone(&self, prefix: String, zone: StoredZone) {
        let _ = self.tx.send(Write::Zone(prefix, zone));
    }

    /// Every stored delegation, parents first.
    pub fn zones(&self) -> Result<Vec<(String, StoredZone)>, L2Error> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(ZONES).map_err(err)?;
        let mut out = Vec::new();
        for item in t.iter().map_err(err)? {
            let (k, v) = item.map_err(err)?;
            if let Ok(z) = postcard::from_bytes::<StoredZone>(v.value()) {
                out.push((k.value().to_string(), z));
            }
        }
        out.sort_by_key(|(p, _)| p.split('.').count());
        Ok(out)
    }

    /// Number of stored entries.
    pub fn len(&self) -> Result<u64, L2Error> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(ENTRIES).map_err(err)?;
        t.len().map_err(err)
    }

    pub fn is_empty(&self) -> Result<bool, L2Error> {
        Ok(self.len()? == 0)
    }

    /// Waits until every write sent so far is durable.
    pub fn flush(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Write::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(Duration::from_secs(10));
        }
    }

    /// Removes entries that expired more than `keep` seconds ago.
    pub fn sweep(&self, now: u64, keep: u64) -> Result<u64, L2Error> {
        let w = self.db.begin_write().map_err(err)?;
        let mut removed = 0;
        {
            let mut t = w.open_table(ENTRIES).map_err(err)?;
            let old = t
                .extract_if(|_, v| {
                    postcard::from_bytes::<Stored>(v)
                        .map(|s| s.stored + u64::from(s.ttl) + keep < now)
                        .unwrap_or(true)
                })
                .map_err(err)?;
            for item in old {
                item.map_err(err)?;
                removed += 1;
            }
        }
        w.commit().map_err(err)?;
        Ok(removed)
    }
}

impl Drop for L2 {
    fn drop(&mut self) {
        self.flush();
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn writer(db: &Database, rx: &mpsc::Receiver<Write>) {
    let mut dirty = false;
    loop {
        let first = match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(w) => Some(w),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut batch: Vec<Write> = first.into_iter().collect();
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let mut flushes = Vec::new();
        let has_data = batch.iter().any(|w| !matches!(w, Write::Flush(_)));
        let durable = !has_data && dirty || batch.iter().any(|w| matches!(w, Write::Flush(_)));
        if has_data || durable {
            match commit(db, batch, &mut flushes, durable) {
                Ok(()) => dirty = !durable,
                Err(e) => tracing::warn!(error = %e, "gateway cache write failed"),
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
    if dirty && let Err(e) = commit(db, Vec::new(), &mut Vec::new(), true) {
        tracing::warn!(error = %e, "gateway cache final flush failed");
    }
}

fn commit(
    db: &Database,
    batch: Vec<Write>,
    flushes: &mut Vec<mpsc::Sender<()>>,
    durable: bool,
) -> Result<(), L2Error> {
    let mut w = db.begin_write().map_err(err)?;
    w.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })
    .map_err(err)?;
    {
        let mut entries = w.open_table(ENTRIES).map_err(err)?;
        let mut zones = w.open_table(ZONES).map_err(err)?;
        for item in batch {
            match item {
                Write::Entry(key, stored) => {
                    if let Ok(bytes) = postcard::to_allocvec(&stored) {
                        entries
                            .insert(entry_key(&key).as_slice(), bytes.as_slice())
                            .map_err(err)?;
                    }
                }
                Write::Remove(key) => {
                    entries.remove(entry_key(&key).as_slice()).map_err(err)?;
                }
                Write::Zone(prefix, zone) => {
                    if let Ok(bytes) = postcard::to_allocvec(&zone) {
                        zones
                            .insert(prefix.as_str(), bytes.as_slice())
                            .map_err(err)?;
                    }
                }
                Write::Flush(done) => flushes.push(done),
            }
        }
    }
    w.commit().map_err(err)
}
