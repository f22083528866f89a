//! Response-rate limiting and DNS cookies on a real node over loopback:
//! Knot's RRL test matrix (disabled; rate 5 with slip 0, 1 and 2; a
//! whitelist), a random-name flood limited as one flow while a client with
//! a valid server cookie is fully served, TCP never limited, and the COOKIE
//! option end to end. Each burst's replies are counted by the client and
//! compared with the node's `/metrics` counters.
//!
//! `cpid_rrl_total` is process-wide and every other test node whitelists
//! loopback (so counts nothing there); the tests here take turns.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cpid::dns::cookie::Cookies;

use crate::common::{EDNS0, TestNode, raw_query, tcp_raw};

static TURN: Mutex<()> = Mutex::new(());

const A: u16 = 1;
const FLAG_TC: u16 = 0x0200;
const FLAG_AA: u16 = 0x0400;

fn node(rate: u32, slip: u32, enabled: bool, whitelist: Vec<String>) -> TestNode {
    TestNode::start_with(|c| {
        c.dns.rrl.enabled = enabled;
        c.dns.rrl.rate_limit = rate;
        c.dns.rrl.slip = slip;
        c.dns.rrl.whitelist = whitelist;
        c.dns.cookie_secret = Some("e5e973e5a6b2a43f48e7dc849e37bfcf".into());
    })
}

/// `cpid_rrl_total{action=...}` now.
fn rrl_counts(node: &TestNode) -> [u64; 3] {
    let text = node.api().get("/metrics").unwrap().text;
    ["passed", "slipped", "dropped"]
        .map(|a| metric(&text, &format!("cpid_rrl_total{{action=\"{a}\"}}")))
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn flags(reply: &[u8]) -> u16 {
    u16::from_be_bytes([reply[2], reply[3]])
}

fn count(reply: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([reply[4 + 2 * i], reply[5 + 2 * i]])
}

/// A reply that slipped: TC and AA, no answer or authority records.
fn slipped(reply: &[u8]) -> bool {
    flags(reply) & (FLAG_TC | FLAG_AA) == FLAG_TC | FLAG_AA
        && count(reply, 1) == 0
        && count(reply, 2) == 0
}

/// What a client saw of a burst: full replies, slipped ones, and none.
#[derive(Debug, Default)]
struct Seen {
    replied: u64,
    slipped: u64,
    dropped: u64,
    bytes_out: u64,
    bytes_in: u64,
}

/// Sends `queries` from one socket as fast as it can while another thread
/// reads the replies (so the socket's buffer never overflows), until none
/// has come for a second after the last query.
fn burst(addr: SocketAddr, queries: &[Vec<u8>]) -> Seen {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let reader = sock.try_clone().unwrap();
    let sent = AtomicBool::new(false);
    let mut seen = std::thread::scope(|s| {
        let read = s.spawn(|| {
            let mut seen = Seen::default();
            let mut buf = [0u8; 4096];
            let mut got = std::collections::HashSet::new();
            loop {
                let Ok(n) = reader.recv(&mut buf) else {
                    if sent.load(Ordering::SeqCst) {
                        return seen;
                    }
                    continue;
                };
                let reply = &buf[..n];
                assert!(
                    got.insert(u16::from_be_bytes([reply[0], reply[1]])),
                    "one reply per query"
                );
                seen.bytes_in += n as u64;
                if slipped(reply) {
                    seen.slipped += 1;
                } else {
                    assert_eq!(flags(reply) & FLAG_TC, 0, "a full reply is not truncated");
                    seen.replied += 1;
                }
            }
        });
        let mut out = 0;
        for (i, q) in queries.iter().enumerate() {
            sock.send(q).unwrap();
            out += q.len() as u64;
            // A short breath now and then, so a debug-built node's socket
            // buffer does not overflow (that would look like drops).
            if i % 25 == 24 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        sent.store(true, Ordering::SeqCst);
        let mut seen = read.join().unwrap();
        seen.bytes_out = out;
        seen
    });
    seen.dropped = queries.len() as u64 - seen.replied - seen.slipped;
    seen
}

/// `n` queries for one missing name in the zone.
fn missing_name_queries(node: &TestNode, n: u16) -> Vec<Vec<u8>> {
    let name = format!("no-such-name.{}", node.zone_name());
    (0..n).map(|i| raw_query(i, &name, A, EDNS0)).collect()
}

/// Burst, then the node's counters must say what the client saw (±1);
/// with `counted` false (RRL off, whitelisted) they must not move.
fn burst_and_compare(node: &TestNode, queries: &[Vec<u8>], counted: bool) -> Seen {
    let before = rrl_counts(node);
    let seen = burst(node.addr(), queries);
    let want = if counted {
        [seen.replied, seen.slipped, seen.dropped]
    } else {
        [0; 3]
    };
    // The tally is flushed per receive batch: poll until it is in.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let after = rrl_counts(node);
        let delta: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
        let close = delta.iter().zip(want).all(|(d, w)| d.abs_diff(w) <= 1);
        if close {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "server counted {delta:?} (passed, slipped, dropped), client saw {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn rrl_disabled_answers_every_query() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(5, 2, false, Vec::new());
    let seen = burst_and_compare(&node, &missing_name_queries(&node, 60), false);
    assert_eq!(
        (seen.replied, seen.slipped, seen.dropped),
        (60, 0, 0),
        "{seen:?}"
    );
}

#[test]
fn rate_5_slip_0_drops_everything_over_the_rate() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(5, 0, true, Vec::new());
    let seen = burst_and_compare(&node, &missing_name_queries(&node, 60), true);
    assert_eq!(seen.slipped, 0, "{seen:?}");
    assert!(seen.replied >= 5 && seen.replied < 30, "{seen:?}");
    assert!(seen.dropped > 30, "{seen:?}");
}

#[test]
fn rate_5_slip_1_truncates_everything_over_the_rate() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(5, 1, true, Vec::new());
    let seen = burst_and_compare(&node, &missing_name_queries(&node, 60), true);
    assert_eq!(seen.dropped, 0, "{seen:?}");
    assert!(seen.replied >= 5 && seen.replied < 30, "{seen:?}");
    assert!(seen.slipped > 30, "{seen:?}");
}

#[test]
fn rate_5_slip_2_truncates_every_other_answer_over_the_rate() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(5, 2, true, Vec::new());
    let seen = burst_and_compare(&node, &missing_name_queries(&node, 60), true);
    assert!(seen.replied >= 5 && seen.replied < 30, "{seen:?}");
    assert!(seen.slipped.abs_diff(seen.dropped) <= 1, "{seen:?}");
    assert!(seen.slipped > 10, "{seen:?}");
}

