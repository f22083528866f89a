//! Live figures of the machine the agent runs on, and how they become a
//! resource's status.
//!
//! Figures come from `/proc` (CPU count from `/proc/cpuinfo`, else
//! `std::thread::available_parallelism`; 1-minute load from
//! `/proc/loadavg`; `MemTotal`/`MemAvailable` from `/proc/meminfo`) and,
//! when `nvidia-smi` runs, from its CSV query (killed after
//! [`NVIDIA_SMI_TIMEOUT`]). Every text is untrusted: the parsers are pure
//! functions that skip what they cannot read and never panic, and a
//! missing file or tool means "no figure", never an error.
//!
//! The rule ([`host_status`]), for a `source = "host"` resource:
//!
//! - unit `card` with GPUs seen: a GPU is in use when its utilization is at
//!   least [`BUSY_GPU_PERCENT`]; `units_in_use` = busy GPUs, `units_available`
//!   = GPUs seen − in use (both at most `units_total`: a card the driver no
//!   longer shows is not offered); utilization = mean GPU utilization.
//!   With no GPU seen the units are reported as declared (all available)
//!   and health is `degraded`: the agent cannot see the cards it reports.
//! - unit `core` or `node`: utilization = min(1, load1 / CPUs),
//!   `units_in_use` = round(`units_total` × utilization), `units_available`
//!   = the rest. Without a load figure, as declared and `degraded`.
//! - health is `ok`, or `degraded` when available memory is under 5 % of
//!   the total, a GPU reports an error, or fewer GPUs are seen than
//!   `units_total` cards.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ident::resource::{ResourceDescriptor, Unit};

use super::{Health, LiveStatus};

/// How long `nvidia-smi` may run.
pub const NVIDIA_SMI_TIMEOUT: Duration = Duration::from_secs(5);
/// A GPU at this utilization (percent) or more counts as in use.
pub const BUSY_GPU_PERCENT: f64 = 10.0;
/// Available memory under this share of the total degrades health.
pub const LOW_MEMORY_SHARE: f64 = 0.05;
/// The query the agent runs.
pub const NVIDIA_SMI_ARGS: [&str; 2] = [
    "--query-gpu=index,name,serial,utilization.gpu,memory.total,memory.used",
    "--format=csv,noheader,nounits",
];
/// Most output read from `nvidia-smi`.
const MAX_TOOL_OUTPUT: u64 = 1 << 20;

/// One GPU as `nvidia-smi` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub serial: Option<String>,
    /// Percent, 0 to 100; `None` when not reported.
    pub utilization_percent: Option<f64>,
    pub memory_total_mib: Option<u64>,
    pub memory_used_mib: Option<u64>,
    /// A field read as an error (`ERR!`, `[Unknown Error]`, `[GPU is lost]` …).
    pub error: bool,
}

/// What the agent saw of the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFigures {
    /// Logical CPUs (at least 1).
    pub cpus: u32,
    /// 1-minute load average.
    pub load1: Option<f64>,
    pub memory_total_kib: Option<u64>,
    pub memory_available_kib: Option<u64>,
    /// Empty when there is no `nvidia-smi` or it failed.
    pub gpus: Vec<Gpu>,
}

/// Logical CPUs listed in `/proc/cpuinfo` (`processor : N` lines), or
/// `None` when there are none.
pub fn parse_cpuinfo(text: &str) -> Option<u32> {
    let n = text
        .lines()
        .filter(|l| {
            l.split_once(':')
                .is_some_and(|(key, _)| key.trim() == "processor")
        })
        .count();
    u32::try_from(n).ok().filter(|n| *n > 0)
}

/// The 1-minute load of `/proc/loadavg` (`0.42 0.30 0.25 1/123 4567`).
pub fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|l| l.is_finite() && *l >= 0.0)
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in KiB.
pub fn parse_meminfo(text: &str) -> (Option<u64>, Option<u64>) {
    let mut total = None;
    let mut available = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let value = words.next().and_then(|v| v.parse::<u64>().ok());
        // The kernel writes "kB" (meaning KiB); anything else is not a size.
        let unit_ok = matches!(words.next(), Some("kB") | None) && words.next().is_none();
        if !unit_ok {
            continue;
        }
        match key.trim() {
            "MemTotal" => total = total.or(value),
            "MemAvailable" => available = available.or(value),
            _ => {}
        }
    }
    (total, available)
}

/// A field `nvidia-smi` writes when it cannot read a figure because of a
/// fault (as opposed to `[N/A]`/`[Not Supported]`, which are not faults).
fn is_error_field(f: &str) -> bool {
    let f = f.to_ascii_lowercase();
    f.contains("err") || f.contains("lost") || f.contains("requires reset")
}

