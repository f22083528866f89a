//! DNSSEC signing core: Ed25519 (RFC 8080, algorithm 15) keys, RRSIGs over
//! RRsets in canonical form (RFC 4034), DS digests, and NSEC records for
//! compact denial of existence (RFC 9824).
//!
//! What is here is the arithmetic of DNSSEC and nothing else: pure
//! functions from bytes to bytes, no I/O, no clock (the caller passes the
//! validity window and "now"), never a panic whatever the input. The
//! answer path does not use it yet; wiring it in (RRSIGs beside the
//! prepared RRsets of [`super::zone`], NSEC in negative answers, DS in
//! referrals, signed transfers) is the next step.
//!
//! - [`dnskey_rdata`], [`key_tag`] (RFC 4034 §2.1, Appendix B) and
//!   [`ds_rdata`] (RFC 4034 §5.1.4, digest type 2 = SHA-256, RFC 4509).
//! - [`canonical_name`], [`canonical_rdata`] and the canonical RR order
//!   (RFC 4034 §6.1–6.3; RFC 6840 §5.1: names inside NSEC RDATA keep their
//!   case); [`label_count`] (RFC 4034 §3.1.3).
//! - [`ZoneKey::sign_rrset`] builds the RRSIG RDATA whose signature covers
//!   the RRSIG fields and the RRset as RFC 4034 §3.1.8.1 lays them out, and
//!   [`verify_rrset`] checks one (RFC 4035 §5.3: type, key tag, signer,
//!   labels, validity window in serial-number arithmetic, `verify_strict`).
//! - [`nsec_bitmap`] / [`nsec_types`] (RFC 4034 §4.1.2 windows, parsed
//!   strictly), [`compact_nxdomain_nsec`] and [`compact_nodata_nsec`]
//!   (RFC 9824: the NSEC at the query name whose next name is its immediate
//!   successor, [`successor`]; NXDOMAIN as NODATA with the [`NXNAME`] type).
//!   A NODATA bitmap lists exactly the types the name has, plus RRSIG and
//!   NSEC — never types that do not exist there.
//!
//! hickory-proto's DNSSEC types are not used: its `__dnssec` feature comes
//! only with ring or aws-lc-rs, a second crypto library beside
//! ed25519-dalek and sha2, which do everything this needs.
//!
//! ```
//! use cpid::dns::dnssec::{self, RrSetRef, Validity, ZoneKey};
//! use cpid::dns::wire::{WireName, rtype};
//!
//! let apex = WireName::parse("86.cpid.internal").unwrap();
//! let key = ZoneKey::new(
//!     apex.as_bytes(),
//!     ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
//!     dnssec::FLAGS_CSK,
//! )
//! .unwrap();
//! let txt: &[u8] = b"\x05hello";
//! let rrset = RrSetRef { owner: apex.as_bytes(), rtype: rtype::TXT, ttl: 300, rdatas: &[txt] };
//! let window = Validity { inception: 1_800_000_000, expiration: 1_800_086_400 };
//! let rrsig = key.sign_rrset(&rrset, window).unwrap();
//! assert!(dnssec::verify_rrset(apex.as_bytes(), key.dnskey(), &rrset, &rrsig, 1_800_000_100).is_ok());
//! ```

use std::borrow::Cow;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::ident::keys::{NodeKey, SigningContext};

use super::wire::{CLASS_IN, MAX_NAME_LEN, Reader, WireError, is_within, rtype};

/// DNSSEC algorithm number of Ed25519 (RFC 8080 §5).
pub const ALGORITHM_ED25519: u8 = 15;
/// The DNSKEY protocol field, always 3 (RFC 4034 §2.1.2).
pub const PROTOCOL: u8 = 3;
/// DS digest type SHA-256 (RFC 4509).
pub const DIGEST_SHA256: u8 = 2;
/// DNSKEY flag: a zone key, usable to verify RRSIGs (RFC 4034 §2.1.1).
pub const FLAG_ZONE: u16 = 0x0100;
/// DNSKEY flag: secure entry point, the key a DS points at (RFC 3757).
pub const FLAG_SEP: u16 = 0x0001;
/// Flags of a combined signing key (zone + SEP, "257"), the one key a
/// node signs its zone with.
pub const FLAGS_CSK: u16 = FLAG_ZONE | FLAG_SEP;
/// The NXNAME meta type of compact denial (RFC 9824 §2).
pub const NXNAME: u16 = rtype::NXNAME;

/// Length of an Ed25519 public key and of a signature (RFC 8080 §3, §4).
const ED25519_KEY_LEN: usize = 32;
const ED25519_SIG_LEN: usize = 64;

/// Why DNSSEC data could not be built or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnssecError {
    #[error("not a domain name in wire form: {0}")]
    Name(WireError),
    #[error("malformed {0} RDATA")]
    Malformed(&'static str),
    #[error("RDATA of {0} octets does not fit a resource record")]
    RdataTooLong(usize),
    #[error("an RRset to sign or verify needs at least one record")]
    EmptyRrset,
    #[error("type {0} is not signed (RRSIG and meta types never are)")]
    Unsignable(u16),
    #[error("owner name is not at or below the signer's zone")]
    OutsideSigner,
    #[error("algorithm {0} is not Ed25519 (15)")]
    Algorithm(u8),
    #[error("DNSKEY protocol {0} is not 3")]
    Protocol(u8),
    #[error("DNSKEY without the zone flag cannot verify RRSIGs")]
    NotZoneKey,
    #[error("RRSIG covers type {covered}, not {rrset}")]
    TypeCovered { covered: u16, rrset: u16 },
    #[error("RRSIG key tag {rrsig} does not match the DNSKEY's {dnskey}")]
    KeyTag { rrsig: u16, dnskey: u16 },
    #[error("RRSIG signer is not the DNSKEY's owner")]
    Signer,
    #[error("RRSIG labels {labels} exceed the owner's {owner}")]
    Labels { labels: u8, owner: u8 },
    #[error("RRSIG is not valid before {inception}")]
    NotYetValid { inception: u32 },
    #[error("RRSIG expired at {expiration}")]
    Expired { expiration: u32 },
    #[error("the name has no successor that fits in 255 octets")]
    NoSuccessor,
    #[error("signature does not verify")]
    BadSignature,
    #[error("the node key is not handed out for DNSSEC signing")]
    KeyUnavailable,
}

// --- names ------------------------------------------------------------------

/// The canonical form of a wire name (RFC 4034 §6.2): uncompressed, letters
/// lower-cased. Refuses pointers, bad label types, names over 255 octets
/// and bytes after the root label.
pub fn canonical_name(name: &[u8]) -> Result<Vec<u8>, DnssecError> {
    let mut r = Reader::new(name);
    let mut buf = [0u8; MAX_NAME_LEN];
    let len = r.name_lower(&mut buf).map_err(DnssecError::Name)?;
    r.finish().map_err(DnssecError::Name)?;
    Ok(buf.get(..len).unwrap_or_default().to_vec())
}

