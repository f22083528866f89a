//! From a registration acknowledged by the node (HTTP 201) to the new
//! identifier's TXT answer at a Knot and at an NSD secondary, polled over
//! UDP; registrations sent at a fixed rate (open loop), so that a slow
//! secondary does not slow the changes down.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpid::testkit::secondaries::{
    QTYPE_TXT, Secondary, Settings, knot_secondary_with, loopback, nsd_secondary_with,
    reserve_port, udp_query,
};

use crate::Options;
use crate::primary::{Primary, Seeded, dns_name, register};

/// A change: its DNS name and when the node acknowledged it.
struct Change {
    name: String,
    acked: Instant,
}

/// Whether `server` answers `name` TXT with data (NOERROR, an answer).
fn visible(sock: &UdpSocket, server: SocketAddr, id: u16, name: &str) -> bool {
    if sock
        .send_to(&udp_query(id, name, QTYPE_TXT), server)
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) if from == server && n >= 12 && buf[..2] == id.to_be_bytes() => {
                let rcode = buf[3] & 0x0F;
                let ancount = u16::from_be_bytes([buf[6], buf[7]]);
                return rcode == 0 && ancount > 0;
            }
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// Polls `server` for every acknowledged change until each is visible or
/// `stop`; the latency of each (ack → visible), by change index.
fn poll(
    server: SocketAddr,
    changes: Arc<Mutex<Vec<Change>>>,
    total: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Option<Duration>>> {
    std::thread::spawn(move || {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut seen: Vec<Option<Duration>> = vec![None; total];
        let mut first_unseen = 0;
        let mut id: u16 = 0;
        while !stop.load(Ordering::Relaxed) && first_unseen < total {
            let pending: Vec<(usize, String, Instant)> = {
                let c = changes.lock().unwrap();
                (first_unseen..c.len())
                    .filter(|i| seen[*i].is_none())
                    .map(|i| (i, c[i].name.clone(), c[i].acked))
                    .collect()
            };
            for (i, name, acked) in pending {
                id = id.wrapping_add(1);
                if visible(&sock, server, id, &name) {
                    seen[i] = Some(acked.elapsed());
                }
            }
            while first_unseen < total && seen[first_unseen].is_some() {
                first_unseen += 1;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seen
    })
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

fn summary(what: &str, lat: &[Option<Duration>]) -> (f64, f64) {
    let mut v: Vec<Duration> = lat.iter().flatten().copied().collect();
    v.sort();
    let missing = lat.len() - v.len();
    let (p50, p99) = (pct(&v, 0.5), pct(&v, 0.99));
    println!(
        "  {what:<16} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  max {:>7.1} ms{}",
        pct(&v, 1.0),
        if missing > 0 {
            format!("  ({missing} never seen)")
        } else {
            String::new()
        }
    );
    (p50, p99)
}

fn one(o: &Options, seeded: &Seeded, settings: Settings) -> f64 {
    let (knot_port, nsd_port) = (reserve_port(), reserve_port());
    let node = Primary::start(seeded, &[loopback(knot_port), loopback(nsd_port)], o.signed);
    let key = Some(&node.key);
    let knot: Secondary = knot_secondary_with(knot_port, &node.zone, node.dns, key, settings);
    let nsd: Secondary = nsd_secondary_with(nsd_port, &node.zone, node.dns, key, settings);
    let provider = node.provider();
    let serial = node.serial();
    for s in [&knot, &nsd] {
        if let Err(e) = s.wait_serial(serial, Duration::from_secs(600)) {
            panic!("{e}");
        }
    }
    let changes = Arc::new(Mutex::new(Vec::with_capacity(o.changes)));
    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = [&knot, &nsd]
        .iter()
        .map(|s| poll(s.addr(), changes.clone(), o.changes, stop.clone()))
        .collect();
    let api = node.api();
    let start = Instant::now();
    for i in 0..o.changes {
        let due = start + Duration::from_secs_f64(i as f64 / o.rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let id = register(&api, &provider, i);
        let acked = Instant::now();
        changes.lock().unwrap().push(Change {
            name: dns_name(&id, &node.apex),
            acked,
        });
    }
    let sent = start.elapsed();
    // Whatever is not visible a minute after the last change never will be.
    let giveup = Instant::now() + Duration::from_secs(60);
    while !pollers.iter().all(|p| p.is_finished()) && Instant::now() < giveup {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let lat: Vec<Vec<Option<Duration>>> = pollers.into_iter().map(|p| p.join().unwrap()).collect();
    let both: Vec<Option<Duration>> = lat[0]
        .iter()
        .zip(&lat[1])
        .map(|(a, b)| Some((*a)?.max((*b)?)))
        .collect();
    println!(
        "{} changes at {:.0}/s ({:.1} s), zone of {} identifiers, secondary settings {settings:?}:",
        o.changes,
        o.changes as f64 / sent.as_secs_f64(),
        sent.as_secs_f64(),
        seeded.names
    );
    summary("knot", &lat[0]);
    summary("nsd", &lat[1]);
    let (_, p99) = summary("both", &both);
    p99
}

pub fn run(o: &Options, seeded: &Seeded) {
    println!("\n## Propagation: registration acknowledged → answered by Knot and NSD");
    for &s in &o.settings {
        let p99 = one(o, seeded, s);
        println!(
            "  goal p99 ≤ 500 ms with {s:?} settings: {}",
            if p99 <= 500.0 { "met" } else { "NOT met" }
        );
    }
}
