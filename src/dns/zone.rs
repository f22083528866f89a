//! The hot tier: a node's zone held in memory as ready-built answer bytes.
//!
//! Every RRset is stored already encoded as the answer section it will be
//! sent as (owner written as a compression pointer to the question), so
//! answering is a hash lookup and a copy. Negative answers use the same
//! lookup and one pre-encoded SOA, so NXDOMAIN and NODATA cost what a
//! positive answer costs. Empty non-terminals (RFC 8020) are tracked as
//! nodes without data, so they answer NODATA rather than NXDOMAIN.
//!
//! The maps are persistent (structure-shared) maps, so a zone transfer or an
//! export takes a consistent [`Snapshot`] in O(1) under the read lock and
//! reads it while queries and writes go on. A change arrives as one
//! [`Zone::apply`] of [`Edit`]s with the serial it moves the zone to; the
//! zone keeps what each serial removed and added, bounded in bytes, for
//! IXFR ([`Zone::changes_since`]).
//!
//! This module never touches disk; it is rebuilt from the store at start-up
//! and updated in place when a record changes.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use super::signing::{SigCell, Signer};
use super::wire::{CLASS_IN, Soa, WireName, rtype};

/// One RRset in structured form: what the registry hands to the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrSet {
    pub rtype: u16,
    pub ttl: u32,
    pub rdatas: Vec<Vec<u8>>,
}

/// Why the zone refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    #[error("{0} is not inside the zone")]
    OutOfZone(String),
    #[error("RDATA of {0} octets does not fit a resource record")]
    RdataTooLong(usize),
    #[error("the zone apex can only be changed through its own settings")]
    Apex,
}

/// An RRset encoded as answer records whose owner is the question name.
#[derive(Debug)]
pub(super) struct Prepared {
    pub rtype: u16,
    pub count: u16,
    /// Records with owner `C0 0C` (a pointer to the question name).
    pub bytes: Box<[u8]>,
    /// Additional-section records (glue), owners written out in full.
    pub additional: Option<(u16, Box<[u8]>)>,
    /// Its RRSIG, made when a query with DO first asks (`dns::signing`).
    pub sig: SigCell,
}

/// The data at one name. The RRsets sit behind one `Arc`, shared with the
/// canonical order and so with snapshots.
#[derive(Debug, Default)]
pub(super) struct Node {
    pub rrsets: Arc<[Prepared]>,
    /// Names below this one that hold data; keeps empty non-terminals alive.
    below: u32,
}

/// SOA timers; the serial comes from the store.
#[derive(Debug, Clone, Copy)]
pub struct SoaTimers {
    pub ttl: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308 §4).
    pub minimum: u32,
}

impl Default for SoaTimers {
    fn default() -> Self {
        Self {
            ttl: 3600,
            refresh: 3600,
            retry: 600,
            expire: 1_209_600,
            minimum: 300,
        }
    }
}

/// How the apex is described: its name servers and the node key RRsets.
#[derive(Debug, Clone)]
pub struct ApexData {
    pub apex: WireName,
    /// Name servers with their addresses (in-zone ones get glue).
    pub name_servers: Vec<(WireName, Vec<IpAddr>)>,
    pub hostmaster: WireName,
    pub timers: SoaTimers,
    pub serial: u32,
    /// Further apex RRsets (the node key).
    pub extra: Vec<RrSet>,
}

/// A zone cut: what the parent sends for names at or below a delegated
/// child (RFC 1034 §4.3.2 step 3b), plus the signed delegation record.
#[derive(Debug)]
pub(super) struct Referral {
    /// Authority records without their owner (type, class, ttl, rdlength,
    /// rdata); the owner is written as a pointer to the cut inside the
    /// question name.
    pub authority: Vec<Box<[u8]>>,
    /// Glue, owners written out in full.
    pub glue: (u16, Box<[u8]>),
    /// What a zone transfer carries for the cut: its NS records and the
    /// glue, as full records (the delegation record is data at the cut's
    /// name and travels with the names).
    transfer: Vec<Rr>,
}

/// What a cut delegates: authority RRsets (NS, then the delegation record),
/// glue (name, address) and the glue TTL.
#[derive(Debug, Clone)]
pub struct CutSpec {
    pub authority: Vec<RrSet>,
    pub glue: Vec<(WireName, IpAddr)>,
    pub ttl: u32,
}

/// One change to the zone's content.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Replaces all data at a name; empty sets remove it.
    Set(WireName, Vec<RrSet>),
    /// Delegates a name strictly inside the zone, or (`None`) removes the
    /// cut.
    Cut(WireName, Option<CutSpec>),
}

/// A resource record written out in full: owner (uncompressed), type,
/// class, TTL, RDATA length, RDATA. What the change history and a transfer
/// hold.
pub type Rr = Box<[u8]>;

/// What moving from one serial to the next removed and added.
#[derive(Debug, Default)]
pub struct Delta {
    pub from: u32,
    pub to: u32,
    pub removed: Vec<Rr>,
    pub added: Vec<Rr>,
    /// Every name the change touched, as it was at `from`.
    pub before: Vec<Before>,
    /// When `from` became the zone's serial (Unix seconds), if this process
    /// saw it happen: a secondary holds that serial's signatures from some
    /// time after.
    pub since: Option<u32>,
}

impl Delta {
    fn bytes(&self) -> usize {
        // `before` keeps the touched names' old RRsets alive, the unchanged
        // ones too.
        let old: usize = self
            .before
            .iter()
            .map(|b| {
                b.owner.len()
                    + 48
                    + b.rrsets
                        .iter()
                        .map(|p| p.bytes.len() + std::mem::size_of::<Prepared>())
                        .sum::<usize>()
            })
            .sum();
        self.removed
            .iter()
            .chain(&self.added)
            .map(|r| r.len() + 16)
            .sum::<usize>()
            + old
            + 64
    }
}

