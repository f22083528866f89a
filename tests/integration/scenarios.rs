//! Runs the DNS scenario files in `tests/scenarios/`: query in, expected
//! answer out, written so a DNS operator can read and extend them without
//! reading Rust.
//!
//! Each scenario starts a fresh node on loopback with the records of
//! `tests/scenarios/zone.toml` (imported in order, so their codes are
//! fixed) and runs the cases of one `.scn` file. A case is a `query` line
//! followed by expectations; blank lines and `#` comments separate cases.
//!
//! ```text
//! query NAME TYPE [+tcp] [+edns[=PAYLOAD]] [+ednsver=N] [+class=N] [+opcode=N] [+nord]
//!       [+qdcount=0]        (the message carries no question; NAME TYPE are ignored)
//!       [+do] [+ednsflags=HEX] [+ednsopt=CODE[:HEX]]...   (each implies +edns)
//!       [+aaflag] [+tcflag] [+raflag] [+zflag] [+adflag] [+cdflag]  (header bits)
//! rcode NOERROR|NXDOMAIN|REFUSED|FORMERR|NOTIMP|NOTAUTH|BADVERS (by number)
//! opcode N                    the opcode of the response
//! question N                  N entries in the question section
//! flags qr aa rd ...          exact set of header flags among qr aa tc rd ra z ad cd
//! answer N [TYPE]             N records, all of TYPE
//! authority N [TYPE] [OWNER]  N records, all of TYPE, owned by OWNER
//! additional N [TYPE]         N records besides the OPT, all of TYPE
//! edns PAYLOAD | noedns       the OPT the server sent back, or none
//! ednsversion N               the OPT's version
//! do | nodo                   the OPT's DO bit set / clear
//! ednsflags HEX               the OPT's whole flags field (DO included)
//! ednsopts N [CODE...]        N options in the OPT, with these codes in order
//! ttl N                       every answer and authority record has TTL N
//! ```
//!
//! The same files drive the differential EDNS test against Knot
//! (`edns.rs`), which sends every query of `edns.scn` to cpid and to a
//! local `knotd` serving the same zone.

use std::path::Path;

use hickory_proto::op::Message;
use hickory_proto::rr::{Record, RecordType};

use crate::common::*;

pub struct Case {
    pub line: usize,
    pub query: Vec<u8>,
    pub tcp: bool,
    pub expect: Vec<(usize, String)>,
}

fn type_code(s: &str) -> u16 {
    match s.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "SOA" => 6,
        "TXT" => 16,
        "AAAA" => 28,
        "DNSKEY" => 48,
        "OPT" => 41,
        "URI" => 256,
        "AXFR" => 252,
        "IXFR" => 251,
        "ANY" => 255,
        other => other
            .strip_prefix("TYPE")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unknown type {other}")),
    }
}

