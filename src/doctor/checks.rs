//! The checks of the risk assessment, one function per area; each pushes
//! its findings. See the table in the module doc of [`super`].

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::advisory::{self, Database, Kind};
use super::{Finding, Severity, State, dnssec_enabled, rrl_enabled};
use crate::config::{Config, Policy};
use crate::ident::delegation::{ChainFile, Delegation};
use crate::ident::keys::PublicKey;

const DAY: u64 = 24 * 3600;

/// The permission bits of `path`, `None` when it does not exist (or on a
/// system without Unix modes).
fn mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// A finding when a secret file is open to group or others.
fn secret_file(path: &Path, what: &str, subject: &str, out: &mut Vec<Finding>) {
    if let Some(m) = mode(path)
        && m & 0o077 != 0
    {
        out.push(Finding::new(
            "key.mode",
            Some(subject),
            Severity::High,
            format!(
                "{what} {} has mode {m:04o}: group or others can read it",
                path.display()
            ),
            format!("chmod 600 {}", path.display()),
        ));
    }
}

/// Where the admin's key comes from: the configured public key, or the
/// key pair the node made in its data directory.
fn admin_key_path(config: &Config) -> PathBuf {
    config
        .registration
        .admin_public_key_file
        .clone()
        .unwrap_or_else(|| config.admin_key_file())
}

/// Whether the file holds a private key (PKCS#8 PEM).
fn holds_private_key(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains("PRIVATE KEY-----"))
}

pub(super) fn key_files(config: &Config, out: &mut Vec<Finding>) {
    let node_key = config.key_file();
    secret_file(&node_key, "the node key", "node-key", out);
    let admin = admin_key_path(config);
    let admin_private = holds_private_key(&admin);
    if admin_private {
        secret_file(&admin, "the admin key", "admin-key", out);
        out.push(Finding::new(
            "key.admin-on-node",
            None,
            Severity::Low,
            format!(
                "the admin's private key {} is on the node: whoever gets the node's files \
                 can approve providers and delegate prefixes",
                admin.display()
            ),
            format!(
                "on the operator's machine: cpid key generate -o admin-key.pem > admin.pub; \
                 copy admin.pub to the node, set [registration] admin_public_key_file = \
                 \"admin.pub\", restart, then delete {}",
                admin.display()
            ),
        ));
    }
    if !config.transfer.keys.is_empty()
        && let Some(source) = &config.source
    {
        secret_file(
            source,
            "the configuration file (it holds the [[transfer.keys]] TSIG secrets)",
            "config",
            out,
        );
    }
    if let Some(m) = mode(&config.node.data_dir)
        && m & 0o077 != 0
    {
        out.push(Finding::new(
            "data.mode",
            None,
            Severity::Medium,
            format!(
                "the data directory {} has mode {m:04o}: group or others can list or enter it",
                config.node.data_dir.display()
            ),
            format!("chmod 700 {}", config.node.data_dir.display()),
        ));
    }
    if let (Ok(node), Ok(admin_public)) = (PublicKey::load(&node_key), PublicKey::load(&admin))
        && node.key_id() == admin_public.key_id()
    {
        out.push(Finding::new(
            "key.admin-is-node",
            None,
            Severity::High,
            format!(
                "the admin key {} is the node's record-signing key {} (key id {}): \
                 the node refuses to start, and one stolen key would both sign records \
                 and approve providers",
                admin.display(),
                node_key.display(),
                node.key_id()
            ),
            "on the operator's machine: cpid key generate -o admin-key.pem > admin.pub; \
             set [registration] admin_public_key_file = \"admin.pub\""
                .into(),
        ));
    }
}

