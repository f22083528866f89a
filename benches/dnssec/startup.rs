//! Start-up with signing on against `[dns.dnssec] enabled = false`: the
//! time from spawning `cpid serve` (pinned to CPU 0) until it answers an
//! SOA query over UDP (polled every 10 ms), and its resident memory
//! (VmRSS) a second after that. Both settings start over the same copy of
//! the store, one after the other, the order swapped every round, after
//! one untimed start that makes the node's files and warms the page cache.

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cpid::testkit::secondaries::{loopback, reserve_port};

use crate::queries::Seeded;
use crate::servers::{BENCH_CONF, answers_soa, spawn_cpid};
use crate::{Options, median, verdict};

/// Start-up with signing on may take this much longer than with it off.
const GOAL: f64 = 1.10;

struct Start {
    /// Spawn to first answered SOA query, seconds.
    ready: f64,
    /// cpid's own "ready in" (opening the store to serving), seconds.
    own: f64,
    /// VmRSS a second after the first answer, MiB.
    rss_mib: f64,
}

pub fn run(o: &Options, seeded: &Seeded) {
    println!(
        "\n## Start-up at {} identifiers: signing on against [dns.dnssec] enabled = false",
        seeded.count
    );
    let dir = seeded.copy();
    let data = dir.path().join("data");
    let on = dir.path().join("on.toml");
    let off = dir.path().join("off.toml");
    std::fs::write(&on, BENCH_CONF).unwrap();
    std::fs::write(&off, format!("{BENCH_CONF}[dns.dnssec]\nenabled = false\n")).unwrap();
    let start = |conf: &std::path::Path| -> Start {
        let port = reserve_port();
        let t = Instant::now();
        let mut child = spawn_cpid(&data, conf, port, Stdio::piped());
        while !answers_soa(loopback(port), &seeded.apex) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "cpid serve exited during start-up ({status}): {}",
                    stderr(&mut child)
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "cpid does not answer after 10 minutes"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let ready = t.elapsed().as_secs_f64();
        std::thread::sleep(Duration::from_secs(1));
        let rss_mib = vm_rss_kib(child.id()) / 1024.0;
        let _ = child.kill();
        let _ = child.wait();
        let own = own_ready(&stderr(&mut child));
        Start {
            ready,
            own,
            rss_mib,
        }
    };
    let first = start(&on);
    println!("untimed first start: {:.2} s to first answer", first.ready);
    let mut runs: [Vec<Start>; 2] = [Vec::new(), Vec::new()];
    for round in 0..o.rounds {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let s = start(if i == 0 { &on } else { &off });
            println!(
                "round {} signing {:<3} first answer after {:.3} s (cpid says ready in {:.3} s), VmRSS {:.0} MiB",
                round + 1,
                if i == 0 { "on" } else { "off" },
                s.ready,
                s.own,
                s.rss_mib
            );
            runs[i].push(s);
        }
    }
    let med = |v: &[Start], f: fn(&Start) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let ratio = median(
        &runs[0]
            .iter()
            .zip(&runs[1])
            .map(|(a, b)| a.ready / b.ready)
            .collect::<Vec<_>>(),
    );
    println!(
        "\n| identifiers | signing | spawn to first answer (s) | cpid's own \"ready in\" (s) | VmRSS (MiB) | on ÷ off | goal |"
    );
    println!("|---:|---|---:|---:|---:|---:|---|");
    for (i, label) in ["on", "off"].iter().enumerate() {
        let (r, g) = if i == 0 {
            (
                format!("**{ratio:.3}**"),
                format!("≤ {GOAL}: {}", verdict(ratio <= GOAL)),
            )
        } else {
            (String::new(), String::new())
        };
        println!(
            "| {} | {label} | {:.3} | {:.3} | {:.0} | {r} | {g} |",
            seeded.count,
            med(&runs[i], |s| s.ready),
            med(&runs[i], |s| s.own),
            med(&runs[i], |s| s.rss_mib),
        );
    }
    if seeded.count < 1_000_000 {
        println!(
            "(the goal is set at 1 000 000 identifiers: cargo bench --bench dnssec -- --only startup --count 1000000)"
        );
    }
}

/// What the child wrote to stderr, once it has exited.
fn stderr(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut text);
    }
    text
}

/// The seconds in cpid's ready line ("… — ready in 1.23s" or "456.7ms").
fn own_ready(stderr: &str) -> f64 {
    let Some(line) = stderr.lines().find(|l| l.contains("cpid serving zone")) else {
        return f64::NAN;
    };
    let value = line.rsplit("ready in ").next().unwrap_or("").trim();
    let (number, scale) = if let Some(ms) = value.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(us) = value.strip_suffix("µs") {
        (us, 1e-6)
    } else {
        (value.trim_end_matches('s'), 1.0)
    };
    number.parse::<f64>().map_or(f64::NAN, |n| n * scale)
}

/// VmRSS of a process, KiB.
fn vm_rss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
