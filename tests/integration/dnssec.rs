//! The DNSSEC signing core (`dns::dnssec`) against a stock validator: a
//! zone built by cpid's own hot tier (identifier names with TXT, URI and
//! signed records, the apex, an in-zone name server, a delegation with
//! glue and a DS), signed RRset by RRset with `ZoneKey::sign_rrset`, chained
//! with RFC 4034 NSEC records in canonical order, written as a master file
//! and checked by BIND's `dnssec-verify` (Debian `bind9-utils`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use cpid::dns::dnssec::{self, FLAGS_CSK, RrSetRef, Validity, ZoneKey};
use cpid::dns::wire::{WireName, rdata_presentation, rtype, txt_rdata, type_name, uri_rdata};
use cpid::dns::zone::{CutSpec, RrSet, SoaTimers, Zone, canonical_order};

use crate::common::require_tool;

/// One RR of the signed zone: owner, type, TTL, RDATA.
type Rr = (WireName, u16, u32, Vec<u8>);
/// The zone's RRsets by (owner bytes, type): owner, TTL, RDATA.
type RrSets = BTreeMap<(Vec<u8>, u16), (WireName, u32, Vec<Vec<u8>>)>;

fn sample_zone() -> (Zone, WireName) {
    let mut data = cpid::testkit::sample_apex(1_800_000_000, [192, 0, 2, 53].into()).unwrap();
    data.extra.push(RrSet {
        rtype: rtype::TXT,
        ttl: 3600,
        rdatas: vec![txt_rdata(&["cpid node 86"])],
    });
    let apex = data.apex.clone();
    let zone = Zone::new(data).unwrap();
    for (id, endpoint) in [
        ("gc-000001-x.1005.31", "https://gc-1.example/v1"),
        ("ic-000002-4.1005.31", "https://ic-2.example/v1"),
        ("gc-000003-7.44", "https://gc-3.example/v1"),
    ] {
        let owner = WireName::parse(&format!("{id}.86.cpid.internal")).unwrap();
        zone.set(
            &owner,
            &[
                RrSet {
                    rtype: rtype::TXT,
                    ttl: 300,
                    rdatas: vec![
                        txt_rdata(&[format!("id={id}"), "version=1".into()]),
                        txt_rdata(&["index=1", "type=CP.ENDPOINT", endpoint]),
                    ],
                },
                RrSet {
                    rtype: rtype::URI,
                    ttl: 300,
                    rdatas: vec![uri_rdata(1, 1, endpoint)],
                },
                RrSet {
                    rtype: rtype::CPREC,
                    ttl: 300,
                    rdatas: vec![vec![0xc9, 0x01, 0x02, 0x03]],
                },
            ],
        )
        .unwrap();
    }
    // A delegated child with no identifier of this zone under it (names
    // below a cut are occluded: not signed, not in the NSEC chain).
    let child = apex.prepend("33").unwrap();
    let ns = child.prepend("ns1").unwrap();
    let ip: IpAddr = "192.0.2.31".parse().unwrap();
    zone.set_cut(
        &child,
        Some(CutSpec {
            authority: vec![RrSet {
                rtype: rtype::NS,
                ttl: 3600,
                rdatas: vec![ns.as_bytes().to_vec()],
            }],
            glue: vec![(ns, ip)],
            ttl: 3600,
        }),
    )
    .unwrap();
    (zone, child)
}

