//! The queue's statements on SQLite, where one writer at a time holds the database: a claim
//! counts a user's live leases and leases its due rows one by one, a record writes its rows one
//! by one (in process, a statement costs microseconds), in the shapes that touch the fewest
//! indexes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use super::super::sql::{params, OptionalExtension};
use super::super::{rows, Db};
use super::{due_row, recording, Attempted, Claim, DueRow, Recording, Statements, Written, RECORDING_COLUMNS};
use crate::model::delivery::Next;
use crate::model::Result;

pub struct Sqlite;

pub static STATEMENTS: Sqlite = Sqlite;

/// The users with queued deliveries (`u.id`, one NULL row at the end), each found by one seek
/// of `queue_due(user_id, next_attempt_at)` past the one before. The readers that look at the
/// whole queue by due time go through it user by user, with no index on the due time alone for
/// every retry to rewrite (`sql/010_due_by_user.sql`): about 1 µs per user with queued work
/// (17 ms for the due count and the oldest due time at 10,000 such users).
const PENDING_USERS: &str = "WITH RECURSIVE u(id) AS (
        SELECT min(user_id) FROM queue WHERE next_attempt_at IS NOT NULL
        UNION ALL
        SELECT (SELECT min(user_id) FROM queue WHERE next_attempt_at IS NOT NULL AND user_id > u.id)
        FROM u WHERE u.id IS NOT NULL
    )";

/// Whether any delivery is due at `?1`: user by user ([`PENDING_USERS`]).
static ANY_DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{PENDING_USERS} SELECT 1 FROM u CROSS JOIN queue q
        WHERE q.user_id = u.id AND q.next_attempt_at <= ?1 AND (q.lease_until IS NULL OR q.lease_until <= ?1)
        LIMIT 1"
    )
});

/// Deliveries due at `?1` (not leased), counted up to at least `?2` (so that a count above the
/// cap is still seen as one). With no index on the due time alone: user by user
/// ([`PENDING_USERS`]), a seek per user with queued work, then its due entries in `queue_due`
/// alone, less the live leases on due rows (found in `queue_leased`). The first count stops
/// `?2` past the live leases, so that the difference still reaches `?2`.
static DUE_COUNT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{PENDING_USERS} SELECT
            (SELECT count(*) FROM (SELECT 1 FROM u CROSS JOIN queue q
                WHERE q.user_id = u.id AND q.next_attempt_at <= ?1
                LIMIT min(?2, 4611686018427387904) + (SELECT count(*) FROM queue WHERE lease_until > ?1)))
            - (SELECT count(*) FROM queue WHERE lease_until > ?1 AND next_attempt_at <= ?1)"
    )
});

/// When the oldest delivery not leased at `?1` is (or was) due: each user's first in
/// `queue_due` order, a seek per user with queued work.
static OLDEST_DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{PENDING_USERS} SELECT min((SELECT q.next_attempt_at FROM queue q
            WHERE q.user_id = u.id AND q.next_attempt_at IS NOT NULL AND (q.lease_until IS NULL OR q.lease_until <= ?1)
            ORDER BY q.next_attempt_at LIMIT 1))
        FROM u WHERE u.id IS NOT NULL"
    )
});

/// A user's due deliveries, oldest due first: `queue_due(user_id, next_attempt_at)` makes this
/// a seek however many rows are queued (the live leases it steps over are at most the user's
/// cap). Ordered by the due index alone: a second sort key would make SQLite sort every due row
/// of the user for each claim (a test reads the plan).
const DUE_FOR_USER: &str = "SELECT q.delivery_id, d.event_id, ev.type, q.endpoint_id, e.url, e.active, q.attempts,
        ev.payload, e.disabled_kind, ev.content_type, s.name, s.provider, ev.replay_of, d.created_at,
        q.ordering_key, e.fifo_on_dead,
        CASE WHEN e.max_per_second IS NULL AND e.max_in_flight IS NULL AND coalesce(e.paused_until, 0) <= ?2
            THEN 1 ELSE 0 END,
        e.max_per_second, e.max_in_flight, e.paused_until, q.parked
    FROM queue q JOIN deliveries d ON d.id = q.delivery_id JOIN events ev ON ev.id = d.event_id
        JOIN endpoints e ON e.id = q.endpoint_id LEFT JOIN sources s ON s.id = ev.source_id
    WHERE q.user_id = ?1 AND q.next_attempt_at <= ?2 AND (q.lease_until IS NULL OR q.lease_until <= ?2)
    ORDER BY q.next_attempt_at LIMIT ?3";

/// A retry of a delivery that failed before: `status` is not named, so SQLite leaves the
/// partial index `queue_failed` alone.
const RETRY_AGAIN: &str = "UPDATE queue SET attempts = ?1, next_attempt_at = ?2, lease_until = NULL, lease_owner = NULL
    WHERE delivery_id = ?3 AND lease_owner = ?4 AND status = 'failed'";