/// The labels of a wire name, leftmost first, the root not included.
fn labels(name: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = name;
    std::iter::from_fn(move || {
        let (&len, tail) = rest.split_first()?;
        let label = tail.get(..usize::from(len))?;
        if len == 0 {
            return None;
        }
        rest = tail.get(usize::from(len)..).unwrap_or_default();
        Some(label)
    })
}

/// The RRSIG labels field of an owner name (RFC 4034 §3.1.3): its labels
/// without the root and without a leading wildcard label `*`.
pub fn label_count(name: &[u8]) -> u8 {
    let mut n = 0u8;
    for (i, label) in labels(name).enumerate() {
        if !(i == 0 && label == b"*") {
            n = n.saturating_add(1);
        }
    }
    n
}

/// The rightmost `keep` labels of a canonical name, with `*.` in front: the
/// owner a wildcard-expanded RRset was signed under (RFC 4035 §5.3.2).
fn wildcard_owner(name: &[u8], keep: u8) -> Vec<u8> {
    let all: Vec<&[u8]> = labels(name).collect();
    let skip = all.len().saturating_sub(usize::from(keep));
    let mut out = vec![1, b'*'];
    for label in all.iter().skip(skip) {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// The immediate successor of a name in canonical order (RFC 4471 §3.1.2,
/// as RFC 9824 uses it): `\000.name` when that fits in 255 octets;
/// otherwise the leftmost label's last octet incremented (upper-case
/// letters skipped, as they sort as lower case), dropping trailing `\255`
/// octets first.
pub fn successor(name: &[u8]) -> Result<Vec<u8>, DnssecError> {
    let name = canonical_name(name)?;
    if name.len() + 2 <= MAX_NAME_LEN {
        let mut out = Vec::with_capacity(name.len() + 2);
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&name);
        return Ok(out);
    }
    let (&len, tail) = name.split_first().ok_or(DnssecError::NoSuccessor)?;
    let (label, parent) = tail
        .split_at_checked(usize::from(len))
        .ok_or(DnssecError::NoSuccessor)?;
    let mut label = label.to_vec();
    while let Some(last) = label.pop() {
        let next = match last {
            0xff => continue,
            b'@' => b'[',
            b => b + 1,
        };
        label.push(next);
        let mut out = Vec::with_capacity(1 + label.len() + parent.len());
        out.push(label.len() as u8);
        out.extend_from_slice(&label);
        out.extend_from_slice(parent);
        return Ok(out);
    }
    Err(DnssecError::NoSuccessor)
}

// --- RDATA in canonical form --------------------------------------------------

/// A field of an RDATA layout, for the types whose RDATA holds names.
#[derive(Clone, Copy)]
enum Field {
    Name,
    Octets(usize),
    CharString,
}

/// The layouts of RFC 4034 §6.2 item 3 (as corrected by RFC 6840 §5.1:
/// not NSEC), for the types whose names must be lower-cased. HINFO holds
/// no name; A6, SIG and NXT are obsolete and left as they are.
fn layout(t: u16) -> Option<&'static [Field]> {
    use Field::{CharString, Name, Octets};
    match t {
        // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME
        2 | 3 | 4 | 5 | 7 | 8 | 9 | 12 | 39 => Some(&[Name]),
        rtype::SOA => Some(&[Name, Name, Octets(20)]),
        // MINFO, RP
        14 | 17 => Some(&[Name, Name]),
        // MX, AFSDB, RT, KX
        15 | 18 | 21 | 36 => Some(&[Octets(2), Name]),
        // PX
        26 => Some(&[Octets(2), Name, Name]),
        // SRV
        33 => Some(&[Octets(6), Name]),
        // NAPTR
        35 => Some(&[Octets(4), CharString, CharString, CharString, Name]),
        _ => None,
    }
}

/// RDATA in canonical form (RFC 4034 §6.2): names inside the RDATA of the
/// types listed there lower-cased (and required uncompressed); any other
/// type's RDATA as it is.
pub fn canonical_rdata(t: u16, rdata: &[u8]) -> Result<Cow<'_, [u8]>, DnssecError> {
    let Some(fields) = layout(t) else {
        return Ok(Cow::Borrowed(rdata));
    };
    let malformed = |_| DnssecError::Malformed("name-bearing");
    let mut r = Reader::new(rdata);
    let mut out = Vec::with_capacity(rdata.len());
    let mut buf = [0u8; MAX_NAME_LEN];
    for field in fields {
        match field {
            Field::Name => {
                let len = r.name_lower(&mut buf).map_err(malformed)?;
                out.extend_from_slice(buf.get(..len).unwrap_or_default());
            }
            Field::Octets(n) => out.extend_from_slice(r.take(*n).map_err(malformed)?),
            Field::CharString => {
                let len = r.u8().map_err(malformed)?;
                out.push(len);
                out.extend_from_slice(r.take(usize::from(len)).map_err(malformed)?);
            }
        }
    }
    r.finish().map_err(malformed)?;
    Ok(Cow::Owned(out))
}

/// An RRset's RDATA in canonical form and order (RFC 4034 §6.3): sorted as
/// left-justified octet strings, duplicates removed.
fn canonical_rrset<'a>(t: u16, rdatas: &[&'a [u8]]) -> Result<Vec<Cow<'a, [u8]>>, DnssecError> {
    if rdatas.is_empty() {
        return Err(DnssecError::EmptyRrset);
    }
    let mut out = Vec::with_capacity(rdatas.len());
    for rdata in rdatas {
        if rdata.len() > usize::from(u16::MAX) {
            return Err(DnssecError::RdataTooLong(rdata.len()));
        }
        out.push(canonical_rdata(t, rdata)?);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Types that are never signed: RRSIG itself (RFC 4035 §2.2) and the
/// question-only and meta types (RFC 6895 §3.1).
fn unsignable(t: u16) -> bool {
    t == rtype::RRSIG || t == rtype::OPT || t == NXNAME || (128..=255).contains(&t) || t == 0
}

// --- DNSKEY and DS ------------------------------------------------------------

/// DNSKEY RDATA of an Ed25519 key (RFC 4034 §2.1, RFC 8080 §3): flags,
/// protocol 3, algorithm 15, the 32-byte public key.
pub fn dnskey_rdata(flags: u16, public_key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + ED25519_KEY_LEN);
    out.extend_from_slice(&flags.to_be_bytes());
    out.push(PROTOCOL);
    out.push(ALGORITHM_ED25519);
    out.extend_from_slice(public_key);
    out
}

