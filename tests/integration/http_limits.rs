//! `[http.limits]` against a running node on loopback: request rates per
//! address and per signing key (429 + `Retry-After` + a JSON reason),
//! slow-loris clients cut off by the header and body timeouts while others
//! are served, the connection bound, and the body limit on a route that
//! read bodies without one. Every refusal is counted in
//! `cpid_http_limited_total{limit}`.
//!
//! Loopback is exempt from rates by default, so these nodes clear
//! `rate_exempt`. Deadlines are generous; nothing here times the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cpid::api::client::{nonce, signed_headers};
use cpid::config::Rate;
use cpid::events::Kind;
use cpid::ident::keys::NodeKey;
use serde_json::json;

use crate::common::*;

/// The counter `cpid_http_limited_total{limit}` in this process (the
/// nodes under test run in it; other tests may add to it meanwhile).
fn limited(limit: &str) -> u64 {
    let text = cpid::telemetry::render();
    let wanted = format!("cpid_http_limited_total{{limit=\"{limit}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads one response (with a `content-length` body) from `s`; `None`
/// when the connection closed first.
fn read_reply(s: &mut TcpStream) -> Option<Reply> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Sends `request` on a new connection and reads the answer (which may
/// come before the server read all of it).
fn exchange(addr: SocketAddr, request: &[u8]) -> Option<Reply> {
    let mut s = TcpStream::connect(addr).unwrap();
    let _ = s.write_all(request);
    read_reply(&mut s)
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: cpid\r\n\r\n").into_bytes()
}

/// Whether the server closes `s` (EOF or reset) before `deadline`.
fn closed_within(s: &mut TcpStream, deadline: Duration) -> bool {
    let until = Instant::now() + deadline;
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 512];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return true,
        }
    }
    false
}

fn assert_rate_limited(r: &Reply) {
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json()["error"], "rate_limited", "{r:?}");
    assert!(
        r.json()["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "{r:?}"
    );
    let after: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {r:?}"));
    assert!(after >= 1, "{r:?}");
}

/// The rate-limit events the node's feed holds after a flush.
fn rate_limited_events(node: &TestNode) -> Vec<cpid::events::Event> {
    node.node.events.flush().unwrap();
    node.node
        .events
        .list(None, Some(Kind::RateLimited), 1000)
        .unwrap()
}

#[test]
fn a_burst_from_one_address_beyond_its_rate_gets_429_with_retry_after() {
    let node = TestNode::start_with(|c| {
        c.http.limits.rate_exempt.clear();
        c.http.limits.rate_per_address = Rate {
            per_second: 1,
            burst: 5,
        };
    });
    let before = limited("address");
    let replies: Vec<Reply> = (0..12)
        .map(|_| exchange(node.http_addr(), &get("/healthz")).unwrap())
        .collect();
    // The burst is served; beyond it (at one a second) most are refused.
    assert!(
        replies.iter().take(5).all(|r| r.status == 200),
        "{replies:?}"
    );
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(refused.len() >= 3, "{replies:?}");
    for r in &refused {
        assert_rate_limited(r);
    }
    assert!(
        limited("address") >= before + refused.len() as u64,
        "counted"
    );
    // A refused request without a body leaves its connection open for the
    // next one.
    let mut s = TcpStream::connect(node.http_addr()).unwrap();
    let mut answers = Vec::new();
    while answers.len() < 20 && !answers.contains(&429) {
        s.write_all(&get("/healthz")).unwrap();
        answers.push(read_reply(&mut s).expect("an answer").status);
    }
    assert!(answers.contains(&429), "{answers:?}");
    s.write_all(&get("/healthz")).unwrap();
    assert!(read_reply(&mut s).is_some(), "the connection stays open");
    let events = rate_limited_events(&node);
    let e = events
        .iter()
        .find(|e| e.source == "127.0.0.1")
        .unwrap_or_else(|| panic!("a rate_limited event from the address: {events:?}"));
    assert_eq!(e.subject, "/healthz");
    assert!(e.count >= refused.len() as u64, "coalesced: {e:?}");
}

#[test]
fn signed_requests_beyond_the_key_rate_get_429_and_other_keys_are_served() {
    let node = TestNode::start_with(|c| {
        c.registration.policy = cpid::config::Policy::Open;
        c.http.limits.rate_exempt.clear();
        c.http.limits.rate_per_address = Rate {
            per_second: 0,
            burst: 0,
        };
        c.http.limits.rate_per_key = Rate {
            per_second: 1,
            burst: 3,
        };
    });
    let register = |key: &NodeKey| {
        let body = json!({
            "name": "Lingang AI",
            "organisation": "91310000MA1K4XYZ",
            "contact": "noc@provider.example",
            "region": "31",
            "public_key": key.public().to_public_pem(),
        });
        node.api()
            .signed("POST", "/v1/providers", Some(&body), key)
            .unwrap()
    };
    let key = NodeKey::generate().unwrap();
    assert_eq!(register(&key).status, 201);
    // Signed reads of the provider's transactions, each a new nonce.
    let signed_list = |key: &NodeKey| {
        let path = "/v1/transactions";
        let now = cpid::clock::system_now() as i64;
        let headers = signed_headers("GET", path, b"", key, &nonce().unwrap(), now).unwrap();
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: cpid\r\n");
        for (name, value) in &headers {
            req.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
        }
        req.push_str("\r\n");
        exchange(node.http_addr(), req.as_bytes()).unwrap()
    };
    let before = limited("key");
    let replies: Vec<Reply> = (0..8).map(|_| signed_list(&key)).collect();
    let refused: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(refused.len() >= 3, "{replies:?}");
    for r in &refused {
        assert_rate_limited(r);
    }
    assert!(
        replies.iter().all(|r| r.status == 429 || r.status == 200),
        "{replies:?}"
    );
    assert!(limited("key") >= before + refused.len() as u64, "counted");
    // Another key has its own allowance.
    let other = NodeKey::generate().unwrap();
    assert_eq!(register(&other).status, 201);
    assert_eq!(signed_list(&other).status, 200);
    // The event names the key, not the address.
    let events = rate_limited_events(&node);
    let keyid = key.public().key_id().to_string();
    assert!(
        events.iter().any(|e| e.source == keyid),
        "a rate_limited event from {keyid}: {events:?}"
    );
}

