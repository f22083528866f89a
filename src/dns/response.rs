//! The one DNS response writer: every message cpid sends, from a node's
//! answer engine or from the gateway, is put together here.
//!
//! A caller decides *what* to answer (rcode, AA/RA, the records of each
//! section, already encoded) and hands it to a [`Response`]; the writer
//! decides *how it goes on the wire*: the header (id, opcode, RD and CD
//! copied from the query, QR, the caller's flags, the rcode), the question
//! exactly as received, the three sections, and the OPT record when the
//! query carried one (RFC 6891 §6.1.1; its extended-rcode bits for
//! BADVERS; the query's DO bit copied, RFC 3225 §3, other EDNS flags
//! clear; the COOKIE option, RFC 7873 §5.2, when the answerer judged the
//! query's cookie; the EXPIRE option, RFC 7314, when the query asked for
//! it and the answer comes from a zone; an Extended DNS Error, RFC 8914,
//! when the answerer gives one; no other option). It applies the size limit the checked query allows
//! (RFC 1035 §4.2.1, RFC 6891 §7): when the answer and authority sections
//! do not fit, header and question go out with TC and no records; an
//! additional section that alone does not fit is left out unless the
//! caller marked it required (glue that a referral cannot be followed
//! without). A section is anything that knows its byte length, its record
//! count and how to copy itself ([`Section`]), so a node's answer stays a
//! copy of ready bytes and the gateway can patch TTLs as it copies. A
//! response that response-rate limiting lets "slip" is turned into its
//! truncated form here too ([`slip`]). It never allocates: it writes into
//! the caller's buffer.
//!
//! This is the extension point for what is still to come: DNSSEC (RRSIGs and NSEC as further section parts, AD) and zone
//! transfer (several messages per query, no TC over TCP) extend this
//! writer, not its callers.

use super::cookie::{self, Verdict};
use super::query::{Checked, OPTION_EXPIRE};
use super::rrl::Action;
use super::wire::rtype;

/// Response codes cpid sends (RFC 1035 §4.1.1, RFC 6891 §9 for BADVERS):
/// the one rcode type of both the node and the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
    /// Not authorized (RFC 8945 §5.3): a zone transfer outside the ACL or
    /// with a TSIG that does not verify.
    NotAuth,
    BadVers,
}

impl Rcode {
    /// Every rcode, in code order (metrics tables are built from it).
    pub const ALL: [Rcode; 8] = [
        Rcode::NoError,
        Rcode::FormErr,
        Rcode::ServFail,
        Rcode::NxDomain,
        Rcode::NotImp,
        Rcode::Refused,
        Rcode::NotAuth,
        Rcode::BadVers,
    ];

    /// The full 12-bit code.
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::NotAuth => 9,
            Rcode::BadVers => 16,
        }
    }

    /// The rcode with this full code, if cpid knows it.
    pub fn from_code(code: u16) -> Option<Rcode> {
        Rcode::ALL.into_iter().find(|r| r.code() == code)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::NotAuth => "NOTAUTH",
            Rcode::BadVers => "BADVERS",
        }
    }

    /// The four bits that go in the header; the rest go in the OPT.
    fn header_bits(self) -> u16 {
        self.code() & 0x000F
    }
}

/// What was sent, for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub rcode: Rcode,
    pub qtype: u16,
    pub answers: u16,
    pub truncated: bool,
    /// The query carried a TSIG: the answer must be signed (or refused)
    /// by whoever holds the keys before it goes out.
    pub signed: bool,
    /// What the query's COOKIE option was judged.
    pub cookie: Verdict,
    /// What response-rate limiting did with the answer.
    pub rrl: Action,
}

/// The largest UDP payload cpid sends or advertises (the DNS Flag Day 2020
/// value, which avoids IP fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

pub(super) const FLAG_QR: u16 = 0x8000;
pub(super) const OPCODE_MASK: u16 = 0x7800;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const FLAG_AD: u16 = 0x0020;
const FLAG_CD: u16 = 0x0010;
/// The DO bit among the OPT record's flags (RFC 3225 §3).
const EDNS_FLAG_DO: u16 = 0x8000;
/// The CO bit (Compact Answers OK, RFC 9824 §4) beside it.
pub(super) const EDNS_FLAG_CO: u16 = 0x4000;
/// The OPT record cpid writes: root owner, type, payload, ttl, rdlength.
const OPT_LEN: usize = 11;
/// An EXPIRE option in it: code, length, 32-bit seconds (RFC 7314 §2).
const EXPIRE_OPTION_LEN: usize = 8;
/// The Extended DNS Error option code (RFC 8914 §2).
const OPTION_EDE: u16 = 15;
/// An Extended DNS Error in it: code, length, INFO-CODE, no EXTRA-TEXT.
const EDE_OPTION_LEN: usize = 6;
/// Extended DNS Error 20, Not Authoritative (RFC 8914 §4.21).
pub const EDE_NOT_AUTHORITATIVE: u16 = 20;
/// A COOKIE option in it: code, length, client and server cookie.
const COOKIE_OPTION_LEN: usize = 4 + cookie::REPLY_LEN;
/// The query flags a response repeats (RFC 1035 §4.1.1, RFC 4035 §3.2.2).
const ECHOED: u16 = OPCODE_MASK | FLAG_RD | FLAG_CD;