/// A name as it was before a change: its RRsets and whether it was a zone
/// cut. A signed zone's IXFR reads from it which RRSIGs and NSECs went.
#[derive(Debug, Clone)]
pub struct Before {
    pub(super) owner: Key,
    pub(super) rrsets: Arc<[Prepared]>,
    pub(super) cut: bool,
}

/// The bounded history of changes by serial.
#[derive(Debug)]
struct Journal {
    deltas: VecDeque<Arc<Delta>>,
    bytes: usize,
    limit: usize,
}

/// Default bound on the change history kept for IXFR.
pub const DEFAULT_HISTORY_BYTES: usize = 64 << 20;

impl Journal {
    fn push(&mut self, delta: Delta) {
        let size = delta.bytes();
        if size > self.limit {
            self.clear();
            return;
        }
        self.bytes += size;
        self.deltas.push_back(Arc::new(delta));
        while self.bytes > self.limit {
            match self.deltas.pop_front() {
                Some(d) => self.bytes = self.bytes.saturating_sub(d.bytes()),
                None => break,
            }
        }
    }

    fn clear(&mut self) {
        self.deltas.clear();
        self.bytes = 0;
    }
}

/// What a secondary at some serial needs to catch up.
#[derive(Debug)]
pub enum Changes {
    /// It already has this serial (or a newer one).
    UpToDate(Snapshot),
    /// The condensed difference from its serial to the snapshot's: every
    /// record removed and every record added, each once; every name
    /// touched as it was at `from`, and when `from` became the serial.
    Incremental {
        from: u32,
        removed: Vec<Rr>,
        added: Vec<Rr>,
        before: Vec<Before>,
        since: Option<u32>,
        to: Snapshot,
    },
    /// The history no longer reaches its serial: the whole zone.
    Full(Snapshot),
}

type Key = Arc<[u8]>;

/// A name in [`HotZone::order`]: its owner and its RRsets.
type Ordered = (Key, Arc<[Prepared]>);

/// The data behind the lock.
#[derive(Debug)]
pub(super) struct HotZone {
    pub apex: WireName,
    /// Every name, for the query path. A plain hash map: snapshots take
    /// `order` instead, and a lookup here costs about half of what one in
    /// a persistent map does.
    pub names: HashMap<Key, Node>,
    /// Every name of `names` by its [`canonical_key`], with its RRsets: the
    /// names in DNSSEC canonical order (the apex first) without sorting or
    /// looking them up, for a transfer's stream and the NSEC chain around
    /// a change.
    order: imbl::OrdMap<Box<[u8]>, Ordered>,
    /// Delegated child zones by cut name; empty for a leaf node, and then
    /// the query path never looks.
    pub cuts: imbl::HashMap<Key, Arc<Referral>>,
    /// SOA record without owner, TTL already the negative TTL:
    /// type, class, ttl, rdlength, rdata.
    pub negative_soa: Box<[u8]>,
    /// The online signer when the zone is signed (`[dns.dnssec]`).
    pub signer: Option<Arc<Signer>>,
    apex_data: ApexData,
}

#[derive(Debug)]
struct Guarded {
    hot: HotZone,
    journal: Journal,
    /// When the current serial became current, if this process saw it.
    since: Option<u32>,
}

/// The hot tier of one zone, shared by every DNS worker.
#[derive(Debug)]
pub struct Zone {
    inner: RwLock<Guarded>,
    /// The serial, for whoever follows it (NOTIFY).
    serial: tokio::sync::watch::Sender<u32>,
}

fn encode_rr(
    out: &mut Vec<u8>,
    owner: &[u8],
    rtype: u16,
    ttl: u32,
    rdata: &[u8],
) -> Result<(), ZoneError> {
    let rdlen = u16::try_from(rdata.len()).map_err(|_| ZoneError::RdataTooLong(rdata.len()))?;
    out.extend_from_slice(owner);
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&rdlen.to_be_bytes());
    out.extend_from_slice(rdata);
    Ok(())
}

fn full_rr(owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) -> Result<Rr, ZoneError> {
    let mut out = Vec::with_capacity(owner.len() + 10 + rdata.len());
    encode_rr(&mut out, owner, rtype, ttl, rdata)?;
    Ok(out.into_boxed_slice())
}

const QUESTION_POINTER: [u8; 2] = [0xC0, 0x0C];

fn prepare(set: &RrSet) -> Result<Prepared, ZoneError> {
    let mut bytes = Vec::with_capacity(set.rdatas.iter().map(|r| 12 + r.len()).sum());
    for rdata in &set.rdatas {
        encode_rr(&mut bytes, &QUESTION_POINTER, set.rtype, set.ttl, rdata)?;
    }
    Ok(Prepared {
        rtype: set.rtype,
        count: set.rdatas.len() as u16,
        bytes: bytes.into_boxed_slice(),
        additional: None,
        sig: SigCell::default(),
    })
}

fn glue_rr(name: &WireName, addr: &IpAddr, ttl: u32, out: &mut Vec<u8>) -> Result<(), ZoneError> {
    let (t, rdata) = match addr {
        IpAddr::V4(v4) => (rtype::A, v4.octets().to_vec()),
        IpAddr::V6(v6) => (rtype::AAAA, v6.octets().to_vec()),
    };
    encode_rr(out, name.as_bytes(), t, ttl, &rdata)
}

impl Referral {
    fn build(cut: &WireName, spec: &CutSpec) -> Result<Referral, ZoneError> {
        let mut authority = Vec::new();
        let mut transfer = Vec::new();
        for set in &spec.authority {
            for rdata in &set.rdatas {
                let mut rr = Vec::new();
                encode_rr(&mut rr, &[], set.rtype, set.ttl, rdata)?;
                authority.push(rr.into_boxed_slice());
                if set.rtype == rtype::NS {
                    transfer.push(full_rr(cut.as_bytes(), set.rtype, set.ttl, rdata)?);
                }
            }
        }
        let mut glue_bytes = Vec::new();
        let mut count = 0u16;
        for (name, addr) in &spec.glue {
            glue_rr(name, addr, spec.ttl, &mut glue_bytes)?;
            let mut one = Vec::new();
            glue_rr(name, addr, spec.ttl, &mut one)?;
            transfer.push(one.into_boxed_slice());
            count += 1;
        }
        Ok(Referral {
            authority,
            glue: (count, glue_bytes.into_boxed_slice()),
            transfer,
        })
    }
}

