//! The agent's inventory: which resources a provider runs beside the agent,
//! what each one is (its `CP.RESOURCE` descriptor, `schema/resource.md`)
//! and where its live figures come from.
//!
//! The file is TOML, read strictly (an unknown key is refused, so a typo
//! never silently drops a setting), and every descriptor is checked by the
//! capacity standard at load: a refusal names the resource and the JSON
//! pointer of the bad field (`resource[1].descriptor/devices/0/count: …`,
//! resources counted from 0 like the pointer's own indices), so nothing
//! invalid is ever sent to a node.
//!
//! ```toml
//! agent = "dc1-rack7"        # 1-64 of A-Z a-z 0-9 . _ -; unique per provider key
//! interval_secs = 30         # 5 to 3600
//! state_file = "agent-state.json"  # optional; default <inventory>.state.json
//!
//! [[resource]]
//! name = "gpu-pool-a"        # unique here; the record is tagged CP.INVENTORY "<agent>/<name>"
//! endpoint = "https://dc1.example.cn/gpu-pool-a"   # optional, registered as a URL value
//! source = "host"            # "host" | "declared" | "file"
//! [resource.descriptor]      # or: descriptor_file = "gpu-pool-a.json"
//! schema = "cpid.resource/1"
//! class = "IC"
//! region = "31"
//! unit = "card"
//! units_total = 8
//! devices = [{ model = "A800", count = 8, peak_tflops = { fp16 = 312.0 } }]
//! ```
//!
//! Sources: `host` measures this machine ([`super::host`]; units `card`,
//! `core`, `node` only); `declared` reports `units_available` and
//! `units_in_use` as written, the one not given being the rest of
//! `units_total` (neither: all available);
//! `file` reads `status_file` each interval (what a scheduler writes, see
//! [`super::FileStatus`]). Relative paths are relative to the inventory's
//! directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ident::resource::{ResourceDescriptor, ResourceError, Unit};

/// Longest agent id and resource name.
pub const MAX_NAME_LEN: usize = 64;
/// Reporting intervals a node takes (seconds).
pub const MIN_INTERVAL_SECS: u32 = 5;
pub const MAX_INTERVAL_SECS: u32 = 3600;
/// Most resources in one report (and so in one inventory).
pub const MAX_RESOURCES: usize = 1000;
/// Largest inventory or descriptor file read.
const MAX_FILE_LEN: u64 = 4 << 20;

/// An inventory that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_FILE_LEN} bytes")]
    TooLarge { path: String },
    /// Not TOML, or not the inventory's shape (unknown key, wrong type).
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    /// A setting breaks a rule; `at` is where (`interval_secs`, `resource[2].name`).
    #[error("{path}: {at}: {reason}")]
    Invalid {
        path: String,
        at: String,
        reason: String,
    },
    /// A descriptor the capacity standard refuses; `at` is
    /// `resource[i].descriptor` (or the descriptor file) and `error.pointer`
    /// the bad field inside it.
    #[error("{path}: {at}{}: {} (schema/resource.md)", .error.pointer, .error.reason)]
    Descriptor {
        path: String,
        at: String,
        error: ResourceError,
    },
}

/// Where a resource's live figures come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// This machine's figures (`super::host`).
    Host,
    /// Fixed figures, as written or defaulted at load (see the module doc).
    Declared {
        units_available: u64,
        units_in_use: u64,
    },
    /// A JSON status written by something else (a scheduler), read each
    /// interval.
    File(PathBuf),
}

/// One resource of the inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryItem {
    /// Local name, unique in the inventory.
    pub name: String,
    /// A URL registered beside the descriptor.
    pub endpoint: Option<String>,
    /// Checked by the capacity standard.
    pub descriptor: ResourceDescriptor,
    pub source: Source,
}

