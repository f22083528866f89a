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
