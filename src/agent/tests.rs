//! The agent's loop against a fake node.

use std::cell::{Cell, RefCell};
use std::path::Path;

use super::*;
use crate::ident::identifier::{Class, Prefix, Serial};

/// A node in memory: records by tag, the last accepted seq, scripted
/// failures.
#[derive(Default)]
struct Fake {
    owned: RefCell<Vec<OwnedRecord>>,
    registered: RefCell<Vec<String>>,
    /// Every report sent, taken or not.
    sent: RefCell<Vec<ReportBody>>,
    node_seq: Cell<u64>,
    /// Whether a 409 says the node's last seq.
    tells_last_seq: bool,
    /// The next this many calls (any kind) fail as unreachable.
    unreachable: Cell<u32>,
    /// The next report is refused with this status.
    refuse_next: Cell<Option<u16>>,
}

impl Fake {
    fn down(&self) -> Result<(), AgentError> {
        if self.unreachable.get() > 0 {
            self.unreachable.set(self.unreachable.get() - 1);
            return Err(AgentError::Unreachable("connection refused".into()));
        }
        Ok(())
    }

    fn id(n: usize) -> String {
        Identifier::new(
            Prefix::parse("86.31.1005").unwrap(),
            Class::Ic,
            Serial::new(n as u64).unwrap(),
        )
        .to_string()
    }

    fn own(&self, tag: Option<&str>) -> String {
        let id = Fake::id(self.owned.borrow().len() + 1);
        self.owned.borrow_mut().push(OwnedRecord {
            id: id.clone(),
            inventory_tag: tag.map(str::to_string),
        });
        id
    }
}

impl Node for Fake {
    fn owned(&self) -> Result<Vec<OwnedRecord>, AgentError> {
        self.down()?;
        Ok(self.owned.borrow().clone())
    }

    fn register(&self, item: &InventoryItem, tag: &str) -> Result<String, AgentError> {
        self.down()?;
        // What the lead's implementation will send is a valid request.
        let request = issue_request(item, tag).unwrap();
        crate::api::body::values(
            request.values,
            crate::api::body::resource_class(&request.class).unwrap(),
            0,
        )
        .unwrap();
        self.registered.borrow_mut().push(tag.to_string());
        Ok(self.own(Some(tag)))
    }

    fn report(&self, body: &ReportBody) -> Result<(), AgentError> {
        self.down()?;
        self.sent.borrow_mut().push(body.clone());
        if let Some(status) = self.refuse_next.take() {
            return Err(AgentError::Refused {
                status,
                code: "invalid_request".into(),
                reason: "no".into(),
                last_seq: None,
            });
        }
        if body.seq <= self.node_seq.get() {
            return Err(AgentError::Refused {
                status: 409,
                code: "report_out_of_order".into(),
                reason: format!("seq {} is not above {}", body.seq, self.node_seq.get()),
                last_seq: self.tells_last_seq.then(|| self.node_seq.get()),
            });
        }
        self.node_seq.set(body.seq);
        Ok(())
    }
}

const NOW: u64 = 1_800_000_000;

fn inventory(dir: &Path) -> Inventory {
    let text = format!(
        r#"
agent = "dc1-rack7"
interval_secs = 30

[[resource]]
name = "gpu-pool-a"
endpoint = "https://dc1.example.cn/gpu-pool-a"
source = "host"
descriptor = {{ schema = "cpid.resource/1", class = "IC", region = "31", unit = "card", units_total = 2, devices = [{{ model = "A800", count = 2, peak_tflops = {{ fp16 = 312.0 }} }}] }}

[[resource]]
name = "cards-b"
source = "declared"
units_available = 3
descriptor = {{ schema = "cpid.resource/1", class = "IC", region = "31", unit = "card", units_total = 4, devices = [{{ model = "A800", count = 4, peak_tflops = {{ fp16 = 312.0 }} }}] }}

[[resource]]
name = "sched"
source = "file"
status_file = "{}"
descriptor = {{ schema = "cpid.resource/1", class = "IC", region = "31", unit = "node", units_total = 8, devices = [{{ model = "A800", count = 64, peak_tflops = {{ fp16 = 312.0 }} }}] }}
"#,
        dir.join("sched.json").display()
    );
    Inventory::parse(&text, &dir.join("inventory.toml")).unwrap()
}

fn host() -> HostFigures {
    HostFigures {
        cpus: 8,
        load1: Some(1.0),
        memory_total_kib: Some(1000),
        memory_available_kib: Some(500),
        gpus: host::parse_nvidia_smi("0, A800, s0, 50, 80, 1\n1, A800, s1, 0, 80, 1\n"),
    }
}

