//! The `cpid` binary as a user drives it.

use std::process::{Command, Output};

use cpid::ident::identifier::Class;

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

    let missing = cpid::ident::identifier::Identifier::new(
        cpid::ident::identifier::Prefix::parse("86.44").unwrap(),
        Class::Gc,
        cpid::ident::identifier::Serial::new(77).unwrap(),
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
        // The same index twice (the API's rule; order alone is sorted, as
        // the API sorts it).
        "class = \"GC\"\n[[record.value]]\nindex = 1\ntype = \"DESC\"\ndata = \"b\"\n[[record.value]]\nindex = 1\ntype = \"DESC\"\ndata = \"a\"\n",
        "class = \"GC\"\n[[record.value]]\nindex = 300\ntype = \"HS_PUBKEY\"\ndata = \"x\"\n",
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

#[test]
fn provider_resource_lifecycle_through_the_cli() {
    let node = TestNode::start();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("provider.pem");
    let key = key.to_str().unwrap();
    ok(cpid(&["key", "generate", "-o", key]));
    let server = format!("http://{}", node.http_addr());
    let admin = node.node.config.admin_key_file();
    let admin = admin.to_str().unwrap();
    let with = |args: &[&str], key: &str| {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(["--server", server.as_str(), "--key", key]);
        cpid(&v)
    };

    let pv = ok(with(
        &[
            "provider",
            "register",
            "--name",
            "Lingang AI Computing",
            "--organisation",
            "91310000MA1K4XYZ",
            "--contact",
            "noc@lingang.example",
            "--region",
            "31",
        ],
        key,
    ));
    let pv = pv.trim().to_string();
    assert!(pv.starts_with("86/PV-"), "{pv}");
    // Review policy: pending, so registering a resource fails with the reason.
    let refused = with(&["register", "--class", "IC", "--value", "DESC=x"], key);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("inactive_key"));
    // The provider's key is not the admin key.
    let not_admin = with(&["admin", "approve", &pv], key);
    assert!(String::from_utf8_lossy(&not_admin.stderr).contains("not_admin"));
    ok(with(&["admin", "approve", &pv], admin));

    // Values from the command line.
    let id = ok(with(
        &[
            "register",
            "--class",
            "IC",
            "--value",
            &format!("CP.RESOURCE={}", a800_pool(8)),
            "--value",
            "CP.ENDPOINT=https://pool.lingang.example/v1",
        ],
        key,
    ));
    let id = id.trim().to_string();
    assert!(id.starts_with("86/IC-"), "{id}");
    // Values from a JSON file, and --json output.
    let file = dir.path().join("values.json");
    std::fs::write(
        &file,
        r#"{"values": [{"type": "DESC", "data": "8 x A800, Lingang"}, {"type": "URL", "data": "https://lingang.example/", "ttl": 600}]}"#,
    )
    .unwrap();
    let json = ok(with(
        &[
            "register",
            "--class",
            "SC",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ],
        key,
    ));
    let record: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(record["values"][1]["ttl"], 600);
    assert_eq!(record["owner"], pv);

    // Update and withdraw; both visible through the HTTP reads.
    ok(with(&["update", &id, "--value", "DESC=moved"], key));
    let api = node.api();
    let got = api.get(&format!("/v1/identifiers/{id}")).unwrap();
    assert_eq!(got.body["version"], 2);
    assert_eq!(got.body["values"][0]["data"], "moved");
    ok(with(&["withdraw", &id], key));
    assert_eq!(
        api.get(&format!("/v1/identifiers/{id}")).unwrap().status,
        410
    );
    // A bad value is refused with the node's reason.
    let bad = with(
        &[
            "register",
            "--class",
            "IC",
            "--value",
            "URL=ftp://x.example/",
        ],
        key,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid_value"));

    // The provider replaces its key, signing with the old one; the old key
    // is refused from then on, the new one works.
    let new_key = dir.path().join("provider-2.pem");
    let new_key = new_key.to_str().unwrap();
    ok(cpid(&["key", "generate", "-o", new_key]));
    ok(with(&["key", "replace", &pv, "--new", new_key], key));
    let old = with(&["register", "--class", "IC", "--value", "DESC=x"], key);
    assert!(String::from_utf8_lossy(&old.stderr).contains("unknown_key"));
    ok(with(
        &["register", "--class", "IC", "--value", "DESC=y"],
        new_key,
    ));
}

/// Keys are PKCS#8 / SPKI PEM that other ecosystems read, and requests
/// signed by an independent RFC 9421 implementation (Python `cryptography`
/// and the standard library, `tests/interop/register.py`) are accepted.
#[test]
fn openssl_reads_the_keys_and_a_python_client_registers() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let key = key.to_str().unwrap();
    let out = cpid(&["key", "generate", "-o", key]);
    let public = ok(Output { ..out.clone() });
    let keyid = String::from_utf8_lossy(&out.stderr)
        .split("key id ")
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    if require_tool("openssl", "openssl") {
        let o = Command::new("openssl")
            .args(["pkey", "-in", key, "-pubout"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            public,
            "OpenSSL derives the same public key: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    if !require_python_module("cryptography", "cryptography") {
        return;
    }
    let node = TestNode::open_policy();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/register.py");
    let url = format!("http://{}", node.http_addr());
    let out = Command::new("python3")
        .args([script, &url, key, &keyid])
        .output()
        .unwrap();
    let printed = ok(out);
    let ids: Vec<&str> = printed.lines().collect();
    assert_eq!(ids.len(), 2, "{printed}");
    assert!(
        ids[0].starts_with("86/PV-") && ids[1].starts_with("86/AS-"),
        "{printed}"
    );
    let got = node
        .api()
        .get(&format!("/v1/identifiers/{}", ids[1]))
        .unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body["owner"], ids[0]);
}

#[test]
fn admin_delegate_writes_a_chain_the_child_checks_at_start() {
    let national = TestNode::start();
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).to_str().unwrap().to_string();
    ok(cpid(&["key", "generate", "-o", &d("child.pem")]));
    let admin = national.node.config.admin_key_file();
    let server = format!("http://{}", national.http_addr());
    let dns = "127.0.0.1:45301";
    let out = cpid(&[
        "admin",
        "delegate",
        "--key",
        admin.to_str().unwrap(),
        "--server",
        &server,
        "--prefix",
        "86.31",
        "--child-key",
        &d("child.pem"),
        "--ns",
        &format!("ns1.31.86.cpid.internal={dns}"),
        "--api",
        "http://127.0.0.1:45302",
        "--out",
        &d("chain.json"),
    ]);
    ok(out);
    // The delegation record names the child's API (where the roll-up pulls).
    let listed = cpid::api::client::ApiClient::new(&server)
        .get("/v1/delegations")
        .unwrap();
    assert_eq!(
        listed.body["delegations"][0]["delegation"]["api"], "http://127.0.0.1:45302",
        "{}",
        listed.text
    );
    // An API URL with a path is refused before anything is sent.
    let bad_api = cpid(&[
        "admin",
        "delegate",
        "--key",
        admin.to_str().unwrap(),
        "--server",
        &server,
        "--prefix",
        "86.33",
        "--child-key",
        &d("child.pem"),
        "--ns",
        &format!("ns1.33.86.cpid.internal={dns}"),
        "--api",
        "http://127.0.0.1:45302/v1",
    ]);
    assert!(!bad_api.status.success());
    assert!(String::from_utf8_lossy(&bad_api.stderr).contains("only scheme, host and port"));
    // Delegating the same prefix again is refused while the first is in force.
    let again = cpid(&[
        "admin",
        "delegate",
        "--key",
        admin.to_str().unwrap(),
        "--server",
        &server,
        "--prefix",
        "86.31",
        "--child-key",
        &d("child.pem"),
        "--ns",
        &format!("ns1.31.86.cpid.internal={dns}"),
    ]);
    assert!(!again.status.success());
    // A provider key cannot delegate.
    ok(cpid(&["key", "generate", "-o", &d("other.pem")]));
    let not_admin = cpid(&[
        "admin",
        "delegate",
        "--key",
        &d("other.pem"),
        "--server",
        &server,
        "--prefix",
        "86.32",
        "--child-key",
        &d("child.pem"),
        "--ns",
        &format!("ns1.32.86.cpid.internal={dns}"),
    ]);
    assert!(!not_admin.status.success());
    std::fs::write(
        d("national.pub"),
        national.node.registry.key().public().to_public_pem(),
    )
    .unwrap();
    let config = |key: &str, chain: &str| {
        format!(
            "[node]\nprefix = \"86.31\"\ndata_dir = \"{}\"\nkey_file = \"{key}\"\n\
             [dns]\nlisten = \"127.0.0.1:0\"\n[[dns.name_servers]]\nname = \"ns1\"\naddresses = [\"127.0.0.1\"]\n\
             [http]\nlisten = \"127.0.0.1:0\"\n\
             [federation]\ntrust_anchor_file = \"{}\"\nchain_file = \"{chain}\"\n",
            d("child-data"),
            d("national.pub"),
        )
    };
    std::fs::write(d("child.toml"), config(&d("child.pem"), &d("chain.json"))).unwrap();
    let info = ok(cpid(&["node", "info", "--config", &d("child.toml")]));
    assert!(info.contains("86.31"), "{info}");

    // The same chain with another node key: refused at start, non-zero.
    std::fs::write(d("wrong.toml"), config(&d("other.pem"), &d("chain.json"))).unwrap();
    let wrong = cpid(&["serve", "--config", &d("wrong.toml")]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        err.contains("delegation chain") && err.contains("node key"),
        "{err}"
    );

    // A tampered chain: one signature byte flipped.
    let text = std::fs::read_to_string(d("chain.json")).unwrap();
    let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
    let link = file["chain"][0].as_str().unwrap().to_string();
    let flipped = if link.ends_with('0') { "1" } else { "0" };
    file["chain"][0] = format!("{}{flipped}", &link[..link.len() - 1]).into();
    std::fs::write(d("bad-chain.json"), file.to_string()).unwrap();
    std::fs::write(d("bad.toml"), config(&d("child.pem"), &d("bad-chain.json"))).unwrap();
    let bad = cpid(&["serve", "--config", &d("bad.toml")]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not signed by the key of 86"), "{err}");

    // The national node now refers 86.31 names and lists the delegation.
    let list = national.api().get("/v1/delegations").unwrap();
    assert_eq!(list.body["delegations"][0]["status"], "active");
    // Over TCP: with its signed delegation record the referral outgrows
    // 512 bytes, so a plain UDP query is answered truncated.
    let q = raw_query(9, "gc-000001-x.31.86.cpid.internal", 16, None);
    assert!(udp(national.addr(), &q).metadata.truncation);
    let m = tcp(national.addr(), &q);
    assert!(
        !m.metadata.authoritative && m.answers.is_empty() && !m.authorities.is_empty(),
        "{m:?}"
    );
}

#[test]
fn resolve_with_a_trust_anchor_prints_the_chain() {
    let node = TestNode::start();
    let rec = node.issue(Class::Gc, None, &[("DESC", "pool", 0)]);
    let id = rec.record().identifier.to_string();
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("root.pub");
    std::fs::write(&anchor, node.node.registry.key().public().to_public_pem()).unwrap();
    let out = cpid(&[
        "resolve",
        "--trust-anchor",
        anchor.to_str().unwrap(),
        "-s",
        &node.addr().to_string(),
        &id,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("root    86") && stderr.contains("valid"),
        "{stderr}"
    );
    // Another key as anchor: the record is refused.
    ok(cpid(&[
        "key",
        "generate",
        "-o",
        dir.path().join("k.pem").to_str().unwrap(),
    ]));
    let bad = cpid(&[
        "resolve",
        "--trust-anchor",
        dir.path().join("k.pem").to_str().unwrap(),
        "-s",
        &node.addr().to_string(),
        &id,
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("BROKEN"));
}

#[test]
fn the_admin_replaces_its_key_and_the_old_one_is_refused_after_a_restart_too() {
    let node = TestNode::start();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (provider, new_admin) = (path("provider.pem"), path("admin-2.pem"));
    ok(cpid(&["key", "generate", "-o", &provider]));
    ok(cpid(&["key", "generate", "-o", &new_admin]));
    let old_admin = node.node.config.admin_key_file();
    let old_admin = old_admin.to_str().unwrap().to_string();
    let server = |node: &TestNode| format!("http://{}", node.http_addr());
    let register = |node: &TestNode, n: u32| {
        let out = ok(cpid(&[
            "provider",
            "register",
            "--name",
            &format!("Provider {n}"),
            "--organisation",
            "91310000MA1K4XYZ",
            "--contact",
            "noc@p.example",
            "--region",
            "31",
            "--server",
            &server(node),
            "--key",
            &provider,
        ]));
        out.trim().to_string()
    };
    // The provider key cannot replace the admin key.
    let refused = cpid(&[
        "admin",
        "replace-key",
        "--new",
        &provider,
        "--server",
        &server(&node),
        "--key",
        &provider,
    ]);
    assert!(!refused.status.success());
    ok(cpid(&[
        "admin",
        "replace-key",
        "--new",
        &new_admin,
        "--server",
        &server(&node),
        "--key",
        &old_admin,
    ]));
    let pv = register(&node, 1);
    let approve = |node: &TestNode, key: &str| {
        cpid(&[
            "admin",
            "approve",
            &pv,
            "--server",
            &server(node),
            "--key",
            key,
        ])
    };
    let old = approve(&node, &old_admin);
    assert!(!old.status.success(), "the old admin key is refused");
    // Kept across a restart, over the generated admin key still on disk.
    let node = node.restart();
    let old = approve(&node, &old_admin);
    assert!(
        !old.status.success(),
        "the old admin key is refused after a restart"
    );
    ok(approve(&node, &new_admin));
}
