//! The delivery queue as the dispatcher works it: claiming due deliveries under a lease, with
//! per-user caps counted from live leases (so the caps hold across overlapping runs); recording
//! what each attempt did (an `attempts` row, the delivery's next state, the endpoint's health);
//! and the `runs` heartbeat. The claim and the recording of a batch run in one of the
//! coordinator's transactions on SQLite, in one each on PostgreSQL (see `dispatch.rs`).
//!
//! A lease is `lease_until` and `lease_owner` (the run id). A claim writes only those two (and
//! so touches one index, `deliveries_leased`): a delivery is due when `next_attempt_at` has
//! come and it holds no live lease, so a killed run's deliveries become due again when their
//! lease runs out. Results are applied only while their run still owns the lease (fencing).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::sql::{params, OptionalExtension};

use serde_json::json;

use super::{endpoints, notices, rows, Db};
use crate::model::delivery::{FailureCode, Next, Outcome, Status};
use crate::model::health::{Counted, DisabledReason, Failure, Notify};
use crate::model::time::{self, hour_of};
use crate::model::Result;

/// What a claim asks for.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    pub run_id: &'a str,
    pub now: i64,
    pub lease_until: i64,
    /// `WEBHOOKS_CONCURRENCY_PER_USER`: leases one user may hold at once, across runs.
    pub per_user: usize,
    /// How many deliveries to claim at most.
    pub slots: usize,
    /// How long an ended delivery's event body is kept once all its deliveries have ended.
    pub payload_retention: Duration,
}

/// A claimed delivery, ready to sign and send.
#[derive(Debug, Clone)]
pub struct Due {
    pub delivery_id: String,
    pub event_id: String,
    pub event_type: String,
    pub endpoint_id: String,
    pub url: String,
    /// The number this attempt will have (1 for the first).
    pub attempt: u32,
    /// The body as sent: the event's JSON envelope, or a relayed provider body byte for byte.
    pub payload: Vec<u8>,
    /// Set for a relayed inbound request.
    pub relay: Option<Relay>,
}

/// What a relayed request says about where it came from.
#[derive(Debug, Clone)]
pub struct Relay {
    pub content_type: String,
    pub source: String,
    pub provider: String,
    /// The inbound request this one repeats, when it was flagged as a suspected replay.
    pub replay_of: Option<String>,
}

/// What one claim took.
#[derive(Debug, Default)]
pub struct Claimed {
    pub due: Vec<Due>,
    /// Deliveries ended without a request (endpoint disabled by hand, body expired).
    pub unsent: usize,
    /// Deliveries held because their endpoint was disabled by the failure rule or a 410.
    pub held: usize,
}

