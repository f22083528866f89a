//! The node's log: integrates the leaves the commit path appended into the
//! Merkle tree, signs checkpoints, and reads proofs and tiles back.
//!
//! Leaves are sequenced by the store in the same transaction as their
//! change (`WriteBatch::leaves`); this module only hashes what is already
//! durable. One integration reads the leaves past the last checkpoint,
//! writes their stored hashes (every complete subtree's root, addressed by
//! level and index), their identifier index rows and the new signed
//! checkpoint as one batch, guarded by the checkpoint it extends. A crash
//! between the two commits leaves leaves that the next integration picks
//! up, so a checkpoint only ever grows, and never disagrees with an
//! earlier one: the tree below it is made of leaves nobody can rewrite.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::checkpoint::Checkpoint;
use super::error::TlogError;
use super::merkle::{self, Frontier, Hash, HashReader};
use super::note::NoteSigner;
use super::tile::Tile;
use crate::ident::identifier::Identifier;
use crate::ident::keys::{NodeKey, SigningContext};
use crate::ident::record::SignedRecord;
use crate::registry::Observer;
use crate::store::{Expect, Row, Store, StoreError, Table, WriteBatch};

/// `[level u8][index u64 BE]` → the 32-byte hash of that complete subtree.
pub const HASHES: Table = Table::new("log.hash");
/// `"latest"` → the latest signed checkpoint note; `"origin"` → the
/// origin the log was started under.
pub const CHECKPOINT: Table = Table::new("log.checkpoint");
/// `<identifier> 0x00 <version u64 BE>` → its leaf index (u64 BE).
pub const INDEX: Table = Table::new("log.index");

pub const LATEST: &[u8] = b"latest";
const ORIGIN: &[u8] = b"origin";
/// Most leaves one integration takes (bounds its batch).
const PER_ROUND: usize = 4096;
/// How long the integrator lets a burst of commits gather before hashing:
/// under load, one integration per 100 ms takes hundreds of leaves at once
/// (fewer checkpoint rewrites on the store's one writer), and a checkpoint
/// still covers a commit well within a second.
const GATHER: Duration = Duration::from_millis(100);
/// A look at the store even when no commit was announced (a leaf written
/// by a path that does not notify is still integrated).
const IDLE: Duration = Duration::from_secs(1);

/// Why the log could not be opened, integrated or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tlog(#[from] TlogError),
    #[error("log leaf {index}: {reason}")]
    Leaf { index: u64, reason: String },
    #[error(
        "the store's log was started as {stored}, the configuration names {configured}: \
         a store rebuilt from an export starts a new origin (see README)"
    )]
    Origin { stored: String, configured: String },
    #[error("the stored checkpoint does not match the stored tree: {0}")]
    Inconsistent(String),
    #[error("size {asked} is beyond the latest checkpoint ({size})")]
    Beyond { asked: u64, size: u64 },
}

/// The latest signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub size: u64,
    pub root: Hash,
    /// The whole C2SP signed note, as served at `/log/checkpoint`.
    pub note: String,
}

/// Committed leaves the latest checkpoint does not cover yet (the risk
/// assessment's "old checkpoint").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lag {
    pub checkpoint_size: u64,
    pub log_size: u64,
    /// When the oldest uncovered leaf that carries a record was committed
    /// (the record's `updated`); `None` when no leaf is uncovered, or the
    /// first ones looked at are private (they carry no time).
    pub oldest: Option<u64>,
}

