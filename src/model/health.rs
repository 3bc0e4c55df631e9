//! Health at a glance: per-endpoint success over the last 24 hours, counts by status, an hourly
//! success series for the dashboard, and the dispatcher's queue. The figures; `store::health`
//! reads them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::time::{self, Time};

use crate::model::time::hour_of;
pub use crate::model::time::{DAY_MS, HOUR_MS};

/// The first hour counted in "the last 24 hours".
pub fn first_hour(now: i64) -> i64 {
    hour_of(now) - 23 * HOUR_MS
}

/// Counts on pages stop at this many: counting further would make a page's cost grow with the
/// backlog (a million pending deliveries must not make the dashboard slow).
pub const COUNT_CAP: i64 = 10_000;

/// A dispatcher not seen for this long is reported (by `doctor` and on the dashboard): cron
/// starts one every minute, so three missed minutes mean it stopped.
pub const STALE_AFTER: Duration = Duration::from_secs(180);

/// True when the last dispatcher run (seconds ago; `None`: never) is too long ago.
pub fn is_stale(last_run_seconds_ago: Option<i64>) -> bool {
    last_run_seconds_ago.is_none_or(|s| s > STALE_AFTER.as_secs() as i64)
}

// ---- the failure rule (docs/reliability.md, "When an endpoint keeps failing") ---------------

/// How an endpoint stands for its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    #[default]
    Ok,
    /// A delivery went dead and no request has succeeded since.
    Failing,
    Disabled,
}

/// Why an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisabledReason {
    /// By its owner or an administrator: new events make no deliveries.
    Manual,
    /// The receiver answered 410 Gone: new events are held.
    Gone,
    /// The failure rule: new events are held.
    SustainedFailure,
}

impl DisabledReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisabledReason::Manual => "manual",
            DisabledReason::Gone => "gone",
            DisabledReason::SustainedFailure => "sustained_failure",
        }
    }

    pub const ALL: [DisabledReason; 3] =
        [DisabledReason::Manual, DisabledReason::Gone, DisabledReason::SustainedFailure];

    pub fn parse(s: &str) -> Option<DisabledReason> {
        DisabledReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reason in words, for pages and the CLI.
    pub fn describe(self) -> &'static str {
        match self {
            DisabledReason::Manual => "disabled by hand",
            DisabledReason::Gone => "the receiver answered 410 Gone",
            DisabledReason::SustainedFailure => "every delivery failed for too long",
        }
    }

    /// True when new events are held for the endpoint rather than dropped.
    pub fn holds(self) -> bool {
        self != DisabledReason::Manual
    }
}

/// The rule's settings: `WEBHOOKS_DISABLE_AFTER` (`None`: `off`, never disable for failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRule {
    pub disable_after: Option<Duration>,
}

/// What the dispatcher needs to apply the rule and queue its notices: the rule, and which
/// operator channels are set up (a notice is queued only for those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify {
    pub rule: FailureRule,
    /// `WEBHOOKS_OPERATOR_URL` is set: every operational event is posted there.
    pub webhook: bool,
    /// `WEBHOOKS_OPERATOR_EMAIL` is set: the notices that ask someone to act are mailed there
    /// (`Notice::is_mailed`).
    pub email: bool,
}

/// Dead deliveries an endpoint must have had before the rule disables it …
pub const DEAD_TO_DISABLE: u32 = 3;
/// … with the first and the last at least this far apart, so one burst never disables.
pub const DEAD_SPAN_TO_DISABLE: Duration = Duration::from_secs(12 * 3600);

/// What an attempt's outcome means for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// A 2xx: every count starts again.
    Success,
    /// A failure that counts.
    Failure,
    /// Neither: a 429 (the receiver asked to slow down) leaves the record as it is.
    Neutral,
}

impl Counted {
    /// What an attempt's outcome counts as: a 2xx succeeds, a 429 is neutral (the receiver asked
    /// to slow down, it is not broken), anything else fails.
    pub fn of(o: &crate::model::delivery::Outcome) -> Counted {
        if o.delivered() {
            Counted::Success
        } else if o.status_code == Some(429) {
            Counted::Neutral
        } else {
            Counted::Failure
        }
    }
}

