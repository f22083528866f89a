//! Capacity: signed status reports (`POST /v1/reports`, 100 resources each)
//! and the situation read (`GET /v1/situation`) against a running `cpid
//! serve` on loopback (durable store, group commit), over keep-alive
//! HTTP/1.1 connections:
//!
//!     cargo bench --bench capacity -- [--resources N] [--reports N] [--connections C]
//!         [--rounds R] [--reads N] [--data DIR]
//!
//! 1. Throughput: `--rounds` closed-loop rounds of `--reports` reports from
//!    `--connections` connections, one agent each; resource updates per
//!    second, report latency, server CPU per report.
//! 2. Latency at half the best round's rate, paced open-loop (each report
//!    timed from when it was due, not from when it was sent), with a
//!    `GET /healthz` probe on its own connection as the reference.
//! 3. `GET /v1/situation` with `--resources` registered (default 1 000 000),
//!    interleaved one by one with `GET /healthz` as the reference.
//!
//! The resources are seeded by `cpid bench seed --provider-key`, owned by a
//! provider whose key the bench holds; `--data DIR` keeps the seeded store
//! and reuses it on the next run. Reports are signed before the clock
//! starts, so the figures are the node's, not the client's signing speed;
//! client and node still share this machine's cores.

// A benchmark is a test harness: it stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cpid::api::client::{ApiClient, signed_headers};
use cpid::ident::keys::{NodeKey, SigningContext};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// Resources per report.
const PER_REPORT: usize = 100;
/// Most resources the reports cycle over (listed from the node first).
const POOL: u64 = 100_000;

struct Options {
    resources: u64,
    reports: usize,
    connections: usize,
    rounds: usize,
    reads: usize,
    data: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        resources: 1_000_000,
        reports: 20_000,
        connections: 64,
        rounds: 3,
        reads: 2_000,
        data: None,
    };
    let args: Vec<String> = std::env::args().collect();
    let value = |i: usize| args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
    for (i, a) in args.iter().enumerate() {
        match a.as_str() {
            "--resources" => o.resources = value(i).map_or(o.resources, |v| v as u64),
            "--reports" => o.reports = value(i).unwrap_or(o.reports),
            "--connections" => o.connections = value(i).unwrap_or(o.connections).max(1),
            "--rounds" => o.rounds = value(i).unwrap_or(o.rounds).max(1),
            "--reads" => o.reads = value(i).unwrap_or(o.reads).max(1),
            "--data" => o.data = args.get(i + 1).map(PathBuf::from),
            _ => {}
        }
    }
    o
}

