//! Iterative resolution from the root key (DESIGN §3).
//!
//! Starts at the deepest zone it already trusts (the root, configured with
//! its addresses and pinned key, or a delegation verified earlier), asks its
//! servers, and follows referrals down: each referral's delegation record
//! must verify against the key of the zone that sent it before its servers
//! are asked anything. A record is accepted only if the key of the zone
//! that served it signed it. A negative answer is accepted only from the
//! servers a verified chain led to and, when the resolver validates denial
//! (the gateway's default), only with a DNSSEC NSEC at the name signed by
//! the zone's key ([`verify_denial`]). Used by `cpid resolve
//! --trust-anchor` and by the gateway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::clock::Clock;
use crate::dns::response::Rcode;
use crate::dns::wire::rtype;
use crate::ident::delegation::{self, TrustError, TrustedZone};
use crate::ident::identifier::{Apex, Identifier, Prefix};
use crate::ident::record::{RecordStatus, SignedRecord};

/// Most referrals followed for one name (the prefix depth limit is 8).
const MAX_REFERRALS: usize = 10;

/// Why a name could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// A link of the chain, or the record, failed verification.
    #[error("verification failed: {0}")]
    Trust(#[from] TrustError),
    /// No server of a zone answered usefully.
    #[error("zone {zone}: {reason}")]
    Upstream { zone: String, reason: String },
    /// The name is not one the resolver can ask for (not a DNS name, or
    /// not under the federation).
    #[error("{0}")]
    Name(String),
    /// Bytes read back (a cached delegation record) do not decode.
    #[error("cannot decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    /// A cached delegation whose parent zone is not trusted (any more).
    #[error("no trusted parent zone {0}")]
    NoTrustedParent(String),
    /// A verified answer that cannot be encoded for the cache (a record
    /// or section beyond the wire format's 16-bit lengths).
    #[error("cannot encode {0} for the cache")]
    Unencodable(&'static str),
    /// The record is not shown in its node's log under a witnessed
    /// checkpoint (a gateway with `require_witnessed`).
    #[error("not witnessed: {0}")]
    Unwitnessed(String),
    /// A negative answer without a valid DNSSEC denial (a resolver that
    /// validates denial): an unsigned NXDOMAIN could be a forger's.
    #[error("denial of {name} not proven: {why}")]
    Denial { name: String, why: String },
}

impl ResolveError {
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            ResolveError::Trust(_) | ResolveError::Unwitnessed(_) | ResolveError::Denial { .. }
        )
    }
}

/// The one mapping from a failed resolution to what a DNS client is told.
/// Every cause is SERVFAIL (RFC 1035 §4.1.1: the server could not process
/// the query): a verification failure must not read as NXDOMAIN, which
/// would let a forger deny a name exists, and the gateway never answers
/// REFUSED for a name under the federation.
impl From<&ResolveError> for Rcode {
    fn from(e: &ResolveError) -> Rcode {
        match e {
            ResolveError::Trust(_)
            | ResolveError::Upstream { .. }
            | ResolveError::Name(_)
            | ResolveError::Decode { .. }
            | ResolveError::NoTrustedParent(_)
            | ResolveError::Unencodable(_)
            | ResolveError::Unwitnessed(_)
            | ResolveError::Denial { .. } => Rcode::ServFail,
        }
    }
}

/// A final answer for a name.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The response of the zone that owns the name (not a referral).
    pub message: Message,
    /// Every zone from the root down to the one that answered.
    pub path: Vec<TrustedZone>,
}

/// What an identifier resolved to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A verified, active record; `ttl` is the TTL its zone gave it.
    Record { record: SignedRecord, ttl: u32 },
    /// NXDOMAIN (or no record at the name); `soa` is the zone's SOA record
    /// when it sent one, `ttl` the negative TTL (RFC 2308 §5).
    Negative { soa: Option<Record>, ttl: u32 },
}

