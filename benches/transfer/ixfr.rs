//! The size of the IXFR for one changed identifier, in a small and a large
//! zone: a registration (serial A), an update of that identifier (serial
//! B), then `IXFR=A` signed with TSIG over TCP, every byte of the answer
//! attributed to one part.

use std::time::Duration;

use cpid::dns::tsig::{self, Chain, TsigKey};
use cpid::testkit::secondaries::{tcp_exchange, udp_query};
use serde_json::json;

use crate::primary::{Primary, Seeded, register};

const IXFR: u16 = 251;
const SOA: u16 = 6;
const TSIG: u16 = 250;

/// A transfer request for `zone`, signed with `key`; IXFR carries `serial`
/// in an authority SOA.
pub fn request(zone: &str, qtype: u16, serial: Option<u32>, key: &TsigKey) -> Vec<u8> {
    // udp_query's question without its OPT record.
    let mut q = udp_query(0x1fe0, zone, qtype);
    q.truncate(q.len() - 11);
    q[11] = 0; // ARCOUNT
    q[2] = 0; // no RD
    if let Some(serial) = serial {
        q[9] = 1; // NSCOUNT
        q.extend_from_slice(&[0xC0, 0x0C, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
        q.extend_from_slice(&serial.to_be_bytes());
        q.extend_from_slice(&[0; 16]);
    }
    tsig::sign(&mut q, key, Chain::Request, cpid::clock::system_now());
    q
}

/// The end of the (possibly compressed) name at `at`.
fn skip_name(m: &[u8], mut at: usize) -> usize {
    loop {
        let len = m[at];
        if len == 0 {
            return at + 1;
        }
        if len & 0xC0 == 0xC0 {
            return at + 2;
        }
        at += 1 + usize::from(len);
    }
}

/// Bytes of an IXFR answer by part.
#[derive(Default, Debug)]
pub struct Breakdown {
    pub messages: usize,
    /// DNS header and question, and the 2-byte TCP length prefix.
    pub header: usize,
    pub soas: usize,
    pub removed: (usize, usize),
    pub added: (usize, usize),
    pub tsig: usize,
    pub other: usize,
}

impl Breakdown {
    pub fn total(&self) -> usize {
        self.header + self.soas + self.removed.1 + self.added.1 + self.tsig + self.other
    }
}

/// Attributes every byte of `messages` (an IXFR answer in condensed form:
/// SOA, old SOA, removals, SOA, additions, SOA).
pub fn breakdown(messages: &[Vec<u8>]) -> Breakdown {
    let mut b = Breakdown {
        messages: messages.len(),
        ..Breakdown::default()
    };
    let mut soas_seen = 0;
    for m in messages {
        let count = |i: usize| usize::from(u16::from_be_bytes([m[i], m[i + 1]]));
        let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
        let mut at = 12;
        for _ in 0..qd {
            at = skip_name(m, at) + 4;
        }
        b.header += at + 2;
        for i in 0..an + ns + ar {
            let start = at;
            let end_name = skip_name(m, at);
            let rtype = u16::from_be_bytes([m[end_name], m[end_name + 1]]);
            let rdlen = usize::from(u16::from_be_bytes([m[end_name + 8], m[end_name + 9]]));
            at = end_name + 10 + rdlen;
            let size = at - start;
            if i >= an {
                if rtype == TSIG {
                    b.tsig += size;
                } else {
                    b.other += size;
                }
                continue;
            }
            if rtype == SOA {
                soas_seen += 1;
                b.soas += size;
            } else if soas_seen == 2 {
                b.removed.0 += 1;
                b.removed.1 += size;
            } else {
                b.added.0 += 1;
                b.added.1 += size;
            }
        }
        assert_eq!(at, m.len(), "the walk ends at the message's end");
    }
    b
}

/// One changed identifier in a node over `seeded`: its IXFR, measured.
fn measure(seeded: &Seeded, signed: bool) -> Breakdown {
    let node = Primary::start(seeded, &[], signed);
    let provider = node.provider();
    let api = node.api();
    let before = node.serial();
    let id = register(&api, &provider, 0);
    let from = node.wait_serial_after(before);
    let update = json!({"values": [
        {"type": "CP.ENDPOINT", "data": "https://pool-0.xfr.bench.example/v2"},
    ]});
    let r = api
        .signed(
            "PUT",
            &format!("/v1/identifiers/{id}"),
            Some(&update),
            &provider,
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let to = node.wait_serial_after(from);
    let key = TsigKey::new(&node.key.name, &node.key.secret_b64).unwrap();
    let q = request(&node.zone, IXFR, Some(from), &key);
    let messages = tcp_exchange(node.dns, &q, Duration::from_millis(500));
    let b = breakdown(&messages);
    println!(
        "IXFR {from} → {to} in a zone of {} identifiers: {} B in {} message(s): \
         header+question {} B, SOAs {} B, removed {} RRs {} B, added {} RRs {} B, TSIG {} B, other {} B",
        seeded.names,
        b.total(),
        b.messages,
        b.header,
        b.soas,
        b.removed.0,
        b.removed.1,
        b.added.0,
        b.added.1,
        b.tsig,
        b.other
    );
    b
}

pub fn run(zones: &[&Seeded], signed: bool) {
    println!("\n## IXFR for one changed identifier");
    let sizes: Vec<(u64, usize)> = zones
        .iter()
        .map(|s| (s.names, measure(s, signed).total()))
        .collect();
    if let [(n0, b0), (n1, b1)] = sizes.as_slice() {
        println!(
            "IXFR bytes: {b0} B at {n0} identifiers, {b1} B at {n1} ({:+} B, ratio {:.3})",
            *b1 as i64 - *b0 as i64,
            *b1 as f64 / *b0 as f64
        );
    }
}
