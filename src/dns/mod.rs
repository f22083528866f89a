//! DNS serving: the wire format, the hot tier of ready answers, the query
//! checks, the answer engine, the one response writer, and the UDP/TCP
//! servers.
//!
//! A query travels socket → [`query::check`] → [`engine::respond`]
//! (hot-tier lookup) → [`response::Response`] (copy of ready bytes) →
//! socket. Nothing on that path touches disk. The gateway answers through
//! the same [`query::check`] and [`response::Response`]. [`xfr`] serves zone
//! transfers to secondaries, [`notify`] tells them of changes, and
//! [`tsig`] signs and checks both (RFC 8945). [`cookie`] (RFC 7873/9018)
//! and [`rrl`] (response-rate limiting on UDP) are the node's safeguards
//! on that path; [`network`] is the one address-network type of the
//! configuration (transfer ACLs, the RRL whitelist). [`dnssec`] is the
//! DNSSEC arithmetic (RFC 4034, RFC 8080, RFC 9824) and [`signing`] puts
//! it on the answer path: RRSIGs kept beside the prepared RRsets, compact
//! denial, DS in referrals.

pub mod cookie;
pub mod dnssec;
pub mod engine;
pub mod mapping;
pub mod metrics;
pub mod network;
pub mod notify;
pub mod query;
pub mod response;
pub mod rrl;
pub mod server;
mod signed_diff;
pub mod signing;
pub mod tcp;
pub mod tsig;
pub mod wire;
pub mod xfr;
pub mod zone;
