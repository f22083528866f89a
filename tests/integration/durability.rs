//! Acknowledged writes survive SIGKILL: a child process issues records and
//! reports each one as soon as `issue` returns; the parent kills it with
//! SIGKILL mid-run, restarts the node on the same data, and resolves every
//! acknowledged record over DNS with the very same signature.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use cpid::dns::wire::rtype;
use cpid::ident::identifier::{Class, Identifier};
use cpid::ident::record::SignedRecord;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RData;

use crate::common::*;

const CHILD_ENV: &str = "CPID_TEST_DURABILITY_DIR";

/// The child process of the SIGKILL test (run only by it, through
/// `--ignored`): issues records from 4 threads forever, one line per ack.
#[test]
#[ignore = "child process of acknowledged_records_survive_sigkill_with_the_same_signature"]
fn durability_child_issues_until_killed() {
    let dir = std::env::var(CHILD_ENV).expect("run by the SIGKILL test");
    let node = cpid::node::Node::open(config_in(std::path::Path::new(&dir))).unwrap();
    let at = cpid::clock::system_now();
    let stdout = std::io::stdout();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let (reg, stdout) = (node.registry.clone(), &stdout);
            s.spawn(move || {
                for n in 0u64.. {
                    let new = cpid::testkit::seed::synthetic(reg.prefix(), t * 1_000_000 + n, at)
                        .unwrap();
                    let rec = reg.issue(new).unwrap();
                    let line = format!("{} {}\n", rec.record().identifier, hex(&rec.encode()));
                    let mut lock = stdout.lock();
                    lock.write_all(line.as_bytes()).unwrap();
                    lock.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn acknowledged_records_survive_sigkill_with_the_same_signature() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "durability::durability_child_issues_until_killed",
            "--nocapture",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked: Vec<(Identifier, String)> = Vec::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        let Some((id, blob)) = line.split_once(' ') else {
            continue;
        };
        let Ok(id) = Identifier::parse(id) else {
            continue;
        };
        acked.push((id, blob.to_string()));
        if acked.len() >= 300 {
            break;
        }
    }
    // SIGKILL: no destructor, no flush, no goodbye.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        acked.len() >= 300,
        "child acknowledged only {}",
        acked.len()
    );

    let node = TestNode::start_with(|c| c.node.data_dir = dir.path().to_path_buf());
    for (id, blob) in &acked {
        let name = node.dns_name(id);
        let msg = udp(node.addr(), &raw_query(1, &name, rtype::CPREC, EDNS0));
        assert_eq!(
            msg.metadata.response_code,
            ResponseCode::NoError,
            "{id} lost"
        );
        let served = msg
            .answers
            .iter()
            .find_map(|r| match &r.data {
                RData::Unknown { rdata, .. } => Some(rdata.anything.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(&hex(&served), blob, "{id} changed across the crash");
        SignedRecord::decode(&served)
            .unwrap()
            .verify(&node.node.registry.key().public())
            .unwrap();
    }
    // Codes are never reused: the next issue continues after every
    // committed serial.
    let next = node.issue(Class::Ic, None, &[("DESC", "after crash", 0)]);
    assert!(acked.iter().all(|(id, _)| id != &next.record().identifier));
}

#[test]
fn records_imported_through_the_cli_are_served_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_cpid");
    let records = concat!(env!("CARGO_MANIFEST_DIR"), "/zones/records.toml");
    let out = Command::new(bin)
        .args(["zone", "import", records, "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A node started on that data serves both records: a fresh store
    // assigns the first code of each (prefix, class).
    let node = TestNode::start_with(|c| c.node.data_dir = dir.path().to_path_buf());
    assert_eq!(node.node.registry.store().len().unwrap(), 2);
    for name in [
        "pv-000001-p.31.86.cpid.internal.",
        "ic-000001-4.1005.31.86.cpid.internal.",
    ] {
        let msg = udp(node.addr(), &raw_query(2, name, rtype::TXT, EDNS0));
        assert_eq!(msg.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(!msg.answers.is_empty(), "{name}");
    }
}
