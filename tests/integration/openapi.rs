//! `schema/openapi.yaml` and the server agree: the spec lists exactly the
//! routes the server has (`cpid::api::ROUTES`), and every one of them is
//! live on a running node (answers something other than "no route" or
//! "wrong method"), while a method the spec does not list is refused.

use std::collections::BTreeSet;

use yaml_rust2::{Yaml, YamlLoader};

use crate::common::*;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

fn spec_routes() -> (Yaml, BTreeSet<(String, String)>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/openapi.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let doc = YamlLoader::load_from_str(&text).unwrap().remove(0);
    let mut routes = BTreeSet::new();
    let paths = doc["paths"].as_hash().expect("paths");
    for (p, item) in paths {
        let p = p.as_str().unwrap();
        for m in METHODS {
            if !item[m].is_badvalue() {
                routes.insert((m.to_ascii_uppercase(), p.to_string()));
            }
        }
    }
    (doc, routes)
}

#[test]
fn openapi_spec_lists_exactly_the_servers_routes() {
    let (doc, spec) = spec_routes();
    let server: BTreeSet<(String, String)> = cpid::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        spec, server,
        "schema/openapi.yaml and cpid::api::ROUTES differ"
    );
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    // Every $ref points at something that exists.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/openapi.yaml"))
        .unwrap();
    for r in text.split("$ref: \"#/").skip(1) {
        let target = &r[..r.find('"').unwrap()];
        let mut node = &doc;
        for part in target.split('/') {
            node = &node[part];
        }
        assert!(!node.is_badvalue(), "dangling $ref #/{target}");
    }
}

#[test]
fn every_route_in_the_spec_is_live_and_other_methods_are_refused() {
    let node = TestNode::start();
    let api = node.api();
    let (_, spec) = spec_routes();
    let concrete = |p: &str| {
        p.replace("{prefix}", "86")
            .replace("{suffix}", "PV-000001-0")
            .replace("{file}", "situation.js")
    };
    for (method, path) in &spec {
        let r = api
            .send(method, &concrete(path), http::HeaderMap::new(), vec![])
            .unwrap();
        assert!(
            r.body["error"] != "no_route" && r.body["error"] != "method_not_allowed",
            "{method} {path}: {} {}",
            r.status,
            r.text
        );
    }
    // A method on a known path that the spec does not list: 405.
    let paths: BTreeSet<&String> = spec.iter().map(|(_, p)| p).collect();
    for path in paths {
        for m in METHODS {
            let m = m.to_ascii_uppercase();
            if spec.contains(&(m.clone(), path.clone())) {
                continue;
            }
            let r = api
                .send(&m, &concrete(path), http::HeaderMap::new(), vec![])
                .unwrap();
            assert_eq!(r.status, 405, "{m} {path}: {}", r.text);
        }
    }
}

/// Every error code a node can send is a `cpid::api::Code` (the one
/// definition, in `src/api/error.rs`), and the spec's enum lists exactly
/// those: a code added to the table without the spec fails here, and so
/// does a spec entry no code sends. The gateway-only codes are not the
/// node's.
#[test]
fn every_error_code_in_the_source_is_in_the_spec() {
    use cpid::api::Code;
    let (doc, _) = spec_routes();
    let listed: BTreeSet<String> =
        doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
            .as_vec()
            .expect("error enum")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    let sent: BTreeSet<String> = Code::ALL
        .iter()
        .filter(|c| !Code::GATEWAY_ONLY.contains(c))
        .map(|c| c.as_str().to_string())
        .collect();
    assert!(sent.len() > 20, "the codes: {sent:?}");
    let missing: Vec<_> = sent.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "codes missing from schema/openapi.yaml: {missing:?}"
    );
    let unknown: Vec<_> = listed.difference(&sent).collect();
    assert!(
        unknown.is_empty(),
        "schema/openapi.yaml lists codes no cpid::api::Code sends: {unknown:?}"
    );
}
