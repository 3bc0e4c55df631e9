//! `deliveries` and their `attempts` as the log shows them: the list with its filters, one
//! delivery and its attempts, manual retries, and the queue's figures. Claiming and recording
//! attempts is `queue`.

use super::sql::{self, params, OptionalExtension, Row};

use super::{ordering, rows, Db};
use crate::model::delivery::{Attempt, Delivery, Filter, Status};
use crate::model::health::{QueueStatus, COUNT_CAP};
use crate::model::time::{self, Time};
use crate::model::{Error, Result};

/// A delivery as the log shows it: from its record, and while it waits to be sent from its queue
/// row (status, attempts, due time, lease) and its latest attempt (the record's summary of the
/// last attempt is written when the delivery leaves the queue).
const COLUMNS: &str = "SELECT d.id, d.event_id, ev.type, d.endpoint_id, u.name, coalesce(q.status, d.status),
        coalesce(q.attempts, d.attempts),
        CASE WHEN q.delivery_id IS NULL THEN d.last_status_code ELSE la.status_code END,
        CASE WHEN q.delivery_id IS NULL THEN d.last_error_code ELSE la.error_code END,
        CASE WHEN q.delivery_id IS NULL THEN d.last_error ELSE la.error END,
        d.created_at,
        CASE WHEN q.delivery_id IS NULL THEN d.last_attempt_at ELSE la.started_at END,
        q.next_attempt_at, d.finished_at, q.lease_until, ev.payload IS NOT NULL";

/// The joins of [`COLUMNS`] after `deliveries d` (and, for the `failed` filter, `queue q` first).
const JOINS: &str = "JOIN events ev ON ev.id = d.event_id JOIN users u ON u.id = d.user_id
    LEFT JOIN attempts la ON la.id = (SELECT max(a.id) FROM attempts a WHERE a.delivery_id = q.delivery_id)";

/// (A dead delivery blocking its FIFO key keeps its queue row; the record says what it is.)
static SELECT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{COLUMNS} FROM deliveries d LEFT JOIN queue q ON q.delivery_id = d.id AND q.status <> 'blocked' {JOINS}")
});

fn from_row(r: &Row<'_>, now: i64) -> sql::Result<Delivery> {
    let lease: Option<i64> = r.get(14)?;
    let in_flight = lease.is_some_and(|l| l > now);
    Ok(Delivery {
        id: r.get(0)?,
        event_id: r.get(1)?,
        event_type: r.get(2)?,
        endpoint_id: r.get(3)?,
        user: r.get(4)?,
        status: r.get(5)?,
        attempts: r.get(6)?,
        last_status_code: r.get(7)?,
        last_error_code: r.get(8)?,
        last_error: r.get(9)?,
        created_at: r.get(10)?,
        last_attempt_at: r.get(11)?,
        next_attempt_at: if in_flight { None } else { r.get(12)? },
        finished_at: r.get(13)?,
        in_flight,
        payload_available: r.get(15)?,
    })
}

/// The log, newest first. `failed` deliveries are read from the queue's `queue_failed` index
/// (the record says `pending` while a delivery waits), `pending` ones are the record's that
/// the queue has not seen fail, the others the record's own.
pub fn list(db: Db<'_>, f: &Filter) -> Result<Vec<Delivery>> {
    let (from, status) = match f.status {
        Some(Status::Failed) => (
            format!("{COLUMNS} FROM queue q JOIN deliveries d ON d.id = q.delivery_id {JOINS}"),
            "q.status = ?1 AND d.id = q.delivery_id",
        ),
        Some(Status::Pending) => (SELECT.clone(), "d.status = ?1 AND q.status = ?1"),
        _ => (SELECT.clone(), "(CAST(?1 AS TEXT) IS NULL OR d.status = ?1)"),
    };
    let sql = format!(
        "{from} WHERE {status}
           AND (CAST(?2 AS TEXT) IS NULL OR d.user_id = (SELECT id FROM users WHERE name = ?2))
           AND (CAST(?3 AS TEXT) IS NULL OR d.endpoint_id = ?3)
           AND (CAST(?4 AS TEXT) IS NULL OR ev.type = ?4)
           AND (CAST(?5 AS TEXT) IS NULL OR d.id < ?5)
           AND (CAST(?7 AS TEXT) IS NULL OR d.id >= ?7)
           AND (CAST(?8 AS TEXT) IS NULL OR d.id < ?8)
         ORDER BY d.id DESC LIMIT ?6"
    );
    let now = time::now_ms();
    let mut stmt = db.conn.prepare_cached(&sql)?;
    let it = stmt.query_map(
        params![
            f.status,
            f.user,
            f.endpoint,
            f.event_type,
            f.before,
            f.limit.max(1) as i64,
            f.since.map(|t| time::id_at("dlv", t)),
            f.until.map(|t| time::id_at("dlv", t)),
        ],
        |r| from_row(r, now),
    )?;
    rows(it)
}

