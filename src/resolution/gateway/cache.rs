//! L1: the gateway's bounded in-memory cache of ready-to-send answers.
//!
//! An entry holds its records already encoded (answer RRs owned by a
//! pointer to the question, authority and additional RRs with full owner
//! names) plus the offsets of their TTL fields, so a hit is a hash lookup,
//! a copy and a TTL patch: the TTL sent is what remains of the entry's,
//! never more (TTL-true). Bounded by entries and bytes at once through
//! quick_cache's weighted capacity: each entry weighs at least
//! `max_bytes / max_entries`, so the weight limit caps both. Its eviction
//! (S3-FIFO) keeps popular names through a flood of one-off names. The
//! response itself is put together by the one DNS writer
//! ([`crate::dns::response`]), as a node's is: this module only says which
//! blocks go in which section and with what TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};

use crate::dns::query::Checked;
use crate::dns::response::{Empty, Rcode, Response, Section, Summary};
use crate::dns::wire::rtype;
use crate::ident::record::SignedRecord;

/// What an entry was made from; kept to persist it in L2 and rebuild it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Source {
    /// A verified identifier record (its encoded bytes).
    Record(Vec<u8>),
    /// A zone's whole response for a name that is not an identifier, or a
    /// negative answer for one: rcode and the RRs of each section, each RR
    /// encoded with its owner uncompressed.
    Message {
        rcode: u8,
        answers: Vec<Vec<u8>>,
        authorities: Vec<Vec<u8>>,
        additionals: Vec<Vec<u8>>,
        /// A negative answer whose DNSSEC denial verified under a key the
        /// chain of trust vouched for: sent with AD.
        validated: bool,
    },
}

/// Encoded RRs and where their TTLs are.
#[derive(Debug, Default)]
pub struct Block {
    bytes: Box<[u8]>,
    count: u16,
    ttl_at: Box<[u16]>,
}

impl Block {
    /// From RRs each encoded in full (owner, type, class, ttl, rdlength, rdata).
    pub fn from_rrs(rrs: &[Vec<u8>]) -> Option<Block> {
        let mut bytes = Vec::new();
        let mut ttl_at = Vec::new();
        for rr in rrs {
            let owner_len = owner_len(rr)?;
            ttl_at.push(u16::try_from(bytes.len() + owner_len + 4).ok()?);
            bytes.extend_from_slice(rr);
        }
        Some(Block {
            bytes: bytes.into_boxed_slice(),
            count: u16::try_from(rrs.len()).ok()?,
            ttl_at: ttl_at.into_boxed_slice(),
        })
    }

    /// From RRsets whose owner is the question name (written as `C0 0C`).
    pub fn at_question(rtype: u16, rdatas: &[Vec<u8>]) -> Option<Block> {
        let mut bytes = Vec::new();
        let mut ttl_at = Vec::new();
        for rdata in rdatas {
            bytes.extend_from_slice(&[0xC0, 0x0C]);
            bytes.extend_from_slice(&rtype.to_be_bytes());
            bytes.extend_from_slice(&1u16.to_be_bytes());
            ttl_at.push(u16::try_from(bytes.len()).ok()?);
            bytes.extend_from_slice(&0u32.to_be_bytes());
            bytes.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
            bytes.extend_from_slice(rdata);
        }
        Some(Block {
            bytes: bytes.into_boxed_slice(),
            count: u16::try_from(rdatas.len()).ok()?,
            ttl_at: ttl_at.into_boxed_slice(),
        })
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The block as a response section, every TTL set to `ttl`.
    fn with_ttl(&self, ttl: u32) -> WithTtl<'_> {
        WithTtl { block: self, ttl }
    }

    fn write(&self, out: &mut Vec<u8>, ttl: u32) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        for &at in &self.ttl_at {
            let at = start + usize::from(at);
            if let Some(field) = out.get_mut(at..at + 4) {
                field.copy_from_slice(&ttl.to_be_bytes());
            }
        }
    }
}

