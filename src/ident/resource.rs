//! The capacity standard: what a `CP.RESOURCE` value holds
//! (`schema/resource.md`, version `cpid.resource/1`).
//!
//! One descriptor describes one resource: its devices with their dense
//! per-device peaks by precision, CPU cores, memory, storage, network,
//! region (GB/T 2260), site PUE, price per unit-hour, the unit it is booked
//! in and how many it has; an `NL` (dedicated line) resource names its two
//! regions, bandwidth and latency instead. [`ResourceDescriptor::parse`]
//! reads the JSON strictly (unknown fields are refused) and checks every
//! rule of the standard; a refusal is a [`ResourceError`] carrying the JSON
//! pointer (RFC 6901) of the bad field, so a provider learns exactly what
//! to fix.
//!
//! Peaks are dense and per precision: this module never adds different
//! precisions together, and nothing here judges plausibility against the
//! device table (`schema/devices.toml`); that is data quality, not
//! validity.
//!
//! ```
//! use cpid::ident::resource::ResourceDescriptor;
//! let d = ResourceDescriptor::parse(r#"{
//!     "schema": "cpid.resource/1", "class": "IC", "region": "31",
//!     "unit": "card", "units_total": 8,
//!     "devices": [{"model": "A800", "count": 8, "peak_tflops": {"fp16": 312}}]
//! }"#).unwrap();
//! assert_eq!(d.devices.unwrap()[0].peak_tflops.fp16, Some(312.0));
//! let e = ResourceDescriptor::parse(r#"{
//!     "schema": "cpid.resource/1", "class": "IC", "region": "31",
//!     "unit": "card", "units_total": 8,
//!     "devices": [{"model": "A800", "count": 8, "peak_tflops": {"fp16": -1}}]
//! }"#).unwrap_err();
//! assert_eq!(e.pointer, "/devices/0/peak_tflops/fp16");
//! ```

use serde::{Deserialize, Serialize};

use crate::ident::identifier::{Class, province};

/// The version this module implements; a descriptor names it in `schema`.
pub const SCHEMA: &str = "cpid.resource/1";

/// Most devices entries in one descriptor.
pub const MAX_DEVICES: usize = 32;
/// Most devices of one model in one resource.
pub const MAX_DEVICE_COUNT: u64 = 1_000_000;
/// Highest per-device peak at any precision, in TFLOPS (TOPS for int8).
pub const MAX_DEVICE_PEAK: f64 = 100_000.0;
/// Highest declared total peak at any precision, in TFLOPS (TOPS for int8).
pub const MAX_TOTAL_PEAK: f64 = 1e12;
/// Most units a resource may have.
pub const MAX_UNITS: u64 = 1_000_000_000;
/// Most CPU cores.
pub const MAX_CPU_CORES: u64 = 100_000_000;
/// Ceiling of the size figures (GiB, TiB, Gbit/s, currency units).
pub const MAX_FIGURE: f64 = 1e9;
/// Highest latency of a line, in milliseconds.
pub const MAX_LATENCY_MS: f64 = 10_000.0;

/// A refused descriptor: where (a JSON pointer into the descriptor, `""`
/// for the whole document) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} {reason}", if .pointer.is_empty() { "(document)" } else { .pointer.as_str() })]
pub struct ResourceError {
    pub kind: ResourceErrorKind,
    /// RFC 6901 pointer of the bad field, e.g. `/devices/0/peak_tflops/fp16`.
    pub pointer: String,
    pub reason: String,
}

/// What kind of rule a descriptor broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourceErrorKind {
    /// Not JSON at all.
    Syntax,
    /// A field of the wrong type, an unknown field, a missing field.
    Shape,
    /// A field out of its range or breaking a rule of the standard.
    Rule,
}

fn rule(pointer: impl Into<String>, reason: impl Into<String>) -> ResourceError {
    ResourceError {
        kind: ResourceErrorKind::Rule,
        pointer: pointer.into(),
        reason: reason.into(),
    }
}

/// The unit a resource is booked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Card,
    Node,
    Core,
    Instance,
    Tib,
    Line,
    Gbps,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Card => "card",
            Unit::Node => "node",
            Unit::Core => "core",
            Unit::Instance => "instance",
            Unit::Tib => "tib",
            Unit::Line => "line",
            Unit::Gbps => "gbps",
        }
    }
}

