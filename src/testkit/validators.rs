//! Stock DNSSEC validators on loopback: Unbound as a validating resolver
//! and BIND's `delv`, pointed at authoritative servers on arbitrary
//! loopback ports under a private trust anchor (zones such as
//! `cpid.internal.`, no root, no network). The harness of the tests that
//! check signed answers (RFC 4033–4035; Ed25519 is RFC 8080, compact
//! denial RFC 9824) with validators that were not written here.
//!
//! - [`TrustAnchor`]: a zone's DNSKEY or DS, from RDATA bytes, from
//!   presentation text (`dig` or `keymgr` output) or fetched from a server.
//! - [`Unbound`]: `unbound -d` with a generated configuration in its own
//!   directory: validating (`module-config: "validator iterator"`), one
//!   `trust-anchor:` per anchor and one `stub-zone:` per zone, so each zone
//!   is asked of its server directly. [`Unbound::query`] returns the rcode,
//!   the AD flag and the records ([`Answer`]).
//! - [`delv`]: one `delv` run against one server, and its verdict
//!   ([`Verdict`]). `delv` asks only the server it is given, so a chain of
//!   trust across a delegation to another server needs Unbound.
//! - [`knot_onlinesign_primary`]: the reference signer, Knot DNS with
//!   `mod-onlinesign` and an Ed25519 policy, so the harness is known to work
//!   before cpid signs.
//!
//! Unbound and `delv` are started the way [`super::secondaries`] starts its
//! daemons: found by [`find_tool`] (Unbound lives in `/usr/sbin`), on a
//! port from [`reserve_port`] (Unbound cannot bind port 0), everything in a
//! [`ScratchDir`], no chroot, no user change, no control socket, nothing
//! written elsewhere. A harness, not serving code: a daemon that does not
//! start stops the test with a message and its log.

use std::fmt::{self, Write as _};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::secondaries::{
    DEADLINE, Primary, ScratchDir, fqdn, knot_primary, loopback, query_raw, reserve_port,
    tcp_exchange, udp_query,
};
pub use super::secondaries::{QTYPE_A, QTYPE_NS, QTYPE_SOA, QTYPE_TXT, find_tool};
use crate::ident::delegation::from_hex;
use crate::ident::keys::to_hex;

pub const QTYPE_DS: u16 = 43;
pub const QTYPE_RRSIG: u16 = 46;
pub const QTYPE_NSEC: u16 = 47;
pub const QTYPE_DNSKEY: u16 = 48;

// ---------------------------------------------------------------------------
// Trust anchors
// ---------------------------------------------------------------------------

/// A zone's key that a validator trusts without a chain from the root:
/// a DNSKEY (RFC 4034 §2) or a DS (§5) owned by the zone's apex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustAnchor {
    /// With the final dot.
    zone: String,
    /// [`QTYPE_DNSKEY`] or [`QTYPE_DS`].
    rtype: u16,
    /// At least four bytes (flags/tag and algorithm fields) and a key or
    /// digest after them, checked when made.
    rdata: Vec<u8>,
}

impl TrustAnchor {
    /// The DNSKEY with wire-format `rdata` (flags, protocol, algorithm,
    /// public key) for `zone`: e.g. `dnssec::ZoneKey::dnskey()`.
    pub fn dnskey(zone: &str, rdata: &[u8]) -> Result<TrustAnchor, String> {
        TrustAnchor::new(zone, QTYPE_DNSKEY, rdata)
    }

    /// The DS with wire-format `rdata` (key tag, algorithm, digest type,
    /// digest) for `zone`: e.g. `dnssec::ds_rdata`.
    pub fn ds(zone: &str, rdata: &[u8]) -> Result<TrustAnchor, String> {
        TrustAnchor::new(zone, QTYPE_DS, rdata)
    }

    fn new(zone: &str, rtype: u16, rdata: &[u8]) -> Result<TrustAnchor, String> {
        if rdata.len() <= 4 {
            return Err(format!(
                "{} RDATA of {} bytes has no key or digest",
                type_name(rtype),
                rdata.len()
            ));
        }
        Ok(TrustAnchor {
            zone: fqdn(zone),
            rtype,
            rdata: rdata.to_vec(),
        })
    }