/// An edit checked and encoded, ready to go in under the lock.
enum Ready {
    Set(WireName, Vec<Prepared>),
    Cut(WireName, Option<Referral>),
}

/// Counts records out (−1) and in (+1) over several edits or serials, so a
/// record removed and put back is no change; keeps each name touched as it
/// was first seen.
#[derive(Default)]
struct Tally {
    counts: HashMap<Rr, i64>,
    before: HashMap<Key, Before>,
}

impl Tally {
    fn count(&mut self, rrs: impl IntoIterator<Item = Rr>, by: i64) {
        for rr in rrs {
            *self.counts.entry(rr).or_insert(0) += by;
        }
    }

    /// Records a name as it was before this change; a name touched before
    /// keeps its first state.
    fn touch(&mut self, before: Before) {
        self.before.entry(before.owner.clone()).or_insert(before);
    }

    /// (removed, added, touched names), each in a stable order.
    fn split(self) -> (Vec<Rr>, Vec<Rr>, Vec<Before>) {
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        for (rr, n) in self.counts {
            if n < 0 {
                removed.push(rr);
            } else if n > 0 {
                added.push(rr);
            }
        }
        removed.sort();
        added.sort();
        let mut before: Vec<Before> = self.before.into_values().collect();
        before.sort_by(|a, b| a.owner.cmp(&b.owner));
        (removed, added, before)
    }
}

impl HotZone {
    fn new(apex_data: ApexData) -> Result<HotZone, ZoneError> {
        let mut zone = HotZone {
            apex: apex_data.apex.clone(),
            names: HashMap::new(),
            order: imbl::OrdMap::new(),
            cuts: imbl::HashMap::new(),
            negative_soa: Box::default(),
            signer: None,
            apex_data,
        };
        let apex = zone.apex.clone();
        zone.entry(apex.as_bytes());
        zone.rebuild_apex()?;
        Ok(zone)
    }

    /// The negative TTL (RFC 9077): the TTL of every denial record.
    pub(super) fn negative_ttl(&self) -> u32 {
        negative_ttl_of(&self.negative_soa)
    }

    fn soa(&self) -> Soa {
        soa_of(&self.apex_data)
    }

    /// The zone as it is now, sharing everything with it: O(1).
    fn freeze(&self) -> Snapshot {
        Snapshot {
            apex: self.apex.clone(),
            order: self.order.clone(),
            cuts: self.cuts.clone(),
            negative_soa: self.negative_soa.clone(),
            signer: self.signer.clone(),
            apex_data: self.apex_data.clone(),
        }
    }

    /// Re-encodes the apex RRsets, the name-server addresses and the
    /// negative SOA from `apex_data`.
    fn rebuild_apex(&mut self) -> Result<(), ZoneError> {
        let d = self.apex_data.clone();
        let soa = self.soa().rdata();
        let mut negative = Vec::with_capacity(soa.len() + 10);
        encode_rr(
            &mut negative,
            &[],
            rtype::SOA,
            d.timers.ttl.min(d.timers.minimum),
            &soa,
        )?;
        self.negative_soa = negative.into_boxed_slice();

        let mut sets = vec![RrSet {
            rtype: rtype::SOA,
            ttl: d.timers.ttl,
            rdatas: vec![soa],
        }];
        if !d.name_servers.is_empty() {
            sets.push(RrSet {
                rtype: rtype::NS,
                ttl: d.timers.ttl,
                rdatas: d
                    .name_servers
                    .iter()
                    .map(|(n, _)| n.as_bytes().to_vec())
                    .collect(),
            });
        }
        sets.extend(d.extra.iter().cloned());
        if let Some(signer) = &self.signer {
            sets.push(RrSet {
                rtype: rtype::DNSKEY,
                ttl: d.timers.ttl,
                rdatas: vec![signer.key().dnskey().to_vec()],
            });
        }
        let mut prepared = sets.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;

        // Addresses of in-zone name servers: their own names, and glue.
        let mut glue = Vec::new();
        let mut glue_count = 0u16;
        for (ns, addrs) in &d.name_servers {
            if !ns.is_within(&d.apex) || addrs.is_empty() {
                continue;
            }
            let mut sets = Vec::new();
            for (t, want_v4) in [(rtype::A, true), (rtype::AAAA, false)] {
                let rdatas: Vec<Vec<u8>> = addrs
                    .iter()
                    .filter_map(|a| match a {
                        IpAddr::V4(v4) if want_v4 => Some(v4.octets().to_vec()),
                        IpAddr::V6(v6) if !want_v4 => Some(v6.octets().to_vec()),
                        _ => None,
                    })
                    .collect();
                for rdata in &rdatas {
                    encode_rr(&mut glue, ns.as_bytes(), t, d.timers.ttl, rdata)?;
                    glue_count += 1;
                }
                if !rdatas.is_empty() {
                    sets.push(RrSet {
                        rtype: t,
                        ttl: d.timers.ttl,
                        rdatas,
                    });
                }
            }
            if ns != &d.apex {
                let ready = sets.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
                self.set(ns, ready, None);
            } else {
                prepared.extend(sets.iter().map(prepare).collect::<Result<Vec<_>, _>>()?);
            }
        }
        if let Some(ns) = prepared.iter_mut().find(|p| p.rtype == rtype::NS)
            && glue_count > 0
        {
            ns.additional = Some((glue_count, glue.into_boxed_slice()));
        }
        let apex = d.apex.as_bytes();
        let rrsets: Arc<[Prepared]> = prepared.into();
        if let Some(node) = self.names.get_mut(apex) {
            node.rrsets = rrsets.clone();
        }
        if let Some(entry) = self.order.get_mut(&self.canonical(apex)) {
            entry.1 = rrsets;
        }
        Ok(())
    }

