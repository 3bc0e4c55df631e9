//! Paced delivery as pure rules (docs/pacing.md): an endpoint's limits, the pause a receiver asks
//! for, and the decision a claim makes for each due delivery of a limited or paused endpoint —
//! send it now, or park it until it may go.
//!
//! The rate is kept as one start time per slot (`next_at`, the earliest time the next request may
//! start; each start moves it 1/rate on): requests are spaced, never sent in bursts, so no
//! one-second window holds more than the limit (and one more where a window's edge cuts a slot).
//! Deliveries that must wait are parked one slot apart from `parked_until` on, so that they come
//! due one by one, each when it may go, instead of all together at every slot.

use std::time::Duration;

use crate::model::delivery::Outcome;
use crate::model::error::{Error, Result};

/// The smallest and largest `max_per_second`: one request every 100 s, and 1,000 per second.
pub const MIN_PER_SECOND: f64 = 0.01;
pub const MAX_PER_SECOND: f64 = 1000.0;
/// The largest `max_in_flight`.
pub const MAX_IN_FLIGHT: i64 = 1000;

/// How long a 429 without `Retry-After` pauses its endpoint.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(5);
/// The longest pause a receiver's `Retry-After` can put on a whole endpoint (the delivery that got
/// the answer itself honours up to 24 hours).
pub const MAX_PAUSE: Duration = Duration::from_secs(3600);

/// An endpoint's limits; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub max_per_second: Option<f64>,
    pub max_in_flight: Option<i64>,
}

impl Limits {
    pub fn is_limited(&self) -> bool {
        self.max_per_second.is_some() || self.max_in_flight.is_some()
    }

    /// The time between two request starts, in ms (at least 1).
    pub fn interval_ms(&self) -> Option<i64> {
        self.max_per_second.map(|r| ((1000.0 / r).ceil() as i64).max(1))
    }
}

/// What `max_per_second` must be, as every error about it says.
pub fn per_second_rule() -> String {
    format!("must be a number from {MIN_PER_SECOND} to {MAX_PER_SECOND} (requests per second), or null for no limit")
}

/// What `max_in_flight` must be.
pub fn in_flight_rule() -> String {
    format!("must be a whole number from 1 to {MAX_IN_FLIGHT} (requests at once), or null for no limit")
}

/// Checks `max_per_second` (`field` names it in the error).
pub fn check_per_second(field: &str, v: f64) -> Result<f64> {
    if !v.is_finite() || !(MIN_PER_SECOND..=MAX_PER_SECOND).contains(&v) {
        return Err(Error::invalid(field, per_second_rule()));
    }
    Ok(v)
}

/// Checks `max_in_flight`.
pub fn check_in_flight(field: &str, v: i64) -> Result<i64> {
    if !(1..=MAX_IN_FLIGHT).contains(&v) {
        return Err(Error::invalid(field, in_flight_rule()));
    }
    Ok(v)
}

/// How long an attempt's answer pauses its whole endpoint: a 429 (for its `Retry-After`, else
/// [`DEFAULT_PAUSE`]) or a 503 with `Retry-After`; at most [`MAX_PAUSE`].
pub fn pause_of(o: &Outcome) -> Option<Duration> {
    match (o.status_code, o.retry_after) {
        (Some(429), after) => Some(after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE)),
        (Some(503), Some(after)) => Some(after.min(MAX_PAUSE)),
        _ => None,
    }
}

/// What a claim knows about one limited or paused endpoint while it decides, and writes back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gate {
    pub limits: Limits,
    /// Until when its receiver asked for no requests (0: none).
    pub paused_until: i64,
    /// The earliest start of its next request (rate).
    pub next_at: i64,
    /// Where the next parked delivery goes.
    pub parked_until: i64,
    /// Its deliveries leased now, and when the last of those leases runs out.
    pub in_flight: i64,
    pub lease_end: i64,
}

/// A claim's decision for one due delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Lease it and send it now.
    Send,
    /// Move it to this time (ms) and leave it there.
    Park(i64),
}

