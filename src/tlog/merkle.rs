//! Merkle tree hashing and proofs of RFC 9162 §2.1 (as RFC 6962, SHA-256).
//!
//! A log stores the hash of every *complete* subtree, addressed as
//! `(level, index)`: the subtree of the `2^level` leaves
//! `[index << level, (index + 1) << level)`. Level 0 holds the leaf hashes.
//! Everything here works from those stored hashes through a [`HashReader`]:
//! a tree root, an inclusion proof or a consistency proof reads O(log n) of
//! them, and a hash of the partial subtree on the right edge is folded from
//! the stored hashes that tile it. Nothing here rebuilds a tree, and nothing
//! here does I/O of its own.
//!
//! [`Frontier`] is the append side: the roots of the complete subtrees along
//! the right edge, from which the next leaf's stored hashes follow.
//!
//! ```
//! use std::collections::HashMap;
//! use cpid::tlog::merkle::{Frontier, leaf_hash, inclusion_proof, tree_hash, verify_inclusion};
//!
//! let mut stored = HashMap::new();
//! let mut frontier = Frontier::empty();
//! for entry in [&b"a"[..], b"b", b"c"] {
//!     for (level, index, hash) in frontier.append(leaf_hash(entry)) {
//!         stored.insert((level, index), hash);
//!     }
//! }
//! let root = tree_hash(3, &stored)?;
//! assert_eq!(root, frontier.root());
//! let proof = inclusion_proof(1, 3, &stored)?;
//! verify_inclusion(1, 3, &leaf_hash(b"b"), &proof, &root)?;
//! # Ok::<(), cpid::tlog::error::TlogError>(())
//! ```

use std::collections::HashMap;
use std::hash::BuildHasher;

use sha2::{Digest, Sha256};

use crate::tlog::error::{ProofCheck, TlogError};

/// A SHA-256 Merkle tree hash.
pub type Hash = [u8; 32];

/// RFC 9162 §2.1.1 domain separation: leaf hashes start with 0x00.
const LEAF_PREFIX: u8 = 0x00;
/// RFC 9162 §2.1.1 domain separation: interior node hashes start with 0x01.
const NODE_PREFIX: u8 = 0x01;

/// The hash of a leaf: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an interior node: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Reads stored hashes of complete subtrees (typically from a store).
pub trait HashReader {
    /// The hash of the complete subtree of leaves
    /// `[index << level, (index + 1) << level)`.
    ///
    /// Errors: [`TlogError::MissingHash`] when it is not stored,
    /// [`TlogError::Read`] when the store fails.
    fn hash(&self, level: u8, index: u64) -> Result<Hash, TlogError>;
}

impl<S: BuildHasher> HashReader for HashMap<(u8, u64), Hash, S> {
    fn hash(&self, level: u8, index: u64) -> Result<Hash, TlogError> {
        self.get(&(level, index))
            .copied()
            .ok_or(TlogError::MissingHash { level, index })
    }
}

/// The right edge of a tree: the roots of its complete subtrees, one per
/// set bit of the size, largest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn empty() -> Frontier {
        Frontier {
            size: 0,
            hashes: Vec::new(),
        }
    }

    /// The frontier of the tree of `size` leaves, read from its stored
    /// hashes (one read per set bit of `size`).
    pub fn load(size: u64, r: &dyn HashReader) -> Result<Frontier, TlogError> {
        let hashes = edge(0, size)
            .map(|(level, index)| r.hash(level, index))
            .collect::<Result<Vec<Hash>, TlogError>>()?;
        Ok(Frontier { size, hashes })
    }

    /// The frontier of `size` leaves from its edge hashes, as
    /// [`Frontier::edge`] gave them; `None` when their count is not the
    /// number of set bits of `size`.
    pub fn from_edge(size: u64, hashes: Vec<Hash>) -> Option<Frontier> {
        (hashes.len() == size.count_ones() as usize).then_some(Frontier { size, hashes })
    }

    /// The edge hashes, largest subtree first (what an auditor keeps).
    pub fn edge(&self) -> &[Hash] {
        &self.hashes
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash and returns every stored hash the append creates:
    /// the leaf at `(0, n)` and each parent it completes, lowest first.
    ///
    /// A tree already holding `u64::MAX` leaves cannot grow: the append is
    /// refused and returns no hashes.
    pub fn append(&mut self, leaf: Hash) -> Vec<(u8, u64, Hash)> {
        let n = self.size;
        let Some(next) = n.checked_add(1) else {
            return Vec::new();
        };
        // Each trailing one bit of `n` is a complete subtree on the edge of
        // the same size as the one being carried: they merge.
        let merges = n.trailing_ones();
        let mut created = Vec::with_capacity(merges as usize + 1);
        let mut hash = leaf;
        let mut index = n;
        created.push((0, index, hash));
        for level in 1..=merges {
            let Some(left) = self.hashes.pop() else {
                // Unreachable: the frontier holds one hash per set bit of n.
                break;
            };
            hash = node_hash(&left, &hash);
            index >>= 1;
            // `level` ≤ 64 − 0 trailing ones of a u64 below u64::MAX ≤ 63.
            created.push((level as u8, index, hash));
        }
        self.hashes.push(hash);
        self.size = next;
        created
    }

    /// The root hash of the tree ([`empty_root`] for the empty tree).
    pub fn root(&self) -> Hash {
        fold_right(self.hashes.iter().copied()).unwrap_or_else(empty_root)
    }
}

