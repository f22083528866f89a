//! The DNSSEC validator harness (`cpid::testkit::validators`) proved
//! against a reference signer: Knot DNS with `mod-onlinesign` and an
//! Ed25519 key serves `example.cpid.internal.` on loopback, and Unbound and
//! `delv`, trusting only that zone's key, must validate its answers and its
//! denials, and must refuse them under another key.
//!
//! The tests skip (loudly) without `knotd`, `knotc`, `keymgr`, `unbound` or
//! `delv`, and fail under `CI=true`, where `.ci/run` installs the Debian
//! packages `knot`, `unbound` and `bind9-dnsutils`.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cpid::testkit::secondaries::{Primary, small_zone};
use cpid::testkit::validators::*;
use hickory_proto::op::ResponseCode;

use crate::secondaries::require_daemon;

const ZONE: &str = "example.cpid.internal.";
/// A TXT record of [`small_zone`].
const NAME: &str = "a.example.cpid.internal.";
/// A name [`small_zone`] does not have.
const MISSING: &str = "missing.example.cpid.internal.";

/// Knot (with `keymgr`), Unbound and `delv` present; probes all before
/// returning so a skip names every missing tool.
fn require_tools() -> bool {
    let found = [
        require_daemon("knotd", "knot"),
        require_daemon("knotc", "knot"),
        require_daemon("keymgr", "knot"),
        require_daemon("unbound", "unbound"),
        require_daemon("delv", "bind9-dnsutils"),
    ];
    found.iter().all(|f| *f)
}

/// Knot signing [`small_zone`] of `zone` online, and its key as a trust
/// anchor, fetched from it.
fn signed(zone: &str, extra: &str) -> (Primary, TrustAnchor) {
    let knot = knot_onlinesign_primary(zone, &small_zone(zone, 1, extra));
    let anchor = TrustAnchor::fetch(knot.addr(), zone).unwrap();
    (knot, anchor)
}