    /// The name as it is now, for a change's record of what it touched.
    fn before(&self, owner: &[u8]) -> Before {
        Before {
            owner: owner.into(),
            rrsets: self
                .names
                .get(owner)
                .map_or_else(|| Arc::from(Vec::new()), |n| n.rrsets.clone()),
            cut: self.cuts.contains_key(owner),
        }
    }

    /// The records at `name` as full records (what a transfer sends).
    fn records_at(&self, name: &[u8]) -> Vec<Rr> {
        let Some(node) = self.names.get(name) else {
            return Vec::new();
        };
        node_records(name, node)
    }

    fn set(&mut self, name: &WireName, prepared: Vec<Prepared>, tally: Option<&mut Tally>) {
        let owner = name.as_bytes();
        let had_data = self.names.get(owner).is_some_and(|n| !n.rrsets.is_empty());
        let rrsets: Arc<[Prepared]> = prepared.into();
        if let Some(tally) = tally {
            tally.touch(self.before(owner));
            tally.count(self.records_at(owner), -1);
            let new = Node {
                rrsets: rrsets.clone(),
                below: 0,
            };
            tally.count(node_records(owner, &new), 1);
        }
        self.put(name, rrsets, had_data)
    }

    fn canonical(&self, owner: &[u8]) -> Box<[u8]> {
        canonical_key(owner, self.apex.as_bytes().len()).into_boxed_slice()
    }

    /// The node at `owner`, made (and put in order) if the zone lacks it.
    fn entry(&mut self, owner: &[u8]) -> &mut Node {
        if !self.names.contains_key(owner) {
            let canonical = self.canonical(owner);
            self.insert(owner, canonical);
        }
        self.names.entry(owner.into()).or_default()
    }

    /// Adds an empty node at `owner`, which the zone lacks, under its
    /// canonical key; both maps share the owner's bytes.
    fn insert(&mut self, owner: &[u8], canonical: Box<[u8]>) {
        let key: Key = owner.into();
        let empty: Arc<[Prepared]> = Arc::from(Vec::new());
        self.order.insert(canonical, (key.clone(), empty.clone()));
        self.names.insert(
            key,
            Node {
                rrsets: empty,
                below: 0,
            },
        );
    }

    /// Removes the node at `owner`, from the order too.
    fn remove(&mut self, owner: &[u8]) {
        if self.names.remove(owner).is_some() {
            self.order.remove(&self.canonical(owner));
        }
    }

    fn put(&mut self, name: &WireName, rrsets: Arc<[Prepared]>, had_data: bool) {
        let has_data = !rrsets.is_empty();
        let owner = name.as_bytes();
        let canonical = self.canonical(owner);
        if !self.names.contains_key(owner) {
            self.insert(owner, canonical.clone());
        }
        let node = self.names.entry(owner.into()).or_default();
        node.rrsets = rrsets.clone();
        let keep = has_data || node.below > 0;
        if keep {
            if let Some(entry) = self.order.get_mut(&canonical) {
                entry.1 = rrsets;
            }
        } else {
            self.names.remove(owner);
            self.order.remove(&canonical);
        }
        match (had_data, has_data) {
            (false, true) => self.adjust_ancestors(name, true),
            (true, false) => self.adjust_ancestors(name, false),
            _ => {}
        }
    }

    fn set_cut(
        &mut self,
        cut: &WireName,
        referral: Option<Referral>,
        mut tally: Option<&mut Tally>,
    ) {
        let added = referral
            .as_ref()
            .map(|r| r.transfer.clone())
            .unwrap_or_default();
        if let Some(tally) = tally.as_deref_mut() {
            tally.touch(self.before(cut.as_bytes()));
        }
        let old = match referral {
            Some(r) => self.cuts.insert(cut.as_bytes().into(), Arc::new(r)),
            None => self.cuts.remove(cut.as_bytes()),
        };
        if let Some(tally) = tally {
            tally.count(added, 1);
            if let Some(old) = old {
                tally.count(old.transfer.iter().cloned(), -1);
            }
        }
    }

    /// Counts a name with data in (or out of) every ancestor up to the apex.
    fn adjust_ancestors(&mut self, name: &WireName, add: bool) {
        let mut cur = name.parent();
        while let Some(parent) = cur {
            if !parent.is_within(&self.apex) {
                break;
            }
            let key = parent.as_bytes();
            if add {
                self.entry(key).below += 1;
            } else if let Some(node) = self.names.get_mut(key) {
                node.below = node.below.saturating_sub(1);
                if node.below == 0 && node.rrsets.is_empty() && parent != self.apex {
                    self.remove(key);
                }
            }
            if parent == self.apex {
                break;
            }
            cur = parent.parent();
        }
    }
}

/// The SOA the apex data describes.
fn soa_of(d: &ApexData) -> Soa {
    Soa {
        mname: d
            .name_servers
            .first()
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| d.apex.clone()),
        rname: d.hostmaster.clone(),
        serial: d.serial,
        refresh: d.timers.refresh,
        retry: d.timers.retry,
        expire: d.timers.expire,
        minimum: d.timers.minimum,
    }
}

