//! A whole federation on loopback (national, Shanghai, industry node and a
//! gateway, each a real server on ephemeral ports): three-level
//! resolution, referrals, forged records, revocation, serve-stale, L2
//! across restarts, single-flight and the L1 memory bound.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cpid::dns::wire::rtype;
use cpid::ident::identifier::{Apex, Identifier, Prefix};
use cpid::resolution::client::query;
use cpid::resolution::gateway::{Gateway, GatewayConfig};
use cpid::testkit::federation::{Federation, Options, Ports, start_member};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::common::free_addr;

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub(crate) struct Fed {
    fed: Option<Federation>,
    rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
    pub(crate) ids: Vec<Identifier>,
}

pub(crate) fn start(ttl: Option<u32>, gateway: fn(&mut GatewayConfig)) -> Fed {
    start_with_knot(ttl, gateway, None)
}

fn start_with_knot(
    ttl: Option<u32>,
    gateway: fn(&mut GatewayConfig),
    knot: Option<std::path::PathBuf>,
) -> Fed {
    start_with(ttl, gateway, |_| {}, knot)
}

pub(crate) fn start_with(
    ttl: Option<u32>,
    gateway: fn(&mut GatewayConfig),
    node: fn(&mut cpid::config::Config),
    knot: Option<std::path::PathBuf>,
) -> Fed {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opts = Options {
        dir: dir.path().to_path_buf(),
        ports: Ports {
            national: (any(), any()),
            shanghai: (free_addr(), any()),
            industry: (free_addr(), any()),
            gateway: (any(), any()),
        },
        ttl,
        gateway,
        node,
        knot,
    };
    let fed = rt.block_on(Federation::start(&opts)).unwrap();
    let ids = rt
        .block_on(fed.sample_records())
        .unwrap()
        .iter()
        .map(|s| Identifier::parse(s).unwrap())
        .collect();
    Fed {
        fed: Some(fed),
        rt,
        _dir: dir,
        ids,
    }
}

impl Fed {
    pub(crate) fn f(&self) -> &Federation {
        self.fed.as_ref().unwrap()
    }

    fn gw(&self) -> SocketAddr {
        self.f().gateway.dns_addr()
    }

    fn gateway(&self) -> &Gateway {
        &self.f().gateway.gateway
    }

    pub(crate) fn name(&self, id: &Identifier) -> String {
        id.to_dns_name(&Apex::parse("cpid.internal").unwrap())
    }

    /// A verifying resolver that knows only the national node and its key.
    fn root_resolver(&self) -> cpid::resolution::resolver::Resolver {
        cpid::resolution::resolver::Resolver::new(
            cpid::ident::delegation::TrustedZone::root(
                Prefix::parse("86").unwrap(),
                self.f().national.node.registry.key().public(),
                vec![self.f().national.running.dns_addr()],
            ),
            Apex::parse("cpid.internal").unwrap(),
            Duration::from_secs(2),
            3600,
        )
    }

    fn ask(&self, id: &Identifier, qtype: u16) -> Message {
        query(self.gw(), &self.name(id), qtype, false).unwrap()
    }
}

impl Drop for Fed {
    fn drop(&mut self) {
        if let Some(f) = self.fed.take() {
            let _ = self.rt.block_on(f.shutdown());
        }
    }
}

