//! `cpid situation`: the live situation of a node (`GET /v1/situation`) as
//! tables a terminal reader takes in at a glance — headline, coverage of
//! the 31 provinces, units by region and class, peaks by precision — or
//! the node's JSON as it is (`--json`). The browser's view of the same
//! figures is the node's `/situation` page.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use clap::Args;

use cpid::api::client::{ApiClient, SituationReply};
use cpid::capacity::totals::ByFreshness;

#[derive(Args, Clone)]
pub(crate) struct SituationOpts {
    /// The node's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8053")]
    server: String,
    /// Only this region (GB/T 2260 province code, e.g. 31).
    #[arg(long)]
    region: Option<String>,
    /// Only this class (GC, IC, SC, ST, NL, AS).
    #[arg(long)]
    class: Option<String>,
    /// Only this device model (e.g. A800).
    #[arg(long)]
    model: Option<String>,
    /// Keep these dimensions apart, comma-separated subset of region,class,model
    /// (the node's default: all three); the others are summed and read `*`.
    #[arg(long)]
    group_by: Option<String>,
    /// `own`: this node's resources only, not the nodes below it
    /// (the node's default: `federation`).
    #[arg(long)]
    scope: Option<String>,
    /// Print the node's JSON as it is.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(opts: &SituationOpts) -> Result<()> {
    let mut query: Vec<(&str, &str)> = Vec::new();
    for (name, value) in [
        ("region", &opts.region),
        ("class", &opts.class),
        ("model", &opts.model),
        ("group_by", &opts.group_by),
        ("scope", &opts.scope),
    ] {
        if let Some(v) = value {
            query.push((name, v.as_str()));
        }
    }
    let (reply, json) = ApiClient::new(&opts.server)
        .situation(&query)
        .with_context(|| format!("reading the situation from {}", opts.server))?;
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", render(&reply, &opts.server));
    }
    Ok(())
}

/// A table: a header row and rows of cells; columns whose header is in
/// `numeric` are right-aligned.
struct Table {
    header: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(columns: &[(&'static str, bool)]) -> Table {
        Table {
            header: columns.iter().map(|(h, _)| *h).collect(),
            numeric: columns.iter().map(|(_, n)| *n).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn write(&self, out: &mut String) {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
            let mut text = String::new();
            for ((cell, w), numeric) in cells.zip(&widths).zip(&self.numeric) {
                if !text.is_empty() {
                    text.push_str("  ");
                }
                let pad = w.saturating_sub(cell.chars().count());
                if *numeric {
                    text.push_str(&" ".repeat(pad));
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&" ".repeat(pad));
                }
            }
            let _ = writeln!(out, "  {}", text.trim_end());
        };
        line(out, &mut self.header.iter().copied());
        for row in &self.rows {
            line(out, &mut row.iter().map(String::as_str));
        }
    }
}

fn tflops(v: f64) -> String {
    format!("{v:.1}")
}

fn split(f: &ByFreshness) -> String {
    format!("{}/{}/{}", f.fresh, f.stale, f.unknown)
}

fn when(at: u64) -> String {
    i64::try_from(at)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.to_string())
}

/// The situation as text.
fn render(s: &SituationReply, server: &str) -> String {
    let mut out = String::new();
    let names: std::collections::HashMap<&str, &str> = s
        .coverage
        .provinces
        .iter()
        .map(|p| (p.code.as_str(), p.name.as_str()))
        .collect();
    let name = |code: &str| names.get(code).copied().unwrap_or("").to_string();

    let scope = match s.scope.as_deref() {
        Some("federation") => ", with the nodes below it",
        Some("own") => ", this node's resources only",
        _ => "",
    };
    let _ = writeln!(out, "Situation at {} ({server}{scope})", when(s.at));
    let _ = writeln!(
        out,
        "  resources   {} fresh, {} stale, {} unknown",
        s.resources.fresh, s.resources.stale, s.resources.unknown
    );
    let c = &s.coverage;
    let _ = writeln!(
        out,
        "  coverage    {} / {} provinces with fresh reports ({:.0} %), {} silent",
        c.regions_fresh,
        c.regions_total,
        c.ratio * 100.0,
        c.regions_silent
    );
    let mut total = ByFreshness::default();
    let mut available = ByFreshness::default();
    let mut in_use = ByFreshness::default();
    for u in &s.units {
        total.add(&u.units_total);
        available.add(&u.units_available);
        in_use.add(&u.units_in_use);
    }
    let _ = writeln!(
        out,
        "  units       {} total, {} reporting: {} available, {} in use",
        total.total(),
        total.fresh,
        available.fresh,
        in_use.fresh
    );

    let _ = writeln!(
        out,
        "\nUnits by region and class (resources fresh/stale/unknown; reporting, available and in use count fresh reports)"
    );
    if s.units.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let mut t = Table::new(&[
            ("REGION", false),
            ("NAME", false),
            ("CLASS", false),
            ("RESOURCES", true),
            ("UNITS", true),
            ("REPORTING", true),
            ("AVAILABLE", true),
            ("IN USE", true),
        ]);
        for u in &s.units {
            t.row(vec![
                u.region.clone(),
                name(&u.region),
                u.class.clone(),
                split(&u.resources),
                u.units_total.total().to_string(),
                u.units_total.fresh.to_string(),
                u.units_available.fresh.to_string(),
                u.units_in_use.fresh.to_string(),
            ]);
        }
        t.write(&mut out);
    }