/// A loaded, checked inventory.
#[derive(Debug, Clone, PartialEq)]
pub struct Inventory {
    /// The agent id reports carry.
    pub agent: String,
    pub interval_secs: u32,
    /// Where the agent keeps its sequence number and identifiers.
    pub state_file: PathBuf,
    pub items: Vec<InventoryItem>,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    agent: String,
    interval_secs: u32,
    #[serde(default)]
    state_file: Option<PathBuf>,
    #[serde(default)]
    resource: Vec<RawItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawItem {
    name: String,
    #[serde(default)]
    endpoint: Option<String>,
    /// Read as TOML and checked as JSON, so shape errors get a pointer.
    #[serde(default)]
    descriptor: Option<toml::Value>,
    #[serde(default)]
    descriptor_file: Option<PathBuf>,
    source: RawSource,
    #[serde(default)]
    status_file: Option<PathBuf>,
    #[serde(default)]
    units_available: Option<u64>,
    #[serde(default)]
    units_in_use: Option<u64>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum RawSource {
    Host,
    Declared,
    File,
}

/// An agent id or resource name: 1–64 of ASCII letters, digits and `. _ -`.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// Reads a file of at most [`MAX_FILE_LEN`] bytes as UTF-8.
fn read_small(path: &Path) -> Result<String, InventoryError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let read = |source| InventoryError::Read {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(read)?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(InventoryError::TooLarge { path: shown });
    }
    Ok(text)
}

/// A TOML value as JSON, so the descriptor goes through the one JSON
/// reader of the capacity standard; `at` is the JSON pointer of `v`. A
/// non-finite float (TOML allows `nan`, `inf`) has no JSON form: its
/// pointer is the error.
fn toml_to_json(v: &toml::Value, at: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    Ok(match v {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => {
            J::Number(serde_json::Number::from_f64(*f).ok_or_else(|| at.to_string())?)
        }
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| toml_to_json(v, &format!("{at}/{i}")))
                .collect::<Result<_, _>>()?,
        ),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| {
                    let key = k.replace('~', "~0").replace('/', "~1");
                    Ok((k.clone(), toml_to_json(v, &format!("{at}/{key}"))?))
                })
                .collect::<Result<_, String>>()?,
        ),
    })
}

