//! System E's transparency log, as a pure library: the formats and the
//! Merkle math, with no store, no network and no clock.
//!
//! - [`merkle`]: RFC 9162 §2.1 (RFC 6962) hashing, the append frontier,
//!   tree roots, inclusion and consistency proofs and their verification,
//!   all from stored hashes of complete subtrees read through a
//!   [`merkle::HashReader`].
//! - [`error`]: the one error type, [`error::TlogError`].
//!
//! Every parser here is strict and panic-free on any input.

pub mod error;
pub mod merkle;
