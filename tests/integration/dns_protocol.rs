//! Every protocol case of the authoritative server, over UDP and TCP,
//! against a node on an ephemeral loopback port.

use cpid::dns::wire::rtype;
use cpid::ident::identifier::Class;
use cpid::ident::record::SignedRecord;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use crate::common::*;

fn private(msg: &Message, t: u16) -> Vec<Vec<u8>> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::Unknown { code, rdata } if u16::from(*code) == t => Some(rdata.anything.clone()),
            _ => None,
        })
        .collect()
}

fn sample(node: &TestNode) -> SignedRecord {
    node.issue(
        Class::Ic,
        Some("86.31.1005"),
        &[
            ("DESC", "8x A800 training pool", 0),
            ("CP.ENDPOINT", "https://pool.dc31.example.internal/api", 300),
        ],
    )
}

#[test]
fn identifier_name_answers_txt_uri_and_signed_record_over_udp_and_tcp() {
    let node = TestNode::start();
    let rec = sample(&node);
    let name = node.dns_name(&rec.record().identifier);
    for transport in ["udp", "tcp"] {
        let ask = |t: u16| {
            let q = raw_query(7, &name, t, EDNS0);
            if transport == "udp" {
                udp(node.addr(), &q)
            } else {
                tcp(node.addr(), &q)
            }
        };
        let txt = ask(rtype::TXT);
        assert_eq!(
            txt.metadata.response_code,
            ResponseCode::NoError,
            "{transport}"
        );
        assert!(txt.metadata.authoritative);
        let strings = txt_strings(&txt);
        assert!(
            strings
                .iter()
                .any(|s| s.contains(&format!("id={}", rec.record().identifier))),
            "{strings:?}"
        );
        assert!(
            strings
                .iter()
                .any(|s| s.contains("data=8x A800 training pool"))
        );
        // The RRset TTL is the smallest of its values' TTLs.
        assert!(txt.answers.iter().all(|r| r.ttl == 300));

        let uri = ask(rtype::URI);
        assert_eq!(uri.answers.len(), 1);
        assert_eq!(uri.answers[0].record_type(), RecordType::Unknown(256));

        let signed = ask(rtype::CPREC);
        let blobs = private(&signed, rtype::CPREC);
        assert_eq!(blobs.len(), 1);
        let decoded = SignedRecord::decode(&blobs[0]).unwrap();
        assert_eq!(decoded, rec);
        decoded.verify(&node.node.registry.key().public()).unwrap();
    }
}

#[test]
fn apex_answers_soa_ns_with_glue_and_the_node_key() {
    let node = TestNode::start();
    let apex = node.zone_name();
    let soa = udp(node.addr(), &raw_query(1, &apex, rtype::SOA, EDNS0));
    assert_eq!(soa.answers.len(), 1);
    assert_eq!(soa.answers[0].record_type(), RecordType::SOA);

    let ns = udp(node.addr(), &raw_query(2, &apex, rtype::NS, EDNS0));
    assert_eq!(ns.answers.len(), 1);
    let glue: Vec<_> = ns
        .additionals
        .iter()
        .filter(|r| r.record_type() == RecordType::A)
        .collect();
    assert_eq!(glue.len(), 1, "in-zone name server comes with glue");
    assert_eq!(glue[0].name.to_ascii(), format!("ns1.{apex}"));

    let key = udp(node.addr(), &raw_query(3, &apex, rtype::CPKEY, EDNS0));
    let blobs = private(&key, rtype::CPKEY);
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0][0], 15, "algorithm 15 = Ed25519");
    assert_eq!(
        &blobs[0][1..],
        node.node.registry.key().public().to_bytes().as_slice()
    );

    let a = udp(
        node.addr(),
        &raw_query(4, &format!("ns1.{apex}"), rtype::A, EDNS0),
    );
    assert_eq!(a.answers.len(), 1);
}

#[test]
fn unknown_name_is_nxdomain_with_the_soa_and_negative_ttl() {
    let node = TestNode::start();
    let rec = sample(&node);
    let name = node
        .dns_name(&rec.record().identifier)
        .replacen("ic-", "gc-", 1);
    for msg in [
        udp(node.addr(), &raw_query(9, &name, rtype::TXT, EDNS0)),
        tcp(node.addr(), &raw_query(9, &name, rtype::TXT, None)),
    ] {
        assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
        assert!(msg.metadata.authoritative);
        assert!(msg.answers.is_empty());
        assert_eq!(msg.authorities.len(), 1);
        let soa = &msg.authorities[0];
        assert_eq!(soa.record_type(), RecordType::SOA);
        assert_eq!(soa.name.to_ascii(), node.zone_name());
        assert_eq!(soa.ttl, 300, "min(SOA TTL, SOA MINIMUM), RFC 2308 §5");
    }
}

