//! The risk assessment as an operator meets it: `cpid doctor` over a
//! stopped node's configuration, files and store (each check fired by a
//! crafted configuration or state, with its severity and exit code), and
//! the admin-signed `GET /v1/admin/risk` of a running node, which refuses
//! anyone else and answers what the CLI answers.

use std::path::{Path, PathBuf};
use std::process::Command;

use cpid::config::Config;
use cpid::ident::delegation::{ChainFile, Delegation, Server};
use cpid::ident::keys::{NodeKey, to_hex};
use cpid::node::Node;
use serde_json::Value;

use crate::common::*;

/// An advisory database with nothing in it.
fn empty_db(dir: &Path) -> PathBuf {
    let db = dir.join("advisory-db");
    std::fs::create_dir_all(db.join("crates")).unwrap();
    db
}

/// Writes an advisory about `krate` patched from `patched` on.
fn advise(db: &Path, krate: &str, id: &str, patched: &str) {
    let dir = db.join("crates").join(krate);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{id}.md")),
        format!(
            "```toml\n[advisory]\nid = \"{id}\"\npackage = \"{krate}\"\ndate = \"2099-01-01\"\n\
             \n[versions]\npatched = [\"{patched}\"]\n```\n\n# A flaw made up by the test\n"
        ),
    )
    .unwrap();
}

/// A configuration file for a node in `dir`, with `extra` TOML appended.
fn config_file(dir: &Path, db: &Path, extra: &str) -> PathBuf {
    let path = dir.join("cpid.toml");
    let text = format!(
        "[node]\ndata_dir = {:?}\n\n[risk]\nadvisory_db = {:?}\n\n{extra}",
        dir.join("data"),
        db
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Opens the node of `config` once (keys and store made) and closes it.
fn open_and_close(config: &Path) -> Config {
    let node = Node::open(Config::load(config).unwrap()).unwrap();
    let config = node.config.clone();
    drop(node);
    config
}

/// Lets the store's writer finish the last commit's callback before the
/// node is dropped: that callback may still hold the store just after a
/// commit returns, and a node whose last reference goes there makes the
/// writer thread join itself (a store bug, reported separately), leaving
/// the file locked.
fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(300));
}

/// `cpid doctor --json` with `args`: exit code and the report.
fn doctor(args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .arg("doctor")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let code = out.status.code().unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "exit {code}, not a report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

fn doctor_config(config: &Path) -> (i32, Value) {
    doctor(&["-c", config.to_str().unwrap()])
}

/// The severity of finding `id`, if the report has it.
fn severity(report: &Value, id: &str) -> Option<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .map(|f| f["severity"].as_str().unwrap().to_string())
}

fn highs(report: &Value) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "high")
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

/// (id, severity) of every finding, sorted.
fn summary(report: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_clean_loopback_node_has_no_high_finding_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(dir.path(), &db, "");
    open_and_close(&config);
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 0, "{report:#}");
    assert!(highs(&report).is_empty(), "{report:#}");
    assert_eq!(report["basis"], "store");
    assert_eq!(report["counts"]["high"], 0);
    // DNSSEC is on by default; what every node has is the admin key the
    // node made beside it.
    assert!(severity(&report, "dnssec.off").is_none(), "{report:#}");
    assert_eq!(
        severity(&report, "key.admin-on-node").as_deref(),
        Some("low")
    );
    assert!(severity(&report, "advisory.db").is_none(), "{report:#}");
    // The text form says the same.
    let out = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(["doctor", "-c", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("0 high"), "{text}");
    assert!(!text.contains("dnssec.off"), "{text}");
}

#[test]
fn dnssec_turned_off_is_a_medium_finding() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(dir.path(), &db, "[dns.dnssec]\nenabled = false\n");
    open_and_close(&config);
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(severity(&report, "dnssec.off").as_deref(), Some("medium"));
}

