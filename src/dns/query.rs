//! Reading a query: the protocol checks every answerer shares before it
//! looks anything up.
//!
//! [`check`] reads the header, the one question (RFC 1035 §4.1.2) and the
//! OPT record (RFC 6891 §6.1.1, options tiling the RDATA), and answers
//! what no answerer should see itself: a message that is a response or
//! shorter than a header is dropped; an unknown opcode gets NOTIMP (with
//! no question to echo, a bare header, as Knot and NSD send); a missing or
//! malformed question FORMERR; EDNS versions above 0 BADVERS (the DO
//! bit kept for the answer's OPT, RFC 3225; an EXPIRE option noted, RFC
//! 7314; unknown EDNS flags and options ignored, RFC 6891 §6.1.2 and
//! §6.1.4); meta and
//! transfer types and classes other than IN what RFC 1035, RFC 5936 and
//! RFC 6895 say; a COOKIE option of the wrong length FORMERR (RFC 7873
//! §5.2.2; the first COOKIE option counts). What passes is a [`Checked`] query for the node's
//! [`engine`](super::engine) or the gateway to answer through the one
//! [`Response`] writer. It never panics on any input and writes only into
//! the caller's buffer.

use std::net::IpAddr;
use std::time::Instant;

use super::cookie::{self, Received, Verdict};
use super::response::{
    FLAG_QR, MAX_UDP_PAYLOAD, OPCODE_MASK, Rcode, Response, Summary, bare_header,
};
use super::wire::{CLASS_ANY, CLASS_IN, MAX_NAME_LEN, Reader, WireError, rtype};

/// The transport a query came in on; it sets the response size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// Who sent a query and how: what an answerer needs beyond the message
/// (the response size limit, the address cookies are bound to and
/// response-rate limiting counts by). The cookie state of a query is in
/// the message and read into its [`Checked`] form.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    pub addr: IpAddr,
    pub transport: Transport,
    /// When the query was received (one clock reading per receive batch).
    pub received: Instant,
}

impl Client {
    pub fn new(addr: IpAddr, transport: Transport) -> Client {
        Client {
            addr,
            transport,
            received: Instant::now(),
        }
    }

    /// A UDP client, received at `received`.
    pub fn udp(addr: IpAddr, received: Instant) -> Client {
        Client {
            addr,
            transport: Transport::Udp,
            received,
        }
    }
}

/// The parts of a query an answer needs.
pub(super) struct Query<'a> {
    pub(super) id: u16,
    pub(super) flags: u16,
    /// Name, type and class exactly as received (case preserved).
    pub(super) question: &'a [u8],
    pub(super) qtype: u16,
    pub(super) qclass: u16,
    pub(super) edns: Option<Edns>,
    /// The length of the TSIG record the query ends with, if signed: the
    /// signed response's TSIG is about as long, so the writer leaves room.
    pub(super) tsig: Option<usize>,
}

#[derive(Clone, Copy)]
pub(super) struct Edns {
    payload: u16,
    version: u8,
    /// The DO bit (RFC 3225 §3): copied into the response's OPT. The other
    /// EDNS flags are ignored and never echoed (RFC 6891 §6.1.4).
    pub(super) dnssec_ok: bool,
    /// The CO bit (RFC 9824 §4): the client takes a compact-denial
    /// NXDOMAIN with its real rcode.
    pub(super) compact_ok: bool,
    /// The query carried an EXPIRE option (RFC 7314): an answer from the
    /// zone carries one back with the SOA EXPIRE.
    pub(super) expire: bool,
    cookie: CookieOption,
}

/// The query's COOKIE option.
#[derive(Clone, Copy)]
enum CookieOption {
    Absent,
    Malformed,
    Present(Received),
}