pub fn get(db: Db<'_>, id: &str) -> Result<Delivery> {
    let now = time::now_ms();
    db.conn
        .prepare_cached(&format!("{} WHERE d.id = ?1", *SELECT))?
        .query_row([id], |r| from_row(r, now))
        .optional()?
        .ok_or_else(|| Error::not_found(format!("delivery {id}")))
}

/// A delivery only if it belongs to `user` (admins pass `None`).
pub fn get_owned(db: Db<'_>, id: &str, user: Option<&str>) -> Result<Delivery> {
    match get(db, id) {
        Ok(d) if user.is_none_or(|u| u == d.user) => Ok(d),
        Ok(_) => Err(Error::not_found(format!("delivery {id}"))),
        Err(e) => Err(e),
    }
}

/// Schedules one more attempt now. A finished delivery goes back to `pending` and gets exactly
/// one more try (more if it still had attempts left); one that is waiting is made due now.
pub fn retry(db: Db<'_>, id: &str) -> Result<Delivery> {
    let d = get(db, id)?;
    if d.in_flight {
        return Err(Error::conflict("in_flight", format!("delivery {id} is being sent right now")));
    }
    if !d.payload_available {
        return Err(Error::conflict(
            "payload_expired",
            format!(
                "the body of event {} has expired (WEBHOOKS_PAYLOAD_RETENTION), so delivery {id} cannot be sent again",
                d.event_id
            ),
        ));
    }
    if d.status == Status::Held {
        return Err(Error::conflict(
            "held",
            format!(
                "delivery {id} is held while its endpoint {} is disabled: enable the endpoint to send or discard what it holds",
                d.endpoint_id
            ),
        ));
    }
    let now = time::now_ms();
    // A dead delivery blocking its FIFO key is due again where it stands. One waiting is due
    // now, unless it waits its turn on a FIFO key (then it goes when its turn comes). Any other
    // joins the queue with the attempts it had, its record `pending` again.
    if !ordering::retry_blocked(db, id, now)? {
        let waiting = db.conn.execute(
            "UPDATE queue SET next_attempt_at = ?1 WHERE delivery_id = ?2 AND next_attempt_at IS NOT NULL",
            params![now, id],
        )?;
        if waiting == 0 {
            ordering::requeue(db, id, now)?;
        }
    }
    db.conn.execute("UPDATE events SET payload_expires_at = NULL WHERE id = ?1", [&d.event_id])?;
    get(db, id)
}

/// Discards a dead delivery that blocks its FIFO key (`fifo_on_dead = block`): it stays dead,
/// and the next delivery of its key goes.
pub fn discard(db: Db<'_>, id: &str) -> Result<Delivery> {
    get(db, id)?;
    if !ordering::discard_blocked(db, id, time::now_ms())? {
        return Err(Error::conflict(
            "not_blocking",
            format!(
                "delivery {id} blocks no ordering key: only a dead delivery at the head of a blocked key is discarded"
            ),
        ));
    }
    get(db, id)
}

