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
use super::dnssec;
use super::query::{self, Checked};
pub use super::query::{Client, Transport};
use super::response::{self, Both, EDE_NOT_AUTHORITATIVE, Empty, Ready, Response, Section};
pub use super::response::{MAX_UDP_PAYLOAD, Rcode, Summary};
use super::rrl::{self, Action, Rrl, RrlError};
use super::signing::{SigRecord, Signer};
use super::wire::{CLASS_IN, MAX_NAME_LEN, is_within, rtype};
use super::zone::{HotZone, Node, Prepared, Referral, Zone};

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
            let now = cookie::unix_now();
            if let Some(cookies) = &guards.cookies
                && let Some(received) = c.cookie()
            {
                let (verdict, reply) = cookies.judge(received, client.addr, now);
                c.set_cookie(verdict, reply);
            }
            let valid_cookie = c.cookie_verdict() == Verdict::Valid;
            let rrl = guards
                .rrl
                .as_ref()
                .filter(|_| client.transport == Transport::Udp);
            let summary = zone.read(|z| {
                let plan = plan(z, &c);
                // RRL decides before anything is signed: an answer it drops
                // or slips costs no signature.
                let action = match rrl {
                    None => Action::Off,
                    Some(_) if valid_cookie => Action::Passed,
                    Some(rrl) => {
                        let bucket = plan.bucket(z, &c);
                        let name = c.qname().get(bucket.name_at..).unwrap_or(ROOT);
                        rrl.decide(client.addr, bucket.class, name, client.received)
                    }
                };
                let signer = z
                    .signer
                    .as_deref()
                    .filter(|_| c.dnssec_ok() && matches!(action, Action::Passed | Action::Off));
                let mut summary = write(z, &c, plan, signer, now, out);
                summary.rrl = action;
                match action {
                    Action::Slipped => response::slip(&c, out, &mut summary),
                    Action::Dropped => out.clear(),
                    Action::Passed | Action::Off => {}
                }
                summary
            });
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

/// What the zone holds for a query, decided before anything is written
/// (so response-rate limiting can look at it first).
enum Plan<'z> {
    /// Outside the zone.
    Refused,
    /// At or below a zone cut, `offset` into the question name.
    Referral {
        offset: usize,
        referral: &'z Referral,
    },
    /// No such name.
    Missing,
    /// The name's data.
    Node(&'z Node),
}

fn plan<'z>(z: &'z HotZone, c: &Checked<'_>) -> Plan<'z> {
    let qname = c.qname();
    let qtype = c.qtype();
    let apex = z.apex.as_bytes();
    if !is_within(qname, apex) {
        return Plan::Refused;
    }
    // The parent answers for the cut itself what is its own there: the
    // signed delegation record and the DS (RFC 4035 §3.1.4.1).
    if !z.cuts.is_empty()
        && let Some((offset, referral)) = find_cut(z, qname, apex.len())
        && !(offset == 0 && matches!(qtype, rtype::CPREC | rtype::DS))
    {
        return Plan::Referral { offset, referral };
    }
    match z.names.get(qname) {
        Some(node) => Plan::Node(node),
        None => Plan::Missing,
    }
}

impl Plan<'_> {
    /// The RRL flow of the answer.
    fn bucket(&self, z: &HotZone, c: &Checked<'_>) -> Bucket {
        let qname = c.qname();
        let apex_at = qname.len().saturating_sub(z.apex.as_bytes().len());
        match self {
            Plan::Refused => Bucket {
                class: rrl::Class::Error,
                name_at: qname.len().saturating_sub(1),
            },
            Plan::Referral { offset, .. } => Bucket {
                class: rrl::Class::Referral,
                name_at: *offset,
            },
            // A missing name counts per zone: every made-up name is one
            // flow, whether it goes out as NXDOMAIN or compact NODATA.
            Plan::Missing => Bucket {
                class: rrl::Class::NxDomain,
                name_at: apex_at,
            },
            Plan::Node(node) => {
                let class = match (answers(node, c).iter().next().is_some(), c.qtype()) {
                    (false, _) => rrl::Class::NoData,
                    (true, rtype::ANY) => rrl::Class::Any,
                    (true, _) => rrl::Class::Positive,
                };
                Bucket { class, name_at: 0 }
            }
        }
    }
}