/// Reads a log's leaves from an index on, until the callback answers
/// false (`Store::log_entries`, or a read-only store's).
pub type LeavesFrom<'a> =
    dyn FnMut(u64, &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<(), StoreError> + 'a;

/// How many uncovered leaves [`Lag`] looks at for a dated one.
const LAG_SCAN: usize = 1024;

impl Lag {
    /// The lag of a log of `log_size` leaves whose checkpoint covers
    /// `checkpoint_size`, reading leaves through `entries` (from an index
    /// on, until the callback answers false).
    pub fn measure(
        checkpoint_size: u64,
        log_size: u64,
        entries: &mut LeavesFrom<'_>,
    ) -> Result<Lag, StoreError> {
        let mut oldest = None;
        if log_size > checkpoint_size {
            let mut seen = 0usize;
            entries(checkpoint_size, &mut |_, leaf| {
                seen += 1;
                if let Ok(super::entry::Entry::Record(r)) = super::entry::Entry::parse(leaf) {
                    oldest = Some(r.record().updated);
                    return false;
                }
                seen < LAG_SCAN
            })?;
        }
        Ok(Lag {
            checkpoint_size,
            log_size,
            oldest,
        })
    }

    /// Leaves not covered by the checkpoint.
    pub fn uncovered(&self) -> u64 {
        self.log_size.saturating_sub(self.checkpoint_size)
    }
}

/// The tree size of a stored checkpoint note (signature not checked: for
/// reading a stopped node's store, which the node itself wrote).
pub fn stored_size(note: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(note).ok()?;
    let (body, _) = text.split_once("\n\n")?;
    Checkpoint::parse(&format!("{body}\n")).ok().map(|c| c.size)
}

/// The node's transparency log.
pub struct Log {
    store: Arc<dyn Store>,
    signer: NoteSigner,
    origin: String,
    /// The right edge of the integrated tree; held for a whole integration,
    /// so integrations never overlap.
    frontier: Mutex<Frontier>,
    latest: watch::Sender<Arc<Signed>>,
    wake: Notify,
    /// Leaves committed but not yet integrated: (identifier, version) →
    /// index, so a `201` can name its leaf before the index rows exist.
    pending: Mutex<HashMap<(String, u64), u64>>,
    /// Witnesses' cosignature lines of the latest checkpoint, by witness
    /// name, with the size they cosigned.
    cosigned: Mutex<(u64, HashMap<String, String>)>,
    /// The latest checkpoint a witness cosigned, with its cosignatures: it
    /// stays while newer checkpoints wait for theirs.
    witnessed: Mutex<Option<(Arc<Signed>, String)>>,
}

fn hash_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

fn index_key(identifier: &str, version: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(identifier.len() + 9);
    k.extend_from_slice(identifier.as_bytes());
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// Stored hashes read from the store's rows.
struct Stored<'a>(&'a dyn Store);

impl HashReader for Stored<'_> {
    fn hash(&self, level: u8, index: u64) -> Result<Hash, TlogError> {
        let row = self
            .0
            .row(HASHES, &hash_key(level, index))
            .map_err(|e| TlogError::Read(e.to_string()))?;
        row.and_then(|v| <Hash>::try_from(v.as_slice()).ok())
            .ok_or(TlogError::MissingHash { level, index })
    }
}

