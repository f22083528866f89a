//! A whole federation on loopback: the national node, the Shanghai
//! regional node, one industry node and a gateway, with the delegations
//! made through the nodes' own admin API and a sample provider and
//! resources registered at the industry node. `cpid demo` runs it; the
//! integration tests start it on ephemeral ports.
//!
//! Everything a node is told about its place comes from the same files an
//! operator would write: the root key (`national.pub`) and each child's
//! `chain.json`, as `cpid admin delegate --out` makes them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::api::body::{DelegationRequest, IssueRequest, ProviderRequest, ValueInput};
use crate::api::client::ApiClient;
use crate::config::Config;
use crate::ident::delegation::{ChainFile, Delegation, Server};
use crate::ident::identifier::Prefix;
use crate::ident::keys::{NodeKey, PublicKey};
use crate::ident::record::RecordStatus;
use crate::node::{Node, Running};
use crate::resolution::gateway::{Gateway, GatewayConfig, RunningGateway};

/// Why the federation could not be started.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FederationError(pub String);

fn fail(e: impl std::fmt::Display) -> FederationError {
    FederationError(e.to_string())
}

/// Where each member listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub national: (SocketAddr, SocketAddr),
    pub shanghai: (SocketAddr, SocketAddr),
    pub industry: (SocketAddr, SocketAddr),
    pub gateway: (SocketAddr, SocketAddr),
}

impl Ports {
    /// The addresses in `zones/` (DNS, HTTP).
    pub fn demo() -> Ports {
        let at = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        Ports {
            national: (at(5300), at(8053)),
            shanghai: (at(5301), at(8054)),
            industry: (at(5302), at(8055)),
            gateway: (at(5353), at(8080)),
        }
    }
}

/// The configurations the demo starts from (the files in `zones/`).
pub const NATIONAL_TOML: &str = include_str!("../../zones/national.toml");
pub const SHANGHAI_TOML: &str = include_str!("../../zones/shanghai.toml");
pub const INDUSTRY_TOML: &str = include_str!("../../zones/industry.toml");
pub const GATEWAY_TOML: &str = include_str!("../../zones/gateway.toml");

/// How the members are set up.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub ports: Ports,
    /// Applied to every node's default TTL and SOA minimum when set (tests).
    pub ttl: Option<u32>,
    /// Applied to the gateway's configuration (tests shorten timers).
    pub gateway: fn(&mut GatewayConfig),
    /// Applied to every node's configuration (tests shorten timers).
    pub node: fn(&mut Config),
    /// `knotd` to run as a secondary of the national zone: the gateway
    /// then knows only that secondary (the national node is a hidden
    /// primary).
    pub knot: Option<PathBuf>,
}

impl Options {
    /// The federation on loopback for tests and benchmarks: the national
    /// node and the gateway on port 0, the children on addresses free now
    /// (their delegations name their DNS and API before they start), the
    /// nodes pulling their children's summaries every second.
    pub fn loopback(dir: &Path) -> std::io::Result<Options> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Options {
            dir: dir.to_path_buf(),
            ports: Ports {
                national: (any, any),
                shanghai: (free_addr()?, free_addr()?),
                industry: (free_addr()?, free_addr()?),
                gateway: (any, any),
            },
            ttl: None,
            gateway: |_| {},
            node: |c| c.capacity.summary_pull_secs = 1,
            knot: None,
        })
    }
}

/// A loopback address whose UDP and TCP ports were both free just now
/// (for what must name its address before it starts).
///
/// The port is drawn at random below Linux's ephemeral range (32768 and
/// up by default), from which every bind to port 0 and every outgoing
/// connection takes its port: one of those, made by a test running beside
/// this one, could otherwise take the port between now and its use.
pub fn free_addr() -> std::io::Result<SocketAddr> {
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    for _ in 0..1000 {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).map_err(|e| std::io::Error::other(e.to_string()))?;
        let port = LOW + u16::from_le_bytes(b) % SPAN;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let Ok(_udp) = std::net::UdpSocket::bind(addr) else {
            continue;
        };
        if std::net::TcpListener::bind(addr).is_ok() {
            return Ok(addr);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "no free port below the ephemeral range",
    ))
}

