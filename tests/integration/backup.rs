//! Backup and restore end to end: a backup taken over HTTP with
//! `cpid node backup` while writes go on, put in place with
//! `cpid node restore`, serves every record of its log from a node that
//! continues the same signed tree head; and only the admin gets a backup.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cpid::api::client::{ApiClient, signed_headers};
use cpid::ident::identifier::Identifier;
use cpid::ident::record::SignedRecord;
use cpid::store::Store;
use cpid::store::redb::RedbStore;
use cpid::tlog::note::NoteVerifier;

use crate::capacity::{provider, report, resource};
use crate::common::*;
use crate::log::{checkpoint, checkpoint_at_least, consistent, proven, verifier};

fn cpid(args: &[&str], paths: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cpid"));
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    cmd.output().unwrap()
}

/// The names in a directory.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Sends a backup request with `headers` over a plain HTTP/1.1
/// connection (the body is binary) and answers the status line's code.
fn raw_backup(http: &str, headers: &http::HeaderMap) -> u16 {
    let addr = http.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!("POST /v1/admin/backup HTTP/1.1\r\nhost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    req.push_str("content-length: 0\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let head = String::from_utf8_lossy(&answer[..answer.len().min(64)]).into_owned();
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_restored_node_continues_the_log_of_a_backup_taken_while_writes_went_on() {
    let node = TestNode::open_policy();
    let api = node.api();
    let http = format!("http://{}", node.http_addr());
    let key = node.node.registry.key().public();
    let origin = api.get("/v1/log").unwrap().body["origin"]
        .as_str()
        .unwrap()
        .to_string();
    let v: NoteVerifier = verifier(&origin, &key);
    let (pkey, _) = provider(&api, "kept", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let r = report(&api, &pkey, "agent-kept", 1, &[(&pool, 4, 4)]);
    assert!(r.status < 300, "{}", r.text);
    let before = checkpoint_at_least(&api, &v, 2);

    // Writes go on over HTTP while the backup is taken.
    let pkey = Arc::new(pkey);
    let acked: Arc<Mutex<Vec<Identifier>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (http, pkey, acked, stop) = (http.clone(), pkey.clone(), acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let api = ApiClient::new(&http);
            while !stop.load(Ordering::SeqCst) {
                acked
                    .lock()
                    .unwrap()
                    .push(resource(&api, &pkey, &a800_pool(2)));
            }
        })
    };
    let wait_for = |n: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "the writer is stuck");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    wait_for(10);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("node.backup");
    let acked_before = acked.lock().unwrap().clone();
    let admin_key = node.node.config.admin_key_file();
    let out = cpid(
        &["node", "backup", "--server", &http, "--admin-key"],
        &[&admin_key, Path::new("--out"), &file],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("records, log size"), "{said}");
    wait_for(acked_before.len() + 10);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let total = acked.lock().unwrap().len();

    // An existing file is never overwritten.
    let again = cpid(
        &["node", "backup", "--server", &http, "--admin-key"],
        &[&admin_key, Path::new("--out"), &file],
    );
    assert!(!again.status.success());

    // Restore into a new data directory, with the node key copied over.
    let data = tempfile::tempdir().unwrap();
    std::fs::copy(
        node.node.config.key_file(),
        data.path().join("node-key.pem"),
    )
    .unwrap();
    let out = cpid(
        &["node", "restore", "--from"],
        &[&file, Path::new("--data"), data.path()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("records, log size"), "{said}");
    // A second restore over it is refused without --force, and works with it.
    let out = cpid(
        &["node", "restore", "--from"],
        &[&file, Path::new("--data"), data.path()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--force"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cpid(
        &["node", "restore", "--force", "--from"],
        &[&file, Path::new("--data"), data.path()],
    );
    assert!(out.status.success());

    // What the backup holds, read straight from the file.
    let (backup_size, logged) = {
        let b = RedbStore::open(&file).unwrap();
        let mut logged: Vec<SignedRecord> = Vec::new();
        b.log_entries(0, &mut |_, leaf| {
            if leaf[0] == 0x01 {
                logged.push(SignedRecord::decode(&leaf[1..]).unwrap());
            }
            true
        })
        .unwrap();
        (b.log_size().unwrap(), logged)
    };
    assert!(backup_size >= before.size);
    assert!(
        logged.len() >= acked_before.len() + 2,
        "the provider, the pool and every write acknowledged before the backup"
    );
    assert!(
        backup_size < total as u64 + 2,
        "writes went on after the backup ({backup_size} of {})",
        total + 2
    );

    // The restored node continues the same log: its tree head is at least
    // the one seen before the backup and extends it, and the original log
    // extends the restored one (it is a prefix of what the node went on to
    // write).
    let (mut child, http2) = serve_child(data.path(), &["--policy", "open"]);
    let api2 = ApiClient::new(&http2);
    let restored = checkpoint_at_least(&api2, &v, backup_size);
    assert_eq!(restored.size, backup_size);
    consistent(&api2, &before, &restored);
    let original = checkpoint_at_least(&api, &v, total as u64 + 2);
    consistent(&api, &restored, &original);

    // Every record of the backup's log is served, with its proof.
    for r in &logged {
        let id = &r.record().identifier;
        let got = api2.get(&format!("/v1/identifiers/{id}")).unwrap();
        assert_eq!(got.status, 200, "{id}: {}", got.text);
        assert!(got.body["version"].as_u64().unwrap() >= r.record().version);
        proven(&api2, &v, id);
    }
    for id in &acked_before {
        assert!(logged.iter().any(|r| &r.record().identifier == id), "{id}");
    }
    // The reporter's sequence came along: its last report is not taken again.
    let r = report(&api2, &pkey, "agent-kept", 1, &[(&pool, 4, 4)]);
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"], "out_of_sequence");

    // New writes extend the restored log.
    let fresh = resource(&api2, &pkey, &a800_pool(4));
    let later = checkpoint_at_least(&api2, &v, restored.size + 1);
    consistent(&api2, &restored, &later);
    proven(&api2, &v, &fresh);
    assert_eq!(checkpoint(&api2, &v).size, later.size);

    // Never under a running node, --force or not.
    let out = cpid(
        &["node", "restore", "--force", "--from"],
        &[&file, Path::new("--data"), data.path()],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(said.contains("in use"), "{said}");
    assert_eq!(checkpoint(&api2, &v).size, later.size, "still serving");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn only_the_admin_gets_a_backup_and_a_request_gets_one_once() {
    let node = TestNode::open_policy();
    let api = node.api();
    let http = format!("http://{}", node.http_addr());
    let (pkey, _) = provider(&api, "curious", "31");
    let data = node.node.config.node.data_dir.clone();
    let files = listing(&data);

    // Unsigned: 401. Signed by a provider: 403. Neither leaves a file.
    let r = api
        .send("POST", "/v1/admin/backup", http::HeaderMap::new(), vec![])
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = api.signed("POST", "/v1/admin/backup", None, &pkey).unwrap();
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.body["error"], "not_admin");
    assert_eq!(listing(&data), files, "nothing written");
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("stolen.backup");
    let provider_key = work.path().join("provider.pem");
    pkey.write_new(&provider_key).unwrap();
    let refused = cpid(
        &["node", "backup", "--server", &http, "--admin-key"],
        &[&provider_key, Path::new("--out"), &out],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not_admin"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(!out.exists(), "a refused backup leaves no file");

    // The admin's request is answered once; the same request again is a
    // replay. The scratch file is gone either way.
    let admin = node.admin_key();
    let created = i64::try_from(cpid::clock::system_now()).unwrap();
    let headers = signed_headers("POST", "/v1/admin/backup", &[], &admin, "once", created).unwrap();
    assert_eq!(raw_backup(&http, &headers), 200);
    assert_eq!(raw_backup(&http, &headers), 409);
    assert_eq!(listing(&data), files, "no scratch file left behind");

    // One a crash left mid-backup is removed at the next start.
    std::fs::write(data.join(".backup-00aa.redb.tmp"), b"half").unwrap();
    let node = node.restart();
    assert_eq!(listing(&node.node.config.node.data_dir), files);
}

#[test]
fn a_file_that_is_not_a_whole_store_is_not_restored() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let garbage = work.path().join("garbage");
    std::fs::write(&garbage, br#"{"error":"not_admin"}"#).unwrap();
    // A real backup, cut short as an interrupted copy would leave it.
    let whole = work.path().join("whole");
    let node = TestNode::start();
    for i in 0..200 {
        node.issue(
            cpid::ident::identifier::Class::Gc,
            None,
            &[("URL", &format!("https://x/{i}"), 0)],
        );
    }
    node.node.registry.store().backup(&whole).unwrap();
    drop(node);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = work.path().join("cut");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    for bad in [&garbage, &cut] {
        let out = cpid(
            &["node", "restore", "--from"],
            &[bad, Path::new("--data"), &data],
        );
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{}: {said}", bad.display());
        assert!(said.contains("not a usable backup"), "{said}");
        assert!(!said.contains("panicked"), "{said}");
        assert_eq!(listing(&data), Vec::<String>::new(), "nothing put in place");
    }
    let out = cpid(
        &["node", "restore", "--from"],
        &[&whole, Path::new("--data"), &data],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("200 records"));
}
