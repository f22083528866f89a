//! `cpid zone`: master-file export and record import.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use cpid::node::Node;

use super::NodeOpts;

#[derive(Subcommand)]
pub(crate) enum ZoneCommand {
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

pub(crate) fn run(command: ZoneCommand) -> Result<()> {
    match command {
        ZoneCommand::Export { node, out } => {
            let node = Node::open(node.load()?)?;
            let zone = node.registry.zone();
            let n = match out {
                Some(path) => {
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&path)?);
                    let n = cpid::registry::zonefile::export(zone, &mut f)?;
                    f.flush()?;
                    n
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = std::io::BufWriter::new(stdout.lock());
                    let n = cpid::registry::zonefile::export(zone, &mut lock)?;
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
            let report = cpid::registry::zonefile::import(&node.registry, &text)?;
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