#[test]
fn a_key_file_group_or_others_can_read_is_high() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(dir.path(), &db, "");
    let opened = open_and_close(&config);
    set_mode(&opened.key_file(), 0o644);
    set_mode(&opened.admin_key_file(), 0o640);
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        severity(&report, "key.mode/node-key").as_deref(),
        Some("high")
    );
    assert_eq!(
        severity(&report, "key.mode/admin-key").as_deref(),
        Some("high")
    );
    let fix = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "key.mode/node-key")
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fix, format!("chmod 600 {}", opened.key_file().display()));
    // Fixed as told, the finding is gone.
    set_mode(&opened.key_file(), 0o600);
    set_mode(&opened.admin_key_file(), 0o600);
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn tsig_secrets_in_a_readable_configuration_file_are_high() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(
        dir.path(),
        &db,
        "[[transfer.keys]]\nname = \"cpid-xfr\"\nsecret = \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\"\n\
         [[transfer.secondaries]]\nallow = \"192.0.2.53\"\nkey = \"cpid-xfr\"\n",
    );
    set_mode(&config, 0o644);
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        severity(&report, "key.mode/config").as_deref(),
        Some("high")
    );
    assert!(severity(&report, "transfer.unsigned/192.0.2.53").is_none());
    set_mode(&config, 0o600);
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 0, "{report:#}");
}

#[test]
fn an_admin_key_that_is_the_node_key_is_high() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(dir.path(), &db, "");
    let opened = open_and_close(&config);
    let config = config_file(
        dir.path(),
        &db,
        &format!(
            "[registration]\nadmin_public_key_file = {:?}\n",
            opened.key_file()
        ),
    );
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        severity(&report, "key.admin-is-node").as_deref(),
        Some("high")
    );
}

#[test]
fn open_registration_is_high_at_the_national_node_and_medium_at_a_regional_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let national = config_file(dir.path(), &db, "[registration]\npolicy = \"open\"\n");
    let (code, report) = doctor_config(&national);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        severity(&report, "registration.open").as_deref(),
        Some("high")
    );
    assert_eq!(report["basis"], "configuration-only");

    let regional = tempfile::tempdir().unwrap();
    let config = config_file(regional.path(), &db, "[registration]\npolicy = \"open\"\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[node]\n", "[node]\nprefix = \"86.31\"\n");
    std::fs::write(&config, text).unwrap();
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(
        severity(&report, "registration.open").as_deref(),
        Some("medium")
    );
}

#[test]
fn dns_beyond_loopback_without_rate_limiting_is_high() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    // RRL is on by default: listening everywhere is then no finding.
    let config = config_file(dir.path(), &db, "[dns]\nlisten = \"0.0.0.0:53\"\n");
    let (_, report) = doctor_config(&config);
    assert_eq!(severity(&report, "dns.rrl"), None, "{report:#}");
    let config = config_file(
        dir.path(),
        &db,
        "[dns]\nlisten = \"0.0.0.0:53\"\n[dns.rrl]\nenabled = false\n",
    );
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(severity(&report, "dns.rrl").as_deref(), Some("high"));
    let found = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "dns.rrl")
        .unwrap()["found"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(found.contains("without response-rate limiting"), "{found}");
}

#[test]
fn a_zone_transfer_without_tsig_is_high() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(
        dir.path(),
        &db,
        "[[transfer.secondaries]]\nallow = \"192.0.2.0/24\"\n\
         [[transfer.secondaries]]\nnotify = \"198.51.100.7:53\"\n",
    );
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        severity(&report, "transfer.unsigned/192.0.2.0/24").as_deref(),
        Some("high")
    );
    assert_eq!(
        severity(&report, "transfer.unsigned/198.51.100.7").as_deref(),
        Some("high")
    );
}

fn delegation(prefix: &str, not_before: u64, not_after: u64) -> Delegation {
    Delegation {
        prefix: prefix.into(),
        key: to_hex(&NodeKey::generate().unwrap().public().to_bytes()),
        servers: vec![Server {
            name: format!("ns1.{}.cpid.internal.", prefix.replace('.', "-")),
            addresses: vec!["127.0.0.1:5301".parse().unwrap()],
        }],
        api: None,
        not_before,
        not_after,
        revoked: None,
    }
}