#[test]
fn a_client_that_stops_inside_its_headers_is_cut_off_while_others_are_served() {
    let node = TestNode::start_with(|c| c.http.limits.header_timeout_ms = 500);
    let before = limited("header_timeout");
    let mut slow = TcpStream::connect(node.http_addr()).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: cp")
        .unwrap();
    // Meanwhile a normal client is served.
    let r = exchange(node.http_addr(), &get("/healthz")).unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        closed_within(&mut slow, Duration::from_secs(20)),
        "the slow client is disconnected"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while limited("header_timeout") <= before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(limited("header_timeout") > before, "counted");
    // A client that connects and never sends a byte goes the same way.
    let mut silent = TcpStream::connect(node.http_addr()).unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(20)));
}

#[test]
fn a_client_that_dribbles_its_body_gets_408_and_is_cut_off() {
    let node = TestNode::start_with(|c| c.http.limits.body_timeout_ms = 500);
    let before = limited("body_timeout");
    let mut s = TcpStream::connect(node.http_addr()).unwrap();
    s.write_all(
        b"POST /v1/select HTTP/1.1\r\nHost: cpid\r\nContent-Type: application/json\r\n\
          Content-Length: 1000\r\n\r\n{",
    )
    .unwrap();
    let mut dribbler = s.try_clone().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let dribble = std::thread::spawn(move || {
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            if dribbler.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let r = read_reply(&mut s).expect("a 408 before the connection closes");
    assert_eq!(r.status, 408, "{r:?}");
    assert_eq!(r.json()["error"], "body_timeout", "{r:?}");
    assert!(closed_within(&mut s, Duration::from_secs(20)), "cut off");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    dribble.join().unwrap();
    assert!(limited("body_timeout") > before, "counted");
    // Others are served.
    assert_eq!(
        exchange(node.http_addr(), &get("/healthz")).unwrap().status,
        200
    );
}

#[test]
fn a_connection_over_the_bound_is_refused_and_the_bound_frees_as_they_close() {
    let node = TestNode::start_with(|c| c.http.limits.max_connections = 2);
    let addr = node.http_addr();
    let before = limited("connections");
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&get("/healthz")).unwrap();
            assert_eq!(read_reply(&mut s).unwrap().status, 200);
            s
        })
        .collect();
    // The third is answered 503 on accept (or, at worst, just closed).
    let mut third = TcpStream::connect(addr).unwrap();
    if let Some(r) = read_reply(&mut third) {
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.json()["error"], "too_many_connections", "{r:?}");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(closed_within(&mut third, Duration::from_secs(20)));
    assert!(limited("connections") > before, "counted");
    // The first two still work (keep-alive).
    for s in &mut held {
        s.write_all(&get("/healthz")).unwrap();
        assert_eq!(read_reply(s).unwrap().status, 200);
    }
    drop(held);
    // Once they are closed, new connections are served again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if exchange(addr, &get("/healthz")).is_some_and(|r| r.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the bound never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_route_has_a_body_limit_the_witness_endpoint_included() {
    let node = TestNode::start();
    let before = limited("body_size");
    // `POST /witness/add-checkpoint` read its body with axum's default
    // limit (2 MiB); now `http.max_body_bytes` (64 KiB) holds there too.
    // A declared length over the limit is refused on the head alone.
    let declared = |line: &str| {
        format!(
            "{line} HTTP/1.1\r\nHost: cpid\r\nContent-Length: {}\r\n\r\n",
            100 * 1024
        )
    };
    let r = exchange(
        node.http_addr(),
        declared("POST /witness/add-checkpoint").as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"], "body_too_large", "{r:?}");
    // A chunked body that grows past the limit is refused as it arrives.
    let mut chunked = String::from(
        "POST /witness/add-checkpoint HTTP/1.1\r\nHost: cpid\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for _ in 0..7 {
        chunked.push_str(&format!("{:x}\r\n{}\r\n", 10 * 1024, "y".repeat(10 * 1024)));
    }
    let r = exchange(node.http_addr(), chunked.as_bytes()).unwrap();
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(r.json()["error"], "body_too_large", "{r:?}");
    assert!(limited("body_size") >= before + 2, "counted");
    // A GET route refuses a body over the limit as well.
    let r = exchange(node.http_addr(), declared("GET /healthz").as_bytes()).unwrap();
    assert_eq!(r.status, 413, "{r:?}");
}
