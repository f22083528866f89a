//! Zone transfer performance: a cpid node as the hidden primary of stock
//! Knot and NSD secondaries (README "Serving a zone from stock
//! secondaries"), against Knot as the primary of the same zone.
//!
//!     cargo bench --bench transfer -- [--names N] [--rounds R]
//!         [--only axfr|propagation|ixfr|query-cost]
//!         [--changes C] [--rate CHANGES_PER_S] [--settings default|tuned|both]
//!         [--qps Q] [--seconds S] [--signed]
//!
//! Four figures, each with its reference measured in the same run:
//!
//! - **axfr**: AXFR of an N-identifier zone (`cpid bench seed`, default
//!   100 000) from cpid into a fresh Knot secondary, and of the same zone
//!   (`cpid zone export`) from a Knot primary into another fresh Knot
//!   secondary, in interleaved rounds: wall time from starting the
//!   secondary to it serving the serial, Knot's own transfer time,
//!   messages and bytes (its log), and the primary's CPU seconds (/proc).
//! - **propagation**: registrations acknowledged by the node's HTTP API
//!   (201) at a fixed rate, and the time until each new identifier's TXT
//!   answer is visible at a Knot and an NSD secondary (polled over UDP):
//!   p50/p99 per secondary and for both, with the harness's default
//!   secondary settings and with the tuned ones (`Settings::Tuned`).
//! - **ixfr**: the bytes of the IXFR response for one changed identifier
//!   in a 1 000- and an N-identifier zone, broken down into header and
//!   question, SOAs, removed and added records, and TSIG.
//! - **query-cost**: CPU µs per UDP answer of the node's UDP threads at a
//!   fixed query rate, in interleaved windows with and without an AXFR
//!   running in a loop.
//!
//! The zone is unsigned (`[dns.dnssec] enabled = false`), the one Knot
//! sends Knot; `--signed` signs it for the ixfr and propagation sections,
//! whose IXFRs then carry the RRSIGs and NSECs that changed.
//!
//! Every daemon runs in its own temporary directory on reserved loopback
//! ports and is stopped (and the directory removed) when its section ends,
//! also when an assertion stops the bench.

// A benchmark is a test harness: it stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../common/mod.rs"]
#[allow(dead_code)]
mod common;

mod axfr;
mod ixfr;
mod primary;
mod propagation;
mod query_cost;

use cpid::testkit::secondaries::Settings;

pub struct Options {
    pub names: u64,
    pub rounds: usize,
    pub only: Option<String>,
    pub changes: usize,
    pub rate: f64,
    pub settings: Vec<Settings>,
    pub qps: u64,
    pub seconds: f64,
    pub signed: bool,
}

fn options() -> Options {
    let mut o = Options {
        names: 100_000,
        rounds: 3,
        only: None,
        changes: 1000,
        rate: 20.0,
        settings: vec![Settings::Default, Settings::Tuned],
        qps: 5000,
        seconds: 8.0,
        signed: false,
    };
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i + 1).cloned().unwrap_or_default();
    for (i, a) in args.iter().enumerate() {
        match a.as_str() {
            "--names" => o.names = arg(i).parse().unwrap_or(o.names),
            "--rounds" => o.rounds = arg(i).parse().unwrap_or(o.rounds),
            "--only" => o.only = Some(arg(i)),
            "--changes" => o.changes = arg(i).parse().unwrap_or(o.changes),
            "--rate" => o.rate = arg(i).parse().unwrap_or(o.rate),
            "--qps" => o.qps = arg(i).parse().unwrap_or(o.qps),
            "--seconds" => o.seconds = arg(i).parse().unwrap_or(o.seconds),
            "--signed" => o.signed = true,
            "--settings" => {
                o.settings = match arg(i).as_str() {
                    "default" => vec![Settings::Default],
                    "tuned" => vec![Settings::Tuned],
                    _ => vec![Settings::Default, Settings::Tuned],
                }
            }
            _ => {}
        }
    }
    o
}

pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let o = options();
    for tool in ["knotd", "knotc", "nsd"] {
        assert!(
            cpid::testkit::secondaries::find_tool(tool).is_some(),
            "{tool} is not installed (apt-get install knot nsd)"
        );
    }
    let wants = |s: &str| o.only.as_deref().is_none_or(|only| only == s);
    println!(
        "zone transfer benchmark: {} identifiers, {} rounds, {} ({})",
        o.names,
        o.rounds,
        if o.signed { "signed" } else { "unsigned" },
        o.only.as_deref().unwrap_or("all sections")
    );
    let seeded = primary::Seeded::new(o.names);
    if wants("axfr") {
        axfr::run(&o, &seeded);
    }
    if wants("ixfr") {
        let small = primary::Seeded::new(1000);
        ixfr::run(&[&small, &seeded], o.signed);
    }
    if wants("query-cost") {
        query_cost::run(&o, &seeded);
    }
    if wants("propagation") {
        propagation::run(&o, &seeded);
    }
}