/// A block written with its TTLs patched.
struct WithTtl<'a> {
    block: &'a Block,
    ttl: u32,
}

impl Section for WithTtl<'_> {
    fn len(&self) -> usize {
        self.block.len()
    }
    fn count(&self) -> u16 {
        self.block.count
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        self.block.write(out, self.ttl);
    }
}

/// The blocks of a record's RRsets that answer `qtype` (all for ANY).
struct Answers<'a> {
    sets: &'a [(u16, Block)],
    qtype: u16,
    ttl: u32,
}

impl<'a> Answers<'a> {
    fn iter(&self) -> impl Iterator<Item = &'a Block> + use<'a> {
        let qtype = self.qtype;
        self.sets
            .iter()
            .filter(move |(t, _)| *t == qtype || qtype == rtype::ANY)
            .map(|(_, b)| b)
    }
}

impl Section for Answers<'_> {
    fn len(&self) -> usize {
        self.iter().map(Block::len).sum()
    }
    fn count(&self) -> u16 {
        self.iter().map(|b| b.count).sum()
    }
    fn write_to(&self, out: &mut Vec<u8>) {
        for b in self.iter() {
            b.write(out, self.ttl);
        }
    }
}

/// Length of the (uncompressed) owner name at the start of an RR.
fn owner_len(rr: &[u8]) -> Option<usize> {
    let mut pos = 0usize;
    loop {
        let l = usize::from(*rr.get(pos)?);
        if l == 0 {
            return Some(pos + 1);
        }
        if l > 63 {
            return None;
        }
        pos += 1 + l;
    }
}

/// What the entry answers.
#[derive(Debug)]
pub enum Body {
    /// An identifier's RRsets by type; any other type is NODATA.
    Record {
        record: SignedRecord,
        sets: Vec<(u16, Block)>,
    },
    /// A response kept as it came (a name that is not an identifier, or
    /// an identifier's negative answer).
    Message {
        rcode: Rcode,
        answer: Block,
        authority: Block,
        additional: Block,
        /// Sent with AD (`Source::Message::validated`).
        authentic: bool,
    },
}

/// One cached answer.
#[derive(Debug)]
pub struct Entry {
    pub body: Body,
    pub source: Source,
    /// The zone (prefix) that answered, whose SOA serves NODATA.
    pub zone: String,
    /// That zone's apex, wire form: the key of its cached SOA.
    pub zone_apex: Box<[u8]>,
    /// Unix seconds when fetched, and the TTL it was given.
    pub stored: u64,
    pub ttl: u32,
    pub hits: AtomicU32,
    /// A refresh is running (prefetch or after expiry).
    pub refreshing: AtomicBool,
    /// Unix seconds of the last failed refresh (0: none).
    pub failed_at: AtomicU64,
}

impl Entry {
    pub fn new(
        body: Body,
        source: Source,
        zone: String,
        zone_apex: Box<[u8]>,
        stored: u64,
        ttl: u32,
    ) -> Entry {
        Entry {
            body,
            source,
            zone,
            zone_apex,
            stored,
            ttl,
            hits: AtomicU32::new(0),
            refreshing: AtomicBool::new(false),
            failed_at: AtomicU64::new(0),
        }
    }

    /// Seconds of TTL left (0 when expired).
    pub fn remaining(&self, now: u64) -> u32 {
        let age = now.saturating_sub(self.stored);
        u32::try_from(u64::from(self.ttl).saturating_sub(age)).unwrap_or(0)
    }

    pub fn is_fresh(&self, now: u64) -> bool {
        now < self.stored + u64::from(self.ttl)
    }

    /// Seconds since it expired (0 while fresh).
    pub fn expired_for(&self, now: u64) -> u64 {
        now.saturating_sub(self.stored + u64::from(self.ttl))
    }

