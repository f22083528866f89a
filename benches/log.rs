//! The transparency log at scale: a log of `--leaves` leaves (default
//! 1 000 000) in a redb store on disk, and what the node's log reads cost
//! at that size.
//!
//!     cargo bench --bench log -- [--leaves N] [--batch N] [--samples N] [--tile-samples N]
//!
//! 1. Append and integrate: real signed records (an IC pool with its
//!    descriptor and endpoint, ~340-byte leaves made by
//!    `tlog::entry::leaf`) are signed untimed, then written `--batch` leaves
//!    (default 1 000) per `store.write` (one durable commit), each batch
//!    followed by `Log::integrate()` (its hashes, index rows and signed
//!    checkpoint: a second commit). Both are timed per batch.
//! 2. At the full size, `--samples` (default 10 000) random leaves'
//!    inclusion proofs and random (m, n) consistency proofs, each alone and
//!    as the HTTP routes answer them (with the roots they send), and
//!    `--tile-samples` (default 2 000) full level-0 and level-1 hash tiles
//!    and entry bundles, all read from the stored rows. Each operation of a
//!    round takes its own random input (none finds its pages warmed by the
//!    one before). Every proof is verified, untimed, against the roots the
//!    log gives.
//! 3. The reference, interleaved with (2) in the same run: one stored-hash
//!    row read, `store.row(log.hash, [level][index])`, at random indices.
//!    Figures are given in units of its p50 as well, so they read as "a
//!    proof costs k row reads"; the store is wrapped to count the rows each
//!    operation really reads.
//!
//! The store keeps redb's default cache of the node (32 MiB); the rest of
//! the file is in the OS page cache or on disk, as on a node.

// A benchmark is a test harness: it stops on the first failure.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cpid::ident::identifier::{Class, Identifier, Prefix, Serial};
use cpid::ident::keys::NodeKey;
use cpid::ident::record::{Record, RecordStatus, SignedRecord, Value, ValueType};
use cpid::store::redb::RedbStore;
use cpid::store::{BackupInfo, Done, Store, StoreError, Table, WriteBatch};
use cpid::tlog::log::{HASHES, Log};
use cpid::tlog::merkle;
use cpid::tlog::tile::{self, Tile};

struct Args {
    leaves: u64,
    batch: u64,
    samples: usize,
    tile_samples: usize,
}

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
        leaves: value("--leaves", 1_000_000).max(2),
        batch: value("--batch", 1000).max(1),
        samples: value("--samples", 10_000).max(10) as usize,
        tile_samples: value("--tile-samples", 2000).max(10) as usize,
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
}

/// The store, counting the single rows read through it.
struct Counting {
    inner: RedbStore,
    rows: AtomicU64,
}

impl Counting {
    fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}

impl Store for Counting {
    fn submit(&self, batch: WriteBatch, done: Done) {
        self.inner.submit(batch, done)
    }
    fn get(&self, id: &Identifier) -> Result<Option<SignedRecord>, StoreError> {
        self.inner.get(id)
    }
    fn for_each_record(
        &self,
        f: &mut dyn FnMut(SignedRecord) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.inner.for_each_record(f)
    }
    fn serial(&self, prefix: &Prefix, class: Class) -> Result<u64, StoreError> {
        self.inner.serial(prefix, class)
    }
    fn zone_serial(&self) -> Result<u32, StoreError> {
        self.inner.zone_serial()
    }
    fn len(&self) -> Result<u64, StoreError> {
        self.inner.len()
    }
    fn nonce_answer(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.nonce_answer(key)
    }
    fn row(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.rows.fetch_add(1, Ordering::Relaxed);
        self.inner.row(table, key)
    }
    fn scan_rows(
        &self,
        table: Table,
        start: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan_rows(table, start, f)
    }
    fn log_size(&self) -> Result<u64, StoreError> {
        self.inner.log_size()
    }
    fn backup(&self, out: &std::path::Path) -> Result<BackupInfo, StoreError> {
        self.inner.backup(out)
    }
    fn log_entries(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.log_entries(start, f)
    }
}