/// The running federation.
pub struct Federation {
    pub dir: PathBuf,
    pub national: Member,
    pub shanghai: Member,
    pub industry: Member,
    pub gateway: RunningGateway,
    /// The national node's public key file (the trust anchor).
    pub root_key_file: PathBuf,
    /// The Knot secondary of the national zone, when one was asked for.
    pub knot: Option<crate::testkit::knot::KnotSecondary>,
}

/// One running node.
pub struct Member {
    pub node: Arc<Node>,
    pub running: Running,
    pub config: Config,
}

impl Member {
    pub fn http_url(&self) -> String {
        format!("http://{}", self.running.http_addr())
    }

    pub fn admin_key(&self) -> Result<NodeKey, FederationError> {
        NodeKey::load(&self.config.admin_key_file()).map_err(fail)
    }
}

fn node_config(
    toml_text: &str,
    dir: &Path,
    name: &str,
    listen: (SocketAddr, SocketAddr),
    opts: &Options,
) -> Result<Config, FederationError> {
    let mut c: Config = toml::from_str(toml_text).map_err(fail)?;
    c.node.data_dir = dir.join(name);
    c.dns.listen = listen.0;
    c.http.listen = listen.1;
    // Every member, the gateway and the benchmark's load are on loopback:
    // response-rate limiting stays on for everyone else.
    c.dns.rrl.whitelist = vec!["127.0.0.0/8".into(), "::1".into()];
    if let Some(t) = opts.ttl {
        c.node.default_ttl = t;
        c.dns.soa.minimum = t;
        c.dns.soa.ttl = t;
    }
    (opts.node)(&mut c);
    Ok(c)
}

/// Opens and serves a node (also used to bring one back after a stop).
pub async fn start_member(config: Config) -> Result<Member, FederationError> {
    let node = tokio::task::spawn_blocking(move || Node::open(config))
        .await
        .map_err(fail)?
        .map_err(fail)?;
    let running = node.serve().await.map_err(fail)?;
    let config = node.config.clone();
    Ok(Member {
        node: Arc::new(node),
        running,
        config,
    })
}

/// Runs blocking HTTP client work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FederationError> + Send + 'static,
) -> Result<T, FederationError> {
    tokio::task::spawn_blocking(f).await.map_err(fail)?
}

/// Asks the parent node at `parent_url` (signed by its admin key) to
/// delegate `prefix` to `child`, served by `servers`; returns the child's
/// chain, root first. Used by `cpid admin delegate` and the demo.
pub fn delegate(
    parent_url: &str,
    admin: &NodeKey,
    prefix: &Prefix,
    child: &PublicKey,
    servers: &[Server],
    api: Option<String>,
    valid_days: u64,
) -> Result<ChainFile, FederationError> {
    let request = DelegationRequest {
        prefix: prefix.to_string(),
        public_key: child.to_public_pem(),
        servers: servers.to_vec(),
        valid_days: Some(valid_days),
        api,
    };
    let delegated = ApiClient::new(parent_url)
        .delegate(&request, admin)
        .map_err(|e| FederationError(format!("delegating {prefix}: {e}")))?;
    Ok(delegated.chain)
}

/// Makes (or reuses) the child's key and chain, then starts it.
async fn start_child(
    parent: &Member,
    mut config: Config,
    root_key_file: &Path,
    root_dns: SocketAddr,
) -> Result<Member, FederationError> {
    let dir = config.node.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(fail)?;
    let (key, _) = NodeKey::load_or_generate(&config.key_file()).map_err(fail)?;
    let chain_file = dir.join("chain.json");
    config.federation.trust_anchor_file = Some(root_key_file.to_owned());
    config.federation.chain_file = Some(chain_file.clone());
    config.federation.root_servers = vec![root_dns];
    // The parent witnesses this node's log at its API.
    config
        .federation
        .parent_api
        .get_or_insert_with(|| parent.http_url());
    let prefix = config.prefix().map_err(fail)?;
    // The parent pulls the child's summary from its API, so the delegation
    // names it; a child listening on port 0 has no address to name yet.
    let api = (config.http.listen.port() != 0).then(|| format!("http://{}", config.http.listen));
    // An existing chain is kept if it still verifies and names this API
    // (a restarted demo).
    let usable = chain_file.exists()
        && Node::open(config.clone()).is_ok_and(|n| {
            n.chain
                .get()
                .last()
                .and_then(|d| Delegation::from_record(d).ok())
                .is_some_and(|d| d.api == api)
        });
    if !usable {
        let apex = config.apex().map_err(fail)?;
        let servers = vec![Server {
            name: format!("ns1.{}", prefix.zone_name(&apex)),
            addresses: vec![config.dns.listen],
        }];
        let (url, admin, public, p) =
            (parent.http_url(), parent.admin_key()?, key.public(), prefix);
        let chain =
            blocking(move || delegate(&url, &admin, &p, &public, &servers, api, 365)).await?;
        let text = serde_json::to_string_pretty(&chain).map_err(fail)?;
        std::fs::write(&chain_file, text).map_err(fail)?;
    }
    start_member(config).await
}