/// The RRsets a query for `node` gets. ANY over UDP gets one RRset, the
/// smallest (RFC 8482 §4.1): an identifier's name holds its signed record,
/// which would make a small query a large answer; TCP, where the source is
/// proven, gets them all.
fn answers<'z>(node: &'z Node, c: &Checked<'_>) -> Answers<'z> {
    let qtype = c.qtype();
    match node.rrsets.iter().min_by_key(|set| set.bytes.len()) {
        Some(set) if qtype == rtype::ANY && c.transport == Transport::Udp => Answers {
            rrsets: std::slice::from_ref(set),
            qtype: set.rtype,
        },
        _ => Answers {
            rrsets: &node.rrsets,
            qtype,
        },
    }
}

/// Writes the answer `plan` decided; with a `signer`, signed (the query
/// set DO and the zone is signed).
fn write(
    z: &HotZone,
    c: &Checked<'_>,
    plan: Plan<'_>,
    signer: Option<&Signer>,
    now: u32,
    out: &mut Vec<u8>,
) -> Summary {
    let qname = c.qname();
    let apex_at = qname.len().saturating_sub(z.apex.as_bytes().len());
    let expire = soa_expire(&z.negative_soa);
    let node = match plan {
        // Outside the zone: REFUSED with Extended DNS Error 20, Not
        // Authoritative (RFC 8914 §4.21), as Knot answers.
        Plan::Refused => {
            return Response::new(c, Rcode::Refused)
                .extended_error(EDE_NOT_AUTHORITATIVE)
                .empty(out);
        }
        Plan::Referral { offset, referral } => {
            return write_referral(z, c, referral, offset, expire, signer, now, out);
        }
        Plan::Missing => None,
        Plan::Node(node) => Some(node),
    };
    // The apex is a suffix of the question name, so the SOA owner can be a
    // pointer into the question.
    let soa = AtQuestion::new(apex_at, std::slice::from_ref(&z.negative_soa));
    let Some(node) = node else {
        let Some(signer) = signer else {
            return Response::new(c, Rcode::NxDomain)
                .authoritative()
                .zone_expire(expire)
                .write(out, &Empty, &soa, &Empty);
        };
        // Compact denial (RFC 9824): the name "exists" with nothing but
        // its NSEC, so the answer is NODATA, or NXDOMAIN for a client
        // that set CO.
        let denial = dnssec::compact_nxdomain_nsec(qname)
            .ok()
            .and_then(|nsec| denial(z, signer, qname, &nsec, apex_at, now));
        let response = match &denial {
            Some(_) if !c.compact_ok() => Response::new(c, Rcode::NoError),
            Some(_) => Response::new(c, Rcode::NxDomain).compact_answers(),
            None => Response::new(c, Rcode::NxDomain),
        };
        let proof = denial.as_ref().map(|(bytes, count)| Ready {
            bytes,
            count: *count,
        });
        return response.authoritative().zone_expire(expire).write(
            out,
            &Empty,
            &Both(soa, proof),
            &Empty,
        );
    };
    let answers = answers(node, c);
    // Glue for an in-zone NS is optional when the answer itself fits.
    let glue = answers.iter().find_map(|set| {
        set.additional.as_ref().map(|(count, bytes)| Ready {
            bytes,
            count: *count,
        })
    });
    if answers.iter().next().is_none() {
        let proof = signer.and_then(|signer| {
            let types = nsec_types(node, z.cuts.contains_key(qname));
            let nsec = dnssec::compact_nodata_nsec(qname, &types).ok()?;
            denial(z, signer, qname, &nsec, apex_at, now)
        });
        let proof = proof.as_ref().map(|(bytes, count)| Ready {
            bytes,
            count: *count,
        });
        return Response::new(c, Rcode::NoError)
            .authoritative()
            .zone_expire(expire)
            .write(out, &Empty, &Both(soa, proof), &glue);
    }
    let sigs: Vec<SigRecord> = match signer {
        Some(signer) => answers
            .iter()
            .filter_map(|set| set.sig.get(signer, qname, set.rtype, &set.bytes, now))
            .collect(),
        None => Vec::new(),
    };
    let sigs = Sigs {
        pointer: QUESTION,
        sigs: &sigs,
        ttl: None,
    };
    Response::new(c, Rcode::NoError)
        .authoritative()
        .zone_expire(expire)
        .write(out, &Both(answers, sigs), &Empty, &glue)
}

