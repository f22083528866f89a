//! Replays the fuzz corpora (`fuzz/corpus/<target>/`) through the same entry
//! points the fuzzers use, so every input that once found a bug stays a test.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        f(&data);
        n += 1;
    }
    n
}

#[test]
fn fuzz_corpora_replay_without_panics() {
    assert!(replay("identifier", cpid::testkit::fuzzing::identifier) > 0);
    assert!(replay("record", cpid::testkit::fuzzing::record) > 0);
    assert!(replay("resource", cpid::testkit::fuzzing::resource) > 0);
    assert!(replay("report", cpid::testkit::fuzzing::report) > 0);
    assert!(replay("summary", cpid::testkit::fuzzing::summary) > 0);
    assert!(replay("requirement", cpid::testkit::fuzzing::requirement) > 0);
    assert!(replay("transaction", cpid::testkit::fuzzing::transaction) > 0);
    assert!(replay("dns_query", cpid::testkit::fuzzing::dns_query) > 0);
    assert!(replay("http_request", cpid::testkit::fuzzing::http_request) > 0);
    assert!(replay("delegation", cpid::testkit::fuzzing::delegation) > 0);
    assert!(
        replay(
            "upstream_response",
            cpid::testkit::fuzzing::upstream_response
        ) > 0
    );
    assert!(replay("note", cpid::testkit::fuzzing::note) > 0);
    assert!(replay("checkpoint", cpid::testkit::fuzzing::checkpoint) > 0);
    assert!(replay("tile", cpid::testkit::fuzzing::tile) > 0);
    assert!(replay("log_entry", cpid::testkit::fuzzing::log_entry) > 0);
    assert!(replay("tsig", cpid::testkit::fuzzing::tsig) > 0);
    assert!(replay("transfer", cpid::testkit::fuzzing::transfer) > 0);
    assert!(replay("proof", cpid::testkit::fuzzing::proof) > 0);
    assert!(replay("cookie_rrl", cpid::testkit::fuzzing::cookie_rrl) > 0);
    assert!(replay("dnssec", cpid::testkit::fuzzing::dnssec) > 0);
    assert!(replay("denial", cpid::testkit::fuzzing::denial) > 0);
}

