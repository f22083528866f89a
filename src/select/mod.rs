//! Selection (system D): a buyer's requirement answered with ranked
//! candidates, each with the path to it and the named score components that
//! put it where it is, and — when few or none fit — how many resources
//! each reason left out.
//!
//! The [`Selector`] watches committed records (an [`Observer`]) and keeps
//! the node's resources in buckets by class, region and set of device
//! models, and its dedicated lines apart. A selection rules out whole
//! buckets (class, model, path) by their size without touching their
//! members, checks the members of the rest (peak, units, memory, storage,
//! price), and only then looks at the live state and the calendar of what
//! is left: the cost follows what could fit, not what is registered.
//!
//! Scores are a weighted sum of components in [0, 1]: price (the cheapest
//! in the currency over this one), headroom (units free beyond those asked,
//! over all units), quality (`1 − min(findings, 3)/3`, the data-quality
//! score of one resource), freshness (`1 −` the report's age over the
//! three intervals after which it is stale), latency (`1 −` the path's
//! latency over the bound asked, else over `latency_scale_ms`) and
//! preference (1 in a preferred region or when none is named). A node that
//! merges its children's candidates scores them again over the merged set,
//! so every candidate is ranked against the same cheapest price.

pub mod paths;
pub mod requirement;

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

pub use self::paths::{Line, Path, Paths, PathsConfig};
pub use self::requirement::{Requirement, RequirementError};
use crate::capacity::Glance;
use crate::capacity::report::Health;
use crate::capacity::status::{Freshness, STALE_AFTER};
use crate::capacity::totals::Contribution;
use crate::ident::identifier::{Class, Identifier};
use crate::ident::record::SignedRecord;
use crate::ident::resource::{DeviceTable, Precision, Price};
use crate::registry::Observer;

/// The weight of each score component (`[select.weights]`); only their
/// proportions matter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Weights {
    pub price: f64,
    pub headroom: f64,
    pub quality: f64,
    pub freshness: f64,
    pub latency: f64,
    pub preference: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            price: 0.25,
            headroom: 0.15,
            quality: 0.2,
            freshness: 0.1,
            latency: 0.2,
            preference: 0.1,
        }
    }
}

impl Weights {
    fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("price", self.price),
            ("headroom", self.headroom),
            ("quality", self.quality),
            ("freshness", self.freshness),
            ("latency", self.latency),
            ("preference", self.preference),
        ]
    }

    /// Each weight 0 to 100, not all 0: else the field at fault and why.
    pub fn check(&self) -> Result<(), (Option<&'static str>, String)> {
        for (name, w) in self.named() {
            if !(w.is_finite() && (0.0..=100.0).contains(&w)) {
                return Err((Some(name), "must be a number from 0 to 100".into()));
            }
        }
        if self.named().iter().all(|(_, w)| *w == 0.0) {
            return Err((None, "at least one weight must be above 0".into()));
        }
        Ok(())
    }
}

/// `[select]`: how selections are scored and routed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectConfig {
    pub weights: Weights,
    pub paths: PathsConfig,
    /// Candidates answered when the requirement names no limit.
    pub default_limit: usize,
    /// Most candidates answered.
    pub max_limit: usize,
    /// The latency that scores 0 when the requirement sets no bound, ms.
    pub latency_scale_ms: f64,
    /// How long a child may take to answer a forwarded selection, ms.
    pub forward_timeout_ms: u64,
}

impl Default for SelectConfig {
    fn default() -> Self {
        SelectConfig {
            weights: Weights::default(),
            paths: PathsConfig::default(),
            default_limit: 10,
            max_limit: 100,
            latency_scale_ms: 50.0,
            forward_timeout_ms: 3000,
        }
    }
}

impl SelectConfig {
    /// Why the section is unusable: the key at fault and the reason.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        self.weights.check().map_err(|(f, r)| {
            (
                "select.weights",
                format!("{}{r}", f.map(|f| format!("{f}: ")).unwrap_or_default()),
            )
        })?;
        self.paths.check().map_err(|r| ("select.paths", r))?;
        if self.default_limit == 0 || self.default_limit > self.max_limit || self.max_limit > 1000 {
            return Err((
                "select.default_limit",
                "need 1 ≤ default_limit ≤ max_limit ≤ 1000".into(),
            ));
        }
        if !(self.latency_scale_ms.is_finite() && self.latency_scale_ms > 0.0) {
            return Err(("select.latency_scale_ms", "must be above 0".into()));
        }
        if !(100..=60_000).contains(&self.forward_timeout_ms) {
            return Err(("select.forward_timeout_ms", "must be 100 to 60000".into()));
        }
        Ok(())
    }
}