    /// Approximate memory held, for the byte bound.
    pub fn size(&self) -> usize {
        let body = match &self.body {
            Body::Record { record, sets } => {
                record.as_bytes().len() * 2
                    + 256
                    + sets.iter().map(|(_, b)| b.len() + 48).sum::<usize>()
            }
            Body::Message {
                answer,
                authority,
                additional,
                ..
            } => answer.len() + authority.len() + additional.len() + 144,
        };
        let source = match &self.source {
            Source::Record(b) => b.len(),
            Source::Message {
                answers,
                authorities,
                additionals,
                ..
            } => answers
                .iter()
                .chain(authorities)
                .chain(additionals)
                .map(|r| r.len() + 24)
                .sum(),
        };
        body + source + self.zone.len() + self.zone_apex.len() + 160
    }

    /// True when answering `qtype` from a record needs the zone's SOA.
    pub fn needs_soa(&self, qtype: u16) -> bool {
        match &self.body {
            Body::Record { sets, .. } => {
                qtype != rtype::ANY && !sets.iter().any(|(t, _)| *t == qtype)
            }
            Body::Message { .. } => false,
        }
    }

    /// Writes the response for `c` into `out`. `soa` is the zone's SOA
    /// block for NODATA from a record; `ttl` the TTL to send. Allocates
    /// nothing: a hit is a copy and a TTL patch.
    pub fn write(
        &self,
        c: &Checked<'_>,
        out: &mut Vec<u8>,
        ttl: u32,
        soa: Option<&Block>,
    ) -> Summary {
        match &self.body {
            Body::Record { sets, .. } => {
                let answers = Answers {
                    sets,
                    qtype: c.qtype(),
                    ttl,
                };
                let nodata = answers.iter().next().is_none();
                let authority = soa.filter(|_| nodata).map(|b| b.with_ttl(ttl));
                // A record entry was verified through the chain of trust.
                Response::new(c, Rcode::NoError)
                    .recursion_available()
                    .authentic_data()
                    .write(out, &answers, &authority, &Empty)
            }
            Body::Message {
                rcode,
                answer,
                authority,
                additional,
                authentic,
            } => {
                let mut response = Response::new(c, *rcode).recursion_available();
                if *authentic {
                    response = response.authentic_data();
                }
                response.write(
                    out,
                    &answer.with_ttl(ttl),
                    &authority.with_ttl(ttl),
                    &additional.with_ttl(ttl),
                )
            }
        }
    }

    /// The SOA RRs of a message entry's answer (for NODATA of records).
    pub fn soa_block(&self) -> Option<&Block> {
        match &self.body {
            Body::Message { answer, rcode, .. } if *rcode == Rcode::NoError && answer.count > 0 => {
                Some(answer)
            }
            _ => None,
        }
    }
}

/// Cache key: the lower-cased wire name and the type (`CPREC` stands for
/// every type of an identifier name: one record answers them all).
pub type Key = (Box<[u8]>, u16);

#[derive(Clone)]
struct Weigher {
    floor: u64,
}

impl quick_cache::Weighter<Key, Arc<Entry>> for Weigher {
    fn weight(&self, key: &Key, value: &Arc<Entry>) -> u64 {
        ((key.0.len() + value.size()) as u64).max(self.floor)
    }
}

/// The L1 cache.
pub struct L1 {
    cache: quick_cache::sync::Cache<Key, Arc<Entry>, Weigher>,
    max_entries: usize,
    max_bytes: u64,
}

impl L1 {
    pub fn new(max_entries: usize, max_bytes: u64) -> L1 {
        let max_entries = max_entries.max(1);
        let floor = (max_bytes / max_entries as u64).max(1);
        L1 {
            cache: quick_cache::sync::Cache::with_weighter(
                max_entries,
                max_bytes,
                Weigher { floor },
            ),
            max_entries,
            max_bytes,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<Arc<Entry>>
    where
        Q: std::hash::Hash + quick_cache::Equivalent<Key> + ?Sized,
    {
        self.cache.get(key)
    }

    pub fn insert(&self, key: Key, entry: Arc<Entry>) {
        self.cache.insert(key, entry);
    }

    pub fn remove(&self, key: &Key) {
        self.cache.remove(key);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Weighed bytes held (never above [`L1::max_bytes`]).
    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }
}
