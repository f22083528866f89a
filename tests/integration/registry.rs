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
        ..Plan::default()
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
        ..Plan::default()
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
fn a_plan_that_only_moves_the_serial_moves_the_served_serial() {
    // What the node's re-signing task commits so that secondaries transfer
    // fresh signatures before theirs grow old.
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let reg = &node.registry;
    reg.issue(new_resource(&node, 1)).unwrap();
    let before = reg.zone().serial();
    let plan = Plan {
        serial_floor: Some(u64::from(before)),
        ..Plan::default()
    };
    reg.commit(plan).unwrap();
    let after = reg.zone().serial();
    assert!(after > before, "{before} → {after}");
    assert_eq!(after, reg.store().zone_serial().unwrap());
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

#[test]
fn unsigned_toml_entries_obey_the_api_value_rules_and_change_nothing_when_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let reg = &node.registry;
    let good = "[[record]]\nclass = \"IC\"\n[[record.value]]\nindex = 1\ntype = \"DESC\"\ndata = \"pool\"\n";
    for (bad, why) in [
        (
            "[[record]]\nclass = \"PV\"\n[[record.value]]\nindex = 300\ntype = \"HS_PUBKEY\"\ndata = \"x\"\n",
            "a reserved index and type",
        ),
        (
            "[[record]]\nclass = \"IC\"\n[[record.value]]\nindex = 1\ntype = \"HS_PUBKEY\"\ndata = \"x\"\n",
            "a node-written type",
        ),
        (
            "[[record]]\nclass = \"IC\"\n[[record.value]]\nindex = 1\ntype = \"CP.RESOURCE\"\ndata = \"not json\"\n",
            "a descriptor that is not JSON",
        ),
        (
            "[[record]]\nclass = \"IC\"\n[[record.value]]\nindex = 1\ntype = \"CP.RESOURCE\"\ndata = '{\"accelerator\":\"A800\",\"count\":8}'\n",
            "a descriptor off the capacity standard",
        ),
        (
            "[[record]]\nclass = \"TX\"\n[[record.value]]\nindex = 1\ntype = \"DESC\"\ndata = \"deal\"\n",
            "a transaction",
        ),
        (
            "[[record]]\nclass = \"US\"\n[[record.value]]\nindex = 1\ntype = \"DESC\"\ndata = \"buyer\"\n",
            "a buyer",
        ),
    ] {
        let text = format!("{good}{bad}");
        let err = cpid::registry::zonefile::import(reg, &text).unwrap_err();
        assert!(
            err.to_string().starts_with("record 2:"),
            "{why}: refused at the bad entry: {err}"
        );
        if why.contains("capacity standard") {
            assert!(
                err.to_string().contains("/accelerator"),
                "{why}: the pointer: {err}"
            );
        }
        assert_eq!(reg.store().len().unwrap(), 0, "{why}: nothing stored");
    }
    let report = cpid::registry::zonefile::import(reg, good).unwrap();
    assert_eq!(report.issued, 1);
}

#[test]
fn a_signed_master_file_brings_back_node_written_values() {
    let dir = tempfile::tempdir().unwrap();
    let node = open(dir.path());
    let key = cpid::ident::keys::NodeKey::generate().unwrap();
    let pv = node
        .registry
        .issue(cpid::registry::NewRecord {
            prefix: None,
            class: Class::Pv,
            owner: None,
            values: vec![cpid::ident::record::Value {
                index: cpid::ident::values::HS_PUBKEY_INDEX,
                kind: cpid::ident::record::ValueType::parse(cpid::ident::values::HS_PUBKEY)
                    .unwrap(),
                data: key.public().to_public_pem(),
                ttl: 0,
                timestamp: 1,
            }],
            status: RecordStatus::Active,
        })
        .unwrap();
    let mut master = Vec::new();
    cpid::registry::zonefile::export(node.registry.zone(), &mut master).unwrap();
    let exported_serial = node.registry.zone().serial();
    let key_file = node.config.key_file();
    drop(node);

    // A new store with the same node key takes the signed records back.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(&key_file, fresh.path().join(key_file.file_name().unwrap())).unwrap();
    let node = open(fresh.path());
    assert_eq!(node.config.key_file().file_name(), key_file.file_name());
    let report =
        cpid::registry::zonefile::import(&node.registry, &String::from_utf8(master).unwrap())
            .unwrap();
    assert_eq!(report.issued, 1);
    // The rebuilt zone's serial is above the exported one (RFC 1982), so
    // secondaries of the old zone take the new.
    let serial = node.registry.zone().serial();
    assert!(
        serial.wrapping_sub(exported_serial) as i32 > 0,
        "{serial} after {exported_serial}"
    );
    let back = node.registry.get(&pv.record().identifier).unwrap().unwrap();
    assert_eq!(back.as_bytes(), pv.as_bytes());
    assert_eq!(
        node.registry
            .provider_key(&key.public().key_id())
            .map(|p| p.provider),
        Some(pv.record().identifier.clone())
    );
}

#[test]
fn the_node_clock_stamps_records_and_expires_nonces() {
    let dir = tempfile::tempdir().unwrap();
    let clock = cpid::clock::Clock::manual(2_000_000_000);
    let node = Node::open_with_clock(config_in(dir.path()), clock.clone()).unwrap();
    let plan = Plan::one(
        Step::Issue(new_resource(&node, 1)),
        Some(Nonce {
            key: "k/n".into(),
            expires: 2_000_000_100,
            answer: String::new(),
        }),
    );
    let issued = node.registry.commit(plan).unwrap().first().unwrap();
    assert_eq!(issued.record().created, 2_000_000_000);
    assert!(node.registry.store().nonce_used("k/n").unwrap());
    clock.advance(101);
    assert!(!node.registry.store().nonce_used("k/n").unwrap());
    let updated = node
        .registry
        .update(&issued.record().identifier, issued.record().values.clone())
        .unwrap();
    assert_eq!(updated.record().updated, 2_000_000_101);
}
