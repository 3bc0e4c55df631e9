//! When to try again: the retry schedule as a pure function, and `Retry-After` parsing.

use std::time::Duration;

/// The longest a receiver's `Retry-After` may push a retry out.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The installation's retry schedule (`WEBHOOKS_RETRY_SCHEDULE`, `WEBHOOKS_MAX_ATTEMPTS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub intervals: Vec<Duration>,
    pub max_attempts: u32,
}

impl Schedule {
    /// The wait after `attempts_done` attempts, or `None` when none is left.
    pub fn next_delay(&self, attempts_done: u32) -> Option<Duration> {
        next_delay(&self.intervals, attempts_done, self.max_attempts)
    }
}

/// The wait before the next attempt after `attempts_done` attempts, or `None` when the delivery
/// has had all `max_attempts`. The schedule's last interval repeats.
pub fn next_delay(schedule: &[Duration], attempts_done: u32, max_attempts: u32) -> Option<Duration> {
    if attempts_done >= max_attempts || schedule.is_empty() {
        return None;
    }
    let i = (attempts_done.max(1) as usize - 1).min(schedule.len() - 1);
    Some(schedule[i])
}

/// Adds up to 10% (at most 60 s) so that many deliveries failing together do not retry in one
/// burst. `unit` is a uniformly random number in [0, 1).
pub fn with_jitter(d: Duration, unit: f64) -> Duration {
    let extra = (d.as_secs_f64() * 0.1).min(60.0) * unit.clamp(0.0, 1.0);
    d + Duration::from_secs_f64(extra)
}

/// A uniformly random number in [0, 1).
pub fn random_unit() -> f64 {
    let b = crate::model::secret::random_bytes::<8>();
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` as delta-seconds or an HTTP-date, relative to `now_ms`, capped at
/// [`MAX_RETRY_AFTER`]. Unparseable values are ignored.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<Duration> {
    let v = value.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX).min(MAX_RETRY_AFTER.as_secs()))
    } else {
        let at = chrono::DateTime::parse_from_rfc2822(v).ok()?.timestamp_millis();
        Duration::from_millis((at - now_ms).max(0) as u64)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mins(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_secs(m * 60)).collect()
    }

    #[test]
    fn schedule_then_last_interval_repeats_then_dead() {
        let s = mins(&[1, 5, 30, 120]);
        let got: Vec<Option<u64>> = (1..=7).map(|n| next_delay(&s, n, 7).map(|d| d.as_secs() / 60)).collect();
        assert_eq!(got, vec![Some(1), Some(5), Some(30), Some(120), Some(120), Some(120), None]);
        assert_eq!(next_delay(&s, 5, 5), None);
    }

    #[test]
    fn jitter_is_small_and_bounded() {
        let d = Duration::from_secs(60);
        assert_eq!(with_jitter(d, 0.0), d);
        assert!(with_jitter(d, 0.999) <= Duration::from_secs(66));
        assert!(with_jitter(Duration::from_secs(7200), 0.999) <= Duration::from_secs(7260));
        let u = random_unit();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("120", 0), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("99999999999", 0), Some(MAX_RETRY_AFTER));
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z").unwrap().timestamp_millis();
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("soon", 0), None);
    }
}
