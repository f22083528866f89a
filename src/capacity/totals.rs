//! Live totals by region × class (units) and region × class × device model
//! × precision (devices and peaks), split by freshness, kept by adding and
//! subtracting each resource's contribution as records and reports arrive.
//!
//! Peaks are kept as integer GFLOPS (TOPS×1000 for int8) so that adding and
//! subtracting never drifts; a precision is always a key, so different
//! precisions are never added together, and the capacity standard is dense
//! only, so sparse figures never meet dense ones.

use std::collections::{BTreeMap, btree_map};

use serde::{Deserialize, Serialize};

use super::status::{Freshness, Status};
use crate::ident::identifier::Class;
use crate::ident::record::Record;
use crate::ident::resource::{DeviceTable, Precision, ResourceDescriptor};
use crate::ident::values::CP_RESOURCE;

/// A figure per freshness.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByFreshness {
    pub fresh: i64,
    pub stale: i64,
    pub unknown: i64,
}

impl ByFreshness {
    fn slot(&mut self, f: Freshness) -> &mut i64 {
        match f {
            Freshness::Fresh => &mut self.fresh,
            Freshness::Stale => &mut self.stale,
            Freshness::Unknown => &mut self.unknown,
        }
    }

    pub fn get(&self, f: Freshness) -> i64 {
        match f {
            Freshness::Fresh => self.fresh,
            Freshness::Stale => self.stale,
            Freshness::Unknown => self.unknown,
        }
    }

    fn add_at(&mut self, f: Freshness, v: i64) {
        let s = self.slot(f);
        *s = s.saturating_add(v);
    }

    pub fn add(&mut self, other: &ByFreshness) {
        for f in Freshness::ALL {
            self.add_at(f, other.get(f));
        }
    }

    pub fn total(&self) -> i64 {
        self.fresh
            .saturating_add(self.stale)
            .saturating_add(self.unknown)
    }

    /// The figure seen from further away: whatever is fresher than
    /// `floor` counts at `floor` (a silent child's fresh figures are stale
    /// by now).
    pub fn at_least(&self, floor: Freshness) -> ByFreshness {
        let mut out = ByFreshness::default();
        for f in Freshness::ALL {
            out.add_at(f.max(floor), self.get(f));
        }
        out
    }

    fn is_zero(&self) -> bool {
        self.fresh == 0 && self.stale == 0 && self.unknown == 0
    }
}

/// Resources and units of one region and class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitRow {
    pub region: String,
    pub class: String,
    pub resources: ByFreshness,
    pub units_total: ByFreshness,
    pub units_available: ByFreshness,
    pub units_in_use: ByFreshness,
}

/// Devices and dense peaks of one region, class, model and precision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeakRow {
    pub region: String,
    pub class: String,
    pub model: String,
    pub precision: String,
    pub devices: ByFreshness,
    /// Sum of device count × per-device dense peak, GFLOPS (GOPS for int8).
    pub total_gflops: ByFreshness,
    /// The share of `total_gflops` in the units reported available.
    pub available_gflops: ByFreshness,
}

/// Every row of a set of totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rows {
    pub units: Vec<UnitRow>,
    pub peaks: Vec<PeakRow>,
}

impl Rows {
    /// Every figure at [`ByFreshness::at_least`] `floor`.
    pub fn at_least(&self, floor: Freshness) -> Rows {
        Rows {
            units: self
                .units
                .iter()
                .map(|u| UnitRow {
                    region: u.region.clone(),
                    class: u.class.clone(),
                    resources: u.resources.at_least(floor),
                    units_total: u.units_total.at_least(floor),
                    units_available: u.units_available.at_least(floor),
                    units_in_use: u.units_in_use.at_least(floor),
                })
                .collect(),
            peaks: self
                .peaks
                .iter()
                .map(|p| PeakRow {
                    devices: p.devices.at_least(floor),
                    total_gflops: p.total_gflops.at_least(floor),
                    available_gflops: p.available_gflops.at_least(floor),
                    ..p.clone()
                })
                .collect(),
        }
    }
}

/// What one resource adds to the totals, read from its descriptor.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// GB/T 2260 code; `a-b` for a dedicated line.
    pub region: String,
    pub class: Class,
    pub units_total: u64,
    pub devices: Vec<DeviceShare>,
}

/// One kind of device of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceShare {
    /// The device table's name for the model when it knows it.
    pub model: String,
    pub count: u64,
    /// Per-device dense peak, GFLOPS, per stated precision.
    pub peaks: Vec<(Precision, i64)>,
}

