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

#[path = "cli/demo.rs"]
mod demo;
#[path = "cli/gateway.rs"]
mod gateway;

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
        /// HTTP API listen address; overrides http.listen.
        #[arg(long)]
        http: Option<SocketAddr>,
        /// Provider policy (open or review); overrides registration.policy.
        #[arg(long)]
        policy: Option<String>,
    },
    /// Providers: self-registration with a signed request.
    Provider {
        #[command(subcommand)]
        command: ProviderCommand,
    },
    /// Register a resource identifier (signed by an active provider's key).
    Register {
        #[command(flatten)]
        api: ApiOpts,
        /// Class: GC, IC, SC, ST, NL or AS (issued under the node's prefix).
        #[arg(long)]
        class: String,
        #[command(flatten)]
        values: ValueOpts,
    },
    /// Replace the values of an identifier you own (version + 1).
    Update {
        /// Identifier, e.g. 86/IC-000001-4
        id: String,
        #[command(flatten)]
        api: ApiOpts,
        #[command(flatten)]
        values: ValueOpts,
    },
    /// Withdraw an identifier you own: a signed tombstone; the code is never reissued.
    Withdraw {
        /// Identifier, e.g. 86/IC-000001-4
        id: String,
        #[command(flatten)]
        api: ApiOpts,
    },
    /// Node administration (signed by the node's admin key).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
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
        /// The national root key (SPKI PEM): resolve from the root at --server
        /// down the delegations, verify every link and print the chain.
        #[arg(long, conflicts_with = "node_key")]
        trust_anchor: Option<PathBuf>,
    },
    /// Run a caching gateway: DNS (UDP/TCP) and HTTP reads for any identifier
    /// in the federation, starting from the national node alone.
    Gateway {
        #[command(flatten)]
        opts: gateway::GatewayOpts,
    },
    /// Start a demo federation on loopback: national, Shanghai, an industry
    /// node and a gateway, with delegations and sample records.
    Demo {
        /// Where the four nodes keep their data (reused when it exists).
        #[arg(long, default_value = "./cpid-demo")]
        dir: PathBuf,
    },
    /// Benchmark helpers.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

/// Where the HTTP API is and which key signs.
#[derive(Args, Clone)]
struct ApiOpts {
    /// Signing key (PKCS#8 PEM, as `cpid key generate` writes).
    #[arg(long, short = 'k')]
    key: PathBuf,
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8053")]
    server: String,
    /// Print the signed record as JSON.
    #[arg(long)]
    json: bool,
}

/// Values from the command line or a JSON file.
#[derive(Args, Clone)]
struct ValueOpts {
    /// A value as TYPE=DATA (repeatable), e.g. --value CP.ENDPOINT=https://pool.example/v1
    #[arg(long = "value", value_name = "TYPE=DATA")]
    values: Vec<String>,
    /// A JSON file: an array of {"type", "data", "ttl"?, "index"?} or an object with "values".
    #[arg(long, conflicts_with = "values")]
    file: Option<PathBuf>,
}

impl ValueOpts {
    fn load(&self) -> Result<serde_json::Value> {
        if let Some(path) = &self.file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            return Ok(match v {
                serde_json::Value::Object(mut o) => o
                    .remove("values")
                    .with_context(|| format!("{} has no \"values\"", path.display()))?,
                other => other,
            });
        }
        if self.values.is_empty() {
            bail!("give at least one --value TYPE=DATA or --file");
        }
        let mut out = Vec::new();
        for v in &self.values {
            let (kind, data) = v
                .split_once('=')
                .with_context(|| format!("--value {v:?} is not TYPE=DATA"))?;
            out.push(serde_json::json!({ "type": kind, "data": data }));
        }
        Ok(serde_json::Value::Array(out))
    }
}

