//! Witnessing across the loopback federation: each node cosigns its
//! parent's and its children's checkpoints (C2SP tlog-witness, cosignature/
//! v1), so every log, the national one too, carries its witnesses'
//! cosignatures; a split view is refused with the spec's status and
//! reported as a security event; bad submissions change nothing.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cpid::api::client::ApiClient;
use cpid::ident::keys::{NodeKey, PublicKey, SigningContext};
use cpid::testkit::federation::{Federation, Member, Options};
use cpid::tlog::checkpoint::Checkpoint;
use cpid::tlog::cosign::{CosignatureVerifier, verify_cosignatures};
use cpid::tlog::merkle::Hash;
use cpid::tlog::note::{self, NoteSigner, NoteVerifier};
use cpid::tlog::witness::{AddCheckpoint, witness_name};

fn vk(key: &PublicKey) -> ed25519_dalek::VerifyingKey {
    ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes()).unwrap()
}

fn zone(m: &Member) -> String {
    let r = &m.node.registry;
    r.prefix()
        .zone_name(r.apex())
        .trim_end_matches('.')
        .to_string()
}

/// The witnesses among `witnesses` that cosigned `m`'s served checkpoint.
fn cosigners(m: &Member, witnesses: &[&Member]) -> Vec<String> {
    let api = ApiClient::new(&m.http_url());
    let served = api.get("/log/checkpoint").unwrap().text;
    let origin = format!("{}/log", zone(m));
    let v = NoteVerifier::new(&origin, vk(&m.node.registry.key().public())).unwrap();
    let opened = note::open(&served, std::slice::from_ref(&v)).unwrap();
    let verifiers: Vec<CosignatureVerifier> = witnesses
        .iter()
        .map(|w| {
            CosignatureVerifier::new(&witness_name(&zone(w)), vk(&w.node.registry.key().public()))
                .unwrap()
        })
        .collect();
    let mut names: Vec<String> = verify_cosignatures(&opened.text, &opened.unverified, &verifiers)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    names
}

/// Polls until `ok` holds (60 s deadline).
fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    crate::rollup::poll(what, || ok().then_some(()));
}

fn submit(to: &Member, body: &str) -> cpid::api::client::ApiResponse {
    ApiClient::new(&to.http_url())
        .send(
            "POST",
            "/witness/add-checkpoint",
            http::HeaderMap::new(),
            body.as_bytes().to_vec(),
        )
        .unwrap()
}