/// The seed corpora of the transparency-log targets, as
/// `write_tlog_seed_corpora` writes them: (target, file name, bytes).
fn tlog_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    use cpid::ident::identifier::{Class, Identifier, Prefix, Serial};
    use cpid::ident::record::{Record, RecordStatus, Value, ValueType};
    use cpid::testkit::fuzzing::{FUZZ_LOG_ORIGIN, fuzz_log_signer, fuzz_root_key, fuzz_witness};
    use cpid::tlog::checkpoint::Checkpoint;
    use cpid::tlog::merkle::{self, Frontier};
    use cpid::tlog::note::NoteSigner;
    use cpid::tlog::{entry, tile};

    // golang.org/x/mod/sumdb/note's example (note_test.go).
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                           then you don't know what your problem is.\n";
    const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
    const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";
    const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    // c2sp.org/tlog-checkpoint's example.
    const C2SP: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    // Real records, signed by the fuzz root key, and their leaves.
    let key = fuzz_root_key();
    let prefix = Prefix::parse("86.31").unwrap();
    let record = |class: Class, serial: u64, values: Vec<Value>| {
        Record {
            identifier: Identifier::new(prefix.clone(), class, Serial::new(serial).unwrap()),
            owner: None,
            version: 1,
            status: RecordStatus::Active,
            issuer: key.public().key_id(),
            created: 1_800_000_000,
            updated: 1_800_000_000,
            values,
        }
        .sign(key)
        .unwrap()
    };
    let value = |index: u32, kind: &str, data: &str| Value {
        index,
        kind: ValueType::parse(kind).unwrap(),
        data: data.to_string(),
        ttl: 0,
        timestamp: 1_800_000_000,
    };
    let pool = record(
        Class::Ic,
        1,
        vec![
            value(
                1,
                "CP.RESOURCE",
                r#"{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":8,"devices":[{"model":"A800","count":8,"peak_tflops":{"fp16":312}}]}"#,
            ),
            value(2, "CP.ENDPOINT", "https://pool-1.fuzz.example/v1"),
        ],
    );
    let endpoint = record(
        Class::Gc,
        2,
        vec![value(1, "CP.ENDPOINT", "https://gc-2.fuzz.example/v1")],
    );
    let leaves = [
        entry::leaf(&pool, false),
        entry::leaf(&endpoint, false),
        entry::leaf(&endpoint, true),
    ];

    // The fuzz log's checkpoint of those leaves, signed and cosigned.
    let mut frontier = Frontier::empty();
    let mut stored = std::collections::HashMap::new();
    for leaf in &leaves {
        for (level, index, hash) in frontier.append(merkle::leaf_hash(leaf)) {
            stored.insert((level, index), hash);
        }
    }
    let body = Checkpoint {
        origin: FUZZ_LOG_ORIGIN.to_string(),
        size: frontier.size(),
        root: frontier.root(),
        extensions: Vec::new(),
    }
    .to_text();
    let signed = fuzz_log_signer().sign(&body).unwrap();
    let cosigned = format!(
        "{signed}{}",
        fuzz_witness().sign(&body, 1_800_000_000).unwrap()
    );
    let stranger = NoteSigner::new(
        "other.example/log",
        ed25519_dalek::SigningKey::from_bytes(&[0x22; 32]),
    )
    .unwrap();
    let empty = Checkpoint {
        origin: FUZZ_LOG_ORIGIN.to_string(),
        size: 0,
        root: merkle::empty_root(),
        extensions: Vec::new(),
    }
    .to_text();

    // Proof inputs: index, size, root, leaf (or second root), proof.
    let proof_input = |index: u64, size: u64, hashes: &[merkle::Hash]| {
        let mut out = index.to_be_bytes().to_vec();
        out.extend_from_slice(&size.to_be_bytes());
        for h in hashes {
            out.extend_from_slice(h);
        }
        out
    };
    let root = frontier.root();
    let mut inclusion = vec![root, merkle::leaf_hash(&leaves[1])];
    inclusion.extend(merkle::inclusion_proof(1, 3, &stored).unwrap());
    let root2 = merkle::tree_hash(2, &stored).unwrap();
    let mut consistency = vec![root2, root];
    consistency.extend(merkle::consistency_proof(2, 3, &stored).unwrap());

    let text = |s: &str| s.as_bytes().to_vec();
    let mut seeds = vec![
        ("note", "cpid-checkpoint-signed", text(&signed)),
        ("note", "cpid-checkpoint-cosigned", text(&cosigned)),
        (
            "note",
            "cpid-checkpoint-by-unknown-key",
            text(&stranger.sign(&body).unwrap()),
        ),
        (
            "note",
            "go-sumdb-peter",
            text(&format!("{GO_TEXT}\n{PETER_SIG}")),
        ),
        (
            "note",
            "go-sumdb-peter-enoch",
            text(&format!("{GO_TEXT}\n{PETER_SIG}{ENOCH_SIG}")),
        ),
        ("note", "go-sumdb-verifier-key", text(PETER_VKEY)),
        (
            "note",
            "witness-verifier-key",
            text(&fuzz_witness().verifier_key()),
        ),
        ("checkpoint", "c2sp-example", text(C2SP)),
        (
            "checkpoint",
            "c2sp-example-extensions",
            text(&format!("{C2SP}ext one\n\u{1F642} two\n")),
        ),
        ("checkpoint", "empty-tree", text(&empty)),
        ("checkpoint", "cpid-checkpoint-cosigned", text(&cosigned)),
        ("log_entry", "record-ic", leaves[0].clone()),
        ("log_entry", "record-gc", leaves[1].clone()),
        ("log_entry", "private", leaves[2].clone()),
        ("proof", "inclusion-1-of-3", proof_input(1, 3, &inclusion)),
        (
            "proof",
            "consistency-2-to-3",
            proof_input(2, 3, &consistency),
        ),
        ("proof", "single-leaf", proof_input(0, 1, &[root, root])),
    ];
    for (name, path) in [
        ("spec-x001-x234-067", "tile/0/x001/x234/067"),
        ("level-0-first", "tile/0/000"),
        ("level-0-partial", "tile/0/002.p/77"),
        ("level-1-partial", "tile/1/000.p/2"),
        ("level-2-partial", "tile/2/x001/000.p/17"),
        (
            "level-0-largest",
            "tile/0/x018/x446/x744/x073/x709/x551/615",
        ),
        ("entries-full", "tile/entries/001"),
        ("entries-partial", "tile/entries/002.p/77"),
    ] {
        seeds.push(("tile", name, text(path)));
    }
    let refs: Vec<&[u8]> = leaves.iter().map(Vec::as_slice).collect();
    seeds.push((
        "tile",
        "bundle-3-leaves",
        tile::entry_bundle(&refs).unwrap(),
    ));
    seeds.push((
        "tile",
        "bundle-1-leaf",
        tile::entry_bundle(&refs[..1]).unwrap(),
    ));
    seeds
}

/// Writes the transparency-log seed corpora under `fuzz/corpus/`:
/// `cargo test --test integration write_tlog_seed_corpora -- --ignored`.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand when the seeds change"]
fn write_tlog_seed_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, name, bytes) in tlog_seeds() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn tlog_seed_corpora_are_committed_and_reach_verification() {
    use cpid::testkit::fuzzing::{fuzz_note_verifiers, fuzz_witness};
    use cpid::tlog::{cosign, note};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, name, bytes) in tlog_seeds() {
        let committed = std::fs::read(root.join(target).join(name))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{target}/{name}: {e}"));
        assert_eq!(committed, bytes, "fuzz/corpus/{target}/{name} is stale");
    }
    // The fuzzers start from notes their fixed keys open and cosign.
    let cosigned = std::fs::read_to_string(root.join("note/cpid-checkpoint-cosigned")).unwrap();
    let opened = note::open(&cosigned, fuzz_note_verifiers()).unwrap();
    let found = cosign::verify_cosignatures(
        &opened.text,
        &opened.unverified,
        &[fuzz_witness().verifier()],
    )
    .unwrap();
    assert_eq!(found.len(), 1);
    let go = std::fs::read_to_string(root.join("note/go-sumdb-peter-enoch")).unwrap();
    assert_eq!(
        note::open(&go, fuzz_note_verifiers())
            .unwrap()
            .signatures
            .len(),
        2
    );
}
