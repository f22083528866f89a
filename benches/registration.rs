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

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cpid::api::client::{ApiClient, signed_headers};
use cpid::ident::keys::{NodeKey, SigningContext};
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
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

/// User + system CPU seconds of a process, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

struct Signed {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

fn presign(key: &NodeKey, n: usize, round: usize) -> Vec<Signed> {
    let created = cpid::clock::system_now() as i64;
    (0..n)
        .map(|i| {
            let body = serde_json::to_vec(&json!({
                "class": "IC",
                "values": [
                    {"type": "CP.RESOURCE", "data": format!(
                        r#"{{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":{n},"devices":[{{"model":"A800","count":{n},"peak_tflops":{{"fp16":312}}}}]}}"#,
                        n = i % 64 + 1
                    )},
                    {"type": "CP.ENDPOINT", "data": format!("https://pool-{i}.bench.example/v1")},
                ],
            }))
            .unwrap();
            let nonce = format!("bench-{round}-{i}");
            let headers =
                signed_headers("POST", "/v1/identifiers", &body, key, &nonce, created).unwrap();
            Signed { headers, body }
        })
        .collect()
}

/// Sends every request over `connections` keep-alive HTTP/1.1 connections;
/// returns the latency of each and the wall time.
async fn drive(
    addr: std::net::SocketAddr,
    work: Vec<Signed>,
    connections: usize,
) -> (Vec<Duration>, Duration) {
    let mut shares: Vec<Vec<Signed>> = (0..connections).map(|_| Vec::new()).collect();
    for (i, w) in work.into_iter().enumerate() {
        shares[i % connections].push(w);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for share in shares {
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(share.len());
            for s in share {
                let mut req = Request::post("/v1/identifiers")
                    .header("host", addr.to_string())
                    .body(Full::new(bytes::Bytes::from(s.body)))
                    .unwrap();
                *req.headers_mut() = {
                    let mut h = s.headers;
                    h.insert("host", addr.to_string().parse().unwrap());
                    h
                };
                let t = Instant::now();
                let resp = sender.send_request(req).await.unwrap();
                let status = resp.status();
                let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                latencies.push(t.elapsed());
                assert_eq!(status, 201, "registration refused");
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
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
    let dir = tempfile::tempdir().unwrap();
    let mut child = None;
    let http = match &o.server {
        Some(url) => url.clone(),
        None => {
            let mut c = Command::new(env!("CARGO_BIN_EXE_cpid"))
                .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
                .args(["--policy", "open", "--udp-workers", "1", "--data"])
                .arg(dir.path())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(c.stderr.take().unwrap()).lines();
            let http = loop {
                let line = lines.next().expect("cpid serve exited").unwrap();
                if let Some(at) = line.find("http://") {
                    let rest = &line[at..];
                    break rest[..rest.find(' ').unwrap_or(rest.len())].to_string();
                }
            };
            std::thread::spawn(move || lines.for_each(drop));
            child = Some(c);
            http
        }
    };
    let pid = child.as_ref().map(std::process::Child::id);
    let addr: std::net::SocketAddr = http.trim_start_matches("http://").parse().unwrap();
    let api = ApiClient::new(&http);
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
        let work = presign(&key, o.requests, round);
        let before_text = api.get("/metrics").unwrap().text;
        let cpu_before = pid.map_or(0.0, cpu_seconds);
        let client_before = cpu_seconds(std::process::id());
        let (mut lat, wall) = rt.block_on(drive(addr, work, o.connections));
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
        lat.sort();
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
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}
