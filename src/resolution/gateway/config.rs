//! Gateway configuration (`zones/gateway.toml` documents every key).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::dns::server::{DnsListen, UdpMode};
use crate::ident::identifier::{Apex, Prefix};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Where the L2 cache lives.
    pub data_dir: PathBuf,
    pub upstream: UpstreamConfig,
    pub dns: ListenConfig,
    pub http: HttpListen,
    pub cache: CacheConfig,
    pub events: ReportConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./cpid-gateway"),
            upstream: UpstreamConfig::default(),
            dns: ListenConfig::default(),
            http: HttpListen::default(),
            cache: CacheConfig::default(),
            events: ReportConfig::default(),
        }
    }
}

/// Where the gateway forwards what it sees (verification failures) as
/// security events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportConfig {
    /// The node's HTTP API (`http://host:port`); events stay local (in
    /// `/metrics` only) when unset. The node lists this gateway's public
    /// key in its `[events] reporter_keys`.
    pub report_to: Option<String>,
    /// The gateway's signing key (PKCS#8 PEM; made on first start);
    /// `<data_dir>/gateway-key.pem` by default.
    pub key_file: Option<PathBuf>,
    /// How often gathered events are forwarded, seconds.
    pub flush_secs: u64,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            report_to: None,
            key_file: None,
            flush_secs: 5,
        }
    }
}

/// The national node: the only thing a gateway is told about the federation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// DNS apex of the federation.
    pub apex: String,
    /// The national root prefix.
    pub root_prefix: String,
    /// The national node's DNS servers.
    pub root_servers: Vec<SocketAddr>,
    /// The national node's public key (SPKI PEM): the trust anchor.
    pub root_key_file: PathBuf,
    /// How long one upstream query may take before the next server (or
    /// a stale answer) is tried, milliseconds.
    pub timeout_ms: u64,
    /// Cache a record only once its node's log shows it under a checkpoint
    /// cosigned by another node of the federation (a witness): the node's
    /// API (from its delegation; `root_api` for the national node) is asked
    /// for the inclusion proof against its latest witnessed checkpoint.
    pub require_witnessed: bool,
    /// The national node's HTTP API, for `require_witnessed`.
    pub root_api: Option<String>,
    /// Ask with DO and accept a negative answer only with a valid DNSSEC
    /// denial signed by its zone's key; an unsigned NXDOMAIN (a forger's,
    /// or from a zone with `[dns.dnssec]` off) is SERVFAIL and counted.
    pub validate_denial: bool,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            apex: Apex::DEFAULT.into(),
            root_prefix: "86".into(),
            root_servers: vec![SocketAddr::from(([127, 0, 0, 1], 5300))],
            root_key_file: PathBuf::from("./national.pub"),
            timeout_ms: 1500,
            require_witnessed: false,
            root_api: None,
            validate_denial: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    /// UDP and TCP on the same address.
    pub listen: SocketAddr,
    /// UDP fast-path threads; 0 = one per core.
    pub udp_workers: usize,
    /// Idle timeout of a TCP connection, seconds.
    pub tcp_timeout_secs: u64,
    /// TCP connections served at once; more are closed on accept.
    pub tcp_max_connections: usize,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5353)),
            udp_workers: 0,
            tcp_timeout_secs: 10,
            tcp_max_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpListen {
    /// HTTP reader (Handle.Net and native JSON, /metrics, /healthz).
    pub listen: SocketAddr,
    /// Connections, timeouts and request rates, as a node's
    /// (`[http.limits]`; the per-key rate has nothing to apply to here).
    pub limits: crate::config::HttpLimits,
}

