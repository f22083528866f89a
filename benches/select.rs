//! Selection (system D): what a requirement costs over 100 000 registered
//! resources on one node, and what a federated selection costs per hop.
//!
//!     cargo bench --bench select -- [--resources N] [--runs N] [--scan-runs N]
//!         [--seconds S] [--federated N] [--requests N]
//!
//! 1. In process: `--resources` (default 100 000) signed resource records
//!    — classes IC, GC and SC, every model of the device table (some pools
//!    with two), all 34 provinces, prices from 1 to 40 CNY (some unpriced)
//!    — and 40 dedicated lines are fed to a [`Selector`]; every resource is
//!    fresh and fully available. Five kinds of requirement, `--runs` each
//!    (default 1 000, parameters rotating over models and regions; a kind
//!    stops early, after at least 100, once it has taken `--seconds`,
//!    default 20), are timed as the route runs them: `select`, then `finish` (score, rank,
//!    cut to the limit). The reference, in the same run and interleaved, is
//!    a plain linear scan over every offer doing the same checks and
//!    building the same candidates (`--scan-runs` per kind, default 100);
//!    its finished answer is checked equal to the selector's.
//! 2. Federated: the demo federation (national, Shanghai, industry node) on
//!    loopback, `--federated` resources (default 3 000) spread over the
//!    three nodes and reported; once the national node's `POST /v1/select`
//!    takes candidates from all three, `--requests` selections (default
//!    200) are timed there, with each hop's `ms` from the answer's `hops`,
//!    beside the same requirement at each node alone: over HTTP at the
//!    industry node (which has no child), and each node's own selector in
//!    process (its live state and calendars, no HTTP); and the routing read
//!    every federated selection makes first (`Rollup::route`).
//!
//! The bench client and the nodes share this machine's cores.

// A benchmark is a test harness: it stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cpid::api::client::ApiClient;
use cpid::capacity::Glance;
use cpid::capacity::report::Health;
use cpid::capacity::status::{Freshness, STALE_AFTER};
use cpid::capacity::totals::Contribution;
use cpid::ident::identifier::{Class, Identifier, PROVINCES, Prefix, Serial};
use cpid::ident::keys::NodeKey;
use cpid::ident::record::{Record, RecordStatus, SignedRecord, Value, ValueType};
use cpid::ident::resource::{Device, DeviceTable, Link, Price, ResourceDescriptor, SCHEMA, Unit};
use cpid::registry::{NewRecord, Observer};
use cpid::select::{
    Availability, Candidate, Cost, Exclusion, Line, Offer, Path, Paths, Requirement, SelectConfig,
    Selection, Selector, Window,
};
use cpid::testkit::federation::{Federation, Member, Options};
use serde_json::json;

/// Dedicated lines among the resources of part 1.
const LINES: u64 = 40;
/// Resources per status report (a report body stays under 64 KiB).
const PER_REPORT: usize = 200;

struct Args {
    resources: u64,
    runs: usize,
    scan_runs: usize,
    federated: u64,
    requests: usize,
    /// Most seconds spent on one kind of requirement (after `MIN_RUNS`).
    seconds: u64,
}

/// Runs of each kind timed whatever the time budget.
const MIN_RUNS: usize = 100;

fn args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    Args {
        resources: value("--resources", 100_000).max(1000),
        runs: value("--runs", 1000).max(10) as usize,
        scan_runs: value("--scan-runs", 100).max(1) as usize,
        federated: value("--federated", 3000).max(30),
        requests: value("--requests", 200).max(10) as usize,
        seconds: value("--seconds", 20),
    }
}

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

fn table() -> &'static DeviceTable {
    DeviceTable::builtin()
}

fn device(model: &str, count: u64) -> Device {
    let spec = table().find(model).unwrap();
    Device {
        model: spec.model.clone(),
        count,
        peak_tflops: spec.peak_tflops,
        memory_gib: Some(80.0),
        serials: None,
    }
}

