//! AXFR of the seeded zone from cpid into a fresh Knot secondary against
//! Knot → Knot with the same zone (the exported master file), in
//! interleaved rounds.

use cpid::testkit::secondaries::{AxfrReport, axfr_into_knot, knot_primary};

use crate::common::{cpu_seconds, metric};
use crate::primary::{Primary, Seeded};
use crate::{Options, median};

struct Round {
    report: AxfrReport,
    /// The primary's CPU seconds during the transfer.
    cpu: f64,
}

fn line(who: &str, r: &Round) -> String {
    format!(
        "{who:<12} wall {:>6.2} s  knot says {:>5.2} s, {:>6} messages, {:>6.1} MB  primary CPU {:>5.2} s",
        r.report.wall.as_secs_f64(),
        r.report.seconds.unwrap_or(f64::NAN),
        r.report.messages.unwrap_or(0),
        r.report.bytes.unwrap_or(0) as f64 / 1e6,
        r.cpu
    )
}

pub fn run(o: &Options, seeded: &Seeded) {
    println!(
        "\n## AXFR of {} identifiers into a Knot secondary",
        seeded.names
    );
    let cpid = Primary::start(seeded, &[], false);
    let cpid_serial = cpid.serial();
    let knot = knot_primary(&cpid.zone, &seeded.zone_text(), Some(&cpid.key), &[]);
    let knot_serial = crate::primary::soa_serial(knot.addr(), &cpid.zone).unwrap();
    println!(
        "zone {}: cpid serial {cpid_serial}, Knot primary (exported zone) serial {knot_serial}",
        cpid.zone
    );
    let api = cpid.api();
    let mut rounds: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for i in 0..o.rounds {
        let before = cpu_seconds(cpid.pid());
        let text = api.get("/metrics").unwrap().text;
        let report = axfr_into_knot(cpid.dns, &cpid.zone, Some(&cpid.key), cpid_serial);
        let r = Round {
            report,
            cpu: cpu_seconds(cpid.pid()) - before,
        };
        let after = api.get("/metrics").unwrap().text;
        let sent = metric(&after, "cpid_zone_transfer_messages_total")
            - metric(&text, "cpid_zone_transfer_messages_total");
        println!(
            "round {} {}  (cpid counted {sent} messages)",
            i + 1,
            line("cpid → knot", &r)
        );
        rounds[0].push(r);

        let pid = knot.pid().unwrap();
        let before = cpu_seconds(pid);
        let report = axfr_into_knot(knot.addr(), &cpid.zone, Some(&cpid.key), knot_serial);
        let r = Round {
            report,
            cpu: cpu_seconds(pid) - before,
        };
        println!("round {} {}", i + 1, line("knot → knot", &r));
        rounds[1].push(r);
    }
    let wall = |k: usize| -> Vec<f64> {
        rounds[k]
            .iter()
            .map(|r| r.report.wall.as_secs_f64())
            .collect()
    };
    let knot_s =
        |k: usize| -> Vec<f64> { rounds[k].iter().filter_map(|r| r.report.seconds).collect() };
    let cpu = |k: usize| -> Vec<f64> { rounds[k].iter().map(|r| r.cpu).collect() };
    let ratios: Vec<String> = rounds[0]
        .iter()
        .zip(&rounds[1])
        .map(|(a, b)| {
            format!(
                "{:.2}",
                a.report.wall.as_secs_f64() / b.report.wall.as_secs_f64()
            )
        })
        .collect();
    println!(
        "AXFR median wall: cpid → knot {:.2} s, knot → knot {:.2} s, ratio {:.2} (per round {}); \
         knot's transfer time {:.2} s vs {:.2} s; primary CPU {:.2} s vs {:.2} s (ratio {:.2})",
        median(&wall(0)),
        median(&wall(1)),
        median(&wall(0)) / median(&wall(1)),
        ratios.join(" / "),
        median(&knot_s(0)),
        median(&knot_s(1)),
        median(&cpu(0)),
        median(&cpu(1)),
        median(&cpu(0)) / median(&cpu(1)),
    );
}