/// The negative TTL (RFC 9077), read from the negative SOA record
/// (owner-less: type, class, TTL …): the TTL of every denial record.
fn negative_ttl_of(negative_soa: &[u8]) -> u32 {
    match negative_soa.get(4..8) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

fn node_records(owner: &[u8], node: &Node) -> Vec<Rr> {
    let mut out = Vec::new();
    for set in node.rrsets.iter() {
        for (t, ttl, rdata) in decode_prepared(&set.bytes) {
            if let Ok(rr) = full_rr(owner, t, ttl, rdata) {
                out.push(rr);
            }
        }
    }
    out
}

/// True when `serial` is after `current` in RFC 1982 order.
fn ahead(serial: u32, current: u32) -> bool {
    serial != current && serial.wrapping_sub(current) < 0x8000_0000
}

impl Zone {
    pub fn new(apex: ApexData) -> Result<Zone, ZoneError> {
        Zone::with_history(apex, DEFAULT_HISTORY_BYTES)
    }

    /// A zone that keeps up to `history_bytes` of changes for IXFR.
    pub fn with_history(apex: ApexData, history_bytes: usize) -> Result<Zone, ZoneError> {
        let (serial, _) = tokio::sync::watch::channel(apex.serial);
        Ok(Zone {
            serial,
            inner: RwLock::new(Guarded {
                hot: HotZone::new(apex)?,
                journal: Journal {
                    deltas: VecDeque::new(),
                    bytes: 0,
                    limit: history_bytes,
                },
                since: None,
            }),
        })
    }

    /// Signs the zone on line with `signer` from now on: the apex gains
    /// its DNSKEY, and answers to queries with DO their RRSIGs and
    /// authenticated denial. Not part of the change history: a zone is
    /// signed (or not) from start-up.
    pub fn sign_with(&self, signer: Arc<Signer>) -> Result<(), ZoneError> {
        self.write(|g| {
            g.hot.signer = Some(signer);
            g.hot.rebuild_apex()
        })
    }

    /// The zone's signer, when it is signed.
    pub fn signer(&self) -> Option<Arc<Signer>> {
        self.read(|z| z.signer.clone())
    }

    /// Runs `f` with read access; the closure must not block.
    pub(super) fn read<R>(&self, f: impl FnOnce(&HotZone) -> R) -> R {
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        f(&guard.hot)
    }

    fn write<R>(&self, f: impl FnOnce(&mut Guarded) -> R) -> R {
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub fn apex(&self) -> WireName {
        self.read(|z| z.apex.clone())
    }

    /// Replaces all data at `name`; an empty `sets` removes the name.
    /// Without a serial: for loading and tests (see [`Zone::apply`]).
    pub fn set(&self, name: &WireName, sets: &[RrSet]) -> Result<(), ZoneError> {
        self.apply(vec![Edit::Set(name.clone(), sets.to_vec())], None)
    }

    /// Applies `edits` as one change: readers see all of them or none. With
    /// a `serial` ahead of the zone's, the SOA moves to it and the history
    /// records what this serial removed and added. Without one (loading at
    /// start-up), the content changes under the same serial and the history
    /// is dropped, so no secondary is sent an incomplete difference.
    pub fn apply(&self, edits: Vec<Edit>, serial: Option<u32>) -> Result<(), ZoneError> {
        let apex = self.apex();
        let mut ready = Vec::with_capacity(edits.len());
        for edit in edits {
            ready.push(match edit {
                Edit::Set(name, sets) => {
                    if name == apex {
                        return Err(ZoneError::Apex);
                    }
                    if !name.is_within(&apex) {
                        return Err(ZoneError::OutOfZone(name.to_string()));
                    }
                    let prepared = sets
                        .iter()
                        .filter(|s| !s.rdatas.is_empty())
                        .map(prepare)
                        .collect::<Result<Vec<_>, _>>()?;
                    Ready::Set(name, prepared)
                }
                Edit::Cut(cut, spec) => {
                    if !cut.is_within(&apex) || cut == apex {
                        return Err(ZoneError::OutOfZone(cut.to_string()));
                    }
                    let referral = spec.map(|s| Referral::build(&cut, &s)).transpose()?;
                    Ready::Cut(cut, referral)
                }
            });
        }
        let now = super::cookie::unix_now();
        let moved = self.write(|g| {
            let current = g.hot.apex_data.serial;
            let moves = serial.filter(|s| ahead(*s, current));
            let mut tally = moves.map(|_| Tally::default());
            let changed = !ready.is_empty();
            for edit in ready {
                match edit {
                    Ready::Set(name, prepared) => g.hot.set(&name, prepared, tally.as_mut()),
                    Ready::Cut(cut, referral) => g.hot.set_cut(&cut, referral, tally.as_mut()),
                }
            }
            match (moves, tally) {
                (Some(to), Some(tally)) => {
                    g.hot.apex_data.serial = to;
                    g.hot.rebuild_apex()?;
                    let (removed, added, before) = tally.split();
                    g.journal.push(Delta {
                        from: current,
                        to,
                        removed,
                        added,
                        before,
                        since: g.since,
                    });
                    g.since = Some(now);
                    return Ok(Some(to));
                }
                _ if changed => {
                    if serial.is_some() {
                        tracing::warn!(
                            serial = ?serial,
                            current,
                            "a change arrived with a serial that is not ahead; the IXFR history restarts"
                        );
                    }
                    g.journal.clear();
                    g.since = None;
                }
                _ => {}
            }
            Ok(None)
        })?;
        if let Some(to) = moved {
            self.serial.send_replace(to);
        }
        Ok(())
    }

    /// Follows the serial: the receiver sees each new one (or the newest
    /// of several that came quickly).
    pub fn watch_serial(&self) -> tokio::sync::watch::Receiver<u32> {
        self.serial.subscribe()
    }

    /// Delegates `cut` (a name strictly inside the zone): queries at or
    /// below it get a referral with the authority RRsets (NS, then the
    /// delegation record) and the glue as additional data. `None` removes
    /// the cut. Without a serial, as [`Zone::set`].
    pub fn set_cut(&self, cut: &WireName, referral: Option<CutSpec>) -> Result<(), ZoneError> {
        self.apply(vec![Edit::Cut(cut.clone(), referral)], None)
    }

    /// The delegated cut names, in canonical order.
    pub fn cuts(&self) -> Vec<WireName> {
        let snapshot = self.snapshot();
        let mut v: Vec<WireName> = snapshot
            .cuts
            .keys()
            .map(|k| WireName::from_wire_unchecked(k))
            .collect();
        v.sort_by(|a, b| canonical_order(a.as_bytes(), b.as_bytes()));
        v
    }

    pub fn serial(&self) -> u32 {
        self.read(|z| z.apex_data.serial)
    }

    /// Moves the SOA serial forward to `serial` without changing data (an
    /// import's serial floor); an older serial (in RFC 1982 order) is
    /// ignored.
    pub fn advance_serial(&self, serial: u32) -> Result<(), ZoneError> {
        self.apply(Vec::new(), Some(serial))
    }

    /// Number of names held (identifiers, apex, empty non-terminals).
    pub fn len(&self) -> usize {
        self.read(|z| z.names.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The zone as it is now, for reading at leisure: O(1) under the lock.
    pub fn snapshot(&self) -> Snapshot {
        self.read(HotZone::freeze)
    }

    /// What a secondary at `serial` needs: nothing, the condensed
    /// difference from the history, or (when the history does not reach
    /// back that far) the whole zone.
    pub fn changes_since(&self, serial: u32) -> Changes {
        let (to, deltas) = {
            let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
            let current = guard.hot.apex_data.serial;
            let to = guard.hot.freeze();
            if serial == current || ahead(serial, current) {
                return Changes::UpToDate(to);
            }
            let start = guard.journal.deltas.iter().position(|d| d.from == serial);
            match start {
                Some(i) => (
                    to,
                    guard.journal.deltas.range(i..).cloned().collect::<Vec<_>>(),
                ),
                None => return Changes::Full(to),
            }
        };
        let mut tally = Tally::default();
        for d in &deltas {
            tally.count(d.removed.iter().cloned(), -1);
            tally.count(d.added.iter().cloned(), 1);
            for b in &d.before {
                tally.touch(b.clone());
            }
        }
        let (removed, added, before) = tally.split();
        Changes::Incremental {
            from: serial,
            removed,
            added,
            before,
            since: deltas.first().and_then(|d| d.since),
            to,
        }
    }

    /// Every record in the zone, apex first, then names in canonical order:
    /// `(owner, type, ttl, rdata)`. Used by zone export.
    pub fn records(&self) -> Vec<(WireName, u16, u32, Vec<u8>)> {
        let snapshot = self.snapshot();
        let mut rrs = vec![snapshot.soa().into_vec()];
        snapshot.for_each_record(|rr| rrs.push(rr.to_vec()));
        let mut out: Vec<(WireName, u16, u32, Vec<u8>)> =
            rrs.iter().filter_map(|rr| split_rr(rr)).collect();
        // Stable within a name: the order the name holds its RRsets.
        out.sort_by(|a, b| canonical_order(a.0.as_bytes(), b.0.as_bytes()));
        out
    }
}

/// The length of the uncompressed name at the start of `wire`.
pub fn name_len(wire: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    loop {
        let l = usize::from(*wire.get(pos)?);
        if l == 0 {
            return Some(pos + 1);
        }
        if l > 63 {
            return None;
        }
        pos += 1 + l;
    }
}

/// Splits a full record into (owner, type, ttl, rdata).
pub fn split_rr(rr: &[u8]) -> Option<(WireName, u16, u32, Vec<u8>)> {
    let n = name_len(rr)?;
    let owner = WireName::from_wire_unchecked(rr.get(..n)?);
    let mut r = super::wire::Reader::new(rr.get(n..)?);
    let t = r.u16().ok()?;
    r.u16().ok()?;
    let ttl = r.u32().ok()?;
    let len = r.u16().ok()?;
    let rdata = r.take(usize::from(len)).ok()?.to_vec();
    Some((owner, t, ttl, rdata))
}

/// The zone at one serial, shared with the live zone until either changes:
/// its names in canonical order, its cuts and its apex, without the query
/// path's hash map.
#[derive(Debug, Clone)]
pub struct Snapshot {
    apex: WireName,
    order: imbl::OrdMap<Box<[u8]>, Ordered>,
    cuts: imbl::HashMap<Key, Arc<Referral>>,
    negative_soa: Box<[u8]>,
    signer: Option<Arc<Signer>>,
    apex_data: ApexData,
}

impl Snapshot {
    pub fn serial(&self) -> u32 {
        self.apex_data.serial
    }

    pub fn apex(&self) -> &WireName {
        &self.apex
    }

    /// The SOA record, in full.
    pub fn soa(&self) -> Rr {
        let d = &self.apex_data;
        full_rr(
            d.apex.as_bytes(),
            rtype::SOA,
            d.timers.ttl,
            &soa_of(&self.apex_data).rdata(),
        )
        .unwrap_or_default()
    }

    /// Number of names held.
    pub fn names(&self) -> usize {
        self.order.len()
    }

    /// Calls `f` with every record of the zone except the SOA, each in
    /// full: the data at every name (the apex first), then each cut's NS
    /// records and glue. The order of names is not canonical.
    pub fn for_each_record(&self, mut f: impl FnMut(&[u8])) {
        let mut cuts = Vec::new();
        self.for_each_set(
            |owner, set| {
                for (t, ttl, rdata) in decode_prepared(&set.bytes) {
                    if let Ok(rr) = full_rr(owner, t, ttl, rdata) {
                        f(&rr);
                    }
                }
            },
            |rr| cuts.push(rr.to_vec()),
        );
        for rr in &cuts {
            f(rr);
        }
    }

    /// What [`Snapshot::for_each_record`] walks, as the hot tier holds it:
    /// `set` gets each name's RRsets (the apex first, without its SOA, then
    /// the names in DNSSEC canonical order, as Knot sends them) as
    /// prepared answer bytes (owner pointer `C0 0C`), `cut` each cut's
    /// records in full. No record is copied: a transfer writes from these.
    pub(super) fn for_each_set(
        &self,
        mut set: impl FnMut(&[u8], &Prepared),
        mut cut: impl FnMut(&[u8]),
    ) {
        let apex = self.apex.as_bytes();
        for s in self
            .rrsets_at(apex)
            .iter()
            .filter(|s| s.rtype != rtype::SOA)
        {
            set(apex, s);
        }
        // In canonical order: a secondary builds its tree faster from
        // sorted names, and the same zone is the same stream.
        for (owner, rrsets) in self.order.values() {
            if &owner[..] != apex {
                for s in rrsets.iter() {
                    set(owner, s);
                }
            }
        }
        for referral in self.cuts.values() {
            for rr in &referral.transfer {
                cut(rr);
            }
        }
    }
}

impl Snapshot {
    /// The zone's signer, when it is signed.
    pub(super) fn signer(&self) -> Option<&Arc<Signer>> {
        self.signer.as_ref()
    }

    /// The negative TTL: the TTL of NSEC records (RFC 9077).
    pub(super) fn negative_ttl(&self) -> u32 {
        negative_ttl_of(&self.negative_soa)
    }

    /// Every name that holds data or is a zone cut, apex first, then in
    /// canonical order (RFC 4034 §6.1): the names an NSEC chain links.
    /// Empty non-terminals are left out, as the chain leaves them out.
    pub(super) fn chain(&self) -> Vec<ChainLink<'_>> {
        let any_cuts = !self.cuts.is_empty();
        self.order
            .values()
            .filter_map(|(owner, rrsets)| {
                let cut = any_cuts && self.cuts.contains_key(&owner[..]);
                (cut || !rrsets.is_empty()).then(|| ChainLink {
                    owner: &owner[..],
                    rrsets,
                    cut,
                })
            })
            .collect()
    }

    /// The RRsets at `owner` (none for a name the zone lacks).
    pub(super) fn rrsets_at(&self, owner: &[u8]) -> &[Prepared] {
        let key = canonical_key(owner, self.apex.as_bytes().len());
        self.order
            .get(&key[..])
            .map_or(&[], |(_, rrsets)| &rrsets[..])
    }

    /// Whether `owner` is a zone cut.
    pub(super) fn is_cut(&self, owner: &[u8]) -> bool {
        self.cuts.contains_key(owner)
    }

    /// Whether `owner` is a name of the NSEC chain: it holds data or is a
    /// zone cut.
    pub(super) fn in_chain(&self, owner: &[u8]) -> bool {
        !self.rrsets_at(owner).is_empty() || self.is_cut(owner)
    }

    /// The zone's names (empty non-terminals too) before the canonical key
    /// `key`, nearest first: `(key, owner)`.
    pub(super) fn names_before<'a>(
        &'a self,
        key: &[u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.order
            .range(..Box::<[u8]>::from(key))
            .rev()
            .map(|(k, (o, _))| (&k[..], &o[..]))
    }

    /// The zone's names after the canonical key `key`, nearest first.
    pub(super) fn names_after<'a>(
        &'a self,
        key: &[u8],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        use std::ops::Bound::{Excluded, Unbounded};
        self.order
            .range((Excluded(Box::<[u8]>::from(key)), Unbounded))
            .map(|(k, (o, _))| (&k[..], &o[..]))
    }

    /// The NS and glue records of every zone cut (what a transfer sends
    /// for them besides the data at the cut's name).
    pub(super) fn for_each_cut_record(&self, mut f: impl FnMut(&[u8])) {
        for referral in self.cuts.values() {
            for rr in &referral.transfer {
                f(rr);
            }
        }
    }
}

/// One name of an NSEC chain: its RRsets and whether it is a zone cut.
pub(super) struct ChainLink<'a> {
    pub owner: &'a [u8],
    pub rrsets: &'a [Prepared],
    pub cut: bool,
}

/// The labels of a (lower-case) wire name, the rightmost first: compared
/// as a list, names fall in DNSSEC canonical order (RFC 4034 §6.1).
fn labels_from_the_right(name: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(8);
    let mut pos = 0usize;
    while let Some(&l) = name.get(pos) {
        if l == 0 {
            break;
        }
        let end = pos + 1 + usize::from(l);
        out.push(name.get(pos + 1..end).unwrap_or_default());
        pos = end;
    }
    out.reverse();
    out
}

/// A byte string whose order is the DNSSEC canonical order of names in
/// one zone: the labels below the apex's (`apex_len` bytes, the same for
/// all), rightmost first, each ended by 0 with 0 and 1 escaped as 1 1 and
/// 1 2, so one comparison of flat bytes decides (a list of labels compared
/// label by label costs five times as much at 100 000 names).
pub(super) fn canonical_key(name: &[u8], apex_len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len().saturating_sub(apex_len) + 4);
    canonical_key_into(name, apex_len, &mut key);
    key
}

