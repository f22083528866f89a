//! The transparency log against a running node: every change is a leaf
//! with a proof against a checkpoint the node signed, the tiles hold the
//! same tree, consistency proofs join checkpoints, and the signed tree head
//! only grows across SIGKILLs.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cpid::api::client::ApiClient;
use cpid::ident::identifier::{Class, Identifier};
use cpid::ident::keys::PublicKey;
use cpid::tlog::checkpoint::Checkpoint;
use cpid::tlog::merkle::{self, Frontier, Hash};
use cpid::tlog::note::{self, NoteVerifier};
use cpid::tlog::tile;
use serde_json::Value;

use crate::capacity::{provider, resource};
use crate::common::*;

pub(crate) fn hash(v: &Value) -> Hash {
    STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

pub(crate) fn verifier(origin: &str, key: &PublicKey) -> NoteVerifier {
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes()).unwrap();
    NoteVerifier::new(origin, vk).unwrap()
}

/// The node's latest checkpoint, its signature checked.
pub(crate) fn checkpoint(api: &ApiClient, v: &NoteVerifier) -> Checkpoint {
    let r = api.get("/log/checkpoint").unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let opened = note::open(&r.text, std::slice::from_ref(v)).unwrap();
    Checkpoint::parse(&opened.text).unwrap()
}

