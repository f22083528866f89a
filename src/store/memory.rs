//! An in-memory [`Store`]: the same contract as [`super::redb`], nothing on
//! disk.
//!
//! It exists to prove the trait is narrow enough for a second backend (the
//! contract tests in `tests/integration/store.rs` run against both) and to
//! give tests and tools a store without a file. "Durable" here means
//! "applied": everything is gone when the store is dropped, so it must never
//! back a node whose acknowledgements are promises.
//!
//! Design: one mutex over the whole state. A submitted batch is judged by
//! the same `super::judge` as redb's, applied under the lock, and
//! answered on the caller's thread once the lock is released, so there is
//! no writer thread and no group commit: each batch is its own commit and,
//! when it changes a record or a serial mark, advances the zone serial by
//! one. Readers copy what they need under the lock;
//! [`Store::for_each_record`] and [`Store::scan_rows`] walk a snapshot, so
//! their callback may use the store. A backup copies the whole state under
//! the lock and writes it, without the lock, in redb's file format (through
//! the same `Filler` redb's own backup uses), so a memory store's backup
//! opens as a [`super::redb::RedbStore`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::{BackupInfo, Done, Lookup, Store, StoreError, Table, WriteBatch, Written};
use crate::clock::Clock;
use crate::ident::identifier::{Class, Identifier, Prefix};
use crate::ident::record::SignedRecord;

/// The store's tables, as maps.
#[derive(Default, Clone)]
struct State {
    /// Canonical identifier text → record; text order, as redb keys them.
    records: BTreeMap<String, SignedRecord>,
    serials: HashMap<(Prefix, Class), u64>,
    /// Kept as u64 like redb's counter; reported wrapped into 32 bits.
    zone_serial: u64,
    /// Consumed nonce key → (expiry, the answer its request produced).
    nonces: HashMap<String, (u64, String)>,
    /// (expiry, nonce key), so a commit finds the expired ones in order.
    expiry: BTreeSet<(u64, String)>,
    /// (table, key) → value: other systems' rows, in redb's key order.
    rows: BTreeMap<(Table, Vec<u8>), Vec<u8>>,
    /// The transparency log's leaves, by index.
    leaves: Vec<Vec<u8>>,
}

impl Lookup for State {
    fn version(&mut self, identifier: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.records.get(identifier).map(|r| r.record().version))
    }

    fn nonce_expires(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.nonces.get(key).map(|(at, _)| *at))
    }

    fn row(&mut self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.rows.get(&(table, key.to_vec())).cloned())
    }
}

impl State {
    /// Applies a batch that `super::judge` passed; cannot fail, so the
    /// batch lands whole.
    fn apply(&mut self, batch: WriteBatch, now: u64) -> Written {
        let moved = super::moves_serial(&batch, self.zone_serial);
        if moved {
            self.zone_serial = super::next_zone_serial(self.zone_serial, now, batch.serial_floor);
        }
        let first = self.leaves.len() as u64;
        self.leaves.extend(batch.leaves);
        let written = Written {
            leaves: first..self.leaves.len() as u64,
            serial: moved.then_some(self.zone_serial as u32),
        };
        for n in batch.nonces {
            self.expiry.insert((n.expires, n.key.clone()));
            self.nonces.insert(n.key, (n.expires, n.answer));
        }
        for r in batch.records {
            self.records.insert(r.record().identifier.to_string(), r);
        }
        // Rows ride along; alone they are not a zone change (as in redb).
        for row in batch.rows {
            self.rows.insert((row.table, row.key), row.value);
        }
        for (prefix, class, mark) in batch.serials {
            let current = self.serials.entry((prefix, class)).or_insert(0);
            if mark > *current {
                *current = mark;
            }
        }
        written
    }

    /// Forgets every nonce whose window has passed by `now`.
    fn prune(&mut self, now: u64) {
        // Everything before (now, "") expired: the same bound as redb's.
        let live = self.expiry.split_off(&(now, String::new()));
        let expired = std::mem::replace(&mut self.expiry, live);
        for (at, key) in expired {
            // A nonce consumed again after expiring carries a later
            // expiry; keep it.
            if self
                .nonces
                .get(&key)
                .is_some_and(|(current, _)| *current == at)
            {
                self.nonces.remove(&key);
            }
        }
    }
}

/// The in-memory store.
pub struct MemoryStore {
    state: Mutex<State>,
    /// Held from commit until `done` returns.
    order: Mutex<()>,
    clock: Clock,
}