/// Claims up to `c.slots` due deliveries, user by user in round-robin order starting after
/// `cursor` (the last user served, updated here), each user taking at most its free share of
/// `c.per_user`. Deliveries whose endpoint is disabled or whose body has expired are ended
/// (dead, unsent) instead of claimed.
pub fn claim(db: Db<'_>, c: &Claim<'_>, cursor: &mut Option<i64>) -> Result<Claimed> {
    let mut out = Claimed::default();
    // The walk: the users after the cursor, then (wrapped round) those up to it, each once. It
    // is bounded by the cursor, not by the users met on the way: on PostgreSQL each statement
    // sees what other dispatchers committed meanwhile, so users come and go during the walk.
    let start = *cursor;
    let mut after = start;
    let mut wrapped = false;
    while out.due.len() < c.slots {
        let (next, locked) =
            if db.is_postgres() { next_user_locked(db, after)? } else { (next_user(db, after)?, true) };
        let Some(user_id) = next else {
            if wrapped || start.is_none() {
                break; // every user with pending work visited once
            }
            after = None; // wrap around
            wrapped = true;
            continue;
        };
        if wrapped && start.is_some_and(|s| user_id > s) {
            break; // came round past where the walk began
        }
        after = Some(user_id);
        if !locked {
            continue; // another dispatcher is claiming for this user now
        }
        let room = c.slots - out.due.len();
        let found = if db.is_postgres() {
            lease_for_user(db, user_id, c, room)?
        } else {
            let leased: i64 = db
                .conn
                .prepare_cached("SELECT count(*) FROM deliveries WHERE user_id = ?1 AND lease_until > ?2")?
                .query_row(params![user_id, c.now], |r| r.get(0))?;
            let take = (c.per_user as i64 - leased).max(0) as usize;
            if take.min(room) == 0 {
                continue;
            }
            let found = due_for_user(db, user_id, c.now, take.min(room))?;
            for row in &found {
                db.conn
                    .prepare_cached("UPDATE deliveries SET lease_until = ?1, lease_owner = ?2 WHERE id = ?3")?
                    .execute(params![c.lease_until, c.run_id, row.due.delivery_id])?;
            }
            found
        };
        if !found.is_empty() {
            *cursor = Some(user_id);
        }
        for row in found {
            if !row.active && row.holds {
                // Disabled by the system: kept until the endpoint is enabled again.
                db.conn
                    .prepare_cached(
                        "UPDATE deliveries SET status = 'held', next_attempt_at = NULL, lease_until = NULL,
                                lease_owner = NULL
                         WHERE id = ?1 AND lease_owner = ?2",
                    )?
                    .execute(params![row.due.delivery_id, c.run_id])?;
                out.held += 1;
                continue;
            }
            let unsendable = if !row.active {
                Some((FailureCode::EndpointDisabled, "the endpoint is disabled"))
            } else if row.due.payload.is_empty() {
                Some((FailureCode::PayloadExpired, "the event body has expired"))
            } else {
                None
            };
            match unsendable {
                Some((code, why)) => {
                    finish_unsent(db, &row.due.delivery_id, c.run_id, code, why, c.now, c.payload_retention)?;
                    out.unsent += 1;
                }
                None => out.due.push(row.due),
            }
        }
    }
    Ok(out)
}

/// SQLite: the users with pending deliveries (`u.id`, one NULL row at the end), each found by
/// one seek of `deliveries_due(user_id, next_attempt_at)` past the one before. The readers that
/// look at the whole queue by due time go through it user by user, with no index on the due
/// time alone for every retry to rewrite (`sql/010_due_by_user.sql`): about 1 µs per user with
/// pending work (17 ms for the due count and the oldest due time at 10,000 such users).
pub(super) const PENDING_USERS: &str = "WITH RECURSIVE u(id) AS (
        SELECT min(user_id) FROM deliveries WHERE next_attempt_at IS NOT NULL
        UNION ALL
        SELECT (SELECT min(user_id) FROM deliveries WHERE next_attempt_at IS NOT NULL AND user_id > u.id)
        FROM u WHERE u.id IS NOT NULL
    )";

/// Whether any delivery is due at `now` (leased ones are not until their lease runs out).
pub fn any_due(db: Db<'_>, now: i64) -> Result<bool> {
    Ok(db.conn.prepare_cached(&any_due_sql(db.is_postgres()))?.query_row([now], |_| Ok(())).optional()?.is_some())
}

/// SQLite: user by user ([`PENDING_USERS`]); PostgreSQL: the first in `deliveries_due_time`.
pub(super) fn any_due_sql(postgres: bool) -> String {
    if postgres {
        return "SELECT 1 FROM deliveries WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1
                AND (lease_until IS NULL OR lease_until <= ?1) LIMIT 1"
            .to_string();
    }
    format!(
        "{PENDING_USERS} SELECT 1 FROM u CROSS JOIN deliveries d
        WHERE d.user_id = u.id AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?1
            AND (d.lease_until IS NULL OR d.lease_until <= ?1)
        LIMIT 1"
    )
}

/// The next user (by id, after `after`) with unfinished deliveries: one index seek.
fn next_user(db: Db<'_>, after: Option<i64>) -> Result<Option<i64>> {
    Ok(db
        .conn
        .prepare_cached("SELECT min(user_id) FROM deliveries WHERE next_attempt_at IS NOT NULL AND user_id > ?1")?
        .query_row([after.unwrap_or(i64::MIN)], |r| r.get(0))?)
}