#[test]
fn delegations_ending_soon_are_medium_and_ended_ones_high() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(dir.path(), &db, "");
    let now = cpid::clock::system_now();
    let day = 24 * 3600;
    let chain = {
        let node = Node::open(Config::load(&config).unwrap()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let reg = &node.registry;
        let soon = rt
            .block_on(reg.delegate(&delegation("86.31", now - day, now + 2 * day), None))
            .unwrap();
        rt.block_on(reg.delegate(&delegation("86.32", now - 30 * day, now - day), None))
            .unwrap();
        rt.block_on(reg.delegate(&delegation("86.33", now, now + 300 * day), None))
            .unwrap();
        settle();
        ChainFile::from_records(&[soon])
    };
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 2, "{report:#}");
    assert_eq!(
        severity(&report, "delegation.expiring/86.31").as_deref(),
        Some("medium")
    );
    assert_eq!(
        severity(&report, "delegation.expired/86.32").as_deref(),
        Some("high")
    );
    assert!(
        !summary(&report)
            .iter()
            .any(|(id, _)| id.ends_with("/86.33")),
        "{report:#}"
    );
    // A wider window takes in the one ending in 300 days too.
    let (_, wide) = doctor(&[
        "-c",
        config.to_str().unwrap(),
        "--expiry-window-days",
        "400",
    ]);
    assert_eq!(
        severity(&wide, "delegation.expiring/86.33").as_deref(),
        Some("medium")
    );

    // The child's own delegation, read from its chain file.
    let child = tempfile::tempdir().unwrap();
    let chain_file = child.path().join("chain.json");
    std::fs::write(&chain_file, serde_json::to_string(&chain).unwrap()).unwrap();
    let anchor = child.path().join("root.pub");
    std::fs::write(&anchor, "not needed to read expiry").unwrap();
    let child_config = config_file(
        child.path(),
        &db,
        &format!("[federation]\nchain_file = {chain_file:?}\ntrust_anchor_file = {anchor:?}\n"),
    );
    let text = std::fs::read_to_string(&child_config)
        .unwrap()
        .replace("[node]\n", "[node]\nprefix = \"86.31\"\n");
    std::fs::write(&child_config, text).unwrap();
    let (code, report) = doctor_config(&child_config);
    assert_eq!(code, 0, "{report:#}");
    let own = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "delegation.expiring/86.31")
        .unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(own["severity"], "medium");
    assert!(own["found"].as_str().unwrap().contains("own"), "{own:#}");
}