#[test]
fn existing_name_with_another_type_is_nodata_with_the_soa() {
    let node = TestNode::start();
    let rec = sample(&node);
    let name = node.dns_name(&rec.record().identifier);
    let msg = udp(node.addr(), &raw_query(5, &name, rtype::A, EDNS0));
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert!(msg.answers.is_empty());
    assert_eq!(msg.authorities[0].record_type(), RecordType::SOA);

    // The prefix names above an identifier are empty non-terminals: NODATA.
    let ent = format!("1005.31.{}", node.zone_name());
    let msg = udp(node.addr(), &raw_query(6, &ent, rtype::TXT, EDNS0));
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert_eq!(msg.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn names_outside_the_zone_are_refused() {
    let node = TestNode::start();
    for name in ["example.com.", "87.cpid.internal.", "186.cpid.internal."] {
        let msg = udp(node.addr(), &raw_query(8, name, rtype::A, EDNS0));
        assert_eq!(msg.metadata.response_code, ResponseCode::Refused, "{name}");
        assert!(!msg.metadata.authoritative);
        assert!(msg.answers.is_empty() && msg.authorities.is_empty());
    }
}

#[test]
fn other_opcodes_get_notimp_and_other_classes_refused() {
    let node = TestNode::start();
    let apex = node.zone_name();
    // Opcode 2 (STATUS) and 5 (UPDATE).
    for opcode in [2u16, 5] {
        let q = raw_query_with(10, opcode << 11, &apex, rtype::SOA, 1, EDNS0);
        let raw = udp_raw(node.addr(), &q).unwrap();
        assert_eq!(raw[3] & 0x0F, 4, "NOTIMP for opcode {opcode}");
    }
    let q = raw_query_with(11, 0, &apex, rtype::TXT, 3, EDNS0); // class CH
    assert_eq!(
        udp(node.addr(), &q).metadata.response_code,
        ResponseCode::Refused
    );
}

#[test]
fn question_count_other_than_one_is_formerr() {
    let node = TestNode::start();
    let apex = node.zone_name();
    let mut zero = raw_query(12, &apex, rtype::SOA, None);
    zero[5] = 0;
    zero.truncate(12);
    let mut two = raw_query(13, &apex, rtype::SOA, None);
    let question = two[12..].to_vec();
    two[5] = 2;
    two.extend_from_slice(&question);
    for q in [zero, two] {
        let raw = udp_raw(node.addr(), &q).unwrap();
        assert_eq!(raw[3] & 0x0F, 1, "FORMERR");
        assert_eq!(&raw[0..2], &q[0..2], "id echoed");
    }
}

#[test]
fn edns_is_echoed_with_payload_clamped_and_badvers_for_version_one() {
    let node = TestNode::start();
    let apex = node.zone_name();
    let big = Some(Edns {
        payload: 65_000,
        version: 0,
    });
    let msg = udp(node.addr(), &raw_query(14, &apex, rtype::SOA, big));
    let edns = msg.edns.expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);

    let no_edns = udp(node.addr(), &raw_query(15, &apex, rtype::SOA, None));
    assert!(no_edns.edns.is_none(), "no OPT without one in the query");

    let v1 = Some(Edns {
        payload: 1232,
        version: 1,
    });
    let msg = udp(node.addr(), &raw_query(16, &apex, rtype::SOA, v1));
    // 16 is BADVERS in a response to a query with OPT (RFC 6891 §9);
    // hickory names the shared code BADSIG.
    assert_eq!(u16::from(msg.metadata.response_code), 16);
    assert!(msg.answers.is_empty());
}

#[test]
fn large_answers_truncate_over_udp_and_come_whole_over_tcp() {
    let node = TestNode::start();
    let long = "x".repeat(700);
    // A descriptor with its devices' serials is long too (about 800 bytes).
    let serials: Vec<String> = (0..40).map(|n| format!("\"SN{n:08}\"")).collect();
    let resource = format!(
        r#"{{"schema":"cpid.resource/1","class":"SC","region":"11","unit":"node","units_total":10,"cpu_cores":640,"devices":[{{"model":"MI250X","count":40,"peak_tflops":{{"fp64":95.7}},"serials":[{}]}}]}}"#,
        serials.join(",")
    );
    cpid::ident::resource::ResourceDescriptor::parse_for(&resource, Class::Sc).unwrap();
    assert!(resource.len() > 700);
    let rec = node.issue(
        Class::Sc,
        None,
        &[("DESC", &long, 0), ("CP.RESOURCE", &resource, 0)],
    );
    let name = node.dns_name(&rec.record().identifier);

    // Without EDNS the limit is 512: header + question only, TC set, and not
    // one stray byte after the question (the hickory 0.26.3 bug).
    let q = raw_query(17, &name, rtype::CPREC, None);
    let raw = udp_raw(node.addr(), &q).unwrap();
    assert_eq!(raw.len(), q.len(), "header + question only");
    let msg = Message::from_vec(&raw).unwrap();
    assert!(msg.metadata.truncation);
    assert!(msg.answers.is_empty());

    // With EDNS 1232 it still does not fit.
    let msg = udp(node.addr(), &raw_query(18, &name, rtype::CPREC, EDNS0));
    assert!(msg.metadata.truncation);
    assert!(msg.edns.is_some());

    let msg = tcp(node.addr(), &raw_query(19, &name, rtype::CPREC, None));
    assert!(!msg.metadata.truncation);
    assert_eq!(
        SignedRecord::decode(&private(&msg, rtype::CPREC)[0]).unwrap(),
        rec
    );
}

#[test]
fn matching_ignores_case_and_the_question_case_is_echoed() {
    let node = TestNode::start();
    let rec = sample(&node);
    let name = node.dns_name(&rec.record().identifier);
    let mixed: String = name
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    let q = raw_query(20, &mixed, rtype::TXT, EDNS0);
    let raw = udp_raw(node.addr(), &q).unwrap();
    let qlen = name_wire(&mixed).len() + 4;
    assert_eq!(
        &raw[12..12 + qlen],
        &q[12..12 + qlen],
        "question echoed byte for byte"
    );
    let msg = Message::from_vec(&raw).unwrap();
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert!(!msg.answers.is_empty());
}

#[test]
fn withdrawn_record_answers_nxdomain_and_updates_show_at_once() {
    let node = TestNode::start();
    let rec = sample(&node);
    let id = rec.record().identifier.clone();
    let name = node.dns_name(&id);
    let updated = node
        .node
        .registry
        .update(&id, rec.record().values[..1].to_vec())
        .unwrap();
    let msg = udp(node.addr(), &raw_query(21, &name, rtype::CPREC, EDNS0));
    let got = SignedRecord::decode(&private(&msg, rtype::CPREC)[0]).unwrap();
    assert_eq!(got.record().version, 2);
    assert_eq!(got, updated);
    // The URI RRset went with the endpoint value.
    let msg = udp(node.addr(), &raw_query(22, &name, rtype::URI, EDNS0));
    assert!(msg.answers.is_empty());

    node.node.registry.withdraw(&id).unwrap();
    let msg = udp(node.addr(), &raw_query(23, &name, rtype::TXT, EDNS0));
    assert_eq!(msg.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn soa_serial_grows_with_every_change() {
    let node = TestNode::start();
    let apex = node.zone_name();
    let serial = |n: &TestNode| match &udp(n.addr(), &raw_query(24, &apex, rtype::SOA, EDNS0))
        .answers[0]
        .data
    {
        RData::SOA(soa) => soa.serial,
        other => panic!("not an SOA: {other:?}"),
    };
    let before = serial(&node);
    sample(&node);
    let after = serial(&node);
    assert!(after > before, "{after} > {before}");
}

#[test]
fn hickory_udp_loop_gives_the_same_answers_as_the_fast_path() {
    let fast = TestNode::start();
    let rec = sample(&fast);
    let slow = TestNode::hickory_udp();
    // Same data in both: import the signed record into the second node is
    // not possible (different keys), so compare answers that do not depend on
    // the key: NXDOMAIN, REFUSED, FORMERR, BADVERS and the SOA shape.
    let unknown = fast
        .dns_name(&rec.record().identifier)
        .replacen("ic-", "st-", 1);
    let queries = [
        raw_query(30, &unknown, rtype::TXT, EDNS0),
        raw_query(31, "example.com.", rtype::A, None),
        raw_query(32, &fast.zone_name(), rtype::NS, None),
        raw_query(
            33,
            &fast.zone_name(),
            rtype::SOA,
            Some(Edns {
                payload: 512,
                version: 1,
            }),
        ),
    ];
    for q in &queries {
        let a = udp(fast.addr(), q);
        let b = udp(slow.addr(), q);
        assert_eq!(a.metadata.response_code, b.metadata.response_code);
        assert_eq!(a.answers.len(), b.answers.len());
        assert_eq!(a.authorities.len(), b.authorities.len());
        assert_eq!(a.edns.is_some(), b.edns.is_some());
    }
}

// ---------------------------------------------------------------------------
// TCP connection handling (RFC 1035 §4.2.2, RFC 7766)
// ---------------------------------------------------------------------------

mod tcp_connections {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;

    fn framed(q: &[u8]) -> Vec<u8> {
        let mut f = (q.len() as u16).to_be_bytes().to_vec();
        f.extend_from_slice(q);
        f
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    fn read_answer(s: &mut TcpStream) -> Message {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).unwrap();
        Message::from_vec(&buf).unwrap()
    }

    /// True when the server closed the connection: end of stream or a
    /// reset, not a read timeout and not more bytes.
    fn closed(s: &mut TcpStream, within: Duration) -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        let mut buf = [0u8; 1];
        match s.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }

    fn answers_promptly(addr: SocketAddr, name: &str, id: u16) {
        let t = Instant::now();
        let mut s = connect(addr);
        s.write_all(&framed(&raw_query(id, name, rtype::TXT, None)))
            .unwrap();
        let msg = read_answer(&mut s);
        assert_eq!(msg.metadata.id, id);
        assert!(!msg.answers.is_empty());
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }

    #[test]
    fn pipelined_queries_in_one_write_are_all_answered_in_order() {
        let node = TestNode::start();
        let rec = sample(&node);
        let name = node.dns_name(&rec.record().identifier);
        let mut all = Vec::new();
        for i in 0..50u16 {
            // Answers and NXDOMAINs alternate, so sizes differ.
            let q = if i % 2 == 0 {
                raw_query(1000 + i, &name, rtype::TXT, None)
            } else {
                raw_query(
                    1000 + i,
                    &format!("zz{i}.{}", node.zone_name()),
                    rtype::TXT,
                    None,
                )
            };
            all.extend(framed(&q));
        }
        let mut s = connect(node.addr());
        s.write_all(&all).unwrap();
        for i in 0..50u16 {
            let msg = read_answer(&mut s);
            assert_eq!(msg.metadata.id, 1000 + i);
            let rcode = if i % 2 == 0 {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            assert_eq!(msg.metadata.response_code, rcode, "query {i}");
        }
        // The connection stays open for more.
        s.write_all(&framed(&raw_query(7, &name, rtype::TXT, None)))
            .unwrap();
        assert_eq!(read_answer(&mut s).metadata.id, 7);
    }

    #[test]
    fn queries_written_one_byte_at_a_time_are_answered() {
        let node = TestNode::start();
        let rec = sample(&node);
        let name = node.dns_name(&rec.record().identifier);
        let mut bytes = framed(&raw_query(41, &name, rtype::TXT, None));
        bytes.extend(framed(&raw_query(42, &name, rtype::URI, None)));
        let mut s = connect(node.addr());
        for b in &bytes {
            s.write_all(std::slice::from_ref(b)).unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
        let a = read_answer(&mut s);
        let b = read_answer(&mut s);
        assert_eq!((a.metadata.id, b.metadata.id), (41, 42));
        assert!(!a.answers.is_empty());
        assert_eq!(b.answers.len(), 1, "one URI");
    }

    #[test]
    fn a_zero_length_or_garbage_frame_closes_only_its_connection() {
        let node = TestNode::start();
        let rec = sample(&node);
        let name = node.dns_name(&rec.record().identifier);
        let mut other = connect(node.addr());
        other
            .write_all(&framed(&raw_query(1, &name, rtype::TXT, None)))
            .unwrap();
        assert_eq!(read_answer(&mut other).metadata.id, 1);

        // A zero length: the query before it is answered, then the server
        // closes.
        let mut s = connect(node.addr());
        let mut bytes = framed(&raw_query(2, &name, rtype::TXT, None));
        bytes.extend([0, 0]);
        s.write_all(&bytes).unwrap();
        assert_eq!(read_answer(&mut s).metadata.id, 2);
        assert!(closed(&mut s, Duration::from_secs(5)));

        // Shorter than a header: closed.
        let mut s = connect(node.addr());
        s.write_all(&framed(&[1, 2, 3, 4, 5])).unwrap();
        assert!(closed(&mut s, Duration::from_secs(5)));

        // A response instead of a query: closed.
        let mut s = connect(node.addr());
        let mut response = raw_query(3, &name, rtype::TXT, None);
        response[2] |= 0x80;
        s.write_all(&framed(&response)).unwrap();
        assert!(closed(&mut s, Duration::from_secs(5)));

        // The largest frame there is (65 535 bytes) is read whole: a header
        // of zeros asks no question, so FORMERR, and the connection goes on.
        let mut s = connect(node.addr());
        s.write_all(&framed(&vec![0u8; 65_535])).unwrap();
        let msg = read_answer(&mut s);
        assert_eq!(msg.metadata.response_code, ResponseCode::FormErr);
        s.write_all(&framed(&raw_query(4, &name, rtype::TXT, None)))
            .unwrap();
        assert_eq!(read_answer(&mut s).metadata.id, 4);

        // The first connection never noticed.
        other
            .write_all(&framed(&raw_query(5, &name, rtype::TXT, None)))
            .unwrap();
        assert_eq!(read_answer(&mut other).metadata.id, 5);
    }

    #[test]
    fn idle_connections_are_closed_after_the_timeout_even_when_bytes_trickle() {
        let node = TestNode::start_with(|c| c.dns.tcp_timeout_secs = 1);
        let rec = sample(&node);
        let name = node.dns_name(&rec.record().identifier);

        let mut s = connect(node.addr());
        s.write_all(&framed(&raw_query(1, &name, rtype::TXT, None)))
            .unwrap();
        assert_eq!(read_answer(&mut s).metadata.id, 1);
        let t = Instant::now();
        assert!(closed(&mut s, Duration::from_secs(5)));
        let idle = t.elapsed();
        assert!(
            idle >= Duration::from_millis(800) && idle < Duration::from_secs(4),
            "{idle:?}"
        );

        // One byte every 300 ms never makes a whole query: still closed.
        let mut s = connect(node.addr());
        let q = framed(&raw_query(2, &name, rtype::TXT, None));
        let t = Instant::now();
        for b in &q {
            if s.write_all(std::slice::from_ref(b)).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            if t.elapsed() > Duration::from_secs(4) {
                break;
            }
        }
        assert!(closed(&mut s, Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    }

    #[test]
    fn connections_beyond_the_limit_are_closed_and_served_again_once_one_ends() {
        let node = TestNode::start_with(|c| c.dns.tcp_max_connections = 2);
        let rec = sample(&node);
        let name = node.dns_name(&rec.record().identifier);
        let q = framed(&raw_query(9, &name, rtype::TXT, None));
        let mut a = connect(node.addr());
        let mut b = connect(node.addr());
        for s in [&mut a, &mut b] {
            s.write_all(&q).unwrap();
            assert_eq!(read_answer(s).metadata.id, 9);
        }
        let mut c = connect(node.addr());
        let _ = c.write_all(&q);
        assert!(closed(&mut c, Duration::from_secs(5)), "a third is refused");
        // The two keep working.
        for s in [&mut a, &mut b] {
            s.write_all(&q).unwrap();
            assert_eq!(read_answer(s).metadata.id, 9);
        }
        drop(a);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if tcp_try(node.addr(), &raw_query(9, &name, rtype::TXT, None)).is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "a slot frees when a client leaves"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // UDP never depended on any of it.
        let msg = udp(node.addr(), &raw_query(10, &name, rtype::TXT, None));
        assert!(!msg.answers.is_empty());
    }

    #[test]
    fn a_client_that_never_reads_does_not_stall_others() {
        let node = TestNode::start_with(|c| c.dns.tcp_timeout_secs = 2);
        let rec = sample(&node);
        let name = node.dns_name(&rec.record().identifier);
        let mut stuck = connect(node.addr());
        // A small receive window, so the server's writes block soon.
        nix::sys::socket::setsockopt(&stuck, nix::sys::socket::sockopt::RcvBuf, &4096).unwrap();
        stuck
            .set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut burst = Vec::new();
        for i in 0..500u16 {
            burst.extend(framed(&raw_query(i, &name, rtype::ANY, None)));
        }
        // Write until the server stops reading from it.
        let t = Instant::now();
        let mut blocked = false;
        while t.elapsed() < Duration::from_secs(30) {
            if stuck.write_all(&burst).is_err() {
                blocked = true;
                break;
            }
        }
        assert!(
            blocked,
            "the server's writes to a client that never reads block"
        );
        // Everyone else is answered at once, over and over.
        for id in 0..20 {
            answers_promptly(node.addr(), &name, id);
        }
        // And the stuck client is cut off once a write has waited for the
        // idle timeout (reading earlier would unblock that write).
        std::thread::sleep(Duration::from_secs(3));
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = vec![0u8; 1 << 16];
        stuck
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        loop {
            match stuck.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
            assert!(Instant::now() < deadline, "the stuck client is closed");
        }
    }
}
