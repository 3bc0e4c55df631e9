//! Paced delivery in the store (docs/pacing.md): the state every dispatcher shares for an
//! endpoint with `max_per_second` or `max_in_flight` (`endpoint_pacing`), the queue rows a claim
//! parks until they may go (`queue.parked`), and the pauses receivers asked for
//! (`endpoints.paused_until`).
//!
//! Claims decide (`queue::claim`, with the rules of `model::pacing`); a claim holds the
//! endpoint's user (PostgreSQL: its row lock; SQLite: the one writer), so two claims never
//! decide for one endpoint at once. Records write pauses with the endpoint's failure record, and
//! wake a parked delivery when a request of an endpoint at its `max_in_flight` ends.

use super::sql::{params, OptionalExtension};

use super::{rows, Db};
use crate::model::pacing::{Gate, Limits};
use crate::model::Result;

/// The gate of one endpoint for a claim at `now`: its limits and pause (from the claimed row),
/// its shared pacing state, and its live leases.
pub fn gate(db: Db<'_>, user_id: i64, endpoint_id: &str, limits: Limits, paused_until: i64, now: i64) -> Result<Gate> {
    let (next_at, parked_until): (i64, i64) = db
        .conn
        .prepare_cached("SELECT next_at, parked_until FROM endpoint_pacing WHERE endpoint_id = ?1")?
        .query_row([endpoint_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, 0));
    // The user's live leases are a few (its cap): `queue_leased(user_id, lease_until)`.
    let (in_flight, lease_end): (i64, Option<i64>) = db
        .conn
        .prepare_cached(
            "SELECT count(*), max(lease_until) FROM queue
             WHERE user_id = ?1 AND lease_until > ?2 AND endpoint_id = ?3",
        )?
        .query_row(params![user_id, now, endpoint_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(Gate { limits, paused_until, next_at, parked_until, in_flight, lease_end: lease_end.unwrap_or(0) })
}

/// Writes back what a claim moved on.
pub fn save(db: Db<'_>, endpoint_id: &str, g: &Gate) -> Result<()> {
    db.conn
        .prepare_cached(
            "INSERT INTO endpoint_pacing (endpoint_id, next_at, parked_until) VALUES (?1, ?2, ?3)
             ON CONFLICT (endpoint_id) DO UPDATE SET next_at = excluded.next_at, parked_until = excluded.parked_until",
        )?
        .execute(params![endpoint_id, g.next_at, g.parked_until])?;
    Ok(())
}

/// Moves a due delivery to `at`, marked as parked (not a retry's schedule).
pub fn park(db: Db<'_>, delivery_id: &str, at: i64) -> Result<()> {
    db.conn
        .prepare_cached("UPDATE queue SET next_attempt_at = ?1, parked = 1 WHERE delivery_id = ?2")?
        .execute(params![at, delivery_id])?;
    Ok(())
}

/// Wakes the next parked delivery of an endpoint at its `max_in_flight` whose request just
/// ended: due now instead of when the last lease would have run out. Its user's waiting rows
/// are walked from now on (`queue_due`); the parked ones are a few slots ahead.
pub fn wake(db: Db<'_>, user_id: i64, endpoint_id: &str, now: i64) -> Result<()> {
    db.conn
        .prepare_cached(
            "UPDATE queue SET next_attempt_at = ?3 WHERE delivery_id = (
                SELECT delivery_id FROM queue
                WHERE user_id = ?1 AND next_attempt_at > ?3 AND endpoint_id = ?2 AND parked = 1 AND lease_until IS NULL
                ORDER BY next_attempt_at LIMIT 1)",
        )?
        .execute(params![user_id, endpoint_id, now])?;
    Ok(())
}

/// After a change of an endpoint's limits: its parked deliveries are due at once (the claim
/// spreads them again under the new limits) and its pacing starts afresh. A pause its receiver
/// asked for stays.
pub fn limits_changed(db: Db<'_>, endpoint_id: &str, now: i64) -> Result<()> {
    db.conn.execute(
        "UPDATE queue SET next_attempt_at = ?2, parked = 0
         WHERE user_id = (SELECT user_id FROM endpoints WHERE id = ?1) AND next_attempt_at > ?2
           AND endpoint_id = ?1 AND parked = 1 AND lease_until IS NULL",
        params![endpoint_id, now],
    )?;
    db.conn.execute("DELETE FROM endpoint_pacing WHERE endpoint_id = ?1", [endpoint_id])?;
    Ok(())
}

/// When the next parked delivery comes due (after `now`), if any: `queue_parked`.
pub fn next_parked(db: Db<'_>, now: i64) -> Result<Option<i64>> {
    Ok(db
        .conn
        .prepare_cached("SELECT min(next_attempt_at) FROM queue WHERE parked = 1 AND next_attempt_at > ?1")?
        .query_row([now], |r| r.get(0))?)
}

/// The endpoints paused at `now`, with until when: `endpoints_paused`.
pub fn paused(db: Db<'_>, now: i64) -> Result<Vec<(String, i64)>> {
    rows(
        db.conn
            .prepare_cached("SELECT id, paused_until FROM endpoints WHERE paused_until > ?1")?
            .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?,
    )
}