impl Log {
    /// Opens the log of `store` under `origin`, signing with `key`; picks up
    /// where the last checkpoint left off. A store that holds records but no
    /// leaves (written before the log existed) gets one leaf per record
    /// first, so every served record has its leaf.
    pub fn open(store: Arc<dyn Store>, key: &NodeKey, origin: &str) -> Result<Log, LogError> {
        let stored_origin = store.row(CHECKPOINT, ORIGIN)?;
        match stored_origin {
            Some(o) if o != origin.as_bytes() => {
                return Err(LogError::Origin {
                    stored: String::from_utf8_lossy(&o).into_owned(),
                    configured: origin.to_string(),
                });
            }
            Some(_) => {}
            None => {
                seed(store.as_ref())?;
                store.write(WriteBatch {
                    rows: vec![Row {
                        table: CHECKPOINT,
                        key: ORIGIN.to_vec(),
                        value: origin.as_bytes().to_vec(),
                    }],
                    expect: vec![Expect {
                        table: CHECKPOINT,
                        key: ORIGIN.to_vec(),
                        value: None,
                    }],
                    ..WriteBatch::default()
                })?;
            }
        }
        let raw = key
            .for_spec_format(SigningContext::Note)
            .ok_or_else(|| LogError::Inconsistent("no note-signing key".into()))?;
        let signer = NoteSigner::new(origin, raw)?;
        let (frontier, latest) = match store.row(CHECKPOINT, LATEST)? {
            Some(note) => {
                let text = String::from_utf8(note)
                    .map_err(|_| LogError::Inconsistent("checkpoint is not UTF-8".into()))?;
                // A checkpoint signed by another key: the node key was
                // rolled (DESIGN §6). The tree is the same; once its root
                // is checked against the stored hashes below, the
                // checkpoint is signed again with the key in force.
                let (body, rolled) =
                    match super::note::open(&text, std::slice::from_ref(&signer.verifier())) {
                        Ok(opened) => (opened.text, false),
                        Err(TlogError::UnknownKey(_)) => {
                            (super::note::split(&text)?.0.to_string(), true)
                        }
                        Err(e) => return Err(e.into()),
                    };
                let cp = Checkpoint::parse(&body)?;
                let frontier = Frontier::load(cp.size, &Stored(store.as_ref()))?;
                if frontier.root() != cp.root {
                    return Err(LogError::Inconsistent(format!(
                        "checkpoint at size {} names a root the stored hashes do not give",
                        cp.size
                    )));
                }
                let note = if rolled {
                    let note = signer.sign(&cp.to_text())?;
                    store.write(WriteBatch {
                        rows: vec![Row {
                            table: CHECKPOINT,
                            key: LATEST.to_vec(),
                            value: note.as_bytes().to_vec(),
                        }],
                        ..WriteBatch::default()
                    })?;
                    tracing::info!(
                        size = cp.size,
                        "log checkpoint signed again with the node key"
                    );
                    note
                } else {
                    text
                };
                let signed = Signed {
                    size: cp.size,
                    root: cp.root,
                    note,
                };
                (frontier, signed)
            }
            None => {
                let frontier = Frontier::empty();
                let cp = Checkpoint {
                    origin: origin.to_string(),
                    size: 0,
                    root: frontier.root(),
                    extensions: Vec::new(),
                };
                let note = signer.sign(&cp.to_text())?;
                (
                    frontier,
                    Signed {
                        size: 0,
                        root: cp.root,
                        note,
                    },
                )
            }
        };
        let (latest, _) = watch::channel(Arc::new(latest));
        Ok(Log {
            store,
            signer,
            origin: origin.to_string(),
            frontier: Mutex::new(frontier),
            latest,
            wake: Notify::new(),
            pending: Mutex::new(HashMap::new()),
            cosigned: Mutex::new((0, HashMap::new())),
            witnessed: Mutex::new(None),
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The key that verifies this log's checkpoints, as C2SP verifier text.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    /// The latest signed checkpoint.
    pub fn latest(&self) -> Arc<Signed> {
        self.latest.borrow().clone()
    }

    /// The committed leaves the latest checkpoint does not cover yet.
    pub fn lag(&self) -> Result<Lag, LogError> {
        let checkpoint_size = self.latest().size;
        let log_size = self.store.log_size()?;
        let store = self.store.clone();
        Ok(Lag::measure(checkpoint_size, log_size, &mut |start, f| {
            store.log_entries(start, f)
        })?)
    }

    /// Changes of the latest checkpoint.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Signed>> {
        self.latest.subscribe()
    }

    /// Keeps a witness's cosignature `line` of the checkpoint at `size`
    /// (only while that checkpoint is the latest).
    pub fn add_cosignature(&self, size: u64, witness: &str, line: &str) {
        let latest = self.latest();
        if latest.size != size {
            return;
        }
        {
            let mut c = self.cosigned.lock().unwrap_or_else(|e| e.into_inner());
            if c.0 != size {
                *c = (size, HashMap::new());
            }
            c.1.insert(witness.to_string(), line.to_string());
        }
        let note = self.served_with(&latest);
        *self.witnessed.lock().unwrap_or_else(|e| e.into_inner()) = Some((latest, note));
    }

    /// The latest checkpoint a witness cosigned and its note with the
    /// cosignatures.
    pub fn witnessed(&self) -> Option<(Arc<Signed>, String)> {
        self.witnessed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether `witness` cosigned the latest checkpoint.
    pub fn cosigned_by(&self, witness: &str) -> bool {
        let c = self.cosigned.lock().unwrap_or_else(|e| e.into_inner());
        c.0 == self.latest.borrow().size && c.1.contains_key(witness)
    }

    /// How many witnesses cosigned the latest checkpoint.
    pub fn cosignature_count(&self) -> usize {
        let c = self.cosigned.lock().unwrap_or_else(|e| e.into_inner());
        if c.0 == self.latest.borrow().size {
            c.1.len()
        } else {
            0
        }
    }

    /// The latest checkpoint's note with every witness cosignature of it
    /// appended (readers that know only the log's key ignore them).
    pub fn served_note(&self) -> String {
        self.served_with(&self.latest())
    }

    /// `signed`'s note with the witness cosignatures of it appended.
    pub fn served_with(&self, signed: &Signed) -> String {
        let c = self.cosigned.lock().unwrap_or_else(|e| e.into_inner());
        let mut note = signed.note.clone();
        if c.0 == signed.size {
            let mut names: Vec<&String> = c.1.keys().collect();
            names.sort();
            for name in names {
                if let Some(line) = c.1.get(name) {
                    note.push_str(line);
                }
            }
        }
        note
    }

    /// Waits until a checkpoint covers leaf `index`, up to `wait`.
    pub async fn covering(&self, index: u64, wait: Duration) -> Option<Arc<Signed>> {
        let mut rx = self.latest.subscribe();
        let covered = tokio::time::timeout(wait, rx.wait_for(|s| s.size > index)).await;
        match covered {
            Ok(Ok(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// Integrates every leaf past the latest checkpoint and signs a new
    /// one; returns the tree size it reached. Blocks on store commits.
    pub fn integrate(&self) -> Result<u64, LogError> {
        let mut frontier = self.frontier.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let start = frontier.size();
            let mut leaves: Vec<(u64, Vec<u8>)> = Vec::new();
            self.store.log_entries(start, &mut |i, leaf| {
                leaves.push((i, leaf.to_vec()));
                leaves.len() < PER_ROUND
            })?;
            if leaves.is_empty() {
                return Ok(start);
            }
            let mut next = frontier.clone();
            let mut rows = Vec::with_capacity(leaves.len() * 3);
            for (i, leaf) in &leaves {
                if *i != next.size() {
                    return Err(LogError::Leaf {
                        index: *i,
                        reason: format!("expected leaf {}", next.size()),
                    });
                }
                let (identifier, version) =
                    super::entry::identity(leaf).map_err(|e| LogError::Leaf {
                        index: *i,
                        reason: e.to_string(),
                    })?;
                rows.push(Row {
                    table: INDEX,
                    key: index_key(&identifier, version),
                    value: i.to_be_bytes().to_vec(),
                });
                for (level, index, hash) in next.append(merkle::leaf_hash(leaf)) {
                    rows.push(Row {
                        table: HASHES,
                        key: hash_key(level, index).to_vec(),
                        value: hash.to_vec(),
                    });
                }
            }
            let cp = Checkpoint {
                origin: self.origin.clone(),
                size: next.size(),
                root: next.root(),
                extensions: Vec::new(),
            };
            let note = self.signer.sign(&cp.to_text())?;
            let previous = self.store.row(CHECKPOINT, LATEST)?;
            rows.push(Row {
                table: CHECKPOINT,
                key: LATEST.to_vec(),
                value: note.as_bytes().to_vec(),
            });
            self.store.write(WriteBatch {
                rows,
                expect: vec![Expect {
                    table: CHECKPOINT,
                    key: LATEST.to_vec(),
                    value: previous,
                }],
                ..WriteBatch::default()
            })?;
            *frontier = next;
            let size = frontier.size();
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, index| *index >= size);
            metrics::gauge!(crate::telemetry::LOG_SIZE).set(cp.size as f64);
            self.latest.send_replace(Arc::new(Signed {
                size: cp.size,
                root: cp.root,
                note,
            }));
        }
    }

    /// Integrates after every announced commit (gathering bursts) and at
    /// least once a second; runs until the task is aborted.
    pub async fn run(self: Arc<Self>) {
        loop {
            let _ = tokio::time::timeout(IDLE, self.wake.notified()).await;
            tokio::time::sleep(GATHER).await;
            let log = self.clone();
            match tokio::task::spawn_blocking(move || log.integrate()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    metrics::counter!(crate::telemetry::LOG_FAILURES).increment(1);
                    tracing::error!(error = %e, "log integration failed; retrying");
                }
                Err(e) => tracing::error!(error = %e, "log integration task failed"),
            }
        }
    }

    /// The leaf index of `identifier` at `version`, or at its latest
    /// integrated version when `version` is `None`: (version, index).
    pub fn leaf_of(
        &self,
        identifier: &Identifier,
        version: Option<u64>,
    ) -> Result<Option<(u64, u64)>, LogError> {
        let id = identifier.to_string();
        let mut prefix = id.clone().into_bytes();
        prefix.push(0);
        let start = match version {
            Some(v) => index_key(&id, v),
            None => prefix.clone(),
        };
        let mut found = None;
        self.store.scan_rows(INDEX, &start, &mut |k, v| {
            let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
                return false;
            };
            let (Ok(ver), Ok(index)) = (<[u8; 8]>::try_from(rest), <[u8; 8]>::try_from(v)) else {
                return false;
            };
            found = Some((u64::from_be_bytes(ver), u64::from_be_bytes(index)));
            version.is_none()
        })?;
        Ok(found.filter(|(v, _)| version.is_none_or(|want| *v == want)))
    }

    /// The leaf index of `identifier` at `version`, integrated or not.
    pub fn index_of(&self, identifier: &Identifier, version: u64) -> Result<Option<u64>, LogError> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(identifier.to_string(), version))
            .copied();
        if pending.is_some() {
            return Ok(pending);
        }
        Ok(self.leaf_of(identifier, Some(version))?.map(|(_, i)| i))
    }

    /// The leaf at `index` (any index the store holds).
    pub fn leaf(&self, index: u64) -> Result<Option<Vec<u8>>, LogError> {
        let mut found = None;
        self.store.log_entries(index, &mut |i, leaf| {
            if i == index {
                found = Some(leaf.to_vec());
            }
            false
        })?;
        Ok(found)
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub fn inclusion(&self, index: u64, size: u64) -> Result<Vec<Hash>, LogError> {
        self.within(size)?;
        Ok(merkle::inclusion_proof(
            index,
            size,
            &Stored(self.store.as_ref()),
        )?)
    }

    /// The consistency proof from the tree of `old` leaves to `new`.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Vec<Hash>, LogError> {
        self.within(new)?;
        Ok(merkle::consistency_proof(
            old,
            new,
            &Stored(self.store.as_ref()),
        )?)
    }

    /// The root of the tree of `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, LogError> {
        self.within(size)?;
        Ok(merkle::tree_hash(size, &Stored(self.store.as_ref()))?)
    }

