//! What on-line DNSSEC signing (`[dns.dnssec]`, Ed25519, RFC 8080; compact
//! denial, RFC 9824) costs a node's answers, against its own unsigned
//! answers and against Knot's `mod-onlinesign` on the same zone, the way
//! `compare.py` measures servers: the server pinned to CPU 0, dnsperf to
//! CPU 1, the server's CPU time (utime + stime, `/proc/PID/stat`) read
//! around each dnsperf run, the answered count from dnsperf's own report.
//!
//!     cargo bench --bench dnssec -- [--count N] [--rounds R] [--seconds S]
//!         [--rate QPS] [--knot-rate QPS]
//!         [--only signed|knot|rrl|startup|pos|nx|nodata,…]
//!
//! `--only` takes section names and query mixes, comma-separated: `--only
//! knot,nx` runs the Knot section on NXDOMAIN queries only. Defaults: 100 000
//! identifiers, 3 rounds, 6 s per run, a fixed rate of 30 000 queries a
//! second, and 5 000 for the section with Knot (see below).
//!
//! One store of N identifiers is seeded (`cpid bench seed`) and exported
//! (`cpid zone export`, DNSKEY lines stripped for Knot, which makes its
//! own key). Three query files of 200 000 lines are drawn from the zone
//! with a fixed seed, as `compare.py` draws them: **pos**, existing names
//! with a type they have; **nx**, made-up names under existing parents
//! (a pool of 20 000); **nodata**, existing names with a type they lack.
//!
//! Every node is warmed before it is measured: one dnsperf pass over each
//! query file with DO, so the RRSIGs that signing on first use makes are
//! made, and the denial cache is filled, before the clock starts. Each
//! measured run also reports the signatures the node made during it
//! (`cpid_dnssec_signatures_total`): after the warm-up a positive answer
//! should make none; a denial makes one when its slot in the fixed denial
//! table held another name's signature.
//!
//! Four sections, each with its reference measured in the same rounds
//! (runs interleaved, medians over rounds):
//!
//! - **signed**: one cpid, each mix with DO against the same mix without
//!   DO (EDNS on, so the DO bit is the only difference), at the fixed
//!   rate: CPU µs per answer, signed ÷ unsigned. Goal for pos: ≤ 1.2.
//! - **knot**: Knot 3.x with `mod-onlinesign` (policy `ed25519`) against
//!   cpid, both asked with DO: answers per second of server CPU at
//!   saturation (dnsperf without `-Q`; answers ÷ server CPU seconds, which
//!   is `compare.py`'s QPS ÷ CPU share) and CPU µs per answer at a fixed
//!   rate, `--knot-rate`: Knot makes a signature for every answer and
//!   tops out between 10 000 and 20 000 signed answers a second on one core
//!   of this machine, so at 30 000/s it would be measured at saturation
//!   twice (a run that answers under 95 % of its rate is marked).
//!   Goal for nx: cpid ≥ 2× Knot's answers per core.
//! - **rrl**: response-rate limiting enabled but idle (no whitelist,
//!   `rate_limit = 1000000`, so every answer is looked at and none is
//!   limited) against `enabled = false`, queries with DO, pos and nodata:
//!   CPU µs per answer, on ÷ off. Goal: ≤ 1.05.
//! - **startup**: from spawning `cpid serve` (pinned to CPU 0) until it
//!   answers an SOA query, and its resident memory (VmRSS) a second later,
//!   with signing on (the default) against `[dns.dnssec] enabled = false`,
//!   the same store, starts interleaved (after one untimed start).
//!   Goal: on ÷ off ≤ 1.10 (the issue sets it at 1 000 000 identifiers:
//!   `--only startup --count 1000000`).
//!
//! Reading the tables: "µs/answer" is server CPU per answered query at the
//! fixed rate, the steadiest figure on a shared machine; "answers/core-s"
//! is what one fully used core would answer at saturation; ratios are
//! medians of the per-round ratios, so a noisy round moves them less than
//! it moves the medians of the raw figures. `/proc` counts CPU in 10 ms
//! ticks: at 30 000 answers/s and 6 s that is about ±1–2 % per run.
//!
//! Servers run in their own temporary directories on reserved loopback
//! ports and are stopped when their section ends, also when an assertion
//! stops the bench. dnsperf, taskset and knotd must be installed: a
//! missing one stops the bench at once.

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

