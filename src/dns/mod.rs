//! DNS serving: the wire format, the hot tier of ready answers, the answer
//! engine, and the UDP/TCP servers.
//!
//! A query travels socket → [`engine::respond`] (parse, hot-tier lookup,
//! copy of ready bytes) → socket. Nothing on that path touches disk.

pub mod engine;
pub mod mapping;
pub mod server;
pub mod wire;
pub mod zone;
