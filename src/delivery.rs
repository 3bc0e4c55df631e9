//! Deliveries: one (event, endpoint) pair and its state — `pending` (waiting for its first
//! attempt, or for one requested by hand), `failed`
//! (will retry), `succeeded` or `dead` (no attempts left). This module reads the log, applies the
//! outcome of an attempt (the retry decision) and schedules manual retries.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock;
use crate::config::Config;
use crate::error::{ApiError, NotFound};
use crate::retry;
use crate::send::{code, Outcome};

pub const STATUSES: &[&str] = &["pending", "succeeded", "failed", "dead"];

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub user: String,
    pub status: String,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error_code: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub last_attempt_at: Option<String>,
    pub next_attempt_at: Option<String>,
    pub finished_at: Option<String>,
    /// A dispatcher is sending it right now.
    pub in_flight: bool,
    /// The event body is still kept, so the delivery can be retried.
    pub payload_available: bool,
}

const SELECT: &str = "SELECT d.id, d.event_id, ev.type, d.endpoint_id, u.name, d.status, d.attempts,
        d.last_status_code, d.last_error_code, d.last_error, d.created_at, d.last_attempt_at,
        d.next_attempt_at, d.finished_at, d.lease_until, ev.payload IS NOT NULL
    FROM deliveries d JOIN events ev ON ev.id = d.event_id JOIN users u ON u.id = d.user_id";

fn from_row(r: &Row<'_>, now: i64) -> rusqlite::Result<Delivery> {
    let lease: Option<i64> = r.get(14)?;
    let in_flight = lease.is_some_and(|l| l > now);
    Ok(Delivery {
        id: r.get(0)?,
        event_id: r.get(1)?,
        event_type: r.get(2)?,
        endpoint_id: r.get(3)?,
        user: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        last_status_code: r.get(7)?,
        last_error_code: r.get(8)?,
        last_error: r.get(9)?,
        created_at: clock::rfc3339(r.get(10)?),
        last_attempt_at: r.get::<_, Option<i64>>(11)?.map(clock::rfc3339),
        next_attempt_at: if in_flight { None } else { r.get::<_, Option<i64>>(12)?.map(clock::rfc3339) },
        finished_at: r.get::<_, Option<i64>>(13)?.map(clock::rfc3339),
        in_flight,
        payload_available: r.get(15)?,
    })
}

/// Filters for the delivery log; `before` is a delivery id to page from (exclusive).
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<String>,
    pub user: Option<String>,
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    pub before: Option<String>,
    /// Only deliveries created at or after / before these times (Unix ms).
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub limit: usize,
}

/// The log, newest first.
pub fn list(conn: &Connection, f: &Filter) -> Result<Vec<Delivery>> {
    if let Some(s) = &f.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(crate::error::Invalid::new("status", format!("must be one of {}", STATUSES.join(", "))).into());
        }
    }
    let sql = format!(
        "{SELECT} WHERE (?1 IS NULL OR d.status = ?1)
           AND (?2 IS NULL OR d.user_id = (SELECT id FROM users WHERE name = ?2))
           AND (?3 IS NULL OR d.endpoint_id = ?3)
           AND (?4 IS NULL OR ev.type = ?4)
           AND (?5 IS NULL OR d.id < ?5)
           AND (?7 IS NULL OR d.id >= ?7)
           AND (?8 IS NULL OR d.id < ?8)
         ORDER BY d.id DESC LIMIT ?6"
    );
    let now = clock::now_ms();
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            f.status,
            f.user,
            f.endpoint,
            f.event_type,
            f.before,
            f.limit.max(1) as i64,
            f.since.map(|t| crate::id::at("dlv", t)),
            f.until.map(|t| crate::id::at("dlv", t)),
        ],
        |r| from_row(r, now),
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Connection, id: &str) -> Result<Delivery> {
    let now = clock::now_ms();
    conn.prepare_cached(&format!("{SELECT} WHERE d.id = ?1"))?
        .query_row([id], |r| from_row(r, now))
        .optional()?
        .ok_or_else(|| NotFound(format!("delivery {id}")).into())
}