fn agent(dir: &Path, node: Fake) -> Agent<Fake> {
    Agent::new(inventory(dir), node).unwrap().with_host(host)
}

/// An agent over a state file another agent just let go of: a test
/// elsewhere in this process that spawns a child may hold a copy of the
/// lock's descriptor between fork and exec, so wait that out first.
fn agent_when_free(dir: &Path, node: Fake) -> Agent<Fake> {
    let path = dir.join("inventory.toml.state.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while let Err(e) = super::state::StateFile::open(&path) {
        assert!(std::time::Instant::now() < deadline, "{e}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    agent(dir, node)
}

/// The node of a stopped agent (its state lock released).
fn into_node(a: Agent<Fake>) -> Fake {
    a.node
}

fn write_status(dir: &Path, text: &str) {
    std::fs::write(dir.join("sched.json"), text).unwrap();
}

#[test]
fn reconcile_registers_only_the_items_without_a_tagged_record() {
    let dir = tempfile::tempdir().unwrap();
    let node = Fake::default();
    node.own(None);
    node.own(Some("other-agent/cards-b"));
    let pool = node.own(Some("dc1-rack7/gpu-pool-a"));
    let mut a = agent(dir.path(), node);
    let found = a.reconcile().unwrap();
    assert_eq!(
        *a.node().registered.borrow(),
        ["dc1-rack7/cards-b", "dc1-rack7/sched"]
    );
    assert_eq!(found.len(), 3);
    assert_eq!(found[0], ("gpu-pool-a".to_string(), pool));
    assert_eq!(a.state().ids("dc1-rack7").len(), 3);
    // Nothing is registered twice, by this agent or the next one.
    a.reconcile().unwrap();
    assert_eq!(a.node().registered.borrow().len(), 2);
    let node = into_node(a);
    std::fs::remove_file(dir.path().join("inventory.toml.state.json")).unwrap();
    let mut b = agent_when_free(dir.path(), node);
    assert_eq!(b.reconcile().unwrap(), found);
    assert_eq!(b.node().registered.borrow().len(), 2);
}

#[test]
fn a_refused_registration_leaves_the_item_out_and_an_unreachable_node_stops() {
    let dir = tempfile::tempdir().unwrap();
    struct Refusing(Fake);
    impl Node for Refusing {
        fn owned(&self) -> Result<Vec<OwnedRecord>, AgentError> {
            self.0.owned()
        }
        fn register(&self, item: &InventoryItem, tag: &str) -> Result<String, AgentError> {
            if item.name == "cards-b" {
                return Err(AgentError::Refused {
                    status: 403,
                    code: "provider_not_active".into(),
                    reason: "pending".into(),
                    last_seq: None,
                });
            }
            self.0.register(item, tag)
        }
        fn report(&self, body: &ReportBody) -> Result<(), AgentError> {
            self.0.report(body)
        }
    }
    let mut a = Agent::new(inventory(dir.path()), Refusing(Fake::default())).unwrap();
    let found = a.reconcile().unwrap();
    let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["gpu-pool-a", "sched"]);
    assert!(a.needs_reconcile);

    let dir = tempfile::tempdir().unwrap();
    let node = Fake::default();
    node.unreachable.set(1);
    let mut a = agent(dir.path(), node);
    assert!(matches!(a.reconcile(), Err(AgentError::Unreachable(_))));
    assert!(a.node().registered.borrow().is_empty());
}

#[test]
fn a_report_carries_each_sources_figures() {
    let dir = tempfile::tempdir().unwrap();
    write_status(
        dir.path(),
        r#"{"units_available": 6, "units_in_use": 2, "health": "ok", "utilization": 0.25}"#,
    );
    let mut a = agent(dir.path(), Fake::default());
    let ids: Vec<String> = a
        .reconcile()
        .unwrap()
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let body = a.tick(crate::clock::system_now()).unwrap();
    assert_eq!(body.agent, "dc1-rack7");
    assert_eq!(body.seq, 1);
    assert_eq!(body.interval_secs, 30);
    let r = &body.resources;
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].id, ids[0]);
    assert_eq!((r[0].units_available, r[0].units_in_use), (1, 1));
    assert_eq!(r[0].utilization, Some(0.25));
    assert_eq!((r[1].units_available, r[1].units_in_use), (3, 1));
    assert_eq!(r[1].health, Health::Ok);
    assert_eq!(
        serde_json::to_value(&r[2]).unwrap(),
        serde_json::json!({"id": ids[2], "units_available": 6, "units_in_use": 2,
                           "health": "ok", "utilization": 0.25})
    );
    assert_eq!(*a.node().sent.borrow(), [body]);
}

