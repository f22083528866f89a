//! The answer engine: one query message in, one response message out.
//!
//! Implements the authoritative-server rules of RFC 1034 §4.3.2 for a zone
//! without wildcards (names at or below a zone cut get a referral; the
//! parent answers only the signed delegation record at the cut itself), negative answers per RFC 2308, EDNS(0)
//! per RFC 6891 and truncation per RFC 1035 §4.2.1. Both the UDP fast path and
//! the TCP handler call [`respond`], so there is exactly one place where an
//! answer is decided. It never panics on any input, never allocates beyond
//! the output buffer, and never blocks: the only shared state it touches is
//! the hot tier's read lock, held for the copy.

use super::wire::{CLASS_ANY, CLASS_IN, MAX_NAME_LEN, Reader, WireError, is_within, rtype};
use super::zone::{HotZone, Prepared, Referral, Zone};

/// Response codes cpid sends (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    BadVers,
}

impl Rcode {
    /// The full 12-bit code.
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::BadVers => 16,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::BadVers => "BADVERS",
        }
    }
}

/// The transport a query came in on; it sets the response size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The largest UDP payload cpid sends or advertises (the DNS Flag Day 2020
/// value, which avoids IP fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// What was sent, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub rcode: Rcode,
    pub qtype: u16,
    pub answers: u16,
    pub truncated: bool,
}

/// The parts of a query the engine needs.
pub(crate) struct Query<'a> {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    /// Name, type and class exactly as received (case preserved).
    pub(crate) question: &'a [u8],
    pub(crate) qtype: u16,
    qclass: u16,
    pub(crate) edns: Option<Edns>,
}

#[derive(Clone, Copy)]
pub(crate) struct Edns {
    payload: u16,
    version: u8,
}

pub(crate) const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
pub(crate) const FLAG_TC: u16 = 0x0200;
pub(crate) const FLAG_RD: u16 = 0x0100;
pub(crate) const FLAG_RA: u16 = 0x0080;
pub(crate) const FLAG_CD: u16 = 0x0010;
pub(crate) const OPCODE_MASK: u16 = 0x7800;
pub(crate) const OPT_LEN: usize = 11;

/// A query that passed the protocol checks, ready to be answered.
pub(crate) struct Checked<'a> {
    pub(crate) query: Query<'a>,
    /// The question name, lower-cased, uncompressed wire form.
    pub(crate) qname: [u8; MAX_NAME_LEN],
    pub(crate) qname_len: usize,
    /// The largest response that may be sent.
    pub(crate) limit: usize,
}

impl Checked<'_> {
    pub(crate) fn qname(&self) -> &[u8] {
        &self.qname[..self.qname_len]
    }
}