impl Contribution {
    /// What an active resource record adds, or `None` for a record that
    /// adds nothing (another class, not active, no readable descriptor).
    pub fn of(record: &Record, table: &DeviceTable) -> Option<(Contribution, ResourceDescriptor)> {
        if record.status != crate::ident::record::RecordStatus::Active {
            return None;
        }
        let class = record.identifier.class();
        if !crate::ident::values::is_resource_class(class) {
            return None;
        }
        let value = record
            .values
            .iter()
            .find(|v| v.kind.as_str() == CP_RESOURCE)?;
        let d = ResourceDescriptor::parse(&value.data).ok()?;
        Some((Contribution::from_descriptor(&d, class, table), d))
    }

    pub fn from_descriptor(d: &ResourceDescriptor, class: Class, table: &DeviceTable) -> Self {
        let region = match (&d.region, &d.link) {
            (Some(r), _) => r.clone(),
            (None, Some(link)) => format!("{}-{}", link.regions[0], link.regions[1]),
            (None, None) => "-".into(),
        };
        let devices = d
            .devices
            .iter()
            .flatten()
            .map(|dev| DeviceShare {
                model: table
                    .find(&dev.model)
                    .map(|s| s.model.clone())
                    .unwrap_or_else(|| dev.model.clone()),
                count: dev.count,
                peaks: dev
                    .peak_tflops
                    .iter()
                    .map(|(p, v)| (p, (v * 1000.0).round() as i64))
                    .collect(),
            })
            .collect();
        Contribution {
            region,
            class,
            units_total: d.units_total,
            devices,
        }
    }
}

type UnitKey = (String, Class);
type PeakKey = (String, Class, String, Precision);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UnitVals {
    resources: ByFreshness,
    units_total: ByFreshness,
    units_available: ByFreshness,
    units_in_use: ByFreshness,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PeakVals {
    devices: ByFreshness,
    total: ByFreshness,
    available: ByFreshness,
}

/// The live totals of one node's own resources.
#[derive(Debug, Default)]
pub struct Totals {
    units: BTreeMap<UnitKey, UnitVals>,
    peaks: BTreeMap<PeakKey, PeakVals>,
}

/// A count clamped into `[0, total]`: impossible figures are findings of
/// data quality and never push a total below zero or above what exists.
fn clamp(v: i64, total: u64) -> i64 {
    v.clamp(0, i64::try_from(total).unwrap_or(i64::MAX))
}

impl Totals {
    /// Adds (`sign` = 1) or takes away (`sign` = -1) what one resource
    /// contributes with `status` at `freshness`.
    pub fn apply(
        &mut self,
        c: &Contribution,
        status: Option<&Status>,
        freshness: Freshness,
        sign: i64,
    ) {
        let total = i64::try_from(c.units_total).unwrap_or(i64::MAX);
        let available = status.map_or(0, |s| clamp(s.units_available, c.units_total));
        let in_use = status.map_or(0, |s| clamp(s.units_in_use, c.units_total));
        update(
            &mut self.units,
            (c.region.clone(), c.class),
            |u| {
                u.resources.add_at(freshness, sign);
                u.units_total.add_at(freshness, sign.saturating_mul(total));
                u.units_available
                    .add_at(freshness, sign.saturating_mul(available));
                u.units_in_use
                    .add_at(freshness, sign.saturating_mul(in_use));
            },
            |u| u.resources.is_zero() && u.units_total.is_zero(),
        );
        for d in &c.devices {
            let count = i64::try_from(d.count).unwrap_or(i64::MAX);
            for (p, per_device) in &d.peaks {
                let all = i128::from(*per_device) * i128::from(count);
                let avail = if total > 0 {
                    all * i128::from(available) / i128::from(total)
                } else {
                    0
                };
                update(
                    &mut self.peaks,
                    (c.region.clone(), c.class, d.model.clone(), *p),
                    |v| {
                        v.devices.add_at(freshness, sign.saturating_mul(count));
                        v.total.add_at(freshness, sign.saturating_mul(narrow(all)));
                        v.available
                            .add_at(freshness, sign.saturating_mul(narrow(avail)));
                    },
                    |v| v.devices.is_zero() && v.total.is_zero(),
                );
            }
        }
    }

    /// Every row, in key order.
    pub fn rows(&self) -> Rows {
        Rows {
            units: self
                .units
                .iter()
                .map(|((region, class), v)| UnitRow {
                    region: region.clone(),
                    class: class.code().into(),
                    resources: v.resources,
                    units_total: v.units_total,
                    units_available: v.units_available,
                    units_in_use: v.units_in_use,
                })
                .collect(),
            peaks: self
                .peaks
                .iter()
                .map(|((region, class, model, p), v)| PeakRow {
                    region: region.clone(),
                    class: class.code().into(),
                    model: model.clone(),
                    precision: p.as_str().into(),
                    devices: v.devices,
                    total_gflops: v.total,
                    available_gflops: v.available,
                })
                .collect(),
        }
    }
}

/// Changes the row at `key` with `f` (from zero when there is none) and
/// drops it when `empty` says so: one lookup and one key either way.
fn update<K: Ord, V: Default>(
    map: &mut BTreeMap<K, V>,
    key: K,
    f: impl FnOnce(&mut V),
    empty: impl Fn(&V) -> bool,
) {
    match map.entry(key) {
        btree_map::Entry::Occupied(mut row) => {
            f(row.get_mut());
            if empty(row.get()) {
                row.remove();
            }
        }
        btree_map::Entry::Vacant(slot) => {
            let mut row = V::default();
            f(&mut row);
            if !empty(&row) {
                slot.insert(row);
            }
        }
    }
}

fn narrow(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Which dimensions a view keeps; the others are summed over (a precision
/// is always kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy {
    pub region: bool,
    pub class: bool,
    pub model: bool,
}

impl Default for GroupBy {
    fn default() -> Self {
        GroupBy {
            region: true,
            class: true,
            model: true,
        }
    }
}

impl GroupBy {
    /// `region,class,model` (any subset, comma-separated; empty = none).
    pub fn parse(s: &str) -> Result<GroupBy, String> {
        let mut g = GroupBy {
            region: false,
            class: false,
            model: false,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "region" => g.region = true,
                "class" => g.class = true,
                "model" => g.model = true,
                other => {
                    return Err(format!(
                        "cannot group by {other:?}: region, class and model can be grouped"
                    ));
                }
            }
        }
        Ok(g)
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.region {
            v.push("region");
        }
        if self.class {
            v.push("class");
        }
        if self.model {
            v.push("model");
        }
        v
    }
}

/// Which rows a view keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub region: Option<String>,
    pub class: Option<String>,
    pub model: Option<String>,
}