/// The SHA-256 DS of the key Knot signs `knot`'s zone with, as `keymgr`
/// computes it.
fn keymgr_ds(knot: &Primary) -> TrustAnchor {
    let keymgr = find_tool("keymgr").unwrap();
    let out = Command::new(keymgr)
        .arg("-c")
        .arg(knot.conf())
        .args([knot.zone(), "ds"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("2"))
        .unwrap_or_else(|| panic!("keymgr ds printed no SHA-256 DS: {text}"));
    TrustAnchor::parse(line).unwrap()
}

#[test]
fn unbound_validates_signed_answers_and_denials_under_a_private_anchor() {
    if !require_tools() {
        return;
    }
    let (knot, anchor) = signed(ZONE, "");
    let unbound = Unbound::start(&[anchor], &[(ZONE, knot.addr())]);

    let txt = unbound.query(NAME, QTYPE_TXT);
    assert_eq!(txt.rcode, ResponseCode::NoError, "{txt:?}");
    assert!(txt.has(QTYPE_TXT) && txt.has(QTYPE_RRSIG), "{txt:?}");
    assert!(
        txt.authentic_data,
        "no AD on {txt:?}; log:\n{}",
        unbound.log()
    );

    let missing = unbound.query(MISSING, QTYPE_TXT);
    // Knot's online signer answers a missing name NOERROR/NODATA with an
    // NSEC at the name ("black lies"); a plain NXDOMAIN would do as well.
    assert!(
        [ResponseCode::NoError, ResponseCode::NXDomain].contains(&missing.rcode),
        "{missing:?}"
    );
    assert!(!missing.has(QTYPE_TXT), "{missing:?}");
    assert!(
        missing.authority.iter().any(|r| r.rtype == QTYPE_NSEC),
        "{missing:?}"
    );
    assert!(
        missing.authentic_data,
        "no AD on the denial {missing:?}; log:\n{}",
        unbound.log()
    );
}

#[test]
fn delv_fully_validates_signed_answers_and_denials() {
    if !require_tools() {
        return;
    }
    let (knot, anchor) = signed(ZONE, "");
    let txt = delv(knot.addr(), &anchor, NAME, QTYPE_TXT);
    assert_eq!(txt.verdict, Verdict::Validated, "{}", txt.output);
    assert!(txt.output.contains("\"alpha\""), "{}", txt.output);

    let missing = delv(knot.addr(), &anchor, MISSING, QTYPE_TXT);
    assert_eq!(
        missing.verdict,
        Verdict::NegativeValidated,
        "{}",
        missing.output
    );
}

#[test]
fn a_wrong_anchor_makes_unbound_servfail_and_delv_fail() {
    if !require_tools() {
        return;
    }
    let (knot, _) = signed(ZONE, "");
    let wrong = TrustAnchor::unrelated_ed25519(ZONE);
    let unbound = Unbound::start(std::slice::from_ref(&wrong), &[(ZONE, knot.addr())]);
    for name in [NAME, MISSING] {
        let a = unbound.query(name, QTYPE_TXT);
        assert_eq!(a.rcode, ResponseCode::ServFail, "{name}: {a:?}");
        assert!(!a.authentic_data && a.answers.is_empty(), "{name}: {a:?}");
        let d = delv(knot.addr(), &wrong, name, QTYPE_TXT);
        assert!(
            matches!(d.verdict, Verdict::Failed(_)),
            "{name}: {:?}\n{}",
            d.verdict,
            d.output
        );
    }
    assert!(
        unbound.log().contains("validation failure"),
        "{}",
        unbound.log()
    );
}

#[test]
fn a_ds_anchor_validates_as_the_key_it_digests() {
    if !require_tools() {
        return;
    }
    let (knot, _) = signed(ZONE, "");
    let ds = keymgr_ds(&knot);
    let unbound = Unbound::start(std::slice::from_ref(&ds), &[(ZONE, knot.addr())]);
    let txt = unbound.query(NAME, QTYPE_TXT);
    assert!(
        txt.has(QTYPE_TXT) && txt.authentic_data,
        "{txt:?}; log:\n{}",
        unbound.log()
    );
    let d = delv(knot.addr(), &ds, NAME, QTYPE_TXT);
    assert_eq!(d.verdict, Verdict::Validated, "{}", d.output);
}

/// The national/regional layout: `cpid.internal.` and `86.cpid.internal.`
/// on two servers, the DS of the child in the parent, one anchor at the
/// parent.
#[test]
fn unbound_follows_the_chain_of_trust_across_a_delegation_between_servers() {
    if !require_tools() {
        return;
    }
    let child_zone = "86.cpid.internal.";
    let (child, _) = signed(child_zone, "");
    let ds = keymgr_ds(&child);
    let rdata = ds.to_string();
    let rdata = rdata.split_once(" DS ").unwrap().1;
    let delegation = format!("86 IN NS ns1.86\nns1.86 IN A 127.0.0.1\n86 IN DS {rdata}\n");
    let (parent, anchor) = signed("cpid.internal.", &delegation);
    let unbound = Unbound::start(
        &[anchor],
        &[
            ("cpid.internal.", parent.addr()),
            (child_zone, child.addr()),
        ],
    );
    let txt = unbound.query("a.86.cpid.internal.", QTYPE_TXT);
    assert!(
        txt.has(QTYPE_TXT) && txt.authentic_data,
        "{txt:?}; log:\n{}",
        unbound.log()
    );
    let missing = unbound.query("missing.86.cpid.internal.", QTYPE_TXT);
    assert!(
        !missing.has(QTYPE_TXT) && missing.authentic_data,
        "{missing:?}; log:\n{}",
        unbound.log()
    );
}

// ---------------------------------------------------------------------------
// cpid's own signed zones: the federation national → Shanghai → industry
// ---------------------------------------------------------------------------

/// The federation's zones and the server of each, for Unbound's stubs.
fn federation_stubs(fed: &crate::federation::Fed) -> Vec<(&'static str, std::net::SocketAddr)> {
    let f = fed.f();
    vec![
        ("86.cpid.internal.", f.national.running.dns_addr()),
        ("31.86.cpid.internal.", f.shanghai.running.dns_addr()),
        ("1005.31.86.cpid.internal.", f.industry.running.dns_addr()),
    ]
}

/// An identifier the industry node issued, as a DNS name.
fn industry_name(fed: &crate::federation::Fed) -> String {
    let id = fed
        .ids
        .iter()
        .find(|id| id.prefix().to_string() == "86.31.1005")
        .expect("the federation issues records at the industry node");
    fed.name(id)
}

#[test]
fn unbound_trusting_only_the_national_key_validates_an_industry_nodes_answers() {
    if !(require_daemon("unbound", "unbound") && require_daemon("delv", "bind9-dnsutils")) {
        return;
    }
    let fed = crate::federation::start(None, |_| {});
    let national = fed.f().national.running.dns_addr();
    let anchor = TrustAnchor::fetch(national, "86.cpid.internal.").unwrap();
    let unbound = Unbound::start(std::slice::from_ref(&anchor), &federation_stubs(&fed));

    // Positive: the chain national → DS → Shanghai → DS → industry.
    let name = industry_name(&fed);
    let txt = unbound.query(&name, QTYPE_TXT);
    assert_eq!(txt.rcode, ResponseCode::NoError, "{txt:?}");
    assert!(txt.has(QTYPE_TXT), "{txt:?}");
    assert!(
        txt.authentic_data,
        "no AD on {txt:?}; log:\n{}",
        unbound.log()
    );

    // Negative, as compact denial: NODATA for a missing name, AD set.
    let missing = unbound.query("nothere.1005.31.86.cpid.internal.", QTYPE_TXT);
    assert!(
        matches!(
            missing.rcode,
            ResponseCode::NoError | ResponseCode::NXDomain
        ) && missing.answers.is_empty(),
        "{missing:?}"
    );
    assert!(
        missing.authentic_data,
        "no AD on the denial {missing:?}; log:\n{}",
        unbound.log()
    );
    // NODATA at an existing name.
    let nodata = unbound.query(&name, QTYPE_A);
    assert!(
        nodata.answers.is_empty() && nodata.authentic_data,
        "{nodata:?}"
    );

    // delv, asking the national node only: its DS for Shanghai, and a denial.
    let ds = delv(national, &anchor, "31.86.cpid.internal.", QTYPE_DS);
    assert!(matches!(ds.verdict, Verdict::Validated), "{}", ds.output);
    let gone = delv(national, &anchor, "nothere.86.cpid.internal.", QTYPE_TXT);
    assert!(
        matches!(gone.verdict, Verdict::NegativeValidated),
        "{}",
        gone.output
    );

    // Another key as the anchor: nothing validates.
    let wrong = TrustAnchor::unrelated_ed25519("86.cpid.internal.");
    let unbound = Unbound::start(&[wrong], &federation_stubs(&fed));
    let bogus = unbound.query(&name, QTYPE_TXT);
    assert_eq!(bogus.rcode, ResponseCode::ServFail, "{bogus:?}");
}

#[test]
fn unbound_keeps_validating_through_a_regional_nodes_key_rollover() {
    if !(require_daemon("unbound", "unbound") && require_daemon("delv", "bind9-dnsutils")) {
        return;
    }
    // TTLs of 1 s: Unbound takes the new DNSKEY as soon as it is served.
    let mut fed = crate::federation::start_with(
        Some(1),
        |_| {},
        |c| c.federation.chain_refresh_secs = 1,
        None,
    );
    let national = fed.f().national.running.dns_addr();
    let anchor = TrustAnchor::fetch(national, "86.cpid.internal.").unwrap();
    let unbound = Unbound::start(std::slice::from_ref(&anchor), &federation_stubs(&fed));
    let name = industry_name(&fed);
    // Polled to a generous deadline: after the key changes, Unbound's
    // caches turn over within their (1 s) TTLs.
    let validated = |what: &str, qname: &str, positive: bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let a = unbound.query(qname, QTYPE_TXT);
            let shape = if positive {
                a.rcode == ResponseCode::NoError && a.has(QTYPE_TXT)
            } else {
                matches!(a.rcode, ResponseCode::NoError | ResponseCode::NXDomain)
                    && a.answers.is_empty()
            };
            if shape && a.authentic_data {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {a:?}; log:\n{}",
                unbound.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    };
    validated("before the rollover", &name, true);
    // Double DS at the national node: each validates the chain.
    fed.roll_shanghai(60);
    assert_eq!(crate::federation::shanghai_ds(&fed), 2);
    let ds = delv(national, &anchor, "31.86.cpid.internal.", QTYPE_DS);
    assert!(matches!(ds.verdict, Verdict::Validated), "{}", ds.output);
    validated("old key, both DS", &name, true);
    // Shanghai signs with the new key from its restart: its DNSKEY, and the
    // industry node's DS signed again.
    fed.restart_shanghai();
    validated("new key, both DS", &name, true);
    validated(
        "a denial under the new key",
        "nothere.31.86.cpid.internal.",
        false,
    );
}

/// A UDP relay to `upstream` that changes `from` into `to` (same length)
/// in every answer: an on-path forger. Counts the answers it changed.
fn tampering_relay(
    upstream: std::net::SocketAddr,
    from: &'static [u8],
    to: &'static [u8],
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let forged = Arc::new(AtomicUsize::new(0));
    let count = forged.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65_535];
        while let Ok((n, client)) = socket.recv_from(&mut buf) {
            let out = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            out.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            out.send_to(&buf[..n], upstream).unwrap();
            let mut answer = [0u8; 65_535];
            let Ok(m) = out.recv(&mut answer) else {
                continue;
            };
            let mut answer = answer[..m].to_vec();
            if let Some(at) = answer.windows(from.len()).position(|w| w == from) {
                answer[at..at + to.len()].copy_from_slice(to);
                count.fetch_add(1, Ordering::Relaxed);
            }
            let _ = socket.send_to(&answer, client);
        }
    });
    (addr, forged)
}

