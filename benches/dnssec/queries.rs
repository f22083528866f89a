//! The data every server answers from: a store seeded once with N
//! identifiers, its zone exported as a master file (without cpid's DNSKEY
//! for Knot, which signs with a key of its own), and the three dnsperf
//! query files drawn from that zone with a fixed seed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use cpid::testkit::secondaries::ScratchDir;

use crate::Mix;
use crate::common::{copy_dir, run};

pub const CPID: &str = env!("CARGO_BIN_EXE_cpid");

/// Lines in each query file (dnsperf starts over at the end).
const QUERIES: usize = 200_000;
/// Made-up names the nx file draws from, at most.
const MISSING: usize = 20_000;
/// Types an identifier's name lacks, tried in this order for nodata.
const LACKING: [&str; 4] = ["AAAA", "MX", "CAA", "SRV"];

/// A seeded store, its zone and the query files, in one scratch directory.
pub struct Seeded {
    pub count: u64,
    /// The zone's apex, with the final dot.
    pub apex: String,
    /// The master file Knot loads (cpid's DNSKEY stripped); `None` when no
    /// section needs the zone.
    pub knot_zone: Option<PathBuf>,
    files: Vec<(Mix, PathBuf)>,
    dir: ScratchDir,
}

impl Seeded {
    /// Seeds `count` identifiers; exports the zone and writes the query
    /// files when `with_zone`.
    pub fn new(count: u64, with_zone: bool) -> Seeded {
        let dir = ScratchDir::new("cpid-dnssec-bench");
        let data = dir.path().join("data");
        let t = Instant::now();
        run(Command::new(CPID)
            .args(["bench", "seed", "--count", &count.to_string(), "--data"])
            .arg(&data));
        let seeded_in = t.elapsed();
        let mut seeded = Seeded {
            count,
            apex: String::new(),
            knot_zone: None,
            files: Vec::new(),
            dir,
        };
        if !with_zone {
            println!("seeded {count} identifiers in {seeded_in:.1?}");
            seeded.apex = apex_of(&data);
            return seeded;
        }
        let exported = seeded.dir.path().join("zone.db");
        run(Command::new(CPID)
            .args(["zone", "export", "--data"])
            .arg(&data)
            .arg("-o")
            .arg(&exported));
        let text = std::fs::read_to_string(&exported).unwrap();
        let zone = Zone::read(&text);
        let knot_zone = seeded.dir.path().join("knot-zone.db");
        let stripped: String = text
            .lines()
            .filter(|l| l.split_whitespace().nth(3) != Some("DNSKEY"))
            .flat_map(|l| [l, "\n"])
            .collect();
        std::fs::write(&knot_zone, stripped).unwrap();
        drop(text);
        std::fs::remove_file(&exported).unwrap();
        for (mix, lines) in zone.query_files(86) {
            let path = seeded
                .dir
                .path()
                .join(format!("queries-{}.txt", mix.name()));
            std::fs::write(&path, lines).unwrap();
            seeded.files.push((mix, path));
        }
        println!(
            "seeded {count} identifiers in {seeded_in:.1?}; zone {}: {} names, {} to query; \
             query files of {QUERIES} lines ready after {:.1?}",
            zone.apex,
            zone.names.len(),
            zone.owners().len(),
            t.elapsed()
        );
        seeded.apex = zone.apex;
        seeded.knot_zone = Some(knot_zone);
        seeded
    }

    /// The query file of `mix` ("name TYPE" lines).
    pub fn queries(&self, mix: Mix) -> &Path {
        self.files
            .iter()
            .find(|(m, _)| *m == mix)
            .map(|(_, p)| p.as_path())
            .expect("the query files are written with the zone")
    }

    /// A copy of the seeded data directory, as `data` in a new scratch
    /// directory, for one node to run on (the store is locked by the
    /// process that opens it).
    pub fn copy(&self) -> ScratchDir {
        let to = ScratchDir::new("cpid-dnssec-node");
        copy_dir(&self.dir.path().join("data"), &to.path().join("data"));
        to
    }
}

