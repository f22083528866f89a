//! Data quality: plausibility findings on valid descriptors and on live
//! status, each with a stable machine [`Reason`] (DESIGN §5 C;
//! `schema/resource.md` §7). Quality flags and never refuses: validity is
//! [`crate::ident::resource`]'s job, and a finding never stops a record or
//! a report. Everything here is pure (no I/O, no lock, no clock) and
//! allocates only for the findings it returns.
//!
//! **Peaks against the device table** (`schema/devices.toml`). A model not
//! in the table is not judged (its declared total still is); only the
//! precisions that both the device and the table state are compared. With
//! `v` the stated peak and `t` the table's at the same precision, each
//! (device, precision) gets at most one finding, the first that fits:
//!
//! 1. `unit_slip`: `v` within 1% of `1000·t` or `t/1000` (GFLOPS or PFLOPS
//!    written as TFLOPS);
//! 2. `sparse_as_dense`: `v` within 1% of `2·t`;
//! 3. `mixed_precision`: `v` more than 10% off `t` and within 1% of the
//!    table's figure for the same model at another precision;
//! 4. `peak_mismatch`: `v` more than 10% off `t`.
//!
//! A figure within 10% of the table's passes (rounding, clock variants).
//! An `unsure = true` entry is checked for 1 and 2 only: its own figure may
//! be the wrong one, and 3 and 4 both rest on it. `declared_total_off`: for
//! each precision of `declared_peak_tflops`, the declaration is more than
//! 5% off `Σ count·peak` over the devices stating that precision, or no
//! device states it. Bounds are inclusive (exactly 1%, 5% or 10% off is
//! "within"), with a 10⁻⁹ relative slack so that float rounding does not
//! move a figure across one.
//!
//! **Status** ([`status_findings`]): one cause, one finding. A negative
//! count is `negative_count`; `units_available` above the total is
//! `available_over_total` (and not also `usage_over_total`); the sum of
//! available and in use is judged only when neither count is negative.
//!
//! ```
//! use cpid::capacity::quality::{descriptor_findings, Reason};
//! use cpid::ident::resource::{DeviceTable, ResourceDescriptor};
//! let d = ResourceDescriptor::parse(r#"{
//!     "schema": "cpid.resource/1", "class": "IC", "region": "31",
//!     "unit": "card", "units_total": 8,
//!     "devices": [{"model": "A800", "count": 8, "peak_tflops": {"fp16": 624}}]
//! }"#).unwrap();
//! let f = descriptor_findings(&d, DeviceTable::builtin());
//! assert_eq!(f[0].reason, Reason::SparseAsDense);
//! assert_eq!(f[0].pointer, "/devices/0/peak_tflops/fp16");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::ident::resource::{DeviceSpec, DeviceTable, Precision, ResourceDescriptor};

/// Why a resource is flagged: a stable machine code (`as_str`, and the
/// serde name) that APIs, metrics and the UI share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Not reported for 3 of its reporter's intervals (computed by the caller).
    Stale,
    /// Never reported, or not for 4 intervals (computed by the caller).
    Unknown,
    /// Status: `units_available` above `units_total`.
    AvailableOverTotal,
    /// Status: `units_available` or `units_in_use` below 0.
    NegativeCount,
    /// Status: available + in use above `units_total`.
    UsageOverTotal,
    /// Status: `utilization` outside 0 to 1.
    UtilizationOutOfRange,
    /// Descriptor: `pue` below 1 or above 3.
    PueOutOfRange,
    /// A device peak 1000× or 1/1000 of the table's.
    UnitSlip,
    /// A device peak twice the table's dense figure.
    SparseAsDense,
    /// A device peak that is the table's figure for another precision.
    MixedPrecision,
    /// A device peak more than 10% off the table's, unexplained.
    PeakMismatch,
    /// `declared_peak_tflops` more than 5% off the device sum.
    DeclaredTotalOff,
    /// A device serial under two identifiers.
    DuplicateSerial,
    /// An endpoint under two identifiers.
    DuplicateEndpoint,
    /// A reporter's sequence number went backwards (detected by the caller).
    SequenceBackwards,
    /// A report named a resource its signer does not own (detected by the caller).
    NotOwner,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 16] = [
        Reason::Stale,
        Reason::Unknown,
        Reason::AvailableOverTotal,
        Reason::NegativeCount,
        Reason::UsageOverTotal,
        Reason::UtilizationOutOfRange,
        Reason::PueOutOfRange,
        Reason::UnitSlip,
        Reason::SparseAsDense,
        Reason::MixedPrecision,
        Reason::PeakMismatch,
        Reason::DeclaredTotalOff,
        Reason::DuplicateSerial,
        Reason::DuplicateEndpoint,
        Reason::SequenceBackwards,
        Reason::NotOwner,
    ];

    /// The machine code, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Stale => "stale",
            Reason::Unknown => "unknown",
            Reason::AvailableOverTotal => "available_over_total",
            Reason::NegativeCount => "negative_count",
            Reason::UsageOverTotal => "usage_over_total",
            Reason::UtilizationOutOfRange => "utilization_out_of_range",
            Reason::PueOutOfRange => "pue_out_of_range",
            Reason::UnitSlip => "unit_slip",
            Reason::SparseAsDense => "sparse_as_dense",
            Reason::MixedPrecision => "mixed_precision",
            Reason::PeakMismatch => "peak_mismatch",
            Reason::DeclaredTotalOff => "declared_total_off",
            Reason::DuplicateSerial => "duplicate_serial",
            Reason::DuplicateEndpoint => "duplicate_endpoint",
            Reason::SequenceBackwards => "sequence_backwards",
            Reason::NotOwner => "not_owner",
        }
    }

    /// One line for people (docs, UI).
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Stale => "no status report for 3 of the reporter's intervals",
            Reason::Unknown => "no status report ever, or for 4 of the reporter's intervals",
            Reason::AvailableOverTotal => "more units available than the resource has",
            Reason::NegativeCount => "a negative count of available or used units",
            Reason::UsageOverTotal => "available and used units add up to more than the total",
            Reason::UtilizationOutOfRange => "utilization outside 0 to 1 (a percentage?)",
            Reason::PueOutOfRange => "site PUE below 1.0 or above 3.0",
            Reason::UnitSlip => {
                "a device peak 1000x or 1/1000 of the published one (GFLOPS or PFLOPS written as TFLOPS)"
            }
            Reason::SparseAsDense => {
                "a device peak twice the published dense one (a sparse figure written as dense)"
            }
            Reason::MixedPrecision => {
                "a device peak that is the published figure for another precision"
            }
            Reason::PeakMismatch => "a device peak more than 10% off the published one",
            Reason::DeclaredTotalOff => {
                "declared total peak more than 5% off the sum over the devices"
            }
            Reason::DuplicateSerial => "a device serial also listed under another identifier",
            Reason::DuplicateEndpoint => "an endpoint also listed under another identifier",
            Reason::SequenceBackwards => "a reporter's sequence number went backwards",
            Reason::NotOwner => "a status report for a resource its signer does not own",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flag on one resource.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    pub reason: Reason,
    /// JSON pointer (RFC 6901) into the descriptor or the status, `""` if none.
    pub pointer: String,
    /// What was seen, for people.
    pub detail: String,
}