    fn within(&self, size: u64) -> Result<(), LogError> {
        let latest = self.latest.borrow().size;
        if size > latest {
            return Err(LogError::Beyond {
                asked: size,
                size: latest,
            });
        }
        Ok(())
    }

    /// A hash tile's bytes, when the latest checkpoint holds it whole.
    pub fn tile(&self, tile: &Tile) -> Result<Option<Vec<u8>>, LogError> {
        let size = self.latest.borrow().size;
        let level = u32::from(tile.level) * 8;
        // Hashes at `level` that the tree holds: complete subtrees only.
        let available = size.checked_shr(level).unwrap_or(0);
        let first = tile.index.saturating_mul(256);
        let width = u64::from(tile.width);
        if first.saturating_add(width) > available {
            return Ok(None);
        }
        let Ok(level) = u8::try_from(level) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(tile.width as usize * 32);
        let mut next = first;
        self.store
            .scan_rows(HASHES, &hash_key(level, first), &mut |k, v| {
                if k != hash_key(level, next) || next >= first + width {
                    return false;
                }
                out.extend_from_slice(v);
                next += 1;
                next < first + width
            })?;
        if next != first + width {
            return Err(LogError::Tlog(TlogError::MissingHash {
                level,
                index: next,
            }));
        }
        Ok(Some(out))
    }