/// The key tag of DNSKEY RDATA (RFC 4034 Appendix B; algorithm 1's
/// different rule does not apply to any key cpid reads).
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut ac: u64 = 0;
    for (i, &b) in rdata.iter().enumerate() {
        ac += if i % 2 == 0 {
            u64::from(b) << 8
        } else {
            u64::from(b)
        };
    }
    ac += (ac >> 16) & 0xFFFF;
    (ac & 0xFFFF) as u16
}

/// DS RDATA for a DNSKEY (RFC 4034 §5.1.4, RFC 4509): key tag, algorithm,
/// digest type 2, SHA-256 over the canonical owner name and the DNSKEY
/// RDATA.
pub fn ds_rdata(owner: &[u8], dnskey: &[u8]) -> Result<Vec<u8>, DnssecError> {
    let owner = canonical_name(owner)?;
    let [_, _, _, algorithm] = *dnskey
        .first_chunk::<4>()
        .ok_or(DnssecError::Malformed("DNSKEY"))?;
    let digest = Sha256::new()
        .chain_update(&owner)
        .chain_update(dnskey)
        .finalize();
    let mut out = Vec::with_capacity(4 + digest.len());
    out.extend_from_slice(&key_tag(dnskey).to_be_bytes());
    out.push(algorithm);
    out.push(DIGEST_SHA256);
    out.extend_from_slice(&digest);
    Ok(out)
}

/// Reads Ed25519 DNSKEY RDATA strictly: 36 octets, protocol 3, algorithm
/// 15, the zone flag set, a valid curve point.
fn parse_dnskey(rdata: &[u8]) -> Result<VerifyingKey, DnssecError> {
    let (&[f0, f1, protocol, algorithm], key) = rdata
        .split_first_chunk::<4>()
        .ok_or(DnssecError::Malformed("DNSKEY"))?;
    if protocol != PROTOCOL {
        return Err(DnssecError::Protocol(protocol));
    }
    if algorithm != ALGORITHM_ED25519 {
        return Err(DnssecError::Algorithm(algorithm));
    }
    if u16::from_be_bytes([f0, f1]) & FLAG_ZONE == 0 {
        return Err(DnssecError::NotZoneKey);
    }
    let key: &[u8; ED25519_KEY_LEN] = key
        .try_into()
        .map_err(|_| DnssecError::Malformed("DNSKEY"))?;
    VerifyingKey::from_bytes(key).map_err(|_| DnssecError::Malformed("DNSKEY"))
}

// --- RRSIG ----------------------------------------------------------------

/// The fields of an RRSIG (RFC 4034 §3.1). `signer` is a canonical wire
/// name; `signature` the raw signature (64 octets for Ed25519).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrsig {
    pub type_covered: u16,
    pub algorithm: u8,
    pub labels: u8,
    pub original_ttl: u32,
    pub expiration: u32,
    pub inception: u32,
    pub key_tag: u16,
    pub signer: Vec<u8>,
    pub signature: Vec<u8>,
}

impl Rrsig {
    /// The RDATA up to and including the signer's name: the first part of
    /// what the signature covers (RFC 4034 §3.1.8.1).
    fn write_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.type_covered.to_be_bytes());
        out.push(self.algorithm);
        out.push(self.labels);
        out.extend_from_slice(&self.original_ttl.to_be_bytes());
        out.extend_from_slice(&self.expiration.to_be_bytes());
        out.extend_from_slice(&self.inception.to_be_bytes());
        out.extend_from_slice(&self.key_tag.to_be_bytes());
        out.extend_from_slice(&self.signer);
    }

    /// The RRSIG RDATA.
    pub fn to_rdata(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + self.signer.len() + self.signature.len());
        self.write_fields(&mut out);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Reads RRSIG RDATA; the signer's name must be uncompressed and is
    /// lower-cased, the signature is the rest (possibly empty).
    pub fn parse(rdata: &[u8]) -> Result<Rrsig, DnssecError> {
        let malformed = |_| DnssecError::Malformed("RRSIG");
        let mut r = Reader::new(rdata);
        let type_covered = r.u16().map_err(malformed)?;
        let algorithm = r.u8().map_err(malformed)?;
        let labels = r.u8().map_err(malformed)?;
        let original_ttl = r.u32().map_err(malformed)?;
        let expiration = r.u32().map_err(malformed)?;
        let inception = r.u32().map_err(malformed)?;
        let key_tag = r.u16().map_err(malformed)?;
        let mut buf = [0u8; MAX_NAME_LEN];
        let len = r.name_lower(&mut buf).map_err(malformed)?;
        let signature = r.take(r.remaining()).map_err(malformed)?.to_vec();
        Ok(Rrsig {
            type_covered,
            algorithm,
            labels,
            original_ttl,
            expiration,
            inception,
            key_tag,
            signer: buf.get(..len).unwrap_or_default().to_vec(),
            signature,
        })
    }

    /// What the signature covers (RFC 4034 §3.1.8.1): the RRSIG fields,
    /// then every RR of the set in canonical form and order, each with the
    /// original TTL. `owner` is canonical.
    fn signed_data(&self, owner: &[u8], rdatas: &[Cow<'_, [u8]>]) -> Vec<u8> {
        let rr_len: usize = rdatas.iter().map(|r| owner.len() + 10 + r.len()).sum();
        let mut out = Vec::with_capacity(18 + self.signer.len() + rr_len);
        self.write_fields(&mut out);
        for rdata in rdatas {
            out.extend_from_slice(owner);
            out.extend_from_slice(&self.type_covered.to_be_bytes());
            out.extend_from_slice(&CLASS_IN.to_be_bytes());
            out.extend_from_slice(&self.original_ttl.to_be_bytes());
            // canonical_rrset refused anything longer.
            out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            out.extend_from_slice(rdata);
        }
        out
    }
}

/// An RRset as given to the signer and the verifier: owner (wire name, any
/// case), type, TTL, and RDATA in any order (class IN). The verifier does
/// not look at `ttl`: the RRSIG's original TTL is what was signed.
#[derive(Debug, Clone, Copy)]
pub struct RrSetRef<'a> {
    pub owner: &'a [u8],
    pub rtype: u16,
    pub ttl: u32,
    pub rdatas: &'a [&'a [u8]],
}

/// An RRSIG's validity window, in seconds since the epoch modulo 2^32
/// (RFC 4034 §3.1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub inception: u32,
    pub expiration: u32,
}

/// `a` is at or before `b` in serial-number arithmetic (RFC 1982, as RFC
/// 4034 §3.1.5 requires for the RRSIG times).
fn not_after(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) < 1 << 31
}

/// A zone's Ed25519 signing key with what the zone publishes for it: the
/// apex it signs for, its DNSKEY RDATA and key tag.
pub struct ZoneKey {
    apex: Vec<u8>,
    key: SigningKey,
    dnskey: Vec<u8>,
    key_tag: u16,
}