pub fn parse_cases(text: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let key = words.next().unwrap();
        if key == "query" {
            let name = words.next().expect("query NAME");
            let qtype = type_code(words.next().expect("query NAME TYPE"));
            let (mut tcp, mut edns, mut class, mut flags) = (false, None, 1u16, 0x0100u16);
            let mut no_question = false;
            let (mut edns_flags, mut options) = (0u16, Vec::new());
            for opt in words {
                let need_edns = |edns: Option<Edns>| {
                    edns.or(Some(Edns {
                        payload: 1232,
                        version: 0,
                    }))
                };
                let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
                match k {
                    "+tcp" => tcp = true,
                    "+edns" => {
                        let payload = if v.is_empty() {
                            1232
                        } else {
                            v.parse().unwrap()
                        };
                        edns = Some(Edns {
                            payload,
                            version: edns.map_or(0, |e: Edns| e.version),
                        });
                    }
                    "+ednsver" => {
                        let version = v.parse().unwrap();
                        edns = Some(Edns {
                            payload: edns.map_or(1232, |e: Edns| e.payload),
                            version,
                        });
                    }
                    "+class" => class = v.parse().unwrap(),
                    "+opcode" => flags |= v.parse::<u16>().unwrap() << 11,
                    "+nord" => flags &= !0x0100,
                    "+qdcount" if v == "0" => no_question = true,
                    "+do" => {
                        edns = need_edns(edns);
                        edns_flags |= 0x8000;
                    }
                    "+ednsflags" => {
                        edns = need_edns(edns);
                        let hex = v.trim_start_matches("0x");
                        edns_flags |= u16::from_str_radix(hex, 16).unwrap();
                    }
                    "+ednsopt" => {
                        edns = need_edns(edns);
                        let (code, data) = v.split_once(':').unwrap_or((v, ""));
                        let data: Vec<u8> = (0..data.len())
                            .step_by(2)
                            .map(|i| u8::from_str_radix(&data[i..i + 2], 16).unwrap())
                            .collect();
                        options.extend_from_slice(&code.parse::<u16>().unwrap().to_be_bytes());
                        options.extend_from_slice(&(data.len() as u16).to_be_bytes());
                        options.extend_from_slice(&data);
                    }
                    "+aaflag" => flags |= 0x0400,
                    "+tcflag" => flags |= 0x0200,
                    "+raflag" => flags |= 0x0080,
                    "+zflag" => flags |= 0x0040,
                    "+adflag" => flags |= 0x0020,
                    "+cdflag" => flags |= 0x0010,
                    other => panic!("line {}: unknown query option {other}", i + 1),
                }
            }
            let id = 0x5C00 + cases.len() as u16;
            let mut query = raw_query_with(id, flags, name, qtype, class, edns);
            if edns.is_some() {
                set_edns_extras(&mut query, edns_flags, &options);
            }
            if no_question {
                // Header with QDCOUNT 0, then whatever followed the question.
                let question_len = name_wire(name).len() + 4;
                query.splice(12..12 + question_len, []);
                query[4..6].copy_from_slice(&0u16.to_be_bytes());
            }
            cases.push(Case {
                line: i + 1,
                query,
                tcp,
                expect: Vec::new(),
            });
        } else {
            cases
                .last_mut()
                .unwrap_or_else(|| panic!("line {}: expectation before any query", i + 1))
                .expect
                .push((i + 1, line.to_string()));
        }
    }
    cases
}

fn rcode_number(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        "NOTAUTH" => 9,
        "BADVERS" | "BADSIG" => 16,
        _ => return None,
    })
}

fn check_section(records: &[Record], words: &[&str], what: &str) -> Result<(), String> {
    let n: usize = words
        .first()
        .ok_or("count missing")?
        .parse()
        .map_err(|_| "bad count")?;
    let records: Vec<&Record> = records
        .iter()
        .filter(|r| r.record_type() != RecordType::OPT)
        .collect();
    if records.len() != n {
        return Err(format!(
            "{what}: {} records, expected {n}: {records:?}",
            records.len()
        ));
    }
    if let Some(t) = words.get(1) {
        let want = type_code(t);
        if let Some(r) = records.iter().find(|r| u16::from(r.record_type()) != want) {
            return Err(format!("{what}: {r:?} is not of type {t}"));
        }
    }
    if let Some(owner) = words.get(2)
        && let Some(r) = records
            .iter()
            .find(|r| !r.name.to_ascii().eq_ignore_ascii_case(owner))
    {
        return Err(format!("{what}: owner {} is not {owner}", r.name));
    }
    Ok(())
}

/// The header flags of `raw` by name, sorted.
pub fn flag_names(raw: &[u8]) -> Vec<&'static str> {
    let bits = header_flags(raw);
    let mut got: Vec<&str> = [
        (0x8000, "qr"),
        (0x0400, "aa"),
        (0x0200, "tc"),
        (0x0100, "rd"),
        (0x0080, "ra"),
        (0x0040, "z"),
        (0x0020, "ad"),
        (0x0010, "cd"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name)
    .collect();
    got.sort();
    got
}

