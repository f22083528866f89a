//! Data-quality verification through a running node: the fault data set of
//! `capacity::faults` (clean resources over the 31 provinces, and faulty
//! ones each carrying one injected fault of every kind) is registered and
//! reported over HTTP by several providers, with stale, never-reported,
//! replayed and foreign reports added; `GET /v1/quality` must then name
//! every fault with its reason code and nothing on the clean part.
//!
//!     cargo bench --bench quality -- [--clean N] [--seed S]
//!
//! Prints, per reason, how many were injected, caught with that reason,
//! missed, and caught under another reason; and the findings on clean
//! resources. Exits non-zero unless every fault is caught exactly.

// A benchmark is a test harness: it stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cpid::api::client::ApiClient;
use cpid::capacity::faults::{Sample, dataset};
use cpid::capacity::quality::Reason;
use cpid::config::{Config, Policy};
use cpid::ident::keys::NodeKey;
use cpid::node::Node;
use serde_json::{Value, json};

const PROVIDERS: usize = 8;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Provider {
    key: NodeKey,
    seq: u64,
}

impl Provider {
    fn report(&mut self, api: &ApiClient, interval: u32, items: &[Value]) -> u16 {
        let mut status = 200;
        for chunk in items.chunks(1000) {
            self.seq += 1;
            let body = json!({"agent": "bench", "seq": self.seq, "interval_secs": interval,
                              "resources": chunk});
            let r = api
                .signed("POST", "/v1/reports", Some(&body), &self.key)
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text);
            status = r.status;
        }
        status
    }
}

fn status_item(id: &str, s: &Sample) -> Value {
    let (available, in_use, utilization) = s.status;
    let mut v = json!({"id": id, "units_available": available, "units_in_use": in_use,
                       "health": "ok"});
    if let Some(u) = utilization {
        v["utilization"] = json!(u);
    }
    v
}