impl std::fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ZoneKey(tag {})", self.key_tag)
    }
}

impl ZoneKey {
    /// A key signing for `apex` (a wire name) under DNSKEY `flags`
    /// ([`FLAGS_CSK`] for a node's one key). The flags are part of the key
    /// tag, so they are fixed here, once.
    pub fn new(apex: &[u8], key: SigningKey, flags: u16) -> Result<ZoneKey, DnssecError> {
        let apex = canonical_name(apex)?;
        let dnskey = dnskey_rdata(flags, key.verifying_key().as_bytes());
        let key_tag = key_tag(&dnskey);
        Ok(ZoneKey {
            apex,
            key,
            dnskey,
            key_tag,
        })
    }

    /// The node key as the zone's DNSSEC key: the raw key is handed out
    /// only for [`SigningContext::Dnssec`], whose signed bytes RFC 4034
    /// fixes (see `ident::keys` on why they cannot collide with cpid's).
    pub fn from_node_key(apex: &[u8], key: &NodeKey, flags: u16) -> Result<ZoneKey, DnssecError> {
        let raw = key
            .for_spec_format(SigningContext::Dnssec)
            .ok_or(DnssecError::KeyUnavailable)?;
        ZoneKey::new(apex, raw, flags)
    }

    /// The DNSKEY RDATA published at the apex.
    pub fn dnskey(&self) -> &[u8] {
        &self.dnskey
    }

    pub fn key_tag(&self) -> u16 {
        self.key_tag
    }

    /// The apex (the RRSIG signer's name), canonical wire form.
    pub fn apex(&self) -> &[u8] {
        &self.apex
    }

    /// The DS RDATA the parent publishes for this key.
    pub fn ds(&self) -> Result<Vec<u8>, DnssecError> {
        ds_rdata(&self.apex, &self.dnskey)
    }

    /// Signs an RRset at or below the apex and returns the RRSIG RDATA
    /// (RFC 4034 §3.1, RFC 8080 §4): labels from the owner, original TTL
    /// the set's TTL, RDATA canonicalised and sorted first.
    pub fn sign_rrset(
        &self,
        rrset: &RrSetRef<'_>,
        validity: Validity,
    ) -> Result<Vec<u8>, DnssecError> {
        if unsignable(rrset.rtype) {
            return Err(DnssecError::Unsignable(rrset.rtype));
        }
        let owner = canonical_name(rrset.owner)?;
        if !is_within(&owner, &self.apex) {
            return Err(DnssecError::OutsideSigner);
        }
        let rdatas = canonical_rrset(rrset.rtype, rrset.rdatas)?;
        let mut rrsig = Rrsig {
            type_covered: rrset.rtype,
            algorithm: ALGORITHM_ED25519,
            labels: label_count(&owner),
            original_ttl: rrset.ttl,
            expiration: validity.expiration,
            inception: validity.inception,
            key_tag: self.key_tag,
            signer: self.apex.clone(),
            signature: Vec::new(),
        };
        let data = rrsig.signed_data(&owner, &rdatas);
        rrsig.signature = self.key.sign(&data).to_bytes().to_vec();
        Ok(rrsig.to_rdata())
    }
}

/// Checks an RRSIG over an RRset against a DNSKEY owned by `dnskey_owner`
/// at time `now` (RFC 4035 §5.3.1–5.3.3): algorithm 15, type covered, key
/// tag, signer = the key's owner and an ancestor of the RRset's owner,
/// labels, `inception ≤ now ≤ expiration` in serial-number arithmetic, and
/// the signature under `verify_strict`.
pub fn verify_rrset(
    dnskey_owner: &[u8],
    dnskey: &[u8],
    rrset: &RrSetRef<'_>,
    rrsig: &[u8],
    now: u32,
) -> Result<(), DnssecError> {
    let key = parse_dnskey(dnskey)?;
    let sig = Rrsig::parse(rrsig)?;
    if sig.algorithm != ALGORITHM_ED25519 {
        return Err(DnssecError::Algorithm(sig.algorithm));
    }
    if sig.type_covered != rrset.rtype {
        return Err(DnssecError::TypeCovered {
            covered: sig.type_covered,
            rrset: rrset.rtype,
        });
    }
    let tag = key_tag(dnskey);
    if sig.key_tag != tag {
        return Err(DnssecError::KeyTag {
            rrsig: sig.key_tag,
            dnskey: tag,
        });
    }
    if sig.signer != canonical_name(dnskey_owner)? {
        return Err(DnssecError::Signer);
    }
    let owner = canonical_name(rrset.owner)?;
    if !is_within(&owner, &sig.signer) {
        return Err(DnssecError::OutsideSigner);
    }
    let owner_labels = label_count(&owner);
    let owner = match sig.labels.cmp(&owner_labels) {
        std::cmp::Ordering::Equal => owner,
        std::cmp::Ordering::Less => wildcard_owner(&owner, sig.labels),
        std::cmp::Ordering::Greater => {
            return Err(DnssecError::Labels {
                labels: sig.labels,
                owner: owner_labels,
            });
        }
    };
    if !not_after(sig.inception, now) {
        return Err(DnssecError::NotYetValid {
            inception: sig.inception,
        });
    }
    if !not_after(now, sig.expiration) {
        return Err(DnssecError::Expired {
            expiration: sig.expiration,
        });
    }
    let signature = <[u8; ED25519_SIG_LEN]>::try_from(sig.signature.as_slice())
        .map(|b| Signature::from_bytes(&b))
        .map_err(|_| DnssecError::Malformed("RRSIG"))?;
    let rdatas = canonical_rrset(rrset.rtype, rrset.rdatas)?;
    key.verify_strict(&sig.signed_data(&owner, &rdatas), &signature)
        .map_err(|_| DnssecError::BadSignature)
}

// --- NSEC and compact denial ---------------------------------------------------

/// The NSEC type bitmap of a set of types (RFC 4034 §4.1.2): one window
/// per high octet in use, each as long as its highest type needs.
pub fn nsec_bitmap(types: &[u16]) -> Vec<u8> {
    let mut sorted = types.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut window: Option<(u8, [u8; 32], usize)> = None;
    let flush = |out: &mut Vec<u8>, (w, bits, len): (u8, [u8; 32], usize)| {
        out.push(w);
        out.push(len as u8);
        out.extend_from_slice(bits.get(..len).unwrap_or_default());
    };
    for t in sorted {
        let [hi, lo] = t.to_be_bytes();
        let octet = usize::from(lo / 8);
        match &mut window {
            Some((w, bits, len)) if *w == hi => {
                if let Some(b) = bits.get_mut(octet) {
                    *b |= 0x80 >> (lo % 8);
                }
                *len = octet + 1;
            }
            _ => {
                if let Some(done) = window.take() {
                    flush(&mut out, done);
                }
                let mut bits = [0u8; 32];
                if let Some(b) = bits.get_mut(octet) {
                    *b = 0x80 >> (lo % 8);
                }
                window = Some((hi, bits, octet + 1));
            }
        }
    }
    if let Some(done) = window {
        flush(&mut out, done);
    }
    out
}

