//! Signed against unsigned answers of one cpid: each mix asked with DO and
//! the same queries without DO (EDNS on, so only the DO bit differs), at
//! the fixed rate, the two runs of a mix back to back and their order
//! swapped every round. The node was warmed with DO before (`Cpid::warm`).

use crate::dnsperf::{Load, Run, measure};
use crate::queries::Seeded;
use crate::servers::Cpid;
use crate::{MIXES, Mix, Options, median, verdict};

/// Signed positive answers may cost this much more CPU than unsigned ones.
const GOAL_POS: f64 = 1.2;

pub fn run(o: &Options, seeded: &Seeded, node: &Cpid) {
    let mixes = o.mixes(&MIXES);
    println!(
        "\n## Signed ÷ unsigned: one cpid, queries with DO against the same without, {} queries/s, {} s runs",
        o.rate, o.seconds
    );
    // Per mix: (signed, unsigned) runs, one of each per round.
    let mut runs: Vec<(Mix, Vec<Run>, Vec<Run>)> =
        mixes.iter().map(|m| (*m, Vec::new(), Vec::new())).collect();
    for round in 0..o.rounds {
        for (mix, signed, unsigned) in &mut runs {
            let order = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for dnssec in order {
                let load = Load::Fixed(o.rate);
                let r = measure(node, seeded.queries(*mix), o.seconds, dnssec, load);
                println!(
                    "round {} {:<6} {:<5} {}{}",
                    round + 1,
                    mix.name(),
                    if dnssec { "DO" } else { "no DO" },
                    r.line(),
                    r.flag(load)
                );
                if dnssec {
                    signed.push(r);
                } else {
                    unsigned.push(r);
                }
            }
        }
    }
    println!(
        "\n| mix | unsigned µs/answer | signed µs/answer | signed ÷ unsigned | signatures made per signed answer | bytes per answer, unsigned → signed | goal |"
    );
    println!("|---|---:|---:|---:|---:|---:|---|");
    for (mix, signed, unsigned) in &runs {
        let us = |v: &[Run]| median(&v.iter().map(Run::us_per_answer).collect::<Vec<_>>());
        let ratio = median(
            &signed
                .iter()
                .zip(unsigned)
                .map(|(s, u)| s.us_per_answer() / u.us_per_answer())
                .collect::<Vec<_>>(),
        );
        let sigs = median(
            &signed
                .iter()
                .filter_map(Run::sigs_per_answer)
                .collect::<Vec<_>>(),
        );
        let bytes = |v: &[Run]| {
            median(
                &v.iter()
                    .map(|r| r.report.response_bytes)
                    .collect::<Vec<_>>(),
            )
        };
        let goal = match mix {
            Mix::Pos => format!("≤ {GOAL_POS}: {}", verdict(ratio <= GOAL_POS)),
            _ => "—".to_string(),
        };
        println!(
            "| {} | {:.2} | {:.2} | **{:.2}** | {:.4} | {:.0} → {:.0} | {goal} |",
            mix.name(),
            us(unsigned),
            us(signed),
            ratio,
            sigs,
            bytes(unsigned),
            bytes(signed)
        );
    }
}