/// Polls until the checkpoint holds at least `size` leaves.
pub(crate) fn checkpoint_at_least(api: &ApiClient, v: &NoteVerifier, size: u64) -> Checkpoint {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cp = checkpoint(api, v);
        if cp.size >= size {
            return cp;
        }
        assert!(Instant::now() < deadline, "checkpoint stuck at {}", cp.size);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks the inclusion proof the node gives for `id` and returns its
/// (index, leaf).
pub(crate) fn proven(api: &ApiClient, v: &NoteVerifier, id: &Identifier) -> (u64, Vec<u8>) {
    let r = api.get(&format!("/v1/log/proof/{id}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let b = &r.body;
    let leaf = STANDARD.decode(b["leaf"].as_str().unwrap()).unwrap();
    let index = b["index"].as_u64().unwrap();
    let size = b["size"].as_u64().unwrap();
    let proof: Vec<Hash> = b["proof"].as_array().unwrap().iter().map(hash).collect();
    // The proof is against the checkpoint it came with, signed by the node.
    let opened = note::open(b["checkpoint"].as_str().unwrap(), std::slice::from_ref(v)).unwrap();
    let cp = Checkpoint::parse(&opened.text).unwrap();
    assert_eq!((cp.size, cp.root), (size, hash(&b["root"])));
    merkle::verify_inclusion(index, size, &merkle::leaf_hash(&leaf), &proof, &cp.root).unwrap();
    (index, leaf)
}

/// Checks the node's proof that the tree at `old` is a prefix of the tree
/// at `new`.
pub fn consistent(api: &ApiClient, old: &Checkpoint, new: &Checkpoint) {
    let r = api
        .get(&format!(
            "/v1/log/consistency?old={}&new={}",
            old.size, new.size
        ))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    let proof: Vec<Hash> = r.body["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &proof)
        .unwrap_or_else(|e| panic!("{} → {}: {e}", old.size, new.size));
}

#[test]
fn every_change_is_a_leaf_proven_against_a_signed_checkpoint_and_the_tiles_agree() {
    let node = TestNode::open_policy();
    let api = node.api();
    let key = node.node.registry.key().public();
    let info = api.get("/v1/log").unwrap();
    assert_eq!(info.status, 200);
    let origin = info.body["origin"].as_str().unwrap().to_string();
    assert_eq!(
        origin,
        format!("{}/log", node.zone_name().trim_end_matches('.'))
    );
    let v = verifier(&origin, &key);
    assert_eq!(info.body["key"].as_str().unwrap(), v.verifier_key());

    // A registration over HTTP names its leaf in the 201.
    let (pkey, pv) = provider(&api, "logged", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let got = api.get(&format!("/v1/identifiers/{pool}")).unwrap();
    assert_eq!(got.status, 200);
    // More changes: new records and a new version of one.
    let mut ids = vec![pv.clone(), pool.clone()];
    for i in 0..40 {
        let r = node.issue(Class::Gc, None, &[("URL", &format!("https://x/{i}"), 0)]);
        ids.push(r.record().identifier.clone());
    }
    let updated = node.node.registry.withdraw(&ids[5]).unwrap();

    // Every record's latest version is a leaf holding exactly its bytes.
    for id in &ids {
        let (_, leaf) = proven(&api, &v, id);
        let stored = node.node.registry.get(id).unwrap().unwrap();
        assert_eq!(leaf[0], 0x01, "a public record is logged whole");
        assert_eq!(&leaf[1..], stored.as_bytes(), "{id}");
    }
    assert_eq!(updated.record().version, 2);
    // The first version stays provable by version.
    let r = api
        .get(&format!("/v1/log/proof/{}?version=1", ids[5]))
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 1);

    // The tiles hold the same tree: leaf hashes of the entries, and the
    // root they give is the checkpoint's.
    let cp = checkpoint_at_least(&api, &v, ids.len() as u64 + 1);
    assert!(cp.size < 256, "one partial tile in this test");
    let (status, hashes) = api
        .get_bytes(&format!("/log/tile/0/000.p/{}", cp.size))
        .unwrap();
    assert_eq!(status, 200);
    let (status, bundle) = api
        .get_bytes(&format!("/log/tile/entries/000.p/{}", cp.size))
        .unwrap();
    assert_eq!(status, 200);
    let entries = tile::parse_entry_bundle(&bundle).unwrap();
    assert_eq!(entries.len() as u64, cp.size);
    assert_eq!(hashes.len() as u64, cp.size * 32);
    let mut f = Frontier::empty();
    for (entry, h) in entries.iter().zip(hashes.chunks(32)) {
        assert_eq!(merkle::leaf_hash(entry).as_slice(), h);
        f.append(merkle::leaf_hash(entry));
    }
    assert_eq!(f.root(), cp.root);
    // Not in the tree yet, or not a tile path: 404.
    for path in [
        format!("/log/tile/0/000.p/{}", cp.size + 1),
        "/log/tile/0/000".to_string(),
        "/log/tile/0/0".to_string(),
        "/log/tile/entries/x001/000".to_string(),
    ] {
        let (status, _) = api.get_bytes(&path).unwrap();
        assert_eq!(status, 404, "{path}");
    }

    // A consistency proof joins this checkpoint to a later one.
    for i in 0..5 {
        node.issue(Class::Gc, None, &[("URL", &format!("https://y/{i}"), 0)]);
    }
    let later = checkpoint_at_least(&api, &v, cp.size + 5);
    consistent(&api, &cp, &later);

    // Bad asks get a reason and a 4xx.
    for (path, status) in [
        (
            format!("/v1/log/consistency?old={}&new={}", later.size, cp.size),
            400,
        ),
        (
            format!("/v1/log/consistency?old=1&new={}", later.size + 1000),
            400,
        ),
        ("/v1/log/consistency?old=x".to_string(), 400),
        ("/v1/log/proof/86.31/GC-ZZZZZZ-A".to_string(), 400),
        ("/v1/log/proof/86.31/GC-ZZZZZZ-M".to_string(), 404),
        (format!("/v1/log/proof/{}?version=9", ids[0]), 404),
    ] {
        let r = api.get(&path).unwrap();
        assert_eq!(r.status, status, "{path}: {}", r.text);
        assert!(r.body["reason"].is_string(), "{path}");
    }
}

#[test]
fn the_signed_tree_head_only_grows_across_sigkills_and_no_acknowledged_change_lacks_its_leaf() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let start = || serve_child(dir.path(), &["--policy", "open"]);

    let (mut child, http) = start();
    let api = ApiClient::new(&http);
    let (pkey, _) = provider(&api, "crashy", "31");
    let pkey = Arc::new(pkey);
    let key = cpid::ident::keys::NodeKey::load(&dir.path().join("node-key.pem"))
        .unwrap()
        .public();
    let origin = api.get("/v1/log").unwrap().body["origin"]
        .as_str()
        .unwrap()
        .to_string();
    let v = verifier(&origin, &key);
    let acked: Arc<Mutex<Vec<(Identifier, u64)>>> = Arc::default();
    let mut seen: Vec<Checkpoint> = vec![checkpoint(&api, &v)];
    let mut http = http;
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (http, pkey, acked, stop) =
                    (http.clone(), pkey.clone(), acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    let api = ApiClient::with_timeout(&http, Duration::from_secs(5));
                    while !stop.load(Ordering::SeqCst) {
                        let body = serde_json::json!({"class": "IC", "values": [
                            {"type": "CP.RESOURCE", "data": a800_pool(8)}]});
                        match api.signed("POST", "/v1/identifiers", Some(&body), &pkey) {
                            Ok(r) if r.status == 201 => {
                                let id = Identifier::parse(r.body["identifier"].as_str().unwrap())
                                    .unwrap();
                                let index =
                                    r.body["log_index"].as_u64().expect("201 names its leaf");
                                acked.lock().unwrap().push((id, index));
                            }
                            _ => break,
                        }
                    }
                })
            })
            .collect();
        // Let some writes land, then SIGKILL mid-stream.
        let deadline = Instant::now() + Duration::from_secs(60);
        let target = (round + 1) * 40;
        while acked.lock().unwrap().len() < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        stop.store(true, Ordering::SeqCst);
        for w in writers {
            w.join().unwrap();
        }
        let (c, h) = start();
        child = c;
        http = h;
        let api = ApiClient::new(&http);
        // After the restart the log integrates what was acknowledged.
        let acked_now = acked.lock().unwrap().clone();
        let highest = acked_now.iter().map(|(_, i)| *i).max().unwrap_or(0);
        let cp = checkpoint_at_least(&api, &v, highest + 1);
        let previous = seen.last().unwrap();
        assert!(
            cp.size >= previous.size,
            "round {round}: the tree head shrank"
        );
        consistent(&api, previous, &cp);
        seen.push(cp);
        // Every acknowledged registration is its leaf, at the index the
        // 201 named.
        for (id, index) in &acked_now {
            let (at, leaf) = proven(&api, &v, id);
            assert_eq!(at, *index, "{id}");
            assert_eq!(leaf[0], 0x01);
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(acked.lock().unwrap().len() >= 120);
}

fn cpid(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_auditor_follows_the_log_and_names_a_node_that_serves_what_it_did_not_log() {
    let node = TestNode::open_policy();
    let api = format!("http://{}", node.http_addr());
    let dns = node.addr().to_string();
    let dir = tempfile::tempdir().unwrap();
    let anchor = dir.path().join("root.pub");
    std::fs::write(&anchor, node.node.registry.key().public().to_public_pem()).unwrap();
    let state = dir.path().join("audit.json");
    let audit = || {
        cpid(&[
            "audit",
            "--server",
            &api,
            "--trust-anchor",
            anchor.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "--sample",
            "100",
        ])
    };
    let mut ids = Vec::new();
    for i in 0..12 {
        let r = node.issue(Class::Gc, None, &[("URL", &format!("https://a/{i}"), 0)]);
        ids.push(r.record().identifier.clone());
    }
    node.node.registry.withdraw(&ids[3]).unwrap();
    let v = verifier(
        api_origin(&node.api()).as_str(),
        &node.node.registry.key().public(),
    );
    checkpoint_at_least(&node.api(), &v, 13);
    let out = audit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("13 new since 0"), "{stdout}");
    assert!(stdout.contains("12 identifiers compared"), "{stdout}");

    // More changes: the next run checks only the new leaves.
    for i in 0..3 {
        node.issue(Class::Gc, None, &[("URL", &format!("https://b/{i}"), 0)]);
    }
    checkpoint_at_least(&node.api(), &v, 16);
    let out = audit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("3 new since 13"), "{stdout}");

    // `cpid resolve --verify-log`: the DNS answer is a leaf of the log.
    let out = cpid(&[
        "resolve",
        &ids[0].to_string(),
        "-s",
        &dns,
        "--verify-log",
        &api,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("log:       included (leaf 0 of 16"),
        "{stderr}"
    );

    // A record written behind the log's back (straight into the store and
    // the hot tier, no leaf): the auditor names it, and so does resolve.
    let stored = node.node.registry.get(&ids[1]).unwrap().unwrap();
    let mut forged = stored.record().clone();
    forged.version += 1;
    forged.values[0].data = "https://evil".into();
    let forged = forged.sign(node.node.registry.key()).unwrap();
    node.node
        .registry
        .store()
        .write(cpid::store::WriteBatch {
            records: vec![forged.clone()],
            ..Default::default()
        })
        .unwrap();
    let apex = node.node.registry.apex();
    let name = cpid::dns::mapping::owner(&forged, apex).unwrap();
    node.node
        .registry
        .zone()
        .set(&name, &cpid::dns::mapping::rrsets(&forged, 3600))
        .unwrap();
    let out = audit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "{}: HTTP serves version 2, not the latest logged version 1",
            ids[1]
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: DNS serves version 2", ids[1])),
        "{stdout}"
    );
    let out = cpid(&[
        "resolve",
        &ids[1].to_string(),
        "-s",
        &dns,
        "--verify-log",
        &api,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NOT VERIFIED"));

    // A checkpoint that does not extend the one the auditor saw (here: the
    // auditor's memory of the root altered) is named as a split view.
    let mut st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    st["root"] = STANDARD.encode([5u8; 32]).into();
    std::fs::write(&state, serde_json::to_vec(&st).unwrap()).unwrap();
    node.issue(Class::Gc, None, &[("URL", "https://c", 0)]);
    checkpoint_at_least(&node.api(), &v, 17);
    let out = audit();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(stdout.contains("split view"), "{stdout}");

    // Another trust anchor: the node's key does not chain to it.
    std::fs::write(
        &anchor,
        cpid::ident::keys::NodeKey::generate()
            .unwrap()
            .public()
            .to_public_pem(),
    )
    .unwrap();
    let out = audit();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("trust anchor"));
}

fn api_origin(api: &ApiClient) -> String {
    api.get("/v1/log").unwrap().body["origin"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_transaction_is_logged_by_digest_so_the_parties_can_prove_their_copy() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (pkey, _) = provider(&api, "seller", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let (bkey, _) = crate::trade::buyer(&api, "lab");
    let now = cpid::clock::system_now();
    let tx = api
        .propose(
            &crate::trade::proposal(&pool, 2, now + 600, now + 4200),
            &bkey,
        )
        .unwrap();
    let id = tx.record.record().identifier.clone();
    let v = verifier(&api_origin(&api), &node.node.registry.key().public());
    let (_, leaf) = proven(&api, &v, &id);
    // 0x02, version, SHA-256 of the signed bytes, identifier: nothing else.
    let signed = node.node.registry.get(&id).unwrap().unwrap();
    assert_eq!(signed.as_bytes(), tx.record.as_bytes(), "the buyer's copy");
    let mut want = vec![0x02];
    want.extend_from_slice(&1u64.to_be_bytes());
    want.extend_from_slice(&cpid::tlog::entry::digest(tx.record.as_bytes()));
    want.extend_from_slice(id.to_string().as_bytes());
    assert_eq!(leaf, want);
    assert!(
        !leaf
            .windows(pool.to_string().len())
            .any(|w| w == pool.to_string().as_bytes()),
        "the leaf does not reveal the resource"
    );
}
