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

/// Every error code the API can send (a string literal handed to an
/// `ApiError` constructor, or a `SigError::reason`) is in the spec's enum.
#[test]
fn every_error_code_in_the_source_is_in_the_spec() {
    let (doc, _) = spec_routes();
    let listed: BTreeSet<String> =
        doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"]
            .as_vec()
            .expect("error enum")
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
    let mut found = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // The first string literal after a constructor or a `reason()` arm.
        for marker in [
            "ApiError::new(",
            "ApiError::bad_request(",
            "ApiError::unauthorized(",
            "ApiError::forbidden(",
            "ApiError::unprocessable(",
            "=> \"",
        ] {
            for (at, _) in text.match_indices(marker) {
                let rest = &text[at + marker.len()..];
                let rest = if marker == "=> \"" {
                    rest
                } else {
                    &rest[rest.find('"').unwrap() + 1..]
                };
                let code = &rest[..rest.find('"').unwrap()];
                // "ok" is the metrics outcome of a success, not an error.
                let is_code = !code.is_empty() && code != "ok";
                if is_code && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    found.insert(code.to_string());
                }
            }
        }
    }
    assert!(found.len() > 20, "the scan finds the codes: {found:?}");
    let missing: Vec<_> = found.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "codes missing from schema/openapi.yaml: {missing:?}"
    );
}
