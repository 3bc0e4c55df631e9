//! Metrics (docs/operator.md, "Monitoring"): the counters processes add (`metric_counters`),
//! and a scrape's [`Snapshot`], one cheap read per family: the stored counters, the queue's
//! size kept by triggers (`queue_size`), index seeks, and counts that stop at `COUNT_CAP`.
//! Nothing here scans the delivery table or the queue however large they grow.

use super::sql::{params, OptionalExtension};
use super::Db;
use crate::model::health::COUNT_CAP;
use crate::model::metrics::{Bounded, Counts, LastRun, Snapshot, SourceState, UserSeries};
use crate::model::Result;

/// The exposition of this installation's metrics now: what `webhooks metrics` prints and
/// `GET /api/v1/metrics` serves.
pub fn exposition(db: Db<'_>, now: i64, users: &[String]) -> Result<String> {
    let snap = snapshot(db, now, users)?;
    Ok(crate::model::metrics::render(&crate::model::metrics::families(&snap, env!("CARGO_PKG_VERSION"))))
}

/// Adds a process's counter increments.
pub fn add(db: Db<'_>, counts: &Counts) -> Result<()> {
    for ((name, labels), by) in &counts.added {
        db.conn
            .prepare_cached(
                "INSERT INTO metric_counters (name, labels, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name, labels) DO UPDATE SET value = metric_counters.value + excluded.value",
            )?
            .execute(params![name, labels, by])?;
    }
    Ok(())
}

/// A count of at most `COUNT_CAP` rows (`store::bounded_count`): `count_sql` counts rows of a
/// subquery ending in `LIMIT ?n`, `?n` the last parameter.
fn bounded(db: Db<'_>, count_sql: &str, p: &[&dyn super::sql::ToSql]) -> Result<Bounded> {
    let mut capped = false;
    let n = super::bounded_count(db, count_sql, p, &mut capped)?;
    Ok(Bounded { n, capped })
}

/// [`bounded`] of the rows `rows_sql` selects (`SELECT 1 … LIMIT ?n`).
fn bounded_rows(db: Db<'_>, rows_sql: &str, p: &[&dyn super::sql::ToSql]) -> Result<Bounded> {
    bounded(db, &format!("SELECT count(*) FROM ({rows_sql}) AS bounded"), p)
}

/// What a scrape shows, at `now` (Unix ms), with the series of `users`.
pub fn snapshot(db: Db<'_>, now: i64, users: &[String]) -> Result<Snapshot> {
    let limit = COUNT_CAP + 1;
    let counters = {
        let mut stmt =
            db.conn.prepare_cached("SELECT name, labels, value FROM metric_counters ORDER BY name, labels")?;
        let rows = stmt.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        super::rows(rows)?
    };
    let queue_depth: i64 =
        db.conn.prepare_cached("SELECT coalesce(sum(n), 0) FROM queue_size")?.query_row(params![], |r| r.get(0))?;
    let due = bounded(db, db.queue().due_count(), &[&now, &limit])?;
    let in_flight = bounded_rows(db, "SELECT 1 FROM queue WHERE lease_until > ?1 LIMIT ?2", &[&now, &limit])?;
    let oldest: Option<i64> = db.conn.prepare_cached(db.queue().oldest_due())?.query_row([now], |r| r.get(0))?;
    let oldest_due_seconds = oldest.filter(|t| *t <= now).map(|t| (now - t) / 1000);
    let held = bounded_rows(db, "SELECT 1 FROM deliveries WHERE status = 'held' LIMIT ?1", &[&limit])?;
    let dead = bounded_rows(db, "SELECT 1 FROM deliveries WHERE status = 'dead' LIMIT ?1", &[&limit])?;
    let pairs = |sql: &str| -> Result<Vec<(String, i64)>> {
        let mut stmt = db.conn.prepare_cached(sql)?;
        let rows = stmt.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))?;
        super::rows(rows)
    };
    let endpoints = pairs(
        "SELECT CASE WHEN active = 0 THEN 'disabled' WHEN fail_since IS NOT NULL THEN 'failing' ELSE 'ok' END AS health,
                count(*) FROM endpoints GROUP BY 1",
    )?;
    let disabled =
        pairs("SELECT coalesce(disabled_kind, 'manual'), count(*) FROM endpoints WHERE active = 0 GROUP BY 1")?;
    let fifo_blocked = bounded_rows(db, "SELECT 1 FROM queue WHERE status = 'blocked' LIMIT ?1", &[&limit])?;
    let parked = bounded_rows(db, "SELECT 1 FROM queue WHERE parked = 1 LIMIT ?1", &[&limit])?;
    let paused_endpoints: i64 = db
        .conn
        .prepare_cached("SELECT count(*) FROM endpoints WHERE paused_until > ?1")?
        .query_row(params![now], |r| r.get(0))?;
    let last_run_started: Option<i64> = db
        .conn
        .prepare_cached("SELECT started_at FROM runs ORDER BY started_at DESC LIMIT 1")?
        .query_row(params![], |r| r.get(0))
        .optional()?;
    let last_summary: Option<Option<String>> = db
        .conn
        .prepare_cached("SELECT summary FROM runs WHERE finished_at IS NOT NULL ORDER BY started_at DESC LIMIT 1")?
        .query_row(params![], |r| r.get(0))
        .optional()?;
    let last_run =
        last_summary.flatten().and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok()).map(|v| LastRun {
            duration_seconds: v["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            deliveries: v["sent"].as_i64().unwrap_or(0),
            budget_exhausted: v["budget_exhausted"].as_bool().unwrap_or(false),
        });
    let sources = {
        let mut stmt =
            db.conn.prepare_cached("SELECT name, active, silent_since, failing_since FROM sources ORDER BY name")?;
        let rows = stmt.query_map(params![], |r| {
            let (name, active, silent, failing): (String, i64, Option<i64>, Option<i64>) =
                (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
            let state = match (active != 0, silent.is_some(), failing.is_some()) {
                (false, _, _) => "disabled",
                (true, _, true) => "failing",
                (true, true, false) => "silent",
                _ => "ok",
            };
            Ok(SourceState { name, state })
        })?;
        super::rows(rows)?
    };
    let mut series = Vec::with_capacity(users.len());
    for user in users {
        let id: Option<i64> = db
            .conn
            .prepare_cached("SELECT id FROM users WHERE name = ?1")?
            .query_row(params![user], |r| r.get(0))
            .optional()?;
        let id = id.unwrap_or(-1);
        series.push(UserSeries {
            user: user.clone(),
            queued: bounded_rows(db, "SELECT 1 FROM queue WHERE user_id = ?1 LIMIT ?2", &[&id, &limit])?,
            due: bounded_rows(
                db,
                "SELECT 1 FROM queue WHERE user_id = ?1 AND next_attempt_at <= ?2 AND (lease_until IS NULL OR lease_until <= ?2) LIMIT ?3",
                &[&id, &now, &limit],
            )?,
            dead: bounded_rows(db, "SELECT 1 FROM deliveries WHERE user_id = ?1 AND status = 'dead' LIMIT ?2", &[&id, &limit])?,
        });
    }
    Ok(Snapshot {
        counters,
        queue_depth,
        due,
        in_flight,
        oldest_due_seconds,
        held,
        dead,
        endpoints,
        disabled,
        fifo_blocked,
        parked,
        paused_endpoints,
        last_run_started: last_run_started.map(|t| t / 1000),
        last_run,
        sources,
        users: series,
    })
}
