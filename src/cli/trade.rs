//! `cpid user register` and `cpid tx propose|accept|reject|activate|settle|
//! cancel|show|list`: a buyer's and a provider's signed calls for
//! transactions (system A).

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use cpid::api::body::ProviderRequest;
use cpid::api::client::TxReply;
use cpid::ident::identifier::Identifier;
use cpid::trade::{ProposeRequest, StepKind, StepRequest};

use super::load_key;
use super::provider::{ApiOpts, print_reply};

#[derive(Subcommand)]
pub(crate) enum UserCommand {
    /// Register a buyer signed by its own key; prints the US identifier.
    Register {
        #[command(flatten)]
        api: ApiOpts,
        /// Buyer name.
        #[arg(long)]
        name: String,
        /// Organisation code (e.g. the unified social credit code).
        #[arg(long)]
        organisation: String,
        /// Contact e-mail address.
        #[arg(long)]
        contact: String,
        /// GB/T 2260 province code of the buyer, e.g. 31 (Shanghai).
        #[arg(long)]
        region: String,
    },
}

pub(crate) fn user(command: UserCommand) -> Result<()> {
    let UserCommand::Register {
        api,
        name,
        organisation,
        contact,
        region,
    } = command;
    let key = load_key(&api.key)?;
    let request = ProviderRequest {
        name,
        organisation,
        contact,
        region,
        public_key: key.public().to_public_pem(),
    };
    print_reply(&api, api.client()?.register_user(&request, &key)?)
}

/// A time window on the command line.
#[derive(Args, Clone)]
pub(crate) struct WindowOpts {
    /// Start: Unix seconds, `now`, or `+30m`, `+2h`, `+1d` from now.
    #[arg(long, default_value = "now")]
    pub(crate) start: String,
    /// End: as --start (relative to now), or give --hours.
    #[arg(long, conflicts_with = "hours")]
    pub(crate) end: Option<String>,
    /// Length of the window in hours (default 1).
    #[arg(long)]
    pub(crate) hours: Option<f64>,
}

impl WindowOpts {
    /// `(start, end)` in Unix seconds.
    pub(crate) fn resolve(&self) -> Result<(u64, u64)> {
        let now = cpid::clock::system_now();
        let start = when(&self.start, now)?;
        let end = match (&self.end, self.hours) {
            (Some(e), _) => when(e, now)?,
            (None, h) => {
                let hours = h.unwrap_or(1.0);
                if !(hours.is_finite() && hours > 0.0) {
                    bail!("--hours must be above 0");
                }
                start + (hours * 3600.0).round() as u64
            }
        };
        Ok((start, end))
    }
}

/// Unix seconds, `now`, or `+N[smhd]` from `now`.
pub(crate) fn when(s: &str, now: u64) -> Result<u64> {
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('+') {
        let (n, unit) = rel.split_at(rel.find(|c: char| !c.is_ascii_digit()).unwrap_or(rel.len()));
        let n: u64 = n.parse().with_context(|| format!("{s:?}: +N[s|m|h|d]"))?;
        let secs = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => bail!("{s:?}: unknown unit {other:?} (s, m, h or d)"),
        };
        return Ok(now + n * secs);
    }
    s.parse()
        .with_context(|| format!("{s:?} is not Unix seconds, now or +N[smhd]"))
}

#[derive(Subcommand)]
pub(crate) enum TxCommand {
    /// Propose a transaction on a resource (signed by the buyer); prints the TX.
    Propose {
        #[command(flatten)]
        api: ApiOpts,
        /// The resource, e.g. 86.31/IC-000001-4
        #[arg(long)]
        resource: String,
        /// Units, in the resource's unit (cards, cores, …).
        #[arg(long)]
        units: u64,
        #[command(flatten)]
        window: WindowOpts,
        /// Refuse if the price per unit-hour is above this.
        #[arg(long)]
        max_price: Option<f64>,
    },
    /// Accept a proposal (the provider): books the units.
    Accept(StepOpts),
    /// Reject a proposal (the provider).
    Reject(StepOpts),
    /// Activate an accepted transaction (the provider).
    Activate(StepOpts),
    /// Settle an active transaction (the provider): frees what is left of the window.
    Settle(StepOpts),
    /// Cancel a proposal before it is accepted (the buyer).
    Cancel(StepOpts),
    /// Show a transaction (signed by a party or the admin).
    Show {
        id: String,
        #[command(flatten)]
        api: ApiOpts,
    },
    /// List the signer's transactions (a provider's inbox: --state proposed).
    List {
        #[command(flatten)]
        api: ApiOpts,
        /// Only this state: proposed, accepted, active, settled, rejected, cancelled, expired.
        #[arg(long)]
        state: Option<String>,
        /// The admin only: one party's transactions.
        #[arg(long = "party", value_name = "ID")]
        of_party: Option<String>,
    },
}

