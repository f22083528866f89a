//! `cpid agent` (the provider's monitoring agent over an inventory) and
//! `cpid report` (one status report by hand).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::Args;

use cpid::agent::manual::{self, Sequence};
use cpid::agent::state::AgentState;
use cpid::agent::{self as agentlib, Agent, HttpNode, Inventory, Source, StateFile};
use cpid::api::client::ApiClient;
use cpid::ident::identifier::Identifier;

use super::load_key;

#[derive(Args)]
pub(crate) struct AgentOpts {
    /// The provider's signing key (PKCS#8 PEM).
    #[arg(long, short = 'k', required_unless_present = "check")]
    key: Option<PathBuf>,
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8053")]
    server: String,
    /// The inventory (TOML): agent id, interval, resources and their descriptors.
    #[arg(long, short = 'i')]
    inventory: PathBuf,
    /// The provider (PV) identifier the key belongs to, as `cpid provider
    /// register` printed it; needed on the first run, remembered in the
    /// state file after.
    #[arg(long)]
    provider: Option<String>,
    /// State file (sequence number, identifiers, provider); overrides the
    /// inventory's state_file.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Register what is missing, send one report, and exit.
    #[arg(long, conflicts_with = "check")]
    once: bool,
    /// Check the inventory and print what would be registered and reported;
    /// sends nothing.
    #[arg(long)]
    check: bool,
}

