// The `Store` contract, included by every backend module of
// `tests/integration/store.rs`, which supplies `open(clock) -> Under`.
// (Plain comments: an included file cannot carry `//!`.)

#[test]
fn an_empty_store_reads_as_empty() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    assert!(u.store.is_empty().unwrap());
    assert_eq!(u.store.len().unwrap(), 0);
    assert!(
        u.store
            .get(&record(&key, 1, 1).record().identifier)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        u.store
            .serial(&Prefix::parse("86.31").unwrap(), Class::Gc)
            .unwrap(),
        0
    );
    assert_eq!(u.store.zone_serial().unwrap(), 0);
    assert!(u.store.records().unwrap().is_empty());
    assert_eq!(u.store.nonce_answer("k/n").unwrap(), None);
}

#[test]
fn a_lower_serial_mark_is_ignored_never_applied() {
    let u = open(Clock::manual(T0));
    let p = Prefix::parse("86.31").unwrap();
    let mark = |m| WriteBatch {
        serials: vec![(p.clone(), Class::Gc, m)],
        ..WriteBatch::default()
    };
    u.store.write(mark(5)).unwrap();
    u.store.write(mark(3)).unwrap();
    assert_eq!(u.store.serial(&p, Class::Gc).unwrap(), 5);
    u.store.write(mark(6)).unwrap();
    assert_eq!(u.store.serial(&p, Class::Gc).unwrap(), 6);
    assert_eq!(u.store.serial(&p, Class::Ic).unwrap(), 0, "per class");
}

#[test]
fn a_stale_version_is_refused_and_its_batch_changes_nothing() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let p = Prefix::parse("86.31").unwrap();
    let r1 = record(&key, 1, 1);
    u.store
        .write(WriteBatch {
            records: vec![r1.clone()],
            serials: vec![(p.clone(), Class::Gc, 5)],
            nonces: vec![],
            ..WriteBatch::default()
        })
        .unwrap();
    let zone = u.store.zone_serial().unwrap();
    // An equal version, with a new record, a higher mark and a nonce
    // beside it: none of them lands.
    let err = u
        .store
        .write(WriteBatch {
            records: vec![record(&key, 2, 1), record(&key, 1, 1)],
            serials: vec![(p.clone(), Class::Gc, 9)],
            nonces: vec![nonce(&u.clock, "k/stale", 600, "x")],
            ..WriteBatch::default()
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
    assert_eq!(u.store.serial(&p, Class::Gc).unwrap(), 5);
    assert_eq!(u.store.get(&r1.record().identifier).unwrap().unwrap(), r1);
    assert!(
        u.store
            .get(&record(&key, 2, 1).record().identifier)
            .unwrap()
            .is_none()
    );
    assert!(!u.store.nonce_used("k/stale").unwrap());
    assert_eq!(u.store.len().unwrap(), 1);
    assert_eq!(u.store.zone_serial().unwrap(), zone, "nothing changed");
    // A lower version is refused the same way.
    u.store.write(records_only(vec![record(&key, 1, 3)])).unwrap();
    let err = u
        .store
        .write(records_only(vec![record(&key, 1, 2)]))
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict {
                stored: 3,
                offered: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn one_batch_cannot_carry_two_copies_of_one_version() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let err = u
        .store
        .write(records_only(vec![record(&key, 1, 1), record(&key, 1, 1)]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert!(u.store.is_empty().unwrap());
    // Growing versions in one batch are fine; the last one stays.
    let last = record(&key, 1, 2);
    u.store
        .write(records_only(vec![record(&key, 1, 1), last.clone()]))
        .unwrap();
    assert_eq!(u.store.get(&last.record().identifier).unwrap().unwrap(), last);
}

#[test]
fn a_newer_version_replaces_the_record_byte_for_byte() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let r1 = record(&key, 1, 1);
    u.store.write(records_only(vec![r1.clone()])).unwrap();
    assert_eq!(
        u.store.get(&r1.record().identifier).unwrap().unwrap().encode(),
        r1.encode()
    );
    let r2 = record(&key, 1, 2);
    u.store.write(records_only(vec![r2.clone()])).unwrap();
    let back = u.store.get(&r1.record().identifier).unwrap().unwrap();
    assert_eq!(back.encode(), r2.encode());
    back.verify(&key.public()).unwrap();
    assert_eq!(u.store.len().unwrap(), 1);
}

#[test]
fn a_nonce_is_consumed_once_with_its_change() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let p = Prefix::parse("86.31").unwrap();
    u.store
        .write(WriteBatch {
            records: vec![record(&key, 2, 1)],
            nonces: vec![nonce(&u.clock, "k/n1", 600, "what-it-made")],
            ..WriteBatch::default()
        })
        .unwrap();
    assert!(u.store.nonce_used("k/n1").unwrap());
    assert_eq!(
        u.store.nonce_answer("k/n1").unwrap().as_deref(),
        Some("what-it-made")
    );
    assert!(!u.store.nonce_used("other/n1").unwrap(), "scoped by key");
    // The same nonce again is refused with everything in its batch.
    let err = u
        .store
        .write(WriteBatch {
            records: vec![record(&key, 3, 1)],
            serials: vec![(p.clone(), Class::Gc, 50)],
            nonces: vec![nonce(&u.clock, "k/n1", 600, "second")],
            ..WriteBatch::default()
        })
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Replay(ref k) if k == "k/n1"),
        "{err}"
    );
    assert!(
        u.store
            .get(&record(&key, 3, 1).record().identifier)
            .unwrap()
            .is_none()
    );
    assert_eq!(u.store.serial(&p, Class::Gc).unwrap(), 0);
    assert_eq!(
        u.store.nonce_answer("k/n1").unwrap().as_deref(),
        Some("what-it-made"),
        "the first answer stays"
    );
}

