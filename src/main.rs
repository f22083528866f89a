//! The `cpid` command line.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};

use cpid::config::Config;
use cpid::identifier::{Apex, Identifier};
use cpid::keys::{NodeKey, PublicKey};
use cpid::node::Node;

#[derive(Parser)]
#[command(
    name = "cpid",
    version,
    about = "Identifier registry and resolution server for computing-power resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the node's configuration and data are.
#[derive(Args, Clone)]
struct NodeOpts {
    /// TOML configuration (zones/national.toml documents every key); defaults apply without one.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Data directory (store and node key); overrides node.data_dir.
    #[arg(long)]
    data: Option<PathBuf>,
}

impl NodeOpts {
    fn load(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data {
            config.node.data_dir = d.clone();
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run a node: DNS over UDP and TCP from the hot tier (default: national root 86, ./cpid-data, 127.0.0.1:5300).
    Serve {
        #[command(flatten)]
        node: NodeOpts,
        /// DNS listen address; overrides dns.listen.
        #[arg(long)]
        dns: Option<SocketAddr>,
        /// UDP fast-path threads; overrides dns.udp_workers (0 = one per core).
        #[arg(long)]
        udp_workers: Option<usize>,
    },
    /// Node facts: prefix, zone, public key and key id, record count.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// Key management.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Zone files: export as an RFC 1035 master file, import records.
    Zone {
        #[command(subcommand)]
        command: ZoneCommand,
    },
    /// Resolve an identifier over DNS, verify its signature, print the record.
    Resolve {
        /// Identifier, e.g. 86.31.1005/IC-0000A7-K
        id: String,
        /// DNS server to ask.
        #[arg(long, short = 's', default_value = "127.0.0.1:5300")]
        server: SocketAddr,
        /// DNS apex of the federation.
        #[arg(long, default_value = "cpid.internal")]
        apex: String,
        /// Pinned node public key (SPKI PEM file); without it the key is read from the zone apex.
        #[arg(long)]
        node_key: Option<PathBuf>,
        /// Query over TCP.
        #[arg(long)]
        tcp: bool,
        /// Print the record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Benchmark helpers.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// Print prefix, zone, public key (PEM), key id and record count.
    Info {
        #[command(flatten)]
        node: NodeOpts,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Generate an Ed25519 key as PKCS#8 PEM (mode 0600) and print its public key.
    Generate {
        /// File to create; refuses to overwrite.
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
enum ZoneCommand {
    /// Write the node's zone as a master file (stdout unless --out).
    Export {
        #[command(flatten)]
        node: NodeOpts,
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Load records from a master file (signed TYPE65280 records) or a TOML records file.
    Import {
        file: PathBuf,
        #[command(flatten)]
        node: NodeOpts,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Fill a store with N realistic resource identifiers.
    Seed {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[command(flatten)]
        node: NodeOpts,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cpid=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            node,
            dns,
            udp_workers,
        } => serve(node, dns, udp_workers),
        Command::Node {
            command: NodeCommand::Info { node },
        } => node_info(node),
        Command::Key {
            command: KeyCommand::Generate { out },
        } => key_generate(out),
        Command::Zone { command } => zone(command),
        Command::Resolve {
            id,
            server,
            apex,
            node_key,
            tcp,
            json,
        } => resolve(&id, server, &apex, node_key, tcp, json),
        Command::Bench {
            command: BenchCommand::Seed { count, node },
        } => seed(count, node),
    }
}

fn serve(opts: NodeOpts, dns: Option<SocketAddr>, udp_workers: Option<usize>) -> Result<()> {
    let mut config = opts.load()?;
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let running = node.serve().await?;
        eprintln!(
            "cpid serving zone {} ({} names, key id {}) on udp+tcp {} — ready in {:.2?}",
            reg.zone().apex(),
            reg.zone().len(),
            reg.key().public().key_id(),
            running.dns_addr(),
            started.elapsed()
        );
        shutdown_signal().await;
        eprintln!("shutting down");
        running.shutdown().await?;
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn node_info(opts: NodeOpts) -> Result<()> {
    let node = Node::open(opts.load()?)?;
    let reg = &node.registry;
    let public = reg.key().public();
    println!("prefix:   {}", reg.prefix());
    println!("zone:     {}", reg.zone().apex());
    println!("key id:   {}", public.key_id());
    println!("key file: {}", node.config.key_file().display());
    println!("records:  {}", reg.store().len()?);
    println!("serial:   {}", reg.zone().serial());
    print!("{}", public.to_public_pem());
    Ok(())
}

fn key_generate(out: PathBuf) -> Result<()> {
    let key = NodeKey::generate()?;
    key.write_new(&out)
        .with_context(|| format!("writing {}", out.display()))?;
    let public = key.public();
    eprintln!(
        "wrote {} (mode 0600), key id {}",
        out.display(),
        public.key_id()
    );
    print!("{}", public.to_public_pem());
    Ok(())
}

fn zone(command: ZoneCommand) -> Result<()> {
    match command {
        ZoneCommand::Export { node, out } => {
            let node = Node::open(node.load()?)?;
            let zone = node.registry.zone();
            let n = match out {
                Some(path) => {
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                    let n = cpid::zonefile::export(zone, &mut f)?;
                    f.flush()?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = std::io::BufWriter::new(stdout.lock());
                    let n = cpid::zonefile::export(zone, &mut lock)?;
                    lock.flush()?;
                    n
                }
            };
            eprintln!("exported {n} records of zone {}", zone.apex());
        }
        ZoneCommand::Import { file, node } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let node = Node::open(node.load()?)?;
            let report = cpid::zonefile::import(&node.registry, &text)?;
            eprintln!(
                "imported {}: {} issued, {} updated, {} unchanged",
                file.display(),
                report.issued,
                report.updated,
                report.unchanged
            );
        }
    }
    Ok(())
}

fn resolve(
    id: &str,
    server: SocketAddr,
    apex: &str,
    node_key: Option<PathBuf>,
    tcp: bool,
    json: bool,
) -> Result<()> {
    let id = Identifier::parse(id)?;
    let apex = Apex::parse(apex)?;
    let pinned = match node_key {
        Some(path) => {
            let pem = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(PublicKey::from_public_pem(&pem)?)
        }
        None => None,
    };
    let resolved = cpid::client::resolve(server, &id, &apex, pinned, tcp)?;
    let r = resolved.record.record();
    if json {
        println!("{}", cpid::record::to_json(&resolved.record));
    } else {
        println!("identifier: {}", r.identifier);
        println!("dns name:   {}", id.to_dns_name(&apex));
        println!("version:    {}", r.version);
        println!("status:     {:?}", r.status);
        if let Some(owner) = &r.owner {
            println!("owner:      {owner}");
        }
        println!("issuer:     {}", r.issuer);
        for v in &r.values {
            let ttl = match v.ttl {
                0 => "node default".to_string(),
                t => format!("{t} s"),
            };
            println!("  [{}] {} (ttl {ttl}): {}", v.index, v.kind, v.data);
        }
    }
    let source = if resolved.key_from_dns {
        "key read from the zone apex; pin it with --node-key"
    } else {
        "pinned key"
    };
    eprintln!(
        "signature: valid (Ed25519, node key {}; {source})",
        resolved.node_key.key_id()
    );
    Ok(())
}

fn seed(count: u64, opts: NodeOpts) -> Result<()> {
    let node = Node::open(opts.load()?)?;
    let reg = &node.registry;
    let bar = indicatif::ProgressBar::new(count);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} identifiers {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let at = cpid::registry::now();
    let base = reg.store().len()?;
    let mut n = 0u64;
    while n < count {
        let chunk = (count - n).min(5_000);
        let news = (n..n + chunk)
            .map(|i| cpid::seed::synthetic(reg.prefix(), base + i, at))
            .collect::<Result<Vec<_>, _>>()?;
        reg.issue_many(news)?;
        n += chunk;
        bar.set_position(n);
    }
    bar.finish();
    if count == 0 {
        bail!("nothing to seed: --count 0");
    }
    eprintln!(
        "seeded {count} identifiers into {}",
        node.config.node.data_dir.display()
    );
    Ok(())
}