/// A query that passed the protocol checks, ready to be answered.
pub struct Checked<'a> {
    pub(super) query: Query<'a>,
    /// The question name, lower-cased, uncompressed wire form.
    qname: [u8; MAX_NAME_LEN],
    qname_len: usize,
    /// The largest response that may be sent.
    pub(super) limit: usize,
    pub(super) transport: Transport,
    /// What the COOKIE option was, and the option data of the answer.
    pub(super) cookie: Verdict,
    pub(super) reply_cookie: Option<[u8; cookie::REPLY_LEN]>,
}

impl Checked<'_> {
    /// The COOKIE option the query carried, when well-formed.
    pub fn cookie(&self) -> Option<&Received> {
        match &self.query.edns.as_ref()?.cookie {
            CookieOption::Present(r) => Some(r),
            CookieOption::Absent | CookieOption::Malformed => None,
        }
    }

    /// Sets what the query's cookie was judged and the COOKIE option data
    /// of the answer (client cookie and a fresh server cookie).
    pub fn set_cookie(&mut self, verdict: Verdict, reply: [u8; cookie::REPLY_LEN]) {
        self.cookie = verdict;
        self.reply_cookie = Some(reply);
    }

    /// What the query's cookie was judged ([`Verdict::Absent`] until
    /// [`Checked::set_cookie`], or [`Verdict::Malformed`]).
    pub fn cookie_verdict(&self) -> Verdict {
        self.cookie
    }

    /// The question name, lower-cased, uncompressed wire form.
    pub fn qname(&self) -> &[u8] {
        self.qname.get(..self.qname_len).unwrap_or_default()
    }

    /// The question type.
    pub fn qtype(&self) -> u16 {
        self.query.qtype
    }

    /// The query set DO (RFC 3225): it wants RRSIGs and signed denial.
    pub fn dnssec_ok(&self) -> bool {
        self.query.edns.is_some_and(|e| e.dnssec_ok)
    }

    /// The query set DO and CO (RFC 9824 §4).
    pub fn compact_ok(&self) -> bool {
        self.query.edns.is_some_and(|e| e.dnssec_ok && e.compact_ok)
    }
}

/// Checks a query. `Err` carries what to do instead of answering: `None`
/// to drop the message, `Some` when `out` already holds the response.
pub fn check<'a>(
    msg: &'a [u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> Result<Checked<'a>, Option<Summary>> {
    check_as(msg, transport, out, false)
}

/// [`check`] for the zone-transfer path: an AXFR or IXFR question passes
/// (AXFR over UDP is still NOTIMP, as Knot answers it).
pub fn check_transfer<'a>(
    msg: &'a [u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> Result<Checked<'a>, Option<Summary>> {
    check_as(msg, transport, out, true)
}

