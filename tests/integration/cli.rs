//! The `cpid` binary as a user drives it.

use std::process::{Command, Output};

use cpid::identifier::Class;

use crate::common::*;

fn cpid(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn key_generate_writes_a_0600_pkcs8_key_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("provider.pem");
    let p = path.to_str().unwrap();
    let public = ok(cpid(&["key", "generate", "-o", p]));
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = cpid(&["key", "generate", "-o", p]);
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "file untouched"
    );
}

#[test]
fn resolve_verifies_with_a_pinned_key_and_refuses_another_key() {
    let node = TestNode::start();
    let rec = node.issue(Class::St, Some("86.44"), &[("DESC", "object store", 0)]);
    let id = rec.record().identifier.to_string();
    let server = node.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let pinned = dir.path().join("node.pub");
    std::fs::write(&pinned, node.node.registry.key().public().to_public_pem()).unwrap();
    let out = ok(cpid(&[
        "resolve",
        &id,
        "-s",
        &server,
        "--node-key",
        pinned.to_str().unwrap(),
    ]));
    assert!(
        out.contains(&format!("identifier: {id}")) && out.contains("object store"),
        "{out}"
    );

    let json = ok(cpid(&["resolve", &id, "-s", &server, "--json", "--tcp"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["identifier"], id.as_str());
    assert_eq!(v["version"], 1);

    let wrong = dir.path().join("other.pub");
    let other = ok(cpid(&[
        "key",
        "generate",
        "-o",
        dir.path().join("o.pem").to_str().unwrap(),
    ]));
    std::fs::write(&wrong, other).unwrap();
    let out = cpid(&[
        "resolve",
        &id,
        "-s",
        &server,
        "--node-key",
        wrong.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "a record must not verify under a foreign key"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not verify"));

    let missing = cpid::identifier::Identifier::new(
        cpid::identifier::Prefix::parse("86.44").unwrap(),
        Class::Gc,
        cpid::identifier::Serial::new(77).unwrap(),
    )
    .to_string();
    let out = cpid(&["resolve", &missing, "-s", &server]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NXDomain")
            || String::from_utf8_lossy(&out.stderr).contains("Non-Existent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn exported_zone_imports_into_a_node_with_the_same_key() {
    let source = tempfile::tempdir().unwrap();
    let src = source.path().to_str().unwrap();
    let records = concat!(env!("CARGO_MANIFEST_DIR"), "/zones/records.toml");
    ok(cpid(&["zone", "import", records, "--data", src]));
    let zone_file = source.path().join("86.zone");
    ok(cpid(&[
        "zone",
        "export",
        "--data",
        src,
        "-o",
        zone_file.to_str().unwrap(),
    ]));

    // A replica with the same node key takes every signed record.
    let replica = tempfile::tempdir().unwrap();
    std::fs::copy(
        source.path().join("node-key.pem"),
        replica.path().join("node-key.pem"),
    )
    .unwrap();
    let rep = replica.path().to_str().unwrap();
    ok(cpid(&[
        "zone",
        "import",
        zone_file.to_str().unwrap(),
        "--data",
        rep,
    ]));
    let exported_again = ok(cpid(&["zone", "export", "--data", rep]));
    let original = std::fs::read_to_string(&zone_file).unwrap();
    let body = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with(';') && !l.contains(" SOA "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(body(&exported_again), body(&original));

    // A node with another key refuses them, and stores nothing.
    let stranger = tempfile::tempdir().unwrap();
    let out = cpid(&[
        "zone",
        "import",
        zone_file.to_str().unwrap(),
        "--data",
        stranger.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let info = ok(cpid(&[
        "node",
        "info",
        "--data",
        stranger.path().to_str().unwrap(),
    ]));
    assert!(info.contains("records:  0"), "{info}");
}

#[test]
fn a_bad_config_is_refused_with_the_key_that_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[node]\nprefix = \"86.x\"\n").unwrap();
    let out = cpid(&["node", "info", "--config", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("node.prefix"));
    std::fs::write(&path, "[dns]\nlisten_on = \"127.0.0.1:53\"\n").unwrap();
    let out = cpid(&["node", "info", "--config", path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_on"));
}

#[test]
fn a_records_file_with_one_bad_entry_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("records.toml");
    let data = dir.path().join("data");
    for bad in [
        "class = \"GC\"\n[[record.value]]\nindex = 1\ntype = \"not a type\"\ndata = \"x\"\n",
        "class = \"GC\"\nprefix = \"87\"\n",
        "class = \"QQ\"\n",
        "class = \"GC\"\n[[record.value]]\nindex = 2\ntype = \"DESC\"\ndata = \"b\"\n[[record.value]]\nindex = 1\ntype = \"DESC\"\ndata = \"a\"\n",
    ] {
        let text = format!(
            "[[record]]\nclass = \"IC\"\n[[record.value]]\nindex = 1\ntype = \"DESC\"\ndata = \"fine\"\n\n[[record]]\n{bad}"
        );
        std::fs::write(&file, text).unwrap();
        let out = cpid(&[
            "zone",
            "import",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "accepted: {bad}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("record 2"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let info = ok(cpid(&["node", "info", "--data", data.to_str().unwrap()]));
        assert!(info.contains("records:  0"), "entry 1 was stored: {info}");
    }
}
