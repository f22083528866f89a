//! The monitoring agent and the hand report through the `cpid` binary:
//! `cpid agent --check` and `--once` against a running node (registering
//! the inventory, the sequence continuing across runs), `cpid report`,
//! and a report the node acknowledged surviving SIGKILL of `cpid serve`.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

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

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A provider key in `dir` and its PV identifier, registered through the
/// CLI at `server` (an open-policy node).
fn provider(dir: &Path, server: &str, region: &str) -> (String, String) {
    let key = dir.join("provider.pem").to_str().unwrap().to_string();
    ok(cpid(&["key", "generate", "-o", &key]));
    let pv = ok(cpid(&[
        "provider",
        "register",
        "--server",
        server,
        "--key",
        &key,
        "--name",
        "Agent test",
        "--organisation",
        "ORG-AGENT",
        "--contact",
        "noc@agent.example",
        "--region",
        region,
    ]));
    (key, pv.trim().to_string())
}

/// An inventory of a declared A800 pool (descriptor in a JSON file) and a
/// declared CPU pool (descriptor inline).
fn inventory(dir: &Path) -> String {
    std::fs::write(dir.join("a800.json"), a800_pool(8)).unwrap();
    let path = dir.join("inventory.toml");
    std::fs::write(
        &path,
        r#"agent = "dc1-rack7"
interval_secs = 30

[[resource]]
name = "gpu-pool-a"
endpoint = "https://dc1.example.cn/gpu-pool-a"
source = "declared"
units_in_use = 2
descriptor_file = "a800.json"

[[resource]]
name = "cpu"
source = "declared"
units_available = 100
[resource.descriptor]
schema = "cpid.resource/1"
class = "GC"
region = "31"
unit = "core"
units_total = 128
cpu_cores = 128
memory_gib = 512
"#,
    )
    .unwrap();
    path.to_str().unwrap().to_string()
}

fn get(node_http: &str, path: &str) -> Value {
    let r = cpid::api::client::ApiClient::new(node_http)
        .get(path)
        .unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.body
}

fn owned(node_http: &str, pv: &str) -> Vec<Value> {
    get(node_http, &format!("/v1/identifiers?owner={pv}"))["identifiers"]
        .as_array()
        .unwrap()
        .clone()
}

/// `name\tid` lines of `cpid agent --once`.
fn registered(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|l| {
            let (n, id) = l.split_once('\t').unwrap();
            (n.to_string(), id.to_string())
        })
        .collect()
}

