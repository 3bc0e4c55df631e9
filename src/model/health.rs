//! Health at a glance: per-endpoint success over the last 24 hours, counts by status, an hourly
//! success series for the dashboard, and the dispatcher's queue. The figures; `store::health`
//! reads them.

use std::time::Duration;

use serde::Serialize;

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

/// How an endpoint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Active,
    Disabled,
    /// Active, and the latest attempt failed.
    Failing,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointHealth {
    /// Attempts in the last 24 hours that succeeded / failed.
    pub succeeded_24h: i64,
    pub failed_24h: i64,
    /// Percent of the last 24 hours' attempts that succeeded.
    pub success_rate_24h: Option<f64>,
    pub last_delivery_at: Option<Time>,
    pub last_status_code: Option<u16>,
    pub last_error_code: Option<String>,
    pub state: State,
}

impl EndpointHealth {
    /// The health from the 24 hours' counts and the endpoint's latest attempt.
    pub fn of(
        active: bool,
        (succeeded, failed): (i64, i64),
        last_at: Option<i64>,
        last_status: Option<u16>,
        last_error: Option<String>,
    ) -> EndpointHealth {
        let done = succeeded + failed;
        let failing = last_at.is_some() && last_error.is_some();
        EndpointHealth {
            succeeded_24h: succeeded,
            failed_24h: failed,
            success_rate_24h: (done > 0).then(|| (succeeded as f64 * 1000.0 / done as f64).round() / 10.0),
            last_delivery_at: last_at.map(Time),
            last_status_code: last_status,
            last_error_code: last_error,
            state: if !active {
                State::Disabled
            } else if failing {
                State::Failing
            } else {
                State::Active
            },
        }
    }
}

/// Deliveries created in the last 24 hours, by status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub pending: i64,
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

    #[test]
    fn health_states_and_rates() {
        let h = EndpointHealth::of(true, (2, 1), Some(5), Some(500), Some("E_HTTP_STATUS".into()));
        assert_eq!((h.state, h.success_rate_24h), (State::Failing, Some(66.7)));
        assert_eq!(EndpointHealth::of(false, (0, 0), None, None, None).state, State::Disabled);
        assert_eq!(EndpointHealth::of(true, (0, 0), None, None, None).success_rate_24h, None);
        assert!(is_stale(None) && is_stale(Some(181)) && !is_stale(Some(180)));
        assert_eq!(empty_hours(DAY_MS * 3 + 90 * 60_000)[23].label, "01:00");
    }
}