/// The root of the tree made of the first `size` leaves, from O(log n)
/// stored hashes.
pub fn tree_hash(size: u64, r: &dyn HashReader) -> Result<Hash, TlogError> {
    if size == 0 {
        return Ok(empty_root());
    }
    subtree_hash(0, size, r)
}

/// The inclusion proof of RFC 9162 §2.1.3.1 for leaf `index` in the tree
/// of `size` leaves: sibling hashes from the leaf up.
pub fn inclusion_proof(index: u64, size: u64, r: &dyn HashReader) -> Result<Vec<Hash>, TlogError> {
    if index >= size {
        return Err(TlogError::malformed(
            "inclusion proof request",
            format!("leaf index {index} is not below tree size {size}"),
        ));
    }
    let mut proof = Vec::new();
    path(index, 0, size, r, &mut proof)?;
    Ok(proof)
}

/// RFC 9162 §2.1.3.1 `PATH(m, D[lo:hi])`, appended to `out`.
fn path(
    m: u64,
    lo: u64,
    hi: u64,
    r: &dyn HashReader,
    out: &mut Vec<Hash>,
) -> Result<(), TlogError> {
    if hi - lo <= 1 {
        return Ok(());
    }
    let mid = lo + split(hi - lo);
    if m < mid {
        path(m, lo, mid, r, out)?;
        out.push(subtree_hash(mid, hi, r)?);
    } else {
        path(m, mid, hi, r, out)?;
        out.push(subtree_hash(lo, mid, r)?);
    }
    Ok(())
}

/// The consistency proof of RFC 9162 §2.1.4.1 between the tree of `m`
/// leaves and the tree of `n` leaves. Empty when `m` is 0 or equals `n`.
pub fn consistency_proof(m: u64, n: u64, r: &dyn HashReader) -> Result<Vec<Hash>, TlogError> {
    if m > n {
        return Err(TlogError::malformed(
            "consistency proof request",
            format!("first tree size {m} is larger than second tree size {n}"),
        ));
    }
    let mut proof = Vec::new();
    if m > 0 && m < n {
        subproof(m, 0, n, true, r, &mut proof)?;
    }
    Ok(proof)
}

/// RFC 9162 §2.1.4.1 `SUBPROOF(m, D[lo:hi], b)` for `lo < m <= hi`,
/// appended to `out`.
fn subproof(
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    r: &dyn HashReader,
    out: &mut Vec<Hash>,
) -> Result<(), TlogError> {
    if m == hi {
        if !complete {
            out.push(subtree_hash(lo, hi, r)?);
        }
        return Ok(());
    }
    let mid = lo + split(hi - lo);
    if m <= mid {
        subproof(m, lo, mid, complete, r, out)?;
        out.push(subtree_hash(mid, hi, r)?);
    } else {
        subproof(m, mid, hi, false, r, out)?;
        out.push(subtree_hash(lo, mid, r)?);
    }
    Ok(())
}

