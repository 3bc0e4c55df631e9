//! The delivery queue as the dispatcher works it: claiming due deliveries under a lease, with
//! per-user caps counted from live leases (so the caps hold across overlapping runs); recording
//! what each attempt did (an `attempts` row, the delivery's next state, the endpoint's health);
//! and the `runs` heartbeat. The claim and the recording of a batch run in one of the
//! coordinator's transactions where one writer holds the database at a time, in one each where
//! claims run at once (see `dispatch.rs`).
//!
//! A delivery waiting to be sent has a row in `queue` beside its record in `deliveries`
//! (`sql/012_queue.sql`): the queue row is what claims, retries and releases write (its due
//! time, lease, attempts so far and `pending`/`failed`), three small indexes; the record, with
//! the log's and the dashboard's indexes, is written when the delivery is held or ends, and then
//! its queue row is deleted.
//!
//! A lease is the queue row's `lease_until` and `lease_owner` (the run id). A claim writes only
//! those two (and so touches one index, `queue_leased`): a delivery is due when
//! `next_attempt_at` has come and it holds no live lease, so a killed run's deliveries become
//! due again when their lease runs out. Results are applied only while their run still owns the
//! lease (fencing).
//!
//! This file is the walk and the record, the same on every engine; each engine says its
//! statements in its own file ([`Statements`]: `sqlite.rs`, `postgres.rs`), which the store's
//! engine hands out (`Db::queue`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::sql::{params, OptionalExtension};

use super::{endpoints, notices, ordering, pacing, Db};
use crate::model::delivery::{FailureCode, Next, Outcome, Status};
use crate::model::health::{Counted, DisabledReason, Failure, Notify};
use crate::model::notice::Notice;
use crate::model::pacing::{self as pace, Admit, Gate, Limits};
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
    /// When the delivery was created (the failure rule counts a dead one from then).
    pub created_at: i64,
    /// The number this attempt will have (1 for the first).
    pub attempt: u32,
    /// The body as sent: the event's JSON envelope, or a relayed provider body byte for byte.
    pub payload: Vec<u8>,
    /// Set for a relayed inbound request.
    pub relay: Option<Relay>,
    /// On a FIFO endpoint, the delivery's ordering key ('' for none): the next of its key is
    /// sent when this one leaves the queue.
    pub ordering_key: Option<String>,
    /// On a FIFO endpoint with `fifo_on_dead = block`: going dead blocks the key.
    pub block_on_dead: bool,
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
    /// Deliveries parked until their endpoint's limits or pause let them go, and the earliest
    /// time one of them comes due.
    pub parked: usize,
    pub parked_until: Option<i64>,
}

