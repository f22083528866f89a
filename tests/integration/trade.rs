//! Transactions against a running node: buyers register like providers,
//! every step is signed by the party whose step it is, illegal steps and
//! strangers are refused, accepted units come off the calendar so nothing
//! is double-booked, proposals expire, transactions stay private, and bad
//! proposals change nothing.

use cpid::api::client::ApiClient;
use cpid::clock::Clock;
use cpid::ident::identifier::Identifier;
use cpid::ident::keys::NodeKey;
use cpid::trade::{ProposeRequest, StepKind, StepRequest};
use serde_json::{Value, json};

use crate::capacity::{provider, resource};
use crate::common::*;

pub fn buyer(api: &ApiClient, name: &str) -> (NodeKey, Identifier) {
    let key = NodeKey::generate().unwrap();
    let body = json!({
        "name": name, "organisation": format!("BUY-{name}"), "contact": "buyer@b.example",
        "region": "31", "public_key": key.public().to_public_pem(),
    });
    let r = api.signed("POST", "/v1/users", Some(&body), &key).unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let id = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    assert_eq!(id.class().code(), "US");
    (key, id)
}

pub fn proposal(resource: &Identifier, units: u64, start: u64, end: u64) -> ProposeRequest {
    ProposeRequest {
        resource: resource.to_string(),
        units: units.into(),
        start: start.into(),
        end: end.into(),
        max_price_per_unit_hour: None,
    }
}

fn now() -> u64 {
    cpid::clock::system_now()
}

fn step(
    api: &ApiClient,
    id: &Identifier,
    step: &str,
    key: &NodeKey,
) -> cpid::api::client::ApiResponse {
    api.signed(
        "POST",
        &format!("/v1/transactions/{id}/{step}"),
        Some(&json!({})),
        key,
    )
    .unwrap()
}

#[test]
fn a_transaction_walks_from_proposal_to_settlement_each_step_by_its_party() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (pkey, pid) = provider(&api, "pool", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let (bkey, bid) = buyer(&api, "lab");
    let (skey, _) = buyer(&api, "stranger");
    let t0 = now();

    let tx = api
        .propose(&proposal(&pool, 4, t0, t0 + 7200), &bkey)
        .unwrap();
    let id = tx.record.record().identifier.clone();
    assert_eq!(id.class().code(), "TX");
    assert_eq!(tx.doc.state.as_str(), "proposed");
    assert_eq!(tx.doc.buyer, bid.to_string());
    assert_eq!(tx.doc.provider, pid.to_string());
    assert_eq!((tx.doc.units, tx.doc.unit.as_str()), (4, "card"));
    assert_eq!(tx.doc.price.total, 12.5 * 4.0 * 2.0);
    // The version embeds the buyer's signed request, verbatim.
    let kept = &tx.json["step"]["request"];
    assert_eq!(kept["method"], "POST");
    assert!(kept["signature"].as_str().unwrap().starts_with("sig1=:"));
    assert!(kept["body"].as_str().unwrap().contains(&pool.to_string()));
    tx.record
        .verify(&node.node.registry.key().public())
        .unwrap();

    // The provider's inbox shows it; the buyer's list too; a stranger's not.
    let inbox = api.tx_list("state=proposed", &pkey).unwrap();
    assert_eq!(inbox["transactions"][0]["identifier"], id.to_string());
    assert_eq!(
        api.tx_list("", &bkey).unwrap()["transactions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(
        api.tx_list("", &skey).unwrap()["transactions"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Not the buyer's step; not a stranger's; the admin takes no steps.
    let r = step(&api, &id, "accept", &bkey);
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("not_party")),
        "{}",
        r.text
    );
    let r = step(&api, &id, "cancel", &skey);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = step(&api, &id, "accept", &node.admin_key());
    assert_eq!(r.status, 403, "{}", r.text);
    // Out of order: 409 naming the state.
    let r = step(&api, &id, "activate", &pkey);
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (409, Some("illegal_step")),
        "{}",
        r.text
    );
    assert!(
        r.body["reason"].as_str().unwrap().contains("is proposed"),
        "{}",
        r.text
    );

    let accepted = api
        .tx_step(&id, StepKind::Accept, &StepRequest::default(), &pkey)
        .unwrap();
    assert_eq!(accepted.doc.state.as_str(), "accepted");
    assert_eq!(accepted.record.record().version, 2);
    assert_eq!(node.node.trades.booked(&pool, t0, t0 + 7200), 4);
    let r = step(&api, &id, "cancel", &bkey);
    assert_eq!(r.status, 409, "cancel only before acceptance: {}", r.text);
    assert!(
        r.body["reason"].as_str().unwrap().contains("is accepted"),
        "{}",
        r.text
    );
    api.tx_step(&id, StepKind::Activate, &StepRequest::default(), &pkey)
        .unwrap();
    let settled = api
        .tx_step(
            &id,
            StepKind::Settle,
            &StepRequest {
                amount: Some(json!(80.0)),
                reason: None,
            },
            &pkey,
        )
        .unwrap();
    assert_eq!(settled.doc.state.as_str(), "settled");
    assert_eq!(settled.doc.settled_amount, Some(80.0));
    assert_eq!(
        node.node.trades.booked(&pool, now() + 5, t0 + 7200),
        0,
        "settling frees the rest of the window"
    );

    // Parties and the admin read it; a stranger cannot tell it exists.
    assert_eq!(
        api.tx_get(&id, &bkey).unwrap().doc.state.as_str(),
        "settled"
    );
    assert_eq!(
        api.tx_get(&id, &node.admin_key())
            .unwrap()
            .record
            .record()
            .version,
        4
    );
    let r = api
        .signed("GET", &format!("/v1/transactions/{id}"), None, &skey)
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
    let r = api.get(&format!("/v1/transactions/{id}")).unwrap();
    assert_eq!(r.status, 401, "unsigned reads are refused: {}", r.text);
    // Not public: no identifier read, no Handle read, no DNS answer.
    assert_eq!(
        api.get(&format!("/v1/identifiers/{id}")).unwrap().status,
        404
    );
    assert_eq!(api.get(&format!("/api/handles/{id}")).unwrap().status, 404);
    let q = raw_query(7, &node.dns_name(&id), 16, None);
    let answer = udp(node.addr(), &q);
    assert_eq!(
        answer.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );
    // A provider cannot rewrite it through the resource API.
    let r = api
        .signed("DELETE", &format!("/v1/identifiers/{id}"), None, &pkey)
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text);
}