impl Default for HttpListen {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            limits: crate::config::HttpLimits::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// L1 bounds: entries, and bytes (approximate memory held).
    pub max_entries: usize,
    pub max_bytes: u64,
    /// Longest time anything is cached, seconds (like Unbound's cache-max-ttl).
    pub max_ttl: u32,
    /// Longest time a negative answer is cached (RFC 2308 §5), seconds.
    pub max_negative_ttl: u32,
    /// Refresh popular entries in their last tenth of TTL.
    pub prefetch: bool,
    /// Keep an on-disk cache (L2) in data_dir that survives restarts.
    pub l2: bool,
    /// Serve expired answers while the upstream is unreachable (RFC 8767).
    pub serve_stale: bool,
    /// How long after expiry an answer may still be served stale, seconds
    /// (RFC 8767 §5 suggests 1 to 3 days).
    pub stale_limit_secs: u64,
    /// TTL of a stale answer (RFC 8767 §4: 30 s).
    pub stale_ttl: u32,
    /// After a failed refresh, how long stale answers are given without
    /// asking upstream again, seconds (RFC 8767 §4 "failure recheck").
    pub stale_recheck_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_bytes: 512 * 1024 * 1024,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            prefetch: true,
            l2: true,
            serve_stale: true,
            stale_limit_secs: 86_400,
            stale_ttl: 30,
            stale_recheck_secs: 30,
        }
    }
}

impl GatewayConfig {
    pub fn load(path: &std::path::Path) -> Result<GatewayConfig, ConfigError> {
        let config: GatewayConfig = crate::config::load_toml(path)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.apex()?;
        let root = self.root_prefix()?;
        if root.depth() != 1 {
            return Err(ConfigError::Invalid {
                key: "upstream.root_prefix",
                reason: "the root is a single segment, e.g. 86".into(),
            });
        }
        let bad = |key: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        if self.upstream.root_servers.is_empty() {
            return bad(
                "upstream.root_servers",
                "at least one national node address",
            );
        }
        if !(10..=60_000).contains(&self.upstream.timeout_ms) {
            return bad("upstream.timeout_ms", "10 to 60000");
        }
        if self.cache.max_entries == 0 || self.cache.max_bytes < 4096 {
            return bad("cache.max_entries", "at least 1 entry and 4096 bytes");
        }
        if let Some(api) = &self.events.report_to
            && let Err(why) = crate::ident::delegation::check_api_url(api)
        {
            return bad("events.report_to", &why);
        }
        if let Some(api) = &self.upstream.root_api
            && let Err(why) = crate::ident::delegation::check_api_url(api)
        {
            return bad("upstream.root_api", &why);
        }
        if !(1..=3600).contains(&self.events.flush_secs) {
            return bad("events.flush_secs", "1 second to an hour");
        }
        if let Err((key, why)) = self.http.limits.check() {
            return bad(key, &why);
        }
        Ok(())
    }

    /// The gateway's signing key file.
    pub fn key_file(&self) -> PathBuf {
        self.events
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("gateway-key.pem"))
    }

    pub fn apex(&self) -> Result<Apex, ConfigError> {
        Apex::parse(&self.upstream.apex).map_err(|e| ConfigError::Invalid {
            key: "upstream.apex",
            reason: e.to_string(),
        })
    }

    pub fn root_prefix(&self) -> Result<Prefix, ConfigError> {
        Prefix::parse(&self.upstream.root_prefix).map_err(|e| ConfigError::Invalid {
            key: "upstream.root_prefix",
            reason: e.to_string(),
        })
    }

    pub fn dns_listen(&self) -> DnsListen {
        let workers = match self.dns.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        DnsListen {
            addr: self.dns.listen,
            udp_mode: UdpMode::FastPath,
            udp_workers: workers,
            tcp_timeout: Duration::from_secs(self.dns.tcp_timeout_secs),
            tcp_max_connections: self.dns.tcp_max_connections,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_gateway_config_is_the_default() {
        let parsed: GatewayConfig =
            toml::from_str(include_str!("../../../zones/gateway.toml")).unwrap();
        assert_eq!(
            toml::to_string(&parsed).unwrap(),
            toml::to_string(&GatewayConfig::default()).unwrap()
        );
    }
}