/// An endpoint's failure record, kept on its row: when failures began with no 2xx since, the
/// deliveries that went dead since then, and when a request last succeeded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failure {
    pub since: Option<i64>,
    pub dead: u32,
    pub first_dead_at: Option<i64>,
    pub last_dead_at: Option<i64>,
    pub last_success_at: Option<i64>,
}

impl Failure {
    /// Failing: a delivery went dead, and nothing succeeded since.
    pub fn is_failing(&self) -> bool {
        self.dead > 0
    }

    /// The record after an attempt.
    pub fn after_attempt(self, counted: Counted, now: i64) -> Failure {
        match counted {
            Counted::Success => Failure { last_success_at: Some(now), ..Failure::default() },
            Counted::Failure => Failure { since: Some(self.since.unwrap_or(now)), ..self },
            Counted::Neutral => self,
        }
    }

    /// The record after one of the endpoint's deliveries, made at `began`, went dead on a
    /// failure that counts. It counts only when no request to the endpoint succeeded since it
    /// began: one payload a receiver keeps refusing while others get through is that payload's
    /// problem, not the endpoint's.
    pub fn after_dead(self, now: i64, began: i64) -> Failure {
        if self.last_success_at.is_some_and(|s| s >= began) {
            return self;
        }
        Failure {
            last_success_at: self.last_success_at,
            since: Some(self.since.unwrap_or(now)),
            dead: self.dead + 1,
            first_dead_at: Some(self.first_dead_at.unwrap_or(now)),
            last_dead_at: Some(now),
        }
    }

    /// When the rule disables the endpoint if nothing succeeds before (and deliveries keep going
    /// dead): `disable_after` past the first failure, and 12 hours past the first dead delivery.
    pub fn disable_at(&self, rule: FailureRule) -> Option<i64> {
        let after = rule.disable_after?.as_millis() as i64;
        let since = self.since?;
        let span = DEAD_SPAN_TO_DISABLE.as_millis() as i64;
        Some((since + after).max(self.first_dead_at.map_or(since, |f| f + span)))
    }

    /// True when the rule disables the endpoint now.
    pub fn should_disable(&self, rule: FailureRule, now: i64) -> bool {
        let span = DEAD_SPAN_TO_DISABLE.as_millis() as i64;
        let spread = match (self.first_dead_at, self.last_dead_at) {
            (Some(first), Some(last)) => last - first >= span,
            _ => false,
        };
        self.dead >= DEAD_TO_DISABLE && spread && self.disable_at(rule).is_some_and(|at| now >= at)
    }
}

/// An endpoint's last 24 hours: attempts that succeeded and failed, and its latest attempt.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointStats {
    /// Attempts in the last 24 hours that succeeded / failed.
    pub succeeded_24h: i64,
    pub failed_24h: i64,
    /// Percent of the last 24 hours' attempts that succeeded.
    pub success_rate_24h: Option<f64>,
    pub last_delivery_at: Option<Time>,
    pub last_status_code: Option<u16>,
    pub last_error_code: Option<String>,
}

impl EndpointStats {
    /// The figures from the 24 hours' counts and the endpoint's latest attempt.
    pub fn of(
        (succeeded, failed): (i64, i64),
        last_at: Option<i64>,
        last_status: Option<u16>,
        last_error: Option<String>,
    ) -> EndpointStats {
        let done = succeeded + failed;
        EndpointStats {
            succeeded_24h: succeeded,
            failed_24h: failed,
            success_rate_24h: (done > 0).then(|| (succeeded as f64 * 1000.0 / done as f64).round() / 10.0),
            last_delivery_at: last_at.map(Time),
            last_status_code: last_status,
            last_error_code: last_error,
        }
    }
}

/// Deliveries created in the last 24 hours, by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub pending: i64,
    pub held: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub dead: i64,
    /// True when a count reached [`COUNT_CAP`]: it means "at least".
    pub capped: bool,
}

/// One hour of the success chart.
#[derive(Debug, Clone, Serialize)]
pub struct Hour {
    pub label: String,
    pub succeeded: i64,
    pub unsuccessful: i64,
}

/// The 24 empty hours of the chart that starts at [`first_hour`].
pub fn empty_hours(now: i64) -> Vec<Hour> {
    let start = first_hour(now);
    (0..24)
        .map(|h| Hour { label: time::rfc3339(start + h * HOUR_MS)[11..16].to_string(), succeeded: 0, unsuccessful: 0 })
        .collect()
}