/// The protocol checks every answerer shares: header, one question,
/// EDNS(0), opcode, class and meta types. `Err` carries what to do instead
/// of answering: `None` to drop the message, `Some` when `out` already
/// holds an error response.
pub(crate) fn check<'a>(
    msg: &'a [u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> Result<Checked<'a>, Option<Summary>> {
    out.clear();
    let mut r = Reader::new(msg);
    let header = (|| Some((r.u16().ok()?, r.u16().ok()?, r.u16().ok()?)))();
    let Some((id, flags, qdcount)) = header else {
        return Err(None);
    };
    let counts = (|| Some((r.u16().ok()?, r.u16().ok()?, r.u16().ok()?)))();
    let Some((ancount, nscount, arcount)) = counts else {
        return Err(None);
    };
    if flags & FLAG_QR != 0 {
        return Err(None);
    }
    // Without exactly one readable question there is nothing to echo: a
    // bare header with FORMERR.
    let formerr = |out: &mut Vec<u8>| {
        let f = (flags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | FLAG_QR | rcode_low(Rcode::FormErr);
        write_header(out, id, f, 0, 0, 0, 0);
        Err(Some(summary(Rcode::FormErr, 0, 0, false)))
    };
    if qdcount != 1 {
        return formerr(out);
    }

    let mut qname = [0u8; MAX_NAME_LEN];
    let (query, qname_len) = match parse(&mut r, &mut qname, id, flags, ancount, nscount, arcount) {
        Ok(q) => q,
        Err(_) => return formerr(out),
    };

    let limit = match (transport, query.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => 512,
        (Transport::Udp, Some(e)) => usize::from(e.payload.clamp(512, MAX_UDP_PAYLOAD)),
    };

    let refuse = |rcode: Rcode, out: &mut Vec<u8>| {
        Err(Some(write_response(
            out,
            &query,
            rcode,
            0,
            &Sections::default(),
            limit,
        )))
    };
    if query.flags & OPCODE_MASK != 0 {
        return refuse(Rcode::NotImp, out);
    }
    if query.edns.is_some_and(|e| e.version > 0) {
        return refuse(Rcode::BadVers, out);
    }
    match query.qtype {
        rtype::OPT => return refuse(Rcode::FormErr, out),
        rtype::MAILA | rtype::MAILB => return refuse(Rcode::NotImp, out),
        // Zone transfer is not offered on this path; over UDP it is never valid.
        rtype::AXFR | rtype::IXFR if transport == Transport::Udp => {
            return refuse(Rcode::FormErr, out);
        }
        rtype::AXFR | rtype::IXFR => return refuse(Rcode::Refused, out),
        _ => {}
    }
    if query.qclass != CLASS_IN && query.qclass != CLASS_ANY {
        return refuse(Rcode::Refused, out);
    }
    Ok(Checked {
        query,
        qname,
        qname_len,
        limit,
    })
}

/// Answers one query. Returns `None` when the message must be dropped
/// (shorter than a header, or itself a response); otherwise `out` holds the
/// response.
pub fn respond(
    zone: &Zone,
    msg: &[u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Summary> {
    match check(msg, transport, out) {
        Ok(c) => Some(zone.read(|z| answer(z, &c.query, c.qname(), c.limit, out))),
        Err(done) => done,
    }
}

/// A bare response with `rcode` and no records (REFUSED, SERVFAIL …).
pub(crate) fn refuse(c: &Checked<'_>, rcode: Rcode, out: &mut Vec<u8>) -> Summary {
    out.clear();
    write_response(out, &c.query, rcode, 0, &Sections::default(), c.limit)
}

#[derive(Default)]
struct Sections<'z> {
    /// The RRsets of the name; those of the asked type are the answer.
    rrsets: &'z [Prepared],
    qtype: u16,
    /// The SOA for the authority section, and the offset of the zone apex
    /// inside the question name, which becomes the SOA's owner pointer.
    negative_soa: Option<(&'z [u8], u16)>,
    additional: Option<(u16, &'z [u8])>,
}

impl<'z> Sections<'z> {
    fn answers(&self) -> impl Iterator<Item = &'z Prepared> + use<'z> {
        let qtype = self.qtype;
        self.rrsets
            .iter()
            .filter(move |set| set.rtype == qtype || qtype == rtype::ANY)
    }
}

fn answer(z: &HotZone, q: &Query<'_>, qname: &[u8], limit: usize, out: &mut Vec<u8>) -> Summary {
    let apex = z.apex.as_bytes();
    if !is_within(qname, apex) {
        return write_response(out, q, Rcode::Refused, 0, &Sections::default(), limit);
    }
    if !z.cuts.is_empty()
        && let Some((offset, referral)) = find_cut(z, qname, apex.len())
        && !(offset == 0 && q.qtype == rtype::CPREC)
    {
        return write_referral(out, q, referral, offset, limit);
    }
    let mut sections = Sections::default();
    // The apex is a suffix of the question name, so the SOA owner can be a
    // compression pointer into the question (at most 12 + 255 < 0x3FFF).
    let soa = (&*z.negative_soa, (12 + qname.len() - apex.len()) as u16);
    let rcode = match z.names.get(qname) {
        None => {
            sections.negative_soa = Some(soa);
            Rcode::NxDomain
        }
        Some(node) => {
            sections.rrsets = &node.rrsets;
            sections.qtype = q.qtype;
            sections.additional = sections
                .answers()
                .find_map(|set| set.additional.as_ref().map(|(n, glue)| (*n, &**glue)));
            if sections.answers().next().is_none() {
                sections.negative_soa = Some(soa);
            }
            Rcode::NoError
        }
    };
    write_response(out, q, rcode, FLAG_AA, &sections, limit)
}

/// The topmost zone cut at or above `qname` (below the apex), and its
/// offset inside `qname`.
fn find_cut<'z>(z: &'z HotZone, qname: &[u8], apex_len: usize) -> Option<(usize, &'z Referral)> {
    let mut offsets = [0usize; MAX_NAME_LEN / 2 + 1];
    let mut n = 0;
    let mut pos = 0usize;
    while pos + apex_len < qname.len() && n < offsets.len() {
        offsets[n] = pos;
        n += 1;
        pos += 1 + usize::from(*qname.get(pos)?);
    }
    offsets[..n]
        .iter()
        .rev()
        .find_map(|&o| z.cuts.get(qname.get(o..)?).map(|r| (o, r)))
}

/// A referral: no answer, not authoritative, the cut's NS and delegation
/// record in authority, glue in additional. Glue for the child's own name
/// servers is needed to follow the referral, so a referral that cannot
/// carry it is truncated.
fn write_referral(
    out: &mut Vec<u8>,
    q: &Query<'_>,
    r: &Referral,
    offset: usize,
    limit: usize,
) -> Summary {
    let opt_len = if q.edns.is_some() { OPT_LEN } else { 0 };
    let base = 12 + q.question.len() + opt_len;
    let authority_len: usize = r.authority.iter().map(|a| 2 + a.len()).sum();
    let truncated = base + authority_len + r.glue.1.len() > limit;
    let flags = (q.flags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | FLAG_QR;
    let ar_opt = u16::from(q.edns.is_some());
    if truncated {
        write_header(out, q.id, flags | FLAG_TC, 1, 0, 0, ar_opt);
        out.extend_from_slice(q.question);
    } else {
        write_header(
            out,
            q.id,
            flags,
            1,
            0,
            r.authority.len() as u16,
            r.glue.0 + ar_opt,
        );
        out.extend_from_slice(q.question);
        // 12 + 255 < 0x3FFF: the cut is always reachable by a pointer.
        let pointer = (0xC000 | (12 + offset) as u16).to_be_bytes();
        for rr in &r.authority {
            out.extend_from_slice(&pointer);
            out.extend_from_slice(rr);
        }
        out.extend_from_slice(&r.glue.1);
    }
    if q.edns.is_some() {
        write_opt(out, Rcode::NoError);
    }
    summary(Rcode::NoError, q.qtype, 0, truncated)
}

pub(crate) fn summary(rcode: Rcode, qtype: u16, answers: u16, truncated: bool) -> Summary {
    Summary {
        rcode,
        qtype,
        answers,
        truncated,
    }
}

pub(crate) fn rcode_low(rcode: Rcode) -> u16 {
    rcode.code() & 0x000F
}

pub(crate) fn write_header(
    out: &mut Vec<u8>,
    id: u16,
    flags: u16,
    qd: u16,
    an: u16,
    ns: u16,
    ar: u16,
) {
    for v in [id, flags, qd, an, ns, ar] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

pub(crate) fn write_opt(out: &mut Vec<u8>, rcode: Rcode) {
    out.push(0); // root owner
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    out.push((rcode.code() >> 4) as u8); // extended RCODE, upper 8 bits
    out.push(0); // version
    out.extend_from_slice(&[0, 0]); // flags: DO clear, cpid does not sign zones
    out.extend_from_slice(&[0, 0]); // no options
}

fn write_response(
    out: &mut Vec<u8>,
    q: &Query<'_>,
    rcode: Rcode,
    aa: u16,
    s: &Sections<'_>,
    limit: usize,
) -> Summary {
    let opt_len = if q.edns.is_some() { OPT_LEN } else { 0 };
    let base = 12 + q.question.len() + opt_len;
    let answer_len: usize = s.answers().map(|set| set.bytes.len()).sum();
    let answer_count: u16 = s.answers().map(|set| set.count).sum();
    let soa_len = s.negative_soa.map_or(0, |(soa, _)| 2 + soa.len());
    let mut truncated = false;
    let mut additional = s.additional;
    if base + answer_len + soa_len > limit {
        truncated = true;
    } else if let Some((_, glue)) = additional
        && base + answer_len + soa_len + glue.len() > limit
    {
        // Glue for an in-zone NS is optional when the answer itself fits.
        additional = None;
    }

    let mut flags = (q.flags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | FLAG_QR | aa | rcode_low(rcode);
    let ar_opt = u16::from(q.edns.is_some());
    if truncated {
        flags |= FLAG_TC;
        write_header(out, q.id, flags, 1, 0, 0, ar_opt);
        out.extend_from_slice(q.question);
    } else {
        let (ar_n, ar_bytes) = additional.unwrap_or((0, &[]));
        write_header(
            out,
            q.id,
            flags,
            1,
            answer_count,
            u16::from(s.negative_soa.is_some()),
            ar_n + ar_opt,
        );
        out.extend_from_slice(q.question);
        for set in s.answers() {
            out.extend_from_slice(&set.bytes);
        }
        if let Some((soa, apex_offset)) = s.negative_soa {
            out.extend_from_slice(&(0xC000 | apex_offset).to_be_bytes());
            out.extend_from_slice(soa);
        }
        out.extend_from_slice(ar_bytes);
    }
    if q.edns.is_some() {
        write_opt(out, rcode);
    }
    summary(
        rcode,
        q.qtype,
        if truncated { 0 } else { answer_count },
        truncated,
    )
}

fn parse<'a>(
    r: &mut Reader<'a>,
    qbuf: &mut [u8; MAX_NAME_LEN],
    id: u16,
    flags: u16,
    ancount: u16,
    nscount: u16,
    arcount: u16,
) -> Result<(Query<'a>, usize), WireError> {
    let start = r.position();
    let qname_len = r.name_lower(qbuf)?;
    let qtype = r.u16()?;
    let qclass = r.u16()?;
    let end = r.position();
    // Re-borrow the question bytes from the reader's buffer.
    let question = r.slice(start, end);
    for _ in 0..u32::from(ancount) + u32::from(nscount) {
        skip_rr(r)?;
    }
    let mut edns = None;
    for _ in 0..arcount {
        let owner_is_root = r.peek_u8()? == 0;
        r.skip_name()?;
        let t = r.u16()?;
        let class = r.u16()?;
        let ttl = r.u32()?;
        let rdlen = r.u16()?;
        let rdata = r.take(usize::from(rdlen))?;
        if t == rtype::OPT {
            if edns.is_some() {
                return Err(WireError::DuplicateOpt);
            }
            if !owner_is_root {
                return Err(WireError::BadOpt);
            }
            check_options(rdata)?;
            edns = Some(Edns {
                payload: class,
                version: (ttl >> 16) as u8,
            });
        }
    }
    r.finish()?;
    let query = Query {
        id,
        flags,
        question,
        qtype,
        qclass,
        edns,
    };
    Ok((query, qname_len))
}

fn skip_rr(r: &mut Reader<'_>) -> Result<(), WireError> {
    r.skip_name()?;
    r.take(8)?;
    let rdlen = r.u16()?;
    r.take(usize::from(rdlen))?;
    Ok(())
}

/// EDNS options must tile the RDATA exactly (RFC 6891 §6.1.2).
fn check_options(mut rdata: &[u8]) -> Result<(), WireError> {
    while !rdata.is_empty() {
        let mut r = Reader::new(rdata);
        r.u16().map_err(|_| WireError::BadOpt)?;
        let len = r.u16().map_err(|_| WireError::BadOpt)?;
        r.take(usize::from(len)).map_err(|_| WireError::BadOpt)?;
        rdata = &rdata[r.position()..];
    }
    Ok(())
}
