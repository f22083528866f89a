//! What the HTTP benches share: a `cpid serve` started on loopback (or a
//! running node to drive instead), requests signed before the clock starts,
//! a closed-loop driver over keep-alive HTTP/1.1 connections, and the
//! figures read from `/proc` and `/metrics`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cpid::api::client::signed_headers;
use cpid::ident::keys::NodeKey;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::json;

/// The node the bench drives: started here on an empty data directory
/// with the open policy (stopped when this is dropped, also by a failed
/// assertion), or one already running.
pub struct Node {
    pub http: String,
    pub addr: SocketAddr,
    /// The zone it serves and where it answers DNS (UDP and TCP), from its
    /// ready line; `None` for a node not started here.
    // Read by the transfer bench only; the other benches share this module.
    #[allow(dead_code)]
    pub zone: Option<String>,
    #[allow(dead_code)]
    pub dns: Option<SocketAddr>,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Starts `cpid serve --policy open`, durable commits on, or takes
    /// `server` (`http://ADDR`, open policy needed) as it is.
    pub fn start(server: Option<&str>) -> Node {
        match server {
            Some(url) => {
                let http = url.trim_end_matches('/').to_string();
                Node {
                    addr: http.trim_start_matches("http://").parse().unwrap(),
                    http,
                    zone: None,
                    dns: None,
                    child: None,
                    _dir: tempfile::tempdir().unwrap(),
                }
            }
            None => Node::spawn(Path::new(env!("CARGO_BIN_EXE_cpid"))),
        }
    }

    /// Starts `binary serve --policy open` (this build of cpid, or another
    /// one to compare with) on a fresh data directory.
    pub fn spawn(binary: &Path) -> Node {
        Node::spawn_in(binary, tempfile::tempdir().unwrap(), "127.0.0.1:0", &[])
    }

    /// Starts `binary serve --policy open` over the data directory `dir`
    /// (which may hold a seeded store), DNS on `dns`, with `args` added
    /// (e.g. `--config FILE`); `dir` is removed when the node is dropped.
    pub fn spawn_in(binary: &Path, dir: tempfile::TempDir, dns: &str, args: &[&str]) -> Node {
        let mut c = Command::new(binary)
            .args(["serve", "--dns", dns, "--http", "127.0.0.1:0"])
            .args(["--policy", "open", "--udp-workers", "1"])
            .args(args)
            .arg("--data")
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let mut lines = BufReader::new(c.stderr.take().unwrap()).lines();
        let (http, ready) = loop {
            let line = lines.next().expect("cpid serve exited").unwrap();
            if let Some(at) = line.find("http://") {
                let rest = &line[at..];
                break (
                    rest[..rest.find(' ').unwrap_or(rest.len())].to_string(),
                    line.clone(),
                );
            }
        };
        std::thread::spawn(move || lines.for_each(drop));
        // "cpid serving zone ZONE (… names, …) on udp+tcp ADDR, http://…"
        let word_after = |marker: &str| {
            ready.find(marker).map(|at| {
                ready[at + marker.len()..]
                    .split([' ', ','])
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        };
        Node {
            addr: http.trim_start_matches("http://").parse().unwrap(),
            http,
            zone: word_after("serving zone "),
            dns: word_after("on udp+tcp ").and_then(|a| a.parse().ok()),
            child: Some(c),
            _dir: dir,
        }
    }

    /// The process id of a node started here.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// User + system CPU seconds of a process, from /proc.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the ')'.
    (ticks(11) + ticks(12)) / 100.0
}

/// The sum of every series of `name` in a Prometheus text exposition.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A signed `POST`, ready to send.
pub struct Signed {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Signed {
    /// Signs `POST path` with `body` by `key`, created now.
    pub fn post(path: &str, body: Vec<u8>, key: &NodeKey, nonce: &str) -> Signed {
        let created = cpid::clock::system_now() as i64;
        let headers = signed_headers("POST", path, &body, key, nonce, created).unwrap();
        Signed {
            path: path.to_string(),
            headers,
            body,
        }
    }
}

/// `n` resource registrations (`POST /v1/identifiers`) by the provider
/// `key`: an IC pool of 1 to 64 cards with an endpoint, each a new
/// identifier; `tag` keeps the nonces of different batches apart.
pub fn registrations(key: &NodeKey, n: usize, tag: &str) -> Vec<Signed> {
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
            Signed::post("/v1/identifiers", body, key, &format!("bench-{tag}-{i}"))
        })
        .collect()
}

/// What one request got back.
pub struct Answer {
    pub latency: Duration,
    pub status: u16,
    pub body: Bytes,
}

/// Sends every request over `connections` keep-alive HTTP/1.1 connections,
/// request `i` on connection `i % connections`, each connection waiting
/// for one answer before it sends the next; returns the answers in the
/// order of `work` and the wall time.
pub async fn drive(
    addr: SocketAddr,
    work: Vec<Signed>,
    connections: usize,
) -> (Vec<Answer>, Duration) {
    let n = work.len();
    let mut shares: Vec<Vec<(usize, Signed)>> = (0..connections).map(|_| Vec::new()).collect();
    for (i, w) in work.into_iter().enumerate() {
        shares[i % connections].push((i, w));
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
            let mut answers = Vec::with_capacity(share.len());
            for (i, s) in share {
                let mut req = Request::post(s.path)
                    .body(Full::new(Bytes::from(s.body)))
                    .unwrap();
                *req.headers_mut() = {
                    let mut h = s.headers;
                    h.insert("host", addr.to_string().parse().unwrap());
                    h
                };
                let t = Instant::now();
                let resp = sender.send_request(req).await.unwrap();
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                let latency = t.elapsed();
                answers.push((
                    i,
                    Answer {
                        latency,
                        status,
                        body,
                    },
                ));
            }
            answers
        }));
    }
    let mut all = Vec::with_capacity(n);
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let wall = started.elapsed();
    all.sort_by_key(|(i, _)| *i);
    (all.into_iter().map(|(_, a)| a).collect(), wall)
}

/// Latencies sorted, after checking every answer has `status`.
pub fn expect_all(answers: &[Answer], status: u16, what: &str) -> Vec<Duration> {
    for a in answers {
        assert_eq!(
            a.status,
            status,
            "{what} refused: {}",
            String::from_utf8_lossy(&a.body)
        );
    }
    let mut lat: Vec<Duration> = answers.iter().map(|a| a.latency).collect();
    lat.sort();
    lat
}

/// Runs a command to completion; its stderr in the panic when it fails.
pub fn run(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Copies a directory tree (a seeded data directory, for one node to run on).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}