#[test]
fn acceptances_never_book_more_units_than_the_resource_has() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (pkey, _) = provider(&api, "pool", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let (bkey, _) = buyer(&api, "lab");
    let t0 = now() + 3600;
    let a = api
        .propose(&proposal(&pool, 6, t0, t0 + 3600), &bkey)
        .unwrap();
    let b = api
        .propose(&proposal(&pool, 4, t0 + 1800, t0 + 5400), &bkey)
        .unwrap();
    let c = api
        .propose(&proposal(&pool, 8, t0 + 3600, t0 + 7200), &bkey)
        .unwrap();
    let ok = |tx: &cpid::api::client::TxReply| {
        api.tx_step(
            &tx.record.record().identifier,
            StepKind::Accept,
            &StepRequest::default(),
            &pkey,
        )
    };
    ok(&a).unwrap();
    // b overlaps a for [t0+1800, t0+3600): 6 + 4 > 8 there.
    let b_id = b.record.record().identifier.clone();
    let r = step(&api, &b_id, "accept", &pkey);
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (409, Some("capacity_conflict")),
        "{}",
        r.text
    );
    let reason = r.body["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("[{}, {})", t0 + 1800, t0 + 3600)) && reason.contains("6 of 8"),
        "the conflicting window is named: {reason}"
    );
    assert_eq!(
        api.tx_get(&b_id, &bkey).unwrap().doc.state.as_str(),
        "proposed",
        "nothing changed"
    );
    // c starts where a ends: windows that do not overlap share units.
    ok(&c).unwrap();
    assert_eq!(node.node.trades.booked(&pool, t0, t0 + 7200), 8);
    // The calendar survives a restart.
    let node = node.restart();
    assert_eq!(node.node.trades.booked(&pool, t0, t0 + 3600), 6);
    let r = step(&node.api(), &b_id, "accept", &pkey);
    assert_eq!(r.status, 409, "{}", r.text);
}