/// A precision at which a peak is stated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    Fp64,
    Fp32,
    Tf32,
    Bf16,
    Fp16,
    Fp8,
    Int8,
}

impl Precision {
    pub const ALL: [Precision; 7] = [
        Precision::Fp64,
        Precision::Fp32,
        Precision::Tf32,
        Precision::Bf16,
        Precision::Fp16,
        Precision::Fp8,
        Precision::Int8,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Fp64 => "fp64",
            Precision::Fp32 => "fp32",
            Precision::Tf32 => "tf32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
            Precision::Fp8 => "fp8",
            Precision::Int8 => "int8",
        }
    }
}

/// Dense peaks by precision: TFLOPS (10^12 floating-point operations per
/// second) for the floating-point precisions, TOPS for int8. Never summed
/// across precisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peaks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp64: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp32: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tf32: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp16: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fp8: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8: Option<f64>,
}

impl Peaks {
    /// The peak at one precision, if stated.
    pub fn get(&self, p: Precision) -> Option<f64> {
        match p {
            Precision::Fp64 => self.fp64,
            Precision::Fp32 => self.fp32,
            Precision::Tf32 => self.tf32,
            Precision::Bf16 => self.bf16,
            Precision::Fp16 => self.fp16,
            Precision::Fp8 => self.fp8,
            Precision::Int8 => self.int8,
        }
    }

    /// The stated precisions with their peaks, in [`Precision::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Precision, f64)> + '_ {
        Precision::ALL
            .into_iter()
            .filter_map(|p| self.get(p).map(|v| (p, v)))
    }

    fn check(&self, at: &str, max: f64) -> Result<(), ResourceError> {
        if self.iter().next().is_none() {
            return Err(rule(at, "states no precision: at least one peak is needed"));
        }
        for (p, v) in self.iter() {
            if !(v > 0.0 && v <= max) {
                return Err(rule(
                    format!("{at}/{}", p.as_str()),
                    format!("must be above 0 and at most {max}"),
                ));
            }
        }
        Ok(())
    }
}

/// One kind of device in a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Vendor model name, e.g. `A800`, `H100 SXM`, `Ascend 910B`.
    pub model: String,
    pub count: u64,
    /// Dense peak of ONE device, per precision.
    pub peak_tflops: Peaks,
    /// Memory of one device, GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<f64>,
    /// Serial numbers of the devices (at most `count`, unique).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serials: Option<Vec<String>>,
}

/// A price per unit-hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub amount: f64,
    /// ISO 4217 alphabetic code, e.g. `CNY`.
    pub currency: String,
}

/// What a dedicated line (`NL`) connects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The two ends' GB/T 2260 province codes (the same twice for a line
    /// inside one province).
    pub regions: [String; 2],
    pub bandwidth_gbps: f64,
    /// One-way latency, milliseconds.
    pub latency_ms: f64,
}

/// A `CP.RESOURCE` value, version [`SCHEMA`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDescriptor {
    pub schema: String,
    /// The class of the identifier it describes (`GC`, `IC`, `SC`, `ST`,
    /// `NL`, `AS`).
    pub class: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub unit: Unit,
    pub units_total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<Device>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_cores: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_tib: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_gbps: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pue: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_unit_hour: Option<Price>,
    /// Declared total dense peak of the whole resource, per precision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_peak_tflops: Option<Peaks>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<Link>,
}

/// Turns a serde path into an RFC 6901 pointer.
pub(crate) fn pointer_of(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        match seg {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => out.push_str(variant),
            Segment::Unknown => out.push('-'),
        }
    }
    out
}

/// serde reads a struct from a JSON array too (by position); the standard
/// has named fields only, so every place that holds a struct must hold an
/// object.
fn objects_where_objects_belong(tree: &serde_json::Value) -> Result<(), ResourceError> {
    let object = |at: &str, v: Option<&serde_json::Value>| match v {
        Some(v) if !v.is_object() => Err(ResourceError {
            kind: ResourceErrorKind::Shape,
            pointer: at.to_string(),
            reason: "must be a JSON object".into(),
        }),
        _ => Ok(()),
    };
    object("", Some(tree))?;
    for at in ["/price_per_unit_hour", "/declared_peak_tflops", "/link"] {
        object(at, tree.pointer(at))?;
    }
    if let Some(serde_json::Value::Array(devices)) = tree.get("devices") {
        for (i, d) in devices.iter().enumerate() {
            object(&format!("/devices/{i}"), Some(d))?;
            object(&format!("/devices/{i}/peak_tflops"), d.get("peak_tflops"))?;
        }
    }
    Ok(())
}

