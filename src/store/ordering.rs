//! Ordered delivery (docs/ordering.md): a FIFO endpoint's queue rows carry their key (the
//! event's `ordering_key`, '' for none) and number (`fifo_seq`, from the endpoint's counter); a
//! key's first row by number is its head, the only one with a due time. Every way into the queue
//! appends (a new number), so the head is always the lowest; every way out of it promotes the
//! next. A head that went dead under `fifo_on_dead = block` stays, `blocked`, until a person
//! retries or discards it.

use super::sql::{params, OptionalExtension};
use super::{rows, Db};
use crate::model::Result;

/// Makes the first row of (`endpoint_id`, `key`) due at `now`, unless it is due already (or
/// leased), or is a blocked dead head.
///
/// It first takes the endpoint's row lock, as an intake numbering a delivery for it does
/// ([`next_seq`]): on PostgreSQL an intake that saw the old head and queued behind it has then
/// committed before the promotion reads the line, or it comes after and finds the line empty.
/// (A record holds the lock already; the claim's unsent and held ends, and the pages' retry and
/// discard, take it here.)
pub fn promote(db: Db<'_>, endpoint_id: &str, key: &str, now: i64) -> Result<()> {
    db.conn.prepare_cached("UPDATE endpoints SET fifo_next = fifo_next WHERE id = ?1")?.execute([endpoint_id])?;
    db.conn
        .prepare_cached(
            "UPDATE queue SET next_attempt_at = ?3
             WHERE delivery_id = (SELECT delivery_id FROM queue WHERE endpoint_id = ?1 AND ordering_key = ?2
                                  ORDER BY fifo_seq LIMIT 1)
               AND next_attempt_at IS NULL AND status <> 'blocked'",
        )?
        .execute(params![endpoint_id, key, now])?;
    Ok(())
}

