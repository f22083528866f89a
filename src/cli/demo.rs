//! `cpid demo`: a federation on loopback, ready to query, with sample
//! providers whose agents report live capacity.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use cpid::api::client::ApiClient;
use cpid::ident::identifier::Identifier;
use cpid::ident::keys::NodeKey;
use cpid::trade::{StepKind, StepRequest};

use cpid::testkit::federation::{Federation, Options, Ports};
use cpid::testkit::providers::{self, NodeAccess};

pub fn run(dir: PathBuf) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let opts = Options {
            dir: dir.clone(),
            ports: Ports::demo(),
            ttl: None,
            gateway: |_| {},
            node: |_| {},
            knot: cpid::testkit::knot::find_knotd(),
        };
        let fed = Federation::start(&opts).await?;
        let ids = fed.sample_records().await?;
        let apex = cpid::ident::identifier::Apex::parse("cpid.internal")?;
        let gw = fed.gateway.dns_addr();
        let http = fed.gateway.http_addr();
        println!("cpid demo federation (data in {}):", dir.display());
        for (name, m) in [
            ("national  86        ", &fed.national),
            ("Shanghai  86.31     ", &fed.shanghai),
            ("industry  86.31.1005", &fed.industry),
        ] {
            println!(
                "  {name} dns {}  http {}  key {}",
                m.running.dns_addr(),
                m.running.http_addr(),
                m.node.registry.key().public().key_id()
            );
        }
        match &fed.knot {
            Some(k) => {
                println!(
                    "  Knot secondary      dns {}  (the national zone by AXFR/IXFR with TSIG; log in {})",
                    k.addr(),
                    k.dir().join("knot.log").display()
                );
                println!(
                    "  gateway             dns {gw}  http {http}  (knows only the Knot secondary: the national node is a hidden primary)"
                );
            }
            None => println!(
                "  gateway             dns {gw}  http {http}  (knows only the national node; install knot for a secondary)"
            ),
        }
        println!("\nsample records issued by the industry node:");
        for id in &ids {
            println!("  {id}");
        }
        if let Some(id) = ids
            .get(1)
            .and_then(|s| cpid::ident::identifier::Identifier::parse(s).ok())
        {
            let name = id.to_dns_name(&apex);
            let (ip, port) = (gw.ip(), gw.port());
            println!("\nresolve through the gateway:");
            println!("  dig @{ip} -p {port} {name} TXT +norec");
            println!("  dig @{ip} -p {port} {name} URI +norec");
            println!("  kdig @{ip} -p {port} {name} TYPE65280");
            println!("  curl http://{http}/api/handles/{id}");
            println!("  curl http://{http}/v1/gateway        # cache tiers and counters");
            println!("verify the chain root -> Shanghai -> industry -> record:");
            println!(
                "  cpid resolve --trust-anchor {} --server {} {id}",
                fed.root_key_file.display(),
                fed.national.running.dns_addr()
            );
            println!("and that it is a leaf of the industry node's transparency log:");
            println!(
                "  cpid resolve --trust-anchor {} --server {} {id} --verify-log {}",
                fed.root_key_file.display(),
                fed.national.running.dns_addr(),
                fed.industry.http_url()
            );
            println!("what the national node says about it (a referral, not data):");
            let (nip, nport) = (
                fed.national.running.dns_addr().ip(),
                fed.national.running.dns_addr().port(),
            );
            println!("  dig @{nip} -p {nport} {name} TXT +norec");
            println!("the same signed (DNSSEC: the referral's DS for Shanghai, and a denial):");
            println!("  dig @{nip} -p {nport} {name} TXT +norec +dnssec");
            println!("  dig @{nip} -p {nport} nothere.86.cpid.internal. TXT +norec +dnssec");
        }
        let national = NodeAccess {
            url: fed.national.http_url(),
            admin: fed.national.admin_key()?,
        };
        let shanghai = NodeAccess {
            url: fed.shanghai.http_url(),
            admin: fed.shanghai.admin_key()?,
        };
        let industry = NodeAccess {
            url: fed.industry.http_url(),
            admin: fed.industry.admin_key()?,
        };
        let agents_dir = dir.clone();
        let agents = tokio::task::spawn_blocking(move || {
            providers::start(&agents_dir, national, shanghai, industry)
        })
        .await??;
        println!(
            "\nsample providers, each running `cpid agent` logic every {} s:",
            providers::INTERVAL_SECS
        );
        for s in &agents.started {
            println!(
                "  region {}  {:<12} {}  reports to {}",
                s.region, s.agent, s.provider, s.url
            );
        }
        if let Some(s) = agents.started.first() {
            println!("  inventories: {}  (try `cpid agent --check --inventory …`)", s.inventory.display());
        }
        let (national_http, shanghai_http) = (
            fed.national.running.http_addr(),
            fed.shanghai.running.http_addr(),
        );
        println!("\nthe national situation (give the agents and the roll-up ~20 s):");
        println!("  open http://{national_http}/situation                      # the live page: the whole country");
        println!("  cpid situation --server http://{national_http} --group-by region");
        println!("  curl 'http://{national_http}/v1/situation?scope=own&group_by=region'   # the national node's own: Beijing, Guangdong, Sichuan, Gansu");
        println!("  curl 'http://{shanghai_http}/v1/situation/summary'          # Shanghai's signed summary, which the national node pulls");
        println!("  curl 'http://{national_http}/v1/situation/history?minutes=60'");
        println!("  curl 'http://{national_http}/v1/quality'");
        let walk = BuyerWalk {
            dir: dir.clone(),
            national: fed.national.http_url(),
            national_admin: fed.national.admin_key()?,
            providers: agents.started.clone(),
        };
        match tokio::task::spawn_blocking(move || walk.run()).await? {
            Ok(()) => {}
            Err(e) => println!("\n(the buyer's walk did not finish: {e:#})"),
        }
        println!("\nthe transparency logs (each node's witnessed by its parent and children):");
        println!(
            "  curl {}/log/checkpoint            # signed by the node, cosigned by Shanghai",
            fed.national.http_url()
        );
        println!(
            "  cpid audit --server {} --trust-anchor {} --state {}",
            fed.industry.http_url(),
            fed.root_key_file.display(),
            dir.join("audit-industry.json").display()
        );
        println!(
            "  curl -s {}/v1/log | jq .key                  # the log's verifier key",
            fed.shanghai.http_url()
        );
        println!("\nCtrl-C stops all four and the agents.");
        super::shutdown_signal().await;
        tokio::task::spawn_blocking(move || agents.stop()).await?;
        fed.shutdown().await?;
        anyhow::Ok(())
    })
}