#[test]
fn parents_and_children_witness_each_other_and_a_split_view_is_refused_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fed = rt
        .block_on(Federation::start(&Options::loopback(dir.path()).unwrap()))
        .unwrap();
    rt.block_on(fed.sample_records()).unwrap();
    let (national, shanghai, industry) = (&fed.national, &fed.shanghai, &fed.industry);

    // The national log is witnessed by its child; the regional one by its
    // parent and its child; the industry one by its parent.
    let want_national = vec![witness_name(&zone(shanghai))];
    wait_for("the national log's witnesses", || {
        cosigners(national, &[shanghai, industry]) == want_national
    });
    let mut want_shanghai = vec![witness_name(&zone(national)), witness_name(&zone(industry))];
    want_shanghai.sort();
    wait_for("the regional log's witnesses", || {
        cosigners(shanghai, &[national, industry]) == want_shanghai
    });
    let want_industry = vec![witness_name(&zone(shanghai))];
    wait_for("the industry log's witnesses", || {
        cosigners(industry, &[national, shanghai]) == want_industry
    });

    // What national cosigned of shanghai's log.
    let origin = format!("{}/log", zone(shanghai));
    let sh_api = ApiClient::new(&shanghai.http_url());
    let served = sh_api.get("/log/checkpoint").unwrap().text;
    let (text, _) = note::split(&served).unwrap();
    let cp = Checkpoint::parse(text).unwrap();
    wait_for("national to hold shanghai's size", || {
        national
            .node
            .witness
            .state(&origin)
            .unwrap()
            .map(|(s, _)| s)
            == Some(cp.size)
    });
    // A forged tree at the same size, signed with shanghai's own key (as a
    // node showing two views would): 409 with national's size, and a
    // split-view event at national.
    let sh_key = NodeKey::load(&shanghai.config.key_file()).unwrap();
    let signer = NoteSigner::new(
        &origin,
        sh_key.for_spec_format(SigningContext::Note).unwrap(),
    )
    .unwrap();
    let forged = |size: u64, root: Hash| {
        signer
            .sign(
                &Checkpoint {
                    origin: origin.clone(),
                    size,
                    root,
                    extensions: vec![],
                }
                .to_text(),
            )
            .unwrap()
    };
    let body = AddCheckpoint {
        old: cp.size,
        proof: vec![],
        note: forged(cp.size, [7u8; 32]),
    }
    .to_text();
    let r = submit(national, &body);
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.text, format!("{}\n", cp.size));
    // A bigger tree that does not extend the cosigned one: 422.
    let body = AddCheckpoint {
        old: cp.size,
        proof: vec![[9u8; 32]; 3],
        note: forged(cp.size + 5, [8u8; 32]),
    }
    .to_text();
    let r = submit(national, &body);
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.body["error"], "inconsistent_checkpoint");
    // Both reported; the cosigned state did not move.
    assert_eq!(
        national.node.witness.state(&origin).unwrap().unwrap().0,
        cp.size
    );
    let admin = national.admin_key().unwrap();
    let events = ApiClient::new(&national.http_url())
        .signed("GET", "/v1/events?kind=split_view", None, &admin)
        .unwrap();
    // Coalesced: one event for the pair, counted twice.
    let split = events.body["events"].as_array().unwrap();
    assert_eq!(split.len(), 1, "{}", events.text);
    assert_eq!(split[0]["count"], 2);
    assert_eq!(split[0]["subject"], origin.as_str());
    assert_eq!(
        split[0]["source"],
        shanghai.node.registry.prefix().to_string()
    );

    // Other bad submissions: the spec's statuses, nothing changes.
    let stranger = NodeKey::generate().unwrap();
    let other_signer = NoteSigner::new(
        &origin,
        stranger.for_spec_format(SigningContext::Note).unwrap(),
    )
    .unwrap();
    let not_theirs = AddCheckpoint {
        old: cp.size,
        proof: vec![],
        note: other_signer
            .sign(
                &Checkpoint {
                    origin: origin.clone(),
                    size: cp.size,
                    root: cp.root,
                    extensions: vec![],
                }
                .to_text(),
            )
            .unwrap(),
    };
    let r = submit(national, &not_theirs.to_text());
    assert_eq!(r.status, 403, "{}", r.text);
    let unknown = AddCheckpoint {
        old: 0,
        proof: vec![],
        note: NoteSigner::new(
            "elsewhere.example/log",
            stranger.for_spec_format(SigningContext::Note).unwrap(),
        )
        .unwrap()
        .sign("elsewhere.example/log\n1\nBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n")
        .unwrap(),
    };
    let r = submit(national, &unknown.to_text());
    assert_eq!(r.status, 404, "{}", r.text);
    for garbage in [
        "".to_string(),
        "old x\n\n".to_string(),
        format!("old 1\nnot base64!\n\n{served}"),
        format!(
            "old {}\n{}\n\n{served}",
            cp.size,
            STANDARD.encode([1u8; 31])
        ),
    ] {
        let r = submit(national, &garbage);
        assert_eq!(r.status, 400, "{garbage:?}: {}", r.text);
    }
    // An old size the witness does not hold: 409 telling its size.
    let behind = AddCheckpoint {
        old: 0,
        proof: vec![],
        note: served.clone(),
    };
    let r = submit(national, &behind.to_text());
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.text, format!("{}\n", cp.size));
    assert_eq!(
        national.node.witness.state(&origin).unwrap().unwrap().0,
        cp.size
    );

    rt.block_on(fed.shutdown()).unwrap();
}

#[test]
fn a_gateway_that_requires_witnessed_checkpoints_serves_logged_records_and_refuses_others() {
    use cpid::dns::wire::rtype;
    use hickory_proto::op::ResponseCode;

    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut opts = Options::loopback(dir.path()).unwrap();
    opts.gateway = |c| c.upstream.require_witnessed = true;
    let fed = rt.block_on(Federation::start(&opts)).unwrap();
    let ids: Vec<cpid::ident::identifier::Identifier> = rt
        .block_on(fed.sample_records())
        .unwrap()
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let apex = fed.industry.node.registry.apex().clone();
    let gw = fed.gateway.dns_addr();
    let name = |id: &cpid::ident::identifier::Identifier| id.to_dns_name(&apex);
    // A logged record: served once its leaf is under a cosigned checkpoint.
    let m = cpid::resolution::client::query(gw, &name(&ids[1]), rtype::TXT, false).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.answers.is_empty());

    // A record the industry node serves but never logged (written behind
    // the log's back): the gateway does not serve it.
    let registry = &fed.industry.node.registry;
    let stored = registry.get(&ids[2]).unwrap().unwrap();
    let mut forged = stored.record().clone();
    forged.version += 1;
    let forged = forged.sign(registry.key()).unwrap();
    registry
        .store()
        .write(cpid::store::WriteBatch {
            records: vec![forged.clone()],
            ..Default::default()
        })
        .unwrap();
    let owner = cpid::dns::mapping::owner(&forged, &apex).unwrap();
    registry
        .zone()
        .set(&owner, &cpid::dns::mapping::rrsets(&forged, 3600))
        .unwrap();
    let m = cpid::resolution::client::query(gw, &name(&ids[2]), rtype::TXT, false).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty());
    // The gateway's failure reached the national node's feed.
    let admin = fed.national.admin_key().unwrap();
    let api = ApiClient::new(&fed.national.http_url());
    wait_for("the gateway's report", || {
        let r = api
            .signed("GET", "/v1/events?kind=verification_failure", None, &admin)
            .unwrap();
        r.body["events"].as_array().unwrap().iter().any(|e| {
            e["subject"].as_str() == Some(name(&ids[2]).as_str())
                && e["detail"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("not witnessed")
        })
    });
    rt.block_on(fed.shutdown()).unwrap();
}
