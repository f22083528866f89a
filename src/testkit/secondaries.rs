//! Stock secondaries (Knot DNS and NSD) following a primary over AXFR/IXFR
//! with TSIG (hmac-sha256) and NOTIFY, on loopback, each daemon in its own
//! temporary directory: the harness of the zone-transfer tests
//! (`tests/integration/secondaries.rs`, `transfer.rs`) and of the transfer
//! benchmark (`benches/transfer`).
//!
//! [`knot_secondary`] and [`nsd_secondary`] start a secondary of a given
//! primary address (with the default or the [`Settings::Tuned`] settings),
//! [`knot_primary`] starts the reference primary (Knot serving a zone file),
//! and [`time_axfr_into_knot`] is the reference side of the transfer
//! benchmark.
//!
//! Nothing runs as a system service and nothing is written outside the
//! temporary directories: every path in the configurations (run directory,
//! databases, journals, zone files, logs, pid and state files, the control
//! socket) points into the daemon's directory, and NSD is told not to chroot
//! or change user (`username: ""`, `chroot: ""`), so it also runs unprivileged.
//!
//! The daemons cannot bind port 0, so each gets a port reserved just before
//! it starts ([`reserve_port`]): free for UDP and TCP at that moment.
//! The daemons live in `/usr/sbin`, which a non-root `PATH` often lacks, so
//! they are looked up there as well ([`find_tool`]).
//!
//! A harness, not serving code: a daemon that cannot be started or a file
//! that cannot be written stops the test or benchmark with a message.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RData;

/// How long the harness waits for a daemon to answer, a transfer to land, …
pub const DEADLINE: Duration = Duration::from_secs(30);

pub const QTYPE_A: u16 = 1;
pub const QTYPE_NS: u16 = 2;
pub const QTYPE_SOA: u16 = 6;
pub const QTYPE_TXT: u16 = 16;

// ---------------------------------------------------------------------------
// Tools
// ---------------------------------------------------------------------------

/// Where `tool` is: on `PATH`, or in the sbin directories Debian installs
/// daemons to (often missing from a non-root `PATH`).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("{name} is not installed"))
}

// ---------------------------------------------------------------------------
// Keys and ports
// ---------------------------------------------------------------------------

/// An hmac-sha256 TSIG key as both daemons and `kdig -y` take it.
#[derive(Clone, Debug)]
pub struct TsigSpec {
    /// The key's name (a domain name, written without the final dot).
    pub name: String,
    /// The shared secret, standard base64.
    pub secret_b64: String,
}

impl TsigSpec {
    /// A key called `name` with a fresh random 32-byte secret.
    pub fn random(name: &str) -> TsigSpec {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        TsigSpec {
            name: name.to_string(),
            secret_b64: base64::engine::general_purpose::STANDARD.encode(secret),
        }
    }

    /// The same key name with another random secret.
    pub fn with_other_secret(&self) -> TsigSpec {
        TsigSpec::random(&self.name)
    }

    /// `kdig -y` / `dig -y` argument.
    pub fn dig_arg(&self) -> String {
        format!("hmac-sha256:{}:{}", self.name, self.secret_b64)
    }
}

/// A loopback port free for both UDP and TCP just now. The socket is closed
/// again before this returns, so another process could take the port before
/// the daemon binds it; the window is short and the ports random.
pub fn reserve_port() -> u16 {
    crate::testkit::federation::free_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// 127.0.0.1:`port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

// ---------------------------------------------------------------------------
// A running daemon
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Knot,
    Nsd,
}

/// A Knot or NSD process serving one zone from its own temporary directory,
/// killed (and waited for) on drop.
pub struct Secondary {
    kind: Kind,
    zone: String,
    addr: SocketAddr,
    conf: PathBuf,
    log: PathBuf,
    output: PathBuf,
    child: RefCell<Option<Child>>,
    /// Last field: the directory goes after the process has stopped.
    dir: ScratchDir,
}