/// Why a resource was left out, counted in [`Selection::excluded`]. The
/// first reason that applies, in this order, is the one counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    WrongClass,
    WrongModel,
    NoPath,
    OverLatency,
    BelowPeak,
    TooFewUnits,
    TooLittleMemory,
    TooLittleStorage,
    Unpriced,
    OverPrice,
    NeverReported,
    Stale,
    Down,
    Booked,
    Unavailable,
    /// A child's candidate whose record did not verify.
    Unverified,
}

impl Exclusion {
    /// The phrase of the explanation.
    pub fn label(self) -> &'static str {
        match self {
            Exclusion::WrongClass => "wrong class",
            Exclusion::WrongModel => "wrong model",
            Exclusion::NoPath => "no path wide enough",
            Exclusion::OverLatency => "over the latency bound",
            Exclusion::BelowPeak => "below the peak asked",
            Exclusion::TooFewUnits => "too few units",
            Exclusion::TooLittleMemory => "too little memory",
            Exclusion::TooLittleStorage => "too little storage",
            Exclusion::Unpriced => "no price",
            Exclusion::OverPrice => "over the price",
            Exclusion::NeverReported => "never reported",
            Exclusion::Stale => "stale",
            Exclusion::Down => "down",
            Exclusion::Booked => "booked in the window",
            Exclusion::Unavailable => "not available now",
            Exclusion::Unverified => "unverified",
        }
    }
}

/// The price of a candidate for the units and window asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cost {
    pub per_unit_hour: f64,
    pub currency: String,
    /// For the units and the whole window, rounded to cents.
    pub total: f64,
}

/// One score component of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// In [0, 1]: 1 is best.
    pub value: f64,
    /// The weight over the sum of weights.
    pub weight: f64,
    /// `value × weight`: its share of the score.
    pub points: f64,
}

/// A resource that fits, ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Candidate {
    pub identifier: String,
    /// The prefix of the node that holds it (and books it).
    pub node: String,
    pub class: String,
    pub region: String,
    pub models: Vec<String>,
    pub unit: String,
    /// Units to book: those asked, or those the peak asked needs.
    pub units: u64,
    /// Units free throughout the window.
    pub units_free: u64,
    pub units_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Cost>,
    /// Absent when the requirement names no region of the buyer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Path>,
    /// The resource's data-quality score.
    pub quality: f64,
    /// How recent its last report is, in [0, 1].
    pub freshness: f64,
    pub score: f64,
    pub components: BTreeMap<String, Component>,
}

/// The window of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

/// A selection's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Resources looked at (here and at the children that answered).
    pub considered: u64,
    /// Resources that fit, before the limit.
    pub matched: u64,
    pub candidates: Vec<Candidate>,
    /// Resources left out, per reason.
    pub excluded: BTreeMap<Exclusion, u64>,
    /// "3 of 1 204 fit: 900 wrong model, 200 stale, …".
    pub explanation: String,
    pub weights: Weights,
    pub window: Window,
    /// The lowest price per unit-hour of everything that fit, per
    /// currency: what the price component compares with.
    #[serde(default)]
    pub cheapest: BTreeMap<String, f64>,
}

/// `1204` as `1 204`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Selection {
    /// Adds a child's answer (its candidates verified by the caller).
    pub fn merge(&mut self, other: Selection) {
        self.considered = self.considered.saturating_add(other.considered);
        self.matched = self.matched.saturating_add(other.matched);
        for (r, n) in other.excluded {
            let e = self.excluded.entry(r).or_default();
            *e = e.saturating_add(n);
        }
        // A child's own `cheapest` is its word only: the prices of its
        // candidates (checked against their records by the caller) count.
        for c in &other.candidates {
            if let Some(p) = &c.price {
                let e = self
                    .cheapest
                    .entry(p.currency.clone())
                    .or_insert(p.per_unit_hour);
                *e = e.min(p.per_unit_hour);
            }
        }
        self.candidates.extend(other.candidates);
    }

    /// Counts one more resource out for `reason` (a candidate dropped).
    pub fn exclude(&mut self, reason: Exclusion) {
        let e = self.excluded.entry(reason).or_default();
        *e = e.saturating_add(1);
        self.matched = self.matched.saturating_sub(1);
    }

    /// Scores every candidate over the whole set, ranks them, keeps
    /// `limit` and writes the explanation.
    pub fn finish(&mut self, req: &Requirement, scale_ms: f64, limit: usize) {
        rank(
            &mut self.candidates,
            &self.weights,
            req,
            scale_ms,
            &self.cheapest,
        );
        self.candidates.truncate(limit);
        let mut reasons: Vec<(Exclusion, u64)> = self
            .excluded
            .iter()
            .map(|(r, n)| (*r, *n))
            .filter(|(_, n)| *n > 0)
            .collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut text = format!(
            "{} of {} fit",
            grouped(self.matched),
            grouped(self.considered)
        );
        if self.considered == 0 {
            text.push_str(": no resource is registered here or below");
        } else if !reasons.is_empty() {
            let list: Vec<String> = reasons
                .iter()
                .map(|(r, n)| format!("{} {}", grouped(*n), r.label()))
                .collect();
            text.push_str(": ");
            text.push_str(&list.join(", "));
        }
        self.explanation = text;
    }
}