/// What [`objects_where_objects_belong`] checks, read from the text
/// without building a tree: the descriptor, its `price_per_unit_hour`,
/// `declared_peak_tflops` and `link`, and each element of a `devices` array
/// and its `peak_tflops`, are JSON objects where present. Passing implies
/// that check passes; failing (also on a key with escapes, which cannot be
/// borrowed) only sends the caller to the full read.
struct ObjectsInPlace;

/// Any JSON object, its contents skipped; anything else (null too) fails.
struct AnObject;

/// A `devices` value: each element of an array must be an object whose
/// `peak_tflops` is an object; null passes.
struct DeviceObjects;

/// One element of `devices`.
struct DeviceObject;

/// A visitor that accepts a JSON object only and checks the value of each
/// key as the function says.
struct ObjectVisitor(fn(&str) -> Place);

/// What a key's value must be, for [`ObjectVisitor`].
enum Place {
    Any,
    Object,
    Devices,
}

impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<&'de str>()? {
            match (self.0)(key) {
                Place::Any => map.next_value::<serde::de::IgnoredAny>().map(drop)?,
                Place::Object => map.next_value::<AnObject>().map(drop)?,
                Place::Devices => map.next_value::<DeviceObjects>().map(drop)?,
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for ObjectsInPlace {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor(|key| match key {
            "price_per_unit_hour" | "declared_peak_tflops" | "link" => Place::Object,
            "devices" => Place::Devices,
            _ => Place::Any,
        }))?;
        Ok(ObjectsInPlace)
    }
}

impl<'de> Deserialize<'de> for AnObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor(|_| Place::Any))?;
        Ok(AnObject)
    }
}

impl<'de> Deserialize<'de> for DeviceObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjectVisitor(|key| match key {
            "peak_tflops" => Place::Object,
            _ => Place::Any,
        }))?;
        Ok(DeviceObject)
    }
}

impl<'de> Deserialize<'de> for DeviceObjects {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Elements;
        impl<'de> serde::de::Visitor<'de> for Elements {
            type Value = ();

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of objects, or null")
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
                Ok(())
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
                while seq.next_element::<DeviceObject>()?.is_some() {}
                Ok(())
            }
        }
        d.deserialize_any(Elements)?;
        Ok(DeviceObjects)
    }
}

/// The field a serde message names (unknown, missing or duplicate field).
fn named_field(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))
        .or_else(|| message.strip_prefix("duplicate field `"))?;
    rest.split_once('`').map(|(name, _)| name)
}

fn check_region(at: &str, code: &str) -> Result<(), ResourceError> {
    if province(code).is_none() {
        return Err(rule(
            at,
            format!("{code:?} is not a GB/T 2260 province code (e.g. \"31\" for Shanghai)"),
        ));
    }
    Ok(())
}

fn check_figure(at: &str, v: f64, min_inclusive: bool, max: f64) -> Result<(), ResourceError> {
    let low_ok = if min_inclusive { v >= 0.0 } else { v > 0.0 };
    if !(low_ok && v <= max) {
        let low = if min_inclusive {
            "at least 0"
        } else {
            "above 0"
        };
        return Err(rule(at, format!("must be {low} and at most {max}")));
    }
    Ok(())
}

fn check_count(at: &str, v: u64, max: u64) -> Result<(), ResourceError> {
    if v == 0 || v > max {
        return Err(rule(at, format!("must be 1 to {max}")));
    }
    Ok(())
}

/// Device model: 1–64 of ASCII letters, digits, space and `. _ + / -`,
/// starting and ending with a letter or digit.
fn is_model(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b" ._+/-".contains(c))
}

/// Serial: 1–64 of ASCII letters, digits and `. _ : / -`, starting with a
/// letter or digit.
fn is_serial(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._:/-".contains(c))
}

/// What each class needs, allows and books in (`schema/resource.md` §4).
struct ClassRules {
    units: &'static [Unit],
    needs: &'static [&'static str],
}

