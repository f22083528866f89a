//! Zone transfer from a cpid node: AXFR and IXFR streams read with a client
//! of our own (every message checked), refusals with the rcodes Knot gives,
//! and real Knot and NSD secondaries that must serve exactly what cpid
//! serves after registrations, updates and withdrawals.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use cpid::config::{SecondaryConfig, TsigKeyConfig};
use cpid::dns::tsig::{self, Chain, TsigKey};
use cpid::ident::identifier::Class;
use cpid::ident::record::{SignedRecord, Value, ValueType};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};

use crate::common::{TestNode, raw_query, udp_raw};
use crate::secondaries::{
    DEADLINE, TsigSpec, differential, knot_secondary_on, nsd_secondary_on, require_knot_and_nsd,
    reserve_port,
};

const AXFR: u16 = 252;
const IXFR: u16 = 251;

fn key_config(spec: &TsigSpec) -> TsigKeyConfig {
    TsigKeyConfig {
        name: spec.name.clone(),
        algorithm: "hmac-sha256".into(),
        secret: spec.secret_b64.clone(),
    }
}

fn tsig_key(spec: &TsigSpec) -> TsigKey {
    TsigKey::new(&spec.name, &spec.secret_b64).unwrap()
}

/// A node whose zone 127.0.0.1 may transfer with `key` (and nobody else),
/// notifying `notify`.
fn node_with(key: &TsigSpec, allow: &str, notify: &[SocketAddr]) -> TestNode {
    node_signed(key, allow, notify, true)
}

/// [`node_with`], its zone signed with DNSSEC or not.
fn node_signed(key: &TsigSpec, allow: &str, notify: &[SocketAddr], dnssec: bool) -> TestNode {
    let (key, allow, notify) = (key.clone(), allow.to_string(), notify.to_vec());
    TestNode::start_with(move |c| {
        c.dns.dnssec.enabled = dnssec;
        c.transfer.keys = vec![key_config(&key)];
        c.transfer.secondaries = vec![SecondaryConfig {
            notify: None,
            allow: Some(allow.clone()),
            key: Some(key.name.clone()),
        }];
        for addr in &notify {
            c.transfer.secondaries.push(SecondaryConfig {
                notify: Some(*addr),
                allow: None,
                key: Some(key.name.clone()),
            });
        }
    })
}

fn issue(node: &TestNode, i: usize) -> SignedRecord {
    node.issue(
        Class::Ic,
        Some("86.31.1005"),
        &[
            ("DESC", &format!("pool {i} of A800 cards"), 0),
            (
                "CP.ENDPOINT",
                &format!("https://pool{i}.dc31.example.internal/api"),
                300,
            ),
        ],
    )
}

fn values(descr: &str) -> Vec<Value> {
    vec![Value {
        index: 1,
        kind: ValueType::parse("DESC").unwrap(),
        data: descr.into(),
        ttl: 0,
        timestamp: cpid::clock::system_now(),
    }]
}

