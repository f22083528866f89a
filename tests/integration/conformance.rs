//! Black-box checks with the tools operators use: `dig` and `kdig` must
//! read every kind of answer cpid sends. Skipped, loudly, where the tools are
//! not installed; under `CI=true` a missing tool fails the test, since CI
//! installs them (`.ci/run`).

use std::process::Command;

use cpid::ident::identifier::Class;

use crate::common::*;

fn run(tool: &str, node: &TestNode, args: &[&str]) -> String {
    let port = node.addr().port().to_string();
    let out = Command::new(tool)
        .args(["@127.0.0.1", "-p", &port, "+time=2", "+retry=1"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dig_and_kdig_read_every_answer_cpid_sends() {
    // Both probed before either returns, so a skip names every missing tool.
    let dig = require_tool("dig", "dnsutils");
    let kdig = require_tool("kdig", "knot-dnsutils");
    if !(dig && kdig) {
        return;
    }
    let node = TestNode::start();
    let rec = node.issue(
        Class::Ic,
        Some("86.31.1005"),
        &[
            ("DESC", "pool", 0),
            ("CP.ENDPOINT", "https://pool.example.internal/api", 300),
        ],
    );
    let name = node.dns_name(&rec.record().identifier);
    let apex = node.zone_name();
    for t in ["dig", "kdig"] {
        let txt = run(t, &node, &[&name, "TXT"]);
        assert!(
            txt.contains("NOERROR") && txt.contains("id=86.31.1005/IC-"),
            "{t}: {txt}"
        );
        let uri = run(t, &node, &[&name, "URI", "+short"]);
        assert!(
            uri.contains("\"https://pool.example.internal/api\""),
            "{t}: {uri}"
        );
        let private = run(t, &node, &[&name, "TYPE65280", "+short"]);
        assert!(private.trim_start().starts_with("\\#"), "{t}: {private}");
        let nx = run(t, &node, &[&format!("gc-000099-0.{apex}"), "A"]);
        assert!(nx.contains("NXDOMAIN") && nx.contains("SOA"), "{t}: {nx}");
        let tcp = run(t, &node, &[&name, "TYPE65280", "+tcp"]);
        assert!(tcp.contains("NOERROR"), "{t}: {tcp}");
        let refused = run(t, &node, &["example.com", "A"]);
        assert!(refused.contains("REFUSED"), "{t}: {refused}");
    }
}

/// The first datagram `tool` sends with `args` to a socket that never
/// answers.
fn capture(tool: &str, args: &[&str]) -> Vec<u8> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let port = socket.local_addr().unwrap().port().to_string();
    let mut child = Command::new(tool)
        .args(["@127.0.0.1", "-p", &port, "+time=1", "+retry=0"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    buf.truncate(n);
    buf
}

#[test]
fn tsig_signed_queries_from_dig_and_kdig_verify_and_a_changed_byte_does_not() {
    use cpid::dns::tsig::{Chain, TsigError, TsigKey, verify};
    let dig = require_tool("dig", "dnsutils");
    let kdig = require_tool("kdig", "knot-dnsutils");
    let secret = "q0ZyKKVzyWZ6rAGlCvvG9Lw7kTHvFDkLlOcdr6zAuTU=";
    let key = TsigKey::new("xfr-key.", secret).unwrap();
    let other = TsigKey::new("xfr-key.", "b3RoZXItc2VjcmV0").unwrap();
    let spec = format!("hmac-sha256:xfr-key:{secret}");
    for (tool, present) in [("dig", dig), ("kdig", kdig)] {
        if !present {
            continue;
        }
        let msg = capture(tool, &["-y", &spec, "86.cpid.internal.", "SOA"]);
        let now = cpid::clock::system_now();
        let v = verify(&msg, std::slice::from_ref(&key), Chain::Request, now)
            .unwrap_or_else(|e| panic!("{tool}'s TSIG: {e}"))
            .unwrap_or_else(|| panic!("{tool} sent no TSIG"));
        assert_eq!(v.key, 0);
        assert_eq!(v.mac.len(), 32, "{tool}: HMAC-SHA256, untruncated");
        assert_eq!(
            verify(&msg, std::slice::from_ref(&other), Chain::Request, now),
            Err(TsigError::BadSig),
            "{tool}: another secret"
        );
        let mut changed = msg.clone();
        changed[14] ^= 0x20; // a byte of the question name
        assert!(
            !matches!(
                verify(&changed, std::slice::from_ref(&key), Chain::Request, now),
                Ok(Some(_))
            ),
            "{tool}: a changed question"
        );
        assert!(matches!(
            verify(&msg, std::slice::from_ref(&key), Chain::Request, now + 3600),
            Err(TsigError::BadTime { .. })
        ));
    }
}