/// Ordered by the due index alone: a second sort key would make SQLite sort every due row of
/// the user for each claim (a test reads the plan).
const DUE_FOR_USER: &str = "SELECT d.id, d.event_id, ev.type, d.endpoint_id, e.url, e.active, d.attempts, ev.payload,
        CASE WHEN e.disabled_kind IN ('gone', 'sustained_failure') THEN 1 ELSE 0 END, ev.content_type, s.name, s.provider, ev.replay_of
    FROM deliveries d JOIN events ev ON ev.id = d.event_id JOIN endpoints e ON e.id = d.endpoint_id
        LEFT JOIN sources s ON s.id = ev.source_id
    WHERE d.user_id = ?1 AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?2
        AND (d.lease_until IS NULL OR d.lease_until <= ?2)
    ORDER BY d.next_attempt_at LIMIT ?3";

/// PostgreSQL, with many dispatchers: the next user with pending work, and whether it could be
/// locked (a user another dispatcher is claiming for now is skipped, not waited for). The
/// user's live leases are then counted in a later statement ([`LEASE_FOR_USER`]), whose snapshot
/// (READ COMMITTED) holds every lease committed by whoever had the lock before; counting in the
/// locking statement would see the older snapshot and overrun the cap.
const NEXT_USER_LOCKED: &str = "SELECT n.id, (SELECT u.id FROM users u WHERE u.id = n.id FOR NO KEY UPDATE SKIP LOCKED)
    FROM (SELECT min(user_id) AS id FROM deliveries WHERE next_attempt_at IS NOT NULL AND user_id > ?1) n";

fn next_user_locked(db: Db<'_>, after: Option<i64>) -> Result<(Option<i64>, bool)> {
    Ok(db.conn.prepare_cached(NEXT_USER_LOCKED)?.query_row([after.unwrap_or(i64::MIN)], |r| {
        Ok((r.get::<_, Option<i64>>(0)?, r.get::<_, Option<i64>>(1)?.is_some()))
    })?)
}

/// PostgreSQL: a locked user's free share of the cap (`?4` less its live leases, at most `?3`),
/// oldest due first, leased to this run, in one statement. Rows another transaction holds (a
/// page retrying one, another dispatcher) are left for the next claim rather than waited for.
const LEASE_FOR_USER: &str = "WITH due AS (
        SELECT d.id FROM deliveries d
        WHERE d.user_id = ?1 AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?2
            AND (d.lease_until IS NULL OR d.lease_until <= ?2)
        ORDER BY d.next_attempt_at
        LIMIT GREATEST(0, LEAST(?3, ?4 - (SELECT count(*) FROM deliveries WHERE user_id = ?1 AND lease_until > ?2)))
        FOR UPDATE OF d SKIP LOCKED
    ), leased AS (
        UPDATE deliveries d SET lease_until = ?5, lease_owner = ?6 FROM due WHERE d.id = due.id
        RETURNING d.id, d.event_id, d.endpoint_id, d.attempts, d.next_attempt_at
    )
    SELECT d.id, d.event_id, ev.type, d.endpoint_id, e.url, e.active, d.attempts, ev.payload,
        CASE WHEN e.disabled_kind IN ('gone', 'sustained_failure') THEN 1 ELSE 0 END, ev.content_type, s.name, s.provider, ev.replay_of
    FROM leased d JOIN events ev ON ev.id = d.event_id JOIN endpoints e ON e.id = d.endpoint_id
        LEFT JOIN sources s ON s.id = ev.source_id
    ORDER BY d.next_attempt_at";

fn lease_for_user(db: Db<'_>, user_id: i64, c: &Claim<'_>, room: usize) -> Result<Vec<DueRow>> {
    let mut stmt = db.conn.prepare_cached(LEASE_FOR_USER)?;
    rows(stmt.query_map(params![user_id, c.now, room as i64, c.per_user as i64, c.lease_until, c.run_id], due_row)?)
}

struct DueRow {
    due: Due,
    active: bool,
    /// Disabled by the system (its deliveries are held, not ended).
    holds: bool,
}