fn txt(m: &Message) -> String {
    m.answers
        .iter()
        .map(|r| r.data.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_levels_resolve_through_the_gateway_and_parents_only_refer() {
    let fed = start(None, |_| {});
    let ic = &fed.ids[1];
    assert_eq!(ic.prefix().as_str(), "86.31.1005");

    let m = fed.ask(ic, rtype::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.metadata.authoritative, "a gateway is not authoritative");
    assert!(m.metadata.recursion_available);
    assert!(txt(&m).contains(&format!("id={ic}")), "{}", txt(&m));
    let uri = fed.ask(ic, rtype::URI);
    assert_eq!(uri.answers.len(), 1);
    let rec = fed.ask(ic, rtype::CPREC);
    assert_eq!(rec.answers.len(), 1);
    // NODATA carries the industry zone's SOA (RFC 2308).
    let nodata = fed.ask(ic, rtype::AAAA);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(
        nodata.authorities[0].name.to_ascii(),
        "1005.31.86.cpid.internal."
    );
    // A name that does not exist is NXDOMAIN; one outside the federation REFUSED.
    let nx = query(
        fed.gw(),
        "zz-nothing.1005.31.86.cpid.internal",
        rtype::TXT,
        false,
    )
    .unwrap();
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    let out = query(fed.gw(), "example.org", rtype::A, false).unwrap();
    assert_eq!(out.metadata.response_code, ResponseCode::Refused);

    // The national node refers (NS + glue + the signed delegation record),
    // it never answers for Shanghai's names; Shanghai refers to industry.
    for (node, cut) in [
        (&fed.f().national, "31.86.cpid.internal."),
        (&fed.f().shanghai, "1005.31.86.cpid.internal."),
    ] {
        let r = query(node.running.dns_addr(), &fed.name(ic), rtype::TXT, false).unwrap();
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(!r.metadata.authoritative && r.answers.is_empty());
        let types: Vec<_> = r
            .authorities
            .iter()
            .map(|a| (a.name.to_ascii(), a.record_type()))
            .collect();
        assert!(
            types.contains(&(cut.to_string(), RecordType::NS)),
            "{types:?}"
        );
        assert!(
            types.contains(&(cut.to_string(), RecordType::Unknown(rtype::CPREC))),
            "{types:?}"
        );
        assert!(
            r.additionals
                .iter()
                .any(|a| a.record_type() == RecordType::A)
        );
    }
    // Over TCP through the gateway as well.
    let t = query(fed.gw(), &fed.name(ic), rtype::TXT, true).unwrap();
    assert_eq!(txt(&t), txt(&m));

    // HTTP reads through the gateway.
    let client =
        cpid::api::client::ApiClient::new(&format!("http://{}", fed.f().gateway.http_addr()));
    let h = client.get(&format!("/api/handles/{ic}")).unwrap();
    assert_eq!(h.status, 200, "{}", h.text);
    assert_eq!(h.body["responseCode"], 1);
    let n = client.get(&format!("/v1/identifiers/{ic}")).unwrap();
    assert_eq!(n.body["identifier"], ic.to_string());

    // The chain from the root key alone, as `cpid resolve --trust-anchor` walks it.
    let resolver = fed.root_resolver();
    let (outcome, path) = fed.rt.block_on(resolver.resolve_identifier(ic)).unwrap();
    assert!(matches!(
        outcome,
        cpid::resolution::resolver::Outcome::Record { .. }
    ));
    let prefixes: Vec<String> = path.iter().map(|z| z.prefix.to_string()).collect();
    assert_eq!(prefixes, ["86", "86.31", "86.31.1005"]);
}

#[test]
fn a_record_signed_outside_the_chain_is_never_served_or_cached() {
    let fed = start(None, |c| c.upstream.timeout_ms = 500);
    // Warm the delegations through another record.
    assert_eq!(
        fed.ask(&fed.ids[1], rtype::TXT).metadata.response_code,
        ResponseCode::NoError
    );
    let industry = fed.f().industry.running.dns_addr();
    let sc = fed.ids[2].clone();
    // An impostor takes over the industry node's address with its own key
    // and serves a record under the same identifier.
    let mut fed = fed;
    let f = fed.fed.take().unwrap();
    let Federation {
        industry: member,
        national,
        shanghai,
        gateway,
        ..
    } = f;
    fed.rt.block_on(member.running.shutdown()).unwrap();
    drop(member.node);
    let imp_dir = tempfile::tempdir().unwrap();
    let mut c = member.config.clone();
    c.node.data_dir = imp_dir.path().to_path_buf();
    c.federation = Default::default();
    c.dns.listen = industry;
    c.http.listen = any();
    let impostor = fed.rt.block_on(start_member(c)).unwrap();
    let forged = impostor
        .node
        .registry
        .issue(cpid::registry::NewRecord {
            prefix: None,
            class: sc.class(),
            owner: None,
            values: vec![],
            status: cpid::ident::record::RecordStatus::Active,
        })
        .unwrap();
    assert_eq!(
        forged.record().identifier,
        sc,
        "the impostor made the same identifier"
    );
    let gw = gateway.dns_addr();
    let before = gateway
        .gateway
        .stats
        .verification_failures
        .load(Ordering::Relaxed);
    for _ in 0..2 {
        let m = query(gw, &fed.name(&sc), rtype::TXT, false).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(m.answers.is_empty());
    }
    let after = gateway
        .gateway
        .stats
        .verification_failures
        .load(Ordering::Relaxed);
    assert_eq!(
        after - before,
        2,
        "each attempt is verified again: nothing was cached"
    );
    let http = cpid::api::client::ApiClient::new(&format!("http://{}", gateway.http_addr()))
        .get(&format!("/v1/identifiers/{sc}"))
        .unwrap();
    assert_eq!(http.status, 502);
    assert_eq!(http.body["error"], "verification_failed");
    // The gateway forwarded what it saw: a security event at the national
    // node, from the gateway's key, about the forged name.
    let admin = national.admin_key().unwrap();
    let node_api = cpid::api::client::ApiClient::new(&national.http_url());
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen = loop {
        let r = node_api
            .signed("GET", "/v1/events?kind=verification_failure", None, &admin)
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
        let count: u64 = r.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["source"].as_str().unwrap().starts_with("reporter ")
                    && e["subject"].as_str().unwrap() == fed.name(&sc)
            })
            .map(|e| e["count"].as_u64().unwrap())
            .sum();
        if count >= 3 || Instant::now() > deadline {
            break count;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(seen >= 3, "the gateway's failures reached the node: {seen}");
    // A reporter the node does not know is refused and nothing is recorded.
    let stranger = cpid::ident::keys::NodeKey::generate().unwrap();
    let r = node_api
        .signed(
            "POST",
            "/v1/events",
            Some(&serde_json::json!({"events": []})),
            &stranger,
        )
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text);
    fed.rt.block_on(async {
        gateway.shutdown().await.unwrap();
        impostor.running.shutdown().await.unwrap();
        shanghai.running.shutdown().await.unwrap();
        national.running.shutdown().await.unwrap();
    });
}

#[test]
fn a_revoked_delegation_stops_resolution_and_is_reported() {
    let fed = start(Some(1), |c| c.cache.max_ttl = 1);
    let ic = fed.ids[1].clone();
    assert_eq!(
        fed.ask(&ic, rtype::TXT).metadata.response_code,
        ResponseCode::NoError
    );
    let shanghai = &fed.f().shanghai;
    let client = cpid::api::client::ApiClient::new(&shanghai.http_url());
    let r = client
        .signed(
            "DELETE",
            "/v1/admin/delegations/86.31.1005",
            None,
            &shanghai.admin_key().unwrap(),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    // Revoking twice: nothing in force any more.
    let again = client
        .signed(
            "DELETE",
            "/v1/admin/delegations/86.31.1005",
            None,
            &shanghai.admin_key().unwrap(),
        )
        .unwrap();
    assert_eq!(again.status, 404);
    let list = client.get("/v1/delegations").unwrap();
    assert_eq!(list.body["delegations"][0]["status"], "revoked");
    until(
        "the gateway to stop resolving",
        Duration::from_secs(10),
        || fed.ask(&ic, rtype::TXT).metadata.response_code == ResponseCode::NXDomain,
    );
    // From the root key, the break is named: revoked, by whom.
    let resolver = fed.root_resolver();
    let (outcome, path) = fed.rt.block_on(resolver.resolve_identifier(&ic)).unwrap();
    assert!(matches!(
        outcome,
        cpid::resolution::resolver::Outcome::Negative { .. }
    ));
    let why = fed
        .rt
        .block_on(resolver.explain_missing(path.last().unwrap(), &ic))
        .expect("a reason");
    assert!(
        matches!(why, cpid::ident::delegation::TrustError::Revoked { .. }),
        "{why}"
    );
}

#[test]
fn a_compromised_node_key_is_revoked_at_once_by_the_parents_admin() {
    use cpid::api::body::RollRequest;
    use cpid::ident::keys::NodeKey;
    let fed = start(Some(1), |c| c.cache.max_ttl = 1);
    let ic = fed.ids[1].clone();
    assert_eq!(
        fed.ask(&ic, rtype::TXT).metadata.response_code,
        ResponseCode::NoError
    );
    let shanghai = &fed.f().shanghai;
    let client = cpid::api::client::ApiClient::new(&shanghai.http_url());
    let path = "/v1/delegations/86.31.1005/key";
    let new = NodeKey::generate().unwrap();
    let request = RollRequest {
        public_key: new.public().to_public_pem(),
        overlap_secs: Some(0),
    };
    let body = serde_json::to_value(&request).unwrap();
    // Neither the child's key nor the admin's: refused, nothing changes.
    let stranger = client
        .signed("POST", path, Some(&body), &NodeKey::generate().unwrap())
        .unwrap();
    assert_eq!(stranger.status, 401, "{}", stranger.text);
    assert_eq!(stranger.body["error"], "unknown_key");
    let nowhere = client
        .signed(
            "POST",
            "/v1/delegations/86.31.9/key",
            Some(&body),
            &shanghai.admin_key().unwrap(),
        )
        .unwrap();
    assert_eq!(nowhere.status, 404);
    let too_long = client
        .signed(
            "POST",
            path,
            Some(
                &serde_json::to_value(RollRequest {
                    overlap_secs: Some(40 * 86_400),
                    ..request.clone()
                })
                .unwrap(),
            ),
            &shanghai.admin_key().unwrap(),
        )
        .unwrap();
    assert_eq!(too_long.status, 422, "{}", too_long.text);
    let industry = Prefix::parse("86.31.1005").unwrap();
    assert_eq!(
        shanghai.node.registry.delegations_in_force(&industry).len(),
        1
    );
    // The industry node's key is lost: the parent's admin rolls it with no
    // overlap, and the old delegation is revoked in the same commit.
    let rolled = client
        .signed("POST", path, Some(&body), &shanghai.admin_key().unwrap())
        .unwrap();
    assert_eq!(rolled.status, 201, "{}", rolled.text);
    assert_eq!(rolled.body["chain"].as_array().unwrap().len(), 2);
    assert_eq!(rolled.body["retiring"].as_array().unwrap().len(), 0);
    let in_force = shanghai.node.registry.delegations_in_force(&industry);
    assert_eq!(in_force.len(), 1);
    assert_eq!(in_force[0].1.public_key().unwrap(), new.public());
    let chain = client.get("/v1/delegations/86.31.1005/chain").unwrap();
    assert_eq!(chain.status, 200);
    assert_eq!(chain.body["chain"], rolled.body["chain"]);
    // The industry node still signs with the old key: once the gateway's
    // cached delegation expires, its answers are refused.
    until(
        "the old key's records refused",
        Duration::from_secs(10),
        || fed.ask(&ic, rtype::TXT).metadata.response_code == ResponseCode::ServFail,
    );
}

#[test]
fn stale_answers_while_the_industry_node_is_down_then_recovery() {
    let fed = start(Some(1), |c| {
        c.cache.max_ttl = 1;
        c.cache.stale_recheck_secs = 1;
        c.upstream.timeout_ms = 300;
    });
    let ic = fed.ids[1].clone();
    assert_eq!(
        fed.ask(&ic, rtype::TXT).metadata.response_code,
        ResponseCode::NoError
    );
    let mut fed = fed;
    let f = fed.fed.take().unwrap();
    let Federation {
        industry,
        national,
        shanghai,
        gateway,
        dir,
        root_key_file,
        knot,
    } = f;
    let config = industry.config.clone();
    fed.rt.block_on(industry.running.shutdown()).unwrap();
    drop(industry.node);
    std::thread::sleep(Duration::from_millis(2100));
    let gw = gateway.dns_addr();
    let m = query(gw, &fed.name(&ic), rtype::TXT, false).unwrap();
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "served stale"
    );
    assert!(
        m.answers.iter().all(|r| r.ttl == 30),
        "stale answers carry TTL 30 (RFC 8767)"
    );
    assert!(gateway.gateway.stats.stale.load(Ordering::Relaxed) >= 1);
    let back = fed.rt.block_on(start_member(config)).unwrap();
    until(
        "fresh answers after recovery",
        Duration::from_secs(10),
        || {
            let m = query(gw, &fed.name(&ic), rtype::TXT, false).unwrap();
            m.metadata.response_code == ResponseCode::NoError
                && m.answers.iter().all(|r| r.ttl <= 1)
        },
    );
    fed.fed = Some(Federation {
        industry: back,
        national,
        shanghai,
        gateway,
        dir,
        root_key_file,
        knot,
    });
}

#[test]
fn a_restarted_gateway_answers_from_l2_without_upstream_traffic() {
    let mut fed = start(None, |_| {});
    let names: Vec<Identifier> = fed.ids.clone();
    let before: Vec<String> = names
        .iter()
        .map(|id| txt(&fed.ask(id, rtype::TXT)))
        .collect();
    let f = fed.fed.take().unwrap();
    let Federation {
        gateway,
        national,
        shanghai,
        industry,
        dir,
        root_key_file,
        knot,
    } = f;
    let mut config = gateway.gateway.config().clone();
    config.dns.listen = any();
    config.http.listen = any();
    fed.rt.block_on(gateway.shutdown()).unwrap();
    let gateway = fed
        .rt
        .block_on(async { cpid::resolution::gateway::serve(Gateway::open(config).unwrap()).await })
        .unwrap();
    let gw = gateway.dns_addr();
    let after: Vec<String> = names
        .iter()
        .map(|id| txt(&query(gw, &fed.name(id), rtype::TXT, false).unwrap()))
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        gateway.gateway.upstream_queries(),
        0,
        "every answer came from L2"
    );
    assert_eq!(
        gateway.gateway.stats.l2_hits.load(Ordering::Relaxed),
        names.len() as u64
    );
    fed.fed = Some(Federation {
        gateway,
        national,
        shanghai,
        industry,
        dir,
        root_key_file,
        knot,
    });
}