/// Iterative resolver with a cache of verified delegations.
pub struct Resolver {
    root: TrustedZone,
    apex: Apex,
    timeout: Duration,
    /// Verified child zones and when their cache entry expires (unix s).
    zones: RwLock<HashMap<Prefix, (TrustedZone, u64)>>,
    /// Cap on the time a delegation is cached.
    max_ttl: u32,
    queries: AtomicU64,
    /// Delegations verified and cached so far (restored ones included).
    learned: AtomicU64,
    /// Decides delegation expiry and validity.
    clock: Clock,
    /// Ask with DO and accept a negative answer only with a valid DNSSEC
    /// denial signed by the zone's key.
    validate_denial: bool,
}

impl Resolver {
    pub fn new(root: TrustedZone, apex: Apex, timeout: Duration, max_ttl: u32) -> Resolver {
        Resolver {
            root,
            apex,
            timeout,
            zones: RwLock::new(HashMap::new()),
            max_ttl,
            queries: AtomicU64::new(0),
            learned: AtomicU64::new(0),
            clock: Clock::system(),
            validate_denial: false,
        }
    }

    /// The same resolver accepting a negative answer only with a DNSSEC
    /// denial (an NSEC at the name, RFC 9824 compact denial as cpid nodes
    /// send it) whose RRSIG verifies under the zone's key — the key the
    /// chain of trust already vouched for — and that does not list the
    /// asked type.
    pub fn validating_denial(mut self, on: bool) -> Resolver {
        self.validate_denial = on;
        self
    }

    /// Whether negative answers need a valid DNSSEC denial.
    pub fn validates_denial(&self) -> bool {
        self.validate_denial
    }

    /// The same resolver deciding expiry and validity by `clock` (tests
    /// move time without sleeping; the gateway shares its own).
    pub fn with_clock(mut self, clock: Clock) -> Resolver {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn apex(&self) -> &Apex {
        &self.apex
    }

    pub fn root(&self) -> &TrustedZone {
        &self.root
    }

    /// Upstream queries sent so far.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// How many delegations have been cached so far: it changes when there
    /// is something new to persist.
    pub fn learned(&self) -> u64 {
        self.learned.load(Ordering::Relaxed)
    }

    /// Cached delegations in force, parents first.
    pub fn zones(&self) -> Vec<(TrustedZone, u64)> {
        let now = self.clock.now();
        let mut v: Vec<_> = self
            .zones
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|(_, exp)| *exp > now)
            .cloned()
            .collect();
        v.sort_by_key(|(z, _)| z.prefix.depth());
        v
    }

    /// Re-admits a delegation cached earlier (the gateway's L2): it must
    /// verify against a zone already trusted, so load parents first.
    pub fn restore_zone(&self, record: &SignedRecord, expires: u64) -> Result<(), ResolveError> {
        let now = self.clock.now();
        let parent_prefix = record.record().identifier.prefix().clone();
        let parent = self
            .trusted(&parent_prefix, now)
            .filter(|z| z.prefix == parent_prefix)
            .ok_or_else(|| ResolveError::NoTrustedParent(parent_prefix.to_string()))?;
        let child = parent.verify_delegation(record, now)?;
        self.remember(child, expires);
        Ok(())
    }

    fn remember(&self, zone: TrustedZone, expires: u64) {
        let expires = expires.min(zone.valid_until);
        self.learned.fetch_add(1, Ordering::Relaxed);
        self.zones
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(zone.prefix.clone(), (zone, expires));
    }

