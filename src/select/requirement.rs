//! A buyer's requirement, the body of `POST /v1/select` and
//! `POST /v1/schedule`, read strictly: unknown fields, numbers that are not
//! numbers, units ≤ 0 and windows in the past or inverted are refused with
//! the JSON pointer (RFC 6901) of the field at fault.

use serde::Deserialize;

use super::Weights;
use crate::ident::identifier::{Class, province};
use crate::ident::resource::{MAX_FIGURE, MAX_LATENCY_MS, MAX_UNITS, Precision};

// The window rules are the transaction's: what a selection accepts, a
// schedule can propose.
use crate::trade::{MAX_WINDOW_SECS, START_SLACK_SECS};
/// Window length when only a start is given, seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 3600;
/// Most preferred regions.
pub const MAX_PREFERRED: usize = 34;

/// A refused requirement: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {reason}")]
pub struct RequirementError {
    pub pointer: String,
    pub reason: String,
}

fn refuse(pointer: &str, reason: impl Into<String>) -> RequirementError {
    RequirementError {
        pointer: pointer.into(),
        reason: reason.into(),
    }
}

/// A minimum dense peak of the units booked together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeakNeed {
    pub precision: Precision,
    pub tflops: f64,
}

/// A price ceiling per unit-hour.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceCeiling {
    pub amount: f64,
    /// Only this currency (ISO 4217) when named.
    pub currency: Option<String>,
}

/// What a buyer asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    pub class: Option<Class>,
    /// A device model; matched without regard to case, by the device
    /// table's name when it knows the model.
    pub model: Option<String>,
    pub peak: Option<PeakNeed>,
    /// Units asked; when absent, as many as `peak` needs (else 1).
    pub units: Option<u64>,
    /// Memory per unit, GiB.
    pub memory_gib: Option<f64>,
    /// Storage of the resource, TiB.
    pub storage_tib: Option<f64>,
    /// The buyer's region (GB/T 2260), where paths start.
    pub region: Option<String>,
    pub preferred_regions: Vec<String>,
    pub max_price: Option<PriceCeiling>,
    pub max_latency_ms: Option<f64>,
    pub min_bandwidth_gbps: Option<f64>,
    /// The window, Unix seconds, `[start, end)`.
    pub start: u64,
    pub end: u64,
    pub limit: Option<usize>,
    /// Weights for this selection instead of the node's.
    pub weights: Option<Weights>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeak {
    precision: String,
    tflops: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    amount: f64,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    peak: Option<RawPeak>,
    #[serde(default)]
    units: Option<u64>,
    #[serde(default)]
    memory_gib: Option<f64>,
    #[serde(default)]
    storage_tib: Option<f64>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    preferred_regions: Option<Vec<String>>,
    #[serde(default)]
    max_price: Option<RawPrice>,
    #[serde(default)]
    max_latency_ms: Option<f64>,
    #[serde(default)]
    min_bandwidth_gbps: Option<f64>,
    #[serde(default)]
    start: Option<u64>,
    #[serde(default)]
    end: Option<u64>,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    weights: Option<Weights>,
}

fn figure(pointer: &str, v: Option<f64>, max: f64) -> Result<Option<f64>, RequirementError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0 && x <= max) => Err(refuse(
            pointer,
            format!("must be above 0 and at most {max}"),
        )),
        other => Ok(other),
    }
}

fn region(pointer: &str, code: String) -> Result<String, RequirementError> {
    if province(&code).is_none() {
        return Err(refuse(
            pointer,
            format!("{code:?} is not a GB/T 2260 province code (e.g. \"31\" for Shanghai)"),
        ));
    }
    Ok(code)
}

