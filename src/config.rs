//! Node configuration: one TOML file, every setting optional, every default
//! written down in `zones/national.toml`.
//!
//! Unknown keys are an error, so a typo never silently falls back to a
//! default.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::dns::server::{DnsListen, UdpMode};
use crate::dns::zone::SoaTimers;
use crate::ident::identifier::{Apex, Prefix};

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub node: NodeConfig,
    pub dns: DnsConfig,
    pub http: HttpConfig,
    pub registration: RegistrationConfig,
    pub federation: FederationConfig,
    pub capacity: CapacityConfig,
    pub trade: TradeConfig,
    /// The transparency log (system E).
    pub log: LogConfig,
    /// The security-event feed (system E).
    pub events: EventsConfig,
    /// Selection (system D): weights, the latency matrix, routing.
    pub select: crate::select::SelectConfig,
    /// Zone transfer to secondaries (DESIGN §7): TSIG keys, who may
    /// transfer, where NOTIFY goes.
    pub transfer: TransferConfig,
    /// The risk assessment (`cpid doctor`, `GET /v1/admin/risk`).
    pub risk: RiskConfig,
    /// The file this configuration was read from, if any: the risk
    /// assessment checks its mode when it holds TSIG secrets.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// What the risk assessment (`crate::doctor`) measures against.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RiskConfig {
    /// A delegation ending within this many days is a finding.
    pub expiry_window_days: u64,
    /// How long committed leaves may wait for a checkpoint, seconds.
    pub checkpoint_max_age_secs: u64,
    /// An offline RustSec advisory database; `../shared/advisory-db`
    /// relative to the working directory when unset and present.
    pub advisory_db: Option<PathBuf>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        Self {
            expiry_window_days: 7,
            checkpoint_max_age_secs: 3600,
            advisory_db: None,
        }
    }
}

/// Zone transfer to stock secondaries (AXFR, IXFR, NOTIFY, TSIG).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// Bytes of change history kept (in memory) for IXFR; a secondary
    /// further behind gets the whole zone.
    pub history_bytes: usize,
    /// How long commits are gathered into one NOTIFY, milliseconds.
    pub notify_delay_ms: u64,
    /// TSIG keys (hmac-sha256), secrets in the base64 form Knot and NSD
    /// use (`keymgr -t NAME hmac-sha256`, `tsig-keygen`).
    pub keys: Vec<TsigKeyConfig>,
    /// The secondaries: who may transfer and where NOTIFY goes.
    pub secondaries: Vec<SecondaryConfig>,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            history_bytes: crate::dns::zone::DEFAULT_HISTORY_BYTES,
            notify_delay_ms: 50,
            keys: Vec::new(),
            secondaries: Vec::new(),
        }
    }
}

/// One TSIG key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsigKeyConfig {
    pub name: String,
    /// Only `hmac-sha256`.
    #[serde(default = "hmac_sha256")]
    pub algorithm: String,
    pub secret: String,
}

fn hmac_sha256() -> String {
    "hmac-sha256".into()
}

/// One secondary (or a group of them behind one network and key).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    /// Where NOTIFY goes (`address:port`); none when the secondary only
    /// polls.
    #[serde(default)]
    pub notify: Option<SocketAddr>,
    /// Who may transfer: an address or a network (`192.0.2.7`,
    /// `10.0.0.0/8`, `2001:db8::/32`); the NOTIFY address when unset.
    #[serde(default)]
    pub allow: Option<String>,
    /// The TSIG key its transfers must be signed with (and its NOTIFY
    /// messages are); unsigned transfers from its address when unset.
    #[serde(default)]
    pub key: Option<String>,
}

/// The transparency log (DESIGN §6, `schema/log.md`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// The log's origin line; `"<zone apex>/log"` when unset. A store keeps
    /// the origin its log started under and refuses another: a node
    /// rebuilt from a master-file export has a new log and names a new
    /// origin here (e.g. `"86.cpid.internal/log/2"`).
    pub origin: Option<String>,
}

/// The security-event feed (DESIGN §6).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Most events kept; the oldest are overwritten.
    pub capacity: u64,
    /// How often coalesced events are written, seconds.
    pub flush_secs: u64,
    /// Public keys (SPKI PEM files) of the gateways allowed to forward
    /// what they see (`POST /v1/events`).
    pub reporter_keys: Vec<PathBuf>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            capacity: 100_000,
            flush_secs: 5,
            reporter_keys: Vec::new(),
        }
    }
}