    /// Forgets every cached delegation (tests, and `resolve` from scratch).
    pub fn forget_zones(&self) {
        self.zones
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The deepest trusted zone containing `prefix`, with the chain above it.
    fn trusted_path(&self, prefix: &Prefix, now: u64) -> Vec<TrustedZone> {
        let zones = self.zones.read().unwrap_or_else(|e| e.into_inner());
        let mut path = vec![self.root.clone()];
        let mut p = self.root.prefix.clone();
        for seg in prefix.segments().skip(self.root.prefix.depth()) {
            let Ok(next) = p.child(seg) else { break };
            match zones.get(&next) {
                Some((z, exp)) if *exp > now && now <= z.valid_until => path.push(z.clone()),
                _ => break,
            }
            p = next;
        }
        path
    }

    fn trusted(&self, prefix: &Prefix, now: u64) -> Option<TrustedZone> {
        self.trusted_path(prefix, now).pop()
    }

    /// The prefix a name lies under: its numeric labels below the apex.
    fn prefix_of(&self, name: &Name) -> Option<Prefix> {
        let apex = Name::from_ascii(format!("{}.", self.apex.as_str())).ok()?;
        if !apex.zone_of(name) {
            return None;
        }
        let labels: Vec<String> = name
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        let below = labels.len().checked_sub(usize::from(apex.num_labels()))?;
        let mut segments = Vec::new();
        for l in labels.get(..below)?.iter().rev() {
            if l.bytes().all(|b| b.is_ascii_digit()) && !l.is_empty() {
                segments.push(l.clone());
            } else {
                break;
            }
        }
        Prefix::parse(&segments.join(".")).ok()
    }

    /// Resolves `name`/`qtype` down the hierarchy; the answer is the
    /// response of the zone that owns the name.
    pub async fn resolve(&self, name: &Name, qtype: u16) -> Result<Answer, ResolveError> {
        let now = self.clock.now();
        let prefix = self
            .prefix_of(name)
            .filter(|p| self.root.prefix.contains(p))
            .ok_or_else(|| ResolveError::Name(format!("{name} is not under the federation")))?;
        let mut path = self.trusted_path(&prefix, now);
        for _ in 0..MAX_REFERRALS {
            let zone = path.last().cloned().unwrap_or_else(|| self.root.clone());
            let message = self.ask(&zone, name, qtype).await?;
            match self.follow(&zone, name, &message, now).await? {
                Some((child, ttl)) => {
                    let expires = now + u64::from(ttl.min(self.max_ttl));
                    self.remember(child.clone(), expires);
                    path.push(child);
                }
                None => return Ok(Answer { message, path }),
            }
        }
        Err(ResolveError::Upstream {
            zone: prefix.to_string(),
            reason: "too many referrals".into(),
        })
    }

    /// Resolves an identifier to its verified record, or a negative answer.
    /// A record signed by a key its zone was not known to hold is asked
    /// again once after the zone's delegation is fetched afresh: the zone
    /// may have rolled its key since the delegation was cached.
    pub async fn resolve_identifier(
        &self,
        id: &Identifier,
    ) -> Result<(Outcome, Vec<TrustedZone>), ResolveError> {
        match self.resolve_identifier_once(id).await {
            Err(ResolveError::Trust(TrustError::UnknownKey { zone, .. }))
                if self.forget_zone(&zone) =>
            {
                self.resolve_identifier_once(id).await
            }
            other => other,
        }
    }

    /// Forgets the cached delegation of `prefix` (and of the zones below,
    /// which it vouched for); false when none was cached.
    pub fn forget_zone(&self, prefix: &str) -> bool {
        let Ok(prefix) = Prefix::parse(prefix) else {
            return false;
        };
        let mut zones = self.zones.write().unwrap_or_else(|e| e.into_inner());
        let before = zones.len();
        zones.retain(|p, _| !prefix.contains(p));
        zones.len() != before
    }

    async fn resolve_identifier_once(
        &self,
        id: &Identifier,
    ) -> Result<(Outcome, Vec<TrustedZone>), ResolveError> {
        let name = Name::from_ascii(id.to_dns_name(&self.apex))
            .map_err(|e| ResolveError::Name(e.to_string()))?;
        let answer = self.resolve(&name, rtype::CPREC).await?;
        let zone = answer
            .path
            .last()
            .cloned()
            .unwrap_or_else(|| self.root.clone());
        let outcome = identifier_outcome(&zone, id, &answer.message)?;
        // A withdrawn record is a verified record, not a denial.
        if self.validate_denial
            && matches!(outcome, Outcome::Negative { .. })
            && private_records(&answer.message.answers, rtype::CPREC).is_empty()
        {
            let zone_name = zone.prefix.zone_name(&self.apex);
            verify_denial(
                &zone_name,
                &zone.keys().map(|k| k.to_bytes()).collect::<Vec<_>>(),
                &name,
                rtype::CPREC,
                &answer.message,
                self.clock.now() as u32,
            )?;
        }
        Ok((outcome, answer.path))
    }

    /// Why an identifier under a prefix deeper than `zone` has no answer
    /// there: the zone's (signed) delegation record for the next prefix
    /// down, if it publishes one, checked as a referral would be.
    pub async fn explain_missing(&self, zone: &TrustedZone, id: &Identifier) -> Option<TrustError> {
        let next = id
            .prefix()
            .segments()
            .nth(zone.prefix.depth())
            .and_then(|s| zone.prefix.child(s).ok())?;
        let cut = Name::from_ascii(next.zone_name(&self.apex)).ok()?;
        let message = self.ask(zone, &cut, rtype::CPREC).await.ok()?;
        let record = private_records(&message.answers, rtype::CPREC)
            .into_iter()
            .find_map(|(_, (_, bytes))| SignedRecord::decode(&bytes).ok())?;
        zone.verify_delegation(&record, self.clock.now()).err()
    }

    /// Sends one query to the zone's servers in turn, starting with a
    /// different one each time, so the load spreads over every server a
    /// delegation (or the root hints) lists, and one that fails is passed
    /// over (a primary hidden behind secondaries is never needed).
    async fn ask(
        &self,
        zone: &TrustedZone,
        name: &Name,
        qtype: u16,
    ) -> Result<Message, ResolveError> {
        let mut last = String::from("no servers");
        let n = zone.servers.len().max(1);
        let start = (self.queries.load(Ordering::Relaxed) as usize) % n;
        let order = zone
            .servers
            .iter()
            .cycle()
            .skip(start)
            .take(zone.servers.len());
        for &server in order {
            self.queries.fetch_add(1, Ordering::Relaxed);
            let started = Instant::now();
            let result = exchange(server, name, qtype, self.timeout, self.validate_denial).await;
            metrics::histogram!(crate::telemetry::GATEWAY_UPSTREAM_SECONDS)
                .record(started.elapsed().as_secs_f64());
            match result {
                Ok(m)
                    if matches!(
                        m.metadata.response_code,
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    return Ok(m);
                }
                Ok(m) => last = format!("{server} answered {}", m.metadata.response_code),
                Err(e) => last = format!("{server}: {e}"),
            }
        }
        Err(ResolveError::Upstream {
            zone: zone.prefix.to_string(),
            reason: last,
        })
    }

    /// [`referral`], and when the referral lacks the delegation record (a
    /// stock secondary's: data at a cut is not authoritative), the record
    /// from where the parent also publishes it, asked of the same servers.
    async fn follow(
        &self,
        zone: &TrustedZone,
        name: &Name,
        m: &Message,
        now: u64,
    ) -> Result<Option<(TrustedZone, u32)>, ResolveError> {
        let Some((cut, found)) = referral_cut(zone, name, m)? else {
            return Ok(None);
        };
        let found = if found.is_empty() {
            let lame = |reason: String| ResolveError::Upstream {
                zone: zone.prefix.to_string(),
                reason,
            };
            let alias = child_of(zone, &cut)
                .and_then(|child| delegation::alias_name(&child, &self.apex))
                .and_then(|a| Name::from_ascii(a).ok())
                .ok_or_else(|| lame(format!("referral to {cut}, not a child prefix")))?;
            let answer = self.ask(zone, &alias, rtype::CPREC).await?;
            let found: Vec<(u32, Vec<u8>)> = private_records(&answer.answers, rtype::CPREC)
                .into_iter()
                .filter(|(owner, _)| owner.to_lowercase() == alias.to_lowercase())
                .map(|(_, found)| found)
                .collect();
            if found.is_empty() {
                return Err(lame(format!(
                    "referral to {cut} without a delegation record"
                )));
            }
            found
        } else {
            found
        };
        verify_referral(zone, &self.apex, &cut, found, now).map(Some)
    }
}

/// The child prefix of `zone` whose zone `cut` is (its first label is the
/// child's last segment).
fn child_of(zone: &TrustedZone, cut: &Name) -> Option<Prefix> {
    let label = cut.iter().next()?;
    zone.prefix.child(std::str::from_utf8(label).ok()?).ok()
}

/// A referral to a child of `zone` toward `name`, verified: its NS set,
/// and the delegation record at the same cut, signed by `zone`'s key.
pub fn referral(
    zone: &TrustedZone,
    apex: &Apex,
    name: &Name,
    m: &Message,
    now: u64,
) -> Result<Option<(TrustedZone, u32)>, ResolveError> {
    match referral_cut(zone, name, m)? {
        None => Ok(None),
        Some((cut, found)) if !found.is_empty() => {
            verify_referral(zone, apex, &cut, found, now).map(Some)
        }
        Some((cut, _)) => Err(ResolveError::Upstream {
            zone: zone.prefix.to_string(),
            reason: format!("referral to {cut} without a delegation record"),
        }),
    }
}

/// Whether `m` is a referral toward `name`: its cut, and the delegation
/// records (TTL, bytes) it carries there: none from a stock secondary,
/// two during a key rollover's overlap.
#[allow(clippy::type_complexity)]
fn referral_cut(
    zone: &TrustedZone,
    name: &Name,
    m: &Message,
) -> Result<Option<(Name, Vec<(u32, Vec<u8>)>)>, ResolveError> {
    let is_referral = m.metadata.response_code == ResponseCode::NoError
        && m.answers.is_empty()
        && !m.metadata.authoritative
        && m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS);
    if !is_referral {
        return Ok(None);
    }
    let Some(ns) = m
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::NS)
    else {
        return Ok(None);
    };
    let cut = ns.name.to_lowercase();
    let lame = |reason: String| ResolveError::Upstream {
        zone: zone.prefix.to_string(),
        reason,
    };
    if !cut.zone_of(name) {
        return Err(lame(format!(
            "referral to {cut}, which is not above {name}"
        )));
    }
    let found = private_records(&m.authorities, rtype::CPREC)
        .into_iter()
        .filter(|(owner, _)| owner.to_lowercase() == cut)
        .map(|(_, found)| found)
        .collect();
    Ok(Some((cut, found)))
}

