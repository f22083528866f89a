//! Zone transfer out: AXFR (RFC 5936) and IXFR (RFC 1995) to stock
//! secondaries, allowed per secondary by address and TSIG key (RFC 8945).
//!
//! A request is checked by [`query::check_transfer`] like any query, then
//! here: the question must be the zone's apex in class IN; a TSIG that does
//! not verify is NOTAUTH with the TSIG error (BADKEY, BADSIG, BADTIME),
//! unsigned as RFC 8945 §5.3.2 says; a request no ACL rule allows (address
//! and key) is NOTAUTH, signed when the request was. Those are the rcodes
//! Knot gives in the same cases. AXFR over UDP is NOTIMP (in
//! [`query::check_transfer`]).
//!
//! An allowed transfer reads a [`Snapshot`] of the hot tier (O(1) under the
//! lock), so queries and writes go on while it is sent. Its records go out
//! as a stream of messages of at most [`MESSAGE_TARGET`] bytes, each
//! written by the one [`Response`] writer (same ID, the question, AA), SOA
//! first and last, owners compressed against the question (the apex), every
//! message signed when the request was (the first over the request's MAC,
//! each later one over the one before, RFC 8945 §5.3.1). IXFR answers from
//! the zone's change history in the condensed form (old SOA, removals, new
//! SOA, additions), a single SOA when the secondary is current, and the
//! whole zone in AXFR form when the history does not reach its serial.
//! Over UDP an IXFR is answered whole when it fits, otherwise with the SOA
//! alone (RFC 1995 §2), and the secondary comes back over TCP.
//!
//! A signed zone goes signed in full (RFC 4035 §2): every RRset with its
//! RRSIG and an NSEC chain. Its IXFR adds the RRSIGs and NSECs that changed
//! (`signed_diff`) when the secondary's copy was made in the current
//! signing period, which is when its signatures are the ones made now: the
//! serial it asks from became current in this period, seen by this
//! process. Otherwise (a new period, a restart since) it gets the whole
//! zone. A signed IXFR over UDP is the SOA alone.

use std::net::IpAddr;
use std::sync::Arc;

use super::network::Network;
use super::query::{self, Checked, Transport};
use super::response::{Empty, Rcode, Response, Section, Summary};
use super::tsig::{self, Chain, TsigError, TsigKey};
use super::wire::{CLASS_IN, Reader, rtype};
use super::zone::{Before, Changes, Rr, Snapshot, Zone};
use crate::clock::Clock;
use crate::config::TransferConfig;
use crate::telemetry;

/// Records of one message stop being added beyond this many bytes: well
/// under the 65 535 a TCP message may hold, and large enough that the
/// per-message overhead (header, question, TSIG) is small.
pub const MESSAGE_TARGET: usize = 16 * 1024;

/// Who may transfer the zone and where NOTIFY goes, from `[transfer]`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    keys: Vec<TsigKey>,
    rules: Vec<Rule>,
    /// NOTIFY targets and the key (index into `keys`) to sign with.
    pub notify: Vec<(std::net::SocketAddr, Option<usize>)>,
}

#[derive(Debug, Clone)]
struct Rule {
    network: Network,
    key: Option<usize>,
}

impl Policy {
    /// Reads `[transfer]`; the error names what is wrong.
    pub fn from_config(c: &TransferConfig) -> Result<Policy, String> {
        let mut keys = Vec::new();
        for k in &c.keys {
            if !k.algorithm.eq_ignore_ascii_case("hmac-sha256") {
                return Err(format!(
                    "key {}: algorithm {} (only hmac-sha256)",
                    k.name, k.algorithm
                ));
            }
            let key =
                TsigKey::new(&k.name, &k.secret).map_err(|e| format!("key {}: {e}", k.name))?;
            if keys
                .iter()
                .any(|other: &TsigKey| other.name() == key.name())
            {
                return Err(format!("key {} is listed twice", k.name));
            }
            keys.push(key);
        }
        let find = |name: &str| -> Result<usize, String> {
            let wanted = TsigKey::new(name, "AA==").map_err(|e| format!("key {name}: {e}"))?;
            keys.iter()
                .position(|k| k.name() == wanted.name())
                .ok_or_else(|| {
                    format!("secondary names key {name}, which [[transfer.keys]] does not list")
                })
        };
        let mut rules = Vec::new();
        let mut notify = Vec::new();
        for s in &c.secondaries {
            let key = s.key.as_deref().map(find).transpose()?;
            let network = match (&s.allow, s.notify) {
                (Some(allow), _) => Network::parse(allow)?,
                (None, Some(addr)) => Network::host(addr.ip()),
                (None, None) => {
                    return Err("a secondary needs `allow` (who may transfer) or `notify`".into());
                }
            };
            rules.push(Rule { network, key });
            if let Some(addr) = s.notify {
                notify.push((addr, key));
            }
        }
        Ok(Policy {
            keys,
            rules,
            notify,
        })
    }