/// What a score is computed from.
struct Inputs<'a> {
    /// The price per unit-hour and the cheapest in its currency.
    price: Option<(f64, f64)>,
    free: u64,
    units: u64,
    total: u64,
    quality: f64,
    freshness: f64,
    latency_ms: Option<f64>,
    region: &'a str,
}

/// The component values (in [`Weights::named`] order) and the score.
fn score(x: &Inputs<'_>, weights: &Weights, req: &Requirement, scale_ms: f64) -> ([f64; 6], f64) {
    let price = match x.price {
        Some((p, cheapest)) if p > 0.0 => cheapest / p,
        Some(_) => 1.0,
        None => 0.0,
    };
    let headroom = if x.total == 0 {
        0.0
    } else {
        x.free.saturating_sub(x.units) as f64 / x.total as f64
    };
    let scale = req.max_latency_ms.unwrap_or(scale_ms);
    let latency = x.latency_ms.map_or(1.0, |ms| 1.0 - ms / scale);
    let preference = if req.preferred_regions.is_empty()
        || req.preferred_regions.iter().any(|r| r == x.region)
    {
        1.0
    } else {
        0.0
    };
    let values = [price, headroom, x.quality, x.freshness, latency, preference]
        .map(|v| round3(v.clamp(0.0, 1.0)));
    let total: f64 = weights.named().iter().map(|(_, w)| w).sum();
    let mut sum = 0.0;
    for ((_, w), v) in weights.named().into_iter().zip(values) {
        if total > 0.0 {
            sum += v * w / total;
        }
    }
    (values, round3(sum))
}

/// Scores every candidate against `cheapest` and sorts: best first; ties
/// go to the cheaper, then by identifier.
fn rank(
    cands: &mut [Candidate],
    weights: &Weights,
    req: &Requirement,
    scale_ms: f64,
    cheapest: &BTreeMap<String, f64>,
) {
    let total: f64 = weights.named().iter().map(|(_, w)| w).sum();
    for c in cands.iter_mut() {
        let (values, sum) = score(
            &Inputs {
                price: c.price.as_ref().map(|p| {
                    let least = cheapest.get(&p.currency).copied();
                    (p.per_unit_hour, least.unwrap_or(p.per_unit_hour))
                }),
                free: c.units_free,
                units: c.units,
                total: c.units_total,
                quality: c.quality,
                freshness: c.freshness,
                latency_ms: c.path.as_ref().map(|p| p.latency_ms),
                region: &c.region,
            },
            weights,
            req,
            scale_ms,
        );
        c.components = components(weights, total, values);
        c.score = sum;
    }
    cands.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| price_of(a).total_cmp(&price_of(b)))
            .then_with(|| a.identifier.cmp(&b.identifier))
    });
}

fn price_of(c: &Candidate) -> f64 {
    c.price.as_ref().map_or(f64::INFINITY, |p| p.per_unit_hour)
}

