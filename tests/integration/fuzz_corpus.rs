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
}