#[test]
fn agent_once_registers_the_inventory_and_continues_its_sequence() {
    let node = TestNode::open_policy();
    let server = format!("http://{}", node.http_addr());
    let dir = tempfile::tempdir().unwrap();
    let (key, pv) = provider(dir.path(), &server, "31");
    let inv = inventory(dir.path());

    // --check reads the inventory and says what it would do, sending nothing.
    let check = ok(cpid(&["agent", "--check", "--inventory", &inv]));
    assert!(check.contains("inventory ok: agent dc1-rack7"), "{check}");
    assert!(check.contains("to register"), "{check}");
    assert!(
        check.contains("would report: 6 available, 2 in use, ok"),
        "{check}"
    );
    assert!(owned(&server, &pv).is_empty(), "--check sent something");

    // The first run needs the provider identifier.
    let no_provider = cpid(&[
        "agent",
        "--once",
        "--key",
        &key,
        "--server",
        &server,
        "--inventory",
        &inv,
    ]);
    assert!(!no_provider.status.success());
    assert!(
        stderr(&no_provider).contains("--provider"),
        "{}",
        stderr(&no_provider)
    );

    let once = |extra: &[&str]| {
        let mut args = vec![
            "agent",
            "--once",
            "--key",
            &key,
            "--server",
            &server,
            "--inventory",
            &inv,
        ];
        args.extend(extra);
        cpid(&args)
    };
    let first = registered(&ok(once(&["--provider", &pv])));
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].0, "gpu-pool-a");
    let gpu = first[0].1.clone();
    assert_eq!(owned(&server, &pv).len(), 2);

    let s = get(&server, "/v1/situation?group_by=region");
    assert_eq!(s["resources"]["fresh"], 2, "{s}");
    let r = get(&server, &format!("/v1/identifiers/{gpu}"));
    assert_eq!(r["live_status"]["freshness"], "fresh", "{r}");
    assert_eq!(r["live_status"]["units_available"], 6);
    assert_eq!(r["live_status"]["units_in_use"], 2);
    assert_eq!(r["live_status"]["seq"], 1);
    let tags: Vec<&str> = r["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "CP.INVENTORY")
        .map(|v| v["data"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["dc1-rack7/gpu-pool-a"]);

    // A second run: the provider is remembered, nothing is registered
    // twice, and the sequence goes on (no 409).
    let second = registered(&ok(once(&[])));
    assert_eq!(second, first);
    assert_eq!(owned(&server, &pv).len(), 2);
    let r = get(&server, &format!("/v1/identifiers/{gpu}"));
    assert_eq!(r["live_status"]["seq"], 2, "{r}");

    // With the state file lost, the tags find the records again and the
    // agent moves past the node's sequence number.
    std::fs::remove_file(dir.path().join("inventory.toml.state.json")).unwrap();
    let third = registered(&ok(once(&["--provider", &pv])));
    assert_eq!(third, first);
    assert_eq!(owned(&server, &pv).len(), 2);
    let r = get(&server, &format!("/v1/identifiers/{gpu}"));
    assert!(r["live_status"]["seq"].as_u64().unwrap() > 2, "{r}");

    // --check now knows the identifiers.
    let check = ok(cpid(&["agent", "--check", "--inventory", &inv]));
    assert!(check.contains(&format!("registered as {gpu}")), "{check}");

    // A provider identifier that does not hold the key is refused.
    let other_dir = tempfile::tempdir().unwrap();
    let (_, other) = provider(other_dir.path(), &server, "11");
    let wrong = once(&["--provider", &other]);
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("does not hold key"),
        "{}",
        stderr(&wrong)
    );
}

#[test]
fn agent_check_names_the_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let inv = inventory(dir.path());
    let text = std::fs::read_to_string(&inv)
        .unwrap()
        .replace("cpu_cores = 128", "cpu_cores = 0");
    std::fs::write(&inv, text).unwrap();
    let out = cpid(&["agent", "--check", "--inventory", &inv]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("resource[1].descriptor/cpu_cores"), "{e}");
}

#[test]
fn report_by_hand_keeps_its_sequence_and_refuses_bad_arguments() {
    let node = TestNode::open_policy();
    let server = format!("http://{}", node.http_addr());
    let dir = tempfile::tempdir().unwrap();
    let (key, pv) = provider(dir.path(), &server, "31");
    let inv = inventory(dir.path());
    let ids = registered(&ok(cpid(&[
        "agent",
        "--once",
        "--key",
        &key,
        "--server",
        &server,
        "--inventory",
        &inv,
        "--provider",
        &pv,
    ])));
    let (gpu, cpu) = (ids[0].1.clone(), ids[1].1.clone());
    let report = |args: &[&str]| {
        let mut v = vec!["report", "--key", &key, "--server", &server];
        v.extend(args);
        cpid(&v)
    };

    let seq = ok(report(&[
        &format!("{gpu}=3/5:degraded"),
        &format!("{cpu}=128/0"),
    ]));
    assert_eq!(seq.trim(), "1");
    let r = get(&server, &format!("/v1/identifiers/{gpu}"));
    assert_eq!(r["live_status"]["units_available"], 3, "{r}");
    assert_eq!(r["live_status"]["health"], "degraded");
    assert_eq!(ok(report(&[&format!("{gpu}=4/4")])).trim(), "2");

    // Bad arguments are refused before anything is sent or counted.
    for (arg, says) in [
        (format!("{gpu}=four/4"), "\"four\" is not a whole number"),
        (
            format!("{gpu}=4/4:fine"),
            "\"fine\" is not ok, degraded or down",
        ),
        (gpu.clone(), "no '='"),
        ("86/IC-1=4/4".to_string(), "identifier"),
    ] {
        let out = report(&[&arg]);
        assert!(!out.status.success(), "{arg}");
        assert!(stderr(&out).contains(says), "{arg}: {}", stderr(&out));
    }
    let out = report(&["--agent", "a b", &format!("{gpu}=4/4")]);
    assert!(stderr(&out).contains("agent id"), "{}", stderr(&out));
    assert_eq!(ok(report(&[&format!("{gpu}=5/3")])).trim(), "3");

    // An explicit --seq is sent as given: an old one is the node's 409.
    let old = report(&["--seq", "2", &format!("{gpu}=5/3")]);
    assert!(!old.status.success());
    assert!(stderr(&old).contains("out_of_sequence"), "{}", stderr(&old));
    assert_eq!(
        ok(report(&["--seq", "10", &format!("{gpu}=6/2")])).trim(),
        "10"
    );
    // The same number again is a retry: it succeeds but says the node kept
    // the figures of the first, and they are what the node shows.
    let again = report(&["--seq", "10", &format!("{gpu}=1/7")]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("was accepted before"),
        "{}",
        stderr(&again)
    );
    let r = get(&server, &format!("/v1/identifiers/{gpu}"));
    assert_eq!(r["live_status"]["units_available"], 6, "{r}");
    // The kept state moves past the node's number by itself.
    assert_eq!(ok(report(&[&format!("{gpu}=6/2")])).trim(), "11");
    // A resource of someone else is the node's refusal, said plainly.
    let theirs = report(&[&format!("{}=1/0", node_record_of_another_provider(&server))]);
    assert!(!theirs.status.success());
}

