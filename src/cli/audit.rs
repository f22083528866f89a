//! `cpid audit`: follow a node's transparency log from the national key,
//! once or on an interval (the operation-security monitor).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;

use cpid::tlog::audit::{Audit, load_state, save_state};

use super::admin::read_public_key;

#[derive(Args, Clone)]
pub(crate) struct AuditOpts {
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8053")]
    server: String,
    /// The national root key (SPKI PEM): the node's key must chain to it.
    #[arg(long)]
    trust_anchor: PathBuf,
    /// Where what was verified is kept between runs.
    #[arg(long, default_value = "cpid-audit.json")]
    state: PathBuf,
    /// The node's DNS address for the served-answer check (default: the
    /// one `/v1/node` names).
    #[arg(long)]
    dns: Option<SocketAddr>,
    /// Identifiers compared with what the node serves, per run.
    #[arg(long, default_value_t = 20)]
    sample: usize,
    /// Run again every this many seconds (0: once).
    #[arg(long, default_value_t = 0)]
    interval: u64,
}

pub(crate) fn run(opts: &AuditOpts) -> Result<()> {
    let anchor = read_public_key(&opts.trust_anchor)?;
    let audit = Audit {
        api: &opts.server,
        trust_anchor: anchor,
        dns: opts.dns,
        sample: opts.sample,
    };
    loop {
        let mut state = load_state(&opts.state).map_err(anyhow::Error::msg)?;
        let outcome = audit.run(&mut state, cpid::clock::system_now());
        // What verified is kept even when something else is wrong.
        if let Some(s) = &state {
            save_state(&opts.state, s)
                .map_err(anyhow::Error::msg)
                .context("audit state")?;
        }
        let failed = match outcome {
            Ok(report) => {
                println!(
                    "{}: {} leaves ({} new since {}), {} identifiers compared with what the node serves",
                    report.origin,
                    report.size,
                    report.new_leaves,
                    report.previous_size,
                    report.sampled
                );
                for p in &report.problems {
                    println!("PROBLEM {p}");
                }
                (!report.problems.is_empty()).then(|| format!("{} problems", report.problems.len()))
            }
            Err(e) => {
                println!("FAILED {e}");
                Some(e)
            }
        };
        if opts.interval == 0 {
            if let Some(why) = failed {
                bail!("audit of {}: {why}", opts.server);
            }
            println!("ok: consistent with every checkpoint seen, every leaf signed, answers match");
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(opts.interval));
    }
}
