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
//!
//! The node keeps each calendar with the bytes of its row ([`Kept`]), so a
//! booking that only adds to a calendar is checked against the calendar in
//! place and its new row is the old one with the booking appended
//! ([`Kept::plan_booking`]): no copy of the calendar, no re-encoding of
//! the bookings before it. The row is the same postcard encoding either
//! way.

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

/// A calendar as the node holds it: the bookings, and the row's bytes as
/// they were read from or committed to the store (what the next step on
/// this calendar expects to find there).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kept {
    pub calendar: Calendar,
    pub row: Vec<u8>,
}

/// What booking or releasing units changes: the row to write, and how the
/// held calendar becomes the committed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub row: Vec<u8>,
    pub after: After,
}

/// How the calendar the node holds becomes the one a commit wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// One booking added at the end.
    Append(Booking),
    /// Replaced whole (bookings pruned or released, or read afresh).
    Whole(Calendar),
}

impl Kept {
    /// A calendar read from its row.
    pub fn decode(row: &[u8]) -> Option<Kept> {
        Some(Kept {
            calendar: Calendar::decode(row)?,
            row: row.to_vec(),
        })
    }

    /// Books `booking` at `now` on a resource of `total` units: refused
    /// with the clash when it does not fit at some instant of its window
    /// (bookings that ended by `now` hold nothing). When nothing has
    /// ended and `booking.tx` holds nothing yet, the calendar is read in
    /// place and the row grows by the booking's bytes; otherwise the
    /// calendar is pruned, booked and encoded whole.
    pub fn plan_booking(&self, booking: Booking, now: u64, total: u64) -> Result<Planned, Clash> {
        let bookings = &self.calendar.bookings;
        let in_place = bookings.iter().all(|b| b.end > now && b.tx != booking.tx);
        if in_place {
            if let Some(clash) =
                self.calendar
                    .clash(booking.start, booking.end, booking.units, total)
            {
                return Err(clash);
            }
            if let Some(row) = appended(&self.row, &booking) {
                return Ok(Planned {
                    row,
                    after: After::Append(booking),
                });
            }
        }
        let mut next = self.calendar.clone();
        next.prune(now);
        if let Some(clash) = next.clash(booking.start, booking.end, booking.units, total) {
            return Err(clash);
        }
        next.book(booking);
        Ok(Planned {
            row: next.encode(),
            after: After::Whole(next),
        })
    }

    /// Ends `tx`'s booking at `now` (see [`Calendar::release`]), pruning
    /// what has ended.
    pub fn plan_release(&self, tx: &str, now: u64) -> Planned {
        let mut next = self.calendar.clone();
        next.prune(now);
        next.release(tx, now);
        Planned {
            row: next.encode(),
            after: After::Whole(next),
        }
    }

    /// This calendar after `planned` committed over `expected` (the row
    /// it was planned on). A booking appended to a calendar that is no
    /// longer the one it was planned on is read from the new row instead.
    pub fn apply(&mut self, expected: &[u8], planned: Planned) {
        match planned.after {
            After::Append(b) if self.row == expected => self.calendar.bookings.push(b),
            After::Append(_) => {
                self.calendar = Calendar::decode(&planned.row).unwrap_or_default();
            }
            After::Whole(c) => self.calendar = c,
        }
        self.row = planned.row;
    }
}

/// The row of a calendar with `booking` added at the end, from `row`, the
/// row of that calendar: postcard writes the number of bookings as a
/// varint, then each booking, so the new row is the count plus one, the
/// same bookings' bytes, and the new booking's. `None` when `row` does not
/// start with a count (then the caller encodes the calendar whole).
fn appended(row: &[u8], booking: &Booking) -> Option<Vec<u8>> {
    let (count, rest) = if row.is_empty() {
        (0u64, row)
    } else {
        postcard::take_from_bytes::<u64>(row).ok()?
    };
    let mut out = Vec::with_capacity(row.len() + booking.tx.len() + 32);
    out = postcard::to_extend(&count.checked_add(1)?, out).ok()?;
    out.extend_from_slice(rest);
    postcard::to_extend(booking, out).ok()
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

    /// Plans and applies a booking the way an acceptance does.
    fn book_on(kept: &mut Kept, booking: Booking, now: u64, total: u64) -> Result<(), Clash> {
        let planned = kept.plan_booking(booking, now, total)?;
        let expected = kept.row.clone();
        kept.apply(&expected, planned);
        Ok(())
    }

    #[test]
    fn a_booking_appended_to_the_row_is_the_calendar_encoded_whole() {
        let booking = |i: u64| b(&format!("86/TX-{i:06}-X"), 1000 + i, 5000 + i, 1 + i % 3);
        // The count's varint grows a byte past 127 and past 16 383.
        for start in [0u64, 120, 16_380] {
            let mut whole = Calendar {
                bookings: (0..start).map(booking).collect(),
            };
            let mut kept = Kept::decode(&whole.encode()).unwrap();
            for i in start..start + 10 {
                let planned = kept.plan_booking(booking(i), 900, u64::MAX).unwrap();
                assert!(matches!(planned.after, After::Append(_)), "booking {i}");
                let expected = kept.row.clone();
                kept.apply(&expected, planned);
                whole.book(booking(i));
                assert_eq!(kept.row, whole.encode(), "after booking {i}");
                assert_eq!(kept.calendar, whole);
            }
        }
    }

    #[test]
    fn planned_bookings_refuse_what_does_not_fit_and_prune_what_ended() {
        let mut kept = Kept::default();
        book_on(&mut kept, b("a", 100, 200, 6), 50, 8).unwrap();
        book_on(&mut kept, b("b", 150, 300, 2), 50, 8).unwrap();
        let refused = kept.plan_booking(b("c", 0, 400, 1), 50, 8).unwrap_err();
        assert_eq!((refused.start, refused.end, refused.booked), (150, 200, 8));
        // At 200 "a" has ended: it holds nothing, and it is pruned.
        book_on(&mut kept, b("c", 180, 400, 6), 200, 8).unwrap();
        assert_eq!(
            kept.calendar
                .bookings
                .iter()
                .map(|x| x.tx.as_str())
                .collect::<Vec<_>>(),
            ["b", "c"]
        );
        assert_eq!(kept.row, kept.calendar.encode());
        // Booking the same transaction again replaces its booking (checked
        // with the old one still counted, as before).
        book_on(&mut kept, b("c", 180, 400, 0), 200, 8).unwrap();
        assert_eq!(kept.calendar.peak(200, 300), 2);
        assert_eq!(kept.row, kept.calendar.encode());
        let released = kept.plan_release("b", 250);
        let expected = kept.row.clone();
        kept.apply(&expected, released);
        assert_eq!(
            (kept.calendar.peak(200, 250), kept.calendar.peak(250, 300)),
            (2, 0)
        );
        assert_eq!(kept.row, kept.calendar.encode());
    }

    #[test]
    fn an_append_planned_on_another_calendar_is_read_from_its_row() {
        let mut kept = Kept::default();
        book_on(&mut kept, b("a", 100, 200, 1), 50, 8).unwrap();
        let planned = kept.plan_booking(b("b", 100, 200, 1), 50, 8).unwrap();
        let stale = kept.row.clone();
        // The held calendar changed after the plan was made.
        book_on(&mut kept, b("c", 100, 200, 1), 50, 8).unwrap();
        let row = planned.row.clone();
        kept.apply(&stale, planned);
        assert_eq!(kept.row, row);
        assert_eq!(Some(kept.calendar.clone()), Calendar::decode(&row));
    }
}
