//! `cpid doctor` and `cpid admin risk`: the node's risk assessment
//! (`cpid::doctor`), as text or JSON; exit code 2 when a finding is high.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

use cpid::doctor::{self, Report, RiskError};
use cpid::ident::keys::NodeKey;
use cpid::store::StoreError;

use super::{NodeOpts, load_key};

#[derive(Args)]
pub(crate) struct DoctorOpts {
    #[command(flatten)]
    node: NodeOpts,
    /// An offline RustSec advisory database (crates/<name>/RUSTSEC-*.md);
    /// overrides [risk] advisory_db (default: ../shared/advisory-db when it exists).
    #[arg(long, value_name = "PATH")]
    advisory_db: Option<PathBuf>,
    /// Days before a delegation ends that it becomes a finding; overrides
    /// [risk] expiry_window_days (7).
    #[arg(long, value_name = "DAYS")]
    expiry_window_days: Option<u64>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// A running node's HTTP API, asked when the store is in use
    /// (default: http://<http.listen>).
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// The admin key that signs the request to a running node (default:
    /// <data>/admin-key.pem).
    #[arg(long, value_name = "FILE")]
    admin_key: Option<PathBuf>,
}

/// `cpid doctor`: a stopped node's store read-only; a running node (its
/// store held) over `GET /v1/admin/risk`.
pub(crate) fn run(opts: &DoctorOpts) -> Result<()> {
    let mut config = opts.node.load()?;
    if let Some(db) = &opts.advisory_db {
        config.risk.advisory_db = Some(db.clone());
    }
    if let Some(days) = opts.expiry_window_days {
        config.risk.expiry_window_days = days;
    }
    config.validate()?;
    let report = match doctor::State::read_stopped(&config) {
        Ok(state) => doctor::assess(&config, state.as_ref(), cpid::clock::system_now()),
        Err(RiskError::Store(StoreError::InUse(_))) => {
            let server = match &opts.server {
                Some(s) => s.clone(),
                None => {
                    let mut addr = config.http.listen;
                    if addr.ip().is_unspecified() {
                        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                    }
                    format!("http://{addr}")
                }
            };
            let key_path = opts
                .admin_key
                .clone()
                .unwrap_or_else(|| config.admin_key_file());
            eprintln!(
                "the store is held by a running node: asking it at {server}/v1/admin/risk \
                 (its own [risk] settings apply)"
            );
            let admin = load_key(&key_path).with_context(|| {
                "a running node is asked with its admin key: pass --admin-key".to_string()
            })?;
            ask(&server, &admin)?
        }
        Err(e) => return Err(e).context("reading the node's store"),
    };
    print(&report, opts.json)
}

/// `GET /v1/admin/risk` signed by `admin`.
pub(crate) fn ask(server: &str, admin: &NodeKey) -> Result<Report> {
    let r =
        cpid::api::client::ApiClient::new(server).signed("GET", "/v1/admin/risk", None, admin)?;
    if r.status != 200 {
        bail!("GET /v1/admin/risk: {} {}", r.status, r.text.trim());
    }
    Ok(Report::from_json(&r.body)?)
}

/// `cpid admin risk`.
pub(crate) fn admin_risk(server: &str, key: &Path, json: bool) -> Result<()> {
    let admin = load_key(key)?;
    print(&ask(server, &admin)?, json)
}

/// Prints the report; exits 2 when a finding is high.
fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.to_text());
    }
    let code = report.exit_code();
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}
