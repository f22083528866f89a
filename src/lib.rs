//! cpid: the identifier registry and resolution server of a national
//! computing-power interconnection system.
//!
//! - [`api`]: the HTTP API (axum): signed registration, native and Handle.Net reads.
//! - [`httpsig`]: HTTP Message Signatures (RFC 9421) and Content-Digest (RFC 9530).
//! - [`identifier`]: the coding standard (`schema/identifier.md`) and the DNS mapping.
//! - [`keys`]: node keys (Ed25519, PKCS#8 PEM) and key ids.
//! - [`record`]: Handle-style values and the signed record (`schema/record.md`).
//! - [`store`]: the narrow `Store` trait and its redb implementation (group commit).
//! - [`registry`]: issuance and lifecycle of records.
//! - [`delegation`]: delegation records and the chain of trust.
//! - [`resolver`]: iterative resolution from the root key, verifying every link.
//! - [`gateway`]: the caching gateway (L1 memory, L2 redb, serve-stale).
//! - [`federation`]: national, regional, industry node and gateway on loopback (`cpid demo`).
//! - [`dns`]: wire format, hot tier, answer engine, UDP/TCP servers.
//! - [`zonefile`]: master-file export and record import.
//! - [`config`], [`node`]: configuration and a node put together.
//! - [`client`]: the DNS client behind `cpid resolve`.
//! - [`seed`]: synthetic records for benchmarks.
//! - [`telemetry`]: Prometheus metrics, named once.
#![forbid(unsafe_code)]

pub mod api;
pub mod client;
pub mod config;
pub mod delegation;
pub mod dns;
pub mod federation;
pub mod fuzzing;
pub mod gateway;
pub mod httpsig;
pub mod identifier;
pub mod keys;
pub mod node;
pub mod record;
pub mod registry;
pub mod resolver;
pub mod seed;
pub mod store;
pub mod telemetry;
pub mod zonefile;