#[derive(Subcommand)]
enum ProviderCommand {
    /// Register a provider signed by its own key; prints the PV identifier.
    Register {
        #[command(flatten)]
        api: ApiOpts,
        /// Provider name.
        #[arg(long)]
        name: String,
        /// Organisation code (e.g. the unified social credit code).
        #[arg(long)]
        organisation: String,
        /// Contact e-mail address.
        #[arg(long)]
        contact: String,
        /// GB/T 2260 province code, e.g. 31 (Shanghai).
        #[arg(long)]
        region: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Delegate a child prefix to a child node's key (signed by the admin key); writes the child's chain.
    Delegate {
        #[command(flatten)]
        api: ApiOpts,
        /// Child prefix, one segment below this node's, e.g. 86.31
        #[arg(long)]
        prefix: String,
        /// The child node's public key: SPKI PEM, or its PKCS#8 key file.
        #[arg(long)]
        child_key: PathBuf,
        /// A child name server as NAME=ADDR:PORT[,ADDR:PORT...] (repeatable),
        /// e.g. ns1.31.86.cpid.internal=127.0.0.1:5301
        #[arg(long = "ns", value_name = "NAME=ADDR:PORT", required = true)]
        ns: Vec<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
        /// Write the child's chain (root first) here, for its [federation] chain_file.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Revoke the delegation of a child prefix (signed by the admin key).
    Revoke {
        /// Child prefix, e.g. 86.31
        prefix: String,
        #[command(flatten)]
        api: ApiOpts,
    },
    /// Approve a pending provider (signed by the admin key, e.g. ./cpid-data/admin-key.pem).
    Approve {
        /// Provider identifier, e.g. 86/PV-000001-X
        id: String,
        #[command(flatten)]
        api: ApiOpts,
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
            http,
            policy,
        } => serve(node, dns, udp_workers, http, policy),
        Command::Provider {
            command:
                ProviderCommand::Register {
                    api,
                    name,
                    organisation,
                    contact,
                    region,
                },
        } => {
            let key = load_key(&api.key)?;
            let body = serde_json::json!({
                "name": name,
                "organisation": organisation,
                "contact": contact,
                "region": region,
                "public_key": key.public().to_public_pem(),
            });
            api_call(&api, "POST", "/v1/providers", Some(&body))
        }
        Command::Register { api, class, values } => {
            let body = serde_json::json!({ "class": class, "values": values.load()? });
            api_call(&api, "POST", "/v1/identifiers", Some(&body))
        }
        Command::Update { id, api, values } => {
            let id = Identifier::parse(&id)?;
            let body = serde_json::json!({ "values": values.load()? });
            api_call(&api, "PUT", &format!("/v1/identifiers/{id}"), Some(&body))
        }
        Command::Withdraw { id, api } => {
            let id = Identifier::parse(&id)?;
            api_call(&api, "DELETE", &format!("/v1/identifiers/{id}"), None)
        }
        Command::Admin {
            command: AdminCommand::Approve { id, api },
        } => {
            let id = Identifier::parse(&id)?;
            api_call(
                &api,
                "POST",
                &format!("/v1/admin/providers/{id}/approve"),
                None,
            )
        }
        Command::Admin {
            command:
                AdminCommand::Delegate {
                    api,
                    prefix,
                    child_key,
                    ns,
                    valid_days,
                    out,
                },
        } => {
            let child = read_public_key(&child_key)?;
            let admin = load_key(&api.key)?;
            let servers = parse_servers(&ns)?;
            let prefix = cpid::identifier::Prefix::parse(&prefix)?;
            let chain = cpid::federation::delegate(
                &api.server,
                &admin,
                &prefix,
                &child,
                &servers,
                valid_days,
            )?;
            let text = serde_json::to_string_pretty(&chain)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n"))
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "delegated {prefix} to key {}; chain of {} link(s) written to {}",
                        child.key_id(),
                        chain.chain.len(),
                        path.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(())
        }
        Command::Admin {
            command: AdminCommand::Revoke { prefix, api },
        } => api_call(
            &api,
            "DELETE",
            &format!("/v1/admin/delegations/{prefix}"),
            None,
        ),
        Command::Gateway { opts } => gateway::run(opts),
        Command::Demo { dir } => demo::run(dir),
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
            trust_anchor,
        } => match trust_anchor {
            Some(anchor) => resolve_chain(&id, server, &apex, &anchor, json),
            None => resolve(&id, server, &apex, node_key, tcp, json),
        },
        Command::Bench {
            command: BenchCommand::Seed { count, node },
        } => seed(count, node),
    }
}

/// A public key from an SPKI PEM file or a PKCS#8 key file.
fn read_public_key(path: &std::path::Path) -> Result<PublicKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(key) = PublicKey::from_public_pem(&pem) {
        return Ok(key);
    }
    Ok(NodeKey::from_pkcs8_pem(&pem)
        .with_context(|| format!("{} is neither a public key nor a key file", path.display()))?
        .public())
}