#[test]
fn a_proposal_not_accepted_in_time_expires_on_its_own() {
    let clock = Clock::manual(now());
    let node = TestNode::start_with_clock(clock.clone(), |c| {
        c.registration.policy = cpid::config::Policy::Open;
        c.trade.proposal_ttl_secs = 60;
    });
    let api = node.api();
    let (pkey, _) = provider(&api, "pool", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let (bkey, _) = buyer(&api, "lab");
    let t0 = clock.now() + 600;
    let tx = api
        .propose(&proposal(&pool, 2, t0, t0 + 600), &bkey)
        .unwrap();
    let id = tx.record.record().identifier.clone();
    assert_eq!(tx.doc.accept_by, clock.now() + 60);
    clock.advance(61);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let state = node.node.trades.get(&id).unwrap().unwrap().1.state;
        if state.as_str() == "expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {state:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (signed, _) = node.node.trades.get(&id).unwrap().unwrap();
    let (_, step_doc) = cpid::trade::parse(&signed).unwrap();
    assert_eq!(step_doc.unwrap().by, "node");
    let r = step(&api, &id, "accept", &pkey);
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.body["reason"].as_str().unwrap().contains("is expired"),
        "{}",
        r.text
    );
    assert_eq!(node.node.trades.booked(&pool, t0, t0 + 600), 0);
}

#[test]
fn bad_proposals_get_a_reason_and_change_nothing() {
    let node = TestNode::open_policy();
    let api = node.api();
    let (pkey, _) = provider(&api, "pool", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let (bkey, _) = buyer(&api, "lab");
    let t0 = now() + 600;
    let records = node.records();
    let p = pool.to_string();
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"resource": p, "units": 0, "start": t0, "end": t0 + 60}),
            422,
            "/units",
        ),
        (
            json!({"resource": p, "units": -2, "start": t0, "end": t0 + 60}),
            422,
            "/units",
        ),
        (
            json!({"resource": p, "units": 9, "start": t0, "end": t0 + 60}),
            422,
            "/units",
        ),
        (
            json!({"resource": p, "units": 1.5, "start": t0, "end": t0 + 60}),
            422,
            "/units",
        ),
        (
            json!({"resource": p, "units": 1, "start": t0, "end": t0 - 60}),
            422,
            "/end",
        ),
        (
            json!({"resource": p, "units": 1, "start": 1000, "end": 2000}),
            422,
            "/end",
        ),
        (
            json!({"resource": p, "units": 1, "start": t0, "end": t0 + 60,
                "max_price_per_unit_hour": "cheap"}),
            422,
            "/max_price_per_unit_hour",
        ),
        (
            json!({"resource": p, "units": 1, "start": t0, "end": t0 + 60,
                "max_price_per_unit_hour": 10}),
            422,
            "/max_price_per_unit_hour",
        ),
        (
            json!({"resource": "86/IC-999999-9", "units": 1, "start": t0, "end": t0 + 60}),
            404,
            "/resource",
        ),
        (json!({"resource": p, "units": 1, "start": t0}), 422, ""),
    ];
    for (body, status, pointer) in cases {
        let r = api
            .signed("POST", "/v1/transactions", Some(&body), &bkey)
            .unwrap();
        assert_eq!(r.status, status, "{body}: {}", r.text);
        if !pointer.is_empty() {
            assert_eq!(r.body["pointer"], pointer, "{body}: {}", r.text);
        }
        assert!(r.body["reason"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // A provider is not a buyer.
    let body = json!({"resource": p, "units": 1, "start": t0, "end": t0 + 60});
    let r = api
        .signed("POST", "/v1/transactions", Some(&body), &pkey)
        .unwrap();
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("wrong_role")),
        "{}",
        r.text
    );
    assert_eq!(node.records(), records, "nothing stored");
    let r = step(
        &api,
        &Identifier::parse("86/TX-000999-3").unwrap_or_else(|_| pool.clone()),
        "accept",
        &pkey,
    );
    assert!(r.status == 404 || r.status == 400, "{}", r.text);
}

/// One acknowledged acceptance: the transaction and what it booked.
type Booked = (Identifier, u64, u64, u64);