impl Filter {
    fn keeps(&self, region: &str, class: &str, model: Option<&str>) -> bool {
        self.region.as_deref().is_none_or(|r| r == region)
            && self.class.as_deref().is_none_or(|c| c == class)
            && match (self.model.as_deref(), model) {
                (None, _) => true,
                (Some(m), Some(have)) => m.eq_ignore_ascii_case(have),
                // A model filter keeps only device rows.
                (Some(_), None) => false,
            }
    }
}

/// Rows filtered and summed over the dimensions not grouped by; a dropped
/// dimension reads `"*"`.
pub fn view(rows: &Rows, filter: &Filter, group: GroupBy) -> Rows {
    let star = |keep: bool, v: &str| if keep { v.to_string() } else { "*".into() };
    let mut units: BTreeMap<(String, String), UnitRow> = BTreeMap::new();
    if filter.model.is_none() {
        for r in rows
            .units
            .iter()
            .filter(|r| filter.keeps(&r.region, &r.class, None))
        {
            let key = (star(group.region, &r.region), star(group.class, &r.class));
            let e = units.entry(key.clone()).or_insert_with(|| UnitRow {
                region: key.0.clone(),
                class: key.1.clone(),
                ..Default::default()
            });
            e.resources.add(&r.resources);
            e.units_total.add(&r.units_total);
            e.units_available.add(&r.units_available);
            e.units_in_use.add(&r.units_in_use);
        }
    }
    let mut peaks: BTreeMap<(String, String, String, String), PeakRow> = BTreeMap::new();
    for r in rows
        .peaks
        .iter()
        .filter(|r| filter.keeps(&r.region, &r.class, Some(&r.model)))
    {
        let key = (
            star(group.region, &r.region),
            star(group.class, &r.class),
            star(group.model, &r.model),
            r.precision.clone(),
        );
        let e = peaks.entry(key.clone()).or_insert_with(|| PeakRow {
            region: key.0.clone(),
            class: key.1.clone(),
            model: key.2.clone(),
            precision: key.3.clone(),
            ..Default::default()
        });
        e.devices.add(&r.devices);
        e.total_gflops.add(&r.total_gflops);
        e.available_gflops.add(&r.available_gflops);
    }
    Rows {
        units: units.into_values().collect(),
        peaks: peaks.into_values().collect(),
    }
}