#[test]
fn whitelisted_clients_are_never_limited_nor_counted() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(5, 2, true, vec!["127.0.0.0/8".into()]);
    let seen = burst_and_compare(&node, &missing_name_queries(&node, 60), false);
    assert_eq!(
        (seen.replied, seen.slipped, seen.dropped),
        (60, 0, 0),
        "{seen:?}"
    );
}

/// A query with a COOKIE option (`cookie` is its data).
fn cookie_query(id: u16, name: &str, cookie: &[u8]) -> Vec<u8> {
    let mut q = raw_query(id, name, A, EDNS0);
    q.truncate(q.len() - 2);
    q.extend_from_slice(&(4 + cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(&10u16.to_be_bytes());
    q.extend_from_slice(&(cookie.len() as u16).to_be_bytes());
    q.extend_from_slice(cookie);
    q
}

/// The COOKIE option data of a reply, if any.
fn reply_cookie(reply: &[u8]) -> Option<Vec<u8>> {
    let mut at = 12;
    let skip_name = |at: &mut usize| loop {
        let len = reply[*at];
        if len & 0xC0 == 0xC0 {
            *at += 2;
            return;
        }
        *at += 1 + len as usize;
        if len == 0 {
            return;
        }
    };
    for _ in 0..count(reply, 0) {
        skip_name(&mut at);
        at += 4;
    }
    let records = count(reply, 1) + count(reply, 2) + count(reply, 3);
    for _ in 0..records {
        skip_name(&mut at);
        let rtype = u16::from_be_bytes([reply[at], reply[at + 1]]);
        let rdlen = u16::from_be_bytes([reply[at + 8], reply[at + 9]]) as usize;
        let rdata = &reply[at + 10..at + 10 + rdlen];
        at += 10 + rdlen;
        if rtype == 41 {
            let mut o = rdata;
            while o.len() >= 4 {
                let code = u16::from_be_bytes([o[0], o[1]]);
                let len = u16::from_be_bytes([o[2], o[3]]) as usize;
                if code == 10 {
                    return Some(o[4..4 + len].to_vec());
                }
                o = &o[4 + len..];
            }
        }
    }
    None
}

fn udp_reply(addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    crate::common::udp_raw(addr, query).expect("a reply over UDP")
}

#[test]
fn random_name_flood_is_one_flow_and_a_valid_cookie_is_fully_served() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(5, 2, true, Vec::new());
    let zone = node.zone_name();
    // The cookie client learns its server cookie over TCP (never limited).
    let client = *b"\x01\x02\x03\x04\x05\x06\x07\x08";
    let first = tcp_raw(node.addr(), &cookie_query(1, &zone, &client));
    let cookie = reply_cookie(&first).expect("a server cookie");
    assert_eq!(cookie.len(), 24);

    let flood: Vec<Vec<u8>> = (0..300u16)
        .map(|i| {
            raw_query(
                i,
                &format!("r{:08x}.{zone}", u32::from(i).wrapping_mul(2654435761)),
                A,
                EDNS0,
            )
        })
        .collect();
    let before = rrl_counts(&node);
    let served = std::thread::scope(|s| {
        let flood = s.spawn(|| burst(node.addr(), &flood));
        // Meanwhile the cookie client asks for made-up names too, from the
        // same address (the same /24 flow as the flood).
        let mut served = 0;
        for i in 0..20u16 {
            let reply = udp_reply(
                node.addr(),
                &cookie_query(1000 + i, &format!("c{i}.{zone}"), &cookie),
            );
            assert_eq!(flags(&reply) & FLAG_TC, 0, "not slipped");
            assert_eq!(flags(&reply) & 0xF, 3, "NXDOMAIN");
            assert_eq!(count(&reply, 2), 1, "with the SOA");
            assert_eq!(
                reply_cookie(&reply).map(|c| c[..8].to_vec()),
                Some(client.to_vec())
            );
            served += 1;
        }
        let seen = flood.join().unwrap();
        assert!(seen.replied < 30, "300 names are one flow: {seen:?}");
        // What the node limited, half of it slipped (its count: the
        // client cannot tell a dropped answer from a lost query).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = rrl_counts(&node);
            let (slips, drops) = (now[1] - before[1], now[2] - before[2]);
            if slips.abs_diff(seen.slipped) <= 1 && slips.abs_diff(drops) <= 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node: {slips} slipped, {drops} dropped; client {seen:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            seen.bytes_in <= seen.bytes_out,
            "at slip 2 the node sends no more than it receives: {seen:?}"
        );
        served
    });
    assert_eq!(served, 20);
    let after = rrl_counts(&node);
    assert!(
        after[0] - before[0] >= 20,
        "valid cookies pass: {before:?} -> {after:?}"
    );
}

/// A secondary of the node (here 127.0.0.1, allowed to transfer) asks for
/// the SOA after every NOTIFY, from one address: never limited, while the
/// same node limits everyone else.
#[test]
fn the_nodes_own_secondaries_are_never_limited() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let primary = TestNode::start_with(|c| {
        c.dns.rrl.rate_limit = 1;
        c.dns.rrl.slip = 0;
        c.dns.rrl.whitelist = Vec::new();
        c.transfer.secondaries = vec![cpid::config::SecondaryConfig {
            notify: None,
            allow: Some("127.0.0.1".into()),
            key: None,
        }];
    });
    let soa: Vec<Vec<u8>> = (0..40)
        .map(|i| raw_query(i, &primary.zone_name(), 6, None))
        .collect();
    let seen = burst(primary.addr(), &soa);
    assert_eq!(seen.replied, 40, "{seen:?}");
    let other = node(1, 0, true, Vec::new());
    let seen = burst(other.addr(), &missing_name_queries(&other, 10));
    assert!(seen.replied <= 2, "{seen:?}");
}