/// The queue at a glance, for `webhooks status` and the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStatus {
    /// Deliveries not finished (pending or failed-and-retrying).
    pub pending: i64,
    /// Of those, due now.
    pub due: i64,
    pub in_flight: i64,
    pub dead: i64,
    /// True when a count stopped at the page cap (only without `exact`).
    pub capped: bool,
    pub oldest_due_seconds: Option<i64>,
    pub last_run_at: Option<Time>,
    pub last_run_seconds_ago: Option<i64>,
    pub last_run: Option<serde_json::Value>,
}

/// The dashboard's figures for one user (or everyone): deliveries by status over 24 hours, the
/// hourly attempt series, and the dispatcher's state.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub deliveries_24h: Counts,
    pub hourly_24h: Vec<Hour>,
    pub dispatcher: QueueStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = HOUR_MS;
    const RULE: FailureRule = FailureRule { disable_after: Some(Duration::from_secs(72 * 3600)) };

    /// Always failing, one delivery an hour, each dead 3 hours after its event.
    fn always_failing(hours: i64, rule: FailureRule) -> (Failure, Option<i64>) {
        let mut f = Failure::default();
        for h in 0..=hours {
            f = f.after_attempt(Counted::Failure, h * H);
            if h >= 3 {
                f = f.after_dead(h * H, (h - 3) * H);
            }
            if f.should_disable(rule, h * H) {
                return (f, Some(h));
            }
        }
        (f, None)
    }

    #[test]
    fn sustained_failure_disables_after_the_period_and_not_before() {
        let (f, at) = always_failing(100, RULE);
        assert_eq!(at, Some(72), "{f:?}");
        assert_eq!(f.disable_at(RULE), Some(72 * H));
        assert_eq!(always_failing(100, FailureRule { disable_after: None }).1, None, "off");
        // A 20-hour outage never reaches 72 hours.
        assert_eq!(always_failing(20, RULE).1, None);
    }

    #[test]
    fn a_success_resets_everything_and_a_429_changes_nothing() {
        let (f, _) = always_failing(60, RULE);
        assert!(f.is_failing());
        let ok = f.after_attempt(Counted::Success, 60 * H);
        assert_eq!(ok, Failure { last_success_at: Some(60 * H), ..Failure::default() });
        assert!(!ok.is_failing() && ok.disable_at(RULE).is_none());
        assert_eq!(f.after_attempt(Counted::Neutral, 61 * H), f);
    }

    #[test]
    fn a_dead_delivery_does_not_count_when_others_got_through_meanwhile() {
        // Each hour one payload is refused (and dies after an hour) while another succeeds.
        let mut f = Failure::default();
        for h in 0..100 {
            f = f.after_attempt(Counted::Success, h * H);
            f = f.after_attempt(Counted::Failure, h * H + 1);
            if h > 0 {
                f = f.after_dead(h * H + 2, (h - 1) * H + 1);
            }
            assert!(!f.is_failing() && !f.should_disable(RULE, h * H + 2), "hour {h}: {f:?}");
        }
    }

    #[test]
    fn dead_deliveries_within_twelve_hours_do_not_disable() {
        let mut f = Failure::default().after_attempt(Counted::Failure, 0);
        for h in [70, 75, 81] {
            f = f.after_dead(h * H, 0);
        }
        assert!(!f.should_disable(RULE, 90 * H), "11 hours apart: {f:?}");
        f = f.after_dead(82 * H, 0);
        assert!(f.should_disable(RULE, 82 * H), "12 hours apart and 72 past the first failure");
        // Three dead deliveries spread out, but the clock started too recently.
        let g = Failure::default().after_dead(0, 0).after_dead(6 * H, 0).after_dead(13 * H, 0);
        assert!(!g.should_disable(RULE, 13 * H));
        assert_eq!(g.disable_at(RULE), Some(72 * H));
    }

    #[test]
    fn stats_and_rates() {
        let h = EndpointStats::of((2, 1), Some(5), Some(500), Some("E_HTTP_STATUS".into()));
        assert_eq!(h.success_rate_24h, Some(66.7));
        assert_eq!(EndpointStats::of((0, 0), None, None, None).success_rate_24h, None);
        assert!(is_stale(None) && is_stale(Some(181)) && !is_stale(Some(180)));
        assert_eq!(empty_hours(DAY_MS * 3 + 90 * 60_000)[23].label, "01:00");
    }
}
