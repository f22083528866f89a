//! The one commit path: every change is one plan, one store batch with its
//! nonce and extra rows, published and observed after the durable commit.

use std::sync::{Arc, Mutex};

use cpid::ident::identifier::{Class, Identifier, Serial};
use cpid::ident::record::{RecordStatus, SignedRecord};
use cpid::node::Node;
use cpid::registry::{Change, Observer, Plan, RegistryError, Step};
use cpid::store::{Nonce, Row, StoreError, Table};

use crate::common::*;

const LEAVES: Table = Table::new("test_leaves");

fn open(dir: &std::path::Path) -> Node {
    Node::open(config_in(dir)).unwrap()
}

fn new_resource(node: &Node, n: u64) -> cpid::registry::NewRecord {
    cpid::testkit::seed::synthetic(node.registry.prefix(), n, cpid::clock::system_now()).unwrap()
}

fn nonce(key: &str) -> Nonce {
    Nonce {
        key: key.into(),
        expires: cpid::clock::system_now() + 600,
        answer: String::new(),
    }
}

#[derive(Default)]
struct Seen(Mutex<Vec<Identifier>>);

impl Observer for Seen {
    fn committed(&self, records: &[SignedRecord]) {
        let mut seen = self.0.lock().unwrap();
        seen.extend(records.iter().map(|r| r.record().identifier.clone()));
    }
}

#[test]
fn extra_rows_commit_with_the_records_and_a_replay_refuses_both() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let reg = &node.registry;
    let plan = Plan {
        steps: vec![Step::Issue(new_resource(&node, 1))],
        nonce: Some(nonce("k/one")),
        rows: vec![Row {
            table: LEAVES,
            key: 7u64.to_be_bytes().to_vec(),
            value: b"leaf seven".to_vec(),
        }],
    };
    let committed = reg.commit(plan).unwrap();
    let first = committed.first().unwrap();
    assert_eq!(
        reg.store().row(LEAVES, &7u64.to_be_bytes()).unwrap(),
        Some(b"leaf seven".to_vec())
    );
    assert_eq!(
        reg.store().nonce_answer("k/one").unwrap().as_deref(),
        Some(first.record().identifier.to_string().as_str()),
        "the nonce remembers what its request made"
    );

    let before = reg.store().len().unwrap();
    let replay = Plan {
        steps: vec![Step::Issue(new_resource(&node, 2))],
        nonce: Some(nonce("k/one")),
        rows: vec![Row {
            table: LEAVES,
            key: 8u64.to_be_bytes().to_vec(),
            value: b"leaf eight".to_vec(),
        }],
    };
    let err = reg.commit(replay).unwrap_err();
    assert!(
        matches!(err, RegistryError::Store(StoreError::Replay(_))),
        "{err}"
    );
    assert_eq!(reg.store().len().unwrap(), before, "no record");
    assert_eq!(reg.store().row(LEAVES, &8u64.to_be_bytes()).unwrap(), None);

    // Rows survive a restart and scan in key order within their table.
    drop(node);
    let node = open(dir.path());
    let mut keys = Vec::new();
    node.registry
        .store()
        .scan_rows(LEAVES, &[], &mut |k, _| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
    assert_eq!(keys, vec![7u64.to_be_bytes().to_vec()]);
}

#[test]
fn every_kind_of_change_reaches_the_observers_after_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let reg = &node.registry;
    let seen = Arc::new(Seen::default());
    reg.observe(seen.clone());

    let issued = reg.issue(new_resource(&node, 1)).unwrap();
    let id = issued.record().identifier.clone();
    let updated = reg.update(&id, issued.record().values.clone()).unwrap();
    assert!(served(&node).contains(&updated.as_bytes().to_vec()));
    assert!(!served(&node).contains(&issued.as_bytes().to_vec()));
    reg.set_status(&id, RecordStatus::Active).unwrap();
    let at = Identifier::new(reg.prefix().clone(), Class::Gc, Serial::new(1_000).unwrap());
    reg.issue_at(at.clone(), None, issued.record().values.clone())
        .unwrap();
    let withdrawn = reg.withdraw(&id).unwrap();
    assert_eq!(withdrawn.record().version, 4);

    let seen = seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![id.clone(), id.clone(), id.clone(), at, id.clone()]
    );
    // A withdrawn identifier is no longer served; the one issued at a
    // fixed code is.
    let name = id.to_dns_name(reg.apex());
    let name = name.trim_end_matches('.');
    assert!(!reg.zone().records().iter().any(|(owner, _, _, _)| {
        owner
            .to_string()
            .trim_end_matches('.')
            .eq_ignore_ascii_case(name)
    }));
    assert_eq!(served(&node).len(), 1);
}

/// The signed records the hot tier serves.
fn served(node: &Node) -> Vec<Vec<u8>> {
    node.registry
        .zone()
        .records()
        .into_iter()
        .filter(|(_, t, _, _)| *t == cpid::dns::wire::rtype::CPREC)
        .map(|(_, _, _, rdata)| rdata)
        .collect()
}

#[test]
fn a_plan_that_changes_one_record_twice_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let reg = &node.registry;
    let issued = reg.issue(new_resource(&node, 1)).unwrap();
    let id = issued.record().identifier.clone();
    let plan = Plan {
        steps: vec![
            Step::Change {
                id: id.clone(),
                change: Change::Values(issued.record().values.clone()),
            },
            Step::Change {
                id: id.clone(),
                change: Change::Withdraw,
            },
        ],
        ..Plan::default()
    };
    let err = reg.commit(plan).unwrap_err();
    assert!(
        matches!(err, RegistryError::TwiceInPlan(ref x) if *x == id),
        "{err}"
    );
    assert_eq!(reg.get(&id).unwrap().unwrap().record().version, 1);
    assert!(matches!(
        reg.commit(Plan::default()).unwrap_err(),
        RegistryError::EmptyPlan
    ));
}

#[test]
fn imports_skip_what_is_held_and_refuse_other_keys_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let reg = &node.registry;
    let issued = reg.issue(new_resource(&node, 1)).unwrap();
    let serial = reg.store().zone_serial().unwrap();
    assert!(
        !reg.import(issued.clone()).unwrap(),
        "same version: unchanged"
    );
    assert_eq!(reg.store().zone_serial().unwrap(), serial);

    let other_dir = tempfile::tempdir().unwrap();
    let other = open(other_dir.path());
    let foreign = other.registry.issue(new_resource(&other, 5)).unwrap();
    let err = reg.import(foreign.clone()).unwrap_err();
    assert!(matches!(err, RegistryError::ForeignIssuer(_)), "{err}");
    assert!(reg.get(&foreign.record().identifier).unwrap().is_none());
    assert_eq!(reg.store().zone_serial().unwrap(), serial);
}
