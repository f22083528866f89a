//! What an HTTP client may hold and ask for (`[http.limits]`): request
//! rates per client address and per signing key, the body's size and the
//! time it may take to arrive. The connection bound and the header read
//! timeout are the listener's ([`super::server`]); this module holds the
//! settings for both and counts every refusal under one metric,
//! `cpid_http_limited_total{limit}`.
//!
//! Rates are GCRA token buckets (the `governor` crate), one per key:
//! `per_second` on average, `burst` at once. A refusal is a `429
//! rate_limited` from the one error table with `Retry-After` (whole
//! seconds) and is reported to the security-event feed as
//! [`Kind::RateLimited`] (coalesced there per source and path).
//!
//! The per-address limit is checked first, before the body is read, on
//! every route. The per-key limit is checked in [`super::auth`] *after*
//! the signature verified, keyed by the verified key: a limit keyed by an
//! unverified `keyid` would let anyone spend a provider's allowance and
//! lock it out, while the cost of the checks before it (one Ed25519
//! verification, batched) is what the per-address limit already bounds.
//! What the per-key limit protects is the expensive part after it: the
//! durable commit, from one key spread over many addresses.
//!
//! This module must never hold a lock across an await, and it never
//! trusts a header for the client's address: the address is the TCP
//! peer's.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::error::{ApiError, Code};
use crate::config::{HttpLimits, Rate};
use crate::events::{Kind, Sink};
use crate::ident::keys::KeyId;
use crate::telemetry;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// The limits of one listener, shared by its connections and handlers.
pub struct Limits {
    config: HttpLimits,
    max_body_bytes: usize,
    per_address: Option<Keyed<IpAddr>>,
    per_key: Option<Keyed<KeyId>>,
    clock: DefaultClock,
    events: Arc<dyn Sink>,
}

fn limiter<K: Clone + std::hash::Hash + Eq>(rate: Rate) -> Option<Keyed<K>> {
    let per_second = NonZeroU32::new(rate.per_second)?;
    let burst = NonZeroU32::new(rate.burst).unwrap_or(per_second);
    Some(RateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    ))
}