fn is_missing_field(f: &str) -> bool {
    f.is_empty() || f.starts_with('[') || f.eq_ignore_ascii_case("n/a")
}

/// The lines of `nvidia-smi --query-gpu=index,name,serial,utilization.gpu,
/// memory.total,memory.used --format=csv,noheader,nounits`. A line without
/// six fields or without a numeric index is skipped; a figure that does
/// not read is `None`, and marks the GPU as in error when it says so.
pub fn parse_nvidia_smi(text: &str) -> Vec<Gpu> {
    let mut gpus: Vec<Gpu> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [index, name, serial, util, mem_total, mem_used] = fields.as_slice() else {
            continue;
        };
        let Ok(index) = index.parse::<u32>() else {
            continue;
        };
        if gpus.iter().any(|g| g.index == index) {
            continue;
        }
        let mut error = false;
        let mut number = |f: &str| -> Option<f64> {
            if is_error_field(f) {
                error = true;
                return None;
            }
            if is_missing_field(f) {
                return None;
            }
            f.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
        };
        let utilization_percent = number(util).map(|u| u.min(100.0));
        let whole = |v: f64| {
            let v = v.round();
            // In range after the check, so the cast is exact.
            (v < 1e15).then_some(v as u64)
        };
        let memory_total_mib = number(mem_total).and_then(whole);
        let memory_used_mib = number(mem_used).and_then(whole);
        if is_error_field(name) || is_error_field(serial) {
            error = true;
        }
        let text_field = |f: &str| {
            (!is_missing_field(f) && !is_error_field(f)).then(|| f.chars().take(64).collect())
        };
        gpus.push(Gpu {
            index,
            name: text_field(name).unwrap_or_default(),
            serial: text_field(serial),
            utilization_percent,
            memory_total_mib,
            memory_used_mib,
            error,
        });
    }
    gpus
}

/// Runs `program args` with a deadline; its standard output when it
/// exits 0 in time, else `None` (logged at debug).
fn run_with_timeout(program: &str, args: &[&str], timeout: Duration) -> Option<String> {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(program, error = %e, "no accelerator figures");
            return None;
        }
    };
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    // The pipe is read beside the wait, so a chatty child cannot block on
    // a full pipe; the thread ends when the child's end closes.
    std::thread::spawn(move || {
        let mut out = String::new();
        let read = stdout.take(MAX_TOOL_OUTPUT).read_to_string(&mut out);
        let _ = tx.send(read.map(|_| out));
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                tracing::debug!(program, "timed out or unwaitable; killed");
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let status = status?;
    if !status.success() {
        tracing::debug!(program, %status, "failed: no accelerator figures");
        return None;
    }
    match rx.recv_timeout(Duration::from_secs(1)) {
        Ok(Ok(out)) => Some(out),
        other => {
            tracing::debug!(program, ?other, "unreadable output");
            None
        }
    }
}

/// GPUs seen by `nvidia-smi` on PATH; empty when it is absent or fails.
pub fn nvidia_gpus() -> Vec<Gpu> {
    run_with_timeout("nvidia-smi", &NVIDIA_SMI_ARGS, NVIDIA_SMI_TIMEOUT)
        .map(|out| parse_nvidia_smi(&out))
        .unwrap_or_default()
}

/// This machine's figures now.
pub fn collect() -> HostFigures {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let cpus = read("/proc/cpuinfo")
        .as_deref()
        .and_then(parse_cpuinfo)
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .and_then(|n| u32::try_from(n.get()).ok())
        })
        .unwrap_or(1);
    let load1 = read("/proc/loadavg").as_deref().and_then(parse_loadavg);
    let (memory_total_kib, memory_available_kib) = read("/proc/meminfo")
        .as_deref()
        .map(parse_meminfo)
        .unwrap_or_default();
    HostFigures {
        cpus,
        load1,
        memory_total_kib,
        memory_available_kib,
        gpus: nvidia_gpus(),
    }
}