pub(super) fn registration(config: &Config, out: &mut Vec<Finding>) {
    if config.registration.policy != Policy::Open {
        return;
    }
    let depth = config.prefix().map(|p| p.depth()).unwrap_or(1);
    let (severity, level) = match depth {
        1 => (Severity::High, "the national node"),
        2 => (Severity::Medium, "a regional node"),
        _ => (Severity::Low, "an industry node"),
    };
    out.push(Finding::new(
        "registration.open",
        None,
        severity,
        format!(
            "registration policy is open on {level} ({}): any key that signs a request \
             becomes an active provider at once",
            config.node.prefix
        ),
        "[registration] policy = \"review\" (then approve each provider: \
         cpid admin approve <PV id> --key <admin key>)"
            .into(),
    ));
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

fn describe(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("{addr} (every interface)")
    } else {
        addr.to_string()
    }
}

pub(super) fn listeners(config: &Config, out: &mut Vec<Finding>) {
    let dns = config.dns.listen;
    if !is_loopback(dns.ip()) && !rrl_enabled(config) {
        out.push(Finding::new(
            "dns.rrl",
            None,
            Severity::High,
            format!(
                "DNS listens on {} without response-rate limiting: the node can be \
                 used to reflect and amplify traffic at a spoofed victim",
                describe(dns)
            ),
            "[dns.rrl] enabled = true".into(),
        ));
    }
    let http = config.http.listen;
    if !is_loopback(http.ip()) && config.http.limits.rate_per_address.per_second == 0 {
        out.push(Finding::new(
            "http.unlimited",
            None,
            Severity::Medium,
            format!(
                "the HTTP API listens on {} with no per-address request rate",
                describe(http)
            ),
            "[http.limits] rate_per_address = { per_second = 50, burst = 200 }".into(),
        ));
    }
}

pub(super) fn transfer(config: &Config, out: &mut Vec<Finding>) {
    for s in &config.transfer.secondaries {
        if s.key.is_some() {
            continue;
        }
        let who = match (&s.allow, s.notify) {
            (Some(allow), _) => allow.clone(),
            (None, Some(notify)) => notify.ip().to_string(),
            (None, None) => "?".into(),
        };
        let open_to_all = s
            .allow
            .as_deref()
            .and_then(|a| a.split_once('/'))
            .is_some_and(|(_, bits)| bits.trim() == "0");
        out.push(Finding::new(
            "transfer.unsigned",
            Some(&who),
            Severity::High,
            format!(
                "[[transfer.secondaries]] lets {who}{} transfer the whole zone without TSIG: \
                 anyone who can send from there (or spoof a TCP peer on the path) gets it",
                if open_to_all { " (every address)" } else { "" }
            ),
            format!(
                "add a key: [[transfer.keys]] name = \"cpid-xfr\", secret = \"$(openssl rand \
                 -base64 32)\"; then key = \"cpid-xfr\" in this secondary's entry (and the \
                 same key in the secondary's configuration){}",
                if config.transfer.keys.is_empty() {
                    ""
                } else {
                    ", or name one of the keys already listed"
                }
            ),
        ));
    }
}

pub(super) fn dnssec(config: &Config, out: &mut Vec<Finding>) {
    let found = match dnssec_enabled(config) {
        Some(true) => return,
        Some(false) => "DNSSEC signing is off: a resolver cannot validate this zone's answers",
        None => {
            "DNSSEC signing is not available in this build: a stock validating resolver \
             cannot validate this zone's answers (the records themselves are signed: \
             cpid resolve --trust-anchor and the gateway verify them)"
        }
    };
    out.push(Finding::new(
        "dnssec.off",
        None,
        Severity::Medium,
        found.into(),
        "set [dns.dnssec] enabled = true (the default), or resolve through a cpid gateway \
         or cpid resolve --trust-anchor <root key>"
            .into(),
    ));
}