impl Secondary {
    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.borrow().as_ref().map(Child::id)
    }

    /// Where it answers DNS, over UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "knot" or "nsd".
    pub fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Knot => "knot",
            Kind::Nsd => "nsd",
        }
    }

    /// The zone it serves (or is to serve), with the final dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Its temporary directory (configuration, zone file, journal, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its configuration file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The raw response to one UDP query, EDNS(0) with a 1232-byte payload
    /// and DO clear (see [`differential`]); empty when it did not answer.
    pub fn query(&self, name: &str, qtype: u16) -> Vec<u8> {
        query_raw(self.addr, name, qtype).unwrap_or_default()
    }

    /// The SOA serial of the zone it serves now: an authoritative NOERROR
    /// answer with the SOA, or `None` (no zone yet, not answering).
    pub fn serial(&self) -> Option<u32> {
        let msg = Message::from_vec(&query_raw(self.addr, &self.zone, QTYPE_SOA)?).ok()?;
        if msg.metadata.response_code != ResponseCode::NoError || !msg.metadata.authoritative {
            return None;
        }
        msg.answers.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
    }

    /// Polls [`Secondary::serial`] until it is at least `at_least` (serial
    /// arithmetic is not needed: the tests only count up from small serials).
    pub fn wait_serial(&self, at_least: u32, deadline: Duration) -> Result<u32, String> {
        let end = Instant::now() + deadline;
        let mut last = None;
        loop {
            last = self.serial().or(last);
            if let Some(s) = last.filter(|s| *s >= at_least) {
                return Ok(s);
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "{} on {} exited ({status}) before serving serial {at_least}; log:\n{}",
                    self.kind(),
                    self.addr,
                    self.log()
                ));
            }
            if Instant::now() >= end {
                return Err(format!(
                    "{} on {} serves serial {last:?}, not {at_least}, after {deadline:?}; log:\n{}",
                    self.kind(),
                    self.addr,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its log file and whatever it wrote to stdout/stderr, for assertion
    /// messages and log checks.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let out = std::fs::read_to_string(&self.output).unwrap_or_default();
        if out.trim().is_empty() {
            log
        } else {
            format!("{log}--- stdout/stderr ---\n{out}")
        }
    }

    /// Stops the daemon: SIGTERM, then SIGKILL if it has not exited within
    /// five seconds; waits for it either way. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.get_mut().take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            // SIGTERM lets NSD stop its server and xfrd children too.
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let end = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }

    /// How it ended, once it has.
    fn exited(&self) -> Option<String> {
        let mut child = self.child.borrow_mut();
        match child.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Starts `program args` in `dir` and waits until it answers DNS.
    fn spawn(
        kind: Kind,
        zone: &str,
        port: u16,
        dir: ScratchDir,
        conf: PathBuf,
        program: PathBuf,
        args: &[&str],
    ) -> Secondary {
        let log = dir.path().join(match kind {
            Kind::Knot => "knot.log",
            Kind::Nsd => "nsd.log",
        });
        let output = dir.path().join("daemon.out");
        let out = std::fs::File::create(&output).unwrap();
        let child = Command::new(&program)
            .args(args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let server = Secondary {
            kind,
            zone: fqdn(zone),
            addr: loopback(port),
            conf,
            log,
            output,
            child: RefCell::new(Some(child)),
            dir,
        };
        server.wait_answering(DEADLINE);
        server
    }

    /// Until it answers a query for its zone at all (REFUSED or SERVFAIL
    /// before the first transfer are answers).
    fn wait_answering(&self, deadline: Duration) {
        let end = Instant::now() + deadline;
        loop {
            if query_raw(self.addr, &self.zone, QTYPE_SOA).is_some() {
                return;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "{} exited ({status}) before answering on {}; log:\n{}",
                    self.kind(),
                    self.addr,
                    self.log()
                );
            }
            assert!(
                Instant::now() < end,
                "{} does not answer on {} after {deadline:?}; log:\n{}",
                self.kind(),
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `zone` with exactly one final dot.
pub fn fqdn(zone: &str) -> String {
    format!("{}.", zone.trim_end_matches('.'))
}

/// The raw response to one UDP query for `name`/`qtype` (RD set, EDNS(0)
/// with a 1232-byte payload, DO clear) from `addr`: three tries of 500 ms;
/// `None` when none was answered.
pub fn query_raw(addr: SocketAddr, name: &str, qtype: u16) -> Option<Vec<u8>> {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).unwrap();
    let query = udp_query(u16::from_be_bytes(id), name, qtype);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.connect(addr).unwrap();
    let mut buf = vec![0u8; 65_535];
    for _ in 0..3 {
        sock.send(&query).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

/// Every message the server sends for `query` over one TCP connection,
/// until it has been quiet for `quiet`.
pub fn tcp_exchange(addr: SocketAddr, query: &[u8], quiet: Duration) -> Vec<Vec<u8>> {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = Vec::new();
    loop {
        let mut len = [0u8; 2];
        if s.read_exact(&mut len).is_err() {
            break;
        }
        let mut msg = vec![0; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut msg).unwrap();
        out.push(msg);
        s.set_read_timeout(Some(quiet)).unwrap();
    }
    out
}

/// A query for `name`/`qtype` as [`query_raw`] sends it, with message ID `id`.
pub fn udp_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(name.len() + 30);
    q.extend_from_slice(&id.to_be_bytes());
    // RD; one question, one additional record (OPT).
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    // OPT: root owner, type 41, payload 1232, version 0, no flags, no options.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    q
}

// ---------------------------------------------------------------------------
// Configurations
// ---------------------------------------------------------------------------

/// How a secondary turns a transfer into answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Settings {
    /// The daemons' defaults: Knot writes its zone file after every
    /// transfer (`zonefile-sync: 0`) and NSD gathers transfers for up to a
    /// second before its server processes reload (`xfrd-reload-timeout: 1`).
    #[default]
    Default,
    /// What the README recommends for secondaries that must follow a
    /// node's changes quickly: Knot `zonefile-sync: -1` (the journal keeps
    /// the changes, the zone file is not rewritten per change) and NSD
    /// `xfrd-reload-timeout: 0` (reload as soon as a transfer is in).
    Tuned,
}

/// The Knot configuration of a secondary of `primary` for `zone`, everything
/// under `dir`, answering on 127.0.0.1@`port`. Loopback may transfer the
/// secondary's copy out, so a test can compare it with the primary's.
pub fn knot_secondary_conf(
    dir: &Path,
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
) -> String {
    knot_secondary_conf_with(dir, port, zone, primary, key, Settings::Default)
}

/// [`knot_secondary_conf`] with `settings`.
pub fn knot_secondary_conf_with(
    dir: &Path,
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
    settings: Settings,
) -> String {
    let d = dir.display();
    let zone = fqdn(zone);
    let (ip, pport) = (primary.ip(), primary.port());
    let mut c = format!(
        "server:
    listen: 127.0.0.1@{port}
    rundir: {d}
database:
    storage: {d}
log:
  - target: {d}/knot.log
    any: debug
"
    );
    let key_line = knot_key_section(&mut c, key);
    write!(
        c,
        "remote:
  - id: primary
    address: {ip}@{pport}
{key_line}acl:
  - id: notify-from-primary
    address: {ip}
{key_line}    action: notify
  - id: copy-out
    address: 127.0.0.1
    action: transfer
zone:
  - domain: {zone}
    storage: {d}
    file: zone.db
    master: primary
    acl: [notify-from-primary, copy-out]
"
    )
    .unwrap();
    if settings == Settings::Tuned {
        c.push_str("    zonefile-sync: -1\n");
    }
    c
}

/// Appends the `key:` section when there is a key; returns the `    key: id`
/// line that remotes and ACLs then carry (empty without a key).
fn knot_key_section(c: &mut String, key: Option<&TsigSpec>) -> String {
    match key {
        Some(k) => {
            write!(
                c,
                "key:
  - id: {}
    algorithm: hmac-sha256
    secret: {}
",
                k.name, k.secret_b64
            )
            .unwrap();
            format!("    key: {}\n", k.name)
        }
        None => String::new(),
    }
}

/// The Knot configuration of the reference primary: `zone` from
/// `dir/zone.db`, transfers allowed from loopback (with the key when given),
/// NOTIFY (signed with the key) sent to every address in `notify`.
pub fn knot_primary_conf(
    dir: &Path,
    port: u16,
    zone: &str,
    key: Option<&TsigSpec>,
    notify: &[SocketAddr],
) -> String {
    let d = dir.display();
    let zone = fqdn(zone);
    let mut c = format!(
        "server:
    listen: 127.0.0.1@{port}
    rundir: {d}
database:
    storage: {d}
log:
  - target: {d}/knot.log
    any: debug
"
    );
    let key_line = knot_key_section(&mut c, key);
    if !notify.is_empty() {
        c.push_str("remote:\n");
        for (i, a) in notify.iter().enumerate() {
            write!(
                c,
                "  - id: secondary{i}
    address: {}@{}
{key_line}",
                a.ip(),
                a.port()
            )
            .unwrap();
        }
    }
    write!(
        c,
        "acl:
  - id: transfer
    address: 127.0.0.0/8
{key_line}    action: transfer
zone:
  - domain: {zone}
    storage: {d}
    file: zone.db
    acl: transfer
"
    )
    .unwrap();
    if !notify.is_empty() {
        let ids: Vec<String> = (0..notify.len()).map(|i| format!("secondary{i}")).collect();
        writeln!(c, "    notify: [{}]", ids.join(", ")).unwrap();
    }
    c
}

/// The NSD configuration of a secondary of `primary` for `zone`,
/// everything under `dir`, answering on 127.0.0.1@`port`.
///
/// `minimal-responses: yes`: by default NSD adds the zone's NS RRset to the
/// authority section of every positive answer, which Knot does not; with it
/// both answer alike and [`differential`] compares data, not style.
/// `rrl-ratelimit: 0`: NSD's response-rate limiting (on by default, 200
/// answers a second per /24) would drop or truncate answers to a long
/// differential run from 127.0.0.1. Loopback may transfer the secondary's
/// copy out, as with Knot.
pub fn nsd_secondary_conf(
    dir: &Path,
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
) -> String {
    nsd_secondary_conf_with(dir, port, zone, primary, key, Settings::Default)
}

/// [`nsd_secondary_conf`] with `settings`.
pub fn nsd_secondary_conf_with(
    dir: &Path,
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
    settings: Settings,
) -> String {
    let d = dir.display();
    let zone = fqdn(zone);
    let (ip, pport) = (primary.ip(), primary.port());
    let reload = match settings {
        Settings::Default => "",
        Settings::Tuned => "    xfrd-reload-timeout: 0\n",
    };
    let mut c = format!(
        "server:
    ip-address: 127.0.0.1@{port}
    do-ip6: no
    server-count: 1
    zonesdir: \"{d}\"
    pidfile: \"{d}/nsd.pid\"
    xfrdfile: \"{d}/xfrd.state\"
    xfrdir: \"{d}\"
    zonelistfile: \"{d}/zone.list\"
    cookie-secret-file: \"{d}/cookiesecrets.txt\"
    logfile: \"{d}/nsd.log\"
    database: \"\"
    username: \"\"
    chroot: \"\"
    verbosity: 2
    minimal-responses: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
{reload}remote-control:
    control-enable: no
"
    );
    let key_name = match key {
        Some(k) => {
            write!(
                c,
                "key:
    name: \"{}\"
    algorithm: hmac-sha256
    secret: \"{}\"
",
                k.name, k.secret_b64
            )
            .unwrap();
            k.name.clone()
        }
        None => "NOKEY".into(),
    };
    write!(
        c,
        "zone:
    name: \"{zone}\"
    zonefile: \"{d}/zone.db\"
    request-xfr: {ip}@{pport} {key_name}
    allow-notify: {ip} {key_name}
    provide-xfr: 127.0.0.1 NOKEY
"
    )
    .unwrap();
    c
}

// ---------------------------------------------------------------------------
// Starting daemons
// ---------------------------------------------------------------------------

/// A fresh directory under the system's temporary directory, removed (with
/// everything in it) when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `<tmp>/<prefix>-<random hex>`, created empty.
    pub fn new(prefix: &str) -> ScratchDir {
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).unwrap();
        let path = std::env::temp_dir().join(format!("{prefix}-{:016x}", u64::from_le_bytes(r)));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        ScratchDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(prefix: &str) -> ScratchDir {
    ScratchDir::new(prefix)
}

/// Knot as a secondary of `primary` for `zone` (transfers signed with `key`,
/// NOTIFY accepted from the primary's address with that key), answering on a
/// reserved loopback port once this returns.
pub fn knot_secondary(zone: &str, primary: SocketAddr, key: Option<&TsigSpec>) -> Secondary {
    knot_secondary_on(reserve_port(), zone, primary, key)
}

/// [`knot_secondary`] on a given port (one a primary already notifies).
pub fn knot_secondary_on(
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
) -> Secondary {
    knot_secondary_with(port, zone, primary, key, Settings::Default)
}

/// [`knot_secondary_on`] with `settings`.
pub fn knot_secondary_with(
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
    settings: Settings,
) -> Secondary {
    let dir = tempdir("knot-secondary");
    let conf = dir.path().join("knot.conf");
    std::fs::write(
        &conf,
        knot_secondary_conf_with(dir.path(), port, zone, primary, key, settings),
    )
    .unwrap();
    start_knot(zone, port, dir, conf)
}

fn start_knot(zone: &str, port: u16, dir: ScratchDir, conf: PathBuf) -> Secondary {
    let conf_arg = conf.to_str().unwrap().to_string();
    Secondary::spawn(
        Kind::Knot,
        zone,
        port,
        dir,
        conf,
        tool("knotd"),
        &["-c", &conf_arg],
    )
}

/// NSD as a secondary of `primary` for `zone`, as [`knot_secondary`].
pub fn nsd_secondary(zone: &str, primary: SocketAddr, key: Option<&TsigSpec>) -> Secondary {
    nsd_secondary_on(reserve_port(), zone, primary, key)
}

/// [`nsd_secondary`] on a given port.
pub fn nsd_secondary_on(
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
) -> Secondary {
    nsd_secondary_with(port, zone, primary, key, Settings::Default)
}

/// [`nsd_secondary_on`] with `settings`.
pub fn nsd_secondary_with(
    port: u16,
    zone: &str,
    primary: SocketAddr,
    key: Option<&TsigSpec>,
    settings: Settings,
) -> Secondary {
    let dir = tempdir("nsd-secondary");
    let conf = dir.path().join("nsd.conf");
    std::fs::write(
        &conf,
        nsd_secondary_conf_with(dir.path(), port, zone, primary, key, settings),
    )
    .unwrap();
    let conf_arg = conf.to_str().unwrap().to_string();
    Secondary::spawn(
        Kind::Nsd,
        zone,
        port,
        dir,
        conf,
        tool("nsd"),
        &["-d", "-c", &conf_arg],
    )
}

/// The reference primary: Knot serving a zone file.
pub struct Primary {
    server: Secondary,
}

impl std::ops::Deref for Primary {
    type Target = Secondary;
    fn deref(&self) -> &Secondary {
        &self.server
    }
}

impl Primary {
    /// Its zone file.
    pub fn zonefile(&self) -> PathBuf {
        self.server.dir().join("zone.db")
    }

    /// Replaces the zone file with `text` and has Knot load it
    /// (`knotc -c <conf> zone-reload <zone>`, over the control socket in the
    /// run directory; SIGHUP would reload the configuration as well). Knot
    /// then sends NOTIFY to the configured secondaries when the serial grew.
    pub fn set_zone(&self, text: &str) {
        std::fs::write(self.zonefile(), text).unwrap();
        let out = Command::new(tool("knotc"))
            .arg("-c")
            .arg(self.server.conf())
            .args(["zone-reload", self.server.zone()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "knotc zone-reload: {}{}; log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server.log()
        );
    }
}

/// Knot serving `zonefile_text` as the primary for `zone`, allowing AXFR/IXFR
/// from loopback (only with `key` when given) and sending NOTIFY (signed
/// with `key`) to `notify`. Returns once it serves the zone's SOA.
pub fn knot_primary(
    zone: &str,
    zonefile_text: &str,
    key: Option<&TsigSpec>,
    notify: &[SocketAddr],
) -> Primary {
    knot_primary_with(zone, zonefile_text, key, notify, "")
}

/// [`knot_primary`] with `zone_lines` added to the zone's section of the
/// configuration (e.g. `    module: mod-cookies\n`, for DNS cookies as
/// cpid answers them by default).
pub fn knot_primary_with(
    zone: &str,
    zonefile_text: &str,
    key: Option<&TsigSpec>,
    notify: &[SocketAddr],
    zone_lines: &str,
) -> Primary {
    let port = reserve_port();
    let dir = tempdir("knot-primary");
    std::fs::write(dir.path().join("zone.db"), zonefile_text).unwrap();
    let conf = dir.path().join("knot.conf");
    let mut text = knot_primary_conf(dir.path(), port, zone, key, notify);
    text.push_str(zone_lines);
    std::fs::write(&conf, text).unwrap();
    let server = start_knot(zone, port, dir, conf);
    // Loading a large zone takes a while after the sockets are up.
    let serial = server.wait_serial(0, Duration::from_secs(300));
    if let Err(e) = serial {
        panic!("the Knot primary does not serve {zone}: {e}");
    }
    Primary { server }
}

// ---------------------------------------------------------------------------
// ---------------------------------------------------------------------------
// Benchmark reference
// ---------------------------------------------------------------------------

/// Starts a fresh Knot secondary of `primary` for `zone` and returns the
/// time from its start until it serves `expect_serial` (process start,
/// AXFR, loading; Knot serves the zone before it writes it to its zone file).
/// The secondary is stopped before this returns.
pub fn time_axfr_into_knot(
    primary: SocketAddr,
    zone: &str,
    key: Option<&TsigSpec>,
    expect_serial: u32,
) -> Duration {
    axfr_into_knot(primary, zone, key, expect_serial).wall
}

/// One AXFR into a fresh Knot secondary, as [`axfr_into_knot`] saw it.
#[derive(Clone, Debug)]
pub struct AxfrReport {
    /// From starting the secondary until it serves the serial.
    pub wall: Duration,
    /// Knot's own figures from its log line `AXFR, incoming, remote …,
    /// finished, S seconds, M messages, B bytes` (`None` when it wrote none).
    pub seconds: Option<f64>,
    pub messages: Option<u64>,
    pub bytes: Option<u64>,
}

/// [`time_axfr_into_knot`] with what the secondary's log says about the
/// transfer: Knot's transfer time, messages and bytes.
pub fn axfr_into_knot(
    primary: SocketAddr,
    zone: &str,
    key: Option<&TsigSpec>,
    expect_serial: u32,
) -> AxfrReport {
    let start = Instant::now();
    let secondary = knot_secondary(zone, primary, key);
    if let Err(e) = secondary.wait_serial(expect_serial, Duration::from_secs(600)) {
        panic!("{e}");
    }
    let wall = start.elapsed();
    // Knot logs the end of the transfer as it switches to the new zone;
    // give the line a moment to reach the file.
    let end = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let log = secondary.log();
        let found = log
            .lines()
            .find(|l| l.contains("AXFR, incoming") && l.contains("finished"))
            .map(str::to_string);
        match found {
            Some(l) => break l,
            None if Instant::now() >= end => break String::new(),
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let before = |unit: &str| {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let at = words.iter().position(|w| *w == unit)?;
        words.get(at.checked_sub(1)?).map(|w| w.to_string())
    };
    AxfrReport {
        wall,
        seconds: before("seconds").and_then(|w| w.parse().ok()),
        messages: before("messages").and_then(|w| w.parse().ok()),
        bytes: before("bytes").and_then(|w| w.parse().ok()),
    }
}

// ---------------------------------------------------------------------------
// Zones
// ---------------------------------------------------------------------------

/// A small zone: SOA (TTL 3600, negative TTL 300, refresh an hour so only
/// NOTIFY brings changes within a test), NS, A, and TXT records, plus
/// `extra` lines.
pub fn small_zone(zone: &str, serial: u32, extra: &str) -> String {
    let zone = fqdn(zone);
    format!(
        "$ORIGIN {zone}
$TTL 600
@       3600 IN SOA ns1 hostmaster {serial} 3600 600 86400 300
@            IN NS  ns1
@            IN NS  ns2.example.net.
ns1          IN A   127.0.0.1
a            IN TXT \"alpha\"
a            IN TXT \"alpha two\" \"strings\"
b       120  IN TXT \"bravo\"
deep.c       IN TXT \"deep\"
*.wild       IN TXT \"wildcard\"
{extra}"
    )
}

/// A zone with `names` TXT names `n<i>` (one 40-byte string each).
pub fn large_zone(zone: &str, serial: u32, names: usize) -> String {
    let mut z = small_zone(zone, serial, "");
    z.reserve(names * 64);
    for i in 0..names {
        writeln!(
            z,
            "n{i} IN TXT \"{:040x}\"",
            i as u128 * 0x9e37_79b9_7f4a_7c15
        )
        .unwrap();
    }
    z
}
