//! `cpid gateway`: the caching gateway from the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use cpid::resolution::gateway::{Gateway, GatewayConfig};

#[derive(Args, Clone)]
pub struct GatewayOpts {
    /// TOML configuration (zones/gateway.toml documents every key); defaults apply without one.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// National node DNS address (repeatable); overrides upstream.root_servers.
    #[arg(long = "root")]
    root: Vec<SocketAddr>,
    /// National node public key (SPKI PEM); overrides upstream.root_key_file.
    #[arg(long)]
    root_key: Option<PathBuf>,
    /// DNS listen address (UDP and TCP); overrides dns.listen.
    #[arg(long)]
    dns: Option<SocketAddr>,
    /// HTTP listen address; overrides http.listen.
    #[arg(long)]
    http: Option<SocketAddr>,
    /// L2 cache directory; overrides data_dir.
    #[arg(long)]
    data: Option<PathBuf>,
    /// UDP threads; overrides dns.udp_workers (0 = one per core).
    #[arg(long)]
    udp_workers: Option<usize>,
    /// Keep no on-disk cache.
    #[arg(long)]
    no_l2: bool,
}

pub fn run(opts: GatewayOpts) -> Result<()> {
    let mut config = match &opts.config {
        Some(path) => GatewayConfig::load(path)?,
        None => GatewayConfig::default(),
    };
    if !opts.root.is_empty() {
        config.upstream.root_servers = opts.root.clone();
    }
    if let Some(k) = opts.root_key {
        config.upstream.root_key_file = k;
    }
    if let Some(a) = opts.dns {
        config.dns.listen = a;
    }
    if let Some(a) = opts.http {
        config.http.listen = a;
    }
    if let Some(d) = opts.data {
        config.data_dir = d;
    }
    if let Some(n) = opts.udp_workers {
        config.dns.udp_workers = n;
    }
    if opts.no_l2 {
        config.cache.l2 = false;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let gateway = Gateway::open(config.clone()).context("opening the gateway")?;
        let running = cpid::resolution::gateway::serve(gateway).await?;
        eprintln!(
            "cpid gateway for {} (root {} key {}) on udp+tcp {}, http://{} — ready",
            config.upstream.root_prefix,
            config
                .upstream
                .root_servers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
            running.gateway.resolver().root().key.key_id(),
            running.dns_addr(),
            running.http_addr(),
        );
        super::shutdown_signal().await;
        eprintln!("shutting down");
        running.shutdown().await?;
        anyhow::Ok(())
    })
}
