//! Prometheus metrics (the `metrics` crate, rendered by
//! `metrics-exporter-prometheus` from the node's own `/metrics` route).
//!
//! Every metric name is written here once. This module knows no subsystem:
//! each one counts its own events under these names (the DNS answer tally
//! is [`crate::dns::metrics`], which keeps metric lookups off the query
//! path).

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const DNS_QUERIES: &str = "cpid_dns_queries_total";
pub const DNS_ANSWER_SECONDS: &str = "cpid_dns_answer_seconds";
pub const REGISTRATIONS: &str = "cpid_registrations_total";
pub const SIGNATURE_FAILURES: &str = "cpid_signature_failures_total";
/// Status reports by outcome (`ok` or the error code).
/// Selections and schedules answered, by kind and outcome (`some`, `none`).
pub const SELECTIONS: &str = "cpid_selections_total";
pub const REPORTS: &str = "cpid_reports_total";
/// Resource statuses carried by accepted reports.
pub const REPORTED_RESOURCES: &str = "cpid_reported_resources_total";
/// Refused reports that count against a provider's data quality, by reason.
pub const QUALITY_EVENTS: &str = "cpid_quality_events_total";
/// Child summary pulls by child prefix and result (ok, unreachable,
/// verification_failed).
pub const ROLLUP_PULLS: &str = "cpid_rollup_pulls_total";
/// Records committed but not published to the hot tier (the write stands;
/// the next start publishes them).
pub const PUBLISH_FAILURES: &str = "cpid_publish_failures_total";
pub const STORE_COMMIT_SECONDS: &str = "cpid_store_commit_seconds";
/// Zone transfers served, by kind (`axfr`, `ixfr`, `ixfr_full` when the
/// history did not reach, `ixfr_current`, `ixfr_udp`).
pub const TRANSFERS: &str = "cpid_zone_transfers_total";
/// Messages sent in zone-transfer streams.
pub const TRANSFER_MESSAGES: &str = "cpid_zone_transfer_messages_total";
/// Zone-transfer requests refused, by reason (`acl`, `badkey`, `badsig`,
/// `badtime`, `formerr`, `not_this_zone`).
pub const TRANSFER_REFUSALS: &str = "cpid_zone_transfer_refusals_total";
/// TSIG that did not verify, by error (`badkey`, `badsig`, `badtime`,
/// `formerr`), on transfers and on NOTIFY answers.
pub const TSIG_FAILURES: &str = "cpid_tsig_failures_total";
/// NOTIFY messages sent to secondaries (retries included).
pub const NOTIFY_SENT: &str = "cpid_notify_sent_total";
/// NOTIFY messages a secondary acknowledged.
pub const NOTIFY_ACKED: &str = "cpid_notify_acked_total";
/// Request signatures verified together (histogram of batch sizes).
pub const SIGNATURE_BATCH: &str = "cpid_signature_batch_size";
/// Gateway: time of one upstream query (histogram).
pub const GATEWAY_UPSTREAM_SECONDS: &str = "cpid_gateway_upstream_seconds";
/// Gateway: lookups by tier (`l1`, `l2`) and result (`hit`, `miss`).
pub const GATEWAY_CACHE: &str = "cpid_gateway_cache_total";
/// Gateway: records or delegations that failed verification, by reason.
pub const GATEWAY_VERIFY_FAILURES: &str = "cpid_gateway_verification_failures_total";
/// Gateway: negative answers refused for want of a valid DNSSEC denial.
pub const GATEWAY_DENIAL_FAILURES: &str = "cpid_gateway_denial_failures_total";
/// Gateway: answers served stale (RFC 8767).
pub const GATEWAY_STALE: &str = "cpid_gateway_stale_answers_total";
/// Gateway: entries and bytes held in L1 (gauges).
pub const GATEWAY_L1_ENTRIES: &str = "cpid_gateway_l1_entries";
pub const GATEWAY_L1_BYTES: &str = "cpid_gateway_l1_bytes";
/// Security events recorded, by kind (before coalescing).
pub const SECURITY_EVENTS: &str = "cpid_security_events_total";
/// Security events not kept because too many distinct ones came at once.
pub const SECURITY_EVENTS_DROPPED: &str = "cpid_security_events_dropped_total";
/// Transparency log: leaves under the latest signed checkpoint (gauge).
pub const LOG_SIZE: &str = "cpid_log_size";
/// Transparency log: integrations that failed (retried).
pub const LOG_FAILURES: &str = "cpid_log_failures_total";
/// Witnessing: checkpoints of other nodes' logs this node cosigned.
pub const WITNESS_COSIGNED: &str = "cpid_witness_cosigned_total";
/// Witnessing: this log's submissions to its witnesses, by outcome.
pub const WITNESS_SUBMISSIONS: &str = "cpid_witness_submissions_total";
/// Transparency log: proofs served, by kind.
pub const LOG_PROOFS: &str = "cpid_log_proofs_total";
/// HTTP requests and connections refused or cut off by a limit
/// (`[http.limits]`), by `limit`: `address`, `key`, `connections`,
/// `header_timeout`, `body_timeout`, `body_size`.
pub const HTTP_LIMITED: &str = "cpid_http_limited_total";
/// UDP answers response-rate limiting looked at (`[dns.rrl]`), by
/// `action`: `passed`, `slipped` (sent truncated), `dropped`.
pub const RRL: &str = "cpid_rrl_total";
/// Queries with a COOKIE option (RFC 7873), by `result`: `new` (client
/// cookie only), `valid`, `invalid` (a new server cookie was sent),
/// `malformed` (FORMERR).
pub const DNS_COOKIES: &str = "cpid_dns_cookies_total";
/// DNSSEC signatures made on line (`dns::signing`): RRsets on first use
/// or renewal, and denial NSECs the cache did not hold.
pub const DNSSEC_SIGNATURES: &str = "cpid_dnssec_signatures_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once (later calls return the same
/// handle); `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(DNS_ANSWER_SECONDS.into()),
                    &[1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 1e-3, 1e-2],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(SIGNATURE_BATCH.into()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(GATEWAY_UPSTREAM_SECONDS.into()),
                        &[
                            1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0, 2.0,
                        ],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(STORE_COMMIT_SECONDS.into()),
                        &[
                            1e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.5, 1.0,
                        ],
                    )
                })
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// HELP text for every metric above (Prometheus tooling, `promtool check
/// metrics` among it, wants one per family).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(DNS_QUERIES, "DNS queries answered, by query type and rcode");
    describe_counter!(
        RRL,
        "UDP answers seen by response-rate limiting, by action (passed, slipped, dropped)"
    );
    describe_counter!(
        DNS_COOKIES,
        "Queries with a DNS COOKIE option, by result (new, valid, invalid, malformed)"
    );
    describe_counter!(
        DNSSEC_SIGNATURES,
        "DNSSEC signatures made on line (RRsets on first use or renewal, uncached denials)"
    );
    describe_counter!(TRANSFERS, "Zone transfers served, by kind");
    describe_counter!(TRANSFER_MESSAGES, "Messages sent in zone-transfer streams");
    describe_counter!(
        TRANSFER_REFUSALS,
        "Zone-transfer requests refused, by reason"
    );
    describe_counter!(
        TSIG_FAILURES,
        "TSIG signatures that did not verify, by error"
    );
    describe_counter!(
        NOTIFY_SENT,
        "NOTIFY messages sent to secondaries, retries included"
    );
    describe_counter!(NOTIFY_ACKED, "NOTIFY messages acknowledged by a secondary");
    describe_histogram!(
        DNS_ANSWER_SECONDS,
        Unit::Seconds,
        "Time to answer one DNS query (sampled)"
    );
    describe_counter!(
        REGISTRATIONS,
        "Registration requests (providers, identifiers, updates) by kind and outcome"
    );
    describe_counter!(
        SIGNATURE_FAILURES,
        "Signed HTTP requests refused, by reason"
    );
    describe_counter!(REPORTS, "Status reports by outcome (ok or the error code)");
    describe_counter!(
        SELECTIONS,
        "Selections and schedules by kind and outcome (some or none fit)"
    );
    describe_counter!(
        ROLLUP_PULLS,
        "Pulls of child situation summaries by child prefix and result"
    );
    describe_counter!(
        REPORTED_RESOURCES,
        "Resource statuses carried by accepted status reports"
    );
    describe_counter!(
        QUALITY_EVENTS,
        "Refused status reports that count against a provider's data quality, by reason"
    );
    describe_counter!(
        PUBLISH_FAILURES,
        "Records committed but not published to the DNS hot tier"
    );
    describe_histogram!(
        STORE_COMMIT_SECONDS,
        Unit::Seconds,
        "Time of one durable store commit"
    );
    describe_histogram!(
        SIGNATURE_BATCH,
        "Request signatures verified together in one batch"
    );
    describe_histogram!(
        GATEWAY_UPSTREAM_SECONDS,
        Unit::Seconds,
        "Gateway: time of one upstream query"
    );
    describe_counter!(GATEWAY_CACHE, "Gateway: cache lookups by tier and result");
    describe_counter!(
        GATEWAY_VERIFY_FAILURES,
        "Gateway: records or delegations that failed verification, by reason"
    );
    describe_counter!(
        GATEWAY_DENIAL_FAILURES,
        "Gateway: negative answers refused for want of a valid DNSSEC denial"
    );
    describe_counter!(GATEWAY_STALE, "Gateway: answers served stale (RFC 8767)");
    describe_gauge!(GATEWAY_L1_ENTRIES, "Gateway: entries held in the L1 cache");
    describe_gauge!(
        GATEWAY_L1_BYTES,
        Unit::Bytes,
        "Gateway: bytes held in the L1 cache"
    );
    describe_gauge!(
        LOG_SIZE,
        "Transparency log: leaves under the latest checkpoint"
    );
    describe_counter!(
        LOG_FAILURES,
        "Transparency log: failed integrations (retried)"
    );
    describe_counter!(
        WITNESS_COSIGNED,
        "Checkpoints of other nodes' logs cosigned"
    );
    describe_counter!(
        WITNESS_SUBMISSIONS,
        "This log's checkpoint submissions to its witnesses, by outcome"
    );
    describe_counter!(LOG_PROOFS, "Transparency log: proofs served, by kind");
    describe_counter!(
        HTTP_LIMITED,
        "HTTP requests and connections refused or cut off by a limit, by limit"
    );
    describe_counter!(SECURITY_EVENTS, "Security events recorded, by kind");
    describe_counter!(
        SECURITY_EVENTS_DROPPED,
        "Security events not kept: too many distinct ones in one interval"
    );
}

/// The Prometheus text of every metric ("" without a recorder).
pub fn render() -> String {
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Drains histogram samples into their buckets; call periodically so
/// memory does not grow between scrapes.
pub fn upkeep() {
    if let Some(h) = install() {
        h.run_upkeep();
    }
}

/// How often [`upkeep`] should run.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);