#[test]
fn an_unreadable_or_stale_status_file_leaves_that_resource_out() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path(), Fake::default());
    a.reconcile().unwrap();
    let now = crate::clock::system_now();
    for bad in [
        "",
        "{",
        r#"{"units_available": 6, "units_in_use": 2, "health": "fine"}"#,
        r#"{"units_available": 6, "units_in_use": 2, "health": "ok", "utilization": 2}"#,
        r#"{"units_available": 6, "units_in_use": 2, "health": "ok", "extra": 1}"#,
    ] {
        write_status(dir.path(), bad);
        assert_eq!(a.tick(now).unwrap().resources.len(), 2, "{bad:?}");
    }
    write_status(
        dir.path(),
        r#"{"units_available": 6, "units_in_use": 2, "health": "down"}"#,
    );
    assert_eq!(a.tick(now).unwrap().resources.len(), 3);
    // Written more than 3 intervals (90 s) ago: left out.
    assert_eq!(a.tick(now + 91).unwrap().resources.len(), 2);
    std::fs::remove_file(dir.path().join("sched.json")).unwrap();
    assert_eq!(a.tick(now).unwrap().resources.len(), 2);
}

#[test]
fn nothing_registered_means_no_report_and_no_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path(), Fake::default());
    assert!(matches!(
        a.tick(NOW),
        Err(AgentError::NothingToReport { .. })
    ));
    assert_eq!(a.state().last_seq("dc1-rack7"), 0);
    assert!(a.node().sent.borrow().is_empty());
}

#[test]
fn seq_strictly_increases_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path(), Fake::default());
    a.reconcile().unwrap();
    let seqs: Vec<u64> = (0..3).map(|_| a.tick(NOW).unwrap().seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    // A send that fails still used its number (it was made durable first).
    a.node().unreachable.set(1);
    assert!(matches!(a.tick(NOW), Err(AgentError::Unreachable(_))));
    let node = into_node(a);
    let mut b = agent(dir.path(), node);
    // No reconcile: the identifiers come from the state file too.
    let body = b.tick(NOW).unwrap();
    assert_eq!(body.seq, 5);
    assert_eq!(body.resources.len(), 2);
    let sent: Vec<u64> = b.node().sent.borrow().iter().map(|r| r.seq).collect();
    assert_eq!(sent, [1, 2, 3, 5]);
}

#[test]
fn out_of_order_moves_past_the_nodes_number_and_retries_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = Fake {
        tells_last_seq: true,
        ..Fake::default()
    };
    node.node_seq.set(100);
    let mut a = agent(dir.path(), node);
    a.reconcile().unwrap();
    let body = a.tick(NOW).unwrap();
    assert_eq!(body.seq, 101);
    let sent: Vec<u64> = a.node().sent.borrow().iter().map(|r| r.seq).collect();
    assert_eq!(sent, [1, 101]);
    assert_eq!(a.tick(NOW).unwrap().seq, 102);

    // A node that does not say its number: the agent jumps to the time.
    let dir = tempfile::tempdir().unwrap();
    let node = Fake::default();
    node.node_seq.set(5000);
    let mut a = agent(dir.path(), node);
    a.reconcile().unwrap();
    assert_eq!(a.tick(NOW).unwrap().seq, NOW + 1);
    assert_eq!(a.state().last_seq("dc1-rack7"), NOW + 1);

    // Refused again: one retry only, the error is returned.
    let dir = tempfile::tempdir().unwrap();
    let node = Fake::default();
    node.node_seq.set(u64::MAX - 1);
    let mut a = agent(dir.path(), node);
    a.reconcile().unwrap();
    assert!(matches!(
        a.tick(NOW),
        Err(AgentError::Refused { status: 409, .. })
    ));
    assert_eq!(a.node().sent.borrow().len(), 2);
}

#[test]
fn backoff_grows_from_one_second_to_the_interval_with_jitter() {
    let mut b = Backoff::new(Duration::from_secs(30));
    let bounds = [(1, 1), (1, 2), (2, 4), (4, 8), (8, 16), (15, 30), (15, 30)];
    for (lo, hi) in bounds {
        let d = b.next_delay();
        assert!(
            d >= Duration::from_secs(lo) && d <= Duration::from_secs(hi),
            "{d:?} not in {lo}..={hi}"
        );
    }
    for _ in 0..100 {
        assert!(b.next_delay() <= Duration::from_secs(30));
    }
    b.reset();
    assert_eq!(b.next_delay(), Duration::from_secs(1));
}