#[test]
fn a_nonce_expired_before_its_commit_is_refused_with_its_batch() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let err = u
        .store
        .write(WriteBatch {
            records: vec![record(&key, 4, 1)],
            nonces: vec![Nonce {
                key: "k/old".into(),
                expires: u.clock.now() - 1,
                ..Nonce::default()
            }],
            ..WriteBatch::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::StaleNonce(ref k) if k == "k/old"), "{err}");
    assert!(u.store.is_empty().unwrap());
    assert!(!u.store.nonce_used("k/old").unwrap());
    // Expiring exactly now still counts as live (the window is inclusive).
    u.store
        .write(WriteBatch {
            nonces: vec![nonce(&u.clock, "k/edge", 0, "edge")],
            ..WriteBatch::default()
        })
        .unwrap();
    assert!(u.store.nonce_used("k/edge").unwrap());
}

#[test]
fn a_nonce_stops_counting_when_the_store_clock_passes_its_expiry() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    u.store
        .write(WriteBatch {
            records: vec![record(&key, 1, 1)],
            nonces: vec![nonce(&u.clock, "k/n", 600, "first")],
            ..WriteBatch::default()
        })
        .unwrap();
    u.clock.advance(600);
    assert!(u.store.nonce_used("k/n").unwrap(), "alive through its expiry");
    u.clock.advance(1);
    // No sleep: the store asks its clock.
    assert!(!u.store.nonce_used("k/n").unwrap());
    assert_eq!(u.store.nonce_answer("k/n").unwrap(), None);
    // Its window over, the key may be consumed again (and pruned meanwhile
    // by this very commit without losing the new consumption).
    u.store
        .write(WriteBatch {
            records: vec![record(&key, 2, 1)],
            nonces: vec![nonce(&u.clock, "k/n", 600, "second")],
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(u.store.nonce_answer("k/n").unwrap().as_deref(), Some("second"));
    // A later commit prunes nothing that still lives.
    u.store.write(records_only(vec![record(&key, 3, 1)])).unwrap();
    assert_eq!(u.store.nonce_answer("k/n").unwrap().as_deref(), Some("second"));
    let err = u
        .store
        .write(WriteBatch {
            nonces: vec![nonce(&u.clock, "k/n", 600, "third")],
            ..WriteBatch::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Replay(_)), "{err}");
}

#[test]
fn the_zone_serial_grows_with_every_change_and_only_then() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let p = Prefix::parse("86.31").unwrap();
    let z0 = u.store.zone_serial().unwrap();
    let w1 = u.store.write(records_only(vec![record(&key, 1, 1)])).unwrap();
    let z1 = u.store.zone_serial().unwrap();
    assert!(z1 > z0);
    assert_eq!(w1.serial, Some(z1), "the batch is told the serial it made");
    let w2 = u.store.write(records_only(vec![record(&key, 2, 1)])).unwrap();
    let z2 = u.store.zone_serial().unwrap();
    assert!(z2 > z1, "every publishing batch gets a serial of its own");
    assert_eq!(w2.serial, Some(z2));
    // No change the zone serves: a serial mark, records DNS does not show,
    // a lower mark, a refused batch, a nonce alone.
    for batch in [
        WriteBatch {
            serials: vec![(p.clone(), Class::Gc, 7)],
            ..WriteBatch::default()
        },
        WriteBatch {
            records: vec![record(&key, 3, 1)],
            publishes: false,
            ..WriteBatch::default()
        },
        WriteBatch {
            serials: vec![(p.clone(), Class::Gc, 2)],
            ..WriteBatch::default()
        },
        WriteBatch {
            nonces: vec![nonce(&u.clock, "k/n", 600, "")],
            ..WriteBatch::default()
        },
    ] {
        let w = u.store.write(batch).unwrap();
        assert_eq!(w.serial, None);
    }
    let _ = u.store.write(records_only(vec![record(&key, 1, 1)]));
    assert_eq!(u.store.zone_serial().unwrap(), z2);
}