/// A buyer at the national node: selects across the federation, schedules
/// the best, and the provider takes the transaction to settlement.
struct BuyerWalk {
    dir: PathBuf,
    national: String,
    national_admin: NodeKey,
    providers: Vec<providers::Started>,
}

impl BuyerWalk {
    fn run(self) -> Result<()> {
        let home = self.dir.join("buyer");
        std::fs::create_dir_all(&home)?;
        let key_file = home.join("key.pem");
        let (key, _) = NodeKey::load_or_generate(&key_file)?;
        let id_file = home.join("identifier");
        let national = ApiClient::new(&self.national);
        let buyer = match std::fs::read_to_string(&id_file) {
            Ok(text) => Identifier::parse(text.trim())?,
            Err(_) => {
                let request = cpid::api::body::ProviderRequest {
                    name: "Demo Lab (buyer)".into(),
                    organisation: "91310000DEMOBUYER".into(),
                    contact: "lab@buyer.example".into(),
                    region: "31".into(),
                    public_key: key.public().to_public_pem(),
                };
                let reply = national.register_user(&request, &key)?;
                let id = reply.record.record().identifier.clone();
                national.approve_user(&id, &self.national_admin)?;
                std::fs::write(&id_file, id.to_string())?;
                id
            }
        };
        let want = json!({"class": "IC", "units": 2, "region": "31"});
        // The national node answers for the children once their summaries
        // arrive: wait for candidates from at least two nodes.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let answer = loop {
            let a = national.select(&want)?;
            let nodes: std::collections::BTreeSet<String> =
                candidates(&a).iter().map(|c| field(c, "/node")).collect();
            if nodes.len() >= 2 || std::time::Instant::now() > deadline {
                break a;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        };
        let n = &self.national;
        println!(
            "\na buyer ({buyer}, key {}) selects at the national node:",
            key_file.display()
        );
        println!("  cpid select --server {n} --class IC --units 2 --region 31");
        println!("  {}", field(&answer, "/explanation"));
        for c in candidates(&answer).iter().take(3) {
            println!(
                "  {:<26} node {:<11} region {}  {} free  {} {}/unit-h  {} ms  score {}",
                field(c, "/identifier"),
                field(c, "/node"),
                field(c, "/region"),
                field(c, "/units_free"),
                field(c, "/price/per_unit_hour"),
                field(c, "/price/currency"),
                field(c, "/path/latency_ms"),
                field(c, "/score"),
            );
        }
        let (tx, whole) = national
            .signing_as(Some(&buyer))
            .schedule(&want, &key)
            .context("schedule")?;
        let at = whole
            .get("scheduled_by_api")
            .and_then(Value::as_str)
            .map_or(self.national.clone(), str::to_string);
        let txid = tx.record.record().identifier.clone();
        let provider = self
            .providers
            .iter()
            .find(|p| p.provider.to_string() == tx.doc.provider)
            .context("the provider of the scheduled resource is not a sample")?;
        let pkey = NodeKey::load(&provider.key)?;
        let node = ApiClient::new(&at);
        for step in [StepKind::Accept, StepKind::Activate, StepKind::Settle] {
            node.tx_step(&txid, step, &StepRequest::default(), &pkey)?;
        }
        let settled = node.signing_as(Some(&buyer)).tx_get(&txid, &key)?;
        if settled.doc.state.as_str() != "settled" {
            bail!("{txid} is {}", settled.doc.state.as_str());
        }
        println!(
            "scheduled and settled: {txid} ({} {} of {} at {}, {} {}), proposed by the buyer, accepted, activated and settled by {}",
            tx.doc.units,
            tx.doc.unit,
            tx.doc.resource,
            at,
            settled.doc.price.total,
            settled.doc.price.currency,
            provider.agent
        );
        println!(
            "  cpid tx show {txid} -k {} --as {buyer} --server {at}",
            key_file.display()
        );
        println!(
            "  cpid tx list -k {} --server {at}      # the provider's transactions",
            provider.key.display()
        );
        Ok(())
    }
}

fn candidates(answer: &Value) -> Vec<Value> {
    answer
        .get("candidates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// A field of a JSON answer as text (`-` when absent).
fn field(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "-".into(),
    }
}
