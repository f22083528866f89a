//! The one clock: seconds since the Unix epoch, as every timestamp in a
//! record, a nonce window or a cache entry counts them.
//!
//! Components that decide by time (the registry, the request checker, the
//! store's nonce expiry, the gateway's TTLs, the resolver's validity checks)
//! hold a [`Clock`] instead of reading the system time themselves, so tests
//! can set and advance time without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The system clock, or a manual one that tests move.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `at` until it is set or advanced; clones share it.
    pub fn manual(at: u64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(at))),
        }
    }

    /// Seconds since the Unix epoch (0 if the system clock is before it).
    pub fn now(&self) -> u64 {
        match &self.manual {
            Some(at) => at.load(Ordering::Relaxed),
            None => system_now(),
        }
    }

    /// Moves a manual clock forward by `secs`; the system clock ignores it.
    pub fn advance(&self, secs: u64) {
        if let Some(at) = &self.manual {
            at.fetch_add(secs, Ordering::Relaxed);
        }
    }

    /// Sets a manual clock; the system clock ignores it.
    pub fn set(&self, secs: u64) {
        if let Some(at) = &self.manual {
            at.store(secs, Ordering::Relaxed);
        }
    }
}

/// The system's wall clock, for the command line and set-up code that has
/// no component clock to ask.
pub fn system_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert_eq!(clock.now(), 1_000);
        other.advance(5);
        assert_eq!(clock.now(), 1_005);
        clock.set(7);
        assert_eq!(other.now(), 7);
    }

    #[test]
    fn system_clock_ignores_set_and_advance() {
        let clock = Clock::system();
        clock.set(1);
        assert!(clock.now() > 1_700_000_000);
    }
}
