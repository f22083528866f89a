//! The national roll-up on the demo federation (national → Shanghai →
//! industry, real servers on loopback): every node's own totals arrive at
//! the national node under their own node's signature, the national totals
//! are exactly the sum of what the nodes report, a child whose summary does
//! not verify is not used and says so, and a silent child's figures age.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cpid::api::client::ApiClient;
use cpid::capacity::summary::SignedSummary;
use cpid::ident::delegation::Server;
use cpid::ident::identifier::{Identifier, Prefix};
use cpid::ident::keys::NodeKey;
use cpid::ident::record::RecordStatus;
use cpid::testkit::federation::{Federation, Options, delegate};

use crate::common::free_addr;
use serde_json::{Value, json};

pub fn pool(region: &str, cards: u64) -> String {
    format!(
        r#"{{"schema":"cpid.resource/1","class":"IC","region":"{region}","unit":"card","units_total":{cards},"devices":[{{"model":"H20","count":{cards},"peak_tflops":{{"fp32":44,"tf32":74,"bf16":148,"fp16":148,"fp8":296,"int8":296}}}}],"price_per_unit_hour":{{"amount":9,"currency":"CNY"}}}}"#
    )
}

/// A provider (approved where the node reviews) with one pool, reported.
pub fn provider_with_pool(api: &ApiClient, admin: &NodeKey, region: &str, cards: u64) -> Reporter {
    let key = NodeKey::generate().unwrap();
    let body = json!({
        "name": format!("pool {region}"), "organisation": format!("ORG-{region}"),
        "contact": "noc@p.example", "region": region, "public_key": key.public().to_public_pem(),
    });
    let r = api
        .signed("POST", "/v1/providers", Some(&body), &key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let pv = Identifier::parse(r.body["identifier"].as_str().unwrap()).unwrap();
    if r.body["status"] == RecordStatus::Pending.as_str() {
        api.approve(&pv, admin).unwrap();
    }
    let body =
        json!({"class": "IC", "values": [{"type": "CP.RESOURCE", "data": pool(region, cards)}]});
    let r = api
        .signed("POST", "/v1/identifiers", Some(&body), &key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["identifier"].as_str().unwrap().to_string();
    let mut reporter = Reporter { key, id, seq: 0 };
    reporter.report(api, cards / 2);
    reporter
}

pub struct Reporter {
    pub key: NodeKey,
    pub id: String,
    pub seq: u64,
}

impl Reporter {
    pub fn report(&mut self, api: &ApiClient, available: u64) {
        self.seq += 1;
        let body = json!({"agent": "t", "seq": self.seq, "interval_secs": 60, "resources": [
            {"id": self.id, "units_available": available, "units_in_use": 0, "health": "ok"}]});
        let r = api
            .signed("POST", "/v1/reports", Some(&body), &self.key)
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

fn get(api: &ApiClient, path: &str) -> Value {
    let r = api.get(path).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    r.body
}

/// Every figure of the `units` and `peaks` rows of some situations, summed
/// per row key: what a correct roll-up of them must show.
fn sums(situations: &[&Value]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for s in situations {
        for (table, keys, figures) in [
            (
                "units",
                &["region", "class"][..],
                &[
                    "resources",
                    "units_total",
                    "units_available",
                    "units_in_use",
                ][..],
            ),
            (
                "peaks",
                &["region", "class", "model", "precision"][..],
                &["devices"][..],
            ),
        ] {
            for row in s[table].as_array().unwrap() {
                let key: Vec<&str> = keys.iter().map(|k| row[*k].as_str().unwrap()).collect();
                for f in figures {
                    for fr in ["fresh", "stale", "unknown"] {
                        let v = row[*f][fr].as_i64().unwrap();
                        *out.entry(format!("{table}/{}/{f}/{fr}", key.join("/")))
                            .or_insert(0) += v;
                    }
                }
            }
        }
    }
    out.retain(|_, v| *v != 0);
    out
}

pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn child<'a>(s: &'a Value, prefix: &str) -> Option<&'a Value> {
    s["children"]
        .as_array()?
        .iter()
        .find(|c| c["prefix"] == prefix)
}

#[test]
fn the_national_node_sees_every_node_once_and_only_what_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The delegations name the children's API, so their ports are chosen
    // before they start.
    let opts = Options::loopback(dir.path()).unwrap();
    let fed = rt.block_on(Federation::start(&opts)).unwrap();
    rt.block_on(fed.sample_records()).unwrap();
    let national = ApiClient::new(&fed.national.http_url());
    let shanghai = ApiClient::new(&fed.shanghai.http_url());
    let industry = ApiClient::new(&fed.industry.http_url());

    // Each node's own resources, in three provinces.
    provider_with_pool(&national, &fed.national.admin_key().unwrap(), "11", 100);
    provider_with_pool(&shanghai, &fed.shanghai.admin_key().unwrap(), "31", 200);
    let mut at_industry =
        provider_with_pool(&industry, &fed.industry.admin_key().unwrap(), "44", 300);

    // The delegations name each child's API.
    let delegations = get(&national, "/v1/delegations");
    assert_eq!(
        delegations["delegations"][0]["delegation"]["api"],
        fed.shanghai.http_url().as_str()
    );

    // The national totals become exactly the sum of the nodes' own.
    let own = |api: &ApiClient| get(api, "/v1/situation?scope=own");
    let rolled_up = poll("the national node to hold every node's figures", || {
        let expected = sums(&[&own(&national), &own(&shanghai), &own(&industry)]);
        let s = get(&national, "/v1/situation");
        (sums(&[&s]) == expected).then_some(s)
    });
    assert_eq!(rolled_up["scope"], "federation");
    assert_eq!(
        rolled_up["coverage"]["regions_fresh"], 3,
        "{}",
        rolled_up["coverage"]
    );
    assert_eq!(own(&national)["coverage"]["regions_fresh"], 1);
    for prefix in ["86.31", "86.31.1005"] {
        let c = child(&rolled_up, prefix).unwrap_or_else(|| panic!("{prefix}: {rolled_up}"));
        assert_eq!(c["verified"], true, "{c}");
        assert_eq!(c["freshness"], "fresh", "{c}");
        assert!(c["age_secs"].as_u64().unwrap() < 30, "{c}");
    }
    // Shanghai's view holds itself and the industry node, not the nation.
    let at_shanghai = get(&shanghai, "/v1/situation?group_by=region");
    assert!(
        at_shanghai["units"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["region"] != "11")
    );

    // The summary is signed by Shanghai's node key, and the industry
    // node's inside it by the industry node's: a reader checks both with
    // nothing but the key from the national delegation.
    let served: SignedSummary =
        serde_json::from_str(&shanghai.get("/v1/situation/summary").unwrap().text).unwrap();
    let now = cpid::clock::Clock::system().now();
    let figures = served
        .verify(
            &fed.shanghai.node.registry.key().public(),
            "86.31",
            None,
            now,
        )
        .unwrap();
    let prefixes: Vec<_> = figures.iter().map(|f| f.prefix.as_str()).collect();
    assert_eq!(prefixes, ["86.31", "86.31.1005"]);
    assert!(figures.iter().all(|f| f.rows.is_some()));

    // A change at the industry node reaches the national node.
    let before = Instant::now();
    at_industry.report(&industry, 7);
    poll(
        "the industry node's new figure at the national node",
        || {
            let s = get(&national, "/v1/situation?region=44&group_by=region");
            (s["units"][0]["units_available"]["fresh"] == 7).then_some(())
        },
    );
    eprintln!(
        "industry -> national in {:?} (pull interval 1 s)",
        before.elapsed()
    );

    // A child whose summary does not verify: the delegation of 86.44
    // names a key nobody holds and Shanghai's API, whose summary is
    // Shanghai's. Refused, shown, counted, and nothing counted twice.
    let stranger = NodeKey::generate().unwrap();
    let (url, admin) = (fed.national.http_url(), fed.national.admin_key().unwrap());
    // An API that is not scheme, host and port is refused, naming it, and
    // nothing is delegated.
    let bad = json!({"prefix": "86.44", "public_key": stranger.public().to_public_pem(),
        "servers": [{"name": "ns1.44.86.cpid.internal", "addresses": ["127.0.0.1:5399"]}],
        "api": "http://127.0.0.1:8054/v1/situation"});
    let r = national
        .signed("POST", "/v1/admin/delegations", Some(&bad), &admin)
        .unwrap();
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"], "invalid_value", "{}", r.text);
    assert!(
        r.body["reason"].as_str().unwrap().contains("api"),
        "{}",
        r.text
    );
    assert_eq!(
        get(&national, "/v1/delegations")["delegations"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    delegate(
        &url,
        &admin,
        &Prefix::parse("86.44").unwrap(),
        &stranger.public(),
        &[Server {
            name: "ns1.44.86.cpid.internal".into(),
            addresses: vec![free_addr()],
        }],
        Some(fed.shanghai.http_url()),
        30,
    )
    .unwrap();
    let s = poll("86.44 to be pulled and refused", || {
        let s = get(&national, "/v1/situation");
        // Listed as "not pulled yet" until its first pull comes back.
        child(&s, "86.44").filter(|c| c["error"].is_string() && c["error"] != "not pulled yet")?;
        Some(s)
    });
    let bad = child(&s, "86.44").unwrap();
    assert_eq!(bad["verified"], false, "{bad}");
    assert!(
        bad["error"].as_str().unwrap().contains("signed by key"),
        "{bad}"
    );
    let expected = sums(&[&own(&national), &own(&shanghai), &own(&industry)]);
    assert_eq!(sums(&[&get(&national, "/v1/situation")]), expected);
    let metrics = national.get("/metrics").unwrap().text;
    assert!(
        metrics.contains(r#"cpid_rollup_pulls_total{prefix="86.44",result="verification_failed"}"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"cpid_rollup_summary_verified{prefix="86.44"} 0"#));
    assert!(metrics.contains(r#"cpid_rollup_summary_verified{prefix="86.31"} 1"#));
    // Revoked, it is gone.
    national
        .revoke(&Prefix::parse("86.44").unwrap(), &admin)
        .unwrap();
    poll("86.44 to leave the roll-up", || {
        child(&get(&national, "/v1/situation"), "86.44")
            .is_none()
            .then_some(())
    });

    // Shanghai falls silent: its figures (and the industry node's, which
    // came through it) age to unknown at the national node, Beijing stays.
    let Federation {
        national: n,
        shanghai: sh,
        industry: ind,
        gateway,
        ..
    } = fed;
    rt.block_on(sh.running.shutdown()).unwrap();
    let s = poll("Shanghai's figures to age to unknown", || {
        let s = get(&national, "/v1/situation");
        let c = child(&s, "86.31")?;
        (c["freshness"] == "unknown" && c["verified"] == false).then_some(s)
    });
    assert!(child(&s, "86.31").unwrap()["error"].is_string());
    assert_eq!(s["coverage"]["regions_fresh"], 1, "{}", s["coverage"]);
    let region = |code: &str| {
        s["coverage"]["provinces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == code)
            .unwrap()
            .clone()
    };
    assert_eq!(region("11")["state"], "fresh");
    assert_eq!(region("44")["state"], "silent");
    assert_eq!(region("44")["resources"]["unknown"], 1);
    rt.block_on(async {
        gateway.shutdown().await.unwrap();
        ind.running.shutdown().await.unwrap();
        n.running.shutdown().await.unwrap();
    });
}
