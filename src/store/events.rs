//! `events` and intake's fan-out: an event is stored with one `pending` delivery per matching
//! active endpoint of its user, in the caller's transaction, so it is stored with all its
//! deliveries or not at all.

use std::collections::HashMap;
use std::time::Duration;

use super::sql::{params, OptionalExtension};

use super::endpoints::Target;
use super::Db;
use crate::model::delivery::Status;
use crate::model::event::{envelope, request_hash, Intake, Recorded};
use crate::model::{schema, time, Error, Result};

/// A user's row id, and the endpoints that take its events.
type UserEndpoints = (i64, Vec<Target>);

/// Records events with their deliveries; an event with no delivery keeps its body for
/// `payload_retention`. Run it inside one write.
pub fn record(db: Db<'_>, payload_retention: Duration, intakes: &[Intake]) -> Result<Vec<Recorded>> {
    let now = time::now_ms();
    let mut endpoints_of: HashMap<String, UserEndpoints> = HashMap::new();
    let mut out = Vec::with_capacity(intakes.len());
    for intake in intakes {
        if !endpoints_of.contains_key(&intake.user) {
            let uid = super::principals::ensure(db, &intake.user)?;
            endpoints_of.insert(intake.user.clone(), (uid, super::endpoints::targets_of_user(db, uid)?));
        }
        let (user_id, endpoints) = &endpoints_of[&intake.user];
        let hash = request_hash(intake);
        if let Some(key) = &intake.idempotency_key {
            if let Some((prev, prev_hash)) = find_by_key(db, *user_id, key)? {
                if prev_hash != hash {
                    return Err(Error::conflict(
                        "idempotency_conflict",
                        format!("idempotency key {key:?} was already used for a different event ({prev})"),
                    ));
                }
                let deliveries: i64 = db
                    .conn
                    .prepare_cached("SELECT count(*) FROM deliveries WHERE event_id = ?1")?
                    .query_row([&prev], |r| r.get(0))?;
                out.push(Recorded {
                    id: prev,
                    event_type: intake.event_type.clone(),
                    user: intake.user.clone(),
                    deliveries: deliveries as usize,
                    duplicate: true,
                });
                continue;
            }
        }
        let id = time::new_id("evt");
        let payload = envelope(&id, intake, now).to_string();
        let targets: Vec<&Target> =
            endpoints.iter().filter(|t| schema::wants(&t.filters, &intake.event_type)).collect();
        let expires = targets.is_empty().then(|| now + payload_retention.as_millis() as i64);
        db.conn
            .prepare_cached(
                "INSERT INTO events (id, user_id, type, idempotency_key, request_hash, payload, created_at, payload_expires_at,
                                     ordering_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                id,
                user_id,
                intake.event_type,
                intake.idempotency_key,
                hash,
                payload,
                now,
                expires,
                intake.ordering_key
            ])?;
        fan_out(db, &id, *user_id, &targets, intake.ordering_key.as_deref(), now)?;
        out.push(Recorded {
            id,
            event_type: intake.event_type.clone(),
            user: intake.user.clone(),
            deliveries: targets.len(),
            duplicate: false,
        });
    }
    Ok(out)
}

/// One delivery of event `event_id` per target: `pending` and queued due now, or `held` (not
/// queued) for an endpoint the system disabled. A FIFO endpoint numbers it and queues it on its
/// key (`ordering_key`, '' for none), due now only when the key's line was empty.
pub(super) fn fan_out(
    db: Db<'_>,
    event_id: &str,
    user_id: i64,
    targets: &[&Target],
    ordering_key: Option<&str>,
    now: i64,
) -> Result<()> {
    let mut insert = db.conn.prepare_cached(
        "INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, created_at, fifo_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for t in targets {
        let id = time::new_id("dlv");
        // A held delivery waits for its endpoint to be enabled again: it is not queued.
        let status = if t.hold { Status::Held } else { Status::Pending };
        let seq = if t.fifo { Some(super::ordering::next_seq(db, &t.id)?) } else { None };
        insert.execute(params![id, event_id, t.id, user_id, status, now, seq])?;
        if t.hold {
            let mut held = crate::model::metrics::Counts::default();
            held.delivery(crate::model::metrics::Outcome::Held, None, 1);
            super::metrics::add(db, &held)?;
            continue;
        }
        let key = t.fifo.then(|| ordering_key.unwrap_or_default());
        let due = match key {
            Some(key) => (!super::ordering::key_has_line(db, &t.id, key)?).then_some(now),
            None => Some(now),
        };
        db.conn
            .prepare_cached(
                "INSERT INTO queue (delivery_id, user_id, endpoint_id, status, next_attempt_at, ordering_key, fifo_seq)
                 VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6)",
            )?
            .execute(params![id, user_id, t.id, due, key, seq])?;
    }
    Ok(())
}

fn find_by_key(db: Db<'_>, user_id: i64, key: &str) -> Result<Option<(String, String)>> {
    Ok(db
        .conn
        .prepare_cached("SELECT id, request_hash FROM events WHERE user_id = ?1 AND idempotency_key = ?2")?
        .query_row(params![user_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}
