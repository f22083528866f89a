//! The hot tier: a node's zone held in memory as ready-built answer bytes.
//!
//! Every RRset is stored already encoded as the answer section it will be
//! sent as (owner written as a compression pointer to the question), so
//! answering is a hash lookup and a copy. Negative answers use the same
//! lookup and one pre-encoded SOA, so NXDOMAIN and NODATA cost what a
//! positive answer costs. Empty non-terminals (RFC 8020) are tracked as
//! nodes without data, so they answer NODATA rather than NXDOMAIN.
//!
//! This module never touches disk; it is rebuilt from the store at start-up
//! and updated in place when a record changes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::RwLock;

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
}

#[derive(Debug, Default)]
pub(super) struct Node {
    pub rrsets: Vec<Prepared>,
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
}

/// A cut's authority RRsets, its glue (name, address) and the glue TTL.
pub type Delegated<'a> = (&'a [RrSet], &'a [(WireName, IpAddr)], u32);

/// The data behind the lock.
#[derive(Debug)]
pub(super) struct HotZone {
    pub apex: WireName,
    pub names: HashMap<Box<[u8]>, Node>,
    /// Delegated child zones by cut name; empty for a leaf node, and then
    /// the query path never looks.
    pub cuts: HashMap<Box<[u8]>, Referral>,
    /// SOA record without owner, TTL already the negative TTL:
    /// type, class, ttl, rdlength, rdata.
    pub negative_soa: Box<[u8]>,
    apex_data: ApexData,
}

/// The hot tier of one zone, shared by every DNS worker.
#[derive(Debug)]
pub struct Zone {
    inner: RwLock<HotZone>,
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
    })
}

impl HotZone {
    fn new(apex_data: ApexData) -> Result<HotZone, ZoneError> {
        let mut zone = HotZone {
            apex: apex_data.apex.clone(),
            names: HashMap::new(),
            cuts: HashMap::new(),
            negative_soa: Box::default(),
            apex_data,
        };
        zone.names
            .insert(zone.apex.as_bytes().into(), Node::default());
        zone.rebuild_apex()?;
        Ok(zone)
    }

    fn soa(&self) -> Soa {
        let d = &self.apex_data;
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
                self.set(ns, &sets)?;
            } else {
                prepared.extend(sets.iter().map(prepare).collect::<Result<Vec<_>, _>>()?);
            }
        }
        if let Some(ns) = prepared.iter_mut().find(|p| p.rtype == rtype::NS)
            && glue_count > 0
        {
            ns.additional = Some((glue_count, glue.into_boxed_slice()));
        }
        if let Some(node) = self.names.get_mut(d.apex.as_bytes()) {
            node.rrsets = prepared;
        }
        Ok(())
    }

    fn set(&mut self, name: &WireName, sets: &[RrSet]) -> Result<(), ZoneError> {
        if !name.is_within(&self.apex) {
            return Err(ZoneError::OutOfZone(name.to_string()));
        }
        let prepared = sets
            .iter()
            .filter(|s| !s.rdatas.is_empty())
            .map(prepare)
            .collect::<Result<Vec<_>, _>>()?;
        let had_data = self
            .names
            .get(name.as_bytes())
            .is_some_and(|n| !n.rrsets.is_empty());
        let has_data = !prepared.is_empty();
        let node = self.names.entry(name.as_bytes().into()).or_default();
        node.rrsets = prepared;
        let keep = has_data || node.below > 0;
        if !keep {
            self.names.remove(name.as_bytes());
        }
        match (had_data, has_data) {
            (false, true) => self.adjust_ancestors(name, true),
            (true, false) => self.adjust_ancestors(name, false),
            _ => {}
        }
        Ok(())
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
                self.names.entry(key.into()).or_default().below += 1;
            } else if let Some(node) = self.names.get_mut(key) {
                node.below = node.below.saturating_sub(1);
                if node.below == 0 && node.rrsets.is_empty() && parent != self.apex {
                    self.names.remove(key);
                }
            }
            if parent == self.apex {
                break;
            }
            cur = parent.parent();
        }
    }
}

impl Zone {
    pub fn new(apex: ApexData) -> Result<Zone, ZoneError> {
        Ok(Zone {
            inner: RwLock::new(HotZone::new(apex)?),
        })
    }

    /// Runs `f` with read access; the closure must not block.
    pub(super) fn read<R>(&self, f: impl FnOnce(&HotZone) -> R) -> R {
        let guard = self.inner.read().unwrap_or_else(|e| e.into_inner());
        f(&guard)
    }

    fn write<R>(&self, f: impl FnOnce(&mut HotZone) -> R) -> R {
        let mut guard = self.inner.write().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }

    pub fn apex(&self) -> WireName {
        self.read(|z| z.apex.clone())
    }

    /// Replaces all data at `name`; an empty `sets` removes the name.
    pub fn set(&self, name: &WireName, sets: &[RrSet]) -> Result<(), ZoneError> {
        self.write(|z| {
            if name == &z.apex {
                return Err(ZoneError::Apex);
            }
            z.set(name, sets)
        })
    }