    /// One DNSKEY or DS record in presentation form, as `dig`, `kdig` or
    /// `keymgr <zone> ds` print it: `owner [ttl] [IN] DNSKEY flags protocol
    /// algorithm base64…` or `owner [ttl] [IN] DS tag algorithm digest-type
    /// hex…`; comments (`;`) and parentheses are ignored, the key or digest
    /// may be split by spaces.
    pub fn parse(text: &str) -> Result<TrustAnchor, String> {
        let cleaned: Vec<&str> = text
            .lines()
            .map(|l| l.split(';').next().unwrap_or_default())
            .collect();
        let cleaned = cleaned.join(" ").replace(['(', ')'], " ");
        let mut tokens = cleaned.split_whitespace();
        let owner = tokens.next().ok_or("no record")?;
        let rtype = tokens
            .by_ref()
            .find(|t| !t.bytes().all(|b| b.is_ascii_digit()) && !t.eq_ignore_ascii_case("IN"))
            .ok_or("no record type")?;
        let number = |what: &str, t: Option<&str>| -> Result<u16, String> {
            t.and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("{rtype}: bad {what}"))
        };
        let byte = |what: &str, t: Option<&str>| -> Result<u8, String> {
            t.and_then(|t| t.parse().ok())
                .ok_or_else(|| format!("{rtype}: bad {what}"))
        };
        let mut rdata = Vec::new();
        let qtype = if rtype.eq_ignore_ascii_case("DNSKEY") {
            rdata.extend_from_slice(&number("flags", tokens.next())?.to_be_bytes());
            rdata.push(byte("protocol", tokens.next())?);
            rdata.push(byte("algorithm", tokens.next())?);
            let key: String = tokens.collect();
            let key = base64::engine::general_purpose::STANDARD
                .decode(key)
                .map_err(|e| format!("DNSKEY: public key is not base64: {e}"))?;
            rdata.extend_from_slice(&key);
            QTYPE_DNSKEY
        } else if rtype.eq_ignore_ascii_case("DS") {
            rdata.extend_from_slice(&number("key tag", tokens.next())?.to_be_bytes());
            rdata.push(byte("algorithm", tokens.next())?);
            rdata.push(byte("digest type", tokens.next())?);
            let digest: String = tokens.collect();
            rdata.extend_from_slice(&from_hex(&digest).ok_or("DS: digest is not hex")?);
            QTYPE_DS
        } else {
            return Err(format!("{rtype} is not DNSKEY or DS"));
        };
        TrustAnchor::new(owner, qtype, &rdata)
    }

    /// The first secure-entry-point DNSKEY (flags with SEP, e.g. 257) that
    /// `server` answers for `zone`, trusted on first use over loopback:
    /// how a test anchors a zone whose key the server made itself.
    pub fn fetch(server: SocketAddr, zone: &str) -> Result<TrustAnchor, String> {
        let answer = query_dnssec(server, zone, QTYPE_DNSKEY)?;
        let sep = answer.answers.iter().find(|r| {
            r.rtype == QTYPE_DNSKEY && r.rdata.get(1).is_some_and(|flags| flags & 1 == 1)
        });
        match sep {
            Some(r) => TrustAnchor::dnskey(zone, &r.rdata),
            None => Err(format!(
                "{server} answered {:?} with no SEP DNSKEY for {zone}",
                answer.rcode
            )),
        }
    }

    /// A DNSKEY (flags 257, algorithm 15) of a fresh random Ed25519 key that
    /// no server signs with: the wrong anchor of a negative test.
    pub fn unrelated_ed25519(zone: &str) -> TrustAnchor {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let rdata = crate::dns::dnssec::dnskey_rdata(
            crate::dns::dnssec::FLAGS_CSK,
            key.verifying_key().as_bytes(),
        );
        TrustAnchor::dnskey(zone, &rdata).unwrap()
    }

    /// The zone it anchors, with the final dot.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// `flags protocol algorithm base64` or `tag algorithm digest-type hex`.
    fn rdata_text(&self) -> String {
        let [hi, lo, b, c, rest @ ..] = self.rdata.as_slice() else {
            return String::new();
        };
        let first = u16::from_be_bytes([*hi, *lo]);
        if self.rtype == QTYPE_DNSKEY {
            let key = base64::engine::general_purpose::STANDARD.encode(rest);
            format!("{first} {b} {c} {key}")
        } else {
            format!("{first} {b} {c} {}", to_hex(rest).to_uppercase())
        }
    }

    /// The value of an Unbound `trust-anchor:` line (quoted there).
    pub fn unbound_line(&self) -> String {
        format!(
            "{} {} {}",
            self.zone,
            type_name(self.rtype),
            self.rdata_text()
        )
    }

    /// A BIND `trust-anchors { };` file holding this anchor, as `delv -a`
    /// reads it (`static-key` or `static-ds`).
    pub fn bind_file(&self) -> String {
        let text = self.rdata_text();
        let (fields, value) = text.rsplit_once(' ').unwrap_or((&text, ""));
        let kind = if self.rtype == QTYPE_DNSKEY {
            "static-key"
        } else {
            "static-ds"
        };
        format!(
            "trust-anchors {{\n    \"{}\" {kind} {fields} \"{value}\";\n}};\n",
            self.zone
        )
    }
}

