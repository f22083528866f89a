//! The `Store` contract, written once (`store/contract.rs`) and run against
//! every backend, the way rustls runs one API test module against every
//! crypto provider: `store::redb::*` and `store::memory::*` are the same
//! tests. A new backend gets a module here with an `open` and the same
//! `include!`; a new contract test goes into `store/contract.rs` and so
//! runs against every backend at once.
//!
//! What only a file can show — reopening, group commit, a damaged file —
//! stays with redb, below its contract tests.

use std::sync::Arc;

use cpid::clock::Clock;
use cpid::ident::identifier::{Class, Identifier, Prefix, Serial};
use cpid::ident::keys::NodeKey;
use cpid::ident::record::{Record, RecordStatus, SignedRecord, Value, ValueType};
use cpid::store::memory::MemoryStore;
use cpid::store::redb::{Options, RedbStore};
use cpid::store::{Expect, Nonce, Row, Store, StoreError, Table, WriteBatch};

/// Where every manual clock starts (an ordinary present-day time).
const T0: u64 = 1_800_000_000;

/// A store under test, with what keeps it alive and the clock it obeys.
pub struct Under {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    /// The directory of a file-backed store.
    _dir: Option<tempfile::TempDir>,
}

fn record_in(key: &NodeKey, prefix: &str, class: Class, serial: u64, version: u64) -> SignedRecord {
    Record {
        identifier: Identifier::new(
            Prefix::parse(prefix).unwrap(),
            class,
            Serial::new(serial).unwrap(),
        ),
        owner: None,
        version,
        status: RecordStatus::Active,
        issuer: key.public().key_id(),
        created: 1,
        updated: version,
        values: vec![Value {
            index: 1,
            kind: ValueType::parse("DESC").unwrap(),
            data: format!("v{version}"),
            ttl: 0,
            timestamp: version,
        }],
    }
    .sign(key)
    .unwrap()
}

fn record(key: &NodeKey, serial: u64, version: u64) -> SignedRecord {
    record_in(key, "86.31", Class::Gc, serial, version)
}

/// A batch of records the zone serves (it moves the zone serial).
fn records_only(records: Vec<SignedRecord>) -> WriteBatch {
    WriteBatch {
        records,
        publishes: true,
        ..WriteBatch::default()
    }
}

/// A nonce that lives `secs` past `clock`'s present.
fn nonce(clock: &Clock, key: &str, secs: u64, answer: &str) -> Nonce {
    Nonce {
        key: key.into(),
        expires: clock.now() + secs,
        answer: answer.into(),
    }
}

mod memory {
    use super::*;

    fn open(clock: Clock) -> Under {
        Under {
            store: Arc::new(MemoryStore::with_clock(clock.clone())),
            clock,
            _dir: None,
        }
    }

    include!("store/contract.rs");
}

mod redb {
    use super::*;

    fn open_at(path: &std::path::Path, clock: Clock) -> RedbStore {
        RedbStore::open_with(
            path,
            Options {
                clock,
                ..Options::default()
            },
        )
        .unwrap()
    }

    fn open(clock: Clock) -> Under {
        let dir = tempfile::tempdir().unwrap();
        Under {
            store: Arc::new(open_at(&dir.path().join("cpid.redb"), clock.clone())),
            clock,
            _dir: Some(dir),
        }
    }

    include!("store/contract.rs");

    // --- What only a file can show. ---

    #[test]
    fn records_marks_and_nonces_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpid.redb");
        let clock = Clock::manual(T0);
        let key = NodeKey::generate().unwrap();
        let p = Prefix::parse("86.31").unwrap();
        let r1 = record(&key, 1, 1);
        {
            let store = open_at(&path, clock.clone());
            store
                .write(WriteBatch {
                    records: vec![r1.clone()],
                    serials: vec![(p.clone(), Class::Gc, 5)],
                    nonces: vec![nonce(&clock, "k/n1", 600, "what-it-made")],
                    leaves: vec![b"first".to_vec()],
                    ..WriteBatch::default()
                })
                .unwrap();
        }
        let store = open_at(&path, clock.clone());
        assert_eq!(
            store
                .get(&r1.record().identifier)
                .unwrap()
                .unwrap()
                .encode(),
            r1.encode(),
            "byte-identical after a reopen"
        );
        assert_eq!(store.serial(&p, Class::Gc).unwrap(), 5);
        assert_eq!(store.len().unwrap(), 1);
        assert_eq!(store.log_size().unwrap(), 1, "the log survives a reopen");
        assert_eq!(
            store.nonce_answer("k/n1").unwrap().as_deref(),
            Some("what-it-made"),
            "the answer survives a reopen"
        );
        // A replay after the reopen is refused and changes nothing.
        let err = store
            .write(WriteBatch {
                records: vec![record(&key, 3, 1)],
                serials: vec![(p.clone(), Class::Gc, 50)],
                nonces: vec![nonce(&clock, "k/n1", 600, "second")],
                ..WriteBatch::default()
            })
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Replay(ref k) if k == "k/n1"),
            "{err}"
        );
        assert_eq!(store.len().unwrap(), 1);
        assert_eq!(store.serial(&p, Class::Gc).unwrap(), 5);
        // Expiry is judged by the clock of whoever reopens the file.
        drop(store);
        clock.advance(601);
        let store = open_at(&path, clock.clone());
        assert!(!store.nonce_used("k/n1").unwrap());
    }

    #[test]
    fn concurrent_writers_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("cpid.redb")).unwrap());
        let key = Arc::new(NodeKey::generate().unwrap());
        let (threads, per_thread) = (32, 20);
        std::thread::scope(|s| {
            for t in 0..threads {
                let (store, key) = (store.clone(), key.clone());
                s.spawn(move || {
                    for i in 0..per_thread {
                        let r = record(&key, 1 + t * per_thread + i, 1);
                        store.write(records_only(vec![r])).unwrap();
                    }
                });
            }
        });
        let writes = threads * per_thread;
        assert_eq!(store.len().unwrap(), writes);
        let commits = store.commits();
        assert!(
            commits < writes,
            "{commits} commits for {writes} writes: no group commit"
        );
    }

    #[test]
    fn a_corrupt_stored_record_is_reported_not_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpid.redb");
        let key = NodeKey::generate().unwrap();
        let r = record(&key, 7, 1);
        {
            let store = RedbStore::open(&path).unwrap();
            store.write(records_only(vec![r.clone()])).unwrap();
        }
        // Damage the value in place (the signature bytes, last in the value).
        {
            let db = ::redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let table: ::redb::TableDefinition<&str, &[u8]> =
                    ::redb::TableDefinition::new("records");
                let mut t = txn.open_table(table).unwrap();
                let mut bytes = r.encode();
                bytes.truncate(bytes.len() - 1);
                t.insert(r.record().identifier.to_string().as_str(), bytes.as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let store = RedbStore::open(&path).unwrap();
        assert!(matches!(
            store.get(&r.record().identifier),
            Err(StoreError::Corrupt { .. })
        ));
        assert!(matches!(store.records(), Err(StoreError::Corrupt { .. })));
        // A newer version of a corrupt record is refused as corrupt too,
        // never written over a record whose version cannot be read.
        assert!(matches!(
            store.write(records_only(vec![record(&key, 7, 2)])),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
