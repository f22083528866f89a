//! Identification (system B): what an identifier is and what proves it.
//!
//! - [`identifier`]: the coding standard (`schema/identifier.md`) and the
//!   DNS name mapping.
//! - [`record`]: Handle-style values, the record, its canonical encoding and
//!   signature (`schema/record.md`).
//! - [`keys`]: Ed25519 node keys, PEM files, key ids, and the closed set of
//!   signing contexts.
//! - [`delegation`]: delegation records and the chain of trust.
//! - [`resource`]: the capacity standard, what a `CP.RESOURCE` value holds
//!   (`schema/resource.md`).
//! - [`values`]: the value rules every way in obeys.
//!
//! Nothing here touches the store, the network or the clock.

pub mod delegation;
pub mod identifier;
pub mod keys;
pub mod record;
pub mod resource;
pub mod values;