/// A transfer request; IXFR carries `serial` in an authority SOA.
fn request(id: u16, zone: &str, qtype: u16, serial: Option<u32>) -> Vec<u8> {
    let mut q = raw_query(id, zone, qtype, None);
    if let Some(serial) = serial {
        q[9] = 1; // NSCOUNT
        q.extend_from_slice(&[0xC0, 0x0C, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
        q.extend_from_slice(&serial.to_be_bytes());
        q.extend_from_slice(&[0; 16]);
    }
    q
}

/// Every message the server sends for `query` over one TCP connection,
/// until it has been quiet for a second.
fn transfer(addr: SocketAddr, query: &[u8]) -> Vec<Vec<u8>> {
    cpid::testkit::secondaries::tcp_exchange(addr, query, Duration::from_secs(1))
}

fn records(messages: &[Vec<u8>]) -> Vec<Record> {
    messages
        .iter()
        .flat_map(|m| Message::from_vec(m).unwrap().answers.to_vec())
        .collect()
}

fn soa_serial(r: &Record) -> Option<u32> {
    match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

/// Every message verifies as one TSIG chain over the request's MAC.
fn assert_chain(messages: &[Vec<u8>], key: &TsigKey, request_mac: &[u8]) {
    let mut previous: Option<Vec<u8>> = None;
    for (i, m) in messages.iter().enumerate() {
        let chain = match &previous {
            None => Chain::Response(request_mac),
            Some(mac) => Chain::Continued(mac),
        };
        let v = tsig::verify(
            m,
            std::slice::from_ref(key),
            chain,
            cpid::clock::system_now(),
        )
        .unwrap_or_else(|e| panic!("message {i}: {e}"))
        .unwrap_or_else(|| panic!("message {i} is not signed"));
        previous = Some(v.mac);
    }
}

fn signed(query: &mut Vec<u8>, key: &TsigKey) -> Vec<u8> {
    tsig::sign(query, key, Chain::Request, cpid::clock::system_now())
}

#[test]
fn axfr_streams_the_whole_zone_in_signed_messages_soa_first_and_last() {
    let spec = TsigSpec::random("cpid-xfr");
    let node = node_with(&spec, "127.0.0.1", &[]);
    let key = tsig_key(&spec);
    // Enough names for many messages.
    for i in 0..400 {
        issue(&node, i);
    }
    let zone = node.zone_name();
    let mut q = request(0x4242, &zone, AXFR, None);
    let mac = signed(&mut q, &key);
    let messages = transfer(node.addr(), &q);
    assert!(
        messages.len() > 3,
        "a zone this size takes several messages"
    );
    for m in &messages {
        assert!(m.len() < 64 * 1024);
        let msg = Message::from_vec(m).unwrap();
        assert_eq!(
            msg.metadata.id, 0x4242,
            "every message keeps the query's ID"
        );
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
        assert!(msg.metadata.authoritative);
    }
    assert_chain(&messages, &key, &mac);
    let rrs = records(&messages);
    let serial = node.node.registry.zone().serial();
    assert_eq!(rrs.first().and_then(soa_serial), Some(serial), "SOA first");
    assert_eq!(rrs.last().and_then(soa_serial), Some(serial), "SOA last");
    assert_eq!(
        rrs.iter()
            .filter(|r| r.record_type() == RecordType::SOA)
            .count(),
        2
    );
    // The same records `cpid zone export` writes (the export's SOA once),
    // and the zone is signed: an NSEC at every name, an RRSIG over every
    // RRset (dnssec-verify checks the chain in tests/integration/dnssec.rs).
    let dnssec = |r: &Record| matches!(u16::from(r.record_type()), 46 | 47);
    let exported = node.node.registry.zone().records();
    let data: Vec<&Record> = rrs.iter().filter(|r| !dnssec(r)).collect();
    assert_eq!(data.len(), exported.len() + 1);
    let mut names: Vec<String> = data.iter().map(|r| r.name.to_string()).collect();
    names.sort();
    names.dedup();
    assert!(names.len() > 400);
    let nsecs = rrs
        .iter()
        .filter(|r| u16::from(r.record_type()) == 47)
        .count();
    assert_eq!(nsecs, names.len(), "one NSEC per name");
    let mut sets: Vec<(String, RecordType)> = data
        .iter()
        .map(|r| (r.name.to_string(), r.record_type()))
        .collect();
    sets.sort();
    sets.dedup();
    let rrsigs = rrs
        .iter()
        .filter(|r| u16::from(r.record_type()) == 46)
        .count();
    assert_eq!(rrsigs, sets.len() + nsecs, "one RRSIG per RRset and NSEC");
}

#[test]
fn ixfr_sends_the_condensed_difference_a_single_soa_when_current_and_the_zone_when_too_old() {
    let spec = TsigSpec::random("cpid-xfr");
    // Unsigned: the records only (the signed difference is checked in
    // `dns::signed_diff` and against Knot and NSD below).
    let node = node_signed(&spec, "127.0.0.1", &[], false);
    let key = tsig_key(&spec);
    let zone = node.zone_name();
    let kept = issue(&node, 1);
    let changed = issue(&node, 2);
    let gone = issue(&node, 3);
    let old = node.node.registry.zone().serial();
    // Several serials: an update, a withdrawal, a new name.
    let reg = &node.node.registry;
    reg.update(&changed.record().identifier, values("now 16 cards"))
        .unwrap();
    reg.withdraw(&gone.record().identifier).unwrap();
    let added = issue(&node, 4);
    let new = reg.zone().serial();
    assert!(new > old);

    let mut q = request(7, &zone, IXFR, Some(old));
    let mac = signed(&mut q, &key);
    let messages = transfer(node.addr(), &q);
    assert_chain(&messages, &key, &mac);
    let rrs = records(&messages);
    let serials: Vec<Option<u32>> = rrs.iter().map(soa_serial).collect();
    // new SOA, old SOA, removals, new SOA, additions, new SOA.
    assert_eq!(serials.first(), Some(&Some(new)));
    assert_eq!(serials.get(1), Some(&Some(old)));
    assert_eq!(serials.last(), Some(&Some(new)));
    let split = serials
        .iter()
        .skip(2)
        .position(|s| *s == Some(new))
        .unwrap()
        + 2;
    let removed = &rrs[2..split];
    let additions = &rrs[split + 1..rrs.len() - 1];
    let owner = |r: &SignedRecord| node.dns_name(&r.record().identifier).to_lowercase();
    let names = |rs: &[Record]| {
        let mut v: Vec<String> = rs
            .iter()
            .map(|r| r.name.to_string().to_lowercase())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    let (removed_names, added_names) = (names(removed), names(additions));
    assert!(!removed_names.contains(&owner(&kept)), "{removed_names:?}");
    assert!(!added_names.contains(&owner(&kept)), "{added_names:?}");
    assert!(removed_names.contains(&owner(&changed)) && added_names.contains(&owner(&changed)));
    assert!(removed_names.contains(&owner(&gone)));
    assert!(added_names.contains(&owner(&added)) && !removed_names.contains(&owner(&added)));
    // Only what changed: the difference does not grow with the zone.
    assert!(removed.len() + additions.len() < 40, "{}", rrs.len());

    // Current: one SOA.
    let mut q = request(8, &zone, IXFR, Some(new));
    signed(&mut q, &key);
    let rrs = records(&transfer(node.addr(), &q));
    assert_eq!(rrs.len(), 1);
    assert_eq!(soa_serial(&rrs[0]), Some(new));

    // A serial the history does not hold: the whole zone, AXFR-style.
    let mut q = request(9, &zone, IXFR, Some(old.wrapping_sub(1000)));
    signed(&mut q, &key);
    let rrs = records(&transfer(node.addr(), &q));
    assert_eq!(rrs.first().and_then(soa_serial), Some(new));
    assert_ne!(rrs.get(1).and_then(soa_serial), Some(old));
    assert_eq!(rrs.last().and_then(soa_serial), Some(new));
    assert_eq!(rrs.len(), reg.zone().records().len() + 1);

    // Over UDP: the small difference whole, signed.
    let later = issue(&node, 5);
    let mut q = request(10, &zone, IXFR, Some(new));
    // EDNS(0), 1232 bytes: OPT after the authority SOA.
    q[11] = 1;
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    let mac = signed(&mut q, &key);
    let answer = udp_raw(node.addr(), &q).unwrap();
    let rrs = Message::from_vec(&answer).unwrap().answers.to_vec();
    assert!(rrs.len() > 4, "{rrs:?}");
    assert!(
        rrs.iter()
            .any(|r| r.name.to_string().to_lowercase() == owner(&later))
    );
    assert!(
        tsig::verify(
            &answer,
            std::slice::from_ref(&key),
            Chain::Response(&mac),
            cpid::clock::system_now()
        )
        .unwrap()
        .is_some()
    );
    // Too big for a datagram: the SOA alone.
    for i in 10..30 {
        issue(&node, i);
    }
    let mut q = request(11, &zone, IXFR, Some(old));
    signed(&mut q, &key);
    let msg = Message::from_vec(&udp_raw(node.addr(), &q).unwrap()).unwrap();
    assert_eq!(msg.answers.len(), 1);
    assert_eq!(soa_serial(&msg.answers[0]), Some(reg.zone().serial()));
}

/// The TSIG record of a response (the last record, no other data):
/// (error, MAC length), the length as 0 or "some".
fn tsig_of(a: &[u8]) -> Option<(u16, usize)> {
    let ar = u16::from_be_bytes([a[10], a[11]]);
    if ar == 0 {
        return None;
    }
    let n = a.len();
    let error = u16::from_be_bytes([a[n - 4], a[n - 3]]);
    let empty_mac = a[n - 8] == 0 && a[n - 7] == 0;
    Some((error, if empty_mac { 0 } else { 32 }))
}

#[test]
fn refusals_carry_the_rcode_and_tsig_error_knot_gives_and_change_nothing() {
    let spec = TsigSpec::random("cpid-xfr");
    let node = node_with(&spec, "127.0.0.1", &[]);
    let zone = node.zone_name();
    issue(&node, 1);
    let rcode = |m: &[u8]| m[3] & 0x0F;
    let first = |q: &[u8]| transfer(node.addr(), q).into_iter().next().unwrap();

    // Unsigned: NOTAUTH, no TSIG.
    let a = first(&request(1, &zone, AXFR, None));
    assert_eq!(rcode(&a), 9);
    assert_eq!(tsig_of(&a), None);
    // Wrong secret: NOTAUTH, BADSIG, unsigned.
    let mut q = request(2, &zone, AXFR, None);
    signed(&mut q, &tsig_key(&spec.with_other_secret()));
    let a = first(&q);
    assert_eq!(rcode(&a), 9);
    assert_eq!(tsig_of(&a), Some((16, 0)));
    // Unknown key: NOTAUTH, BADKEY.
    let mut q = request(3, &zone, AXFR, None);
    signed(&mut q, &tsig_key(&TsigSpec::random("someone-else")));
    let a = first(&q);
    assert_eq!(rcode(&a), 9);
    assert_eq!(tsig_of(&a), Some((17, 0)));
    // A corrupted byte in the signed request: BADSIG.
    let mut q = request(4, &zone, AXFR, None);
    signed(&mut q, &tsig_key(&spec));
    let at = q.len() - 20;
    q[at] ^= 0x40;
    assert_eq!(tsig_of(&first(&q)).map(|t| t.0), Some(16));
    // Another zone: NOTAUTH.
    let mut q = request(5, "87.cpid.internal.", AXFR, None);
    signed(&mut q, &tsig_key(&spec));
    assert_eq!(rcode(&first(&q)), 9);
    // IXFR without its SOA: FORMERR.
    let mut q = request(6, &zone, IXFR, None);
    signed(&mut q, &tsig_key(&spec));
    assert_eq!(rcode(&first(&q)), 1);
    // AXFR over UDP: NOTIMP.
    let a = udp_raw(node.addr(), &request(7, &zone, AXFR, None)).unwrap();
    assert_eq!(rcode(&a), 4);
    // The node goes on answering.
    let a = udp_raw(node.addr(), &raw_query(8, &zone, 6, None)).unwrap();
    assert_eq!(rcode(&a), 0);
    let metrics = node.api().get("/metrics").unwrap().text;
    for reason in ["badsig", "badkey", "acl", "formerr", "not_this_zone"] {
        assert!(
            metrics.contains(&format!(
                "cpid_zone_transfer_refusals_total{{reason=\"{reason}\"}}"
            )),
            "{reason} not counted:\n{metrics}"
        );
    }
}

/// A secondary's SOA refresh is an ordinary query signed with its key:
/// the answer is signed over the query's MAC (Knot drops an unsigned one,
/// "failed to verify TSIG"), on UDP and on TCP; a query signed with a key
/// the node does not have gets NOTAUTH with BADKEY, as from Knot.
#[test]
fn a_signed_soa_query_gets_a_signed_answer_and_a_bad_key_notauth() {
    let spec = TsigSpec::random("cpid-xfr");
    let node = node_with(&spec, "127.0.0.1", &[]);
    let key = tsig_key(&spec);
    let zone = node.zone_name();
    let record = issue(&node, 1);
    let check = |answer: &[u8], mac: &[u8]| {
        assert_eq!(answer[3] & 0x0F, 0, "NOERROR");
        let v = tsig::verify(
            answer,
            std::slice::from_ref(&key),
            Chain::Response(mac),
            cpid::clock::system_now(),
        )
        .expect("the answer's TSIG verifies");
        assert!(v.is_some(), "the answer is signed");
        let msg = Message::from_vec(answer).unwrap();
        assert_eq!(msg.answers.len(), 1);
        assert_eq!(msg.answers[0].record_type(), RecordType::SOA);
        assert!(msg.metadata.authoritative);
    };
    let mut q = raw_query(21, &zone, 6, None);
    let mac = signed(&mut q, &key);
    check(&udp_raw(node.addr(), &q).unwrap(), &mac);
    let mut q = raw_query(22, &zone, 6, crate::common::EDNS0);
    let mac = signed(&mut q, &key);
    check(&transfer(node.addr(), &q)[0], &mac);
    // Any question, not only the SOA: the identifier's records, signed.
    let name = node.dns_name(&record.record().identifier);
    let mut q = raw_query(23, &name, 16, crate::common::EDNS0);
    let mac = signed(&mut q, &key);
    let answer = udp_raw(node.addr(), &q).unwrap();
    assert!(
        tsig::verify(
            &answer,
            std::slice::from_ref(&key),
            Chain::Response(&mac),
            cpid::clock::system_now()
        )
        .unwrap()
        .is_some()
    );
    assert!(!Message::from_vec(&answer).unwrap().answers.is_empty());

    let mut q = raw_query(24, &zone, 6, None);
    signed(&mut q, &tsig_key(&TsigSpec::random("someone-else")));
    let a = udp_raw(node.addr(), &q).unwrap();
    assert_eq!(a[3] & 0x0F, 9);
    assert_eq!(tsig_of(&a), Some((17, 0)));
    // Unsigned queries are answered as ever, without a TSIG.
    let a = udp_raw(node.addr(), &raw_query(25, &zone, 6, None)).unwrap();
    assert_eq!(a[3] & 0x0F, 0);
    assert_eq!(tsig_of(&a), None);
}

#[test]
fn the_right_key_from_the_wrong_address_is_notauth_signed() {
    let spec = TsigSpec::random("cpid-xfr");
    let node = node_with(&spec, "127.0.0.2/32", &[]);
    let key = tsig_key(&spec);
    let mut q = request(1, &node.zone_name(), AXFR, None);
    let mac = signed(&mut q, &key);
    let answer = transfer(node.addr(), &q).into_iter().next().unwrap();
    assert_eq!(answer[3] & 0x0F, 9);
    assert!(
        tsig::verify(
            &answer,
            &[key],
            Chain::Response(&mac),
            cpid::clock::system_now()
        )
        .unwrap()
        .is_some(),
        "a refusal of a signed request is signed"
    );
}

/// A TCP proxy to `to` that, while `corrupt` is set, flips one byte of the
/// last record (the TSIG MAC) of every message going back to the client.
fn corrupting_proxy(
    to: SocketAddr,
    corrupt: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let corrupt = corrupt.clone();
            std::thread::spawn(move || {
                let Ok(mut server) = TcpStream::connect(to) else {
                    return;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                });
                loop {
                    let mut len = [0u8; 2];
                    if server.read_exact(&mut len).is_err() {
                        break;
                    }
                    let mut msg = vec![0; usize::from(u16::from_be_bytes(len))];
                    if server.read_exact(&mut msg).is_err() {
                        break;
                    }
                    if corrupt.load(std::sync::atomic::Ordering::SeqCst) && msg.len() > 40 {
                        let at = msg.len() - 12;
                        msg[at] ^= 0x01;
                    }
                    if client
                        .write_all(&len)
                        .and_then(|()| client.write_all(&msg))
                        .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn knot_and_nsd_secondaries_serve_exactly_what_cpid_serves() {
    if !require_knot_and_nsd() {
        return;
    }
    let spec = TsigSpec::random("cpid-xfr");
    let (knot_port, nsd_port) = (reserve_port(), reserve_port());
    let loopback = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    // Signed (the default): the changes go by IXFR with their RRSIGs and
    // NSECs, and each secondary's copy must be the node's, byte for byte.
    let node = node_with(
        &spec,
        "127.0.0.1",
        &[loopback(knot_port), loopback(nsd_port)],
    );
    let key = tsig_key(&spec);
    let zone = node.zone_name();
    let mut recs: Vec<SignedRecord> = (0..20).map(|i| issue(&node, i)).collect();
    let knot = knot_secondary_on(knot_port, &zone, node.addr(), Some(&spec));
    let nsd = nsd_secondary_on(nsd_port, &zone, node.addr(), Some(&spec));
    let reg = &node.node.registry;

    let check = |recs: &[SignedRecord], gone: &[SignedRecord]| {
        let serial = reg.zone().serial();
        for s in [&knot, &nsd] {
            assert_eq!(
                s.wait_serial(serial, DEADLINE),
                Ok(serial),
                "{} did not follow:\n{}",
                s.kind(),
                s.log()
            );
        }
        let mut names: Vec<(String, u16)> = vec![(zone.clone(), 6), (zone.clone(), 2)];
        for r in recs.iter().chain(gone) {
            let name = node.dns_name(&r.record().identifier);
            // TXT, URI, the signed record, NODATA (A).
            for t in [16, 256, 65280, 1] {
                names.push((name.clone(), t));
            }
        }
        names.push((format!("gc-999999-x.1005.31.{zone}"), 16));
        names.push((format!("nothing.{zone}"), 1));
        for s in [&knot, &nsd] {
            let diffs = differential(node.addr(), s.addr(), &names);
            assert!(
                diffs.is_empty(),
                "{} answers differently from cpid:\n{}",
                s.kind(),
                diffs.join("\n")
            );
        }
    };
    check(&recs, &[]);

    // Registrations, an update and a withdrawal reach both through NOTIFY
    // and IXFR.
    for i in 20..30 {
        recs.push(issue(&node, i));
    }
    reg.update(&recs[3].record().identifier, values("updated"))
        .unwrap();
    let gone = recs.remove(5);
    reg.withdraw(&gone.record().identifier).unwrap();
    check(&recs, std::slice::from_ref(&gone));
    let metrics = node.api().get("/metrics").unwrap().text;
    for m in [
        "cpid_zone_transfers_total{kind=\"ixfr\"}",
        "cpid_notify_acked_total",
    ] {
        assert!(metrics.contains(m), "{m} missing:\n{metrics}");
    }
    // Knot says how each change came: one AXFR to start, then IXFRs (the
    // metrics are the whole test process's).
    let log = knot.log();
    let done = |what: &str| {
        log.lines()
            .filter(|l| l.contains(what) && l.contains("finished"))
            .count()
    };
    assert_eq!(done("AXFR, incoming"), 1, "{log}");
    assert!(done("IXFR, incoming") >= 1, "{log}");
    assert!(!log.contains("fallback"), "{log}");

    // Each secondary holds exactly the node's signed zone: every record,
    // RRSIG and NSEC the IXFRs removed was there, and nothing is missing.
    let copy = |addr: SocketAddr, query: &[u8]| {
        let mut rrs: Vec<Vec<u8>> = records(&transfer(addr, query))
            .iter()
            .map(|r| {
                use hickory_proto::serialize::binary::BinEncodable;
                r.to_bytes().unwrap()
            })
            .collect();
        rrs.sort();
        rrs
    };
    let mut q = request(21, &zone, AXFR, None);
    signed(&mut q, &key);
    let own = copy(node.addr(), &q);
    assert!(own.len() > 200, "{}", own.len());
    for s in [&knot, &nsd] {
        let theirs = copy(s.addr(), &request(22, &zone, AXFR, None));
        assert!(
            theirs == own,
            "{}'s copy differs: {} records against {}; only theirs {:?}, only ours {:?}",
            s.kind(),
            theirs.len(),
            own.len(),
            theirs.iter().filter(|r| !own.contains(r)).count(),
            own.iter().filter(|r| !theirs.contains(r)).count(),
        );
    }
}

#[test]
fn a_secondary_refuses_a_transfer_whose_tsig_was_corrupted_and_keeps_its_serial() {
    if !require_knot_and_nsd() {
        return;
    }
    let spec = TsigSpec::random("cpid-xfr");
    let knot_port = reserve_port();
    let node = node_with(
        &spec,
        "127.0.0.1",
        &[SocketAddr::from(([127, 0, 0, 1], knot_port))],
    );
    let zone = node.zone_name();
    issue(&node, 1);
    let corrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let proxy = corrupting_proxy(node.addr(), corrupt.clone());
    let knot = knot_secondary_on(knot_port, &zone, proxy, Some(&spec));
    let first = node.node.registry.zone().serial();
    assert_eq!(
        knot.wait_serial(first, DEADLINE),
        Ok(first),
        "{}",
        knot.log()
    );

    corrupt.store(true, std::sync::atomic::Ordering::SeqCst);
    issue(&node, 2);
    let second = node.node.registry.zone().serial();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert_eq!(knot.serial(), Some(first), "took a corrupted transfer");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        knot.log().to_lowercase().contains("tsig"),
        "knot says nothing of the TSIG:\n{}",
        knot.log()
    );
    corrupt.store(false, std::sync::atomic::Ordering::SeqCst);
    issue(&node, 3);
    let third = node.node.registry.zone().serial();
    assert!(third > second);
    assert_eq!(
        knot.wait_serial(third, DEADLINE),
        Ok(third),
        "{}",
        knot.log()
    );
}