/// A user's due deliveries, oldest due first: the partial index `deliveries_due(user_id,
/// next_attempt_at)` makes this a seek however many rows are pending (the live leases it
/// steps over are at most the user's cap).
fn due_for_user(db: Db<'_>, user_id: i64, now: i64, limit: usize) -> Result<Vec<DueRow>> {
    rows(db.conn.prepare_cached(DUE_FOR_USER)?.query_map(params![user_id, now, limit as i64], due_row)?)
}

fn due_row(r: &super::sql::Row<'_>) -> super::sql::Result<DueRow> {
    Ok(DueRow {
        due: Due {
            delivery_id: r.get(0)?,
            event_id: r.get(1)?,
            event_type: r.get(2)?,
            endpoint_id: r.get(3)?,
            url: r.get(4)?,
            attempt: r.get::<_, u32>(6)? + 1,
            payload: r.get::<_, Option<Vec<u8>>>(7)?.unwrap_or_default(),
            relay: match (r.get::<_, Option<String>>(9)?, r.get::<_, Option<String>>(10)?) {
                (Some(content_type), Some(source)) => {
                    Some(Relay { content_type, source, provider: r.get(11)?, replay_of: r.get(12)? })
                }
                _ => None,
            },
        },
        active: r.get(5)?,
        holds: r.get(8)?,
    })
}

/// Applies a batch of attempts' decisions, each while `run_id` still holds its lease: the
/// delivery's next state and its attempt row; the endpoints' health (failure record, hourly
/// counters) and the failure rule's transitions ([`transitions`]), in the batch's order.
/// Returns, per attempt, whether the delivery was still this run's: a run whose lease ran out
/// and was claimed by another (fenced) changes nothing, the new holder's record stands.
///
/// Locks are taken in one order by every dispatcher: the batch's endpoints (sorted by id), then
/// its deliveries, then the events whose deliveries all ended (sorted), so concurrent records
/// on PostgreSQL wait for each other and never deadlock. There each step is one statement for
/// the whole batch (its rows as one JSON parameter), a handful of round trips however large the
/// batch; SQLite, in process, takes the rows one by one.
pub fn record(
    db: Db<'_>,
    batch: &[Attempted<'_>],
    now: i64,
    payload_retention: Duration,
    notify: &Notify,
) -> Result<Vec<bool>> {
    let ids: BTreeSet<&str> = batch.iter().map(|a| a.endpoint_id).collect();
    let mut endpoints = lock_endpoints(db, &ids)?;
    let applied = apply_attempts(db, batch, now)?;
    let mut stats: BTreeMap<(&str, i64), (i64, i64)> = BTreeMap::new();
    let mut ended: BTreeSet<String> = BTreeSet::new();
    for (a, delivery) in batch.iter().zip(&applied) {
        let (Some((began, event_id)), Some(e)) = (delivery, endpoints.get_mut(a.endpoint_id)) else {
            continue; // fenced, or the endpoint was deleted meanwhile (its deliveries with it)
        };
        let o = a.outcome;
        let counted = Counted::of(o);
        let old = e.failure;
        let mut failure = old.after_attempt(counted, now);
        if a.next == Next::Dead && counted == Counted::Failure {
            failure = failure.after_dead(now, *began);
        }
        e.failure = failure;
        e.last = Some((o.status_code, o.error_code));
        let counts = stats.entry((a.endpoint_id, hour_of(now))).or_default();
        if o.delivered() {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        transitions(db, e, old, a, event_id, now, notify)?;
        if !matches!(a.next, Next::RetryAt(_)) {
            ended.insert(event_id.clone());
        }
    }
    write_endpoints(db, &endpoints, now)?;
    add_stats(db, &stats)?;
    expire_payloads_if_done(db, &ended, now, payload_retention)?;
    Ok(applied.iter().map(Option::is_some).collect())
}

/// An endpoint as `record` keeps it while applying a batch.
struct Recording {
    id: String,
    failure: Failure,
    active: bool,
    user_id: i64,
    /// The latest attempt's status code and failure, to write back.
    last: Option<(Option<u16>, Option<FailureCode>)>,
}

/// Reads (and on PostgreSQL locks, in id order) the endpoints of a batch with their failure
/// records.
fn lock_endpoints(db: Db<'_>, ids: &BTreeSet<&str>) -> Result<BTreeMap<String, Recording>> {
    let read = |r: &super::sql::Row<'_>| {
        Ok(Recording {
            id: r.get(0)?,
            failure: endpoints::failure_at(r, 1)?,
            active: r.get(6)?,
            user_id: r.get(7)?,
            last: None,
        })
    };
    let found = if db.is_postgres() {
        // Dispatchers record at once: the failure records are read to be rewritten, so they
        // are locked for that, always in the same order (the sort runs before the lock).
        let ids = serde_json::to_string(ids)?;
        rows(db.conn.prepare_cached(RECORDING_POSTGRES)?.query_map([ids], read)?)?
    } else {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.extend(db.conn.prepare_cached(RECORDING)?.query_row([id], read).optional()?);
        }
        found
    };
    Ok(found.into_iter().map(|e| (e.id.clone(), e)).collect())
}

