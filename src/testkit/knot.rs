//! A Knot DNS secondary of a cpid node, started as a child process: the
//! demo's national zone behind a stock secondary (when `knotd` is
//! installed), so its gateway reaches the national node only through Knot.
//! The configuration is the one the README gives and the interop tests use.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// `knotd` on `PATH` or in the sbin directories a non-root `PATH` lacks.
pub fn find_knotd() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("knotd"))
        .find(|p| p.is_file())
}

/// A TSIG key (name, base64 secret) with 32 random bytes.
pub fn random_key(name: &str) -> std::io::Result<(String, String)> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((
        name.to_string(),
        base64::engine::general_purpose::STANDARD.encode(secret),
    ))
}

/// The `knot.conf` of a secondary answering on `listen` (an IPv4 loopback
/// address), everything under `dir`, transferring `zone` from `primary`
/// with `key` (name, secret) and taking NOTIFY from its address.
pub fn secondary_conf(
    dir: &Path,
    listen: SocketAddr,
    zone: &str,
    primary: SocketAddr,
    key: Option<(&str, &str)>,
) -> String {
    let d = dir.display();
    let zone = format!("{}.", zone.trim_end_matches('.'));
    let (ip, port) = (primary.ip(), primary.port());
    let (key_section, key_line) = match key {
        Some((name, secret)) => (
            format!("key:\n  - id: {name}\n    algorithm: hmac-sha256\n    secret: {secret}\n"),
            format!("    key: {name}\n"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        "server:
    listen: {}@{}
    rundir: {d}
database:
    storage: {d}
log:
  - target: {d}/knot.log
    any: info
{key_section}remote:
  - id: primary
    address: {ip}@{port}
{key_line}acl:
  - id: notify-from-primary
    address: {ip}
{key_line}    action: notify
zone:
  - domain: {zone}
    storage: {d}
    file: zone.db
    master: primary
    acl: notify-from-primary
",
        listen.ip(),
        listen.port()
    )
}

/// A running `knotd`, stopped when dropped.
pub struct KnotSecondary {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

impl KnotSecondary {
    /// Writes the configuration into `dir` and starts `knotd`.
    pub fn start(
        knotd: &Path,
        dir: &Path,
        listen: SocketAddr,
        zone: &str,
        primary: SocketAddr,
        key: Option<(&str, &str)>,
    ) -> std::io::Result<KnotSecondary> {
        std::fs::create_dir_all(dir)?;
        // knotd runs in `dir` and reads every path in its configuration
        // from there: a relative data directory (`cpid demo` in
        // ./cpid-demo) must not be taken twice.
        let dir = &dir.canonicalize()?;
        let conf = dir.join("knot.conf");
        std::fs::write(&conf, secondary_conf(dir, listen, zone, primary, key))?;
        let out = std::fs::File::create(dir.join("knotd.out"))?;
        let child = Command::new(knotd)
            .arg("-c")
            .arg(&conf)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        Ok(KnotSecondary {
            child,
            addr: listen,
            dir: dir.to_path_buf(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Waits until it serves `zone` at `serial` or later.
    pub async fn wait_serial(&self, zone: &str, serial: u32, within: Duration) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if soa_serial(self.addr, zone)
                .await
                .is_some_and(|s| s.wrapping_sub(serial) < 0x8000_0000)
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for KnotSecondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SOA serial `addr` serves for `zone`, if it answers with one.
pub async fn soa_serial(addr: SocketAddr, zone: &str) -> Option<u32> {
    let name = hickory_proto::rr::Name::from_ascii(zone).ok()?;
    let m = crate::resolution::resolver::exchange(
        addr,
        &name,
        crate::dns::wire::rtype::SOA,
        Duration::from_millis(500),
        false,
    )
    .await
    .ok()?;
    m.answers.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::SOA(soa) => Some(soa.serial),
        _ => None,
    })
}
