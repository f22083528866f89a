//! A resource's capacity calendar: the units accepted transactions hold,
//! per time window.
//!
//! One store row per resource (table `calendar`, key the identifier text),
//! the whole list of bookings that have not ended. A step that books or
//! releases units reads the row, changes it and commits the new row with
//! the transaction's record, *expecting* the bytes it read
//! ([`crate::store::Expect`]): two acceptances that read the same calendar
//! cannot both commit, whatever process or thread they run in. That is
//! OpenStack Placement's resource-provider generation, with the row's bytes
//! as the generation.

use serde::{Deserialize, Serialize};

use crate::store::Table;

/// The store table of calendars.
pub const CALENDAR: Table = Table::new("calendar");

/// Units held by one accepted transaction over `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Booking {
    /// The transaction's identifier.
    pub tx: String,
    pub start: u64,
    pub end: u64,
    pub units: u64,
}

/// The bookings of one resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    pub bookings: Vec<Booking>,
}

/// A window where a booking would not fit: `[start, end)` already holds
/// `booked` of `total` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clash {
    pub start: u64,
    pub end: u64,
    pub booked: u64,
    pub total: u64,
}

impl Calendar {
    pub fn decode(bytes: &[u8]) -> Option<Calendar> {
        postcard::from_bytes(bytes).ok()
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Drops bookings that ended at or before `now`: they hold nothing any
    /// more and would only grow the row.
    pub fn prune(&mut self, now: u64) {
        self.bookings.retain(|b| b.end > now);
    }

    /// The most units booked at any instant of `[start, end)`.
    pub fn peak(&self, start: u64, end: u64) -> u64 {
        self.profile(start, end)
            .into_iter()
            .map(|(_, _, units)| units)
            .max()
            .unwrap_or(0)
    }

    /// The units booked over `[start, end)` as consecutive pieces
    /// `(from, to, units)` where the total is constant.
    fn profile(&self, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
        let mut edges: Vec<(u64, i128)> = Vec::new();
        for b in &self.bookings {
            let (s, e) = (b.start.max(start), b.end.min(end));
            if s < e {
                edges.push((s, i128::from(b.units)));
                edges.push((e, -i128::from(b.units)));
            }
        }
        edges.sort_unstable();
        let mut out = Vec::new();
        let mut level: i128 = 0;
        let mut at = start;
        for (t, delta) in edges {
            if t > at {
                out.push((at, t, u64::try_from(level).unwrap_or(0)));
                at = t;
            }
            level += delta;
        }
        if at < end {
            out.push((at, end, u64::try_from(level).unwrap_or(0)));
        }
        out
    }

    /// The first window of `[start, end)` where `units` more would exceed
    /// `total`, widened to the whole stretch where it would; `None` when
    /// the booking fits at every instant.
    pub fn clash(&self, start: u64, end: u64, units: u64, total: u64) -> Option<Clash> {
        let mut found: Option<Clash> = None;
        for (from, to, booked) in self.profile(start, end) {
            let over = booked.saturating_add(units) > total;
            match (&mut found, over) {
                (None, true) => {
                    found = Some(Clash {
                        start: from,
                        end: to,
                        booked,
                        total,
                    })
                }
                (Some(c), true) if c.end == from => {
                    c.end = to;
                    c.booked = c.booked.max(booked);
                }
                (Some(_), _) => break,
                (None, false) => {}
            }
        }
        found
    }

    pub fn book(&mut self, booking: Booking) {
        self.bookings.retain(|b| b.tx != booking.tx);
        self.bookings.push(booking);
    }

    /// Ends `tx`'s booking at `at` (settled early); removes it when that
    /// leaves nothing.
    pub fn release(&mut self, tx: &str, at: u64) {
        for b in &mut self.bookings {
            if b.tx == tx {
                b.end = b.end.min(at.max(b.start));
            }
        }
        self.bookings.retain(|b| b.end > b.start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(tx: &str, start: u64, end: u64, units: u64) -> Booking {
        Booking {
            tx: tx.into(),
            start,
            end,
            units,
        }
    }

    #[test]
    fn windows_that_do_not_overlap_share_units() {
        let mut c = Calendar::default();
        c.book(b("a", 100, 200, 8));
        assert_eq!(
            c.clash(200, 300, 8, 8),
            None,
            "[100,200) ends where [200,300) starts"
        );
        assert_eq!(c.clash(0, 100, 8, 8), None);
        assert_eq!(c.peak(150, 250), 8);
        assert_eq!(c.peak(200, 250), 0);
    }

    #[test]
    fn a_clash_names_the_whole_stretch_that_is_over() {
        let mut c = Calendar::default();
        c.book(b("a", 100, 200, 4));
        c.book(b("b", 150, 300, 4));
        // 6 more fit nowhere in [100, 300): 4, 8, 4 booked; 10 > 8 throughout.
        assert_eq!(
            c.clash(0, 400, 6, 8),
            Some(Clash {
                start: 100,
                end: 300,
                booked: 8,
                total: 8
            })
        );
        // 4 more fit except where both overlap.
        assert_eq!(
            c.clash(0, 400, 4, 8),
            Some(Clash {
                start: 150,
                end: 200,
                booked: 8,
                total: 8
            })
        );
        assert_eq!(c.clash(0, 400, 0, 8), None);
    }

    #[test]
    fn release_frees_the_rest_of_the_window_and_prune_drops_the_past() {
        let mut c = Calendar::default();
        c.book(b("a", 100, 200, 8));
        c.book(b("b", 100, 500, 1));
        c.release("a", 150);
        assert_eq!(c.peak(150, 200), 1);
        assert_eq!(c.peak(100, 150), 9);
        c.release("a", 50);
        assert_eq!(c.bookings.len(), 1, "released before it began: gone");
        c.prune(500);
        assert!(c.bookings.is_empty());
        let bytes = c.encode();
        assert_eq!(Calendar::decode(&bytes), Some(c));
    }
}