/// The bucket an address draws from: an IPv4 address, or the /64 of an
/// IPv6 one (what one host or site is usually given), so a client cannot
/// fill the table by walking its own prefix.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl Limits {
    /// The limits `config` sets, bodies up to `max_body_bytes`, refusals
    /// reported to `events`.
    pub fn new(config: &HttpLimits, max_body_bytes: usize, events: Arc<dyn Sink>) -> Limits {
        Limits {
            config: config.clone(),
            max_body_bytes,
            per_address: limiter(config.rate_per_address),
            per_key: limiter(config.rate_per_key),
            clock: DefaultClock::default(),
            events,
        }
    }

    pub fn max_connections(&self) -> usize {
        self.config.max_connections
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.config.header_timeout_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.config.body_timeout_ms)
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    fn exempt(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.config
            .rate_exempt
            .iter()
            .any(|e| e.to_canonical() == ip)
    }

    /// One more request from `ip` (for `path`), or a 429.
    pub fn check_address(&self, ip: IpAddr, path: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_address else {
            return Ok(());
        };
        if self.exempt(ip) {
            return Ok(());
        }
        limiter.check_key(&address_key(ip)).map_err(|until| {
            let wait = until.wait_time_from(self.clock.now());
            self.refuse(
                "address",
                &ip.to_string(),
                path,
                self.config.rate_per_address,
                wait,
            )
        })
    }

    /// One more signed request by the verified `key` from `peer` (for
    /// `path`), or a 429.
    pub fn check_key(&self, key: KeyId, peer: Option<IpAddr>, path: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.per_key else {
            return Ok(());
        };
        if peer.is_some_and(|ip| self.exempt(ip)) {
            return Ok(());
        }
        limiter.check_key(&key).map_err(|until| {
            let wait = until.wait_time_from(self.clock.now());
            self.refuse(
                "key",
                &key.to_string(),
                path,
                self.config.rate_per_key,
                wait,
            )
        })
    }

    fn refuse(
        &self,
        limit: &'static str,
        source: &str,
        path: &str,
        rate: Rate,
        wait: Duration,
    ) -> ApiError {
        counted(limit);
        let reason = format!(
            "too many requests from this {limit}: {} a second, {} at once; retry after the \
             Retry-After seconds",
            rate.per_second, rate.burst
        );
        self.events.record(Kind::RateLimited, source, path, &reason);
        ApiError::rate_limited(reason, wait)
    }

    /// Forgets buckets that are full again (indistinguishable from new
    /// ones), so the tables hold only the clients of the last moments.
    pub fn upkeep(&self) {
        if let Some(l) = &self.per_address {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_key {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// Counts one refusal or cut-off under `limit`.
pub fn counted(limit: &'static str) {
    metrics::counter!(telemetry::HTTP_LIMITED, "limit" => limit).increment(1);
}

/// What the listener knows of one connection, for telling a slow-loris
/// client (a request head begun and not finished, or never begun) from an
/// idle keep-alive connection when the header timeout closes it.
#[derive(Default)]
pub struct Connection {
    /// Bytes read from the client so far.
    pub(super) read: AtomicU64,
    /// `read` when the last request's body had been read in full.
    consumed: AtomicU64,
    requests: AtomicU64,
}

impl Connection {
    fn request_done(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.consumed
            .store(self.read.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Whether a header timeout caught a client holding the connection:
    /// it never sent a request, or began one and stopped.
    pub(super) fn held(&self) -> bool {
        self.requests.load(Ordering::Relaxed) == 0
            || self.read.load(Ordering::Relaxed) > self.consumed.load(Ordering::Relaxed)
    }
}

/// The middleware in front of every route of a listener: the per-address
/// rate, then the body read in full within the size limit and the body
/// timeout (every handler reads whole bodies anyway), so no route can be
/// held open by a slow body or fed an unbounded one.
pub async fn guard(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<Arc<Connection>>().cloned();
    let done = || {
        if let Some(c) = &conn {
            c.request_done();
        }
    };
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = peer
        && let Err(e) = limits.check_address(ip, req.uri().path())
    {
        done();
        // Without a body to skip, the connection can serve the retry.
        return if req.body().is_end_stream() {
            e.into_response()
        } else {
            closing(e)
        };
    }
    let (parts, body) = req.into_parts();
    let limit = limits.max_body_bytes;
    let too_large = || {
        counted("body_size");
        closing(ApiError::new(
            Code::BodyTooLarge,
            format!("request bodies are limited to {limit} bytes"),
        ))
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        done();
        return too_large();
    }
    let read = tokio::time::timeout(limits.body_timeout(), axum::body::to_bytes(body, limit)).await;
    done();
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            return if over {
                too_large()
            } else {
                closing(ApiError::new(
                    Code::BodyUnreadable,
                    format!("reading the body: {e}"),
                ))
            };
        }
        Err(_) => {
            counted("body_timeout");
            return closing(ApiError::new(
                Code::BodyTimeout,
                format!(
                    "the body did not arrive within {} ms of the request's head",
                    limits.config.body_timeout_ms
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A refusal sent before the body was read: the connection closes after
/// it (what is left of the body is not waited for).
fn closing(e: ApiError) -> Response {
    let mut response = e.into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The bytes sent to a connection over the bound before it is closed: a
/// 503 `too_many_connections` from the one error table, written without
/// reading the request.
pub fn overflow_response() -> Vec<u8> {
    let code = Code::TooManyConnections;
    let body = serde_json::json!({
        "error": code.as_str(),
        "reason": "this server is serving as many connections as it takes; retry shortly",
    })
    .to_string();
    format!(
        "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         retry-after: 1\r\nconnection: close\r\n\r\n{body}",
        code.status(),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_share_a_bucket_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_burst_beyond_the_rate_is_refused_with_a_retry_after() {
        let config = HttpLimits {
            rate_per_address: Rate {
                per_second: 1,
                burst: 3,
            },
            rate_exempt: Vec::new(),
            ..HttpLimits::default()
        };
        let limits = Limits::new(&config, 1024, Arc::new(crate::events::Discard));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            limits.check_address(ip, "/").unwrap();
        }
        let refused = limits.check_address(ip, "/").unwrap_err();
        assert_eq!(refused.code, Code::RateLimited);
        assert_eq!(refused.retry_after, Some(1));
        // Another address has its own bucket; loopback is not exempt here.
        limits
            .check_address("192.0.2.2".parse().unwrap(), "/")
            .unwrap();
    }

    #[test]
    fn exempt_addresses_and_a_zero_rate_are_never_limited() {
        let config = HttpLimits {
            rate_per_address: Rate {
                per_second: 1,
                burst: 1,
            },
            ..HttpLimits::default()
        };
        let limits = Limits::new(&config, 1024, Arc::new(crate::events::Discard));
        let loopback: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        for _ in 0..10 {
            limits.check_address(loopback, "/").unwrap();
        }
        let off = HttpLimits {
            rate_per_key: Rate {
                per_second: 0,
                burst: 0,
            },
            ..HttpLimits::default()
        };
        let limits = Limits::new(&off, 1024, Arc::new(crate::events::Discard));
        for _ in 0..1000 {
            limits
                .check_key(KeyId([7; 16]), Some("192.0.2.1".parse().unwrap()), "/")
                .unwrap();
        }
    }

    #[test]
    fn the_overflow_answer_is_a_503_with_a_json_reason() {
        let text = String::from_utf8(overflow_response()).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "too_many_connections");
    }
}