/// The named components of a score.
fn components(weights: &Weights, total: f64, values: [f64; 6]) -> BTreeMap<String, Component> {
    weights
        .named()
        .into_iter()
        .zip(values)
        .map(|((name, w), value)| {
            let weight = if total > 0.0 { w / total } else { 0.0 };
            (
                name.to_string(),
                Component {
                    value,
                    weight: round3(weight),
                    points: round3(value * weight),
                },
            )
        })
        .collect()
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// What the selector reads of the node's live state and calendars.
pub trait Availability {
    /// The live state of each resource, in order.
    fn glance(&self, ids: &[&Identifier]) -> Vec<Option<Glance>>;
    /// The most units booked at any instant of `[start, end)`, for each.
    fn booked(&self, ids: &[&Identifier], start: u64, end: u64) -> Vec<u64>;
}

/// One resource as the selector keeps it (and the benchmark's reference
/// scan, which checks every offer the same way without the index).
#[derive(Debug)]
pub struct Offer {
    pub id: Identifier,
    pub class: Class,
    pub region: String,
    pub unit: &'static str,
    pub units_total: u64,
    /// The device table's model names, sorted.
    pub models: Vec<String>,
    /// Dense TFLOPS of one unit, per stated precision.
    pub per_unit_tflops: Vec<(Precision, f64)>,
    pub memory_per_unit_gib: Option<f64>,
    pub storage_tib: Option<f64>,
    pub price: Option<Price>,
    /// The price's currency as the index numbers it (`None` outside one):
    /// a selection finds the cheapest per currency without reading each
    /// offer's currency string.
    pub currency: Option<usize>,
}

impl Offer {
    /// The offer a resource's contribution and descriptor make; `None` for
    /// a dedicated line.
    pub fn of(
        id: Identifier,
        c: Contribution,
        d: &crate::ident::resource::ResourceDescriptor,
    ) -> Option<Offer> {
        if d.link.is_some() || c.class == Class::Nl {
            return None;
        }
        let units = c.units_total.max(1) as f64;
        let mut models: Vec<String> = c.devices.iter().map(|s| s.model.clone()).collect();
        models.sort();
        models.dedup();
        let mut per_unit: Vec<(Precision, f64)> = Vec::new();
        for p in Precision::ALL {
            let gflops: f64 = c
                .devices
                .iter()
                .filter_map(|s| {
                    s.peaks
                        .iter()
                        .find(|(x, _)| *x == p)
                        .map(|(_, g)| s.count as f64 * *g as f64)
                })
                .sum();
            if gflops > 0.0 {
                per_unit.push((p, gflops / 1000.0 / units));
            }
        }
        let devices = d.devices.as_deref().unwrap_or_default();
        let device_memory: f64 = devices
            .iter()
            .filter_map(|x| x.memory_gib.map(|m| m * x.count as f64))
            .sum();
        let memory_per_unit_gib = if device_memory > 0.0 {
            Some(device_memory / units)
        } else {
            d.memory_gib.map(|m| m / units)
        };
        Some(Offer {
            id,
            class: c.class,
            region: c.region,
            unit: d.unit.as_str(),
            units_total: c.units_total,
            models,
            per_unit_tflops: per_unit,
            memory_per_unit_gib,
            storage_tib: d.storage_tib,
            price: d.price_per_unit_hour.clone(),
            currency: None,
        })
    }

    fn peak(&self, p: Precision) -> Option<f64> {
        self.per_unit_tflops
            .iter()
            .find(|(x, _)| *x == p)
            .map(|(_, v)| *v)
    }

    /// The units this offer would book for `req`, or why it cannot (the
    /// checks that need no live state, in the order of [`Exclusion`]).
    pub fn fits(&self, req: &Requirement) -> Result<u64, Exclusion> {
        let units = match (req.units, req.peak) {
            (units, Some(need)) => {
                let per_unit = self
                    .peak(need.precision)
                    .filter(|v| *v > 0.0)
                    .ok_or(Exclusion::BelowPeak)?;
                match units {
                    Some(u) if per_unit * u as f64 + 1e-9 < need.tflops => {
                        return Err(Exclusion::BelowPeak);
                    }
                    Some(u) => u,
                    // The same tolerance as for units asked: 3 × 165.2 gives
                    // 495.6 even where floating point says 495.59999….
                    None => (((need.tflops - 1e-9).max(0.0) / per_unit).ceil() as u64).max(1),
                }
            }
            (Some(u), None) => u,
            (None, None) => 1,
        };
        if units > self.units_total {
            return Err(if req.units.is_none() && req.peak.is_some() {
                Exclusion::BelowPeak
            } else {
                Exclusion::TooFewUnits
            });
        }
        if let Some(m) = req.memory_gib
            && !self.memory_per_unit_gib.is_some_and(|x| x + 1e-9 >= m)
        {
            return Err(Exclusion::TooLittleMemory);
        }
        if let Some(s) = req.storage_tib
            && !self.storage_tib.is_some_and(|x| x + 1e-9 >= s)
        {
            return Err(Exclusion::TooLittleStorage);
        }
        if let Some(ceiling) = &req.max_price {
            let Some(p) = &self.price else {
                return Err(Exclusion::Unpriced);
            };
            if p.amount > ceiling.amount
                || ceiling.currency.as_ref().is_some_and(|c| *c != p.currency)
            {
                return Err(Exclusion::OverPrice);
            }
        }
        Ok(units)
    }
}

/// Most dedicated lines a child's candidate path may name.
const MAX_VIA: usize = 16;

/// Resources with the same class, region and device models.
type BucketKey = (Class, String, String);

/// The offers of one bucket, side by side so a selection walks them in
/// order, and where each one is.
#[derive(Default)]
struct Bucket {
    offers: Vec<Offer>,
    at: HashMap<Identifier, usize>,
}

impl Bucket {
    fn insert(&mut self, offer: Offer) {
        match self.at.get(&offer.id) {
            Some(&i) => {
                if let Some(slot) = self.offers.get_mut(i) {
                    *slot = offer;
                }
            }
            None => {
                self.at.insert(offer.id.clone(), self.offers.len());
                self.offers.push(offer);
            }
        }
    }

    fn remove(&mut self, id: &Identifier) {
        let Some(i) = self.at.remove(id) else {
            return;
        };
        if i < self.offers.len() {
            self.offers.swap_remove(i);
            if let Some(moved) = self.offers.get(i) {
                self.at.insert(moved.id.clone(), i);
            }
        }
    }
}

#[derive(Default)]
struct Index {
    /// Version seen and where each resource sits.
    seen: HashMap<Identifier, (u64, Option<BucketKey>)>,
    buckets: BTreeMap<BucketKey, Bucket>,
    lines: BTreeMap<String, Line>,
    /// Every currency an offer has named, numbered in order of appearance.
    currencies: Vec<String>,
}

impl Index {
    /// The number of `currency`, numbering it if it is new.
    fn currency(&mut self, currency: &str) -> usize {
        match self.currencies.iter().position(|c| c == currency) {
            Some(i) => i,
            None => {
                self.currencies.push(currency.to_string());
                self.currencies.len() - 1
            }
        }
    }

    fn remove(&mut self, id: &Identifier) {
        if let Some((_, Some(key))) = self.seen.get(id)
            && let Some(b) = self.buckets.get_mut(key)
        {
            b.remove(id);
            if b.offers.is_empty() {
                self.buckets.remove(key);
            }
        }
        self.lines.remove(&id.to_string());
    }
}

/// The selection index of one node.
pub struct Selector {
    config: SelectConfig,
    table: &'static DeviceTable,
    node: String,
    index: RwLock<Index>,
}

impl Selector {
    /// A selector for the node `node` (its prefix). Register it with the
    /// registry before the registry loads its zone.
    pub fn new(config: SelectConfig, node: String) -> Selector {
        Selector {
            config,
            table: DeviceTable::builtin(),
            node,
            index: RwLock::new(Index::default()),
        }
    }

    pub fn config(&self) -> &SelectConfig {
        &self.config
    }

    /// Resources and lines indexed.
    pub fn len(&self) -> (usize, usize) {
        let idx = self.read();
        (
            idx.buckets.values().map(|b| b.offers.len()).sum(),
            idx.lines.len(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The weights a requirement is scored with.
    pub fn weights(&self, req: &Requirement) -> Weights {
        req.weights.unwrap_or(self.config.weights)
    }

    /// How many candidates a requirement gets.
    pub fn limit(&self, req: &Requirement) -> usize {
        req.limit
            .unwrap_or(self.config.default_limit)
            .clamp(1, self.config.max_limit)
    }

    /// The requirement's model as the index keys it (the device table's
    /// name, lower case).
    pub fn model_key(&self, req: &Requirement) -> Option<String> {
        req.model.as_ref().map(|m| {
            self.table
                .find(m)
                .map_or_else(|| m.clone(), |s| s.model.clone())
                .to_lowercase()
        })
    }

    /// This node's answer to `req` at `now`: its best `limit` candidates,
    /// scored against the cheapest of everything that fit here; call
    /// [`Selection::finish`] (after merging children's) for the
    /// explanation.
    pub fn select(&self, req: &Requirement, now: u64, live: &dyn Availability) -> Selection {
        let model = self.model_key(req);
        let weights = self.weights(req);
        let limit = self.limit(req);
        let mut excluded: BTreeMap<Exclusion, u64> = BTreeMap::new();
        let mut out = |r: Exclusion, n: u64| *excluded.entry(r).or_default() += n;
        let mut considered = 0u64;
        // The index stays read-locked while the offers are weighed, so they
        // are borrowed, not copied; a commit waits that long to update it.
        let idx = self.read();
        let paths = req.region.as_ref().map(|from| {
            let lines: Vec<Line> = idx.lines.values().cloned().collect();
            Paths::from(from, &self.config.paths, &lines, req.min_bandwidth_gbps)
        });
        // One path per bucket that passed; offers point at theirs.
        let mut bucket_paths: Vec<Option<&Path>> = Vec::new();
        let mut fitting: Vec<(&Offer, u64, usize)> = Vec::new();
        for ((class, region, models), bucket) in &idx.buckets {
            let n = bucket.offers.len() as u64;
            considered += n;
            if req.class.is_some_and(|c| c != *class) {
                out(Exclusion::WrongClass, n);
                continue;
            }
            if let Some(m) = &model
                && !models.split('\n').any(|x| x == m)
            {
                out(Exclusion::WrongModel, n);
                continue;
            }
            let path = match &paths {
                None => None,
                Some(p) => match p.to(region) {
                    Some(path) => Some(path),
                    None => {
                        out(Exclusion::NoPath, n);
                        continue;
                    }
                },
            };
            if let (Some(max), Some(p)) = (req.max_latency_ms, path)
                && p.latency_ms > max
            {
                out(Exclusion::OverLatency, n);
                continue;
            }
            let slot = bucket_paths.len();
            bucket_paths.push(path);
            for offer in &bucket.offers {
                match offer.fits(req) {
                    Ok(units) => fitting.push((offer, units, slot)),
                    Err(r) => out(r, 1),
                }
            }
        }
        let ids: Vec<&Identifier> = fitting.iter().map(|(o, _, _)| &o.id).collect();
        let glances = live.glance(&ids);
        let booked = live.booked(&ids, req.start, req.end);
        // What fits: (index in `fitting`, units free, quality, freshness).
        let mut fits: Vec<(usize, u64, f64, f64)> = Vec::new();
        for (at, ((offer, units, _), (glance, booked))) in fitting
            .iter()
            .zip(glances.into_iter().zip(booked))
            .enumerate()
        {
            let Some(g) = glance else {
                out(Exclusion::NeverReported, 1);
                continue;
            };
            let (Some(age), Some(interval)) = (g.age_secs, g.interval_secs) else {
                out(Exclusion::NeverReported, 1);
                continue;
            };
            if g.freshness != Freshness::Fresh {
                out(Exclusion::Stale, 1);
                continue;
            }
            if g.health == Some(Health::Down) {
                out(Exclusion::Down, 1);
                continue;
            }
            let room = offer.units_total.saturating_sub(booked);
            if room < *units {
                out(Exclusion::Booked, 1);
                continue;
            }
            // The provider's report is the only word on units out of
            // service; it counts for a window that starts within the hour.
            let reported = u64::try_from(g.units_available.unwrap_or(0).max(0)).unwrap_or(0);
            let free = if req.start < now.saturating_add(3600) {
                room.min(reported)
            } else {
                room
            };
            if free < *units {
                out(Exclusion::Unavailable, 1);
                continue;
            }
            let stale_at = (u64::from(interval) * STALE_AFTER).max(1);
            fits.push((
                at,
                free,
                round3(1.0 - g.findings.min(3) as f64 / 3.0),
                round3(1.0 - age as f64 / stale_at as f64),
            ));
        }
        // The cheapest per currency, by the index's numbers.
        let mut least = vec![f64::INFINITY; idx.currencies.len()];
        for (at, ..) in &fits {
            if let Some((o, _, _)) = fitting.get(*at)
                && let (Some(p), Some(c)) = (&o.price, o.currency)
                && let Some(l) = least.get_mut(c)
            {
                *l = l.min(p.amount);
            }
        }
        let cheapest: BTreeMap<String, f64> = idx
            .currencies
            .iter()
            .zip(&least)
            .filter(|(_, l)| l.is_finite())
            .map(|(c, l)| (c.clone(), *l))
            .collect();
        let scale = self.config.latency_scale_ms;
        // Scored compactly; only the best `limit` become candidates.
        let mut scored: Vec<(f64, f64, usize, u64, f64, f64)> = fits
            .iter()
            .filter_map(|&(at, free, quality, freshness)| {
                let (o, units, slot) = fitting.get(at)?;
                let path = bucket_paths.get(*slot).copied().flatten();
                let (_, sum) = score(
                    &Inputs {
                        price: o.price.as_ref().map(|p| {
                            let l = o.currency.and_then(|c| least.get(c)).copied();
                            (p.amount, l.unwrap_or(p.amount))
                        }),
                        free,
                        units: *units,
                        total: o.units_total,
                        quality,
                        freshness,
                        latency_ms: path.map(|p| p.latency_ms),
                        region: &o.region,
                    },
                    &weights,
                    req,
                    scale,
                );
                let price = o.price.as_ref().map_or(f64::INFINITY, |p| p.amount);
                Some((sum, price, at, free, quality, freshness))
            })
            .collect();
        let matched = scored.len() as u64;
        let order = |a: &(f64, f64, usize, u64, f64, f64), b: &(f64, f64, usize, u64, f64, f64)| {
            b.0.total_cmp(&a.0)
                .then_with(|| a.1.total_cmp(&b.1))
                .then_with(|| {
                    let id = |x: usize| fitting.get(x).map(|(o, _, _)| &o.id);
                    id(a.2).cmp(&id(b.2))
                })
        };
        if scored.len() > limit {
            scored.select_nth_unstable_by(limit.saturating_sub(1), order);
            scored.truncate(limit);
        }
        scored.sort_by(order);
        let hours = (req.end - req.start) as f64 / 3600.0;
        let mut candidates = Vec::with_capacity(scored.len());
        for (_, _, at, free, quality, freshness) in scored {
            let Some((offer, units, slot)) = fitting.get(at) else {
                continue;
            };
            candidates.push(Candidate {
                identifier: offer.id.to_string(),
                node: self.node.clone(),
                class: offer.class.code().to_string(),
                region: offer.region.clone(),
                models: offer.models.clone(),
                unit: offer.unit.to_string(),
                units: *units,
                units_free: free,
                units_total: offer.units_total,
                price: offer.price.as_ref().map(|p| Cost {
                    per_unit_hour: p.amount,
                    currency: p.currency.clone(),
                    total: (p.amount * *units as f64 * hours * 100.0).round() / 100.0,
                }),
                path: bucket_paths.get(*slot).copied().flatten().cloned(),
                quality,
                freshness,
                score: 0.0,
                components: BTreeMap::new(),
            });
        }
        drop(idx);
        let mut selection = Selection {
            considered,
            matched,
            candidates,
            excluded,
            explanation: String::new(),
            weights,
            window: Window {
                start: req.start,
                end: req.end,
            },
            cheapest,
        };
        // The components and scores as answered (the same figures).
        rank(
            &mut selection.candidates,
            &weights,
            req,
            scale,
            &selection.cheapest,
        );
        selection
    }

    /// A child's candidate as this node answers it, or `None` when the
    /// record (resolved from the root key by the caller) does not back
    /// it: the resource must fit `req` for the very units claimed, and
    /// what is taken from the record (class, region, models, unit, units
    /// total, price) replaces what the child said; the rest (units free,
    /// quality, freshness, path) is bounded.
    pub fn vet(
        &self,
        record: &crate::ident::record::Record,
        c: &Candidate,
        req: &Requirement,
    ) -> Option<Candidate> {
        if record.status != crate::ident::record::RecordStatus::Active {
            return None;
        }
        let (contribution, d) = Contribution::of(record, self.table)?;
        let offer = Offer::of(record.identifier.clone(), contribution, &d)?;
        if req.class.is_some_and(|k| k != offer.class) {
            return None;
        }
        if let Some(m) = self.model_key(req)
            && !offer.models.iter().any(|x| x.to_lowercase() == m)
        {
            return None;
        }
        if offer.fits(req).ok()? != c.units
            || c.units_free < c.units
            || c.units_free > offer.units_total
        {
            return None;
        }
        let path = match (&c.path, &req.region) {
            (None, None) => None,
            (Some(p), Some(from))
                if p.from == *from
                    && p.to == offer.region
                    && p.via.len() <= MAX_VIA
                    && p.latency_ms.is_finite()
                    && p.latency_ms >= 0.0
                    && req.max_latency_ms.is_none_or(|m| p.latency_ms <= m)
                    && req.min_bandwidth_gbps.is_none_or(|m| {
                        p.bandwidth_gbps.is_some_and(|b| b >= m) || p.from == p.to
                    }) =>
            {
                Some(p.clone())
            }
            _ => return None,
        };
        let hours = (req.end - req.start) as f64 / 3600.0;
        Some(Candidate {
            identifier: offer.id.to_string(),
            node: c.node.clone(),
            class: offer.class.code().to_string(),
            region: offer.region.clone(),
            models: offer.models.clone(),
            unit: offer.unit.to_string(),
            units: c.units,
            units_free: c.units_free,
            units_total: offer.units_total,
            price: offer.price.as_ref().map(|p| Cost {
                per_unit_hour: p.amount,
                currency: p.currency.clone(),
                total: (p.amount * c.units as f64 * hours * 100.0).round() / 100.0,
            }),
            path,
            quality: if c.quality.is_finite() {
                c.quality.clamp(0.0, 1.0)
            } else {
                0.0
            },
            freshness: if c.freshness.is_finite() {
                c.freshness.clamp(0.0, 1.0)
            } else {
                0.0
            },
            score: 0.0,
            components: BTreeMap::new(),
        })
    }

    fn record(&self, signed: &SignedRecord) {
        let r = signed.record();
        if !crate::ident::values::is_resource_class(r.identifier.class()) {
            return;
        }
        let mut idx = self.write();
        if idx
            .seen
            .get(&r.identifier)
            .is_some_and(|(v, _)| *v >= r.version)
        {
            return;
        }
        idx.remove(&r.identifier);
        let mut key = None;
        if let Some((c, d)) = Contribution::of(r, self.table) {
            if let Some(link) = &d.link {
                let text = r.identifier.to_string();
                idx.lines.insert(
                    text.clone(),
                    Line {
                        id: text,
                        regions: link.regions.clone(),
                        bandwidth_gbps: link.bandwidth_gbps,
                        latency_ms: link.latency_ms,
                    },
                );
            } else if let Some(mut offer) = Offer::of(r.identifier.clone(), c, &d) {
                offer.currency = offer.price.as_ref().map(|p| idx.currency(&p.currency));
                let k: BucketKey = (
                    offer.class,
                    offer.region.clone(),
                    offer
                        .models
                        .iter()
                        .map(|m| m.to_lowercase())
                        .collect::<Vec<_>>()
                        .join("\n"),
                );
                idx.buckets.entry(k.clone()).or_default().insert(offer);
                key = Some(k);
            }
        }
        idx.seen.insert(r.identifier.clone(), (r.version, key));
    }
}

impl Observer for Selector {
    fn committed(&self, records: &[SignedRecord]) {
        for r in records {
            self.record(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_explanation_counts_every_reason_largest_first() {
        let req = Requirement::parse(b"{}", 1_800_000_000).unwrap();
        let mut s = Selection {
            considered: 1204,
            matched: 0,
            candidates: Vec::new(),
            excluded: BTreeMap::from([
                (Exclusion::Stale, 200),
                (Exclusion::OverLatency, 104),
                (Exclusion::WrongModel, 900),
            ]),
            explanation: String::new(),
            weights: Weights::default(),
            window: Window { start: 0, end: 1 },
            cheapest: BTreeMap::new(),
        };
        s.finish(&req, 50.0, 10);
        assert_eq!(
            s.explanation,
            "0 of 1 204 fit: 900 wrong model, 200 stale, 104 over the latency bound"
        );
        assert_eq!(grouped(1_234_567), "1 234 567");
        assert_eq!(grouped(12), "12");
    }

    #[test]
    fn a_peak_asks_for_the_units_it_needs_not_one_more() {
        let offer = Offer {
            id: Identifier::parse("86/IC-000001-H").unwrap(),
            class: Class::Ic,
            region: "31".into(),
            unit: "card",
            units_total: 8,
            models: vec!["A800".into()],
            per_unit_tflops: vec![(Precision::Fp16, 165.2)],
            memory_per_unit_gib: Some(80.0),
            storage_tib: None,
            price: None,
            currency: None,
        };
        let need = |tflops: &str| {
            let body = format!(r#"{{"peak":{{"precision":"fp16","tflops":{tflops}}}}}"#);
            offer.fits(&Requirement::parse(body.as_bytes(), 1_800_000_000).unwrap())
        };
        assert_eq!(need("495.6"), Ok(3), "3 × 165.2 in floating point");
        assert_eq!(need("495.7"), Ok(4));
        assert_eq!(need("1321.6"), Ok(8));
        assert_eq!(need("1321.7"), Err(Exclusion::BelowPeak));
    }

    #[test]
    fn weights_and_limits_are_checked() {
        assert!(SelectConfig::default().check().is_ok());
        let zero = Weights {
            price: 0.0,
            headroom: 0.0,
            quality: 0.0,
            freshness: 0.0,
            latency: 0.0,
            preference: 0.0,
        };
        assert_eq!(zero.check().unwrap_err().0, None);
        let bad = SelectConfig {
            default_limit: 500,
            ..SelectConfig::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "select.default_limit");
    }
}