/// Checks a referral's delegation records (TTL, signed bytes) for the cut
/// `cut` against `zone`'s keys. Two records in force are a key rollover's
/// overlap: the child is trusted under both keys. A record that fails is
/// passed over while another verifies (an old key's delegation past its
/// overlap); when none verifies, the first one's reason is the answer.
fn verify_referral(
    zone: &TrustedZone,
    apex: &Apex,
    cut: &Name,
    found: Vec<(u32, Vec<u8>)>,
    now: u64,
) -> Result<(TrustedZone, u32), ResolveError> {
    let mut verified: Option<(TrustedZone, u32)> = None;
    let mut first_error = None;
    for (ttl, bytes) in found {
        match verify_link(zone, apex, cut, &bytes, now) {
            Ok(child) => {
                verified = Some(match verified {
                    None => (child, ttl),
                    Some((other, t)) => (other.merge(child), t.min(ttl)),
                });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (verified, first_error) {
        (Some(v), _) => Ok(v),
        (None, Some(e)) => Err(e),
        (None, None) => Err(ResolveError::Upstream {
            zone: zone.prefix.to_string(),
            reason: format!("referral to {cut} without a delegation record"),
        }),
    }
}

/// One delegation record of a referral, checked against `zone`'s keys.
fn verify_link(
    zone: &TrustedZone,
    apex: &Apex,
    cut: &Name,
    bytes: &[u8],
    now: u64,
) -> Result<TrustedZone, ResolveError> {
    let lame = |reason: String| ResolveError::Upstream {
        zone: zone.prefix.to_string(),
        reason,
    };
    let record = SignedRecord::decode(bytes).map_err(|e| {
        ResolveError::Trust(TrustError::NotADelegation {
            what: cut.to_string(),
            why: e.to_string(),
        })
    })?;
    let child = zone.verify_delegation(&record, now)?;
    let expected =
        Name::from_ascii(child.prefix.zone_name(apex)).map_err(|e| lame(e.to_string()))?;
    if expected.to_lowercase() != *cut {
        return Err(ResolveError::Trust(TrustError::NotADelegation {
            what: cut.to_string(),
            why: format!("the record delegates {}, not {cut}", child.prefix),
        }));
    }
    Ok(child)
}

/// Reads an identifier's record out of its zone's answer and verifies it.
pub fn identifier_outcome(
    zone: &TrustedZone,
    id: &Identifier,
    m: &Message,
) -> Result<Outcome, ResolveError> {
    let negative_ttl = || {
        m.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some((r.clone(), r.ttl.min(soa.minimum))),
            _ => None,
        })
    };
    if !matches!(
        m.metadata.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    ) {
        return Err(ResolveError::Upstream {
            zone: zone.prefix.to_string(),
            reason: format!("answered {}", m.metadata.response_code),
        });
    }
    if m.metadata.response_code == ResponseCode::NXDomain {
        let (soa, ttl) = negative_ttl().map_or((None, 0), |(r, t)| (Some(r), t));
        return Ok(Outcome::Negative { soa, ttl });
    }
    let found = private_records(&m.answers, rtype::CPREC);
    let Some((ttl, bytes)) = found.into_iter().next().map(|(_, t)| t) else {
        let (soa, ttl) = negative_ttl().map_or((None, 0), |(r, t)| (Some(r), t));
        return Ok(Outcome::Negative { soa, ttl });
    };
    let record = SignedRecord::decode(&bytes).map_err(|e| TrustError::BadRecord {
        record: id.to_string(),
        why: e.to_string(),
    })?;
    if &record.record().identifier != id {
        return Err(ResolveError::Trust(TrustError::BadRecord {
            record: id.to_string(),
            why: format!("the answer is the record of {}", record.record().identifier),
        }));
    }
    zone.verify_record(&record)?;
    if record.record().status != RecordStatus::Active {
        return Ok(Outcome::Negative {
            soa: negative_ttl().map(|(r, _)| r),
            ttl: 0,
        });
    }
    Ok(Outcome::Record { record, ttl })
}

/// Checks the DNSSEC denial in `m` of `name`/`qtype` in the zone `zone_name`
/// signed by one of the Ed25519 keys `keys` (its DNSKEYs, flags 257; two
/// during a key rollover's overlap): an NSEC whose
/// RRSIG verifies at `now`, either at the name with a bitmap that does not
/// list `qtype` (compact denial, RFC 9824: NXNAME for a missing name, the
/// name's types for NODATA) or covering the name (an NSEC chain, RFC 4035
/// §5.4). Returns whether the name does not exist at all (NXNAME or a
/// covering NSEC), which a compact answer sends as NOERROR.
pub fn verify_denial(
    zone_name: &str,
    keys: &[[u8; 32]],
    name: &Name,
    qtype: u16,
    m: &Message,
    now: u32,
) -> Result<bool, ResolveError> {
    use crate::dns::dnssec;
    let fail = |why: &str| ResolveError::Denial {
        name: name.to_string(),
        why: why.into(),
    };
    let owner =
        crate::dns::wire::WireName::parse(&name.to_ascii()).map_err(|e| fail(&e.to_string()))?;
    let apex = crate::dns::wire::WireName::parse(zone_name).map_err(|e| fail(&e.to_string()))?;
    // The NSEC at the name (compact denial, as cpid nodes answer), or one
    // whose span covers it (the NSEC chain a stock secondary serves after
    // a signed transfer: the name does not exist). cpid zones hold no
    // wildcards, so no wildcard proof is asked for.
    let wire = |n: &Name| crate::dns::wire::WireName::parse(&n.to_ascii()).ok();
    let mut chosen = None;
    for r in &m.authorities {
        let (Some(rdata), Some(at)) = (raw_of(r, rtype::NSEC), wire(&r.name)) else {
            continue;
        };
        if at == owner {
            chosen = Some((r, at, rdata, false));
            break;
        }
        let Ok((next, _)) = dnssec::parse_nsec(rdata) else {
            continue;
        };
        let Ok(next) = dnssec::canonical_name(&next) else {
            continue;
        };
        use std::cmp::Ordering::Less;
        let order = crate::dns::zone::canonical_order;
        if order(at.as_bytes(), owner.as_bytes()) == Less
            && (order(owner.as_bytes(), &next) == Less || next == apex.as_bytes())
        {
            chosen = Some((r, at, rdata, true));
        }
    }
    let (record, at, nsec, covering) =
        chosen.ok_or_else(|| fail("no NSEC at or over the name (an unsigned negative answer)"))?;
    let rrsigs: Vec<&[u8]> = m
        .authorities
        .iter()
        .filter(|r| wire(&r.name).as_ref() == Some(&at))
        .filter_map(|r| raw_of(r, rtype::RRSIG))
        .filter(|d| d.get(..2) == Some(&rtype::NSEC.to_be_bytes()[..]))
        .collect();
    let dnskeys: Vec<Vec<u8>> = keys
        .iter()
        .map(|k| dnssec::dnskey_rdata(dnssec::FLAGS_CSK, k))
        .collect();
    let set = dnssec::RrSetRef {
        owner: at.as_bytes(),
        rtype: rtype::NSEC,
        ttl: record.ttl,
        rdatas: &[nsec],
    };
    let mut last = String::from("no RRSIG over the NSEC");
    let verified = rrsigs.iter().any(|sig| {
        dnskeys.iter().any(|dnskey| {
            match dnssec::verify_rrset(apex.as_bytes(), dnskey, &set, sig, now) {
                Ok(()) => true,
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        })
    });
    if !verified {
        return Err(fail(&last));
    }
    if covering {
        return Ok(true);
    }
    let (_, types) = dnssec::parse_nsec(nsec).map_err(|e| fail(&e.to_string()))?;
    if types.contains(&qtype) {
        return Err(fail("the NSEC says the asked type exists there"));
    }
    Ok(types.contains(&rtype::NXNAME))
}

/// The RDATA of `r` when it is of the (private or DNSSEC) type `t`.
fn raw_of(r: &Record, t: u16) -> Option<&[u8]> {
    match &r.data {
        RData::Unknown { code, rdata } if u16::from(*code) == t => Some(&rdata.anything),
        _ => None,
    }
}

/// `(owner, (ttl, rdata))` of the private-type records in `records`.
fn private_records(records: &[Record], t: u16) -> Vec<(Name, (u32, Vec<u8>))> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::Unknown { code, rdata } if u16::from(*code) == t => {
                Some((r.name.clone(), (r.ttl, rdata.anything.clone())))
            }
            _ => None,
        })
        .collect()
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    u16::from_be_bytes(b)
}

