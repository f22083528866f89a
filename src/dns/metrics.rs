//! The DNS answer tally: answers counted by question type and rcode under
//! [`DNS_QUERIES`], answer time under [`DNS_ANSWER_SECONDS`], what
//! response-rate limiting did under [`RRL`] and DNS cookies under
//! [`DNS_COOKIES`]. An answer RRL dropped counts there only.
//!
//! The UDP fast path never looks a metric up by name: [`DnsTally`] counts
//! answers in a plain local table and flushes it into pre-resolved handles
//! once per receive batch, so a counter costs the query path an array
//! increment. The names are [`crate::telemetry`]'s; this module depends on
//! it, never the other way round.

use std::time::Duration;

use metrics::{Counter, Histogram};

use super::cookie::Verdict;
use super::response::{Rcode, Summary};
use super::rrl::Action;
use super::wire::rtype;
use crate::telemetry::{DNS_ANSWER_SECONDS, DNS_COOKIES, DNS_QUERIES, RRL};

const TYPES: [(u16, &str); 10] = [
    (rtype::A, "A"),
    (rtype::NS, "NS"),
    (rtype::SOA, "SOA"),
    (rtype::TXT, "TXT"),
    (rtype::AAAA, "AAAA"),
    (rtype::URI, "URI"),
    (rtype::ANY, "ANY"),
    (rtype::CPREC, "TYPE65280"),
    (rtype::CPKEY, "TYPE65281"),
    (0, OTHER),
];
const OTHER: &str = "other";
const RCODES: [Rcode; 8] = Rcode::ALL;

fn type_slot(qtype: u16) -> usize {
    TYPES
        .iter()
        .position(|(t, _)| *t == qtype && *t != 0)
        .unwrap_or(TYPES.len() - 1)
}

fn rcode_slot(rcode: Rcode) -> usize {
    RCODES.iter().position(|r| *r == rcode).unwrap_or(0)
}

/// Counts one answer directly (TCP, where a lookup per query is cheap
/// next to the connection).
pub fn count_answer(summary: &Summary, took: Duration) {
    if let Some(result) = summary.cookie.label() {
        metrics::counter!(DNS_COOKIES, "result" => result).increment(1);
    }
    if let Some(action) = summary.rrl.label() {
        metrics::counter!(RRL, "action" => action).increment(1);
    }
    if summary.rrl == Action::Dropped {
        return;
    }
    let t = TYPES
        .get(type_slot(summary.qtype))
        .map_or(OTHER, |&(_, label)| label);
    metrics::counter!(DNS_QUERIES, "type" => t, "rcode" => summary.rcode.as_str()).increment(1);
    metrics::histogram!(DNS_ANSWER_SECONDS).record(took.as_secs_f64());
}

/// Per-thread DNS counters: local counts, flushed into shared handles.
pub struct DnsTally {
    /// Resolved on first use, so `/metrics` lists only what happened.
    counters: Vec<Option<Counter>>,
    counts: Vec<u64>,
    latency: Histogram,
    /// By [`Action::COUNTED`] and [`Verdict::COUNTED`], flushed likewise.
    rrl: Side<3>,
    cookies: Side<4>,
}

/// A few counts of one metric by one label, flushed like the main table.
struct Side<const N: usize> {
    counts: [u64; N],
    counters: [Option<Counter>; N],
}

impl<const N: usize> Side<N> {
    fn new() -> Self {
        Side {
            counts: [0; N],
            counters: std::array::from_fn(|_| None),
        }
    }

    #[inline]
    fn count(&mut self, slot: Option<usize>) {
        if let Some(c) = slot.and_then(|i| self.counts.get_mut(i)) {
            *c += 1;
        }
    }

    fn flush(&mut self, name: &'static str, label: &'static str, values: [&'static str; N]) {
        for ((count, counter), value) in self.counts.iter_mut().zip(&mut self.counters).zip(values)
        {
            if *count > 0 {
                counter
                    .get_or_insert_with(|| metrics::counter!(name, label => value))
                    .increment(*count);
                *count = 0;
            }
        }
    }
}

impl Default for DnsTally {
    fn default() -> Self {
        Self::new()
    }
}

impl DnsTally {
    /// Must be made after [`crate::telemetry::install`] (handles bind to the recorder).
    pub fn new() -> DnsTally {
        let slots = TYPES.len() * RCODES.len();
        DnsTally {
            counts: vec![0; slots],
            counters: vec![None; slots],
            latency: metrics::histogram!(DNS_ANSWER_SECONDS),
            rrl: Side::new(),
            cookies: Side::new(),
        }
    }

    /// Counts one answer (one that RRL dropped under [`RRL`] only).
    #[inline]
    pub fn count(&mut self, summary: &Summary) {
        if summary.cookie != Verdict::Absent {
            self.cookies
                .count(Verdict::COUNTED.iter().position(|v| *v == summary.cookie));
        }
        if summary.rrl != Action::Off {
            self.rrl
                .count(Action::COUNTED.iter().position(|a| *a == summary.rrl));
            if summary.rrl == Action::Dropped {
                return;
            }
        }
        let slot = type_slot(summary.qtype) * RCODES.len() + rcode_slot(summary.rcode);
        if let Some(c) = self.counts.get_mut(slot) {
            *c += 1;
        }
    }

    /// Publishes the counts, and `answered` answers that each took `took`
    /// from receipt to send.
    pub fn flush(&mut self, took: Duration, answered: u64) {
        // Slot `type_slot * RCODES.len() + rcode_slot` has these labels.
        let labels = TYPES
            .iter()
            .flat_map(|&(_, t)| RCODES.iter().map(move |r| (t, r.as_str())));
        for ((count, counter), (t, r)) in self.counts.iter_mut().zip(&mut self.counters).zip(labels)
        {
            if *count > 0 {
                counter
                    .get_or_insert_with(
                        || metrics::counter!(DNS_QUERIES, "type" => t, "rcode" => r),
                    )
                    .increment(*count);
                *count = 0;
            }
        }
        self.rrl.flush(
            RRL,
            "action",
            Action::COUNTED.map(|a| a.label().unwrap_or("")),
        );
        self.cookies.flush(
            DNS_COOKIES,
            "result",
            Verdict::COUNTED.map(|v| v.label().unwrap_or("")),
        );
        if answered > 0 {
            self.latency
                .record_many(took.as_secs_f64(), answered as usize);
        }
    }
}