const RECORDING: &str =
    "SELECT id, fail_since, dead_count, first_dead_at, last_dead_at, last_success_at, active, user_id
    FROM endpoints WHERE id = ?1";

const RECORDING_POSTGRES: &str =
    "SELECT id, fail_since, dead_count, first_dead_at, last_dead_at, last_success_at, active, user_id
    FROM endpoints WHERE id IN (SELECT jsonb_array_elements_text(CAST(CAST(?1 AS TEXT) AS jsonb)))
    ORDER BY id FOR NO KEY UPDATE";

/// Each attempt's delivery moves to its next state, fenced by the lease, and gets its attempt
/// row. Returns, per attempt, the delivery's creation time and event when it was still this
/// run's.
fn apply_attempts(db: Db<'_>, batch: &[Attempted<'_>], now: i64) -> Result<Vec<Option<(i64, String)>>> {
    let Some(first) = batch.first() else { return Ok(Vec::new()) };
    if db.is_postgres() {
        let rows_json: Vec<serde_json::Value> = batch
            .iter()
            .map(|a| {
                let (next_at, finished) = next_times(a.next, now);
                let o = a.outcome;
                json!({"id": a.delivery_id, "status": a.next.status().as_str(), "attempt": a.attempt,
                       "next_attempt_at": next_at, "finished_at": finished, "status_code": o.status_code,
                       "error_code": o.error_code.map(|c| c.as_str()), "error": o.error, "started_at": a.started_at,
                       "duration_ms": o.duration_ms, "snippet": o.snippet, "request_body": a.request_body,
                       "response_body": o.response_body})
            })
            .collect();
        let applied: HashMap<String, (i64, String)> = rows(
            db.conn
                .prepare_cached(APPLY_POSTGRES)?
                .query_map(params![serde_json::to_string(&rows_json)?, now, first.run_id], |r| {
                    Ok((r.get::<_, String>(0)?, (r.get(1)?, r.get(2)?)))
                })?,
        )?
        .into_iter()
        .collect();
        return Ok(batch.iter().map(|a| applied.get(a.delivery_id).cloned()).collect());
    }
    let mut out = Vec::with_capacity(batch.len());
    for a in batch {
        let o = a.outcome;
        // SQLite rewrites every index holding a column the SET names, changed or not: a retry
        // names no `finished_at` (NULL while a delivery is leased), and a later retry of a
        // delivery already `failed` no `status` (a manual retry made it `pending`: then the
        // narrow statement matches nothing and the general one follows). Each is fenced by the
        // lease.
        let variants: &[&str] = match a.next {
            Next::RetryAt(_) if a.attempt > 1 => &[RETRY_AGAIN, RETRY_FIRST],
            Next::RetryAt(_) => &[RETRY_FIRST],
            Next::Succeeded | Next::Dead => &[END],
        };
        let (next_at, finished) = next_times(a.next, now);
        let mut applied = None;
        for sql in variants {
            applied = db
                .conn
                .prepare_cached(sql)?
                .query_row(
                    params![
                        a.next.status(),
                        a.attempt,
                        next_at.or(finished),
                        now,
                        o.status_code,
                        o.error_code,
                        o.error,
                        a.delivery_id,
                        a.run_id
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if applied.is_some() {
                break;
            }
        }
        if applied.is_some() {
            insert_attempt(db, a)?;
        }
        out.push(applied);
    }
    Ok(out)
}

/// SQLite, a retry of a delivery that failed before (`?1` is `failed`, `?3` the next time).
const RETRY_AGAIN: &str =
    "UPDATE deliveries SET attempts = ?2, next_attempt_at = ?3, lease_until = NULL, lease_owner = NULL,
        last_attempt_at = ?4, last_status_code = ?5, last_error_code = ?6, last_error = ?7
    WHERE id = ?8 AND lease_owner = ?9 AND status = ?1
    RETURNING created_at, event_id";

/// SQLite, any other retry.
const RETRY_FIRST: &str = "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at = ?3, lease_until = NULL,
        lease_owner = NULL, last_attempt_at = ?4, last_status_code = ?5, last_error_code = ?6, last_error = ?7
    WHERE id = ?8 AND lease_owner = ?9
    RETURNING created_at, event_id";

/// SQLite, a delivery that succeeded or went dead (`?3` is when it ended).
const END: &str =
    "UPDATE deliveries SET status = ?1, attempts = ?2, next_attempt_at = NULL, finished_at = ?3, lease_until = NULL,
        lease_owner = NULL, last_attempt_at = ?4, last_status_code = ?5, last_error_code = ?6, last_error = ?7
    WHERE id = ?8 AND lease_owner = ?9
    RETURNING created_at, event_id";

/// The batch's deliveries (fenced by the lease) and their attempt rows in one statement.
const APPLY_POSTGRES: &str = "WITH v AS (
        SELECT * FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb)) AS v(id TEXT, status TEXT, attempt BIGINT,
            next_attempt_at BIGINT, finished_at BIGINT, status_code BIGINT, error_code TEXT, error TEXT,
            started_at BIGINT, duration_ms BIGINT, snippet TEXT, request_body TEXT, response_body TEXT)
    ), moved AS (
        UPDATE deliveries d SET status = v.status, attempts = v.attempt, next_attempt_at = v.next_attempt_at,
            lease_until = NULL, lease_owner = NULL, last_attempt_at = ?2, last_status_code = v.status_code,
            last_error_code = v.error_code, last_error = v.error, finished_at = v.finished_at
        FROM v WHERE d.id = v.id AND d.lease_owner = ?3
        RETURNING d.id, d.created_at, d.event_id
    ), logged AS (
        INSERT INTO attempts (delivery_id, attempt, run_id, started_at, duration_ms, status_code, error_code, error,
                              response_snippet, request_body, response_body)
        SELECT v.id, v.attempt, ?3, v.started_at, v.duration_ms, v.status_code, v.error_code, v.error, v.snippet,
               v.request_body, v.response_body
        FROM v JOIN moved ON moved.id = v.id
    )
    SELECT id, created_at, event_id FROM moved";