/// Transactions (DESIGN §5, `schema/transaction.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TradeConfig {
    /// How long a proposal waits for the provider's acceptance before it
    /// expires on its own, seconds.
    pub proposal_ttl_secs: u64,
}

impl Default for TradeConfig {
    fn default() -> Self {
        Self {
            proposal_ttl_secs: 15 * 60,
        }
    }
}

/// Status reports and the totals built from them (DESIGN §5).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapacityConfig {
    /// Shortest reporting interval an agent may declare, seconds.
    pub min_interval_secs: u32,
    /// Longest reporting interval an agent may declare, seconds.
    pub max_interval_secs: u32,
    /// Most resources in one report.
    pub max_resources_per_report: usize,
    /// Minute points of the totals' history kept (then hourly ones).
    pub history_minutes: usize,
    /// Hourly points kept beyond the minute ones.
    pub history_hours: usize,
    /// How often the signed summary of each delegated child is pulled from
    /// the API its delegation names, seconds; 0 turns the roll-up off.
    pub summary_pull_secs: u64,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        let d = crate::capacity::report::ReportLimits::default();
        Self {
            min_interval_secs: d.min_interval_secs,
            max_interval_secs: d.max_interval_secs,
            max_resources_per_report: d.max_resources,
            history_minutes: crate::capacity::history::Period::default().minutes,
            history_hours: crate::capacity::history::Period::default().hours,
            summary_pull_secs: 10,
        }
    }
}

impl CapacityConfig {
    pub fn limits(&self) -> crate::capacity::report::ReportLimits {
        crate::capacity::report::ReportLimits {
            min_interval_secs: self.min_interval_secs,
            max_interval_secs: self.max_interval_secs,
            max_resources: self.max_resources_per_report,
        }
    }

    pub fn history(&self) -> crate::capacity::history::Period {
        crate::capacity::history::Period {
            minutes: self.history_minutes,
            hours: self.history_hours,
        }
    }
}

/// Where this node sits in the hierarchy. A node with a chain checks it at
/// start and refuses to run if it does not lead from the root key to this
/// node's prefix and key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationConfig {
    /// The national root node's public key (SPKI PEM).
    pub trust_anchor_file: Option<PathBuf>,
    /// The delegations from the root down to this node (JSON
    /// `{"chain": [hex, ...]}`, root first), as `cpid admin delegate --out` writes it.
    pub chain_file: Option<PathBuf>,
    /// The national root node's DNS servers: where this node starts to
    /// resolve (and verify, from the trust anchor) buyers registered at
    /// other nodes and the candidates of a federated selection. Empty on
    /// the root node itself, which starts at its own zone.
    pub root_servers: Vec<SocketAddr>,
    /// The parent node's HTTP API (`http://host:port`), where this node
    /// submits its log's checkpoints to be witnessed. Without it, the
    /// parent's API named in the chain (the grandparent's delegation) is
    /// used; a child of the root node needs it set.
    pub parent_api: Option<String>,
    /// How often (seconds) a node with a chain asks its parent's API for
    /// the chain as it stands and takes a newer one that verifies (it
    /// follows a key rollover above it), and a parent revokes delegations
    /// whose rollover overlap has ended. 0: never.
    pub chain_refresh_secs: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            trust_anchor_file: None,
            chain_file: None,
            root_servers: Vec::new(),
            parent_api: None,
            chain_refresh_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// HTTP API listen address.
    pub listen: SocketAddr,
    /// Largest request body accepted on any route (bytes); larger ones
    /// get 413.
    pub max_body_bytes: usize,
    /// Connections, timeouts and request rates (`[http.limits]`).
    pub limits: HttpLimits,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8053)),
            max_body_bytes: 64 * 1024,
            limits: HttpLimits::default(),
        }
    }
}

/// What one HTTP listener (a node's API or a gateway's reader) lets a
/// client hold or ask for: `[http.limits]` in either's TOML. Enforced by
/// `api::server` and `api::limits`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Connections served at once; one more is answered 503
    /// `too_many_connections` and closed.
    pub max_connections: usize,
    /// How long a client may take to send a request's head (line and
    /// headers), and how long an idle keep-alive connection is kept, ms.
    pub header_timeout_ms: u64,
    /// How long a client may take to send a whole request body once its
    /// head is in, ms; then 408 `body_timeout` and the connection closes.
    pub body_timeout_ms: u64,
    /// Requests from one client address (IPv6: one /64); 429 beyond.
    pub rate_per_address: Rate,
    /// Signed requests per verified signing key, wherever they come from;
    /// 429 beyond.
    pub rate_per_key: Rate,
    /// Client addresses no rate applies to (neither per address nor per
    /// key): loopback by default, so local tools, the demo and the
    /// benchmark are never held back.
    pub rate_exempt: Vec<IpAddr>,
}

