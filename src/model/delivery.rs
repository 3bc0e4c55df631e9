//! Deliveries: one (event, endpoint) pair and its state, the attempts made for it, the stable
//! failure codes of those attempts, and the decision what happens after one: the retry schedule
//! with its jitter and `Retry-After` (pure functions).

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::model::error::{Error, Result};
use crate::model::time::Time;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Waiting for its first attempt, or for one asked for by hand.
    Pending,
    /// Kept, not sent: its endpoint is disabled by the failure rule or by a 410. Re-enabling the
    /// endpoint sends it (or discards it); after `WEBHOOKS_HOLD_RETENTION` it goes dead.
    Held,
    Succeeded,
    /// The latest attempt failed; another is scheduled.
    Failed,
    /// No attempts left (or it could not be sent at all).
    Dead,
}

impl Status {
    pub const ALL: [Status; 5] = [Status::Pending, Status::Held, Status::Succeeded, Status::Failed, Status::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Held => "held",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Dead => "dead",
        }
    }

    /// Parses a status as the API, the CLI and the database spell it.
    pub fn parse(field: &str, s: &str) -> Result<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            Error::invalid(field, format!("must be one of {}", names.join(", ")))
        })
    }

    /// True once nothing more will happen on its own.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Dead)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Why an attempt failed, or why a delivery ended unsent. The codes are stable: receivers'
/// operators and scripts match on them (docs/troubleshooting.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureCode {
    Timeout,
    Connect,
    Dns,
    Tls,
    BlockedAddress,
    HttpStatus,
    Redirect,
    Gone,
    Protocol,
    InvalidUrl,
    EndpointDisabled,
    PayloadExpired,
    NoSigningKey,
}

impl FailureCode {
    pub const ALL: [FailureCode; 13] = [
        FailureCode::Timeout,
        FailureCode::Connect,
        FailureCode::Dns,
        FailureCode::Tls,
        FailureCode::BlockedAddress,
        FailureCode::HttpStatus,
        FailureCode::Redirect,
        FailureCode::Gone,
        FailureCode::Protocol,
        FailureCode::InvalidUrl,
        FailureCode::EndpointDisabled,
        FailureCode::PayloadExpired,
        FailureCode::NoSigningKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::Timeout => "E_TIMEOUT",
            FailureCode::Connect => "E_CONNECT",
            FailureCode::Dns => "E_DNS",
            FailureCode::Tls => "E_TLS",
            FailureCode::BlockedAddress => "E_BLOCKED_ADDRESS",
            FailureCode::HttpStatus => "E_HTTP_STATUS",
            FailureCode::Redirect => "E_REDIRECT",
            FailureCode::Gone => "E_GONE",
            FailureCode::Protocol => "E_PROTOCOL",
            FailureCode::InvalidUrl => "E_INVALID_URL",
            FailureCode::EndpointDisabled => "E_ENDPOINT_DISABLED",
            FailureCode::PayloadExpired => "E_PAYLOAD_EXPIRED",
            FailureCode::NoSigningKey => "E_NO_SIGNING_KEY",
        }
    }

    /// The code in words, for pages, the CLI and the docs.
    pub fn meaning(self) -> &'static str {
        match self {
            FailureCode::Timeout => "the receiver did not answer completely within WEBHOOKS_REQUEST_TIMEOUT",
            FailureCode::Connect => "the connection was refused, reset or could not be made",
            FailureCode::Dns => "the endpoint's host name did not resolve",
            FailureCode::Tls => "the TLS handshake failed (certificate invalid, expired or for another name)",
            FailureCode::BlockedAddress => "the host resolved only to non-public addresses, which deliveries may not reach (or the receiver redirected to one)",
            FailureCode::HttpStatus => "the receiver answered with a status other than 2xx",
            FailureCode::Redirect => "the receiver answered with a redirect (3xx); redirects are never followed",
            FailureCode::Gone => "the receiver answered 410 Gone, so the endpoint was disabled",
            FailureCode::Protocol => "the receiver's answer was not valid HTTP/1.1 (or its headers ran past 64 KiB)",
            FailureCode::InvalidUrl => "the endpoint URL cannot be requested",
            FailureCode::EndpointDisabled => "the endpoint was disabled before this delivery was sent",
            FailureCode::PayloadExpired => "the event body was purged after WEBHOOKS_PAYLOAD_RETENTION",
            FailureCode::NoSigningKey => "the endpoint has no usable signing key (rotate its secret)",
        }
    }

    pub fn parse(s: &str) -> Option<FailureCode> {
        FailureCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for FailureCode {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for FailureCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FailureCode::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown failure code {s:?}")))
    }
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub user: String,
    pub status: Status,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error_code: Option<FailureCode>,
    pub last_error: Option<String>,
    pub created_at: Time,
    pub last_attempt_at: Option<Time>,
    pub next_attempt_at: Option<Time>,
    pub finished_at: Option<Time>,
    /// A dispatcher is sending it right now.
    pub in_flight: bool,
    /// The event body is still kept, so the delivery can be retried.
    pub payload_available: bool,
}