/// The types an NSEC at `node` lists besides RRSIG and NSEC. At a zone
/// cut only what is the parent's: NS, and the DS when there is one (no DS:
/// an insecure delegation, RFC 4035 §3.1.4.1); the delegation record there
/// is occluded data, left out as signers leave it.
fn nsec_types(node: &Node, cut: bool) -> Vec<u16> {
    let mut types: Vec<u16> = node
        .rrsets
        .iter()
        .map(|s| s.rtype)
        .filter(|t| !cut || *t == rtype::DS)
        .collect();
    if cut {
        types.push(rtype::NS);
    }
    types
}

/// A compression pointer to the question name (offset 12).
const QUESTION: [u8; 2] = [0xC0, 0x0C];

/// A compression pointer to `offset` octets into the question name.
fn pointer_into_question(offset: usize) -> [u8; 2] {
    (0xC000 | (12 + offset) as u16).to_be_bytes()
}

/// RRSIG records (owner-less, from [`super::signing`]) written with one
/// owner pointer, their TTL replaced by `ttl` when given.
struct Sigs<'a> {
    pointer: [u8; 2],
    sigs: &'a [SigRecord],
    ttl: Option<u32>,
}

impl Section for Sigs<'_> {
    fn len(&self) -> usize {
        self.sigs.iter().map(|s| 2 + s.len()).sum()
    }
    fn count(&self) -> u16 {
        self.sigs.len() as u16
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        for sig in self.sigs {
            out.extend_from_slice(&self.pointer);
            write_with_ttl(out, sig, self.ttl);
        }
    }
}

/// An owner-less record (type, class, TTL, …) with its TTL replaced.
fn write_with_ttl(out: &mut Vec<u8>, record: &[u8], ttl: Option<u32>) {
    match (ttl, record.get(..4), record.get(8..)) {
        (Some(ttl), Some(head), Some(tail)) => {
            out.extend_from_slice(head);
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(tail);
        }
        _ => out.extend_from_slice(record),
    }
}

/// The signed part of an authenticated denial of the question name: the
/// SOA's RRSIG (the SOA itself is written by the caller), then
/// [`nsec_proof`], all at the negative TTL. `None` when a signature
/// could not be made: the answer then goes out unsigned.
fn denial(
    z: &HotZone,
    signer: &Signer,
    qname: &[u8],
    nsec: &[u8],
    apex_at: usize,
    now: u32,
) -> Option<(Vec<u8>, u16)> {
    let apex = z.apex.as_bytes();
    let soa = z
        .names
        .get(apex)?
        .rrsets
        .iter()
        .find(|set| set.rtype == rtype::SOA)?;
    let soa_sig = soa.sig.get(signer, apex, rtype::SOA, &soa.bytes, now)?;
    let ttl = z.negative_ttl();
    let mut out = Vec::with_capacity(2 * soa_sig.len() + 2 * nsec.len() + 32);
    out.extend_from_slice(&pointer_into_question(apex_at));
    write_with_ttl(&mut out, &soa_sig, Some(ttl));
    nsec_proof(signer, qname, 0, nsec, ttl, now, &mut out)?;
    Some((out, 3))
}

