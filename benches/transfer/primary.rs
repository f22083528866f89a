//! The cpid side of the bench: a data directory seeded once with N
//! identifiers (`cpid bench seed`) and its zone exported as a master file
//! (`cpid zone export`), and `cpid serve` started over a copy of it as the
//! hidden primary of the secondaries, TSIG key and all.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cpid::api::client::ApiClient;
use cpid::ident::keys::NodeKey;
use cpid::testkit::secondaries::{QTYPE_SOA, TsigSpec, query_raw};
use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use serde_json::json;

use crate::common::{Node, copy_dir, run};

const CPID: &str = env!("CARGO_BIN_EXE_cpid");

/// A seeded data directory and its zone as a master file.
pub struct Seeded {
    pub names: u64,
    dir: tempfile::TempDir,
    pub zonefile: PathBuf,
}

impl Seeded {
    /// Seeds `names` identifiers into a fresh data directory and exports
    /// the zone.
    pub fn new(names: u64) -> Seeded {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let t = Instant::now();
        run(Command::new(CPID)
            .args(["bench", "seed", "--count", &names.to_string(), "--data"])
            .arg(&data));
        let zonefile = dir.path().join("zone.db");
        run(Command::new(CPID)
            .args(["zone", "export", "--data"])
            .arg(&data)
            .arg("-o")
            .arg(&zonefile));
        let bytes = std::fs::metadata(&zonefile).map(|m| m.len()).unwrap_or(0);
        println!(
            "seeded {names} identifiers and exported the zone ({:.1} MB master file) in {:.1?}",
            bytes as f64 / 1e6,
            t.elapsed()
        );
        Seeded {
            names,
            dir,
            zonefile,
        }
    }

    /// The exported zone, as text.
    pub fn zone_text(&self) -> String {
        std::fs::read_to_string(&self.zonefile).unwrap()
    }

    /// A copy of the data directory, for one node to run on.
    fn copy(&self) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        copy_dir(&self.dir.path().join("data"), to.path());
        to
    }
}

/// A `cpid serve` (open policy) over a copy of a seeded directory, whose
/// zone loopback may transfer with `key` and which notifies `notify`.
pub struct Primary {
    pub node: Node,
    pub key: TsigSpec,
    pub zone: String,
    /// The registry's apex (`GET /v1/node`), which identifiers' DNS names end in.
    pub apex: String,
    pub dns: SocketAddr,
    _conf: tempfile::TempDir,
}

impl Primary {
    /// A node over `seeded`, its zone signed or not, notifying `notify`.
    pub fn start(seeded: &Seeded, notify: &[SocketAddr], signed: bool) -> Primary {
        let key = TsigSpec::random("cpid-xfr");
        let conf_dir = tempfile::tempdir().unwrap();
        let conf = conf_dir.path().join("cpid.toml");
        let mut text = format!(
            "[transfer]\n[[transfer.keys]]\nname = \"{}\"\nsecret = \"{}\"\n\
             [[transfer.secondaries]]\nallow = \"127.0.0.0/8\"\nkey = \"{}\"\n",
            key.name, key.secret_b64, key.name
        );
        for a in notify {
            text.push_str(&format!(
                "[[transfer.secondaries]]\nnotify = \"{a}\"\nkey = \"{}\"\n",
                key.name
            ));
        }
        // Unsigned: the same zone Knot sends Knot.
        if !signed {
            text.push_str("[dns.dnssec]\nenabled = false\n");
        }
        std::fs::write(&conf, text).unwrap();
        // The secondaries need the node's DNS port before it starts.
        let dns = SocketAddr::from(([127, 0, 0, 1], cpid::testkit::secondaries::reserve_port()));
        let node = Node::spawn_in(
            Path::new(CPID),
            seeded.copy(),
            &dns.to_string(),
            &["--config", conf.to_str().unwrap()],
        );
        let zone = node.zone.clone().expect("the ready line names the zone");
        assert_eq!(node.dns, Some(dns), "cpid answers DNS where it was told");
        let info = ApiClient::new(&node.http).get("/v1/node").unwrap();
        let apex = info.body["apex"].as_str().unwrap().to_string();
        Primary {
            node,
            key,
            zone,
            apex,
            dns,
            _conf: conf_dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.node.pid().unwrap()
    }

    pub fn serial(&self) -> u32 {
        soa_serial(self.dns, &self.zone).expect("cpid answers its SOA")
    }

    pub fn api(&self) -> ApiClient {
        ApiClient::new(&self.node.http)
    }

    /// Registers a provider (active at once: open policy) holding a new key.
    pub fn provider(&self) -> NodeKey {
        let key = NodeKey::generate().unwrap();
        let provider = json!({
            "name": "bench", "organisation": "BENCH-1", "contact": "ops@bench.example",
            "region": "31", "public_key": key.public().to_public_pem(),
        });
        let r = self
            .api()
            .signed("POST", "/v1/providers", Some(&provider), &key)
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.text);
        key
    }

    /// Waits until the node serves a serial other than `old`.
    pub fn wait_serial_after(&self, old: u32) -> u32 {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.serial();
            if s != old {
                return s;
            }
            assert!(Instant::now() < end, "the serial stays at {old}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A registration of one new IC resource by the provider `key`; its
/// identifier.
pub fn register(api: &ApiClient, key: &NodeKey, i: usize) -> String {
    let body = json!({
        "class": "IC",
        "values": [
            {"type": "CP.ENDPOINT", "data": format!("https://pool-{i}.xfr.bench.example/v1")},
        ],
    });
    let r = api
        .signed("POST", "/v1/identifiers", Some(&body), key)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["identifier"].as_str().unwrap().to_string()
}

/// The DNS owner name of `identifier` in a zone whose apex is `apex`.
pub fn dns_name(identifier: &str, apex: &str) -> String {
    let id = cpid::ident::identifier::Identifier::parse(identifier).unwrap();
    id.to_dns_name(&cpid::ident::identifier::Apex::parse(apex).unwrap())
}

/// The SOA serial `addr` serves for `zone`.
pub fn soa_serial(addr: SocketAddr, zone: &str) -> Option<u32> {
    let msg = Message::from_vec(&query_raw(addr, zone, QTYPE_SOA)?).ok()?;
    msg.answers.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}

/// The owner names of TXT records in a master file `cpid zone export`
/// wrote (absolute names), for queries that are answered.
pub fn txt_owners(zone_text: &str) -> Vec<String> {
    zone_text
        .lines()
        .filter(|l| !l.starts_with(['$', ';', ' ', '\t']))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3 && f.iter().take(4).any(|w| *w == "TXT") && f[0].ends_with('.'))
                .then(|| f[0].to_string())
        })
        .collect()
}
