//! Zone files: export of a node's zone as an RFC 1035 master file, and
//! import of records from such a file or from a declarative TOML file.
//!
//! Export writes every RR with an absolute owner name, known types in their
//! presentation form and cpid's private types in the generic RFC 3597 form
//! (`TYPE65280 \# len hex`), so Knot DNS and NSD load the file unchanged.
//! Import of a master file takes the signed records (TYPE65280) and checks
//! each against the node key; everything else in a zone is derived from
//! them. Import of TOML issues (or updates) records through the registry.

use std::io::Write;

use serde::Deserialize;

use crate::dns::wire::{rdata_presentation, rtype, type_name};
use crate::dns::zone::Zone;
use crate::ident::identifier::{Class, Identifier, Prefix};
use crate::ident::record::{RecordStatus, SignedRecord, Value};
use crate::ident::values::{self, ValueInput};
use crate::registry::{Change, NewRecord, Plan, Registry, RegistryError, Step};

/// Why an import failed; nothing after the failing entry is applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneFileError {
    #[error("line {line}: {reason}")]
    Master { line: usize, reason: String },
    #[error("TOML: {0}")]
    Toml(#[from] Box<toml::de::Error>),
    #[error("record {index}: {reason}")]
    Entry { index: usize, reason: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("write: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the zone as a master file.
pub fn export(zone: &Zone, out: &mut impl Write) -> std::io::Result<usize> {
    let records = zone.records();
    writeln!(out, "; cpid zone {} serial {}", zone.apex(), zone.serial())?;
    writeln!(
        out,
        "; TYPE65280 = signed cpid record, TYPE65281 = node key (RFC 3597 generic form)"
    )?;
    writeln!(out, "$ORIGIN {}", zone.apex())?;
    for (owner, t, ttl, rdata) in &records {
        writeln!(
            out,
            "{owner} {ttl} IN {} {}",
            type_name(*t),
            rdata_presentation(*t, rdata)
        )?;
    }
    Ok(records.len())
}

/// The signed records of a master file (its TYPE65280 RRs).
pub fn signed_records_from_master(text: &str) -> Result<Vec<SignedRecord>, ZoneFileError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('$') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(pos) = fields
            .iter()
            .position(|f| f.eq_ignore_ascii_case(&format!("TYPE{}", rtype::CPREC)))
        else {
            continue;
        };
        let err = |reason: String| ZoneFileError::Master {
            line: i + 1,
            reason,
        };
        let rest = fields.get(pos + 1..).unwrap_or_default();
        if rest.first() != Some(&"\\#") {
            return Err(err("TYPE65280 RDATA must be in \\# generic form".into()));
        }
        let len: usize = rest
            .get(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err("missing RDATA length".into()))?;
        let hex: String = rest.get(2..).unwrap_or_default().concat();
        let bytes = decode_hex(&hex).ok_or_else(|| err("RDATA is not hex".into()))?;
        if bytes.len() != len {
            return Err(err(format!(
                "RDATA length {} does not match declared {len}",
                bytes.len()
            )));
        }
        let record = SignedRecord::decode(&bytes).map_err(|e| err(e.to_string()))?;
        out.push(record);
    }
    Ok(out)
}

/// The serial in an export's first line (`; cpid zone <apex> serial <n>`).
fn exported_serial(text: &str) -> Option<u64> {
    let first = text.lines().next()?;
    let rest = first.strip_prefix("; cpid zone ")?;
    let (_, serial) = rest.rsplit_once(" serial ")?;
    serial.trim().parse().ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect()
}

/// A declarative records file (`zones/*.toml`, see `zones/records.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsFile {
    #[serde(default, rename = "record")]
    pub records: Vec<RecordEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordEntry {
    /// A fixed code; when absent the registry assigns the next one.
    pub identifier: Option<String>,
    pub class: Option<String>,
    pub prefix: Option<String>,
    pub owner: Option<String>,
    #[serde(default, rename = "value")]
    pub values: Vec<ValueEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueEntry {
    pub index: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: String,
    #[serde(default)]
    pub ttl: u32,
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub issued: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// Imports a file: master format when it holds TYPE65280 records or starts
/// like one, TOML otherwise.
pub fn import(registry: &Registry, text: &str) -> Result<ImportReport, ZoneFileError> {
    if text.contains("TYPE65280") || text.trim_start().starts_with("; cpid zone") {
        let records = signed_records_from_master(text)?;
        // Check every record before storing any, so a bad file changes nothing.
        let key = registry.key().public();
        for (i, r) in records.iter().enumerate() {
            let id = &r.record().identifier;
            if !registry.prefix().contains(id.prefix()) {
                return Err(ZoneFileError::Entry {
                    index: i + 1,
                    reason: format!("{id} is outside this node's prefix {}", registry.prefix()),
                });
            }
            r.verify(&key).map_err(|e| ZoneFileError::Entry {
                index: i + 1,
                reason: format!("{id}: {e}"),
            })?;
        }
        let total = records.len();
        if total == 0 {
            return Ok(ImportReport::default());
        }
        let plan = Plan {
            steps: records.into_iter().map(Step::Import).collect(),
            // The serial the exported zone had: the rebuilt zone starts
            // above it, so its secondaries take the new one.
            serial_floor: exported_serial(text),
            ..Plan::default()
        };
        let issued = registry.commit(plan)?.written().count();
        return Ok(ImportReport {
            issued,
            updated: 0,
            unchanged: total - issued,
        });
    }
    let file: RecordsFile = toml::from_str(text).map_err(Box::new)?;
    import_entries(registry, &file.records)
}

fn import_entries(
    registry: &Registry,
    entries: &[RecordEntry],
) -> Result<ImportReport, ZoneFileError> {
    // Parse and check every entry before applying any, so a bad file
    // changes nothing.
    let planned = entries
        .iter()
        .enumerate()
        .map(|(index, e)| {
            plan(registry, e).map_err(|reason| ZoneFileError::Entry {
                index: index + 1,
                reason,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    // The whole file is one commit: all of it lands, or none.
    let mut report = ImportReport::default();
    let mut steps = Vec::with_capacity(planned.len());
    for (fixed, new) in planned {
        let Some(id) = fixed else {
            steps.push(Step::Issue(new));
            report.issued += 1;
            continue;
        };
        match registry.get(&id)? {
            Some(existing) if same_values(&existing.record().values, &new.values) => {
                report.unchanged += 1;
            }
            Some(_) => {
                steps.push(Step::Change {
                    id,
                    change: Change::Values(new.values),
                });
                report.updated += 1;
            }
            None => {
                steps.push(Step::IssueAt {
                    identifier: id,
                    owner: new.owner,
                    values: new.values,
                });
                report.issued += 1;
            }
        }
    }
    if !steps.is_empty() {
        registry.commit(Plan {
            steps,
            ..Plan::default()
        })?;
    }
    Ok(report)
}

/// One entry, parsed and validated: an optional fixed code and the record.
fn plan(registry: &Registry, e: &RecordEntry) -> Result<(Option<Identifier>, NewRecord), String> {
    let now = registry.clock().now();
    let owner = e
        .owner
        .as_deref()
        .map(Identifier::parse)
        .transpose()
        .map_err(|err| format!("owner: {err}"))?;
    let fixed = e
        .identifier
        .as_deref()
        .map(Identifier::parse)
        .transpose()
        .map_err(|err| err.to_string())?;
    let (prefix, class) = match &fixed {
        Some(id) => (
            id.prefix().clone(),
            values::file_class(id.class()).map_err(|err| err.to_string())?,
        ),
        None => {
            let class = e
                .class
                .as_deref()
                .ok_or("either identifier or class is required")?;
            let class = Class::parse(class).map_err(|err| err.to_string())?;
            let class = values::file_class(class).map_err(|err| err.to_string())?;
            let prefix = match e.prefix.as_deref() {
                Some(p) => Prefix::parse(p).map_err(|err| err.to_string())?,
                None => registry.prefix().clone(),
            };
            (prefix, class)
        }
    };
    // Unsigned entries obey the same value rules as the HTTP API.
    let inputs = e
        .values
        .iter()
        .map(|v| ValueInput {
            index: Some(v.index),
            kind: v.kind.clone(),
            data: v.data.clone(),
            ttl: v.ttl,
        })
        .collect();
    let values = values::client_values(inputs, class, now).map_err(|err| err.to_string())?;
    if !registry.prefix().contains(&prefix) {
        return Err(format!(
            "prefix {prefix} is outside this node's prefix {}",
            registry.prefix()
        ));
    }
    let new = NewRecord {
        prefix: Some(prefix.clone()),
        class,
        owner,
        values,
        status: RecordStatus::Active,
    };
    // The same checks signing will make, on a stand-in with this shape.
    let probe = fixed
        .clone()
        .unwrap_or_else(|| Identifier::new(prefix, class, crate::ident::identifier::Serial::FIRST));
    crate::ident::record::Record {
        identifier: probe,
        owner: new.owner.clone(),
        version: 1,
        status: RecordStatus::Active,
        issuer: registry.key().public().key_id(),
        created: now,
        updated: now,
        values: new.values.clone(),
    }
    .validate()
    .map_err(|err| err.to_string())?;
    Ok((fixed, new))
}

fn same_values(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.index == y.index && x.kind == y.kind && x.data == y.data && x.ttl == y.ttl
        })
}
