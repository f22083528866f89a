//! `cpid key`: making signing keys.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;

use cpid::ident::keys::NodeKey;

#[derive(Subcommand)]
pub(crate) enum KeyCommand {
    /// Generate an Ed25519 key as PKCS#8 PEM (mode 0600) and print its public key.
    Generate {
        /// File to create; refuses to overwrite.
        #[arg(long, short = 'o')]
        out: PathBuf,
    },
}

pub(crate) fn run(command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Generate { out } => key_generate(out),
    }
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