    pub fn key(&self, index: usize) -> Option<&TsigKey> {
        self.keys.get(index)
    }

    /// Whether a transfer from `peer` signed with `key` (or unsigned) is
    /// allowed. A rule with a key needs that key; one without needs none
    /// but accepts a request signed anyway.
    fn allows(&self, peer: IpAddr, key: Option<usize>) -> bool {
        self.rules
            .iter()
            .any(|r| r.network.contains(peer) && (r.key.is_none() || r.key == key))
    }
}

/// A transfer request that passed: what to send and how to sign it.
pub struct Stream {
    query: Vec<u8>,
    signer: Option<(TsigKey, Vec<u8>)>,
    /// Each message is signed at the time it is sent: a long transfer
    /// must not run past its TSIG's fudge.
    clock: Clock,
    /// Unix seconds when the transfer was asked for: every DNSSEC
    /// signature in it is of this time's signing period.
    at: u32,
    body: Body,
}

enum Body {
    Whole(Snapshot),
    Incremental {
        from: u32,
        removed: Vec<Rr>,
        added: Vec<Rr>,
        /// The names touched as they were, for a signed zone's RRSIGs and
        /// NSECs; empty for an unsigned one.
        before: Vec<Before>,
        to: Snapshot,
    },
}

/// What a TCP transfer request gets.
pub enum Reply {
    /// One message, already in the caller's buffer (a refusal, or a
    /// secondary that is current).
    One(Summary),
    /// A stream of messages: run it off the async runtime.
    Stream(Box<Stream>),
}

/// The zone-transfer side of a node's DNS service.
pub struct Transfers {
    zone: Arc<Zone>,
    policy: Policy,
    clock: Clock,
    /// Cookies and RRL for the zone's answers.
    safeguards: super::engine::Safeguards,
}

/// Why a request was refused, for the metric.
#[derive(Clone, Copy)]
enum Refusal {
    Zone,
    Acl,
    BadKey,
    BadSig,
    BadTime,
    Malformed,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Zone => "not_this_zone",
            Refusal::Acl => "acl",
            Refusal::BadKey => "badkey",
            Refusal::BadSig => "badsig",
            Refusal::BadTime => "badtime",
            Refusal::Malformed => "formerr",
        }
    }
}

/// A request that passed the checks, and the key that signed it.
struct Allowed<'q> {
    checked: Checked<'q>,
    signer: Option<(TsigKey, Vec<u8>)>,
}

impl Transfers {
    pub fn new(zone: Arc<Zone>, policy: Policy, clock: Clock) -> Transfers {
        Transfers {
            zone,
            policy,
            clock,
            safeguards: super::engine::Safeguards::NONE,
        }
    }