/// Adds `more` into `into` row by row (a child's totals into its parent's
/// view); rows are matched on all their keys.
pub fn merge(into: &mut Rows, more: &Rows) {
    let all = GroupBy::default();
    let mut joined = into.clone();
    joined.units.extend(more.units.iter().cloned());
    joined.peaks.extend(more.peaks.iter().cloned());
    *into = view(&joined, &Filter::default(), all);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::report::Health;

    fn ic(region: &str, count: u64, fp16: f64) -> Contribution {
        let d = ResourceDescriptor::parse(&format!(
            r#"{{"schema":"cpid.resource/1","class":"IC","region":"{region}","unit":"card",
            "units_total":{count},"devices":[{{"model":"a800","count":{count},
            "peak_tflops":{{"fp16":{fp16},"fp32":19.5}}}}]}}"#
        ))
        .unwrap();
        Contribution::from_descriptor(&d, Class::Ic, DeviceTable::builtin())
    }

    fn status(available: i64) -> Status {
        Status {
            units_available: available,
            units_in_use: 0,
            health: Health::Ok,
            utilization: None,
            interval_secs: 10,
            reported_at: 0,
            agent: "a".into(),
            seq: 1,
            key: "k".into(),
        }
    }

    #[test]
    fn precisions_stay_apart_and_subtraction_is_exact() {
        let mut t = Totals::default();
        let a = ic("31", 8, 312.0);
        let b = ic("31", 4, 312.0);
        t.apply(&a, Some(&status(6)), Freshness::Fresh, 1);
        t.apply(&b, None, Freshness::Unknown, 1);
        let rows = t.rows();
        assert_eq!(rows.units.len(), 1);
        assert_eq!(rows.units[0].units_total.fresh, 8);
        assert_eq!(rows.units[0].units_total.unknown, 4);
        assert_eq!(rows.units[0].units_available.fresh, 6);
        // One row per precision, model named as the device table names it.
        assert_eq!(rows.peaks.len(), 2);
        let fp16 = rows.peaks.iter().find(|r| r.precision == "fp16").unwrap();
        assert_eq!(fp16.model, "A800");
        assert_eq!(fp16.total_gflops.fresh, 8 * 312_000);
        assert_eq!(fp16.available_gflops.fresh, 6 * 312_000);
        t.apply(&a, Some(&status(6)), Freshness::Fresh, -1);
        t.apply(&b, None, Freshness::Unknown, -1);
        assert_eq!(t.rows(), Rows::default());
    }

    #[test]
    fn impossible_figures_are_clamped() {
        let mut t = Totals::default();
        t.apply(&ic("31", 8, 312.0), Some(&status(80)), Freshness::Fresh, 1);
        assert_eq!(t.rows().units[0].units_available.fresh, 8);
        let mut t = Totals::default();
        t.apply(&ic("31", 8, 312.0), Some(&status(-3)), Freshness::Fresh, 1);
        assert_eq!(t.rows().units[0].units_available.fresh, 0);
    }

    #[test]
    fn views_group_and_filter() {
        let mut t = Totals::default();
        t.apply(&ic("31", 8, 312.0), Some(&status(8)), Freshness::Fresh, 1);
        t.apply(&ic("11", 2, 312.0), Some(&status(1)), Freshness::Stale, 1);
        let rows = t.rows();
        let national = view(&rows, &Filter::default(), GroupBy::parse("").unwrap());
        assert_eq!(national.units.len(), 1);
        assert_eq!(national.units[0].region, "*");
        assert_eq!(national.units[0].units_total.total(), 10);
        assert_eq!(national.peaks.len(), 2);
        let sh = view(
            &rows,
            &Filter {
                region: Some("31".into()),
                ..Default::default()
            },
            GroupBy::default(),
        );
        assert_eq!(sh.units.len(), 1);
        assert_eq!(sh.units[0].units_total.fresh, 8);
        let by_model = view(
            &rows,
            &Filter {
                model: Some("A800".into()),
                ..Default::default()
            },
            GroupBy::default(),
        );
        assert!(by_model.units.is_empty());
        assert_eq!(by_model.peaks.len(), 4);
        assert!(GroupBy::parse("precision").is_err());
        let mut merged = rows.clone();
        merge(&mut merged, &rows);
        assert_eq!(merged.units[1].units_total.fresh, 16);
    }
}
