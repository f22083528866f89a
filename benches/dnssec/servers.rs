//! The servers under test, each pinned to CPU 0 (`taskset -c 0`, which
//! every thread inherits) in its own scratch directory on a reserved
//! loopback port, killed and its directory removed when dropped: `cpid
//! serve` over a copy of the seeded store with a configuration of the
//! section's choosing, and Knot with `mod-onlinesign` over the exported
//! zone.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cpid::api::client::ApiClient;
use cpid::testkit::secondaries::{QTYPE_SOA, ScratchDir, find_tool, loopback, reserve_port};
use hickory_proto::op::{Message, ResponseCode};

use crate::common::{cpu_seconds, metric};
use crate::queries::{CPID, Seeded};
use crate::{Mix, dnsperf};

/// The configuration `compare.py` runs cpid with: dnsperf is one source,
/// so loopback is kept out of response-rate limiting. Signing is on (the
/// default).
pub const BENCH_CONF: &str = "[dns.rrl]\nwhitelist = [\"127.0.0.0/8\"]\n";

/// How long a server may take to come up (a million identifiers load in
/// seconds; a busy machine stretches that).
const START_DEADLINE: Duration = Duration::from_secs(300);

/// A server a dnsperf run can be pointed at.
pub trait Server {
    fn name(&self) -> &str;
    fn port(&self) -> u16;
    fn pid(&self) -> u32;
    /// DNSSEC signatures made so far, where the server counts them.
    fn signatures(&self) -> Option<f64>;
}

// ---------------------------------------------------------------------------
// cpid
// ---------------------------------------------------------------------------

/// `cpid serve` over its own copy of the seeded store.
pub struct Cpid {
    name: String,
    port: u16,
    http: String,
    child: Child,
    /// Last: removed after the process has been killed.
    _dir: ScratchDir,
}

impl Cpid {
    /// Starts a node called `name` (in the tables) with `conf` as its
    /// configuration file and waits for its ready line.
    pub fn start(seeded: &Seeded, name: &str, conf: &str) -> Cpid {
        let dir = seeded.copy();
        let conf_path = dir.path().join("bench.toml");
        std::fs::write(&conf_path, conf).unwrap();
        let port = reserve_port();
        let mut child = spawn_cpid(&dir.path().join("data"), &conf_path, port, Stdio::piped());
        let (tx, rx) = mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        std::thread::spawn(move || {
            for line in lines.by_ref().map_while(Result::ok) {
                if line.contains("cpid serving zone") {
                    let _ = tx.send(line);
                    break;
                }
            }
            lines.for_each(drop);
        });
        let ready = rx
            .recv_timeout(START_DEADLINE)
            .unwrap_or_else(|_| panic!("cpid ({name}) did not come up: {:?}", child.try_wait()));
        let at = ready
            .find("http://")
            .expect("the ready line names the HTTP address");
        let http = ready[at..].split(' ').next().unwrap().to_string();
        let node = Cpid {
            name: name.to_string(),
            port,
            http,
            child,
            _dir: dir,
        };
        assert!(
            answers_soa(loopback(port), &seeded.apex),
            "cpid ({name}) does not answer its SOA on port {port}"
        );
        node
    }

    /// A metric's value now, summed over its series (`/metrics`).
    pub fn metric(&self, name: &str) -> f64 {
        metric(
            &ApiClient::new(&self.http).get("/metrics").unwrap().text,
            name,
        )
    }

    /// One pass over the query file of each of `mixes` with DO, so that
    /// signing on first use has signed every RRset the files ask for and
    /// the denial cache holds what it can before anything is measured.
    pub fn warm(&self, seeded: &Seeded, mixes: &[Mix]) {
        let t = Instant::now();
        let before = self.signatures().unwrap_or(0.0);
        for &mix in mixes {
            let r = dnsperf::warm_up(self.port, seeded.queries(mix));
            assert!(
                r.lost_pct < 1.0,
                "warm-up of cpid ({}) lost {:.1} % of {} queries",
                self.name,
                r.lost_pct,
                mix.name()
            );
        }
        println!(
            "warmed cpid ({}): one pass with DO over the query files of {}, {:.0} signatures made, {:.1?}",
            self.name,
            mixes
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>()
                .join(", "),
            self.signatures().unwrap_or(0.0) - before,
            t.elapsed()
        );
    }
}