impl Finding {
    fn new(reason: Reason, pointer: impl Into<String>, detail: String) -> Finding {
        Finding {
            reason,
            pointer: pointer.into(),
            detail,
        }
    }
}

/// A unit slip is 1000× (or 1/1000) the table's figure.
const SLIP: f64 = 1000.0;
/// Tolerance of "is that figure" (slip, ×2, another precision's figure).
const MATCH_TOL: f64 = 0.01;
/// A peak within this share of the table's passes.
const PEAK_TOL: f64 = 0.10;
/// A declared total within this share of the device sum passes.
const TOTAL_TOL: f64 = 0.05;
/// Relative slack on every bound, so that a figure written as exactly 5%
/// off (`sum * 1.05`) is not pushed over by float rounding.
const SLACK: f64 = 1e-9;

/// `v` within `tol` (a share) of `target`, bound included. False for NaN,
/// so a NaN is "off" wherever that is checked with `!within`.
fn within(v: f64, target: f64, tol: f64) -> bool {
    (v - target).abs() <= target.abs() * (tol + SLACK)
}

fn unit_of(p: Precision) -> &'static str {
    match p {
        Precision::Int8 => "TOPS",
        _ => "TFLOPS",
    }
}

/// The diagnosis of one device peak `v` at `p` against `spec`, whose figure
/// at `p` is `t` (module doc, in that order).
fn judge_peak(spec: &DeviceSpec, p: Precision, v: f64, t: f64) -> Option<(Reason, String)> {
    let (name, unit, at) = (&spec.model, unit_of(p), p.as_str());
    if within(v, t * SLIP, MATCH_TOL) || within(v, t / SLIP, MATCH_TOL) {
        let how = if v > t { "1000x" } else { "1/1000 of" };
        return Some((
            Reason::UnitSlip,
            format!(
                "{at} peak {v} is {how} {name}'s {t} {unit}: GFLOPS or PFLOPS written as {unit}?"
            ),
        ));
    }
    if within(v, 2.0 * t, MATCH_TOL) {
        return Some((
            Reason::SparseAsDense,
            format!("{at} peak {v} is twice {name}'s dense {t} {unit}: a sparse figure?"),
        ));
    }
    if spec.unsure || within(v, t, PEAK_TOL) {
        return None;
    }
    if let Some((q, tq)) = spec
        .peak_tflops
        .iter()
        .find(|&(q, tq)| q != p && within(v, tq, MATCH_TOL))
    {
        return Some((
            Reason::MixedPrecision,
            format!(
                "{at} peak {v} is {name}'s {} figure ({tq}), not its {at} figure ({t} {unit})",
                q.as_str()
            ),
        ));
    }
    Some((
        Reason::PeakMismatch,
        format!(
            "{at} peak {v} is {:+.0}% off {name}'s {t} {unit}",
            (v / t - 1.0) * 100.0
        ),
    ))
}