fn check(msg: &Message, raw: &[u8], expectation: &str) -> Result<(), String> {
    let words: Vec<&str> = expectation.split_whitespace().collect();
    let m = &msg.metadata;
    let opt = || raw_opt(raw).ok_or_else(|| "no OPT".to_string());
    match words[0] {
        "rcode" => {
            // By number, so BADVERS and BADSIG (both 16) read the same.
            let got = u16::from(msg.metadata.response_code);
            let want = rcode_number(words[1]).ok_or(format!("unknown rcode {}", words[1]))?;
            (got == want)
                .then_some(())
                .ok_or(format!("rcode {got}, expected {want} ({})", words[1]))
        }
        "opcode" => {
            let got = u8::from(m.op_code);
            let want: u8 = words[1].parse().map_err(|_| "bad opcode")?;
            (got == want)
                .then_some(())
                .ok_or(format!("opcode {got}, expected {want}"))
        }
        "question" => {
            let want: usize = words[1].parse().map_err(|_| "bad count")?;
            (msg.queries.len() == want)
                .then_some(())
                .ok_or(format!("{} questions, expected {want}", msg.queries.len()))
        }
        "flags" => {
            let got = flag_names(raw);
            let mut want: Vec<&str> = words[1..].to_vec();
            want.sort();
            (got == want)
                .then_some(())
                .ok_or(format!("flags {got:?}, expected {want:?}"))
        }
        "answer" => check_section(&msg.answers, &words[1..], "answer"),
        "authority" => check_section(&msg.authorities, &words[1..], "authority"),
        "additional" => check_section(&msg.additionals, &words[1..], "additional"),
        "edns" => match &msg.edns {
            Some(e) if e.max_payload().to_string() == words[1] => Ok(()),
            other => Err(format!("edns {other:?}, expected payload {}", words[1])),
        },
        "noedns" => msg.edns.is_none().then_some(()).ok_or("OPT present".into()),
        "ednsversion" => {
            let got = opt()?.version;
            (got.to_string() == words[1])
                .then_some(())
                .ok_or(format!("EDNS version {got}, expected {}", words[1]))
        }
        "do" | "nodo" => {
            let got = opt()?.dnssec_ok();
            (got == (words[0] == "do"))
                .then_some(())
                .ok_or(format!("DO bit {got}, expected {}", words[0]))
        }
        "ednsflags" => {
            let got = opt()?.flags;
            let want = u16::from_str_radix(words[1].trim_start_matches("0x"), 16)
                .map_err(|_| "bad flags")?;
            (got == want)
                .then_some(())
                .ok_or(format!("EDNS flags {got:#06x}, expected {want:#06x}"))
        }
        "ednsopts" => {
            let got = opt()?.codes();
            let n: usize = words[1].parse().map_err(|_| "bad count")?;
            let codes: Result<Vec<u16>, _> = words[2..].iter().map(|c| c.parse()).collect();
            let codes = codes.map_err(|_| "bad option code")?;
            (got.len() == n && (codes.is_empty() || got == codes))
                .then_some(())
                .ok_or(format!("EDNS options {got:?}, expected {n} {codes:?}"))
        }
        "ttl" => {
            let want: u32 = words[1].parse().map_err(|_| "bad ttl")?;
            match msg
                .answers
                .iter()
                .chain(&msg.authorities)
                .find(|r| r.ttl != want)
            {
                None => Ok(()),
                Some(r) => Err(format!("{r:?} has TTL {}, expected {want}", r.ttl)),
            }
        }
        other => Err(format!("unknown expectation {other}")),
    }
}

#[test]
fn dns_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let zone = std::fs::read_to_string(dir.join("zone.toml")).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "scn"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scenario files");
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in &files {
        let node = TestNode::start();
        cpid::registry::zonefile::import(&node.node.registry, &zone).unwrap();
        for case in parse_cases(&std::fs::read_to_string(file).unwrap()) {
            ran += 1;
            let raw = if case.tcp {
                tcp_raw(node.addr(), &case.query)
            } else {
                udp_raw(node.addr(), &case.query).expect("an answer")
            };
            let msg = Message::from_vec(&raw).unwrap();
            for (line, e) in &case.expect {
                if let Err(why) = check(&msg, &raw, e) {
                    failures.push(format!(
                        "{}:{line} (query at line {}): {why}",
                        file.file_name().unwrap().to_string_lossy(),
                        case.line
                    ));
                }
            }
        }
    }
    assert!(ran > 10, "only {ran} cases ran");
    assert!(
        failures.is_empty(),
        "scenario failures:\n{}",
        failures.join("\n")
    );
}