impl Server for Cpid {
    fn name(&self) -> &str {
        &self.name
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn signatures(&self) -> Option<f64> {
        Some(self.metric("cpid_dnssec_signatures_total"))
    }
}

impl Drop for Cpid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `taskset -c 0 cpid serve` over `data` with `conf`, DNS on
/// 127.0.0.1:`port`, one UDP thread, stdout dropped and stderr to
/// `stderr`.
pub fn spawn_cpid(data: &Path, conf: &Path, port: u16, stderr: Stdio) -> Child {
    Command::new(tool("taskset"))
        .args(["-c", "0", CPID, "serve", "--config"])
        .arg(conf)
        .arg("--data")
        .arg(data)
        .args(["--dns", &format!("127.0.0.1:{port}")])
        .args(["--http", "127.0.0.1:0", "--udp-workers", "1"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start cpid: {e}"))
}

// ---------------------------------------------------------------------------
// Knot
// ---------------------------------------------------------------------------

/// knotd serving the exported zone, signing every answer to a query with
/// DO on the fly (`mod-onlinesign`, Ed25519, its own key).
pub struct Knot {
    port: u16,
    child: Child,
    log: PathBuf,
    /// Last: removed after the process has been killed.
    _dir: ScratchDir,
}

impl Knot {
    pub fn start(seeded: &Seeded) -> Knot {
        let zone = seeded
            .knot_zone
            .as_ref()
            .expect("the zone is exported for Knot");
        let dir = ScratchDir::new("knot-onlinesign");
        let port = reserve_port();
        let conf = dir.path().join("knot.conf");
        std::fs::write(&conf, knot_conf(dir.path(), port, &seeded.apex, zone)).unwrap();
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        let log = dir.path().join("knot.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(tool("taskset"))
            .args(["-c", "0"])
            .arg(tool("knotd"))
            .arg("-c")
            .arg(&conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start knotd: {e}"));
        let mut knot = Knot {
            port,
            child,
            log,
            _dir: dir,
        };
        // Signed SOA (SOA and its RRSIG): the zone is loaded and the key made.
        let end = Instant::now() + START_DEADLINE;
        while soa_answer_count(loopback(port), &seeded.apex, true).unwrap_or(0) < 2 {
            if let Ok(Some(status)) = knot.child.try_wait() {
                panic!("knotd exited ({status}); log:\n{}", knot.log());
            }
            assert!(
                Instant::now() < end,
                "Knot does not serve a signed SOA after {START_DEADLINE:?}; log:\n{}",
                knot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        knot
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Server for Knot {
    fn name(&self) -> &str {
        "knot"
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn pid(&self) -> u32 {
        self.child.id()
    }
    fn signatures(&self) -> Option<f64> {
        None
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `compare.py`'s Knot (one UDP, one TCP and one background worker, no
/// zone file writes, no journal, no semantic checks) with an Ed25519
/// policy and a `mod-onlinesign` instance on the zone. Knot wants the
/// policy and the module instance defined before the zone that uses
/// them; its KASP database (the key) lives under `database.storage`.
fn knot_conf(dir: &Path, port: u16, apex: &str, zone: &Path) -> String {
    let d = dir.display();
    let z = zone.display();
    format!(
        "server:
    rundir: \"{d}\"
    pidfile: \"{d}/knot.pid\"
    listen: 127.0.0.1@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: \"{d}/db\"
log:
  - target: stderr
    any: warning
policy:
  - id: ed
    algorithm: ed25519
mod-onlinesign:
  - id: sign
    policy: ed
template:
  - id: default
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
zone:
  - domain: {apex}
    file: \"{z}\"
    module: mod-onlinesign/sign
"
    )
}

// ---------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------

fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("{name} is not installed"))
}

/// CPU seconds (user + system) the server has used so far.
pub fn cpu(server: &dyn Server) -> f64 {
    cpu_seconds(server.pid())
}

/// The server at `addr` answers an SOA query for `apex` with NOERROR and
/// the SOA (one try, 200 ms).
pub fn answers_soa(addr: SocketAddr, apex: &str) -> bool {
    soa_answer_count(addr, apex, false).is_some_and(|n| n > 0)
}

/// The number of answer records (the SOA, and its RRSIG with `dnssec`)
/// in a NOERROR answer to an SOA query for `apex`, one try of 200 ms.
fn soa_answer_count(addr: SocketAddr, apex: &str, dnssec: bool) -> Option<usize> {
    let mut q = cpid::testkit::secondaries::udp_query(0x5e5e, apex, QTYPE_SOA);
    if dnssec {
        // The OPT record ends the query: flags, then RDLENGTH 0; DO is
        // the top bit of the flags.
        let at = q.len() - 4;
        q[at] |= 0x80;
    }
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    sock.connect(addr).ok()?;
    sock.send(&q).ok()?;
    let mut buf = vec![0u8; 65_535];
    let n = sock.recv(&mut buf).ok()?;
    let msg = Message::from_vec(buf.get(..n)?).ok()?;
    (msg.metadata.response_code == ResponseCode::NoError).then_some(msg.answers.len())
}
