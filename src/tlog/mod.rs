//! System E's transparency log: the formats and Merkle math (no I/O), and
//! the node's log built on them.
//!
//! - [`merkle`]: RFC 9162 §2.1 (RFC 6962) hashing, the append frontier,
//!   tree roots, inclusion and consistency proofs and their verification,
//!   all from stored hashes of complete subtrees read through a
//!   [`merkle::HashReader`].
//! - [`note`]: C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys,
//!   their verifier and signer key texts.
//! - [`checkpoint`]: the C2SP checkpoint body (c2sp.org/tlog-checkpoint).
//! - [`cosign`]: C2SP `cosignature/v1` witness cosignatures
//!   (c2sp.org/tlog-cosignature).
//! - [`tile`]: C2SP tile paths, tile contents and entry bundles
//!   (c2sp.org/tlog-tiles).
//! - [`entry`]: what a leaf holds (`schema/log.md`).
//! - [`log`]: the node's log: integration of committed leaves, signed
//!   checkpoints, proofs and tiles read from the store.
//! - [`witness`]: C2SP `tlog-witness` between nodes: cosigning the
//!   parent's and children's checkpoints, submitting this node's own.
//! - [`audit`]: the auditor behind `cpid audit`.
//! - [`error`]: the one error type of the formats, [`error::TlogError`].
//!
//! Every parser here is strict and panic-free on any input.

pub mod audit;
pub mod checkpoint;
pub mod cosign;
pub mod entry;
pub mod error;
pub mod log;
pub mod merkle;
pub mod note;
pub mod tile;
pub mod witness;