/// `zone. IN DNSKEY 257 3 15 <base64>` or `zone. IN DS <tag> 15 2 <HEX>`.
impl fmt::Display for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} IN {} {}",
            self.zone,
            type_name(self.rtype),
            self.rdata_text()
        )
    }
}

fn type_name(rtype: u16) -> &'static str {
    if rtype == QTYPE_DNSKEY {
        "DNSKEY"
    } else {
        "DS"
    }
}

// ---------------------------------------------------------------------------
// Answers
// ---------------------------------------------------------------------------

/// A response as a validator's client sees it.
#[derive(Clone, Debug)]
pub struct Answer {
    pub rcode: ResponseCode,
    /// AD: the resolver validated every record in the answer and
    /// authority sections (RFC 4035 §3.2.3).
    pub authentic_data: bool,
    pub answers: Vec<Rr>,
    pub authority: Vec<Rr>,
}

impl Answer {
    /// Whether the answer section holds a record of `rtype`.
    pub fn has(&self, rtype: u16) -> bool {
        self.answers.iter().any(|r| r.rtype == rtype)
    }
}

/// One resource record of an [`Answer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rr {
    /// Lower-cased, with the final dot.
    pub owner: String,
    pub rtype: u16,
    pub ttl: u32,
    /// Wire form without name compression (RFC 4034 §6.2 canonical form).
    pub rdata: Vec<u8>,
}

impl Rr {
    fn from_record(r: &Record) -> Rr {
        let mut rdata = Vec::new();
        let mut enc = BinEncoder::new(&mut rdata);
        enc.set_canonical_form(true);
        r.data.emit(&mut enc).unwrap();
        Rr {
            owner: r.name.to_lowercase().to_ascii(),
            rtype: u16::from(r.record_type()),
            ttl: r.ttl,
            rdata,
        }
    }
}

/// One query for `name`/`qtype` to `server` with RD and DO set (EDNS(0),
/// 1232-byte payload, CD clear), over UDP with up to four tries of a
/// second each (a resolver may be busy building a chain of trust), then
/// over TCP if the answer was truncated.
pub fn query_dnssec(server: SocketAddr, name: &str, qtype: u16) -> Result<Answer, String> {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).unwrap();
    let mut query = udp_query(u16::from_be_bytes(id), name, qtype);
    // The OPT record ends the query: …, flags (2 bytes), RDLENGTH (2 bytes).
    if let Some(flags) = query.len().checked_sub(4).and_then(|at| query.get_mut(at)) {
        *flags |= 0x80;
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    sock.connect(server).unwrap();
    let mut buf = vec![0u8; 65_535];
    let mut raw = None;
    for _ in 0..4 {
        sock.send(&query).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            raw = buf.get(..n).map(<[u8]>::to_vec);
            break;
        }
    }
    let raw = raw.ok_or_else(|| format!("{server} did not answer {name} type{qtype}"))?;
    let mut msg = Message::from_vec(&raw).map_err(|e| format!("unparsable answer: {e}"))?;
    if msg.metadata.truncation {
        let tcp = tcp_exchange(server, &query, Duration::from_millis(100));
        let first = tcp.first().ok_or("truncated over UDP, nothing over TCP")?;
        msg = Message::from_vec(first).map_err(|e| format!("unparsable TCP answer: {e}"))?;
    }
    Ok(Answer {
        rcode: msg.metadata.response_code,
        authentic_data: msg.metadata.authentic_data,
        answers: msg.answers.iter().map(Rr::from_record).collect(),
        authority: msg.authorities.iter().map(Rr::from_record).collect(),
    })
}