/// When a decision schedules the next attempt, and when it ends the delivery.
fn next_times(next: Next, now: i64) -> (Option<i64>, Option<i64>) {
    match next {
        Next::Succeeded | Next::Dead => (None, Some(now)),
        Next::RetryAt(t) => (Some(t), None),
    }
}

/// The endpoints' new failure records and latest attempts.
fn write_endpoints(db: Db<'_>, endpoints: &BTreeMap<String, Recording>, now: i64) -> Result<()> {
    let written = endpoints.values().filter_map(|e| e.last.map(|last| (e, last)));
    if db.is_postgres() {
        let rows_json: Vec<serde_json::Value> = written
            .map(|(e, (status_code, error_code))| {
                let f = e.failure;
                json!({"id": e.id, "status_code": status_code, "error_code": error_code.map(|c| c.as_str()),
                       "fail_since": f.since, "dead_count": f.dead, "first_dead_at": f.first_dead_at,
                       "last_dead_at": f.last_dead_at, "last_success_at": f.last_success_at})
            })
            .collect();
        if !rows_json.is_empty() {
            db.conn
                .prepare_cached(WRITE_ENDPOINTS_POSTGRES)?
                .execute(params![serde_json::to_string(&rows_json)?, now])?;
        }
        return Ok(());
    }
    for (e, (status_code, error_code)) in written {
        let f = e.failure;
        db.conn
            .prepare_cached(
                "UPDATE endpoints SET last_attempt_at = ?1, last_status_code = ?2, last_error_code = ?3,
                        fail_since = ?4, dead_count = ?5, first_dead_at = ?6, last_dead_at = ?7, last_success_at = ?8
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
                e.id
            ])?;
    }
    Ok(())
}