/// Runs the loop until it has waited `waits` times; answers the waits.
fn run_for(a: &mut Agent<Fake>, waits: usize) -> Vec<Duration> {
    let stop = AtomicBool::new(false);
    let mut seen = Vec::new();
    let mut wait = |stop: &AtomicBool, d: Duration| {
        seen.push(d);
        if seen.len() == waits {
            stop.store(true, Ordering::Relaxed);
        }
    };
    a.run_with(&stop, &mut wait, &|| NOW);
    seen
}

#[test]
fn an_unreachable_node_is_retried_with_backoff_then_the_interval_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let node = Fake::default();
    // Down for the listing, then for two reports.
    node.unreachable.set(1);
    let mut a = agent(dir.path(), node);
    let interval = Duration::from_secs(30);
    let first = run_for(&mut a, 1);
    assert_eq!(first, [Duration::from_secs(1)]);
    a.reconcile().unwrap();
    a.node().unreachable.set(2);
    let waits = run_for(&mut a, 4);
    assert_eq!(waits[0], Duration::from_secs(1));
    assert!(waits[1] >= Duration::from_secs(1) && waits[1] <= Duration::from_secs(2));
    for w in &waits[2..] {
        assert!(
            *w <= interval && *w > interval - Duration::from_secs(1),
            "{w:?}"
        );
    }
    let sent: Vec<u64> = a.node().sent.borrow().iter().map(|r| r.seq).collect();
    assert_eq!(sent, [3, 4], "seq 1 and 2 went to a node that was down");
}

#[test]
fn a_refused_report_waits_for_the_next_interval_and_lists_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = agent(dir.path(), Fake::default());
    a.node().refuse_next.set(Some(422));
    let waits = run_for(&mut a, 2);
    let interval = Duration::from_secs(30);
    assert!(waits.iter().all(|w| *w > interval - Duration::from_secs(1)));
    assert_eq!(a.node().sent.borrow().len(), 2);
    assert_eq!(
        a.node().registered.borrow().len(),
        3,
        "listed again, nothing new"
    );
    // A 503 is retried soon, like an unreachable node.
    a.node().refuse_next.set(Some(503));
    let waits = run_for(&mut a, 1);
    assert_eq!(waits, [Duration::from_secs(1)]);
}

#[test]
fn the_report_body_is_the_nodes_json() {
    let body: ReportBody = serde_json::from_str(
        r#"{"agent": "dc1-rack7", "seq": 42, "interval_secs": 30,
            "resources": [{"id": "86.31.1005/IC-000001-4", "units_available": 6,
                           "units_in_use": 2, "health": "ok", "utilization": 0.25}]}"#,
    )
    .unwrap();
    assert_eq!(body.resources[0].health, Health::Ok);
    let back = serde_json::to_value(&body).unwrap();
    assert_eq!(back["resources"][0]["utilization"], 0.25);
    let mut bare = body.clone();
    bare.resources[0].utilization = None;
    assert!(
        !serde_json::to_string(&bare)
            .unwrap()
            .contains("utilization")
    );
    assert!(
        serde_json::from_str::<ReportBody>(
            r#"{"agent":"a","seq":1,"interval_secs":5,"resources":[],"x":1}"#
        )
        .is_err()
    );
}

#[test]
fn the_registration_carries_descriptor_endpoint_and_tag() {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path());
    let r = issue_request(&inv.items[0], "dc1-rack7/gpu-pool-a").unwrap();
    assert_eq!(r.class, "IC");
    let kinds: Vec<&str> = r.values.iter().map(|v| v.kind.as_str()).collect();
    assert_eq!(kinds, ["CP.RESOURCE", "URL", "CP.INVENTORY"]);
    assert_eq!(r.values[2].data, "dc1-rack7/gpu-pool-a");
    let values = crate::api::body::values(r.values, Class::Ic, 7).unwrap();
    let record = Record {
        identifier: Identifier::parse(&Fake::id(1)).unwrap(),
        owner: None,
        version: 1,
        status: crate::ident::record::RecordStatus::Active,
        issuer: crate::ident::keys::NodeKey::generate()
            .unwrap()
            .public()
            .key_id(),
        created: 7,
        updated: 7,
        values,
    };
    assert_eq!(
        OwnedRecord::from_record(&record),
        OwnedRecord {
            id: Fake::id(1),
            inventory_tag: Some("dc1-rack7/gpu-pool-a".into())
        }
    );
}
