//! The `cpid` command line: the argument grammar and one dispatch; each
//! command family lives in its own file.

mod admin;
mod agent;
mod audit;
mod bench;
mod demo;
mod doctor;
mod gateway;
mod key;
mod node;
mod provider;
mod resolve;
mod select;
mod situation;
mod trade;
mod zone;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use cpid::config::Config;
use cpid::ident::keys::NodeKey;

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
pub(crate) struct NodeOpts {
    /// TOML configuration (zones/national.toml documents every key); defaults apply without one.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Data directory (store and node key); overrides node.data_dir.
    #[arg(long)]
    data: Option<PathBuf>,
}

impl NodeOpts {
    pub(crate) fn load(&self) -> Result<Config> {
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
pub(crate) enum Command {
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
        command: provider::ProviderCommand,
    },
    /// Buyers: self-registration with a signed request (`US` identifiers).
    User {
        #[command(subcommand)]
        command: trade::UserCommand,
    },
    /// Transactions: propose, accept, reject, activate, settle, cancel, show, list.
    Tx {
        #[command(subcommand)]
        command: trade::TxCommand,
    },
    /// Select compute: ranked candidates with paths and the reasons the rest were left out.
    Select {
        /// The node's HTTP API.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        server: String,
        /// Print the whole answer as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        requirement: select::RequirementOpts,
    },
    /// Schedule: select and propose on the best candidate in one signed call (the buyer).
    Schedule {
        #[command(flatten)]
        api: provider::ApiOpts,
        #[command(flatten)]
        requirement: select::RequirementOpts,
    },
    /// Register a resource identifier (signed by an active provider's key).
    Register {
        #[command(flatten)]
        api: provider::ApiOpts,
        /// Class: GC, IC, SC, ST, NL or AS (issued under the node's prefix).
        #[arg(long)]
        class: String,
        #[command(flatten)]
        values: provider::ValueOpts,
    },
    /// Replace the values of an identifier you own (version + 1).
    Update {
        /// Identifier, e.g. 86/IC-000001-4
        id: String,
        #[command(flatten)]
        api: provider::ApiOpts,
        #[command(flatten)]
        values: provider::ValueOpts,
    },
    /// Withdraw an identifier you own: a signed tombstone; the code is never reissued.
    Withdraw {
        /// Identifier, e.g. 86/IC-000001-4
        id: String,
        #[command(flatten)]
        api: provider::ApiOpts,
    },
    /// The monitoring agent: registers an inventory's resources and reports
    /// their live status every interval (Ctrl-C stops it).
    Agent {
        #[command(flatten)]
        opts: agent::AgentOpts,
    },
    /// Send one status report by hand: ID=AVAILABLE/IN_USE[:HEALTH] per resource.
    Report {
        #[command(flatten)]
        opts: agent::ReportOpts,
    },
    /// Node administration (signed by the node's admin key).
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Node facts (prefix, zone, key, record count); backup and restore of its store.
    Node {
        #[command(subcommand)]
        command: node::NodeCommand,
    },
    /// Key management.
    Key {
        #[command(subcommand)]
        command: key::KeyCommand,
    },
    /// Zone files: export as an RFC 1035 master file, import records.
    Zone {
        #[command(subcommand)]
        command: zone::ZoneCommand,
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
        /// The issuing node's HTTP API: also check that the record is a leaf
        /// of the node's transparency log (inclusion proof against a
        /// checkpoint signed by the node key).
        #[arg(long, value_name = "URL")]
        verify_log: Option<String>,
        /// With --trust-anchor: take a negative answer without a DNSSEC
        /// denial (a federation whose nodes run with [dns.dnssec] off).
        #[arg(long, requires = "trust_anchor")]
        accept_unsigned_denial: bool,
    },
    /// Run a caching gateway: DNS (UDP/TCP) and HTTP reads for any identifier
    /// in the federation, starting from the national node alone.
    Gateway {
        #[command(flatten)]
        opts: gateway::GatewayOpts,
    },
    /// Start a demo federation on loopback: national, Shanghai, an industry
    /// node and a gateway, with delegations, sample records and providers in
    /// five provinces whose agents report live capacity.
    Demo {
        /// Where the four nodes keep their data (reused when it exists).
        #[arg(long, default_value = "./cpid-demo")]
        dir: PathBuf,
    },
    /// Audit a node's transparency log: every checkpoint consistent with the
    /// last one seen, every leaf signed, and what the node serves over HTTP
    /// and DNS the latest leaf; exits non-zero naming what is wrong.
    Audit {
        #[command(flatten)]
        opts: audit::AuditOpts,
    },
    /// Risk assessment: what in a node's configuration and state is unsafe,
    /// each finding with its severity and fix; exits 2 on a high finding.
    ///
    /// Reads the configuration, the files it names and a stopped node's
    /// store (read-only); a running node is asked over GET /v1/admin/risk
    /// with its admin key. Example: cpid doctor -c national.toml --json
    Doctor {
        #[command(flatten)]
        opts: doctor::DoctorOpts,
    },
    /// The live situation of a node (GET /v1/situation) as tables, or its JSON.
    Situation {
        #[command(flatten)]
        opts: situation::SituationOpts,
    },
    /// Benchmark helpers.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// Parses the command line and runs the command.
pub fn run() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,cpid=info")),
        )
        .with_writer(std::io::stderr)
        // Colour for a terminal only: logs in files and journals stay plain.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve {
            node,
            dns,
            udp_workers,
            http,
            policy,
        } => node::serve(node, dns, udp_workers, http, policy),
        Command::Provider { command } => provider::provider(command),
        Command::User { command } => trade::user(command),
        Command::Tx { command } => trade::tx(command),
        Command::Select {
            server,
            json,
            requirement,
        } => select::select(&server, json, &requirement),
        Command::Schedule { api, requirement } => select::schedule(&api, &requirement),
        Command::Register { api, class, values } => provider::register(&api, &class, &values),
        Command::Update { id, api, values } => provider::update(&id, &api, &values),
        Command::Withdraw { id, api } => provider::withdraw(&id, &api),
        Command::Agent { opts } => agent::agent(opts),
        Command::Report { opts } => agent::report(opts),
        Command::Admin { command } => admin::run(command),
        Command::Gateway { opts } => gateway::run(opts),
        Command::Demo { dir } => demo::run(dir),
        Command::Node { command } => node::run(command),
        Command::Key { command } => key::run(command),
        Command::Zone { command } => zone::run(command),
        Command::Resolve {
            id,
            server,
            apex,
            node_key,
            tcp,
            json,
            trust_anchor,
            verify_log,
            accept_unsigned_denial,
        } => match trust_anchor {
            Some(anchor) => resolve::chain(
                &id,
                server,
                &apex,
                &anchor,
                json,
                verify_log.as_deref(),
                !accept_unsigned_denial,
            ),
            None => resolve::direct(
                &id,
                server,
                &apex,
                node_key,
                tcp,
                json,
                verify_log.as_deref(),
            ),
        },
        Command::Situation { opts } => situation::run(&opts),
        Command::Doctor { opts } => doctor::run(&opts),
        Command::Audit { opts } => audit::run(&opts),
        Command::Bench { command } => bench::run(command),
    }
}

pub(crate) fn load_key(path: &std::path::Path) -> Result<NodeKey> {
    NodeKey::load(path).with_context(|| format!("signing key {}", path.display()))
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
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
