//! The security-event feed against a running node: each source reports,
//! a flood coalesces into one event, only the admin reads the feed, the
//! counts reach `/metrics`, and the feed survives a restart.

use cpid::api::client::ApiClient;
use cpid::ident::keys::NodeKey;
use serde_json::{Value, json};

use crate::capacity::{provider, report, resource};
use crate::common::*;
use crate::trade::{buyer, proposal};

fn events(api: &ApiClient, admin: &NodeKey, query: &str) -> Value {
    let r = api
        .signed("GET", &format!("/v1/events{query}"), None, admin)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn of_kind<'a>(page: &'a Value, kind: &str) -> Vec<&'a Value> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .collect()
}

#[test]
fn every_source_reports_floods_coalesce_and_only_the_admin_reads_the_feed() {
    let node = TestNode::open_policy();
    let api = node.api();
    let admin = node.admin_key();
    let (pkey, _) = provider(&api, "watched", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));

    // 30 requests signed by a key nobody registered: one coalesced event.
    let stranger = NodeKey::generate().unwrap();
    let body = json!({"class": "IC", "values": [{"type": "URL", "data": "https://x"}]});
    for _ in 0..30 {
        let r = api
            .signed("POST", "/v1/identifiers", Some(&body), &stranger)
            .unwrap();
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // The very same signed request twice: a replay.
    let bytes = serde_json::to_vec(&body).unwrap();
    let headers = cpid::api::client::signed_headers(
        "POST",
        "/v1/identifiers",
        &bytes,
        &pkey,
        "replayed-nonce-0001",
        cpid::clock::system_now() as i64,
    )
    .unwrap();
    let first = api
        .send("POST", "/v1/identifiers", headers.clone(), bytes.clone())
        .unwrap();
    assert_eq!(first.status, 201, "{}", first.text);
    let again = api.send("POST", "/v1/identifiers", headers, bytes).unwrap();
    assert_eq!(again.status, 409, "{}", again.text);
    // A step by the wrong party.
    let (bkey, _) = buyer(&api, "lab");
    let now = cpid::clock::system_now();
    let tx = api
        .propose(&proposal(&pool, 2, now + 600, now + 4200), &bkey)
        .unwrap();
    let tx_id = tx.record.record().identifier.clone();
    let r = api
        .signed(
            "POST",
            &format!("/v1/transactions/{tx_id}/accept"),
            Some(&json!({})),
            &bkey,
        )
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text);
    // An accepted report with implausible figures: more units available
    // than the resource has.
    let r = report(&api, &pkey, "agent-1", 1, &[(&pool, 80, 0)]);
    assert_eq!(r.status, 200, "{}", r.text);
    // A provider reporting on another provider's resource.
    let (other, _) = provider(&api, "nosy", "32");
    let r = report(&api, &other, "agent-1", 1, &[(&pool, 8, 0)]);
    assert_eq!(r.status, 403, "{}", r.text);

    let page = events(&api, &admin, "");
    let sig = of_kind(&page, "signature_failure");
    assert_eq!(sig.len(), 1, "a flood is one event: {page}");
    assert_eq!(sig[0]["count"], 30);
    assert_eq!(sig[0]["source"], "127.0.0.1");
    assert_eq!(sig[0]["subject"], "/v1/identifiers");
    assert!(
        sig[0]["detail"].as_str().unwrap().contains("key"),
        "{}",
        sig[0]
    );
    let replay = of_kind(&page, "replay");
    assert_eq!(replay.len(), 1, "{page}");
    let refused = of_kind(&page, "refused_step");
    assert_eq!(refused.len(), 1, "{page}");
    assert_eq!(refused[0]["subject"], tx_id.to_string());
    let quality = of_kind(&page, "quality_finding");
    assert!(
        quality.iter().any(|e| e["subject"] == pool.to_string()
            && e["detail"]
                .as_str()
                .unwrap()
                .starts_with("available_over_total")),
        "{page}"
    );
    assert!(
        quality
            .iter()
            .any(|e| e["detail"].as_str().unwrap().starts_with("not_owner")),
        "{page}"
    );
    // Paging and filtering.
    let next = page["next"].as_u64().unwrap();
    let later = events(&api, &admin, &format!("?after={next}"));
    assert!(later["events"].as_array().unwrap().is_empty(), "{later}");
    let only = events(&api, &admin, "?kind=replay");
    assert!(
        only["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["kind"] == "replay")
    );

    // Not the admin, not signed, a bad query: refused with a reason.
    let r = api.signed("GET", "/v1/events", None, &pkey).unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("not_admin"))
    );
    let r = api.get("/v1/events").unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = api
        .signed("GET", "/v1/events?kind=nope", None, &admin)
        .unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_query"))
    );

    // Counted in /metrics, before coalescing.
    let metrics = api.get("/metrics").unwrap().text;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("cpid_security_events_total{kind=\"signature_failure\"}"))
        .unwrap_or_else(|| panic!("no signature_failure counter:\n{metrics}"));
    let n: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 30.0, "{line}");

    // Durable: the same feed after a restart.
    let before = events(&api, &admin, "")["events"].clone();
    let node = node.restart();
    let after = events(&node.api(), &admin, "")["events"].clone();
    assert_eq!(before, after);
}
