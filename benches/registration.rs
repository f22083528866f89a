//! Registration throughput: concurrent signed `POST /v1/identifiers`
//! against a running `cpid serve` (durable group commits on), reporting
//! registrations per second, latency p50/p99, the server's CPU time per
//! registration, and how many registrations share one commit.
//!
//!     cargo bench --bench registration -- [--requests N] [--connections C] [--rounds R]
//!         [--server http://ADDR]   (drive a running open-policy node instead of starting one)
//!         [--interleave-with OLD_CPID [--warmup N]]
//!
//! `--interleave-with` compares this build with another `cpid` binary (an
//! older commit's `target/release/cpid`): `--rounds` pairs of runs, old
//! then new, each on a freshly started node with an empty data directory,
//! `--warmup` untimed registrations (default 1 000) and then `--requests`
//! timed ones; it ends with the medians and the ratio new/old.
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

// Shared with the DNS benches too; not every helper is used here.
#[allow(dead_code)]
mod common;

use std::path::{Path, PathBuf};
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
    /// Another cpid binary to run against this one, interleaved.
    interleave_with: Option<PathBuf>,
    warmup: usize,
}

fn options() -> Options {
    let mut o = Options {
        server: None,
        requests: 20_000,
        connections: 64,
        rounds: 3,
        interleave_with: None,
        warmup: 1000,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |i: usize| args.get(i + 1).and_then(|v| v.parse().ok());
    for (i, a) in args.iter().enumerate() {
        match a.as_str() {
            "--requests" => o.requests = value(i).unwrap_or(o.requests),
            "--connections" => o.connections = value(i).unwrap_or(o.connections),
            "--rounds" => o.rounds = value(i).unwrap_or(o.rounds),
            "--server" => o.server = args.get(i + 1).cloned(),
            "--interleave-with" => o.interleave_with = args.get(i + 1).map(PathBuf::from),
            "--warmup" => o.warmup = value(i).unwrap_or(o.warmup),
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

/// What one timed round measured.
struct Round {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Server and client CPU µs per registration (server 0 when the node
    /// is not ours).
    server_us: f64,
    client_us: f64,
    per_commit: f64,
    writer_busy: f64,
    per_batch: f64,
}

impl Round {
    fn line(&self) -> String {
        format!(
            "{:>6.0} registrations/s  p50 {:>6.2} ms  p99 {:>6.2} ms  CPU µs/registration: server {:>5.1}, client {:>5.1}  {:>5.1} registrations/commit, writer busy {:>3.0} %, {:>4.1} signatures/batch",
            self.rate,
            self.p50_ms,
            self.p99_ms,
            self.server_us,
            self.client_us,
            self.per_commit,
            self.writer_busy,
            self.per_batch,
        )
    }
}

/// Registers the bench's provider at `api`.
fn provider(api: &ApiClient, key: &NodeKey) {
    let provider = json!({
        "name": "bench", "organisation": "BENCH-1", "contact": "ops@bench.example",
        "region": "31", "public_key": key.public().to_public_pem(),
    });
    assert_eq!(
        api.signed("POST", "/v1/providers", Some(&provider), key)
            .unwrap()
            .status,
        201
    );
}

/// `requests` registrations by `key` at `node`, timed.
fn round(
    rt: &tokio::runtime::Runtime,
    node: &Node,
    key: &NodeKey,
    requests: usize,
    connections: usize,
    tag: &str,
) -> Round {
    let api = ApiClient::new(&node.http);
    let pid = node.pid();
    let work = registrations(key, requests, tag);
    let before_text = api.get("/metrics").unwrap().text;
    let cpu_before = pid.map_or(0.0, cpu_seconds);
    let client_before = cpu_seconds(std::process::id());
    let (answers, wall) = rt.block_on(drive(node.addr, work, connections));
    let lat = expect_all(&answers, 201, "registration");
    let cpu = pid.map_or(0.0, cpu_seconds) - cpu_before;
    let client = cpu_seconds(std::process::id()) - client_before;
    let after_text = api.get("/metrics").unwrap().text;
    let delta = |name: &str| metric(&after_text, name) - metric(&before_text, name);
    let commits = delta("cpid_store_commit_seconds_count");
    let batched = delta("cpid_signature_batch_size_sum");
    let batches = delta("cpid_signature_batch_size_count");
    let commit_busy = delta("cpid_store_commit_seconds_sum");
    let per = |secs: f64| secs / requests as f64 * 1e6;
    Round {
        rate: requests as f64 / wall.as_secs_f64(),
        p50_ms: percentile(&lat, 0.5).as_secs_f64() * 1e3,
        p99_ms: percentile(&lat, 0.99).as_secs_f64() * 1e3,
        server_us: per(cpu),
        client_us: per(client),
        per_commit: requests as f64 / commits.max(1.0),
        writer_busy: commit_busy / wall.as_secs_f64() * 100.0,
        per_batch: batched / batches.max(1.0),
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Old and new binaries, one fresh node per run: old, new, old, new, …
fn interleaved(o: &Options, old: &Path, rt: &tokio::runtime::Runtime, verify_us: f64) {
    let new = Path::new(env!("CARGO_BIN_EXE_cpid"));
    println!(
        "interleaved: old = {}, new = {}; {} warm-up registrations per run, untimed",
        old.display(),
        new.display(),
        o.warmup
    );
    let mut runs: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for pair in 0..o.rounds {
        for (k, (label, binary)) in [("old", old), ("new", new)].into_iter().enumerate() {
            let node = Node::spawn(binary);
            let key = NodeKey::generate().unwrap();
            provider(&ApiClient::new(&node.http), &key);
            if o.warmup > 0 {
                round(rt, &node, &key, o.warmup, o.connections, "warm-up");
            }
            let r = round(rt, &node, &key, o.requests, o.connections, "timed");
            println!("run {} ({label}): {}", 2 * pair + k + 1, r.line());
            runs[k].push(r);
        }
    }
    let rates = |k: usize| runs[k].iter().map(|r| r.rate).collect::<Vec<f64>>();
    let cpus = |k: usize| runs[k].iter().map(|r| r.server_us).collect::<Vec<f64>>();
    let ratios: Vec<f64> = runs[0]
        .iter()
        .zip(&runs[1])
        .map(|(a, b)| b.rate / a.rate)
        .collect();
    let text: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
    println!(
        "median registrations/s: old {:.0}, new {:.0}; median new/old {:.3}; new/old of each pair {}",
        median(&rates(0)),
        median(&rates(1)),
        median(&rates(1)) / median(&rates(0)),
        text.join(" / ")
    );
    println!(
        "median server CPU per registration: old {:.1} µs ({:.2} verify_strict), new {:.1} µs ({:.2}); new/old {:.3}",
        median(&cpus(0)),
        median(&cpus(0)) / verify_us,
        median(&cpus(1)),
        median(&cpus(1)) / verify_us,
        median(&cpus(1)) / median(&cpus(0)),
    );
}

fn main() {
    let o = options();
    let (sign_us, verify_us) = ed25519_costs();
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
    if let Some(old) = &o.interleave_with {
        interleaved(&o, old, &rt, verify_us);
        return;
    }
    let node = Node::start(o.server.as_deref());
    let key = NodeKey::generate().unwrap();
    provider(&ApiClient::new(&node.http), &key);
    let mut summary = Vec::new();
    for i in 0..o.rounds {
        let r = round(&rt, &node, &key, o.requests, o.connections, &i.to_string());
        println!("round {}: {}", i + 1, r.line());
        summary.push(r.server_us / verify_us);
    }
    if node.pid().is_some() {
        let text: Vec<String> = summary.iter().map(|r| format!("{r:.1}")).collect();
        println!(
            "server CPU per registration in units of one verify_strict measured in this run: {}",
            text.join(" / ")
        );
    }
}
