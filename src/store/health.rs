//! The health figures (`model::health`) from the database: per-endpoint success over the last
//! 24 hours from the hourly counters (`endpoint_stats`, which `queue::record` keeps current), so
//! a page costs the same with 100 or 100,000 deliveries; counts by status that stop at
//! `COUNT_CAP`. Delivery ids sort by creation time, so "the last 24 hours" is an index range.

use super::sql::{params, OptionalExtension};

use super::Db;
use crate::model::delivery::Status;
use crate::model::health::{
    empty_hours, first_hour, Counts, EndpointStats, Hour, Overview, COUNT_CAP, DAY_MS, HOUR_MS,
};
use crate::model::{time, Result};

/// An endpoint's health from its own row and at most 24 hourly counters.
pub fn endpoint(db: Db<'_>, endpoint_id: &str, now: i64) -> Result<EndpointStats> {
    let counts: (i64, i64) = db
        .conn
        .prepare_cached(
            "SELECT coalesce(sum(succeeded), 0), coalesce(sum(failed), 0) FROM endpoint_stats
             WHERE endpoint_id = ?1 AND hour >= ?2",
        )?
        .query_row(params![endpoint_id, first_hour(now)], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (last_at, last_status, last_error): (Option<i64>, Option<u16>, Option<String>) = db
        .conn
        .prepare_cached("SELECT last_attempt_at, last_status_code, last_error_code FROM endpoints WHERE id = ?1")?
        .query_row([endpoint_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((None, None, None));
    Ok(EndpointStats::of(counts, last_at, last_status, last_error))
}

/// Deliveries created in the last 24 hours by status, for one user or everyone, each count
/// stopping at [`COUNT_CAP`]. Each walks an index range of at most that many entries.
pub fn counts_24h(db: Db<'_>, user: Option<&str>, now: i64) -> Result<Counts> {
    let since = time::id_at("dlv", now - DAY_MS);
    let user_id: Option<i64> = match user {
        Some(name) => match super::principals::find(db, name)? {
            Some(id) => Some(id),
            None => return Ok(Counts::default()),
        },
        None => None,
    };
    let mut c = Counts::default();
    let mut pending_capped = false;
    for status in Status::ALL {
        // Two statements, not `(?1 IS NULL OR user_id = ?1)`: with the OR, SQLite cannot use
        // the (user_id, status, id) index and walked every user's rows (64 ms at 1,000,000).
        // A waiting delivery's record says `pending` whether or not it failed before: the failed
        // ones are counted in the queue (`queue_failed`), and `pending` is the difference.
        let (by_user, everyone) = match status {
            Status::Failed => (
                "SELECT count(*) FROM (SELECT 1 FROM queue WHERE status = ?2 AND delivery_id >= ?3 AND user_id = ?1 LIMIT ?4) AS capped",
                "SELECT count(*) FROM (SELECT 1 FROM queue WHERE status = ?1 AND delivery_id >= ?2 LIMIT ?3) AS capped",
            ),
            _ => (
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE user_id = ?1 AND status = ?2 AND id >= ?3 LIMIT ?4) AS capped",
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = ?1 AND id >= ?2 LIMIT ?3) AS capped",
            ),
        };
        let mut capped = false;
        let n = match user_id {
            Some(uid) => super::bounded_count(db, by_user, params![uid, status, since, COUNT_CAP + 1], &mut capped)?,
            None => super::bounded_count(db, everyone, params![status, since, COUNT_CAP + 1], &mut capped)?,
        };
        c.capped |= capped;
        match status {
            // Past the cap the waiting count stays the cap ("10000+").
            Status::Pending => (c.pending, pending_capped) = (n, capped),
            Status::Held => c.held = n,
            Status::Succeeded => c.succeeded = n,
            Status::Failed => c.failed = n,
            Status::Dead => c.dead = n,
        }
    }
    if !pending_capped {
        c.pending = (c.pending - c.failed).max(0);
    }
    Ok(c)
}

/// Attempts per hour over the last 24 hours, oldest first, from the hourly counters.
pub fn hourly_24h(db: Db<'_>, user: Option<&str>, now: i64) -> Result<Vec<Hour>> {
    let start = first_hour(now);
    let mut out: Vec<Hour> = empty_hours(now);
    let mut stmt = db.conn.prepare_cached(
        "SELECT s.hour, sum(s.succeeded), sum(s.failed) FROM endpoint_stats s JOIN endpoints e ON e.id = s.endpoint_id
         WHERE s.hour >= ?1 AND (CAST(?2 AS TEXT) IS NULL OR e.user_id = (SELECT id FROM users WHERE name = ?2))
         GROUP BY s.hour",
    )?;
    let found =
        stmt.query_map(params![start, user], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))?;
    for row in found {
        let (hour, ok, bad) = row?;
        if let Some(slot) = out.get_mut(((hour - start) / HOUR_MS) as usize) {
            slot.succeeded += ok;
            slot.unsuccessful += bad;
        }
    }
    Ok(out)
}

/// The dashboard's figures for one user, or everyone.
pub fn overview(db: Db<'_>, user: Option<&str>, now: i64) -> Result<Overview> {
    Ok(Overview {
        deliveries_24h: counts_24h(db, user, now)?,
        hourly_24h: hourly_24h(db, user, now)?,
        dispatcher: super::deliveries::queue_status(db, false)?,
    })
}
