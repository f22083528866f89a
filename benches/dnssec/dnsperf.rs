//! dnsperf pinned to CPU 1 against a server on CPU 0, as `compare.py`
//! runs it (10 clients, at most 200 queries outstanding, one thread; a
//! 2 s timeout), and
//! what one run cost the server: its CPU seconds from `/proc` before and
//! after, the answers from dnsperf's report, and the signatures it made.

use std::path::Path;
use std::process::Command;

use crate::servers::{Server, cpu};

/// How a run offers its queries.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// `-Q rate`: the same traffic for every server.
    Fixed(u32),
    /// No `-Q`: as fast as the server answers (dnsperf keeps 200 queries
    /// outstanding).
    Saturation,
}

/// What dnsperf reported about one run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub sent: u64,
    pub completed: u64,
    pub lost_pct: f64,
    /// dnsperf's "Run time (s)".
    pub run_time: f64,
    /// "NOERROR 123 (100.00%)", as dnsperf prints it.
    pub rcodes: String,
    /// Average response size, bytes.
    pub response_bytes: f64,
}

/// One measured run.
#[derive(Clone, Debug)]
pub struct Run {
    pub report: Report,
    /// Server CPU seconds over the run.
    pub cpu: f64,
    /// Signatures the server made during the run (cpid only).
    pub signatures: Option<f64>,
}

impl Run {
    /// Server CPU µs per answered query.
    pub fn us_per_answer(&self) -> f64 {
        self.cpu / self.report.completed.max(1) as f64 * 1e6
    }

    /// Answers per second of server CPU: what one fully used core would
    /// answer (`compare.py`'s QPS ÷ CPU share).
    pub fn per_core(&self) -> f64 {
        if self.cpu > 0.0 {
            self.report.completed as f64 / self.cpu
        } else {
            f64::NAN
        }
    }

    /// Answers per second of wall time.
    pub fn qps(&self) -> f64 {
        self.report.completed as f64 / self.report.run_time.max(1e-9)
    }

    /// The share of CPU 0 the server used while dnsperf sent (its run
    /// time leaves out the wait for the last answers or their timeouts).
    pub fn share(&self) -> f64 {
        self.cpu / self.report.run_time.max(1e-9)
    }

    /// Signatures made per answer during the run.
    pub fn sigs_per_answer(&self) -> Option<f64> {
        self.signatures
            .map(|s| s / self.report.completed.max(1) as f64)
    }

    /// The server answered less than 95 % of a fixed rate: the run measured
    /// it at saturation, not at that load.
    pub fn over_capacity(&self, load: Load) -> bool {
        matches!(load, Load::Fixed(rate) if self.qps() < 0.95 * f64::from(rate))
    }

    /// " OVER CAPACITY" after a run that [`Run::over_capacity`].
    pub fn flag(&self, load: Load) -> &'static str {
        if self.over_capacity(load) {
            " OVER CAPACITY"
        } else {
            ""
        }
    }

    /// One line for the per-round log.
    pub fn line(&self) -> String {
        let sigs = match self.sigs_per_answer() {
            Some(s) => format!(" sigs/answer {s:.4}"),
            None => String::new(),
        };
        format!(
            "{:>8.0} answers/s, CPU {:.2}, {:>6.2} µs/answer, {:>9.0} answers/core-s, lost {:.2} %, \
             {:.0} B/answer{sigs} [{}]",
            self.qps(),
            self.share(),
            self.us_per_answer(),
            self.per_core(),
            self.report.lost_pct,
            self.report.response_bytes,
            self.report.rcodes
        )
    }
}

/// Runs dnsperf over `queries` against `server` for `seconds`, with DO
/// (`-D`) when `dnssec`, else EDNS without DO (`-e`), and measures the
/// server around it.
pub fn measure(server: &dyn Server, queries: &Path, seconds: u32, dnssec: bool, load: Load) -> Run {
    let mut args: Vec<String> = vec![
        "-l".into(),
        seconds.to_string(),
        if dnssec { "-D" } else { "-e" }.into(),
    ];
    if let Load::Fixed(rate) = load {
        args.extend(["-Q".into(), rate.to_string()]);
    }
    // The metric is read over HTTP, outside the CPU window.
    let sigs0 = server.signatures();
    let cpu0 = cpu(server);
    let report = dnsperf(server.port(), queries, &args);
    let cpu1 = cpu(server);
    let sigs1 = server.signatures();
    assert!(
        report.completed > 0,
        "{} answered nothing to {}",
        server.name(),
        queries.display()
    );
    Run {
        report,
        cpu: cpu1 - cpu0,
        signatures: sigs0.zip(sigs1).map(|(a, b)| b - a),
    }
}

/// One pass over `queries` with DO, as fast as the server answers.
pub fn warm_up(port: u16, queries: &Path) -> Report {
    dnsperf(
        port,
        queries,
        &["-n", "1", "-l", "600", "-D"].map(String::from),
    )
}

fn dnsperf(port: u16, queries: &Path, extra: &[String]) -> Report {
    let out = Command::new("taskset")
        .args([
            "-c",
            "1",
            "dnsperf",
            "-s",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .arg("-d")
        .arg(queries)
        // A query unanswered for 2 s on loopback is lost; dnsperf's 5 s
        // default only makes a saturated run wait longer at its end.
        .args(["-c", "10", "-q", "200", "-T", "1", "-t", "2"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run dnsperf: {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let report = parse(&text);
    assert!(
        out.status.success() && report.sent > 0,
        "dnsperf {extra:?} against port {port} failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

/// The figures of dnsperf's "Statistics:" block.
fn parse(text: &str) -> Report {
    let mut r = Report::default();
    let first_number = |s: &str| -> f64 {
        s.split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .unwrap_or(f64::NAN)
    };
    for line in text.lines().map(str::trim) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Queries sent" => r.sent = first_number(value) as u64,
            "Queries completed" => r.completed = first_number(value) as u64,
            "Queries lost" => {
                r.lost_pct = value
                    .split_once('(')
                    .map(|(_, p)| first_number(&p.replace(['%', ')'], " ")))
                    .unwrap_or(f64::NAN)
            }
            "Run time (s)" => r.run_time = first_number(value),
            "Response codes" => r.rcodes = value.to_string(),
            "Average packet size" => {
                r.response_bytes = value
                    .split_once("response")
                    .map(|(_, b)| first_number(b))
                    .unwrap_or(f64::NAN)
            }
            _ => {}
        }
    }
    r
}
