//! Stock secondaries (Knot DNS and NSD) following a primary over AXFR/IXFR
//! with TSIG (hmac-sha256) and NOTIFY, on loopback.
//!
//! The daemons themselves (configurations, starting and stopping, the Knot
//! reference primary, `time_axfr_into_knot`) are `cpid::testkit::secondaries`,
//! shared with the transfer benchmark and re-exported here; this module adds
//! what only the tests need: [`differential`] compares two servers' answers,
//! `kdig_axfr`, the skip-or-fail checks for the tools, and the tests of the
//! harness itself.
//!
//! The tests skip (loudly) without `knotd`, `knotc` or `nsd`, and fail under
//! `CI=true`, where `.ci/run` installs the Debian packages `knot` and `nsd`.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

pub use cpid::testkit::secondaries::*;

use crate::common::*;

/// [`require`] for a daemon, found by [`find_tool`].
pub fn require_daemon(tool: &str, apt_package: &str) -> bool {
    require(
        &format!("`{tool}`"),
        find_tool(tool).is_some(),
        &format!("apt-get install {apt_package}"),
    )
}

/// Knot (`knotd`, `knotc`) and NSD present; probes all before returning so a
/// skip names every missing tool.
pub fn require_knot_and_nsd() -> bool {
    let knotd = require_daemon("knotd", "knot");
    let knotc = require_daemon("knotc", "knot");
    let nsd = require_daemon("nsd", "nsd");
    knotd && knotc && nsd
}

// Differential queries
// ---------------------------------------------------------------------------

/// One RR as compared: owner lower-cased, type, class, TTL, and the RDATA in
/// canonical form (RFC 4034 §6.2: no compression, names in RDATA
/// lower-cased), so neither case nor compression choices count.
type Rr = (String, u16, u16, u32, Vec<u8>);

fn rr_key(r: &Record) -> Rr {
    let mut rdata = Vec::new();
    {
        let mut enc = BinEncoder::new(&mut rdata);
        enc.set_canonical_form(true);
        r.data.emit(&mut enc).unwrap();
    }
    (
        r.name.to_lowercase().to_ascii(),
        u16::from(r.record_type()),
        u16::from(r.dns_class),
        r.ttl,
        rdata,
    )
}

fn section(records: &[Record]) -> Vec<Rr> {
    let mut v: Vec<Rr> = records.iter().map(rr_key).collect();
    v.sort();
    v.dedup();
    v
}

fn show(rr: &Rr) -> String {
    format!("{} {} {} type{} {}", rr.0, rr.3, rr.2, rr.1, hex(&rr.4))
}

/// Sends the same UDP query for each `(name, qtype)` to `a` and `b` and
/// returns their differences, one human-readable line each (empty: the same
/// answers).
///
/// The query carries EDNS(0) with a 1232-byte payload and DO clear: no
/// DNSSEC records either way, and answers larger than 512 bytes are not
/// truncated (servers differ in what a truncated answer keeps). Compared:
/// the rcode, the AA and TC flags, and the answer and authority sections as
/// sorted sets of (owner lower-cased, type, class, TTL, canonical RDATA).
/// The message ID, section order and the additional section (OPT, glue) are
/// not.
pub fn differential(a: SocketAddr, b: SocketAddr, names: &[(String, u16)]) -> Vec<String> {
    let mut diffs = Vec::new();
    for (name, qtype) in names {
        let q = format!("{name} type{qtype}");
        let parsed = |addr: SocketAddr| -> Result<Message, String> {
            let raw = query_raw(addr, name, *qtype).ok_or_else(|| "no answer".to_string())?;
            Message::from_vec(&raw).map_err(|e| format!("unparsable answer: {e}"))
        };
        let (ma, mb) = match (parsed(a), parsed(b)) {
            (Ok(ma), Ok(mb)) => (ma, mb),
            (ra, rb) => {
                if ra.is_err() || rb.is_err() {
                    diffs.push(format!(
                        "{q}: {a}: {}; {b}: {}",
                        ra.err().unwrap_or_else(|| "answered".into()),
                        rb.err().unwrap_or_else(|| "answered".into())
                    ));
                }
                continue;
            }
        };
        let (ha, hb) = (&ma.metadata, &mb.metadata);
        if ha.response_code != hb.response_code {
            diffs.push(format!(
                "{q}: rcode {a}: {:?}, {b}: {:?}",
                ha.response_code, hb.response_code
            ));
        }
        if ha.authoritative != hb.authoritative {
            diffs.push(format!(
                "{q}: AA {a}: {}, {b}: {}",
                ha.authoritative, hb.authoritative
            ));
        }
        if ha.truncation != hb.truncation {
            diffs.push(format!(
                "{q}: TC {a}: {}, {b}: {}",
                ha.truncation, hb.truncation
            ));
        }
        for (what, sa, sb) in [
            ("answer", &ma.answers, &mb.answers),
            ("authority", &ma.authorities, &mb.authorities),
        ] {
            let (sa, sb) = (section(sa), section(sb));
            for rr in sa.iter().filter(|rr| !sb.contains(rr)) {
                diffs.push(format!("{q}: {what} only from {a}: {}", show(rr)));
            }
            for rr in sb.iter().filter(|rr| !sa.contains(rr)) {
                diffs.push(format!("{q}: {what} only from {b}: {}", show(rr)));
            }
        }
    }
    diffs
}