/// One query over UDP (TCP when truncated), with DO when `dnssec`. Only a
/// response with our id and our question is taken; anything else on the
/// socket is ignored.
pub async fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: u16,
    timeout: Duration,
    dnssec: bool,
) -> Result<Message, String> {
    let id = random_id();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    let query = Query::query(name.clone(), RecordType::from(qtype));
    msg.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(dnssec);
    msg.edns = Some(edns);
    let bytes = msg.to_vec().map_err(|e| e.to_string())?;
    let matches = |m: &Message| {
        m.metadata.id == id
            && m.metadata.message_type == MessageType::Response
            && matches!(m.queries.as_slice(), [q]
                if q.name().to_lowercase() == name.to_lowercase()
                    && q.query_type() == query.query_type())
    };
    let work = async {
        let bind: SocketAddr = if server.is_ipv6() {
            SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from(([0, 0, 0, 0], 0))
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| e.to_string())?;
        sock.connect(server).await.map_err(|e| e.to_string())?;
        sock.send(&bytes).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = sock.recv(&mut buf).await.map_err(|e| e.to_string())?;
            let Some(Ok(m)) = buf.get(..n).map(Message::from_vec) else {
                continue;
            };
            if !matches(&m) {
                continue;
            }
            if !m.metadata.truncation {
                return Ok(m);
            }
            break;
        }
        let mut tcp = tokio::net::TcpStream::connect(server)
            .await
            .map_err(|e| e.to_string())?;
        let len = u16::try_from(bytes.len()).map_err(|e| e.to_string())?;
        tcp.write_all(&len.to_be_bytes())
            .await
            .map_err(|e| e.to_string())?;
        tcp.write_all(&bytes).await.map_err(|e| e.to_string())?;
        let mut lenb = [0u8; 2];
        tcp.read_exact(&mut lenb).await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(lenb))];
        tcp.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let m = Message::from_vec(&buf).map_err(|e| e.to_string())?;
        if matches(&m) {
            Ok(m)
        } else {
            Err("TCP answer does not match the query".into())
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}