pub(crate) fn agent(opts: AgentOpts) -> Result<()> {
    let mut inventory = Inventory::load(&opts.inventory)?;
    if let Some(state) = &opts.state {
        inventory.state_file = state.clone();
    }
    if opts.check {
        return check(&inventory, opts.provider.as_deref());
    }
    let Some(key_file) = &opts.key else {
        bail!("--key is needed to register and report");
    };
    let key = load_key(key_file)?;
    // Read without the lock, only to find the remembered provider; the
    // agent takes the lock below.
    let remembered = AgentState::load(&inventory.state_file)?
        .agents
        .get(&inventory.agent)
        .and_then(|e| e.provider.clone());
    let provider = match (&opts.provider, remembered) {
        (Some(given), Some(old)) if *given != old => {
            tracing::warn!(provider = given, was = old, "acting for another provider");
            given.clone()
        }
        (Some(given), _) => given.clone(),
        (None, Some(old)) => old,
        (None, None) => bail!(
            "give --provider: the PV identifier `cpid provider register` printed for this key (it is remembered in {} after)",
            inventory.state_file.display()
        ),
    };
    let provider =
        Identifier::parse(&provider).with_context(|| format!("--provider {provider}"))?;
    let node = HttpNode::new(ApiClient::new(&opts.server), key, provider.clone())?;
    let agent_id = inventory.agent.clone();
    let mut agent = Agent::new(inventory, node)?;
    agent
        .state_mut()
        .set_provider(&agent_id, &provider.to_string())?;
    if opts.once {
        let found = agent.reconcile()?;
        for (name, id) in &found {
            println!("{name}\t{id}");
        }
        let sent = agent.tick(cpid::clock::system_now())?;
        eprintln!(
            "report {} of agent {}: {} resources accepted",
            sent.seq,
            sent.agent,
            sent.resources.len()
        );
        return Ok(());
    }
    tracing::info!(
        agent = agent_id,
        %provider,
        server = opts.server,
        resources = agent.inventory().items.len(),
        interval_secs = agent.inventory().interval_secs,
        "agent started"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let stop = stop.clone();
        std::thread::spawn(move || agent.run(&stop))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(super::shutdown_signal());
    stop.store(true, Ordering::Relaxed);
    if worker.join().is_err() {
        bail!("the agent thread failed");
    }
    tracing::info!(agent = agent_id, "agent stopped");
    Ok(())
}

/// `--check`: the inventory read and checked, then per resource its tag,
/// what is known of its identifier and the figures it would report now.
fn check(inventory: &Inventory, provider: Option<&str>) -> Result<()> {
    let state = AgentState::load(&inventory.state_file)?;
    let entry = state.agents.get(&inventory.agent);
    let ids = entry.map(|e| e.ids.clone()).unwrap_or_default();
    let provider = provider
        .map(str::to_string)
        .or_else(|| entry.and_then(|e| e.provider.clone()));
    if let Some(p) = &provider {
        Identifier::parse(p).with_context(|| format!("provider {p}"))?;
    }
    println!(
        "inventory ok: agent {}, every {} s, {} resources, state {} (last sequence {})",
        inventory.agent,
        inventory.interval_secs,
        inventory.items.len(),
        inventory.state_file.display(),
        entry.map_or(0, |e| e.last_seq)
    );
    println!(
        "provider: {}",
        provider
            .as_deref()
            .unwrap_or("not known yet: give --provider")
    );
    let needs_host = inventory.items.iter().any(|i| i.source == Source::Host);
    let host = needs_host.then(agentlib::host::collect);
    for p in agentlib::plan(inventory, &ids, host.as_ref(), now()) {
        let Some(item) = inventory.items.iter().find(|i| i.name == p.name) else {
            continue;
        };
        let d = &item.descriptor;
        println!(
            "\n{}  {} in region {}, {} {}: {}",
            p.name,
            d.class,
            d.region.as_deref().unwrap_or("-"),
            d.units_total,
            d.unit.as_str(),
            match &p.id {
                Some(id) => format!("registered as {id}"),
                None => format!(
                    "to register (unless the node holds a record tagged {})",
                    p.tag
                ),
            },
        );
        match &p.status {
            Ok(s) => println!(
                "  would report: {} available, {} in use, {}{}",
                s.units_available,
                s.units_in_use,
                s.health.as_str(),
                s.utilization
                    .map(|u| format!(", utilization {u:.2}"))
                    .unwrap_or_default()
            ),
            Err(reason) => println!("  left out of the report now: {reason}"),
        }
    }
    Ok(())
}

fn now() -> u64 {
    cpid::clock::system_now()
}

#[derive(Args)]
pub(crate) struct ReportOpts {
    /// The provider's signing key (PKCS#8 PEM).
    #[arg(long, short = 'k')]
    key: PathBuf,
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8053")]
    server: String,
    /// The reporter's id (sequence numbers count per key and agent id).
    #[arg(long, default_value = "manual")]
    agent: String,
    /// How long the figures hold, in seconds: stale after three intervals.
    #[arg(long, default_value_t = 300)]
    interval: u32,
    /// Send exactly this sequence number and remember nothing; without it
    /// the next number is kept in --state.
    #[arg(long, conflicts_with = "state")]
    seq: Option<u64>,
    /// Where the sequence numbers are kept; default `<key>.reports.json`
    /// beside the key.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Resources as ID=AVAILABLE/IN_USE[:ok|degraded|down], e.g.
    /// 86.31.1005/IC-000001-4=6/2:ok
    #[arg(value_name = "ID=AVAIL/INUSE[:HEALTH]", required = true)]
    resources: Vec<String>,
}

pub(crate) fn report(opts: ReportOpts) -> Result<()> {
    // Arguments first: a typo never costs a sequence number.
    for r in &opts.resources {
        manual::parse_status(r)?;
    }
    let key = load_key(&opts.key)?;
    let client = ApiClient::new(&opts.server);
    let mut state;
    let seq = match opts.seq {
        Some(n) => Sequence::Given(n),
        None => {
            let path = opts
                .state
                .clone()
                .unwrap_or_else(|| beside(&opts.key, ".reports.json"));
            state = StateFile::open(&path)?;
            Sequence::State(&mut state)
        }
    };
    let sent = manual::send(
        &client,
        &key,
        &opts.agent,
        opts.interval,
        &opts.resources,
        seq,
        now(),
    )?;
    let body = &sent.body;
    println!("{}", body.seq);
    if sent.earlier {
        eprintln!(
            "report {} of agent {} was accepted before: the node keeps the figures it took then (a new report needs a higher --seq)",
            body.seq, body.agent
        );
    } else {
        eprintln!(
            "report {} of agent {}: {} resources accepted",
            body.seq,
            body.agent,
            body.resources.len()
        );
    }
    Ok(())
}

fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}