#[test]
fn a_burst_of_identical_misses_makes_one_upstream_query() {
    // A generous upstream deadline: on a loaded machine the one resolution
    // may take longer than the default 1.5 s, and a retry would be a second
    // upstream query that says nothing about single-flight.
    let fed = start(None, |g| g.upstream.timeout_ms = 20_000);
    // Delegations and the industry SOA are cached by a first resolution.
    assert_eq!(
        fed.ask(&fed.ids[1], rtype::TXT).metadata.response_code,
        ResponseCode::NoError
    );
    let q0 = fed.gateway().upstream_queries();
    let name = fed.name(&fed.ids[3]);
    let gw = fed.gw();
    let answers: Vec<ResponseCode> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..100)
            .map(|_| {
                let name = name.clone();
                s.spawn(move || {
                    (0..10)
                        .map(|_| {
                            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                            sock.connect(gw).unwrap();
                            sock.send(&crate::common::raw_query(7, &name, rtype::TXT, None))
                                .unwrap();
                            sock
                        })
                        .collect::<Vec<_>>()
                        .into_iter()
                        .map(|sock| {
                            // A stub resolver resends when a datagram is
                            // lost (1000 at once can overflow a socket buffer
                            // on a busy machine); a resend finds the cache.
                            sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                            let mut buf = [0u8; 4096];
                            for _ in 0..5 {
                                if let Ok(n) = sock.recv(&mut buf) {
                                    return Message::from_vec(&buf[..n])
                                        .unwrap()
                                        .metadata
                                        .response_code;
                                }
                                sock.send(&crate::common::raw_query(7, &name, rtype::TXT, None))
                                    .unwrap();
                            }
                            panic!("no answer after five tries");
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(answers.len(), 1000);
    assert!(answers.iter().all(|r| *r == ResponseCode::NoError));
    assert_eq!(
        fed.gateway().upstream_queries() - q0,
        1,
        "one upstream query for 1000 misses"
    );
}

#[test]
fn l1_stays_within_its_bounds_under_a_random_name_flood() {
    let fed = start(None, |c| {
        c.cache.max_entries = 200;
        c.cache.max_bytes = 128 * 1024;
    });
    let popular = fed.ids[1].clone();
    let gw = fed.gw();
    for i in 0..2000u32 {
        let name = format!("ic-{i:06}-x{}.1005.31.86.cpid.internal", i % 7);
        let m = query(gw, &name, rtype::TXT, false).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        if i % 50 == 0 {
            let _ = fed.ask(&popular, rtype::TXT);
        }
        let l1 = fed.gateway().l1();
        assert!(l1.len() <= 200, "{} entries", l1.len());
        assert!(l1.bytes() <= 128 * 1024, "{} bytes", l1.bytes());
    }
    assert!(
        fed.gateway().l1().len() > 50,
        "the cache is used, not emptied"
    );
}

#[test]
fn changes_and_withdrawals_reach_the_gateway_within_their_ttl() {
    let fed = start(Some(1), |c| c.cache.max_ttl = 1);
    let st = fed.ids[3].clone();
    assert!(txt(&fed.ask(&st, rtype::TXT)).contains("version=1"));
    let key = cpid::ident::keys::NodeKey::load(&fed.f().dir.join("provider-key.pem")).unwrap();
    let client = cpid::api::client::ApiClient::new(&fed.f().industry.http_url());
    let body = serde_json::json!({ "values": [{ "type": "DESC", "data": "moved" }] });
    let r = client
        .signed("PUT", &format!("/v1/identifiers/{st}"), Some(&body), &key)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    until("version 2 at the gateway", Duration::from_secs(5), || {
        txt(&fed.ask(&st, rtype::TXT)).contains("version=2")
    });
    let r = client
        .signed("DELETE", &format!("/v1/identifiers/{st}"), None, &key)
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    until("NXDOMAIN at the gateway", Duration::from_secs(5), || {
        fed.ask(&st, rtype::TXT).metadata.response_code == ResponseCode::NXDomain
    });
}

#[test]
fn popular_names_are_refreshed_before_they_expire() {
    let fed = start(Some(10), |c| c.cache.max_ttl = 10);
    let ic = fed.ids[1].clone();
    // Cache times are whole seconds: start just after a second begins, so
    // "9.3 s later" is 9 s of age, not 10.
    let frac = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from(1000 - frac) + 20));
    let first = Instant::now();
    for _ in 0..3 {
        assert_eq!(
            fed.ask(&ic, rtype::TXT).metadata.response_code,
            ResponseCode::NoError
        );
    }
    let stats = &fed.gateway().stats;
    let resolutions = stats.resolutions.load(Ordering::Relaxed);
    // In the last tenth of the TTL a hit starts a background refresh…
    std::thread::sleep(Duration::from_millis(9_300).saturating_sub(first.elapsed()));
    let m = fed.ask(&ic, rtype::TXT);
    assert!(m.answers.iter().all(|r| r.ttl <= 1), "still the old entry");
    until("the prefetch", Duration::from_secs(3), || {
        stats.resolutions.load(Ordering::Relaxed) > resolutions
    });
    assert_eq!(stats.prefetches.load(Ordering::Relaxed), 1);
    // …so after the old entry's expiry the name is still a fresh hit.
    std::thread::sleep(Duration::from_millis(11_000).saturating_sub(first.elapsed()));
    let misses = stats.l1_misses.load(Ordering::Relaxed);
    let m = fed.ask(&ic, rtype::TXT);
    assert!(m.answers.iter().all(|r| r.ttl >= 5), "the refreshed entry");
    assert_eq!(stats.l1_misses.load(Ordering::Relaxed), misses);
}

/// The gateway's Handle read shows what the issuing node's own Handle read
/// shows, `ttl`s included: a value without a ttl carries the industry
/// node's default (60 s), not the gateway's cache ceiling, and a value
/// with its own ttl keeps it.
#[test]
fn the_gateways_handle_read_matches_the_issuing_nodes() {
    use cpid::api::body::{IssueRequest, ValueInput};
    let fed = start(None, |_| {});
    let key = cpid::ident::keys::NodeKey::load(&fed.f().dir.join("provider-key.pem")).unwrap();
    let node = cpid::api::client::ApiClient::new(&fed.f().industry.http_url());
    let value = |kind: &str, data: &str, ttl: u32| ValueInput {
        index: None,
        kind: kind.into(),
        data: data.into(),
        ttl,
    };
    let request = IssueRequest {
        class: "IC".into(),
        values: vec![
            value("DESC", "a long-lived endpoint", 0),
            value("URL", "https://ttl.compute.example/", 600),
        ],
    };
    let made = node.register(&request, &key).unwrap();
    let own_ttl = made.record.record().identifier.clone();
    let gateway =
        cpid::api::client::ApiClient::new(&format!("http://{}", fed.f().gateway.http_addr()));
    for id in [&fed.ids[1], &own_ttl] {
        let path = format!("/api/handles/{id}");
        let at_node = node.get(&path).unwrap();
        let at_gateway = gateway.get(&path).unwrap();
        assert_eq!(at_node.status, 200, "{}", at_node.text);
        assert_eq!(at_gateway.status, at_node.status, "{}", at_gateway.text);
        assert_eq!(at_gateway.body, at_node.body, "{id}");
    }
    let h = gateway.get(&format!("/api/handles/{own_ttl}")).unwrap();
    let ttls: Vec<_> = h.body["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["type"].as_str().unwrap().to_string(), v["ttl"].clone()))
        .collect();
    assert!(ttls.contains(&("DESC".into(), 60.into())), "{ttls:?}");
    assert!(ttls.contains(&("URL".into(), 600.into())), "{ttls:?}");
    // Errors have the node's Handle.Net shape too.
    let missing = "/api/handles/86.31.1005/IC-999999-0";
    let (n, g) = (node.get(missing).unwrap(), gateway.get(missing).unwrap());
    assert_eq!(
        (g.status, &g.body["responseCode"]),
        (n.status, &n.body["responseCode"])
    );
    let bad = format!("/api/handles/{own_ttl}?index=x");
    let (n, g) = (node.get(&bad).unwrap(), gateway.get(&bad).unwrap());
    assert_eq!((g.status, &g.body), (n.status, &n.body));
}

#[test]
fn a_gateway_on_a_manual_clock_counts_ttls_down_and_refetches_after_expiry() {
    let fed = start(None, |_| {});
    let ic = fed.ids[1].clone();
    let mut config = fed.gateway().config().clone();
    config.dns.listen = any();
    config.http.listen = any();
    config.cache.l2 = false;
    config.data_dir = fed._dir.path().join("gateway-manual-clock");
    let clock = cpid::clock::Clock::manual(cpid::clock::system_now());
    let gateway = fed
        .rt
        .block_on(async {
            cpid::resolution::gateway::serve(Gateway::open_with_clock(config, clock.clone())?).await
        })
        .unwrap();
    let gw = gateway.dns_addr();
    let stats = &gateway.gateway.stats;
    let ask = || query(gw, &fed.name(&ic), rtype::TXT, false).unwrap();

    let first = ask();
    assert_eq!(first.metadata.response_code, ResponseCode::NoError);
    let ttl = first.answers[0].ttl;
    assert!(ttl > 10, "ttl {ttl}");
    let resolutions = stats.resolutions.load(Ordering::Relaxed);

    // The TTL sent is what the gateway's clock leaves of the entry's.
    clock.advance(u64::from(ttl) - 5);
    let later = ask();
    assert!(later.answers.iter().all(|r| r.ttl == 5), "{later:?}");
    assert_eq!(stats.resolutions.load(Ordering::Relaxed), resolutions);

    // Past its expiry by that clock the entry is fetched again, in full.
    clock.advance(10);
    let again = ask();
    assert_eq!(txt(&again), txt(&first));
    assert!(again.answers.iter().all(|r| r.ttl == ttl));
    assert!(stats.resolutions.load(Ordering::Relaxed) > resolutions);
    fed.rt.block_on(gateway.shutdown()).unwrap();
}

#[test]
fn the_gateway_answers_an_unknown_opcode_without_a_question_with_notimp() {
    let fed = start(None, |_| {});
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    // id 0x4242, opcode 5 (UPDATE) with RD, QDCOUNT 0.
    let msg = [0x42, 0x42, 0x29, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
    sock.send_to(&msg, fed.gw()).unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &[0x42, 0x42, 0xA9, 0x04, 0, 0, 0, 0, 0, 0, 0, 0],
        "a bare header: QR, opcode 5 and RD echoed, NOTIMP"
    );
}

#[test]
fn a_gateway_behind_a_knot_secondary_resolves_while_the_national_node_stays_hidden() {
    if !crate::secondaries::require_daemon("knotd", "knot") {
        return;
    }
    let fed = start_with_knot(None, |_| {}, crate::secondaries::find_tool("knotd"));
    let f = fed.fed.as_ref().unwrap();
    let knot = f.knot.as_ref().unwrap().addr();
    assert_eq!(
        f.gateway.gateway.config().upstream.root_servers,
        vec![knot],
        "the gateway knows only the secondary"
    );
    // Knot's referral to the regional zone carries the NS set but not
    // cpid's delegation record (data at a cut is not authoritative there):
    // the gateway must find it where the parent also publishes it.
    let ic = fed.ids[1].clone();
    let referral = query(knot, &fed.name(&ic), rtype::TXT, false).unwrap();
    assert!(referral.answers.is_empty());
    assert!(
        referral
            .authorities
            .iter()
            .any(|r| r.record_type() == hickory_proto::rr::RecordType::NS)
    );
    assert!(
        !referral
            .authorities
            .iter()
            .any(|r| u16::from(r.record_type()) == rtype::CPREC),
        "{referral:?}"
    );
    for id in &fed.ids {
        let m = fed.ask(id, rtype::TXT);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{id}");
        assert!(!m.answers.is_empty(), "{id}");
    }
    // A missing name in the national zone: Knot proves it with the signed
    // NSEC chain it was transferred, and the gateway takes that proof.
    let nx = query(fed.gw(), "zz-nothing.86.cpid.internal", rtype::TXT, false).unwrap();
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain, "{nx:?}");
}

/// A missing name and a NODATA through the gateway, as (rcode, answers).
fn negatives(fed: &Fed) -> [(ResponseCode, usize); 2] {
    let nx = query(
        fed.gw(),
        "zz-nothing.1005.31.86.cpid.internal",
        rtype::TXT,
        false,
    )
    .unwrap();
    let nodata = fed.ask(&fed.ids[1], rtype::AAAA);
    [nx, nodata].map(|m| (m.metadata.response_code, m.answers.len()))
}

#[test]
fn the_gateway_takes_a_negative_answer_only_with_a_signed_denial() {
    // Signed nodes (the default): denials verify, the gateway answers them
    // and a verified record with AD to a client that sets DO.
    let fed = start(None, |_| {});
    assert_eq!(
        negatives(&fed),
        [(ResponseCode::NXDomain, 0), (ResponseCode::NoError, 0)]
    );
    let m = cpid::testkit::validators::query_dnssec(fed.gw(), &fed.name(&fed.ids[1]), rtype::TXT)
        .unwrap();
    assert!(m.authentic_data, "AD on a verified record: {m:?}");
    let m = fed.ask(&fed.ids[1], rtype::TXT);
    assert!(!m.metadata.authentic_data, "no AD without DO");
    // A verified denial is sent with AD too, from the cache as at first,
    // for a missing identifier and a missing name that is not one.
    let ic = &fed.ids[1];
    let missing = Identifier::new(
        ic.prefix().clone(),
        ic.class(),
        cpid::ident::identifier::Serial::new(99_999).unwrap(),
    );
    for name in [
        fed.name(&missing),
        "zz-nothing.1005.31.86.cpid.internal".to_string(),
    ] {
        for _ in 0..2 {
            let m = cpid::testkit::validators::query_dnssec(fed.gw(), &name, rtype::TXT).unwrap();
            assert_eq!(m.rcode, ResponseCode::NXDomain, "{name}: {m:?}");
            assert!(m.authentic_data, "AD on a verified denial of {name}: {m:?}");
        }
        let m = query(fed.gw(), &name, rtype::TXT, false).unwrap();
        assert!(!m.metadata.authentic_data, "no AD without DO");
    }
    drop(fed);

    // Nodes that do not sign: an unsigned negative answer could be a
    // forger's, so it is SERVFAIL, counted, and not cached.
    let fed = start_with(None, |_| {}, |c| c.dns.dnssec.enabled = false, None);
    let failures = || {
        fed.gateway()
            .stats
            .verification_failures
            .load(Ordering::Relaxed)
    };
    let before = failures();
    // (A NODATA at an identifier's name needs no NSEC: the gateway answers
    // it from the identifier's verified record, which shows every type.)
    assert_eq!(
        negatives(&fed),
        [(ResponseCode::ServFail, 0), (ResponseCode::NoError, 0)]
    );
    assert_eq!(negatives(&fed)[0].0, ResponseCode::ServFail);
    assert_eq!(failures() - before, 2, "each refused, none cached");
    // Records still resolve: their own signatures carry them.
    let m = fed.ask(&fed.ids[1], rtype::TXT);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    drop(fed);

    // The same with validation off: the gateway takes them as before.
    let fed = start_with(
        None,
        |g| g.upstream.validate_denial = false,
        |c| c.dns.dnssec.enabled = false,
        None,
    );
    assert_eq!(
        negatives(&fed),
        [(ResponseCode::NXDomain, 0), (ResponseCode::NoError, 0)]
    );
}

impl Fed {
    /// Rolls Shanghai's key as its operator would, with `cpid key roll`
    /// against the national node (`overlap` seconds); returns the new key.
    pub(crate) fn roll_shanghai(&self, overlap: u64) -> cpid::ident::keys::NodeKey {
        let f = self.f();
        let new_file = f.dir.join("shanghai-new.pem");
        let new_key = cpid::ident::keys::NodeKey::generate().unwrap();
        new_key.write_new(&new_file).unwrap();
        let config_file = f.dir.join("shanghai.toml");
        std::fs::write(&config_file, toml::to_string(&f.shanghai.config).unwrap()).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cpid"))
            .args(["key", "roll", "-c"])
            .arg(&config_file)
            .arg("--new")
            .arg(&new_file)
            .args(["--overlap", &overlap.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cpid key roll: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        new_key
    }

    /// Restarts Shanghai from its configuration (and the key and chain
    /// files it names), on the same ports.
    pub(crate) fn restart_shanghai(&mut self) {
        let Federation {
            industry,
            national,
            shanghai,
            gateway,
            dir,
            root_key_file,
            knot,
        } = self.fed.take().unwrap();
        let mut config = shanghai.config.clone();
        // Back on the same HTTP port: the industry node knows its parent there.
        config.http.listen = shanghai.running.http_addr();
        self.rt.block_on(shanghai.running.shutdown()).unwrap();
        drop(shanghai.node);
        let shanghai = self.rt.block_on(start_member(config)).unwrap();
        self.fed = Some(Federation {
            industry,
            national,
            shanghai,
            gateway,
            dir,
            root_key_file,
            knot,
        });
    }
}

/// The `DS` records the national node serves at Shanghai's cut.
pub(crate) fn shanghai_ds(fed: &Fed) -> usize {
    let m = query(
        fed.f().national.running.dns_addr(),
        "31.86.cpid.internal.",
        rtype::DS,
        true,
    )
    .unwrap();
    m.answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DS)
        .count()
}

#[test]
fn a_regional_node_rolls_its_key_and_the_federation_follows() {
    use cpid::ident::delegation::{ChainFile, TrustError, TrustedZone, verify_node_chain};
    use cpid::ident::keys::NodeKey;
    use cpid::resolution::resolver::Outcome;

    let mut fed = start_with(
        Some(1),
        |c| c.cache.max_ttl = 1,
        |c| c.federation.chain_refresh_secs = 1,
        None,
    );
    let ic = fed.ids[1].clone();
    let ok = |fed: &Fed| {
        let m = fed.ask(&ic, rtype::TXT);
        m.metadata.response_code == ResponseCode::NoError && !m.answers.is_empty()
    };
    assert!(ok(&fed));
    let f = fed.f();
    let old_key = f.shanghai.node.registry.key().public();
    let national_key = f.national.node.registry.key().public();
    // Shanghai's one record: the delegation of the industry node, signed by
    // the old key.
    let industry_nd = f.shanghai.node.registry.delegations()[0].clone();
    assert_eq!(industry_nd.record().issuer, old_key.key_id());
    assert_eq!(shanghai_ds(&fed), 1);

    let new_key = fed.roll_shanghai(12);
    let f = fed.f();
    let rolled_at = Instant::now();
    // The parent serves both delegations and both DS; the gateway still
    // resolves through the old key, which Shanghai still signs with.
    assert_eq!(
        f.national
            .node
            .registry
            .delegations_in_force(&Prefix::parse("86.31").unwrap())
            .len(),
        2
    );
    assert_eq!(shanghai_ds(&fed), 2);
    assert!(ok(&fed));
    let list = cpid::api::client::ApiClient::new(&f.national.http_url())
        .get("/v1/delegations")
        .unwrap();
    let mut statuses: Vec<&str> = list.body["delegations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["active", "retiring"]);
    // A second rollover during the overlap is refused.
    let again = cpid::api::client::ApiClient::new(&f.national.http_url()).roll(
        &Prefix::parse("86.31").unwrap(),
        &cpid::api::body::RollRequest {
            public_key: NodeKey::generate().unwrap().public().to_public_pem(),
            overlap_secs: None,
        },
        &new_key,
    );
    assert!(
        again
            .unwrap_err()
            .to_string()
            .contains("rollover_in_progress"),
        "one rollover at a time"
    );

    fed.restart_shanghai();
    assert_eq!(
        fed.f().shanghai.node.registry.key().public().key_id(),
        new_key.public().key_id()
    );
    let f = fed.f();
    let nd_id = industry_nd.record().identifier.clone();
    until(
        "Shanghai's records signed again with the new key",
        Duration::from_secs(20),
        || {
            f.shanghai
                .node
                .registry
                .get(&nd_id)
                .unwrap()
                .unwrap()
                .record()
                .issuer
                == new_key.public().key_id()
        },
    );
    until(
        "the industry node follows with a chain through the new key",
        Duration::from_secs(20),
        || {
            let chain = f.industry.node.chain.get();
            chain.len() == 2 && chain[1].record().issuer == new_key.public().key_id()
        },
    );
    let industry_chain: ChainFile = serde_json::from_str(
        &std::fs::read_to_string(f.industry.config.federation.chain_file.as_ref().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        industry_chain.records().unwrap(),
        f.industry.node.chain.get(),
        "the chain file is rewritten too"
    );
    until(
        "the gateway resolves through the new key",
        Duration::from_secs(20),
        || ok(&fed),
    );
    let witness = cpid::tlog::witness::witness_name("86.cpid.internal");
    until(
        "the national node cosigns Shanghai's checkpoints under the new key",
        Duration::from_secs(30),
        || f.shanghai.node.log.cosigned_by(&witness),
    );

    // The overlap ends: the parent revokes the old delegation and its DS
    // leaves the zone.
    until(
        "the old delegation retired",
        Duration::from_secs(40),
        || {
            f.national
                .node
                .registry
                .delegations_in_force(&Prefix::parse("86.31").unwrap())
                .len()
                == 1
                && shanghai_ds(&fed) == 1
        },
    );
    assert!(rolled_at.elapsed() >= Duration::from_secs(11));
    // A resolver that starts from the national key now trusts Shanghai
    // under the new key only: what the old key signed is refused.
    let resolver = fed.root_resolver();
    let (outcome, path) = fed.rt.block_on(resolver.resolve_identifier(&ic)).unwrap();
    assert!(matches!(outcome, Outcome::Record { .. }));
    let zone: &TrustedZone = path
        .iter()
        .find(|z| z.prefix == Prefix::parse("86.31").unwrap())
        .unwrap();
    assert_eq!(zone.key.key_id(), new_key.public().key_id());
    assert!(zone.retiring.is_empty());
    assert!(matches!(
        zone.verify_record(&industry_nd),
        Err(TrustError::UnknownKey { .. })
    ));
    assert!(matches!(
        zone.verify_delegation(&industry_nd, f.national.node.registry.clock().now()),
        Err(TrustError::UnknownKey { .. })
    ));
    // The parent now serves the old key's delegation revoked; the chain
    // the old key held is kept aside by the CLI.
    let retired: Vec<_> = f
        .national
        .node
        .registry
        .delegations()
        .iter()
        .filter_map(|r| cpid::ident::delegation::Delegation::from_record(r).ok())
        .filter(|d| d.key == cpid::ident::keys::to_hex(&old_key.to_bytes()))
        .collect();
    assert_eq!(retired.len(), 1);
    assert!(retired[0].revoked.is_some());
    assert!(f.dir.join("shanghai/chain.json.old").exists());
    let root = TrustedZone::root(Prefix::parse("86").unwrap(), national_key, vec![]);
    verify_node_chain(
        &root,
        &f.shanghai.node.chain.get(),
        &Prefix::parse("86.31").unwrap(),
        &new_key.public(),
        f.national.node.registry.clock().now(),
    )
    .unwrap();
}