fn class_rules(class: Class) -> Option<ClassRules> {
    use Unit::*;
    let (units, needs): (&'static [Unit], &'static [&'static str]) = match class {
        Class::Ic => (&[Card, Node], &["region", "devices"]),
        Class::Sc => (&[Node, Core, Card], &["region", "cpu_cores"]),
        Class::Gc => (
            &[Core, Node, Instance],
            &["region", "cpu_cores", "memory_gib"],
        ),
        Class::St => (&[Tib], &["region", "storage_tib"]),
        Class::As => (&[Instance, Node, Core, Card], &["region"]),
        Class::Nl => (&[Line, Gbps], &["link"]),
        _ => return None,
    };
    Some(ClassRules { units, needs })
}

/// Fields an `NL` descriptor must not have: a line has no devices and no site.
const NOT_FOR_LINES: [&str; 8] = [
    "region",
    "devices",
    "cpu_cores",
    "memory_gib",
    "storage_tib",
    "network_gbps",
    "pue",
    "declared_peak_tflops",
];

impl ResourceDescriptor {
    /// Reads and validates a descriptor (JSON text).
    pub fn parse(data: &str) -> Result<ResourceDescriptor, ResourceError> {
        let d = ResourceDescriptor::read(data)?;
        d.validate()?;
        Ok(d)
    }

    /// Reads a descriptor's shape (JSON syntax, field names and types)
    /// without the rules of [`ResourceDescriptor::validate`].
    fn read(data: &str) -> Result<ResourceDescriptor, ResourceError> {
        // Every record's descriptor is read again at start-up (by capacity
        // and by selection), so the common case skips the tree and the
        // path: serde reads the descriptor straight from the text and a
        // second pass that allocates nothing checks what the tree would
        // ([`ObjectsInPlace`]). Anything that fails either takes the full
        // read below, which accepts and refuses exactly as before.
        if let Ok(d) = serde_json::from_str::<ResourceDescriptor>(data)
            && serde_json::from_str::<ObjectsInPlace>(data).is_ok()
        {
            return Ok(d);
        }
        let tree: serde_json::Value = serde_json::from_str(data).map_err(|e| ResourceError {
            kind: ResourceErrorKind::Syntax,
            pointer: String::new(),
            reason: e.to_string(),
        })?;
        objects_where_objects_belong(&tree)?;
        let mut de = serde_json::Deserializer::from_str(data);
        let parsed: Result<ResourceDescriptor, _> = serde_path_to_error::deserialize(&mut de);
        let d = match parsed {
            Ok(d) => d,
            Err(e) => {
                let mut pointer = pointer_of(e.path());
                let inner = e.inner();
                let kind = match inner.classify() {
                    serde_json::error::Category::Data => ResourceErrorKind::Shape,
                    _ => ResourceErrorKind::Syntax,
                };
                let message = inner.to_string();
                if let Some(name) = named_field(&message) {
                    let tail = format!("/{name}");
                    if !pointer.ends_with(&tail) {
                        pointer.push_str(&tail);
                    }
                }
                if kind == ResourceErrorKind::Syntax {
                    pointer.clear();
                }
                return Err(ResourceError {
                    kind,
                    pointer,
                    reason: message,
                });
            }
        };
        de.end().map_err(|e| ResourceError {
            kind: ResourceErrorKind::Syntax,
            pointer: String::new(),
            reason: e.to_string(),
        })?;
        Ok(d)
    }

    /// Reads and validates a descriptor for an identifier of `class`: the
    /// descriptor's own `class` must be that one.
    pub fn parse_for(data: &str, class: Class) -> Result<ResourceDescriptor, ResourceError> {
        let d = ResourceDescriptor::read(data)?;
        // The class first: the other rules depend on it.
        if d.class != class.code() {
            return Err(rule(
                "/class",
                format!(
                    "{:?} describes another class than the identifier's {}",
                    d.class,
                    class.code()
                ),
            ));
        }
        d.validate()?;
        Ok(d)
    }

    /// The descriptor's class.
    pub fn class(&self) -> Option<Class> {
        Class::parse(&self.class)
            .ok()
            .filter(|c| class_rules(*c).is_some())
    }

    fn has(&self, field: &str) -> bool {
        match field {
            "region" => self.region.is_some(),
            "devices" => self.devices.is_some(),
            "cpu_cores" => self.cpu_cores.is_some(),
            "memory_gib" => self.memory_gib.is_some(),
            "storage_tib" => self.storage_tib.is_some(),
            "network_gbps" => self.network_gbps.is_some(),
            "pue" => self.pue.is_some(),
            "declared_peak_tflops" => self.declared_peak_tflops.is_some(),
            "link" => self.link.is_some(),
            _ => false,
        }
    }

    /// Checks every rule of the standard, in document order; the first
    /// broken rule is reported.
    pub fn validate(&self) -> Result<(), ResourceError> {
        if self.schema != SCHEMA {
            return Err(rule(
                "/schema",
                format!(
                    "{:?} is not a version this node reads ({SCHEMA})",
                    self.schema
                ),
            ));
        }
        let Some(class) = self.class() else {
            return Err(rule(
                "/class",
                format!("{:?} is not one of GC, IC, SC, ST, NL, AS", self.class),
            ));
        };
        let Some(rules) = class_rules(class) else {
            return Err(rule(
                "/class",
                format!("{} is not a resource class", class.code()),
            ));
        };
        for need in rules.needs {
            if !self.has(need) {
                return Err(rule(
                    format!("/{need}"),
                    format!("class {} requires {need}", class.code()),
                ));
            }
        }
        if class == Class::Nl {
            if let Some(field) = NOT_FOR_LINES.iter().find(|f| self.has(f)) {
                return Err(rule(
                    format!("/{field}"),
                    "a dedicated line (NL) has no devices or site: its regions, bandwidth \
                     and latency are in link",
                ));
            }
        } else if self.link.is_some() {
            return Err(rule("/link", "only a dedicated line (NL) has link"));
        }
        if let Some(region) = &self.region {
            check_region("/region", region)?;
        }
        if !rules.units.contains(&self.unit) {
            let allowed: Vec<&str> = rules.units.iter().map(|u| u.as_str()).collect();
            return Err(rule(
                "/unit",
                format!(
                    "class {} is booked in {}, not {}",
                    class.code(),
                    allowed.join(", "),
                    self.unit.as_str()
                ),
            ));
        }
        check_count("/units_total", self.units_total, MAX_UNITS)?;
        if let Some(devices) = &self.devices {
            if devices.is_empty() || devices.len() > MAX_DEVICES {
                return Err(rule(
                    "/devices",
                    format!("must list 1 to {MAX_DEVICES} kinds of device"),
                ));
            }
            for (i, d) in devices.iter().enumerate() {
                d.check(&format!("/devices/{i}"))?;
            }
        }
        if let Some(n) = self.cpu_cores {
            check_count("/cpu_cores", n, MAX_CPU_CORES)?;
        }
        if let Some(v) = self.memory_gib {
            check_figure("/memory_gib", v, false, MAX_FIGURE)?;
        }
        if let Some(v) = self.storage_tib {
            check_figure("/storage_tib", v, false, MAX_FIGURE)?;
        }
        if let Some(v) = self.network_gbps {
            check_figure("/network_gbps", v, false, MAX_FIGURE)?;
        }
        if let Some(v) = self.pue
            && !(1.0..=3.0).contains(&v)
        {
            return Err(rule("/pue", "a site's PUE is at least 1.0 and at most 3.0"));
        }
        if let Some(p) = &self.price_per_unit_hour {
            check_figure("/price_per_unit_hour/amount", p.amount, true, MAX_FIGURE)?;
            if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(rule(
                    "/price_per_unit_hour/currency",
                    format!("{:?} is not an ISO 4217 alphabetic code", p.currency),
                ));
            }
        }
        if let Some(peaks) = &self.declared_peak_tflops {
            if self.devices.is_none() {
                return Err(rule(
                    "/declared_peak_tflops",
                    "a declared total needs the devices it adds up",
                ));
            }
            peaks.check("/declared_peak_tflops", MAX_TOTAL_PEAK)?;
        }
        if let Some(link) = &self.link {
            for (i, r) in link.regions.iter().enumerate() {
                check_region(&format!("/link/regions/{i}"), r)?;
            }
            check_figure(
                "/link/bandwidth_gbps",
                link.bandwidth_gbps,
                false,
                MAX_FIGURE,
            )?;
            check_figure("/link/latency_ms", link.latency_ms, false, MAX_LATENCY_MS)?;
        }
        Ok(())
    }
}