/// An NSEC with RDATA `nsec` at `owner` (`owner_at` octets into the
/// question name) and its RRSIG, appended to `out`.
fn nsec_proof(
    signer: &Signer,
    owner: &[u8],
    owner_at: usize,
    nsec: &[u8],
    ttl: u32,
    now: u32,
    out: &mut Vec<u8>,
) -> Option<()> {
    let sig = signer.denial(owner, nsec, ttl, now)?;
    let rdlen = u16::try_from(nsec.len()).ok()?;
    let at = pointer_into_question(owner_at);
    out.extend_from_slice(&at);
    out.extend_from_slice(&rtype::NSEC.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&rdlen.to_be_bytes());
    out.extend_from_slice(nsec);
    out.extend_from_slice(&at);
    out.extend_from_slice(&sig);
    Some(())
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
/// carry it is truncated. Signed, the authority also carries the parent's
/// DS for the child with its RRSIG (RFC 4035 §3.1.4), or, without a DS,
/// the NSEC that proves there is none.
#[allow(clippy::too_many_arguments)]
fn write_referral(
    z: &HotZone,
    c: &Checked<'_>,
    r: &Referral,
    offset: usize,
    expire: u32,
    signer: Option<&Signer>,
    now: u32,
    out: &mut Vec<u8>,
) -> Summary {
    let authority = AtQuestion::new(offset, &r.authority);
    let glue = Ready {
        bytes: &r.glue.1,
        count: r.glue.0,
    };
    let signed = signer.and_then(|signer| {
        let qname = c.qname();
        let cut = qname.get(offset..)?;
        let node = z.names.get(cut);
        let at = pointer_into_question(offset);
        match node.and_then(|n| n.rrsets.iter().find(|set| set.rtype == rtype::DS)) {
            Some(ds) => {
                let sig = ds.sig.get(signer, cut, rtype::DS, &ds.bytes, now)?;
                let mut bytes = Vec::with_capacity(ds.bytes.len() + sig.len() + 2);
                Moved {
                    pointer: at,
                    bytes: &ds.bytes,
                }
                .write_to(&mut bytes);
                bytes.extend_from_slice(&at);
                bytes.extend_from_slice(&sig);
                Some((bytes, ds.count + 1))
            }
            None => {
                let types = node.map_or_else(|| vec![rtype::NS], |n| nsec_types(n, true));
                let nsec = dnssec::compact_nodata_nsec(cut, &types).ok()?;
                let mut bytes = Vec::new();
                nsec_proof(
                    signer,
                    cut,
                    offset,
                    &nsec,
                    z.negative_ttl(),
                    now,
                    &mut bytes,
                )?;
                Some((bytes, 2))
            }
        }
    });
    let signed = signed.as_ref().map(|(bytes, count)| Ready {
        bytes,
        count: *count,
    });
    Response::new(c, Rcode::NoError)
        .additional_required()
        .zone_expire(expire)
        .write(out, &Empty, &Both(authority, signed), &glue)
}

/// Prepared records (each with a two-octet owner pointer) written with
/// another owner pointer.
struct Moved<'a> {
    pointer: [u8; 2],
    bytes: &'a [u8],
}

