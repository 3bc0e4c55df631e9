//! The queue's statements on PostgreSQL, where many dispatchers claim and record at once: a
//! claim locks the user it claims for (skipping one another dispatcher holds) and leases in one
//! statement; a record takes each step for the whole batch in one statement, its rows as one
//! JSON parameter, a handful of round trips however large the batch. Locks are taken in one
//! order by every dispatcher (endpoints by id, then queue rows and deliveries, then events), so records wait
//! for each other and never deadlock.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::LazyLock;

use serde_json::json;

use super::super::sql::params;
use super::super::{rows, Db};
use super::{due_row, recording, Attempted, Claim, DueRow, Recording, Statements, Written, RECORDING_COLUMNS};
use crate::model::delivery::Next;
use crate::model::Result;

pub struct Postgres;

pub static STATEMENTS: Postgres = Postgres;

/// Whether any delivery is due at `?1`: the first in `queue_due_time`.
const ANY_DUE: &str = "SELECT 1 FROM queue WHERE next_attempt_at <= ?1
    AND (lease_until IS NULL OR lease_until <= ?1) LIMIT 1";

/// Deliveries due at `?1` (not leased), counted up to `?2`, walking `queue_due_time`.
const DUE_COUNT: &str = "SELECT count(*) FROM (SELECT 1 FROM queue WHERE next_attempt_at <= ?1
    AND (lease_until IS NULL OR lease_until <= ?1) LIMIT ?2) AS capped";

/// When the oldest delivery not leased at `?1` is (or was) due: the first in `queue_due_time`
/// order.
const OLDEST_DUE: &str = "SELECT min(next_attempt_at) FROM (SELECT next_attempt_at FROM queue
    WHERE next_attempt_at IS NOT NULL AND (lease_until IS NULL OR lease_until <= ?1)
    ORDER BY next_attempt_at LIMIT 1) AS first";

/// The next user with queued work, and whether it could be locked (a user another dispatcher
/// is claiming for now is skipped, not waited for). The user's live leases are then counted in
/// a later statement ([`LEASE_FOR_USER`]), whose snapshot (READ COMMITTED) holds every lease
/// committed by whoever had the lock before; counting in the locking statement would see the
/// older snapshot and overrun the cap.
const NEXT_USER_LOCKED: &str = "SELECT n.id, (SELECT u.id FROM users u WHERE u.id = n.id FOR NO KEY UPDATE SKIP LOCKED)
    FROM (SELECT min(user_id) AS id FROM queue WHERE next_attempt_at IS NOT NULL AND user_id > ?1) n";

/// A locked user's free share of the cap (`?4` less its live leases, at most `?3`), oldest due
/// first, leased to this run, in one statement. Rows another transaction holds (a page retrying
/// one, another dispatcher) are left for the next claim rather than waited for. Rows of an
/// endpoint with limits or a pause are locked but not leased (`free` = 0): the claim decides.
const LEASE_FOR_USER: &str = "WITH due AS (
        SELECT q.delivery_id, CASE WHEN e.max_per_second IS NULL AND e.max_in_flight IS NULL
            AND coalesce(e.paused_until, 0) <= ?2 THEN 1 ELSE 0 END AS free
        FROM queue q JOIN endpoints e ON e.id = q.endpoint_id
        WHERE q.user_id = ?1 AND q.next_attempt_at <= ?2 AND (q.lease_until IS NULL OR q.lease_until <= ?2)
        ORDER BY q.next_attempt_at
        LIMIT GREATEST(0, LEAST(?3, ?4 - (SELECT count(*) FROM queue WHERE user_id = ?1 AND lease_until > ?2)))
        FOR UPDATE OF q SKIP LOCKED
    ), leased AS (
        UPDATE queue q SET lease_until = ?5, lease_owner = ?6, parked = 0 FROM due
        WHERE q.delivery_id = due.delivery_id AND due.free = 1
    )
    SELECT q.delivery_id, d.event_id, ev.type, q.endpoint_id, e.url, e.active, q.attempts, ev.payload,
        e.disabled_kind, ev.content_type, s.name, s.provider, ev.replay_of, d.created_at, q.ordering_key,
        e.fifo_on_dead, due.free, e.max_per_second, e.max_in_flight, e.paused_until, q.parked
    FROM due JOIN queue q ON q.delivery_id = due.delivery_id JOIN deliveries d ON d.id = q.delivery_id
        JOIN events ev ON ev.id = d.event_id JOIN endpoints e ON e.id = q.endpoint_id
        LEFT JOIN sources s ON s.id = ev.source_id
    ORDER BY q.next_attempt_at";