// ---------------------------------------------------------------------------
// Unbound
// ---------------------------------------------------------------------------

/// A validating Unbound on a loopback port, in its own directory, killed
/// (and waited for) on drop.
pub struct Unbound {
    addr: SocketAddr,
    conf: PathBuf,
    log: PathBuf,
    output: PathBuf,
    child: Option<Child>,
    /// Last field: the directory goes after the process has stopped.
    dir: ScratchDir,
}

impl Unbound {
    /// Starts Unbound trusting `anchors`, with each `(zone, server)` in
    /// `stubs` asked of that server directly, and returns once it answers.
    pub fn start(anchors: &[TrustAnchor], stubs: &[(&str, SocketAddr)]) -> Unbound {
        let program = find_tool("unbound").unwrap_or_else(|| panic!("unbound is not installed"));
        let port = reserve_port();
        let dir = ScratchDir::new("unbound");
        let conf = dir.path().join("unbound.conf");
        std::fs::write(&conf, unbound_conf(dir.path(), port, anchors, stubs)).unwrap();
        let output = dir.path().join("daemon.out");
        let out = std::fs::File::create(&output).unwrap();
        let child = Command::new(&program)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut unbound = Unbound {
            addr: loopback(port),
            conf,
            log: dir.path().join("unbound.log"),
            output,
            child: Some(child),
            dir,
        };
        unbound.wait_answering();
        unbound
    }

