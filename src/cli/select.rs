//! `cpid select` and `cpid schedule`: a buyer's requirement from the
//! command line (or a JSON file), answered with ranked, explained
//! candidates, or scheduled as a proposal on the best of them.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Map, Value, json};

use super::load_key;
use super::provider::ApiOpts;
use super::trade::{WindowOpts, print_tx};

/// What a buyer asks for.
#[derive(Args, Clone)]
pub(crate) struct RequirementOpts {
    /// A JSON requirement (the body of POST /v1/select); flags below add to it.
    #[arg(long)]
    file: Option<PathBuf>,
    /// Class: GC, IC, SC, ST or AS.
    #[arg(long)]
    class: Option<String>,
    /// Device model, e.g. A800.
    #[arg(long)]
    model: Option<String>,
    /// Minimum dense peak of the units together, PRECISION:TFLOPS (e.g. fp16:1000).
    #[arg(long)]
    peak: Option<String>,
    /// Units (default: those the peak needs, else 1).
    #[arg(long)]
    units: Option<u64>,
    /// Memory per unit, GiB.
    #[arg(long)]
    memory_gib: Option<f64>,
    /// Storage of the resource, TiB.
    #[arg(long)]
    storage_tib: Option<f64>,
    /// The buyer's region (GB/T 2260), where paths start.
    #[arg(long)]
    region: Option<String>,
    /// A preferred region (repeatable).
    #[arg(long = "prefer", value_name = "REGION")]
    prefer: Vec<String>,
    /// Highest price per unit-hour.
    #[arg(long)]
    max_price: Option<f64>,
    /// Currency of --max-price (ISO 4217, e.g. CNY).
    #[arg(long, requires = "max_price")]
    currency: Option<String>,
    /// Highest path latency, ms (needs --region).
    #[arg(long)]
    max_latency_ms: Option<f64>,
    /// Lowest path bandwidth over dedicated lines, Gbit/s (needs --region).
    #[arg(long)]
    min_bandwidth_gbps: Option<f64>,
    #[command(flatten)]
    window: WindowOpts,
    /// Most candidates.
    #[arg(long)]
    limit: Option<usize>,
}

impl RequirementOpts {
    fn body(&self) -> Result<Value> {
        let mut body = match &self.file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                match serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?
                {
                    Value::Object(m) => m,
                    _ => bail!("{} must hold a JSON object", path.display()),
                }
            }
            None => Map::new(),
        };
        let mut set = |k: &str, v: Value| {
            body.insert(k.to_string(), v);
        };
        if let Some(v) = &self.class {
            set("class", v.to_uppercase().into());
        }
        if let Some(v) = &self.model {
            set("model", v.clone().into());
        }
        if let Some(p) = &self.peak {
            let (precision, tflops) = p
                .split_once(':')
                .context("--peak is PRECISION:TFLOPS, e.g. fp16:1000")?;
            let tflops: f64 = tflops
                .parse()
                .with_context(|| format!("--peak {p}: {tflops:?} is not a number"))?;
            set("peak", json!({ "precision": precision, "tflops": tflops }));
        }
        if let Some(v) = self.units {
            set("units", v.into());
        }
        if let Some(v) = self.memory_gib {
            set("memory_gib", v.into());
        }
        if let Some(v) = self.storage_tib {
            set("storage_tib", v.into());
        }
        if let Some(v) = &self.region {
            set("region", v.clone().into());
        }
        if !self.prefer.is_empty() {
            set("preferred_regions", self.prefer.clone().into());
        }
        if let Some(amount) = self.max_price {
            let mut price = json!({ "amount": amount });
            if let (Some(c), Some(o)) = (&self.currency, price.as_object_mut()) {
                o.insert("currency".into(), c.clone().into());
            }
            set("max_price", price);
        }
        if let Some(v) = self.max_latency_ms {
            set("max_latency_ms", v.into());
        }
        if let Some(v) = self.min_bandwidth_gbps {
            set("min_bandwidth_gbps", v.into());
        }
        let (start, end) = self.window.resolve()?;
        set("start", start.into());
        set("end", end.into());
        if let Some(v) = self.limit {
            set("limit", v.into());
        }
        Ok(Value::Object(body))
    }
}

/// `cpid select`.
pub(crate) fn select(server: &str, json_out: bool, req: &RequirementOpts) -> Result<()> {
    let answer = cpid::api::client::ApiClient::new(server).select(&req.body()?)?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    print_selection(&answer, &mut std::io::stdout().lock());
    Ok(())
}

/// `cpid schedule`.
pub(crate) fn schedule(api: &ApiOpts, req: &RequirementOpts) -> Result<()> {
    let key = load_key(&api.key)?;
    let (tx, whole) = api.client()?.schedule(&req.body()?, &key)?;
    if api.json {
        println!("{}", serde_json::to_string_pretty(&whole)?);
        return Ok(());
    }
    // stdout keeps to the transaction's identifier, as `cpid tx propose`.
    if let Some(sel) = whole.get("selection") {
        print_selection(sel, &mut std::io::stderr().lock());
    }
    if let Some(by) = whole.get("scheduled_by_api").and_then(Value::as_str) {
        eprintln!("proposed at the node that holds the resource: {by}");
    }
    print_tx(api, tx)
}

/// A field as text for the terminal (control characters dropped: the
/// answer may carry text from other nodes).
fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.chars().filter(|c| !c.is_control()).collect(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The candidates as a table on `out`, the explanation and hops on stderr.
fn print_selection(answer: &Value, out: &mut dyn std::io::Write) {
    eprintln!("{}", text(answer, "explanation"));
    let empty = Vec::new();
    let cands = answer
        .get("candidates")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    if !cands.is_empty() {
        let _ = writeln!(
            out,
            "{:<4} {:<24} {:<7} {:>6} {:>11} {:>14} {:>9} {:>6}  components (value×weight)",
            "rank",
            "identifier",
            "region",
            "units",
            "free/total",
            "price/unit-h",
            "latency",
            "score"
        );
    }
    for (i, c) in cands.iter().enumerate() {
        let price = c.get("price").map_or("-".to_string(), |p| {
            format!("{} {}", text(p, "per_unit_hour"), text(p, "currency"))
        });
        let latency = c
            .get("path")
            .map_or("-".to_string(), |p| format!("{} ms", text(p, "latency_ms")));
        let components = c
            .get("components")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k} {}", text(v, "points")))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<4} {:<24} {:<7} {:>6} {:>11} {:>14} {:>9} {:>6}  {components}",
            i + 1,
            text(c, "identifier"),
            text(c, "region"),
            text(c, "units"),
            format!("{}/{}", text(c, "units_free"), text(c, "units_total")),
            price,
            latency,
            text(c, "score"),
        );
        if let Some(via) = c
            .get("path")
            .and_then(|p| p.get("via"))
            .and_then(Value::as_array)
            .filter(|v| !v.is_empty())
        {
            let lines: Vec<String> = via
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            let _ = writeln!(out, "     via {}", lines.join(" → "));
        }
    }
    for hop in answer
        .get("hops")
        .and_then(Value::as_array)
        .unwrap_or(&empty)
    {
        let mut line = format!(
            "  {} {} {} ms",
            text(hop, "node"),
            text(hop, "outcome"),
            text(hop, "ms")
        );
        if text(hop, "outcome") == "answered" {
            line.push_str(&format!(
                " ({} of {} candidates verified)",
                text(hop, "verified"),
                text(hop, "candidates")
            ));
        }
        if hop.get("reason").is_some() {
            line.push_str(&format!(": {}", text(hop, "reason")));
        }
        eprintln!("{line}");
    }
}