/// A delivery only if it belongs to `user` (admins pass `None`).
pub fn get_owned(conn: &Connection, id: &str, user: Option<&str>) -> Result<Delivery> {
    match get(conn, id) {
        Ok(d) if user.is_none_or(|u| u == d.user) => Ok(d),
        Ok(_) => Err(NotFound(format!("delivery {id}")).into()),
        Err(e) => Err(e),
    }
}

/// Schedules one more attempt now. A finished delivery goes back to `pending` and gets exactly
/// one more try (more if it still had attempts left); one that is waiting is made due now.
pub fn retry(conn: &Connection, id: &str) -> Result<Delivery> {
    let d = get(conn, id)?;
    if d.in_flight {
        return Err(ApiError::new(409, "in_flight", format!("delivery {id} is being sent right now")).into());
    }
    if !d.payload_available {
        return Err(ApiError::new(
            409,
            "payload_expired",
            format!(
                "the body of event {} has expired (WEBHOOKS_PAYLOAD_RETENTION), so delivery {id} cannot be sent again",
                d.event_id
            ),
        )
        .into());
    }
    let now = clock::now_ms();
    conn.execute(
        "UPDATE deliveries SET status = CASE WHEN status IN ('succeeded', 'dead') THEN 'pending' ELSE status END,
                next_attempt_at = ?1, finished_at = NULL
         WHERE id = ?2",
        params![now, id],
    )?;
    conn.execute("UPDATE events SET payload_expires_at = NULL WHERE id = ?1", [&d.event_id])?;
    get(conn, id)
}

/// Retries every dead delivery of an endpoint whose body is still kept; returns how many.
pub fn retry_dead(conn: &Connection, endpoint_id: &str) -> Result<usize> {
    let now = clock::now_ms();
    conn.execute(
        "UPDATE events SET payload_expires_at = NULL WHERE id IN
           (SELECT event_id FROM deliveries WHERE endpoint_id = ?1 AND status = 'dead')
         AND payload IS NOT NULL",
        [endpoint_id],
    )?;
    Ok(conn.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?1, finished_at = NULL
         WHERE endpoint_id = ?2 AND status = 'dead'
           AND event_id IN (SELECT id FROM events WHERE payload IS NOT NULL)",
        params![now, endpoint_id],
    )?)
}

/// How a delivery stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Succeeded,
    RetryAt(i64),
    Dead,
}

/// The retry decision for the outcome of attempt number `attempt` (pure).
pub fn decide(cfg: &Config, attempt: u32, outcome: &Outcome, now: i64, jitter_unit: f64) -> Next {
    if outcome.delivered() {
        return Next::Succeeded;
    }
    if outcome.error_code == Some(code::GONE) || outcome.error_code == Some(code::ENDPOINT_DISABLED) {
        return Next::Dead;
    }
    match retry::next_delay(&cfg.retry_schedule, attempt, cfg.max_attempts) {
        None => Next::Dead,
        Some(d) => {
            let wait = retry::with_jitter(d, jitter_unit).max(outcome.retry_after.unwrap_or_default());
            Next::RetryAt(now + wait.as_millis() as i64)
        }
    }
}

