//! Registration throughput: concurrent signed `POST /v1/identifiers`
//! against a running `cpid serve` (durable group commits on), reporting
//! registrations per second, latency p50/p99, the server's CPU time per
//! registration, and how many registrations share one commit.
//!
//!     cargo bench --bench registration -- [--requests N] [--connections C] [--rounds R]
//!         [--server http://ADDR]   (drive a running open-policy node instead of starting one)
//!
//! Requests are signed before the clock starts, so the figure is the
//! node's, not the client's signing speed; client and node still share
//! this machine's cores. The run also times the two Ed25519 operations
//! every registration costs the node (verify the request, sign the record),
//! to show where the time goes.

// A benchmark is a test harness: it stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Instant;

use common::{Node, cpu_seconds, drive, expect_all, metric, percentile, registrations};
use cpid::api::client::ApiClient;
use cpid::ident::keys::{NodeKey, SigningContext};
use serde_json::json;

struct Options {
    /// A node to drive instead of starting one (open policy needed).
    server: Option<String>,
    requests: usize,
    connections: usize,
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options {
        server: None,
        requests: 20_000,
        connections: 64,
        rounds: 3,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |i: usize| args.get(i + 1).and_then(|v| v.parse().ok());
    for (i, a) in args.iter().enumerate() {
        match a.as_str() {
            "--requests" => o.requests = value(i).unwrap_or(o.requests),
            "--connections" => o.connections = value(i).unwrap_or(o.connections),
            "--rounds" => o.rounds = value(i).unwrap_or(o.rounds),
            "--server" => o.server = args.get(i + 1).cloned(),
            _ => {}
        }
    }
    o
}

/// µs per signature of ed25519-dalek's `verify_batch` over `n` signatures.
fn batch_cost(n: usize) -> f64 {
    use ed25519_dalek::{Signer, SigningKey};
    let keys: Vec<SigningKey> = (0..n)
        .map(|i| SigningKey::from_bytes(&[i as u8 + 1; 32]))
        .collect();
    let msgs: Vec<Vec<u8>> = (0..n).map(|i| vec![i as u8; 300]).collect();
    let sigs: Vec<_> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let publics: Vec<_> = keys.iter().map(SigningKey::verifying_key).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let rounds = 4_000 / n;
    let t = Instant::now();
    for _ in 0..rounds {
        ed25519_dalek::verify_batch(&refs, &sigs, &publics).unwrap();
    }
    t.elapsed().as_secs_f64() / (rounds * n) as f64 * 1e6
}

fn ed25519_costs() -> (f64, f64) {
    let key = NodeKey::generate().unwrap();
    let msg = vec![7u8; 300];
    let n = 5_000;
    let t = Instant::now();
    let mut sig = key.sign(SigningContext::HttpMessage, &msg);
    for _ in 0..n {
        sig = key.sign(SigningContext::HttpMessage, &msg);
    }
    let sign = t.elapsed().as_secs_f64() / n as f64;
    let public = key.public();
    let t = Instant::now();
    for _ in 0..n {
        public
            .verify_strict(SigningContext::HttpMessage, &msg, &sig)
            .unwrap();
    }
    let verify = t.elapsed().as_secs_f64() / n as f64;
    (sign * 1e6, verify * 1e6)
}

fn main() {
    let o = options();
    let node = Node::start(o.server.as_deref());
    let pid = node.pid();
    let api = ApiClient::new(&node.http);
    let key = NodeKey::generate().unwrap();
    let provider = json!({
        "name": "bench", "organisation": "BENCH-1", "contact": "ops@bench.example",
        "region": "31", "public_key": key.public().to_public_pem(),
    });
    assert_eq!(
        api.signed("POST", "/v1/providers", Some(&provider), &key)
            .unwrap()
            .status,
        201
    );

    let (sign_us, verify_us) = ed25519_costs();
    let mut summary = Vec::new();
    println!(
        "registration benchmark: {} requests x {} rounds over {} connections, durable commits",
        o.requests, o.rounds, o.connections
    );
    println!(
        "ed25519 on this machine: sign {sign_us:.1} µs, verify_strict {verify_us:.1} µs, verify_batch {:.1} µs/signature at 8, {:.1} at 32",
        batch_cost(8),
        batch_cost(32)
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for round in 0..o.rounds {
        let work = registrations(&key, o.requests, &round.to_string());
        let before_text = api.get("/metrics").unwrap().text;
        let cpu_before = pid.map_or(0.0, cpu_seconds);
        let client_before = cpu_seconds(std::process::id());
        let (answers, wall) = rt.block_on(drive(node.addr, work, o.connections));
        let lat = expect_all(&answers, 201, "registration");
        let cpu = pid.map_or(0.0, cpu_seconds) - cpu_before;
        let client = cpu_seconds(std::process::id()) - client_before;
        let after_text = api.get("/metrics").unwrap().text;
        let commits = metric(&after_text, "cpid_store_commit_seconds_count")
            - metric(&before_text, "cpid_store_commit_seconds_count");
        let batched = metric(&after_text, "cpid_signature_batch_size_sum")
            - metric(&before_text, "cpid_signature_batch_size_sum");
        let batches = metric(&after_text, "cpid_signature_batch_size_count")
            - metric(&before_text, "cpid_signature_batch_size_count");
        let commit_busy = metric(&after_text, "cpid_store_commit_seconds_sum")
            - metric(&before_text, "cpid_store_commit_seconds_sum");
        let per = |secs: f64| secs / o.requests as f64 * 1e6;
        println!(
            "round {}: {:>6.0} registrations/s  p50 {:>6.2} ms  p99 {:>6.2} ms  CPU µs/registration: server {:>5.1}, client {:>5.1}  {:>5.1} registrations/commit, writer busy {:>3.0} %, {:>4.1} signatures/batch",
            round + 1,
            o.requests as f64 / wall.as_secs_f64(),
            percentile(&lat, 0.5).as_secs_f64() * 1e3,
            percentile(&lat, 0.99).as_secs_f64() * 1e3,
            per(cpu),
            per(client),
            o.requests as f64 / commits.max(1.0),
            commit_busy / wall.as_secs_f64() * 100.0,
            batched / batches.max(1.0),
        );
        if pid.is_some() {
            summary.push(per(cpu) / verify_us);
        }
    }
    if !summary.is_empty() {
        let text: Vec<String> = summary.iter().map(|r| format!("{r:.1}")).collect();
        println!(
            "server CPU per registration in units of one verify_strict measured in this run: {}",
            text.join(" / ")
        );
    }
}
