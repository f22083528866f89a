//! What an incremental transfer of a signed zone removes and adds besides
//! the data (RFC 1995 with RFC 4035): the SOA's RRSIG, the RRSIG of every
//! RRset that changed, and the NSEC (with its RRSIG) of every name whose
//! type bitmap or successor changed — each removal byte for byte the record
//! the secondary holds, or the secondary would refuse the difference.
//!
//! None of the old DNSSEC records is kept. Signatures made in one signing
//! period are the same bytes (`dns::signing`), and the history keeps every
//! touched name as it was ([`Before`]), so the old RRSIGs and NSECs are made
//! again from it. The old chain around the touched names is the new chain
//! with those names as they were: the hot tier's names in canonical order
//! give the nearest untouched names on either side of each touched one, and
//! no other NSEC can have changed. The transfer uses this only when the
//! secondary's copy was made in the current period (`dns::xfr`).

use super::dnssec::RrSetRef;
use super::signing::Signer;
use super::wire::{CLASS_IN, rtype};
use super::zone::{Before, Prepared, Rr, Snapshot, canonical_key};

/// The types the NSEC at a name lists (RFC 4034 §4.1.2): its RRsets — at a
/// cut only the DS, as the data there is occluded (RFC 4035 §2.3), plus NS —
/// and RRSIG and NSEC.
pub(super) fn chain_types(rrsets: &[Prepared], cut: bool) -> Vec<u16> {
    let mut types = Vec::with_capacity(rrsets.len() + 3);
    types.extend(
        rrsets
            .iter()
            .map(|s| s.rtype)
            .filter(|t| signed_here(*t, cut)),
    );
    if cut {
        types.push(rtype::NS);
    }
    types.extend_from_slice(&[rtype::RRSIG, rtype::NSEC]);
    types
}

/// Whether the RRset of type `t` at a name is signed: at a cut only the DS
/// is this zone's to sign.
pub(super) fn signed_here(t: u16, cut: bool) -> bool {
    !cut || t == rtype::DS
}

/// The NSEC at a name whose successor is `next`: its RDATA, and the record
/// without owner (type, class, TTL, length, RDATA).
pub(super) fn nsec(next: &[u8], types: &[u16], ttl: u32) -> Option<(Vec<u8>, Vec<u8>)> {
    let rdata = super::dnssec::nsec_rdata(next, types).ok()?;
    let rdlen = u16::try_from(rdata.len()).ok()?;
    let mut body = Vec::with_capacity(rdata.len() + 10);
    body.extend_from_slice(&rtype::NSEC.to_be_bytes());
    body.extend_from_slice(&CLASS_IN.to_be_bytes());
    body.extend_from_slice(&ttl.to_be_bytes());
    body.extend_from_slice(&rdlen.to_be_bytes());
    body.extend_from_slice(&rdata);
    Some((rdata, body))
}

fn full(owner: &[u8], body: &[u8]) -> Rr {
    let mut rr = Vec::with_capacity(owner.len() + body.len());
    rr.extend_from_slice(owner);
    rr.extend_from_slice(body);
    rr.into_boxed_slice()
}

/// A name of the chain near the change, in both states.
struct Link<'a> {
    key: Vec<u8>,
    owner: &'a [u8],
    /// The NSEC types at the name before and after; `None`: not in the
    /// chain then.
    old: Option<Vec<u16>>,
    new: Option<Vec<u16>>,
    /// Its NSEC may have changed: a touched name, or the nearest untouched
    /// name before one.
    affected: bool,
}

