//! What an AXFR running in a loop costs the queries: at a fixed UDP query
//! rate, the CPU time of the node's UDP threads (`dns-udp-*`, from
//! /proc/<pid>/task) per answer, in interleaved windows with and without
//! transfers going on.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpid::dns::tsig::TsigKey;
use cpid::testkit::secondaries::{QTYPE_TXT, udp_query};

use crate::common::cpu_seconds;
use cpid::testkit::secondaries::tcp_exchange;

use crate::ixfr::request;
use crate::primary::{Primary, Seeded, txt_owners};
use crate::{Options, median};

const AXFR: u16 = 252;

/// CPU seconds of the threads of `pid` whose name starts with `prefix`.
fn thread_cpu(pid: u32, prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .map(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            let after = stat.rsplit(')').next().unwrap_or("");
            let f: Vec<&str> = after.split_whitespace().collect();
            let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            (ticks(11) + ticks(12)) / 100.0
        })
        .sum()
}

/// Sends `qps` queries a second to `addr` (TXT of `names`, round robin)
/// until `stop`; counts the answers.
fn load(
    addr: SocketAddr,
    names: Arc<Vec<String>>,
    qps: u64,
    stop: Arc<AtomicBool>,
    answers: Arc<AtomicU64>,
) -> std::thread::JoinHandle<()> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(addr).unwrap();
    let recv = sock.try_clone().unwrap();
    recv.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop_rx = stop.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        while !stop_rx.load(Ordering::Relaxed) {
            if recv.recv(&mut buf).is_ok() {
                answers.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    std::thread::spawn(move || {
        let queries: Vec<Vec<u8>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| udp_query(i as u16, n, QTYPE_TXT))
            .collect();
        let start = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (start.elapsed().as_secs_f64() * qps as f64) as u64;
            while sent < due {
                let _ = sock.send(&queries[(sent as usize) % queries.len()]);
                sent += 1;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

/// AXFRs of the node's zone one after another until `stop`; how many
/// completed.
fn axfr_loop(node: &Primary, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let key = TsigKey::new(&node.key.name, &node.key.secret_b64).unwrap();
    let (dns, zone) = (node.dns, node.zone.clone());
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let q = request(&zone, AXFR, None, &key);
            let m = tcp_exchange(dns, &q, Duration::from_millis(200));
            assert!(m.len() > 1, "an AXFR came back in {} message(s)", m.len());
            n += 1;
        }
        n
    })
}

struct Window {
    us_per_answer: f64,
    answers: u64,
    process_cpu: f64,
    axfrs: u64,
}

fn window(node: &Primary, seconds: f64, with_axfr: bool, answers: &AtomicU64) -> Window {
    let stop = Arc::new(AtomicBool::new(false));
    let axfr = with_axfr.then(|| axfr_loop(node, stop.clone()));
    // Let the transfer get going before the window opens.
    std::thread::sleep(Duration::from_millis(300));
    let (udp0, all0, a0) = (
        thread_cpu(node.pid(), "dns-udp"),
        cpu_seconds(node.pid()),
        answers.load(Ordering::Relaxed),
    );
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let (udp1, all1, a1) = (
        thread_cpu(node.pid(), "dns-udp"),
        cpu_seconds(node.pid()),
        answers.load(Ordering::Relaxed),
    );
    stop.store(true, Ordering::Relaxed);
    let axfrs = axfr.map_or(0, |h| h.join().unwrap());
    let n = a1 - a0;
    Window {
        us_per_answer: (udp1 - udp0) / n.max(1) as f64 * 1e6,
        answers: n,
        process_cpu: all1 - all0,
        axfrs,
    }
}

pub fn run(o: &Options, seeded: &Seeded) {
    println!(
        "\n## Query cost during transfers: {} UDP queries/s, {} s windows, zone of {} identifiers",
        o.qps, o.seconds, seeded.names
    );
    let node = Primary::start(seeded, &[], false);
    let names = Arc::new(txt_owners(&seeded.zone_text()));
    assert!(!names.is_empty(), "the export has TXT names");
    let stop = Arc::new(AtomicBool::new(false));
    let answers = Arc::new(AtomicU64::new(0));
    let loader = load(node.dns, names, o.qps, stop.clone(), answers.clone());
    std::thread::sleep(Duration::from_secs(1));
    let mut ratios = Vec::new();
    let mut costs: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for i in 0..o.rounds {
        let quiet = window(&node, o.seconds, false, &answers);
        let busy = window(&node, o.seconds, true, &answers);
        println!(
            "round {}: without AXFR {:.2} µs/answer ({} answers, process CPU {:.2} s); \
             with AXFR in a loop {:.2} µs/answer ({} answers, {} AXFRs, process CPU {:.2} s); ratio {:.3}",
            i + 1,
            quiet.us_per_answer,
            quiet.answers,
            quiet.process_cpu,
            busy.us_per_answer,
            busy.answers,
            busy.axfrs,
            busy.process_cpu,
            busy.us_per_answer / quiet.us_per_answer
        );
        ratios.push(busy.us_per_answer / quiet.us_per_answer);
        costs[0].push(quiet.us_per_answer);
        costs[1].push(busy.us_per_answer);
    }
    stop.store(true, Ordering::Relaxed);
    loader.join().unwrap();
    println!(
        "UDP thread CPU per answer: median {:.2} µs without, {:.2} µs with an AXFR loop; median ratio {:.3}",
        median(&costs[0]),
        median(&costs[1]),
        median(&ratios)
    );
}