#[test]
fn done_callbacks_run_one_at_a_time_in_commit_order() {
    // The registry publishes each batch to the hot tier in its `done`
    // callback: a secondary must never see a serial whose content is not
    // complete, so callbacks must follow the serials, one at a time.
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let (store, key, seen, busy, tx) =
                (&u.store, &key, seen.clone(), busy.clone(), tx.clone());
            s.spawn(move || {
                for i in 0..25u64 {
                    let (seen, busy, tx) = (seen.clone(), busy.clone(), tx.clone());
                    store.submit(
                        records_only(vec![record(key, 1 + t * 100 + i, 1)]),
                        Box::new(move |r| {
                            let overlapping = busy.swap(true, std::sync::atomic::Ordering::SeqCst);
                            std::thread::yield_now();
                            seen.lock().unwrap().push(r.unwrap().serial.unwrap());
                            busy.store(false, std::sync::atomic::Ordering::SeqCst);
                            tx.send(overlapping).unwrap();
                        }),
                    );
                }
            });
        }
    });
    drop(tx);
    let overlaps = rx.iter().filter(|o| *o).count();
    assert_eq!(overlaps, 0, "done callbacks ran concurrently");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 200);
    assert!(
        seen.windows(2).all(|w| w[1] > w[0]),
        "serials in callback order must strictly grow: {seen:?}"
    );
    assert_eq!(*seen.last().unwrap(), u.store.zone_serial().unwrap());
}

