//! Selection and scheduling against running nodes: ranked candidates with
//! named score components and paths over dedicated lines, every resource
//! left out counted by reason, booked units unavailable for their window,
//! bad requirements refused; across the demo federation, children's
//! candidates verified and merged, and a schedule carried to the node that
//! holds the best resource; and the buyer's walk from the command line.

use std::process::Command;

use cpid::api::client::ApiClient;
use cpid::ident::identifier::Identifier;
use cpid::ident::keys::NodeKey;
use cpid::testkit::federation::{Federation, Options};
use serde_json::{Value, json};

use crate::capacity::{provider, report};
use crate::common::*;
use crate::rollup::{poll, provider_with_pool};
use crate::trade::{buyer, proposal};

fn register(api: &ApiClient, key: &NodeKey, class: &str, descriptor: &str) -> Identifier {
    let body = json!({"class": class, "values": [{"type": "CP.RESOURCE", "data": descriptor}]});
    let r = api
        .signed("POST", "/v1/identifiers", Some(&body), key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap()
}

fn pool(region: &str, model: &str, cards: u64, price: f64) -> String {
    format!(
        r#"{{"schema":"cpid.resource/1","class":"IC","region":"{region}","unit":"card","units_total":{cards},"devices":[{{"model":"{model}","count":{cards},"memory_gib":80,"peak_tflops":{{"fp16":312,"bf16":312}}}}],"price_per_unit_hour":{{"amount":{price},"currency":"CNY"}}}}"#
    )
}

fn select(api: &ApiClient, body: Value) -> Value {
    let r = api
        .send(
            "POST",
            "/v1/select",
            json_headers(),
            serde_json::to_vec(&body).unwrap(),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn json_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    h
}

fn ids(answer: &Value) -> Vec<String> {
    answer["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["identifier"].as_str().unwrap().to_string())
        .collect()
}

fn candidate<'a>(answer: &'a Value, id: &Identifier) -> &'a Value {
    answer["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["identifier"] == id.to_string().as_str())
        .unwrap_or_else(|| panic!("{id} not among {answer}"))
}

#[test]
fn selection_ranks_explains_follows_lines_and_counts_booked_units() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (k31, _) = provider(&api, "shanghai", "31");
    let (k51, _) = provider(&api, "chengdu", "51");
    let (k11, _) = provider(&api, "beijing", "11");
    let near = register(&api, &k31, "IC", &pool("31", "A800", 8, 12.5));
    let far = register(&api, &k51, "IC", &pool("51", "A800", 16, 10.0));
    let other = register(&api, &k51, "IC", &pool("51", "H20", 16, 5.0));
    let silent = register(&api, &k11, "IC", &pool("11", "A800", 8, 1.0));
    let line = register(
        &api,
        &k51,
        "NL",
        r#"{"schema":"cpid.resource/1","class":"NL","unit":"line","units_total":1,"link":{"regions":["31","51"],"bandwidth_gbps":100,"latency_ms":8}}"#,
    );
    for (key, items) in [
        (&k31, vec![(&near, 8, 0)]),
        (&k51, vec![(&far, 16, 0), (&other, 16, 0)]),
    ] {
        let r = report(&api, key, "a", 1, &items);
        assert_eq!(r.status, 200, "{}", r.text);
    }

    let base = json!({"model": "A800", "units": 4, "region": "31"});
    let a = select(&api, base.clone());
    assert_eq!(a["considered"], 4, "{a}");
    assert_eq!(a["matched"], 2, "{a}");
    assert_eq!(a["excluded"]["wrong_model"], 1, "{a}");
    assert_eq!(a["excluded"]["never_reported"], 1, "{a}");
    assert!(
        !ids(&a).contains(&silent.to_string()),
        "the cheapest, never reported"
    );
    assert_eq!(
        a["explanation"],
        "2 of 4 fit: 1 wrong model, 1 never reported"
    );
    // The far pool is reached over the line (8 ms), not the 20 ms matrix.
    let f = candidate(&a, &far);
    assert_eq!(f["path"]["via"], json!([line.to_string()]), "{f}");
    assert_eq!(f["path"]["latency_ms"], 8.0);
    assert_eq!(f["path"]["bandwidth_gbps"], 100.0);
    assert_eq!(candidate(&a, &near)["path"]["latency_ms"], 1.0);
    // Every score is its named components' points; ranked best first.
    let mut last = f64::INFINITY;
    for c in a["candidates"].as_array().unwrap() {
        let comps = c["components"].as_object().unwrap();
        for name in [
            "price",
            "headroom",
            "quality",
            "freshness",
            "latency",
            "preference",
        ] {
            assert!(comps.contains_key(name), "{name} missing: {c}");
        }
        let weights: f64 = comps.values().map(|v| v["weight"].as_f64().unwrap()).sum();
        assert!((weights - 1.0).abs() < 0.01, "{c}");
        let points: f64 = comps.values().map(|v| v["points"].as_f64().unwrap()).sum();
        let score = c["score"].as_f64().unwrap();
        assert!((points - score).abs() < 0.01, "{c}");
        assert!(score <= last, "{a}");
        last = score;
    }
    assert_eq!(candidate(&a, &far)["components"]["price"]["value"], 1.0);
    assert_eq!(candidate(&a, &near)["components"]["price"]["value"], 0.8);

    // Bounds: latency, bandwidth, price, memory; weights change the order.
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        select(&api, b)
    };
    let tight = with(json!({"max_latency_ms": 5}));
    assert_eq!(ids(&tight), vec![near.to_string()]);
    // Whole buckets are ruled out by their path before any report is read.
    assert_eq!(tight["excluded"]["over_latency"], 2, "{tight}");
    assert_eq!(
        ids(&with(json!({"min_bandwidth_gbps": 50}))).len(),
        2,
        "the line is wide enough"
    );
    let wide = with(json!({"min_bandwidth_gbps": 400}));
    assert_eq!(ids(&wide), vec![near.to_string()]);
    assert_eq!(wide["excluded"]["no_path"], 2, "{wide}");
    let cheap = with(json!({"max_price": {"amount": 11, "currency": "CNY"}}));
    assert_eq!(ids(&cheap), vec![far.to_string()]);
    assert_eq!(cheap["excluded"]["over_price"], 1);
    assert_eq!(
        with(json!({"memory_gib": 96}))["excluded"]["too_little_memory"],
        3
    );
    let by_price = with(json!({"weights": {"price": 1, "headroom": 0, "quality": 0,
        "freshness": 0, "latency": 0, "preference": 0}}));
    assert_eq!(ids(&by_price)[0], far.to_string());
    let by_latency = with(json!({"weights": {"price": 0, "latency": 1, "headroom": 0,
        "quality": 0, "freshness": 0, "preference": 0}}));
    assert_eq!(ids(&by_latency)[0], near.to_string());
    // A peak instead of units: the units it needs are worked out.
    let peak = select(
        &api,
        json!({"model": "a800", "peak": {"precision": "fp16", "tflops": 1000}}),
    );
    assert_eq!(candidate(&peak, &near)["units"], 4, "⌈1000 / 312⌉");
    let too_big = select(
        &api,
        json!({"model": "A800", "peak": {"precision": "fp16", "tflops": 4000}}),
    );
    assert_eq!(ids(&too_big), vec![far.to_string()]);
    assert_eq!(
        too_big["excluded"]["below_peak"], 2,
        "the near pool and the silent one"
    );

    // Accepted units are off for their window, and only for it.
    let (bkey, _) = buyer(&api, "lab");
    let t0 = cpid::clock::system_now();
    let tx = api
        .propose(&proposal(&near, 6, t0, t0 + 7200), &bkey)
        .unwrap();
    let before = select(&api, base.clone());
    assert_eq!(before["matched"], 2, "a proposal holds no units");
    api.tx_step(
        &tx.record.record().identifier,
        cpid::trade::StepKind::Accept,
        &Default::default(),
        &k31,
    )
    .unwrap();
    let booked = select(&api, base.clone());
    assert_eq!(ids(&booked), vec![far.to_string()]);
    assert_eq!(booked["excluded"]["booked"], 1, "{booked}");
    let two = select(&api, json!({"model": "A800", "units": 2, "region": "31"}));
    assert_eq!(candidate(&two, &near)["units_free"], 2);
    let later = with(json!({"start": t0 + 7200, "end": t0 + 10_800}));
    assert_eq!(candidate(&later, &near)["units_free"], 8);

    // Bad requirements: a 4xx naming the field, nothing else.
    for (body, status, code, pointer) in [
        (json!({"units": 0}), 422, "invalid_value", "/units"),
        (json!({"units": -2}), 422, "invalid_value", "/units"),
        (
            json!({"max_price": {"amount": "low"}}),
            422,
            "invalid_value",
            "/max_price/amount",
        ),
        (
            json!({"start": t0 + 100, "end": t0}),
            422,
            "invalid_value",
            "/end",
        ),
        (
            json!({"start": 1000, "end": 2000}),
            422,
            "invalid_value",
            "/end",
        ),
        (
            json!({"start": 1000, "end": t0 + 60}),
            422,
            "invalid_value",
            "/start",
        ),
        (
            json!({"max_latency_ms": 3}),
            422,
            "invalid_value",
            "/max_latency_ms",
        ),
        (json!({"region": "99"}), 422, "invalid_value", "/region"),
    ] {
        let r = api
            .send(
                "POST",
                "/v1/select",
                json_headers(),
                serde_json::to_vec(&body).unwrap(),
            )
            .unwrap();
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_eq!(r.body["error"], code, "{body}: {}", r.text);
        assert_eq!(r.body["pointer"], pointer, "{body}: {}", r.text);
    }
    // A selection that already passed through this node is a loop.
    let mut looped = json_headers();
    looped.insert(
        "cpid-forwarded-by",
        http::HeaderValue::from_static("86.31,86"),
    );
    let r = api
        .send("POST", "/v1/select", looped, b"{}".to_vec())
        .unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (422, Some("invalid_request"))
    );
    let r = api
        .send("POST", "/v1/select", json_headers(), b"{not json".to_vec())
        .unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (400, Some("invalid_json"))
    );

    // Nothing fits: schedule says why and proposes nothing.
    let r = api
        .signed(
            "POST",
            "/v1/schedule",
            Some(&json!({"model": "B200", "units": 1})),
            &bkey,
        )
        .unwrap();
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"], "nothing_fits");
    assert!(
        r.body["reason"]
            .as_str()
            .unwrap()
            .contains("0 of 4 fit: 4 wrong model"),
        "{}",
        r.text
    );
    // A schedule proposes on the best candidate, keeping the signed
    // requirement as the step that made the transaction.
    let (tx, whole) = api
        .schedule(&json!({"model": "A800", "units": 4, "region": "51"}), &bkey)
        .unwrap();
    assert_eq!(tx.doc.resource, far.to_string());
    assert_eq!(tx.doc.state.as_str(), "proposed");
    assert_eq!(
        whole["selection"]["candidates"][0]["identifier"],
        far.to_string().as_str()
    );
    assert_eq!(tx.json["step"]["request"]["path"], "/v1/schedule");
    // A provider cannot schedule.
    let r = api
        .signed("POST", "/v1/schedule", Some(&json!({"units": 1})), &k31)
        .unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("wrong_role"))
    );
    // The metrics count selections and transactions by state.
    let m = api.get("/metrics").unwrap().text;
    assert!(m.contains("cpid_selections_total"), "{m}");
    assert!(m.contains("cpid_transactions{state=\"accepted\"} 1"), "{m}");
}

