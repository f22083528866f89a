//! A deterministic data set for the quality checks ([`super::quality`]):
//! realistic clean resources, and faulty ones each carrying the one
//! [`Reason`] injected into it; for tests and benchmarks. A seeded
//! xorshift64* drives it, so `(n_clean, seed)` gives the same set anywhere.
//!
//! Clean samples use the models of `schema/devices.toml` (names and
//! aliases) and one model it does not list, at their published dense
//! peaks; declare totals exactly or within 2% (rounded to 0.1); spread over the 31 mainland
//! provinces; report consistent status; and pass
//! [`ResourceDescriptor::validate`] and the 4096-byte value limit.
//! A faulty sample is a clean one with one fault injected. It stays valid,
//! except for `pue_out_of_range` (built directly, as imported or child
//! data may carry it). Its declared total is recomputed from the figures
//! as written, so that a peak fault does not also show as
//! `declared_total_off`. Duplicates come in pairs, both carrying the reason.

use crate::capacity::quality::Reason;
use crate::ident::identifier::{Class, Identifier, PROVINCES, Prefix, Serial};
use crate::ident::resource::{
    Device, DeviceSpec, DeviceTable, Link, MAX_DEVICE_PEAK, Peaks, Precision, Price,
    ResourceDescriptor, SCHEMA, Unit,
};

/// One resource as the checks see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Canonical identifier text (`86.31.1004/IC-00002K-7`).
    pub id: String,
    pub descriptor: ResourceDescriptor,
    /// The resource's `CP.ENDPOINT` URL, if it has one.
    pub endpoint: Option<String>,
    /// `(units_available, units_in_use, utilization)`, as a report carries them.
    pub status: (i64, i64, Option<f64>),
}

/// Clean samples, and faulty ones with the reason injected into each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    pub clean: Vec<Sample>,
    pub faulty: Vec<(Sample, Reason)>,
}

impl Dataset {
    /// Every sample, clean ones first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> {
        self.clean.iter().chain(self.faulty.iter().map(|(s, _)| s))
    }
}

/// The reasons [`dataset`] injects: every descriptor and status reason that
/// one resource (or a pair, for duplicates) can show.
pub const INJECTED: [Reason; 12] = [
    Reason::UnitSlip,
    Reason::SparseAsDense,
    Reason::MixedPrecision,
    Reason::PeakMismatch,
    Reason::DeclaredTotalOff,
    Reason::PueOutOfRange,
    Reason::AvailableOverTotal,
    Reason::NegativeCount,
    Reason::UsageOverTotal,
    Reason::UtilizationOutOfRange,
    Reason::DuplicateSerial,
    Reason::DuplicateEndpoint,
];

/// Faulty samples per injected reason: 1 per 100 clean ones, at least 3.
pub fn faults_per_reason(n_clean: usize) -> usize {
    (n_clean / 100).max(3)
}

/// `n_clean` clean samples and [`faults_per_reason`] faulty ones for each
/// of [`INJECTED`] (duplicates: that many rounded up to whole pairs).
pub fn dataset(n_clean: usize, seed: u64) -> Dataset {
    let mut g = Gen {
        rng: Rng::new(seed),
        table: DeviceTable::builtin(),
        next_id: 1,
        next_device: 1,
    };
    let mut out = Dataset::default();
    out.clean.extend((0..n_clean).filter_map(|_| {
        let class = g.clean_class();
        g.sample(class, None, true)
    }));
    let k = faults_per_reason(n_clean);
    for reason in INJECTED {
        match reason {
            Reason::DuplicateSerial | Reason::DuplicateEndpoint => {
                for _ in 0..k.div_ceil(2) {
                    if let Some((a, b)) = g.duplicate_pair(reason) {
                        out.faulty.push((a, reason));
                        out.faulty.push((b, reason));
                    }
                }
            }
            _ => out
                .faulty
                .extend((0..k).filter_map(|_| g.faulty(reason).map(|s| (s, reason)))),
        }
    }
    out
}

/// xorshift64*: small, seedable, enough for test data.
struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64, so that nearby seeds differ everywhere and
    /// the state is never the fixed point 0.
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

/// A model the device table does not list (Cambricon's published figures),
/// so that unknown models are part of the clean data.
const UNLISTED: &str = "MLU370-X8";
const UNLISTED_PEAKS: Peaks = Peaks {
    fp64: None,
    fp32: Some(24.0),
    tf32: None,
    bf16: Some(96.0),
    fp16: Some(96.0),
    fp8: None,
    int8: Some(256.0),
};