/// A token bucket: `per_second` requests a second on average, up to
/// `burst` at once; `per_second = 0` turns the limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            rate_per_address: Rate {
                per_second: 50,
                burst: 200,
            },
            rate_per_key: Rate {
                per_second: 20,
                burst: 200,
            },
            rate_exempt: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            ],
        }
    }
}

impl HttpLimits {
    /// Checks the ranges; the key is under `[http.limits]`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err(("http.limits.max_connections", "must be 1 to 1000000".into()));
        }
        if !(100..=600_000).contains(&self.header_timeout_ms) {
            return Err((
                "http.limits.header_timeout_ms",
                "must be 100 ms to 10 minutes".into(),
            ));
        }
        if !(100..=3_600_000).contains(&self.body_timeout_ms) {
            return Err((
                "http.limits.body_timeout_ms",
                "must be 100 ms to an hour".into(),
            ));
        }
        for (key, rate) in [
            ("http.limits.rate_per_address", self.rate_per_address),
            ("http.limits.rate_per_key", self.rate_per_key),
        ] {
            if rate.per_second > 0 && rate.burst == 0 {
                return Err((
                    key,
                    "burst must be at least 1 when per_second is set".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Whether new providers are active at once or wait for the admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// A self-registered provider is active at once.
    Open,
    /// A self-registered provider stays pending until the admin approves it.
    #[default]
    Review,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Open => "open",
            Policy::Review => "review",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// `open` or `review`.
    pub policy: Policy,
    /// How far a request's `created` may be from the node's clock, seconds.
    pub signature_window_secs: u64,
    /// The admin's public key (SPKI PEM). When absent the node uses
    /// `<data_dir>/admin-key.pem`, generated on first start.
    pub admin_public_key_file: Option<PathBuf>,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            policy: Policy::Review,
            signature_window_secs: 300,
            admin_public_key_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// The prefix this node is authoritative for.
    pub prefix: String,
    /// DNS apex under which prefixes are mapped.
    pub apex: String,
    /// Where the store and the node key live.
    pub data_dir: PathBuf,
    /// The node's signing key (PKCS#8 PEM); generated on first start when
    /// absent. Default: `<data_dir>/node-key.pem`.
    pub key_file: Option<PathBuf>,
    /// TTL of records whose values do not say otherwise.
    pub default_ttl: u32,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            prefix: "86".into(),
            apex: "cpid.internal".into(),
            data_dir: PathBuf::from("./cpid-data"),
            key_file: None,
            default_ttl: 3600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP and TCP listen address.
    pub listen: SocketAddr,
    /// `fast-path` (dedicated threads) or `hickory` (hickory-server's loop).
    pub udp_mode: UdpMode,
    /// Fast-path threads; 0 means one per core.
    pub udp_workers: usize,
    /// Idle timeout of a TCP connection, seconds.
    pub tcp_timeout_secs: u64,
    /// TCP connections served at once; more are closed on accept.
    pub tcp_max_connections: usize,
    /// Name servers of the zone; a relative name is taken inside the zone
    /// and gets glue from `addresses`.
    pub name_servers: Vec<NameServer>,
    /// Mailbox of the zone's SOA, relative to the zone.
    pub hostmaster: String,
    pub soa: SoaConfig,
    /// DNS cookies (RFC 7873, server cookies per RFC 9018).
    pub cookies: bool,
    /// The cookie secret, 32 hex digits (16 bytes); a random one each
    /// start when unset. Nodes behind one anycast address share one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_secret: Option<String>,
    /// Response-rate limiting on UDP (`[dns.rrl]`).
    pub rrl: RrlConfig,
    /// DNSSEC online signing (`[dns.dnssec]`).
    pub dnssec: DnssecConfig,
}

/// DNSSEC online signing with the node key (`dns::signing`): RRSIGs for
/// queries with DO, compact denial (RFC 9824), DS for delegated children.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnssecConfig {
    pub enabled: bool,
    /// Days a signature is valid after the start of the signing period
    /// it was made in.
    pub signature_days: u32,
    /// Every signature has more days than this left: signing periods are
    /// `signature_days − refresh_days` long, and a kept signature is made
    /// again on its first use in a new one.
    pub refresh_days: u32,
    /// Slots of the denial-signature cache (about 200 bytes each when
    /// full).
    pub denial_cache: usize,
}

impl Default for DnssecConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            signature_days: 14,
            refresh_days: 7,
            denial_cache: 262_144,
        }
    }
}