/// Applies an attempt's outcome to the delivery (only while `lease_owner` still holds it) and
/// disables the endpoint on 410. Returns the decision.
pub fn apply_outcome(
    conn: &Connection,
    cfg: &Config,
    delivery_id: &str,
    lease_owner: &str,
    attempt: u32,
    outcome: &Outcome,
    now: i64,
) -> Result<Next> {
    let next = decide(cfg, attempt, outcome, now, retry::random_unit());
    let (status, next_at, finished) = match next {
        Next::Succeeded => ("succeeded", None, Some(now)),
        Next::RetryAt(t) => ("failed", Some(t), None),
        Next::Dead => ("dead", None, Some(now)),
    };
    let changed = conn
        .prepare_cached(
            "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at = ?3, lease_until = NULL,
                    lease_owner = NULL, last_attempt_at = ?4, last_status_code = ?5, last_error_code = ?6,
                    last_error = ?7, finished_at = ?8
             WHERE id = ?9 AND lease_owner = ?10",
        )?
        .execute(params![
            status,
            attempt,
            next_at,
            now,
            outcome.status_code,
            outcome.error_code,
            outcome.error,
            finished,
            delivery_id,
            lease_owner
        ])?;
    if changed > 0 {
        record_endpoint_outcome(conn, delivery_id, outcome, now)?;
    }
    if changed > 0 && outcome.error_code == Some(code::GONE) {
        conn.prepare_cached(
            "UPDATE endpoints SET active = 0, disabled_reason = ?1, updated_at = ?2
             WHERE id = (SELECT endpoint_id FROM deliveries WHERE id = ?3)",
        )?
        .execute(params!["the receiver answered 410 Gone", now, delivery_id])?;
    }
    if changed > 0 && finished.is_some() {
        expire_payload_if_done(conn, cfg, delivery_id, now)?;
    }
    Ok(next)
}

/// Keeps the endpoint's health current: its latest attempt, and this hour's outcome counts.
fn record_endpoint_outcome(conn: &Connection, delivery_id: &str, outcome: &Outcome, now: i64) -> Result<()> {
    let endpoint_id: String = conn
        .prepare_cached("SELECT endpoint_id FROM deliveries WHERE id = ?1")?
        .query_row([delivery_id], |r| r.get(0))?;
    conn.prepare_cached(
        "UPDATE endpoints SET last_attempt_at = ?1, last_status_code = ?2, last_error_code = ?3 WHERE id = ?4",
    )?
    .execute(params![now, outcome.status_code, outcome.error_code, endpoint_id])?;
    let ok = i64::from(outcome.delivered());
    conn.prepare_cached(
        "INSERT INTO endpoint_stats (endpoint_id, hour, succeeded, failed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (endpoint_id, hour) DO UPDATE SET succeeded = succeeded + ?3, failed = failed + ?4",
    )?
    .execute(params![endpoint_id, now - now.rem_euclid(3_600_000), ok, 1 - ok])?;
    Ok(())
}

/// Ends a delivery without a request (its endpoint is disabled, its body is gone).
pub fn finish_unsent(
    conn: &Connection,
    cfg: &Config,
    delivery_id: &str,
    lease_owner: &str,
    error_code: &str,
    error: &str,
    now: i64,
) -> Result<()> {
    let n = conn
        .prepare_cached(
            "UPDATE deliveries SET status = 'dead', next_attempt_at = NULL, lease_until = NULL,
                    lease_owner = NULL, last_error_code = ?1, last_error = ?2, finished_at = ?3
             WHERE id = ?4 AND lease_owner = ?5",
        )?
        .execute(params![error_code, error, now, delivery_id, lease_owner])?;
    if n > 0 {
        expire_payload_if_done(conn, cfg, delivery_id, now)?;
    }
    Ok(())
}

/// Gives a claimed delivery back untried (the run's time budget ran out before it started).
pub fn release(conn: &Connection, delivery_id: &str, lease_owner: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE deliveries SET next_attempt_at = ?1, lease_until = NULL, lease_owner = NULL
         WHERE id = ?2 AND lease_owner = ?3",
    )?
    .execute(params![now, delivery_id, lease_owner])?;
    Ok(())
}

/// Once every delivery of an event has ended, its body is kept for `WEBHOOKS_PAYLOAD_RETENTION`.
fn expire_payload_if_done(conn: &Connection, cfg: &Config, delivery_id: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE events SET payload_expires_at = ?1
         WHERE id = (SELECT event_id FROM deliveries WHERE id = ?2)
           AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = events.id AND finished_at IS NULL)",
    )?
    .execute(params![now + cfg.payload_retention.as_millis() as i64, delivery_id])?;
    Ok(())
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
    pub last_run_at: Option<String>,
    pub last_run_seconds_ago: Option<i64>,
    pub last_run: Option<serde_json::Value>,
}