const WRITE_ENDPOINTS_POSTGRES: &str = "UPDATE endpoints e SET last_attempt_at = ?2, last_status_code = v.status_code,
        last_error_code = v.error_code, fail_since = v.fail_since, dead_count = v.dead_count,
        first_dead_at = v.first_dead_at, last_dead_at = v.last_dead_at, last_success_at = v.last_success_at
    FROM jsonb_to_recordset(CAST(CAST(?1 AS TEXT) AS jsonb)) AS v(id TEXT, status_code BIGINT, error_code TEXT,
        fail_since BIGINT, dead_count BIGINT, first_dead_at BIGINT, last_dead_at BIGINT, last_success_at BIGINT)
    WHERE e.id = v.id";

/// Adds the batch's successes and failures to the endpoints' hourly counters.
fn add_stats(db: Db<'_>, stats: &BTreeMap<(&str, i64), (i64, i64)>) -> Result<()> {
    if db.is_postgres() {
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
        return Ok(());
    }
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

/// Once every delivery of an event has ended, its body is kept for `WEBHOOKS_PAYLOAD_RETENTION`:
/// `events` are those of deliveries just ended, taken in id order.
fn expire_payloads_if_done(db: Db<'_>, events: &BTreeSet<String>, now: i64, retention: Duration) -> Result<()> {
    let until = now + retention.as_millis() as i64;
    if db.is_postgres() {
        if !events.is_empty() {
            db.conn
                .prepare_cached(
                    "UPDATE events SET payload_expires_at = ?1
                     WHERE id IN (SELECT jsonb_array_elements_text(CAST(CAST(?2 AS TEXT) AS jsonb)))
                       AND NOT EXISTS (SELECT 1 FROM deliveries WHERE event_id = events.id AND finished_at IS NULL)",
                )?
                .execute(params![until, serde_json::to_string(events)?])?;
        }
        return Ok(());
    }
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

/// The failure rule's transitions after one attempt (docs/reliability.md, "When an endpoint
/// keeps failing"), from the record before (`old`) to the one after (`e.failure`): each changes
/// the endpoint's state and queues its notice in this same transaction, so a transition is told
/// exactly once.
/// - a delivery that went dead: `delivery.exhausted`;
/// - the first dead delivery with no success since it began: `endpoint.failing`;
/// - a 410, or the rule's conditions met: the endpoint is disabled, `endpoint.disabled`.
fn transitions(
    db: Db<'_>,
    e: &mut Recording,
    old: Failure,
    a: &Attempted<'_>,
    event_id: &str,
    now: i64,
    notify: &Notify,
) -> Result<()> {
    let (new, user_id, endpoint_id) = (e.failure, e.user_id, e.id.as_str());
    let o = a.outcome;
    let url = || -> Result<String> {
        Ok(db.conn.prepare_cached("SELECT url FROM endpoints WHERE id = ?1")?.query_row([endpoint_id], |r| r.get(0))?)
    };
    let last = |data: &mut serde_json::Value| {
        data["last_status_code"] = json!(o.status_code);
        data["last_error_code"] = json!(o.error_code.map(|c| c.as_str()));
    };
    if a.next == Next::Dead {
        let mut data = json!({"delivery_id": a.delivery_id, "event_id": event_id, "endpoint_id": endpoint_id,
                              "attempts": a.attempt});
        last(&mut data);
        let n = notices::New { event_type: "delivery.exhausted", user_id, endpoint_id: Some(endpoint_id), data };
        notices::add(db, notify, n, now)?;
    }
    if !e.active {
        return Ok(());
    }
    let reason = if o.error_code == Some(FailureCode::Gone) {
        Some(DisabledReason::Gone)
    } else if new.should_disable(notify.rule, now) {
        Some(DisabledReason::SustainedFailure)
    } else {
        None
    };
    // Disabled at once (a 410 on the first failure): that one notice says it all.
    if reason.is_none() && !old.is_failing() && new.is_failing() {
        let mut data = json!({"endpoint_id": endpoint_id, "url": url()?,
                              "fail_since": new.since.map(time::rfc3339),
                              "disable_at": new.disable_at(notify.rule).map(time::rfc3339)});
        last(&mut data);
        let n = notices::New { event_type: "endpoint.failing", user_id, endpoint_id: Some(endpoint_id), data };
        notices::add(db, notify, n, now)?;
    }
    if let Some(reason) = reason {
        let ep = endpoints::disable(db, endpoint_id, reason)?;
        let mut data = json!({"endpoint_id": endpoint_id, "url": ep.url, "reason": reason.as_str(),
                              "fail_since": new.since.map(time::rfc3339), "held": ep.held});
        last(&mut data);
        let n = notices::New { event_type: "endpoint.disabled", user_id, endpoint_id: Some(endpoint_id), data };
        notices::add(db, notify, n, now)?;
        e.active = false;
    }
    Ok(())
}

/// Ends a claimed delivery without a request (its endpoint is disabled, its body is gone, it has
/// no signing key).
pub fn finish_unsent(
    db: Db<'_>,
    delivery_id: &str,
    run_id: &str,
    code: FailureCode,
    error: &str,
    now: i64,
    payload_retention: Duration,
) -> Result<()> {
    let event: Option<String> = db
        .conn
        .prepare_cached(
            "UPDATE deliveries SET status = ?1, next_attempt_at = NULL, lease_until = NULL,
                    lease_owner = NULL, last_error_code = ?2, last_error = ?3, finished_at = ?4
             WHERE id = ?5 AND lease_owner = ?6
             RETURNING event_id",
        )?
        .query_row(params![Status::Dead, code, error, now, delivery_id, run_id], |r| r.get(0))
        .optional()?;
    expire_payloads_if_done(db, &event.into_iter().collect(), now, payload_retention)
}

/// Gives a claimed delivery back untried (the run's time budget ran out before it started).
pub fn release(db: Db<'_>, delivery_id: &str, run_id: &str, now: i64) -> Result<()> {
    db.conn
        .prepare_cached(
            "UPDATE deliveries SET next_attempt_at = ?1, lease_until = NULL, lease_owner = NULL
             WHERE id = ?2 AND lease_owner = ?3",
        )?
        .execute(params![now, delivery_id, run_id])?;
    Ok(())
}

/// What one attempt did, to record.
#[derive(Debug)]
pub struct Attempted<'a> {
    pub delivery_id: &'a str,
    pub endpoint_id: &'a str,
    pub attempt: u32,
    pub run_id: &'a str,
    pub started_at: i64,
    pub outcome: &'a Outcome,
    /// The request body, kept only when `WEBHOOKS_LOG_BODIES` asks for it.
    pub request_body: Option<&'a str>,
    /// The decision (`model::delivery::decide`).
    pub next: Next,
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

// ---- runs -----------------------------------------------------------------------------------

/// Notes that run `id` started at `at`.
pub fn start_run(db: Db<'_>, id: &str, at: i64) -> Result<()> {
    db.conn.execute("INSERT INTO runs (id, started_at) VALUES (?1, ?2)", params![id, at])?;
    Ok(())
}

/// Notes that run `id` ended, with its summary (JSON).
pub fn finish_run(db: Db<'_>, id: &str, at: i64, summary: &str) -> Result<()> {
    db.conn.execute("UPDATE runs SET finished_at = ?1, summary = ?2 WHERE id = ?3", params![at, summary, id])?;
    Ok(())
}

/// When the latest run started, if any ever did.
pub fn last_run_started(db: Db<'_>) -> Result<Option<i64>> {
    Ok(db.conn.query_row("SELECT max(started_at) FROM runs", params![], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        assert!(plan.iter().any(|p| p.contains("USING INDEX deliveries_due")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "a sort per claim: {plan:?}");
    }
}
