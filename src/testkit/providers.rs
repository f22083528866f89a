//! Sample providers in six provinces (GB/T 2260: `11` Beijing, `15` Inner
//! Mongolia, `31` Shanghai, `44` Guangdong, `51` Sichuan, `62` Gansu), each with its own
//! key, an inventory whose descriptors follow the capacity standard
//! (`schema/resource.md`, peaks from `schema/devices.toml`) and a running
//! [`Agent`] against its node, so `cpid demo` shows live capacity.
//!
//! Everything is written under `<dir>/agents/<agent>/` the way a provider
//! would lay it out (`key.pem`, `inventory.toml`, the state file, status
//! files), so a reader can run `cpid agent --check` on any of them. The
//! Shanghai provider registers at the Shanghai node, the Inner Mongolia
//! one at the industry node (an industry's compute need not sit in its
//! node's province), the others at the national node (there is no
//! regional node for their provinces).
//! Figures move: `file` sources are rewritten by a small "scheduler"
//! thread with a slow wave of usage, and the Gansu pool reports this
//! machine's load (`source = "host"`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use super::federation::FederationError;
use crate::agent::state::AgentState;
use crate::agent::{Agent, HttpNode, Inventory, Source, StateFile};
use crate::api::body::ProviderRequest;
use crate::api::client::ApiClient;
use crate::ident::identifier::Identifier;
use crate::ident::keys::NodeKey;
use crate::ident::record::RecordStatus;

fn fail(e: impl std::fmt::Display) -> FederationError {
    FederationError(e.to_string())
}

/// Which node a sample provider registers at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    National,
    Shanghai,
    /// The industry node `86.31.1005`, below Shanghai: its figures reach
    /// the national node only through the roll-up.
    Industry,
}

/// A sample provider: who it is and its inventory (TOML).
pub struct Sample {
    pub agent: &'static str,
    pub name: &'static str,
    pub organisation: &'static str,
    pub region: &'static str,
    pub at: At,
    pub inventory: &'static str,
}

/// How often the sample agents report.
pub const INTERVAL_SECS: u32 = 10;