impl Requirement {
    /// Reads a requirement at node time `now`.
    pub fn parse(body: &[u8], now: u64) -> Result<Requirement, RequirementError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let raw: Raw = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let pointer = crate::ident::resource::pointer_of(e.path());
            let inner = e.into_inner();
            // A body that is not a JSON object at all, or is cut short.
            if inner.is_syntax() || inner.is_eof() {
                return refuse("", format!("not JSON: {inner}"));
            }
            refuse(&pointer, inner.to_string())
        })?;
        de.end()
            .map_err(|e| refuse("", format!("trailing data after the object: {e}")))?;

        let class = match raw.class {
            None => None,
            Some(c) => {
                let class = Class::parse(&c)
                    .ok()
                    .filter(|c| {
                        matches!(c, Class::Gc | Class::Ic | Class::Sc | Class::St | Class::As)
                    })
                    .ok_or_else(|| {
                        refuse(
                            "/class",
                            format!(
                                "{c:?} is not a class of compute or storage (GC, IC, SC, ST, AS)"
                            ),
                        )
                    })?;
                Some(class)
            }
        };
        let model = match raw.model {
            Some(m) if m.trim().is_empty() || m.len() > 64 => {
                return Err(refuse("/model", "must be 1 to 64 characters"));
            }
            other => other,
        };
        let peak = match raw.peak {
            None => None,
            Some(p) => {
                let precision = Precision::ALL
                    .into_iter()
                    .find(|x| x.as_str() == p.precision)
                    .ok_or_else(|| {
                        refuse(
                            "/peak/precision",
                            format!(
                                "{:?} is not a precision (fp64, fp32, tf32, bf16, fp16, fp8, int8)",
                                p.precision
                            ),
                        )
                    })?;
                let tflops = figure("/peak/tflops", Some(p.tflops), 1e12)?.unwrap_or_default();
                Some(PeakNeed { precision, tflops })
            }
        };
        if let Some(u) = raw.units
            && (u == 0 || u > MAX_UNITS)
        {
            return Err(refuse("/units", format!("must be 1 to {MAX_UNITS}")));
        }
        let memory_gib = figure("/memory_gib", raw.memory_gib, MAX_FIGURE)?;
        let storage_tib = figure("/storage_tib", raw.storage_tib, MAX_FIGURE)?;
        let region_code = raw.region.map(|r| region("/region", r)).transpose()?;
        let preferred = raw.preferred_regions.unwrap_or_default();
        if preferred.len() > MAX_PREFERRED {
            return Err(refuse(
                "/preferred_regions",
                format!("at most {MAX_PREFERRED} regions"),
            ));
        }
        let preferred_regions = preferred
            .into_iter()
            .enumerate()
            .map(|(i, r)| region(&format!("/preferred_regions/{i}"), r))
            .collect::<Result<Vec<_>, _>>()?;
        let max_price = match raw.max_price {
            None => None,
            Some(p) => {
                if !(p.amount.is_finite() && (0.0..=MAX_FIGURE).contains(&p.amount)) {
                    return Err(refuse(
                        "/max_price/amount",
                        format!("must be a number from 0 to {MAX_FIGURE}"),
                    ));
                }
                if let Some(c) = &p.currency
                    && !(c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
                {
                    return Err(refuse(
                        "/max_price/currency",
                        "must be an ISO 4217 code such as CNY",
                    ));
                }
                Some(PriceCeiling {
                    amount: p.amount,
                    currency: p.currency,
                })
            }
        };
        let max_latency_ms = figure("/max_latency_ms", raw.max_latency_ms, MAX_LATENCY_MS)?;
        let min_bandwidth_gbps = figure("/min_bandwidth_gbps", raw.min_bandwidth_gbps, MAX_FIGURE)?;
        if region_code.is_none() {
            for (asked, at) in [
                (max_latency_ms.is_some(), "/max_latency_ms"),
                (min_bandwidth_gbps.is_some(), "/min_bandwidth_gbps"),
            ] {
                if asked {
                    return Err(refuse(
                        at,
                        "a path bound needs the buyer's region (\"region\") to start from",
                    ));
                }
            }
        }
        let start = raw.start.unwrap_or(now);
        let end = raw
            .end
            .unwrap_or_else(|| start.saturating_add(DEFAULT_WINDOW_SECS));
        if end <= start {
            return Err(refuse(
                "/end",
                format!("end {end} must be after start {start}"),
            ));
        }
        if end <= now {
            return Err(refuse(
                "/end",
                format!("the window [{start}, {end}) is over (now {now})"),
            ));
        }
        if start.saturating_add(START_SLACK_SECS) < now {
            return Err(refuse(
                "/start",
                format!("start {start} is in the past (now {now})"),
            ));
        }
        if end - start > MAX_WINDOW_SECS {
            return Err(refuse(
                "/end",
                format!("a window is at most {MAX_WINDOW_SECS} s"),
            ));
        }
        if raw.limit == Some(0) {
            return Err(refuse("/limit", "must be at least 1"));
        }
        if let Some(w) = &raw.weights {
            w.check().map_err(|(field, reason)| {
                refuse(
                    &format!(
                        "/weights{}",
                        field.map(|f| format!("/{f}")).unwrap_or_default()
                    ),
                    reason,
                )
            })?;
        }
        Ok(Requirement {
            class,
            model,
            peak,
            units: raw.units,
            memory_gib,
            storage_tib,
            region: region_code,
            preferred_regions,
            max_price,
            max_latency_ms,
            min_bandwidth_gbps,
            start,
            end,
            limit: raw.limit,
            weights: raw.weights,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn err(body: &str) -> RequirementError {
        Requirement::parse(body.as_bytes(), NOW).unwrap_err()
    }

    #[test]
    fn a_full_requirement_reads() {
        let r = Requirement::parse(
            br#"{"class":"IC","model":"A800","peak":{"precision":"fp16","tflops":1000},
                "memory_gib":80,"storage_tib":2,"region":"11","preferred_regions":["31"],
                "max_price":{"amount":30,"currency":"CNY"},"max_latency_ms":20,
                "min_bandwidth_gbps":10,"start":1800000000,"end":1800007200,"limit":5}"#,
            NOW,
        )
        .unwrap();
        assert_eq!(r.class, Some(Class::Ic));
        assert_eq!(r.peak.unwrap().precision, Precision::Fp16);
        assert_eq!((r.start, r.end), (NOW, NOW + 7200));
        let bare = Requirement::parse(b"{}", NOW).unwrap();
        assert_eq!((bare.start, bare.end), (NOW, NOW + DEFAULT_WINDOW_SECS));
    }

    #[test]
    fn bad_requirements_name_the_field() {
        assert_eq!(err(r#"{"units":0}"#).pointer, "/units");
        assert_eq!(err(r#"{"units":-1}"#).pointer, "/units");
        assert_eq!(err(r#"{"units":1.5}"#).pointer, "/units");
        assert_eq!(
            err(r#"{"max_price":{"amount":"cheap"}}"#).pointer,
            "/max_price/amount"
        );
        assert_eq!(
            err(r#"{"start":1800000000,"end":1799999999}"#).pointer,
            "/end"
        );
        assert_eq!(err(r#"{"start":1000,"end":2000}"#).pointer, "/end");
        assert_eq!(err(r#"{"start":1000,"end":1900000000}"#).pointer, "/start");
        assert_eq!(
            err(r#"{"start":1799999800,"end":1799999900}"#).pointer,
            "/end"
        );
        assert_eq!(err(r#"{"class":"PV"}"#).pointer, "/class");
        assert_eq!(err(r#"{"region":"99"}"#).pointer, "/region");
        assert_eq!(err(r#"{"max_latency_ms":5}"#).pointer, "/max_latency_ms");
        assert_eq!(err(r#"{"colour":"red"}"#).pointer, "/colour");
        assert!(err(r#"{"colour":"red"}"#).reason.contains("colour"));
        assert_eq!(
            err(r#"{"peak":{"precision":"fp4","tflops":1}}"#).pointer,
            "/peak/precision"
        );
        assert_eq!(err(r#"{"weights":{"price":-1}}"#).pointer, "/weights/price");
        assert_eq!(err(r#"{} x"#).pointer, "");
        assert!(err("not json").reason.starts_with("not JSON"));
    }
}
