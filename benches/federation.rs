//! Cold-path latency of a three-level resolution on loopback.
//!
//! Starts the demo federation (national, Shanghai, industry node, gateway)
//! on ephemeral ports, issues N records at the industry node, then
//! measures two cold paths:
//! - "chain": the verifying resolver from the root key with no cached
//!   delegation: root referral → Shanghai referral → industry answer, with
//!   both delegations and the record verified (what a fresh gateway does);
//! - "gateway": a DNS query to the gateway for a name it has not seen,
//!   delegations already cached (the usual miss: straight to the industry
//!   node), timed at the client;
//! - "hit": a warm L1 hit at the gateway, for scale;
//! - "roll-up": a status report at the industry node until the national
//!   node's `/v1/situation` shows it (two pulls: Shanghai's of the
//!   industry node, the national node's of Shanghai), with a pull interval
//!   of 1 s; the goal is within two intervals.
//!
//! Prints p50 and p99 (roll-up: p50 and max).
//!
//! `cargo bench --bench federation [-- --count N]`

// A benchmark is a test harness: it stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use cpid::ident::identifier::{Apex, Class, Prefix};
use cpid::ident::record::{RecordStatus, Value, ValueType};
use cpid::registry::NewRecord;
use cpid::testkit::federation::{Federation, Options};

/// The roll-up's pull interval here.
const PULL_SECS: u64 = 1;

/// Reports a changing figure at the industry node and times how long the
/// national node takes to show it.
fn rollup(fed: &Federation, rounds: usize) -> Vec<Duration> {
    use cpid::api::client::ApiClient;
    use cpid::ident::keys::NodeKey;
    use serde_json::json;
    let industry = ApiClient::new(&fed.industry.http_url());
    let national = ApiClient::new(&fed.national.http_url());
    let key = NodeKey::generate().unwrap();
    let body = json!({"name": "bench pool", "organisation": "ORG-BENCH", "contact": "noc@p.example",
        "region": "15", "public_key": key.public().to_public_pem()});
    let r = industry
        .signed("POST", "/v1/providers", Some(&body), &key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    if r.body["status"] == "pending" {
        let pv = cpid::ident::identifier::Identifier::parse(r.body["identifier"].as_str().unwrap())
            .unwrap();
        industry
            .approve(&pv, &fed.industry.admin_key().unwrap())
            .unwrap();
    }
    let pool = r#"{"schema":"cpid.resource/1","class":"IC","region":"15","unit":"card","units_total":1000,"devices":[{"model":"H20","count":1000,"peak_tflops":{"fp32":44,"tf32":74,"bf16":148,"fp16":148,"fp8":296,"int8":296}}]}"#;
    let body = json!({"class": "IC", "values": [{"type": "CP.RESOURCE", "data": pool}]});
    let r = industry
        .signed("POST", "/v1/identifiers", Some(&body), &key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["identifier"].as_str().unwrap().to_string();
    (1..=rounds)
        .map(|seq| {
            // Spread the reports over the pull phase.
            std::thread::sleep(Duration::from_millis((seq as u64 * 379) % 1000));
            let body = json!({"agent": "bench", "seq": seq, "interval_secs": 60, "resources": [
                {"id": id, "units_available": seq, "units_in_use": 0, "health": "ok"}]});
            let r = industry
                .signed("POST", "/v1/reports", Some(&body), &key)
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.text);
            let t = Instant::now();
            loop {
                let s = national
                    .get("/v1/situation?region=15&group_by=region")
                    .unwrap();
                if s.body["units"][0]["units_available"]["fresh"] == seq {
                    break t.elapsed();
                }
                assert!(t.elapsed() < Duration::from_secs(30), "roll-up stalled");
                std::thread::sleep(Duration::from_millis(10));
            }
        })
        .collect()
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, v: &mut [Duration]) {
    println!(
        "{what:<40} n={:<5} p50 {:>8.1?}  p99 {:>8.1?}",
        v.len(),
        percentile(v, 0.5),
        percentile(v, 0.99)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args
        .iter()
        .position(|a| a == "--count")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let opts = Options {
        gateway: |c| c.cache.l2 = false,
        node: |c| c.capacity.summary_pull_secs = PULL_SECS,
        ..Options::loopback(dir.path()).expect("free ports")
    };
    let fed = rt.block_on(Federation::start(&opts)).expect("federation");
    let news: Vec<NewRecord> = (0..count)
        .map(|i| NewRecord {
            prefix: None,
            class: Class::Ic,
            owner: None,
            values: vec![Value {
                index: 1,
                kind: ValueType::parse("DESC").expect("type"),
                data: format!("bench resource {i}"),
                ttl: 0,
                timestamp: 1,
            }],
            status: RecordStatus::Active,
        })
        .collect();
    let ids: Vec<_> = fed
        .industry
        .node
        .registry
        .issue_many(news)
        .expect("issue")
        .into_iter()
        .map(|r| r.record().identifier.clone())
        .collect();
    let apex = Apex::parse("cpid.internal").expect("apex");

    let resolver = cpid::resolution::resolver::Resolver::new(
        cpid::ident::delegation::TrustedZone::root(
            Prefix::parse("86").expect("prefix"),
            fed.national.node.registry.key().public(),
            vec![fed.national.running.dns_addr()],
        ),
        apex.clone(),
        Duration::from_secs(2),
        3600,
    );
    let half = count / 2;
    let mut chain = Vec::with_capacity(half);
    for id in &ids[..half] {
        resolver.forget_zones();
        let t = Instant::now();
        let (outcome, path) = rt
            .block_on(resolver.resolve_identifier(id))
            .expect("resolve");
        chain.push(t.elapsed());
        assert!(
            matches!(outcome, cpid::resolution::resolver::Outcome::Record { .. })
                && path.len() == 3
        );
    }

    let gw = fed.gateway.dns_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").expect("socket");
    sock.connect(gw).expect("connect");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let ask = |name: &str| {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.trim_end_matches('.').split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 16, 0, 1]);
        let t = Instant::now();
        sock.send(&q).expect("send");
        let mut buf = [0u8; 2048];
        let n = sock.recv(&mut buf).expect("answer");
        assert!(n > 12 && buf[3] & 0x0f == 0, "NOERROR");
        t.elapsed()
    };
    // Warm the delegations through one name, then every name is a miss.
    ask(&ids[half].to_dns_name(&apex));
    let mut miss: Vec<Duration> = ids[half + 1..]
        .iter()
        .map(|id| ask(&id.to_dns_name(&apex)))
        .collect();
    let mut hit: Vec<Duration> = ids[half + 1..]
        .iter()
        .map(|id| ask(&id.to_dns_name(&apex)))
        .collect();
    println!("three-level federation on loopback, {count} records at 86.31.1005");
    report("cold chain (root→86.31→86.31.1005, verified)", &mut chain);
    report("gateway miss (delegations cached)", &mut miss);
    report("gateway hit (L1)", &mut hit);
    let mut up = rollup(&fed, 10);
    up.sort();
    println!(
        "roll-up, industry report -> national /v1/situation ({} reports, pull every {PULL_SECS} s): p50 {:.2} s, max {:.2} s = {:.1} pull intervals",
        up.len(),
        up[up.len() / 2].as_secs_f64(),
        up[up.len() - 1].as_secs_f64(),
        up[up.len() - 1].as_secs_f64() / PULL_SECS as f64
    );
    rt.block_on(fed.shutdown()).expect("shutdown");
}