    /// The zone's answers with DNS cookies and response-rate limiting.
    pub fn with_safeguards(mut self, safeguards: super::engine::Safeguards) -> Transfers {
        self.safeguards = safeguards;
        self
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn zone(&self) -> &Arc<Zone> {
        &self.zone
    }

    /// A transfer request over TCP. `None`: drop the message (and close).
    pub fn tcp(&self, msg: &[u8], peer: IpAddr, out: &mut Vec<u8>) -> Option<Reply> {
        let allowed = match self.authorize(msg, Transport::Tcp, peer, out) {
            Ok(a) => a,
            Err(done) => return done.map(Reply::One),
        };
        let qtype = allowed.checked.qtype();
        let time = self.clock.now();
        let at = super::cookie::unix_now();
        let body = if qtype == rtype::AXFR {
            count("axfr");
            Body::Whole(self.zone.snapshot())
        } else {
            let Some(serial) = client_serial(msg) else {
                return Some(Reply::One(self.refuse(
                    &allowed.checked,
                    Rcode::FormErr,
                    Refusal::Malformed,
                    None,
                    msg,
                    out,
                )));
            };
            match self.zone.changes_since(serial) {
                Changes::UpToDate(now) => {
                    count("ixfr_current");
                    return Some(Reply::One(single_soa(&allowed, &now, time, out)));
                }
                // A signed zone's difference carries the signatures that
                // changed, made again: only for a copy signed in this
                // period.
                Changes::Incremental { since, to, .. }
                    if to
                        .signer()
                        .is_some_and(|s| since.is_none_or(|t| s.epoch(t) != s.epoch(at))) =>
                {
                    tracing::debug!(
                        from = serial,
                        "IXFR of the signed zone answered whole: the secondary's signatures \
                         are from another signing period or from before a restart"
                    );
                    count("ixfr_full");
                    Body::Whole(to)
                }
                Changes::Incremental {
                    from,
                    removed,
                    added,
                    before,
                    to,
                    ..
                } => {
                    count("ixfr");
                    Body::Incremental {
                        from,
                        removed,
                        added,
                        before: if to.signer().is_some() {
                            before
                        } else {
                            Vec::new()
                        },
                        to,
                    }
                }
                Changes::Full(to) => {
                    tracing::debug!(
                        from = serial,
                        "IXFR answered whole: the history does not reach"
                    );
                    count("ixfr_full");
                    Body::Whole(to)
                }
            }
        };
        Some(Reply::Stream(Box::new(Stream {
            query: msg.to_vec(),
            signer: allowed.signer,
            clock: self.clock.clone(),
            at,
            body,
        })))
    }

    /// A transfer request over UDP: IXFR whole when it fits in one
    /// datagram, else the SOA alone. `None`: drop it.
    pub fn udp(&self, msg: &[u8], peer: IpAddr, out: &mut Vec<u8>) -> Option<Summary> {
        let allowed = match self.authorize(msg, Transport::Udp, peer, out) {
            Ok(a) => a,
            Err(done) => return done,
        };
        let time = self.clock.now();
        let Some(serial) = client_serial(msg) else {
            return Some(self.refuse(
                &allowed.checked,
                Rcode::FormErr,
                Refusal::Malformed,
                None,
                msg,
                out,
            ));
        };
        let (now, records) = match self.zone.changes_since(serial) {
            Changes::UpToDate(now) | Changes::Full(now) => (now, None),
            // Signed: only the SOA, so the secondary comes over TCP.
            Changes::Incremental { to, .. } if to.signer().is_some() => (to, None),
            Changes::Incremental {
                from,
                removed,
                added,
                to,
                ..
            } => {
                let records = incremental(&to, from, &removed, &added);
                (to, Some(records))
            }
        };
        count("ixfr_udp");
        if let Some(records) = records {
            let mut packed = Packed::new(now.apex().as_bytes().len());
            if records.iter().all(|rr| packed.push(rr)) {
                let summary = Response::new(&allowed.checked, Rcode::NoError)
                    .authoritative()
                    .write(out, &packed, &Empty, &Empty);
                // The writer's limit left room for the TSIG.
                if !summary.truncated {
                    sign_one(&allowed, time, out);
                    return Some(summary);
                }
            }
        }
        Some(single_soa(&allowed, &now, time, out))
    }

    /// The checks every transfer request passes: the question, the TSIG,
    /// the ACL. `Err` carries what to do instead (the refusal is in `out`).
    fn authorize<'q>(
        &self,
        msg: &'q [u8],
        transport: Transport,
        peer: IpAddr,
        out: &mut Vec<u8>,
    ) -> Result<Allowed<'q>, Option<Summary>> {
        let checked = query::check_transfer(msg, transport, out)?;
        let apex = self.zone.apex();
        if checked.qname() != apex.as_bytes() || checked.query.qclass != CLASS_IN {
            return Err(Some(self.refuse(
                &checked,
                Rcode::NotAuth,
                Refusal::Zone,
                None,
                msg,
                out,
            )));
        }
        let verified = tsig::verify(msg, &self.policy.keys, Chain::Request, self.clock.now());
        let signer = match verified {
            Ok(None) => None,
            Ok(Some(v)) => {
                let key = self.policy.keys.get(v.key).cloned();
                key.map(|k| (v.key, k, v.mac))
            }
            Err(e) => return Err(Some(self.refuse_tsig(&checked, &e, msg, out))),
        };
        if !self
            .policy
            .allows(peer, signer.as_ref().map(|(i, _, _)| *i))
        {
            let sign_with = signer.as_ref().map(|(_, k, mac)| (k, mac.as_slice()));
            return Err(Some(self.refuse(
                &checked,
                Rcode::NotAuth,
                Refusal::Acl,
                sign_with,
                msg,
                out,
            )));
        }
        Ok(Allowed {
            checked,
            signer: signer.map(|(_, k, mac)| (k, mac)),
        })
    }

    /// The answer to a request whose TSIG failed, as Knot gives it: FORMERR
    /// for one that cannot be read, else NOTAUTH with the TSIG error in an
    /// unsigned TSIG (RFC 8945 §5.3.2).
    fn refuse_tsig(
        &self,
        checked: &Checked<'_>,
        e: &TsigError,
        msg: &[u8],
        out: &mut Vec<u8>,
    ) -> Summary {
        let (rcode, why) = match e {
            TsigError::Malformed(_) => (Rcode::FormErr, Refusal::Malformed),
            TsigError::BadKey(_) => (Rcode::NotAuth, Refusal::BadKey),
            TsigError::BadSig => (Rcode::NotAuth, Refusal::BadSig),
            TsigError::BadTime { .. } => (Rcode::NotAuth, Refusal::BadTime),
        };
        metrics::counter!(telemetry::TSIG_FAILURES, "error" => why.as_str()).increment(1);
        let summary = self.refuse(checked, rcode, why, None, msg, out);
        if e.code() != 0 {
            tsig::append_unsigned_error(out, msg, e.code());
        }
        summary
    }

    /// An ordinary answer to a signed query (a secondary's SOA refresh):
    /// signed with the query's key, which must be one of the transfer
    /// keys (RFC 8945 §5.3); a query whose TSIG fails gets the refusal
    /// instead. The writer left room for the TSIG under the size limit.
    fn sign_answer(
        &self,
        msg: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
        summary: Summary,
    ) -> Option<Summary> {
        let now = self.clock.now();
        match tsig::verify(msg, &self.policy.keys, Chain::Request, now) {
            Ok(Some(v)) => {
                let key = self.policy.keys.get(v.key)?;
                tsig::sign(out, key, Chain::Response(&v.mac), now);
                Some(summary)
            }
            Ok(None) => Some(summary),
            Err(e) => {
                let mut scratch = Vec::new();
                let checked = query::check(msg, transport, &mut scratch).ok()?;
                Some(self.refuse_tsig(&checked, &e, msg, out))
            }
        }
    }

    fn refuse(
        &self,
        checked: &Checked<'_>,
        rcode: Rcode,
        why: Refusal,
        signer: Option<(&TsigKey, &[u8])>,
        _msg: &[u8],
        out: &mut Vec<u8>,
    ) -> Summary {
        metrics::counter!(telemetry::TRANSFER_REFUSALS, "reason" => why.as_str()).increment(1);
        let summary = Response::new(checked, rcode).empty(out);
        if let Some((key, mac)) = signer {
            tsig::sign(out, key, Chain::Response(mac), self.clock.now());
        }
        summary
    }
}

