//! Response-rate limiting on UDP (ISC-TN-2012-1, with Knot 3.2's `rrl`
//! module semantics): answers are counted per source network and kind of
//! answer, and a flow over its rate gets its answers dropped, or every Nth
//! of them "slipped" — sent truncated (TC) with empty sections, so a real
//! client behind a spoofed flood can still come back over TCP.
//!
//! A flow is (source network, [`Class`], bucket name). The network is the
//! client address cut to `ipv4_prefix` / `ipv6_prefix` bits (/24 and /56
//! by default). The name comes from the *logical* answer the engine
//! decided, not from the bytes: a positive answer, a NODATA and an ANY
//! answer count per question name; a missing name (NXDOMAIN) per zone,
//! with the zone apex as its name, so a random-subdomain flood is one flow
//! however many names it makes up; a referral per zone cut; an error
//! (REFUSED, FORMERR, NOTIMP …) per root. Knot keys NXDOMAIN and errors by
//! zone as well, and referrals by question name; cpid keys those by cut.
//!
//! Each flow hashes (SipHash-1-3, a random key per start) to one of
//! `table_size` buckets, fixed when the node starts: a flood never grows
//! it, and flows that collide share a bucket (and its rate). A bucket is a
//! GCRA token bucket in one `AtomicU64` (the time its tokens are spent
//! until): `rate_limit` answers a second, a burst of as many. Looking one
//! up is a hash and a compare-and-swap; no lock, no allocation. Slipping is
//! counted, not rolled: with `slip = N` the Nth, 2Nth … limited answer
//! slips (Knot rolls a 1-in-N die). Whitelisted networks and clients that
//! present a valid server cookie ([`super::cookie`]) are never limited.
//! TCP is never limited: a TCP client has proved its address.

use std::hash::Hasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use siphasher::sip::SipHasher13;

use super::network::Network;
use crate::config::RrlConfig;

/// What kind of answer a response is, for its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Records of the asked type.
    Positive,
    /// The name exists, the type does not.
    NoData,
    /// The name does not exist ("missing name"), counted per zone.
    NxDomain,
    /// A delegation to a child zone, counted per cut.
    Referral,
    /// Qtype ANY, counted per name.
    Any,
    /// Every other rcode, counted per root.
    Error,
}

impl Class {
    fn code(self) -> u8 {
        match self {
            Class::Positive => 1,
            Class::NoData => 2,
            Class::NxDomain => 3,
            Class::Referral => 4,
            Class::Any => 5,
            Class::Error => 6,
        }
    }
}

/// What RRL did with an answer, for `cpid_rrl_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Not looked at: RRL off, TCP, or a whitelisted client.
    #[default]
    Off,
    /// Sent as decided (also answers to a valid server cookie).
    Passed,
    /// Sent truncated with empty sections.
    Slipped,
    /// Not sent.
    Dropped,
}

impl Action {
    /// The counted actions, in label order.
    pub const COUNTED: [Action; 3] = [Action::Passed, Action::Slipped, Action::Dropped];

    /// The `action` label; `None` when not counted.
    pub fn label(self) -> Option<&'static str> {
        match self {
            Action::Off => None,
            Action::Passed => Some("passed"),
            Action::Slipped => Some("slipped"),
            Action::Dropped => Some("dropped"),
        }
    }
}

/// Why an RRL configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RrlError {
    #[error("dns.rrl.rate_limit must be 1 to 1000000")]
    Rate,
    #[error("dns.rrl.slip must be 0 to 100")]
    Slip,
    #[error("dns.rrl.table_size must be 1 to 67108864")]
    TableSize,
    #[error("dns.rrl.ipv4_prefix must be 1 to 32 and ipv6_prefix 1 to 128")]
    Prefix,
    #[error("dns.rrl.whitelist: {0}")]
    Whitelist(String),
    #[error("no randomness for the RRL hash key: {0}")]
    Random(String),
}

/// The limiter: a fixed table of token buckets.
#[derive(Debug)]
pub struct Rrl {
    buckets: Box<[AtomicU64]>,
    key: [u8; 16],
    /// Nanoseconds between two tokens.
    interval: u64,
    /// How far ahead of now a bucket may be spent: a burst of `rate`.
    tolerance: u64,
    slip: u64,
    v4_mask: u32,
    v6_mask: u128,
    whitelist: Box<[Network]>,
    epoch: Instant,
    /// Limited answers so far, for every-Nth slipping.
    limited: AtomicU64,
}

