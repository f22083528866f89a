//! The one error type of the transparency-log library.
//!
//! Every parser and verifier in [`crate::tlog`] returns [`TlogError`]; the
//! variants say why, so a caller can tell a malformed input from a forged
//! one, and a forged one from a store that failed to answer.

use std::fmt;

/// Why a transparency-log operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlogError {
    /// The input (a note, key, checkpoint, tile path, bundle or a proof
    /// request) is not of the form its specification allows.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being read: "note", "verifier key", "checkpoint", …
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A known key's signature does not verify.
    #[error("bad signature by key {name}+{key_id:08x}")]
    BadSignature {
        /// The key name of the signature line.
        name: String,
        /// The key id of the signature line.
        key_id: u32,
    },
    /// No signature in the note (or the one asked about) is by a known key.
    #[error("no signature by a known key: {0}")]
    UnknownKey(String),
    /// A Merkle proof does not verify; the check that failed is named.
    #[error("proof does not verify: {0}")]
    Proof(ProofCheck),
    /// The hash reader has no stored hash at this address.
    #[error("no stored hash at level {level}, index {index}")]
    MissingHash {
        /// Level of the complete subtree.
        level: u8,
        /// Index of the subtree within its level.
        index: u64,
    },
    /// The hash reader's store failed.
    #[error("reading stored hashes: {0}")]
    Read(String),
}

impl TlogError {
    /// A [`TlogError::Malformed`] for `what`, with `reason`.
    pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> TlogError {
        TlogError::Malformed {
            what,
            reason: reason.into(),
        }
    }
}

/// The check of RFC 9162 §2.1.3.2 / §2.1.4.2 (or of an edge case around
/// them) that a proof failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofCheck {
    /// Inclusion: the leaf index is not below the tree size.
    IndexBeyondSize,
    /// Consistency: the first tree is larger than the second.
    SizesOutOfOrder,
    /// Consistency from a tree to itself or from the empty tree: the proof
    /// must be empty.
    ProofNotEmpty,
    /// Consistency from the empty tree: the first root is not the hash of
    /// the empty string.
    NotEmptyRoot,
    /// Consistency between equal sizes: the two roots differ.
    RootsDiffer,
    /// Consistency between different non-zero sizes: the proof is empty.
    EmptyProof,
    /// The proof has more hashes than the tree sizes allow.
    ProofTooLong,
    /// The proof has fewer hashes than the tree sizes need.
    ProofTooShort,
    /// Inclusion: the computed root is not the given root.
    RootMismatch,
    /// Consistency: the computed first root is not the given one.
    FirstRootMismatch,
    /// Consistency: the computed second root is not the given one.
    SecondRootMismatch,
}

impl fmt::Display for ProofCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProofCheck::IndexBeyondSize => "leaf index is not below the tree size",
            ProofCheck::SizesOutOfOrder => "first tree size is larger than the second",
            ProofCheck::ProofNotEmpty => "proof must be empty for these tree sizes",
            ProofCheck::NotEmptyRoot => "root of the empty tree is not SHA-256 of nothing",
            ProofCheck::RootsDiffer => "roots of equal tree sizes differ",
            ProofCheck::EmptyProof => "proof is empty",
            ProofCheck::ProofTooLong => "proof has more hashes than the tree sizes allow",
            ProofCheck::ProofTooShort => "proof has fewer hashes than the tree sizes need",
            ProofCheck::RootMismatch => "computed root does not match",
            ProofCheck::FirstRootMismatch => "computed first root does not match",
            ProofCheck::SecondRootMismatch => "computed second root does not match",
        })
    }
}