/// The failure records are read to be rewritten, so they are locked for that, always in the
/// same order (the sort runs before the lock).
static RECORDING: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {RECORDING_COLUMNS}
        FROM endpoints WHERE id IN (SELECT jsonb_array_elements_text(CAST(CAST(?1 AS TEXT) AS jsonb)))
        ORDER BY id FOR NO KEY UPDATE"
    )
});

/// The batch's deliveries (fenced by the lease) and their attempt rows in one statement: a
/// retry rewrites its queue row; a delivery that ended leaves the queue and its record says how.
const APPLY: &str = "WITH v AS (
        SELECT * FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb)) AS v(id TEXT, status TEXT, attempt BIGINT,
            next_attempt_at BIGINT, block BOOLEAN, status_code BIGINT, error_code TEXT, error TEXT,
            started_at BIGINT, duration_ms BIGINT, snippet TEXT, request_body TEXT, response_body TEXT)
    ), retried AS (
        UPDATE queue q SET status = 'failed', attempts = v.attempt, next_attempt_at = v.next_attempt_at,
            lease_until = NULL, lease_owner = NULL
        FROM v WHERE q.delivery_id = v.id AND q.lease_owner = ?3 AND v.next_attempt_at IS NOT NULL
        RETURNING q.delivery_id AS id
    ), blocked AS (
        UPDATE queue q SET status = 'blocked', attempts = v.attempt, next_attempt_at = NULL, lease_until = NULL,
            lease_owner = NULL
        FROM v WHERE q.delivery_id = v.id AND q.lease_owner = ?3 AND v.next_attempt_at IS NULL AND v.block
        RETURNING q.delivery_id AS id
    ), left_queue AS (
        DELETE FROM queue q USING v
        WHERE q.delivery_id = v.id AND q.lease_owner = ?3 AND v.next_attempt_at IS NULL AND NOT v.block
        RETURNING q.delivery_id AS id
    ), ended AS (
        UPDATE deliveries d SET status = v.status, attempts = v.attempt, finished_at = ?2, last_attempt_at = ?2,
            last_status_code = v.status_code, last_error_code = v.error_code, last_error = v.error
        FROM v JOIN (SELECT id FROM left_queue UNION ALL SELECT id FROM blocked) l ON l.id = v.id WHERE d.id = v.id
    ), applied AS (
        SELECT id FROM retried UNION ALL SELECT id FROM left_queue UNION ALL SELECT id FROM blocked
    ), logged AS (
        INSERT INTO attempts (delivery_id, attempt, run_id, started_at, duration_ms, status_code, error_code, error,
                              response_snippet, request_body, response_body)
        SELECT v.id, v.attempt, ?3, v.started_at, v.duration_ms, v.status_code, v.error_code, v.error, v.snippet,
               v.request_body, v.response_body
        FROM v JOIN applied ON applied.id = v.id
    )
    SELECT id FROM applied";

const WRITE_ENDPOINTS: &str = "UPDATE endpoints e SET last_attempt_at = ?2, last_status_code = v.status_code,
        last_error_code = v.error_code, fail_since = v.fail_since, dead_count = v.dead_count,
        first_dead_at = v.first_dead_at, last_dead_at = v.last_dead_at, last_success_at = v.last_success_at,
        paused_until = v.paused_until, paused_status = v.paused_status
    FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb)) AS v(id TEXT, status_code BIGINT, error_code TEXT,
        fail_since BIGINT, dead_count BIGINT, first_dead_at BIGINT, last_dead_at BIGINT, last_success_at BIGINT,
        paused_until BIGINT, paused_status BIGINT)
    WHERE e.id = v.id";

impl Statements for Postgres {
    fn any_due(&self) -> &str {
        ANY_DUE
    }

    fn due_count(&self) -> &str {
        DUE_COUNT
    }

    fn oldest_due(&self) -> &str {
        OLDEST_DUE
    }