/// Any other retry.
const RETRY_FIRST: &str =
    "UPDATE queue SET status = 'failed', attempts = ?1, next_attempt_at = ?2, lease_until = NULL, lease_owner = NULL
    WHERE delivery_id = ?3 AND lease_owner = ?4";

/// A dead delivery that blocks its FIFO key stays in the queue as the key's head ...
const BLOCK: &str = "UPDATE queue SET status = 'blocked', attempts = ?3, next_attempt_at = NULL, lease_until = NULL,
        lease_owner = NULL
    WHERE delivery_id = ?1 AND lease_owner = ?2";

/// A delivery that succeeded or went dead leaves the queue ...
const LEAVE: &str = "DELETE FROM queue WHERE delivery_id = ?1 AND lease_owner = ?2";

/// ... and its record says how it ended (`?3` is when).
const END: &str = "UPDATE deliveries SET status = ?1, attempts = ?2, finished_at = ?3, last_attempt_at = ?3,
        last_status_code = ?4, last_error_code = ?5, last_error = ?6
    WHERE id = ?7";

impl Statements for Sqlite {
    fn any_due(&self) -> &str {
        &ANY_DUE
    }

    fn due_count(&self) -> &str {
        &DUE_COUNT
    }

    fn oldest_due(&self) -> &str {
        &OLDEST_DUE
    }

    /// One index seek; no other claimer can hold the user meanwhile.
    fn next_user(&self, db: Db<'_>, after: Option<i64>) -> Result<(Option<i64>, bool)> {
        let next = db
            .conn
            .prepare_cached("SELECT min(user_id) FROM queue WHERE next_attempt_at IS NOT NULL AND user_id > ?1")?
            .query_row([after.unwrap_or(i64::MIN)], |r| r.get(0))?;
        Ok((next, true))
    }

    fn lease(&self, db: Db<'_>, user_id: i64, c: &Claim<'_>, room: usize) -> Result<Vec<DueRow>> {
        let leased: i64 = db
            .conn
            .prepare_cached("SELECT count(*) FROM queue WHERE user_id = ?1 AND lease_until > ?2")?
            .query_row(params![user_id, c.now], |r| r.get(0))?;
        let take = (c.per_user as i64 - leased).max(0) as usize;
        if take.min(room) == 0 {
            return Ok(Vec::new());
        }
        let found = rows(
            db.conn.prepare_cached(DUE_FOR_USER)?.query_map(params![user_id, c.now, take.min(room) as i64], due_row)?,
        )?;
        let mut out = Vec::with_capacity(found.len());
        for row in found {
            // The rows of an endpoint with limits or a pause are left to the claim's decision.
            if row.leased {
                // Naming `parked` only where it is set keeps the usual lease off `queue_parked`.
                let sql = if row.parked {
                    "UPDATE queue SET lease_until = ?1, lease_owner = ?2, parked = 0 WHERE delivery_id = ?3"
                } else {
                    "UPDATE queue SET lease_until = ?1, lease_owner = ?2 WHERE delivery_id = ?3"
                };
                db.conn.prepare_cached(sql)?.execute(params![c.lease_until, c.run_id, row.due.delivery_id])?;
            }
            out.push(row);
        }
        Ok(out)
    }