/// User + system CPU seconds of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// Bytes a process has caused to be written to storage, from /proc.
fn written_bytes(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Seeds `count` resources owned by the provider of `key` (unless `dir`
/// already holds them); returns the key and the provider identifier.
fn seed(dir: &Path, count: u64) -> (NodeKey, String) {
    let key_file = dir.join("bench-provider.pem");
    let id_file = dir.join("bench-provider.id");
    if let (Ok(id), true) = (std::fs::read_to_string(&id_file), key_file.exists()) {
        println!("reusing the store in {} (provider {id})", dir.display());
        return (NodeKey::load(&key_file).unwrap(), id);
    }
    let key = NodeKey::generate().unwrap();
    key.write_new(&key_file).unwrap();
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(["bench", "seed", "--count", &count.to_string()])
        .arg("--provider-key")
        .arg(&key_file)
        .arg("--data")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cpid bench seed failed: {text}");
    let id = text
        .lines()
        .find_map(|l| {
            l.split_once("owned by ")
                .map(|(_, id)| id.trim().to_string())
        })
        .expect("seed names the owner");
    std::fs::write(&id_file, &id).unwrap();
    println!(
        "seeded {count} resources owned by {id} in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    (key, id)
}

/// The node, stopped when the bench ends, also by a failed assertion.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cpid serve` on `dir`; returns it, its HTTP address and how long
/// it took to be ready.
fn serve(dir: &Path) -> (Node, SocketAddr, Duration) {
    let t = Instant::now();
    let mut c = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--udp-workers", "1", "--data"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(c.stderr.take().unwrap()).lines();
    let c = Node(c);
    let http = loop {
        let line = lines.next().expect("cpid serve exited").unwrap();
        if let Some(at) = line.find("http://") {
            let rest = &line[at + "http://".len()..];
            break rest[..rest.find(' ').unwrap_or(rest.len())].to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (c, http.parse().unwrap(), t.elapsed())
}

/// One resource the reports cover: identifier and units total.
struct Pooled {
    id: String,
    units: i64,
}

/// Up to `n` resources of `owner`, listed from the node.
fn pool(api: &ApiClient, owner: &str, n: u64) -> Vec<Pooled> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    while (out.len() as u64) < n {
        let mut path = format!("/v1/identifiers?owner={owner}&limit=500");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let r = api.get(&path).unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        for item in r.body["identifiers"].as_array().unwrap() {
            let units = item["values"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["type"] == "CP.RESOURCE")
                .and_then(|v| serde_json::from_str::<Value>(v["data"].as_str()?).ok())
                .and_then(|d| d["units_total"].as_i64())
                .unwrap_or(1);
            out.push(Pooled {
                id: item["identifier"].as_str().unwrap().to_string(),
                units,
            });
        }
        match r.body["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    out.truncate(n as usize);
    out
}

/// A signed report ready to send by connection `conn`.
struct Signed {
    conn: usize,
    headers: http::HeaderMap,
    body: Bytes,
}

/// Reports of agents, one agent per connection, each covering the next
/// [`PER_REPORT`] resources of its share of the pool.
struct Reporters {
    key: NodeKey,
    run: u64,
    pool: Vec<Pooled>,
    /// Next sequence number and next pool offset, per agent.
    next: Vec<(u64, usize)>,
    signed: usize,
}

impl Reporters {
    fn new(key: NodeKey, pool: Vec<Pooled>, agents: usize) -> Reporters {
        let start = |a: usize| a * pool.len() / agents;
        Reporters {
            key,
            run: cpid::clock::system_now(),
            next: (0..agents).map(|a| (1, start(a))).collect(),
            pool,
            signed: 0,
        }
    }

    /// `n` reports, the i-th from agent `i % agents`, signed now.
    fn sign(&mut self, n: usize) -> Vec<Signed> {
        let created = cpid::clock::system_now() as i64;
        let agents = self.next.len();
        let len = self.pool.len();
        (0..n)
            .map(|i| {
                let a = i % agents;
                let (seq, offset) = self.next[a];
                self.next[a] = (seq + 1, (offset + PER_REPORT) % len);
                let resources: Vec<Value> = (0..PER_REPORT)
                    .map(|j| {
                        let p = &self.pool[(offset + j) % len];
                        let in_use = (seq as i64 + j as i64) % (p.units + 1);
                        json!({"id": p.id, "units_available": p.units - in_use,
                               "units_in_use": in_use, "health": "ok",
                               "utilization": in_use as f64 / p.units.max(1) as f64})
                    })
                    .collect();
                let body = serde_json::to_vec(&json!({
                    "agent": format!("bench-{}-{a}", self.run), "seq": seq,
                    "interval_secs": 60, "resources": resources,
                }))
                .unwrap();
                self.signed += 1;
                let nonce = format!("cap-{}-{}", self.run, self.signed);
                let headers =
                    signed_headers("POST", "/v1/reports", &body, &self.key, &nonce, created)
                        .unwrap();
                Signed {
                    conn: a,
                    headers,
                    body: Bytes::from(body),
                }
            })
            .collect()
    }
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn post(sender: &mut SendRequest<Full<Bytes>>, addr: SocketAddr, s: Signed) {
    let mut req = Request::post("/v1/reports")
        .body(Full::new(s.body))
        .unwrap();
    *req.headers_mut() = s.headers;
    req.headers_mut()
        .insert("host", addr.to_string().parse().unwrap());
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        200,
        "report refused: {}",
        String::from_utf8_lossy(&body)
    );
}

async fn get(sender: &mut SendRequest<Full<Bytes>>, addr: SocketAddr, path: &str) -> Bytes {
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    body
}

/// Splits `work` by connection, keeping each connection's order.
fn by_connection(work: Vec<Signed>, connections: usize) -> Vec<Vec<(usize, Signed)>> {
    let mut shares: Vec<Vec<(usize, Signed)>> = (0..connections).map(|_| Vec::new()).collect();
    for (i, w) in work.into_iter().enumerate() {
        let c = w.conn % connections;
        shares[c].push((i, w));
    }
    shares
}

/// Sends every report as fast as each connection allows; the latency of
/// each and the wall time.
async fn closed_loop(addr: SocketAddr, work: Vec<Signed>, c: usize) -> (Vec<Duration>, Duration) {
    let mut senders = Vec::new();
    for _ in 0..c {
        senders.push(connect(addr).await);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (share, mut sender) in by_connection(work, c).into_iter().zip(senders) {
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share.len());
            for (_, s) in share {
                let t = Instant::now();
                post(&mut sender, addr, s).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started.elapsed())
}

/// Sends report i at `i / rate` seconds after the start, each timed from
/// when it was due; meanwhile probes `GET /healthz` every 10 ms on its own
/// connection. Report latencies, probe latencies, wall time.
async fn open_loop(
    addr: SocketAddr,
    work: Vec<Signed>,
    c: usize,
    rate: f64,
) -> (Vec<Duration>, Vec<Duration>, Duration) {
    let mut senders = Vec::new();
    for _ in 0..c {
        senders.push(connect(addr).await);
    }
    let mut probe = connect(addr).await;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probing = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut out = Vec::new();
            let mut tick = tokio::time::interval_at(start, Duration::from_millis(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                tick.tick().await;
                let t = Instant::now();
                get(&mut probe, addr, "/healthz").await;
                out.push(t.elapsed());
            }
            out
        })
    };
    let mut tasks = Vec::new();
    for (share, mut sender) in by_connection(work, c).into_iter().zip(senders) {
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(share.len());
            for (i, s) in share {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                post(&mut sender, addr, s).await;
                latencies.push(due.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = start.elapsed();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    (all, probing.await.unwrap(), wall)
}

/// `GET /v1/situation` and `GET /healthz` one after the other, `n` times
/// each after a warm-up, on one connection: their latencies and the size
/// and resource count of the last situation.
async fn reads(addr: SocketAddr, n: usize) -> (Vec<Duration>, Vec<Duration>, usize, Value) {
    let mut sender = connect(addr).await;
    for _ in 0..50 {
        get(&mut sender, addr, "/v1/situation").await;
        get(&mut sender, addr, "/healthz").await;
    }
    let (mut situation, mut health) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut last = Bytes::new();
    for _ in 0..n {
        let t = Instant::now();
        last = get(&mut sender, addr, "/v1/situation").await;
        situation.push(t.elapsed());
        let t = Instant::now();
        get(&mut sender, addr, "/healthz").await;
        health.push(t.elapsed());
    }
    let resources = serde_json::from_slice::<Value>(&last).unwrap()["resources"].clone();
    (situation, health, last.len(), resources)
}

fn verify_cost() -> f64 {
    let key = NodeKey::generate().unwrap();
    let msg = vec![7u8; 300];
    let sig = key.sign(SigningContext::HttpMessage, &msg);
    let public = key.public();
    let n = 5_000;
    let t = Instant::now();
    for _ in 0..n {
        public
            .verify_strict(SigningContext::HttpMessage, &msg, &sig)
            .unwrap();
    }
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

struct Round {
    updates_per_sec: f64,
    reports_per_sec: f64,
    p50: Duration,
    p99: Duration,
    server_us_per_report: f64,
    client_us_per_report: f64,
    per_commit: f64,
    writer_busy: f64,
    disk_kib_per_report: f64,
}

fn main() {
    let o = options();
    let temp = tempfile::tempdir().unwrap();
    let dir = o.data.clone().unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    println!(
        "capacity benchmark: {} resources, {} reports of {PER_REPORT} x {} rounds over {} connections (one agent each), durable group commits",
        o.resources, o.reports, o.rounds, o.connections
    );
    let (key, owner) = seed(&dir, o.resources);
    let (node, addr, ready) = serve(&dir);
    let pid = node.0.id();
    let api = ApiClient::new(&format!("http://{addr}"));
    let registered = api.get("/v1/situation").unwrap().body["resources"].clone();
    println!(
        "cpid serve ready in {:.1} s; resources in /v1/situation: {registered}",
        ready.as_secs_f64()
    );
    let t = Instant::now();
    let pool = pool(&api, &owner, o.resources.min(POOL));
    assert!(
        pool.len() >= PER_REPORT,
        "need at least {PER_REPORT} resources"
    );
    println!(
        "reports cycle over {} resources (listed in {:.1} s)",
        pool.len(),
        t.elapsed().as_secs_f64()
    );
    let verify_us = verify_cost();
    println!("ed25519 verify_strict on this machine: {verify_us:.1} µs");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut reporters = Reporters::new(key, pool, o.connections);

    // 1. Throughput, closed loop.
    let mut rounds = Vec::new();
    for round in 0..o.rounds {
        let work = reporters.sign(o.reports);
        let before = api.get("/metrics").unwrap().text;
        let (server0, client0) = (cpu_seconds(pid), cpu_seconds(std::process::id()));
        let written0 = written_bytes(pid);
        let (mut lat, wall) = rt.block_on(closed_loop(addr, work, o.connections));
        let server = cpu_seconds(pid) - server0;
        let client = cpu_seconds(std::process::id()) - client0;
        let written = written_bytes(pid) - written0;
        let after = api.get("/metrics").unwrap().text;
        let delta = |name: &str| metric(&after, name) - metric(&before, name);
        lat.sort();
        let n = o.reports as f64;
        let r = Round {
            updates_per_sec: n * PER_REPORT as f64 / wall.as_secs_f64(),
            reports_per_sec: n / wall.as_secs_f64(),
            p50: percentile(&lat, 0.5),
            p99: percentile(&lat, 0.99),
            server_us_per_report: server / n * 1e6,
            client_us_per_report: client / n * 1e6,
            per_commit: n / delta("cpid_store_commit_seconds_count").max(1.0),
            writer_busy: delta("cpid_store_commit_seconds_sum") / wall.as_secs_f64() * 100.0,
            disk_kib_per_report: written / n / 1024.0,
        };
        println!(
            "round {}: {:>7.0} resource updates/s ({:>5.0} reports/s)  p50 {:>6.2} ms  p99 {:>6.2} ms  CPU µs/report: server {:>5.0} ({:.1} verify_strict), client {:>4.0}  {:>5.1} reports/commit, writer busy {:>3.0} %, {:>4.0} KiB written/report",
            round + 1,
            r.updates_per_sec,
            r.reports_per_sec,
            ms(r.p50),
            ms(r.p99),
            r.server_us_per_report,
            r.server_us_per_report / verify_us,
            r.client_us_per_report,
            r.per_commit,
            r.writer_busy,
            r.disk_kib_per_report,
        );
        rounds.push(r);
    }
    let peak = rounds.iter().map(|r| r.reports_per_sec).fold(0.0, f64::max);

    // 2. Half the peak, open loop.
    let rate = peak / 2.0;
    let work = reporters.sign(o.reports);
    let (mut half, mut probe, wall) = rt.block_on(open_loop(addr, work, o.connections, rate));
    half.sort();
    probe.sort();
    let achieved = o.reports as f64 / wall.as_secs_f64();
    println!(
        "half load: {:.0} reports/s asked, {achieved:.0} sent ({:.0} resource updates/s): p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms; GET /healthz beside it: p50 {:.2} ms  p99 {:.2} ms ({} probes)",
        rate,
        achieved * PER_REPORT as f64,
        ms(percentile(&half, 0.5)),
        ms(percentile(&half, 0.99)),
        ms(percentile(&half, 0.999)),
        ms(percentile(&probe, 0.5)),
        ms(percentile(&probe, 0.99)),
        probe.len()
    );

    // 3. The situation, with the reference interleaved.
    let (mut sit, mut health, size, resources) = rt.block_on(reads(addr, o.reads));
    sit.sort();
    health.sort();
    println!(
        "GET /v1/situation ({size} bytes, resources {resources}): p50 {:.3} ms  p99 {:.3} ms; GET /healthz interleaved: p50 {:.3} ms  p99 {:.3} ms ({} each)",
        ms(percentile(&sit, 0.5)),
        ms(percentile(&sit, 0.99)),
        ms(percentile(&health, 0.5)),
        ms(percentile(&health, 0.99)),
        o.reads
    );

    let best = rounds
        .iter()
        .max_by(|a, b| a.updates_per_sec.total_cmp(&b.updates_per_sec))
        .unwrap();
    let hp99 = percentile(&health, 0.99);
    println!();
    println!("| figure | measured | reference (same run) | target |");
    println!("|---|---:|---:|---:|");
    println!(
        "| status reports, resource updates/s (best of {}; rounds {}) | {:.0} | server CPU {:.0} µs/report = {:.1} verify_strict | ≥ 100 000 |",
        o.rounds,
        rounds
            .iter()
            .map(|r| format!("{:.0}", r.updates_per_sec))
            .collect::<Vec<_>>()
            .join(" / "),
        best.updates_per_sec,
        best.server_us_per_report,
        best.server_us_per_report / verify_us,
    );
    println!(
        "| report latency at half load ({:.0} updates/s), p50 / p99 | {:.2} / {:.2} ms | GET /healthz beside it: {:.2} / {:.2} ms | |",
        rate * PER_REPORT as f64,
        ms(percentile(&half, 0.5)),
        ms(percentile(&half, 0.99)),
        ms(percentile(&probe, 0.5)),
        ms(percentile(&probe, 0.99)),
    );
    println!(
        "| GET /v1/situation, {} resources, p50 / p99 | {:.3} / {:.3} ms | GET /healthz interleaved: {:.3} / {:.3} ms (p99 ratio {:.1}) | p99 ≤ 5 ms |",
        o.resources,
        ms(percentile(&sit, 0.5)),
        ms(percentile(&sit, 0.99)),
        ms(percentile(&health, 0.5)),
        ms(hp99),
        percentile(&sit, 0.99).as_secs_f64() / hp99.as_secs_f64().max(1e-9),
    );
    drop(node);
}
