//! Shared test fixtures: a node in a temporary directory serving DNS on an
//! ephemeral loopback port, and raw query builders.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use cpid::config::Config;
use cpid::dns::server::UdpMode;
use cpid::ident::identifier::{Class, Identifier};
use cpid::ident::record::{RecordStatus, SignedRecord, Value, ValueType};
use cpid::node::{Node, Running};
use cpid::registry::NewRecord;
use hickory_proto::op::Message;
use hickory_proto::rr::RData;

pub struct TestNode {
    /// Kept so the directory lives as long as the node.
    pub _dir: tempfile::TempDir,
    pub node: Node,
    pub running: Option<Running>,
    pub rt: tokio::runtime::Runtime,
}

/// A loopback address whose UDP and TCP ports were both free just now
/// (delegations name their child's address before the child starts).
pub fn free_addr() -> SocketAddr {
    cpid::testkit::federation::free_addr().unwrap()
}

pub fn config_in(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.node.data_dir = dir.to_path_buf();
    config.dns.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    config.dns.udp_workers = 2;
    config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // Tests query from loopback far faster than 20 answers a second per
    // flow: response-rate limiting stays on but leaves loopback alone
    // (`rrl.rs` clears this to test it).
    config.dns.rrl.whitelist = loopback_networks();
    config
}

/// Loopback, as an RRL whitelist.
pub fn loopback_networks() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1".into()]
}

