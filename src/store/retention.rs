//! Retention: event bodies are dropped `WEBHOOKS_PAYLOAD_RETENTION` after their last delivery
//! ends; delivery logs (with their attempts), events and run heartbeats after
//! `WEBHOOKS_LOG_RETENTION`. Work is done in bounded batches so that one cron run never holds the
//! write lock for long, and a large backlog is worked off over several runs.

use serde::Serialize;

use super::Db;
use crate::model::delivery::{FailureCode, Retention};
use crate::model::health::DAY_MS;
use crate::model::Result;

pub const BATCH: i64 = 1000;

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Purged {
    /// Held deliveries that went dead after `WEBHOOKS_HOLD_RETENTION`.
    pub held_expired: usize,
    pub payloads: usize,
    pub deliveries: usize,
    pub events: usize,
    pub runs: usize,
    pub login_links: usize,
    /// Inbound request bodies dropped, and inbound requests deleted.
    pub inbound_bodies: usize,
    pub inbound_requests: usize,
}

/// Applies retention at `now` with `WEBHOOKS_LOG_RETENTION`, at most `max_batches` batches of
/// [`BATCH`] rows per kind. (Event bodies carry their own expiry, set when their last delivery
/// ended.)
pub fn purge(db: Db<'_>, r: &Retention, now: i64, max_batches: usize) -> Result<Purged> {
    let cutoff = now - r.log.as_millis() as i64;
    let held_expired = expire_held(db, r, now, max_batches)?;
    let payloads = batches(
        db,
        max_batches,
        now,
        "UPDATE events SET payload = NULL WHERE id IN
        (SELECT id FROM events WHERE payload IS NOT NULL AND payload_expires_at <= ?1 LIMIT ?2)",
    )?;
    let deliveries = batches(
        db,
        max_batches,
        cutoff,
        "DELETE FROM deliveries WHERE id IN
        (SELECT id FROM deliveries WHERE finished_at IS NOT NULL AND finished_at <= ?1 LIMIT ?2)",
    )?;
    let events = batches(
        db,
        max_batches,
        cutoff,
        "DELETE FROM events WHERE id IN
        (SELECT id FROM events ev WHERE created_at <= ?1
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = ev.id) LIMIT ?2)",
    )?;
    let runs = batches(
        db,
        max_batches,
        cutoff,
        "DELETE FROM runs WHERE id IN
        (SELECT id FROM runs WHERE started_at <= ?1 LIMIT ?2)",
    )?;
    batches(
        db,
        max_batches,
        now - 2 * DAY_MS,
        "DELETE FROM endpoint_stats WHERE (endpoint_id, hour) IN
        (SELECT endpoint_id, hour FROM endpoint_stats WHERE hour <= ?1 LIMIT ?2)",
    )?;
    // Notices every channel has taken (or has none for), once the log retention has passed.
    batches(
        db,
        max_batches,
        cutoff,
        "DELETE FROM notices WHERE id IN
        (SELECT id FROM notices WHERE created_at <= ?1 AND webhook_state != 'pending' AND email_state != 'pending'
         LIMIT ?2)",
    )?;
    let login_links = batches(
        db,
        max_batches,
        now,
        "DELETE FROM login_links_used WHERE nonce IN
        (SELECT nonce FROM login_links_used WHERE expires_at <= ?1 LIMIT ?2)",
    )?;
    batches(
        db,
        max_batches,
        now,
        "DELETE FROM sessions WHERE sid IN (SELECT sid FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
    )?;
    // A revocation refuses links issued before it; none lives longer than a day.
    batches(
        db,
        max_batches,
        now - 2 * DAY_MS,
        "DELETE FROM session_revocations WHERE user_name IN
        (SELECT user_name FROM session_revocations WHERE revoked_at <= ?1 LIMIT ?2)",
    )?;
    let inbound_bodies = batches(
        db,
        max_batches,
        now - r.inbound_body.as_millis() as i64,
        "UPDATE inbound_requests SET body = NULL WHERE id IN
        (SELECT id FROM inbound_requests WHERE body IS NOT NULL AND received_at <= ?1 LIMIT ?2)",
    )?;
    let inbound_cutoff = now - r.inbound.as_millis() as i64;
    let inbound_requests = batches(
        db,
        max_batches,
        inbound_cutoff,
        "DELETE FROM inbound_requests WHERE id IN
        (SELECT id FROM inbound_requests WHERE received_at <= ?1 LIMIT ?2)",
    )?;
    batches(
        db,
        max_batches,
        inbound_cutoff,
        "DELETE FROM source_hours WHERE (source_id, hour, outcome, reason) IN
        (SELECT source_id, hour, outcome, reason FROM source_hours WHERE hour <= ?1 LIMIT ?2)",
    )?;
    // Circle key misses and key-server requests are only worth remembering for a day.
    batches(
        db,
        max_batches,
        now - DAY_MS,
        "DELETE FROM source_key_fetches WHERE (source_id, at) IN
        (SELECT source_id, at FROM source_key_fetches WHERE at <= ?1 LIMIT ?2)",
    )?;
    batches(
        db,
        max_batches,
        now - DAY_MS,
        "DELETE FROM source_key_misses WHERE (source_id, key_id) IN
        (SELECT source_id, key_id FROM source_key_misses WHERE at <= ?1 LIMIT ?2)",
    )?;
    Ok(Purged { held_expired, payloads, deliveries, events, runs, login_links, inbound_bodies, inbound_requests })
}

/// Held deliveries older than the hold retention go dead with `E_ENDPOINT_DISABLED`; their
/// events' bodies are then kept for the payload retention, as after any last delivery.
fn expire_held(db: Db<'_>, r: &Retention, now: i64, max_batches: usize) -> Result<usize> {
    let cutoff = now - r.hold.as_millis() as i64;
    let total = batches_with(
        db,
        max_batches,
        "UPDATE deliveries SET status = 'dead', finished_at = ?1, last_error_code = ?2,
                last_error = 'held longer than WEBHOOKS_HOLD_RETENTION while its endpoint was disabled'
         WHERE id IN (SELECT id FROM deliveries WHERE status = 'held' AND created_at <= ?3 LIMIT ?4)",
        &[&now, &FailureCode::EndpointDisabled, &cutoff],
    )?;
    if total > 0 {
        super::expire_bodies_of_ended_holds(db, now, r.payload)?;
    }
    Ok(total)
}

/// Runs `sql` (`?1` the time, `?2` the batch size) in batches until one touches fewer rows than
/// [`BATCH`], at most `max_batches` times.
fn batches(db: Db<'_>, max_batches: usize, at: i64, sql: &str) -> Result<usize> {
    batches_with(db, max_batches, sql, &[&at])
}

/// Runs `sql` with `params` and then the batch size, in batches, as [`batches`] does.
fn batches_with(db: Db<'_>, max_batches: usize, sql: &str, params: &[&dyn super::sql::ToSql]) -> Result<usize> {
    let mut all: Vec<&dyn super::sql::ToSql> = params.to_vec();
    all.push(&BATCH);
    let mut total = 0;
    for _ in 0..max_batches {
        let n = db.conn.prepare_cached(sql)?.execute(&*all)?;
        total += n;
        if (n as i64) < BATCH {
            break;
        }
    }
    Ok(total)
}
