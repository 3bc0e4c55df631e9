//! Time and identifiers. Times are Unix milliseconds, UTC, as the database stores them. Ids are
//! a type prefix and a ULID (`evt_01JDZ6Q8T6Y3N5K0W2X4V7B9CD`), which begins with its creation
//! time: ids sort by creation time, so "newest first" is an index scan on the id alone and a time
//! range is an id range ([`id_at`]).

use chrono::{DateTime, SecondsFormat, Utc};

pub const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// Now, in Unix milliseconds. Test builds (the `test-clock` feature, which no release build
/// has) add `WEBHOOKS_TEST_CLOCK_OFFSET` milliseconds, so tests can move through days.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis() + test_clock_offset()
}

#[cfg(feature = "test-clock")]
pub fn test_clock_offset() -> i64 {
    std::env::var("WEBHOOKS_TEST_CLOCK_OFFSET").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

#[cfg(not(feature = "test-clock"))]
pub fn test_clock_offset() -> i64 {
    0
}

/// RFC 3339 with whole seconds and `Z`, as event envelopes and JSON output use.
pub fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub fn parse_rfc3339(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.timestamp_millis())
}

/// How [`parse_moment`] takes a time, for error messages.
pub const MOMENT_FORMS: &str =
    "a date (2026-11-23, midnight UTC), a UTC time (2026-11-23T10:00) or an RFC 3339 time (2026-11-23T10:00:00Z)";

/// A time as people and forms write it ([`MOMENT_FORMS`]): RFC 3339, a date (midnight UTC), or
/// a date and time without a zone (UTC, as an HTML `datetime-local` field sends it).
pub fn parse_moment(s: &str) -> Option<i64> {
    let s = s.trim();
    parse_rfc3339(s)
        .or_else(|| {
            ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
                .map(|t| t.and_utc().timestamp_millis())
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis())
        })
}

/// A point in time, Unix milliseconds UTC, as the store keeps it; shown (JSON, pages, the CLI)
/// as RFC 3339 with whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub i64);

impl Time {
    pub fn now() -> Time {
        Time(now_ms())
    }

    pub fn ms(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&rfc3339(self.0))
    }
}

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

/// The hour `ms` falls in (the key of hourly counters).
pub fn hour_of(ms: i64) -> i64 {
    ms - ms.rem_euclid(HOUR_MS)
}

/// A new id of this kind (`evt`, `dlv`, `ep`, `key`, `tok`, `run`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

/// True when `s` looks like an id of this kind (used to answer 404 early, not as a security check).
pub fn is_id(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|u| u.len() == 26 && ulid::Ulid::from_string(u).is_ok())
}

/// The smallest id of this kind created at or after `ms`, to turn a time range into an id range.
pub fn id_at(prefix: &str, ms: i64) -> String {
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms.max(0) as u64, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_bounds_work() {
        let a = new_id("dlv");
        assert!(is_id("dlv", &a));
        assert!(!is_id("evt", &a));
        let now = now_ms();
        assert!(id_at("dlv", now - 1000) < a);
        assert!(id_at("dlv", now + 1000) > a);
    }

    #[test]
    fn hours_and_rfc3339() {
        assert_eq!(hour_of(2 * HOUR_MS + 59 * 60_000), 2 * HOUR_MS);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(Time(90_000).to_string(), "1970-01-01T00:01:30Z");
        assert_eq!(serde_json::to_value(Time(90_000)).unwrap(), "1970-01-01T00:01:30Z");
    }
}