/// One section's records, encoded and ready to copy.
pub trait Section {
    /// Bytes [`Section::write_to`] appends.
    fn len(&self) -> usize;
    /// Records it holds.
    fn count(&self) -> u16;
    /// Appends the records to `out`.
    fn write_to(&self, out: &mut Vec<u8>);

    fn is_empty(&self) -> bool {
        self.count() == 0
    }
}

/// A section without records.
pub struct Empty;

impl Section for Empty {
    fn len(&self) -> usize {
        0
    }
    fn count(&self) -> u16 {
        0
    }
    fn write_to(&self, _: &mut Vec<u8>) {}
}

/// Records already encoded exactly as they go on the wire.
#[derive(Clone, Copy)]
pub struct Ready<'a> {
    pub bytes: &'a [u8],
    pub count: u16,
}

impl Section for Ready<'_> {
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn count(&self) -> u16 {
        self.count
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.bytes);
    }
}

/// Two sections' records one after the other (an RRset, then its RRSIG).
pub struct Both<A, B>(pub A, pub B);

impl<A: Section, B: Section> Section for Both<A, B> {
    fn len(&self) -> usize {
        self.0.len() + self.1.len()
    }
    fn count(&self) -> u16 {
        self.0.count() + self.1.count()
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        self.0.write_to(out);
        self.1.write_to(out);
    }
}

impl<S: Section> Section for Option<S> {
    fn len(&self) -> usize {
        self.as_ref().map_or(0, S::len)
    }
    fn count(&self) -> u16 {
        self.as_ref().map_or(0, S::count)
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        if let Some(s) = self {
            s.write_to(out);
        }
    }
}

/// A response to a checked query: rcode and flags, then [`Response::write`]
/// with the sections.
#[must_use]
pub struct Response<'c, 'q> {
    query: &'c Checked<'q>,
    rcode: Rcode,
    flags: u16,
    additional_required: bool,
    /// The EXPIRE option's value, when the query asked for it.
    expire: Option<u32>,
    /// The Extended DNS Error INFO-CODE (RFC 8914), without EXTRA-TEXT.
    extended_error: Option<u16>,
    /// The CO flag goes back in the OPT (RFC 9824 §4).
    compact: bool,
}

impl<'c, 'q> Response<'c, 'q> {
    pub fn new(query: &'c Checked<'q>, rcode: Rcode) -> Self {
        Response {
            query,
            rcode,
            flags: 0,
            additional_required: false,
            expire: None,
            extended_error: None,
            compact: false,
        }
    }

    /// The answer is DNSSEC-signed with compact denial and the query set
    /// DO and CO: the OPT carries CO back (RFC 9824 §4), so the client
    /// knows a missing name came as NXDOMAIN.
    pub fn compact_answers(mut self) -> Self {
        self.compact = true;
        self
    }

    /// An Extended DNS Error option with `info_code` (RFC 8914 §4) in the
    /// OPT, when the query has EDNS.
    pub fn extended_error(mut self, info_code: u16) -> Self {
        self.extended_error = Some(info_code);
        self
    }

    /// The answer comes from a zone whose SOA EXPIRE is `seconds`: a query
    /// with an EXPIRE option gets it back with that value (RFC 7314 §3.2,
    /// a primary's answer, as Knot sends it).
    pub fn zone_expire(mut self, seconds: u32) -> Self {
        if self.query.query.edns.is_some_and(|e| e.expire) {
            self.expire = Some(seconds);
        }
        self
    }

    /// AA: the answer comes from the zone's own data (a node, not a cache).
    pub fn authoritative(mut self) -> Self {
        self.flags |= FLAG_AA;
        self
    }

    /// RA: the server resolves on the client's behalf (the gateway).
    pub fn recursion_available(mut self) -> Self {
        self.flags |= FLAG_RA;
        self
    }

