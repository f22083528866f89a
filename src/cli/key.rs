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
    /// Roll this node's key: the parent delegates the node again under the
    /// new key (signed with the key in force), the old key staying in force
    /// for the overlap; the new key and chain are installed, the old ones
    /// kept beside them as `*.old`. Restart the node afterwards: it signs
    /// with the new key and signs its records again.
    Roll {
        #[command(flatten)]
        node: super::NodeOpts,
        /// The new key (PKCS#8 PEM, e.g. from `cpid key generate`).
        #[arg(long, value_name = "FILE")]
        new: PathBuf,
        /// Seconds the old key stays in force (default 86400; 0 revokes
        /// it at once, for a compromised key).
        #[arg(long)]
        overlap: Option<u64>,
        /// The parent's HTTP API; defaults to federation.parent_api.
        #[arg(long)]
        parent: Option<String>,
        /// Sign with the parent's admin key instead of the node key (the
        /// node key is lost or compromised; use --overlap 0 then).
        #[arg(long, value_name = "FILE")]
        parent_admin_key: Option<PathBuf>,
    },
}

pub(crate) fn run(command: KeyCommand) -> Result<()> {
    match command {
        KeyCommand::Generate { out } => key_generate(out),
        KeyCommand::Replace { id, new, api } => key_replace(&id, &new, &api),
        KeyCommand::Roll {
            node,
            new,
            overlap,
            parent,
            parent_admin_key,
        } => key_roll(&node.load()?, &new, overlap, parent, parent_admin_key),
    }
}

fn key_roll(
    config: &cpid::config::Config,
    new_file: &std::path::Path,
    overlap: Option<u64>,
    parent: Option<String>,
    parent_admin_key: Option<PathBuf>,
) -> Result<()> {
    let prefix = config.prefix()?;
    let key_file = config.key_file();
    let new = NodeKey::load(new_file).with_context(|| format!("reading {}", new_file.display()))?;
    let current = match &parent_admin_key {
        Some(admin) => super::load_key(admin)?,
        None => {
            let current = NodeKey::load(&key_file)
                .with_context(|| format!("reading the node key {}", key_file.display()))?;
            anyhow::ensure!(
                new.public().key_id() != current.public().key_id(),
                "{} is the node key in force already",
                new_file.display()
            );
            current
        }
    };
    let chain_file = config
        .federation
        .chain_file
        .clone()
        .context("federation.chain_file is not set: only a delegated node rolls its key")?;
    let parent = parent
        .or_else(|| config.federation.parent_api.clone())
        .context("the parent's API: --parent or federation.parent_api")?;
    let request = cpid::api::body::RollRequest {
        public_key: new.public().to_public_pem(),
        overlap_secs: overlap,
    };
    let rolled = cpid::api::client::ApiClient::new(&parent).roll(&prefix, &request, &current)?;
    // The old files stay beside the new ones until the overlap is over.
    let keep = |path: &std::path::Path| -> Result<()> {
        if !path.exists() {
            return Ok(());
        }
        let mut old = path.as_os_str().to_owned();
        old.push(".old");
        std::fs::rename(path, &old).with_context(|| format!("moving {} aside", path.display()))
    };
    keep(&chain_file)?;
    std::fs::write(&chain_file, serde_json::to_string_pretty(&rolled.chain)?)
        .with_context(|| format!("writing {}", chain_file.display()))?;
    keep(&key_file)?;
    new.write_new(&key_file)
        .with_context(|| format!("writing {}", key_file.display()))?;
    eprintln!(
        "{prefix} is delegated under key {} ({}); the old key stays in force for the overlap \
         (until it ends, or revoked now with --overlap 0).",
        new.public().key_id(),
        rolled.reply.record.record().identifier,
    );
    eprintln!(
        "installed {} and {} (the old ones as *.old); restart the node to sign with the new key",
        key_file.display(),
        chain_file.display()
    );
    Ok(())
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