impl Gate {
    /// Decides for one due delivery at `now`, leased until `lease_until` if it is sent, and
    /// moves the gate on: a send takes a slot and a place in flight. A delivery that must wait
    /// takes the next place in the line of parked ones, one slot after the one before; one that
    /// was parked already (`parked`) has waited its turn, and waits only for the next slot.
    pub fn admit(&mut self, now: i64, lease_until: i64, parked: bool) -> Admit {
        let interval = self.limits.interval_ms();
        let mut earliest = now.max(self.paused_until);
        if interval.is_some() {
            earliest = earliest.max(self.next_at);
        }
        let full = self.limits.max_in_flight.is_some_and(|m| self.in_flight >= m);
        if full {
            // Woken when one of those ends (`record`), or at the latest when their leases run out.
            earliest = earliest.max(self.lease_end);
        }
        if earliest <= now && !full {
            self.in_flight += 1;
            self.lease_end = self.lease_end.max(lease_until);
            if let Some(iv) = interval {
                self.next_at = self.next_at.max(now) + iv;
            }
            return Admit::Send;
        }
        if parked {
            return Admit::Park(earliest);
        }
        let at = earliest.max(self.parked_until);
        self.parked_until = at + interval.unwrap_or(0);
        Admit::Park(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(per_second: Option<f64>, in_flight: Option<i64>) -> Gate {
        Gate { limits: Limits { max_per_second: per_second, max_in_flight: in_flight }, ..Gate::default() }
    }

    #[test]
    fn a_rate_spaces_starts_and_parks_the_rest_one_slot_apart() {
        let mut g = gate(Some(5.0), None);
        assert_eq!(g.admit(1_000, 61_000, false), Admit::Send);
        // The next slot is 200 ms on; three more due now are parked at 1200, 1400, 1600.
        assert_eq!(g.admit(1_000, 61_000, false), Admit::Park(1_200));
        assert_eq!(g.admit(1_010, 61_010, false), Admit::Park(1_400));
        assert_eq!(g.admit(1_020, 61_020, false), Admit::Park(1_600));
        // Each comes due at its place and goes.
        assert_eq!(g.admit(1_200, 61_200, true), Admit::Send);
        assert_eq!(g.admit(1_403, 61_403, true), Admit::Send);
        // Late by 3 ms: the next slot is counted from the late start, never sooner; the parked
        // one due before it waits for it, not at the end of the line.
        assert_eq!(g.next_at, 1_603);
        assert_eq!(g.admit(1_600, 61_600, true), Admit::Park(1_603));
        // A new one joins the end of the line.
        assert_eq!(g.admit(1_600, 61_600, false), Admit::Park(1_800));
    }

    #[test]
    fn a_pause_parks_everything_until_it_ends_and_a_rate_spreads_them_after_it() {
        let mut g = gate(None, None);
        g.paused_until = 5_000;
        assert_eq!(g.admit(1_000, 2_000, false), Admit::Park(5_000));
        assert_eq!(g.admit(1_000, 2_000, false), Admit::Park(5_000));
        assert_eq!(g.admit(5_000, 6_000, true), Admit::Send);
        let mut g = gate(Some(2.0), None);
        g.paused_until = 5_000;
        assert_eq!(g.admit(1_000, 2_000, false), Admit::Park(5_000));
        assert_eq!(g.admit(1_000, 2_000, false), Admit::Park(5_500));
    }

    #[test]
    fn in_flight_counts_leases_and_parks_at_the_last_lease_end() {
        let mut g = gate(None, Some(2));
        assert_eq!(g.admit(0, 60_000, false), Admit::Send);
        assert_eq!(g.admit(0, 60_100, false), Admit::Send);
        assert_eq!(g.in_flight, 2);
        assert_eq!(g.admit(0, 60_200, false), Admit::Park(60_100));
    }

    #[test]
    fn pauses_come_from_429_and_from_503_with_retry_after() {
        let o = |code: u16, after: Option<u64>| Outcome {
            status_code: Some(code),
            retry_after: after.map(Duration::from_secs),
            ..Outcome::default()
        };
        assert_eq!(pause_of(&o(429, Some(3))), Some(Duration::from_secs(3)));
        assert_eq!(pause_of(&o(429, None)), Some(DEFAULT_PAUSE));
        assert_eq!(pause_of(&o(503, Some(7))), Some(Duration::from_secs(7)));
        assert_eq!(pause_of(&o(503, None)), None);
        assert_eq!(pause_of(&o(500, Some(7))), None);
        assert_eq!(pause_of(&o(429, Some(86_400))), Some(MAX_PAUSE));
    }

    #[test]
    fn limits_are_checked() {
        assert!(check_per_second("max_per_second", 0.0).is_err());
        assert!(check_per_second("max_per_second", f64::NAN).is_err());
        assert!(check_per_second("max_per_second", 1000.5).is_err());
        assert_eq!(check_per_second("max_per_second", 0.5).unwrap(), 0.5);
        assert!(check_in_flight("max_in_flight", 0).is_err());
        assert!(check_in_flight("max_in_flight", 1001).is_err());
        assert_eq!(check_in_flight("max_in_flight", 1).unwrap(), 1);
    }
}