#[test]
fn a_tampered_answer_from_the_industry_node_fails_validation() {
    if !require_daemon("unbound", "unbound") {
        return;
    }
    let fed = crate::federation::start(None, |_| {});
    let national = fed.f().national.running.dns_addr();
    let anchor = TrustAnchor::fetch(national, "86.cpid.internal.").unwrap();
    let mut stubs = federation_stubs(&fed);
    let (relay, forged) = tampering_relay(stubs[2].1, b"version=", b"versioN=");
    stubs[2].1 = relay;
    let unbound = Unbound::start(&[anchor], &stubs);
    let name = industry_name(&fed);
    let txt = unbound.query(&name, QTYPE_TXT);
    assert_eq!(txt.rcode, ResponseCode::ServFail, "{txt:?}");
    assert!(txt.answers.is_empty(), "{txt:?}");
    assert!(
        forged.load(Ordering::Relaxed) > 0,
        "the relay changed no answer"
    );
    let log = unbound.log();
    assert!(log.contains("validation failure"), "{log}");
}

// ---------------------------------------------------------------------------
// A signed zone served by a stock secondary
// ---------------------------------------------------------------------------

#[test]
fn a_knot_secondary_of_a_signed_node_serves_answers_and_denials_that_validate() {
    if !(require_daemon("knotd", "knot")
        && require_daemon("unbound", "unbound")
        && require_daemon("delv", "bind9-dnsutils"))
    {
        return;
    }
    use cpid::config::SecondaryConfig;
    use cpid::ident::identifier::Class;
    use cpid::testkit::secondaries::{DEADLINE, knot_secondary_on, reserve_port};

    let port = reserve_port();
    let node = crate::common::TestNode::start_with(move |c| {
        c.transfer.secondaries = vec![SecondaryConfig {
            notify: Some(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
            allow: Some("127.0.0.1".into()),
            key: None,
        }];
    });
    let record = node.issue(
        Class::Ic,
        Some("86.31.1005"),
        &[("DESC", "a signed pool", 0)],
    );
    let zone = node.zone_name();
    let knot = knot_secondary_on(port, &zone, node.addr(), None);
    let serial = node.node.registry.zone().serial();
    assert_eq!(
        knot.wait_serial(serial, DEADLINE),
        Ok(serial),
        "{}",
        knot.log()
    );

    // The anchor from the primary; every answer from the secondary alone.
    let anchor = TrustAnchor::fetch(node.addr(), &zone).unwrap();
    let name = node.dns_name(&record.record().identifier);
    let unbound = Unbound::start(
        std::slice::from_ref(&anchor),
        &[(zone.as_str(), knot.addr())],
    );
    let txt = unbound.query(&name, QTYPE_TXT);
    assert!(
        txt.has(QTYPE_TXT) && txt.authentic_data,
        "{txt:?}\n{}",
        unbound.log()
    );
    // Knot proves a missing name with the transferred NSEC chain.
    let missing = format!("zz-nothing.{zone}");
    let nx = unbound.query(&missing, QTYPE_TXT);
    assert_eq!(nx.rcode, ResponseCode::NXDomain, "{nx:?}");
    assert!(
        nx.authentic_data,
        "no AD on Knot's denial {nx:?}\n{}",
        unbound.log()
    );
    let nodata = unbound.query(&name, QTYPE_A);
    assert!(
        nodata.answers.is_empty() && nodata.authentic_data,
        "{nodata:?}"
    );
    let v = delv(knot.addr(), &anchor, &name, QTYPE_TXT);
    assert!(matches!(v.verdict, Verdict::Validated), "{}", v.output);
    let v = delv(knot.addr(), &anchor, &missing, QTYPE_TXT);
    assert!(
        matches!(v.verdict, Verdict::NegativeValidated),
        "{}",
        v.output
    );

    // A change reaches the secondary signed too (the zone goes whole).
    let second = node.issue(Class::Ic, Some("86.31.1005"), &[("DESC", "another", 0)]);
    let serial = node.node.registry.zone().serial();
    assert_eq!(
        knot.wait_serial(serial, DEADLINE),
        Ok(serial),
        "{}",
        knot.log()
    );
    let v = delv(
        knot.addr(),
        &anchor,
        &node.dns_name(&second.record().identifier),
        QTYPE_TXT,
    );
    assert!(matches!(v.verdict, Verdict::Validated), "{}", v.output);
}

#[test]
fn dnssec_verify_accepts_the_zone_a_signed_node_transfers_cut_included() {
    if !(require_daemon("dnssec-verify", "bind9-utils") && require_daemon("kdig", "knot-dnsutils"))
    {
        return;
    }
    // The national node of a federation: identifiers, a delegation (NS,
    // glue, DS) and the delegation record under its alias name.
    let fed = crate::federation::start_with(
        None,
        |_| {},
        |c| {
            c.transfer.secondaries = vec![cpid::config::SecondaryConfig {
                notify: None,
                allow: Some("127.0.0.1".into()),
                key: None,
            }];
        },
        None,
    );
    let national = fed.f().national.running.dns_addr();
    let out = Command::new(find_tool("kdig").unwrap())
        .args([
            &format!("@{}", national.ip()),
            "-p",
            &national.port().to_string(),
            "AXFR",
            "86.cpid.internal.",
        ])
        .output()
        .unwrap();
    let text: String = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        text.contains("\tNSEC\t") && text.contains("\tDS\t"),
        "{text}"
    );
    let verify = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zone.signed");
        std::fs::write(&path, text).unwrap();
        Command::new(find_tool("dnssec-verify").unwrap())
            .args(["-z", "-o", "86.cpid.internal."])
            .arg(&path)
            .output()
            .unwrap()
    };
    let ok = verify(&text);
    let report =
        String::from_utf8_lossy(&ok.stderr).to_string() + &String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "dnssec-verify refused:\n{report}\n{text}"
    );
    // One NSEC dropped: the chain is broken and dnssec-verify says so.
    let broken: String = {
        let mut dropped = false;
        text.lines()
            .filter(|l| {
                let drop =
                    !dropped && l.contains("\tNSEC\t") && !l.starts_with("86.cpid.internal.");
                dropped |= drop;
                !drop
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert!(!verify(&broken).status.success(), "a broken chain passed");
}
