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
//! one place where a node's answer is decided. The node's [`Safeguards`]
//! apply there too: the query's DNS cookie is judged before the answer
//! ([`super::cookie`]), and over UDP the decided answer — its *logical*
//! kind and name, known only here — goes through response-rate limiting
//! ([`super::rrl`]), which may send it truncated or not at all. It never
//! panics on any input, never allocates beyond the output buffer, and
//! never blocks: the shared state it touches is the hot tier's read lock,
//! held for the copy, and one RRL bucket (an atomic).

use super::cookie::{self, CookieError, Cookies, Verdict};
use super::query::{self, Checked};
pub use super::query::{Client, Transport};
use super::response::{self, EDE_NOT_AUTHORITATIVE, Empty, Ready, Response, Section};
pub use super::response::{MAX_UDP_PAYLOAD, Rcode, Summary};
use super::rrl::{self, Action, Rrl, RrlError};
use super::wire::{MAX_NAME_LEN, is_within, rtype};
use super::zone::{HotZone, Prepared, Referral, Zone};

/// What a node applies to its answers beyond the zone's data: DNS cookies
/// and response-rate limiting (`[dns]` `cookies`, `[dns.rrl]`).
#[derive(Debug, Default)]
pub struct Safeguards {
    pub cookies: Option<Cookies>,
    pub rrl: Option<Rrl>,
}

/// Why the safeguards could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SafeguardError {
    #[error(transparent)]
    Cookie(#[from] CookieError),
    #[error(transparent)]
    Rrl(#[from] RrlError),
}

impl Safeguards {
    /// Neither cookies nor RRL.
    pub const NONE: Safeguards = Safeguards {
        cookies: None,
        rrl: None,
    };

    /// From the node's `[dns]` section.
    pub fn from_config(dns: &crate::config::DnsConfig) -> Result<Safeguards, SafeguardError> {
        let cookies = if dns.cookies {
            Some(Cookies::from_config(dns.cookie_secret.as_deref())?)
        } else {
            None
        };
        Ok(Safeguards {
            cookies,
            rrl: Rrl::from_config(&dns.rrl)?,
        })
    }
}

/// The root name: the RRL bucket name of errors.
const ROOT: &[u8] = &[0];

/// Answers one query. Returns `None` when the message must be dropped
/// (shorter than a header, or itself a response); otherwise `out` holds the
/// response — unless response-rate limiting dropped it: then `out` is
/// empty, nothing must be sent, and the summary says [`Action::Dropped`].
pub fn respond(
    zone: &Zone,
    guards: &Safeguards,
    msg: &[u8],
    client: &Client,
    out: &mut Vec<u8>,
) -> Option<Summary> {
    match query::check(msg, client.transport, out) {
        Ok(mut c) => {
            if let Some(cookies) = &guards.cookies
                && let Some(received) = c.cookie()
            {
                let (verdict, reply) = cookies.judge(received, client.addr, cookie::unix_now());
                c.set_cookie(verdict, reply);
            }
            let (mut summary, bucket) = zone.read(|z| answer(z, &c, out));
            if let Some(rrl) = &guards.rrl
                && client.transport == Transport::Udp
            {
                summary.rrl = if c.cookie_verdict() == Verdict::Valid {
                    Action::Passed
                } else {
                    let name = c.qname().get(bucket.name_at..).unwrap_or(ROOT);
                    rrl.decide(client.addr, bucket.class, name, client.received)
                };
                match summary.rrl {
                    Action::Slipped => response::slip(&c, out, &mut summary),
                    Action::Dropped => out.clear(),
                    Action::Passed | Action::Off => {}
                }
            }
            Some(summary)
        }
        Err(Some(mut summary)) => {
            // Refused while being read: an error with no records, which a
            // slip only marks TC.
            if let Some(rrl) = &guards.rrl
                && client.transport == Transport::Udp
            {
                summary.rrl = rrl.decide(client.addr, rrl::Class::Error, ROOT, client.received);
                match summary.rrl {
                    Action::Slipped => response::slip_refusal(out, &mut summary),
                    Action::Dropped => out.clear(),
                    Action::Passed | Action::Off => {}
                }
            }
            Some(summary)
        }
        Err(None) => None,
    }
}

/// The RRL flow of an answer: its kind, and where in the question name
/// the name it is counted under starts.
struct Bucket {
    class: rrl::Class,
    name_at: usize,
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

fn answer(z: &HotZone, c: &Checked<'_>, out: &mut Vec<u8>) -> (Summary, Bucket) {
    let qname = c.qname();
    let qtype = c.qtype();
    let apex = z.apex.as_bytes();
    if !is_within(qname, apex) {
        let bucket = Bucket {
            class: rrl::Class::Error,
            name_at: qname.len().saturating_sub(1),
        };
        // Outside the zone: REFUSED with Extended DNS Error 20, Not
        // Authoritative (RFC 8914 §4.21), as Knot answers.
        let refused = Response::new(c, Rcode::Refused).extended_error(EDE_NOT_AUTHORITATIVE);
        return (refused.empty(out), bucket);
    }
    if !z.cuts.is_empty()
        && let Some((offset, referral)) = find_cut(z, qname, apex.len())
        && !(offset == 0 && qtype == rtype::CPREC)
    {
        let bucket = Bucket {
            class: rrl::Class::Referral,
            name_at: offset,
        };
        let expire = soa_expire(&z.negative_soa);
        return (write_referral(c, referral, offset, expire, out), bucket);
    }
    // The apex is a suffix of the question name, so the SOA owner can be a
    // pointer into the question.
    let soa = AtQuestion::new(
        qname.len().saturating_sub(apex.len()),
        std::slice::from_ref(&z.negative_soa),
    );
    let expire = soa_expire(&z.negative_soa);
    let Some(node) = z.names.get(qname) else {
        // A missing name counts per zone: every made-up name is one flow.
        let bucket = Bucket {
            class: rrl::Class::NxDomain,
            name_at: qname.len().saturating_sub(apex.len()),
        };
        let summary = Response::new(c, Rcode::NxDomain)
            .authoritative()
            .zone_expire(expire)
            .write(out, &Empty, &soa, &Empty);
        return (summary, bucket);
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
    let class = match (nodata.is_some(), qtype) {
        (true, _) => rrl::Class::NoData,
        (false, rtype::ANY) => rrl::Class::Any,
        (false, _) => rrl::Class::Positive,
    };
    let summary = Response::new(c, Rcode::NoError)
        .authoritative()
        .zone_expire(expire)
        .write(out, &answers, &nodata, &glue);
    (summary, Bucket { class, name_at: 0 })
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
fn write_referral(
    c: &Checked<'_>,
    r: &Referral,
    offset: usize,
    expire: u32,
    out: &mut Vec<u8>,
) -> Summary {
    let authority = AtQuestion::new(offset, &r.authority);
    let glue = Ready {
        bytes: &r.glue.1,
        count: r.glue.0,
    };
    Response::new(c, Rcode::NoError)
        .additional_required()
        .zone_expire(expire)
        .write(out, &Empty, &authority, &glue)
}

/// The EXPIRE field of the zone's SOA, read from the negative SOA record
/// (its RDATA ends with serial, refresh, retry, expire, minimum); 0 if it
/// were ever shorter.
fn soa_expire(negative_soa: &[u8]) -> u32 {
    let n = negative_soa.len();
    match negative_soa.get(n.saturating_sub(8)..n.saturating_sub(4)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}