    /// AD (RFC 4035 §3.2.3, RFC 6840 §5.8): the gateway verified every
    /// record of the answer, and the query asked (DO or AD set).
    pub fn authentic_data(mut self) -> Self {
        if self.query.dnssec_ok() || self.query.query.flags & FLAG_AD != 0 {
            self.flags |= FLAG_AD;
        }
        self
    }

    /// The additional section cannot be left out (a referral's glue):
    /// when it does not fit, the response is truncated instead.
    pub fn additional_required(mut self) -> Self {
        self.additional_required = true;
        self
    }

    /// A response without records (REFUSED, SERVFAIL, NOTIMP …).
    pub fn empty(self, out: &mut Vec<u8>) -> Summary {
        self.write(out, &Empty, &Empty, &Empty)
    }

    /// Replaces `out` with the response: header, question, the sections
    /// that fit, OPT.
    pub fn write(
        self,
        out: &mut Vec<u8>,
        answer: &impl Section,
        authority: &impl Section,
        additional: &impl Section,
    ) -> Summary {
        let q = &self.query.query;
        let edns = q.edns.is_some();
        // Options go in the OPT, so only when the query had EDNS.
        let options = Options {
            expire: self.expire.filter(|_| edns),
            extended_error: self.extended_error.filter(|_| edns),
            compact: self.compact,
        };
        let base = 12 + q.question.len() + opt_len(self.query) + options.len();
        let needed = base + answer.len() + authority.len();
        let with_additional = needed + additional.len() <= self.query.limit;
        let truncated = needed > self.query.limit || (self.additional_required && !with_additional);
        let mut flags = (q.flags & ECHOED) | FLAG_QR | self.flags | self.rcode.header_bits();
        let ar_opt = u16::from(edns);
        out.clear();
        if truncated {
            flags |= FLAG_TC;
            write_header(out, q.id, flags, 1, 0, 0, ar_opt);
            out.extend_from_slice(q.question);
        } else {
            let ar = if with_additional {
                additional.count()
            } else {
                0
            };
            write_header(
                out,
                q.id,
                flags,
                1,
                answer.count(),
                authority.count(),
                ar + ar_opt,
            );
            out.extend_from_slice(q.question);
            answer.write_to(out);
            authority.write_to(out);
            if with_additional {
                additional.write_to(out);
            }
        }
        if edns {
            write_opt(out, self.rcode, self.query, options);
        }
        Summary {
            rcode: self.rcode,
            qtype: q.qtype,
            answers: if truncated { 0 } else { answer.count() },
            truncated,
            signed: q.tsig.is_some(),
            cookie: self.query.cookie,
            rrl: Action::Off,
        }
    }
}

/// Turns the response to `query` in `out` (as [`Response::write`] left
/// it) into its slipped form (response-rate limiting): the same header
/// flags and rcode with TC, the question, no records, the OPT.
pub(super) fn slip(query: &Checked<'_>, out: &mut Vec<u8>, summary: &mut Summary) {
    let q = &query.query;
    let flags = match out.get(2..4) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => return,
    };
    let edns = q.edns.is_some();
    out.clear();
    write_header(out, q.id, flags | FLAG_TC, 1, 0, 0, u16::from(edns));
    out.extend_from_slice(q.question);
    if edns {
        write_opt(out, summary.rcode, query, Options::default());
    }
    summary.answers = 0;
    summary.truncated = true;
}

/// [`slip`] for a response written while the query was being read (a
/// refusal with no records, perhaps no question): it only gains TC.
pub(super) fn slip_refusal(out: &mut [u8], summary: &mut Summary) {
    if let Some(flags) = out.get_mut(2) {
        *flags |= (FLAG_TC >> 8) as u8;
        summary.truncated = true;
    }
}

/// The OPT record's length in a response to `query` (0 without EDNS).
fn opt_len(query: &Checked<'_>) -> usize {
    match (&query.query.edns, &query.reply_cookie) {
        (None, _) => 0,
        (Some(_), None) => OPT_LEN,
        (Some(_), Some(_)) => OPT_LEN + COOKIE_OPTION_LEN,
    }
}

/// A bare header (no question, no OPT) for a message whose question cannot
/// be echoed: `id` and the echoed flags of `query_flags`, QR and `rcode`.
pub(super) fn bare_header(out: &mut Vec<u8>, id: u16, query_flags: u16, rcode: Rcode) -> Summary {
    out.clear();
    let flags = (query_flags & ECHOED) | FLAG_QR | rcode.header_bits();
    write_header(out, id, flags, 0, 0, 0, 0);
    Summary {
        rcode,
        qtype: 0,
        answers: 0,
        truncated: false,
        signed: false,
        cookie: Verdict::Absent,
        rrl: Action::Off,
    }
}