/// Findings on one descriptor, in field order: device peaks (by device,
/// then precision), `pue`, `declared_peak_tflops` (by precision).
pub fn descriptor_findings(d: &ResourceDescriptor, table: &DeviceTable) -> Vec<Finding> {
    let mut out = Vec::new();
    let devices = d.devices.as_deref().unwrap_or_default();
    for (i, dev) in devices.iter().enumerate() {
        let Some(spec) = table.find(&dev.model) else {
            continue;
        };
        for (p, v) in dev.peak_tflops.iter() {
            let Some(t) = spec.peak_tflops.get(p) else {
                continue;
            };
            if let Some((reason, detail)) = judge_peak(spec, p, v, t) {
                let pointer = format!("/devices/{i}/peak_tflops/{}", p.as_str());
                out.push(Finding::new(reason, pointer, detail));
            }
        }
    }
    if let Some(pue) = d.pue
        && !(1.0..=3.0).contains(&pue)
    {
        out.push(Finding::new(
            Reason::PueOutOfRange,
            "/pue",
            format!("PUE {pue} is outside 1.0 to 3.0"),
        ));
    }
    if let Some(declared) = &d.declared_peak_tflops {
        for (p, v) in declared.iter() {
            let mut sum = 0.0;
            let mut stated = false;
            for dev in devices {
                if let Some(peak) = dev.peak_tflops.get(p) {
                    // why: counts are at most 10^6, exact in f64.
                    sum += dev.count as f64 * peak;
                    stated = true;
                }
            }
            let (at, unit) = (p.as_str(), unit_of(p));
            let detail = if !stated {
                format!("declares {v} {unit} at {at}, but no device states {at}")
            } else if !within(v, sum, TOTAL_TOL) {
                format!(
                    "declares {v} {unit} at {at}, {:+.1}% off the devices' {sum}",
                    (v / sum - 1.0) * 100.0
                )
            } else {
                continue;
            };
            out.push(Finding::new(
                Reason::DeclaredTotalOff,
                format!("/declared_peak_tflops/{at}"),
                detail,
            ));
        }
    }
    out
}

/// Findings on one resource's live status, with pointers to the fields of
/// its entry in a report (`/units_available`, `/units_in_use`,
/// `/utilization`; prefix `/resources/<i>` for the report's). One cause,
/// one finding (module doc).
pub fn status_findings(
    units_total: u64,
    units_available: i64,
    units_in_use: i64,
    utilization: Option<f64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // why: i128 holds every u64 and the sum of two i64 without overflow.
    let (total, avail, used) = (
        i128::from(units_total),
        i128::from(units_available),
        i128::from(units_in_use),
    );
    for (count, at) in [(avail, "/units_available"), (used, "/units_in_use")] {
        if count < 0 {
            out.push(Finding::new(
                Reason::NegativeCount,
                at,
                format!("{} is {count}", at.trim_start_matches('/')),
            ));
        }
    }
    if avail > total {
        out.push(Finding::new(
            Reason::AvailableOverTotal,
            "/units_available",
            format!("{avail} units available of {total}"),
        ));
    } else if avail >= 0 && used >= 0 && avail + used > total {
        out.push(Finding::new(
            Reason::UsageOverTotal,
            "/units_in_use",
            format!("{avail} available + {used} in use > {total} units"),
        ));
    }
    if let Some(u) = utilization
        && !(0.0..=1.0).contains(&u)
    {
        out.push(Finding::new(
            Reason::UtilizationOutOfRange,
            "/utilization",
            format!("utilization {u} is outside 0 to 1"),
        ));
    }
    out
}

/// The serials of a descriptor's devices, for [`Duplicates::insert`].
pub fn serials(d: &ResourceDescriptor) -> impl Iterator<Item = String> + '_ {
    d.devices
        .iter()
        .flatten()
        .flat_map(|dev| dev.serials.iter().flatten().cloned())
}

/// What an identifier was inserted with (normalised keys), to remove it.
#[derive(Debug, Clone, Default)]
struct Keys {
    serials: Vec<String>,
    endpoints: Vec<String>,
}

/// Duplicate serials and endpoints across identifiers: an index kept
/// incrementally (insert on register or update, remove on withdraw).
///
/// Serials compare case-insensitively. Endpoints compare after trimming,
/// dropping one trailing `/` and lower-casing scheme and host (RFC 3986
/// §6.2.2.1); the path stays case-sensitive. The same key twice under one
/// identifier is not a duplicate.
#[derive(Debug, Clone, Default)]
pub struct Duplicates {
    serials: HashMap<String, Vec<Arc<str>>>,
    endpoints: HashMap<String, Vec<Arc<str>>>,
    by_id: HashMap<Arc<str>, Keys>,
    /// How many findings each identifier that has any gets, made on first
    /// use after a change: a selection weighs thousands of resources, of
    /// which few if any share a key.
    counts: std::sync::OnceLock<HashMap<Arc<str>, usize>>,
}