/// The types of an NSEC type bitmap, read strictly (RFC 4034 §4.1.2):
/// windows in increasing order, each 1–32 octets with a non-zero last
/// octet.
pub fn nsec_types(bitmap: &[u8]) -> Result<Vec<u16>, DnssecError> {
    let malformed = DnssecError::Malformed("NSEC type bitmap");
    let mut r = Reader::new(bitmap);
    let mut out = Vec::new();
    let mut last_window: Option<u8> = None;
    while r.remaining() > 0 {
        let window = r.u8().map_err(|_| malformed.clone())?;
        let len = r.u8().map_err(|_| malformed.clone())?;
        if last_window.is_some_and(|w| w >= window) || !(1..=32).contains(&len) {
            return Err(malformed);
        }
        last_window = Some(window);
        let bits = r.take(usize::from(len)).map_err(|_| malformed.clone())?;
        if bits.last() == Some(&0) {
            return Err(malformed);
        }
        for (i, &b) in bits.iter().enumerate() {
            for bit in 0..8u16 {
                if b & (0x80 >> bit) != 0 {
                    out.push((u16::from(window) << 8) | ((i as u16) * 8 + bit));
                }
            }
        }
    }
    Ok(out)
}

/// NSEC RDATA (RFC 4034 §4.1): the next owner name (canonical) and the
/// bitmap of `types`.
pub fn nsec_rdata(next: &[u8], types: &[u16]) -> Result<Vec<u8>, DnssecError> {
    let mut out = canonical_name(next)?;
    out.extend_from_slice(&nsec_bitmap(types));
    Ok(out)
}

/// Reads NSEC RDATA: the next name (uncompressed, case kept as RFC 6840
/// §5.1 asks) and the types of its bitmap.
pub fn parse_nsec(rdata: &[u8]) -> Result<(Vec<u8>, Vec<u16>), DnssecError> {
    let len = super::zone::name_len(rdata).ok_or(DnssecError::Malformed("NSEC"))?;
    let (next, bitmap) = rdata
        .split_at_checked(len)
        .ok_or(DnssecError::Malformed("NSEC"))?;
    canonical_name(next)?;
    Ok((next.to_vec(), nsec_types(bitmap)?))
}

/// The NSEC a compact-denial NXDOMAIN carries at the query name (RFC 9824
/// §3.1): next = the name's successor, types RRSIG, NSEC and NXNAME. The
/// response's rcode is NOERROR (RFC 9824 §3.2).
pub fn compact_nxdomain_nsec(qname: &[u8]) -> Result<Vec<u8>, DnssecError> {
    nsec_rdata(&successor(qname)?, &[rtype::RRSIG, rtype::NSEC, NXNAME])
}

/// The NSEC a compact-denial NODATA carries at the query name (RFC 9824
/// §3): next = the name's successor, types exactly those the name holds
/// (`types`; empty for an empty non-terminal) plus RRSIG and NSEC.
pub fn compact_nodata_nsec(qname: &[u8], types: &[u16]) -> Result<Vec<u8>, DnssecError> {
    let mut all = Vec::with_capacity(types.len() + 2);
    all.extend_from_slice(types);
    all.extend_from_slice(&[rtype::RRSIG, rtype::NSEC]);
    nsec_rdata(&successor(qname)?, &all)
}

