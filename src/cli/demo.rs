//! `cpid demo`: a federation on loopback, ready to query, with sample
//! providers whose agents report live capacity.

use std::path::PathBuf;

use anyhow::Result;

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
        println!("  gateway             dns {gw}  http {http}  (knows only the national node)");
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
            println!("what the national node says about it (a referral, not data):");
            println!(
                "  dig @{} -p {} {name} TXT +norec",
                fed.national.running.dns_addr().ip(),
                fed.national.running.dns_addr().port()
            );
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
        println!("\nCtrl-C stops all four and the agents.");
        super::shutdown_signal().await;
        tokio::task::spawn_blocking(move || agents.stop()).await?;
        fed.shutdown().await?;
        anyhow::Ok(())
    })
}