#[test]
fn a_crate_with_an_advisory_against_its_version_is_high() {
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    // redb is in every build; no redb will ever be 99.
    advise(&db, "redb", "RUSTSEC-2099-0001", ">= 99.0.0");
    // A patched version the build already has is no finding.
    advise(&db, "serde", "RUSTSEC-2099-0002", ">= 1.0.0");
    let config = config_file(dir.path(), &db, "");
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 2, "{report:#}");
    let high = highs(&report);
    assert_eq!(high.len(), 1, "{report:#}");
    assert!(high[0].starts_with("advisory/redb@"), "{high:?}");
    let finding = &report["findings"][0];
    assert!(
        finding["found"]
            .as_str()
            .unwrap()
            .contains("RUSTSEC-2099-0001"),
        "{finding:#}"
    );
    assert!(
        finding["fix"]
            .as_str()
            .unwrap()
            .contains("cargo update -p redb@"),
        "{finding:#}"
    );
    assert!(
        finding["fix"]
            .as_str()
            .unwrap()
            .contains("--precise 99.0.0")
    );

    // Without a database the check says so, and nothing is high.
    let (code, report) = doctor(&[
        "-c",
        config.to_str().unwrap(),
        "--advisory-db",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(severity(&report, "advisory.db").as_deref(), Some("info"));
}

#[test]
fn the_risk_route_is_the_admins_alone_and_answers_what_the_cli_answers() {
    let work = tempfile::tempdir().unwrap();
    let db = empty_db(work.path());
    let node = TestNode::start_with(|c| {
        c.registration.policy = cpid::config::Policy::Open;
        c.risk.advisory_db = Some(db.clone());
        c.transfer.secondaries.push(cpid::config::SecondaryConfig {
            notify: None,
            allow: Some("192.0.2.0/24".into()),
            key: None,
        });
    });
    let api = node.api();

    // Unsigned: 401 with a JSON reason.
    let r = api.get("/v1/admin/risk").unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["error"], "missing_signature", "{}", r.text);
    assert!(r.body["reason"].is_string());
    // An unknown key: 401; an active provider's key: 403.
    let stranger = NodeKey::generate().unwrap();
    let r = api
        .signed("GET", "/v1/admin/risk", None, &stranger)
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let (provider, _) = crate::capacity::provider(&api, "risky", "31");
    let r = api
        .signed("GET", "/v1/admin/risk", None, &provider)
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"], "not_admin", "{}", r.text);

    // The admin gets the report.
    let admin = node.admin_key();
    let r = api.signed("GET", "/v1/admin/risk", None, &admin).unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let served = r.body.clone();
    assert_eq!(served["basis"], "running-node");
    assert_eq!(
        severity(&served, "registration.open").as_deref(),
        Some("high")
    );
    assert_eq!(
        severity(&served, "transfer.unsigned/192.0.2.0/24").as_deref(),
        Some("high")
    );

    // The same configuration as a file, for the CLI.
    let config = work.path().join("cpid.toml");
    std::fs::write(&config, node.node.config.to_toml()).unwrap();
    set_mode(&config, 0o600);
    let http = format!("http://{}", node.http_addr());
    let admin_file = node.node.config.admin_key_file();

    // `cpid doctor` on a running node asks it; `cpid admin risk` too.
    let (code, via_cli) = doctor(&[
        "-c",
        config.to_str().unwrap(),
        "--server",
        &http,
        "--admin-key",
        admin_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert_eq!(via_cli["basis"], "running-node");
    assert_eq!(summary(&via_cli), summary(&served));
    let out = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(["admin", "risk", "--json", "--server", &http, "-k"])
        .arg(&admin_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let admin_risk: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary(&admin_risk), summary(&served));

    // Stopped, the node's store read by the CLI gives the same findings.
    let mut node = node;
    let _data = std::mem::replace(&mut node._dir, tempfile::tempdir().unwrap());
    drop(node);
    let (code, offline) = doctor_config(&config);
    assert_eq!(code, 2, "{offline:#}");
    assert_eq!(offline["basis"], "store");
    assert_eq!(summary(&offline), summary(&served));
}

#[test]
fn leaves_left_out_of_the_checkpoint_for_over_an_hour_are_a_finding() {
    use cpid::ident::identifier::Class;
    use cpid::ident::record::{RecordStatus, Value, ValueType};
    let dir = tempfile::tempdir().unwrap();
    let db = empty_db(dir.path());
    let config = config_file(dir.path(), &db, "");
    let then = cpid::clock::system_now() - 2 * 3600;
    {
        // Committed two hours ago by a node that never integrated it (it
        // did not serve, as after a crash).
        let clock = cpid::clock::Clock::manual(then);
        let node = Node::open_with_clock(Config::load(&config).unwrap(), clock).unwrap();
        node.registry
            .issue(cpid::registry::NewRecord {
                prefix: None,
                class: Class::St,
                owner: None,
                values: vec![Value {
                    index: 1,
                    kind: ValueType::parse("DESC").unwrap(),
                    data: "left out".into(),
                    ttl: 0,
                    timestamp: then,
                }],
                status: RecordStatus::Active,
            })
            .unwrap();
        settle();
    }
    let (code, report) = doctor_config(&config);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(severity(&report, "log.checkpoint").as_deref(), Some("low"));
    // A longer limit tolerates it.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("[risk]\n", "[risk]\ncheckpoint_max_age_secs = 10800\n");
    std::fs::write(&config, text).unwrap();
    let (_, report) = doctor_config(&config);
    assert!(severity(&report, "log.checkpoint").is_none(), "{report:#}");
}