/// How many shared keys a finding's detail names.
const SHOWN_KEYS: usize = 3;

fn serial_key(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

fn endpoint_key(url: &str) -> String {
    let url = url.trim();
    let url = url.strip_suffix('/').unwrap_or(url);
    let head_len = match url.find("://") {
        Some(i) => url
            .get(i + 3..)
            .and_then(|rest| rest.find('/'))
            .map_or(url.len(), |j| i + 3 + j),
        None => 0,
    };
    let (head, path) = url.split_at_checked(head_len).unwrap_or(("", url));
    let mut key = head.to_ascii_lowercase();
    key.push_str(path);
    key
}

fn sorted_keys(items: impl IntoIterator<Item = String>, key: fn(&str) -> String) -> Vec<String> {
    let mut keys: Vec<String> = items.into_iter().map(|s| key(&s)).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn unindex(index: &mut HashMap<String, Vec<Arc<str>>>, keys: &[String], id: &str) {
    for k in keys {
        if let Some(ids) = index.get_mut(k) {
            ids.retain(|x| &**x != id);
            if ids.is_empty() {
                index.remove(k);
            }
        }
    }
}

/// One finding per other identifier that shares keys with `id`.
fn shared(
    index: &HashMap<String, Vec<Arc<str>>>,
    keys: &[String],
    id: &str,
    reason: Reason,
    what: &str,
    out: &mut Vec<Finding>,
) {
    let mut by_other: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for k in keys {
        for other in index.get(k).into_iter().flatten() {
            if &**other != id {
                by_other.entry(other).or_default().push(k);
            }
        }
    }
    for (other, ks) in by_other {
        let shown: Vec<&str> = ks.iter().take(SHOWN_KEYS).copied().collect();
        let more = match ks.len() - shown.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        out.push(Finding::new(
            reason,
            "",
            format!("{what} {}{more} also under {other}", shown.join(", ")),
        ));
    }
}

impl Duplicates {
    pub fn new() -> Duplicates {
        Duplicates::default()
    }

    /// Indexes `id` with its serials and endpoints, replacing what it was
    /// inserted with before.
    pub fn insert(
        &mut self,
        id: &str,
        serials: impl IntoIterator<Item = String>,
        endpoints: impl IntoIterator<Item = String>,
    ) {
        self.remove(id);
        self.counts.take();
        let keys = Keys {
            serials: sorted_keys(serials, serial_key),
            endpoints: sorted_keys(endpoints, endpoint_key),
        };
        let id: Arc<str> = Arc::from(id);
        for k in &keys.serials {
            self.serials.entry(k.clone()).or_default().push(id.clone());
        }
        for k in &keys.endpoints {
            self.endpoints
                .entry(k.clone())
                .or_default()
                .push(id.clone());
        }
        self.by_id.insert(id, keys);
    }

    /// Forgets `id`; nothing happens if it is not indexed.
    pub fn remove(&mut self, id: &str) {
        if let Some(keys) = self.by_id.remove(id) {
            self.counts.take();
            unindex(&mut self.serials, &keys.serials, id);
            unindex(&mut self.endpoints, &keys.endpoints, id);
        }
    }

    /// Findings for `id`: per other identifier (in order), the serials it
    /// shares with it (`duplicate_serial`), then likewise the endpoints
    /// (`duplicate_endpoint`). Pointer `""`: the index keeps no positions.
    pub fn findings(&self, id: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(keys) = self.by_id.get(id) {
            let (s, e) = (&keys.serials, &keys.endpoints);
            shared(
                &self.serials,
                s,
                id,
                Reason::DuplicateSerial,
                "serial",
                &mut out,
            );
            shared(
                &self.endpoints,
                e,
                id,
                Reason::DuplicateEndpoint,
                "endpoint",
                &mut out,
            );
        }
        out
    }

    /// The reason of every duplicate finding over all identifiers (each as
    /// [`Duplicates::findings`] gives it), visiting only shared keys.
    pub fn all_findings(&self) -> Vec<Reason> {
        self.involved()
            .into_iter()
            .flat_map(|id| self.findings(id).into_iter().map(|f| f.reason))
            .collect()
    }

    /// Every identifier that shares a key with another, in order.
    fn involved(&self) -> std::collections::BTreeSet<&Arc<str>> {
        let mut involved = std::collections::BTreeSet::new();
        for ids in self.serials.values().chain(self.endpoints.values()) {
            if ids.iter().any(|x| Some(x) != ids.first()) {
                involved.extend(ids.iter());
            }
        }
        involved
    }

    /// `findings(id).len()` for every identifier with findings; the others
    /// have none.
    pub fn counts(&self) -> &HashMap<Arc<str>, usize> {
        self.counts.get_or_init(|| {
            self.involved()
                .into_iter()
                .map(|id| (id.clone(), self.findings(id).len()))
                .filter(|(_, n)| *n > 0)
                .collect()
        })
    }

    /// How many identifiers are indexed.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

/// Findings beyond this many on one resource cost it nothing more.
pub const SCORE_CAP: usize = 3;

/// A provider's data-quality score in [0, 1]:
/// `1 − Σᵢ min(nᵢ, 3) / (3 · resources)`, with `nᵢ` the findings of
/// resource `i`. Each resource carries an equal share; one finding costs a
/// third of it, three or more all of it, so a provider with one slip on
/// each resource scores 2/3 and one whose every resource is wrong in every
/// way scores 0. `findings_per_resource` may list only the resources with
/// findings (the others count as clean); 1.0 with no resources. Findings
/// are counted, not weighed: every reason costs the same.
pub fn score(resources: usize, findings_per_resource: impl Iterator<Item = usize>) -> f64 {
    if resources == 0 {
        return 1.0;
    }
    let lost = findings_per_resource.fold(0usize, |acc, n| acc.saturating_add(n.min(SCORE_CAP)));
    // why: more resources listed than stated must not push it below 0.
    (1.0 - lost as f64 / (SCORE_CAP as f64 * resources as f64)).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ident::resource::{Device, Peaks, SCHEMA, Unit};

    fn table() -> &'static DeviceTable {
        DeviceTable::builtin()
    }

    fn peaks(p: Precision, v: f64) -> Peaks {
        let mut out = Peaks::default();
        match p {
            Precision::Fp64 => out.fp64 = Some(v),
            Precision::Fp32 => out.fp32 = Some(v),
            Precision::Tf32 => out.tf32 = Some(v),
            Precision::Bf16 => out.bf16 = Some(v),
            Precision::Fp16 => out.fp16 = Some(v),
            Precision::Fp8 => out.fp8 = Some(v),
            Precision::Int8 => out.int8 = Some(v),
        }
        out
    }

    fn device(model: &str, count: u64, peak_tflops: Peaks) -> Device {
        Device {
            model: model.into(),
            count,
            peak_tflops,
            memory_gib: None,
            serials: None,
        }
    }

    fn ic(devices: Vec<Device>) -> ResourceDescriptor {
        ResourceDescriptor {
            schema: SCHEMA.into(),
            class: "IC".into(),
            region: Some("31".into()),
            unit: Unit::Card,
            units_total: devices.iter().map(|d| d.count).sum(),
            devices: Some(devices),
            cpu_cores: None,
            memory_gib: None,
            storage_tib: None,
            network_gbps: None,
            pue: None,
            price_per_unit_hour: None,
            declared_peak_tflops: None,
            link: None,
        }
    }

    /// The reasons found on one device peak of `model` at `p` written as `v`.
    fn peak(model: &str, p: Precision, v: f64) -> Vec<(Reason, String)> {
        let d = ic(vec![device(model, 8, peaks(p, v))]);
        assert!(d.validate().is_ok(), "{model} {p:?} {v}");
        descriptor_findings(&d, table())
            .into_iter()
            .map(|f| (f.reason, f.pointer))
            .collect()
    }

    fn one(reason: Reason, p: Precision) -> Vec<(Reason, String)> {
        vec![(reason, format!("/devices/0/peak_tflops/{}", p.as_str()))]
    }

    #[test]
    fn reason_codes_are_stable_and_serialise_as_their_code() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
            assert!(seen.insert(r.as_str()), "{r} twice");
            assert!(!r.describe().is_empty() && !r.describe().contains('\n'));
        }
        assert_eq!(Reason::SparseAsDense.as_str(), "sparse_as_dense");
        assert_eq!(
            Reason::UtilizationOutOfRange.to_string(),
            "utilization_out_of_range"
        );
    }

    #[test]
    fn published_dense_figures_pass() {
        for spec in &table().device {
            for name in std::iter::once(&spec.model).chain(&spec.aliases) {
                let d = ic(vec![device(name, 8, spec.peak_tflops)]);
                assert_eq!(descriptor_findings(&d, table()), vec![], "{name}");
            }
        }
        // Within 10% passes: rounding and clock variants.
        assert_eq!(peak("A800", Precision::Fp16, 312.0 * 1.10), vec![]);
        assert_eq!(peak("a800", Precision::Fp16, 312.0 * 0.90), vec![]);
    }

    #[test]
    fn unit_slip_is_a_figure_1000_times_off() {
        use Precision::*;
        assert_eq!(peak("A800", Fp16, 0.312), one(Reason::UnitSlip, Fp16));
        assert_eq!(peak("A800", Fp64, 19_500.0), one(Reason::UnitSlip, Fp64));
        // 1% either way is still a slip; 2% is a mismatch.
        assert_eq!(
            peak("A800", Fp16, 0.312 * 1.01),
            one(Reason::UnitSlip, Fp16)
        );
        assert_eq!(
            peak("A800", Fp64, 19_500.0 * 0.99),
            one(Reason::UnitSlip, Fp64)
        );
        assert_eq!(
            peak("A800", Fp16, 0.312 * 1.02),
            one(Reason::PeakMismatch, Fp16)
        );
        // An unsure entry is still checked for it.
        assert_eq!(peak("H20", Fp16, 0.148), one(Reason::UnitSlip, Fp16));
    }

    #[test]
    fn sparse_as_dense_is_twice_the_dense_figure() {
        use Precision::*;
        assert_eq!(
            peak("H100 SXM", Fp8, 3958.0),
            one(Reason::SparseAsDense, Fp8)
        );
        assert_eq!(
            peak("A800", Fp16, 312.0 * 2.0),
            one(Reason::SparseAsDense, Fp16)
        );
        assert_eq!(
            peak("A800", Fp16, 312.0 * 2.02),
            one(Reason::SparseAsDense, Fp16)
        );
        assert_eq!(
            peak("A800", Fp16, 312.0 * 1.98),
            one(Reason::SparseAsDense, Fp16)
        );
        // 1.9x is no sparse figure: a mismatch.
        assert_eq!(
            peak("A800", Fp16, 312.0 * 1.9),
            one(Reason::PeakMismatch, Fp16)
        );
        assert_eq!(
            peak("A800", Fp16, 312.0 * 2.03),
            one(Reason::PeakMismatch, Fp16)
        );
        // Unsure entries too: H20's dense fp8 is 296.
        assert_eq!(peak("H20", Fp8, 592.0), one(Reason::SparseAsDense, Fp8));
        // Twice A800's fp16 is also its int8 figure: ×2 is diagnosed first.
        assert_eq!(peak("A800", Fp16, 624.0), one(Reason::SparseAsDense, Fp16));
    }

    #[test]
    fn mixed_precision_is_another_precisions_figure() {
        use Precision::*;
        // The fp16 figure written as fp32, the tf32 one as fp16.
        assert_eq!(peak("A800", Fp32, 312.0), one(Reason::MixedPrecision, Fp32));
        assert_eq!(peak("A800", Fp16, 156.0), one(Reason::MixedPrecision, Fp16));
        assert_eq!(
            peak("H100 SXM", Fp64, 494.5 * 1.01),
            one(Reason::MixedPrecision, Fp64)
        );
        assert_eq!(
            peak("H100 SXM", Fp64, 494.5 * 1.02),
            one(Reason::PeakMismatch, Fp64)
        );
        // The same figure at two precisions is both's: A800 fp64 = fp32.
        assert_eq!(peak("A800", Fp64, 19.5), vec![]);
        // Unsure entries are not judged for it (H20's fp32 may be wrong).
        assert_eq!(peak("H20", Fp32, 148.0), vec![]);
    }

    #[test]
    fn peak_mismatch_is_more_than_10_percent_off() {
        use Precision::*;
        assert_eq!(
            peak("A800", Fp16, 312.0 * 1.101),
            one(Reason::PeakMismatch, Fp16)
        );
        assert_eq!(
            peak("A800", Fp16, 312.0 * 0.899),
            one(Reason::PeakMismatch, Fp16)
        );
        assert_eq!(
            peak("MI300X", Int8, 1000.0),
            one(Reason::PeakMismatch, Int8)
        );
        // Unsure entries and unknown models are not judged for it.
        assert_eq!(peak("Ascend 910B", Fp16, 400.0), vec![]);
        assert_eq!(peak("MLU370-X8", Fp16, 12345.0), vec![]);
        // A precision the table does not state is not judged: L40S fp64.
        assert_eq!(peak("L40S", Fp64, 12345.0), vec![]);
    }

    #[test]
    fn one_finding_per_device_and_precision_in_field_order() {
        let bad = Peaks {
            fp64: Some(19_500.0),
            fp16: Some(624.0),
            int8: Some(624.0),
            ..Peaks::default()
        };
        let d = ic(vec![
            device(
                "H100",
                4,
                Peaks {
                    fp8: Some(1979.0),
                    ..Peaks::default()
                },
            ),
            device("A800", 8, bad),
        ]);
        let got: Vec<(Reason, String)> = descriptor_findings(&d, table())
            .into_iter()
            .map(|f| (f.reason, f.pointer))
            .collect();
        assert_eq!(
            got,
            vec![
                (Reason::UnitSlip, "/devices/1/peak_tflops/fp64".into()),
                (Reason::SparseAsDense, "/devices/1/peak_tflops/fp16".into()),
            ]
        );
    }

    fn declared(d: &mut ResourceDescriptor, p: Precision, v: f64) -> Vec<Finding> {
        d.declared_peak_tflops = Some(peaks(p, v));
        assert!(d.validate().is_ok());
        descriptor_findings(d, table())
    }

    #[test]
    fn declared_total_off_is_more_than_5_percent_off_the_device_sum() {
        use Precision::*;
        // 512 A800 at 312 + 64 of an unknown model at 96: 165 888 at fp16.
        let mut d = ic(vec![
            device("A800", 512, peaks(Fp16, 312.0)),
            device("MLU370-X8", 64, peaks(Fp16, 96.0)),
        ]);
        let sum = 512.0 * 312.0 + 64.0 * 96.0;
        assert_eq!(declared(&mut d, Fp16, sum), vec![]);
        assert_eq!(declared(&mut d, Fp16, sum * 1.05), vec![]);
        assert_eq!(declared(&mut d, Fp16, sum * 0.95), vec![]);
        for off in [sum * 1.051, sum * 0.949, sum * 1000.0] {
            let f = declared(&mut d, Fp16, off);
            assert_eq!(f.len(), 1);
            assert_eq!(f[0].reason, Reason::DeclaredTotalOff);
            assert_eq!(f[0].pointer, "/declared_peak_tflops/fp16");
        }
        // A precision no device states.
        let f = declared(&mut d, Int8, 319_488.0);
        assert_eq!(f[0].reason, Reason::DeclaredTotalOff);
        assert!(
            f[0].detail.contains("no device states int8"),
            "{}",
            f[0].detail
        );
        // Unknown models alone are still added up.
        let mut only_unknown = ic(vec![device("MLU370-X8", 10, peaks(Int8, 256.0))]);
        assert_eq!(declared(&mut only_unknown, Int8, 2560.0), vec![]);
        assert_eq!(declared(&mut only_unknown, Int8, 2700.0).len(), 1);
    }

    #[test]
    fn pue_out_of_range_is_below_1_or_above_3() {
        let mut d = ic(vec![device("A800", 8, peaks(Precision::Fp16, 312.0))]);
        for ok in [1.0, 1.25, 3.0] {
            d.pue = Some(ok);
            assert_eq!(descriptor_findings(&d, table()), vec![]);
        }
        for bad in [0.99, 3.01, 125.0, f64::NAN] {
            d.pue = Some(bad);
            let f = descriptor_findings(&d, table());
            assert_eq!(f.len(), 1, "{bad}");
            assert_eq!(
                (f[0].reason, f[0].pointer.as_str()),
                (Reason::PueOutOfRange, "/pue")
            );
        }
    }

    fn status(total: u64, avail: i64, used: i64, util: Option<f64>) -> Vec<(Reason, String)> {
        status_findings(total, avail, used, util)
            .into_iter()
            .map(|f| (f.reason, f.pointer))
            .collect()
    }

    #[test]
    fn consistent_status_passes() {
        assert_eq!(status(512, 100, 412, Some(0.8)), vec![]);
        assert_eq!(status(512, 512, 0, Some(0.0)), vec![]);
        assert_eq!(status(512, 0, 512, Some(1.0)), vec![]);
        assert_eq!(status(1, 0, 0, None), vec![]);
    }

    #[test]
    fn available_over_total_is_reported_alone() {
        assert_eq!(
            status(512, 513, 0, None),
            vec![(Reason::AvailableOverTotal, "/units_available".into())]
        );
        assert_eq!(
            status(512, 513, 100, None),
            vec![(Reason::AvailableOverTotal, "/units_available".into())]
        );
        assert_eq!(status(512, 512, 0, None), vec![]);
        assert_eq!(
            status(u64::MAX, i64::MAX, i64::MAX, None),
            vec![],
            "no overflow"
        );
    }

    #[test]
    fn negative_counts_are_reported_per_field() {
        assert_eq!(
            status(8, -1, 0, None),
            vec![(Reason::NegativeCount, "/units_available".into())]
        );
        assert_eq!(
            status(8, 2, -3, None),
            vec![(Reason::NegativeCount, "/units_in_use".into())]
        );
        // A negative count leaves the sum unjudged.
        assert_eq!(
            status(8, -1, 20, None),
            vec![(Reason::NegativeCount, "/units_available".into())]
        );
        assert_eq!(status(8, 0, 0, None), vec![]);
    }

    #[test]
    fn usage_over_total_is_available_plus_in_use_above_the_total() {
        assert_eq!(
            status(8, 4, 5, None),
            vec![(Reason::UsageOverTotal, "/units_in_use".into())]
        );
        assert_eq!(
            status(8, 0, 9, None),
            vec![(Reason::UsageOverTotal, "/units_in_use".into())]
        );
        assert_eq!(status(8, 4, 4, None), vec![]);
    }

    #[test]
    fn utilization_is_a_share_from_0_to_1() {
        for ok in [0.0, 0.5, 1.0] {
            assert_eq!(status(8, 4, 4, Some(ok)), vec![]);
        }
        for bad in [-0.001, 1.001, 85.0, f64::NAN, f64::INFINITY] {
            assert_eq!(
                status(8, 4, 4, Some(bad)),
                vec![(Reason::UtilizationOutOfRange, "/utilization".into())],
                "{bad}"
            );
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn duplicate_serials_name_the_serial_and_the_other_identifier() {
        let (a, b, c) = (
            "86.31/IC-000001-X",
            "86.44/IC-000002-X",
            "86.11/IC-000003-X",
        );
        let mut dup = Duplicates::new();
        dup.insert(a, strings(&["SN1", "SN2"]), vec![]);
        dup.insert(b, strings(&["sn2", "SN3"]), vec![]);
        dup.insert(c, strings(&["SN4", "SN4"]), vec![]);
        let fa = dup.findings(a);
        assert_eq!(fa.len(), 1);
        assert_eq!(fa[0].reason, Reason::DuplicateSerial);
        assert!(
            fa[0].detail.contains("SN2") && fa[0].detail.contains(b),
            "{}",
            fa[0].detail
        );
        assert_eq!(dup.findings(b)[0].reason, Reason::DuplicateSerial);
        // The same serial twice under one identifier is not a duplicate.
        assert_eq!(dup.findings(c), vec![]);
        assert_eq!(dup.findings("86.31/IC-00000Z-X"), vec![]);
        // Removing one side clears the other; re-inserting replaces.
        dup.remove(b);
        assert_eq!(dup.findings(a), vec![]);
        dup.insert(b, strings(&["SN1"]), vec![]);
        dup.insert(b, strings(&["SN9"]), vec![]);
        assert_eq!(dup.findings(a), vec![]);
        assert_eq!(dup.len(), 3);
        dup.remove(a);
        dup.remove(a);
        assert_eq!(dup.len(), 2);
    }

    #[test]
    fn the_counts_follow_every_change_as_findings_does() {
        let mut dup = Duplicates::new();
        let ids = ["a", "b", "c", "d"];
        let agree = |dup: &Duplicates, when: &str| {
            for id in ids {
                let counted = dup.counts().get(id).copied().unwrap_or(0);
                assert_eq!(counted, dup.findings(id).len(), "{id} {when}");
            }
        };
        agree(&dup, "empty");
        dup.insert("a", strings(&["SN1", "SN2"]), strings(&["https://x/api"]));
        dup.insert("b", strings(&["sn1"]), vec![]);
        agree(&dup, "one shared serial");
        dup.insert("c", strings(&["SN2"]), strings(&["https://X/api/"]));
        agree(&dup, "a serial and an endpoint");
        assert_eq!(
            dup.counts().get("a"),
            Some(&3),
            "serials with b and c, the endpoint with c"
        );
        dup.insert("b", strings(&["SN9"]), vec![]);
        agree(&dup, "b replaced");
        dup.remove("c");
        agree(&dup, "c withdrawn");
        assert!(dup.counts().is_empty());
        dup.insert("d", strings(&["SN9"]), vec![]);
        agree(&dup, "d shares with b");
    }

    #[test]
    fn many_shared_serials_make_one_finding_per_other_identifier() {
        let mut dup = Duplicates::new();
        let many: Vec<String> = (0..10).map(|i| format!("SN{i:02}")).collect();
        dup.insert("a", many.clone(), vec![]);
        dup.insert("b", many.clone(), vec![]);
        dup.insert("c", many[..1].to_vec(), vec![]);
        let f = dup.findings("a");
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[0].detail,
            "serial SN00, SN01, SN02 and 7 more also under b"
        );
        assert_eq!(f[1].detail, "serial SN00 also under c");
    }

    #[test]
    fn duplicate_endpoints_compare_scheme_and_host_without_case() {
        let mut dup = Duplicates::new();
        dup.insert("a", vec![], strings(&["https://R1.dc31.example.cn/api/"]));
        dup.insert("b", vec![], strings(&["https://r1.DC31.example.cn/api"]));
        dup.insert("c", vec![], strings(&["https://r1.dc31.example.cn/API"]));
        dup.insert("d", vec![], strings(&["https://r2.dc31.example.cn/api"]));
        let f = dup.findings("a");
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].reason, Reason::DuplicateEndpoint);
        assert!(f[0].detail.ends_with("also under b"), "{}", f[0].detail);
        assert_eq!(dup.findings("c"), vec![]);
        assert_eq!(dup.findings("d"), vec![]);
        assert_eq!(endpoint_key("no scheme/Path"), "no scheme/Path");
        assert_eq!(endpoint_key("HTTPS://X.EXAMPLE"), "https://x.example");
    }

    #[test]
    fn the_serials_helper_lists_every_devices_serials() {
        let mut d = ic(vec![
            device("A800", 8, peaks(Precision::Fp16, 312.0)),
            device("H100", 8, peaks(Precision::Fp8, 1979.0)),
        ]);
        if let Some(devs) = d.devices.as_mut() {
            devs[0].serials = Some(strings(&["A", "B"]));
            devs[1].serials = Some(strings(&["C"]));
        }
        assert_eq!(serials(&d).collect::<Vec<_>>(), strings(&["A", "B", "C"]));
    }

    #[test]
    fn score_is_1_without_findings_and_falls_with_them() {
        assert_eq!(score(0, std::iter::empty()), 1.0);
        assert_eq!(score(10, std::iter::empty()), 1.0);
        assert_eq!(score(10, [0, 0, 0].into_iter()), 1.0);
        assert!((score(3, [1, 1, 1].into_iter()) - 2.0 / 3.0).abs() < 1e-12);
        assert!((score(4, [1].into_iter()) - (1.0 - 1.0 / 12.0)).abs() < 1e-12);
        assert_eq!(score(2, [3, 100].into_iter()), 0.0);
        assert_eq!(score(1, [3, 3, 3].into_iter()), 0.0, "clamped");
        assert!(score(10, [2].into_iter()) < score(10, [1].into_iter()));
    }
}
