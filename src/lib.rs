//! cpid: the identifier registry and resolution server of a national
//! computing-power interconnection system.
//!
//! The tree follows the node's systems and its front doors:
//!
//! - [`ident`]: system B's data: the coding standard, records and their
//!   signatures, node keys and signing contexts, delegation records.
//! - [`registry`]: the one commit path for every change, the provider and
//!   delegation indexes, master-file export and import.
//! - [`store`]: the narrow `Store` trait; redb (durable group commit) and an
//!   in-memory backend that passes the same contract.
//! - [`dns`]: the DNS front door: wire format, hot tier, answer engine, the
//!   one response writer, UDP/TCP servers.
//! - [`resolution`]: the iterative verifying resolver, the caching gateway
//!   and the DNS client behind `cpid resolve`.
//! - [`api`]: the HTTP front door (axum), split by resource; RFC 9421 request
//!   signatures; the typed client.
//! - [`capacity`]: system C: signed status reports, live totals and the
//!   situation, data quality of descriptors and live status.
//! - [`trade`]: system A's transactions: `TX` records between buyers and
//!   providers, their signed steps, the capacity calendar.
//! - [`tlog`]: system E's transparency log: RFC 6962 Merkle hashing and
//!   proofs, C2SP signed notes, checkpoints, cosignatures and tiles.
//! - [`events`]: system E's security-event feed: one sink every system
//!   reports to, coalesced and written in batches, bounded and durable.
//! - [`agent`]: the provider's agent (`cpid agent`): its inventory, live
//!   host figures, durable sequence numbers and the reporting loop.
//! - [`clock`]: the one clock, injectable in tests.
//! - [`doctor`]: the risk assessment (`cpid doctor`, `GET /v1/admin/risk`):
//!   unsafe configuration and state, each finding with its fix.
//! - [`config`], [`node`]: configuration and a node put together.
//! - [`telemetry`]: Prometheus metrics, named once.
//! - [`testkit`]: the loopback federation behind `cpid demo`, benchmark
//!   seeding and fuzz entry points; not used by a serving node.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod capacity;
pub mod clock;
pub mod config;
pub mod dns;
pub mod doctor;
pub mod events;
pub mod ident;
pub mod node;
pub mod registry;
pub mod resolution;
pub mod select;
pub mod store;
pub mod telemetry;
pub mod testkit;
pub mod tlog;
pub mod trade;
