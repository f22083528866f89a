//! `cpid serve` and `cpid node`: running a node and reading its facts.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use cpid::node::Node;

use super::{NodeOpts, shutdown_signal};

#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Print prefix, zone, public key (PEM), key id and record count.
    Info {
        #[command(flatten)]
        node: NodeOpts,
    },
}

pub(crate) fn run(command: NodeCommand) -> Result<()> {
    match command {
        NodeCommand::Info { node } => node_info(node),
    }
}

pub(crate) fn serve(
    opts: NodeOpts,
    dns: Option<SocketAddr>,
    udp_workers: Option<usize>,
    http: Option<SocketAddr>,
    policy: Option<String>,
) -> Result<()> {
    let mut config = opts.load()?;
    if let Some(addr) = http {
        config.http.listen = addr;
    }
    if let Some(p) = policy {
        config.registration.policy = match p.as_str() {
            "open" => cpid::config::Policy::Open,
            "review" => cpid::config::Policy::Review,
            other => bail!("--policy {other:?}: use open or review"),
        };
    }
    if let Some(addr) = dns {
        config.dns.listen = addr;
    }
    if let Some(n) = udp_workers {
        config.dns.udp_workers = n;
    }
    eprintln!("# cpid configuration in effect\n{}", config.to_toml());
    let started = std::time::Instant::now();
    let node = Node::open(config).context("opening the node")?;
    let reg = &node.registry;
    if node.key_created {
        eprintln!("generated node key {}", node.config.key_file().display());
    }
    if node.admin_key_created {
        eprintln!(
            "generated admin key {} (approves providers: cpid admin approve --key …)",
            node.config.admin_key_file().display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let running = node.serve().await?;
        eprintln!(
            "cpid serving zone {} ({} names, key id {}) on udp+tcp {}, http://{} — ready in {:.2?}",
            reg.zone().apex(),
            reg.zone().len(),
            reg.key().public().key_id(),
            running.dns_addr(),
            running.http_addr(),
            started.elapsed()
        );
        shutdown_signal().await;
        eprintln!("shutting down");
        running.shutdown().await?;
        anyhow::Ok(())
    })
}

fn node_info(opts: NodeOpts) -> Result<()> {
    let node = Node::open(opts.load()?)?;
    let reg = &node.registry;
    let public = reg.key().public();
    println!("prefix:   {}", reg.prefix());
    println!("zone:     {}", reg.zone().apex());
    println!("key id:   {}", public.key_id());
    println!("key file: {}", node.config.key_file().display());
    let admin_source = match &node.config.registration.admin_public_key_file {
        Some(path) => path.display().to_string(),
        None => node.config.admin_key_file().display().to_string(),
    };
    println!("admin:    {} ({admin_source})", node.admin_key.key_id());
    println!("policy:   {}", node.config.registration.policy.as_str());
    println!("records:  {}", reg.store().len()?);
    println!("serial:   {}", reg.zone().serial());
    print!("{}", public.to_public_pem());
    Ok(())
}
