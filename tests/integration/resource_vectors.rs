//! The capacity-standard vectors (`schema/vectors/resources/`): every valid
//! descriptor parses, every invalid one is refused with the JSON pointer
//! `expected.json` names; the same vectors against
//! `schema/resource.schema.json` with Python's `jsonschema`, so the
//! document, the JSON Schema and the code agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cpid::ident::resource::{ResourceDescriptor, ResourceErrorKind};
use serde::Deserialize;

use crate::common::*;

#[derive(Deserialize)]
struct Expected {
    pointer: String,
    /// Whether the JSON Schema alone refuses it (some rules are beyond it;
    /// `tests/interop/resource_schema.py` reads this too).
    json_schema: bool,
}

fn dir(which: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("schema/vectors/resources")
        .join(which)
}

fn vectors(which: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir(which))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

fn expected() -> BTreeMap<String, Expected> {
    serde_json::from_str(&std::fs::read_to_string(dir("expected.json")).unwrap()).unwrap()
}

#[test]
fn every_valid_resource_vector_parses() {
    let valid = vectors("valid");
    assert!(valid.len() >= 6);
    for (name, text) in valid {
        let d = ResourceDescriptor::parse(&text)
            .unwrap_or_else(|e| panic!("valid/{name} is refused: {e}"));
        // What it accepts writes back as the same descriptor.
        let again = serde_json::to_string(&d).unwrap();
        assert_eq!(ResourceDescriptor::parse(&again).unwrap(), d, "{name}");
    }
}

#[test]
fn every_invalid_resource_vector_is_refused_at_its_pointer() {
    let expected = expected();
    let invalid = vectors("invalid");
    assert_eq!(
        invalid.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "every invalid vector has an entry in expected.json and no other"
    );
    for (name, text) in invalid {
        let err = ResourceDescriptor::parse(&text)
            .err()
            .unwrap_or_else(|| panic!("invalid/{name} is accepted"));
        let want = &expected[&name];
        assert_eq!(err.pointer, want.pointer, "invalid/{name}: {err}");
        if !want.json_schema {
            // Beyond JSON Schema means a rule across fields, not a shape.
            assert_eq!(err.kind, ResourceErrorKind::Rule, "invalid/{name}: {err}");
        }
    }
}

#[test]
fn resource_vectors_agree_with_the_json_schema_in_python() {
    if !require_python_module("jsonschema", "jsonschema") {
        return;
    }
    let schema_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schema");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/resource_schema.py"
    );
    let out = std::process::Command::new("python3")
        .args([script, schema_dir])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.lines().count(),
        vectors("valid").len() + vectors("invalid").len()
    );
}
