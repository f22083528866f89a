//! Resource aggregation against a running node: signed status reports
//! (ownership, sequence, durability), the live status beside a record,
//! freshness over time, the owner listing, totals in `/v1/situation` and
//! their gauges in `/metrics`.

use cpid::api::client::{ApiClient, ApiResponse};
use cpid::clock::Clock;
use cpid::ident::identifier::Identifier;
use cpid::ident::keys::NodeKey;
use serde_json::{Value, json};

use crate::common::*;

pub fn provider(api: &ApiClient, name: &str, region: &str) -> (NodeKey, Identifier) {
    let key = NodeKey::generate().unwrap();
    let body = json!({
        "name": name, "organisation": format!("ORG-{name}"), "contact": "noc@p.example",
        "region": region, "public_key": key.public().to_public_pem(),
    });
    let r = api
        .signed("POST", "/v1/providers", Some(&body), &key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let id = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    (key, id)
}

pub fn resource(api: &ApiClient, key: &NodeKey, descriptor: &str) -> Identifier {
    let body = json!({"class": "IC", "values": [{"type": "CP.RESOURCE", "data": descriptor}]});
    let r = api
        .signed("POST", "/v1/identifiers", Some(&body), key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap()
}

pub fn report(
    api: &ApiClient,
    key: &NodeKey,
    agent: &str,
    seq: u64,
    items: &[(&Identifier, i64, i64)],
) -> ApiResponse {
    let resources: Vec<Value> = items
        .iter()
        .map(|(id, available, in_use)| {
            json!({"id": id.to_string(), "units_available": available,
                   "units_in_use": in_use, "health": "ok"})
        })
        .collect();
    let body = json!({"agent": agent, "seq": seq, "interval_secs": 10, "resources": resources});
    api.signed("POST", "/v1/reports", Some(&body), key).unwrap()
}

fn situation(api: &ApiClient, query: &str) -> Value {
    let r = api.get(&format!("/v1/situation{query}")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn unit_row<'a>(s: &'a Value, region: &str) -> &'a Value {
    s["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == region)
        .unwrap_or_else(|| panic!("no units row for {region}: {s}"))
}

fn json_headers() -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    h
}

fn assert_error(r: &ApiResponse, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.body["error"], code, "{}", r.text);
}

#[test]
fn reports_feed_live_status_and_totals_and_refusals_change_nothing() {
    let clock = Clock::manual(cpid::clock::system_now());
    let node = TestNode::start_with_clock(clock.clone(), |c| {
        c.registration.policy = cpid::config::Policy::Open
    });
    let api = node.api();
    let (key, _) = provider(&api, "alpha", "31");
    let a = resource(&api, &key, &a800_pool(8));
    let b = resource(&api, &key, &a800_pool(8));
    let (other_key, _) = provider(&api, "beta", "11");
    let theirs = resource(&api, &other_key, &a800_pool(4));

    // Before any report everything registered is unknown.
    let s = situation(&api, "");
    assert_eq!(s["resources"]["unknown"], 3);
    assert_eq!(unit_row(&s, "31")["units_total"]["unknown"], 20);

    let r = report(&api, &key, "rack1", 1, &[(&a, 6, 2), (&b, 8, 0)]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["resources"], 2);

    let s = situation(&api, "?region=31&group_by=region,class,model");
    let row = unit_row(&s, "31");
    assert_eq!(row["resources"]["fresh"], 2);
    assert_eq!(row["units_total"]["fresh"], 16);
    assert_eq!(row["units_available"]["fresh"], 14);
    assert_eq!(row["units_in_use"]["fresh"], 2);
    assert_eq!(
        row["units_total"]["unknown"], 4,
        "the other provider's pool"
    );
    let fp16 = s["peaks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["precision"] == "fp16")
        .unwrap();
    assert_eq!(fp16["model"], "A800");
    assert_eq!(fp16["total_tflops"]["fresh"], 16.0 * 312.0);
    assert_eq!(fp16["available_tflops"]["fresh"], 14.0 * 312.0);
    // Precisions are never added up: one row each.
    let precisions: Vec<&str> = s["peaks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["precision"].as_str().unwrap())
        .collect();
    assert_eq!(precisions.len(), 6, "{precisions:?}");

    // The record reads with its live status beside it, not inside it.
    let r = api.get(&format!("/v1/identifiers/{a}")).unwrap();
    assert_eq!(r.body["live_status"]["freshness"], "fresh", "{}", r.text);
    assert_eq!(r.body["live_status"]["units_available"], 6);
    assert_eq!(r.body["live_status"]["seq"], 1);
    assert_eq!(r.body["version"], 1, "a report makes no new version");
    let serial = node.node.registry.zone().serial();

    // Replayed and out-of-order reports: 409 with the last sequence.
    let replay = report(&api, &key, "rack1", 1, &[(&a, 0, 8)]);
    assert_error(&replay, 409, "out_of_sequence");
    assert_eq!(replay.body["last_seq"], 1);
    // Another agent of the same key has its own sequence.
    let r = report(&api, &key, "rack2", 1, &[(&b, 7, 1)]);
    assert_eq!(r.status, 200, "{}", r.text);

    // A resource the signer does not own: 403, and the owned one in the
    // same report is untouched.
    let r = report(&api, &key, "rack1", 2, &[(&a, 0, 8), (&theirs, 0, 4)]);
    assert_error(&r, 403, "not_owner");
    assert_eq!(r.body["pointer"], "/resources/1/id");
    let live = api.get(&format!("/v1/identifiers/{a}")).unwrap();
    assert_eq!(live.body["live_status"]["units_available"], 6);
    // The refused seq 2 was not consumed.
    assert_eq!(report(&api, &key, "rack1", 2, &[(&a, 5, 3)]).status, 200);

    // Bad bodies name the field; unknown resources are 404.
    let bad = api
        .signed(
            "POST",
            "/v1/reports",
            Some(&json!({"agent": "rack1", "seq": 3, "interval_secs": 10,
                         "resources": [{"id": a.to_string(), "units_available": "six",
                                        "units_in_use": 0, "health": "ok"}]})),
            &key,
        )
        .unwrap();
    assert_error(&bad, 422, "invalid_value");
    assert_eq!(bad.body["pointer"], "/resources/0/units_available");
    let short = api
        .signed(
            "POST",
            "/v1/reports",
            Some(&json!({"agent": "rack1", "seq": 3, "interval_secs": 1, "resources": []})),
            &key,
        )
        .unwrap();
    assert_eq!(short.body["pointer"], "/interval_secs", "{}", short.text);
    let unknown = Identifier::new(
        a.prefix().clone(),
        cpid::ident::identifier::Class::Ic,
        cpid::ident::identifier::Serial::new(999).unwrap(),
    );
    let r = report(&api, &key, "rack1", 3, &[(&unknown, 1, 0)]);
    assert_error(&r, 404, "not_found");
    assert_eq!(r.body["pointer"], "/resources/0/id");
    // Unsigned reports are refused.
    let r = api
        .send("POST", "/v1/reports", json_headers(), b"{}".to_vec())
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        node.node.registry.zone().serial(),
        serial,
        "reports never touch the zone"
    );

    // Freshness follows the reporter's interval: stale after 3, unknown after 4.
    clock.advance(29);
    assert_eq!(situation(&api, "?region=31")["resources"]["fresh"], 2);
    clock.advance(1);
    let s = situation(&api, "?region=31");
    assert_eq!(s["resources"]["stale"], 2, "{s}");
    assert_eq!(unit_row(&s, "31")["units_available"]["stale"], 12);
    let r = api.get(&format!("/v1/identifiers/{a}")).unwrap();
    assert_eq!(r.body["live_status"]["freshness"], "stale");
    clock.advance(10);
    assert_eq!(situation(&api, "?region=31")["resources"]["unknown"], 3);

    // Coverage of the province-level regions.
    let s = situation(&api, "");
    assert_eq!(s["coverage"]["regions_total"], 31);
    assert_eq!(s["coverage"]["regions_fresh"], 0);
    assert_eq!(report(&api, &key, "rack1", 3, &[(&a, 5, 3)]).status, 200);
    let s = situation(&api, "");
    assert_eq!(s["coverage"]["regions_fresh"], 1);
    assert_eq!(s["coverage"]["regions_silent"], 0);
    let shanghai = &s["coverage"]["provinces"].as_array().unwrap()[8];
    assert_eq!(
        (&shanghai["code"], &shanghai["state"]),
        (&json!("31"), &json!("fresh"))
    );
    assert_eq!(
        shanghai["resources"]["unknown"], 2,
        "b and the other provider's pool"
    );

    // The gauges say the same.
    let m = api.get("/metrics").unwrap().text;
    assert!(
        m.contains(
            "cpid_capacity_units{region=\"31\",class=\"IC\",freshness=\"fresh\",kind=\"total\"} 8"
        ),
        "{m}"
    );
    assert!(m.contains("cpid_situation_coverage_ratio 0.0322"), "{m}");
    promtool_accepts(&m);

    // Filters and grouping are checked.
    assert_error(
        &api.get("/v1/situation?group_by=precision").unwrap(),
        400,
        "invalid_query",
    );
    assert_error(
        &api.get("/v1/situation?colour=red").unwrap(),
        400,
        "invalid_query",
    );
    let national = situation(&api, "?group_by=");
    assert_eq!(national["units"].as_array().unwrap().len(), 1);
    assert_eq!(national["units"][0]["region"], "*");

    // Status and sequences survive a restart, including `b`'s, which
    // rack1's later reports left out (its latest is still in the row of
    // the last report that named it).
    let live = |api: &ApiClient, id: &Identifier| {
        let r = api.get(&format!("/v1/identifiers/{id}")).unwrap();
        let l = &r.body["live_status"];
        (
            l["agent"].clone(),
            l["seq"].clone(),
            l["units_available"].clone(),
        )
    };
    let b_before = live(&api, &b);
    assert_ne!(b_before.1, Value::Null);
    let node = node.restart();
    let api = node.api();
    let r = api.get(&format!("/v1/identifiers/{a}")).unwrap();
    assert_eq!(r.body["live_status"]["seq"], 3, "{}", r.text);
    assert_error(
        &report(&api, &key, "rack1", 3, &[(&a, 5, 3)]),
        409,
        "out_of_sequence",
    );
    assert_eq!(report(&api, &key, "rack1", 4, &[(&a, 5, 3)]).status, 200);
    assert_eq!(live(&api, &b), b_before);
    // Both again (the row of {a} alone is emptied as superseded), then a
    // restart: both read report 5.
    assert_eq!(
        report(&api, &key, "rack1", 5, &[(&a, 4, 4), (&b, 7, 1)]).status,
        200
    );
    let node = node.restart();
    let api = node.api();
    for (id, available) in [(&a, 4), (&b, 7)] {
        let r = api.get(&format!("/v1/identifiers/{id}")).unwrap();
        assert_eq!(r.body["live_status"]["seq"], 5, "{}", r.text);
        assert_eq!(
            r.body["live_status"]["units_available"], available,
            "{}",
            r.text
        );
    }
    assert_error(
        &report(&api, &key, "rack1", 5, &[(&a, 5, 3)]),
        409,
        "out_of_sequence",
    );
}

#[test]
fn a_provider_lists_what_it_owns_a_page_at_a_time() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (key, owner) = provider(&api, "lister", "44");
    let mut mine: Vec<String> = (0..5)
        .map(|_| resource(&api, &key, &a800_pool(2)).to_string())
        .collect();
    let (other, _) = provider(&api, "other", "44");
    resource(&api, &other, &a800_pool(2));
    mine.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/identifiers?owner={owner}&limit=2");
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let r = api.get(&path).unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        pages += 1;
        for item in r.body["identifiers"].as_array().unwrap() {
            assert_eq!(item["owner"], owner.to_string());
            seen.push(item["identifier"].as_str().unwrap().to_string());
        }
        match r.body["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, mine);
    // The typed client walks the pages itself.
    assert_eq!(api.owned(&owner).unwrap().len(), 5);
    // A withdrawn resource is no longer listed.
    let first = Identifier::parse(&mine[0]).unwrap();
    api.withdraw(&first, &key).unwrap();
    assert_eq!(api.owned(&owner).unwrap().len(), 4);
    assert_error(
        &api.get("/v1/identifiers?owner=nonsense").unwrap(),
        400,
        "invalid_query",
    );
    assert_error(
        &api.get(&format!("/v1/identifiers?owner={owner}&limit=0"))
            .unwrap(),
        400,
        "invalid_query",
    );
}

#[test]
fn data_quality_names_every_fault_with_its_reason_and_scores_providers() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (key, owner) = provider(&api, "faulty", "31");
    let clean = resource(&api, &key, &a800_pool(8));
    // Sparse figure given as dense: the A800's fp16 is 312 dense, 624 sparse.
    let sparse = resource(
        &api,
        &key,
        &a800_pool(8).replace(r#""fp16":312"#, r#""fp16":624"#),
    );
    // A declared total 10% over the sum of its devices.
    let declared = resource(
        &api,
        &key,
        &a800_pool(8).replace(
            r#""price_per_unit_hour""#,
            r#""declared_peak_tflops":{"fp16":2745.6},"price_per_unit_hour""#,
        ),
    );
    // The same device serial under two identifiers.
    let with_serial = |s: &str| {
        a800_pool(1).replace(r#""count":1,"#, &format!(r#""count":1,"serials":["{s}"],"#))
    };
    let twin_a = resource(&api, &key, &with_serial("SN-0042"));
    let twin_b = resource(&api, &key, &with_serial("sn-0042"));
    // More available than exists.
    let r = report(
        &api,
        &key,
        "q",
        5,
        &[
            (&clean, 8, 0),
            (&sparse, 4, 4),
            (&declared, 8, 0),
            (&twin_a, 1, 0),
            (&twin_b, 3, 0),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A sequence going backwards and a resource of someone else: refused,
    // and noted against the provider.
    assert_eq!(report(&api, &key, "q", 4, &[(&clean, 8, 0)]).status, 409);
    let (other, _) = provider(&api, "other", "11");
    let theirs = resource(&api, &other, &a800_pool(2));
    assert_eq!(report(&api, &key, "q", 6, &[(&theirs, 2, 0)]).status, 403);

    let q = api.get("/v1/quality").unwrap();
    assert_eq!(q.status, 200, "{}", q.text);
    let mine = q.body["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == owner.to_string())
        .unwrap();
    let found = |id: &Identifier| -> Vec<String> {
        mine["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] == id.to_string())
            .map(|f| f["reason"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(found(&clean), Vec::<String>::new(), "{}", q.text);
    assert_eq!(found(&sparse), ["sparse_as_dense"]);
    assert_eq!(found(&declared), ["declared_total_off"]);
    assert_eq!(found(&twin_a), ["duplicate_serial"]);
    let mut b = found(&twin_b);
    b.sort();
    assert_eq!(b, ["available_over_total", "duplicate_serial"]);
    let sparse_finding = mine["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == sparse.to_string())
        .unwrap();
    assert_eq!(sparse_finding["pointer"], "/devices/0/peak_tflops/fp16");
    let events: Vec<&str> = mine["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["sequence_backwards", "not_owner"]);
    assert_eq!(mine["resources"], 5);
    // 5 findings on 4 of 5 resources: 1 − 5 / 15.
    let score = mine["score"].as_f64().unwrap();
    assert!((score - (1.0 - 5.0 / 15.0)).abs() < 1e-9, "{score}");
    // The other provider's never-reported pool is `unknown`.
    assert_eq!(q.body["counts"]["unknown"], 1, "{}", q.text);

    let m = api.get("/metrics").unwrap().text;
    for line in [
        "cpid_quality_findings{reason=\"sparse_as_dense\"} 1",
        "cpid_quality_findings{reason=\"duplicate_serial\"} 2",
        "cpid_quality_findings{reason=\"unit_slip\"} 0",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    // The totals never count an impossible figure: twin_b has 1 card.
    let s = situation(&api, "?group_by=region");
    assert_eq!(
        unit_row(&s, "31")["units_available"]["fresh"],
        8 + 4 + 8 + 1 + 1
    );
    assert_error(
        &api.get("/v1/quality?provider=x").unwrap(),
        400,
        "invalid_query",
    );
}

#[test]
fn history_keeps_a_point_a_minute_and_flags_a_region_moving_beyond_its_variation() {
    // Start on a minute boundary so each advance lands in the next minute.
    let now = cpid::clock::system_now();
    let clock = Clock::manual(now - now % 60 + 60);
    let node = TestNode::start_with_clock(clock.clone(), |c| {
        c.registration.policy = cpid::config::Policy::Open;
        // Requests are signed by the wall clock; the node's runs 22 minutes on.
        c.registration.signature_window_secs = 3600;
    });
    let api = node.api();
    let (key, _) = provider(&api, "gamma", "51");
    let sichuan = a800_pool(100).replace(r#""region":"31""#, r#""region":"51""#);
    let pool = resource(&api, &key, &sichuan);
    let send = |seq: u64, available: i64| {
        let body = json!({"agent": "hall", "seq": seq, "interval_secs": 60, "resources": [
            {"id": pool.to_string(), "units_available": available,
             "units_in_use": 100 - available, "health": "ok"}]});
        let r = api
            .signed("POST", "/v1/reports", Some(&body), &key)
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    };
    let history = |query: &str| {
        let r = api.get(&format!("/v1/situation/history{query}")).unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        r.body
    };
    // Twenty minutes of normal variation, 50 ± 2 available. The report is
    // sent before the minute turns, so whichever reads first (this test
    // or the node's upkeep) records the same point.
    for i in 0..20u64 {
        send(i + 1, 48 + (i % 5) as i64);
        clock.advance(60);
        history("");
    }
    let h = history("?minutes=1000&region=51");
    assert_eq!(h["step_secs"], 60);
    let points = h["points"].as_array().unwrap();
    assert_eq!(
        points.len(),
        21,
        "one point a minute, the first before any report"
    );
    let last = &points[20];
    assert_eq!(last["units_available"], 48 + 19 % 5, "{h}");
    assert_eq!(last["units_in_use"], 100 - (48 + 19 % 5));
    assert_eq!(last["regions"]["51"]["units_total"], 100);
    assert_eq!(
        points[20]["at"].as_u64().unwrap() - points[19]["at"].as_u64().unwrap(),
        60
    );
    assert!(h["anomalies"].as_array().unwrap().is_empty(), "{h}");
    assert_eq!(history("?minutes=5")["points"].as_array().unwrap().len(), 5);

    // A collapse of the region's available capacity is flagged.
    send(21, 5);
    clock.advance(60);
    let h = history("?minutes=1000");
    let anomalies = h["anomalies"].as_array().unwrap();
    assert_eq!(anomalies.len(), 1, "{h}");
    assert_eq!(anomalies[0]["region"], "51");
    assert_eq!(anomalies[0]["reason"], "available_drop");
    assert_eq!(anomalies[0]["units_available"], 5);
    // Another region's history has neither the points' figures nor the flag.
    let other = history("?minutes=1000&region=11");
    assert_eq!(other["points"][0]["units_total"], 0);
    assert!(other["anomalies"].as_array().unwrap().is_empty());

    let bad = api.get("/v1/situation/history?minutes=ten").unwrap();
    assert_error(&bad, 400, "invalid_query");
    let bad = api.get("/v1/situation/history?region=Shanghai").unwrap();
    assert_error(&bad, 400, "invalid_query");
}

/// `promtool check metrics` (Debian `prometheus`) finds nothing to say
/// about an exposition: valid text format, HELP and TYPE for every family,
/// units and suffixes as Prometheus names them.
fn promtool_accepts(exposition: &str) {
    use std::io::Write;
    if !require_tool("promtool", "prometheus") {
        return;
    }
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