/// `units × share`, rounded, within `0..=units`.
fn share_of(units: u64, share: f64) -> u64 {
    let share = if share.is_finite() {
        share.clamp(0.0, 1.0)
    } else {
        0.0
    };
    // units ≤ 10^9 by the capacity standard, so this is exact; the min
    // keeps the rule true for any u64.
    ((units as f64 * share).round() as u64).min(units)
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The status of a `source = "host"` resource described by `d`, by the
/// rule of the module doc.
pub fn host_status(d: &ResourceDescriptor, host: &HostFigures) -> LiveStatus {
    let total = d.units_total;
    let low_memory = match (host.memory_total_kib, host.memory_available_kib) {
        (Some(t), Some(a)) if t > 0 => (a as f64) < (t as f64) * LOW_MEMORY_SHARE,
        _ => false,
    };
    let mut degraded = low_memory;
    let declared = |degraded: bool| LiveStatus {
        units_available: count(total),
        units_in_use: 0,
        health: Health::degraded_if(degraded),
        utilization: None,
    };
    let (in_use, available, utilization) = match d.unit {
        Unit::Card => {
            if host.gpus.is_empty() {
                return declared(true);
            }
            let seen = u64::try_from(host.gpus.len()).unwrap_or(u64::MAX);
            degraded |= seen < total || host.gpus.iter().any(|g| g.error);
            let busy = host
                .gpus
                .iter()
                .filter(|g| g.utilization_percent.is_some_and(|u| u >= BUSY_GPU_PERCENT))
                .count();
            let usable = seen.min(total);
            let in_use = u64::try_from(busy).unwrap_or(u64::MAX).min(usable);
            let figures: Vec<f64> = host
                .gpus
                .iter()
                .filter_map(|g| g.utilization_percent)
                .collect();
            let utilization = (!figures.is_empty()).then(|| {
                (figures.iter().sum::<f64>() / figures.len() as f64 / 100.0).clamp(0.0, 1.0)
            });
            (in_use, usable - in_use, utilization)
        }
        _ => {
            let Some(load) = host.load1 else {
                return declared(true);
            };
            let utilization = (load / f64::from(host.cpus.max(1))).clamp(0.0, 1.0);
            let in_use = share_of(total, utilization);
            (in_use, total - in_use, Some(utilization))
        }
    };
    LiveStatus {
        units_available: count(available),
        units_in_use: count(in_use),
        health: Health::degraded_if(degraded),
        utilization,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NVIDIA: &str = "\
0, NVIDIA A800-SXM4-80GB, 1324321012345, 87, 81920, 40000
1, NVIDIA A800-SXM4-80GB, 1324321012346, 3, 81920, 10
2, NVIDIA A800-SXM4-80GB, [N/A], [N/A], 81920, [N/A]
3, NVIDIA A800-SXM4-80GB, 1324321012348, ERR!, 81920, 5
";

    fn descriptor(unit: &str, total: u64) -> ResourceDescriptor {
        let class = if unit == "card" { "IC" } else { "GC" };
        ResourceDescriptor::parse(&format!(
            r#"{{"schema":"cpid.resource/1","class":"{class}","region":"31","unit":"{unit}",
                "units_total":{total},"cpu_cores":64,"memory_gib":256,
                "devices":[{{"model":"A800","count":8,"peak_tflops":{{"fp16":312}}}}]}}"#
        ))
        .unwrap()
    }

    #[test]
    fn nvidia_smi_lines_parse_with_missing_and_error_fields() {
        let gpus = parse_nvidia_smi(NVIDIA);
        assert_eq!(gpus.len(), 4);
        assert_eq!(gpus[0].index, 0);
        assert_eq!(gpus[0].name, "NVIDIA A800-SXM4-80GB");
        assert_eq!(gpus[0].serial.as_deref(), Some("1324321012345"));
        assert_eq!(gpus[0].utilization_percent, Some(87.0));
        assert_eq!(gpus[0].memory_total_mib, Some(81920));
        assert_eq!(gpus[0].memory_used_mib, Some(40000));
        assert!(!gpus[0].error);
        assert_eq!(gpus[2].serial, None);
        assert_eq!(gpus[2].utilization_percent, None);
        assert!(!gpus[2].error, "[N/A] is not a fault");
        assert!(gpus[3].error);
        assert_eq!(gpus[3].utilization_percent, None);
    }

    #[test]
    fn malformed_nvidia_smi_output_never_panics() {
        let odd = [
            "",
            "\n\n",
            "garbage",
            "0, A800",
            "x, A800, s, 5, 1, 1",
            "0, A800, s, 5, 1, 1, extra",
            "-1, A800, s, 5, 1, 1",
            "99999999999999999999, A800, s, 5, 1, 1",
            "0, A800, s, -5, -1, 1e400",
            "0, A800, s, NaN, inf, 1",
            "0, A800, s, 500, 18446744073709551616, 1",
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
            "0,,,,,",
            "\u{0}\u{ffff},\u{1F600},,,,",
        ];
        for text in odd {
            for g in parse_nvidia_smi(text) {
                assert!(
                    g.utilization_percent
                        .is_none_or(|u| (0.0..=100.0).contains(&u))
                );
            }
        }
        assert!(parse_nvidia_smi(odd[5]).is_empty());
        assert_eq!(
            parse_nvidia_smi(odd[10])[0].utilization_percent,
            Some(100.0)
        );
        assert_eq!(parse_nvidia_smi(odd[10])[0].memory_total_mib, None);
        // The same index twice counts once.
        assert_eq!(
            parse_nvidia_smi("0, A, s, 5, 1, 1\n0, A, s, 5, 1, 1").len(),
            1
        );
    }

    #[test]
    fn proc_files_parse_and_odd_ones_give_nothing() {
        let cpuinfo = "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n";
        assert_eq!(parse_cpuinfo(cpuinfo), Some(2));
        assert_eq!(parse_cpuinfo(""), None);
        assert_eq!(parse_cpuinfo("processors: 4\nprocessor"), None);
        assert_eq!(parse_loadavg("0.42 0.30 0.25 1/123 4567\n"), Some(0.42));
        for bad in ["", "x 1 2", "-1 0 0", "NaN", "inf 1"] {
            assert_eq!(parse_loadavg(bad), None, "{bad:?}");
        }
        let meminfo =
            "MemTotal:       32768000 kB\nMemFree:  100 kB\nMemAvailable:    1000000 kB\n";
        assert_eq!(parse_meminfo(meminfo), (Some(32_768_000), Some(1_000_000)));
        assert_eq!(parse_meminfo(""), (None, None));
        assert_eq!(
            parse_meminfo(
                "MemTotal: lots\nMemAvailable: 5 MB\nMemTotal: 99999999999999999999999 kB"
            ),
            (None, None)
        );
    }

    #[test]
    fn cards_in_use_are_the_busy_gpus() {
        let host = HostFigures {
            cpus: 64,
            load1: Some(1.0),
            memory_total_kib: Some(1000),
            memory_available_kib: Some(500),
            gpus: parse_nvidia_smi(&NVIDIA.lines().take(2).collect::<Vec<_>>().join("\n")),
        };
        let s = host_status(&descriptor("card", 2), &host);
        assert_eq!((s.units_in_use, s.units_available), (1, 1));
        assert_eq!(s.health, Health::Ok);
        assert_eq!(s.utilization, Some(0.45));
        // Fewer cards seen than booked: only those are offered, degraded.
        let s = host_status(&descriptor("card", 8), &host);
        assert_eq!((s.units_in_use, s.units_available), (1, 1));
        assert_eq!(s.health, Health::Degraded);
        // A GPU in error degrades.
        let all = HostFigures {
            gpus: parse_nvidia_smi(NVIDIA),
            ..host.clone()
        };
        let s = host_status(&descriptor("card", 4), &all);
        assert_eq!(s.health, Health::Degraded);
        assert_eq!((s.units_in_use, s.units_available), (1, 3));
        // No GPUs seen at all: as declared, degraded.
        let none = HostFigures {
            gpus: vec![],
            ..host
        };
        let s = host_status(&descriptor("card", 8), &none);
        assert_eq!((s.units_in_use, s.units_available), (0, 8));
        assert_eq!(s.health, Health::Degraded);
    }

    #[test]
    fn cores_in_use_follow_the_load() {
        let host = HostFigures {
            cpus: 8,
            load1: Some(2.0),
            memory_total_kib: Some(1000),
            memory_available_kib: Some(100),
            gpus: vec![],
        };
        let s = host_status(&descriptor("core", 64), &host);
        assert_eq!(s.utilization, Some(0.25));
        assert_eq!((s.units_in_use, s.units_available), (16, 48));
        assert_eq!(s.health, Health::Ok);
        let busy = HostFigures {
            load1: Some(40.0),
            memory_available_kib: Some(40),
            ..host.clone()
        };
        let s = host_status(&descriptor("node", 3), &busy);
        assert_eq!(s.utilization, Some(1.0));
        assert_eq!((s.units_in_use, s.units_available), (3, 0));
        assert_eq!(s.health, Health::Degraded, "4% memory available");
        let unknown = HostFigures {
            load1: None,
            ..host
        };
        let s = host_status(&descriptor("node", 3), &unknown);
        assert_eq!((s.units_in_use, s.units_available), (0, 3));
        assert_eq!(s.health, Health::Degraded);
    }

    #[test]
    fn a_missing_tool_is_no_figures() {
        assert_eq!(
            run_with_timeout("cpid-no-such-tool", &[], Duration::from_secs(1)),
            None
        );
        assert_eq!(run_with_timeout("false", &[], Duration::from_secs(5)), None);
        let started = Instant::now();
        assert_eq!(
            run_with_timeout("sleep", &["10"], Duration::from_millis(200)),
            None
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(
            run_with_timeout("echo", &["0, A, s, 5, 1, 1"], Duration::from_secs(5)).as_deref(),
            Some("0, A, s, 5, 1, 1\n")
        );
    }
}
