//! The HTTP API against a running node: signed registration flows, every
//! signature rejection (replay after restart included), every kind of bad
//! input, reads in native and Handle.Net JSON, and what `/metrics` counts.
//! Every refusal is checked to change nothing in the store.

use cpid::api::client::{ApiClient, ApiResponse, nonce, signed_headers};
use cpid::dns::wire::rtype;
use cpid::ident::identifier::Identifier;
use cpid::ident::keys::NodeKey;
use cpid::ident::record::SignedRecord;
use hickory_proto::op::ResponseCode;
use serde_json::{Value, json};

use crate::common::*;

fn now() -> i64 {
    cpid::clock::system_now() as i64
}

fn provider_body(key: &NodeKey, name: &str) -> Value {
    json!({
        "name": name,
        "organisation": "91310000MA1K4XYZ",
        "contact": "noc@provider.example",
        "region": "31",
        "public_key": key.public().to_public_pem(),
    })
}

fn resource_body() -> Value {
    json!({
        "class": "IC",
        "values": [
            {"type": "CP.RESOURCE", "data": a800_pool(8)},
            {"type": "CP.ENDPOINT", "data": "https://pool.provider.example/v1", "ttl": 300},
        ],
    })
}

/// Registers a provider on an open-policy node; returns its key and id.
fn active_provider(node: &TestNode, name: &str) -> (NodeKey, Identifier) {
    let key = NodeKey::generate().unwrap();
    let r = node
        .api()
        .signed(
            "POST",
            "/v1/providers",
            Some(&provider_body(&key, name)),
            &key,
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "active");
    let id = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    (key, id)
}

fn register(node: &TestNode, key: &NodeKey) -> ApiResponse {
    node.api()
        .signed("POST", "/v1/identifiers", Some(&resource_body()), key)
        .unwrap()
}

fn assert_error(r: &ApiResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"], code, "{}", r.text);
    assert!(
        r.body["reason"].as_str().is_some_and(|s| !s.is_empty()),
        "a reason for people: {}",
        r.text
    );
}

/// The TXT strings and rcode of an identifier over UDP.
fn dns_txt(node: &TestNode, id: &Identifier) -> (ResponseCode, Vec<String>) {
    let msg = udp(
        node.addr(),
        &raw_query(7, &node.dns_name(id), rtype::TXT, EDNS0),
    );
    (msg.metadata.response_code, txt_strings(&msg))
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn review_policy_keeps_a_provider_pending_until_the_admin_approves() {
    let node = TestNode::start();
    let api = node.api();
    let key = NodeKey::generate().unwrap();
    let r = api
        .signed(
            "POST",
            "/v1/providers",
            Some(&provider_body(&key, "Lingang AI")),
            &key,
        )
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["status"], "pending");
    let pv = r.body["identifier"].as_str().unwrap().to_string();
    assert!(pv.starts_with("86/PV-"), "{pv}");
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/v1/identifiers/{pv}").as_str())
    );
    // The record carries the key as HS_PUBKEY.
    let values = r.body["values"].as_array().unwrap();
    let pubkey = values.iter().find(|v| v["type"] == "HS_PUBKEY").unwrap();
    assert_eq!(pubkey["index"], 300);
    assert_eq!(pubkey["data"], key.public().to_public_pem());
    // A pending provider is not in DNS and cannot act.
    let pv_id = Identifier::parse(&pv).unwrap();
    assert_eq!(dns_txt(&node, &pv_id).0, ResponseCode::NXDomain);
    let before = node.records();
    assert_error(&register(&node, &key), 403, "inactive_key");
    // Only the admin key approves; the provider's own key or the node's
    // record-signing key cannot.
    let approve = format!("/v1/admin/providers/{pv}/approve");
    assert_error(
        &api.signed("POST", &approve, None, &key).unwrap(),
        403,
        "not_admin",
    );
    let node_key = NodeKey::load(&node.node.config.key_file()).unwrap();
    assert_error(
        &api.signed("POST", &approve, None, &node_key).unwrap(),
        401,
        "unknown_key",
    );
    // An unsigned request learns nothing about the provider's status.
    let body = serde_json::to_vec(&resource_body()).unwrap();
    let mut h = signed_headers(
        "POST",
        "/v1/identifiers",
        &body,
        &key,
        &nonce().unwrap(),
        now(),
    )
    .unwrap();
    h.insert("signature", "sig1=:AAAA:".parse().unwrap());
    let r = send_raw(&api, "/v1/identifiers", h, &body);
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(node.records(), before);
    let r = api
        .signed("POST", &approve, None, &node.admin_key())
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "active");
    assert_eq!(r.body["version"], 2);
    assert_eq!(dns_txt(&node, &pv_id).0, ResponseCode::NoError);
    assert_error(
        &api.signed("POST", &approve, None, &node.admin_key())
            .unwrap(),
        409,
        "not_pending",
    );
    // Now it registers resources.
    let r = register(&node, &key);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["owner"], pv);
}