    /// Until it answers `localhost. A` (from its built-in local zone, so no
    /// server is asked while it starts).
    fn wait_answering(&mut self) {
        let end = Instant::now() + DEADLINE;
        loop {
            if query_raw(self.addr, "localhost.", QTYPE_A).is_some() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                panic!(
                    "unbound exited ({status}) before answering on {}; log:\n{}",
                    self.addr,
                    self.log()
                );
            }
            assert!(
                Instant::now() < end,
                "unbound does not answer on {} after {DEADLINE:?}; log:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it answers DNS, over UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its configuration file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// Its directory (configuration, pid file, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// [`query_dnssec`] to it; stops the test with its log when it does not
    /// answer.
    pub fn query(&self, name: &str, qtype: u16) -> Answer {
        query_dnssec(self.addr, name, qtype)
            .unwrap_or_else(|e| panic!("unbound: {e}; log:\n{}", self.log()))
    }

    /// Its log file (with `val-log-level: 2`, one line per validation
    /// failure saying why) and whatever it wrote to stdout/stderr.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let out = std::fs::read_to_string(&self.output).unwrap_or_default();
        if out.trim().is_empty() {
            log
        } else {
            format!("{log}--- stdout/stderr ---\n{out}")
        }
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The configuration [`Unbound::start`] writes: everything under `dir`,
/// listening on 127.0.0.1@`port`.
///
/// Settings that matter for private zones on loopback:
/// `do-not-query-localhost: no` (by default Unbound never asks 127.0.0.1);
/// a `stub-zone:` per zone with `stub-addr: ip@port` (a delegation's glue
/// cannot carry a port); `trust-anchor-signaling: no` (no RFC 8145 key-tag
/// queries to the zones' servers); no root hints are used, since every
/// name asked is under a stub. Qname minimisation, the `harden-*` options
/// and aggressive NSEC keep their defaults.
pub fn unbound_conf(
    dir: &Path,
    port: u16,
    anchors: &[TrustAnchor],
    stubs: &[(&str, SocketAddr)],
) -> String {
    let d = dir.display();
    let mut c = format!(
        "server:
    interface: 127.0.0.1
    port: {port}
    do-ip4: yes
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    num-threads: 1
    directory: \"{d}\"
    chroot: \"\"
    username: \"\"
    pidfile: \"{d}/unbound.pid\"
    logfile: \"{d}/unbound.log\"
    use-syslog: no
    log-time-ascii: yes
    verbosity: 1
    val-log-level: 2
    log-servfail: yes
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: \"validator iterator\"
    trust-anchor-signaling: no
"
    );
    for a in anchors {
        writeln!(c, "    trust-anchor: \"{}\"", a.unbound_line()).unwrap();
    }
    c.push_str("remote-control:\n    control-enable: no\n");
    for (zone, server) in stubs {
        write!(
            c,
            "stub-zone:\n    name: \"{}\"\n    stub-addr: {}@{}\n",
            fqdn(zone),
            server.ip(),
            server.port()
        )
        .unwrap();
    }
    c
}

// ---------------------------------------------------------------------------
// delv
// ---------------------------------------------------------------------------

/// What `delv` concluded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `; fully validated`
    Validated,
    /// `; negative response, fully validated` (NXDOMAIN or NODATA)
    NegativeValidated,
    /// Anything else, with `delv`'s reason (e.g. `broken trust chain`,
    /// `unsigned answer`).
    Failed(String),
}

/// One `delv` run: its [`Verdict`] and everything it printed.
#[derive(Clone, Debug)]
pub struct DelvResult {
    pub verdict: Verdict,
    /// Standard output, then standard error.
    pub output: String,
}

/// Runs `delv @ip -p port -a <file> +root=<zone> -q name -t TYPEn` with
/// `anchor` as the only trust anchor: `delv` fetches the anchor zone's
/// DNSKEY and the answer from `server` alone and validates them itself.
///
/// `delv` exits 0 whatever it concluded, and prints `;; resolution failed:
/// ncache nxrrset` (or `ncache nxdomain`) on standard error even for a
/// validated negative answer: the verdict is read from its `; …` line on
/// standard output.
pub fn delv(server: SocketAddr, anchor: &TrustAnchor, name: &str, qtype: u16) -> DelvResult {
    let program = find_tool("delv").unwrap_or_else(|| panic!("delv is not installed"));
    let dir = ScratchDir::new("delv");
    let anchors = dir.path().join("anchors.conf");
    std::fs::write(&anchors, anchor.bind_file()).unwrap();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(&program)
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "-a"])
        .arg(&anchors)
        .arg(format!("+root={}", anchor.zone()))
        .args(["-q", name, "-t", &format!("TYPE{qtype}")])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
    let end = Instant::now() + DEADLINE;
    let timed_out = loop {
        if child.try_wait().ok().flatten().is_some() {
            break false;
        }
        if Instant::now() >= end {
            let _ = child.kill();
            break true;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.wait();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let verdict = if timed_out {
        Verdict::Failed(format!("no verdict after {DEADLINE:?}"))
    } else {
        delv_verdict(&stdout, &stderr)
    };
    DelvResult {
        verdict,
        output: format!("{stdout}{stderr}"),
    }
}

fn delv_verdict(stdout: &str, stderr: &str) -> Verdict {
    for line in stdout.lines().map(str::trim) {
        match line {
            "; fully validated" => return Verdict::Validated,
            "; negative response, fully validated" => return Verdict::NegativeValidated,
            "; unsigned answer" | "; negative response, unsigned answer" => {
                return Verdict::Failed("unsigned answer".into());
            }
            _ => {}
        }
    }
    let reason = stderr
        .lines()
        .filter_map(|l| l.split_once("resolution failed: ").map(|(_, r)| r.trim()))
        .next_back()
        .unwrap_or_else(|| stderr.trim());
    Verdict::Failed(if reason.is_empty() {
        "no verdict".into()
    } else {
        reason.into()
    })
}

// ---------------------------------------------------------------------------
// The reference signer
// ---------------------------------------------------------------------------

/// The Knot sections [`knot_onlinesign_primary`] puts before the rest of the
/// configuration: an Ed25519 policy and a `mod-onlinesign` instance using
/// it (Knot generates one key, a CSK with flags 257, in its directory).
const ONLINESIGN_SECTIONS: &str = "policy:
  - id: ed25519
    algorithm: ed25519
mod-onlinesign:
  - id: ed25519
    policy: ed25519
";

/// Knot serving `zonefile_text` for `zone`, signing every answer as it
/// sends it (`mod-onlinesign`, Ed25519, NSEC "black lies": a missing name
/// gets NOERROR/NODATA with an NSEC at the name); returns once it serves
/// the zone's DNSKEY.
///
/// Knot wants a policy and a module instance defined before the zone that
/// uses them, and [`super::secondaries::knot_primary_with`] adds its lines
/// after the zone's section; so this starts an unsigned [`knot_primary`],
/// writes the sections in front of its configuration and the module line
/// into its zone, and has Knot reload it (`knotc reload`).
pub fn knot_onlinesign_primary(zone: &str, zonefile_text: &str) -> Primary {
    let primary = knot_primary(zone, zonefile_text, None, &[]);
    let conf = std::fs::read_to_string(primary.conf()).unwrap();
    std::fs::write(
        primary.conf(),
        format!("{ONLINESIGN_SECTIONS}{conf}    module: mod-onlinesign/ed25519\n"),
    )
    .unwrap();
    let knotc = find_tool("knotc").unwrap_or_else(|| panic!("knotc is not installed"));
    let out = Command::new(knotc)
        .arg("-c")
        .arg(primary.conf())
        .arg("reload")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "knotc reload: {}{}; log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        primary.log()
    );
    let end = Instant::now() + DEADLINE;
    while !query_dnssec(primary.addr(), zone, QTYPE_DNSKEY).is_ok_and(|a| a.has(QTYPE_DNSKEY)) {
        assert!(
            Instant::now() < end,
            "Knot does not serve a DNSKEY for {zone} after {DEADLINE:?}; log:\n{}",
            primary.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    primary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_parse_from_dig_and_keymgr_output_and_render_for_both_validators() {
        let a = TrustAnchor::parse(
            "example.cpid.internal.\t3600\tIN\tDNSKEY\t257 3 15 ( NWY+FZNR/MLrKt6IC54T\n\
             IFX3HMdVo/5Oe60F2sc8TWY= ) ; KSK",
        )
        .unwrap();
        assert_eq!(a.zone(), "example.cpid.internal.");
        assert_eq!(
            a.to_string(),
            "example.cpid.internal. IN DNSKEY 257 3 15 NWY+FZNR/MLrKt6IC54TIFX3HMdVo/5Oe60F2sc8TWY="
        );
        assert_eq!(
            a.bind_file(),
            "trust-anchors {\n    \"example.cpid.internal.\" static-key 257 3 15 \
             \"NWY+FZNR/MLrKt6IC54TIFX3HMdVo/5Oe60F2sc8TWY=\";\n};\n"
        );
        let ds = TrustAnchor::parse(
            "example.cpid.internal. DS 49358 15 2 \
             2593ce2a234e51c8f5b2ea1c35e5a3130a81e15a45faa8f7d99c9c7cce6d20d3",
        )
        .unwrap();
        assert_eq!(
            ds.unbound_line(),
            "example.cpid.internal. DS 49358 15 2 \
             2593CE2A234E51C8F5B2EA1C35E5A3130A81E15A45FAA8F7D99C9C7CCE6D20D3"
        );
        assert!(ds.bind_file().contains("static-ds 49358 15 2 \"2593CE2A"));
        assert_eq!(
            TrustAnchor::dnskey("example.cpid.internal", &a.rdata).unwrap(),
            a
        );
    }

    #[test]
    fn malformed_anchors_are_errors() {
        for bad in [
            "",
            "zone. IN A 127.0.0.1",
            "zone. DNSKEY 257 3 15 not*base64",
            "zone. DNSKEY 257 3",
            "zone. DS 1 15 2 abc",
            "zone. DS x 15 2 ab",
        ] {
            assert!(TrustAnchor::parse(bad).is_err(), "{bad:?}");
        }
        assert!(TrustAnchor::dnskey("zone.", &[1, 1, 3, 15]).is_err());
    }

    #[test]
    fn delv_negative_answers_validate_despite_resolution_failed() {
        assert_eq!(
            delv_verdict(
                "; negative response, fully validated\n; x. 300 IN \\-TXT ;-$NXRRSET\n",
                ";; resolution failed: ncache nxrrset\n"
            ),
            Verdict::NegativeValidated
        );
        assert_eq!(
            delv_verdict(
                "",
                ";; no valid RRSIG resolving 'z/DNSKEY/IN'\n;; resolution failed: broken trust chain\n"
            ),
            Verdict::Failed("broken trust chain".into())
        );
    }
}