fn write_header(out: &mut Vec<u8>, id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) {
    for v in [id, flags, qd, an, ns, ar] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// The OPT record of a response to `query`: version 0, the DO bit as the
/// query had it (RFC 3225 §3: "MUST be copied in the response", signed
/// zone or not, as Knot does), every other flag clear, the COOKIE option
/// when one was judged and the other `options` given.
fn write_opt(out: &mut Vec<u8>, rcode: Rcode, query: &Checked<'_>, options: Options) {
    let dnssec_ok = query.query.edns.is_some_and(|e| e.dnssec_ok);
    out.push(0); // root owner
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
    out.push((rcode.code() >> 4) as u8); // extended RCODE, upper 8 bits
    out.push(0); // version
    let flags =
        if dnssec_ok { EDNS_FLAG_DO } else { 0 } | if options.compact { EDNS_FLAG_CO } else { 0 };
    out.extend_from_slice(&flags.to_be_bytes());
    // No cookie in a FORMERR (RFC 7873 §5.2.2); callers only set one for
    // a well-formed option.
    let cookie = query.reply_cookie.as_ref();
    let rdlen = cookie.map_or(0, |_| COOKIE_OPTION_LEN) + options.len();
    out.extend_from_slice(&(rdlen as u16).to_be_bytes());
    if let Some(c) = cookie {
        out.extend_from_slice(&cookie::OPTION_CODE.to_be_bytes());
        out.extend_from_slice(&(cookie::REPLY_LEN as u16).to_be_bytes());
        out.extend_from_slice(c);
    }
    if let Some(seconds) = options.expire {
        out.extend_from_slice(&OPTION_EXPIRE.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&seconds.to_be_bytes());
    }
    if let Some(info_code) = options.extended_error {
        out.extend_from_slice(&OPTION_EDE.to_be_bytes());
        out.extend_from_slice(&2u16.to_be_bytes());
        out.extend_from_slice(&info_code.to_be_bytes());
    }
}

/// The OPT options a response carries besides the COOKIE.
#[derive(Default, Clone, Copy)]
struct Options {
    expire: Option<u32>,
    extended_error: Option<u16>,
    /// The CO flag (not an option, but set with them).
    compact: bool,
}

impl Options {
    /// Their bytes in the OPT RDATA.
    fn len(&self) -> usize {
        self.expire.map_or(0, |_| EXPIRE_OPTION_LEN)
            + self.extended_error.map_or(0, |_| EDE_OPTION_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::query::{Transport, check};

    /// A UDP query for `86.cpid.internal. SOA` without EDNS (limit 512).
    fn query() -> Vec<u8> {
        let mut m = vec![0xAB, 0xCD, 0x01, 0x10, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend_from_slice(b"\x0286\x04cpid\x08internal\x00\x00\x06\x00\x01");
        m
    }

    fn flags(out: &[u8]) -> u16 {
        u16::from_be_bytes([out[2], out[3]])
    }

    fn count(out: &[u8], i: usize) -> u16 {
        u16::from_be_bytes([out[4 + 2 * i], out[5 + 2 * i]])
    }

    #[test]
    fn sections_are_copied_after_the_question_with_counts_and_flags() {
        let msg = query();
        let mut out = Vec::new();
        let Ok(c) = check(&msg, Transport::Udp, &mut out) else {
            panic!("a valid query");
        };
        let answer = Ready {
            bytes: b"answer",
            count: 2,
        };
        let glue = Ready {
            bytes: b"glue",
            count: 1,
        };
        let s = Response::new(&c, Rcode::NoError)
            .authoritative()
            .write(&mut out, &answer, &Empty, &glue);
        assert_eq!(&out[..2], &[0xAB, 0xCD]);
        assert_eq!(flags(&out), FLAG_QR | FLAG_AA | FLAG_RD | FLAG_CD);
        assert_eq!(
            [
                count(&out, 0),
                count(&out, 1),
                count(&out, 2),
                count(&out, 3)
            ],
            [1, 2, 0, 1]
        );
        assert_eq!(&out[12..msg.len()], &msg[12..]);
        assert_eq!(&out[msg.len()..], b"answerglue");
        assert_eq!(s.answers, 2);
        assert!(!s.truncated);
    }

    #[test]
    fn too_big_is_truncated_to_header_and_question_and_optional_glue_is_dropped() {
        let msg = query();
        let mut out = Vec::new();
        let Ok(c) = check(&msg, Transport::Udp, &mut out) else {
            panic!("a valid query");
        };
        let big = vec![0u8; 600];
        let s = Response::new(&c, Rcode::NoError)
            .recursion_available()
            .write(
                &mut out,
                &Ready {
                    bytes: &big,
                    count: 9,
                },
                &Empty,
                &Empty,
            );
        assert!(s.truncated);
        assert_eq!(s.answers, 0);
        assert_eq!(flags(&out) & (FLAG_TC | FLAG_RA), FLAG_TC | FLAG_RA);
        assert_eq!(out.len(), msg.len());

        // The answer fits, the glue does not: sent without it …
        let glue = Ready {
            bytes: &big[..480],
            count: 3,
        };
        let answer = Ready {
            bytes: b"a",
            count: 1,
        };
        let s = Response::new(&c, Rcode::NoError).write(&mut out, &answer, &Empty, &glue);
        assert!(!s.truncated);
        assert_eq!(count(&out, 3), 0);
        // … unless the glue is required: then truncated.
        let s = Response::new(&c, Rcode::NoError)
            .additional_required()
            .write(&mut out, &answer, &Empty, &glue);
        assert!(s.truncated);
        assert_eq!(flags(&out) & FLAG_TC, FLAG_TC);
    }

    /// `query()` with an OPT: `flags` and the options in `options`.
    fn edns_query(flags: u16, options: &[u8]) -> Vec<u8> {
        let mut m = query();
        m[11] = 1; // ARCOUNT
        m.extend_from_slice(&[0, 0, 41, 0x10, 0]); // root, OPT, payload 4096
        m.extend_from_slice(&[0, 0]); // extended rcode, version
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&(options.len() as u16).to_be_bytes());
        m.extend_from_slice(options);
        m
    }

    /// The OPT at the end of a response without records: flags, RDATA.
    fn opt_of(out: &[u8], question_end: usize) -> (u16, &[u8]) {
        let opt = &out[question_end..];
        assert_eq!(&opt[..3], &[0, 0, 41], "an OPT follows the question");
        (u16::from_be_bytes([opt[7], opt[8]]), &opt[11..])
    }

    #[test]
    fn do_is_copied_and_unknown_edns_flags_and_options_are_not() {
        let question_end = query().len();
        for (flags, want) in [(0x8000, 0x8000), (0x0080, 0), (0xFFFF, 0x8000), (0, 0)] {
            let msg = edns_query(flags, b"\x00\x64\x00\x02ab");
            let mut out = Vec::new();
            let Ok(c) = check(&msg, Transport::Udp, &mut out) else {
                panic!("a valid query");
            };
            Response::new(&c, Rcode::NoError).empty(&mut out);
            let (got, rdata) = opt_of(&out, question_end);
            assert_eq!(got, want, "query flags {flags:#06x}");
            assert!(rdata.is_empty(), "option 100 is not echoed");
        }
    }

    #[test]
    fn expire_is_answered_only_when_asked_and_extended_errors_only_with_edns() {
        let question_end = query().len();
        let mut out = Vec::new();
        let asked = edns_query(0, b"\x00\x09\x00\x00");
        let Ok(c) = check(&asked, Transport::Udp, &mut out) else {
            panic!("a valid query");
        };
        Response::new(&c, Rcode::NoError)
            .zone_expire(1_209_600)
            .empty(&mut out);
        let (_, rdata) = opt_of(&out, question_end);
        assert_eq!(rdata, b"\x00\x09\x00\x04\x00\x12\x75\x00");

        let plain = edns_query(0, b"");
        let Ok(c) = check(&plain, Transport::Udp, &mut out) else {
            panic!("a valid query");
        };
        Response::new(&c, Rcode::Refused)
            .zone_expire(1_209_600)
            .extended_error(EDE_NOT_AUTHORITATIVE)
            .empty(&mut out);
        let (_, rdata) = opt_of(&out, question_end);
        assert_eq!(rdata, b"\x00\x0f\x00\x02\x00\x14", "EDE only");

        let no_edns = query();
        let Ok(c) = check(&no_edns, Transport::Udp, &mut out) else {
            panic!("a valid query");
        };
        Response::new(&c, Rcode::Refused)
            .extended_error(EDE_NOT_AUTHORITATIVE)
            .empty(&mut out);
        assert_eq!(out.len(), question_end, "no OPT without EDNS");
        assert_eq!(count(&out, 3), 0);
    }

    #[test]
    fn rcodes_round_trip_through_their_codes() {
        for r in Rcode::ALL {
            assert_eq!(Rcode::from_code(r.code()), Some(r));
        }
        assert_eq!(Rcode::from_code(6), None);
    }
}