#[test]
fn records_come_in_canonical_identifier_order_from_one_snapshot() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let written = vec![
        record_in(&key, "86.31", Class::Ic, 2, 1),
        record_in(&key, "86.31.1005", Class::Gc, 1, 1),
        record_in(&key, "86.31", Class::Gc, 40, 1),
        record_in(&key, "86.31", Class::Gc, 3, 1),
        record_in(&key, "86", Class::Pv, 1, 1),
    ];
    for r in &written {
        u.store.write(records_only(vec![r.clone()])).unwrap();
    }
    let mut expected: Vec<String> = written
        .iter()
        .map(|r| r.record().identifier.to_string())
        .collect();
    expected.sort();
    let mut seen = Vec::new();
    let late = record(&key, 99, 1);
    u.store
        .for_each_record(&mut |r| {
            if seen.is_empty() {
                // A write while walking commits, and the walk does not see it.
                u.store.write(records_only(vec![late.clone()]))?;
            }
            seen.push(r.record().identifier.to_string());
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, expected);
    assert_eq!(u.store.len().unwrap(), 6);
    assert!(u.store.get(&late.record().identifier).unwrap().is_some());
    let all: Vec<String> = u
        .store
        .records()
        .unwrap()
        .iter()
        .map(|r| r.record().identifier.to_string())
        .collect();
    assert_eq!(all.len(), 6);
    assert!(all.is_sorted());
    // An error from `f` stops the walk and comes back unchanged.
    let mut calls = 0;
    let err = u
        .store
        .for_each_record(&mut |_| {
            calls += 1;
            Err(StoreError::Closed)
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Closed), "{err}");
    assert_eq!(calls, 1);
}

#[test]
fn submit_answers_every_batch_once_and_a_refused_batch_fails_alone() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    u.store.write(records_only(vec![record(&key, 1, 5)])).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Submitted back to back so a batching backend can put them in one
    // commit: the stale one fails, the others land.
    for (i, r) in [record(&key, 2, 1), record(&key, 1, 5), record(&key, 3, 1)]
        .into_iter()
        .enumerate()
    {
        let tx = tx.clone();
        u.store.submit(
            records_only(vec![r]),
            Box::new(move |outcome| tx.send((i, outcome)).unwrap()),
        );
    }
    drop(tx);
    let mut outcomes: Vec<_> = rx.iter().collect();
    outcomes.sort_by_key(|(i, _)| *i);
    assert_eq!(outcomes.len(), 3, "each `done` called exactly once");
    assert!(outcomes[0].1.is_ok());
    assert!(matches!(outcomes[1].1, Err(StoreError::Conflict { .. })));
    assert!(outcomes[2].1.is_ok());
    assert_eq!(u.store.len().unwrap(), 3);
}

#[test]
fn write_async_resolves_with_the_outcome() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        cpid::store::write_async(u.store.as_ref(), records_only(vec![record(&key, 1, 1)]))
            .await
            .unwrap();
        let err =
            cpid::store::write_async(u.store.as_ref(), records_only(vec![record(&key, 1, 1)]))
                .await
                .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    });
    assert_eq!(u.store.len().unwrap(), 1);
}

#[test]
fn concurrent_writers_every_write_lands() {
    let u = open(Clock::manual(T0));
    let key = Arc::new(NodeKey::generate().unwrap());
    let (threads, per_thread) = (16, 10);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (store, key) = (u.store.clone(), key.clone());
            s.spawn(move || {
                for i in 0..per_thread {
                    let r = record(&key, 1 + t * per_thread + i, 1);
                    store.write(records_only(vec![r])).unwrap();
                }
            });
        }
    });
    assert_eq!(u.store.len().unwrap(), threads * per_thread);
    // Every record reads back and verifies.
    for r in u.store.records().unwrap() {
        r.verify(&key.public()).unwrap();
    }
}