fn check_as<'a>(
    msg: &'a [u8],
    transport: Transport,
    out: &mut Vec<u8>,
    transfer: bool,
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
    // bare header. The opcode is read from the header alone, so an opcode
    // cpid does not implement is NOTIMP whatever follows it (RFC 1035
    // §4.1.1); only a QUERY with a broken question is FORMERR.
    let bare = |out: &mut Vec<u8>| {
        let rcode = if flags & OPCODE_MASK != 0 {
            Rcode::NotImp
        } else {
            Rcode::FormErr
        };
        Err(Some(bare_header(out, id, flags, rcode)))
    };
    if qdcount != 1 {
        return bare(out);
    }

    let mut qname = [0u8; MAX_NAME_LEN];
    let Ok((query, qname_len)) = parse(&mut r, &mut qname, id, flags, ancount, nscount, arcount)
    else {
        return bare(out);
    };

    let limit = match (transport, query.edns) {
        (Transport::Tcp, _) => usize::from(u16::MAX),
        (Transport::Udp, None) => 512,
        (Transport::Udp, Some(e)) => usize::from(e.payload.clamp(512, MAX_UDP_PAYLOAD)),
    }
    .saturating_sub(query.tsig.unwrap_or(0));
    let malformed_cookie = query
        .edns
        .is_some_and(|e| matches!(e.cookie, CookieOption::Malformed));
    let checked = Checked {
        query,
        qname,
        qname_len,
        limit,
        transport,
        cookie: if malformed_cookie {
            Verdict::Malformed
        } else {
            Verdict::Absent
        },
        reply_cookie: None,
    };
    let q = &checked.query;
    let refusal = if q.flags & OPCODE_MASK != 0 {
        Some(Rcode::NotImp)
    } else if q.edns.is_some_and(|e| e.version > 0) {
        Some(Rcode::BadVers)
    } else if malformed_cookie {
        Some(Rcode::FormErr)
    } else {
        match q.qtype {
            // NXNAME is only a marker in compact denial's NSEC bitmaps;
            // asking for it is an error (RFC 9824 §3.5).
            rtype::OPT | rtype::NXNAME => Some(Rcode::FormErr),
            rtype::MAILA | rtype::MAILB => Some(Rcode::NotImp),
            // AXFR over UDP is not implemented anywhere (Knot: NOTIMP).
            rtype::AXFR if transport == Transport::Udp => Some(Rcode::NotImp),
            // Transfers go to `dns::xfr`, which answers them or refuses
            // them by its ACL; a server without one refuses them.
            rtype::AXFR | rtype::IXFR if transfer => None,
            rtype::AXFR | rtype::IXFR => Some(Rcode::Refused),
            _ if q.qclass != CLASS_IN && q.qclass != CLASS_ANY => Some(Rcode::Refused),
            _ => None,
        }
    };
    match refusal {
        // An explicit NXNAME query gets EDE 30, Invalid Query Type
        // (RFC 9824 §3.5).
        Some(rcode) if checked.query.qtype == rtype::NXNAME => Err(Some(
            Response::new(&checked, rcode)
                .extended_error(EDE_INVALID_QUERY_TYPE)
                .empty(out),
        )),
        Some(rcode) => Err(Some(Response::new(&checked, rcode).empty(out))),
        None => Ok(checked),
    }
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
    let mut tsig = None;
    for _ in 0..arcount {
        let rr_start = r.position();
        let owner_is_root = r.peek_u8()? == 0;
        r.skip_name()?;
        let t = r.u16()?;
        let class = r.u16()?;
        let ttl = r.u32()?;
        let rdlen = r.u16()?;
        let rdata = r.take(usize::from(rdlen))?;
        if t == super::tsig::TSIG {
            // Verified (and answered signed) by the node's transfer side;
            // the response's TSIG names the same key and algorithm and
            // carries a MAC of the same length.
            tsig = Some(r.position() - rr_start);
        } else if t == rtype::OPT {
            if edns.is_some() {
                return Err(WireError::DuplicateOpt);
            }
            if !owner_is_root {
                return Err(WireError::BadOpt);
            }
            let (cookie, expire) = check_options(rdata)?;
            edns = Some(Edns {
                payload: class,
                version: (ttl >> 16) as u8,
                dnssec_ok: ttl & EDNS_FLAG_DO != 0,
                compact_ok: ttl & EDNS_FLAG_CO != 0,
                expire,
                cookie,
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
        tsig,
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

/// The DO bit in the OPT record's TTL field (RFC 3225 §3).
const EDNS_FLAG_DO: u32 = 0x8000;
/// Extended DNS Error 30, Invalid Query Type (RFC 9824 §9).
const EDE_INVALID_QUERY_TYPE: u16 = 30;
/// The CO bit beside it (RFC 9824 §4).
const EDNS_FLAG_CO: u32 = 0x4000;

/// The EXPIRE option code (RFC 7314).
pub(super) const OPTION_EXPIRE: u16 = 9;

/// EDNS options must tile the RDATA exactly (RFC 6891 §6.1.2). Returns
/// the first COOKIE option and whether an EXPIRE option was there; every
/// other option (NSID, ECS, unknown codes) is ignored and not echoed
/// (RFC 6891 §6.1.2).
fn check_options(mut rdata: &[u8]) -> Result<(CookieOption, bool), WireError> {
    let mut cookie = CookieOption::Absent;
    let mut expire = false;
    while !rdata.is_empty() {
        let mut r = Reader::new(rdata);
        let code = r.u16().map_err(|_| WireError::BadOpt)?;
        let len = r.u16().map_err(|_| WireError::BadOpt)?;
        let data = r.take(usize::from(len)).map_err(|_| WireError::BadOpt)?;
        if code == cookie::OPTION_CODE && matches!(cookie, CookieOption::Absent) {
            cookie = match Received::parse(data) {
                Some(c) => CookieOption::Present(c),
                None => CookieOption::Malformed,
            };
        }
        expire |= code == OPTION_EXPIRE;
        rdata = rdata.get(r.position()..).unwrap_or_default();
    }
    Ok((cookie, expire))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(flags: u16, qdcount: u16) -> Vec<u8> {
        let mut m = Vec::new();
        for v in [0x1234, flags, qdcount, 0, 0, 0] {
            m.extend_from_slice(&u16::to_be_bytes(v));
        }
        m
    }

    fn question(m: &mut Vec<u8>) {
        m.extend_from_slice(b"\x0286\x04cpid\x08internal\x00\x00\x06\x00\x01");
    }

    fn rcode_of(out: &[u8]) -> u16 {
        u16::from_be_bytes([out[2], out[3]]) & 0x000F
    }

    #[test]
    fn unknown_opcode_without_a_question_is_notimp_with_the_opcode_echoed() {
        for opcode in [1u16, 2, 3, 4, 5, 15] {
            let flags = opcode << 11 | 0x0100;
            let mut out = Vec::new();
            let done = check(&header(flags, 0), Transport::Udp, &mut out).err();
            let summary = done.flatten().expect("an answer");
            assert_eq!(summary.rcode, Rcode::NotImp, "opcode {opcode}");
            assert_eq!(out.len(), 12, "header only");
            let sent = u16::from_be_bytes([out[2], out[3]]);
            assert_eq!(sent & OPCODE_MASK, opcode << 11, "opcode echoed");
            assert_eq!(sent & 0x8100, 0x8100, "QR set, RD copied");
            assert_eq!(rcode_of(&out), 4);
            assert_eq!(&out[4..12], &[0; 8], "no records of any kind");
        }
    }

    #[test]
    fn unknown_opcode_with_two_questions_or_a_broken_one_is_notimp() {
        let mut two = header(5 << 11, 2);
        question(&mut two);
        question(&mut two);
        let mut broken = header(5 << 11, 1);
        broken.extend_from_slice(b"\x05ab");
        for msg in [two, broken] {
            let mut out = Vec::new();
            let summary = check(&msg, Transport::Tcp, &mut out).err().flatten();
            assert_eq!(summary.map(|s| s.rcode), Some(Rcode::NotImp));
            assert_eq!(rcode_of(&out), 4);
        }
    }

    #[test]
    fn a_query_without_a_question_is_still_formerr() {
        let mut out = Vec::new();
        let summary = check(&header(0x0100, 0), Transport::Udp, &mut out)
            .err()
            .flatten();
        assert_eq!(summary.map(|s| s.rcode), Some(Rcode::FormErr));
        assert_eq!(out.len(), 12);
        assert_eq!(rcode_of(&out), 1);
    }

    #[test]
    fn unknown_opcode_with_its_question_echoes_it() {
        let mut msg = header(4 << 11, 1);
        question(&mut msg);
        let mut out = Vec::new();
        let summary = check(&msg, Transport::Udp, &mut out).err().flatten();
        assert_eq!(summary.map(|s| s.rcode), Some(Rcode::NotImp));
        assert_eq!(out.get(12..), msg.get(12..), "question copied as received");
        assert_eq!(u16::from_be_bytes([out[4], out[5]]), 1);
    }

    #[test]
    fn responses_and_short_messages_are_dropped() {
        let mut out = Vec::new();
        assert!(matches!(
            check(&header(0x8000, 1), Transport::Udp, &mut out),
            Err(None)
        ));
        assert!(matches!(
            check(&[0u8; 11], Transport::Udp, &mut out),
            Err(None)
        ));
    }
}
