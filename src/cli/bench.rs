//! `cpid bench`: helpers for the benchmarks.

use anyhow::{Result, bail};
use clap::Subcommand;

use cpid::node::Node;

use super::NodeOpts;

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Fill a store with N realistic resource identifiers.
    Seed {
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        #[command(flatten)]
        node: NodeOpts,
    },
}

pub(crate) fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Seed { count, node } => seed(count, node),
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
    let at = cpid::clock::system_now();
    let base = reg.store().len()?;
    let mut n = 0u64;
    while n < count {
        let chunk = (count - n).min(5_000);
        let news = (n..n + chunk)
            .map(|i| cpid::testkit::seed::synthetic(reg.prefix(), base + i, at))
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