fn count(kind: &'static str) {
    metrics::counter!(telemetry::TRANSFERS, "kind" => kind).increment(1);
}

/// The serial of the SOA in an IXFR request's authority section.
fn client_serial(msg: &[u8]) -> Option<u32> {
    let mut r = Reader::new(msg);
    r.take(4).ok()?;
    let qd = r.u16().ok()?;
    let an = r.u16().ok()?;
    let ns = r.u16().ok()?;
    r.u16().ok()?;
    if qd != 1 || ns < 1 {
        return None;
    }
    r.skip_name().ok()?;
    r.take(4).ok()?;
    for _ in 0..an {
        r.skip_name().ok()?;
        r.take(8).ok()?;
        let len = r.u16().ok()?;
        r.take(usize::from(len)).ok()?;
    }
    r.skip_name().ok()?;
    if r.u16().ok()? != rtype::SOA {
        return None;
    }
    r.take(6).ok()?;
    let len = usize::from(r.u16().ok()?);
    let rdata = r.take(len).ok()?;
    let at = len.checked_sub(20)?;
    let b = rdata.get(at..at + 4)?;
    Some(u32::from_be_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// The SOA of `snapshot` with the serial set to `serial` (the old SOA of
/// an incremental answer).
pub(super) fn soa_at(snapshot: &Snapshot, serial: u32) -> Rr {
    let mut soa = snapshot.soa().into_vec();
    // The serial is the first of the five numbers that end the RDATA.
    if let Some(at) = soa.len().checked_sub(20)
        && let Some(b) = soa.get_mut(at..at + 4)
    {
        b.copy_from_slice(&serial.to_be_bytes());
    }
    soa.into_boxed_slice()
}

/// The records of an incremental answer, in order.
fn incremental(to: &Snapshot, from: u32, removed: &[Rr], added: &[Rr]) -> Vec<Rr> {
    let soa = to.soa();
    let mut out = Vec::with_capacity(removed.len() + added.len() + 4);
    out.push(soa.clone());
    out.push(soa_at(to, from));
    out.extend(removed.iter().cloned());
    out.push(soa.clone());
    out.extend(added.iter().cloned());
    out.push(soa);
    out
}

fn single_soa(allowed: &Allowed<'_>, now: &Snapshot, time: u64, out: &mut Vec<u8>) -> Summary {
    let mut packed = Packed::new(now.apex().as_bytes().len());
    packed.push(&now.soa());
    let summary = Response::new(&allowed.checked, Rcode::NoError)
        .authoritative()
        .write(out, &packed, &Empty, &Empty);
    sign_one(allowed, time, out);
    summary
}

fn sign_one(allowed: &Allowed<'_>, time: u64, out: &mut Vec<u8>) {
    if let Some((key, mac)) = &allowed.signer {
        tsig::sign(out, key, Chain::Response(mac), time);
    }
}

/// Records of one message, owners compressed against the question name
/// (the apex) and, for the records of one name, against its first owner
/// in the message, as Knot compresses them.
struct Packed {
    bytes: Vec<u8>,
    count: u16,
    apex_len: usize,
    /// Where the records start in the message: header and question.
    base: usize,
    /// The last owner written out and its offset in the message.
    owner: Vec<u8>,
    owner_at: Option<u16>,
}

impl Packed {
    fn new(apex_len: usize) -> Packed {
        Packed {
            bytes: Vec::with_capacity(MESSAGE_TARGET + 1024),
            count: 0,
            apex_len,
            base: 12 + apex_len + 4,
            owner: Vec::with_capacity(256),
            owner_at: None,
        }
    }

    /// Adds a full record; false when it cannot be read (then nothing is
    /// added).
    fn push(&mut self, rr: &[u8]) -> bool {
        let Some(n) = super::zone::name_len(rr) else {
            return false;
        };
        let (Some(owner), Some(rest)) = (rr.get(..n), rr.get(n..)) else {
            return false;
        };
        self.push_owned(owner, rest);
        true
    }

    /// Adds a record of `owner` whose type, class, TTL, length and RDATA
    /// are `body`. Owners inside the zone become their own labels and a
    /// pointer to the question (offset 12), which is the apex, or a
    /// pointer to the same owner earlier in the message.
    fn push_owned(&mut self, owner: &[u8], body: &[u8]) {
        match owner.len().checked_sub(self.apex_len) {
            Some(0) => self.bytes.extend_from_slice(&[0xC0, 0x0C]),
            Some(_) if self.owner_at.is_some() && self.owner == owner => {
                let at = self.owner_at.unwrap_or(12);
                self.bytes.extend_from_slice(&(0xC000 | at).to_be_bytes());
            }
            Some(k) => {
                let at = self.base + self.bytes.len();
                self.bytes
                    .extend_from_slice(owner.get(..k).unwrap_or_default());
                self.bytes.extend_from_slice(&[0xC0, 0x0C]);
                // A pointer has 14 bits: later owners past that are
                // written out again.
                self.owner_at = u16::try_from(at).ok().filter(|a| *a < 0x4000);
                self.owner.clear();
                self.owner.extend_from_slice(owner);
            }
            None => self.bytes.extend_from_slice(owner),
        }
        self.bytes.extend_from_slice(body);
        self.count += 1;
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.count = 0;
        self.owner_at = None;
    }
}

impl Section for Packed {
    fn len(&self) -> usize {
        self.bytes.len()
    }
    fn count(&self) -> u16 {
        self.count
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.bytes);
    }
}

impl Stream {
    /// Writes every message of the transfer, each with its 2-byte length,
    /// to `send`, which gets batches of framed messages and returns false
    /// to stop (the client went away). Returns the messages and records
    /// sent. Runs on a blocking thread: a zone of a million names takes
    /// seconds.
    pub fn run(self, send: &mut dyn FnMut(Vec<u8>) -> bool) -> (u64, u64) {
        let mut scratch = Vec::new();
        let Ok(checked) = query::check_transfer(&self.query, Transport::Tcp, &mut scratch) else {
            return (0, 0);
        };
        let (snapshot, first) = match &self.body {
            Body::Whole(s) | Body::Incremental { to: s, .. } => (s, s.soa()),
        };
        let mut w = Writer {
            checked,
            signer: self.signer.as_ref(),
            mac: None,
            clock: &self.clock,
            packed: Packed::new(snapshot.apex().as_bytes().len()),
            message: Vec::with_capacity(MESSAGE_TARGET + 2048),
            batch: Vec::with_capacity(4 * MESSAGE_TARGET),
            send,
            messages: 0,
            records: 0,
            open: true,
        };
        match &self.body {
            Body::Whole(s) if s.signer().is_some() => {
                w.push(&first);
                w.signed_zone(s, self.at);
                s.for_each_cut_record(|rr| w.push(rr));
                w.push(&first);
            }
            Body::Whole(s) => {
                w.push(&first);
                // From the hot tier's own bytes: no record is decoded or
                // copied on the way but into the message.
                let mut cut = Vec::new();
                s.for_each_set(
                    |owner, set| w.push_set(owner, &set.bytes),
                    |rr| cut.push(rr.to_vec()),
                );
                for rr in &cut {
                    w.push(rr);
                }
                w.push(&first);
            }
            Body::Incremental {
                from,
                removed,
                added,
                before,
                to,
            } => match to.signer() {
                Some(signer) => {
                    let old_soa = soa_at(to, *from);
                    let (mut removed, mut added) = (removed.clone(), added.clone());
                    let (sigs_out, sigs_in) =
                        super::signed_diff::changes(to, signer, &old_soa, before, self.at);
                    removed.extend(sigs_out);
                    added.extend(sigs_in);
                    for rr in incremental(to, *from, &removed, &added) {
                        w.push(&rr);
                    }
                }
                None => {
                    for rr in incremental(to, *from, removed, added) {
                        w.push(&rr);
                    }
                }
            },
        }
        w.finish();
        metrics::counter!(telemetry::TRANSFER_MESSAGES).increment(w.messages);
        (w.messages, w.records)
    }
}

struct Writer<'q, 's> {
    checked: Checked<'q>,
    signer: Option<&'s (TsigKey, Vec<u8>)>,
    /// The MAC of the last message sent (the next one covers it).
    mac: Option<Vec<u8>>,
    clock: &'s Clock,
    packed: Packed,
    message: Vec<u8>,
    batch: Vec<u8>,
    send: &'s mut dyn FnMut(Vec<u8>) -> bool,
    messages: u64,
    records: u64,
    open: bool,
}

impl Writer<'_, '_> {
    fn push(&mut self, rr: &[u8]) {
        if !self.open {
            return;
        }
        // A record that would take the message past what TCP can frame
        // goes in the next one.
        if self.packed.len() + rr.len() + 512 > usize::from(u16::MAX) {
            self.emit();
        }
        if self.packed.push(rr) {
            self.records += 1;
        }
        if self.packed.len() >= MESSAGE_TARGET || self.packed.count == u16::MAX {
            self.emit();
        }
    }

    /// The zone signed in full, for secondaries that cannot sign on line
    /// (RFC 4035 §2): every authoritative RRset with its RRSIG (at a cut
    /// only the DS is the parent's to sign), and at every name of the chain
    /// an NSEC to the next one (RFC 4034 §4), signed. The SOA itself is
    /// the caller's, first and last; its RRSIG goes with the apex.
    fn signed_zone(&mut self, s: &Snapshot, now: u32) {
        use super::signed_diff::{chain_types, nsec, signed_here};
        let Some(signer) = s.signer() else { return };
        let ttl = s.negative_ttl();
        let chain = s.chain();
        let apex = s.apex().as_bytes();
        for (i, link) in chain.iter().enumerate() {
            for set in link.rrsets {
                if set.rtype != rtype::SOA {
                    self.push_set(link.owner, &set.bytes);
                }
                if !signed_here(set.rtype, link.cut) {
                    continue;
                }
                if let Some(sig) = set.sig.get(signer, link.owner, set.rtype, &set.bytes, now) {
                    self.push_record(link.owner, &sig);
                }
            }
            let next = chain.get(i + 1).map_or(apex, |n| n.owner);
            let Some((rdata, record)) = nsec(next, &chain_types(link.rrsets, link.cut), ttl) else {
                continue;
            };
            self.push_record(link.owner, &record);
            if let Some(sig) = signer.denial(link.owner, &rdata, ttl, now) {
                self.push_record(link.owner, &sig);
            }
        }
    }

    /// Adds one record: `owner`, then `body` (type, class, TTL, length,
    /// RDATA).
    fn push_record(&mut self, owner: &[u8], body: &[u8]) {
        if !self.open {
            return;
        }
        if self.packed.len() + owner.len() + body.len() + 512 > usize::from(u16::MAX) {
            self.emit();
        }
        self.packed.push_owned(owner, body);
        self.records += 1;
        if self.packed.len() >= MESSAGE_TARGET || self.packed.count == u16::MAX {
            self.emit();
        }
    }

    /// Adds the records of prepared answer bytes (each: a 2-byte owner
    /// pointer, type, class, TTL, length, RDATA) with `owner`.
    fn push_set(&mut self, owner: &[u8], prepared: &[u8]) {
        let mut rest = prepared;
        while let Some(len) = rest.get(10..12) {
            let rdlen = usize::from(u16::from_be_bytes([
                len.first().copied().unwrap_or(0),
                len.get(1).copied().unwrap_or(0),
            ]));
            let (Some(body), Some(next)) = (rest.get(2..12 + rdlen), rest.get(12 + rdlen..)) else {
                return;
            };
            if !self.open {
                return;
            }
            self.push_record(owner, body);
            rest = next;
        }
    }

    fn emit(&mut self) {
        if self.packed.count == 0 || !self.open {
            return;
        }
        Response::new(&self.checked, Rcode::NoError)
            .authoritative()
            .write(&mut self.message, &self.packed, &Empty, &Empty);
        if let Some((key, request_mac)) = self.signer {
            let chain = match &self.mac {
                None => Chain::Response(request_mac),
                Some(previous) => Chain::Continued(previous),
            };
            self.mac = Some(tsig::sign(&mut self.message, key, chain, self.clock.now()));
        }
        self.packed.clear();
        if !super::tcp::push_framed(&mut self.batch, &self.message) {
            self.open = false;
            return;
        }
        self.messages += 1;
        if self.batch.len() >= 4 * MESSAGE_TARGET {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() || !self.open {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(4 * MESSAGE_TARGET));
        self.open = (self.send)(batch);
    }

    fn finish(&mut self) {
        self.emit();
        self.flush();
    }
}

/// A node's DNS service: its zone's answers, and transfers of it.
impl super::server::Responder for Transfers {
    fn respond_now(
        &self,
        msg: &[u8],
        client: &query::Client,
        out: &mut Vec<u8>,
    ) -> super::server::Now {
        let summary = super::engine::respond(&self.zone, &self.safeguards, msg, client, out);
        // Transfer requests go on to `tcp`/`udp`, which check their TSIG;
        // an answer rate limiting dropped is not signed.
        let summary = match summary {
            Some(s)
                if s.signed
                    && s.rrl != super::rrl::Action::Dropped
                    && !matches!(s.qtype, rtype::AXFR | rtype::IXFR) =>
            {
                self.sign_answer(msg, client.transport, out, s)
            }
            other => other,
        };
        summary.into()
    }

    fn transfers(&self) -> Option<&Transfers> {
        Some(self)
    }
}
