//! Support for demos, benchmarks and fuzzing, kept apart from the modules a
//! serving node runs.
//!
//! - [`federation`]: a national, regional and industry node and a gateway on
//!   loopback (`cpid demo`, the federation tests and benchmark).
//! - [`providers`]: sample providers in five provinces, each running the
//!   monitoring agent against its node (`cpid demo`).
//! - [`seed`]: synthetic records for benchmarks.
//! - [`knot`]: a Knot DNS secondary of a node, as a child process (the
//!   demo's national zone when `knotd` is installed).
//! - [`secondaries`]: Knot and NSD secondaries (and a Knot primary) in
//!   temporary directories, for the zone-transfer tests and benchmark.
//! - [`validators`]: Unbound and `delv` validating signed answers from
//!   servers on loopback under a private trust anchor, and Knot's online
//!   signer as the reference (the DNSSEC interop tests).
//! - [`fuzzing`]: fuzz entry points, replayed over their corpora by the tests.
//! - [`sample_apex`]: the apex of the small zones that tests and fuzz
//!   targets build by hand.

pub mod federation;
// The fuzz oracle's assertions are its job: a panic is how it reports a broken invariant.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod fuzzing;
pub mod knot;
pub mod providers;
// A harness for tests and benchmarks: a daemon that does not start stops the run with a message.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod secondaries;
pub mod seed;
// A harness for tests, as `secondaries`: a validator that does not start stops the test with a message.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
pub mod validators;

/// The apex of a hand-built test zone: `86.cpid.internal` at `serial`, its
/// name server `ns1.86.cpid.internal` at `ns_addr`, default timers.
pub fn sample_apex(
    serial: u32,
    ns_addr: std::net::IpAddr,
) -> Result<crate::dns::zone::ApexData, crate::dns::wire::WireError> {
    let apex = crate::dns::wire::WireName::parse("86.cpid.internal")?;
    Ok(crate::dns::zone::ApexData {
        name_servers: vec![(apex.prepend("ns1")?, vec![ns_addr])],
        hostmaster: apex.prepend("hostmaster")?,
        apex,
        timers: crate::dns::zone::SoaTimers::default(),
        serial,
        extra: vec![],
    })
}