#[test]
fn a_registered_resource_resolves_over_dns_and_http_until_withdrawn() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (key, pv) = active_provider(&node, "Lingang AI");
    let r = register(&node, &key);
    assert_eq!(r.status, 201, "{}", r.text);
    let id = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    assert_eq!(
        r.location.as_deref(),
        Some(format!("/v1/identifiers/{id}").as_str())
    );
    assert_eq!(r.body["version"], 1);
    assert_eq!(r.body["owner"], pv.to_string());
    // The 201 carries the signed record; it verifies with the node key.
    let signed = SignedRecord::decode(&hex_decode(r.body["encoded"].as_str().unwrap())).unwrap();
    signed.verify(&node.node.registry.key().public()).unwrap();

    // Native read: the same bytes, with the issuer's key.
    let got = api.get(&format!("/v1/identifiers/{id}")).unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body["encoded"], r.body["encoded"]);
    assert_eq!(got.body["signature"], r.body["signature"]);
    assert_eq!(
        got.body["issuer_public_key"],
        node.node.registry.key().public().to_public_pem()
    );

    // DNS serves it.
    let (rcode, txt) = dns_txt(&node, &id);
    assert_eq!(rcode, ResponseCode::NoError);
    assert!(txt.iter().any(|t| t.contains("version=1")), "{txt:?}");
    assert!(
        txt.iter().any(|t| t.contains("type=CP.ENDPOINT")),
        "{txt:?}"
    );

    // Handle.Net shape, with filters.
    let h = api.get(&format!("/api/handles/{id}")).unwrap();
    assert_eq!(h.status, 200, "{}", h.text);
    assert_eq!(h.body["responseCode"], 1);
    assert_eq!(h.body["handle"], id.to_string());
    let values = h.body["values"].as_array().unwrap();
    assert_eq!(values.len(), 3, "two values and HS_ADMIN: {}", h.text);
    assert_eq!(values[1]["type"], "CP.ENDPOINT");
    assert_eq!(values[1]["ttl"], 300);
    assert_eq!(
        values[1]["data"],
        json!({"format": "string", "value": "https://pool.provider.example/v1"})
    );
    assert_eq!(values[0]["ttl"], 3600, "ttl 0 shows the node default");
    let ts = values[0]["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    let admin = values.iter().find(|v| v["type"] == "HS_ADMIN").unwrap();
    assert_eq!(admin["index"], 100);
    assert_eq!(admin["data"]["format"], "admin");
    assert_eq!(admin["data"]["value"]["handle"], pv.to_string());
    assert_eq!(admin["data"]["value"]["index"], 300);
    let only = api
        .get(&format!("/api/handles/{id}?type=CP.ENDPOINT"))
        .unwrap();
    assert_eq!(only.body["values"].as_array().unwrap().len(), 1);
    let by_index = api
        .get(&format!("/api/handles/{id}?index=1&index=100"))
        .unwrap();
    let indices: Vec<_> = by_index.body["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indices, [1, 100]);
    let none = api.get(&format!("/api/handles/{id}?type=EMAIL")).unwrap();
    assert_eq!(
        (none.status, none.body["responseCode"].clone()),
        (200, json!(200))
    );

    // Update: version 2, everywhere.
    let update =
        json!({"values": [{"type": "CP.ENDPOINT", "data": "https://moved.provider.example/v2"}]});
    let u = api
        .signed("PUT", &format!("/v1/identifiers/{id}"), Some(&update), &key)
        .unwrap();
    assert_eq!(u.status, 200, "{}", u.text);
    assert_eq!(u.body["version"], 2);
    let (_, txt) = dns_txt(&node, &id);
    assert!(txt.iter().any(|t| t.contains("version=2")), "{txt:?}");
    assert!(
        txt.iter().any(|t| t.contains("moved.provider.example")),
        "{txt:?}"
    );

    // An update is held to the capacity standard for the record's class.
    let before_bad = dns_txt(&node, &id).1;
    for (data, pointer) in [
        (
            a800_pool(8).replace("312", "-312"),
            "/devices/0/peak_tflops/bf16",
        ),
        (
            a800_pool(8).replace(r#""class":"IC""#, r#""class":"GC""#),
            "/class",
        ),
        (
            a800_pool(8).replace(r#""unit":"card""#, r#""unit":"tib""#),
            "/unit",
        ),
    ] {
        let bad = json!({"values": [{"type": "CP.RESOURCE", "data": data}]});
        let r = api
            .signed("PUT", &format!("/v1/identifiers/{id}"), Some(&bad), &key)
            .unwrap();
        assert_error(&r, 422, "invalid_value");
        assert_eq!(r.body["pointer"], pointer, "{}", r.text);
        assert!(
            r.body["reason"].as_str().unwrap().contains(pointer),
            "{}",
            r.text
        );
    }
    assert_eq!(
        dns_txt(&node, &id).1,
        before_bad,
        "a refused update changes nothing"
    );

    // Withdraw: a tombstone; NXDOMAIN; 410 natively, 100 for Handle.
    let d = api
        .signed("DELETE", &format!("/v1/identifiers/{id}"), None, &key)
        .unwrap();
    assert_eq!(d.status, 200, "{}", d.text);
    assert_eq!(d.body["status"], "withdrawn");
    assert_eq!(d.body["version"], 3);
    assert_eq!(dns_txt(&node, &id).0, ResponseCode::NXDomain);
    let gone = api.get(&format!("/v1/identifiers/{id}")).unwrap();
    assert_eq!(gone.status, 410);
    assert_eq!(gone.body["status"], "withdrawn");
    let h = api.get(&format!("/api/handles/{id}")).unwrap();
    assert_eq!(
        (h.status, h.body["responseCode"].clone()),
        (404, json!(100))
    );
    assert_error(
        &api.signed("PUT", &format!("/v1/identifiers/{id}"), Some(&update), &key)
            .unwrap(),
        410,
        "withdrawn",
    );
    // The code is never reissued.
    let again = register(&node, &key);
    assert_eq!(again.status, 201);
    assert_ne!(again.body["identifier"], id.to_string());
}

#[test]
fn one_key_registers_one_provider() {
    let node = TestNode::open_policy();
    let (key, pv) = active_provider(&node, "first");
    let before = node.records();
    let r = node
        .api()
        .signed(
            "POST",
            "/v1/providers",
            Some(&provider_body(&key, "second")),
            &key,
        )
        .unwrap();
    assert_error(&r, 409, "key_registered");
    assert!(r.body["reason"].as_str().unwrap().contains(&pv.to_string()));
    assert_eq!(node.records(), before);
}

/// Headers signed over the usual components with a chosen nonce and expiry.
fn signed_with(
    key: &NodeKey,
    path: &str,
    body: &[u8],
    nonce: Option<&str>,
    expires: Option<i64>,
) -> http::HeaderMap {
    let uri: http::Uri = path.parse().unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert(
        "content-digest",
        cpid::api::httpsig::content_digest(body).parse().unwrap(),
    );
    let keyid = key.public().key_id().to_string();
    let (input, sig) = cpid::api::httpsig::sign(
        &cpid::api::httpsig::Message {
            method: "POST",
            uri: &uri,
            headers: &h,
            scheme: "http",
        },
        &cpid::api::httpsig::SignOptions {
            label: "sig1",
            components: &cpid::api::client::COMPONENTS,
            created: now(),
            expires,
            nonce,
            keyid: &keyid,
        },
        key,
    )
    .unwrap();
    h.insert("signature-input", input.parse().unwrap());
    h.insert("signature", sig.parse().unwrap());
    h
}

/// Sends a resource registration with hand-made headers.
fn send_raw(api: &ApiClient, path: &str, headers: http::HeaderMap, body: &[u8]) -> ApiResponse {
    api.send("POST", path, headers, body.to_vec()).unwrap()
}

#[test]
fn every_bad_signature_is_refused_and_changes_nothing() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (key, _) = active_provider(&node, "signer");
    let before = node.records();
    let body = serde_json::to_vec(&resource_body()).unwrap();
    let path = "/v1/identifiers";
    let fresh = |created: i64| {
        signed_headers("POST", path, &body, &key, &nonce().unwrap(), created).unwrap()
    };

    // No signature at all.
    let mut h = fresh(now());
    h.remove("signature");
    h.remove("signature-input");
    assert_error(&send_raw(&api, path, h, &body), 401, "missing_signature");
    // Not a structured field.
    let mut h = fresh(now());
    h.insert("signature-input", "sig1=(\"@method\"".parse().unwrap());
    assert_error(&send_raw(&api, path, h, &body), 401, "malformed_signature");
    // The body is not the one the digest (and signature) covers.
    let other =
        serde_json::to_vec(&json!({"class": "GC", "values": [{"type": "DESC", "data": "x"}]}))
            .unwrap();
    assert_error(
        &send_raw(&api, path, fresh(now()), &other),
        400,
        "digest_mismatch",
    );
    // Outside the ±300 s window, both ways.
    assert_error(
        &send_raw(&api, path, fresh(now() - 310), &body),
        401,
        "stale_request",
    );
    assert_error(
        &send_raw(&api, path, fresh(now() + 310), &body),
        401,
        "stale_request",
    );
    // A key nobody registered.
    let stranger = NodeKey::generate().unwrap();
    let h = signed_headers("POST", path, &body, &stranger, &nonce().unwrap(), now()).unwrap();
    assert_error(&send_raw(&api, path, h, &body), 401, "unknown_key");
    // Signed by another key under the provider's keyid.
    let forged = signed_headers("POST", path, &body, &stranger, &nonce().unwrap(), now()).unwrap();
    let mut h = fresh(now());
    let real_input = h["signature-input"].clone();
    h.insert("signature", forged["signature"].clone());
    h.insert("signature-input", real_input);
    assert_error(&send_raw(&api, path, h, &body), 401, "bad_signature");
    // Signed for another path.
    let h = signed_headers(
        "POST",
        "/v1/providers",
        &body,
        &key,
        &nonce().unwrap(),
        now(),
    )
    .unwrap();
    assert_error(&send_raw(&api, path, h, &body), 401, "bad_signature");
    // A signature that does not cover content-digest.
    let uri: http::Uri = path.parse().unwrap();
    let mut h = http::HeaderMap::new();
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert(
        "content-digest",
        cpid::api::httpsig::content_digest(&body).parse().unwrap(),
    );
    let keyid = key.public().key_id().to_string();
    let (input, sig) = cpid::api::httpsig::sign(
        &cpid::api::httpsig::Message {
            method: "POST",
            uri: &uri,
            headers: &h,
            scheme: "http",
        },
        &cpid::api::httpsig::SignOptions {
            label: "sig1",
            components: &["@method", "@path"],
            created: now(),
            expires: None,
            nonce: Some("n-weak"),
            keyid: &keyid,
        },
        &key,
    )
    .unwrap();
    h.insert("signature-input", input.parse().unwrap());
    h.insert("signature", sig.parse().unwrap());
    assert_error(&send_raw(&api, path, h, &body), 401, "signature_coverage");
    // No nonce; a signature past its own expiry; no Content-Digest at all.
    let h = signed_with(&key, path, &body, None, None);
    assert_error(&send_raw(&api, path, h, &body), 401, "missing_nonce");
    let h = signed_with(&key, path, &body, Some("n-exp"), Some(now() - 5));
    assert_error(&send_raw(&api, path, h, &body), 401, "expired_request");
    let mut h = fresh(now());
    h.remove("content-digest");
    assert_error(&send_raw(&api, path, h, &body), 400, "missing_digest");
    assert_eq!(node.records(), before, "nothing stored by any refusal");

    // Signature failures are counted by reason.
    let metrics = api.get("/metrics").unwrap().text;
    for reason in [
        "missing_signature",
        "digest_mismatch",
        "stale_request",
        "unknown_key",
        "bad_signature",
    ] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("cpid_signature_failures_total") && l.contains(reason)),
            "{reason} not counted:\n{metrics}"
        );
    }
}

