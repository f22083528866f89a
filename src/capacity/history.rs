//! History of the totals: one point per minute for a configurable period,
//! one point per hour beyond it (the hour's last minute point: decimation,
//! so a point is always a real reading), and the anomaly rule over them.
//!
//! Points are rows of the [`HISTORY`] table in fixed ring slots (`m` +
//! minute slot, `h` + hour slot, big-endian), so the history survives a
//! restart and never grows past its period without any deletion: a slot is
//! overwritten when its time comes round again, and a slot whose point is
//! older than the period is ignored.
//!
//! **Anomaly rule.** For each region, a minute point's available units
//! (fresh) are compared with the mean μ and standard deviation σ of the
//! region's previous [`WINDOW`] minute points; with at least [`MIN_BASE`]
//! of them, the point is flagged when `|x − μ| > 3·max(σ, 1 unit, 1 % of
//! the region's units)`: a drop (`available_drop`) or a surge
//! (`available_surge`) beyond the region's normal variation. The floor
//! keeps a perfectly steady region from flagging a one-unit change.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::totals::Rows;
use crate::store::{Row, Store, StoreError, Table, WriteBatch};

pub const HISTORY: Table = Table::new("history");

/// Minute points an anomaly is judged against.
pub const WINDOW: usize = 60;
/// Fewest earlier points before a region is judged at all.
pub const MIN_BASE: usize = 10;

/// One region's figures in a point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionPoint {
    pub units_total: i64,
    /// Fresh: available and in use by fresh reports.
    pub units_available: i64,
    pub units_in_use: i64,
}

/// The totals at one minute (or hour).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Start of the minute, Unix seconds.
    pub at: u64,
    pub resources: i64,
    pub resources_fresh: i64,
    /// Every unit registered, whatever its freshness.
    pub units_total: i64,
    /// Units reported available by fresh reports.
    pub units_available: i64,
    pub units_in_use: i64,
    /// Fresh available dense peak per precision, TFLOPS.
    pub available_tflops: BTreeMap<String, f64>,
    pub regions: BTreeMap<String, RegionPoint>,
}

impl Point {
    /// The point of `rows` at `at`.
    pub fn of(rows: &Rows, at: u64) -> Point {
        let mut p = Point {
            at,
            ..Default::default()
        };
        for u in &rows.units {
            p.resources += u.resources.total();
            p.resources_fresh += u.resources.fresh;
            p.units_total += u.units_total.total();
            p.units_available += u.units_available.fresh;
            p.units_in_use += u.units_in_use.fresh;
            let r = p.regions.entry(u.region.clone()).or_default();
            r.units_total += u.units_total.total();
            r.units_available += u.units_available.fresh;
            r.units_in_use += u.units_in_use.fresh;
        }
        for k in &rows.peaks {
            *p.available_tflops.entry(k.precision.clone()).or_default() +=
                k.available_gflops.fresh as f64 / 1000.0;
        }
        p
    }

    /// The point as seen from one region.
    fn for_region(&self, region: &str) -> Point {
        let r = self.regions.get(region).copied().unwrap_or_default();
        Point {
            at: self.at,
            units_total: r.units_total,
            units_available: r.units_available,
            units_in_use: r.units_in_use,
            regions: self
                .regions
                .get_key_value(region)
                .map(|(k, v)| (k.clone(), *v))
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }
}

/// A point outside its region's normal variation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub region: String,
    pub at: u64,
    pub units_available: i64,
    pub mean: f64,
    pub stddev: f64,
    /// `available_drop` or `available_surge`.
    pub reason: &'static str,
}

/// How much history a node keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Minute points kept.
    pub minutes: usize,
    /// Hourly points kept beyond them.
    pub hours: usize,
}

impl Default for Period {
    /// A day of minutes and a month of hours: about 2 200 points.
    fn default() -> Self {
        Period {
            minutes: 1440,
            hours: 720,
        }
    }
}

/// What `GET /v1/situation/history` answers.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    /// Seconds between minute points.
    pub step_secs: u64,
    pub points: Vec<Point>,
    /// Hourly points (each the last minute point of its hour), oldest first.
    pub hourly: Vec<Point>,
    pub anomalies: Vec<Anomaly>,
}

/// The ring of points.
#[derive(Debug)]
pub struct History {
    minutes: usize,
    hours: usize,
    minute: VecDeque<Point>,
    hourly: VecDeque<Point>,
}

fn slot_key(kind: u8, slot: u64) -> Vec<u8> {
    let mut k = vec![kind];
    k.extend_from_slice(&(slot as u32).to_be_bytes());
    k
}

impl History {
    /// Reads what `store` holds, keeping `minutes` minute points and
    /// `hours` hourly ones before `now`.
    pub fn open(
        store: &dyn Store,
        minutes: usize,
        hours: usize,
        now: u64,
    ) -> Result<History, StoreError> {
        let mut minute = Vec::new();
        let mut hourly = Vec::new();
        store.scan_rows(HISTORY, b"", &mut |key, value| {
            if let Ok(p) = postcard::from_bytes::<Point>(value) {
                match key.first() {
                    Some(b'm') if p.at + 60 * minutes as u64 > now => minute.push(p),
                    Some(b'h') if p.at + 3600 * hours as u64 > now => hourly.push(p),
                    _ => {}
                }
            }
            true
        })?;
        minute.sort_by_key(|p| p.at);
        hourly.sort_by_key(|p| p.at);
        Ok(History {
            minutes: minutes.max(1),
            hours,
            minute: minute.into(),
            hourly: hourly.into(),
        })
    }

    /// The latest minute point's time.
    pub fn last_at(&self) -> Option<u64> {
        self.minute.back().map(|p| p.at)
    }