fn set(peaks: &mut Peaks, p: Precision, v: Option<f64>) {
    let slot = match p {
        Precision::Fp64 => &mut peaks.fp64,
        Precision::Fp32 => &mut peaks.fp32,
        Precision::Tf32 => &mut peaks.tf32,
        Precision::Bf16 => &mut peaks.bf16,
        Precision::Fp16 => &mut peaks.fp16,
        Precision::Fp8 => &mut peaks.fp8,
        Precision::Int8 => &mut peaks.int8,
    };
    *slot = v;
}

/// `a` within `tol` (a share) of `b`: the generator keeps its faults clear
/// of the other diagnoses by a wider margin than the checks use.
fn near(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= b.abs() * tol
}

/// Sum over the devices stating `p` of count × peak, if any does.
fn device_sum(devices: &[Device], p: Precision) -> Option<f64> {
    devices
        .iter()
        .filter_map(|d| d.peak_tflops.get(p).map(|v| d.count as f64 * v))
        .reduce(|a, b| a + b)
}

struct Gen<'t> {
    rng: Rng,
    table: &'t DeviceTable,
    /// Serial of the next identifier: unique over the whole set.
    next_id: u64,
    /// Number in the next device serial: unique over the whole set.
    next_device: u64,
}

impl Gen<'_> {
    fn clean_class(&mut self) -> Class {
        match self.rng.below(20) {
            0..=9 => Class::Ic,
            10..=12 => Class::Sc,
            13..=15 => Class::Gc,
            16..=17 => Class::St,
            18 => Class::Nl,
            _ => Class::As,
        }
    }

    /// A mainland province code (GB/T 2260), uniformly.
    fn region(&mut self) -> &'static str {
        let mainland = PROVINCES.iter().take_while(|(code, _)| *code < "70");
        let n = mainland.clone().count() as u64;
        let i = self.rng.below(n) as usize;
        mainland.map(|(code, _)| *code).nth(i).unwrap_or("31")
    }

    /// A new identifier in `region` under one of 20 industry nodes, and its
    /// serial number.
    fn identifier(&mut self, region: &str, class: Class) -> Option<(String, u64)> {
        let node = 1001 + self.rng.below(20);
        let prefix = Prefix::parse(&format!("86.{region}.{node}")).ok()?;
        let serial = Serial::new(self.next_id).ok()?;
        self.next_id += 1;
        Some((
            Identifier::new(prefix, class, serial).to_string(),
            serial.value(),
        ))
    }

    fn device_serial(&mut self, vendor: &str) -> String {
        let code = match vendor {
            "NVIDIA" => "NV",
            "Huawei" => "HW",
            "AMD" => "AMD",
            _ => "CB",
        };
        let n = self.next_device;
        self.next_device += 1;
        format!("{code}{n:010}")
    }

    /// One device entry of `spec` (or of the unlisted model), at its
    /// published peaks: all of them, or some.
    fn device(&mut self, spec: Option<&DeviceSpec>) -> Device {
        let (model, published, vendor) = match spec {
            Some(s) => {
                let name = match self.rng.chance(25) {
                    true => self.rng.pick(&s.aliases).unwrap_or(&s.model),
                    false => &s.model,
                };
                (name.clone(), s.peak_tflops, s.vendor.as_str())
            }
            None => (UNLISTED.to_string(), UNLISTED_PEAKS, "Cambricon"),
        };
        let mut peak_tflops = published;
        if self.rng.chance(40) {
            for (p, _) in published.iter() {
                if self.rng.chance(50) {
                    set(&mut peak_tflops, p, None);
                }
            }
            if peak_tflops.iter().next().is_none() {
                peak_tflops = published;
            }
        }
        let count = 8u64 << self.rng.below(8);
        let serials = match self.rng.below(2) {
            0 => None,
            _ => {
                let n = 1 + self.rng.below(4);
                Some((0..n).map(|_| self.device_serial(vendor)).collect())
            }
        };
        Device {
            model,
            count,
            peak_tflops,
            memory_gib: None,
            serials,
        }
    }

    /// A listed model (90%) or the unlisted one.
    fn any_device(&mut self) -> Device {
        let table = self.table;
        let spec = match self.rng.chance(90) {
            true => self.rng.pick(&table.device),
            false => None,
        };
        self.device(spec)
    }

    /// Declares totals (70% of the time) for some of the devices'
    /// precisions: exact, or with `jitter` within 2% half of the time.
    fn declare(&mut self, d: &mut ResourceDescriptor, jitter: bool) {
        d.declared_peak_tflops = None;
        let Some(devices) = d.devices.as_deref() else {
            return;
        };
        if !self.rng.chance(70) {
            return;
        }
        let sums: Vec<(Precision, f64)> = Precision::ALL
            .into_iter()
            .filter_map(|p| device_sum(devices, p).map(|s| (p, s)))
            .collect();
        let mut declared = Peaks::default();
        for &(p, sum) in &sums {
            if self.rng.chance(50) {
                let v = match jitter && self.rng.chance(50) {
                    // As providers write them: rounded to 0.1.
                    true => (sum * self.rng.between(0.98, 1.02) * 10.0).round() / 10.0,
                    false => sum,
                };
                set(&mut declared, p, Some(v));
            }
        }
        if declared.iter().next().is_none()
            && let Some(&(p, sum)) = self.rng.pick(&sums)
        {
            set(&mut declared, p, Some(sum));
        }
        if declared.iter().next().is_some() {
            d.declared_peak_tflops = Some(declared);
        }
    }

    /// Consistent live figures for `total` units.
    fn status(&mut self, total: u64) -> (i64, i64, Option<f64>) {
        let avail = self.rng.below(total + 1);
        let used = self.rng.below(total - avail + 1);
        let utilization = match self.rng.chance(80) {
            true => Some(used as f64 / total.max(1) as f64 * self.rng.between(0.7, 1.0)),
            false => None,
        };
        let signed = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        (signed(avail), signed(used), utilization)
    }

    /// A clean sample of `class`; `devices` replaces the generated ones
    /// (for `IC` and `SC`); `jitter` as in [`Gen::declare`].
    fn sample(
        &mut self,
        class: Class,
        devices: Option<Vec<Device>>,
        jitter: bool,
    ) -> Option<Sample> {
        let region = self.region();
        let (id, n) = self.identifier(region, class)?;
        let nodes = 1 + self.rng.below(64);
        let cores_per_node = 32u64 << self.rng.below(4);
        let pue = 1.08 + (self.rng.below(50) as f64) / 100.0;
        let mut d = ResourceDescriptor {
            schema: SCHEMA.into(),
            class: class.code().into(),
            region: Some(region.into()),
            unit: Unit::Node,
            units_total: nodes,
            devices: None,
            cpu_cores: Some(nodes * cores_per_node),
            memory_gib: Some((nodes * (256u64 << self.rng.below(4))) as f64),
            storage_tib: Some((1 + self.rng.below(500)) as f64),
            network_gbps: Some(f64::from(100u32 << self.rng.below(3))),
            pue: Some(pue),
            price_per_unit_hour: Some(Price {
                amount: (1 + self.rng.below(20_000)) as f64 / 100.0,
                currency: "CNY".into(),
            }),
            declared_peak_tflops: None,
            link: None,
        };
        match class {
            Class::Ic => {
                let list = self.devices_or(devices);
                let cards: u64 = list.iter().map(|x| x.count).sum();
                (d.unit, d.units_total) = match self.rng.chance(70) {
                    true => (Unit::Card, cards),
                    false => (Unit::Node, (cards / 8).max(1)),
                };
                d.cpu_cores = Some(d.units_total * 16);
                d.devices = Some(list);
                self.declare(&mut d, jitter);
            }
            Class::Sc => {
                if devices.is_some() || self.rng.chance(50) {
                    d.devices = Some(self.devices_or(devices));
                    self.declare(&mut d, jitter);
                }
                if self.rng.chance(50) {
                    d.unit = Unit::Core;
                    d.units_total = d.cpu_cores.unwrap_or(1);
                }
            }
            Class::Gc => {
                (d.unit, d.units_total) = match self.rng.below(3) {
                    0 => (Unit::Core, d.cpu_cores.unwrap_or(1)),
                    1 => (Unit::Instance, nodes * 8),
                    _ => (Unit::Node, nodes),
                };
            }
            Class::St => {
                let tib = 100 * (1 + self.rng.below(200));
                d.unit = Unit::Tib;
                d.units_total = tib;
                d.storage_tib = Some(tib as f64);
                d.cpu_cores = None;
                d.memory_gib = None;
            }
            Class::Nl => {
                let other = self.region();
                let gbps = 10u64 << self.rng.below(5);
                let ms = if other == region { 0.5 } else { 2.0 } + self.rng.below(30) as f64;
                d = ResourceDescriptor {
                    region: None,
                    unit: Unit::Gbps,
                    units_total: gbps,
                    cpu_cores: None,
                    memory_gib: None,
                    storage_tib: None,
                    network_gbps: None,
                    pue: None,
                    link: Some(Link {
                        regions: [region.into(), other.into()],
                        bandwidth_gbps: gbps as f64,
                        latency_ms: ms,
                    }),
                    ..d
                };
            }
            _ => {
                d.unit = Unit::Instance;
                d.units_total = 1 + self.rng.below(256);
            }
        }
        let endpoint = match self.rng.chance(90) {
            true => Some(format!("https://r{n:07}.dc{region}.example.cn/api")),
            false => None,
        };
        let status = self.status(d.units_total);
        Some(Sample {
            id,
            descriptor: d,
            endpoint,
            status,
        })
    }

    /// `given`, or one to three generated device entries.
    fn devices_or(&mut self, given: Option<Vec<Device>>) -> Vec<Device> {
        match given {
            Some(list) => list,
            None => (0..1 + self.rng.below(3))
                .map(|_| self.any_device())
                .collect(),
        }
    }

    /// A clean sample of any class but `NL` (which has no site and no PUE).
    fn site_sample(&mut self) -> Option<Sample> {
        let class = match self.clean_class() {
            Class::Nl => Class::Ic,
            c => c,
        };
        self.sample(class, None, true)
    }

    /// One faulty sample for a non-duplicate `reason`.
    fn faulty(&mut self, reason: Reason) -> Option<Sample> {
        match reason {
            Reason::UnitSlip
            | Reason::SparseAsDense
            | Reason::MixedPrecision
            | Reason::PeakMismatch => self.peak_fault(reason),
            Reason::DeclaredTotalOff => self.declared_fault(),
            Reason::PueOutOfRange => {
                let mut s = self.site_sample()?;
                // A percentage (125 for 1.25), or figures no site has.
                let pue = *self.rng.pick(&[0.8, 0.95, 3.4, 125.0, 140.0])?;
                s.descriptor.pue = Some(pue);
                Some(s)
            }
            _ => self.status_fault(reason),
        }
    }

    /// A sample whose one device of a listed model has one peak wrong in
    /// the way `reason` names; its declared total matches the figures as
    /// written.
    fn peak_fault(&mut self, reason: Reason) -> Option<Sample> {
        let table = self.table;
        // Only unit slips and sparse figures are judged on unsure entries.
        let judged = matches!(reason, Reason::UnitSlip | Reason::SparseAsDense);
        let specs: Vec<&DeviceSpec> = table
            .device
            .iter()
            .filter(|s| judged || !s.unsure)
            .collect();
        for _ in 0..100 {
            let spec = *self.rng.pick(&specs)?;
            let figures: Vec<(Precision, f64)> = spec.peak_tflops.iter().collect();
            let &(p, t) = self.rng.pick(&figures)?;
            let v = match reason {
                Reason::UnitSlip if t * 1000.0 <= MAX_DEVICE_PEAK && self.rng.chance(50) => {
                    t * 1000.0
                }
                Reason::UnitSlip => t / 1000.0,
                Reason::SparseAsDense => t * 2.0,
                Reason::MixedPrecision => {
                    // Another precision's figure that no earlier diagnosis
                    // (×1000, ×2, within 10%) would claim.
                    let others: Vec<f64> = figures
                        .iter()
                        .filter(|&&(q, tq)| {
                            q != p
                                && !near(tq, t, 0.12)
                                && !near(tq, 2.0 * t, 0.015)
                                && !near(tq, 1000.0 * t, 0.015)
                                && !near(tq, t / 1000.0, 0.015)
                        })
                        .map(|&(_, tq)| tq)
                        .collect();
                    match self.rng.pick(&others) {
                        Some(&tq) => tq,
                        None => continue,
                    }
                }
                _ => {
                    let f = match self.rng.chance(50) {
                        true => self.rng.between(0.3, 0.85),
                        false => self.rng.between(1.15, 1.85),
                    };
                    let v = (t * f * 10.0).round() / 10.0;
                    if v <= 0.0
                        || near(v, t, 0.12)
                        || figures.iter().any(|&(_, x)| near(v, x, 0.015))
                    {
                        continue;
                    }
                    v
                }
            };
            let mut dev = self.device(Some(spec));
            set(&mut dev.peak_tflops, p, Some(v));
            return self.sample(Class::Ic, Some(vec![dev]), false);
        }
        None
    }

    /// A sample declaring a total more than 6% off the device sum, or at a
    /// precision no device states.
    fn declared_fault(&mut self) -> Option<Sample> {
        let mut s = self.sample(Class::Ic, None, true)?;
        let d = &mut s.descriptor;
        let devices = d.devices.as_deref()?;
        let (stated, unstated): (Vec<Precision>, Vec<Precision>) = Precision::ALL
            .into_iter()
            .partition(|&p| device_sum(devices, p).is_some());
        let mut declared = Peaks::default();
        for &p in &stated {
            set(&mut declared, p, device_sum(devices, p));
        }
        let &p = self.rng.pick(&stated)?;
        let sum = device_sum(devices, p)?;
        match self.rng.pick(&unstated) {
            // The fp16 total written under a precision nobody states.
            Some(&q) if self.rng.chance(40) => set(&mut declared, q, Some(sum)),
            _ => {
                let off = self.rng.between(0.06, 0.5);
                let f = if self.rng.chance(50) {
                    1.0 + off
                } else {
                    1.0 - off
                };
                set(&mut declared, p, Some(sum * f));
            }
        }
        d.declared_peak_tflops = Some(declared);
        Some(s)
    }

    /// A sample whose live figures break one status rule.
    fn status_fault(&mut self, reason: Reason) -> Option<Sample> {
        let class = self.clean_class();
        let mut s = self.sample(class, None, true)?;
        let total = i64::try_from(s.descriptor.units_total).ok()?;
        let extra = 1 + i64::try_from(self.rng.below(10)).ok()?;
        let (avail, used, util) = s.status;
        s.status = match reason {
            Reason::AvailableOverTotal => (total + extra, 0, util.map(|_| 0.0)),
            Reason::NegativeCount if self.rng.chance(50) => (-extra, used, util),
            Reason::NegativeCount => (avail, -extra, util),
            Reason::UsageOverTotal => (avail, total - avail + extra, None),
            _ => {
                // A percentage (5 to 95) where a share belongs, or just off.
                let u = match self.rng.below(3) {
                    0 => self.rng.between(5.0, 95.0),
                    1 => -self.rng.between(0.01, 0.5),
                    _ => self.rng.between(1.01, 1.5),
                };
                (avail, used, Some(u))
            }
        };
        Some(s)
    }

    /// Two samples sharing a device serial or an endpoint, the second
    /// written with other case where comparison ignores it.
    fn duplicate_pair(&mut self, reason: Reason) -> Option<(Sample, Sample)> {
        if reason == Reason::DuplicateSerial {
            let mut a = self.sample(Class::Ic, None, true)?;
            let mut b = self.sample(Class::Ic, None, true)?;
            let first = a.descriptor.devices.as_mut()?.first_mut()?;
            let vendor = self
                .table
                .find(&first.model)
                .map_or("", |s| s.vendor.as_str());
            let serial = match first.serials.as_ref().and_then(|v| v.first()) {
                Some(serial) => serial.clone(),
                None => {
                    let serial = self.device_serial(vendor);
                    first.serials = Some(vec![serial.clone()]);
                    serial
                }
            };
            let copy = match self.rng.chance(50) {
                true => serial.to_ascii_lowercase(),
                false => serial,
            };
            let other = b.descriptor.devices.as_mut()?.first_mut()?;
            other.serials.get_or_insert_with(Vec::new).push(copy);
            Some((a, b))
        } else {
            let mut a = self.site_sample()?;
            let mut b = self.site_sample()?;
            let fallback = format!("https://{}.example.cn/api", a.id.replace(['.', '/'], "-"));
            let url = a.endpoint.get_or_insert(fallback).clone();
            b.endpoint = Some(match self.rng.chance(50) {
                true => format!("{}/", url.replacen("https://r", "https://R", 1)),
                false => url,
            });
            Some((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use super::*;
    use crate::capacity::quality::{
        Duplicates, Finding, descriptor_findings, serials, status_findings,
    };

    fn index(set: &Dataset) -> Duplicates {
        let mut dup = Duplicates::new();
        for s in set.samples() {
            dup.insert(&s.id, serials(&s.descriptor), s.endpoint.clone());
        }
        dup
    }

    fn findings(s: &Sample, dup: &Duplicates) -> Vec<Finding> {
        let (avail, used, util) = s.status;
        let mut out = descriptor_findings(&s.descriptor, DeviceTable::builtin());
        out.extend(status_findings(s.descriptor.units_total, avail, used, util));
        out.extend(dup.findings(&s.id));
        out
    }

    #[test]
    fn every_check_catches_exactly_its_injected_fault_and_nothing_on_clean_data() {
        let set = dataset(2000, 7);
        assert_eq!(set.clean.len(), 2000);
        let dup = index(&set);
        for s in &set.clean {
            assert_eq!(findings(s, &dup), vec![], "{s:?}");
        }
        for reason in INJECTED {
            let n = set.faulty.iter().filter(|(_, r)| *r == reason).count();
            assert!(n >= faults_per_reason(2000), "{reason}: {n}");
        }
        for (s, reason) in &set.faulty {
            let found: BTreeSet<Reason> = findings(s, &dup).iter().map(|f| f.reason).collect();
            assert_eq!(found, BTreeSet::from([*reason]), "{s:?}");
        }
    }

    #[test]
    fn exact_diagnosis_holds_for_other_seeds() {
        for seed in 0..30 {
            let set = dataset(300, seed);
            let dup = index(&set);
            for s in &set.clean {
                assert_eq!(findings(s, &dup), vec![], "seed {seed}: {s:?}");
            }
            for (s, reason) in &set.faulty {
                let found: BTreeSet<Reason> = findings(s, &dup).iter().map(|f| f.reason).collect();
                assert_eq!(found, BTreeSet::from([*reason]), "seed {seed}: {s:?}");
            }
        }
    }

    #[test]
    fn descriptors_obey_the_standard_except_the_pue_fault() {
        let set = dataset(2000, 7);
        for s in &set.clean {
            assert_eq!(s.descriptor.validate(), Ok(()), "{s:?}");
            let json = serde_json::to_string(&s.descriptor).unwrap();
            assert!(json.len() <= 4096, "{}", json.len());
            let (avail, used, util) = s.status;
            assert!(avail >= 0 && used >= 0 && (avail + used) as u64 <= s.descriptor.units_total);
            assert!(util.is_none_or(|u| (0.0..=1.0).contains(&u)));
        }
        for (s, reason) in &set.faulty {
            match reason {
                Reason::PueOutOfRange => {
                    assert_eq!(s.descriptor.validate().unwrap_err().pointer, "/pue")
                }
                _ => assert_eq!(s.descriptor.validate(), Ok(()), "{reason}: {s:?}"),
            }
        }
    }

    #[test]
    fn clean_data_is_spread_and_varied() {
        let set = dataset(2000, 7);
        let ids: HashSet<&str> = set.samples().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), set.clean.len() + set.faulty.len());
        for s in set.samples() {
            assert_eq!(Identifier::parse(&s.id).unwrap().to_string(), s.id);
        }
        let regions: HashSet<&str> = set
            .clean
            .iter()
            .filter_map(|s| s.descriptor.region.as_deref())
            .collect();
        assert_eq!(regions.len(), 31);
        let table = DeviceTable::builtin();
        let mut models = HashSet::new();
        let (mut unlisted, mut declared, mut jittered) = (0, 0, 0);
        for s in &set.clean {
            for d in s.descriptor.devices.iter().flatten() {
                match table.find(&d.model) {
                    Some(spec) => _ = models.insert(spec.model.as_str()),
                    None => unlisted += 1,
                }
            }
            if let Some(p) = &s.descriptor.declared_peak_tflops {
                declared += 1;
                let devices = s.descriptor.devices.as_deref().unwrap();
                if p.iter().any(|(q, v)| device_sum(devices, q) != Some(v)) {
                    jittered += 1;
                }
            }
        }
        assert_eq!(models.len(), table.device.len());
        assert!(unlisted > 20 && declared > 200 && jittered > 50);
        let classes: HashSet<&str> = set
            .clean
            .iter()
            .map(|s| s.descriptor.class.as_str())
            .collect();
        assert_eq!(classes.len(), 6);
    }

    #[test]
    fn the_same_seed_gives_the_same_set() {
        assert_eq!(dataset(100, 7), dataset(100, 7));
        assert_ne!(dataset(100, 7), dataset(100, 8));
        assert_eq!(dataset(0, 1).faulty.len(), 3 * (INJECTED.len() - 2) + 2 * 4);
    }
}
