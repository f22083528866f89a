//! cpid against Knot's `mod-onlinesign` (Ed25519) on the same zone and the
//! same query files, both asked with DO: answers per second of server CPU
//! at saturation, and CPU µs per answer at the fixed rate. Both servers
//! run for the whole section (the one not being asked is idle); each
//! round asks them in turn, the order swapped every round.
//!
//! Knot signs on the fly and keeps nothing between queries, so it needs
//! no warm-up; cpid was warmed with DO before (`Cpid::warm`). Knot denies
//! with NSEC "black lies" (NOERROR, an NSEC at the query name), cpid with
//! compact denial (RFC 9824: the same, with NXNAME in the bitmap): one
//! signed NSEC per answer either way.

use crate::dnsperf::{Load, Run, measure};
use crate::queries::Seeded;
use crate::servers::{Cpid, Knot, Server};
use crate::{MIXES, Mix, Options, median, verdict};

/// cpid's signed NXDOMAIN answers per core, at least this many times Knot's.
const GOAL_NX: f64 = 2.0;

/// One server's runs of one mix in one round.
struct Pair {
    saturation: Run,
    fixed: Run,
}

pub fn run(o: &Options, seeded: &Seeded, node: &Cpid) {
    let mixes = o.mixes(&MIXES);
    println!(
        "\n## cpid against Knot mod-onlinesign (Ed25519), queries with DO: \
         saturation and {} queries/s, {} s runs",
        o.knot_rate, o.seconds
    );
    let fixed_load = Load::Fixed(o.knot_rate);
    let knot = Knot::start(seeded);
    let servers: [&dyn Server; 2] = [&knot, node];
    // Per mix, per server (Knot, cpid): one pair per round.
    let mut runs: Vec<(Mix, [Vec<Pair>; 2])> = mixes
        .iter()
        .map(|m| (*m, [Vec::new(), Vec::new()]))
        .collect();
    for round in 0..o.rounds {
        for (mix, per_server) in &mut runs {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for s in order {
                let server = servers[s];
                let queries = seeded.queries(*mix);
                let saturation = measure(server, queries, o.seconds, true, Load::Saturation);
                let fixed = measure(server, queries, o.seconds, true, fixed_load);
                println!(
                    "round {} {:<6} {:<4} saturation {}\n{:>16} at {}/s {}{}",
                    round + 1,
                    mix.name(),
                    server.name(),
                    saturation.line(),
                    "",
                    o.knot_rate,
                    fixed.line(),
                    fixed.flag(fixed_load)
                );
                per_server[s].push(Pair { saturation, fixed });
            }
        }
    }
    println!(
        "\n| mix | Knot answers/s at saturation (CPU share) | cpid | Knot answers per core-second | cpid | cpid ÷ Knot per core | Knot µs/answer at {}/s | cpid | cpid ÷ Knot CPU per answer | goal |",
        o.knot_rate
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (mix, [k, c]) in &runs {
        let med = |v: &[Pair], f: fn(&Pair) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
        let ratio = |f: fn(&Pair) -> f64| {
            median(
                &c.iter()
                    .zip(k)
                    .map(|(c, k)| f(c) / f(k))
                    .collect::<Vec<_>>(),
            )
        };
        let per_core: fn(&Pair) -> f64 = |p| p.saturation.per_core();
        let us: fn(&Pair) -> f64 = |p| p.fixed.us_per_answer();
        let qps: fn(&Pair) -> f64 = |p| p.saturation.qps();
        let share: fn(&Pair) -> f64 = |p| p.saturation.share();
        let core_ratio = ratio(per_core);
        // A fixed-rate figure taken over capacity is a saturation figure.
        let mark = |v: &[Pair]| {
            if v.iter().any(|p| p.fixed.over_capacity(fixed_load)) {
                " (over capacity)"
            } else {
                ""
            }
        };
        let goal = match mix {
            Mix::Nx => format!("≥ {GOAL_NX}: {}", verdict(core_ratio >= GOAL_NX)),
            _ => "—".to_string(),
        };
        println!(
            "| {} | {:.0} ({:.2}) | {:.0} ({:.2}) | {:.0} | {:.0} | **{:.2}** | {:.2}{} | {:.2}{} | {:.2} | {goal} |",
            mix.name(),
            med(k, qps),
            med(k, share),
            med(c, qps),
            med(c, share),
            med(k, per_core),
            med(c, per_core),
            core_ratio,
            med(k, us),
            mark(k),
            med(c, us),
            mark(c),
            ratio(us),
        );
    }
}