/// Retries every dead delivery of an endpoint whose body is still kept, in the order they were
/// made; returns how many.
pub fn retry_dead(db: Db<'_>, endpoint_id: &str) -> Result<usize> {
    let now = time::now_ms();
    db.conn.execute(
        "UPDATE events SET payload_expires_at = NULL WHERE id IN
           (SELECT event_id FROM deliveries WHERE endpoint_id = ?1 AND status = 'dead')
         AND payload IS NOT NULL",
        [endpoint_id],
    )?;
    let blocked: Vec<String> = rows(
        db.conn
            .prepare("SELECT delivery_id FROM queue WHERE endpoint_id = ?1 AND status = 'blocked'")?
            .query_map([endpoint_id], |r| r.get(0))?,
    )?;
    let dead: Vec<String> = rows(
        db.conn
            .prepare(
                "SELECT id FROM deliveries
                 WHERE endpoint_id = ?1 AND status = 'dead' AND event_id IN (SELECT id FROM events WHERE payload IS NOT NULL)
                 ORDER BY fifo_seq, id",
            )?
            .query_map([endpoint_id], |r| r.get(0))?,
    )?;
    let mut n = 0;
    for id in &blocked {
        n += usize::from(ordering::retry_blocked(db, id, now)?);
    }
    for id in dead.iter().filter(|id| !blocked.contains(id)) {
        n += usize::from(ordering::requeue(db, id, now)?);
    }
    Ok(n)
}

/// Which ended deliveries a range replay sends again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayOf {
    /// The dead ones.
    Dead,
    /// Every one that ended, succeeded or dead.
    All,
}

impl ReplayOf {
    /// The choice as the API and the pages spell it: `dead` (also when none is given) or `all`;
    /// `None` for anything else.
    pub fn parse(choice: Option<&str>) -> Option<ReplayOf> {
        match choice {
            None | Some("dead") => Some(ReplayOf::Dead),
            Some("all") => Some(ReplayOf::All),
            Some(_) => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ReplayOf::Dead => "dead",
            ReplayOf::All => "all",
        }
    }
}

/// What a range replay found: `count` deliveries it sends (or would), `expired` more in the
/// range whose event body is gone.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Replay {
    pub count: usize,
    pub expired: usize,
    pub replayed: usize,
}

/// The deliveries of an endpoint created in [`since`, `until`) that ended (`dead`, or with
/// `All` succeeded too), counted; with `send`, queued again in the order their events were
/// recorded (started in that order; on a FIFO endpoint, each at the end of its key's line).
/// Those waiting, held or blocking a key are not in it: they are sent (or not) as they are.
pub fn replay(db: Db<'_>, endpoint_id: &str, since: i64, until: i64, of: ReplayOf, send: bool) -> Result<Replay> {
    let statuses = match of {
        ReplayOf::Dead => "('dead')",
        ReplayOf::All => "('dead', 'succeeded')",
    };
    let range = format!(
        "FROM deliveries d JOIN events ev ON ev.id = d.event_id
         WHERE d.endpoint_id = ?1 AND d.id >= ?2 AND d.id < ?3 AND d.status IN {statuses}
           AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.delivery_id = d.id)"
    );
    let (from, to) = (time::id_at("dlv", since), time::id_at("dlv", until));
    let ids: Vec<String> = rows(
        db.conn
            .prepare(&format!("SELECT d.id {range} AND ev.payload IS NOT NULL ORDER BY d.fifo_seq, d.id"))?
            .query_map(params![endpoint_id, from, to], |r| r.get(0))?,
    )?;
    let expired: i64 = db
        .conn
        .prepare(&format!("SELECT count(*) {range} AND ev.payload IS NULL"))?
        .query_row(params![endpoint_id, from, to], |r| r.get(0))?;
    let mut out = Replay { count: ids.len(), expired: expired as usize, replayed: 0 };
    if send {
        let now = time::now_ms();
        for (i, id) in ids.iter().enumerate() {
            db.conn
                .prepare_cached(
                    "UPDATE events SET payload_expires_at = NULL WHERE id = (SELECT event_id FROM deliveries WHERE id = ?1)",
                )?
                .execute([id])?;
            out.replayed += usize::from(ordering::requeue(db, id, now + i as i64)?);
        }
    }
    Ok(out)
}

/// Every attempt of a delivery, in order.
pub fn attempts(db: Db<'_>, delivery_id: &str) -> Result<Vec<Attempt>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT attempt, started_at, duration_ms, status_code, error_code, error, response_snippet,
                request_body, response_body
         FROM attempts WHERE delivery_id = ?1 ORDER BY attempt, id",
    )?;
    let found = rows(stmt.query_map([delivery_id], |r| {
        Ok(Attempt {
            attempt: r.get(0)?,
            started_at: r.get(1)?,
            duration_ms: r.get(2)?,
            status_code: r.get(3)?,
            error_code: r.get(4)?,
            error: r.get(5)?,
            response_snippet: r.get(6)?,
            request_body: r.get(7)?,
            response_body: r.get(8)?,
        })
    })?)?;
    Ok(found)
}