/// Claims up to `c.slots` due deliveries, user by user in round-robin order starting after
/// `cursor` (the last user served, updated here), each user taking at most its free share of
/// `c.per_user`. Deliveries whose endpoint is disabled or whose body has expired are ended
/// (dead, unsent) instead of claimed. A due delivery of an endpoint with limits or a pause
/// (docs/pacing.md) is claimed only when they let it go; otherwise it is parked until they do,
/// and the claim looks further on (up to [`MAX_PARKED_PER_USER`] rows per user per claim).
pub fn claim(db: Db<'_>, c: &Claim<'_>, cursor: &mut Option<i64>) -> Result<Claimed> {
    let mut out = Claimed::default();
    let mut gates: BTreeMap<String, Gate> = BTreeMap::new();
    // The walk: the users after the cursor, then (wrapped round) those up to it, each once. It
    // is bounded by the cursor, not by the users met on the way: on PostgreSQL each statement
    // sees what other dispatchers committed meanwhile, so users come and go during the walk.
    let start = *cursor;
    let mut after = start;
    let mut wrapped = false;
    while out.due.len() < c.slots {
        let (next, locked) = db.queue().next_user(db, after)?;
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
        let mut parked_here = 0;
        loop {
            let room = c.slots - out.due.len();
            let found = db.queue().lease(db, user_id, c, room)?;
            if !found.is_empty() {
                *cursor = Some(user_id);
            }
            let mut parked = 0;
            for row in found {
                if !row.leased {
                    if row.endpoint == EndpointState::Active {
                        let gate = match gates.entry(row.due.endpoint_id.clone()) {
                            std::collections::btree_map::Entry::Occupied(g) => g.into_mut(),
                            std::collections::btree_map::Entry::Vacant(v) => v.insert(pacing::gate(
                                db,
                                user_id,
                                &row.due.endpoint_id,
                                row.limits,
                                row.paused_until,
                                c.now,
                            )?),
                        };
                        if let Admit::Park(at) = gate.admit(c.now, c.lease_until, row.parked) {
                            pacing::park(db, &row.due.delivery_id, at)?;
                            out.parked_until = Some(out.parked_until.map_or(at, |p| p.min(at)));
                            out.parked += 1;
                            parked += 1;
                            continue;
                        }
                    }
                    lease_one(db, &row.due.delivery_id, c)?;
                }
                if row.endpoint == EndpointState::Held {
                    // Disabled by the system: kept until the endpoint is enabled again.
                    leave(db, &row.due.delivery_id, c.run_id, Status::Held, None, None)?;
                    out.held += 1;
                    continue;
                }
                let unsendable = if row.endpoint == EndpointState::Disabled {
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
            parked_here += parked;
            // Parked rows moved out of the way: the user's next due rows may go.
            if parked == 0 || out.due.len() >= c.slots || parked_here >= MAX_PARKED_PER_USER {
                break;
            }
        }
    }
    for (endpoint_id, gate) in &gates {
        if gate.limits.is_limited() {
            pacing::save(db, endpoint_id, gate)?;
        }
    }
    Ok(out)
}

/// The most due rows one claim parks for one user before it moves on: a large backlog of a
/// paused or paced endpoint is parked over a few claims, each bounded, rather than in one.
pub const MAX_PARKED_PER_USER: usize = 256;

/// Leases a claimed row the engine's lease left to the claim's decision.
fn lease_one(db: Db<'_>, delivery_id: &str, c: &Claim<'_>) -> Result<()> {
    db.conn
        .prepare_cached("UPDATE queue SET lease_until = ?1, lease_owner = ?2, parked = 0 WHERE delivery_id = ?3")?
        .execute(params![c.lease_until, c.run_id, delivery_id])?;
    Ok(())
}

/// Whether any delivery is due at `now` (leased ones are not until their lease runs out).
pub fn any_due(db: Db<'_>, now: i64) -> Result<bool> {
    Ok(db.conn.prepare_cached(db.queue().any_due())?.query_row([now], |_| Ok(())).optional()?.is_some())
}

/// One engine's statements for the queue: the operations whose SQL differs between the engines,
/// each said whole in that engine's dialect.
pub trait Statements: Sync {
    /// Whether any delivery is due at `?1`.
    fn any_due(&self) -> &str;

    /// Deliveries due at `?1` (not leased), counted up to at least `?2`.
    fn due_count(&self) -> &str;

    /// When the oldest delivery not leased at `?1` is (or was) due.
    fn oldest_due(&self) -> &str;

    /// The next user (by id, after `after`) with unfinished deliveries, and whether this claim
    /// holds it (false: another claimer does now; it is skipped, not waited for).
    fn next_user(&self, db: Db<'_>, after: Option<i64>) -> Result<(Option<i64>, bool)>;

    /// Leases to `c.run_id` up to `room` of the user's due deliveries, oldest due first, within
    /// its free share of `c.per_user` (less its live leases). Rows of an endpoint with limits or
    /// a pause are returned (locked where claims run at once) but not leased (`DueRow::leased`):
    /// the claim decides for them.
    fn lease(&self, db: Db<'_>, user_id: i64, c: &Claim<'_>, room: usize) -> Result<Vec<DueRow>>;

    /// Reads the batch's endpoints with their failure records, locking them in id order where
    /// claims run at once.
    fn lock_endpoints(&self, db: Db<'_>, ids: &BTreeSet<&str>) -> Result<Vec<Recording>>;

    /// Moves each attempt's delivery to its next state, fenced by the lease, and appends its
    /// attempt row: a retry rewrites the queue row; a delivery that ended leaves the queue and
    /// its record says how it ended. Returns, per attempt, whether it was still this run's.
    fn apply_attempts(&self, db: Db<'_>, batch: &[Attempted<'_>], now: i64) -> Result<Vec<bool>>;

    /// Writes the endpoints' new failure records and latest attempts.
    fn write_endpoints(&self, db: Db<'_>, written: &[Written<'_>], now: i64) -> Result<()>;

    /// Adds successes and failures to the endpoints' hourly counters.
    fn add_stats(&self, db: Db<'_>, stats: &BTreeMap<(&str, i64), (i64, i64)>) -> Result<()>;

    /// Keeps the bodies of `events` until `until` when all their deliveries have ended.
    fn expire_payloads(&self, db: Db<'_>, events: &BTreeSet<String>, until: i64) -> Result<()>;
}

pub mod postgres;
pub mod sqlite;

/// A claimed row before the walk decides what to do with it.
pub struct DueRow {
    due: Due,
    endpoint: EndpointState,
    /// Leased by the engine's statement (its endpoint has no limits and no pause).
    leased: bool,
    limits: Limits,
    paused_until: i64,
    /// Parked before (it has waited its turn in the line).
    parked: bool,
}

/// What the delivery's endpoint lets happen to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndpointState {
    /// Enabled: the delivery is sent.
    Active,
    /// Disabled by the system (a 410, the failure rule): the delivery is held until the
    /// endpoint is enabled again.
    Held,
    /// Disabled by hand: the delivery ends unsent.
    Disabled,
}

/// A due row as both engines select it: the delivery, its event (and source), its endpoint's
/// `active` and `disabled_kind`, the delivery's creation time, its ordering key and the
/// endpoint's `fifo_on_dead`; then whether the endpoint is free of limits and pause, its limits,
/// its pause and whether the row was parked.
fn due_row(r: &super::sql::Row<'_>) -> super::sql::Result<DueRow> {
    Ok(DueRow {
        due: Due {
            delivery_id: r.get(0)?,
            event_id: r.get(1)?,
            event_type: r.get(2)?,
            endpoint_id: r.get(3)?,
            url: r.get(4)?,
            created_at: r.get(13)?,
            ordering_key: r.get(14)?,
            block_on_dead: r.get::<_, Option<String>>(15)?.as_deref() == Some("block"),
            attempt: r.get::<_, u32>(6)? + 1,
            payload: r.get::<_, Option<Vec<u8>>>(7)?.unwrap_or_default(),
            relay: match (r.get::<_, Option<String>>(9)?, r.get::<_, Option<String>>(10)?) {
                (Some(content_type), Some(source)) => {
                    Some(Relay { content_type, source, provider: r.get(11)?, replay_of: r.get(12)? })
                }
                _ => None,
            },
        },
        endpoint: if r.get(5)? {
            EndpointState::Active
        } else if endpoints::holds(r.get(8)?) {
            EndpointState::Held
        } else {
            EndpointState::Disabled
        },
        leased: r.get::<_, i64>(16)? == 1,
        limits: Limits { max_per_second: r.get(17)?, max_in_flight: r.get(18)? },
        paused_until: r.get::<_, Option<i64>>(19)?.unwrap_or(0),
        parked: r.get::<_, i64>(20)? == 1,
    })
}

/// Applies a batch of attempts' decisions, each while `run_id` still holds its lease: the
/// delivery's next state and its attempt row; the endpoints' health (failure record, hourly
/// counters) and the failure rule's transitions ([`transitions`]), in the batch's order.
/// Returns, per attempt, whether the delivery was still this run's: a run whose lease ran out
/// and was claimed by another (fenced) changes nothing, the new holder's record stands.
///
/// Locks are taken in one order by every dispatcher: the batch's endpoints (sorted by id), then
/// its queue rows and deliveries, then the events whose deliveries all ended (sorted), so concurrent records
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
    let statements = db.queue();
    let ids: BTreeSet<&str> = batch.iter().map(|a| a.endpoint_id).collect();
    let mut endpoints: BTreeMap<String, Recording> =
        statements.lock_endpoints(db, &ids)?.into_iter().map(|e| (e.id.clone(), e)).collect();
    let applied = statements.apply_attempts(db, batch, now)?;
    let mut stats: BTreeMap<(&str, i64), (i64, i64)> = BTreeMap::new();
    let mut ended: BTreeSet<String> = BTreeSet::new();
    for (a, applied) in batch.iter().zip(&applied) {
        let (true, Some(e)) = (applied, endpoints.get_mut(a.endpoint_id)) else {
            continue; // fenced, or the endpoint was deleted meanwhile (its deliveries with it)
        };
        let (began, event_id) = (a.created_at, a.event_id);
        let o = a.outcome;
        let counted = Counted::of(o);
        let old = e.failure;
        let mut failure = old.after_attempt(counted, now);
        if a.next == Next::Dead && counted == Counted::Failure {
            failure = failure.after_dead(now, began);
        }
        e.failure = failure;
        e.last = Some((o.status_code, o.error_code));
        if let Some(pause) = pace::pause_of(o) {
            // The whole endpoint waits, from when the answer is recorded (docs/pacing.md).
            let until = now + pause.as_millis() as i64;
            if e.paused.0.is_none_or(|p| p < until) {
                e.paused = (Some(until), o.status_code.map(i64::from));
            }
        }
        if e.max_in_flight.is_some() {
            pacing::wake(db, e.user_id, a.endpoint_id, now)?;
        }
        let counts = stats.entry((a.endpoint_id, hour_of(now))).or_default();
        if o.delivered() {
            counts.0 += 1;
        } else {
            counts.1 += 1;
        }
        transitions(db, e, old, a, event_id, now, notify)?;
        if !matches!(a.next, Next::RetryAt(_)) {
            ended.insert(event_id.to_string());
            if let Some(key) = a.ordering_key {
                if a.blocks() {
                    let n = Notice::KeyBlocked {
                        endpoint_id: a.endpoint_id.to_string(),
                        ordering_key: key.to_string(),
                        delivery_id: a.delivery_id.to_string(),
                        event_id: event_id.to_string(),
                        attempts: a.attempt,
                        last_status_code: o.status_code,
                        last_error_code: o.error_code,
                    };
                    notices::add(db, notify, e.user_id, &n, now)?;
                } else {
                    ordering::promote(db, a.endpoint_id, key, now)?;
                }
            }
        }
    }
    let written: Vec<Written<'_>> = endpoints.values().filter_map(|e| e.last.map(|last| (e, last))).collect();
    statements.write_endpoints(db, &written, now)?;
    statements.add_stats(db, &stats)?;
    statements.expire_payloads(db, &ended, now + payload_retention.as_millis() as i64)?;
    Ok(applied)
}

/// An endpoint as `record` keeps it while applying a batch.
pub struct Recording {
    id: String,
    failure: Failure,
    active: bool,
    user_id: i64,
    /// The latest attempt's status code and failure, to write back.
    last: Option<(Option<u16>, Option<FailureCode>)>,
    /// The pause its receiver asked for (until, status code), to write back.
    paused: (Option<i64>, Option<i64>),
    max_in_flight: Option<i64>,
}

/// An endpoint with its latest attempt's status code and failure, to write back.
pub type Written<'a> = (&'a Recording, (Option<u16>, Option<FailureCode>));

/// An endpoint's row as both engines select it for a record ([`RECORDING_COLUMNS`]).
fn recording(r: &super::sql::Row<'_>) -> super::sql::Result<Recording> {
    Ok(Recording {
        id: r.get(0)?,
        failure: endpoints::failure_at(r, 1)?,
        active: r.get(6)?,
        user_id: r.get(7)?,
        last: None,
        paused: (r.get(8)?, r.get(9)?),
        max_in_flight: r.get(10)?,
    })
}

/// The columns [`recording`] reads.
pub const RECORDING_COLUMNS: &str =
    "id, fail_since, dead_count, first_dead_at, last_dead_at, last_success_at, active, \
    user_id, paused_until, paused_status, max_in_flight";

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
    let (last_status_code, last_error_code) = (o.status_code, o.error_code);
    if a.next == Next::Dead {
        let n = Notice::DeliveryExhausted {
            delivery_id: a.delivery_id.to_string(),
            event_id: event_id.to_string(),
            endpoint_id: endpoint_id.to_string(),
            attempts: a.attempt,
            last_status_code,
            last_error_code,
        };
        notices::add(db, notify, user_id, &n, now)?;
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
        let n = Notice::EndpointFailing {
            endpoint_id: endpoint_id.to_string(),
            url: url()?,
            fail_since: new.since.map(time::rfc3339),
            disable_at: new.disable_at(notify.rule).map(time::rfc3339),
            last_status_code,
            last_error_code,
        };
        notices::add(db, notify, user_id, &n, now)?;
    }
    if let Some(reason) = reason {
        let ep = endpoints::disable(db, endpoint_id, reason)?;
        let n = Notice::EndpointDisabled {
            endpoint_id: endpoint_id.to_string(),
            url: ep.url,
            reason,
            fail_since: new.since.map(time::rfc3339),
            held: ep.held,
            last_status_code,
            last_error_code,
        };
        notices::add(db, notify, user_id, &n, now)?;
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
    let event = leave(db, delivery_id, run_id, Status::Dead, Some(now), Some((code, error)))?;
    db.queue().expire_payloads(db, &event.into_iter().collect(), now + payload_retention.as_millis() as i64)
}

/// Takes a claimed delivery out of the queue without an attempt, fenced by the lease: its record
/// becomes `status` with the attempts it had, its latest attempt's summary (or `error`, which
/// says why it was not sent) and, for an end, `finished`. Returns its event when it was still
/// this run's.
fn leave(
    db: Db<'_>,
    delivery_id: &str,
    run_id: &str,
    status: Status,
    finished: Option<i64>,
    error: Option<(FailureCode, &str)>,
) -> Result<Option<String>> {
    let left: Option<(i64, String, Option<String>)> = db
        .conn
        .prepare_cached(
            "DELETE FROM queue WHERE delivery_id = ?1 AND lease_owner = ?2 RETURNING attempts, endpoint_id, ordering_key",
        )?
        .query_row(params![delivery_id, run_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((attempts, endpoint_id, key)) = left else { return Ok(None) };
    if let Some(key) = key {
        ordering::promote(db, &endpoint_id, &key, time::now_ms())?;
    }
    let (code, text) = error.map_or((None, None), |(c, t)| (Some(c), Some(t)));
    Ok(Some(
        db.conn
            .prepare_cached(
                "UPDATE deliveries SET status = ?2, attempts = ?3, finished_at = ?4,
                    last_attempt_at = a.started_at, last_status_code = a.status_code,
                    last_error_code = coalesce(?5, a.error_code), last_error = coalesce(?6, a.error)
                 FROM (SELECT 1 AS one) o LEFT JOIN (SELECT started_at, status_code, error_code, error FROM attempts
                     WHERE delivery_id = ?1 ORDER BY attempt DESC, id DESC LIMIT 1) a ON true
                 WHERE deliveries.id = ?1
                 RETURNING deliveries.event_id",
            )?
            .query_row(params![delivery_id, status, attempts, finished, code, text], |r| r.get(0))?,
    ))
}

/// Gives a claimed delivery back untried (the run's time budget ran out before it started).
pub fn release(db: Db<'_>, delivery_id: &str, run_id: &str, now: i64) -> Result<()> {
    db.conn
        .prepare_cached(
            "UPDATE queue SET next_attempt_at = ?1, lease_until = NULL, lease_owner = NULL
             WHERE delivery_id = ?2 AND lease_owner = ?3",
        )?
        .execute(params![now, delivery_id, run_id])?;
    Ok(())
}

/// What one attempt did, to record.
#[derive(Debug)]
pub struct Attempted<'a> {
    pub delivery_id: &'a str,
    pub event_id: &'a str,
    /// When the delivery was created ([`Due::created_at`]).
    pub created_at: i64,
    pub endpoint_id: &'a str,
    pub attempt: u32,
    pub run_id: &'a str,
    pub started_at: i64,
    pub outcome: &'a Outcome,
    /// The request body, kept only when `WEBHOOKS_LOG_BODIES` asks for it.
    pub request_body: Option<&'a str>,
    /// The decision (`model::delivery::decide`).
    pub next: Next,
    /// [`Due::ordering_key`] and [`Due::block_on_dead`].
    pub ordering_key: Option<&'a str>,
    pub block_on_dead: bool,
}

impl Attempted<'_> {
    /// Whether this attempt leaves its delivery in the queue as a blocked key's dead head.
    pub fn blocks(&self) -> bool {
        self.next == Next::Dead && self.block_on_dead && self.ordering_key.is_some()
    }
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
