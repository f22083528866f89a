//! One integration-test binary (one link step) with a module per area.

mod cli;
mod common;
mod conformance;
mod dns_protocol;
mod durability;
mod federation;
mod fuzz_corpus;
mod http_api;
mod http_durability;
mod malformed;
mod openapi;
mod record_vectors;
mod registry;
mod resource_vectors;
mod scenarios;
mod store;
mod vectors;