#[test]
fn tcp_is_never_limited() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(1, 0, true, Vec::new());
    let before = rrl_counts(&node);
    for q in missing_name_queries(&node, 40) {
        let reply = tcp_raw(node.addr(), &q);
        assert_eq!(flags(&reply) & FLAG_TC, 0);
        assert_eq!(flags(&reply) & 0xF, 3, "NXDOMAIN");
    }
    assert_eq!(rrl_counts(&node), before, "TCP answers are not RRL's");
    // UDP from the same address is limited at once.
    let seen = burst(node.addr(), &missing_name_queries(&node, 10));
    assert!(seen.replied <= 2, "{seen:?}");
}

#[test]
fn cookies_are_handed_out_verified_and_malformed_ones_are_formerr() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = node(5, 2, false, Vec::new());
    let zone = node.zone_name();
    let client = *b"\xaa\xbb\xcc\xdd\xee\xff\x00\x11";
    let secret = Cookies::from_config(Some("e5e973e5a6b2a43f48e7dc849e37bfcf")).unwrap();

    // Client cookie only: the node's server cookie for 127.0.0.1.
    let reply = udp_reply(node.addr(), &cookie_query(1, &zone, &client));
    assert_eq!(flags(&reply) & 0xF, 0);
    let cookie = reply_cookie(&reply).expect("a COOKIE option");
    assert_eq!(&cookie[..8], &client);
    assert_eq!(cookie[8], 1, "version 1");
    assert_eq!(&cookie[9..12], &[0, 0, 0], "reserved");
    let stamp = u32::from_be_bytes(cookie[12..16].try_into().unwrap());
    let made = secret.server_cookie(&client, "127.0.0.1".parse().unwrap(), stamp);
    assert_eq!(&cookie[8..], &made, "RFC 9018 server cookie, byte for byte");

    // Returned: answered, with a fresh cookie that verifies again.
    let reply = udp_reply(node.addr(), &cookie_query(2, &zone, &cookie));
    assert_eq!(flags(&reply) & 0xF, 0);
    assert_eq!(flags(&reply) & FLAG_TC, 0);
    assert_eq!(count(&reply, 2), 1, "NODATA with the SOA");
    let again = reply_cookie(&reply).unwrap();
    assert!(secret.verify(&client, &again[8..], "127.0.0.1".parse().unwrap(), stamp));

    // A server cookie that is not ours: answered, with a new one.
    let mut forged = cookie.clone();
    forged[23] ^= 0xFF;
    let reply = udp_reply(node.addr(), &cookie_query(3, &zone, &forged));
    assert_eq!(flags(&reply) & 0xF, 0);
    assert_ne!(reply_cookie(&reply).unwrap(), forged);

    // Malformed lengths: FORMERR, without a cookie.
    for bad in [&client[..7], &cookie[..9], &cookie[..15], &[0u8; 41][..]] {
        let reply = udp_reply(node.addr(), &cookie_query(4, &zone, bad));
        assert_eq!(flags(&reply) & 0xF, 1, "FORMERR for {} bytes", bad.len());
        assert_eq!(reply_cookie(&reply), None);
    }
    // A query without EDNS gets no cookie, and nothing breaks.
    let reply = udp_reply(node.addr(), &raw_query(5, &zone, A, None));
    assert_eq!(flags(&reply) & 0xF, 0);

    let text = node.api().get("/metrics").unwrap().text;
    for (result, at_least) in [("new", 1), ("valid", 1), ("invalid", 1), ("malformed", 4)] {
        let n = metric(
            &text,
            &format!("cpid_dns_cookies_total{{result=\"{result}\"}}"),
        );
        assert!(n >= at_least, "{result}: {n}");
    }
}