impl Device {
    fn check(&self, at: &str) -> Result<(), ResourceError> {
        if !is_model(&self.model) {
            return Err(rule(
                format!("{at}/model"),
                "a model is 1 to 64 of letters, digits, space and . _ + / -, starting and \
                 ending with a letter or digit",
            ));
        }
        check_count(&format!("{at}/count"), self.count, MAX_DEVICE_COUNT)?;
        self.peak_tflops
            .check(&format!("{at}/peak_tflops"), MAX_DEVICE_PEAK)?;
        if let Some(v) = self.memory_gib {
            check_figure(&format!("{at}/memory_gib"), v, false, 4096.0)?;
        }
        if let Some(serials) = &self.serials {
            if serials.len() as u64 > self.count {
                return Err(rule(
                    format!("{at}/serials"),
                    format!("{} serials for {} devices", serials.len(), self.count),
                ));
            }
            for (j, s) in serials.iter().enumerate() {
                if !is_serial(s) {
                    return Err(rule(
                        format!("{at}/serials/{j}"),
                        "a serial is 1 to 64 of letters, digits and . _ : / -, starting \
                         with a letter or digit",
                    ));
                }
                if serials.iter().take(j).any(|x| x == s) {
                    return Err(rule(
                        format!("{at}/serials/{j}"),
                        format!("serial {s:?} is listed twice"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One accelerator of the device table (`schema/devices.toml`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    pub model: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub vendor: String,
    /// Published dense peak of one device, per precision.
    pub peak_tflops: Peaks,
    /// The vendor document the figures come from.
    pub source: String,
    pub url: String,
    /// A figure could not be checked against a vendor datasheet.
    #[serde(default)]
    pub unsure: bool,
}

/// The device table: published dense peaks of common accelerators, which
/// back the plausibility checks of data quality (never validity).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTable {
    pub device: Vec<DeviceSpec>,
}

impl DeviceTable {
    /// Reads a table and checks each entry's peaks by the descriptor's rules
    /// for a device; model names and aliases are unique (case-insensitive).
    pub fn from_toml(text: &str) -> Result<DeviceTable, String> {
        let table: DeviceTable = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut names: Vec<String> = Vec::new();
        for (i, d) in table.device.iter().enumerate() {
            d.peak_tflops
                .check(&format!("/device/{i}/peak_tflops"), MAX_DEVICE_PEAK)
                .map_err(|e| format!("{}: {e}", d.model))?;
            if d.source.trim().is_empty() || !d.url.starts_with("https://") {
                return Err(format!("{}: every entry names its source and URL", d.model));
            }
            for name in std::iter::once(&d.model).chain(&d.aliases) {
                if !is_model(name) {
                    return Err(format!("{name:?} is not a model name"));
                }
                let key = name.to_ascii_lowercase();
                if names.contains(&key) {
                    return Err(format!("{name:?} is in the table twice"));
                }
                names.push(key);
            }
        }
        Ok(table)
    }

    /// The table shipped in `schema/devices.toml`.
    // why: the table is compiled in and parsed by the tests; a broken one
    // cannot ship.
    #[allow(clippy::expect_used)]
    pub fn builtin() -> &'static DeviceTable {
        static TABLE: std::sync::OnceLock<DeviceTable> = std::sync::OnceLock::new();
        TABLE.get_or_init(|| {
            DeviceTable::from_toml(include_str!("../../schema/devices.toml"))
                .expect("schema/devices.toml is checked by the tests")
        })
    }

    /// The entry for a model name or alias (case-insensitive).
    pub fn find(&self, model: &str) -> Option<&DeviceSpec> {
        self.device.iter().find(|d| {
            std::iter::once(&d.model)
                .chain(&d.aliases)
                .any(|n| n.eq_ignore_ascii_case(model))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IC: &str = r#"{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card",
        "units_total":8,"devices":[{"model":"A800","count":8,"peak_tflops":{"fp16":312}}]}"#;

    fn pointer(data: &str) -> String {
        ResourceDescriptor::parse(data).unwrap_err().pointer
    }

    #[test]
    fn a_minimal_accelerator_pool_is_valid() {
        let d = ResourceDescriptor::parse(IC).unwrap();
        assert_eq!(d.class(), Some(Class::Ic));
        assert_eq!(d.devices.unwrap()[0].count, 8);
    }

    #[test]
    fn shape_errors_point_at_the_field() {
        assert_eq!(
            pointer(&IC.replace(r#""count":8"#, r#""count":"8""#)),
            "/devices/0/count"
        );
        assert_eq!(
            pointer(&IC.replace(r#""fp16":312"#, r#""fp16":312,"fp4":9"#)),
            "/devices/0/peak_tflops/fp4"
        );
        assert_eq!(
            pointer(&IC.replace(r#""count":8,"#, "")),
            "/devices/0/count"
        );
        assert_eq!(
            pointer(&IC.replace(r#""unit":"card""#, r#""unit":"gpu""#)),
            "/unit"
        );
        assert_eq!(pointer("{broken"), "");
        assert_eq!(pointer(r#"["cpid.resource/1","IC"]"#), "");
        let positional = IC.replace(
            r#"{"model":"A800","count":8,"peak_tflops":{"fp16":312}}"#,
            r#"["A800",8,{"fp16":312}]"#,
        );
        assert_eq!(pointer(&positional), "/devices/0");
        assert_eq!(
            pointer(&IC.replace(r#""count":8,"#, r#""count":8,"count":9,"#)),
            "/devices/0/count"
        );
        assert_eq!(pointer(&format!("{IC} x")), "");
    }

    #[test]
    fn the_quick_read_refuses_what_the_tree_check_refuses() {
        let cases = [
            IC.to_string(),
            IC.replace(r#"{"fp16":312}"#, "[312]"),
            IC.replace(r#"{"fp16":312}"#, "null"),
            IC.replace(
                r#"{"model":"A800","count":8,"peak_tflops":{"fp16":312}}"#,
                r#"["A800",8,{"fp16":312}]"#,
            ),
            IC.replace(r#""units_total":8"#, r#""units_total":8,"link":[]"#),
            IC.replace(r#""units_total":8"#, r#""units_total":8,"link":null"#),
            IC.replace(r#""region":"31""#, r#""price_per_unit_hour":[1]"#),
            IC.replace(r#""devices":["#, r#""devices":null,"x":["#),
            r#"["cpid.resource/1","IC"]"#.to_string(),
        ];
        for case in &cases {
            let tree: serde_json::Value = serde_json::from_str(case).unwrap();
            assert_eq!(
                serde_json::from_str::<ObjectsInPlace>(case).is_ok(),
                objects_where_objects_belong(&tree).is_ok(),
                "{case}"
            );
        }
        assert_eq!(
            pointer(&IC.replace(r#"{"fp16":312}"#, "[312]")),
            "/devices/0/peak_tflops"
        );
    }

    #[test]
    fn the_class_must_be_the_identifiers() {
        let e = ResourceDescriptor::parse_for(IC, Class::Gc).unwrap_err();
        assert_eq!(e.pointer, "/class");
        assert!(ResourceDescriptor::parse_for(IC, Class::Ic).is_ok());
    }

    #[test]
    fn the_device_table_loads_and_every_entry_has_a_source() {
        let t = DeviceTable::builtin();
        for model in [
            "A800",
            "A100",
            "H800",
            "H100 SXM",
            "H20",
            "L40S",
            "Ascend 910B",
            "MI250X",
            "MI300X",
        ] {
            assert!(t.find(model).is_some(), "{model}");
        }
        assert_eq!(t.find("a800").unwrap().peak_tflops.fp16, Some(312.0));
        // Dense figures: half of the H100's sparse datasheet figure.
        assert_eq!(t.find("H100").unwrap().peak_tflops.fp8, Some(1979.0));
        let twice = "[[device]]\nmodel = \"X1\"\nvendor = \"V\"\npeak_tflops = { fp16 = 1 }\n\
                     source = \"s\"\nurl = \"https://x.example/\"\n";
        assert!(DeviceTable::from_toml(&format!("{twice}{twice}")).is_err());
        assert!(DeviceTable::from_toml(&twice.replace("fp16 = 1", "fp16 = -1")).is_err());
    }

    #[test]
    fn serials_are_unique_and_no_more_than_the_devices() {
        let one = IC.replace(r#""count":8,"#, r#""count":1,"serials":["A","B"],"#);
        assert_eq!(pointer(&one), "/devices/0/serials");
        let twice = IC.replace(r#""count":8,"#, r#""count":8,"serials":["A","A"],"#);
        assert_eq!(pointer(&twice), "/devices/0/serials/1");
    }
}