/// The apex of the zone a data directory serves (`cpid node info`).
fn apex_of(data: &Path) -> String {
    let out = Command::new(CPID)
        .args(["node", "info", "--data"])
        .arg(data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let zone = text
        .lines()
        .find_map(|l| l.strip_prefix("zone:"))
        .unwrap_or_else(|| panic!("cpid node info names no zone: {text}"))
        .trim();
    format!("{}.", zone.trim_end_matches('.'))
}

/// The names of an exported zone and the types each one has.
struct Zone {
    apex: String,
    names: BTreeMap<String, BTreeSet<String>>,
}

impl Zone {
    /// Reads `cpid zone export`'s master file: one record a line, absolute
    /// owner names, `$ORIGIN` first.
    fn read(text: &str) -> Zone {
        let apex = text
            .lines()
            .find_map(|l| l.strip_prefix("$ORIGIN"))
            .expect("the export starts with $ORIGIN")
            .trim()
            .to_string();
        let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with([';', '$', ' ', '\t']) || line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().take(4).collect();
            if let [owner, _ttl, "IN", rtype] = f[..] {
                let owner = if owner.ends_with('.') {
                    owner.to_string()
                } else {
                    format!("{owner}.{apex}")
                };
                names.entry(owner).or_default().insert(rtype.to_string());
            }
        }
        assert!(names.contains_key(&apex), "the export holds its apex");
        Zone { apex, names }
    }

    /// Names with data to ask for: not only SOA and NS, and not a
    /// delegation (which answers with a referral).
    fn owners(&self) -> Vec<(&str, Vec<&str>)> {
        self.names
            .iter()
            .filter(|(n, t)| **n == self.apex || !t.contains("NS"))
            .map(|(n, t)| {
                let data: Vec<&str> = t
                    .iter()
                    .map(String::as_str)
                    .filter(|t| !matches!(*t, "SOA" | "NS"))
                    .collect();
                (n.as_str(), data)
            })
            .filter(|(_, t)| !t.is_empty())
            .collect()
    }

    /// The pos, nx and nodata query files, drawn with `seed`.
    fn query_files(&self, seed: u64) -> Vec<(Mix, String)> {
        let mut rng = SplitMix(seed);
        let owners = self.owners();
        assert!(!owners.is_empty(), "the zone has no data names to query");
        let missing: Vec<String> = (0..MISSING.min(owners.len()))
            .map(|_| {
                let (owner, _) = owners[rng.below(owners.len())];
                let (first, rest) = owner.split_once('.').unwrap_or((owner, ""));
                format!("zz{}{first}.{rest}", rng.below(1_000_000_000))
            })
            .collect();
        let mut files = Vec::new();
        for mix in crate::MIXES {
            let mut out = String::with_capacity(QUERIES * 48);
            for _ in 0..QUERIES {
                match mix {
                    Mix::Pos => {
                        let (owner, types) = &owners[rng.below(owners.len())];
                        writeln!(out, "{owner} {}", types[rng.below(types.len())]).unwrap();
                    }
                    Mix::Nx => {
                        let name = &missing[rng.below(missing.len())];
                        let qtype = ["TXT", "A"][rng.below(2)];
                        writeln!(out, "{name} {qtype}").unwrap();
                    }
                    Mix::Nodata => {
                        let (owner, types) = &owners[rng.below(owners.len())];
                        let lacks = LACKING
                            .iter()
                            .find(|t| !types.contains(t))
                            .unwrap_or(&"NULL");
                        writeln!(out, "{owner} {lacks}").unwrap();
                    }
                }
            }
            files.push((mix, out));
        }
        files
    }
}

/// SplitMix64: a fixed seed gives the same query files on every run.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough below `n` for drawing query names.
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