/// The TTL of denial records: the smaller of the SOA's TTL and its MINIMUM
/// field (RFC 9077 §3, RFC 4034 §4 as updated).
pub fn denial_ttl(soa_ttl: u32, soa_minimum: u32) -> u32 {
    soa_ttl.min(soa_minimum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use crate::dns::wire::WireName;
    use crate::ident::keys::to_hex;

    fn name(s: &str) -> Vec<u8> {
        WireName::parse(s).unwrap().as_bytes().to_vec()
    }

    fn b64(s: &str) -> Vec<u8> {
        STANDARD.decode(s).unwrap()
    }

    /// RFC 8080 §6.1 as corrected by verified erratum 4935 (the published
    /// text signed with labels = 3 and printed no algorithm field): the
    /// two Ed25519 examples, each (private key, DNSKEY key, key tag, DS
    /// digest, RRSIG signature over `example.com. 3600 IN MX 10
    /// mail.example.com.`, inception 1438207200, expiration 1440021600).
    const RFC8080: [(&str, &str, u16, &str, &str); 2] = [
        (
            "ODIyNjAzODQ2MjgwODAxMjI2NDUxOTAyMDQxNDIyNjI=",
            "l02Woi0iS8Aa25FQkUd9RMzZHJpBoRQwAQEX1SxZJA4=",
            3613,
            "3aa5ab37efce57f737fc1627013fee07bdf241bd10f3b1964ab55c78e79a304b",
            "oL9krJun7xfBOIWcGHi7mag5/hdZrKWw15jPGrHpjQeRAvTdszaPD+QLs3fx8A4M3e23mRZ9VrbpMngwcrqNAg==",
        ),
        (
            "DSSF3o0s0f+ElWzj9E/Osxw8hLpk55chkmx0LYN5WiY=",
            "zPnZ/QwEe7S8C5SPz2OfS5RR40ATk2/rYnE9xHIEijs=",
            35217,
            "401781b934e392de492ec77ae2e15d70f6575a1c0bc59c5275c04ebe80c6614c",
            "zXQ0bkYgQTEFyfLyi9QoiY6D8ZdYo4wyUhVioYZXFdT410QPRITQSqJSnzQoSm5poJ7gD7AQR0O7KuI5k2pcBg==",
        ),
    ];
    const RFC8080_INCEPTION: u32 = 1_438_207_200;
    const RFC8080_EXPIRATION: u32 = 1_440_021_600;

    fn rfc8080_key(private: &str) -> ZoneKey {
        let secret: [u8; 32] = b64(private).try_into().unwrap();
        ZoneKey::new(
            &name("example.com"),
            SigningKey::from_bytes(&secret),
            FLAGS_CSK,
        )
        .unwrap()
    }

    fn mx() -> Vec<u8> {
        let mut rdata = vec![0, 10];
        rdata.extend_from_slice(&name("mail.example.com"));
        rdata
    }

    #[test]
    fn rfc8080_dnskey_key_tag_and_ds_are_reproduced() {
        for (private, public, tag, digest, _) in RFC8080 {
            let key = rfc8080_key(private);
            let mut dnskey = vec![0x01, 0x01, 3, 15];
            dnskey.extend_from_slice(&b64(public));
            assert_eq!(key.dnskey(), dnskey);
            assert_eq!(key.key_tag(), tag);
            assert_eq!(key_tag(&dnskey), tag);
            let ds = key.ds().unwrap();
            assert_eq!(ds[..4], [(tag >> 8) as u8, tag as u8, 15, 2]);
            assert_eq!(to_hex(&ds[4..]), digest);
        }
    }

    #[test]
    fn rfc8080_rrsig_over_the_mx_rrset_is_reproduced_byte_for_byte() {
        let mx = mx();
        let owner = name("example.com");
        for (private, _, tag, _, signature) in RFC8080 {
            let key = rfc8080_key(private);
            let rrset = RrSetRef {
                owner: &owner,
                rtype: 15,
                ttl: 3600,
                rdatas: &[&mx],
            };
            let window = Validity {
                inception: RFC8080_INCEPTION,
                expiration: RFC8080_EXPIRATION,
            };
            let rrsig = key.sign_rrset(&rrset, window).unwrap();
            let expected = Rrsig {
                type_covered: 15,
                algorithm: 15,
                labels: 2,
                original_ttl: 3600,
                expiration: RFC8080_EXPIRATION,
                inception: RFC8080_INCEPTION,
                key_tag: tag,
                signer: owner.clone(),
                signature: b64(signature),
            };
            assert_eq!(rrsig, expected.to_rdata());
            assert_eq!(Rrsig::parse(&rrsig).unwrap(), expected);
            verify_rrset(&owner, key.dnskey(), &rrset, &rrsig, RFC8080_INCEPTION + 1).unwrap();
        }
    }

    #[test]
    fn rfc8080_signed_data_matches_the_example_generator() {
        // The octets the RFC's example script signs (as PowerDNS's tests
        // print them): RRSIG fields, then the MX RR in canonical form.
        let rrsig = Rrsig {
            type_covered: 15,
            algorithm: 15,
            labels: 2,
            original_ttl: 3600,
            expiration: RFC8080_EXPIRATION,
            inception: RFC8080_INCEPTION,
            key_tag: 3613,
            signer: name("example.com"),
            signature: Vec::new(),
        };
        let mx = mx();
        let rdatas = canonical_rrset(15, &[&mx]).unwrap();
        assert_eq!(
            to_hex(&rrsig.signed_data(&name("example.com"), &rdatas)),
            "000f0f0200000e1055d4fc6055b94ce00e1d076578616d706c6503636f6d00\
             076578616d706c6503636f6d00000f000100000e100014000a046d61696c07\
             6578616d706c6503636f6d00"
        );
    }

    #[test]
    fn the_original_rfc8080_text_signed_with_three_labels() {
        // Erratum 4935: the published signature is what labels = 3 gives.
        let key = rfc8080_key(RFC8080[0].0);
        let rrsig = Rrsig {
            type_covered: 15,
            algorithm: 15,
            labels: 3,
            original_ttl: 3600,
            expiration: RFC8080_EXPIRATION,
            inception: RFC8080_INCEPTION,
            key_tag: 3613,
            signer: name("example.com"),
            signature: Vec::new(),
        };
        let mx = mx();
        let data = rrsig.signed_data(&name("example.com"), &canonical_rrset(15, &[&mx]).unwrap());
        assert_eq!(
            key.key.sign(&data).to_bytes().to_vec(),
            b64(
                "Edk+IB9KNNWg0HAjm7FazXyrd5m3Rk8zNZbvNpAcM+eysqcUOMIjWoevFkjH5GaMWeG96GUVZu6ECKOQmemHDg=="
            )
        );
    }

    fn sample() -> (ZoneKey, Vec<u8>, Vec<Vec<u8>>) {
        let apex = name("86.cpid.internal");
        let key = ZoneKey::new(&apex, SigningKey::from_bytes(&[9; 32]), FLAGS_CSK).unwrap();
        let owner = name("gc-000001-x.1005.31.86.cpid.internal");
        let rdatas = vec![b"\x03b=2".to_vec(), b"\x03a=1".to_vec()];
        (key, owner, rdatas)
    }

    const WINDOW: Validity = Validity {
        inception: 1_800_000_000,
        expiration: 1_800_604_800,
    };

    #[test]
    fn a_signed_rrset_verifies_in_any_order_and_case_and_any_change_does_not() {
        let (key, owner, rdatas) = sample();
        let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        let rrset = RrSetRef {
            owner: &owner,
            rtype: rtype::TXT,
            ttl: 300,
            rdatas: &refs,
        };
        let rrsig = key.sign_rrset(&rrset, WINDOW).unwrap();
        let now = WINDOW.inception + 10;
        let apex = key.apex().to_vec();
        verify_rrset(&apex, key.dnskey(), &rrset, &rrsig, now).unwrap();
        assert_eq!(Rrsig::parse(&rrsig).unwrap().labels, 6);

        // Order, duplicates, owner case and the received TTL are not signed.
        let reversed: Vec<&[u8]> = vec![refs[1], refs[0], refs[1]];
        let upper = name("gc-000001-x.1005.31.86.cpid.internal").to_ascii_uppercase();
        let same = RrSetRef {
            owner: &upper,
            rdatas: &reversed,
            ttl: 5,
            ..rrset
        };
        verify_rrset(&apex, key.dnskey(), &same, &rrsig, now).unwrap();

        // Every single flipped bit of the RRSIG fails.
        for i in 0..rrsig.len() {
            let mut bad = rrsig.clone();
            bad[i] ^= 0x01;
            assert!(
                verify_rrset(&apex, key.dnskey(), &rrset, &bad, now).is_err(),
                "flipped octet {i} still verifies"
            );
        }
        // A changed record, a missing one, another type, another owner.
        let changed: Vec<&[u8]> = vec![b"\x03a=1", b"\x03b=3"];
        let fewer: Vec<&[u8]> = vec![b"\x03a=1"];
        for bad in [
            RrSetRef {
                rdatas: &changed,
                ..rrset
            },
            RrSetRef {
                rdatas: &fewer,
                ..rrset
            },
        ] {
            assert_eq!(
                verify_rrset(&apex, key.dnskey(), &bad, &rrsig, now),
                Err(DnssecError::BadSignature)
            );
        }
        assert!(matches!(
            verify_rrset(
                &apex,
                key.dnskey(),
                &RrSetRef {
                    rtype: rtype::URI,
                    ..rrset
                },
                &rrsig,
                now
            ),
            Err(DnssecError::TypeCovered { .. })
        ));
        let sibling = name("gc-000002-x.1005.31.86.cpid.internal");
        assert_eq!(
            verify_rrset(
                &apex,
                key.dnskey(),
                &RrSetRef {
                    owner: &sibling,
                    ..rrset
                },
                &rrsig,
                now
            ),
            Err(DnssecError::BadSignature)
        );
    }

    #[test]
    fn validity_window_and_key_checks_are_enforced() {
        let (key, owner, rdatas) = sample();
        let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        let rrset = RrSetRef {
            owner: &owner,
            rtype: rtype::TXT,
            ttl: 300,
            rdatas: &refs,
        };
        let rrsig = key.sign_rrset(&rrset, WINDOW).unwrap();
        let apex = key.apex().to_vec();
        let at = |now| verify_rrset(&apex, key.dnskey(), &rrset, &rrsig, now);
        assert!(at(WINDOW.inception).is_ok());
        assert!(at(WINDOW.expiration).is_ok());
        assert!(matches!(
            at(WINDOW.inception - 1),
            Err(DnssecError::NotYetValid { .. })
        ));
        assert!(matches!(
            at(WINDOW.expiration + 1),
            Err(DnssecError::Expired { .. })
        ));

        // Another key, the key without the zone flag, another signer.
        let other = ZoneKey::new(&apex, SigningKey::from_bytes(&[8; 32]), FLAGS_CSK).unwrap();
        assert!(matches!(
            verify_rrset(&apex, other.dnskey(), &rrset, &rrsig, WINDOW.inception),
            Err(DnssecError::KeyTag { .. })
        ));
        let mut no_zone = key.dnskey().to_vec();
        no_zone[0] = 0;
        assert_eq!(
            verify_rrset(&apex, &no_zone, &rrset, &rrsig, WINDOW.inception),
            Err(DnssecError::NotZoneKey)
        );
        assert_eq!(
            verify_rrset(
                &name("cpid.internal"),
                key.dnskey(),
                &rrset,
                &rrsig,
                WINDOW.inception
            ),
            Err(DnssecError::Signer)
        );
        // Names outside the apex and unsignable types are refused.
        let outside = name("example.com");
        assert_eq!(
            key.sign_rrset(
                &RrSetRef {
                    owner: &outside,
                    ..rrset
                },
                WINDOW
            ),
            Err(DnssecError::OutsideSigner)
        );
        for t in [rtype::RRSIG, rtype::OPT, rtype::ANY, NXNAME] {
            assert_eq!(
                key.sign_rrset(&RrSetRef { rtype: t, ..rrset }, WINDOW),
                Err(DnssecError::Unsignable(t))
            );
        }
        assert_eq!(
            key.sign_rrset(
                &RrSetRef {
                    rdatas: &[],
                    ..rrset
                },
                WINDOW
            ),
            Err(DnssecError::EmptyRrset)
        );
    }

    #[test]
    fn the_window_wraps_in_serial_number_arithmetic() {
        // RFC 4034 §3.1.5: a window across 2^32 (year 2106) still holds.
        let (key, owner, rdatas) = sample();
        let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        let rrset = RrSetRef {
            owner: &owner,
            rtype: rtype::TXT,
            ttl: 300,
            rdatas: &refs,
        };
        let window = Validity {
            inception: u32::MAX - 100,
            expiration: 100,
        };
        let rrsig = key.sign_rrset(&rrset, window).unwrap();
        let apex = key.apex().to_vec();
        for now in [u32::MAX - 100, u32::MAX, 0, 100] {
            verify_rrset(&apex, key.dnskey(), &rrset, &rrsig, now).unwrap();
        }
        assert!(verify_rrset(&apex, key.dnskey(), &rrset, &rrsig, 101).is_err());
    }

    #[test]
    fn names_in_rdata_are_lower_cased_for_the_types_rfc4034_lists() {
        let upper = b"\x02NS\x04CPID\x00".to_vec();
        let lower = b"\x02ns\x04cpid\x00".to_vec();
        assert_eq!(canonical_rdata(rtype::NS, &upper).unwrap(), lower);
        // TXT is not a name-bearing type: kept as is.
        assert_eq!(canonical_rdata(rtype::TXT, &upper).unwrap(), upper);
        let mut soa = upper.clone();
        soa.extend_from_slice(&upper);
        soa.extend_from_slice(&[0; 20]);
        let mut want = lower.clone();
        want.extend_from_slice(&lower);
        want.extend_from_slice(&[0; 20]);
        assert_eq!(canonical_rdata(rtype::SOA, &soa).unwrap(), want);
        // Compressed, short or over-long name-bearing RDATA is refused.
        assert!(canonical_rdata(rtype::NS, &[0xC0, 12]).is_err());
        assert!(canonical_rdata(rtype::SOA, &soa[..soa.len() - 1]).is_err());
        assert!(canonical_rdata(rtype::NS, &[0, 0]).is_err());
    }

    #[test]
    fn labels_count_without_root_and_leading_wildcard() {
        assert_eq!(label_count(&name("example.com")), 2);
        assert_eq!(label_count(&[0]), 0);
        assert_eq!(label_count(b"\x01*\x07example\x03com\x00"), 2);
        assert_eq!(label_count(b"\x01a\x01*\x03com\x00"), 3);
        assert_eq!(
            wildcard_owner(&name("a.b.example.com"), 2),
            b"\x01*\x07example\x03com\x00"
        );
    }

    #[test]
    fn a_wildcard_expanded_rrset_verifies_under_the_wildcard_owner() {
        let apex = name("example.com");
        let key = ZoneKey::new(&apex, SigningKey::from_bytes(&[3; 32]), FLAGS_CSK).unwrap();
        let wildcard = b"\x01*\x07example\x03com\x00".to_vec();
        let rdata: &[u8] = b"\x01x";
        let signed = RrSetRef {
            owner: &wildcard,
            rtype: rtype::TXT,
            ttl: 60,
            rdatas: &[rdata],
        };
        let rrsig = key.sign_rrset(&signed, WINDOW).unwrap();
        assert_eq!(Rrsig::parse(&rrsig).unwrap().labels, 2);
        let expanded = name("a.b.example.com");
        let answer = RrSetRef {
            owner: &expanded,
            ..signed
        };
        verify_rrset(&apex, key.dnskey(), &answer, &rrsig, WINDOW.inception).unwrap();
    }

    #[test]
    fn nsec_bitmaps_follow_rfc4034_windows() {
        // RFC 4034 §4.3: A MX RRSIG NSEC TYPE1234.
        let bitmap = nsec_bitmap(&[1, 15, 46, 47, 1234]);
        let mut want = vec![0x00, 0x06, 0x40, 0x01, 0x00, 0x00, 0x00, 0x03, 0x04, 0x1b];
        want.extend_from_slice(&[0; 26]);
        want.push(0x20);
        assert_eq!(bitmap, want);
        assert_eq!(nsec_types(&bitmap).unwrap(), [1, 15, 46, 47, 1234]);
        // Unsorted with duplicates: the same bitmap.
        assert_eq!(nsec_bitmap(&[1234, 47, 1, 46, 15, 1]), bitmap);
        assert!(nsec_bitmap(&[]).is_empty());
        let top = nsec_bitmap(&[65535]);
        assert_eq!((top.len(), top[0], top[1], top[33]), (34, 0xff, 32, 0x01));
        assert_eq!(nsec_types(&top).unwrap(), [65535]);
        // Strict reading: windows out of order or repeated, zero or over-long
        // length, a trailing zero octet, bits cut short.
        assert!(nsec_types(&[1, 1, 0x80, 0, 1, 0x80]).is_err());
        assert!(nsec_types(&[0, 1, 0x80, 0, 1, 0x40]).is_err());
        assert!(nsec_types(&[0, 0]).is_err());
        assert!(nsec_types(&[0, 2, 0x40, 0]).is_err());
        assert!(nsec_types(&[0, 33]).is_err());
        assert!(nsec_types(&[0, 2, 0x40]).is_err());
    }

    #[test]
    fn compact_denial_nsec_records_match_rfc9824() {
        let qname = name("nx.86.cpid.internal");
        let nx = compact_nxdomain_nsec(&qname).unwrap();
        let (next, types) = parse_nsec(&nx).unwrap();
        assert_eq!(next, b"\x01\x00\x02nx\x0286\x04cpid\x08internal\x00");
        assert_eq!(types, [rtype::RRSIG, rtype::NSEC, NXNAME]);
        // Window 0, 17 octets: RRSIG (46) and NSEC (47) in octet 5, NXNAME
        // (128) the first bit of octet 16.
        let mut bitmap = vec![0, 17, 0, 0, 0, 0, 0, 0x03];
        bitmap.extend_from_slice(&[0; 10]);
        bitmap.push(0x80);
        assert_eq!(nx[next.len()..], bitmap);

        // NODATA: exactly the types at the name, plus RRSIG and NSEC.
        let nodata = compact_nodata_nsec(&qname, &[rtype::TXT, rtype::URI, rtype::CPREC]).unwrap();
        let (_, types) = parse_nsec(&nodata).unwrap();
        assert_eq!(
            types,
            [
                rtype::TXT,
                rtype::RRSIG,
                rtype::NSEC,
                rtype::URI,
                rtype::CPREC
            ]
        );
        let ent = compact_nodata_nsec(&qname, &[]).unwrap();
        assert_eq!(parse_nsec(&ent).unwrap().1, [rtype::RRSIG, rtype::NSEC]);
        assert_eq!(denial_ttl(3600, 300), 300);
    }

    /// A name of 254 octets whose leftmost label is `first` (63 octets).
    fn long_name(first: &[u8]) -> Vec<u8> {
        let mut n = vec![63];
        n.extend_from_slice(first);
        for len in [63, 63, 60] {
            n.push(len);
            n.extend(std::iter::repeat_n(b'z', usize::from(len)));
        }
        n.push(0);
        assert_eq!(n.len(), 254);
        n
    }

    fn before(a: &[u8], b: &[u8]) -> bool {
        crate::dns::zone::canonical_order(a, b) == std::cmp::Ordering::Less
    }

    #[test]
    fn successors_of_long_names_stay_within_255_octets() {
        assert_eq!(successor(&name("a.B")).unwrap(), b"\x01\x00\x01a\x01b\x00");
        // 253 octets: \000. still fits.
        let short = long_name(&[b'a'; 63])[64..].to_vec();
        let mut n253 = vec![62];
        n253.extend_from_slice(&[b'a'; 62]);
        n253.extend_from_slice(&short);
        assert_eq!(n253.len(), 253);
        assert_eq!(successor(&n253).unwrap().len(), 255);

        // 254 octets: the leftmost label's last octet goes up by one.
        let n = long_name(&[b'a'; 63]);
        let s = successor(&n).unwrap();
        assert_eq!((s.len(), s[63]), (254, b'b'));
        assert!(before(&n, &s));
        // `@` + 1 would be `A`, which sorts as `a`: skip to `[`.
        let mut first = [b'a'; 63];
        first[62] = b'@';
        let s = successor(&long_name(&first)).unwrap();
        assert_eq!(s[63], b'[');
        assert!(before(&long_name(&first), &s));
        // A trailing \255 is dropped and the octet before goes up.
        first[61] = b'c';
        first[62] = 0xff;
        let s = successor(&long_name(&first)).unwrap();
        assert_eq!((s[0], s[62]), (62, b'd'));
        assert!(before(&long_name(&first), &s));
        assert_eq!(
            successor(&long_name(&[0xff; 63])),
            Err(DnssecError::NoSuccessor)
        );
    }

    #[test]
    fn key_tag_and_ds_match_the_examples_of_rfc4034_and_rfc4509() {
        // RFC 4034 §5.4: the DNSKEY of dskey.example.com, key tag 60485;
        // RFC 4509 §2.3: its SHA-256 DS.
        let key = b64(
            "AQOeiiR0GOMYkDshWoSKz9XzfwJr1AYtsmx3TGkJaNXVbfi/2pHm822aJ5iI9BMzNXxeYCmZDRD99WYwYqUSdjMmmAphXdvxegXd/M5+X7OrzKBaMbCVdFLUUh6DhweJBjEVv5f2wwjM9XzcnOf+EPbtG9DMBmADjFDc2w/rljwvFw==",
        );
        let mut rdata = vec![0x01, 0x00, 3, 5];
        rdata.extend_from_slice(&key);
        assert_eq!(key_tag(&rdata), 60485);
        for owner in ["dskey.example.com", "DSKEY.Example.COM"] {
            let owner = name(owner);
            let mut upper = owner.clone();
            upper.make_ascii_uppercase();
            let ds = ds_rdata(&upper, &rdata).unwrap();
            assert_eq!(
                to_hex(&ds),
                "ec450502d4b7d520e7bb5f0f67674a0cceb1e3e0614b93c4f9e99b8383f6a1e4469da50a"
            );
        }
        assert!(ds_rdata(&name("dskey.example.com"), &[1, 0, 3]).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let key = ZoneKey::new(&[0], SigningKey::from_bytes(&[1; 32]), FLAGS_CSK).unwrap();
        for len in 0..80 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let _ = canonical_name(&junk);
            let _ = successor(&junk);
            let _ = nsec_types(&junk);
            let _ = parse_nsec(&junk);
            let _ = Rrsig::parse(&junk);
            let _ = ds_rdata(&junk, &junk);
            let _ = canonical_rdata(rtype::SOA, &junk);
            let rrset = RrSetRef {
                owner: &junk,
                rtype: rtype::TXT,
                ttl: 0,
                rdatas: &[&junk],
            };
            let _ = key.sign_rrset(&rrset, WINDOW);
            let _ = verify_rrset(&[0], key.dnskey(), &rrset, &junk, 0);
        }
    }
}