#[test]
fn the_national_node_selects_across_the_federation_and_schedules_where_the_resource_is() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = Options::loopback(dir.path()).unwrap();
    let fed = rt.block_on(Federation::start(&opts)).unwrap();
    let national = ApiClient::new(&fed.national.http_url());
    let shanghai = ApiClient::new(&fed.shanghai.http_url());
    let industry = ApiClient::new(&fed.industry.http_url());
    // H20 pools reporting half their cards: 50 in Beijing (national),
    // 100 in Shanghai, 150 at the industry node (Guangdong).
    let at_national = provider_with_pool(&national, &fed.national.admin_key().unwrap(), "11", 100);
    provider_with_pool(&shanghai, &fed.shanghai.admin_key().unwrap(), "31", 200);
    let at_industry = provider_with_pool(&industry, &fed.industry.admin_key().unwrap(), "44", 300);

    let want = json!({"model": "H20", "units": 10, "region": "11"});
    let answer = poll("the national node to select from all three nodes", || {
        let a = select(&national, want.clone());
        (a["candidates"].as_array().unwrap().len() == 3).then_some(a)
    });
    assert_eq!(answer["considered"], 3, "{answer}");
    let nodes: Vec<&str> = answer["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes[0], "86", "closest first at equal price: {answer}");
    assert!(
        nodes.contains(&"86.31") && nodes.contains(&"86.31.1005"),
        "{answer}"
    );
    let hops = answer["hops"].as_array().unwrap();
    assert_eq!(hops[0]["outcome"], "local");
    let sh = hops.iter().find(|h| h["node"] == "86.31").unwrap();
    assert_eq!(sh["outcome"], "answered", "{sh}");
    assert_eq!(
        (sh["candidates"].as_u64(), sh["verified"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(sh["hops"][1]["node"], "86.31.1005", "{sh}");
    assert_eq!(sh["hops"][1]["outcome"], "answered", "{sh}");
    // Only the industry pool has 120 cards free: found through two hops.
    // (once the national node's copy of Shanghai's summary holds the
    // industry node's figures: routing follows the summaries)
    let big = poll("a selection only the industry node can answer", || {
        let a = select(
            &national,
            json!({"model": "H20", "units": 120, "region": "11"}),
        );
        (!a["candidates"].as_array().unwrap().is_empty()).then_some(a)
    });
    assert_eq!(ids(&big), vec![at_industry.id.clone()], "{big}");
    assert_eq!(big["excluded"]["too_few_units"], 1, "{big}");
    assert_eq!(big["excluded"]["unavailable"], 1, "{big}");
    assert!(at_national.id.starts_with("86/"));

    // A buyer registered at the national node schedules there; the best
    // is at the industry node, which checks the buyer from the root key.
    let bkey = NodeKey::generate().unwrap();
    let body = json!({"name": "lab", "organisation": "BUY-lab", "contact": "b@b.example",
        "region": "11", "public_key": bkey.public().to_public_pem()});
    let r = national
        .signed("POST", "/v1/users", Some(&body), &bkey)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let bid = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    if r.body["status"] == "pending" {
        national
            .approve_user(&bid, &fed.national.admin_key().unwrap())
            .unwrap();
    }
    let big_req = json!({"model": "H20", "units": 120, "region": "11"});
    let r = national
        .signed("POST", "/v1/schedule", Some(&big_req), &bkey)
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"], "needs_identifier_keyid");
    // The very same signed request, sent twice: it acts once. The national
    // node spends the nonce before it forwards, so the replay stops there.
    let body = serde_json::to_vec(&big_req).unwrap();
    let headers = cpid::api::client::signed_headers_as(
        "POST",
        "/v1/schedule",
        &body,
        &bkey,
        &bid.to_string(),
        &cpid::api::client::nonce().unwrap(),
        cpid::clock::system_now() as i64,
    )
    .unwrap();
    let first = national
        .send("POST", "/v1/schedule", headers.clone(), body.clone())
        .unwrap();
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["scheduled_by"], "86.31.1005", "{}", first.text);
    let again = national
        .send("POST", "/v1/schedule", headers, body)
        .unwrap();
    assert_eq!(again.status, 409, "{}", again.text);
    assert_eq!(again.body["error"], "replayed_nonce");
    assert!(
        again.body.get("scheduled_by").is_none(),
        "refused at the national node, not forwarded: {}",
        again.text
    );
    let as_buyer = ApiClient::new(&fed.national.http_url()).signing_as(Some(&bid));
    let (tx, whole) = as_buyer.schedule(&big_req, &bkey).unwrap();
    assert_eq!(whole["scheduled_by"], "86.31.1005", "{whole}");
    assert_eq!(whole["scheduled_by_api"], fed.industry.http_url().as_str());
    assert_eq!(tx.doc.resource, at_industry.id);
    assert_eq!(tx.doc.buyer, bid.to_string());
    assert!(
        tx.record
            .record()
            .identifier
            .to_string()
            .starts_with("86.31.1005/TX-")
    );
    // The transaction lives at the industry node: the buyer reads it there.
    let read = ApiClient::new(&fed.industry.http_url())
        .signing_as(Some(&bid))
        .tx_get(&tx.record.record().identifier, &bkey)
        .unwrap();
    assert_eq!(read.doc.state.as_str(), "proposed");
    rt.block_on(fed.shutdown()).unwrap();
}

fn cpid(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cpid"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cpid {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_buyer_walks_from_selection_to_a_settled_transaction_on_the_command_line() {
    let node = TestNode::open_policy();
    let api = node.api();
    let server = format!("http://{}", node.http_addr());
    let (pkey, _) = provider(&api, "pool", "31");
    let pool_id = register(&api, &pkey, "IC", &pool("31", "A800", 8, 12.5));
    assert_eq!(report(&api, &pkey, "a", 1, &[(&pool_id, 8, 0)]).status, 200);
    let dir = tempfile::tempdir().unwrap();
    let bkey = dir.path().join("buyer.pem");
    let pkey_file = dir.path().join("provider.pem");
    pkey.write_new(&pkey_file).unwrap();
    cpid(&["key", "generate", "--out", bkey.to_str().unwrap()]);
    let b = bkey.to_str().unwrap();
    let p = pkey_file.to_str().unwrap();
    let us = cpid(&[
        "user",
        "register",
        "-k",
        b,
        "--server",
        &server,
        "--name",
        "lab",
        "--organisation",
        "BUY-lab",
        "--contact",
        "b@b.example",
        "--region",
        "31",
    ]);
    assert!(us.trim().contains("/US-"), "{us}");

    let table = cpid(&[
        "select", "--server", &server, "--model", "A800", "--units", "4", "--region", "31",
    ]);
    assert!(table.contains(&pool_id.to_string()), "{table}");
    let json_out = cpid(&[
        "select", "--server", &server, "--model", "A800", "--units", "4", "--json",
    ]);
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["matched"], 1, "{v}");

    let tx = cpid(&[
        "schedule", "-k", b, "--server", &server, "--model", "A800", "--units", "4", "--region",
        "31", "--hours", "2",
    ]);
    let tx = tx.trim().to_string();
    assert!(tx.contains("/TX-"), "{tx}");
    for step in ["accept", "activate", "settle"] {
        cpid(&["tx", step, &tx, "-k", p, "--server", &server]);
    }
    let shown = cpid(&["tx", "show", &tx, "-k", b, "--server", &server, "--json"]);
    let v: Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["transaction"]["state"], "settled", "{v}");
    assert_eq!(v["transaction"]["units"], 4);
    let inbox = cpid(&[
        "tx", "list", "-k", p, "--server", &server, "--state", "settled",
    ]);
    assert!(inbox.contains(&tx), "{inbox}");
}