impl Default for MemoryStore {
    fn default() -> MemoryStore {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store on the system clock.
    pub fn new() -> MemoryStore {
        MemoryStore::with_clock(Clock::system())
    }

    /// An empty store whose nonce expiry follows `clock`.
    pub fn with_clock(clock: Clock) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State::default()),
            order: Mutex::new(()),
            clock,
        }
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, StoreError> {
        // Poisoned only if a panic interrupted an apply, which leaves a
        // batch half applied: refuse to serve that state.
        self.state.lock().map_err(|_| {
            StoreError::Database("in-memory store poisoned by a panicked writer".into())
        })
    }

    fn commit(&self, batch: WriteBatch) -> Result<Written, StoreError> {
        let mut state = self.state()?;
        let now = self.clock.now();
        let verdict = super::judge(&batch, now, &mut *state)?;
        if let Some(refusal) = verdict {
            return Err(refusal);
        }
        let written = state.apply(batch, now);
        state.prune(now);
        Ok(written)
    }
}

impl Store for MemoryStore {
    fn submit(&self, batch: WriteBatch, done: Done) {
        // The outcome is computed first so the state lock is released
        // before `done` runs: a callback that reads the store must not
        // deadlock. The order lock keeps `done` callbacks in commit order,
        // as redb's one writer thread does.
        let _order = self.order.lock().unwrap_or_else(|e| e.into_inner());
        let outcome = self.commit(batch);
        done(outcome);
    }

    fn get(&self, id: &Identifier) -> Result<Option<SignedRecord>, StoreError> {
        Ok(self.state()?.records.get(&id.to_string()).cloned())
    }

    fn for_each_record(
        &self,
        f: &mut dyn FnMut(SignedRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // A copy taken under the lock: the consistent snapshot redb's read
        // transaction gives, and `f` runs without the lock.
        let snapshot: Vec<SignedRecord> = self.state()?.records.values().cloned().collect();
        for r in snapshot {
            f(r)?;
        }
        Ok(())
    }

    fn serial(&self, prefix: &Prefix, class: Class) -> Result<u64, StoreError> {
        Ok(self
            .state()?
            .serials
            .get(&(prefix.clone(), class))
            .copied()
            .unwrap_or(0))
    }

    fn zone_serial(&self) -> Result<u32, StoreError> {
        // RFC 1982 serial arithmetic: wrap into 32 bits, as redb does.
        Ok(self.state()?.zone_serial as u32)
    }

    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.records.len() as u64)
    }

    fn row(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state()?.rows.get(&(table, key.to_vec())).cloned())
    }

    fn scan_rows(
        &self,
        table: Table,
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // A snapshot of the table from `start` on, as in `for_each_record`;
        // it copies the rest of the table even when `f` stops early, a cost
        // a store for tests can pay.
        let snapshot: Vec<(Vec<u8>, Vec<u8>)> = self
            .state()?
            .rows
            .range((table, start.to_vec())..)
            .take_while(|((t, _), _)| *t == table)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in snapshot {
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }

    fn nonce_answer(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        Ok(self
            .state()?
            .nonces
            .get(key)
            .filter(|(at, _)| super::nonce_live(*at, now))
            .map(|(_, answer)| answer.clone()))
    }

    fn backup(&self, out: &Path) -> Result<BackupInfo, StoreError> {
        // The copy is the moment; the file is written without the lock.
        let snapshot = self.state()?.clone();
        super::redb::write_backup(out, |f| {
            for (key, record) in &snapshot.records {
                f.record(key, record.as_bytes())?;
            }
            for ((prefix, class), mark) in &snapshot.serials {
                f.serial(&super::redb::serial_key(prefix, *class), *mark)?;
            }
            for (key, (expires, answer)) in &snapshot.nonces {
                f.nonce(key, *expires, answer)?;
            }
            for ((table, key), value) in &snapshot.rows {
                f.row(table.name(), key, value)?;
            }
            for (index, leaf) in (0u64..).zip(&snapshot.leaves) {
                f.leaf(index, leaf)?;
            }
            f.zone_serial(snapshot.zone_serial);
            Ok(())
        })
    }

    fn log_size(&self) -> Result<u64, StoreError> {
        Ok(self.state()?.leaves.len() as u64)
    }

    fn log_entries(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        // A snapshot, as in `scan_rows`, so `f` may use the store.
        let snapshot: Vec<Vec<u8>> = {
            let state = self.state()?;
            let from = usize::try_from(start).unwrap_or(usize::MAX);
            state.leaves.get(from..).unwrap_or_default().to_vec()
        };
        for (i, leaf) in (start..).zip(snapshot) {
            if !f(i, &leaf) {
                break;
            }
        }
        Ok(())
    }
}