impl Federation {
    /// Starts the four members and the delegations between them.
    pub async fn start(opts: &Options) -> Result<Federation, FederationError> {
        let dir = &opts.dir;
        std::fs::create_dir_all(dir).map_err(fail)?;
        let p = opts.ports;
        // The gateway forwards what it sees to the national node, which
        // knows its key before either starts.
        let gateway_dir = dir.join("gateway");
        std::fs::create_dir_all(&gateway_dir).map_err(fail)?;
        let (gateway_key, _) =
            NodeKey::load_or_generate(&gateway_dir.join("gateway-key.pem")).map_err(fail)?;
        let gateway_pub = dir.join("gateway.pub");
        std::fs::write(&gateway_pub, gateway_key.public().to_public_pem()).map_err(fail)?;
        let mut national_config = node_config(NATIONAL_TOML, dir, "national", p.national, opts)?;
        national_config.events.reporter_keys.push(gateway_pub);
        // The secondary's address and key first: the national node
        // notifies it and allows it to transfer.
        let knot_plan = match &opts.knot {
            Some(knotd) => {
                let addr = free_addr().map_err(fail)?;
                let (name, secret) = crate::testkit::knot::random_key("demo-xfr").map_err(fail)?;
                national_config.transfer.keys = vec![crate::config::TsigKeyConfig {
                    name: name.clone(),
                    algorithm: "hmac-sha256".into(),
                    secret: secret.clone(),
                }];
                national_config.transfer.secondaries = vec![crate::config::SecondaryConfig {
                    notify: Some(addr),
                    allow: None,
                    key: Some(name.clone()),
                }];
                Some((knotd.clone(), addr, name, secret))
            }
            None => None,
        };
        let national = start_member(national_config).await?;
        let root_key_file = dir.join("national.pub");
        std::fs::write(
            &root_key_file,
            national.node.registry.key().public().to_public_pem(),
        )
        .map_err(fail)?;
        let shanghai = start_child(
            &national,
            node_config(SHANGHAI_TOML, dir, "shanghai", p.shanghai, opts)?,
            &root_key_file,
            national.running.dns_addr(),
        )
        .await?;
        let industry = start_child(
            &shanghai,
            node_config(INDUSTRY_TOML, dir, "industry", p.industry, opts)?,
            &root_key_file,
            national.running.dns_addr(),
        )
        .await?;
        let knot = match knot_plan {
            Some((knotd, addr, name, secret)) => {
                let zone = national.node.registry.zone().apex().to_string();
                let knot = crate::testkit::knot::KnotSecondary::start(
                    &knotd,
                    &dir.join("knot"),
                    addr,
                    &zone,
                    national.running.dns_addr(),
                    Some((&name, &secret)),
                )
                .map_err(fail)?;
                let serial = national.node.registry.zone().serial();
                if !knot
                    .wait_serial(&zone, serial, std::time::Duration::from_secs(30))
                    .await
                {
                    return Err(FederationError(format!(
                        "the Knot secondary at {addr} did not load {zone} serial {serial} (see {})",
                        dir.join("knot/knot.log").display()
                    )));
                }
                Some(knot)
            }
            None => None,
        };
        let mut gc: GatewayConfig = toml::from_str(GATEWAY_TOML).map_err(fail)?;
        gc.data_dir = gateway_dir;
        gc.events.report_to = Some(national.http_url());
        gc.upstream.root_api = Some(national.http_url());
        gc.events.flush_secs = 1;
        gc.upstream.root_servers = match &knot {
            Some(k) => vec![k.addr()],
            None => vec![national.running.dns_addr()],
        };
        gc.upstream.root_key_file = root_key_file.clone();
        gc.dns.listen = p.gateway.0;
        gc.http.listen = p.gateway.1;
        (opts.gateway)(&mut gc);
        let gateway = crate::resolution::gateway::serve(Gateway::open(gc).map_err(fail)?)
            .await
            .map_err(fail)?;
        Ok(Federation {
            dir: dir.clone(),
            national,
            shanghai,
            industry,
            gateway,
            root_key_file,
            knot,
        })
    }

