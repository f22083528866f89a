//! What response-rate limiting costs when it limits nothing: two cpid
//! nodes on the same store, one with RRL enabled and a rate no flow
//! reaches (`rate_limit = 1000000`, no whitelist, so every answer is
//! looked up in its table and passed), one with `enabled = false`; queries
//! with DO at the fixed rate, the two runs of a mix back to back and their
//! order swapped every round. Both nodes are warmed with DO first.

use crate::dnsperf::{Load, Run, measure};
use crate::queries::Seeded;
use crate::servers::Cpid;
use crate::{Mix, Options, median, verdict};

/// RRL on and idle may cost this much more CPU per answer than RRL off.
const GOAL: f64 = 1.05;

const RRL_ON: &str = "[dns.rrl]\nenabled = true\nrate_limit = 1000000\n";
const RRL_OFF: &str = "[dns.rrl]\nenabled = false\n";

fn rrl(node: &Cpid, action: &str) -> f64 {
    node.metric(&format!("cpid_rrl_total{{action=\"{action}\"}}"))
}

pub fn run(o: &Options, seeded: &Seeded) {
    let mixes = o.mixes(&[Mix::Pos, Mix::Nodata]);
    if mixes.is_empty() {
        return;
    }
    println!(
        "\n## RRL enabled and idle against RRL off: cpid, queries with DO, {} queries/s, {} s runs",
        o.rate, o.seconds
    );
    let nodes = [
        Cpid::start(seeded, "rrl-on", RRL_ON),
        Cpid::start(seeded, "rrl-off", RRL_OFF),
    ];
    for n in &nodes {
        n.warm(seeded, &mixes);
    }
    let passed0 = rrl(&nodes[0], "passed");
    let mut runs: Vec<(Mix, [Vec<Run>; 2])> = mixes
        .iter()
        .map(|m| (*m, [Vec::new(), Vec::new()]))
        .collect();
    for round in 0..o.rounds {
        for (mix, per_node) in &mut runs {
            let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for i in order {
                let load = Load::Fixed(o.rate);
                let r = measure(&nodes[i], seeded.queries(*mix), o.seconds, true, load);
                println!(
                    "round {} {:<6} {:<7} {}{}",
                    round + 1,
                    mix.name(),
                    if i == 0 { "RRL on" } else { "RRL off" },
                    r.line(),
                    r.flag(load)
                );
                per_node[i].push(r);
            }
        }
    }
    // Summed over no series at all, the sum is -0.0.
    let limited = (rrl(&nodes[0], "slipped") + rrl(&nodes[0], "dropped")).abs();
    let answered: u64 = runs
        .iter()
        .flat_map(|(_, [on, _])| on)
        .map(|r| r.report.completed)
        .sum();
    println!(
        "RRL on: {:.0} answers passed by the limiter in the measured runs ({answered} answered), {limited:.0} slipped or dropped",
        rrl(&nodes[0], "passed") - passed0
    );
    assert_eq!(limited, 0.0, "RRL limited answers: the comparison is void");
    println!("\n| mix | RRL off µs/answer | RRL on, idle | on ÷ off | goal |");
    println!("|---|---:|---:|---:|---|");
    for (mix, [on, off]) in &runs {
        let us = |v: &[Run]| median(&v.iter().map(Run::us_per_answer).collect::<Vec<_>>());
        let ratio = median(
            &on.iter()
                .zip(off)
                .map(|(a, b)| a.us_per_answer() / b.us_per_answer())
                .collect::<Vec<_>>(),
        );
        println!(
            "| {} | {:.2} | {:.2} | **{:.3}** | ≤ {GOAL}: {} |",
            mix.name(),
            us(off),
            us(on),
            ratio,
            verdict(ratio <= GOAL)
        );
    }
}