/// [`canonical_key`] into `key` (cleared first); the labels are found
/// without allocating, as every name added to the zone passes here.
fn canonical_key_into(name: &[u8], apex_len: usize, key: &mut Vec<u8>) {
    key.clear();
    let below = name
        .get(..name.len().saturating_sub(apex_len))
        .unwrap_or_default();
    // Where each label of `below` starts (a name has at most 127).
    let mut starts = [0u8; 128];
    let (mut n, mut pos) = (0usize, 0usize);
    while let Some(&l) = below.get(pos) {
        if l == 0 || n == starts.len() {
            break;
        }
        if let Some(s) = starts.get_mut(n) {
            *s = pos as u8;
        }
        n += 1;
        pos += 1 + usize::from(l);
    }
    for &start in starts.get(..n).unwrap_or_default().iter().rev() {
        let start = usize::from(start);
        let len = usize::from(below.get(start).copied().unwrap_or(0));
        for &b in below.get(start + 1..start + 1 + len).unwrap_or_default() {
            match b {
                0 => key.extend_from_slice(&[1, 1]),
                1 => key.extend_from_slice(&[1, 2]),
                b => key.push(b),
            }
        }
        key.push(0);
    }
}

/// Splits prepared answer bytes (owner pointer, type, class, ttl, rdlength,
/// rdata) back into records.
pub(super) fn decode_prepared(bytes: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    let mut r = super::wire::Reader::new(bytes);
    while r.remaining() > 0 {
        let parsed = (|| {
            r.take(2)?;
            let t = r.u16()?;
            r.u16()?;
            let ttl = r.u32()?;
            let len = r.u16()?;
            Ok::<_, super::wire::WireError>((t, ttl, r.take(usize::from(len))?))
        })();
        match parsed {
            Ok(rec) => out.push(rec),
            Err(_) => break,
        }
    }
    out
}