/// Filters for the delivery log; `before` is a delivery id to page from (exclusive).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub user: Option<String>,
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    pub before: Option<String>,
    /// Only deliveries created at or after / before these times (Unix ms).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: usize,
}

/// The most deliveries one page of the log (API, pages) may ask for.
pub const MAX_PAGE: usize = 500;

/// One request made for a delivery, as the log shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub started_at: Time,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error_code: Option<FailureCode>,
    pub error: Option<String>,
    pub response_snippet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// What one request produced.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub status_code: Option<u16>,
    /// `None` means delivered (2xx).
    pub error_code: Option<FailureCode>,
    pub error: Option<String>,
    pub snippet: String,
    pub response_body: Option<String>,
    pub retry_after: Option<Duration>,
    pub duration_ms: i64,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.error_code.is_none()
    }

    pub fn failure(code: FailureCode, error: impl Into<String>) -> Outcome {
        Outcome { error_code: Some(code), error: Some(error.into()), ..Outcome::default() }
    }
}

/// How a delivery stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Succeeded,
    RetryAt(i64),
    Dead,
}

impl Next {
    pub fn status(self) -> Status {
        match self {
            Next::Succeeded => Status::Succeeded,
            Next::RetryAt(_) => Status::Failed,
            Next::Dead => Status::Dead,
        }
    }
}

/// The retry decision for the outcome of attempt number `attempt` (pure).
pub fn decide(schedule: &Schedule, attempt: u32, outcome: &Outcome, now: i64, jitter_unit: f64) -> Next {
    if outcome.delivered() {
        return Next::Succeeded;
    }
    if matches!(outcome.error_code, Some(FailureCode::Gone | FailureCode::EndpointDisabled)) {
        return Next::Dead;
    }
    match schedule.next_delay(attempt) {
        None => Next::Dead,
        Some(d) => {
            let wait = with_jitter(d, jitter_unit).max(outcome.retry_after.unwrap_or_default());
            Next::RetryAt(now + wait.as_millis() as i64)
        }
    }
}

/// The retention settings.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `WEBHOOKS_LOG_RETENTION`: deliveries, attempts, events, runs.
    pub log: Duration,
    /// `WEBHOOKS_PAYLOAD_RETENTION`: an event body after its last delivery ends.
    pub payload: Duration,
    /// `WEBHOOKS_HOLD_RETENTION`: a held delivery, before it goes dead.
    pub hold: Duration,
    /// `WEBHOOKS_INBOUND_BODY_RETENTION`: an inbound request's body.
    pub inbound_body: Duration,
    /// `WEBHOOKS_INBOUND_RETENTION`: inbound request metadata, the duplicate check, counters.
    pub inbound: Duration,
}

// ---- when to try again: the retry schedule as a pure function, and `Retry-After` ----------

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

    fn failed(code: FailureCode, retry_after: Option<u64>) -> Outcome {
        Outcome { retry_after: retry_after.map(Duration::from_secs), ..Outcome::failure(code, "x") }
    }

    #[test]
    fn retry_decisions() {
        use FailureCode::*;
        let s = Schedule {
            intervals: [1, 5, 30, 120].iter().map(|m| Duration::from_secs(m * 60)).collect(),
            max_attempts: 5,
        };
        let ok = Outcome::default();
        assert_eq!(decide(&s, 1, &ok, 0, 0.0), Next::Succeeded);
        assert_eq!(decide(&s, 1, &failed(HttpStatus, None), 0, 0.0), Next::RetryAt(60_000));
        assert_eq!(decide(&s, 2, &failed(Timeout, None), 0, 0.0), Next::RetryAt(300_000));
        assert_eq!(decide(&s, 4, &failed(Connect, None), 0, 0.0), Next::RetryAt(7_200_000));
        assert_eq!(decide(&s, 5, &failed(Connect, None), 0, 0.0), Next::Dead);
        assert_eq!(decide(&s, 1, &failed(Gone, None), 0, 0.0), Next::Dead);
        assert_eq!(decide(&s, 1, &failed(HttpStatus, Some(600)), 0, 0.0), Next::RetryAt(600_000));
        assert_eq!(decide(&s, 3, &failed(HttpStatus, Some(10)), 0, 0.0), Next::RetryAt(1_800_000));
        match decide(&s, 1, &failed(Redirect, None), 0, 0.99) {
            Next::RetryAt(t) => assert!((60_000..=66_000).contains(&t)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statuses_and_codes_round_trip_their_names() {
        for s in Status::ALL {
            assert_eq!(Status::parse("status", s.as_str()).unwrap(), s);
        }
        assert_eq!(Status::parse("status", "done").unwrap_err().field(), Some("status"));
        let mut names: Vec<&str> = FailureCode::ALL.iter().map(|c| c.as_str()).collect();
        for c in FailureCode::ALL {
            assert_eq!(FailureCode::parse(c.as_str()), Some(c));
            assert!(!c.meaning().is_empty());
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), FailureCode::ALL.len());
    }

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
