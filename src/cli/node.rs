//! `cpid serve` and `cpid node`: running a node, reading its facts, and
//! backing its store up and restoring it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use cpid::api::client::ApiClient;
use cpid::node::Node;
use cpid::store::BackupInfo;

use super::{NodeOpts, load_key, shutdown_signal};

/// How long a backup may take to arrive.
const BACKUP_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Subcommand)]
pub(crate) enum NodeCommand {
    /// Print prefix, zone, public key (PEM), key id and record count.
    Info {
        #[command(flatten)]
        node: NodeOpts,
    },
    /// Back up a running node's whole store over its API, while it serves.
    ///
    /// Records, transparency log, nonces, statuses, calendars and security
    /// events as of one moment (POST /v1/admin/backup, signed by the admin
    /// key), checked when it has arrived. The key files are not in it: keep
    /// node-key.pem and admin-key.pem safe separately.
    ///
    /// Example: cpid node backup --admin-key cpid-data/admin-key.pem --out 86.backup
    Backup {
        /// The node's HTTP API.
        #[arg(long, default_value = "http://127.0.0.1:8053")]
        server: String,
        /// The node's admin key (PKCS#8 PEM), e.g. ./cpid-data/admin-key.pem.
        #[arg(long, value_name = "FILE")]
        admin_key: PathBuf,
        /// Where to write the backup (a redb store file); an existing file is
        /// never overwritten.
        #[arg(long, short = 'o', value_name = "FILE")]
        out: PathBuf,
    },
    /// Put a backup in place as a stopped node's store (offline).
    ///
    /// Checks that the file is a whole cpid store, then moves it into place
    /// as <data>/cpid.redb in one rename. Refused while a node holds the
    /// store, and over an existing store unless --force. Started with the
    /// same node key (node-key.pem copied into the data directory) and the
    /// same [log] origin, the node continues its transparency log where the
    /// backup ends.
    ///
    /// Example: cpid node restore --from 86.backup --data /srv/cpid-data
    Restore {
        /// The backup file (as `cpid node backup` wrote it).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        #[command(flatten)]
        node: NodeOpts,
        /// Replace a store that is already there (never one a running node
        /// holds: stop it first).
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn run(command: NodeCommand) -> Result<()> {
    match command {
        NodeCommand::Info { node } => node_info(node),
        NodeCommand::Backup {
            server,
            admin_key,
            out,
        } => backup(&server, &admin_key, &out),
        NodeCommand::Restore { from, node, force } => restore(&from, &node, force),
    }
}

fn backup(server: &str, admin_key: &Path, out: &Path) -> Result<()> {
    let admin = load_key(admin_key)?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .with_context(|| {
            format!(
                "creating {} (an existing file is never replaced)",
                out.display()
            )
        })?;
    let taken = take_backup(server, &admin, file, out);
    let (reply, info) = match taken {
        Ok(done) => done,
        Err(e) => {
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
    };
    println!(
        "backup of {server} written to {}: {} records, log size {}, {} bytes",
        out.display(),
        info.records,
        info.log_size,
        reply.bytes
    );
    eprintln!(
        "the node's key files are not in the backup: keep node-key.pem and admin-key.pem safe separately"
    );
    Ok(())
}

/// Downloads the backup into `file` and checks it is the store the node
/// said it sent.
fn take_backup(
    server: &str,
    admin: &cpid::ident::keys::NodeKey,
    file: std::fs::File,
    out: &Path,
) -> Result<(cpid::api::client::BackupReply, BackupInfo)> {
    let mut writer = std::io::BufWriter::new(file);
    let reply = ApiClient::with_timeout(server, BACKUP_TIMEOUT).backup(admin, &mut writer)?;
    writer.flush()?;
    let file = writer.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    drop(file);
    let info = cpid::store::redb::verify_file(out)
        .with_context(|| format!("checking the backup {}", out.display()))?;
    for (what, announced, found) in [
        ("records", reply.records, info.records),
        ("log size", reply.log_size, info.log_size),
    ] {
        if announced.is_some_and(|n| n != found) {
            bail!(
                "the node announced {what} {}, the file holds {found}",
                announced.unwrap_or_default()
            );
        }
    }
    Ok((reply, info))
}

fn restore(from: &Path, opts: &NodeOpts, force: bool) -> Result<()> {
    let config = opts.load()?;
    let data = &config.node.data_dir;
    let target = config.store_file();
    if target.exists() {
        if cpid::store::redb::in_use(&target) {
            bail!(
                "{} is in use by a running node; stop it before restoring",
                target.display()
            );
        }
        if !force {
            bail!(
                "{} already holds a store; --force replaces it (stop the node first)",
                target.display()
            );
        }
    }
    cpid::node::create_data_dir(data)?;
    // Copied beside the store and checked there, then renamed into place:
    // the store is either the old one or the whole backup, never half.
    let scratch = data.join("cpid.redb.restoring");
    let restored = copy_checked(from, &scratch);
    let info = match restored {
        Ok(info) => info,
        Err(e) => {
            let _ = std::fs::remove_file(&scratch);
            return Err(e);
        }
    };
    std::fs::rename(&scratch, &target)
        .with_context(|| format!("moving {} to {}", scratch.display(), target.display()))?;
    if let Ok(dir) = std::fs::File::open(data) {
        let _ = dir.sync_all();
    }
    println!(
        "restored {} into {}: {} records, log size {}",
        from.display(),
        target.display(),
        info.records,
        info.log_size
    );
    if !config.key_file().exists() {
        eprintln!(
            "note: no node key at {}: copy the node's node-key.pem there before starting it, \
             or it makes a new key and its log's checkpoints no longer verify under the old one",
            config.key_file().display()
        );
    }
    Ok(())
}

/// Copies `from` to `scratch`, durably, and checks the copy is a whole
/// cpid store.
fn copy_checked(from: &Path, scratch: &Path) -> Result<BackupInfo> {
    std::fs::copy(from, scratch)
        .with_context(|| format!("copying {} to {}", from.display(), scratch.display()))?;
    // The copy takes the backup's mode; a store is the node's alone.
    #[cfg(unix)]
    std::fs::set_permissions(scratch, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    std::fs::File::open(scratch)?.sync_all()?;
    cpid::store::redb::verify_file(scratch)
        .with_context(|| format!("{} is not a usable backup", from.display()))
}

pub(crate) fn serve(
    opts: NodeOpts,
    dns: Option<SocketAddr>,
    udp_workers: Option<usize>,
    http: Option<SocketAddr>,
    policy: Option<String>,
) -> Result<()> {
    let mut config = opts.load()?;
    if let Some(addr) = http {
        config.http.listen = addr;
    }
    if let Some(p) = policy {
        config.registration.policy = match p.as_str() {
            "open" => cpid::config::Policy::Open,
            "review" => cpid::config::Policy::Review,
            other => bail!("--policy {other:?}: use open or review"),
        };
    }
    if let Some(addr) = dns {
        config.dns.listen = addr;
    }
    if let Some(n) = udp_workers {
        config.dns.udp_workers = n;
    }
    eprintln!("# cpid configuration in effect\n{}", config.to_toml());
    let started = std::time::Instant::now();
    let node = Node::open(config).context("opening the node")?;
    let reg = &node.registry;
    if node.key_created {
        eprintln!("generated node key {}", node.config.key_file().display());
    }
    if node.admin_key_created {
        eprintln!(
            "generated admin key {} (approves providers: cpid admin approve --key …)",
            node.config.admin_key_file().display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let running = node.serve().await?;
        eprintln!(
            "cpid serving zone {} ({} names, key id {}) on udp+tcp {}, http://{} — ready in {:.2?}",
            reg.zone().apex(),
            reg.zone().len(),
            reg.key().public().key_id(),
            running.dns_addr(),
            running.http_addr(),
            started.elapsed()
        );
        shutdown_signal().await;
        eprintln!("shutting down");
        running.shutdown().await?;
        anyhow::Ok(())
    })
}

fn node_info(opts: NodeOpts) -> Result<()> {
    let node = Node::open(opts.load()?)?;
    let reg = &node.registry;
    let public = reg.key().public();
    println!("prefix:   {}", reg.prefix());
    println!("zone:     {}", reg.zone().apex());
    println!("key id:   {}", public.key_id());
    println!("key file: {}", node.config.key_file().display());
    let admin_source = match &node.config.registration.admin_public_key_file {
        Some(path) => path.display().to_string(),
        None => node.config.admin_key_file().display().to_string(),
    };
    println!("admin:    {} ({admin_source})", node.admin_key.key_id());
    println!("policy:   {}", node.config.registration.policy.as_str());
    println!("records:  {}", reg.store().len()?);
    println!("serial:   {}", reg.zone().serial());
    print!("{}", public.to_public_pem());
    Ok(())
}