    /// An entry bundle's bytes, when the latest checkpoint holds it whole.
    pub fn bundle(&self, index: u64, width: u16) -> Result<Option<Vec<u8>>, LogError> {
        let size = self.latest.borrow().size;
        let first = index.saturating_mul(256);
        let end = first.saturating_add(u64::from(width));
        if end > size {
            return Ok(None);
        }
        let mut leaves = Vec::with_capacity(usize::from(width));
        self.store.log_entries(first, &mut |i, leaf| {
            if i < end {
                leaves.push(leaf.to_vec());
            }
            i + 1 < end
        })?;
        let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
        Ok(Some(super::tile::entry_bundle(&refs)?))
    }
}

/// Gives every stored record a leaf when the log was never started on this
/// store (a store written before the log existed), in identifier order and
/// in chunks. Nothing else writes while a node opens, so a seeding cut
/// short by a crash resumes after the last record it logged.
fn seed(store: &dyn Store) -> Result<(), LogError> {
    let size = store.log_size()?;
    let mut after: Option<String> = None;
    if size > 0 {
        let mut last = None;
        store.log_entries(size - 1, &mut |_, leaf| {
            last = Some(leaf.to_vec());
            false
        })?;
        if let Some(leaf) = last {
            let (id, _) = super::entry::identity(&leaf).map_err(|e| LogError::Leaf {
                index: size - 1,
                reason: e.to_string(),
            })?;
            after = Some(id);
        }
    }
    let mut leaves = Vec::new();
    store.for_each_record(&mut |r| {
        let id = r.record().identifier.to_string();
        if after.as_ref().is_none_or(|a| id.as_str() > a.as_str()) {
            let private = crate::registry::is_private(r.record().identifier.class());
            leaves.push(super::entry::leaf(&r, private));
        }
        Ok(())
    })?;
    if leaves.is_empty() {
        return Ok(());
    }
    tracing::info!(
        records = leaves.len(),
        "starting the log with the stored records"
    );
    for chunk in leaves.chunks(PER_ROUND) {
        store.write(WriteBatch {
            leaves: chunk.to_vec(),
            ..WriteBatch::default()
        })?;
    }
    Ok(())
}

