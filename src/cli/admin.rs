//! `cpid admin`: approvals and delegations, signed by the node's admin key.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use cpid::ident::identifier::{Identifier, Prefix};
use cpid::ident::keys::PublicKey;

use super::load_key;
use super::provider::{ApiOpts, print_reply};

#[derive(Subcommand)]
pub(crate) enum AdminCommand {
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
        /// The child's HTTP API, e.g. http://127.0.0.1:8054: this node pulls
        /// the child's signed situation summary there (national roll-up).
        #[arg(long = "api", value_name = "URL")]
        child_api: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        valid_days: u64,
        /// Write the child's chain (root first) here, for its [federation] chain_file.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Replace this node's admin key: the admin key in force (--key) signs
    /// the new one in; the node keeps it across restarts.
    ReplaceKey {
        #[command(flatten)]
        api: ApiOpts,
        /// The new admin key (PKCS#8 PEM, e.g. from `cpid key generate`).
        #[arg(long, value_name = "FILE")]
        new: PathBuf,
    },
    /// Revoke the delegation of a child prefix (signed by the admin key).
    Revoke {
        /// Child prefix, e.g. 86.31
        prefix: String,
        #[command(flatten)]
        api: ApiOpts,
    },
    /// The node's security events (signed by the admin key): signature
    /// failures, replays, refused steps, verification failures, split views,
    /// data-quality findings, rate limiting.
    Events {
        #[command(flatten)]
        api: ApiOpts,
        /// Only this kind, e.g. signature_failure or split_view.
        #[arg(long)]
        kind: Option<String>,
        /// Only events after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// The node's risk assessment (GET /v1/admin/risk, signed by the admin
    /// key): findings with severity and fix; exits 2 on a high finding.
    Risk {
        /// The admin key (PKCS#8 PEM), e.g. ./cpid-data/admin-key.pem.
        #[arg(long, short = 'k')]
        key: PathBuf,
        /// The node's HTTP API.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        server: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending provider or buyer (signed by the admin key, e.g. ./cpid-data/admin-key.pem).
    Approve {
        /// Provider or buyer identifier, e.g. 86/PV-000001-X or 86/US-000001-Y
        id: String,
        #[command(flatten)]
        api: ApiOpts,
    },
}

pub(crate) fn run(command: AdminCommand) -> Result<()> {
    match command {
        AdminCommand::ReplaceKey { api, new } => {
            let admin = load_key(&api.key)?;
            let new = load_key(&new)?;
            let body = serde_json::json!({ "public_key": new.public().to_public_pem() });
            let r = api
                .client()?
                .signed("POST", "/v1/admin/key", Some(&body), &admin)?;
            anyhow::ensure!(
                r.status == 200,
                "POST /v1/admin/key: {} {}",
                r.status,
                r.text.trim()
            );
            eprintln!(
                "the admin key is now {} (was {})",
                new.public().key_id(),
                admin.public().key_id()
            );
            Ok(())
        }
        AdminCommand::Approve { id, api } => {
            let id = Identifier::parse(&id)?;
            let admin = load_key(&api.key)?;
            let reply = if id.class() == cpid::ident::identifier::Class::Us {
                api.client()?.approve_user(&id, &admin)?
            } else {
                api.client()?.approve(&id, &admin)?
            };
            print_reply(&api, reply)
        }
        AdminCommand::Delegate {
            api,
            prefix,
            child_key,
            ns,
            child_api,
            valid_days,
            out,
        } => {
            if let Some(url) = &child_api {
                cpid::ident::delegation::check_api_url(url).map_err(anyhow::Error::msg)?;
            }
            let child = read_public_key(&child_key)?;
            let admin = load_key(&api.key)?;
            let servers = parse_servers(&ns)?;
            let prefix = Prefix::parse(&prefix)?;
            let chain = cpid::testkit::federation::delegate(
                &api.server,
                &admin,
                &prefix,
                &child,
                &servers,
                child_api,
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
        AdminCommand::Events {
            api,
            kind,
            after,
            limit,
        } => {
            let admin = load_key(&api.key)?;
            let mut query = format!("?limit={limit}");
            if let Some(k) = kind {
                query.push_str(&format!("&kind={k}"));
            }
            if let Some(a) = after {
                query.push_str(&format!("&after={a}"));
            }
            let r = api
                .client()?
                .signed("GET", &format!("/v1/events{query}"), None, &admin)?;
            if r.status != 200 {
                anyhow::bail!("GET /v1/events: {} {}", r.status, r.text.trim());
            }
            if api.json {
                println!("{}", r.body);
                return Ok(());
            }
            let empty = Vec::new();
            let events = r
                .body
                .get("events")
                .and_then(|v| v.as_array())
                .unwrap_or(&empty);
            for e in events {
                println!(
                    "{:>6}  {:<20} {:>6}×  {:<24} {:<40} {}",
                    e["seq"],
                    e["kind"].as_str().unwrap_or_default(),
                    e["count"],
                    e["source"].as_str().unwrap_or_default(),
                    e["subject"].as_str().unwrap_or_default(),
                    e["detail"].as_str().unwrap_or_default()
                );
            }
            match r.body.get("next").and_then(serde_json::Value::as_u64) {
                Some(next) => eprintln!("{} event(s); next page: --after {next}", events.len()),
                None => eprintln!("no events"),
            }
            Ok(())
        }
        AdminCommand::Risk { key, server, json } => super::doctor::admin_risk(&server, &key, json),
        AdminCommand::Revoke { prefix, api } => {
            let prefix = Prefix::parse(&prefix)?;
            let admin = load_key(&api.key)?;
            print_reply(&api, api.client()?.revoke(&prefix, &admin)?)
        }
    }
}

/// A public key from an SPKI PEM file or a PKCS#8 key file.
pub(crate) fn read_public_key(path: &std::path::Path) -> Result<PublicKey> {
    PublicKey::load(path)
        .with_context(|| format!("{} is neither a public key nor a key file", path.display()))
}

/// `NAME=ADDR:PORT[,ADDR:PORT...]` arguments.
fn parse_servers(args: &[String]) -> Result<Vec<cpid::ident::delegation::Server>> {
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
            Ok(cpid::ident::delegation::Server {
                name: name.trim().to_string(),
                addresses,
            })
        })
        .collect()
}
