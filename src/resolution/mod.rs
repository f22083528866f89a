//! Resolution: finding and checking identifiers held by other nodes.
//!
//! - [`resolver`]: iterative resolution from the national node's key,
//!   verifying every delegation and record on the way down.
//! - [`gateway`]: the caching gateway (L1 memory, L2 redb, single-flight,
//!   prefetch, serve-stale) with its DNS and HTTP front doors.
//! - [`client`]: the DNS client behind `cpid resolve`.
//! - [`directory`]: records of other nodes as a node needs them (a
//!   buyer's key, a federated selection's candidates), verified and cached.

pub mod client;
pub mod directory;
pub mod gateway;
pub mod resolver;