    /// Adds `point` (its minute must be later than the last one) and
    /// returns the rows that keep it: the minute slot and, when the hour
    /// changed, the hourly slot of the hour that ended.
    pub fn push(&mut self, point: Point) -> Vec<Row> {
        let mut rows = Vec::new();
        if self.last_at().is_some_and(|last| point.at <= last) {
            return rows;
        }
        if let Some(prev) = self.minute.back()
            && prev.at / 3600 != point.at / 3600
            && self.hours > 0
        {
            let ended = prev.clone();
            rows.push(Row {
                table: HISTORY,
                key: slot_key(b'h', (ended.at / 3600) % self.hours as u64),
                value: postcard::to_stdvec(&ended).unwrap_or_default(),
            });
            self.hourly.push_back(ended);
            while self.hourly.len() > self.hours {
                self.hourly.pop_front();
            }
        }
        rows.push(Row {
            table: HISTORY,
            key: slot_key(b'm', (point.at / 60) % self.minutes as u64),
            value: postcard::to_stdvec(&point).unwrap_or_default(),
        });
        self.minute.push_back(point);
        while self.minute.len() > self.minutes {
            self.minute.pop_front();
        }
        rows
    }

    /// The last `n` minute points (or hourly ones), optionally for one region.
    pub fn points(&self, n: usize, hourly: bool, region: Option<&str>) -> Vec<Point> {
        let source = if hourly { &self.hourly } else { &self.minute };
        source
            .iter()
            .skip(source.len().saturating_sub(n))
            .map(|p| match region {
                Some(r) => p.for_region(r),
                None => p.clone(),
            })
            .collect()
    }

    /// Anomalies among the last `n` minute points (see the module doc).
    pub fn anomalies(&self, n: usize, region: Option<&str>) -> Vec<Anomaly> {
        let all: Vec<&Point> = self.minute.iter().collect();
        let start = all.len().saturating_sub(n);
        let mut out = Vec::new();
        for (i, p) in all.iter().enumerate().skip(start) {
            for (name, now) in &p.regions {
                if region.is_some_and(|r| r != name) {
                    continue;
                }
                let base: Vec<f64> = all
                    .get(i.saturating_sub(WINDOW)..i)
                    .into_iter()
                    .flatten()
                    .filter_map(|q| q.regions.get(name))
                    .map(|r| r.units_available as f64)
                    .collect();
                if base.len() < MIN_BASE {
                    continue;
                }
                let mean = base.iter().sum::<f64>() / base.len() as f64;
                let var = base.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / base.len() as f64;
                let stddev = var.sqrt();
                let floor = stddev.max(1.0).max(0.01 * now.units_total as f64);
                let x = now.units_available as f64;
                if (x - mean).abs() > 3.0 * floor {
                    out.push(Anomaly {
                        region: name.clone(),
                        at: p.at,
                        units_available: now.units_available,
                        mean,
                        stddev,
                        reason: if x < mean {
                            "available_drop"
                        } else {
                            "available_surge"
                        },
                    });
                }
            }
        }
        out
    }
}

/// Writes history rows (one small batch a minute).
pub fn persist(store: &dyn Store, rows: Vec<Row>) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    store
        .write(WriteBatch {
            rows,
            ..Default::default()
        })
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn point(at: u64, available: i64) -> Point {
        let mut p = Point {
            at,
            units_total: 100,
            units_available: available,
            ..Default::default()
        };
        p.regions.insert(
            "31".into(),
            RegionPoint {
                units_total: 100,
                units_available: available,
                units_in_use: 100 - available,
            },
        );
        p
    }

    #[test]
    fn a_steady_region_flags_a_drop_beyond_its_variation_only() {
        let store = MemoryStore::new();
        let mut h = History::open(&store, 120, 48, 0).unwrap();
        let t0 = 1_000_020 * 60;
        for i in 0..30u64 {
            // Normal variation: 50 ± 2.
            let rows = h.push(point(t0 + i * 60, 50 + (i % 5) as i64 - 2));
            persist(&store, rows).unwrap();
        }
        assert!(h.anomalies(120, None).is_empty());
        persist(&store, h.push(point(t0 + 30 * 60, 46))).unwrap();
        assert!(
            h.anomalies(120, None).is_empty(),
            "σ = √2: 46 is within 3σ of 50"
        );
        persist(&store, h.push(point(t0 + 31 * 60, 20))).unwrap();
        let a = h.anomalies(120, None);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].reason, a[0].units_available), ("available_drop", 20));
        // The hour turns: its last minute point becomes the hourly point.
        persist(&store, h.push(point(t0 + 60 * 60, 50))).unwrap();
        // Persisted: a reopened history has the same points.
        let again = History::open(&store, 120, 48, t0 + 60 * 60).unwrap();
        assert_eq!(again.points(1000, false, None).len(), 33);
        let hourly = again.points(10, true, None);
        assert_eq!(hourly.len(), 1);
        assert_eq!(
            (hourly[0].at, hourly[0].units_available),
            (t0 + 31 * 60, 20)
        );
    }

    #[test]
    fn the_ring_keeps_its_period_and_refuses_going_back() {
        let store = MemoryStore::new();
        let mut h = History::open(&store, 10, 2, 0).unwrap();
        for i in 0..25u64 {
            persist(&store, h.push(point(6000 + i * 60, 1))).unwrap();
        }
        assert_eq!(h.points(100, false, None).len(), 10);
        assert!(h.push(point(6000, 1)).is_empty());
        let mut slots = 0;
        store
            .scan_rows(HISTORY, b"m", &mut |k, _| {
                slots += usize::from(k.first() == Some(&b'm'));
                true
            })
            .unwrap();
        assert_eq!(slots, 10, "rows never grow past the period");
    }
}