    let _ = writeln!(
        out,
        "\nPeak by precision (dense TFLOPS, int8 in TOPS; precisions are never added together; available counts fresh reports)"
    );
    let mut per: Vec<(String, i64, f64, f64)> = Vec::new();
    for p in &s.peaks {
        match per.iter_mut().find(|(name, ..)| *name == p.precision) {
            Some(row) => {
                row.1 = row.1.saturating_add(p.devices.total());
                row.2 += p.total_tflops.fresh + p.total_tflops.stale + p.total_tflops.unknown;
                row.3 += p.available_tflops.fresh;
            }
            None => per.push((
                p.precision.clone(),
                p.devices.total(),
                p.total_tflops.fresh + p.total_tflops.stale + p.total_tflops.unknown,
                p.available_tflops.fresh,
            )),
        }
    }
    if per.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let order = ["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8"];
        per.sort_by_key(|(p, ..)| order.iter().position(|o| o == p).unwrap_or(order.len()));
        let mut t = Table::new(&[
            ("PRECISION", false),
            ("DEVICES", true),
            ("TOTAL", true),
            ("AVAILABLE", true),
        ]);
        for (p, devices, total, available) in &per {
            t.row(vec![
                p.clone(),
                devices.to_string(),
                tflops(*total),
                tflops(*available),
            ]);
        }
        t.write(&mut out);
        let _ = writeln!(out);
        let mut t = Table::new(&[
            ("REGION", false),
            ("CLASS", false),
            ("MODEL", false),
            ("PRECISION", false),
            ("DEVICES", true),
            ("TOTAL", true),
            ("AVAILABLE", true),
        ]);
        for p in &s.peaks {
            t.row(vec![
                p.region.clone(),
                p.class.clone(),
                p.model.clone(),
                p.precision.clone(),
                p.devices.total().to_string(),
                tflops(p.total_tflops.fresh + p.total_tflops.stale + p.total_tflops.unknown),
                tflops(p.available_tflops.fresh),
            ]);
        }
        t.write(&mut out);
    }

    let _ = writeln!(
        out,
        "\nProvinces with resources ({} of {} have none)",
        c.provinces.iter().filter(|p| p.state == "none").count(),
        c.provinces.len()
    );
    let known: Vec<_> = c.provinces.iter().filter(|p| p.state != "none").collect();
    if known.is_empty() {
        let _ = writeln!(out, "  none");
    } else {
        let mut t = Table::new(&[
            ("CODE", false),
            ("NAME", false),
            ("STATE", false),
            ("RESOURCES", true),
            ("UNITS", true),
            ("AVAILABLE", true),
        ]);
        for p in known {
            t.row(vec![
                p.code.clone(),
                p.name.clone(),
                p.state.clone(),
                p.resources.total().to_string(),
                p.units_total.total().to_string(),
                p.units_available.fresh.to_string(),
            ]);
        }
        t.write(&mut out);
    }

    if let Some(children) = &s.children {
        let failed = children.iter().filter(|c| !c.verified).count();
        let _ = writeln!(
            out,
            "\nChildren ({} summaries, {failed} failed verification)",
            children.len()
        );
        if children.is_empty() {
            let _ = writeln!(out, "  none");
        } else {
            let mut t = Table::new(&[
                ("PREFIX", false),
                ("API", false),
                ("AGE", true),
                ("COUNTS AS", false),
                ("VERIFIED", false),
                ("ERROR", false),
            ]);
            for ch in children {
                t.row(vec![
                    ch.prefix.clone(),
                    ch.api.clone().unwrap_or_default(),
                    ch.age_secs
                        .map_or_else(|| "never".into(), |a| format!("{a:.0} s")),
                    ch.freshness.clone().unwrap_or_default(),
                    if ch.verified { "yes" } else { "FAILED" }.into(),
                    ch.error.clone().unwrap_or_default(),
                ]);
            }
            t.write(&mut out);
        }
    }
    out
}
