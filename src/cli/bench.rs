//! `cpid bench`: helpers for the benchmarks.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;

use cpid::api::body::ProviderRequest;
use cpid::ident::identifier::{Class, Identifier};
use cpid::ident::keys::NodeKey;
use cpid::ident::record::RecordStatus;
use cpid::node::Node;
use cpid::registry::{NewRecord, Registry};

use super::NodeOpts;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Fill a store with N realistic resource identifiers.
    Seed {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Owner of every seeded resource: the provider holding this key
        /// (PKCS#8 PEM), registered and active first if the node does not
        /// know the key yet. Without it the resources have no owner.
        #[arg(long)]
        provider_key: Option<PathBuf>,
        #[command(flatten)]
        node: NodeOpts,
    },
}

pub(crate) fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Seed {
            count,
            provider_key,
            node,
        } => seed(count, provider_key, node),
    }
}

fn seed(count: u64, provider_key: Option<PathBuf>, opts: NodeOpts) -> Result<()> {
    let node = Node::open(opts.load()?)?;
    let reg = &node.registry;
    let bar = indicatif::ProgressBar::new(count);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} identifiers {per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let at = cpid::clock::system_now();
    let owner = match &provider_key {
        Some(path) => Some(provider(reg, &super::load_key(path)?, at)?),
        None => None,
    };
    let base = reg.store().len()?;
    let mut n = 0u64;
    while n < count {
        let chunk = (count - n).min(5_000);
        let news = (n..n + chunk)
            .map(|i| {
                cpid::testkit::seed::synthetic(reg.prefix(), base + i, at).map(|mut r| {
                    r.owner.clone_from(&owner);
                    r
                })
            })
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
        "seeded {count} identifiers into {}{}",
        node.config.node.data_dir.display(),
        owner.map_or(String::new(), |o| format!(", owned by {o}"))
    );
    Ok(())
}

/// The active provider holding `key`, registered here if it is not yet.
fn provider(reg: &Registry, key: &NodeKey, at: u64) -> Result<Identifier> {
    let public = key.public();
    if let Some(p) = reg.provider_key(&public.key_id()) {
        if p.status != RecordStatus::Active {
            bail!("provider {} is {}", p.provider, p.status.as_str());
        }
        return Ok(p.provider);
    }
    let (_, values) = ProviderRequest {
        name: "bench provider".into(),
        organisation: "BENCH-1".into(),
        contact: "ops@bench.example".into(),
        region: "31".into(),
        public_key: public.to_public_pem(),
    }
    .into_values(at)?;
    let record = reg.issue(NewRecord {
        prefix: None,
        class: Class::Pv,
        owner: None,
        values,
        status: RecordStatus::Active,
    })?;
    Ok(record.record().identifier.clone())
}