impl Inventory {
    /// Reads and checks the inventory at `path`.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = read_small(path)?;
        Inventory::parse(&text, path)
    }

    /// Checks inventory `text` read from `path` (which names it in errors
    /// and anchors relative paths; a descriptor file is read from there).
    pub fn parse(text: &str, path: &Path) -> Result<Inventory, InventoryError> {
        let shown = path.display().to_string();
        let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let invalid = |at: String, reason: String| InventoryError::Invalid {
            path: shown.clone(),
            at,
            reason,
        };
        let raw: RawInventory = toml::from_str(text).map_err(|e| InventoryError::Syntax {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        if !is_name(&raw.agent) {
            return Err(invalid(
                "agent".into(),
                format!(
                    "{:?} is not 1 to {MAX_NAME_LEN} of letters, digits and . _ -",
                    raw.agent
                ),
            ));
        }
        if !(MIN_INTERVAL_SECS..=MAX_INTERVAL_SECS).contains(&raw.interval_secs) {
            return Err(invalid(
                "interval_secs".into(),
                format!("must be {MIN_INTERVAL_SECS} to {MAX_INTERVAL_SECS} seconds"),
            ));
        }
        if raw.resource.is_empty() || raw.resource.len() > MAX_RESOURCES {
            return Err(invalid(
                "resource".into(),
                format!("an inventory lists 1 to {MAX_RESOURCES} resources ([[resource]])"),
            ));
        }
        let state_file = match raw.state_file {
            Some(p) => base.join(p),
            None => {
                let mut name = path.file_name().unwrap_or_default().to_os_string();
                name.push(".state.json");
                base.join(name)
            }
        };
        let mut names = HashSet::new();
        let mut items = Vec::with_capacity(raw.resource.len());
        for (i, r) in raw.resource.into_iter().enumerate() {
            let at = |field: &str| format!("resource[{i}].{field}");
            if !is_name(&r.name) {
                return Err(invalid(
                    at("name"),
                    format!(
                        "{:?} is not 1 to {MAX_NAME_LEN} of letters, digits and . _ -",
                        r.name
                    ),
                ));
            }
            if !names.insert(r.name.clone()) {
                return Err(invalid(at("name"), format!("{:?} is used twice", r.name)));
            }
            if let Some(url) = &r.endpoint {
                crate::ident::values::check_url("endpoint", url)
                    .map_err(|e| invalid(at("endpoint"), e.to_string()))?;
            }
            let (descriptor, where_) = match (r.descriptor, r.descriptor_file) {
                (Some(table), None) => {
                    let json = toml_to_json(&table, "").map_err(|pointer| {
                        invalid(
                            format!("{}{pointer}", at("descriptor")),
                            "must be a finite number".into(),
                        )
                    })?;
                    (json.to_string(), at("descriptor"))
                }
                (None, Some(file)) => {
                    let file = base.join(file);
                    (read_small(&file)?, file.display().to_string())
                }
                _ => {
                    return Err(invalid(
                        at("descriptor"),
                        "give exactly one of descriptor and descriptor_file".into(),
                    ));
                }
            };
            let descriptor = ResourceDescriptor::parse(&descriptor).map_err(|error| {
                InventoryError::Descriptor {
                    path: shown.clone(),
                    at: where_,
                    error,
                }
            })?;
            let total = descriptor.units_total;
            if r.source != RawSource::File && r.status_file.is_some() {
                return Err(invalid(
                    at("status_file"),
                    "only for source = \"file\"".into(),
                ));
            }
            if r.source != RawSource::Declared
                && (r.units_available.is_some() || r.units_in_use.is_some())
            {
                return Err(invalid(
                    at("units_available"),
                    "units_available and units_in_use are only for source = \"declared\"".into(),
                ));
            }
            let source = match r.source {
                RawSource::Host => {
                    if !matches!(descriptor.unit, Unit::Card | Unit::Core | Unit::Node) {
                        return Err(invalid(
                            at("source"),
                            format!(
                                "the host is measured in cards, cores or nodes, not {}; use \"declared\" or \"file\"",
                                descriptor.unit.as_str()
                            ),
                        ));
                    }
                    Source::Host
                }
                RawSource::Declared => {
                    // What is not given is the rest of units_total.
                    let (available, in_use) = match (r.units_available, r.units_in_use) {
                        (Some(a), Some(u)) => (a, u),
                        (Some(a), None) => (a, total.saturating_sub(a)),
                        (None, Some(u)) => (total.saturating_sub(u), u),
                        (None, None) => (total, 0),
                    };
                    if available.checked_add(in_use).is_none_or(|sum| sum > total) {
                        return Err(invalid(
                            at("units_available"),
                            format!(
                                "units_available + units_in_use must be at most units_total ({total})"
                            ),
                        ));
                    }
                    Source::Declared {
                        units_available: available,
                        units_in_use: in_use,
                    }
                }
                RawSource::File => match r.status_file {
                    Some(p) => Source::File(base.join(p)),
                    None => {
                        return Err(invalid(
                            at("status_file"),
                            "source = \"file\" needs a status_file".into(),
                        ));
                    }
                },
            };
            items.push(InventoryItem {
                name: r.name,
                endpoint: r.endpoint,
                descriptor,
                source,
            });
        }
        Ok(Inventory {
            agent: raw.agent,
            interval_secs: raw.interval_secs,
            state_file,
            items,
        })
    }
}

impl Inventory {
    /// The tag the agent puts on `item`'s record (value type
    /// [`super::INVENTORY_TYPE`]) to find it again: `<agent>/<name>`.
    pub fn tag(&self, item: &InventoryItem) -> String {
        format!("{}/{}", self.agent, item.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
agent = "dc1-rack7"
interval_secs = 30

[[resource]]
name = "gpu-pool-a"
endpoint = "https://dc1.example.cn/gpu-pool-a"
descriptor = { schema = "cpid.resource/1", class = "IC", region = "31", unit = "card", units_total = 8, devices = [{ model = "A800", count = 8, peak_tflops = { fp16 = 312.0 } }] }
source = "host"

[[resource]]
name = "cpu-farm"
source = "declared"
units_available = 100
[resource.descriptor]
schema = "cpid.resource/1"
class = "GC"
region = "31"
unit = "core"
units_total = 128
cpu_cores = 128
memory_gib = 512

[[resource]]
name = "sched"
source = "file"
status_file = "status/sched.json"
descriptor = { schema = "cpid.resource/1", class = "SC", region = "11", unit = "node", units_total = 4, cpu_cores = 256 }
"#;

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        Inventory::parse(text, Path::new("/etc/cpid/inventory.toml"))
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_good_inventory_loads_with_paths_next_to_it() {
        let inv = parse(GOOD).unwrap();
        assert_eq!(inv.agent, "dc1-rack7");
        assert_eq!(inv.interval_secs, 30);
        assert_eq!(
            inv.state_file,
            Path::new("/etc/cpid/inventory.toml.state.json")
        );
        assert_eq!(inv.items.len(), 3);
        assert_eq!(inv.items[0].source, Source::Host);
        assert_eq!(inv.items[0].descriptor.units_total, 8);
        assert_eq!(
            inv.items[0].descriptor.devices.as_ref().unwrap()[0]
                .peak_tflops
                .fp16,
            Some(312.0)
        );
        assert_eq!(
            inv.items[1].source,
            Source::Declared {
                units_available: 100,
                units_in_use: 28
            }
        );
        let only_in_use =
            parse(&GOOD.replace("units_available = 100", "units_in_use = 100")).unwrap();
        assert_eq!(
            only_in_use.items[1].source,
            Source::Declared {
                units_available: 28,
                units_in_use: 100
            }
        );
        assert_eq!(
            inv.items[2].source,
            Source::File(PathBuf::from("/etc/cpid/status/sched.json"))
        );
        assert_eq!(inv.tag(&inv.items[1]), "dc1-rack7/cpu-farm");
        let named = parse(&GOOD.replace(
            "interval_secs = 30",
            "interval_secs = 30\nstate_file = \"/var/lib/cpid/s.json\"",
        ))
        .unwrap();
        assert_eq!(named.state_file, Path::new("/var/lib/cpid/s.json"));
    }

    #[test]
    fn a_bad_descriptor_is_named_by_resource_and_pointer() {
        let e = error(&GOOD.replace("count = 8,", "count = 0,"));
        assert!(
            e.contains("resource[0].descriptor/devices/0/count: must be 1 to"),
            "{e}"
        );
        // Shape errors get a pointer too: an unknown field, a float count.
        let e = error(&GOOD.replace("cpu_cores = 128", "cpu_cores = 128\ncpus = 1"));
        assert!(e.contains("resource[1].descriptor/cpus:"), "{e}");
        let e = error(&GOOD.replace("units_total = 4,", "units_total = 4.0,"));
        assert!(e.contains("resource[2].descriptor/units_total:"), "{e}");
        let e = error(&GOOD.replace("class = \"SC\"", "class = \"NL\""));
        assert!(e.contains("resource[2].descriptor/"), "{e}");
        let e = error(&GOOD.replace("fp16 = 312.0", "fp16 = nan"));
        assert!(
            e.contains("resource[0].descriptor/devices/0/peak_tflops/fp16"),
            "{e}"
        );
    }

    #[test]
    fn settings_are_checked_with_their_place() {
        let cases = [
            (GOOD.replace("dc1-rack7", "dc1 rack7"), "agent:"),
            (
                GOOD.replace("interval_secs = 30", "interval_secs = 1"),
                "interval_secs:",
            ),
            (
                GOOD.replace("name = \"sched\"", "name = \"cpu-farm\""),
                "resource[2].name: \"cpu-farm\" is used twice",
            ),
            (
                GOOD.replace("https://dc1", "ftp://dc1"),
                "resource[0].endpoint:",
            ),
            (
                GOOD.replace("status_file = \"status/sched.json\"\n", ""),
                "resource[2].status_file: source = \"file\" needs a status_file",
            ),
            (
                GOOD.replace("units_available = 100", "units_available = 129"),
                "resource[1].units_available:",
            ),
            (
                GOOD.replace("source = \"declared\"", "source = \"file\""),
                "resource[1].",
            ),
            (
                GOOD.replace("class = \"SC\"", "class = \"ST\"")
                    .replace("unit = \"node\"", "unit = \"tib\"")
                    .replace("cpu_cores = 256", "storage_tib = 4")
                    .replace("source = \"file\"", "source = \"host\"")
                    .replace("status_file = \"status/sched.json\"\n", ""),
                "resource[2].source: the host is measured in cards, cores or nodes, not tib",
            ),
            (
                GOOD.replace(
                    "source = \"host\"",
                    "source = \"host\"\ndescriptor_file = \"a.json\"",
                ),
                "resource[0].descriptor: give exactly one",
            ),
            (
                "agent = \"a\"\ninterval_secs = 30\n".to_string(),
                "resource: an inventory lists 1 to",
            ),
        ];
        for (text, want) in cases {
            let e = error(&text);
            assert!(e.contains(want), "want {want:?} in {e:?}");
            assert!(e.starts_with("/etc/cpid/inventory.toml: "), "{e}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_toml_are_refused() {
        let e =
            parse(&GOOD.replace("source = \"host\"", "source = \"host\"\nsorce = 1")).unwrap_err();
        assert!(matches!(e, InventoryError::Syntax { .. }), "{e}");
        assert!(e.to_string().contains("sorce"), "{e}");
        let e = parse(&GOOD.replace("source = \"host\"", "source = \"gpu\"")).unwrap_err();
        assert!(matches!(e, InventoryError::Syntax { .. }), "{e}");
        assert!(matches!(
            parse("agent = ").unwrap_err(),
            InventoryError::Syntax { .. }
        ));
    }

    #[test]
    fn a_descriptor_file_is_read_beside_the_inventory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("pool.json"),
            r#"{"schema":"cpid.resource/1","class":"IC","region":"31","unit":"card","units_total":2,
                "devices":[{"model":"A800","count":2,"peak_tflops":{"fp16":312}}]}"#,
        )
        .unwrap();
        let text = "agent = \"a\"\ninterval_secs = 10\n[[resource]]\nname = \"p\"\nsource = \"declared\"\ndescriptor_file = \"pool.json\"\n";
        let path = dir.path().join("inv.toml");
        std::fs::write(&path, text).unwrap();
        let inv = Inventory::load(&path).unwrap();
        assert_eq!(inv.items[0].descriptor.units_total, 2);
        assert_eq!(inv.state_file, dir.path().join("inv.toml.state.json"));
        std::fs::write(dir.path().join("pool.json"), "{\"schema\": 1}").unwrap();
        let e = Inventory::load(&path).unwrap_err().to_string();
        assert!(e.contains("pool.json/schema:"), "{e}");
        assert!(matches!(
            Inventory::load(&dir.path().join("missing.toml")),
            Err(InventoryError::Read { .. })
        ));
    }
}