#[test]
fn a_key_cannot_act_on_what_it_does_not_own() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (alice, _) = active_provider(&node, "alice");
    let (mallory, _) = active_provider(&node, "mallory");
    let r = register(&node, &alice);
    let id = r.body["identifier"].as_str().unwrap().to_string();
    let update = json!({"values": [{"type": "DESC", "data": "taken over"}]});
    let path = format!("/v1/identifiers/{id}");
    assert_error(
        &api.signed("PUT", &path, Some(&update), &mallory).unwrap(),
        403,
        "not_owner",
    );
    assert_error(
        &api.signed("DELETE", &path, None, &mallory).unwrap(),
        403,
        "not_owner",
    );
    let now = api.get(&path).unwrap();
    assert_eq!(now.body["version"], 1);
    assert_eq!(now.body["encoded"], r.body["encoded"]);
    // Nor approve providers, nor withdraw another provider's PV record.
    assert_error(
        &api.signed(
            "DELETE",
            &format!("/v1/identifiers/{}", r.body["owner"].as_str().unwrap()),
            None,
            &mallory,
        )
        .unwrap(),
        403,
        "not_owner",
    );
}

#[test]
fn a_replayed_request_is_refused_before_and_after_restart() {
    let node = TestNode::open_policy();
    let (key, _) = active_provider(&node, "replayer");
    let body = serde_json::to_vec(&resource_body()).unwrap();
    let headers =
        signed_headers("POST", "/v1/identifiers", &body, &key, "once-only", now()).unwrap();
    let first = send_raw(&node.api(), "/v1/identifiers", headers.clone(), &body);
    assert_eq!(first.status, 201, "{}", first.text);
    let after_first = node.records();
    // The retry gets a clear replay error, never a second identifier.
    let retry = send_raw(&node.api(), "/v1/identifiers", headers.clone(), &body);
    assert_error(&retry, 409, "replayed_nonce");
    assert_eq!(node.records(), after_first);
    // ... that names what the original request made.
    let original = first.body["identifier"].as_str().unwrap();
    assert_eq!(retry.body["identifier"], original);
    assert_eq!(
        retry.location.as_deref(),
        Some(format!("/v1/identifiers/{original}").as_str())
    );
    // Concurrent copies of one fresh request: exactly one lands.
    let headers2 = signed_headers("POST", "/v1/identifiers", &body, &key, "raced", now()).unwrap();
    let api = node.api();
    let answers: Vec<ApiResponse> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| send_raw(&api, "/v1/identifiers", headers2.clone(), &body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    // Every copy, winner or not, names the one identifier that was made.
    let made: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|a| a.body["identifier"].as_str().unwrap_or("none").to_string())
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert_eq!(node.records(), after_first + 1);

    // After a restart the nonce is still known.
    let node = node.restart();
    let later = send_raw(&node.api(), "/v1/identifiers", headers, &body);
    assert_error(&later, 409, "replayed_nonce");
    assert_eq!(later.body["identifier"], original);
    assert_eq!(node.records(), after_first + 1);
}