/// DNSSEC canonical name order (RFC 4034 §6.1): compare label by label from
/// the right.
pub fn canonical_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    labels_from_the_right(a).cmp(&labels_from_the_right(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_apex() -> ApexData {
        crate::testkit::sample_apex(1, [127, 0, 0, 1].into()).unwrap()
    }

    #[test]
    fn empty_non_terminals_come_and_go_with_their_children() {
        let zone = Zone::new(sample_apex()).unwrap();
        let name = WireName::parse("gc-000001-x.1005.31.86.cpid.internal").unwrap();
        let txt = RrSet {
            rtype: rtype::TXT,
            ttl: 60,
            rdatas: vec![b"\x01a".to_vec()],
        };
        let before = zone.len();
        zone.set(&name, std::slice::from_ref(&txt)).unwrap();
        assert_eq!(zone.len(), before + 3, "name plus two empty non-terminals");
        let order = |z: &Zone| z.read(|hot| (hot.order.len(), hot.names.len()));
        let (ordered, named) = order(&zone);
        assert_eq!(ordered, named, "every name in order");
        zone.set(&name, &[]).unwrap();
        assert_eq!(zone.len(), before);
        let (ordered, named) = order(&zone);
        assert_eq!(ordered, named, "and out of it");
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let zone = Zone::new(sample_apex()).unwrap();
        let name = WireName::parse("x.87.cpid.internal").unwrap();
        assert!(matches!(zone.set(&name, &[]), Err(ZoneError::OutOfZone(_))));
    }

    #[test]
    fn a_snapshot_walks_the_names_in_canonical_order_apex_first() {
        let zone = Zone::new(sample_apex()).unwrap();
        let txt = RrSet {
            rtype: rtype::TXT,
            ttl: 60,
            rdatas: vec![b"\x01a".to_vec()],
        };
        for n in [
            "zz.86.cpid.internal",
            "a.31.86.cpid.internal",
            "b.86.cpid.internal",
            "a.b.86.cpid.internal",
            "31.86.cpid.internal",
        ] {
            zone.set(&WireName::parse(n).unwrap(), std::slice::from_ref(&txt))
                .unwrap();
        }
        let mut owners: Vec<Vec<u8>> = Vec::new();
        zone.snapshot().for_each_set(
            |owner, _| {
                if owners.last().map(|o| &o[..]) != Some(owner) {
                    owners.push(owner.to_vec());
                }
            },
            |_| {},
        );
        let apex = WireName::parse("86.cpid.internal").unwrap();
        assert_eq!(owners.first().map(|o| &o[..]), Some(apex.as_bytes()));
        let mut sorted = owners.clone();
        sorted.sort_by(|a, b| canonical_order(a, b));
        assert_eq!(owners, sorted);
        assert!(owners.len() >= 6, "{}", owners.len());
    }

    /// Where an AXFR's time goes before its first message (run with
    /// `cargo test --release --lib -- --ignored walk_and_sort --nocapture`).
    #[test]
    #[ignore]
    fn walk_and_sort_timing() {
        let zone = Zone::new(sample_apex()).unwrap();
        let txt = RrSet {
            rtype: rtype::TXT,
            ttl: 60,
            rdatas: vec![b"\x01a".to_vec()],
        };
        let edits = (0..100_000)
            .map(|i| {
                let name = format!(
                    "ic-{i:06}-x.{}.{}.86.cpid.internal",
                    1000 + i % 7,
                    11 + i % 30
                );
                Edit::Set(WireName::parse(&name).unwrap(), vec![txt.clone(); 1])
            })
            .collect();
        zone.apply(edits, None).unwrap();
        let snap = zone.snapshot();
        let t = std::time::Instant::now();
        let n = zone.read(|hot| hot.names.keys().filter(|k| !k.is_empty()).count());
        let walk = t.elapsed();
        let t = std::time::Instant::now();
        let mut m = 0usize;
        snap.for_each_set(|_, _| m += 1, |_| {});
        let all = t.elapsed();
        eprintln!("{n} names: hash-map walk {walk:?}, ordered visit {all:?} ({m} sets)");
    }

    #[test]
    fn the_flat_key_orders_names_as_canonical_order_does() {
        let apex = WireName::parse("86.cpid.internal").unwrap();
        let prepend = |label: &[u8], name: &[u8]| {
            let mut n = vec![label.len() as u8];
            n.extend_from_slice(label);
            n.extend_from_slice(name);
            n
        };
        let mut names = vec![apex.as_bytes().to_vec()];
        for l in [
            &b"a"[..],
            b"A",
            b"\x00",
            b"\x01",
            b"\x02",
            b"a\x00",
            b"ab",
            b"b",
            b"\xff",
            b"31",
        ] {
            let one = prepend(l, apex.as_bytes());
            for m in [&b"z"[..], b"\x00", b"a", b"\x01\x00"] {
                names.push(prepend(m, &one));
            }
            names.push(one);
        }
        let mut by_key = names.clone();
        by_key.sort_by_key(|n| canonical_key(n, apex.as_bytes().len()));
        let mut by_order = names.clone();
        by_order.sort_by(|a, b| canonical_order(a, b));
        assert_eq!(by_key, by_order);
    }

    #[test]
    fn canonical_order_sorts_parents_first() {
        let a = WireName::parse("86.cpid.internal").unwrap();
        let b = WireName::parse("a.86.cpid.internal").unwrap();
        let c = WireName::parse("b.31.86.cpid.internal").unwrap();
        let mut v = vec![c.clone(), b.clone(), a.clone()];
        v.sort_by(|x, y| canonical_order(x.as_bytes(), y.as_bytes()));
        assert_eq!(v, vec![a, c, b]);
    }
}