/// The six sample providers.
pub const SAMPLES: [Sample; 6] = [
    Sample {
        agent: "bj-yizhuang",
        name: "Beijing Yizhuang Intelligent Computing (demo)",
        organisation: "91110000DEMO0011X",
        region: "11",
        at: At::National,
        inventory: r#"
[[resource]]
name = "h800-pool"
endpoint = "https://yizhuang.compute.example/h800"
source = "file"
status_file = "h800-pool.status.json"
[resource.descriptor]
schema = "cpid.resource/1"
class = "IC"
region = "11"
unit = "card"
units_total = 256
devices = [{ model = "H800", count = 256, memory_gib = 80, peak_tflops = { fp64 = 1, fp32 = 67, tf32 = 494.5, bf16 = 989.5, fp16 = 989.5, fp8 = 1979, int8 = 1979 } }]
pue = 1.2
price_per_unit_hour = { amount = 28.0, currency = "CNY" }

[[resource]]
name = "cpu-cloud"
source = "declared"
units_in_use = 5200
[resource.descriptor]
schema = "cpid.resource/1"
class = "GC"
region = "11"
unit = "core"
units_total = 8192
cpu_cores = 8192
memory_gib = 32768
price_per_unit_hour = { amount = 0.12, currency = "CNY" }
"#,
    },
    Sample {
        agent: "sh-lingang",
        name: "Lingang AI Computing (demo)",
        organisation: "91310000DEMO0031X",
        region: "31",
        at: At::Shanghai,
        inventory: r#"
[[resource]]
name = "a800-pool"
endpoint = "https://lingang.compute.example/a800"
source = "file"
status_file = "a800-pool.status.json"
[resource.descriptor]
schema = "cpid.resource/1"
class = "IC"
region = "31"
unit = "card"
units_total = 512
devices = [{ model = "A800", count = 512, memory_gib = 80, peak_tflops = { fp64 = 19.5, fp32 = 19.5, tf32 = 156, bf16 = 312, fp16 = 312, int8 = 624 } }]
cpu_cores = 8192
memory_gib = 131072
network_gbps = 400
pue = 1.25
price_per_unit_hour = { amount = 12.5, currency = "CNY" }
"#,
    },
    Sample {
        agent: "gd-shaoguan",
        name: "Shaoguan Data Centre Cluster (demo)",
        organisation: "91440000DEMO0044X",
        region: "44",
        at: At::National,
        inventory: r#"
[[resource]]
name = "ascend-pool"
endpoint = "https://shaoguan.compute.example/ascend"
source = "file"
status_file = "ascend-pool.status.json"
[resource.descriptor]
schema = "cpid.resource/1"
class = "IC"
region = "44"
unit = "card"
units_total = 1024
devices = [{ model = "Ascend 910B", count = 1024, memory_gib = 64, peak_tflops = { bf16 = 320, fp16 = 320, int8 = 640 } }]
pue = 1.18
price_per_unit_hour = { amount = 9.8, currency = "CNY" }

[[resource]]
name = "object-store"
source = "declared"
units_in_use = 6200
[resource.descriptor]
schema = "cpid.resource/1"
class = "ST"
region = "44"
unit = "tib"
units_total = 10240
storage_tib = 10240
network_gbps = 200
price_per_unit_hour = { amount = 0.0014, currency = "CNY" }
"#,
    },
    Sample {
        agent: "sc-chengdu",
        name: "Chengdu Supercomputing Centre (demo)",
        organisation: "91510000DEMO0051X",
        region: "51",
        at: At::National,
        inventory: r#"
[[resource]]
name = "hpc"
endpoint = "https://chengdu.compute.example/hpc"
source = "file"
status_file = "hpc.status.json"
[resource.descriptor]
schema = "cpid.resource/1"
class = "SC"
region = "51"
unit = "node"
units_total = 400
cpu_cores = 25600
memory_gib = 102400
devices = [{ model = "MI250X", count = 128, peak_tflops = { fp64 = 95.7, fp32 = 95.7, bf16 = 383, fp16 = 383, int8 = 383 } }]
pue = 1.3
price_per_unit_hour = { amount = 30.0, currency = "CNY" }
"#,
    },
    Sample {
        agent: "gs-qingyang",
        name: "Qingyang Computing Hub (demo)",
        organisation: "91620000DEMO0062X",
        region: "62",
        at: At::National,
        inventory: r#"
[[resource]]
name = "general"
endpoint = "https://qingyang.compute.example/cloud"
source = "host"
[resource.descriptor]
schema = "cpid.resource/1"
class = "GC"
region = "62"
unit = "core"
units_total = 4096
cpu_cores = 4096
memory_gib = 16384
pue = 1.15
price_per_unit_hour = { amount = 0.08, currency = "CNY" }
"#,
    },
    Sample {
        agent: "nm-helinger",
        name: "Helinger Green Computing Park (demo)",
        organisation: "91150000DEMO0015X",
        region: "15",
        at: At::Industry,
        inventory: r#"
[[resource]]
name = "h20-pool"
endpoint = "https://helinger.compute.example/h20"
source = "file"
status_file = "h20-pool.status.json"
[resource.descriptor]
schema = "cpid.resource/1"
class = "IC"
region = "15"
unit = "card"
units_total = 768
devices = [{ model = "H20", count = 768, memory_gib = 96, peak_tflops = { fp32 = 44, tf32 = 74, bf16 = 148, fp16 = 148, fp8 = 296, int8 = 296 } }]
pue = 1.15
price_per_unit_hour = { amount = 7.2, currency = "CNY" }
"#,
    },
];

/// A sample provider as started.
#[derive(Debug, Clone)]
pub struct Started {
    pub agent: String,
    pub region: String,
    pub provider: Identifier,
    /// The node's HTTP API it reports to.
    pub url: String,
    pub inventory: PathBuf,
    /// The provider's signing key (PKCS#8 PEM).
    pub key: PathBuf,
}

/// The running sample agents and their scheduler; [`SampleAgents::stop`]
/// ends them.
pub struct SampleAgents {
    pub started: Vec<Started>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl SampleAgents {
    /// Stops every agent and the scheduler and waits for them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            if t.join().is_err() {
                tracing::error!("a sample agent thread failed");
            }
        }
    }
}

/// Where a node is: its HTTP API and its admin key (to approve a pending
/// provider).
pub struct NodeAccess {
    pub url: String,
    pub admin: NodeKey,
}

