//! `cpid resolve`: one identifier over DNS, verified, printed.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use cpid::ident::identifier::{Apex, Identifier};
use cpid::ident::keys::PublicKey;

use super::admin::read_public_key;

pub(crate) fn direct(
    id: &str,
    server: SocketAddr,
    apex: &str,
    node_key: Option<PathBuf>,
    tcp: bool,
    json: bool,
    verify_log: Option<&str>,
) -> Result<()> {
    let id = Identifier::parse(id)?;
    let apex = Apex::parse(apex)?;
    let pinned = match node_key {
        Some(path) => {
            Some(PublicKey::load(&path).with_context(|| format!("node key {}", path.display()))?)
        }
        None => None,
    };
    let resolved = cpid::resolution::client::resolve(server, &id, &apex, pinned, tcp)?;
    let r = resolved.record.record();
    if json {
        println!("{}", cpid::ident::record::to_json(&resolved.record));
    } else {
        println!("identifier: {}", r.identifier);
        println!("dns name:   {}", id.to_dns_name(&apex));
        println!("version:    {}", r.version);
        println!("status:     {:?}", r.status);
        if let Some(owner) = &r.owner {
            println!("owner:      {owner}");
        }
        println!("issuer:     {}", r.issuer);
        for v in &r.values {
            let ttl = match v.ttl {
                0 => "node default".to_string(),
                t => format!("{t} s"),
            };
            println!("  [{}] {} (ttl {ttl}): {}", v.index, v.kind, v.data);
        }
    }
    let source = if resolved.key_from_dns {
        "key read from the zone apex; pin it with --node-key"
    } else {
        "pinned key"
    };
    eprintln!(
        "signature: valid (Ed25519, node key {}; {source})",
        resolved.node_key.key_id()
    );
    if let Some(api) = verify_log {
        log_inclusion(api, &resolved.record, &[resolved.node_key], &[])?;
    }
    Ok(())
}

/// `--verify-log`: the record is a leaf of its node's log.
fn log_inclusion(
    api: &str,
    record: &cpid::ident::record::SignedRecord,
    keys: &[PublicKey],
    witnesses: &[cpid::tlog::cosign::CosignatureVerifier],
) -> Result<()> {
    match cpid::tlog::audit::verify_inclusion(api, record, keys, witnesses) {
        Ok(i) => {
            let witnessed = if i.cosigned_by.is_empty() {
                format!("{} other signature lines", i.others)
            } else {
                format!("witnessed by {}", i.cosigned_by.join(", "))
            };
            eprintln!(
                "log:       included (leaf {} of {} in {}, checkpoint signed by the node key, {witnessed})",
                i.index, i.size, i.origin
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("log:       NOT VERIFIED: {e}");
            bail!(
                "{}: not verified in the node's log: {e}",
                record.record().identifier
            )
        }
    }
}

/// `cpid resolve --trust-anchor`: from the root down, printing each link;
/// a negative answer only with a DNSSEC denial when `validate_denial`.
pub(crate) fn chain(
    id: &str,
    root: SocketAddr,
    apex: &str,
    anchor: &std::path::Path,
    json: bool,
    verify_log: Option<&str>,
    validate_denial: bool,
) -> Result<()> {
    use cpid::ident::delegation::TrustedZone;
    let id = Identifier::parse(id)?;
    let apex = Apex::parse(apex)?;
    let key = read_public_key(anchor)?;
    let root_prefix = cpid::ident::identifier::Prefix::parse(
        id.prefix()
            .segments()
            .next()
            .context("identifier without a prefix")?,
    )?;
    let resolver = cpid::resolution::resolver::Resolver::new(
        TrustedZone::root(root_prefix, key, vec![root]),
        apex.clone(),
        std::time::Duration::from_secs(3),
        3600,
    )
    .validating_denial(validate_denial);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(resolver.resolve_identifier(&id));
    let print_path = |path: &[TrustedZone]| {
        for z in path {
            match &z.via {
                None => eprintln!(
                    "  root    {:<12} key {}  (trust anchor {})",
                    z.prefix.to_string(),
                    z.key.key_id(),
                    anchor.display()
                ),
                Some(rec) => eprintln!(
                    "  link    {:<12} key {}  delegated by {} (v{}), valid until {}, servers {}",
                    z.prefix.to_string(),
                    z.key.key_id(),
                    rec.record().identifier,
                    rec.record().version,
                    z.valid_until,
                    z.servers
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            }
        }
    };
    eprintln!("chain of trust for {id}:");
    match result {
        Ok((cpid::resolution::resolver::Outcome::Record { record, ttl }, path)) => {
            print_path(&path);
            let r = record.record();
            eprintln!(
                "  record  {} v{} signed by {}: valid (ttl {ttl} s)",
                r.identifier, r.version, r.issuer
            );
            if json {
                println!("{}", cpid::ident::record::to_json(&record));
            } else {
                for v in &r.values {
                    println!("[{}] {}: {}", v.index, v.kind, v.data);
                }
            }
            if let (Some(api), Some(zone)) = (verify_log, path.last()) {
                // The zones above it on the verified path are its witnesses.
                let witnesses: Vec<_> = path
                    .iter()
                    .filter(|z| z.prefix != zone.prefix)
                    .flat_map(|z| {
                        z.keys()
                            .filter_map(|k| cpid::tlog::witness::verifier_of(&z.prefix, &apex, k))
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let keys: Vec<PublicKey> = zone.keys().copied().collect();
                log_inclusion(api, &record, &keys, &witnesses)?;
            }
            Ok(())
        }
        Ok((cpid::resolution::resolver::Outcome::Negative { .. }, path)) => {
            print_path(&path);
            let zone = path.last().cloned().context("empty chain")?;
            if let Some(why) = rt.block_on(resolver.explain_missing(&zone, &id)) {
                eprintln!("  BROKEN  {why}");
                bail!("{id}: broken chain: {why}");
            }
            bail!("{id} does not exist (NXDOMAIN from zone {})", zone.prefix)
        }
        Err(e) => {
            eprintln!("  BROKEN  {e}");
            bail!("{id}: {e}")
        }
    }
}