impl Rrl {
    /// Checks `[dns.rrl]` and reads its whitelist.
    pub fn check(c: &RrlConfig) -> Result<Vec<Network>, RrlError> {
        if !(1..=1_000_000).contains(&c.rate_limit) {
            return Err(RrlError::Rate);
        }
        if c.slip > 100 {
            return Err(RrlError::Slip);
        }
        if !(1..=1 << 26).contains(&c.table_size) {
            return Err(RrlError::TableSize);
        }
        if !(1..=32).contains(&c.ipv4_prefix) || !(1..=128).contains(&c.ipv6_prefix) {
            return Err(RrlError::Prefix);
        }
        c.whitelist
            .iter()
            .map(|n| Network::parse(n).map_err(RrlError::Whitelist))
            .collect()
    }

    /// The limiter `[dns.rrl]` describes; `None` when it is disabled.
    pub fn from_config(c: &RrlConfig) -> Result<Option<Rrl>, RrlError> {
        let whitelist = Rrl::check(c)?;
        if !c.enabled {
            return Ok(None);
        }
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).map_err(|e| RrlError::Random(e.to_string()))?;
        let interval = 1_000_000_000 / u64::from(c.rate_limit);
        Ok(Some(Rrl {
            buckets: (0..c.table_size).map(|_| AtomicU64::new(0)).collect(),
            key,
            interval,
            tolerance: interval * u64::from(c.rate_limit - 1),
            slip: u64::from(c.slip),
            v4_mask: u32::MAX << (32 - u32::from(c.ipv4_prefix)),
            v6_mask: u128::MAX << (128 - u32::from(c.ipv6_prefix)),
            whitelist: whitelist.into_boxed_slice(),
            epoch: Instant::now(),
            limited: AtomicU64::new(0),
        }))
    }

    /// Decides an answer of `class` about `name` (lower-case wire form) to
    /// `addr`, received at `at`: [`Action::Passed`], or over the rate
    /// [`Action::Slipped`] or [`Action::Dropped`]; [`Action::Off`] for a
    /// whitelisted client (not counted at all).
    pub fn decide(&self, addr: IpAddr, class: Class, name: &[u8], at: Instant) -> Action {
        if !self.whitelist.is_empty() && self.whitelist.iter().any(|n| n.contains(addr)) {
            return Action::Off;
        }
        let mut h = SipHasher13::new_with_key(&self.key);
        h.write_u8(class.code());
        match addr.to_canonical() {
            IpAddr::V4(a) => h.write_u32(u32::from(a) & self.v4_mask),
            IpAddr::V6(a) => h.write_u128(u128::from(a) & self.v6_mask),
        }
        h.write(name);
        let len = self.buckets.len() as u64;
        let Some(bucket) = self.buckets.get((h.finish() % len.max(1)) as usize) else {
            return Action::Passed;
        };
        // Nanoseconds since start, never 0 (0 is an unused bucket).
        let now = at.saturating_duration_since(self.epoch).as_nanos() as u64 + self.interval;
        let mut spent = bucket.load(Ordering::Relaxed);
        loop {
            let from = spent.max(now);
            if from - now > self.tolerance {
                break;
            }
            match bucket.compare_exchange_weak(
                spent,
                from + self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Action::Passed,
                Err(seen) => spent = seen,
            }
        }
        let n = self.limited.fetch_add(1, Ordering::Relaxed) + 1;
        if self.slip > 0 && n.is_multiple_of(self.slip) {
            Action::Slipped
        } else {
            Action::Dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(rate: u32, slip: u32) -> RrlConfig {
        RrlConfig {
            rate_limit: rate,
            slip,
            table_size: 1021,
            ..RrlConfig::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const APEX: &[u8] = b"\x0286\x04cpid\x08internal\x00";

    fn burst(rrl: &Rrl, addr: &str, n: usize, at: Instant) -> [usize; 3] {
        let mut seen = [0; 3];
        for _ in 0..n {
            match rrl.decide(ip(addr), Class::NxDomain, APEX, at) {
                Action::Passed => seen[0] += 1,
                Action::Slipped => seen[1] += 1,
                Action::Dropped => seen[2] += 1,
                Action::Off => panic!("not whitelisted"),
            }
        }
        seen
    }

    #[test]
    fn a_burst_gets_the_rate_then_slips_every_nth() {
        let at = Instant::now();
        let rrl = Rrl::from_config(&config(5, 2)).unwrap().unwrap();
        assert_eq!(burst(&rrl, "192.0.2.1", 25, at), [5, 10, 10]);
        let rrl = Rrl::from_config(&config(5, 0)).unwrap().unwrap();
        assert_eq!(burst(&rrl, "192.0.2.1", 25, at), [5, 0, 20]);
        let rrl = Rrl::from_config(&config(5, 1)).unwrap().unwrap();
        assert_eq!(burst(&rrl, "192.0.2.1", 25, at), [5, 20, 0]);
        let rrl = Rrl::from_config(&config(5, 3)).unwrap().unwrap();
        assert_eq!(burst(&rrl, "192.0.2.1", 26, at), [5, 7, 14]);
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let rrl = Rrl::from_config(&config(10, 0)).unwrap().unwrap();
        let at = Instant::now();
        assert_eq!(burst(&rrl, "192.0.2.1", 20, at)[0], 10);
        assert_eq!(
            burst(&rrl, "192.0.2.1", 20, at + Duration::from_millis(500))[0],
            5
        );
        assert_eq!(
            burst(&rrl, "192.0.2.1", 20, at + Duration::from_secs(10))[0],
            10
        );
    }

    #[test]
    fn the_network_not_the_address_is_the_flow() {
        let at = Instant::now();
        let rrl = Rrl::from_config(&config(5, 0)).unwrap().unwrap();
        assert_eq!(burst(&rrl, "192.0.2.1", 5, at)[0], 5);
        assert_eq!(burst(&rrl, "192.0.2.200", 5, at)[0], 0, "same /24");
        assert_eq!(burst(&rrl, "192.0.3.1", 5, at)[0], 5, "another /24");
        assert_eq!(burst(&rrl, "2001:db8:0:1::1", 5, at)[0], 5);
        assert_eq!(burst(&rrl, "2001:db8:0:2::1", 5, at)[0], 0, "same /56");
        assert_eq!(burst(&rrl, "2001:db8:0:100::1", 5, at)[0], 5, "another /56");
    }

    #[test]
    fn classes_and_names_are_separate_flows_and_whitelists_pass() {
        let at = Instant::now();
        let mut c = config(1, 0);
        c.whitelist = vec!["10.0.0.0/8".into()];
        let rrl = Rrl::from_config(&c).unwrap().unwrap();
        let a = ip("192.0.2.1");
        assert_eq!(
            rrl.decide(a, Class::Positive, b"\x01a\x00", at),
            Action::Passed
        );
        assert_eq!(
            rrl.decide(a, Class::Positive, b"\x01a\x00", at),
            Action::Dropped
        );
        assert_eq!(
            rrl.decide(a, Class::Positive, b"\x01b\x00", at),
            Action::Passed
        );
        assert_eq!(
            rrl.decide(a, Class::NoData, b"\x01a\x00", at),
            Action::Passed
        );
        for _ in 0..100 {
            assert_eq!(
                rrl.decide(ip("10.1.2.3"), Class::Error, b"\x00", at),
                Action::Off
            );
        }
    }

    #[test]
    fn collisions_share_a_bucket_in_a_fixed_table() {
        let at = Instant::now();
        let mut c = config(3, 0);
        c.table_size = 1;
        let rrl = Rrl::from_config(&c).unwrap().unwrap();
        let names: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let passed = names
            .iter()
            .filter(|n| rrl.decide(ip("192.0.2.1"), Class::Positive, n, at) == Action::Passed)
            .count();
        assert_eq!(passed, 3);
        assert_eq!(rrl.buckets.len(), 1);
    }

    #[test]
    fn bad_settings_are_refused_and_disabled_is_none() {
        assert!(Rrl::from_config(&config(0, 2)).is_err());
        assert!(Rrl::from_config(&config(5, 101)).is_err());
        let mut c = config(5, 2);
        c.table_size = 0;
        assert!(Rrl::from_config(&c).is_err());
        let mut c = config(5, 2);
        c.ipv4_prefix = 33;
        assert!(Rrl::from_config(&c).is_err());
        let mut c = config(5, 2);
        c.whitelist = vec!["10.0.0.0/40".into()];
        assert!(Rrl::from_config(&c).is_err());
        let mut c = config(5, 2);
        c.enabled = false;
        assert!(Rrl::from_config(&c).unwrap().is_none());
    }
}
