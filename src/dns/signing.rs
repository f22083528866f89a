//! Online DNSSEC signing of a node's answers (`[dns.dnssec]`): the zone's
//! [`Signer`], the signature kept beside each prepared RRset of the hot
//! tier ([`SigCell`]), and the cache of denial signatures.
//!
//! Nothing is signed ahead of time: an RRset is signed the first time a
//! query with DO asks for it, and the RRSIG is kept with the RRset's ready
//! bytes (so start-up costs nothing more, and a signed positive answer is
//! still a copy). A change to the data replaces the RRset and with it its
//! signature.
//!
//! Validity is by epoch: time is cut into periods of `signature_days −
//! refresh_days`, and every signature made in one period runs from an hour
//! (clock skew) before the period's start to `signature_days` after it. So
//! a signature always has more than `refresh_days` left, is made again on
//! first use in a new period, and — Ed25519 being deterministic — the same
//! RRset signed twice in one period gives the same bytes. That is what lets
//! an IXFR of the signed zone remove exactly the RRSIGs a secondary holds
//! without keeping them.
//!
//! Compact denial (RFC 9824) needs one NSEC per query name, so a negative
//! answer's NSEC signature is made per name. Three things keep a flood of
//! made-up names from costing one Ed25519 signature per query: the
//! signatures are cached by (name, NSEC RDATA) in a fixed table, so a name
//! asked again is a lookup; response-rate limiting decides before anything
//! is signed, so an answer it drops or slips costs no signature; and the
//! SOA's signature, in every negative answer, is the apex RRset's own.
//!
//! The key is the node key (a combined key-signing and zone-signing key,
//! flags 257): the parent derives the child's DS from the key in the
//! delegation record, so there is no separate zone-signing key to
//! publish, roll or lose.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use siphasher::sip::SipHasher13;

use super::dnssec::{DnssecError, RrSetRef, Validity, ZoneKey};
use super::wire::{CLASS_IN, rtype};

/// What `[dns.dnssec]` sets.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Seconds a signature is valid after it is made.
    pub lifetime: u32,
    /// Every signature has more than this left: signatures are made anew
    /// each period of `lifetime − refresh`.
    pub refresh: u32,
    /// Slots in the denial-signature cache.
    pub denial_cache: usize,
}

/// How far before "now" a signature's validity starts, for validators
/// whose clocks are behind.
const SKEW: u32 = 3600;

/// The zone's signer: its key, the validity policy and the denial cache.
pub struct Signer {
    key: ZoneKey,
    policy: Policy,
    denials: DenialCache,
    /// Signatures made so far.
    made: AtomicU64,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key", &self.key)
            .field("policy", &self.policy)
            .finish()
    }
}

/// An RRSIG record without its owner (type, class, TTL, RDATA length,
/// RDATA): the writer puts the owner pointer it needs in front. A thin
/// pointer, so the cell beside every RRset stays 16 bytes.
pub(super) type SigRecord = Arc<Vec<u8>>;

/// Where the expiration sits in a [`SigRecord`]: after type, class, TTL
/// and length (10), type covered, algorithm, labels and original TTL (8).
const EXPIRATION_AT: usize = 18;

impl Signer {
    pub fn new(key: ZoneKey, policy: Policy) -> Signer {
        Signer {
            key,
            denials: DenialCache::new(policy.denial_cache),
            policy,
            made: AtomicU64::new(0),
        }
    }

    pub fn key(&self) -> &ZoneKey {
        &self.key
    }

    /// Ed25519 signatures made since start-up (each RRset's first, its
    /// renewals, and every denial the cache did not hold).
    pub fn signatures_made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// The length of a signing period: every signature made in one has
    /// the same validity.
    fn period(&self) -> u32 {
        self.policy
            .lifetime
            .saturating_sub(self.policy.refresh)
            .max(1)
    }

    /// The start of the signing period `now` falls in. Two signatures of
    /// the same RRset made in one period are the same bytes.
    pub fn epoch(&self, now: u32) -> u32 {
        now - now % self.period()
    }

    fn validity(&self, now: u32) -> Validity {
        let epoch = self.epoch(now);
        Validity {
            inception: epoch.wrapping_sub(SKEW),
            expiration: epoch.wrapping_add(self.policy.lifetime),
        }
    }

