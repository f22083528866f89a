//! The situation as read: totals filtered and grouped, peaks in TFLOPS,
//! and the coverage of the 31 mainland province-level regions (the
//! national notice's goal: every province under automated monitoring).

use serde::Serialize;

use super::totals::{ByFreshness, Filter, GroupBy, Rows, UnitRow, view};
use crate::ident::identifier::PROVINCES;

/// Province-level regions of the mainland: the first 31 GB/T 2260 codes.
pub const MAINLAND: usize = 31;

/// TFLOPS per freshness (GFLOPS / 1000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tflops {
    pub fresh: f64,
    pub stale: f64,
    pub unknown: f64,
}

impl From<&ByFreshness> for Tflops {
    fn from(g: &ByFreshness) -> Tflops {
        Tflops {
            fresh: g.fresh as f64 / 1000.0,
            stale: g.stale as f64 / 1000.0,
            unknown: g.unknown as f64 / 1000.0,
        }
    }
}

/// One peak row as read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeakView {
    pub region: String,
    pub class: String,
    pub model: String,
    pub precision: String,
    pub devices: ByFreshness,
    pub total_tflops: Tflops,
    pub available_tflops: Tflops,
}

/// One province's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProvinceView {
    pub code: &'static str,
    pub name: &'static str,
    pub resources: ByFreshness,
    pub units_total: ByFreshness,
    pub units_available: ByFreshness,
    /// `fresh` (at least one fresh automated report), `silent` (resources,
    /// none fresh) or `none` (no resources known).
    pub state: &'static str,
}

/// Coverage of the mainland's province-level regions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    pub regions_total: usize,
    pub regions_fresh: usize,
    pub regions_silent: usize,
    /// `regions_fresh / 31`.
    pub ratio: f64,
    pub provinces: Vec<ProvinceView>,
}

/// A situation read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Situation {
    pub at: u64,
    /// `own` (this node's resources) or `federation` (with every node
    /// below it whose summary verified).
    pub scope: &'static str,
    pub group_by: Vec<&'static str>,
    pub filter: FilterView,
    pub resources: ByFreshness,
    pub units: Vec<UnitRow>,
    pub peaks: Vec<PeakView>,
    pub coverage: Coverage,
    /// Every node below this one: its summary's age, whether it verified.
    pub children: Vec<super::rollup::ChildView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FilterView {
    pub region: Option<String>,
    pub class: Option<String>,
    pub model: Option<String>,
}

/// Coverage from full (ungrouped, unfiltered) rows.
pub fn coverage(rows: &Rows) -> Coverage {
    let provinces: Vec<ProvinceView> = PROVINCES
        .iter()
        .take(MAINLAND)
        .map(|(code, name)| {
            let mut p = ProvinceView {
                code,
                name,
                resources: ByFreshness::default(),
                units_total: ByFreshness::default(),
                units_available: ByFreshness::default(),
                state: "none",
            };
            for r in rows.units.iter().filter(|r| r.region == *code) {
                p.resources.add(&r.resources);
                p.units_total.add(&r.units_total);
                p.units_available.add(&r.units_available);
            }
            p.state = if p.resources.fresh > 0 {
                "fresh"
            } else if p.resources.total() > 0 {
                "silent"
            } else {
                "none"
            };
            p
        })
        .collect();
    let fresh = provinces.iter().filter(|p| p.state == "fresh").count();
    let silent = provinces.iter().filter(|p| p.state == "silent").count();
    Coverage {
        regions_total: MAINLAND,
        regions_fresh: fresh,
        regions_silent: silent,
        ratio: fresh as f64 / MAINLAND as f64,
        provinces,
    }
}

/// The situation of `rows` (full totals) through `filter` and `group`.
pub fn situation(rows: &Rows, at: u64, filter: &Filter, group: GroupBy) -> Situation {
    let v = view(rows, filter, group);
    let mut resources = ByFreshness::default();
    for u in &v.units {
        resources.add(&u.resources);
    }
    Situation {
        at,
        group_by: group.names(),
        filter: FilterView {
            region: filter.region.clone(),
            class: filter.class.clone(),
            model: filter.model.clone(),
        },
        resources,
        units: v.units,
        peaks: v
            .peaks
            .iter()
            .map(|p| PeakView {
                region: p.region.clone(),
                class: p.class.clone(),
                model: p.model.clone(),
                precision: p.precision.clone(),
                devices: p.devices,
                total_tflops: (&p.total_gflops).into(),
                available_tflops: (&p.available_gflops).into(),
            })
            .collect(),
        coverage: coverage(rows),
        scope: "own",
        children: Vec::new(),
    }
}