fn sample(zone: &str) -> Vec<(String, u16)> {
    let zone = fqdn(zone);
    [
        ("", QTYPE_SOA),
        ("", QTYPE_NS),
        ("ns1.", QTYPE_A),
        ("a.", QTYPE_TXT),
        ("A.", QTYPE_TXT),
        ("b.", QTYPE_TXT),
        ("deep.c.", QTYPE_TXT),
        ("x.wild.", QTYPE_TXT),
        // NODATA: existing name, other type; empty non-terminal.
        ("a.", QTYPE_A),
        ("c.", QTYPE_TXT),
        // NXDOMAIN.
        ("nope.", QTYPE_TXT),
        ("nope.deep.c.", QTYPE_A),
    ]
    .iter()
    .map(|(n, t)| (format!("{n}{zone}"), *t))
    .collect()
}

/// `kdig` AXFR of `zone` from `addr`, signed with `key`: its stdout and
/// stderr together (kdig prints the rcode of a refused transfer, e.g.
/// `;; ERROR: server replied with error 'BADSIG'`, on stderr).
pub fn kdig_axfr(addr: SocketAddr, zone: &str, key: Option<&TsigSpec>) -> String {
    let mut cmd = Command::new("kdig");
    cmd.arg(format!("@{}", addr.ip())).args([
        "-p",
        &addr.port().to_string(),
        "+time=5",
        "+retry=0",
    ]);
    if let Some(k) = key {
        cmd.args(["-y", &k.dig_arg()]);
    }
    let out = cmd.args(["AXFR", &fqdn(zone)]).output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn txt_at(server: &Secondary, name: &str) -> Vec<String> {
    let raw = server.query(name, QTYPE_TXT);
    Message::from_vec(&raw)
        .map(|m| txt_strings(&m))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Tests of the harness
// ---------------------------------------------------------------------------

#[test]
fn knot_and_nsd_secondaries_follow_a_knot_primary_with_tsig() {
    if !require_knot_and_nsd() {
        return;
    }
    let zone = "86.cpid.internal.";
    let key = TsigSpec::random("cpid-xfr");
    // The secondaries' ports first: the primary notifies them.
    let (knot_port, nsd_port) = (reserve_port(), reserve_port());
    let primary = knot_primary(
        zone,
        &small_zone(zone, 1, ""),
        Some(&key),
        &[loopback(knot_port), loopback(nsd_port)],
    );
    let knot = knot_secondary_on(knot_port, zone, primary.addr(), Some(&key));
    let nsd = nsd_secondary_on(nsd_port, zone, primary.addr(), Some(&key));
    for s in [&knot, &nsd] {
        assert_eq!(s.wait_serial(1, DEADLINE), Ok(1), "{}", s.kind());
    }

    let names = sample(zone);
    for s in [&knot, &nsd] {
        let diffs = differential(primary.addr(), s.addr(), &names);
        assert!(
            diffs.is_empty(),
            "the {} secondary answers differently from the primary:\n{}",
            s.kind(),
            diffs.join("\n")
        );
    }
    // The differential sees a difference where there is one.
    let other = knot_primary(zone, &small_zone(zone, 7, "b 120 IN TXT \"x\""), None, &[]);
    let diffs = differential(primary.addr(), other.addr(), &names);
    assert!(
        diffs
            .iter()
            .any(|d| d.contains("b.86.cpid.internal. type16")),
        "{diffs:?}"
    );
    assert!(diffs.iter().any(|d| d.contains("type6")), "{diffs:?}");
    drop(other);

    // A change on the primary reaches both through NOTIFY: the SOA refresh
    // is an hour, far beyond the deadline.
    let new = "new  IN TXT \"after the notify\"";
    primary.set_zone(&small_zone(zone, 2, new));
    assert_eq!(primary.wait_serial(2, DEADLINE), Ok(2));
    for s in [&knot, &nsd] {
        assert_eq!(s.wait_serial(2, DEADLINE), Ok(2), "{}", s.kind());
        assert_eq!(
            txt_at(s, "new.86.cpid.internal."),
            ["after the notify"],
            "{}",
            s.kind()
        );
        let diffs = differential(primary.addr(), s.addr(), &names);
        assert!(diffs.is_empty(), "{}: {}", s.kind(), diffs.join("\n"));
    }
    assert!(
        knot.log().contains("notify, incoming"),
        "knot got no NOTIFY:\n{}",
        knot.log()
    );
    assert!(
        nsd.log().contains("notify for 86.cpid.internal."),
        "nsd got no NOTIFY:\n{}",
        nsd.log()
    );
}

#[test]
fn a_wrong_tsig_secret_keeps_the_secondary_without_the_zone() {
    let kdig = require_tool("kdig", "knot-dnsutils");
    if !(require_knot_and_nsd() && kdig) {
        return;
    }
    let zone = "86.cpid.internal.";
    let key = TsigSpec::random("cpid-xfr");
    let wrong = key.with_other_secret();
    let primary = knot_primary(zone, &small_zone(zone, 5, ""), Some(&key), &[]);
    // What the secondaries will meet: Knot 3.2 refuses a transfer outside
    // its ACL with NOTAUTH, and a bad signature also with TSIG error BADSIG.
    let right = kdig_axfr(primary.addr(), zone, Some(&key));
    assert!(right.contains("alpha two"), "{right}");
    let bad = kdig_axfr(primary.addr(), zone, Some(&wrong));
    assert!(bad.contains("BADSIG") && !bad.contains("alpha"), "{bad}");
    let unsigned = kdig_axfr(primary.addr(), zone, None);
    assert!(
        unsigned.contains("NOTAUTH") && !unsigned.contains("alpha"),
        "{unsigned}"
    );

    let knot = knot_secondary(zone, primary.addr(), Some(&wrong));
    let nsd = nsd_secondary(zone, primary.addr(), Some(&wrong));
    // Without the key at all, also no zone.
    let keyless = knot_secondary(zone, primary.addr(), None);

    // Both try at once on start; give them a few seconds to fail.
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        for s in [&knot, &nsd, &keyless] {
            assert_eq!(s.serial(), None, "{} got the zone:\n{}", s.kind(), s.log());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // And say why.
    let end = Instant::now() + DEADLINE;
    let said = |s: &Secondary, words: &[&str]| {
        let log = s.log();
        words.iter().all(|w| log.contains(w))
    };
    // Knot 3.2.6: "refresh, remote primary, address …, failed (failed to
    // verify TSIG)"; without a key the primary's NOTAUTH: "… failed (not
    // allowed)". NSD 4.6: "tsig error (Bad Signature)", "bad tsig signature".
    let knot_words = ["refresh, remote primary", "failed (failed to verify TSIG)"];
    let keyless_words = ["error 'NOTAUTH'", "failed (not allowed)"];
    let nsd_words = ["tsig error (Bad Signature)", "bad tsig signature"];
    let all_said =
        || said(&knot, &knot_words) && said(&nsd, &nsd_words) && said(&keyless, &keyless_words);
    while !all_said() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(said(&knot, &knot_words), "knot log:\n{}", knot.log());
    assert!(said(&nsd, &nsd_words), "nsd log:\n{}", nsd.log());
    assert!(
        said(&keyless, &keyless_words),
        "knot log:\n{}",
        keyless.log()
    );
}

/// The benchmark reference: Knot to Knot AXFR of `CPID_AXFR_NAMES` TXT names
/// (default 100 000), with TSIG. Ignored by default:
/// `cargo test --release --test integration knot_to_knot_axfr -- --ignored --nocapture`.
#[test]
#[ignore = "benchmark reference; slow"]
fn knot_to_knot_axfr_of_a_large_zone() {
    if !require_knot_and_nsd() {
        return;
    }
    let names: usize = std::env::var("CPID_AXFR_NAMES")
        .ok()
        .map(|v| v.parse().expect("CPID_AXFR_NAMES is a number"))
        .unwrap_or(100_000);
    let zone = "86.cpid.internal.";
    let key = TsigSpec::random("cpid-xfr");
    let text = large_zone(zone, 42, names);
    let load = Instant::now();
    let primary = knot_primary(zone, &text, Some(&key), &[]);
    let load = load.elapsed();
    let took = time_axfr_into_knot(primary.addr(), zone, Some(&key), 42);
    // The same check as the tests: the last name made it.
    let last = knot_secondary(zone, primary.addr(), Some(&key));
    last.wait_serial(42, Duration::from_secs(600)).unwrap();
    assert!(!txt_at(&last, &format!("n{}.{zone}", names - 1)).is_empty());
    let knot_says = last
        .log()
        .lines()
        .find(|l| l.contains("AXFR, incoming") && l.contains("finished"))
        .unwrap_or_default()
        .to_string();
    eprintln!(
        "knot -> knot AXFR of {names} TXT names ({} zone-file bytes): {took:?} \
         (secondary start to serving the serial); primary load {load:?}; \
         a second secondary's log: {knot_says}",
        text.len()
    );
}