mod dnsperf;
mod knot;
mod queries;
mod rrl;
mod servers;
mod signed;
mod startup;

use cpid::testkit::secondaries::find_tool;

/// The query mixes, in the order the tables list them.
pub const MIXES: [Mix; 3] = [Mix::Pos, Mix::Nx, Mix::Nodata];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    Pos,
    Nx,
    Nodata,
}

impl Mix {
    pub fn name(self) -> &'static str {
        match self {
            Mix::Pos => "pos",
            Mix::Nx => "nx",
            Mix::Nodata => "nodata",
        }
    }
}

const SECTIONS: [&str; 4] = ["signed", "knot", "rrl", "startup"];

pub struct Options {
    pub count: u64,
    pub rounds: usize,
    pub seconds: u32,
    pub rate: u32,
    pub knot_rate: u32,
    sections: Vec<String>,
    mixes: Vec<Mix>,
}

impl Options {
    fn parse() -> Options {
        let mut o = Options {
            count: 100_000,
            rounds: 3,
            seconds: 6,
            rate: 30_000,
            knot_rate: 5_000,
            sections: Vec::new(),
            mixes: Vec::new(),
        };
        let args: Vec<String> = std::env::args().collect();
        let arg = |i: usize| args.get(i + 1).cloned().unwrap_or_default();
        for (i, a) in args.iter().enumerate() {
            match a.as_str() {
                "--count" => o.count = arg(i).parse().expect("--count N"),
                "--rounds" => o.rounds = arg(i).parse().expect("--rounds R"),
                "--seconds" => o.seconds = arg(i).parse().expect("--seconds S"),
                "--rate" => o.rate = arg(i).parse().expect("--rate QPS"),
                "--knot-rate" => o.knot_rate = arg(i).parse().expect("--knot-rate QPS"),
                "--only" => {
                    for word in arg(i).split(',').filter(|w| !w.is_empty()) {
                        if let Some(m) = MIXES.iter().find(|m| m.name() == word) {
                            o.mixes.push(*m);
                        } else if SECTIONS.contains(&word) {
                            o.sections.push(word.to_string());
                        } else {
                            panic!("--only {word}: not one of {SECTIONS:?} or pos, nx, nodata");
                        }
                    }
                }
                _ => {}
            }
        }
        assert!(o.rounds > 0 && o.seconds > 0 && o.rate > 0 && o.knot_rate > 0);
        o
    }

    pub fn wants(&self, section: &str) -> bool {
        self.sections.is_empty() || self.sections.iter().any(|s| s == section)
    }

    /// The mixes to run of those a section measures.
    pub fn mixes(&self, of: &[Mix]) -> Vec<Mix> {
        of.iter()
            .copied()
            .filter(|m| self.mixes.is_empty() || self.mixes.contains(m))
            .collect()
    }
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

/// "ok" or "MISSED" for a figure against its goal.
pub fn verdict(met: bool) -> &'static str {
    if met { "ok" } else { "MISSED" }
}

fn main() {
    let o = Options::parse();
    for tool in ["dnsperf", "taskset", "knotd"] {
        assert!(
            find_tool(tool).is_some(),
            "{tool} is not installed (apt-get install dnsperf util-linux knot)"
        );
    }
    println!(
        "DNSSEC benchmark: {} identifiers, {} rounds × {} s, fixed rate {}/s; \
         servers on CPU 0, dnsperf on CPU 1 ({})",
        o.count,
        o.rounds,
        o.seconds,
        o.rate,
        if o.sections.is_empty() {
            "all sections".to_string()
        } else {
            o.sections.join(", ")
        }
    );
    let needs_zone = ["signed", "knot", "rrl"].iter().any(|s| o.wants(s));
    let seeded = queries::Seeded::new(o.count, needs_zone);
    if o.wants("signed") || o.wants("knot") {
        // One node for both sections: warmed once, the same process.
        let node = servers::Cpid::start(&seeded, "cpid", servers::BENCH_CONF);
        node.warm(&seeded, &o.mixes(&MIXES));
        if o.wants("signed") {
            signed::run(&o, &seeded, &node);
        }
        if o.wants("knot") {
            knot::run(&o, &seeded, &node);
        }
    }
    if o.wants("rrl") {
        rrl::run(&o, &seeded);
    }
    if o.wants("startup") {
        startup::run(&o, &seeded);
    }
}
