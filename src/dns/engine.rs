//! The answer engine: one query message in, one response message out.
//!
//! Implements the authoritative-server rules of RFC 1034 §4.3.2 for a zone
//! without wildcards (names at or below a zone cut get a referral; the
//! parent answers only the signed delegation record at the cut itself),
//! negative answers per RFC 2308. The protocol checks (header, EDNS(0),
//! opcode, class) are [`query::check`]'s and the bytes are written by the
//! one [`Response`] writer, which applies EDNS(0) (RFC 6891) and truncation
//! (RFC 1035 §4.2.1); what is left here is deciding the answer. Both the
//! UDP fast path and the TCP handler call [`respond`], so there is exactly
//! one place where a node's answer is decided. It never panics on any
//! input, never allocates beyond the output buffer, and never blocks: the
//! only shared state it touches is the hot tier's read lock, held for the
//! copy.

pub use super::query::Transport;
use super::query::{self, Checked};
use super::response::{Empty, Ready, Response, Section};
pub use super::response::{MAX_UDP_PAYLOAD, Rcode, Summary};
use super::wire::{MAX_NAME_LEN, is_within, rtype};
use super::zone::{HotZone, Prepared, Referral, Zone};

/// Answers one query. Returns `None` when the message must be dropped
/// (shorter than a header, or itself a response); otherwise `out` holds the
/// response.
pub fn respond(
    zone: &Zone,
    msg: &[u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Summary> {
    match query::check(msg, transport, out) {
        Ok(c) => Some(zone.read(|z| answer(z, &c, out))),
        Err(done) => done,
    }
}

/// The records of the asked type among a name's RRsets (all for ANY).
#[derive(Clone, Copy)]
struct Answers<'z> {
    rrsets: &'z [Prepared],
    qtype: u16,
}

impl<'z> Answers<'z> {
    fn iter(self) -> impl Iterator<Item = &'z Prepared> {
        let qtype = self.qtype;
        self.rrsets
            .iter()
            .filter(move |set| set.rtype == qtype || qtype == rtype::ANY)
    }
}

impl Section for Answers<'_> {
    fn len(&self) -> usize {
        self.iter().map(|set| set.bytes.len()).sum()
    }
    fn count(&self) -> u16 {
        self.iter().map(|set| set.count).sum()
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        for set in self.iter() {
            out.extend_from_slice(&set.bytes);
        }
    }
}

/// Records whose owner is a name inside the question, written as a
/// compression pointer to it (12 + 255 < 0x3FFF: always reachable):
/// the zone's SOA in a negative answer, a cut's NS and delegation record
/// in a referral.
struct AtQuestion<'z> {
    pointer: [u8; 2],
    rrs: &'z [Box<[u8]>],
}

impl<'z> AtQuestion<'z> {
    fn new(offset_in_qname: usize, rrs: &'z [Box<[u8]>]) -> AtQuestion<'z> {
        let pointer = (0xC000 | (12 + offset_in_qname) as u16).to_be_bytes();
        AtQuestion { pointer, rrs }
    }
}

impl Section for AtQuestion<'_> {
    fn len(&self) -> usize {
        self.rrs.iter().map(|rr| 2 + rr.len()).sum()
    }
    fn count(&self) -> u16 {
        self.rrs.len() as u16
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        for rr in self.rrs {
            out.extend_from_slice(&self.pointer);
            out.extend_from_slice(rr);
        }
    }
}

fn answer(z: &HotZone, c: &Checked<'_>, out: &mut Vec<u8>) -> Summary {
    let qname = c.qname();
    let qtype = c.qtype();
    let apex = z.apex.as_bytes();
    if !is_within(qname, apex) {
        return Response::new(c, Rcode::Refused).empty(out);
    }
    if !z.cuts.is_empty()
        && let Some((offset, referral)) = find_cut(z, qname, apex.len())
        && !(offset == 0 && qtype == rtype::CPREC)
    {
        return write_referral(c, referral, offset, out);
    }
    // The apex is a suffix of the question name, so the SOA owner can be a
    // pointer into the question.
    let soa = AtQuestion::new(
        qname.len().saturating_sub(apex.len()),
        std::slice::from_ref(&z.negative_soa),
    );
    let Some(node) = z.names.get(qname) else {
        return Response::new(c, Rcode::NxDomain)
            .authoritative()
            .write(out, &Empty, &soa, &Empty);
    };
    // ANY over UDP gets one RRset, the smallest (RFC 8482 §4.1): an
    // identifier's name holds its signed record, which would make a small
    // query a large answer; TCP, where the source is proven, gets them all.
    let answers = match node.rrsets.iter().min_by_key(|set| set.bytes.len()) {
        Some(set) if qtype == rtype::ANY && c.transport == Transport::Udp => Answers {
            rrsets: std::slice::from_ref(set),
            qtype: set.rtype,
        },
        _ => Answers {
            rrsets: &node.rrsets,
            qtype,
        },
    };
    // Glue for an in-zone NS is optional when the answer itself fits.
    let glue = answers.iter().find_map(|set| {
        set.additional.as_ref().map(|(count, bytes)| Ready {
            bytes,
            count: *count,
        })
    });
    let nodata = answers.iter().next().is_none().then_some(soa);
    Response::new(c, Rcode::NoError)
        .authoritative()
        .write(out, &answers, &nodata, &glue)
}

/// The topmost zone cut at or above `qname` (below the apex), and its
/// offset inside `qname`.
fn find_cut<'z>(z: &'z HotZone, qname: &[u8], apex_len: usize) -> Option<(usize, &'z Referral)> {
    let mut offsets = [0usize; MAX_NAME_LEN / 2 + 1];
    let mut n = 0;
    let mut pos = 0usize;
    while pos + apex_len < qname.len() {
        let Some(slot) = offsets.get_mut(n) else {
            break;
        };
        *slot = pos;
        n += 1;
        pos += 1 + usize::from(*qname.get(pos)?);
    }
    offsets
        .get(..n)?
        .iter()
        .rev()
        .find_map(|&o| z.cuts.get(qname.get(o..)?).map(|r| (o, &**r)))
}

/// A referral: no answer, not authoritative, the cut's NS and delegation
/// record in authority, glue in additional. Glue for the child's own name
/// servers is needed to follow the referral, so a referral that cannot
/// carry it is truncated.
fn write_referral(c: &Checked<'_>, r: &Referral, offset: usize, out: &mut Vec<u8>) -> Summary {
    let authority = AtQuestion::new(offset, &r.authority);
    let glue = Ready {
        bytes: &r.glue.1,
        count: r.glue.0,
    };
    Response::new(c, Rcode::NoError)
        .additional_required()
        .write(out, &Empty, &authority, &glue)
}
