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
