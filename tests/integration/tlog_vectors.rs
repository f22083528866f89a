//! The Merkle proof vectors of transparency-dev/merkle (`testdata/inclusion`
//! and `testdata/consistency`), kept byte for byte under
//! `tests/data/tlog/merkle/`. Each file says whether its proof must fail
//! (`wantErr`); every one runs through `cpid::tlog::merkle::verify_*`.
//! A hash that does not decode to 32 bytes (the vectors' "wrong leaf",
//! "garbage" cases) cannot be a SHA-256 hash, so the proof fails.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cpid::tlog::merkle::{Hash, verify_consistency, verify_inclusion};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Inclusion {
    leaf_idx: u64,
    tree_size: u64,
    root: String,
    leaf_hash: String,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Consistency {
    size1: u64,
    size2: u64,
    root1: String,
    root2: String,
    proof: Option<Vec<String>>,
    desc: String,
    #[serde(rename = "wantErr")]
    want_err: bool,
}

/// The vector files of one kind, sorted.
fn files(kind: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tlog/merkle")
        .join(kind);
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap_or_else(|e| panic!("{}: {e}", root.display())) {
        for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(file.unwrap().path());
        }
    }
    out.sort();
    out
}

/// A hash, or `None` when the base64 is not of 32 bytes.
fn hash(b64: &str) -> Option<Hash> {
    BASE64.decode(b64).unwrap().try_into().ok()
}

fn hashes(proof: &Option<Vec<String>>) -> Option<Vec<Hash>> {
    proof.iter().flatten().map(|h| hash(h)).collect()
}

/// The file name says whether the vector is the untampered one.
fn is_happy_path(path: &Path) -> bool {
    path.file_name().unwrap() == "happy-path.json"
}

#[test]
fn transparency_dev_inclusion_vectors_verify_exactly_when_untampered() {
    let files = files("inclusion");
    assert!(files.len() >= 30, "{} inclusion vectors", files.len());
    for path in &files {
        let v: Inclusion = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(v.want_err, !is_happy_path(path), "{}", path.display());
        let result = match (hash(&v.leaf_hash), hash(&v.root), hashes(&v.proof)) {
            (Some(leaf), Some(root), Some(proof)) => {
                verify_inclusion(v.leaf_idx, v.tree_size, &leaf, &proof, &root)
                    .map_err(|e| e.to_string())
            }
            _ => Err("not a 32-byte hash".to_owned()),
        };
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{} ({}): {result:?}",
            path.display(),
            v.desc
        );
    }
}

#[test]
fn transparency_dev_consistency_vectors_verify_exactly_when_untampered() {
    let files = files("consistency");
    assert!(files.len() >= 30, "{} consistency vectors", files.len());
    for path in &files {
        let v: Consistency = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(v.want_err, !is_happy_path(path), "{}", path.display());
        let result = match (hash(&v.root1), hash(&v.root2), hashes(&v.proof)) {
            (Some(root1), Some(root2), Some(proof)) => {
                verify_consistency(v.size1, v.size2, &root1, &root2, &proof)
                    .map_err(|e| e.to_string())
            }
            _ => Err("not a 32-byte hash".to_owned()),
        };
        assert_eq!(
            result.is_err(),
            v.want_err,
            "{} ({}): {result:?}",
            path.display(),
            v.desc
        );
    }
}
