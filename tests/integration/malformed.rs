//! Hostile input: a thousand malformed packets, then a correct answer. No
//! panic, no stuck worker, and every reply that is sent is well-formed.

use cpid::dns::wire::rtype;
use hickory_proto::op::{Message, ResponseCode};

use crate::common::*;

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn malformed(rng: &mut XorShift, valid: &[u8], i: usize) -> Vec<u8> {
    let mut q = valid.to_vec();
    match i % 8 {
        // Random bytes of random length.
        0 => (0..rng.next() % 600).map(|_| rng.next() as u8).collect(),
        // Truncated at every possible place.
        1 => {
            q.truncate((rng.next() as usize) % valid.len());
            q
        }
        // Bit flips anywhere past the header flags' QR bit.
        2 => {
            for _ in 0..1 + rng.next() % 4 {
                let at = 4 + (rng.next() as usize) % (q.len() - 4);
                q[at] ^= 1 << (rng.next() % 8);
            }
            q
        }
        // A compression pointer loop in the question.
        3 => {
            q.truncate(12);
            q.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
            q
        }
        // Absurd section counts.
        4 => {
            q[6..12].copy_from_slice(&[0xFF; 6]);
            q
        }
        // Reserved label types (0x40, 0x80).
        5 => {
            q[12] = 0x40 | (q[12] & 0x3F);
            q
        }
        // Trailing garbage.
        6 => {
            q.extend((0..1 + rng.next() % 40).map(|_| rng.next() as u8));
            q
        }
        // An OPT with a broken option length.
        _ => {
            let n = q.len();
            q[n - 2..].copy_from_slice(&[0, 8]);
            q.extend_from_slice(&[0, 10, 0, 200]);
            q
        }
    }
}

#[test]
fn a_thousand_malformed_packets_then_a_correct_answer() {
    let node = TestNode::start();
    let apex = node.zone_name();
    let valid = raw_query(0x4242, &apex, rtype::SOA, EDNS0);
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut replies = 0;
    let check = |reply: &[u8]| {
        let msg = Message::from_vec(reply).expect("every reply parses");
        let rcode = msg.metadata.response_code;
        assert!(
            matches!(
                rcode,
                ResponseCode::FormErr
                    | ResponseCode::NoError
                    | ResponseCode::NXDomain
                    | ResponseCode::Refused
                    | ResponseCode::NotImp
            ) || u16::from(rcode) == 16, // BADVERS
            "unexpected {rcode:?}"
        );
    };
    // Bursts of 50, then drain what came back: dropped packets cost no
    // time-outs.
    sock.set_read_timeout(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    for burst in 0..20 {
        for i in 0..50 {
            let q = malformed(&mut rng, &valid, burst * 50 + i);
            sock.send_to(&q, node.addr()).unwrap();
        }
        while let Ok(n) = sock.recv(&mut buf) {
            replies += 1;
            check(&buf[..n]);
        }
    }
    assert!(
        replies > 100,
        "FORMERR is sent where a header was readable ({replies})"
    );
    // Over TCP too, on one connection that must stay usable.
    for i in 0..50 {
        let q = malformed(&mut rng, &valid, i);
        if q.len() >= 12 {
            // The server may answer FORMERR or close the connection; either
            // way it must keep serving.
            let _ = tcp_try(node.addr(), &q);
        }
    }
    let msg = udp(node.addr(), &valid);
    assert_eq!(msg.metadata.response_code, ResponseCode::NoError);
    assert_eq!(msg.metadata.id, 0x4242);
    assert_eq!(msg.answers.len(), 1);
    let msg = tcp(node.addr(), &valid);
    assert_eq!(msg.answers.len(), 1);
}
