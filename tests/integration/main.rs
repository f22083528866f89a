//! One integration-test binary (one link step) with a module per area.
// Tests stop on the first failure with a message; they may unwrap and index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod agent;
mod backup;
mod capacity;
mod cli;
mod common;
mod conformance;
mod dns_protocol;
mod dnssec;
mod doctor;
mod durability;
mod edns;
mod events;
mod federation;
mod fuzz_corpus;
mod http_api;
mod http_durability;
mod http_limits;
mod log;
mod malformed;
mod openapi;
mod page;
mod record_vectors;
mod registry;
mod resource_vectors;
mod rollup;
mod rrl;
mod scenarios;
mod secondaries;
mod select;
mod store;
mod tlog_vectors;
mod trade;
mod transfer;
mod validators;
mod vectors;
mod witness;