impl DnssecConfig {
    /// The signer's policy; `None` when the numbers do not make one.
    pub fn policy(&self) -> Option<crate::dns::signing::Policy> {
        let day = 86_400u32;
        let lifetime = self.signature_days.checked_mul(day)?;
        let refresh = self.refresh_days.checked_mul(day)?;
        (self.signature_days <= 365 && refresh < lifetime && self.denial_cache <= 1 << 24)
            .then_some(crate::dns::signing::Policy {
                lifetime,
                refresh,
                denial_cache: self.denial_cache,
            })
    }
}

/// Response-rate limiting on UDP (`dns::rrl`, Knot's `rrl` module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrlConfig {
    pub enabled: bool,
    /// Answers a second per flow (source network, kind of answer, name).
    pub rate_limit: u32,
    /// 0: drop every limited answer; 1: send every one truncated; N:
    /// every Nth truncated, the others dropped.
    pub slip: u32,
    /// Buckets in the fixed table (about 8 bytes each).
    pub table_size: usize,
    /// Source addresses are counted by network of this many bits.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Networks never limited (`192.0.2.0/24`, `2001:db8::/32`, an address).
    pub whitelist: Vec<String>,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rate_limit: 20,
            slip: 2,
            table_size: 393_241,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            whitelist: Vec::new(),
        }
    }
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5300)),
            udp_mode: UdpMode::FastPath,
            udp_workers: 0,
            tcp_timeout_secs: 10,
            tcp_max_connections: 1024,
            name_servers: vec![NameServer {
                name: "ns1".into(),
                addresses: vec![IpAddr::from([127, 0, 0, 1])],
            }],
            hostmaster: "hostmaster".into(),
            soa: SoaConfig::default(),
            cookies: true,
            cookie_secret: None,
            rrl: RrlConfig::default(),
            dnssec: DnssecConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameServer {
    pub name: String,
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoaConfig {
    pub ttl: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    pub minimum: u32,
}

impl Default for SoaConfig {
    fn default() -> Self {
        let t = SoaTimers::default();
        Self {
            ttl: t.ttl,
            refresh: t.refresh,
            retry: t.retry,
            expire: t.expire,
            minimum: t.minimum,
        }
    }
}

impl From<&SoaConfig> for SoaTimers {
    fn from(c: &SoaConfig) -> Self {
        SoaTimers {
            ttl: c.ttl,
            refresh: c.refresh,
            retry: c.retry,
            expire: c.expire,
            minimum: c.minimum,
        }
    }
}

/// Reads a TOML file into `T`; the one loader for node and gateway files.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = load_toml(path)?;
        config.validate()?;
        config.source = Some(path.to_owned());
        Ok(config)
    }

    /// Checks what serde cannot: prefix and apex syntax, name servers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.prefix()?;
        self.apex()?;
        crate::dns::xfr::Policy::from_config(&self.transfer).map_err(|reason| {
            ConfigError::Invalid {
                key: "transfer",
                reason,
            }
        })?;
        crate::dns::rrl::Rrl::check(&self.dns.rrl).map_err(|e| ConfigError::Invalid {
            key: "dns.rrl",
            reason: e.to_string(),
        })?;
        if self.dns.dnssec.policy().is_none() {
            return Err(ConfigError::Invalid {
                key: "dns.dnssec",
                reason: "refresh_days must be below signature_days (at most 365), \
                         denial_cache at most 16777216"
                    .into(),
            });
        }
        if let Some(secret) = &self.dns.cookie_secret {
            crate::dns::cookie::Cookies::from_config(Some(secret)).map_err(|e| {
                ConfigError::Invalid {
                    key: "dns.cookie_secret",
                    reason: e.to_string(),
                }
            })?;
        }
        if self.dns.name_servers.is_empty() {
            return Err(ConfigError::Invalid {
                key: "dns.name_servers",
                reason: "at least one name server is needed for the SOA and NS records".into(),
            });
        }
        if !(1..=3600).contains(&self.registration.signature_window_secs) {
            return Err(ConfigError::Invalid {
                key: "registration.signature_window_secs",
                reason: "must be 1 to 3600 seconds (nonces are kept that long)".into(),
            });
        }
        if self.federation.chain_file.is_some() && self.federation.trust_anchor_file.is_none() {
            return Err(ConfigError::Invalid {
                key: "federation.trust_anchor_file",
                reason: "a delegation chain is checked from the root key: set the trust anchor"
                    .into(),
            });
        }
        self.select
            .check()
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        if !(1..=7 * 24 * 3600).contains(&self.trade.proposal_ttl_secs) {
            return Err(ConfigError::Invalid {
                key: "trade.proposal_ttl_secs",
                reason: "must be 1 second to 7 days".into(),
            });
        }
        if let Some(api) = &self.federation.parent_api {
            crate::ident::delegation::check_api_url(api).map_err(|reason| {
                ConfigError::Invalid {
                    key: "federation.parent_api",
                    reason,
                }
            })?;
        }
        if !(1..=10_000_000).contains(&self.events.capacity) {
            return Err(ConfigError::Invalid {
                key: "events.capacity",
                reason: "must be 1 to 10 000 000".into(),
            });
        }
        if !(1..=3600).contains(&self.events.flush_secs) {
            return Err(ConfigError::Invalid {
                key: "events.flush_secs",
                reason: "must be 1 second to an hour".into(),
            });
        }
        let c = &self.capacity;
        if c.min_interval_secs == 0 || c.min_interval_secs > c.max_interval_secs {
            return Err(ConfigError::Invalid {
                key: "capacity.min_interval_secs",
                reason: "must be at least 1 and at most capacity.max_interval_secs".into(),
            });
        }
        if !(1..=100_000).contains(&c.max_resources_per_report) {
            return Err(ConfigError::Invalid {
                key: "capacity.max_resources_per_report",
                reason: "must be 1 to 100000".into(),
            });
        }
        if !(1..=525_600).contains(&c.history_minutes) {
            return Err(ConfigError::Invalid {
                key: "capacity.history_minutes",
                reason: "must be 1 to 525600 (a year of minutes)".into(),
            });
        }
        if c.history_hours > 87_600 {
            return Err(ConfigError::Invalid {
                key: "capacity.history_hours",
                reason: "must be at most 87600 (ten years of hours)".into(),
            });
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.http.max_body_bytes) {
            return Err(ConfigError::Invalid {
                key: "http.max_body_bytes",
                reason: "must be 1024 bytes to 64 MiB".into(),
            });
        }
        if !(1..=3650).contains(&self.risk.expiry_window_days) {
            return Err(ConfigError::Invalid {
                key: "risk.expiry_window_days",
                reason: "must be 1 to 3650 days".into(),
            });
        }
        if !(60..=30 * 24 * 3600).contains(&self.risk.checkpoint_max_age_secs) {
            return Err(ConfigError::Invalid {
                key: "risk.checkpoint_max_age_secs",
                reason: "must be a minute to 30 days".into(),
            });
        }
        self.http
            .limits
            .check()
            .map_err(|(key, reason)| ConfigError::Invalid { key, reason })?;
        Ok(())
    }

    pub fn prefix(&self) -> Result<Prefix, ConfigError> {
        Prefix::parse(&self.node.prefix).map_err(|e| ConfigError::Invalid {
            key: "node.prefix",
            reason: e.to_string(),
        })
    }

    pub fn apex(&self) -> Result<Apex, ConfigError> {
        Apex::parse(&self.node.apex).map_err(|e| ConfigError::Invalid {
            key: "node.apex",
            reason: e.to_string(),
        })
    }

    pub fn key_file(&self) -> PathBuf {
        self.node
            .key_file
            .clone()
            .unwrap_or_else(|| self.node.data_dir.join("node-key.pem"))
    }

    /// The admin key pair made on first start when no admin public key is
    /// configured.
    pub fn admin_key_file(&self) -> PathBuf {
        self.node.data_dir.join("admin-key.pem")
    }

    pub fn store_file(&self) -> PathBuf {
        self.node.data_dir.join("cpid.redb")
    }

    pub fn dns_listen(&self) -> DnsListen {
        let workers = match self.dns.udp_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        DnsListen {
            addr: self.dns.listen,
            udp_mode: self.dns.udp_mode,
            udp_workers: workers,
            tcp_timeout: Duration::from_secs(self.dns.tcp_timeout_secs),
            tcp_max_connections: self.dns.tcp_max_connections,
        }
    }

    /// The configuration as TOML, for `serve` to print at start.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_national_config_is_the_default() {
        let text = include_str!("../zones/national.toml");
        let parsed: Config = toml::from_str(text).unwrap();
        assert_eq!(parsed.to_toml(), Config::default().to_toml());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<Config>("[node]\nprefx = \"86\"\n").is_err());
    }
}