/// Prometheus text for the totals: one gauge family per figure, labelled
/// by region, class, (model, precision) and freshness. Written here rather
/// than through the `metrics` registry so that a row that disappears
/// disappears from the exposition too.
pub fn exposition(rows: &Rows, out: &mut String) {
    use std::fmt::Write;
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let fam = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
    };
    fam(
        out,
        "cpid_capacity_resources",
        "Resources by region, class and freshness.",
    );
    for r in &rows.units {
        for f in super::status::Freshness::ALL {
            let _ = writeln!(
                out,
                "cpid_capacity_resources{{region=\"{}\",class=\"{}\",freshness=\"{}\"}} {}",
                esc(&r.region),
                esc(&r.class),
                f.as_str(),
                r.resources.get(f)
            );
        }
    }
    fam(
        out,
        "cpid_capacity_units",
        "Units (in each resource's booking unit) by region, class, freshness and kind (total, available, in_use).",
    );
    for r in &rows.units {
        for f in super::status::Freshness::ALL {
            for (kind, v) in [
                ("total", &r.units_total),
                ("available", &r.units_available),
                ("in_use", &r.units_in_use),
            ] {
                let _ = writeln!(
                    out,
                    "cpid_capacity_units{{region=\"{}\",class=\"{}\",freshness=\"{}\",kind=\"{kind}\"}} {}",
                    esc(&r.region),
                    esc(&r.class),
                    f.as_str(),
                    v.get(f)
                );
            }
        }
    }
    fam(
        out,
        "cpid_capacity_devices",
        "Devices by region, class, model, precision stated and freshness.",
    );
    for r in &rows.peaks {
        for f in super::status::Freshness::ALL {
            let _ = writeln!(
                out,
                "cpid_capacity_devices{{region=\"{}\",class=\"{}\",model=\"{}\",precision=\"{}\",freshness=\"{}\"}} {}",
                esc(&r.region),
                esc(&r.class),
                esc(&r.model),
                esc(&r.precision),
                f.as_str(),
                r.devices.get(f)
            );
        }
    }
    fam(
        out,
        "cpid_capacity_peak_tflops",
        "Dense peak (TFLOPS; TOPS for int8) by region, class, model, precision, freshness and kind (total, available). Never summed across precisions.",
    );
    for r in &rows.peaks {
        for f in super::status::Freshness::ALL {
            for (kind, v) in [
                ("total", &r.total_gflops),
                ("available", &r.available_gflops),
            ] {
                let _ = writeln!(
                    out,
                    "cpid_capacity_peak_tflops{{region=\"{}\",class=\"{}\",model=\"{}\",precision=\"{}\",freshness=\"{}\",kind=\"{kind}\"}} {}",
                    esc(&r.region),
                    esc(&r.class),
                    esc(&r.model),
                    esc(&r.precision),
                    f.as_str(),
                    v.get(f) as f64 / 1000.0
                );
            }
        }
    }
    let cov = coverage(rows);
    fam(
        out,
        "cpid_situation_coverage_ratio",
        "Share of the 31 mainland province-level regions with fresh automated reports.",
    );
    let _ = writeln!(out, "cpid_situation_coverage_ratio {}", cov.ratio);
}

/// Prometheus text for the data-quality findings now, one series per
/// reason (zero included, so a reason that clears reads 0).
pub fn quality_exposition(
    counts: &std::collections::BTreeMap<super::quality::Reason, u64>,
    out: &mut String,
) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP cpid_quality_findings Data-quality findings on this node's resources now, by reason."
    );
    let _ = writeln!(out, "# TYPE cpid_quality_findings gauge");
    for r in super::quality::Reason::ALL {
        let _ = writeln!(
            out,
            "cpid_quality_findings{{reason=\"{}\"}} {}",
            r.as_str(),
            counts.get(&r).copied().unwrap_or(0)
        );
    }
}