#[test]
fn rows_commit_with_their_batch_and_scan_in_key_order_within_their_table() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    const LEAVES: Table = Table::new("contract_leaves");
    const OTHER: Table = Table::new("contract_other");
    let row = |table, k: u64, v: &str| Row {
        table,
        key: k.to_be_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    };
    let z0 = u.store.zone_serial().unwrap();
    u.store
        .write(WriteBatch {
            rows: vec![
                row(LEAVES, 3, "c"),
                row(LEAVES, 1, "a"),
                row(OTHER, 0, "elsewhere"),
                row(LEAVES, 2, "b"),
            ],
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(u.store.zone_serial().unwrap(), z0, "rows alone are no zone change");
    assert_eq!(
        u.store.row(LEAVES, &1u64.to_be_bytes()).unwrap().as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(u.store.row(LEAVES, &0u64.to_be_bytes()).unwrap(), None, "per table");
    // A row written again is replaced.
    u.store
        .write(WriteBatch {
            rows: vec![row(LEAVES, 2, "b2")],
            ..WriteBatch::default()
        })
        .unwrap();
    let scan = |start: u64, stop_after: usize| {
        let mut seen = Vec::new();
        u.store
            .scan_rows(LEAVES, &start.to_be_bytes(), &mut |k, v| {
                seen.push((k.to_vec(), String::from_utf8(v.to_vec()).unwrap()));
                seen.len() < stop_after
            })
            .unwrap();
        seen
    };
    let all = scan(0, usize::MAX);
    assert_eq!(
        all,
        vec![
            (1u64.to_be_bytes().to_vec(), "a".to_string()),
            (2u64.to_be_bytes().to_vec(), "b2".to_string()),
            (3u64.to_be_bytes().to_vec(), "c".to_string()),
        ],
        "key order, this table only"
    );
    assert_eq!(scan(2, usize::MAX).len(), 2, "from the start key on");
    assert_eq!(scan(0, 1).len(), 1, "stops when told");
    // A refused batch's rows do not land.
    u.store.write(records_only(vec![record(&key, 1, 1)])).unwrap();
    let err = u
        .store
        .write(WriteBatch {
            records: vec![record(&key, 1, 1)],
            rows: vec![row(LEAVES, 9, "never")],
            ..WriteBatch::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(u.store.row(LEAVES, &9u64.to_be_bytes()).unwrap(), None);
}

#[test]
fn an_expected_row_guards_its_batch_like_a_generation_check() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    const CAL: Table = Table::new("contract_calendar");
    let set = |v: &str| Row {
        table: CAL,
        key: b"r".to_vec(),
        value: v.as_bytes().to_vec(),
    };
    let expect = |v: Option<&str>| Expect {
        table: CAL,
        key: b"r".to_vec(),
        value: v.map(|v| v.as_bytes().to_vec()),
    };
    // Absent is a state to expect.
    u.store
        .write(WriteBatch {
            rows: vec![set("g1")],
            expect: vec![expect(None)],
            ..WriteBatch::default()
        })
        .unwrap();
    // A writer that read before that write loses, whole: its record and
    // nonce do not land either.
    let err = u
        .store
        .write(WriteBatch {
            records: vec![record(&key, 1, 1)],
            nonces: vec![nonce(&u.clock, "k/late", 600, "")],
            rows: vec![set("g1-late")],
            expect: vec![expect(None)],
            ..WriteBatch::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::RowChanged { .. }), "{err}");
    assert_eq!(u.store.len().unwrap(), 0);
    assert!(!u.store.nonce_used("k/late").unwrap());
    assert_eq!(u.store.row(CAL, b"r").unwrap().as_deref(), Some(&b"g1"[..]));
    // Two writers that read the same state, submitted back to back so a
    // batching backend judges them in one commit: exactly one lands.
    let (tx, rx) = std::sync::mpsc::channel();
    for v in ["g2-a", "g2-b"] {
        let tx = tx.clone();
        u.store.submit(
            WriteBatch {
                rows: vec![set(v)],
                expect: vec![expect(Some("g1"))],
                ..WriteBatch::default()
            },
            Box::new(move |outcome| tx.send(outcome).unwrap()),
        );
    }
    drop(tx);
    let outcomes: Vec<_> = rx.iter().collect();
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1);
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, Err(StoreError::RowChanged { .. })))
    );
    let now = u.store.row(CAL, b"r").unwrap().unwrap();
    assert!(now == b"g2-a" || now == b"g2-b");
}

