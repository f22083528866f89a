//! An acknowledged registration is durable: `cpid serve` takes signed
//! registrations from 200 concurrent clients and is killed with SIGKILL in
//! the middle of them; on restart every identifier that got a `201` is
//! served with the very same signed bytes, and every record in the store
//! (acknowledged or not) decodes and verifies: nothing is half-written.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use cpid::api::client::ApiClient;
use cpid::dns::wire::rtype;
use cpid::ident::identifier::Identifier;
use cpid::ident::keys::NodeKey;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RData;
use serde_json::json;

use crate::common::*;

const CLIENTS: usize = 200;
const KILL_AFTER: usize = 400;

#[test]
fn registrations_acknowledged_with_201_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, http) = serve_child(dir.path(), &["--policy", "open"]);

    let key = NodeKey::generate().unwrap();
    let provider = json!({
        "name": "crash test", "organisation": "CRASH-1", "contact": "ops@crash.example",
        "region": "44", "public_key": key.public().to_public_pem(),
    });
    let r = ApiClient::new(&http)
        .signed("POST", "/v1/providers", Some(&provider), &key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);

    let acked: Mutex<Vec<(Identifier, String)>> = Mutex::new(Vec::new());
    let killed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..CLIENTS {
            let (http, key, acked, killed) = (&http, &key, &acked, &killed);
            s.spawn(move || {
                let api = ApiClient::new(http);
                for n in 0.. {
                    let body = json!({
                        "class": "GC",
                        "values": [{"type": "DESC", "data": format!("client {t} request {n}")}],
                    });
                    match api.signed("POST", "/v1/identifiers", Some(&body), key) {
                        Ok(r) if r.status == 201 => {
                            let id = r.body["identifier"].as_str().unwrap();
                            let encoded = r.body["encoded"].as_str().unwrap().to_string();
                            acked
                                .lock()
                                .unwrap()
                                .push((Identifier::parse(id).unwrap(), encoded));
                        }
                        // Refusals cannot happen before the kill; after it
                        // a connection error is the expected end.
                        Ok(r) => assert!(killed.load(Ordering::SeqCst), "{}", r.text),
                        Err(_) => {
                            assert!(
                                killed.load(Ordering::SeqCst),
                                "transport error before the kill"
                            );
                            return;
                        }
                    }
                }
            });
        }
        // SIGKILL in the middle of it: no destructor, no flush, no goodbye.
        while acked.lock().unwrap().len() < KILL_AFTER {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        killed.store(true, Ordering::SeqCst);
        child.kill().unwrap();
        child.wait().unwrap();
    });
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() >= KILL_AFTER);

    let node = TestNode::start_with(|c| c.node.data_dir = dir.path().to_path_buf());
    let public = node.node.registry.key().public();
    // Every stored record decodes strictly and verifies: none half-written.
    let stored = node.node.registry.store().records().unwrap();
    for r in &stored {
        r.verify(&public).unwrap();
    }
    assert!(
        stored.len() > acked.len(),
        "provider + every acknowledged resource"
    );
    for (id, encoded) in &acked {
        let got = node
            .node
            .registry
            .get(id)
            .unwrap()
            .unwrap_or_else(|| panic!("{id} lost"));
        assert_eq!(
            &hex(got.as_bytes()),
            encoded,
            "{id} changed across the crash"
        );
        let msg = udp(
            node.addr(),
            &raw_query(1, &node.dns_name(id), rtype::CPREC, EDNS0),
        );
        assert_eq!(
            msg.metadata.response_code,
            ResponseCode::NoError,
            "{id} not served"
        );
        let served = msg.answers.iter().find_map(|r| match &r.data {
            RData::Unknown { rdata, .. } => Some(rdata.anything.clone()),
            _ => None,
        });
        assert_eq!(
            served.map(|b| hex(&b)).as_ref(),
            Some(encoded),
            "{id} served other bytes"
        );
    }
    // The restarted node knows the provider's key from its store and keeps
    // issuing new codes.
    let r = node
        .api()
        .signed(
            "POST",
            "/v1/identifiers",
            Some(&json!({"class": "GC", "values": [{"type": "DESC", "data": "after"}]})),
            &key,
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let next = r.body["identifier"].as_str().unwrap();
    assert!(acked.iter().all(|(id, _)| id.to_string() != next));
}