/// One compute resource in one of `regions`: IC half the time, GC three
/// in ten, SC two in ten.
fn descriptor(rng: &mut Rng, regions: &[&str]) -> (Class, ResourceDescriptor) {
    let models: Vec<&str> = table().device.iter().map(|d| d.model.as_str()).collect();
    let region = rng.pick(regions).to_string();
    let price = (rng.below(20) != 0).then(|| Price {
        amount: (100 + rng.below(3900)) as f64 / 100.0,
        currency: "CNY".into(),
    });
    let mut d = ResourceDescriptor {
        schema: SCHEMA.into(),
        class: String::new(),
        region: Some(region),
        unit: Unit::Card,
        units_total: 1,
        devices: None,
        cpu_cores: None,
        memory_gib: None,
        storage_tib: None,
        network_gbps: Some(100.0),
        pue: Some(1.3),
        price_per_unit_hour: price,
        declared_peak_tflops: None,
        link: None,
    };
    let class = match rng.below(10) {
        0..=4 => Class::Ic,
        5..=7 => Class::Gc,
        _ => Class::Sc,
    };
    match class {
        Class::Ic => {
            let cards = 8 << rng.below(7);
            let first = rng.pick(&models);
            let mut devices = vec![device(first, cards)];
            // One pool in twenty mixes two models (its own bucket).
            if rng.below(20) == 0 {
                let second = rng.pick(&models);
                if second != first {
                    devices.push(device(second, cards / 2));
                }
            }
            d.units_total = devices.iter().map(|x| x.count).sum();
            d.devices = Some(devices);
            d.storage_tib = Some((1 + rng.below(200)) as f64);
        }
        Class::Gc => {
            d.unit = Unit::Core;
            d.units_total = 32 << rng.below(6);
            d.cpu_cores = Some(d.units_total);
            d.memory_gib = Some(d.units_total as f64 * 4.0);
        }
        _ => {
            d.unit = Unit::Node;
            d.units_total = 4 << rng.below(6);
            d.cpu_cores = Some(d.units_total * 64);
            d.memory_gib = Some(d.units_total as f64 * 512.0);
            // Half the supercomputers carry accelerators.
            if rng.below(2) == 0 {
                d.devices = Some(vec![device(rng.pick(&models), d.units_total * 4)]);
            }
        }
    }
    d.class = class.code().into();
    (class, d)
}

fn line_descriptor(rng: &mut Rng) -> ResourceDescriptor {
    let a = PROVINCES[rng.below(PROVINCES.len() as u64) as usize].0;
    let b = PROVINCES[rng.below(PROVINCES.len() as u64) as usize].0;
    let bandwidth = 10u64 << rng.below(6);
    ResourceDescriptor {
        schema: SCHEMA.into(),
        class: "NL".into(),
        region: None,
        unit: Unit::Gbps,
        units_total: bandwidth,
        devices: None,
        cpu_cores: None,
        memory_gib: None,
        storage_tib: None,
        network_gbps: None,
        pue: None,
        price_per_unit_hour: None,
        declared_peak_tflops: None,
        link: Some(Link {
            regions: [a.into(), b.into()],
            bandwidth_gbps: bandwidth as f64,
            latency_ms: (2 + rng.below(28)) as f64,
        }),
    }
}

fn resource_value(d: &ResourceDescriptor, at: u64) -> Value {
    Value {
        index: 1,
        kind: ValueType::parse("CP.RESOURCE").unwrap(),
        data: serde_json::to_string(d).unwrap(),
        ttl: 0,
        timestamp: at,
    }
}