/// The leaves of records `from..to`: IC pools under 86.31, signed by `key`.
fn leaves(key: &NodeKey, from: u64, to: u64) -> Vec<Vec<u8>> {
    let prefix = Prefix::parse("86.31").unwrap();
    let at = 1_800_000_000;
    let value = |index: u32, kind: &str, data: String| Value {
        index,
        kind: ValueType::parse(kind).unwrap(),
        data,
        ttl: 0,
        timestamp: at,
    };
    (from..to)
        .map(|i| {
            let cards = 8 << (i % 4);
            let record = Record {
                identifier: Identifier::new(prefix.clone(), Class::Ic, Serial::new(i + 1).unwrap()),
                owner: None,
                version: 1,
                status: RecordStatus::Active,
                issuer: key.public().key_id(),
                created: at,
                updated: at,
                values: vec![
                    value(
                        1,
                        "CP.RESOURCE",
                        format!(
                            r#"{{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":{cards},"devices":[{{"model":"A800","count":{cards},"peak_tflops":{{"fp16":312}}}}]}}"#
                        ),
                    ),
                    value(2, "CP.ENDPOINT", format!("https://pool-{i}.bench.example/v1")),
                ],
            }
            .sign(key)
            .unwrap();
            cpid::tlog::entry::leaf(&record, false)
        })
        .collect()
}

/// A random (m, n) with 1 ≤ m ≤ n ≤ size.
fn pair(rng: &mut Rng, size: u64) -> (u64, u64) {
    let (x, y) = (1 + rng.below(size), 1 + rng.below(size));
    (x.min(y), x.max(y))
}

fn hash_key(level: u8, index: u64) -> Vec<u8> {
    let mut k = vec![level];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// p50, p99 and max of `d`, in µs.
fn spread(d: &mut [Duration]) -> (f64, f64, f64) {
    d.sort();
    let at = |p: f64| {
        let i = ((d.len() as f64 - 1.0) * p).round() as usize;
        d[i.min(d.len() - 1)].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99), at(1.0))
}

/// One timed operation: its samples and the rows it read.
struct Timed {
    name: &'static str,
    times: Vec<Duration>,
    rows: Vec<u64>,
}

impl Timed {
    fn new(name: &'static str) -> Timed {
        Timed {
            name,
            times: Vec::new(),
            rows: Vec::new(),
        }
    }