    /// Whether the zone at `serial` (a Unix time under the `unixtime`
    /// serial policy: the time of its last change) should move to a new
    /// serial at `now`, so that secondaries, which keep the signatures of
    /// their last transfer until the serial moves, transfer again while
    /// those still have at least half the refresh margin left.
    pub fn serial_due(&self, serial: u32, now: u32) -> bool {
        let age = now.wrapping_sub(serial);
        age < 1 << 31 && age > self.policy.refresh / 2
    }

    /// A signature made earlier is still good to send: it was made in the
    /// period `now` falls in.
    fn fresh(&self, record: &[u8], now: u32) -> bool {
        match record.get(EXPIRATION_AT..EXPIRATION_AT + 4) {
            Some(&[a, b, c, d]) => {
                u32::from_be_bytes([a, b, c, d]) == self.validity(now).expiration
            }
            _ => false,
        }
    }

    /// Signs one RRset and returns its RRSIG record (TTL = the set's TTL).
    pub(super) fn sign(&self, set: &RrSetRef<'_>, now: u32) -> Result<SigRecord, DnssecError> {
        let rdata = self.key.sign_rrset(set, self.validity(now))?;
        self.made.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(crate::telemetry::DNSSEC_SIGNATURES).increment(1);
        Ok(sig_record(set.ttl, &rdata))
    }

    /// The RRSIG record of the denial NSEC `nsec_rdata` at `owner`, from
    /// the cache when it holds a fresh one.
    pub(super) fn denial(
        &self,
        owner: &[u8],
        nsec_rdata: &[u8],
        ttl: u32,
        now: u32,
    ) -> Option<SigRecord> {
        let slot = self.denials.slot(owner, nsec_rdata)?;
        {
            let entry = slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = entry.as_ref()
                && e.matches(owner, nsec_rdata)
                && self.fresh(&e.rrsig, now)
            {
                return Some(e.rrsig.clone());
            }
        }
        let set = RrSetRef {
            owner,
            rtype: rtype::NSEC,
            ttl,
            rdatas: &[nsec_rdata],
        };
        let rrsig = self.sign(&set, now).ok()?;
        let mut key = Vec::with_capacity(owner.len() + nsec_rdata.len());
        key.extend_from_slice(owner);
        key.extend_from_slice(nsec_rdata);
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(Denial {
            owner_len: owner.len(),
            key: key.into(),
            rrsig: rrsig.clone(),
        });
        Some(rrsig)
    }
}