/// RFC 9162 §2.1.3.2: checks that `leaf` is at `index` in the tree of
/// `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TlogError> {
    // Step 1.
    if index >= size {
        return Err(TlogError::Proof(ProofCheck::IndexBeyondSize));
    }
    // Steps 2 and 3.
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    // Step 4.
    for p in proof {
        if snode == 0 {
            return Err(TlogError::Proof(ProofCheck::ProofTooLong));
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    if snode != 0 {
        return Err(TlogError::Proof(ProofCheck::ProofTooShort));
    }
    if r != *root {
        return Err(TlogError::Proof(ProofCheck::RootMismatch));
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: checks that the tree of `m` leaves with root
/// `root_m` is a prefix of the tree of `n` leaves with root `root_n`.
///
/// Around the RFC's algorithm (defined for `0 < m < n`): `m > n` fails;
/// `m == n` needs an empty proof and equal roots; `m == 0` needs an empty
/// proof and `root_m` equal to [`empty_root`].
pub fn verify_consistency(
    m: u64,
    n: u64,
    root_m: &Hash,
    root_n: &Hash,
    proof: &[Hash],
) -> Result<(), TlogError> {
    if m > n {
        return Err(TlogError::Proof(ProofCheck::SizesOutOfOrder));
    }
    if m == n || m == 0 {
        if !proof.is_empty() {
            return Err(TlogError::Proof(ProofCheck::ProofNotEmpty));
        }
        if m == n && root_m != root_n {
            return Err(TlogError::Proof(ProofCheck::RootsDiffer));
        }
        if m == 0 && *root_m != empty_root() {
            return Err(TlogError::Proof(ProofCheck::NotEmptyRoot));
        }
        return Ok(());
    }
    // Step 1.
    if proof.is_empty() {
        return Err(TlogError::Proof(ProofCheck::EmptyProof));
    }
    // Step 2: a power-of-two first tree is itself a node of the path.
    let seed = m.is_power_of_two().then_some(root_m);
    let mut path = seed.into_iter().chain(proof);
    // Step 3.
    let (mut fnode, mut snode) = (m - 1, n - 1);
    // Step 4.
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let Some(first) = path.next() else {
        return Err(TlogError::Proof(ProofCheck::EmptyProof));
    };
    let (mut fr, mut sr) = (*first, *first);
    // Step 6.
    for c in path {
        if snode == 0 {
            return Err(TlogError::Proof(ProofCheck::ProofTooLong));
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(TlogError::Proof(ProofCheck::ProofTooShort));
    }
    if fr != *root_m {
        return Err(TlogError::Proof(ProofCheck::FirstRootMismatch));
    }
    if sr != *root_n {
        return Err(TlogError::Proof(ProofCheck::SecondRootMismatch));
    }
    Ok(())
}

/// The largest power of two below `n` (for `n >= 2`): where RFC 9162
/// splits a range of `n` leaves.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The complete subtrees that tile `[lo, hi)`, largest first, as stored
/// hash addresses. Exact for the ranges RFC 9162 hashes: `lo` aligned to a
/// power of two at least `hi - lo`, so the tiles are the binary
/// decomposition of the range's length.
fn edge(lo: u64, hi: u64) -> impl Iterator<Item = (u8, u64)> {
    let mut at = lo;
    std::iter::from_fn(move || {
        if at >= hi {
            return None;
        }
        // The largest aligned subtree starting at `at` that fits.
        let fits = 63 - (hi - at).leading_zeros();
        let level = at.trailing_zeros().min(fits);
        let index = at >> level;
        at += 1 << level;
        // `level` ≤ 63.
        Some((level as u8, index))
    })
}

/// `MTH(D[lo:hi])` from the stored hashes that tile the range.
fn subtree_hash(lo: u64, hi: u64, r: &dyn HashReader) -> Result<Hash, TlogError> {
    let hashes = edge(lo, hi)
        .map(|(level, index)| r.hash(level, index))
        .collect::<Result<Vec<Hash>, TlogError>>()?;
    fold_right(hashes.into_iter())
        .ok_or_else(|| TlogError::malformed("subtree", format!("empty leaf range [{lo}, {hi})")))
}

/// Hashes a right edge, largest subtree first, into one root:
/// `node(h0, node(h1, … node(h_{k-1}, h_k)))`.
fn fold_right(hashes: impl DoubleEndedIterator<Item = Hash>) -> Option<Hash> {
    let mut rev = hashes.rev();
    let last = rev.next()?;
    Some(rev.fold(last, |right, left| node_hash(&left, &right)))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// RFC 9162 §2.1.1 `MTH` over the leaf hashes, by its recursive
    /// definition.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    /// A reader over a tree's stored hashes that refuses any hash of a
    /// subtree reaching past `size` (a proof for `size` must not depend on
    /// later leaves) and counts its reads.
    struct Bounded<'a> {
        stored: &'a Stored,
        size: u64,
        reads: Cell<u64>,
    }

    impl HashReader for Bounded<'_> {
        fn hash(&self, level: u8, index: u64) -> Result<Hash, TlogError> {
            self.reads.set(self.reads.get() + 1);
            if (index + 1) << level > self.size {
                return Err(TlogError::Read(format!(
                    "({level}, {index}) reaches past size {}",
                    self.size
                )));
            }
            self.stored.hash(level, index)
        }
    }

    fn entry(i: u64) -> Vec<u8> {
        format!("entry {i}").into_bytes()
    }

    type Stored = HashMap<(u8, u64), Hash>;

    /// Every stored hash of a tree of `n` leaves, the leaf hashes, and the
    /// frontier after each append.
    fn build(n: u64) -> (Stored, Vec<Hash>, Vec<Frontier>) {
        let mut stored = HashMap::new();
        let mut leaves = Vec::new();
        let mut frontier = Frontier::empty();
        let mut frontiers = vec![frontier.clone()];
        for i in 0..n {
            let leaf = leaf_hash(&entry(i));
            leaves.push(leaf);
            let created = frontier.append(leaf);
            assert_eq!(created[0], (0, i, leaf));
            for (level, index, hash) in created {
                assert!(stored.insert((level, index), hash).is_none());
            }
            frontiers.push(frontier.clone());
        }
        (stored, leaves, frontiers)
    }

    #[test]
    fn hashes_follow_rfc_9162_domain_separation() {
        // SHA-256("") and SHA-256(0x00): the empty root and the hash of an
        // empty leaf, as every RFC 6962 implementation has them.
        assert_eq!(
            crate::ident::keys::to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            crate::ident::keys::to_hex(&leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let (l, r) = (leaf_hash(b"l"), leaf_hash(b"r"));
        let mut joined = vec![1u8];
        joined.extend_from_slice(&l);
        joined.extend_from_slice(&r);
        assert_eq!(node_hash(&l, &r), <Hash>::from(Sha256::digest(&joined)));
    }

    #[test]
    fn append_stores_the_leaf_and_each_parent_it_completes() {
        let mut f = Frontier::empty();
        assert_eq!(f.root(), empty_root());
        let h: Vec<Hash> = (0..4).map(|i| leaf_hash(&entry(i))).collect();
        assert_eq!(f.append(h[0]), vec![(0, 0, h[0])]);
        let n01 = node_hash(&h[0], &h[1]);
        assert_eq!(f.append(h[1]), vec![(0, 1, h[1]), (1, 0, n01)]);
        assert_eq!(f.append(h[2]), vec![(0, 2, h[2])]);
        let n23 = node_hash(&h[2], &h[3]);
        let n0123 = node_hash(&n01, &n23);
        assert_eq!(
            f.append(h[3]),
            vec![(0, 3, h[3]), (1, 1, n23), (2, 0, n0123)]
        );
        assert_eq!(f.size(), 4);
        assert_eq!(f.root(), n0123);
    }

    #[test]
    fn trees_of_1_to_300_leaves_prove_every_inclusion_and_consistency() {
        const N: u64 = 300;
        let (stored, leaves, frontiers) = build(N);
        let mut roots = vec![empty_root()];
        for n in 1..=N {
            let r = Bounded {
                stored: &stored,
                size: n,
                reads: Cell::new(0),
            };
            let root = tree_hash(n, &r).unwrap();
            assert_eq!(root, reference_root(&leaves[..n as usize]), "size {n}");
            assert_eq!(root, frontiers[n as usize].root(), "size {n}");
            assert_eq!(r.reads.get(), u64::from(n.count_ones()), "size {n}");
            let loaded = Frontier::load(n, &r).unwrap();
            assert_eq!(loaded, frontiers[n as usize], "size {n}");
            roots.push(root);
        }
        for n in 1..=N {
            let bound = 2 * (64 - n.leading_zeros() as u64) + 2;
            for i in 0..n {
                let r = Bounded {
                    stored: &stored,
                    size: n,
                    reads: Cell::new(0),
                };
                let proof = inclusion_proof(i, n, &r).unwrap();
                assert!(
                    r.reads.get() <= bound,
                    "{} reads for ({i}, {n})",
                    r.reads.get()
                );
                let leaf = &leaves[i as usize];
                verify_inclusion(i, n, leaf, &proof, &roots[n as usize]).unwrap();
                // Tampering is checked on a quarter of the cases (time).
                if (i + n) % 4 != 0 {
                    continue;
                }
                assert!(
                    verify_inclusion(i, n, &leaf_hash(b"other"), &proof, &roots[n as usize])
                        .is_err()
                );
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_hash(first, first);
                    assert!(verify_inclusion(i, n, leaf, &bad, &roots[n as usize]).is_err());
                    assert!(verify_inclusion(i, n, leaf, &proof[1..], &roots[n as usize]).is_err());
                }
            }
            for m in 0..=n {
                let r = Bounded {
                    stored: &stored,
                    size: n,
                    reads: Cell::new(0),
                };
                let proof = consistency_proof(m, n, &r).unwrap();
                assert!(
                    r.reads.get() <= bound,
                    "{} reads for ({m}, {n})",
                    r.reads.get()
                );
                let (rm, rn) = (&roots[m as usize], &roots[n as usize]);
                verify_consistency(m, n, rm, rn, &proof).unwrap();
                if 0 < m && m < n && (m + n) % 4 == 0 {
                    assert!(verify_consistency(m, n, rn, rm, &proof).is_err());
                    assert!(verify_consistency(m, n, rm, rn, &proof[1..]).is_err());
                    let mut longer = proof.clone();
                    longer.push(*rn);
                    assert!(verify_consistency(m, n, rm, rn, &longer).is_err());
                    assert!(verify_consistency(m - 1, n, rm, rn, &proof).is_err());
                }
            }
        }
    }

    #[test]
    fn proofs_never_read_hashes_past_the_tree_size() {
        // A reader bounded at 77 leaves serves every proof within 77 leaves
        // and refuses those that need leaf 77 or later.
        let (stored, _, _) = build(100);
        let r = Bounded {
            stored: &stored,
            size: 77,
            reads: Cell::new(0),
        };
        assert!(tree_hash(78, &r).is_err());
        assert!(inclusion_proof(76, 77, &r).is_ok());
        assert!(consistency_proof(5, 78, &r).is_err());
    }

    #[test]
    fn edge_cases_of_verification() {
        let leaf = leaf_hash(b"x");
        assert_eq!(
            verify_inclusion(0, 0, &leaf, &[], &leaf),
            Err(TlogError::Proof(ProofCheck::IndexBeyondSize))
        );
        verify_inclusion(0, 1, &leaf, &[], &leaf).unwrap();
        assert_eq!(
            verify_inclusion(0, 1, &leaf, &[leaf], &leaf),
            Err(TlogError::Proof(ProofCheck::ProofTooLong))
        );
        let empty = empty_root();
        verify_consistency(0, 0, &empty, &empty, &[]).unwrap();
        verify_consistency(0, 5, &empty, &leaf, &[]).unwrap();
        assert_eq!(
            verify_consistency(0, 5, &leaf, &leaf, &[]),
            Err(TlogError::Proof(ProofCheck::NotEmptyRoot))
        );
        assert_eq!(
            verify_consistency(0, 5, &empty, &leaf, &[leaf]),
            Err(TlogError::Proof(ProofCheck::ProofNotEmpty))
        );
        assert_eq!(
            verify_consistency(3, 3, &leaf, &empty, &[]),
            Err(TlogError::Proof(ProofCheck::RootsDiffer))
        );
        assert_eq!(
            verify_consistency(4, 3, &leaf, &leaf, &[]),
            Err(TlogError::Proof(ProofCheck::SizesOutOfOrder))
        );
        assert_eq!(
            verify_consistency(2, 3, &leaf, &leaf, &[]),
            Err(TlogError::Proof(ProofCheck::EmptyProof))
        );
        let stored = Stored::new();
        assert!(inclusion_proof(3, 3, &stored).is_err());
        assert!(consistency_proof(4, 3, &stored).is_err());
        assert_eq!(consistency_proof(0, 3, &stored), Ok(Vec::new()));
        assert_eq!(consistency_proof(3, 3, &stored), Ok(Vec::new()));
        assert_eq!(
            tree_hash(1, &stored),
            Err(TlogError::MissingHash { level: 0, index: 0 })
        );
    }

    #[test]
    fn a_full_frontier_refuses_to_grow() {
        let mut f = Frontier {
            size: u64::MAX,
            hashes: vec![[0; 32]; 64],
        };
        assert!(f.append(leaf_hash(b"one too many")).is_empty());
        assert_eq!(f.size(), u64::MAX);
    }
}