/// Whether (`endpoint_id`, `key`) has any delivery in the queue (a new one then waits its turn).
pub fn key_has_line(db: Db<'_>, endpoint_id: &str, key: &str) -> Result<bool> {
    Ok(db
        .conn
        .prepare_cached("SELECT 1 FROM queue WHERE endpoint_id = ?1 AND ordering_key = ?2 LIMIT 1")?
        .query_row(params![endpoint_id, key], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The next number of a FIFO endpoint's deliveries (taking, on PostgreSQL, the row lock that
/// orders concurrent intakes for it).
pub fn next_seq(db: Db<'_>, endpoint_id: &str) -> Result<i64> {
    Ok(db
        .conn
        .prepare_cached("UPDATE endpoints SET fifo_next = fifo_next + 1 WHERE id = ?1 RETURNING fifo_next")?
        .query_row([endpoint_id], |r| r.get(0))?)
}

/// Puts delivery `id` (not in the queue) into it due at `due_at`, with the attempts it had: on a
/// FIFO endpoint at the end of its key's line (a new number), due only if the line was empty.
/// Its record becomes `pending`. Returns whether it was queued.
pub fn requeue(db: Db<'_>, id: &str, due_at: i64) -> Result<bool> {
    let found: Option<(String, bool, Option<String>)> = db
        .conn
        .prepare_cached(
            "SELECT d.endpoint_id, e.ordering = 'fifo', ev.ordering_key
             FROM deliveries d JOIN endpoints e ON e.id = d.endpoint_id JOIN events ev ON ev.id = d.event_id
             WHERE d.id = ?1 AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.delivery_id = d.id)",
        )?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((endpoint_id, fifo, key)) = found else { return Ok(false) };
    let (key, seq) =
        if fifo { (Some(key.unwrap_or_default()), Some(next_seq(db, &endpoint_id)?)) } else { (None, None) };
    db.conn
        .prepare_cached(
            "INSERT INTO queue (delivery_id, user_id, endpoint_id, status, attempts, next_attempt_at, ordering_key, fifo_seq)
             SELECT id, user_id, endpoint_id, 'pending', attempts,
                    CASE WHEN CAST(?3 AS TEXT) IS NULL THEN CAST(?2 AS BIGINT) END, CAST(?3 AS TEXT), CAST(?4 AS BIGINT)
             FROM deliveries WHERE id = ?1",
        )?
        .execute(params![id, due_at, key, seq])?;
    db.conn
        .prepare_cached("UPDATE deliveries SET status = 'pending', finished_at = NULL WHERE id = ?1")?
        .execute([id])?;
    if let Some(key) = key {
        promote(db, &endpoint_id, &key, due_at)?;
    }
    Ok(true)
}

/// Holds every queued delivery of a FIFO endpoint the system disabled (leased ones too: their
/// results are then fenced off, and they are sent again when the endpoint is enabled).
pub fn hold_ordered(db: Db<'_>, endpoint_id: &str) -> Result<()> {
    db.conn.execute(
        "UPDATE deliveries SET status = 'held' WHERE id IN
           (SELECT delivery_id FROM queue WHERE endpoint_id = ?1 AND ordering_key IS NOT NULL AND status <> 'blocked')",
        [endpoint_id],
    )?;
    db.conn.execute("DELETE FROM queue WHERE endpoint_id = ?1 AND ordering_key IS NOT NULL", [endpoint_id])?;
    Ok(())
}

/// An endpoint no longer FIFO: its waiting deliveries are due now, its blocked heads (dead)
/// leave the queue.
pub fn unorder(db: Db<'_>, endpoint_id: &str, now: i64) -> Result<()> {
    db.conn.execute(
        "DELETE FROM queue WHERE endpoint_id = ?1 AND ordering_key IS NOT NULL AND status = 'blocked'",
        [endpoint_id],
    )?;
    db.conn.execute(
        "UPDATE queue SET next_attempt_at = coalesce(next_attempt_at, ?2), ordering_key = NULL, fifo_seq = NULL
         WHERE endpoint_id = ?1 AND ordering_key IS NOT NULL",
        params![endpoint_id, now],
    )?;
    Ok(())
}

/// An endpoint whose dead deliveries no longer block their keys: its blocked heads leave the
/// queue and the next of each key is due.
pub fn unblock_all(db: Db<'_>, endpoint_id: &str, now: i64) -> Result<()> {
    let keys: Vec<String> = rows(
        db.conn
            .prepare("DELETE FROM queue WHERE endpoint_id = ?1 AND ordering_key IS NOT NULL AND status = 'blocked' RETURNING ordering_key")?
            .query_map([endpoint_id], |r| r.get(0))?,
    )?;
    for key in keys {
        promote(db, endpoint_id, &key, now)?;
    }
    Ok(())
}

/// A blocked key's dead head, discarded by a person: it leaves the queue (it stays dead) and the
/// next of its key is due. Returns whether it was a blocked head.
pub fn discard_blocked(db: Db<'_>, delivery_id: &str, now: i64) -> Result<bool> {
    let left: Option<(String, String)> = db
        .conn
        .prepare_cached(
            "DELETE FROM queue WHERE delivery_id = ?1 AND status = 'blocked' RETURNING endpoint_id, ordering_key",
        )?
        .query_row([delivery_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match left {
        Some((endpoint_id, key)) => {
            promote(db, &endpoint_id, &key, now)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A blocked key's dead head, retried by a person: due now, with its attempts.
pub fn retry_blocked(db: Db<'_>, delivery_id: &str, now: i64) -> Result<bool> {
    let n = db
        .conn
        .prepare_cached(
            "UPDATE queue SET status = 'pending', next_attempt_at = ?2 WHERE delivery_id = ?1 AND status = 'blocked'",
        )?
        .execute(params![delivery_id, now])?;
    if n > 0 {
        db.conn
            .prepare_cached("UPDATE deliveries SET status = 'pending', finished_at = NULL WHERE id = ?1")?
            .execute([delivery_id])?;
    }
    Ok(n > 0)
}

/// A FIFO key that a dead delivery blocks, with that delivery.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Blocked {
    pub endpoint_id: String,
    pub ordering_key: String,
    pub delivery_id: String,
    pub event_id: String,
    /// Deliveries waiting behind it (up to [`crate::model::health::COUNT_CAP`]).
    pub waiting: i64,
}

/// The statement that reads blocked keys: of one endpoint (`?1`), of one user (`?1`), or
/// everyone's; `?2` (`?1` for everyone) is the limit. Each reads the partial index
/// `queue_blocked` (only blocked heads are in it): one statement per scope, as an `OR` of the
/// scopes made SQLite scan the queue (336 ms for the endpoints page of 50 in the benchmark).
fn blocked_sql(endpoint: bool, user: bool) -> String {
    let scope = match (endpoint, user) {
        (true, _) => {
            "AND q.user_id = (SELECT user_id FROM endpoints WHERE id = ?1) AND q.endpoint_id = ?1
            ORDER BY q.delivery_id LIMIT ?2"
        }
        (false, true) => "AND q.user_id = ?1 ORDER BY q.delivery_id LIMIT ?2",
        // In the index's order, so that it is walked rather than the queue sorted.
        (false, false) => "ORDER BY q.user_id, q.endpoint_id, q.delivery_id LIMIT ?1",
    };
    format!(
        "SELECT q.endpoint_id, q.ordering_key, q.delivery_id, d.event_id,
            (SELECT count(*) FROM (SELECT 1 FROM queue w WHERE w.endpoint_id = q.endpoint_id
                 AND w.ordering_key = q.ordering_key AND w.delivery_id <> q.delivery_id LIMIT 10001) AS c)
        FROM queue q JOIN deliveries d ON d.id = q.delivery_id
        WHERE q.status = 'blocked' {scope}"
    )
}

/// The blocked keys of one endpoint, or of one user's endpoints, or everyone's (at most `limit`).
pub fn blocked(db: Db<'_>, endpoint_id: Option<&str>, user_id: Option<i64>, limit: usize) -> Result<Vec<Blocked>> {
    let row = |r: &super::sql::Row<'_>| -> super::sql::Result<Blocked> {
        Ok(Blocked {
            endpoint_id: r.get(0)?,
            ordering_key: r.get(1)?,
            delivery_id: r.get(2)?,
            event_id: r.get(3)?,
            waiting: r.get(4)?,
        })
    };
    let limit = limit as i64;
    let sql = blocked_sql(endpoint_id.is_some(), user_id.is_some());
    let mut stmt = db.conn.prepare_cached(&sql)?;
    match (endpoint_id, user_id) {
        (Some(ep), _) => rows(stmt.query_map(params![ep, limit], row)?),
        (None, Some(user)) => rows(stmt.query_map(params![user, limit], row)?),
        (None, None) => rows(stmt.query_map(params![limit], row)?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Value;
    use crate::store::Store;

    #[test]
    fn blocked_keys_are_read_through_their_partial_index_in_every_scope() {
        let store = Store::memory();
        let db = store.db();
        for (endpoint, user, params) in [(true, false, 2), (false, true, 2), (false, false, 1)] {
            let sql = format!("EXPLAIN QUERY PLAN {}", blocked_sql(endpoint, user));
            let values: Vec<Value<'_>> = std::iter::repeat_n(Value::Int(1), params).collect();
            let plan: Vec<String> =
                rows(db.conn.prepare(&sql).unwrap().query_map(values, |r| r.get::<_, String>(3)).unwrap()).unwrap();
            let outer: Vec<&String> = plan.iter().filter(|p| p.contains(" q ") || p.ends_with(" q")).collect();
            assert!(outer.iter().any(|p| p.contains("queue_blocked")), "{endpoint} {user}: {plan:?}");
            assert!(!plan.iter().any(|p| p == "SCAN q"), "{endpoint} {user}: {plan:?}");
        }
        assert!(blocked(db, Some("ep_x"), None, 10).unwrap().is_empty());
        assert!(blocked(db, None, Some(1), 10).unwrap().is_empty());
        assert!(blocked(db, None, None, 10).unwrap().is_empty());
    }
}