impl TestNode {
    pub fn start() -> TestNode {
        Self::start_with(|_| {})
    }

    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        adjust(&mut config);
        TestNode::open_in(dir, config)
    }

    /// A node whose providers are active at once.
    pub fn open_policy() -> TestNode {
        Self::start_with(|c| c.registration.policy = cpid::config::Policy::Open)
    }

    /// Stops the node and starts it again on the same data (new ports).
    pub fn restart(mut self) -> TestNode {
        if let Some(r) = self.running.take() {
            self.rt.block_on(r.shutdown()).unwrap();
        }
        let mut config = self.node.config.clone();
        config.dns.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        drop(self);
        TestNode::open_in(dir, config)
    }

    /// A node deciding by `clock` (freshness, request windows).
    pub fn start_with_clock(
        clock: cpid::clock::Clock,
        adjust: impl FnOnce(&mut Config),
    ) -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_in(dir.path());
        adjust(&mut config);
        TestNode::open_clocked(dir, config, clock)
    }

    fn open_in(dir: tempfile::TempDir, config: Config) -> TestNode {
        TestNode::open_clocked(dir, config, cpid::clock::Clock::system())
    }

    fn open_clocked(dir: tempfile::TempDir, config: Config, clock: cpid::clock::Clock) -> TestNode {
        let node = Node::open_with_clock(config, clock).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = rt.block_on(node.serve()).unwrap();
        TestNode {
            _dir: dir,
            node,
            running: Some(running),
            rt,
        }
    }

    pub fn hickory_udp() -> TestNode {
        Self::start_with(|c| c.dns.udp_mode = UdpMode::Hickory)
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().dns_addr()
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().http_addr()
    }

    /// A client of this node's HTTP API.
    pub fn api(&self) -> cpid::api::client::ApiClient {
        cpid::api::client::ApiClient::new(&format!("http://{}", self.http_addr()))
    }

    /// The admin key pair the node made in its data directory.
    pub fn admin_key(&self) -> cpid::ident::keys::NodeKey {
        cpid::ident::keys::NodeKey::load(&self.node.config.admin_key_file()).unwrap()
    }

    pub fn records(&self) -> u64 {
        self.node.registry.store().len().unwrap()
    }

    pub fn issue(
        &self,
        class: Class,
        prefix: Option<&str>,
        values: &[(&str, &str, u32)],
    ) -> SignedRecord {
        let at = cpid::clock::system_now();
        let values = values
            .iter()
            .enumerate()
            .map(|(i, (t, d, ttl))| Value {
                index: i as u32 + 1,
                kind: ValueType::parse(t).unwrap(),
                data: d.to_string(),
                ttl: *ttl,
                timestamp: at,
            })
            .collect();
        self.node
            .registry
            .issue(NewRecord {
                prefix: prefix.map(|p| cpid::ident::identifier::Prefix::parse(p).unwrap()),
                class,
                owner: None,
                values,
                status: RecordStatus::Active,
            })
            .unwrap()
    }

    pub fn dns_name(&self, id: &Identifier) -> String {
        id.to_dns_name(self.node.registry.apex())
    }

    pub fn zone_name(&self) -> String {
        self.node.registry.zone().apex().to_string()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

/// `cpid serve` as a child process on loopback (ephemeral ports) over the
/// data directory `data`, with `args` added; returns once it is ready,
/// with its HTTP API's URL. Its log lines are drained in the background.
pub fn serve_child(data: &std::path::Path, args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--udp-workers", "1"])
        .args(args)
        .arg("--data")
        .arg(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let http = loop {
        let line = lines
            .next()
            .expect("cpid serve exited before it was ready")
            .unwrap();
        if let Some(at) = line.find("http://") {
            let rest = &line[at..];
            break rest[..rest.find(' ').unwrap_or(rest.len())].to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, http)
}

/// EDNS settings of a raw query.
#[derive(Clone, Copy)]
pub struct Edns {
    pub payload: u16,
    pub version: u8,
}

pub const EDNS0: Option<Edns> = Some(Edns {
    payload: 1232,
    version: 0,
});

/// A query built byte by byte, so tests control every field.
pub fn raw_query(id: u16, name: &str, qtype: u16, edns: Option<Edns>) -> Vec<u8> {
    raw_query_with(id, 0x0100, name, qtype, 1, edns)
}

pub fn raw_query_with(
    id: u16,
    flags: u16,
    name: &str,
    qtype: u16,
    qclass: u16,
    edns: Option<Edns>,
) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&flags.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q.extend_from_slice(&[0, 0, 0, 0]);
    q.extend_from_slice(&u16::from(edns.is_some()).to_be_bytes());
    q.extend_from_slice(&name_wire(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    if let Some(e) = edns {
        q.push(0);
        q.extend_from_slice(&41u16.to_be_bytes());
        q.extend_from_slice(&e.payload.to_be_bytes());
        q.extend_from_slice(&[0, e.version, 0, 0, 0, 0]);
    }
    q
}

/// Wire form of a presentation name, case preserved.
pub fn name_wire(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

pub fn udp_raw(addr: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.connect(addr).unwrap();
    let mut buf = vec![0u8; 65_535];
    for _ in 0..3 {
        sock.send(query).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    None
}

pub fn tcp_raw(addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&(query.len() as u16).to_be_bytes()).unwrap();
    s.write_all(query).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// One query over a fresh TCP connection; `None` when the server closed it.
pub fn tcp_try(addr: SocketAddr, query: &[u8]) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    s.write_all(&(query.len() as u16).to_be_bytes()).ok()?;
    s.write_all(query).ok()?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

pub fn udp(addr: SocketAddr, query: &[u8]) -> Message {
    Message::from_vec(&udp_raw(addr, query).expect("an answer over UDP")).unwrap()
}

pub fn tcp(addr: SocketAddr, query: &[u8]) -> Message {
    Message::from_vec(&tcp_raw(addr, query)).unwrap()
}

/// Lower-case hex, as the API and the SIGKILL children print bytes.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The TXT answers of a response, each RR's strings joined by spaces.
pub fn txt_strings(msg: &Message) -> Vec<String> {
    msg.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Interop tools
// ---------------------------------------------------------------------------

/// True when the environment says this is CI (`CI=true`, as GitHub Actions,
/// GitLab and `.ci/run` set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Whether an interop check can run: `available` says if `what` is there.
/// Missing on a developer machine, it prints a loud `SKIPPED` line and the
/// test returns; missing under CI, the test fails, because CI installs every
/// tool (`.ci/run`) and a skipped interop test would pass without checking
/// anything.
pub fn require(what: &str, available: bool, install: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        !in_ci(),
        "{what} is missing and CI is set: the interop test cannot run \
         (install it: {install}; .ci/run should have)"
    );
    eprintln!("SKIPPED: {what} is missing ({install}); CI=true makes this a failure");
    false
}

/// [`require`] for a command on `PATH`, found by spawning it.
pub fn require_tool(tool: &str, apt_package: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    require(
        &format!("`{tool}`"),
        found,
        &format!("apt-get install {apt_package}"),
    )
}

/// [`require`] for a Python module importable by `python3`.
pub fn require_python_module(module: &str, pip_package: &str) -> bool {
    if !require_tool("python3", "python3") {
        return false;
    }
    let found = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    require(
        &format!("python3 module `{module}`"),
        found,
        &format!("python3 -m pip install {pip_package}"),
    )
}

/// A capacity descriptor (`schema/resource.md`) of an A800 pool of `cards`
/// cards in Shanghai, as a provider writes it in `CP.RESOURCE`.
pub fn a800_pool(cards: u64) -> String {
    format!(
        r#"{{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":{cards},"devices":[{{"model":"A800","count":{cards},"peak_tflops":{{"fp64":19.5,"fp32":19.5,"tf32":156,"bf16":312,"fp16":312,"int8":624}}}}],"price_per_unit_hour":{{"amount":12.5,"currency":"CNY"}}}}"#
    )
}

// ---------------------------------------------------------------------------
// EDNS details of raw messages
// ---------------------------------------------------------------------------

/// Sets the EDNS flags of the OPT record `raw_query_with` ended `query`
/// with and appends `options` (code, length, data, as on the wire) to its
/// RDATA.
pub fn set_edns_extras(query: &mut Vec<u8>, flags: u16, options: &[u8]) {
    let n = query.len();
    assert!(n >= 23, "the query carries no OPT");
    query[n - 4..n - 2].copy_from_slice(&flags.to_be_bytes());
    let rdlen = u16::from_be_bytes([query[n - 2], query[n - 1]]) + options.len() as u16;
    query[n - 2..n].copy_from_slice(&rdlen.to_be_bytes());
    query.extend_from_slice(options);
}

/// The OPT record of a message, read field by field (hickory's `Edns`
/// hides the flags other than DO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOpt {
    pub payload: u16,
    /// The upper 8 bits of the extended rcode.
    pub ext_rcode: u8,
    pub version: u8,
    pub flags: u16,
    /// (code, data) in order.
    pub options: Vec<(u16, Vec<u8>)>,
}

impl RawOpt {
    pub fn dnssec_ok(&self) -> bool {
        self.flags & 0x8000 != 0
    }

    pub fn codes(&self) -> Vec<u16> {
        self.options.iter().map(|o| o.0).collect()
    }
}

/// The header flags word of a message.
pub fn header_flags(msg: &[u8]) -> u16 {
    u16::from_be_bytes([msg[2], msg[3]])
}

/// Section count `i` of a message's header (0 question … 3 additional).
pub fn header_count(msg: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([msg[4 + 2 * i], msg[5 + 2 * i]])
}

fn skip_wire_name(msg: &[u8], mut at: usize) -> usize {
    loop {
        let len = msg[at];
        if len == 0 {
            return at + 1;
        }
        if len & 0xC0 == 0xC0 {
            return at + 2;
        }
        at += 1 + usize::from(len);
    }
}

/// The OPT record among the additional records of `msg`, if any.
pub fn raw_opt(msg: &[u8]) -> Option<RawOpt> {
    let mut at = 12;
    for _ in 0..header_count(msg, 0) {
        at = skip_wire_name(msg, at) + 4;
    }
    let records = (1..4).map(|i| usize::from(header_count(msg, i))).sum();
    for i in 0..records {
        at = skip_wire_name(msg, at);
        let rtype = u16::from_be_bytes([msg[at], msg[at + 1]]);
        let class = u16::from_be_bytes([msg[at + 2], msg[at + 3]]);
        let ttl = &msg[at + 4..at + 8];
        let rdlen = usize::from(u16::from_be_bytes([msg[at + 8], msg[at + 9]]));
        let rdata = &msg[at + 10..at + 10 + rdlen];
        at += 10 + rdlen;
        let additional = i >= records - usize::from(header_count(msg, 3));
        if rtype != 41 || !additional {
            continue;
        }
        let mut options = Vec::new();
        let mut o = 0;
        while o + 4 <= rdata.len() {
            let code = u16::from_be_bytes([rdata[o], rdata[o + 1]]);
            let len = usize::from(u16::from_be_bytes([rdata[o + 2], rdata[o + 3]]));
            options.push((code, rdata[o + 4..o + 4 + len].to_vec()));
            o += 4 + len;
        }
        return Some(RawOpt {
            payload: class,
            ext_rcode: ttl[0],
            version: ttl[1],
            flags: u16::from_be_bytes([ttl[2], ttl[3]]),
            options,
        });
    }
    None
}

/// The full rcode of a message: the header's four bits and the OPT's
/// upper eight (RFC 6891 §6.1.3).
pub fn full_rcode(msg: &[u8]) -> u16 {
    let low = header_flags(msg) & 0x000F;
    raw_opt(msg).map_or(low, |o| u16::from(o.ext_rcode) << 4 | low)
}