/// `NAME=ADDR:PORT[,ADDR:PORT]` arguments for `cpid admin delegate`.
fn ns_args(d: &Delegation) -> String {
    d.servers
        .iter()
        .map(|s| {
            let addrs: Vec<String> = s.addresses.iter().map(|a| a.to_string()).collect();
            format!("--ns {}={}", s.name, addrs.join(","))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn when(now: u64, at: u64) -> String {
    if at >= now {
        let left = at - now;
        if left < DAY {
            format!("in {} h", left / 3600)
        } else {
            format!("in {} days", left / DAY)
        }
    } else {
        format!("{} days ago", (now - at) / DAY)
    }
}

/// A finding when `d` has ended or ends within the window.
fn expiry(
    d: &Delegation,
    whose: &str,
    fix: String,
    config: &Config,
    now: u64,
    out: &mut Vec<Finding>,
) {
    let window = config.risk.expiry_window_days.saturating_mul(DAY);
    let (check, severity, state) = if now > d.not_after {
        ("delegation.expired", Severity::High, "ended")
    } else if d.not_after - now <= window {
        ("delegation.expiring", Severity::Medium, "ends")
    } else {
        return;
    };
    out.push(Finding::new(
        check,
        Some(&d.prefix),
        severity,
        format!(
            "{whose} delegation of {} {state} {} (not_after {}): past it resolvers refuse \
             every record under {}",
            d.prefix,
            when(now, d.not_after),
            d.not_after,
            d.prefix
        ),
        fix,
    ));
}

pub(super) fn delegations(
    config: &Config,
    state: Option<&State>,
    now: u64,
    out: &mut Vec<Finding>,
) {
    if let Some(path) = &config.federation.chain_file {
        let own = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<ChainFile>(&t).map_err(|e| e.to_string()))
            .and_then(|f| f.records())
            .and_then(|records| {
                let last = records.last().ok_or("the chain is empty")?;
                Delegation::from_record(last).map_err(|e| e.to_string())
            });
        match own {
            Ok(d) => {
                let fix = format!(
                    "the parent's admin delegates again: cpid admin delegate --server <parent \
                     API> --key <parent admin key> --prefix {} --child-key {} {} \
                     --valid-days 365 --out {}; then restart this node",
                    d.prefix,
                    config.key_file().display(),
                    ns_args(&d),
                    path.display()
                );
                expiry(&d, "this node's own", fix, config, now, out);
            }
            Err(reason) => out.push(Finding::new(
                "delegation.chain",
                None,
                Severity::High,
                format!(
                    "the delegation chain {} cannot be read: {reason}; the node refuses to start",
                    path.display()
                ),
                format!(
                    "write the chain the parent's `cpid admin delegate --out` made to {}",
                    path.display()
                ),
            )),
        }
    }
    let Some(state) = state else {
        return;
    };
    let api = format!("http://{}", config.http.listen);
    let admin = admin_key_path(config);
    for d in &state.children {
        let fix = format!(
            "cpid admin delegate --server {api} --key {} --prefix {} --child-key <the \
             child's public key PEM> {}{} --valid-days 365 --out {}.chain.json; give the \
             child that file as its [federation] chain_file",
            admin.display(),
            d.prefix,
            ns_args(d),
            d.api
                .as_deref()
                .map(|a| format!(" --api {a}"))
                .unwrap_or_default(),
            d.prefix
        );
        expiry(d, "the child's", fix, config, now, out);
    }
}

pub(super) fn checkpoint(config: &Config, state: &State, now: u64, out: &mut Vec<Finding>) {
    let lag = state.log;
    let Some(oldest) = lag.oldest else {
        return;
    };
    let age = now.saturating_sub(oldest);
    if lag.uncovered() == 0 || age <= config.risk.checkpoint_max_age_secs {
        return;
    }
    let (severity, fix) = if state.serving {
        (
            Severity::Medium,
            "look for \"log integration failed\" in the node's log and \
             cpid_log_failures_total in /metrics; a restart integrates what is left",
        )
    } else {
        (
            Severity::Low,
            "start the node: it integrates the leaves left over (the last run did not stop \
             cleanly)",
        )
    };
    out.push(Finding::new(
        "log.checkpoint",
        None,
        severity,
        format!(
            "the latest checkpoint covers {} of {} leaves; the oldest leaf left out was \
             committed {} s ago (limit {} s): an auditor cannot hold the node to what it \
             committed since",
            lag.checkpoint_size, lag.log_size, age, config.risk.checkpoint_max_age_secs
        ),
        fix.into(),
    ));
}

/// Where the advisory database is: configured, or `../shared/advisory-db`
/// from the working directory when that exists.
fn advisory_db(config: &Config) -> Option<PathBuf> {
    if let Some(p) = &config.risk.advisory_db {
        return Some(p.clone());
    }
    let default = PathBuf::from("../shared/advisory-db");
    default.is_dir().then_some(default)
}

pub(super) fn advisories(config: &Config, out: &mut Vec<Finding>) {
    let no_db = |reason: String, out: &mut Vec<Finding>| {
        out.push(Finding::new(
            "advisory.db",
            None,
            Severity::Info,
            format!("the crates cpid was built with were not checked: {reason}"),
            "cpid doctor --advisory-db <a copy of github.com/rustsec/advisory-db>, or \
             [risk] advisory_db = \"/path/to/advisory-db\""
                .into(),
        ));
    };
    let Some(path) = advisory_db(config) else {
        return no_db(
            "no advisory database (../shared/advisory-db is not there)".into(),
            out,
        );
    };
    let db = match Database::open(&path) {
        Ok(db) => db,
        Err(e) => return no_db(e.to_string(), out),
    };
    let packages = match advisory::packages(advisory::BUILT_WITH) {
        Ok(p) => p,
        Err(e) => return no_db(e.to_string(), out),
    };
    let audit = db.audit(&packages);
    for hit in &audit.hits {
        let p = &hit.package;
        let (vulns, infos): (Vec<_>, Vec<_>) = hit
            .advisories
            .iter()
            .partition(|a| a.kind == Kind::Vulnerability);
        let list = |v: &[&advisory::Advisory]| -> String {
            v.iter()
                .map(|a| format!("{} ({})", a.id, a.title))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !vulns.is_empty() {
            let fix = match vulns.iter().filter_map(|a| a.first_patched()).max() {
                Some(v) => format!(
                    "cargo update -p {}@{} --precise {v} (or a later patched version), \
                     rebuild and redeploy cpid",
                    p.name, p.version
                ),
                None => format!(
                    "no patched version: replace or remove {} and rebuild cpid",
                    p.name
                ),
            };
            out.push(Finding::new(
                "advisory",
                Some(&format!("{}@{}", p.name, p.version)),
                Severity::High,
                format!(
                    "cpid was built with {} {}, which has {}",
                    p.name,
                    p.version,
                    list(&vulns)
                ),
                fix,
            ));
        }
        if !infos.is_empty() {
            let kinds: Vec<String> = infos
                .iter()
                .filter_map(|a| match &a.kind {
                    Kind::Informational(k) => Some(k.clone()),
                    Kind::Vulnerability => None,
                })
                .collect();
            out.push(Finding::new(
                "advisory.informational",
                Some(&format!("{}@{}", p.name, p.version)),
                Severity::Low,
                format!(
                    "cpid was built with {} {}, {}: {}",
                    p.name,
                    p.version,
                    kinds.join(", "),
                    list(&infos)
                ),
                format!(
                    "read the advisories and plan to move off {} (cargo tree -i {})",
                    p.name, p.name
                ),
            ));
        }
    }
    if !audit.unreadable.is_empty() {
        out.push(Finding::new(
            "advisory.db",
            None,
            Severity::Info,
            format!(
                "{} advisory file(s) in {} could not be read, e.g. {}",
                audit.unreadable.len(),
                db.path().display(),
                audit.unreadable.first().map(String::as_str).unwrap_or("")
            ),
            "update the advisory database copy".into(),
        ));
    }
}