    /// Registers (or finds, on a restarted demo) a sample provider and
    /// three resources at the industry node; returns their identifiers.
    pub async fn sample_records(&self) -> Result<Vec<String>, FederationError> {
        let saved = self.dir.join("sample.json");
        if let Ok(text) = std::fs::read_to_string(&saved)
            && let Ok(ids) = serde_json::from_str::<Vec<String>>(&text)
        {
            return Ok(ids);
        }
        let key_file = self.dir.join("provider-key.pem");
        let (provider_key, _) = NodeKey::load_or_generate(&key_file).map_err(fail)?;
        let url = self.industry.http_url();
        let admin = self.industry.admin_key()?;
        let ids = blocking(move || {
            let client = ApiClient::new(&url);
            let provider = client
                .register_provider(
                    &ProviderRequest {
                        name: "Shanghai AI Compute Centre (demo)".into(),
                        organisation: "91310000DEMO0001X".into(),
                        contact: "ops@compute.example".into(),
                        region: "31".into(),
                        public_key: provider_key.public().to_public_pem(),
                    },
                    &provider_key,
                )
                .map_err(fail)?;
            let pv = provider.record.record().identifier.clone();
            if provider.record.record().status == RecordStatus::Pending {
                client.approve(&pv, &admin).map_err(fail)?;
            }
            let mut ids = vec![pv.to_string()];
            let resources = [
                (
                    "IC",
                    r#"{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":512,"devices":[{"model":"A800","count":512,"memory_gib":80,"peak_tflops":{"fp64":19.5,"fp32":19.5,"tf32":156,"bf16":312,"fp16":312,"int8":624}}],"cpu_cores":8192,"memory_gib":131072,"network_gbps":400,"pue":1.25,"price_per_unit_hour":{"amount":12.5,"currency":"CNY"},"declared_peak_tflops":{"fp16":159744}}"#,
                    "https://ai.compute.example/v1",
                ),
                (
                    "SC",
                    r#"{"schema":"cpid.resource/1","class":"SC","region":"31","unit":"node","units_total":500,"cpu_cores":40000,"memory_gib":160000,"devices":[{"model":"MI250X","count":128,"peak_tflops":{"fp64":95.7,"fp32":95.7,"bf16":383,"fp16":383,"int8":383}}],"pue":1.3,"price_per_unit_hour":{"amount":30,"currency":"CNY"}}"#,
                    "https://hpc.compute.example/v1",
                ),
                (
                    "ST",
                    r#"{"schema":"cpid.resource/1","class":"ST","region":"31","unit":"tib","units_total":20480,"storage_tib":20480,"network_gbps":800,"price_per_unit_hour":{"amount":0.0014,"currency":"CNY"}}"#,
                    "https://store.compute.example/s3",
                ),
            ];
            let value = |kind: &str, data: String| ValueInput {
                index: None,
                kind: kind.into(),
                data,
                ttl: 0,
            };
            for (class, resource, endpoint) in resources {
                let request = IssueRequest {
                    class: class.into(),
                    values: vec![
                        value("CP.RESOURCE", resource.into()),
                        value("CP.ENDPOINT", endpoint.into()),
                        value("DESC", format!("demo {class} resource")),
                    ],
                };
                let r = client.register(&request, &provider_key).map_err(fail)?;
                ids.push(r.record.record().identifier.to_string());
            }
            Ok(ids)
        })
        .await?;
        std::fs::write(&saved, serde_json::to_string(&ids).map_err(fail)?).map_err(fail)?;
        Ok(ids)
    }

    /// Stops everything, gateway first.
    pub async fn shutdown(self) -> Result<(), FederationError> {
        self.gateway.shutdown().await.map_err(fail)?;
        for m in [self.industry, self.shanghai, self.national] {
            m.running.shutdown().await.map_err(fail)?;
        }
        Ok(())
    }
}