impl Moved<'_> {
    fn write_to(&self, out: &mut Vec<u8>) {
        let mut rest = self.bytes;
        while let Some((head, tail)) = rest.split_at_checked(12) {
            let rdlen = match head.get(10..12) {
                Some(&[a, b]) => usize::from(u16::from_be_bytes([a, b])),
                _ => break,
            };
            let Some((rdata, next)) = tail.split_at_checked(rdlen) else {
                break;
            };
            out.extend_from_slice(&self.pointer);
            out.extend_from_slice(head.get(2..).unwrap_or_default());
            out.extend_from_slice(rdata);
            rest = next;
        }
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, Record};

    use super::*;
    use crate::config::RrlConfig;
    use crate::dns::dnssec::{RrSetRef, parse_nsec, verify_rrset};
    use crate::dns::signing::Signer;
    use crate::dns::wire::{WireName, txt_rdata};
    use crate::dns::zone::{CutSpec, RrSet};

    const APEX: &str = "86.cpid.internal";

    fn name(s: &str) -> WireName {
        WireName::parse(s).unwrap()
    }

    /// A signed zone: an identifier's TXT and URI, a child `31` with a DS
    /// and glue, a child `44` without one.
    fn signed_zone() -> (Zone, Arc<Signer>) {
        let apex = name(APEX);
        let (zone, signer) = crate::dns::signing::test_zone(64);
        zone.set(
            &name("ic-1.86.cpid.internal"),
            &[
                RrSet {
                    rtype: rtype::TXT,
                    ttl: 300,
                    rdatas: vec![txt_rdata(&["id=86/IC-1"]), txt_rdata(&["index=1"])],
                },
                RrSet {
                    rtype: rtype::URI,
                    ttl: 300,
                    rdatas: vec![crate::dns::wire::uri_rdata(10, 1, "https://x.example/")],
                },
            ],
        )
        .unwrap();
        for (child, ds) in [("31", true), ("44", false)] {
            let cut = apex.prepend(child).unwrap();
            let ns = cut.prepend("ns1").unwrap();
            let record = RrSet {
                rtype: rtype::CPREC,
                ttl: 3600,
                rdatas: vec![b"delegation".to_vec()],
            };
            let mut at_cut = vec![record.clone()];
            if ds {
                at_cut.push(RrSet {
                    rtype: rtype::DS,
                    ttl: 3600,
                    rdatas: vec![vec![0x12, 0x34, 15, 2, 0xAA, 0xBB]],
                });
            }
            zone.set(&cut, &at_cut).unwrap();
            zone.set_cut(
                &cut,
                Some(CutSpec {
                    authority: vec![
                        RrSet {
                            rtype: rtype::NS,
                            ttl: 3600,
                            rdatas: vec![ns.as_bytes().to_vec()],
                        },
                        record,
                    ],
                    glue: vec![(ns, "192.0.2.31".parse().unwrap())],
                    ttl: 3600,
                }),
            )
            .unwrap();
        }
        (zone, signer)
    }

    /// A query without RD; with EDNS flags (DO 0x8000, CO 0x4000) when given.
    fn query(qname: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
        let mut m = vec![
            0x42,
            0x42,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            u8::from(edns.is_some()),
        ];
        m.extend_from_slice(name(qname).as_bytes());
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(flags) = edns {
            m.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0]);
            m.extend_from_slice(&flags.to_be_bytes());
            m.extend_from_slice(&[0, 0]);
        }
        m
    }

    const DO: Option<u16> = Some(0x8000);
    const DO_CO: Option<u16> = Some(0xC000);

    fn ask_with(zone: &Zone, guards: &Safeguards, msg: &[u8]) -> (Vec<u8>, Summary) {
        let client = Client::new("192.0.2.1".parse().unwrap(), Transport::Udp);
        let mut out = Vec::new();
        let summary = respond(zone, guards, msg, &client, &mut out).unwrap();
        (out, summary)
    }

    fn ask(zone: &Zone, msg: &[u8]) -> Message {
        let (out, _) = ask_with(zone, &Safeguards::NONE, msg);
        Message::from_vec(&out).unwrap()
    }

    fn rtype_of(r: &Record) -> u16 {
        u16::from(r.record_type())
    }

    fn types(records: &[Record]) -> Vec<u16> {
        records.iter().map(rtype_of).collect()
    }

    fn raw(r: &Record) -> Vec<u8> {
        match &r.data {
            RData::Unknown { rdata, .. } => rdata.anything.clone(),
            other => panic!("{other:?} is not a raw record"),
        }
    }

    fn owner(r: &Record) -> WireName {
        name(&r.name.to_ascii())
    }

    /// Checks an RRSIG from an answer against the zone's own copy of the
    /// RRset it covers.
    fn verify_against_zone(zone: &Zone, signer: &Signer, rrsig: &Record) {
        let sig = raw(rrsig);
        let covered = u16::from_be_bytes([sig[0], sig[1]]);
        let at = owner(rrsig);
        let (ttl, rdatas): (Vec<u32>, Vec<Vec<u8>>) = zone
            .records()
            .into_iter()
            .filter(|(o, t, _, _)| *o == at && *t == covered)
            .map(|(_, _, ttl, rdata)| (ttl, rdata))
            .unzip();
        assert!(!rdatas.is_empty(), "no {covered} RRset at {at} in the zone");
        let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        let set = RrSetRef {
            owner: at.as_bytes(),
            rtype: covered,
            ttl: ttl[0],
            rdatas: &refs,
        };
        verify_rrset(
            signer.key().apex(),
            signer.key().dnskey(),
            &set,
            &sig,
            cookie::unix_now(),
        )
        .unwrap_or_else(|e| panic!("RRSIG over {covered} at {at}: {e}"));
    }

    fn verify_nsec(signer: &Signer, nsec: &Record, rrsig: &Record) {
        let rdata = raw(nsec);
        let at = owner(nsec);
        let set = RrSetRef {
            owner: at.as_bytes(),
            rtype: rtype::NSEC,
            ttl: nsec.ttl,
            rdatas: &[&rdata],
        };
        verify_rrset(
            signer.key().apex(),
            signer.key().dnskey(),
            &set,
            &raw(rrsig),
            cookie::unix_now(),
        )
        .unwrap();
    }

    #[test]
    fn a_query_with_do_gets_each_rrset_with_an_rrsig_that_verifies() {
        let (zone, signer) = signed_zone();
        let m = ask(&zone, &query("IC-1.86.cpid.internal", rtype::TXT, DO));
        assert_eq!(types(&m.answers), [rtype::TXT, rtype::TXT, rtype::RRSIG]);
        verify_against_zone(&zone, &signer, &m.answers[2]);
        // The apex: DNSKEY and SOA are signed by the same key.
        for t in [rtype::DNSKEY, rtype::SOA, rtype::NS] {
            let m = ask(&zone, &query(APEX, t, DO));
            assert_eq!(types(&m.answers), [t, rtype::RRSIG]);
            verify_against_zone(&zone, &signer, &m.answers[1]);
        }
        // Made once: asking again signs nothing.
        let made = signer.signatures_made();
        ask(&zone, &query("ic-1.86.cpid.internal", rtype::TXT, DO));
        assert_eq!(signer.signatures_made(), made);
        // Without DO: the unsigned answer, byte for byte as before.
        let m = ask(&zone, &query("ic-1.86.cpid.internal", rtype::TXT, Some(0)));
        assert_eq!(types(&m.answers), [rtype::TXT, rtype::TXT]);
        // ANY over UDP: the smallest RRset, with its signature.
        let m = ask(&zone, &query("ic-1.86.cpid.internal", rtype::ANY, DO));
        assert_eq!(types(&m.answers), [rtype::URI, rtype::RRSIG]);
    }

    #[test]
    fn a_missing_name_is_compact_nodata_with_nxname_and_nxdomain_when_co_is_set() {
        let (zone, signer) = signed_zone();
        let q = query("nothere.86.cpid.internal", rtype::TXT, DO);
        let (out, summary) = ask_with(&zone, &Safeguards::NONE, &q);
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(summary.rcode, Rcode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(
            types(&m.authorities),
            [rtype::SOA, rtype::RRSIG, rtype::NSEC, rtype::RRSIG]
        );
        verify_against_zone(&zone, &signer, &m.authorities[1]);
        let nsec = &m.authorities[2];
        assert_eq!(owner(nsec), name("nothere.86.cpid.internal"));
        let (next, bitmap) = parse_nsec(&raw(nsec)).unwrap();
        let successor = [&[1u8, 0][..], name("nothere.86.cpid.internal").as_bytes()].concat();
        assert_eq!(next, successor, "the next name is \\000.nothere…");
        assert_eq!(bitmap, [rtype::RRSIG, rtype::NSEC, rtype::NXNAME]);
        verify_nsec(&signer, nsec, &m.authorities[3]);
        // Every denial record at the negative TTL (RFC 9077).
        assert!(m.authorities.iter().all(|r| r.ttl == 300));
        assert_eq!(m.edns.as_ref().map(|e| e.flags().dnssec_ok), Some(true));

        // With CO: NXDOMAIN, the same proof, CO in the reply's OPT.
        let (out, summary) = ask_with(
            &zone,
            &Safeguards::NONE,
            &query("nothere.86.cpid.internal", rtype::TXT, DO_CO),
        );
        assert_eq!(summary.rcode, Rcode::NxDomain);
        let opt_flags = u16::from_be_bytes([out[out.len() - 4], out[out.len() - 3]]);
        assert_eq!(opt_flags, 0xC000, "DO and CO come back");
        // Without DO: the unsigned NXDOMAIN.
        let (_, summary) = ask_with(
            &zone,
            &Safeguards::NONE,
            &query("nothere.86.cpid.internal", rtype::TXT, None),
        );
        assert_eq!(summary.rcode, Rcode::NxDomain);
    }

    #[test]
    fn nodata_lists_exactly_the_types_the_name_has() {
        let (zone, signer) = signed_zone();
        let m = ask(&zone, &query("ic-1.86.cpid.internal", rtype::A, DO));
        let nsec = &m.authorities[2];
        let (_, bitmap) = parse_nsec(&raw(nsec)).unwrap();
        assert_eq!(bitmap, [rtype::TXT, rtype::RRSIG, rtype::NSEC, rtype::URI]);
        verify_nsec(&signer, nsec, &m.authorities[3]);
        // An empty non-terminal has nothing but the NSEC itself.
        zone.set(
            &name("a.b.86.cpid.internal"),
            &[RrSet {
                rtype: rtype::TXT,
                ttl: 60,
                rdatas: vec![txt_rdata(&["x"])],
            }],
        )
        .unwrap();
        let m = ask(&zone, &query("b.86.cpid.internal", rtype::TXT, DO));
        let (_, bitmap) = parse_nsec(&raw(&m.authorities[2])).unwrap();
        assert_eq!(bitmap, [rtype::RRSIG, rtype::NSEC]);
    }

    #[test]
    fn a_referral_carries_the_signed_ds_or_the_nsec_that_proves_there_is_none() {
        let (zone, signer) = signed_zone();
        let m = ask(&zone, &query("x.31.86.cpid.internal", rtype::TXT, DO));
        assert!(!m.metadata.authoritative);
        assert_eq!(
            types(&m.authorities),
            [rtype::NS, rtype::CPREC, rtype::DS, rtype::RRSIG]
        );
        assert_eq!(owner(&m.authorities[2]), name("31.86.cpid.internal"));
        verify_against_zone(&zone, &signer, &m.authorities[3]);
        // The DS itself is the parent's, answered with authority.
        let m = ask(&zone, &query("31.86.cpid.internal", rtype::DS, DO));
        assert!(m.metadata.authoritative);
        assert_eq!(types(&m.answers), [rtype::DS, rtype::RRSIG]);
        // No DS: the NSEC at the cut shows NS and no DS (insecure).
        let m = ask(&zone, &query("x.44.86.cpid.internal", rtype::TXT, DO));
        assert_eq!(
            types(&m.authorities),
            [rtype::NS, rtype::CPREC, rtype::NSEC, rtype::RRSIG]
        );
        let (_, bitmap) = parse_nsec(&raw(&m.authorities[2])).unwrap();
        assert_eq!(bitmap, [rtype::NS, rtype::RRSIG, rtype::NSEC]);
        verify_nsec(&signer, &m.authorities[2], &m.authorities[3]);
        let m = ask(&zone, &query("44.86.cpid.internal", rtype::DS, DO));
        assert!(m.metadata.authoritative && m.answers.is_empty());
        let (_, bitmap) = parse_nsec(&raw(&m.authorities[2])).unwrap();
        assert!(bitmap.contains(&rtype::NS) && !bitmap.contains(&rtype::DS));
        // Glue goes unsigned, as glue does.
        assert_eq!(
            types(&ask(&zone, &query("x.31.86.cpid.internal", rtype::TXT, DO)).additionals),
            [rtype::A]
        );
    }

    #[test]
    fn an_explicit_nxname_query_is_formerr_with_ede_30() {
        let (zone, _) = signed_zone();
        let (out, summary) = ask_with(
            &zone,
            &Safeguards::NONE,
            &query("ic-1.86.cpid.internal", rtype::NXNAME, DO),
        );
        assert_eq!(summary.rcode, Rcode::FormErr);
        // EDE option: code 15, length 2, info code 30.
        assert!(out.ends_with(&[0, 15, 0, 2, 0, 30]));
    }

    #[test]
    fn a_name_asked_again_costs_no_signature_and_neither_does_an_answer_rrl_withholds() {
        let (zone, signer) = signed_zone();
        let q = query("gone.86.cpid.internal", rtype::TXT, DO);
        ask(&zone, &q);
        let made = signer.signatures_made();
        for _ in 0..10 {
            ask(&zone, &q);
        }
        assert_eq!(signer.signatures_made(), made, "cached denial");
        // RRL at one answer a second, slip 2: after the first answer each
        // made-up name is slipped or dropped, and none is signed.
        let guards = Safeguards {
            cookies: None,
            rrl: Rrl::from_config(&RrlConfig {
                rate_limit: 1,
                slip: 2,
                ..RrlConfig::default()
            })
            .unwrap(),
        };
        let mut passed = 0;
        for i in 0..50 {
            let q = query(&format!("r{i}.86.cpid.internal"), rtype::TXT, DO);
            let (_, summary) = ask_with(&zone, &guards, &q);
            passed += usize::from(summary.rrl == Action::Passed);
        }
        assert!(passed < 50, "RRL limited the flood");
        assert_eq!(
            signer.signatures_made() - made,
            passed as u64,
            "one signature per answer that went out, none for the rest"
        );
    }
}