/// The DNSSEC records (removed, added) of the difference between the zone
/// whose SOA was `from_soa` and `to`, given every name the difference
/// touched as it was (`before`). Every signature is made for the period of
/// `now`, as the rest of the transfer's.
pub(super) fn changes(
    to: &Snapshot,
    signer: &Signer,
    from_soa: &[u8],
    before: &[Before],
    now: u32,
) -> (Vec<Rr>, Vec<Rr>) {
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    let apex = to.apex().as_bytes();

    // The SOA changed (its serial), so did its signature.
    let soa = to.rrsets_at(apex).iter().find(|s| s.rtype == rtype::SOA);
    if let Some(new) = soa.and_then(|s| s.sig.get(signer, apex, rtype::SOA, &s.bytes, now))
        && let Some((_, _, ttl, rdata)) = super::zone::split_rr(from_soa)
    {
        let set = RrSetRef {
            owner: apex,
            rtype: rtype::SOA,
            ttl,
            rdatas: &[&rdata],
        };
        if let Ok(old) = signer.sign(&set, now)
            && old != new
        {
            removed.push(full(apex, &old));
            added.push(full(apex, &new));
        }
    }

    // The RRSIG of every RRset that changed, or became occluded or not.
    for b in before {
        let owner = &b.owner[..];
        let (sets, cut) = (to.rrsets_at(owner), to.is_cut(owner));
        let mut types: Vec<u16> = b.rrsets.iter().chain(sets).map(|s| s.rtype).collect();
        types.sort_unstable();
        types.dedup();
        for t in types {
            let old = b.rrsets.iter().find(|s| s.rtype == t);
            let new = sets.iter().find(|s| s.rtype == t);
            let old = old.filter(|_| signed_here(t, b.cut));
            let new = new.filter(|_| signed_here(t, cut));
            if let (Some(o), Some(n)) = (old, new)
                && o.bytes == n.bytes
            {
                continue;
            }
            let sig = |s: &Prepared| s.sig.get(signer, owner, t, &s.bytes, now);
            let (o, n) = (old.and_then(sig), new.and_then(sig));
            if o == n {
                continue;
            }
            removed.extend(o.map(|o| full(owner, &o)));
            added.extend(n.map(|n| full(owner, &n)));
        }
    }

    // The NSEC of every name whose bitmap or successor changed.
    for (owner, old, new) in nsec_changes(to, before) {
        let ttl = to.negative_ttl();
        let one = |types_next: Option<(Vec<u16>, &[u8])>, into: &mut Vec<Rr>| {
            let Some((types, next)) = types_next else {
                return;
            };
            let Some((rdata, body)) = nsec(next, &types, ttl) else {
                return;
            };
            into.push(full(owner, &body));
            if let Some(sig) = signer.denial(owner, &rdata, ttl, now) {
                into.push(full(owner, &sig));
            }
        };
        one(old, &mut removed);
        one(new, &mut added);
    }
    (removed, added)
}