    /// Delegates `cut` (a name strictly inside the zone): queries at or
    /// below it get a referral with `authority` (NS, then the delegation
    /// record) and `glue` (name, address) as additional data. `None`
    /// removes the cut.
    pub fn set_cut(
        &self,
        cut: &WireName,
        referral: Option<Delegated<'_>>,
    ) -> Result<(), ZoneError> {
        self.write(|z| {
            if !cut.is_within(&z.apex) || cut == &z.apex {
                return Err(ZoneError::OutOfZone(cut.to_string()));
            }
            let Some((authority, glue, ttl)) = referral else {
                z.cuts.remove(cut.as_bytes());
                return Ok(());
            };
            let mut records = Vec::new();
            for set in authority {
                for rdata in &set.rdatas {
                    let mut rr = Vec::new();
                    encode_rr(&mut rr, &[], set.rtype, set.ttl, rdata)?;
                    records.push(rr.into_boxed_slice());
                }
            }
            let mut glue_bytes = Vec::new();
            let mut count = 0u16;
            for (name, addr) in glue {
                let (t, rdata) = match addr {
                    IpAddr::V4(v4) => (rtype::A, v4.octets().to_vec()),
                    IpAddr::V6(v6) => (rtype::AAAA, v6.octets().to_vec()),
                };
                encode_rr(&mut glue_bytes, name.as_bytes(), t, ttl, &rdata)?;
                count += 1;
            }
            z.cuts.insert(
                cut.as_bytes().into(),
                Referral {
                    authority: records,
                    glue: (count, glue_bytes.into_boxed_slice()),
                },
            );
            Ok(())
        })
    }

    /// The delegated cut names, in canonical order.
    pub fn cuts(&self) -> Vec<WireName> {
        self.read(|z| {
            let mut v: Vec<WireName> = z
                .cuts
                .keys()
                .map(|k| WireName::from_wire_unchecked(k))
                .collect();
            v.sort_by(|a, b| canonical_order(a.as_bytes(), b.as_bytes()));
            v
        })
    }

    pub fn serial(&self) -> u32 {
        self.read(|z| z.apex_data.serial)
    }

    /// Moves the SOA serial forward to `serial`; an older serial (in RFC
    /// 1982 order), from a racing writer, is ignored.
    pub fn advance_serial(&self, serial: u32) -> Result<(), ZoneError> {
        self.write(|z| {
            let current = z.apex_data.serial;
            let ahead = serial != current && serial.wrapping_sub(current) < 0x8000_0000;
            if !ahead {
                return Ok(());
            }
            z.apex_data.serial = serial;
            z.rebuild_apex()
        })
    }

    /// Number of names held (identifiers, apex, empty non-terminals).
    pub fn len(&self) -> usize {
        self.read(|z| z.names.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every record in the zone, apex first, then names in canonical order:
    /// `(owner, type, ttl, rdata)`. Used by zone export.
    pub fn records(&self) -> Vec<(WireName, u16, u32, Vec<u8>)> {
        self.read(|z| {
            let mut names: Vec<&Box<[u8]>> = z.names.keys().collect();
            names.sort_by(|a, b| canonical_order(a, b));
            let mut out = Vec::new();
            for key in names {
                let owner = WireName::from_wire_unchecked(key);
                if let Some(node) = z.names.get(key) {
                    for set in &node.rrsets {
                        for (t, ttl, rdata) in decode_prepared(&set.bytes) {
                            out.push((owner.clone(), t, ttl, rdata.to_vec()));
                        }
                    }
                }
            }
            out
        })
    }
}

/// Splits prepared answer bytes (owner pointer, type, class, ttl, rdlength,
/// rdata) back into records.
fn decode_prepared(bytes: &[u8]) -> Vec<(u16, u32, &[u8])> {
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
    fn labels(n: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        while let Some(&l) = n.get(pos) {
            if l == 0 {
                break;
            }
            out.push(n.get(pos + 1..pos + 1 + usize::from(l)).unwrap_or_default());
            pos += 1 + usize::from(l);
        }
        out
    }
    let (la, lb) = (labels(a), labels(b));
    la.iter().rev().cmp(lb.iter().rev())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample_apex() -> ApexData {
        let apex = WireName::parse("86.cpid.internal").unwrap();
        ApexData {
            name_servers: vec![(
                apex.prepend("ns1").unwrap(),
                vec!["127.0.0.1".parse().unwrap()],
            )],
            hostmaster: apex.prepend("hostmaster").unwrap(),
            apex,
            timers: SoaTimers::default(),
            serial: 1,
            extra: vec![],
        }
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
        zone.set(&name, &[]).unwrap();
        assert_eq!(zone.len(), before);
    }

    #[test]
    fn names_outside_the_zone_are_refused() {
        let zone = Zone::new(sample_apex()).unwrap();
        let name = WireName::parse("x.87.cpid.internal").unwrap();
        assert!(matches!(zone.set(&name, &[]), Err(ZoneError::OutOfZone(_))));
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