#[allow(clippy::too_many_arguments)]
/// Proposes and accepts from `threads` clients at once until `stop` says
/// so or the node goes away; every acceptance answered 200 is recorded.
fn hammer(
    http: &str,
    pool: &Identifier,
    bkey: &NodeKey,
    pkey: &NodeKey,
    t0: u64,
    threads: usize,
    acked: &std::sync::Mutex<Vec<Booked>>,
    refused: &std::sync::atomic::AtomicUsize,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let api = ApiClient::new(http);
                for n in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    // Windows over a few overlapping hours, 1 to 4 units.
                    let seed = (t as u64)
                        .wrapping_mul(7919)
                        .wrapping_add(n.wrapping_mul(104_729));
                    let start = t0 + (seed % 4) * 1800;
                    let end = start + 1800 * (1 + seed % 3);
                    let units = 1 + seed % 4;
                    let Ok(tx) = api.propose(&proposal(pool, units, start, end), bkey) else {
                        return;
                    };
                    let id = tx.record.record().identifier.clone();
                    match api.tx_step(&id, StepKind::Accept, &StepRequest::default(), pkey) {
                        Ok(done) => {
                            assert_eq!(done.doc.state.as_str(), "accepted");
                            acked.lock().unwrap().push((id, start, end, units));
                        }
                        Err(cpid::api::client::ClientError::Api(f))
                            if f.code == "capacity_conflict" =>
                        {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
}

/// The most units booked at any instant by `bookings`.
fn peak(bookings: &[(u64, u64, u64)]) -> u64 {
    let mut edges: Vec<(u64, i64)> = Vec::new();
    for (s, e, u) in bookings {
        edges.push((*s, *u as i64));
        edges.push((*e, -(*u as i64)));
    }
    edges.sort();
    let (mut level, mut most) = (0i64, 0i64);
    for (_, d) in edges {
        level += d;
        most = most.max(level);
    }
    most as u64
}

#[test]
fn concurrent_acceptances_with_a_sigkill_never_over_book_nor_lose_an_acceptance() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let (mut child, http) = serve_child(dir.path(), &["--policy", "open"]);
    let api = ApiClient::new(&http);
    let (pkey, _) = provider(&api, "pool", "31");
    let pool = resource(&api, &pkey, &a800_pool(8));
    let (bkey, _) = buyer(&api, "lab");
    let t0 = now() + 3600;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Phase 1: 100 clients until enough steps went through, then SIGKILL.
    let killer = {
        let (acked, refused, stop) = (acked.clone(), refused.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
            while acked.lock().unwrap().len() + refused.load(Ordering::SeqCst) < 150
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            child.kill().unwrap();
            child.wait().unwrap();
            stop.store(true, Ordering::SeqCst);
        })
    };
    hammer(&http, &pool, &bkey, &pkey, t0, 100, &acked, &refused, &stop);
    killer.join().unwrap();
    let before_kill = acked.lock().unwrap().len();
    assert!(
        refused.load(Ordering::SeqCst) > 0,
        "the calendar filled up and refused some"
    );

    // Phase 2: restarted on the same store, 100 more clients for a while.
    let node = TestNode::start_with(|c| c.node.data_dir = dir.path().to_path_buf());
    let http2 = format!("http://{}", node.http_addr());
    stop.store(false, Ordering::SeqCst);
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs(3));
            stop.store(true, Ordering::SeqCst);
        })
    };
    hammer(
        &http2, &pool, &bkey, &pkey, t0, 100, &acked, &refused, &stop,
    );
    stopper.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= before_kill);

    // Every acknowledged acceptance is stored as accepted; the accepted
    // transactions never hold more than 8 units at once; the calendar the
    // node keeps is exactly those bookings.
    let mut accepted = Vec::new();
    for r in node.node.registry.store().records().unwrap() {
        if let Some((doc, _)) = cpid::trade::parse(&r) {
            r.verify(&node.node.registry.key().public()).unwrap();
            if doc.state.as_str() == "accepted" {
                accepted.push((r.record().identifier.clone(), doc.start, doc.end, doc.units));
            }
        }
    }
    for a in &acked {
        assert!(accepted.contains(a), "acknowledged acceptance {a:?} lost");
    }
    let windows: Vec<(u64, u64, u64)> = accepted.iter().map(|(_, s, e, u)| (*s, *e, *u)).collect();
    assert!(peak(&windows) <= 8, "over-booked: {}", peak(&windows));
    let mut calendar: Vec<(u64, u64, u64)> = node
        .node
        .trades
        .calendar(&pool)
        .bookings
        .iter()
        .map(|b| (b.start, b.end, b.units))
        .collect();
    let mut expected = windows.clone();
    calendar.sort();
    expected.sort();
    assert_eq!(
        calendar, expected,
        "calendar and accepted transactions agree"
    );
}