#[derive(Args, Clone)]
pub(crate) struct StepOpts {
    /// Transaction, e.g. 86.31/TX-000001-7
    id: String,
    #[command(flatten)]
    api: ApiOpts,
    /// Why (reject, cancel).
    #[arg(long)]
    reason: Option<String>,
    /// Amount charged (settle; default the agreed total).
    #[arg(long)]
    amount: Option<f64>,
}

pub(crate) fn tx(command: TxCommand) -> Result<()> {
    let (kind, opts) = match command {
        TxCommand::Propose {
            api,
            resource,
            units,
            window,
            max_price,
        } => {
            let (start, end) = window.resolve()?;
            let request = ProposeRequest {
                resource,
                units: units.into(),
                start: start.into(),
                end: end.into(),
                max_price_per_unit_hour: max_price.map(Into::into),
            };
            let key = load_key(&api.key)?;
            return print_tx(&api, api.client()?.propose(&request, &key)?);
        }
        TxCommand::Show { id, api } => {
            let id = Identifier::parse(&id)?;
            let key = load_key(&api.key)?;
            return print_tx(&api, api.client()?.tx_get(&id, &key)?);
        }
        TxCommand::List {
            api,
            state,
            of_party,
        } => {
            let key = load_key(&api.key)?;
            let mut query = Vec::new();
            if let Some(s) = state {
                query.push(format!("state={s}"));
            }
            if let Some(p) = of_party {
                query.push(format!("party={p}"));
            }
            let body = api.client()?.tx_list(&query.join("&"), &key)?;
            if api.json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let items = body
                .get("transactions")
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default();
            println!(
                "{:<24} {:<10} {:<24} {:>6}  window",
                "transaction", "state", "resource", "units"
            );
            for t in items {
                let d = t.get("transaction").cloned().unwrap_or_default();
                let text = |v: &serde_json::Value, k: &str| match v.get(k) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => "?".into(),
                };
                println!(
                    "{:<24} {:<10} {:<24} {:>6}  [{}, {})",
                    text(&t, "identifier"),
                    text(&d, "state"),
                    text(&d, "resource"),
                    text(&d, "units"),
                    text(&d, "start"),
                    text(&d, "end"),
                );
            }
            return Ok(());
        }
        TxCommand::Accept(o) => (StepKind::Accept, o),
        TxCommand::Reject(o) => (StepKind::Reject, o),
        TxCommand::Activate(o) => (StepKind::Activate, o),
        TxCommand::Settle(o) => (StepKind::Settle, o),
        TxCommand::Cancel(o) => (StepKind::Cancel, o),
    };
    let id = Identifier::parse(&opts.id)?;
    let key = load_key(&opts.api.key)?;
    let request = StepRequest {
        reason: opts.reason.clone(),
        amount: opts.amount.map(Into::into),
    };
    print_tx(
        &opts.api,
        opts.api.client()?.tx_step(&id, kind, &request, &key)?,
    )
}

/// Prints the transaction and its state (or its JSON with `--json`).
pub(crate) fn print_tx(api: &ApiOpts, reply: TxReply) -> Result<()> {
    if api.json {
        println!("{}", serde_json::to_string_pretty(&reply.json)?);
        return Ok(());
    }
    let r = reply.record.record();
    let d = &reply.doc;
    println!("{}", r.identifier);
    eprintln!(
        "{} (version {}): {} {} of {} for [{}, {}), {} {} in all; buyer {}, provider {}",
        d.state.as_str(),
        r.version,
        d.units,
        d.unit,
        d.resource,
        d.start,
        d.end,
        d.price.total,
        d.price.currency,
        d.buyer,
        d.provider
    );
    Ok(())
}