/// A resource registered by another provider at `server`.
fn node_record_of_another_provider(server: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = provider(dir.path(), server, "44");
    let id = ok(cpid(&[
        "register",
        "--server",
        server,
        "--key",
        &key,
        "--class",
        "IC",
        "--value",
        &format!("CP.RESOURCE={}", a800_pool(4)),
    ]));
    id.trim().to_string()
}

/// `cpid serve` as a child process on `data`; answers it and its HTTP URL.
fn serve(data: &Path) -> (std::process::Child, String) {
    serve_child(data, &["--policy", "open"])
}

#[test]
fn a_report_the_node_acknowledged_survives_sigkill() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, server) = serve(data.path());
    let dir = tempfile::tempdir().unwrap();
    let (key, pv) = provider(dir.path(), &server, "31");
    let inv = inventory(dir.path());
    let ids = registered(&ok(cpid(&[
        "agent",
        "--once",
        "--key",
        &key,
        "--server",
        &server,
        "--inventory",
        &inv,
        "--provider",
        &pv,
    ])));
    let gpu = ids[0].1.clone();
    let seq = ok(cpid(&[
        "report",
        "--key",
        &key,
        "--server",
        &server,
        &format!("{gpu}=1/7:degraded"),
    ]));
    assert_eq!(seq.trim(), "1");

    // SIGKILL: no destructor, no flush.
    child.kill().unwrap();
    child.wait().unwrap();

    let node = TestNode::start_with(|c| c.node.data_dir = data.path().to_path_buf());
    let server = format!("http://{}", node.http_addr());
    let r = get(&server, &format!("/v1/identifiers/{gpu}"));
    let live = &r["live_status"];
    assert_eq!(live["units_available"], 1, "{r}");
    assert_eq!(live["units_in_use"], 7);
    assert_eq!(live["health"], "degraded");
    assert_eq!(live["seq"], 1);
    // The agent's own report survived too, and its sequence goes on.
    let cpu = get(&server, &format!("/v1/identifiers/{}", ids[1].1));
    assert_eq!(cpu["live_status"]["units_available"], 100, "{cpu}");
    let again = registered(&ok(cpid(&[
        "agent",
        "--once",
        "--key",
        &key,
        "--server",
        &server,
        "--inventory",
        &inv,
    ])));
    assert_eq!(again, ids);
    let r = get(&server, &format!("/v1/identifiers/{gpu}"));
    assert_eq!(r["live_status"]["seq"], 2, "{r}");
}