/// Signs the zone the way a signer must (RFC 4035 §2): every
/// authoritative RRset gets an RRSIG, the DNSKEY goes at the apex, the DS
/// at the cut (signed; the cut's NS and the glue are not), and one NSEC per
/// authoritative name in canonical order, the last pointing back at the
/// apex.
fn sign(
    zone: &Zone,
    cut: &WireName,
    key: &ZoneKey,
    child_ds: Vec<u8>,
    window: Validity,
) -> Vec<Rr> {
    let apex = zone.apex();
    let timers = SoaTimers::default();
    let mut rrs = zone.records();
    rrs.push((apex.clone(), rtype::DNSKEY, 3600, key.dnskey().to_vec()));
    rrs.push((cut.clone(), rtype::DS, 3600, child_ds));

    let below_cut = |n: &WireName| n != cut && n.is_within(cut);
    let mut sets = RrSets::new();
    for (owner, t, ttl, rdata) in &rrs {
        let entry = sets
            .entry((owner.as_bytes().to_vec(), *t))
            .or_insert_with(|| (owner.clone(), *ttl, Vec::new()));
        entry.2.push(rdata.clone());
    }

    // The NSEC chain over the authoritative names.
    let mut names: Vec<WireName> = rrs
        .iter()
        .map(|r| r.0.clone())
        .filter(|n| !below_cut(n))
        .collect();
    names.sort_by(|a, b| canonical_order(a.as_bytes(), b.as_bytes()));
    names.dedup();
    let denial_ttl = dnssec::denial_ttl(timers.ttl, timers.minimum);
    for (i, name) in names.iter().enumerate() {
        let next = names.get(i + 1).unwrap_or(&names[0]);
        let mut types: Vec<u16> = sets
            .keys()
            .filter(|(o, _)| o == name.as_bytes())
            .map(|(_, t)| *t)
            .collect();
        types.extend([rtype::RRSIG, rtype::NSEC]);
        let rdata = dnssec::nsec_rdata(next.as_bytes(), &types).unwrap();
        sets.insert(
            (name.as_bytes().to_vec(), rtype::NSEC),
            (name.clone(), denial_ttl, vec![rdata]),
        );
    }

    let mut out = Vec::new();
    for ((_, t), (owner, ttl, rdatas)) in &sets {
        for rdata in rdatas {
            out.push((owner.clone(), *t, *ttl, rdata.clone()));
        }
        let at_cut = owner == cut && *t != rtype::DS && *t != rtype::NSEC;
        if below_cut(owner) || at_cut {
            continue;
        }
        let refs: Vec<&[u8]> = rdatas.iter().map(Vec::as_slice).collect();
        let rrset = RrSetRef {
            owner: owner.as_bytes(),
            rtype: *t,
            ttl: *ttl,
            rdatas: &refs,
        };
        let rrsig = key.sign_rrset(&rrset, window).unwrap();
        dnssec::verify_rrset(
            apex.as_bytes(),
            key.dnskey(),
            &rrset,
            &rrsig,
            window.inception,
        )
        .unwrap();
        out.push((owner.clone(), rtype::RRSIG, *ttl, rrsig));
    }
    out
}

fn master_file(apex: &WireName, rrs: &[Rr]) -> String {
    let mut text = format!("$ORIGIN {apex}\n");
    for (owner, t, ttl, rdata) in rrs {
        text.push_str(&format!(
            "{owner} {ttl} IN {} {}\n",
            type_name(*t),
            rdata_presentation(*t, rdata)
        ));
    }
    text
}

fn dnssec_verify(apex: &WireName, text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("zone.signed");
    std::fs::write(&path, text).unwrap();
    // `-z`: the zone has one combined key (flags 257) signing everything,
    // not a KSK/ZSK pair, which dnssec-verify assumes without it.
    std::process::Command::new("dnssec-verify")
        .arg("-z")
        .arg("-o")
        .arg(apex.to_string())
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn dnssec_verify_accepts_a_zone_signed_by_the_signing_core_and_refuses_a_tampered_one() {
    if !require_tool("dnssec-verify", "bind9-utils") {
        return;
    }
    let (zone, cut) = sample_zone();
    let apex = zone.apex();
    let key = ZoneKey::new(
        apex.as_bytes(),
        ed25519_dalek::SigningKey::from_bytes(&[0x5a; 32]),
        FLAGS_CSK,
    )
    .unwrap();
    let child_key = ZoneKey::new(
        cut.as_bytes(),
        ed25519_dalek::SigningKey::from_bytes(&[0x31; 32]),
        FLAGS_CSK,
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let window = Validity {
        inception: now - 3600,
        expiration: now + 7 * 86_400,
    };
    let rrs = sign(&zone, &cut, &key, child_key.ds().unwrap(), window);
    let text = master_file(&apex, &rrs);
    if let Ok(dir) = std::env::var("CPID_DNSSEC_ZONE_OUT") {
        std::fs::write(format!("{dir}/zone.signed"), &text).unwrap();
    }

    let out = dnssec_verify(&apex, &text);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "dnssec-verify refused:\n{report}\n{text}"
    );
    assert!(report.contains("ED25519"), "{report}");

    // One TXT RDATA changed after signing: the validator must notice.
    let tampered = text.replacen(
        "\"id=gc-000001-x.1005.31\" \"version=1\"",
        "\"id=gc-000001-x.1005.31\" \"version=2\"",
        1,
    );
    assert_ne!(tampered, text);
    let out = dnssec_verify(&apex, &tampered);
    assert!(
        !out.status.success(),
        "dnssec-verify accepted a changed record:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
