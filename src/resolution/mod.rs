//! Resolution: finding and checking identifiers held by other nodes.
//!
//! - [`resolver`]: iterative resolution from the national node's key,
//!   verifying every delegation and record on the way down.
//! - [`gateway`]: the caching gateway (L1 memory, L2 redb, single-flight,
//!   prefetch, serve-stale) with its DNS and HTTP front doors.
//! - [`client`]: the DNS client behind `cpid resolve`.

pub mod client;
pub mod gateway;
pub mod resolver;