/// Wakes the integrator after each commit.
impl Observer for Log {
    fn committed(&self, _records: &[SignedRecord]) {}

    fn logged(&self, records: &[SignedRecord], first_leaf: u64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (r, index) in records.iter().zip(first_leaf..) {
            let rec = r.record();
            pending.insert((rec.identifier.to_string(), rec.version), index);
        }
        drop(pending);
        self.wake.notify_one();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::ident::identifier::{Class, Prefix, Serial};
    use crate::ident::record::{Record, RecordStatus};
    use crate::store::memory::MemoryStore;

    fn record(key: &NodeKey, serial: u64) -> SignedRecord {
        Record {
            identifier: Identifier::new(
                Prefix::parse("86").unwrap(),
                Class::Gc,
                Serial::new(serial).unwrap(),
            ),
            owner: None,
            version: 1,
            status: RecordStatus::Active,
            issuer: key.public().key_id(),
            created: 1_800_000_000,
            updated: 1_800_000_000,
            values: Vec::new(),
        }
        .sign(key)
        .unwrap()
    }

    fn logged(store: &dyn Store) -> Vec<String> {
        let mut ids = Vec::new();
        store
            .log_entries(0, &mut |_, leaf| {
                ids.push(super::super::entry::identity(leaf).unwrap().0);
                true
            })
            .unwrap();
        ids
    }

    #[test]
    fn a_store_from_before_the_log_gets_a_leaf_per_record_once_even_after_a_cut_short_start() {
        let key = NodeKey::generate().unwrap();
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let records: Vec<SignedRecord> = (1..=5).map(|i| record(&key, i)).collect();
        store
            .write(WriteBatch {
                records: records.clone(),
                ..WriteBatch::default()
            })
            .unwrap();
        // A first start that logged two records, then stopped.
        let mut ids: Vec<String> = records
            .iter()
            .map(|r| r.record().identifier.to_string())
            .collect();
        ids.sort();
        let by_id = |id: &str| {
            records
                .iter()
                .find(|r| r.record().identifier.to_string() == id)
                .unwrap()
        };
        store
            .write(WriteBatch {
                leaves: ids[..2]
                    .iter()
                    .map(|id| super::super::entry::leaf(by_id(id), false))
                    .collect(),
                ..WriteBatch::default()
            })
            .unwrap();
        let log = Log::open(store.clone(), &key, "86.cpid.internal/log").unwrap();
        assert_eq!(logged(store.as_ref()), ids, "each record once, in order");
        assert_eq!(log.integrate().unwrap(), 5);
        // Opened again: nothing more is seeded, the checkpoint reloads.
        let again = Log::open(store.clone(), &key, "86.cpid.internal/log").unwrap();
        assert_eq!(again.latest().size, 5);
        assert_eq!(store.log_size().unwrap(), 5);
        // Another origin is refused.
        assert!(matches!(
            Log::open(store, &key, "86.cpid.internal/log/2"),
            Err(LogError::Origin { .. })
        ));
    }
}