#[test]
fn bad_input_gets_a_4xx_with_a_reason_and_changes_nothing() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (key, pv) = active_provider(&node, "careless");
    let before = node.records();
    let post = |body: &Value| {
        api.signed("POST", "/v1/identifiers", Some(body), &key)
            .unwrap()
    };

    // Oversized body: 413 before any parsing.
    let big = "x".repeat(70 * 1024);
    let r = post(&json!({"class": "IC", "values": [{"type": "DESC", "data": big}]}));
    assert_error(&r, 413, "body_too_large");
    // Wrong content type.
    let body = serde_json::to_vec(&resource_body()).unwrap();
    let mut h = signed_headers(
        "POST",
        "/v1/identifiers",
        &body,
        &key,
        &nonce().unwrap(),
        now(),
    )
    .unwrap();
    h.insert("content-type", "text/plain".parse().unwrap());
    assert_error(
        &send_raw(&api, "/v1/identifiers", h, &body),
        415,
        "unsupported_media_type",
    );
    // Not JSON at all, correctly signed.
    let junk = b"{\"class\": ";
    let h = signed_headers(
        "POST",
        "/v1/identifiers",
        junk,
        &key,
        &nonce().unwrap(),
        now(),
    )
    .unwrap();
    assert_error(
        &send_raw(&api, "/v1/identifiers", h, junk),
        400,
        "invalid_json",
    );
    // Unknown field.
    let mut extra = resource_body();
    extra["colour"] = "blue".into();
    assert_error(&post(&extra), 422, "invalid_request");
    // Invalid values.
    for bad in [
        json!({"type": "URL", "data": "ftp://files.example/"}),
        json!({"type": "CP.RESOURCE", "data": "[1,2,3]"}),
        json!({"type": "EMAIL", "data": "not-an-address"}),
        json!({"type": "HS_PUBKEY", "data": "mine now"}),
        json!({"type": "no spaces", "data": "x"}),
        json!({"type": "DESC", "data": "x", "index": 100}),
    ] {
        let r = post(&json!({"class": "IC", "values": [bad.clone()]}));
        assert_error(&r, 422, "invalid_value");
    }
    // A descriptor off the capacity standard: the pointer names the field.
    for (data, pointer) in [
        (
            a800_pool(8).replace(r#""count":8"#, r#""count":0"#),
            "/devices/0/count",
        ),
        (
            a800_pool(8).replace(r#""fp16":312"#, r#""fp16_sparse":624"#),
            "/devices/0/peak_tflops/fp16_sparse",
        ),
        (
            a800_pool(8).replace(r#""region":"31""#, r#""region":"99""#),
            "/region",
        ),
        (
            r#"{"accelerator":"A800","count":8}"#.to_string(),
            "/accelerator",
        ),
    ] {
        let r = post(&json!({"class": "IC", "values": [{"type": "CP.RESOURCE", "data": data}]}));
        assert_error(&r, 422, "invalid_value");
        assert_eq!(r.body["pointer"], pointer, "{}", r.text);
    }
    // The descriptor describes the class asked for.
    let r =
        post(&json!({"class": "SC", "values": [{"type": "CP.RESOURCE", "data": a800_pool(8)}]}));
    assert_error(&r, 422, "invalid_value");
    assert_eq!(r.body["pointer"], "/class", "{}", r.text);
    assert_error(
        &post(&json!({"class": "IC", "values": []})),
        422,
        "invalid_value",
    );
    // Wrong class for a provider, and an unknown one.
    for class in ["PV", "US", "TX", "ND"] {
        let r = post(&json!({"class": class, "values": [{"type": "DESC", "data": "x"}]}));
        assert_error(&r, 403, "class_not_allowed");
    }
    assert_error(
        &post(&json!({"class": "ZZ", "values": [{"type": "DESC", "data": "x"}]})),
        422,
        "invalid_value",
    );
    // Providers issue under the node's own prefix only: deeper prefixes
    // belong to child nodes, so there is no field to ask for one.
    let r =
        post(&json!({"class": "IC", "prefix": "86.31", "values": [{"type": "DESC", "data": "x"}]}));
    assert_error(&r, 422, "invalid_request");
    // A malformed identifier in the path (wrong check character, bad class).
    let update = json!({"values": [{"type": "DESC", "data": "x"}]});
    let good = pv.to_string();
    let wrong_check = format!(
        "{}{}",
        &good[..good.len() - 1],
        if good.ends_with('0') { '1' } else { '0' }
    );
    for bad in [wrong_check.as_str(), "86/QQ-000001-0", "86..31/IC-000001-0"] {
        let r = api
            .signed(
                "PUT",
                &format!("/v1/identifiers/{bad}"),
                Some(&update),
                &key,
            )
            .unwrap();
        assert_error(&r, 400, "invalid_identifier");
        let r = api.get(&format!("/v1/identifiers/{bad}")).unwrap();
        assert_error(&r, 400, "invalid_identifier");
        let h = api.get(&format!("/api/handles/{bad}")).unwrap();
        assert_eq!((h.status, h.body["responseCode"].clone()), (400, json!(2)));
    }
    // Bad provider registrations.
    let k2 = NodeKey::generate().unwrap();
    let mut p = provider_body(&k2, "somewhere");
    p["region"] = "99".into();
    let r = api.signed("POST", "/v1/providers", Some(&p), &k2).unwrap();
    assert_error(&r, 422, "invalid_value");
    // Signed by a key other than the one it registers.
    let r = api
        .signed(
            "POST",
            "/v1/providers",
            Some(&provider_body(&k2, "proxy")),
            &key,
        )
        .unwrap();
    assert_error(&r, 401, "unknown_key");
    // No such endpoint, wrong method.
    assert_error(&api.get("/v2/nothing").unwrap(), 404, "no_route");
    assert_error(
        &api.send("PATCH", "/v1/identifiers", http::HeaderMap::new(), vec![])
            .unwrap(),
        405,
        "method_not_allowed",
    );
    assert_eq!(node.records(), before, "nothing stored by any refusal");
}

#[test]
fn node_health_and_metrics_endpoints_report_what_happened() {
    let node = TestNode::open_policy();
    let api = node.api();
    let info = api.get("/v1/node").unwrap();
    assert_eq!(info.status, 200);
    assert_eq!(info.body["prefix"], "86");
    assert_eq!(info.body["policy"], "open");
    assert_eq!(
        info.body["public_key"],
        node.node.registry.key().public().to_public_pem()
    );
    assert_eq!(
        info.body["admin_key_id"],
        node.admin_key().public().key_id().to_string()
    );
    assert_ne!(info.body["admin_key_id"], info.body["key_id"]);
    let health = api.get("/healthz").unwrap();
    assert_eq!(
        (health.status, health.body["status"].clone()),
        (200, json!("ok"))
    );

    let (key, _) = active_provider(&node, "metered");
    let r = register(&node, &key);
    let id = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    dns_txt(&node, &id);
    udp(
        node.addr(),
        &raw_query(8, "missing.86.cpid.internal", rtype::TXT, EDNS0),
    );
    let text = api.get("/metrics").unwrap().text;
    for needle in [
        "cpid_dns_queries_total{type=\"TXT\",rcode=\"NOERROR\"}",
        "cpid_dns_queries_total{type=\"TXT\",rcode=\"NXDOMAIN\"}",
        "cpid_dns_answer_seconds_bucket",
        "cpid_registrations_total{kind=\"resource\",outcome=\"ok\"}",
        "cpid_registrations_total{kind=\"provider\",outcome=\"ok\"}",
        "cpid_store_commit_seconds_bucket",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[test]
fn clients_that_hang_up_mid_write_leave_store_and_dns_in_step() {
    use std::io::Write;
    let node = TestNode::open_policy();
    let (key, _) = active_provider(&node, "impatient");
    let body = serde_json::to_vec(&resource_body()).unwrap();
    let before = node.records();
    for i in 0..60 {
        let headers = signed_headers(
            "POST",
            "/v1/identifiers",
            &body,
            &key,
            &format!("gone-{i}"),
            now(),
        )
        .unwrap();
        let mut request = format!(
            "POST /v1/identifiers HTTP/1.1\r\nhost: cpid\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in &headers {
            request.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
        }
        request.push_str("\r\n");
        let mut s = std::net::TcpStream::connect(node.http_addr()).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s.write_all(&body).unwrap();
        // Hang up without reading the answer.
        drop(s);
    }
    // Wait until the store stops changing.
    let mut last = u64::MAX;
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let n = node.records();
        if n == last {
            break;
        }
        last = n;
    }
    let stored = node.node.registry.store().records().unwrap();
    assert!(
        stored.len() as u64 > before,
        "some of the abandoned requests were committed"
    );
    // Everything committed is also published: DNS serves every record.
    for r in &stored {
        let (rcode, _) = dns_txt(&node, &r.record().identifier);
        assert_eq!(
            rcode,
            ResponseCode::NoError,
            "{} committed but not served",
            r.record().identifier
        );
    }
}

/// Reads one HTTP/1.1 message (headers and a Content-Length body); `None`
/// when the peer closed the connection before a new message began.
fn read_message(s: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap_or(0);
        if n == 0 {
            assert!(buf.is_empty(), "connection closed mid-message");
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if buf.len() >= end + 4 + len {
                return Some(buf);
            }
        }
    }
}

#[test]
fn a_client_whose_connection_drops_gets_the_original_answer_on_retry() {
    use std::io::Write;
    let node = TestNode::open_policy();
    let (key, pv) = active_provider(&node, "unlucky");
    let upstream = node.http_addr();
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, conn) in proxy.incoming().enumerate() {
            let mut client = conn.unwrap();
            std::thread::spawn(move || {
                // One upstream connection per client connection, keep-alive.
                let mut server = std::net::TcpStream::connect(upstream).unwrap();
                while let Some(request) = read_message(&mut client) {
                    server.write_all(&request).unwrap();
                    let response = read_message(&mut server).unwrap();
                    if n == 0 {
                        // The node carried it out; the client never hears so.
                        return;
                    }
                    if client.write_all(&response).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let before = node.records();
    let api = ApiClient::new(&format!("http://{proxy_addr}"));
    let r = api
        .signed("POST", "/v1/identifiers", Some(&resource_body()), &key)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["owner"], pv.to_string());
    assert_eq!(
        node.records(),
        before + 1,
        "exactly one identifier was made"
    );
    let id = r.body["identifier"].as_str().unwrap();
    let direct = node.api().get(&format!("/v1/identifiers/{id}")).unwrap();
    assert_eq!(direct.body["encoded"], r.body["encoded"]);
}

#[test]
fn a_provider_replaces_its_key_with_the_old_one_and_the_admin_replaces_a_lost_one() {
    let node = TestNode::open_policy();
    let (old, pv) = active_provider(&node, "rolling");
    let (other, other_pv) = active_provider(&node, "bystander");
    let path = format!("/v1/identifiers/{pv}/key");
    let body = |k: &NodeKey| json!({ "public_key": k.public().to_public_pem() });
    let api = node.api();

    // Refusals change nothing: another party's signature, a key another
    // party holds, a resource identifier.
    let before = node.records();
    let new = NodeKey::generate().unwrap();
    let r = api
        .signed("POST", &path, Some(&body(&new)), &other)
        .unwrap();
    assert_error(&r, 403, "not_owner");
    let r = api
        .signed("POST", &path, Some(&body(&other)), &old)
        .unwrap();
    assert_error(&r, 409, "key_registered");
    let resource = register(&node, &old);
    let ic = resource.body["identifier"].as_str().unwrap().to_string();
    let r = api
        .signed(
            "POST",
            &format!("/v1/identifiers/{ic}/key"),
            Some(&body(&new)),
            &old,
        )
        .unwrap();
    assert_error(&r, 403, "class_not_allowed");
    assert_eq!(node.records(), before + 1, "only the resource was written");

    // Signed by the old key: version + 1, the record holds the new key.
    let r = api.signed("POST", &path, Some(&body(&new)), &old).unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["version"], 2);
    assert!(
        r.text
            .contains(&new.public().to_public_pem().replace('\n', "\\n")),
        "{}",
        r.text
    );
    // The old key is unknown from now on; the new one acts for the provider.
    assert_error(&register(&node, &old), 401, "unknown_key");
    assert_eq!(register(&node, &new).status, 201);

    // The key lost: the admin replaces it.
    let newer = NodeKey::generate().unwrap();
    let r = api
        .signed("POST", &path, Some(&body(&newer)), &node.admin_key())
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_error(&register(&node, &new), 401, "unknown_key");
    assert_eq!(register(&node, &newer).status, 201);
    // The bystander was never touched.
    assert_eq!(register(&node, &other).status, 201);
    let _ = other_pv;
}