/// Every name whose NSEC differs between the two states: (owner, old types
/// and successor, new types and successor), `None` where the name is not in
/// that state's chain.
type NsecChange<'a> = (
    &'a [u8],
    Option<(Vec<u16>, &'a [u8])>,
    Option<(Vec<u16>, &'a [u8])>,
);

fn nsec_changes<'a>(to: &'a Snapshot, before: &'a [Before]) -> Vec<NsecChange<'a>> {
    let apex = to.apex().as_bytes();
    let apex_len = apex.len();
    let member = |sets: &[Prepared], cut: bool| cut || !sets.is_empty();
    let mut touched: Vec<(Vec<u8>, &Before)> = before
        .iter()
        .map(|b| (canonical_key(&b.owner, apex_len), b))
        .collect();
    touched.sort_by(|a, b| a.0.cmp(&b.0));

    // Around each touched name, the nearest untouched names of the chain:
    // the one before (whose successor may change) and the one after (a
    // successor). Both are the same in the two states. A walk stops at the
    // next touched name and takes that one's answer, so adjacent touched
    // names (a bulk import) cost no more than the names between them.
    let k = touched.len();
    type Near<'a> = Option<(&'a [u8], &'a [u8])>;
    let mut greatest: Vec<Near<'a>> = Vec::with_capacity(k);
    for (i, (key, _)) in touched.iter().enumerate() {
        let previous = i.checked_sub(1).and_then(|j| touched.get(j));
        let mut found = None;
        for (at, owner) in to.names_before(key) {
            if let Some((p, _)) = previous
                && at <= &p[..]
            {
                found = greatest.last().copied().flatten();
                break;
            }
            if to.in_chain(owner) {
                found = Some((at, owner));
                break;
            }
        }
        greatest.push(found);
    }
    let mut least: Vec<Near<'a>> = vec![None; k];
    for i in (0..k).rev() {
        let (Some((key, _)), next) = (touched.get(i), touched.get(i + 1)) else {
            continue;
        };
        let mut found = None;
        for (at, owner) in to.names_after(key) {
            if let Some((n, _)) = next
                && at >= &n[..]
            {
                found = least.get(i + 1).copied().flatten();
                break;
            }
            if to.in_chain(owner) {
                found = Some((at, owner));
                break;
            }
        }
        if let Some(slot) = least.get_mut(i) {
            *slot = found;
        }
    }

    let mut links: Vec<Link<'a>> = Vec::with_capacity(3 * k);
    for (key, b) in touched {
        let (sets, cut) = (to.rrsets_at(&b.owner), to.is_cut(&b.owner));
        links.push(Link {
            key,
            owner: &b.owner,
            old: member(&b.rrsets, b.cut).then(|| chain_types(&b.rrsets, b.cut)),
            new: member(sets, cut).then(|| chain_types(sets, cut)),
            affected: true,
        });
    }
    let around = greatest
        .into_iter()
        .map(|g| (g, true))
        .chain(least.into_iter().map(|l| (l, false)));
    for (found, affected) in around {
        let Some((key, owner)) = found else { continue };
        let key = key.to_vec();
        let types = chain_types(to.rrsets_at(owner), to.is_cut(owner));
        links.push(Link {
            key,
            owner,
            old: Some(types.clone()),
            new: Some(types),
            affected,
        });
    }
    links.sort_by(|a, b| a.key.cmp(&b.key));
    links.dedup_by(|later, earlier| {
        let same = later.key == earlier.key;
        if same {
            earlier.affected |= later.affected;
        }
        same
    });

    // Each state's chain, restricted to these names, is exact around the
    // affected ones: their successors are among them (or the apex).
    let successors = |state: fn(&Link<'a>) -> bool| -> Vec<Option<&'a [u8]>> {
        let members: Vec<usize> = (0..links.len())
            .filter(|i| links.get(*i).is_some_and(state))
            .collect();
        let mut next = vec![None; links.len()];
        for (j, i) in members.iter().enumerate() {
            let after = members.get(j + 1).and_then(|m| links.get(*m));
            if let Some(slot) = next.get_mut(*i) {
                *slot = Some(after.map_or(apex, |l| l.owner));
            }
        }
        next
    };
    let old_next = successors(|l| l.old.is_some());
    let new_next = successors(|l| l.new.is_some());
    let mut out = Vec::new();
    for ((link, o), n) in links.iter().zip(old_next).zip(new_next) {
        if !link.affected {
            continue;
        }
        let old = link.old.clone().zip(o);
        let new = link.new.clone().zip(n);
        if old != new {
            out.push((link.owner, old, new));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::IpAddr;
    use std::sync::Arc;

    use hickory_proto::op::Message;
    use hickory_proto::rr::{RData, Record};
    use hickory_proto::serialize::binary::BinEncodable;

    use super::super::wire::{WireName, txt_rdata};
    use super::super::xfr::{Policy, Reply, Transfers};
    use super::super::zone::{CutSpec, Edit, RrSet, Zone};
    use super::*;
    use crate::config::{SecondaryConfig, TransferConfig};

    const APEX: &str = "86.cpid.internal";

    fn name(s: &str) -> WireName {
        WireName::parse(&format!("{s}.{APEX}")).unwrap()
    }

    fn txt(ttl: u32, text: &str) -> RrSet {
        RrSet {
            rtype: rtype::TXT,
            ttl,
            rdatas: vec![txt_rdata(&[text]), txt_rdata(&["index=1"])],
        }
    }

    fn cut(child: &str, ds: bool) -> Vec<Edit> {
        let at = name(child);
        let ns = at.prepend("ns1").unwrap();
        let record = RrSet {
            rtype: rtype::CPREC,
            ttl: 3600,
            rdatas: vec![format!("delegation {child}").into_bytes()],
        };
        let mut sets = vec![record.clone()];
        if ds {
            sets.push(RrSet {
                rtype: rtype::DS,
                ttl: 3600,
                rdatas: vec![vec![0x12, 0x34, 15, 2, 0xAA, child.len() as u8]],
            });
        }
        vec![
            Edit::Set(at.clone(), sets),
            Edit::Cut(
                at,
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
            ),
        ]
    }

    /// A signed zone of `n` identifiers under `1005.31`, one under the
    /// apex, and a cut `44` without a DS; transfers open to 127.0.0.1.
    fn signed(n: usize) -> (Arc<Zone>, Transfers) {
        let (zone, _) = super::super::signing::test_zone(1024);
        let mut edits: Vec<Edit> = (0..n)
            .map(|i| {
                Edit::Set(
                    name(&format!("ic-{i:04}.1005.31")),
                    vec![txt(300, &format!("id={i}"))],
                )
            })
            .collect();
        edits.push(Edit::Set(name("ic-top"), vec![txt(300, "top")]));
        edits.extend(cut("44", false));
        zone.apply(edits, None).unwrap();
        let zone = Arc::new(zone);
        let policy = Policy::from_config(&TransferConfig {
            secondaries: vec![SecondaryConfig {
                notify: None,
                allow: Some("127.0.0.1".into()),
                key: None,
            }],
            ..TransferConfig::default()
        })
        .unwrap();
        let transfers = Transfers::new(zone.clone(), policy, crate::clock::Clock::system());
        (zone, transfers)
    }

    /// Applies `edits` as the next serial.
    fn change(zone: &Zone, edits: Vec<Edit>) -> u32 {
        let next = zone.serial() + 1;
        zone.apply(edits, Some(next)).unwrap();
        next
    }

    /// The answer records of a transfer, and its size in bytes.
    fn transfer(t: &Transfers, qtype: u16, serial: Option<u32>) -> (Vec<Record>, usize) {
        let mut q = vec![
            0x12,
            0x34,
            0,
            0,
            0,
            1,
            0,
            0,
            0,
            u8::from(serial.is_some()),
            0,
            0,
        ];
        q.extend_from_slice(WireName::parse(APEX).unwrap().as_bytes());
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&CLASS_IN.to_be_bytes());
        if let Some(serial) = serial {
            q.extend_from_slice(&[0xC0, 0x0C, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
            q.extend_from_slice(&serial.to_be_bytes());
            q.extend_from_slice(&[0; 16]);
        }
        let mut out = Vec::new();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let mut framed = Vec::new();
        match t.tcp(&q, peer, &mut out).unwrap() {
            Reply::One(_) => {
                framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
                framed.extend_from_slice(&out);
            }
            Reply::Stream(s) => {
                s.run(&mut |batch| {
                    framed.extend_from_slice(&batch);
                    true
                });
            }
        }
        let (mut records, mut rest) = (Vec::new(), &framed[..]);
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            let m = Message::from_vec(&rest[2..2 + len]).unwrap();
            records.extend(m.answers.iter().cloned());
            rest = &rest[2 + len..];
        }
        (records, framed.len())
    }

    fn serial_of(r: &Record) -> Option<u32> {
        match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        }
    }

    type Copy = BTreeMap<Vec<u8>, usize>;

    /// A secondary's copy: the AXFR's records without the closing SOA.
    fn axfr(t: &Transfers) -> Copy {
        let (mut records, _) = transfer(t, rtype::AXFR, None);
        records.pop();
        let mut copy = Copy::new();
        for r in records {
            *copy.entry(r.to_bytes().unwrap()).or_default() += 1;
        }
        copy
    }

    /// Applies an IXFR to `copy` as a secondary does, each removal
    /// required to be there; returns the records it carried.
    fn apply_ixfr(t: &Transfers, copy: &mut Copy, from: u32) -> usize {
        let (records, _) = transfer(t, rtype::IXFR, Some(from));
        assert_eq!(
            records.get(1).and_then(serial_of),
            Some(from),
            "incremental"
        );
        let to = records.first().and_then(serial_of).unwrap();
        let mut adding = false;
        for r in &records[1..records.len() - 1] {
            if serial_of(r) == Some(to) && !adding {
                adding = true;
            }
            let key = r.to_bytes().unwrap();
            if adding {
                *copy.entry(key).or_default() += 1;
            } else {
                let n = copy
                    .get_mut(&key)
                    .unwrap_or_else(|| panic!("removes what the secondary lacks: {r}"));
                *n -= 1;
                if *n == 0 {
                    copy.remove(&key);
                }
            }
        }
        records.len()
    }

    #[test]
    fn a_signed_ixfr_applied_to_the_old_copy_gives_the_new_axfr_exactly() {
        let (zone, t) = signed(40);
        let loaded = zone.serial();
        let first = change(&zone, vec![Edit::Set(name("ic-x"), vec![txt(300, "x")])]);
        // The serial the zone was loaded at became current before this
        // process saw it: a secondary's signatures from then are unknown,
        // so it gets the whole zone.
        let (records, _) = transfer(&t, rtype::IXFR, Some(loaded));
        assert_eq!(records.first().and_then(serial_of), Some(first));
        assert_ne!(records.get(1).and_then(serial_of), Some(loaded));
        let mut copy = axfr(&t);
        let mut older = copy.clone();

        // An update, a new name (in the middle), a withdrawal, the last name
        // of the chain, and a TTL change.
        let s1 = change(
            &zone,
            vec![
                Edit::Set(name("ic-0003.1005.31"), vec![txt(300, "updated")]),
                Edit::Set(name("ic-0010a.1005.31"), vec![txt(300, "new")]),
                Edit::Set(name("ic-0005.1005.31"), vec![]),
                Edit::Set(name("zz"), vec![txt(300, "last")]),
                Edit::Set(name("ic-0007.1005.31"), vec![txt(60, "id=7")]),
            ],
        );
        apply_ixfr(&t, &mut copy, first);
        assert_eq!(copy, axfr(&t), "after serial {s1}");

        // A cut gains a DS (its data changes, occluded but for the DS); a new
        // cut with a DS; the apex's successor; the new last name goes again.
        let mut edits = cut("44", true);
        edits.extend(cut("55", true));
        edits.push(Edit::Set(name("0"), vec![txt(300, "first")]));
        edits.push(Edit::Set(name("zz"), vec![]));
        let s2 = change(&zone, edits);
        apply_ixfr(&t, &mut copy, s1);
        assert_eq!(copy, axfr(&t), "after serial {s2}");

        // A cut removed (its name keeps data, no longer occluded), a name
        // becomes a cut.
        let s3 = change(
            &zone,
            vec![
                Edit::Cut(name("55"), None),
                Edit::Set(name("ic-0009.1005.31"), vec![]),
            ],
        );
        let mut edits = vec![Edit::Set(name("ic-top"), vec![txt(300, "top")])];
        edits.extend(cut("ic-top", true));
        let s4 = change(&zone, edits);
        apply_ixfr(&t, &mut copy, s2);
        assert_eq!(copy, axfr(&t), "after serials {s3} and {s4}");

        // A bulk change: adjacent names added, adjacent names withdrawn.
        let mut edits: Vec<Edit> = (0..30)
            .map(|i| {
                Edit::Set(
                    name(&format!("ic-0020b{i:02}.1005.31")),
                    vec![txt(300, "bulk")],
                )
            })
            .collect();
        edits.extend((30..36).map(|i| Edit::Set(name(&format!("ic-{i:04}.1005.31")), vec![])));
        let s5 = change(&zone, edits);
        apply_ixfr(&t, &mut copy, s4);
        assert_eq!(copy, axfr(&t), "after serial {s5}");

        // Several serials at once, condensed.
        apply_ixfr(&t, &mut older, first);
        assert_eq!(older, axfr(&t), "from {first} to {s5} at once");

        // Current: one SOA.
        let (records, _) = transfer(&t, rtype::IXFR, Some(s5));
        assert_eq!(records.len(), 1);
    }

    /// What one change's signed difference costs to make at 100 000
    /// names (run with `cargo test --release --lib -- --ignored
    /// signed_diff_timing --nocapture`).
    #[test]
    #[ignore]
    fn signed_diff_timing() {
        let (zone, _) = signed(100_000);
        let from = change(&zone, vec![Edit::Set(name("ic-x"), vec![txt(300, "x")])]);
        change(
            &zone,
            vec![Edit::Set(name("ic-0003.1005.31"), vec![txt(300, "new")])],
        );
        let super::super::zone::Changes::Incremental { before, to, .. } = zone.changes_since(from)
        else {
            panic!("incremental")
        };
        let signer = to.signer().unwrap().clone();
        let now = super::super::cookie::unix_now();
        let soa = super::super::xfr::soa_at(&to, from);
        for round in 0..3 {
            let t = std::time::Instant::now();
            let (removed, added) = changes(&to, &signer, &soa, &before, now);
            eprintln!(
                "round {round}: {:?} for {} out, {} in",
                t.elapsed(),
                removed.len(),
                added.len()
            );
        }
    }

    #[test]
    fn a_signed_ixfr_of_one_change_does_not_grow_with_the_zone() {
        let size = |n: usize| {
            let (zone, t) = signed(n);
            let from = change(&zone, vec![Edit::Set(name("ic-x"), vec![txt(300, "x")])]);
            change(
                &zone,
                vec![Edit::Set(name("ic-0003.1005.31"), vec![txt(300, "new")])],
            );
            let (records, bytes) = transfer(&t, rtype::IXFR, Some(from));
            (records.len(), bytes)
        };
        let (small, large) = (size(10), size(2000));
        // SOA ×4 with RRSIGs out and in, the TXT set's two records and
        // RRSIG out and in: the NSEC chain is untouched.
        assert_eq!(small.0, 10, "{small:?}");
        assert_eq!(small, large);
    }
}