    fn next_user(&self, db: Db<'_>, after: Option<i64>) -> Result<(Option<i64>, bool)> {
        Ok(db.conn.prepare_cached(NEXT_USER_LOCKED)?.query_row([after.unwrap_or(i64::MIN)], |r| {
            Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?.is_some()))
        })?)
    }

    fn lease(&self, db: Db<'_>, user_id: i64, c: &Claim<'_>, room: usize) -> Result<Vec<DueRow>> {
        let mut stmt = db.conn.prepare_cached(LEASE_FOR_USER)?;
        rows(stmt.query_map(params![user_id, c.now, room as i64, c.per_user as i64, c.lease_until, c.run_id], due_row)?)
    }

    fn lock_endpoints(&self, db: Db<'_>, ids: &BTreeSet<&str>) -> Result<Vec<Recording>> {
        rows(db.conn.prepare_cached(&RECORDING)?.query_map([serde_json::to_string(ids)?], recording)?)
    }

    fn apply_attempts(&self, db: Db<'_>, batch: &[Attempted<'_>], now: i64) -> Result<Vec<bool>> {
        let Some(first) = batch.first() else { return Ok(Vec::new()) };
        let rows_json: Vec<serde_json::Value> = batch
            .iter()
            .map(|a| {
                let next_at = match a.next {
                    Next::RetryAt(t) => Some(t),
                    Next::Succeeded | Next::Dead => None,
                };
                let o = a.outcome;
                json!({"id": a.delivery_id, "status": a.next.status().as_str(), "attempt": a.attempt,
                       "next_attempt_at": next_at, "block": a.blocks(), "status_code": o.status_code,
                       "error_code": o.error_code.map(|c| c.as_str()), "error": o.error, "started_at": a.started_at,
                       "duration_ms": o.duration_ms, "snippet": o.snippet, "request_body": a.request_body,
                       "response_body": o.response_body})
            })
            .collect();
        let applied: HashSet<String> = rows(
            db.conn
                .prepare_cached(APPLY)?
                .query_map(params![serde_json::to_string(&rows_json)?, now, first.run_id], |r| r.get::<_, String>(0))?,
        )?
        .into_iter()
        .collect();
        Ok(batch.iter().map(|a| applied.contains(a.delivery_id)).collect())
    }

    fn write_endpoints(&self, db: Db<'_>, written: &[Written<'_>], now: i64) -> Result<()> {
        if written.is_empty() {
            return Ok(());
        }
        let rows_json: Vec<serde_json::Value> = written
            .iter()
            .map(|(e, (status_code, error_code))| {
                let f = e.failure;
                json!({"id": e.id, "status_code": status_code, "error_code": error_code.map(|c| c.as_str()),
                       "fail_since": f.since, "dead_count": f.dead, "first_dead_at": f.first_dead_at,
                       "last_dead_at": f.last_dead_at, "last_success_at": f.last_success_at,
                       "paused_until": e.paused.0, "paused_status": e.paused.1})
            })
            .collect();
        db.conn.prepare_cached(WRITE_ENDPOINTS)?.execute(params![serde_json::to_string(&rows_json)?, now])?;
        Ok(())
    }

    fn add_stats(&self, db: Db<'_>, stats: &BTreeMap<(&str, i64), (i64, i64)>) -> Result<()> {
        if stats.is_empty() {
            return Ok(());
        }
        let rows_json: Vec<serde_json::Value> = stats
            .iter()
            .map(|((id, hour), (ok, failed))| json!({"endpoint_id": id, "hour": hour, "succeeded": ok, "failed": failed}))
            .collect();
        db.conn
            .prepare_cached(
                "INSERT INTO endpoint_stats (endpoint_id, hour, succeeded, failed)
                 SELECT * FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb))
                     AS v(endpoint_id TEXT, hour BIGINT, succeeded BIGINT, failed BIGINT)
                 ON CONFLICT (endpoint_id, hour) DO UPDATE SET succeeded = endpoint_stats.succeeded + excluded.succeeded,
                     failed = endpoint_stats.failed + excluded.failed",
            )?
            .execute([serde_json::to_string(&rows_json)?])?;
        Ok(())
    }

    fn expire_payloads(&self, db: Db<'_>, events: &BTreeSet<String>, until: i64) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        db.conn
            .prepare_cached(
                "UPDATE events SET payload_expires_at = ?1
                 WHERE id IN (SELECT jsonb_array_elements_text(CAST(CAST(?2 AS TEXT) AS jsonb)))
                   AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = events.id AND finished_at IS NULL)",
            )?
            .execute(params![until, serde_json::to_string(events)?])?;
        Ok(())
    }
}
