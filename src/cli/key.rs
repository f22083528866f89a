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
    /// Replace a provider's or buyer's key at its node: signed with the
    /// current key (-k), or with the node's admin key when it is lost.
    Replace {
        /// The provider or buyer, e.g. 86/PV-000001-F
        id: String,
        /// The new key (PKCS#8 PEM, e.g. from `cpid key generate`).
        #[arg(long, value_name = "FILE")]
        new: PathBuf,
        #[command(flatten)]
        api: super::provider::ApiOpts,
    },
}

pub(crate) fn run(command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Generate { out } => key_generate(out),
        KeyCommand::Replace { id, new, api } => key_replace(&id, &new, &api),
    }
}

fn key_replace(id: &str, new: &std::path::Path, api: &super::provider::ApiOpts) -> Result<()> {
    let id = cpid::ident::identifier::Identifier::parse(id)?;
    let new = NodeKey::load(new).with_context(|| format!("reading {}", new.display()))?;
    let request = cpid::api::body::KeyRequest {
        public_key: new.public().to_public_pem(),
    };
    let signer = super::load_key(&api.key)?;
    super::provider::print_reply(api, api.client()?.replace_key(&id, &request, &signer)?)
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