/// The dispatcher's queue. With `exact`, every count is exact (the `status` command); without,
/// counts stop at [`COUNT_CAP`] (`capped` says so) so that pages stay fast with any backlog.
pub fn queue_status(db: Db<'_>, exact: bool) -> Result<QueueStatus> {
    let now = time::now_ms();
    let limit = if exact { i64::MAX } else { COUNT_CAP + 1 };
    let mut capped = false;
    let mut count = |sql: &str, p: &[&dyn super::sql::ToSql]| -> Result<i64> {
        if exact {
            Ok(db.conn.prepare_cached(sql)?.query_row(p, |r| r.get(0))?)
        } else {
            super::bounded_count(db, sql, p, &mut capped)
        }
    };
    let pending =
        count("SELECT count(*) FROM (SELECT 1 FROM queue WHERE status <> 'blocked' LIMIT ?1) AS capped", &[&limit])?;
    let due = count(db.queue().due_count(), &[&now, &limit])?;
    let in_flight =
        count("SELECT count(*) FROM (SELECT 1 FROM queue WHERE lease_until > ?1 LIMIT ?2) AS capped", &[&now, &limit])?;
    let dead = count(
        "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE status = ?1 LIMIT ?2) AS capped",
        &[&Status::Dead, &limit],
    )?;
    let oldest: Option<i64> = db.conn.prepare_cached(db.queue().oldest_due())?.query_row([now], |r| r.get(0))?;
    let oldest = oldest.filter(|t| *t <= now);
    let last: Option<(i64, Option<String>)> = db
        .conn
        .query_row("SELECT started_at, summary FROM runs ORDER BY started_at DESC LIMIT 1", params![], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(QueueStatus {
        pending,
        due,
        in_flight,
        dead,
        capped,
        oldest_due_seconds: oldest.map(|t| (now - t).max(0) / 1000),
        last_run_at: last.as_ref().map(|(t, _)| Time(*t)),
        last_run_seconds_ago: last.as_ref().map(|(t, _)| (now - t).max(0) / 1000),
        last_run: last.and_then(|(_, s)| s).and_then(|s| serde_json::from_str(&s).ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{queue, Store};

    /// Three users: one with two rows due (the older leased), one with a row due an hour ago
    /// and one in the future, one with only a future row. Times are relative to the real clock,
    /// which `queue_status` reads.
    fn queue_of_three_users(store: &Store, now: i64) {
        let hour = 3_600_000;
        let mut sql = String::from(
            "INSERT INTO users (id, name, created_at) VALUES (1, 'a', 0), (2, 'b', 0), (3, 'c', 0);
             INSERT INTO endpoints (id, user_id, url, created_at, updated_at) VALUES
                 ('ep_1', 1, 'https://x/', 0, 0), ('ep_2', 2, 'https://x/', 0, 0), ('ep_3', 3, 'https://x/', 0, 0);
             INSERT INTO events (id, user_id, type, request_hash, payload, created_at) VALUES
                 ('evt_1', 1, 'email.received', 'h1', '{}', 0), ('evt_2', 2, 'email.received', 'h2', '{}', 0),
                 ('evt_3', 3, 'email.received', 'h3', '{}', 0);",
        );
        let rows = [
            ("dlv_1", 1, now - 3 * hour, Some(now + hour)), // the oldest, but leased
            ("dlv_2", 1, now - 2 * hour, None),
            ("dlv_3", 2, now - hour, None),
            ("dlv_4", 2, now + hour, None),
            ("dlv_5", 3, now + 2 * hour, None),
        ];
        for (id, user, next, lease) in rows {
            sql.push_str(&format!(
                "INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, created_at)
                 VALUES ('{id}', 'evt_{user}', 'ep_{user}', {user}, 'pending', 0);
                 INSERT INTO queue (delivery_id, user_id, endpoint_id, status, next_attempt_at, lease_until)
                 VALUES ('{id}', {user}, 'ep_{user}', 'pending', {next}, {});",
                lease.map_or("NULL".to_string(), |l| l.to_string())
            ));
        }
        // Ended deliveries are in no due count whatever their (cleared) due time.
        sql.push_str(
            "INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, created_at, finished_at)
             VALUES ('dlv_6', 'evt_3', 'ep_3', 3, 'succeeded', 0, 0);",
        );
        store.sqlite().execute_batch(&sql).unwrap();
    }

    #[test]
    fn the_queue_is_counted_user_by_user_stepping_over_leases() {
        let store = Store::memory();
        let now = time::now_ms();
        queue_of_three_users(&store, now);
        for exact in [true, false] {
            let q = queue_status(store.db(), exact).unwrap();
            assert_eq!((q.pending, q.due, q.in_flight, q.capped), (5, 2, 1, false), "exact: {exact}");
            // dlv_1 is older but leased: the oldest due is dlv_2, two hours ago.
            let oldest = q.oldest_due_seconds.unwrap();
            assert!((7_199..=7_230).contains(&oldest), "{oldest}");
        }
        assert!(queue::any_due(store.db(), now).unwrap());
        assert!(!queue::any_due(store.db(), now - 3 * 3_600_000).unwrap(), "nothing due three hours ago");
        store.sqlite().execute_batch("UPDATE queue SET lease_until = NULL WHERE delivery_id = 'dlv_1'").unwrap();
        let oldest = queue_status(store.db(), true).unwrap().oldest_due_seconds.unwrap();
        assert!((10_799..=10_830).contains(&oldest), "the lease gone, dlv_1 is the oldest: {oldest}");
        store
            .sqlite()
            .execute_batch(
                "UPDATE queue SET lease_until = 9223372036854775807 WHERE delivery_id IN ('dlv_1', 'dlv_2', 'dlv_3')",
            )
            .unwrap();
        let q = queue_status(store.db(), true).unwrap();
        assert_eq!((q.due, q.in_flight, q.oldest_due_seconds), (0, 3, None), "every due row leased");
        assert!(!queue::any_due(store.db(), now).unwrap());
    }

    #[test]
    fn a_due_count_stops_at_the_cap_only_past_it_whatever_the_leases() {
        let store = Store::memory();
        let now = time::now_ms();
        queue_of_three_users(&store, now);
        // COUNT_CAP + 5 more due rows for user 3, 10 of them leased: COUNT_CAP - 3 + 2 are due.
        store
            .sqlite()
            .execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
                 INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, created_at)
                 SELECT printf('dlv_x%06d', i), 'evt_3', 'ep_3', 3, 'pending', 0 FROM n",
                rusqlite::params![COUNT_CAP + 5],
            )
            .unwrap();
        store
            .sqlite()
            .execute(
                "INSERT INTO queue (delivery_id, user_id, endpoint_id, status, next_attempt_at, lease_until)
                 SELECT id, 3, 'ep_3', 'pending', ?1 - CAST(substr(id, 6) AS INTEGER),
                        CASE WHEN CAST(substr(id, 6) AS INTEGER) <= 10 THEN ?1 + 60000 END
                 FROM deliveries WHERE id LIKE 'dlv_x%'",
                rusqlite::params![now],
            )
            .unwrap();
        let exact = queue_status(store.db(), true).unwrap();
        assert_eq!((exact.due, exact.in_flight, exact.capped), (COUNT_CAP - 3, 11, false));
        let page = queue_status(store.db(), false).unwrap();
        // (`capped` is set all the same: the pending count is past the cap.)
        assert_eq!((page.due, page.pending, page.capped), (COUNT_CAP - 3, COUNT_CAP, true), "under the cap: exact");
        store
            .sqlite()
            .execute(
                "UPDATE queue SET lease_until = NULL WHERE delivery_id IN ('dlv_x000001', 'dlv_x000002', 'dlv_x000003', 'dlv_x000004')",
                [],
            )
            .unwrap();
        assert_eq!(queue_status(store.db(), true).unwrap().due, COUNT_CAP + 1);
        let page = queue_status(store.db(), false).unwrap();
        assert_eq!(page.due, COUNT_CAP, "one past the cap, with 7 leases still live");
    }
}