/// `n` compute resources and [`LINES`] lines under 86, signed by `key`,
/// on both cores.
fn signed_records(n: u64, key: &NodeKey, at: u64) -> Vec<SignedRecord> {
    let prefix = Prefix::parse("86").unwrap();
    let regions: Vec<&str> = PROVINCES.iter().map(|(c, _)| *c).collect();
    let make = |i: u64| {
        let mut rng = Rng(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let (class, d) = if i < LINES {
            (Class::Nl, line_descriptor(&mut rng))
        } else {
            descriptor(&mut rng, &regions)
        };
        Record {
            identifier: Identifier::new(prefix.clone(), class, Serial::new(i + 1).unwrap()),
            owner: None,
            version: 1,
            status: RecordStatus::Active,
            issuer: key.public().key_id(),
            created: at,
            updated: at,
            values: vec![resource_value(&d, at)],
        }
        .sign(key)
        .unwrap()
    };
    let total = n + LINES;
    let half = total / 2;
    std::thread::scope(|s| {
        let first = s.spawn(|| (0..half).map(make).collect::<Vec<_>>());
        let second: Vec<SignedRecord> = (half..total).map(make).collect();
        let mut all = first.join().unwrap();
        all.extend(second);
        all
    })
}

/// Every resource fresh, healthy, all its units available, nothing booked.
struct AllFree {
    glances: HashMap<Identifier, Glance>,
    calendars: HashMap<Identifier, u64>,
}

impl AllFree {
    fn new(records: &[SignedRecord]) -> AllFree {
        let glances = records
            .iter()
            .filter_map(|s| {
                let (c, _) = Contribution::of(s.record(), table())?;
                let g = Glance {
                    freshness: Freshness::Fresh,
                    health: Some(Health::Ok),
                    units_available: Some(c.units_total as i64),
                    age_secs: Some(10),
                    interval_secs: Some(60),
                    findings: 0,
                };
                Some((s.record().identifier.clone(), g))
            })
            .collect();
        AllFree {
            glances,
            calendars: HashMap::new(),
        }
    }
}

impl Availability for AllFree {
    fn glance(&self, ids: &[&Identifier]) -> Vec<Option<Glance>> {
        ids.iter()
            .map(|id| self.glances.get(*id).cloned())
            .collect()
    }

    fn booked(&self, ids: &[&Identifier], _start: u64, _end: u64) -> Vec<u64> {
        ids.iter()
            .map(|id| self.calendars.get(*id).copied().unwrap_or(0))
            .collect()
    }
}

/// One resource as the reference scan keeps it: the selector's own offer
/// and its models in lower case, in one flat list.
struct Flat {
    offer: Offer,
    models_lower: Vec<String>,
}

/// The reference: every offer in a list, every check on every offer.
struct Scan {
    offers: Vec<Flat>,
    lines: Vec<Line>,
}

impl Scan {
    /// Reads the records as `Selector` does.
    fn new(records: &[SignedRecord]) -> Scan {
        let mut offers = Vec::new();
        let mut lines = Vec::new();
        for s in records {
            let r = s.record();
            let Some((c, d)) = Contribution::of(r, table()) else {
                continue;
            };
            if let Some(link) = &d.link {
                lines.push(Line {
                    id: r.identifier.to_string(),
                    regions: link.regions.clone(),
                    bandwidth_gbps: link.bandwidth_gbps,
                    latency_ms: link.latency_ms,
                });
                continue;
            }
            if let Some(offer) = Offer::of(r.identifier.clone(), c, &d) {
                let models_lower = offer.models.iter().map(|m| m.to_lowercase()).collect();
                offers.push(Flat {
                    offer,
                    models_lower,
                });
            }
        }
        // The selector keeps its lines by identifier.
        lines.sort_by(|a, b| a.id.cmp(&b.id));
        Scan { offers, lines }
    }

    /// The selector's answer, found by looking at every offer.
    fn select(
        &self,
        config: &SelectConfig,
        req: &Requirement,
        now: u64,
        live: &dyn Availability,
    ) -> Selection {
        let model = req.model.as_ref().map(|m| {
            table()
                .find(m)
                .map_or_else(|| m.clone(), |s| s.model.clone())
                .to_lowercase()
        });
        let paths = req
            .region
            .as_ref()
            .map(|from| Paths::from(from, &config.paths, &self.lines, req.min_bandwidth_gbps));
        let mut excluded: BTreeMap<Exclusion, u64> = BTreeMap::new();
        let mut out = |r: Exclusion| *excluded.entry(r).or_default() += 1;
        let mut fitting: Vec<(&Offer, u64, Option<&Path>)> = Vec::new();
        for flat in &self.offers {
            let o = &flat.offer;
            if req.class.is_some_and(|c| c != o.class) {
                out(Exclusion::WrongClass);
                continue;
            }
            if let Some(m) = &model
                && !flat.models_lower.contains(m)
            {
                out(Exclusion::WrongModel);
                continue;
            }
            let path: Option<&Path> = match &paths {
                None => None,
                Some(p) => match p.to(&o.region) {
                    Some(path) => Some(path),
                    None => {
                        out(Exclusion::NoPath);
                        continue;
                    }
                },
            };
            if let (Some(max), Some(p)) = (req.max_latency_ms, path)
                && p.latency_ms > max
            {
                out(Exclusion::OverLatency);
                continue;
            }
            match o.fits(req) {
                Ok(units) => fitting.push((o, units, path)),
                Err(r) => out(r),
            }
        }
        // The live state of what fits, asked at once as the selector does.
        let ids: Vec<&Identifier> = fitting.iter().map(|(o, _, _)| &o.id).collect();
        let glances = live.glance(&ids);
        let hours = (req.end - req.start) as f64 / 3600.0;
        let mut candidates = Vec::new();
        for ((o, units, path), glance) in fitting.into_iter().zip(glances) {
            let Some(g) = glance else {
                out(Exclusion::NeverReported);
                continue;
            };
            let (Some(age), Some(interval)) = (g.age_secs, g.interval_secs) else {
                out(Exclusion::NeverReported);
                continue;
            };
            if g.freshness != Freshness::Fresh {
                out(Exclusion::Stale);
                continue;
            }
            if g.health == Some(Health::Down) {
                out(Exclusion::Down);
                continue;
            }
            let room = o.units_total.saturating_sub(
                live.booked(&[&o.id], req.start, req.end)
                    .first()
                    .copied()
                    .unwrap_or(0),
            );
            if room < units {
                out(Exclusion::Booked);
                continue;
            }
            let reported = u64::try_from(g.units_available.unwrap_or(0).max(0)).unwrap_or(0);
            let free = if req.start < now.saturating_add(3600) {
                room.min(reported)
            } else {
                room
            };
            if free < units {
                out(Exclusion::Unavailable);
                continue;
            }
            let stale_at = (u64::from(interval) * STALE_AFTER).max(1);
            let round3 = |v: f64| (v * 1000.0).round() / 1000.0;
            candidates.push(Candidate {
                identifier: o.id.to_string(),
                node: "86".into(),
                class: o.class.code().to_string(),
                region: o.region.clone(),
                models: o.models.clone(),
                unit: o.unit.to_string(),
                units,
                units_free: free,
                units_total: o.units_total,
                price: o.price.as_ref().map(|p| Cost {
                    per_unit_hour: p.amount,
                    currency: p.currency.clone(),
                    total: (p.amount * units as f64 * hours * 100.0).round() / 100.0,
                }),
                path: path.cloned(),
                quality: round3(1.0 - g.findings.min(3) as f64 / 3.0),
                freshness: round3(1.0 - age as f64 / stale_at as f64),
                score: 0.0,
                components: BTreeMap::new(),
            });
        }
        let mut cheapest: BTreeMap<String, f64> = BTreeMap::new();
        for c in &candidates {
            if let Some(p) = &c.price {
                let e = cheapest
                    .entry(p.currency.clone())
                    .or_insert(p.per_unit_hour);
                *e = e.min(p.per_unit_hour);
            }
        }
        Selection {
            considered: self.offers.len() as u64,
            matched: candidates.len() as u64,
            candidates,
            excluded,
            explanation: String::new(),
            weights: req.weights.unwrap_or(config.weights),
            window: Window {
                start: req.start,
                end: req.end,
            },
            cheapest,
        }
    }
}

/// The kinds of requirement timed, and the `i`-th body of each.
const KINDS: [&str; 5] = [
    "model + units + region",
    "model + region + max_latency 5 ms",
    "class IC only (widest)",
    "peak fp16 + class IC + region",
    "model + units + region + max_price",
];

fn body(kind: usize, i: usize) -> serde_json::Value {
    let models: Vec<&str> = table().device.iter().map(|d| d.model.as_str()).collect();
    let model = models[i % models.len()];
    let region = PROVINCES[(i * 7) % PROVINCES.len()].0;
    let units = [1, 4, 8, 16][i % 4];
    match kind {
        0 => json!({"model": model, "units": units, "region": region}),
        1 => json!({"model": model, "region": region, "max_latency_ms": 5}),
        2 => json!({"class": "IC"}),
        3 => {
            let tflops = [500, 2000, 10_000, 50_000][i % 4];
            json!({"class": "IC", "region": region,
                   "peak": {"precision": "fp16", "tflops": tflops}})
        }
        _ => json!({"model": model, "units": units, "region": region,
                    "max_price": {"amount": 10, "currency": "CNY"}}),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// p50 / p99 / max of durations, in ms.
fn spread(v: &mut [Duration]) -> (f64, f64, f64) {
    v.sort();
    (
        ms(percentile(v, 0.5)),
        ms(percentile(v, 0.99)),
        ms(v[v.len() - 1]),
    )
}

/// p50 / p99 / max of figures already in ms.
fn spread_ms(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[(((v.len() as f64 - 1.0) * p).round() as usize).min(v.len() - 1)];
    (at(0.5), at(0.99), v[v.len() - 1])
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpu}, {cores} cores, load average {}", load.join(" "))
}

fn in_process(a: &Args) {
    println!("## 1. One node, in process: {} resources", a.resources);
    let key = NodeKey::generate().unwrap();
    let now = cpid::clock::system_now();
    let t = Instant::now();
    let records = signed_records(a.resources, &key, now);
    println!(
        "made and signed {} records ({} compute, {LINES} lines) in {:.1} s",
        records.len(),
        a.resources,
        t.elapsed().as_secs_f64()
    );
    let selector = Selector::new(SelectConfig::default(), "86".into());
    let t = Instant::now();
    for chunk in records.chunks(1000) {
        selector.committed(chunk);
    }
    let (offers, lines) = selector.len();
    println!(
        "indexed {offers} offers and {lines} lines in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let live = AllFree::new(&records);
    let scan = Scan::new(&records);
    assert_eq!(scan.offers.len(), offers);
    drop(records);
    let config = selector.config().clone();
    let scale = config.latency_scale_ms;
    let every = (a.runs / a.scan_runs).max(1);

    println!();
    println!(
        "| requirement | runs | matched (mean) | select p50 / p99 / max | finish p50 / p99 / max | select + finish p50 / p99 / max | linear scan + finish p50 / p99 (n) | scan / index, p50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst_p99 = (0.0, "");
    for (k, name) in KINDS.iter().enumerate() {
        let reqs: Vec<Requirement> = (0..a.runs)
            .map(|i| Requirement::parse(&serde_json::to_vec(&body(k, i)).unwrap(), now).unwrap())
            .collect();
        let (mut sel, mut fin, mut tot) = (Vec::new(), Vec::new(), Vec::new());
        let mut scans = Vec::new();
        let mut matched = 0u64;
        let started = Instant::now();
        // Warm-up, and the check that the reference answers the same.
        for req in reqs.iter().take(5) {
            let mut ours = selector.select(req, now, &live);
            ours.finish(req, scale, selector.limit(req));
            let mut theirs = scan.select(&config, req, now, &live);
            theirs.finish(req, scale, selector.limit(req));
            assert_eq!(
                ours, theirs,
                "the scan must answer what the selector answers"
            );
        }
        for (i, req) in reqs.iter().enumerate() {
            if i >= MIN_RUNS && started.elapsed().as_secs() >= a.seconds {
                break;
            }
            let limit = selector.limit(req);
            let t0 = Instant::now();
            let mut s = selector.select(req, now, &live);
            let t1 = Instant::now();
            s.finish(req, scale, limit);
            let t2 = Instant::now();
            sel.push(t1 - t0);
            fin.push(t2 - t1);
            tot.push(t2 - t0);
            matched += s.matched;
            std::hint::black_box(&s);
            drop(s);
            if i % every == 0 {
                let t0 = Instant::now();
                let mut s = scan.select(&config, req, now, &live);
                s.finish(req, scale, limit);
                scans.push(t0.elapsed());
                std::hint::black_box(&s);
            }
        }
        let (s50, s99, smax) = spread(&mut sel);
        let (f50, f99, fmax) = spread(&mut fin);
        let (t50, t99, tmax) = spread(&mut tot);
        let (l50, l99, _) = spread(&mut scans);
        if t99 > worst_p99.0 {
            worst_p99 = (t99, name);
        }
        println!(
            "| {name} | {} | {:.0} | {s50:.3} / {s99:.3} / {smax:.3} ms | {f50:.3} / {f99:.3} / {fmax:.3} ms | {t50:.3} / {t99:.3} / {tmax:.3} ms | {l50:.3} / {l99:.3} ms ({}) | {:.1}× |",
            sel.len(),
            matched as f64 / sel.len() as f64,
            scans.len(),
            l50 / t50,
        );
    }
    println!();
    println!(
        "Up to {} runs per kind, fewer when a kind has spent {} s (at least {MIN_RUNS}); the scan every {every}th run, interleaved. Worst p99 (select + finish): {:.3} ms ({}); target ≤ 5 ms.",
        a.runs, a.seconds, worst_p99.0, worst_p99.1
    );
}

/// A provider (approved where the node reviews) registered at `api`; its
/// key and identifier.
fn provider(api: &ApiClient, admin: &NodeKey, region: &str) -> (NodeKey, Identifier) {
    let key = NodeKey::generate().unwrap();
    let body = json!({
        "name": format!("bench pool {region}"), "organisation": format!("ORG-BENCH-{region}"),
        "contact": "noc@p.example", "region": region, "public_key": key.public().to_public_pem(),
    });
    let r = api
        .signed("POST", "/v1/providers", Some(&body), &key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let pv = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    if r.body["status"] == RecordStatus::Pending.as_str() {
        api.approve(&pv, admin).unwrap();
    }
    (key, pv)
}

/// Registers `n` resources in `regions` at `m`, owned by a new provider,
/// and reports every one fresh with all its units available.
fn populate(m: &Member, n: u64, regions: &[&str], seed: u64) {
    let api = ApiClient::new(&m.http_url());
    let (key, pv) = provider(&api, &m.admin_key().unwrap(), regions[0]);
    let at = cpid::clock::system_now();
    let news: Vec<NewRecord> = (0..n)
        .map(|i| {
            let mut rng = Rng((seed + i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let (class, d) = descriptor(&mut rng, regions);
            NewRecord {
                prefix: None,
                class,
                owner: Some(pv.clone()),
                values: vec![resource_value(&d, at)],
                status: RecordStatus::Active,
            }
        })
        .collect();
    let issued = m.node.registry.issue_many(news).unwrap();
    let units: Vec<(String, u64)> = issued
        .iter()
        .map(|s| {
            let (c, _) = Contribution::of(s.record(), table()).unwrap();
            (s.record().identifier.to_string(), c.units_total)
        })
        .collect();
    for (seq, chunk) in units.chunks(PER_REPORT).enumerate() {
        let resources: Vec<serde_json::Value> = chunk
            .iter()
            .map(|(id, total)| {
                json!({"id": id, "units_available": total, "units_in_use": 0, "health": "ok"})
            })
            .collect();
        let body = json!({"agent": "bench", "seq": seq + 1, "interval_secs": 60,
                          "resources": resources});
        let r = api
            .signed("POST", "/v1/reports", Some(&body), &key)
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

fn json_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h
}

fn post_select(api: &ApiClient, body: &[u8]) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let r = api
        .send("POST", "/v1/select", json_headers(), body.to_vec())
        .unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    (took, r.body)
}

/// A node's own selector over its own live state, as the route runs it.
struct Own<'a>(&'a Member);

impl Availability for Own<'_> {
    fn glance(&self, ids: &[&Identifier]) -> Vec<Option<Glance>> {
        self.0.node.capacity.glance(ids)
    }

    fn booked(&self, ids: &[&Identifier], start: u64, end: u64) -> Vec<u64> {
        self.0.node.trades.booked_many(ids, start, end)
    }
}

fn hop<'a>(hops: &'a serde_json::Value, node: &str) -> Option<&'a serde_json::Value> {
    hops.as_array()?.iter().find(|h| h["node"] == node)
}

/// The `ms` of every hop of one answer, by name.
fn hop_figures(answer: &serde_json::Value) -> Option<[f64; 5]> {
    let hops = &answer["hops"];
    let national = hop(hops, "86")?;
    let shanghai = hop(hops, "86.31").filter(|h| h["outcome"] == "answered")?;
    let sh_local = hop(&shanghai["hops"], "86.31")?;
    let industry = hop(&shanghai["hops"], "86.31.1005").filter(|h| h["outcome"] == "answered")?;
    let ind_local = hop(&industry["hops"], "86.31.1005")?;
    let f = |h: &serde_json::Value| h["ms"].as_f64().unwrap_or(f64::NAN);
    Some([
        f(national),
        f(shanghai),
        f(sh_local),
        f(industry),
        f(ind_local),
    ])
}

fn federated(a: &Args) {
    println!();
    println!(
        "## 2. Federated: national → Shanghai → industry node on loopback, {} resources",
        a.federated
    );
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = Options::loopback(dir.path()).unwrap();
    let t = Instant::now();
    let fed = rt.block_on(Federation::start(&opts)).unwrap();
    println!("federation up in {:.1} s", t.elapsed().as_secs_f64());
    let national_regions: Vec<&str> = PROVINCES
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| *c != "31")
        .collect();
    let t = Instant::now();
    let third = a.federated / 3;
    populate(&fed.national, a.federated - 2 * third, &national_regions, 0);
    populate(&fed.shanghai, third, &["31", "32", "33"], 1 << 32);
    populate(&fed.industry, third, &["31", "44"], 2 << 32);
    println!(
        "registered and reported {} resources (national {}, Shanghai {third}, industry {third}) in {:.1} s",
        a.federated,
        a.federated - 2 * third,
        t.elapsed().as_secs_f64()
    );

    let want = json!({"model": "H20", "units": 8, "region": "11"});
    let body = serde_json::to_vec(&want).unwrap();
    let national = ApiClient::new(&fed.national.http_url());
    let industry = ApiClient::new(&fed.industry.http_url());
    let shanghai = ApiClient::new(&fed.shanghai.http_url());
    let t = Instant::now();
    let first = loop {
        let (_, answer) = post_select(&national, &body);
        if let Some(h) = hop_figures(&answer) {
            let by_node = |n: &str| {
                answer["candidates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["node"] == n)
                    .count()
            };
            let answered = |hops: &serde_json::Value, n: &str| {
                hop(hops, n).is_some_and(|h| h["candidates"].as_u64() > Some(0))
            };
            let sh = hop(&answer["hops"], "86.31").unwrap();
            if by_node("86") > 0
                && answered(&answer["hops"], "86.31")
                && answered(&sh["hops"], "86.31.1005")
                && h.iter().all(|v| v.is_finite())
            {
                break answer;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the national node never selected across all three nodes"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let nodes: Vec<&str> = first["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["node"].as_str().unwrap())
        .collect();
    println!(
        "requirement {want}: the national node takes candidates from all three after {:.1} s; \"{}\"; answered candidates by node: 86 ×{}, 86.31 ×{}, 86.31.1005 ×{}",
        t.elapsed().as_secs_f64(),
        first["explanation"].as_str().unwrap_or(""),
        nodes.iter().filter(|n| **n == "86").count(),
        nodes.iter().filter(|n| **n == "86.31").count(),
        nodes.iter().filter(|n| **n == "86.31.1005").count(),
    );
    // Warm connections and the directory's cache of child records.
    for _ in 0..10 {
        post_select(&national, &body);
    }
    let now = cpid::clock::system_now();
    let req = Requirement::parse(&body, now).unwrap();
    let members = [
        ("86", &fed.national),
        ("86.31", &fed.shanghai),
        ("86.31.1005", &fed.industry),
    ];
    let mut total = Vec::new();
    let mut hops: [Vec<f64>; 5] = Default::default();
    let mut rest = Vec::new();
    let mut alone_industry = Vec::new();
    let mut alone_shanghai = Vec::new();
    let mut own: [Vec<Duration>; 3] = Default::default();
    // What every federated selection reads first to route: each child's
    // subtree totals, merged from the summaries held.
    let routers = [("86", &fed.national), ("86.31", &fed.shanghai)];
    let mut routing: [Vec<Duration>; 2] = Default::default();
    let mut routing_rows = [0usize; 2];
    let mut incomplete = 0usize;
    for _ in 0..a.requests {
        let (took, answer) = post_select(&national, &body);
        match hop_figures(&answer) {
            Some(h) => {
                total.push(took);
                rest.push(ms(took) - h[0] - h[1]);
                for (v, x) in hops.iter_mut().zip(h) {
                    v.push(x);
                }
            }
            None => incomplete += 1,
        }
        alone_industry.push(post_select(&industry, &body).0);
        alone_shanghai.push(post_select(&shanghai, &body).0);
        for (i, (_, m)) in members.iter().enumerate() {
            let t = Instant::now();
            let mut s = m.node.selector.select(&req, now, &Own(m));
            s.finish(
                &req,
                m.node.selector.config().latency_scale_ms,
                m.node.selector.limit(&req),
            );
            own[i].push(t.elapsed());
            std::hint::black_box(&s);
        }
        for (i, (_, m)) in routers.iter().enumerate() {
            let t = Instant::now();
            let seen = std::cell::Cell::new(0usize);
            let routes = m.node.capacity.rollup.route(now, |r| {
                seen.set(seen.get() + r.units.len() + r.peaks.len());
                r.units.iter().any(|u| u.units_available.fresh > 0)
            });
            routing[i].push(t.elapsed());
            std::hint::black_box(&routes);
            routing_rows[i] = seen.get();
        }
    }
    assert!(!total.is_empty(), "no answer reached all three nodes");
    println!();
    println!("| figure (ms) | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    let row = |name: &str, (p50, p99, max): (f64, f64, f64)| {
        println!("| {name} | {p50:.2} | {p99:.2} | {max:.2} |");
    };
    row(
        &format!(
            "POST /v1/select at 86, total at the client ({} of {})",
            total.len(),
            a.requests
        ),
        spread(&mut total),
    );
    let names = [
        "hop 86 local (its own selection)",
        "hop 86.31 answered, as seen at 86",
        "  hop 86.31 local",
        "  hop 86.31.1005 answered, as seen at 86.31",
        "    hop 86.31.1005 local",
    ];
    for (name, v) in names.iter().zip(hops.iter_mut()) {
        row(name, spread_ms(v));
    }
    row(
        "at 86 outside both hops (verify, merge, rank, HTTP, JSON)",
        spread_ms(&mut rest),
    );
    row(
        "POST /v1/select at 86.31.1005 alone (no child)",
        spread(&mut alone_industry),
    );
    row(
        "POST /v1/select at 86.31 (with its child)",
        spread(&mut alone_shanghai),
    );
    for ((name, m), v) in members.iter().zip(own.iter_mut()) {
        let (n, _) = m.node.selector.len();
        row(
            &format!("{name}: its own selector in process, select + finish ({n} offers)"),
            spread(v),
        );
    }
    for ((name, _), (v, rows)) in routers.iter().zip(routing.iter_mut().zip(routing_rows)) {
        row(
            &format!("{name}: Rollup::route, the routing read of each selection ({rows} rows)"),
            spread(v),
        );
    }
    if incomplete > 0 {
        println!("{incomplete} answers did not reach every node (left out above)");
    }
    rt.block_on(fed.shutdown()).unwrap();
}

fn main() {
    let a = args();
    println!("selection benchmark on {}", machine());
    let t = Instant::now();
    in_process(&a);
    federated(&a);
    println!();
    println!(
        "done in {:.0} s; load average now {}",
        t.elapsed().as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