    fn time<T>(&mut self, store: &Counting, f: impl FnOnce() -> T) -> T {
        let rows = store.rows();
        let t = Instant::now();
        let out = f();
        self.times.push(t.elapsed());
        self.rows.push(store.rows() - rows);
        std::hint::black_box(&out);
        out
    }
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

fn main() {
    let a = args();
    println!("log benchmark on {}", machine());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("store.redb");
    let store = Arc::new(Counting {
        inner: RedbStore::open(&file).unwrap(),
        rows: AtomicU64::new(0),
    });
    let key = NodeKey::generate().unwrap();
    let log = Log::open(store.clone(), &key, "bench.example/log").unwrap();

    // 1. Append and integrate.
    println!();
    println!(
        "## 1. Append and integrate {} leaves, {} per batch",
        a.leaves, a.batch
    );
    let (mut writes, mut integrations) = (Vec::new(), Vec::new());
    let mut signing = Duration::ZERO;
    let mut leaf_bytes = 0u64;
    let started = Instant::now();
    let mut at = 0;
    while at < a.leaves {
        let to = (at + a.batch).min(a.leaves);
        let t = Instant::now();
        let batch = leaves(&key, at, to);
        signing += t.elapsed();
        leaf_bytes += batch.iter().map(|l| l.len() as u64).sum::<u64>();
        let t = Instant::now();
        let written = store
            .write(WriteBatch {
                leaves: batch,
                ..WriteBatch::default()
            })
            .unwrap();
        let t1 = Instant::now();
        assert_eq!(log.integrate().unwrap(), to);
        let t2 = Instant::now();
        assert_eq!(written.leaves, at..to);
        writes.push(t1 - t);
        integrations.push(t2 - t1);
        at = to;
        if at % (a.leaves / 10).max(a.batch) < a.batch {
            eprintln!("  {at} leaves, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    let total = started.elapsed();
    let per_k = 1000.0 / a.batch as f64;
    let sum = |d: &[Duration]| d.iter().map(Duration::as_secs_f64).sum::<f64>();
    let tenth = (writes.len() / 10).max(1);
    let both = |range: std::ops::Range<usize>| {
        (sum(&writes[range.clone()]) + sum(&integrations[range.clone()])) / range.len() as f64
            * per_k
            * 1e3
    };
    let (first_tenth, last_tenth) = (both(0..tenth), both(writes.len() - tenth..writes.len()));
    let all_writes = sum(&writes);
    let all_integrations = sum(&integrations);
    let (w50, w99, wmax) = spread(&mut writes);
    let (i50, i99, imax) = spread(&mut integrations);
    let size = log.latest().size;
    let file_bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
    println!(
        "{size} leaves of {:.0} bytes on average ({:.0} MB of leaves), store file {:.0} MB; signing the records (untimed) took {:.0} s, everything {:.0} s",
        leaf_bytes as f64 / size as f64,
        leaf_bytes as f64 / 1e6,
        file_bytes as f64 / 1e6,
        signing.as_secs_f64(),
        total.as_secs_f64()
    );
    println!();
    println!(
        "| per {} leaves | p50 (ms) | p99 (ms) | max (ms) | mean per 1 000 leaves (ms) |",
        a.batch
    );
    println!("|---|---:|---:|---:|---:|");
    let n = writes.len() as f64;
    println!(
        "| write (one commit) | {:.2} | {:.2} | {:.2} | {:.2} |",
        w50 / 1e3,
        w99 / 1e3,
        wmax / 1e3,
        all_writes / n * per_k * 1e3
    );
    println!(
        "| integrate (hash, index, sign, one commit) | {:.2} | {:.2} | {:.2} | {:.2} |",
        i50 / 1e3,
        i99 / 1e3,
        imax / 1e3,
        all_integrations / n * per_k * 1e3
    );
    println!();
    println!(
        "append + integrate per 1 000 leaves: {:.2} ms on average, {first_tenth:.2} ms over the first tenth of the log, {last_tenth:.2} ms over the last ({:.0} leaves/s)",
        (all_writes + all_integrations) / n * per_k * 1e3,
        size as f64 / (all_writes + all_integrations)
    );

    // 2 and 3. Reads at the full size, the row read interleaved.
    let latest = log.latest();
    assert_eq!(latest.root, log.root(size).unwrap());
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let mut row = Timed::new("row read (`store.row`), the reference");
    let mut inclusion = Timed::new("inclusion proof");
    let mut inclusion_served = Timed::new("inclusion as served (leaf, proof, root)");
    let mut consistency = Timed::new("consistency proof");
    let mut consistency_served = Timed::new("consistency as served (proof, two roots)");
    // Each operation gets its own random input, so none reads pages the
    // one before it has just brought into the cache; checks are untimed.
    for _ in 0..a.samples {
        let key = hash_key(0, rng.below(size));
        let got = row.time(&store, || store.row(HASHES, &key).unwrap());
        assert_eq!(got.map(|v| v.len()), Some(32));

        let i = rng.below(size);
        let proof = inclusion.time(&store, || log.inclusion(i, size).unwrap());
        let leaf = merkle::leaf_hash(&log.leaf(i).unwrap().unwrap());
        merkle::verify_inclusion(i, size, &leaf, &proof, &latest.root).unwrap();

        let i = rng.below(size);
        let (leaf, proof, root) = inclusion_served.time(&store, || {
            (
                log.leaf(i).unwrap().unwrap(),
                log.inclusion(i, size).unwrap(),
                log.root(size).unwrap(),
            )
        });
        merkle::verify_inclusion(i, size, &merkle::leaf_hash(&leaf), &proof, &root).unwrap();

        let (m, n) = pair(&mut rng, size);
        let proof = consistency.time(&store, || log.consistency(m, n).unwrap());
        let (root_m, root_n) = (log.root(m).unwrap(), log.root(n).unwrap());
        merkle::verify_consistency(m, n, &root_m, &root_n, &proof).unwrap();

        let (m, n) = pair(&mut rng, size);
        let (proof, root_m, root_n) = consistency_served.time(&store, || {
            (
                log.consistency(m, n).unwrap(),
                log.root(m).unwrap(),
                log.root(n).unwrap(),
            )
        });
        merkle::verify_consistency(m, n, &root_m, &root_n, &proof).unwrap();
    }

    // Tiles: full ones only (partial ones are the same reads, fewer).
    let full0 = size / 256;
    let full1 = size / 65_536;
    let mut tile0 = Timed::new("level-0 tile (256 hashes)");
    let mut tile1 = Timed::new("level-1 tile (256 hashes)");
    let mut bundle = Timed::new("entry bundle (256 leaves)");
    for _ in 0..a.tile_samples {
        let key = hash_key(0, rng.below(size));
        row.time(&store, || store.row(HASHES, &key).unwrap());
        if full0 > 0 {
            let t = Tile {
                level: 0,
                index: rng.below(full0),
                width: tile::FULL_WIDTH,
            };
            let bytes = tile0.time(&store, || log.tile(&t).unwrap().unwrap());
            assert_eq!(bytes.len(), 256 * 32);
            let index = rng.below(full0);
            let b = bundle.time(&store, || log.bundle(index, 256).unwrap().unwrap());
            let entries = tile::parse_entry_bundle(&b).unwrap();
            assert_eq!(entries.len(), 256);
            // The bundle's entries hash to its level-0 tile.
            let t = Tile { index, ..t };
            assert_eq!(
                log.tile(&t).unwrap().unwrap()[..32],
                merkle::leaf_hash(entries[0])
            );
        }
        if full1 > 0 {
            let t = Tile {
                level: 1,
                index: rng.below(full1),
                width: tile::FULL_WIDTH,
            };
            let bytes = tile1.time(&store, || log.tile(&t).unwrap().unwrap());
            assert_eq!(bytes.len(), 256 * 32);
        }
    }

    let (r50, _, _) = spread(&mut row.times.clone());
    println!();
    println!(
        "## 2. Reads at {size} leaves: {} random proofs of each kind, {} random full tiles of each kind",
        a.samples, a.tile_samples
    );
    println!();
    println!(
        "| operation | samples | p50 (µs) | p99 (µs) | max (µs) | p50 / row read p50 | p99 / row read p50 | rows read (mean / max) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst = (0.0, "");
    for t in [
        &mut row,
        &mut inclusion,
        &mut inclusion_served,
        &mut consistency,
        &mut consistency_served,
        &mut tile0,
        &mut tile1,
        &mut bundle,
    ] {
        if t.times.is_empty() {
            println!("| {} | 0 | – | – | – | – | – | – |", t.name);
            continue;
        }
        let (p50, p99, max) = spread(&mut t.times);
        let rows_mean = t.rows.iter().sum::<u64>() as f64 / t.rows.len() as f64;
        let rows_max = t.rows.iter().max().copied().unwrap_or(0);
        if (t.name.contains("proof") || t.name.contains("served")) && p99 > worst.0 {
            worst = (p99, t.name);
        }
        println!(
            "| {} | {} | {p50:.1} | {p99:.1} | {max:.1} | {:.1} | {:.1} | {rows_mean:.1} / {rows_max} |",
            t.name,
            t.times.len(),
            p50 / r50,
            p99 / r50,
        );
    }
    println!();
    println!(
        "Worst proof p99: {:.3} ms ({}); goal ≤ 1 ms at 1 M leaves. Tiles and bundles are scans of stored rows (rows read 0: no single-row reads), nothing is rebuilt.",
        worst.0 / 1e3,
        worst.1
    );
    println!(
        "load average now {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
}