/// `NAME=ADDR:PORT[,ADDR:PORT...]` arguments.
fn parse_servers(args: &[String]) -> Result<Vec<cpid::delegation::Server>> {
    args.iter()
        .map(|a| {
            let (name, addrs) = a
                .split_once('=')
                .with_context(|| format!("--ns {a:?} is not NAME=ADDR:PORT"))?;
            let addresses = addrs
                .split(',')
                .map(|x| x.trim().parse::<SocketAddr>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("--ns {a:?}: addresses are ADDR:PORT"))?;
            Ok(cpid::delegation::Server {
                name: name.trim().to_string(),
                addresses,
            })
        })
        .collect()
}

fn load_key(path: &std::path::Path) -> Result<NodeKey> {
    NodeKey::load(path).with_context(|| format!("signing key {}", path.display()))
}

/// Sends one signed request; prints the identifier (or the record with
/// `--json`), or the node's error and a non-zero exit.
fn api_call(
    api: &ApiOpts,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<()> {
    let key = load_key(&api.key)?;
    let client = cpid::api::client::ApiClient::new(&api.server);
    let response = client.signed(method, path, body, &key)?;
    if !(200..300).contains(&response.status) {
        let code = response.body["error"].as_str().unwrap_or("error");
        let reason = response.body["reason"].as_str().unwrap_or(&response.text);
        bail!("{} {}: {code}: {reason}", method, path);
    }
    if api.json {
        println!("{}", serde_json::to_string_pretty(&response.body)?);
    } else {
        let id = response.body["identifier"].as_str().unwrap_or("?");
        let status = response.body["status"].as_str().unwrap_or("?");
        let version = &response.body["version"];
        println!("{id}");
        eprintln!("{status}, version {version}");
    }
    Ok(())
}

fn serve(
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

/// `cpid resolve --trust-anchor`: from the root down, printing each link.
fn resolve_chain(
    id: &str,
    root: SocketAddr,
    apex: &str,
    anchor: &std::path::Path,
    json: bool,
) -> Result<()> {
    use cpid::delegation::TrustedZone;
    let id = Identifier::parse(id)?;
    let apex = Apex::parse(apex)?;
    let key = read_public_key(anchor)?;
    let root_prefix = cpid::identifier::Prefix::parse(
        id.prefix()
            .segments()
            .next()
            .context("identifier without a prefix")?,
    )?;
    let resolver = cpid::resolver::Resolver::new(
        TrustedZone::root(root_prefix, key, vec![root]),
        apex,
        std::time::Duration::from_secs(3),
        3600,
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(resolver.resolve_identifier(&id));
    let print_path = |path: &[TrustedZone]| {
        for z in path {
            match &z.via {
                None => eprintln!(
                    "  root    {:<12} key {}  (trust anchor {})",
                    z.prefix.to_string(),
                    z.key.key_id(),
                    anchor.display()
                ),
                Some(rec) => eprintln!(
                    "  link    {:<12} key {}  delegated by {} (v{}), valid until {}, servers {}",
                    z.prefix.to_string(),
                    z.key.key_id(),
                    rec.record().identifier,
                    rec.record().version,
                    z.valid_until,
                    z.servers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            }
        }
    };
    eprintln!("chain of trust for {id}:");
    match result {
        Ok((cpid::resolver::Outcome::Record { record, ttl }, path)) => {
            print_path(&path);
            let r = record.record();
            eprintln!(
                "  record  {} v{} signed by {}: valid (ttl {ttl} s)",
                r.identifier, r.version, r.issuer
            );
            if json {
                println!("{}", cpid::record::to_json(&record));
            } else {
                for v in &r.values {
                    println!("[{}] {}: {}", v.index, v.kind, v.data);
                }
            }
            Ok(())
        }
        Ok((cpid::resolver::Outcome::Negative { .. }, path)) => {
            print_path(&path);
            let zone = path.last().cloned().context("empty chain")?;
            if let Some(why) = rt.block_on(resolver.explain_missing(&zone, &id)) {
                eprintln!("  BROKEN  {why}");
                bail!("{id}: broken chain: {why}");
            }
            bail!("{id} does not exist (NXDOMAIN from zone {})", zone.prefix)
        }
        Err(e) => {
            eprintln!("  BROKEN  {e}");
            bail!("{id}: {e}")
        }
    }
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