fn main() {
    let n_clean = arg("--clean", 2000) as usize;
    let seed = arg("--seed", 7);
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.node.data_dir = dir.path().to_path_buf();
    config.dns.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.registration.policy = Policy::Open;
    config.capacity.min_interval_secs = 1;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let node = Node::open(config).unwrap();
    let running = rt.block_on(node.serve()).unwrap();
    let api = ApiClient::new(&format!("http://{}", running.http_addr()));
    let started = Instant::now();

    let mut providers: Vec<Provider> = (0..PROVIDERS)
        .map(|i| {
            let key = NodeKey::generate().unwrap();
            let body = json!({"name": format!("bench provider {i}"),
                "organisation": format!("ORG-{i}"), "contact": "noc@p.example",
                "region": "31", "public_key": key.public().to_public_pem()});
            let r = api
                .signed("POST", "/v1/providers", Some(&body), &key)
                .unwrap();
            assert_eq!(r.status, 201, "{}", r.text);
            Provider { key, seq: 0 }
        })
        .collect();

    let set = dataset(n_clean, seed);
    // Every sample registered by a provider in turn; expected reasons by
    // the identifier the node issued.
    let mut expected: BTreeMap<String, Option<Reason>> = BTreeMap::new();
    let mut refused_at_door: Vec<(Reason, String)> = Vec::new();
    let mut items: Vec<Vec<Value>> = vec![Vec::new(); PROVIDERS];
    let labelled = set
        .clean
        .iter()
        .map(|s| (s, None))
        .chain(set.faulty.iter().map(|(s, r)| (s, Some(*r))));
    for (i, (sample, reason)) in labelled.enumerate() {
        let p = i % PROVIDERS;
        let mut values = vec![json!({"type": "CP.RESOURCE",
            "data": serde_json::to_string(&sample.descriptor).unwrap()})];
        if let Some(url) = &sample.endpoint {
            values.push(json!({"type": "CP.ENDPOINT", "data": url}));
        }
        let body = json!({"class": sample.descriptor.class, "values": values});
        let r = api
            .signed("POST", "/v1/identifiers", Some(&body), &providers[p].key)
            .unwrap();
        match r.status {
            201 => {
                let id = r.body["identifier"].as_str().unwrap().to_string();
                items[p].push(status_item(&id, sample));
                expected.insert(id, reason);
            }
            // An impossible descriptor never gets in: refused with the
            // pointer of the field, which is the finding made at the door.
            422 => refused_at_door.push((
                reason.unwrap_or_else(|| panic!("a clean sample was refused: {}", r.text)),
                r.body["pointer"].as_str().unwrap_or("").to_string(),
            )),
            other => panic!("registration answered {other}: {}", r.text),
        }
    }
    for (p, batch) in items.iter().enumerate() {
        providers[p].report(&api, 60, batch);
    }

    // Status that ages: three resources never reported (unknown), three
    // reported every second and then silent (stale after 3 s).
    let extra = |p: &Provider, n: usize| -> Vec<String> {
        (0..n)
            .map(|_| {
                let pool = r#"{"schema":"cpid.resource/1","class":"IC","region":"11","unit":"card","units_total":8,"devices":[{"model":"H20","count":8,"peak_tflops":{"fp32":44,"tf32":74,"bf16":148,"fp16":148,"fp8":296,"int8":296}}]}"#;
                let body = json!({"class": "IC", "values": [{"type": "CP.RESOURCE", "data": pool}]});
                let r = api
                    .signed("POST", "/v1/identifiers", Some(&body), &p.key)
                    .unwrap();
                assert_eq!(r.status, 201, "{}", r.text);
                r.body["identifier"].as_str().unwrap().to_string()
            })
            .collect()
    };
    for id in extra(&providers[0], 3) {
        expected.insert(id, Some(Reason::Unknown));
    }
    let stale = extra(&providers[1], 3);
    let stale_items: Vec<Value> = stale
        .iter()
        .map(|id| json!({"id": id, "units_available": 1, "units_in_use": 0, "health": "ok"}))
        .collect();
    providers[1].report(&api, 1, &stale_items);
    let stale_from = Instant::now();
    for id in stale {
        expected.insert(id, Some(Reason::Stale));
    }
    // A sequence going backwards (10, then 2) and a report naming another
    // provider's resource: both refused, both events against the sender.
    providers[2].seq = 9;
    providers[2].report(&api, 60, &items[2][..1]);
    let replay = json!({"agent": "bench", "seq": 2, "interval_secs": 60,
                        "resources": [items[2][0].clone()]});
    let r = api
        .signed("POST", "/v1/reports", Some(&replay), &providers[2].key)
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.text);
    let foreign = json!({"agent": "other", "seq": 1, "interval_secs": 60,
                         "resources": [items[3][0].clone()]});
    let r = api
        .signed("POST", "/v1/reports", Some(&foreign), &providers[4].key)
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);

    // Read while the silent ones are stale: between 3 and 4 of their
    // one-second intervals (whole seconds), so poll for it.
    let stale_ids: Vec<String> = expected
        .iter()
        .filter(|(_, r)| **r == Some(Reason::Stale))
        .map(|(id, _)| id.clone())
        .collect();
    let (q, read_ms) = loop {
        let took = Instant::now();
        let q = api.get("/v1/quality").unwrap();
        let read_ms = took.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(q.status, 200, "{}", q.text);
        let all_stale = stale_ids.iter().all(|id| {
            q.body["providers"].as_array().unwrap().iter().any(|p| {
                p["findings"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["id"] == id.as_str() && f["reason"] == "stale")
            })
        });
        if all_stale || stale_from.elapsed() > Duration::from_secs(8) {
            break (q, read_ms);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut events: BTreeSet<String> = BTreeSet::new();
    for p in q.body["providers"].as_array().unwrap() {
        for f in p["findings"].as_array().unwrap() {
            found
                .entry(f["id"].as_str().unwrap().to_string())
                .or_default()
                .insert(f["reason"].as_str().unwrap().to_string());
        }
        for e in p["events"].as_array().unwrap() {
            events.insert(e["reason"].as_str().unwrap().to_string());
        }
    }

    // (injected, caught with its reason, missed, caught otherwise)
    let mut table: BTreeMap<&'static str, (usize, usize, usize, usize)> = BTreeMap::new();
    let mut clean_with_findings = 0;
    let mut clean = 0;
    for (id, reason) in &expected {
        let got = found.get(id).cloned().unwrap_or_default();
        match reason {
            None => {
                clean += 1;
                if !got.is_empty() {
                    clean_with_findings += 1;
                    eprintln!("finding on clean {id}: {got:?}");
                }
            }
            Some(r) => {
                let row = table.entry(r.as_str()).or_default();
                row.0 += 1;
                let want = BTreeSet::from([r.as_str().to_string()]);
                if got == want {
                    row.1 += 1;
                } else if got.is_empty() {
                    row.2 += 1;
                    eprintln!("missed {r} on {id}");
                } else {
                    row.3 += 1;
                    eprintln!("{id}: injected {r}, found {got:?}");
                }
            }
        }
    }
    for (reason, pointer) in &refused_at_door {
        let row = table.entry(reason.as_str()).or_default();
        row.0 += 1;
        if *reason == Reason::PueOutOfRange && pointer == "/pue" {
            row.1 += 1;
        } else {
            row.3 += 1;
        }
    }
    for r in [Reason::SequenceBackwards, Reason::NotOwner] {
        let row = table.entry(r.as_str()).or_default();
        row.0 += 1;
        if events.contains(r.as_str()) {
            row.1 += 1;
        } else {
            row.2 += 1;
        }
    }

    println!(
        "data quality through a node: {} resources ({clean} clean), {} providers, seed {seed}",
        expected.len() + refused_at_door.len(),
        PROVIDERS
    );
    println!(
        "{:<26} {:>8} {:>8} {:>7} {:>11}",
        "reason", "injected", "caught", "missed", "other code"
    );
    let (mut all, mut right) = (0, 0);
    for (reason, (n, ok, missed, other)) in &table {
        println!("{reason:<26} {n:>8} {ok:>8} {missed:>7} {other:>11}");
        all += n;
        right += ok;
    }
    println!(
        "caught with the right code: {right} of {all} ({:.1} %); findings on clean resources: {clean_with_findings} of {clean}",
        100.0 * right as f64 / all.max(1) as f64
    );
    println!(
        "pue_out_of_range is refused at registration (422, pointer /pue); GET /v1/quality read in {read_ms:.1} ms; run {:.1} s",
        started.elapsed().as_secs_f64()
    );
    rt.block_on(running.shutdown()).unwrap();
    if right != all || clean_with_findings != 0 {
        std::process::exit(1);
    }
}