/// Writes the samples under `dir/agents`, registers each provider (or
/// finds it in its state file, on a restarted demo) and starts its agent.
/// Blocking: call it off an async runtime's worker threads.
pub fn start(
    dir: &Path,
    national: NodeAccess,
    shanghai: NodeAccess,
    industry: NodeAccess,
) -> Result<SampleAgents, FederationError> {
    let stop = Arc::new(AtomicBool::new(false));
    let mut started = Vec::new();
    let mut threads = Vec::new();
    let mut status_files = Vec::new();
    for sample in &SAMPLES {
        let node = match sample.at {
            At::National => &national,
            At::Shanghai => &shanghai,
            At::Industry => &industry,
        };
        let home = dir.join("agents").join(sample.agent);
        std::fs::create_dir_all(&home).map_err(fail)?;
        let inventory_file = home.join("inventory.toml");
        std::fs::write(
            &inventory_file,
            format!(
                "# {} ({})\nagent = \"{}\"\ninterval_secs = {INTERVAL_SECS}\n{}",
                sample.name, sample.region, sample.agent, sample.inventory
            ),
        )
        .map_err(fail)?;
        let inventory = Inventory::load(&inventory_file).map_err(fail)?;
        let (key, _) = NodeKey::load_or_generate(&home.join("key.pem")).map_err(fail)?;
        let client = ApiClient::new(&node.url);
        let provider = provider(sample, &inventory, &client, &key, &node.admin)?;
        for item in &inventory.items {
            if let Source::File(path) = &item.source {
                status_files.push((path.clone(), item.descriptor.units_total));
                write_status(path, item.descriptor.units_total, 0.0)?;
            }
        }
        let mut agent = Agent::new(
            inventory,
            HttpNode::new(client, key, provider.clone()).map_err(fail)?,
        )
        .map_err(fail)?;
        agent
            .state_mut()
            .set_provider(sample.agent, &provider.to_string())
            .map_err(fail)?;
        let s = stop.clone();
        threads.push(std::thread::spawn(move || agent.run(&s)));
        started.push(Started {
            agent: sample.agent.to_string(),
            region: sample.region.to_string(),
            provider,
            url: node.url.clone(),
            inventory: inventory_file,
            key: home.join("key.pem"),
        });
    }
    let s = stop.clone();
    threads.push(std::thread::spawn(move || scheduler(&status_files, &s)));
    Ok(SampleAgents {
        started,
        stop,
        threads,
    })
}

/// The provider of `sample`: remembered in its state file, or registered
/// now (and approved when the node reviews providers).
fn provider(
    sample: &Sample,
    inventory: &Inventory,
    client: &ApiClient,
    key: &NodeKey,
    admin: &NodeKey,
) -> Result<Identifier, FederationError> {
    let remembered = AgentState::load(&inventory.state_file)
        .map_err(fail)?
        .agents
        .get(sample.agent)
        .and_then(|e| e.provider.clone());
    if let Some(p) = remembered {
        return Identifier::parse(&p).map_err(fail);
    }
    let reply = client
        .register_provider(
            &ProviderRequest {
                name: sample.name.into(),
                organisation: sample.organisation.into(),
                contact: format!("noc@{}.example", sample.agent),
                region: sample.region.into(),
                public_key: key.public().to_public_pem(),
            },
            key,
        )
        .map_err(fail)?;
    let pv = reply.record.record().identifier.clone();
    // Remembered at once: the key cannot register a second provider.
    StateFile::open(&inventory.state_file)
        .and_then(|mut s| s.set_provider(sample.agent, &pv.to_string()))
        .map_err(fail)?;
    if reply.record.record().status == RecordStatus::Pending {
        client.approve(&pv, admin).map_err(fail)?;
    }
    Ok(pv)
}

/// A status file as a scheduler writes it: `share` of `total` in use.
fn write_status(path: &Path, total: u64, share: f64) -> Result<(), FederationError> {
    let in_use = ((total as f64) * share.clamp(0.0, 1.0)).round() as u64;
    let in_use = in_use.min(total);
    let body = serde_json::json!({
        "units_available": total - in_use,
        "units_in_use": in_use,
        "health": "ok",
        "utilization": share.clamp(0.0, 1.0),
    });
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, body.to_string()).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Rewrites the status files every few seconds: usage between 35 % and
/// 95 %, a slow wave with each file at its own phase.
fn scheduler(files: &[(PathBuf, u64)], stop: &AtomicBool) {
    let mut tick = 0u32;
    while !stop.load(Ordering::Relaxed) {
        for (i, (path, total)) in files.iter().enumerate() {
            let phase = f64::from(tick) / 12.0 + i as f64 * 1.7;
            let share = 0.65 + 0.3 * phase.sin();
            if let Err(e) = write_status(path, *total, share) {
                tracing::warn!(file = %path.display(), error = %e, "cannot write a demo status file");
            }
        }
        tick = tick.wrapping_add(1);
        for _ in 0..25 {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