#[test]
fn log_leaves_append_at_consecutive_indices_and_a_refused_batch_appends_none() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    assert_eq!(u.store.log_size().unwrap(), 0);
    let with_leaves = |r: SignedRecord, leaves: &[&[u8]]| WriteBatch {
        records: vec![r],
        leaves: leaves.iter().map(|l| l.to_vec()).collect(),
        ..WriteBatch::default()
    };
    let w = u
        .store
        .write(with_leaves(record(&key, 1, 1), &[b"a", b"b"]))
        .unwrap();
    assert_eq!(w.leaves, 0..2);
    // Refused (stale version): no leaf, the log does not move.
    let err = u
        .store
        .write(with_leaves(record(&key, 1, 1), &[b"stale"]))
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
    assert_eq!(u.store.log_size().unwrap(), 2);
    // Back to back so a batching backend shares one commit: indices still
    // follow the order the batches were accepted in, without gaps.
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, r) in [record(&key, 2, 1), record(&key, 1, 1), record(&key, 3, 1)]
        .into_iter()
        .enumerate()
    {
        let tx = tx.clone();
        let leaf = format!("leaf {i}").into_bytes();
        u.store.submit(
            WriteBatch {
                records: vec![r],
                leaves: vec![leaf],
                ..WriteBatch::default()
            },
            Box::new(move |outcome| tx.send((i, outcome)).unwrap()),
        );
    }
    drop(tx);
    let mut outcomes: Vec<_> = rx.iter().collect();
    outcomes.sort_by_key(|(i, _)| *i);
    assert_eq!(outcomes[0].1.as_ref().unwrap().leaves, 2..3);
    assert!(outcomes[1].1.is_err());
    assert_eq!(outcomes[2].1.as_ref().unwrap().leaves, 3..4);
    assert_eq!(u.store.log_size().unwrap(), 4);
    let mut seen = Vec::new();
    u.store
        .log_entries(1, &mut |i, leaf| {
            seen.push((i, leaf.to_vec()));
            true
        })
        .unwrap();
    assert_eq!(
        seen,
        vec![
            (1, b"b".to_vec()),
            (2, b"leaf 0".to_vec()),
            (3, b"leaf 2".to_vec())
        ]
    );
    // The scan stops when asked.
    let mut count = 0;
    u.store
        .log_entries(0, &mut |_, _| {
            count += 1;
            false
        })
        .unwrap();
    assert_eq!(count, 1);
    // A batch without leaves reports an empty range.
    let w = u.store.write(records_only(vec![record(&key, 9, 1)])).unwrap();
    assert!(w.leaves.is_empty());
    assert_eq!(u.store.log_size().unwrap(), 4);
}

/// A backup of `u` opened as the redb store a restored node would open.
fn open_backup(u: &Under, path: &std::path::Path) -> RedbStore {
    RedbStore::open_with(
        path,
        Options {
            clock: u.clock.clone(),
            ..Options::default()
        },
    )
    .unwrap()
}