/// An RRSIG record without owner, from the RRSIG RDATA.
fn sig_record(ttl: u32, rdata: &[u8]) -> SigRecord {
    let mut out = Vec::with_capacity(10 + rdata.len());
    out.extend_from_slice(&rtype::RRSIG.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    // An Ed25519 RRSIG is 18 octets, a name and 64: always fits.
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
    Arc::new(out)
}

/// The signature of one prepared RRset, made on first use and kept with
/// it; empty until then. 16 bytes beside every RRset (a million
/// identifiers hold about four million), so a mutex around a thin pointer:
/// it is held only to clone the pointer.
#[derive(Debug, Default)]
pub(super) struct SigCell(Mutex<Option<SigRecord>>);

impl SigCell {
    /// The RRSIG record over the records `bytes` (each with a two-octet
    /// owner pointer, as the hot tier prepares them) at `owner`.
    pub(super) fn get(
        &self,
        signer: &Signer,
        owner: &[u8],
        rtype: u16,
        bytes: &[u8],
        now: u32,
    ) -> Option<SigRecord> {
        if let Some(sig) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && signer.fresh(sig, now)
        {
            return Some(sig.clone());
        }
        let records = super::zone::decode_prepared(bytes);
        let ttl = records.first()?.1;
        let rdatas: Vec<&[u8]> = records.iter().map(|r| r.2).collect();
        let set = RrSetRef {
            owner,
            rtype,
            ttl,
            rdatas: &rdatas,
        };
        let sig = signer.sign(&set, now).ok()?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(sig.clone());
        Some(sig)
    }
}

/// One cached denial signature: the NSEC it covers (owner and RDATA, as
/// one key) and its RRSIG record.
struct Denial {
    owner_len: usize,
    key: Box<[u8]>,
    rrsig: SigRecord,
}

impl Denial {
    fn matches(&self, owner: &[u8], nsec_rdata: &[u8]) -> bool {
        self.owner_len == owner.len()
            && self.key.get(..self.owner_len) == Some(owner)
            && self.key.get(self.owner_len..) == Some(nsec_rdata)
    }
}

/// A fixed table of denial signatures, one per slot by a keyed hash of the
/// NSEC: a newer one replaces whatever held its slot, so memory is bounded
/// by the slot count whatever is asked.
struct DenialCache {
    slots: Box<[Mutex<Option<Denial>>]>,
    hasher: SipHasher13,
}

impl DenialCache {
    fn new(size: usize) -> DenialCache {
        let mut seed = [0u8; 16];
        // A fixed seed only makes slot collisions predictable, which costs
        // a signature, never a wrong answer.
        let _ = getrandom::fill(&mut seed);
        DenialCache {
            slots: (0..size).map(|_| Mutex::new(None)).collect(),
            hasher: SipHasher13::new_with_key(&seed),
        }
    }

    fn slot(&self, owner: &[u8], nsec_rdata: &[u8]) -> Option<&Mutex<Option<Denial>>> {
        use std::hash::Hasher;
        if self.slots.is_empty() {
            return None;
        }
        let mut h = self.hasher;
        h.write(owner);
        h.write(nsec_rdata);
        let i = (h.finish() % self.slots.len() as u64) as usize;
        self.slots.get(i)
    }
}

/// An empty zone `86.cpid.internal` at serial 7 (SOA, NS `ns1` with the
/// address 192.0.2.53) signed with a fixed key, for the tests of the
/// signed answer and transfer paths.
#[cfg(test)]
pub(super) fn test_zone(denial_cache: usize) -> (super::zone::Zone, Arc<Signer>) {
    use super::dnssec::FLAGS_CSK;
    let data = crate::testkit::sample_apex(7, [192, 0, 2, 53].into()).unwrap();
    let apex = data.apex.clone();
    let zone = super::zone::Zone::new(data).unwrap();
    let key = ZoneKey::new(
        apex.as_bytes(),
        ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        FLAGS_CSK,
    )
    .unwrap();
    let signer = Arc::new(Signer::new(
        key,
        Policy {
            lifetime: 14 * 86_400,
            refresh: 7 * 86_400,
            denial_cache,
        },
    ));
    zone.sign_with(signer.clone()).unwrap();
    (zone, signer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::dnssec::{self, FLAGS_CSK};
    use crate::dns::wire::WireName;

    fn signer(refresh: u32) -> Signer {
        let apex = WireName::parse("86.cpid.internal").unwrap();
        let key = ZoneKey::new(
            apex.as_bytes(),
            ed25519_dalek::SigningKey::from_bytes(&[9; 32]),
            FLAGS_CSK,
        )
        .unwrap();
        Signer::new(
            key,
            Policy {
                lifetime: 14 * 86_400,
                refresh,
                denial_cache: 4,
            },
        )
    }

    fn prepared(ttl: u32, rdatas: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for rdata in rdatas {
            out.extend_from_slice(&[0xC0, 0x0C]);
            out.extend_from_slice(&rtype::TXT.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
        }
        out
    }

    fn rdata_of(record: &[u8]) -> &[u8] {
        &record[10..]
    }

    #[test]
    fn a_cell_signs_once_verifies_and_renews_when_old() {
        let s = signer(7 * 86_400);
        let owner = WireName::parse("x.86.cpid.internal").unwrap();
        let bytes = prepared(300, &[b"\x02hi", b"\x03two"]);
        let cell = SigCell::default();
        let now = 1_800_000_000;
        let first = cell
            .get(&s, owner.as_bytes(), rtype::TXT, &bytes, now)
            .unwrap();
        let again = cell
            .get(&s, owner.as_bytes(), rtype::TXT, &bytes, now + 60)
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "made once, then copied");
        let set = RrSetRef {
            owner: owner.as_bytes(),
            rtype: rtype::TXT,
            ttl: 300,
            rdatas: &[b"\x03two", b"\x02hi"],
        };
        dnssec::verify_rrset(
            s.key().apex(),
            s.key().dnskey(),
            &set,
            rdata_of(&first),
            now,
        )
        .unwrap();
        assert_eq!(u32::from_be_bytes(first[4..8].try_into().unwrap()), 300);
        // Eight days on, less than the refresh margin is left: made again.
        let later = now + 8 * 86_400;
        let renewed = cell
            .get(&s, owner.as_bytes(), rtype::TXT, &bytes, later)
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &renewed));
        dnssec::verify_rrset(
            s.key().apex(),
            s.key().dnskey(),
            &set,
            rdata_of(&renewed),
            later,
        )
        .unwrap();
    }

    #[test]
    fn in_one_period_a_set_signs_to_the_same_bytes_with_more_than_the_margin_left() {
        let s = signer(7 * 86_400);
        let owner = WireName::parse("x.86.cpid.internal").unwrap();
        let bytes = prepared(300, &[b"\x02hi"]);
        let start = s.epoch(1_800_000_000);
        let expiration = |r: &[u8]| u32::from_be_bytes(r[18..22].try_into().unwrap());
        let early = SigCell::default()
            .get(&s, owner.as_bytes(), rtype::TXT, &bytes, start + 1)
            .unwrap();
        let late = SigCell::default()
            .get(
                &s,
                owner.as_bytes(),
                rtype::TXT,
                &bytes,
                start + 7 * 86_400 - 1,
            )
            .unwrap();
        assert_eq!(early, late, "deterministic within a period");
        assert!(expiration(&late) - (start + 7 * 86_400 - 1) > 7 * 86_400);
        let next = SigCell::default()
            .get(&s, owner.as_bytes(), rtype::TXT, &bytes, start + 7 * 86_400)
            .unwrap();
        assert_ne!(early, next, "a new period, a new signature");
        assert_eq!(expiration(&next), start + 21 * 86_400);
    }

    #[test]
    fn the_cell_beside_every_rrset_is_two_words() {
        assert_eq!(std::mem::size_of::<SigCell>(), 16);
    }

    #[test]
    fn the_serial_moves_before_secondaries_hold_stale_signatures() {
        let s = signer(7 * 86_400);
        let serial = 1_800_000_000;
        assert!(!s.serial_due(serial, serial + 3 * 86_400));
        assert!(s.serial_due(serial, serial + 4 * 86_400));
        // A serial ahead of the clock (a floor from an import) is not due.
        assert!(!s.serial_due(serial, serial - 60));
    }

    #[test]
    fn denial_signatures_are_cached_per_name_and_bitmap_and_bounded() {
        let s = signer(7 * 86_400);
        let now = 1_800_000_000;
        let a = WireName::parse("a.86.cpid.internal").unwrap();
        let nx = dnssec::compact_nxdomain_nsec(a.as_bytes()).unwrap();
        let one = s.denial(a.as_bytes(), &nx, 300, now).unwrap();
        let two = s.denial(a.as_bytes(), &nx, 300, now).unwrap();
        assert!(Arc::ptr_eq(&one, &two));
        let set = RrSetRef {
            owner: a.as_bytes(),
            rtype: rtype::NSEC,
            ttl: 300,
            rdatas: &[&nx],
        };
        dnssec::verify_rrset(s.key().apex(), s.key().dnskey(), &set, rdata_of(&one), now).unwrap();
        // The same name with another bitmap is another signature.
        let nodata = dnssec::compact_nodata_nsec(a.as_bytes(), &[rtype::TXT]).unwrap();
        let three = s.denial(a.as_bytes(), &nodata, 300, now).unwrap();
        assert!(!Arc::ptr_eq(&one, &three));
        // Many names: the table never holds more than its slots.
        for i in 0..100 {
            let n = WireName::parse(&format!("n{i}.86.cpid.internal")).unwrap();
            let nsec = dnssec::compact_nxdomain_nsec(n.as_bytes()).unwrap();
            assert!(s.denial(n.as_bytes(), &nsec, 300, now).is_some());
        }
        let held = s
            .denials
            .slots
            .iter()
            .filter(|m| m.lock().unwrap().is_some())
            .count();
        assert!(held <= 4);
    }
}