    fn lock_endpoints(&self, db: Db<'_>, ids: &BTreeSet<&str>) -> Result<Vec<Recording>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.extend(
                db.conn
                    .prepare_cached(&format!("SELECT {RECORDING_COLUMNS} FROM endpoints WHERE id = ?1"))?
                    .query_row([id], recording)
                    .optional()?,
            );
        }
        Ok(found)
    }

    fn apply_attempts(&self, db: Db<'_>, batch: &[Attempted<'_>], now: i64) -> Result<Vec<bool>> {
        let mut out = Vec::with_capacity(batch.len());
        for a in batch {
            let o = a.outcome;
            let applied = match a.next {
                Next::RetryAt(at) => {
                    // SQLite rewrites every index holding a column the SET names, changed or not:
                    // a later retry of a delivery already `failed` names no `status` (a manual
                    // retry made it `pending`: then the narrow statement matches nothing and the
                    // general one follows). Each is fenced by the lease.
                    let variants: &[&str] = if a.attempt > 1 { &[RETRY_AGAIN, RETRY_FIRST] } else { &[RETRY_FIRST] };
                    let mut n = 0;
                    for sql in variants {
                        n = db.conn.prepare_cached(sql)?.execute(params![a.attempt, at, a.delivery_id, a.run_id])?;
                        if n > 0 {
                            break;
                        }
                    }
                    n > 0
                }
                Next::Succeeded | Next::Dead => {
                    let left = if a.blocks() {
                        db.conn.prepare_cached(BLOCK)?.execute(params![a.delivery_id, a.run_id, a.attempt])? > 0
                    } else {
                        db.conn.prepare_cached(LEAVE)?.execute(params![a.delivery_id, a.run_id])? > 0
                    };
                    if left {
                        db.conn.prepare_cached(END)?.execute(params![
                            a.next.status(),
                            a.attempt,
                            now,
                            o.status_code,
                            o.error_code,
                            o.error,
                            a.delivery_id
                        ])?;
                    }
                    left
                }
            };
            if applied {
                insert_attempt(db, a)?;
            }
            out.push(applied);
        }
        Ok(out)
    }

    fn write_endpoints(&self, db: Db<'_>, written: &[Written<'_>], now: i64) -> Result<()> {
        for (e, (status_code, error_code)) in written {
            let f = e.failure;
            db.conn
                .prepare_cached(
                    "UPDATE endpoints SET last_attempt_at = ?1, last_status_code = ?2, last_error_code = ?3,
                            fail_since = ?4, dead_count = ?5, first_dead_at = ?6, last_dead_at = ?7, last_success_at = ?8,
                            paused_until = ?10, paused_status = ?11
                     WHERE id = ?9",
                )?
                .execute(params![
                    now,
                    status_code,
                    error_code,
                    f.since,
                    f.dead,
                    f.first_dead_at,
                    f.last_dead_at,
                    f.last_success_at,
                    e.id,
                    e.paused.0,
                    e.paused.1
                ])?;
        }
        Ok(())
    }

    fn add_stats(&self, db: Db<'_>, stats: &BTreeMap<(&str, i64), (i64, i64)>) -> Result<()> {
        for ((id, hour), (ok, failed)) in stats {
            db.conn
                .prepare_cached(
                    "INSERT INTO endpoint_stats (endpoint_id, hour, succeeded, failed) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (endpoint_id, hour) DO UPDATE SET succeeded = endpoint_stats.succeeded + ?3,
                         failed = endpoint_stats.failed + ?4",
                )?
                .execute(params![id, hour, ok, failed])?;
        }
        Ok(())
    }

    fn expire_payloads(&self, db: Db<'_>, events: &BTreeSet<String>, until: i64) -> Result<()> {
        for id in events {
            db.conn
                .prepare_cached(
                    "UPDATE events SET payload_expires_at = ?1
                     WHERE id = ?2 AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = events.id AND finished_at IS NULL)",
                )?
                .execute(params![until, id])?;
        }
        Ok(())
    }
}

/// Appends the attempt row.
fn insert_attempt(db: Db<'_>, a: &Attempted<'_>) -> Result<()> {
    let o = a.outcome;
    db.conn
        .prepare_cached(
            "INSERT INTO attempts (delivery_id, attempt, run_id, started_at, duration_ms, status_code,
                                   error_code, error, response_snippet, request_body, response_body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            a.delivery_id,
            a.attempt,
            a.run_id,
            a.started_at,
            o.duration_ms,
            o.status_code,
            o.error_code,
            o.error,
            o.snippet,
            a.request_body,
            o.response_body,
        ])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Value;
    use crate::store::Store;

    #[test]
    fn the_claim_walks_the_due_index_without_sorting() {
        let store = Store::memory();
        let plan: Vec<String> = rows(
            store
                .db()
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {DUE_FOR_USER}"))
                .unwrap()
                .query_map(params![1, 0, 10], |r| r.get::<_, String>(3))
                .unwrap(),
        )
        .unwrap();
        assert!(plan.iter().any(|p| p.contains("USING INDEX queue_due")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "a sort per claim: {plan:?}");
    }

    #[test]
    fn the_queue_readers_seek_the_due_index_user_by_user() {
        let store = Store::memory();
        let plan_of = |sql: &str, params: usize| -> Vec<String> {
            let zeros: Vec<Value<'_>> = std::iter::repeat_n(Value::Int(0), params).collect();
            rows(
                store
                    .db()
                    .conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                    .unwrap()
                    .query_map(zeros, |r| r.get::<_, String>(3))
                    .unwrap(),
            )
            .unwrap()
        };
        let due = plan_of(&DUE_COUNT, 2);
        assert!(
            due.iter().any(|p| p.contains("SEARCH q USING COVERING INDEX queue_due (user_id=?")),
            "the due count reads no row, only the index: {due:?}"
        );
        for (sql, params) in [(&*DUE_COUNT, 2), (&*OLDEST_DUE, 1), (&*ANY_DUE, 1)] {
            let plan = plan_of(sql, params);
            // Each user's rows from a seek on (user_id, ...), users found by seeks: no scan.
            assert!(
                plan.iter().any(|p| p.contains("SEARCH q USING INDEX queue_due (user_id=?")
                    || p.contains("SEARCH q USING COVERING INDEX queue_due (user_id=?")),
                "{plan:?}"
            );
            // Scanned, if anything, only the partial index of the leased rows (a few per user).
            let scans = |p: &&String| p.starts_with("SCAN q") && !p.contains("INDEX queue_leased");
            assert!(!plan.iter().any(|p| scans(&p)), "{plan:?}");
        }
    }
}