#[test]
fn a_backup_holds_every_table_and_opens_as_a_redb_store_that_goes_on() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    let p = Prefix::parse("86.31").unwrap();
    const STATUS: Table = Table::new("contract_backup_status");
    const OTHER: Table = Table::new("contract_backup_other");
    let row = |table, k: &str, v: &str| Row {
        table,
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
    };
    u.store
        .write(WriteBatch {
            records: vec![record(&key, 1, 1), record(&key, 2, 1)],
            serials: vec![(p.clone(), Class::Gc, 7)],
            nonces: vec![nonce(&u.clock, "k/n1", 600, "86.31/GC-000001")],
            rows: vec![row(STATUS, "a", "1"), row(OTHER, "b", "2")],
            leaves: vec![b"l0".to_vec(), b"l1".to_vec()],
            publishes: true,
            ..WriteBatch::default()
        })
        .unwrap();
    u.store
        .write(WriteBatch {
            records: vec![record(&key, 1, 2)],
            rows: vec![row(STATUS, "a", "1b")],
            leaves: vec![b"l2".to_vec()],
            publishes: true,
            ..WriteBatch::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.redb");
    let info = u.store.backup(&out).unwrap();
    assert_eq!(
        (info.records, info.log_size, info.rows, info.nonces),
        (2, 3, 2, 1)
    );
    assert_eq!(info.bytes, std::fs::metadata(&out).unwrap().len());
    let found = cpid::store::redb::verify_file(&out).unwrap();
    assert_eq!(
        (found.records, found.log_size, found.rows, found.nonces),
        (info.records, info.log_size, info.rows, info.nonces),
        "the file holds what the backup said"
    );

    let b = open_backup(&u, &out);
    let bytes = |s: &dyn Store| -> Vec<Vec<u8>> {
        s.records()
            .unwrap()
            .iter()
            .map(|r| r.as_bytes().to_vec())
            .collect()
    };
    assert_eq!(bytes(&b), bytes(u.store.as_ref()), "records byte for byte");
    assert_eq!(b.serial(&p, Class::Gc).unwrap(), 7);
    assert_eq!(b.zone_serial().unwrap(), u.store.zone_serial().unwrap());
    assert_eq!(
        b.nonce_answer("k/n1").unwrap().as_deref(),
        Some("86.31/GC-000001")
    );
    for table in [STATUS, OTHER] {
        let rows = |s: &dyn Store| {
            let mut seen = Vec::new();
            s.scan_rows(table, b"", &mut |k, v| {
                seen.push((k.to_vec(), v.to_vec()));
                true
            })
            .unwrap();
            seen
        };
        assert_eq!(rows(&b), rows(u.store.as_ref()), "{}", table.name());
    }
    let leaves = |s: &dyn Store| {
        let mut seen = Vec::new();
        s.log_entries(0, &mut |i, leaf| {
            seen.push((i, leaf.to_vec()));
            true
        })
        .unwrap();
        seen
    };
    assert_eq!(leaves(&b), leaves(u.store.as_ref()));
    // The restored store goes on where the original was: the nonce is
    // still spent, and the log continues at the next index.
    let err = b
        .write(WriteBatch {
            nonces: vec![nonce(&u.clock, "k/n1", 600, "")],
            ..WriteBatch::default()
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Replay(_)), "{err}");
    let w = b
        .write(WriteBatch {
            records: vec![record(&key, 3, 1)],
            leaves: vec![b"l3".to_vec()],
            publishes: true,
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(w.leaves, 3..4);
    assert!(b.zone_serial().unwrap() > u.store.zone_serial().unwrap());
}

#[test]
fn a_backup_never_overwrites_a_file() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    u.store.write(records_only(vec![record(&key, 1, 1)])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("precious");
    std::fs::write(&out, b"not yours").unwrap();
    let err = u.store.backup(&out).unwrap_err();
    assert!(matches!(err, StoreError::Backup { .. }), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"not yours");
    // An empty store backs up as an empty store.
    let empty = open(Clock::manual(T0));
    let out = dir.path().join("empty.redb");
    let info = empty.store.backup(&out).unwrap();
    assert_eq!((info.records, info.log_size), (0, 0));
    assert!(open_backup(&empty, &out).is_empty().unwrap());
}

#[test]
fn a_backup_taken_while_a_writer_commits_holds_exactly_the_batches_before_it() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    const SIDE: Table = Table::new("contract_backup_side");
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    // One writer, so the batches commit in the order 1, 2, 3 …: each is a
    // record, its leaf (the identifier), its nonce and a row of another
    // table, all or nothing.
    let batch = |clock: &Clock, i: u64| {
        let r = record(&key, i, 1);
        let id = r.record().identifier.to_string();
        WriteBatch {
            records: vec![r],
            nonces: vec![nonce(clock, &format!("k/{i}"), 600, &id)],
            rows: vec![Row {
                table: SIDE,
                key: i.to_be_bytes().to_vec(),
                value: id.clone().into_bytes(),
            }],
            leaves: vec![id.into_bytes()],
            ..WriteBatch::default()
        }
    };
    let writer = {
        let (store, clock, stop, committed) = (
            u.store.clone(),
            u.clock.clone(),
            stop.clone(),
            committed.clone(),
        );
        let batches: Vec<WriteBatch> = (1..=3000).map(|i| batch(&clock, i)).collect();
        std::thread::spawn(move || {
            for (i, b) in (1u64..).zip(batches) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                store.write(b).unwrap();
                committed.store(i, Ordering::SeqCst);
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while committed.load(Ordering::SeqCst) < 20 {
        assert!(std::time::Instant::now() < deadline, "the writer is stuck");
        std::thread::yield_now();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.redb");
    let before = committed.load(Ordering::SeqCst);
    let info = u.store.backup(&out).unwrap();
    let after = committed.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();

    let b = open_backup(&u, &out);
    let n = b.log_size().unwrap();
    assert_eq!(n, info.log_size);
    // Everything acknowledged before the backup began is in it; at most
    // the one batch in flight when it ended is in it unacknowledged.
    assert!(
        before <= n && n <= after + 1,
        "{before} <= {n} <= {after} + 1"
    );
    assert_eq!(b.len().unwrap(), n, "one record per batch, no more");
    assert_eq!(info.records, n);
    // Exactly batches 1..=n, each whole: its record, its nonce (still
    // spent), its row and its leaf at its index.
    let mut leaves = Vec::new();
    b.log_entries(0, &mut |i, leaf| {
        leaves.push((i, String::from_utf8(leaf.to_vec()).unwrap()));
        true
    })
    .unwrap();
    for i in 1..=n {
        let id = record(&key, i, 1).record().identifier.clone();
        assert_eq!(leaves[(i - 1) as usize], (i - 1, id.to_string()));
        assert!(b.get(&id).unwrap().is_some(), "record of batch {i}");
        assert_eq!(
            b.nonce_answer(&format!("k/{i}")).unwrap(),
            Some(id.to_string()),
            "nonce of batch {i}"
        );
        assert_eq!(
            b.row(SIDE, &i.to_be_bytes()).unwrap(),
            Some(id.to_string().into_bytes())
        );
    }
    // Nothing of the batch after.
    let next = record(&key, n + 1, 1).record().identifier.clone();
    assert!(b.get(&next).unwrap().is_none());
    assert!(!b.nonce_used(&format!("k/{}", n + 1)).unwrap());
    assert_eq!(b.row(SIDE, &(n + 1).to_be_bytes()).unwrap(), None);
}

#[test]
fn the_zone_serial_follows_the_clock_and_never_falls_below_a_floor() {
    let u = open(Clock::manual(T0));
    let key = NodeKey::generate().unwrap();
    u.store.write(records_only(vec![record(&key, 1, 1)])).unwrap();
    let z1 = u64::from(u.store.zone_serial().unwrap());
    assert_eq!(z1, T0, "unixtime: the first change takes the time");
    u.store.write(records_only(vec![record(&key, 2, 1)])).unwrap();
    assert_eq!(u64::from(u.store.zone_serial().unwrap()), T0 + 1, "same second: + 1");
    u.clock.advance(100);
    u.store.write(records_only(vec![record(&key, 3, 1)])).unwrap();
    assert_eq!(u64::from(u.store.zone_serial().unwrap()), T0 + 100);
    // An import from a zone whose serial ran ahead of the clock: above it,
    // even with nothing else changing.
    u.store
        .write(WriteBatch {
            serial_floor: Some(T0 + 5000),
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(u64::from(u.store.zone_serial().unwrap()), T0 + 5001);
    // A floor below the serial, with no change: nothing moves.
    u.store
        .write(WriteBatch {
            serial_floor: Some(T0),
            ..WriteBatch::default()
        })
        .unwrap();
    assert_eq!(u64::from(u.store.zone_serial().unwrap()), T0 + 5001);
}
