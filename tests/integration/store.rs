//! The `Store` contract, written once and run against every backend (today:
//! redb): durability across reopen, atomic batches, serial marks that never
//! go down, stale versions refused, and group commit under concurrency.

use std::sync::Arc;

use cpid::ident::identifier::{Class, Identifier, Prefix, Serial};
use cpid::ident::keys::NodeKey;
use cpid::ident::record::{Record, RecordStatus, SignedRecord, Value, ValueType};
use cpid::store::redb::RedbStore;
use cpid::store::{Nonce, Store, StoreError, WriteBatch};

fn record(key: &NodeKey, serial: u64, version: u64) -> SignedRecord {
    Record {
        identifier: Identifier::new(
            Prefix::parse("86.31").unwrap(),
            Class::Gc,
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

/// Every backend runs the same checks; `open` reopens the same storage.
fn contract(open: &dyn Fn() -> Arc<dyn Store>) {
    let key = NodeKey::generate().unwrap();
    let p = Prefix::parse("86.31").unwrap();
    let r1 = record(&key, 1, 1);
    {
        let store = open();
        store
            .write(WriteBatch {
                records: vec![r1.clone()],
                serials: vec![(p.clone(), Class::Gc, 5)],
                nonces: vec![],
                rows: Vec::new(),
            })
            .unwrap();
        // A lower mark is ignored, never applied.
        store
            .write(WriteBatch {
                records: vec![],
                serials: vec![(p.clone(), Class::Gc, 3)],
                nonces: vec![],
                rows: Vec::new(),
            })
            .unwrap();
        assert_eq!(store.serial(&p, Class::Gc).unwrap(), 5);

        // A stale version is refused and changes nothing, including the
        // serial mark in the same batch.
        let err = store
            .write(WriteBatch {
                records: vec![record(&key, 1, 1)],
                serials: vec![(p.clone(), Class::Gc, 9)],
                nonces: vec![],
                rows: Vec::new(),
            })
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Conflict {
                    stored: 1,
                    offered: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(store.serial(&p, Class::Gc).unwrap(), 5);
        assert_eq!(store.get(&r1.record().identifier).unwrap().unwrap(), r1);

        // A nonce is consumed once, together with the change it carries.
        let nonce = |key: &str| Nonce {
            key: key.into(),
            expires: cpid::clock::system_now() + 600,
            answer: "what-it-made".into(),
        };
        store
            .write(WriteBatch {
                records: vec![record(&key, 2, 1)],
                nonces: vec![nonce("k/n1")],
                rows: Vec::new(),
                ..WriteBatch::default()
            })
            .unwrap();
        assert!(store.nonce_used("k/n1").unwrap());
        assert!(!store.nonce_used("other/n1").unwrap(), "scoped by key");
    }
    {
        // After reopening, the same nonce is refused and its batch changes
        // nothing; an expired nonce no longer counts.
        let store = open();
        assert!(store.nonce_used("k/n1").unwrap());
        assert_eq!(
            store.nonce_answer("k/n1").unwrap().as_deref(),
            Some("what-it-made"),
            "the answer survives a reopen"
        );
        let err = store
            .write(WriteBatch {
                records: vec![record(&key, 3, 1)],
                serials: vec![(p.clone(), Class::Gc, 50)],
                nonces: vec![Nonce {
                    key: "k/n1".into(),
                    expires: cpid::clock::system_now() + 600,
                    answer: "second".into(),
                }],
                rows: Vec::new(),
            })
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Replay(ref k) if k == "k/n1"),
            "{err}"
        );
        assert!(
            store
                .get(&record(&key, 3, 1).record().identifier)
                .unwrap()
                .is_none()
        );
        assert_eq!(store.serial(&p, Class::Gc).unwrap(), 5);
        // A nonce whose window passed before the commit is refused with
        // its batch, never stored and pruned in the same transaction.
        let err = store
            .write(WriteBatch {
                records: vec![record(&key, 4, 1)],
                nonces: vec![Nonce {
                    key: "k/old".into(),
                    expires: cpid::clock::system_now() - 1,
                    ..Nonce::default()
                }],
                ..WriteBatch::default()
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::StaleNonce(_)), "{err}");
        assert!(
            store
                .get(&record(&key, 4, 1).record().identifier)
                .unwrap()
                .is_none()
        );
        assert!(!store.nonce_used("k/old").unwrap());
    }
    // Reopened: byte-identical.
    let store = open();
    let back = store.get(&r1.record().identifier).unwrap().unwrap();
    assert_eq!(back.encode(), r1.encode());
    assert_eq!(store.serial(&p, Class::Gc).unwrap(), 5);
    // r1 and the record that consumed nonce k/n1.
    assert_eq!(store.len().unwrap(), 2);

    // A newer version replaces it.
    let r2 = record(&key, 1, 2);
    store
        .write(WriteBatch {
            records: vec![r2.clone()],
            serials: vec![],
            nonces: vec![],
            rows: Vec::new(),
        })
        .unwrap();
    assert_eq!(store.get(&r1.record().identifier).unwrap().unwrap(), r2);
}

#[test]
fn redb_store_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpid.redb");
    contract(&|| Arc::new(RedbStore::open(&path).unwrap()) as Arc<dyn Store>);
}

#[test]
fn concurrent_writers_share_commits_and_every_write_lands() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(&dir.path().join("cpid.redb")).unwrap());
    let key = Arc::new(NodeKey::generate().unwrap());
    let threads = 32;
    let per_thread = 20;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, key) = (store.clone(), key.clone());
            s.spawn(move || {
                for i in 0..per_thread {
                    let r = record(&key, 1 + t * per_thread + i, 1);
                    store
                        .write(WriteBatch {
                            records: vec![r],
                            serials: vec![],
                            nonces: vec![],
                            rows: Vec::new(),
                        })
                        .unwrap();
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
    // Every record reads back and verifies.
    for r in store.records().unwrap() {
        r.verify(&key.public()).unwrap();
    }
}

#[test]
fn a_corrupt_stored_record_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cpid.redb");
    let key = NodeKey::generate().unwrap();
    let r = record(&key, 7, 1);
    {
        let store = RedbStore::open(&path).unwrap();
        store
            .write(WriteBatch {
                records: vec![r.clone()],
                serials: vec![],
                nonces: vec![],
                rows: Vec::new(),
            })
            .unwrap();
    }
    // Damage the value in place (the signature bytes, last in the value).
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("records");
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
}