/// The dispatcher's queue. With `exact`, every count is exact (the `status` command); without,
/// counts stop at [`crate::health::COUNT_CAP`] (`capped` says so) so that pages stay fast
/// with any backlog.
pub fn queue_status(conn: &Connection, exact: bool) -> Result<QueueStatus> {
    let now = clock::now_ms();
    let limit = if exact { i64::MAX } else { crate::health::COUNT_CAP + 1 };
    let mut capped = false;
    let mut count = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<i64> {
        if exact {
            Ok(conn.prepare_cached(sql)?.query_row(p, |r| r.get(0))?)
        } else {
            crate::health::bounded_count(conn, sql, p, &mut capped)
        }
    };
    let pending =
        count("SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE next_attempt_at IS NOT NULL LIMIT ?1)", &[&limit])?;
    let due =
        count("SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE next_attempt_at <= ?1 LIMIT ?2)", &[&now, &limit])?;
    let in_flight =
        count("SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE lease_until > ?1 LIMIT ?2)", &[&now, &limit])?;
    let dead = count("SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = 'dead' LIMIT ?1)", &[&limit])?;
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT min(next_attempt_at) FROM deliveries WHERE next_attempt_at IS NOT NULL")?
        .query_row([], |r| r.get(0))?;
    let oldest = oldest.filter(|t| *t <= now);
    let last: Option<(i64, Option<String>)> = conn
        .query_row("SELECT started_at, summary FROM runs ORDER BY started_at DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(QueueStatus {
        pending,
        due,
        in_flight,
        dead,
        capped,
        oldest_due_seconds: oldest.map(|t| (now - t).max(0) / 1000),
        last_run_at: last.as_ref().map(|(t, _)| clock::rfc3339(*t)),
        last_run_seconds_ago: last.as_ref().map(|(t, _)| (now - t).max(0) / 1000),
        last_run: last.and_then(|(_, s)| s).and_then(|s| serde_json::from_str(&s).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn cfg() -> Config {
        Config::from_raw(&BTreeMap::new(), None, ".".into()).unwrap()
    }

    fn failed(code: &'static str, retry_after: Option<u64>) -> Outcome {
        Outcome { retry_after: retry_after.map(Duration::from_secs), ..Outcome::failure(code, "x") }
    }

    #[test]
    fn retry_decisions() {
        let c = cfg();
        let ok = Outcome::default();
        assert_eq!(decide(&c, 1, &ok, 0, 0.0), Next::Succeeded);
        assert_eq!(decide(&c, 1, &failed(code::HTTP_STATUS, None), 0, 0.0), Next::RetryAt(60_000));
        assert_eq!(decide(&c, 2, &failed(code::TIMEOUT, None), 0, 0.0), Next::RetryAt(300_000));
        assert_eq!(decide(&c, 4, &failed(code::CONNECT, None), 0, 0.0), Next::RetryAt(7_200_000));
        assert_eq!(decide(&c, 5, &failed(code::CONNECT, None), 0, 0.0), Next::Dead);
        assert_eq!(decide(&c, 1, &failed(code::GONE, None), 0, 0.0), Next::Dead);
        assert_eq!(decide(&c, 1, &failed(code::HTTP_STATUS, Some(600)), 0, 0.0), Next::RetryAt(600_000));
        assert_eq!(decide(&c, 3, &failed(code::HTTP_STATUS, Some(10)), 0, 0.0), Next::RetryAt(1_800_000));
        match decide(&c, 1, &failed(code::REDIRECT, None), 0, 0.99) {
            Next::RetryAt(t) => assert!((60_000..=66_000).contains(&t)),
            other => panic!("{other:?}"),
        }
    }
}
