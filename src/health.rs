//! Health at a glance: per-endpoint success over the last 24 hours, counts by status and an
//! hourly success series for the dashboard. Delivery ids sort by creation time, so "the last 24
//! hours" is an index range on `(endpoint_id, id)` or `(user_id, id)`, however long the log.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::clock;
use crate::id;

pub const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct EndpointHealth {
    /// Attempts in the last 24 hours that succeeded / failed.
    pub succeeded_24h: i64,
    pub failed_24h: i64,
    /// Percent of the last 24 hours' attempts that succeeded.
    pub success_rate_24h: Option<f64>,
    pub last_delivery_at: Option<String>,
    pub last_status_code: Option<u16>,
    pub last_error_code: Option<String>,
    /// `active`, `disabled` or `failing` (active, and the latest attempt failed).
    pub state: &'static str,
}

/// The first hour counted in "the last 24 hours".
fn first_hour(now: i64) -> i64 {
    now - now.rem_euclid(HOUR_MS) - 23 * HOUR_MS
}

pub const HOUR_MS: i64 = 3_600_000;

/// An endpoint's health from its own row and at most 24 hourly counters.
pub fn endpoint(conn: &Connection, endpoint_id: &str, active: bool, now: i64) -> Result<EndpointHealth> {
    let (succeeded, failed): (i64, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(succeeded), 0), coalesce(sum(failed), 0) FROM endpoint_stats
             WHERE endpoint_id = ?1 AND hour >= ?2",
        )?
        .query_row(params![endpoint_id, first_hour(now)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (last_at, last_status, last_error): (Option<i64>, Option<u16>, Option<String>) = conn
        .prepare_cached("SELECT last_attempt_at, last_status_code, last_error_code FROM endpoints WHERE id = ?1")?
        .query_row([endpoint_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((None, None, None));
    let done = succeeded + failed;
    let failing = last_at.is_some() && last_error.is_some();
    Ok(EndpointHealth {
        succeeded_24h: succeeded,
        failed_24h: failed,
        success_rate_24h: (done > 0).then(|| (succeeded as f64 * 1000.0 / done as f64).round() / 10.0),
        last_delivery_at: last_at.map(clock::rfc3339),
        last_status_code: last_status,
        last_error_code: last_error,
        state: if !active {
            "disabled"
        } else if failing {
            "failing"
        } else {
            "active"
        },
    })
}

/// Counts on pages stop at this many: counting further would make a page's cost grow with the
/// backlog (a million pending deliveries must not make the dashboard slow).
pub const COUNT_CAP: i64 = 10_000;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub pending: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub dead: i64,
    /// True when a count reached [`COUNT_CAP`]: it means "at least".
    pub capped: bool,
}

/// Deliveries created in the last 24 hours by status, for one user or everyone, each count
/// stopping at [`COUNT_CAP`]. Each walks an index range of at most that many entries.
pub fn counts_24h(conn: &Connection, user: Option<&str>, now: i64) -> Result<Counts> {
    let since = id::at("dlv", now - DAY_MS);
    let user_id: Option<i64> = match user {
        Some(name) => match crate::user::find(conn, name)? {
            Some(id) => Some(id),
            None => return Ok(Counts::default()),
        },
        None => None,
    };
    let mut c = Counts::default();
    for status in ["pending", "succeeded", "failed", "dead"] {
        // Two statements, not `(?1 IS NULL OR user_id = ?1)`: with the OR, SQLite cannot use
        // the (user_id, status, id) index and walked every user's rows (64 ms at 1,000,000).
        let n = match user_id {
            Some(uid) => bounded_count(
                conn,
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE user_id = ?1 AND status = ?2 AND id >= ?3 LIMIT ?4)",
                params![uid, status, since, COUNT_CAP + 1],
                &mut c.capped,
            )?,
            None => bounded_count(
                conn,
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = ?1 AND id >= ?2 LIMIT ?3)",
                params![status, since, COUNT_CAP + 1],
                &mut c.capped,
            )?,
        };
        match status {
            "pending" => c.pending = n,
            "succeeded" => c.succeeded = n,
            "failed" => c.failed = n,
            _ => c.dead = n,
        }
    }
    Ok(c)
}

/// A `count(*)` over a subquery limited to `COUNT_CAP + 1` rows, capped at `COUNT_CAP`.
pub fn bounded_count(conn: &Connection, sql: &str, params: impl rusqlite::Params, capped: &mut bool) -> Result<i64> {
    let n: i64 = conn.prepare_cached(sql)?.query_row(params, |r| r.get(0))?;
    if n > COUNT_CAP {
        *capped = true;
        return Ok(COUNT_CAP);
    }
    Ok(n)
}

/// One hour of the success chart.
#[derive(Debug, Clone, Serialize)]
pub struct Hour {
    pub label: String,
    pub succeeded: i64,
    pub unsuccessful: i64,
}

/// Attempts per hour over the last 24 hours, oldest first, from the hourly counters.
pub fn hourly_24h(conn: &Connection, user: Option<&str>, now: i64) -> Result<Vec<Hour>> {
    let start = first_hour(now);
    let mut out: Vec<Hour> = (0..24)
        .map(|h| Hour { label: clock::rfc3339(start + h * HOUR_MS)[11..16].to_string(), succeeded: 0, unsuccessful: 0 })
        .collect();
    let mut stmt = conn.prepare_cached(
        "SELECT s.hour, sum(s.succeeded), sum(s.failed) FROM endpoint_stats s JOIN endpoints e ON e.id = s.endpoint_id
         WHERE s.hour >= ?1 AND (?2 IS NULL OR e.user_id = (SELECT id FROM users WHERE name = ?2))
         GROUP BY s.hour",
    )?;
    let rows =
        stmt.query_map(params![start, user], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
    for row in rows {
        let (hour, ok, bad) = row?;
        if let Some(slot) = out.get_mut(((hour - start) / HOUR_MS) as usize) {
            slot.succeeded += ok;
            slot.unsuccessful += bad;
        }
    }
    Ok(out)
}

/// The dashboard's figures for one user (or everyone): deliveries by status over 24 hours, the
/// hourly attempt series, and the dispatcher's state.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub deliveries_24h: Counts,
    pub hourly_24h: Vec<Hour>,
    pub dispatcher: crate::delivery::QueueStatus,
}

pub fn overview(conn: &Connection, user: Option<&str>, now: i64) -> Result<Overview> {
    Ok(Overview {
        deliveries_24h: counts_24h(conn, user, now)?,
        hourly_24h: hourly_24h(conn, user, now)?,
        dispatcher: crate::delivery::queue_status(conn, false)?,
    })
}
