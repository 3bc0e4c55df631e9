//! `notices`: the outbox of operational events. A notice is written in the transaction that
//! changes the state it reports, so a transition is told exactly once however many dispatcher
//! runs race; then each channel (the operator webhook, the mail) takes it from here until it
//! succeeds, under a lease so that two runs never send the same notice at once.

use super::sql::params;

use super::{rows, Db};
use crate::model::event::operational;
use crate::model::health::Notify;
use crate::model::notice::Notice;
use crate::model::time;
use crate::model::Result;

/// Queues `notice` about `user_id`'s endpoint or source for the channels `notify` has, and
/// returns its id (`evt_…`, the id its receivers see).
pub fn add(db: Db<'_>, notify: &Notify, user_id: i64, notice: &Notice, now: i64) -> Result<String> {
    let user: String =
        db.conn.prepare_cached("SELECT name FROM users WHERE id = ?1")?.query_row([user_id], |r| r.get(0))?;
    let id = time::new_id("evt");
    let payload = operational(&id, notice.event_type(), &user, notice.data(), now).to_string();
    let state = |on: bool| if on { "pending" } else { "none" };
    let email = notify.email && notice.is_mailed();
    db.conn
        .prepare_cached(
            "INSERT INTO notices (id, type, user_id, endpoint_id, source_id, payload, created_at,
                                  webhook_state, webhook_next_at, email_state, email_next_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?7, ?9, ?7)",
        )?
        .execute(params![
            id,
            notice.event_type(),
            user_id,
            notice.endpoint_id(),
            notice.source_id(),
            payload,
            now,
            state(notify.webhook),
            state(email)
        ])?;
    Ok(id)
}

/// A notice a dispatcher run holds, with what is due for it.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: String,
    pub event_type: String,
    pub payload: String,
    pub webhook: Option<u32>,
    pub email: Option<u32>,
}

/// Leases up to `limit` notices with a channel due at `now` to `run_id` until `lease_until`;
/// each comes with the attempt number due per channel. Only the channels set up now count
/// (`channels`): a notice pending for one that was since removed waits for it to come back.
/// Run it inside one write.
pub fn claim(
    db: Db<'_>,
    run_id: &str,
    now: i64,
    lease_until: i64,
    limit: usize,
    channels: (bool, bool),
) -> Result<Vec<Due>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, type, payload,
                CASE WHEN ?3 AND webhook_state = 'pending' AND webhook_next_at <= ?1 THEN webhook_attempts + 1 END,
                CASE WHEN ?4 AND email_state = 'pending' AND email_next_at <= ?1 THEN email_attempts + 1 END
         FROM notices
         WHERE ((?3 AND webhook_state = 'pending' AND webhook_next_at <= ?1)
                OR (?4 AND email_state = 'pending' AND email_next_at <= ?1))
           AND (lease_until IS NULL OR lease_until <= ?1)
         ORDER BY id LIMIT ?2",
    )?;
    let due = rows(stmt.query_map(params![now, limit as i64, channels.0, channels.1], |r| {
        Ok(Due { id: r.get(0)?, event_type: r.get(1)?, payload: r.get(2)?, webhook: r.get(3)?, email: r.get(4)? })
    })?)?;
    let mut lease = db.conn.prepare_cached("UPDATE notices SET lease_until = ?1, lease_owner = ?2 WHERE id = ?3")?;
    for d in &due {
        lease.execute(params![lease_until, run_id, d.id])?;
    }
    Ok(due)
}

/// Which channel a result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Webhook,
    Email,
}

/// Records one channel's attempt at a notice this run holds: sent, or failed with the time of
/// the next try. The lease stays until [`release`].
pub fn record(
    db: Db<'_>,
    id: &str,
    run_id: &str,
    channel: Channel,
    result: std::result::Result<(), (String, i64)>,
) -> Result<()> {
    let sql = match channel {
        Channel::Webhook => {
            "UPDATE notices SET webhook_attempts = webhook_attempts + 1,
                    webhook_state = CASE WHEN ?1 THEN 'sent' ELSE 'pending' END,
                    webhook_next_at = CASE WHEN ?1 THEN NULL ELSE CAST(?2 AS BIGINT) END, webhook_error = ?3
             WHERE id = ?4 AND lease_owner = ?5"
        }
        Channel::Email => {
            "UPDATE notices SET email_attempts = email_attempts + 1,
                    email_state = CASE WHEN ?1 THEN 'sent' ELSE 'pending' END,
                    email_next_at = CASE WHEN ?1 THEN NULL ELSE CAST(?2 AS BIGINT) END, email_error = ?3
             WHERE id = ?4 AND lease_owner = ?5"
        }
    };
    let (ok, next, error) = match result {
        Ok(()) => (true, None, None),
        Err((why, next)) => (false, Some(next), Some(why)),
    };
    db.conn.prepare_cached(sql)?.execute(params![ok, next, error, id, run_id])?;
    Ok(())
}

/// Gives back a notice this run held, once every channel due was tried.
pub fn release(db: Db<'_>, id: &str, run_id: &str) -> Result<()> {
    db.conn
        .prepare_cached("UPDATE notices SET lease_until = NULL, lease_owner = NULL WHERE id = ?1 AND lease_owner = ?2")?
        .execute(params![id, run_id])?;
    Ok(())
}
