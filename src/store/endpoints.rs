//! `endpoints` and `endpoint_keys`: a user's endpoints with their filters, and their signing
//! keys sealed under the master key (`model::secret::Keyring`).

use std::time::Duration;

use super::sql::{self, params, OptionalExtension, Row};

use super::{rows, Db};
use crate::model::address::Policy;
use crate::model::delivery::FailureCode;
use crate::model::endpoint::{Endpoint, Fields, Headers, KeyInfo, OnDead, Ordering, SignatureCompat};
use crate::model::health::{DisabledReason, Failure, Health, Notify};
use crate::model::notice::Notice;
use crate::model::pacing::Limits;
use crate::model::secret::{self, KeySecret, Keyring, SigningKey};
use crate::model::time::{self, Time};
use crate::model::{Error, Result};

const COLUMNS: &str = "e.id, u.name, e.url, e.description, e.event_types, e.active, \
                       e.disabled_kind, e.created_at, e.updated_at, e.disabled_at, e.fail_since, \
                       e.dead_count, e.first_dead_at, e.last_dead_at, e.last_success_at, \
                       (SELECT count(*) FROM deliveries h WHERE h.endpoint_id = e.id AND h.status = 'held'), \
                       e.ordering, e.fifo_on_dead, e.header_names, e.signature_compat, \
                       e.max_per_second, e.max_in_flight, e.paused_until, e.paused_status";

/// The failure record from five columns starting at `first`: `fail_since, dead_count,
/// first_dead_at, last_dead_at, last_success_at`.
pub(super) fn failure_at(r: &Row<'_>, first: usize) -> sql::Result<Failure> {
    Ok(Failure {
        since: r.get(first)?,
        dead: r.get(first + 1)?,
        first_dead_at: r.get(first + 2)?,
        last_dead_at: r.get(first + 3)?,
        last_success_at: r.get(first + 4)?,
    })
}

fn from_row(r: &Row<'_>) -> sql::Result<Endpoint> {
    let types: String = r.get(4)?;
    let active: bool = r.get(5)?;
    let failure = failure_at(r, 10)?;
    let health = if !active {
        Health::Disabled
    } else if failure.is_failing() {
        Health::Failing
    } else {
        Health::Ok
    };
    Ok(Endpoint {
        id: r.get(0)?,
        user: r.get(1)?,
        url: r.get(2)?,
        description: r.get(3)?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        active,
        health,
        disabled_reason: if active { None } else { r.get(6)? },
        disabled_at: if active { None } else { r.get(9)? },
        fail_since: if health == Health::Ok { None } else { failure.since.map(Time) },
        disable_at: None,
        held: r.get(15)?,
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        ordering: if r.get::<_, String>(16)? == "fifo" { Ordering::Fifo } else { Ordering::None },
        fifo_on_dead: if r.get::<_, String>(17)? == "block" { OnDead::Block } else { OnDead::Continue },
        headers: serde_json::from_str(&r.get::<_, String>(18)?).unwrap_or_default(),
        signature_compat: if r.get::<_, String>(19)? == "spatie" {
            SignatureCompat::Spatie
        } else {
            SignatureCompat::None
        },
        max_per_second: r.get(20)?,
        max_in_flight: r.get(21)?,
        paused_until: r.get::<_, Option<i64>>(22)?.filter(|&t| t > time::now_ms()).map(Time),
        paused_status: r.get::<_, Option<i64>>(23)?.map(|c| c as u16),
        failure,
    })
}

/// Creates an endpoint with a fresh secret; returns it with the secret (shown once). A user may
/// have at most `limit` endpoints.
pub fn add(
    db: Db<'_>,
    keyring: &Keyring,
    policy: &Policy,
    user: &str,
    fields: &Fields,
    limit: usize,
) -> Result<(Endpoint, String)> {
    crate::model::principal::check_name("user", user)?;
    add_for(db, keyring, policy, user, fields, limit)
}

/// [`add`] for a user name the store made itself (an inbound source's relay user,
/// `source:{name}`, which no real user name can be).
pub(super) fn add_for(
    db: Db<'_>,
    keyring: &Keyring,
    policy: &Policy,
    user: &str,
    fields: &Fields,
    limit: usize,
) -> Result<(Endpoint, String)> {
    let checked = fields.check(policy, None)?;
    let user_id = super::principals::ensure(db, user)?;
    let count: i64 = db.conn.query_row("SELECT count(*) FROM endpoints WHERE user_id = ?1", [user_id], |r| r.get(0))?;
    if count as usize >= limit {
        return Err(Error::conflict(
            "endpoint_limit",
            format!("{user} already has {count} endpoints, the most allowed (WEBHOOKS_MAX_ENDPOINTS_PER_USER); delete one first"),
        ));
    }
    let id = time::new_id("ep");
    let now = time::now_ms();
    db.conn.execute(
        "INSERT INTO endpoints (id, user_id, url, description, event_types, active, created_at, updated_at,
                                ordering, fifo_on_dead, max_per_second, max_in_flight)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6, ?7, ?8, ?9, ?10)",
        params![
            id,
            user_id,
            checked.url,
            checked.description,
            serde_json::to_string(&checked.event_types)?,
            now,
            checked.ordering.as_str(),
            checked.fifo_on_dead.as_str(),
            checked.limits.max_per_second,
            checked.limits.max_in_flight
        ],
    )?;
    write_headers(db, keyring, &id, checked.headers.as_ref(), checked.signature_compat)?;
    let secret = secret::generate();
    insert_key(db, keyring, &id, &secret, now)?;
    Ok((get(db, &id)?, secret))
}

fn insert_key(db: Db<'_>, keyring: &Keyring, endpoint_id: &str, secret: &str, now: i64) -> Result<String> {
    let key_id = time::new_id("key");
    db.conn.execute(
        "INSERT INTO endpoint_keys (id, endpoint_id, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key_id, endpoint_id, keyring.seal(&key_id, secret), now],
    )?;
    Ok(key_id)
}

pub fn get(db: Db<'_>, id: &str) -> Result<Endpoint> {
    find(db, id)?.ok_or_else(|| Error::not_found(format!("endpoint {id}")))
}

pub fn find(db: Db<'_>, id: &str) -> Result<Option<Endpoint>> {
    Ok(db
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM endpoints e JOIN users u ON u.id = e.user_id WHERE e.id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// An endpoint only if it belongs to `user` (otherwise "not found", never "forbidden").
pub fn get_owned(db: Db<'_>, id: &str, user: Option<&str>) -> Result<Endpoint> {
    match find(db, id)? {
        Some(e) if user.is_none_or(|u| u == e.user) => Ok(e),
        _ => Err(Error::not_found(format!("endpoint {id}"))),
    }
}

/// One user's endpoints, or everyone's when `user` is `None`, oldest first.
pub fn list(db: Db<'_>, user: Option<&str>) -> Result<Vec<Endpoint>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM endpoints e JOIN users u ON u.id = e.user_id
         WHERE CAST(?1 AS TEXT) IS NULL OR u.name = ?1 ORDER BY e.created_at, e.rowid"
    ))?;
    let found = rows(stmt.query_map([user], from_row)?)?;
    Ok(found)
}

/// An endpoint as intake's fan-out sees it.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: String,
    pub filters: Vec<String>,
    /// Disabled by the failure rule or a 410: its deliveries are made `held`, not sent.
    pub hold: bool,
    /// Its deliveries are numbered and sent one at a time per ordering key.
    pub fifo: bool,
}

/// Whether an endpoint disabled for `kind` (its `disabled_kind`) holds new deliveries
/// ([`DisabledReason::holds`]): an unknown or missing kind does not.
pub(super) fn holds(kind: Option<String>) -> bool {
    kind.and_then(|k| DisabledReason::parse(&k)).is_some_and(DisabledReason::holds)
}

/// The endpoints of a user that take events: the active ones, and those the system disabled
/// (their deliveries are held). Manually disabled endpoints take none.
pub fn targets_of_user(db: Db<'_>, user_id: i64) -> Result<Vec<Target>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, event_types, active, disabled_kind, ordering FROM endpoints WHERE user_id = ?1 ORDER BY id",
    )?;
    let found: Vec<Target> = rows(stmt.query_map([user_id], |r| {
        let types: String = r.get(1)?;
        let active: bool = r.get(2)?;
        let takes = active || holds(r.get(3)?);
        let id: String = r.get(0)?;
        let fifo = r.get::<_, String>(4)? == "fifo";
        Ok(takes.then(|| Target { id, filters: serde_json::from_str(&types).unwrap_or_default(), hold: !active, fifo }))
    })?)?
    .into_iter()
    .flatten()
    .collect();
    Ok(found)
}

/// Writes an endpoint's custom headers (when `headers` is given: names in clear, the values
/// sealed with the endpoint's id as associated data) and its `signature_compat`.
fn write_headers(
    db: Db<'_>,
    keyring: &Keyring,
    id: &str,
    headers: Option<&Headers>,
    compat: SignatureCompat,
) -> Result<()> {
    if let Some(h) = headers {
        let names: Vec<&String> = h.keys().collect();
        let sealed = (!h.is_empty()).then(|| keyring.seal(id, &serde_json::to_string(h).expect("a map serializes")));
        db.conn.execute(
            "UPDATE endpoints SET header_names = ?1, headers_sealed = ?2 WHERE id = ?3",
            params![serde_json::to_string(&names)?, sealed, id],
        )?;
    }
    db.conn.execute("UPDATE endpoints SET signature_compat = ?1 WHERE id = ?2", params![compat.as_str(), id])?;
    Ok(())
}

/// The name of the user an endpoint belongs to.
pub fn user_of(db: Db<'_>, id: &str) -> Result<Option<String>> {
    Ok(db
        .conn
        .prepare_cached("SELECT u.name FROM endpoints e JOIN users u ON u.id = e.user_id WHERE e.id = ?1")?
        .query_row(params![id], |r| r.get(0))
        .optional()?)
}

/// What a delivery to the endpoint carries besides the product's own headers: its custom
/// headers, opened, and whether it adds the Spatie signature.
pub fn custom_headers(db: Db<'_>, keyring: &Keyring, id: &str) -> Result<(Headers, SignatureCompat)> {
    let found: Option<(Option<Vec<u8>>, String)> = db
        .conn
        .prepare_cached("SELECT headers_sealed, signature_compat FROM endpoints WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((sealed, compat)) = found else { return Ok((Headers::new(), SignatureCompat::None)) };
    let headers = match sealed {
        Some(s) => serde_json::from_str(&keyring.open(id, &s)?)?,
        None => Headers::new(),
    };
    Ok((headers, if compat == "spatie" { SignatureCompat::Spatie } else { SignatureCompat::None }))
}

pub fn update(db: Db<'_>, keyring: &Keyring, policy: &Policy, id: &str, fields: &Fields) -> Result<Endpoint> {
    let current = get(db, id)?;
    let c = fields.check(policy, Some(&current))?;
    write_headers(db, keyring, id, c.headers.as_ref(), c.signature_compat)?;
    let now = time::now_ms();
    db.conn.execute(
        "UPDATE endpoints SET url = ?1, description = ?2, event_types = ?3, updated_at = ?4, ordering = ?5,
                fifo_on_dead = ?6, max_per_second = ?8, max_in_flight = ?9
         WHERE id = ?7",
        params![
            c.url,
            c.description,
            serde_json::to_string(&c.event_types)?,
            now,
            c.ordering.as_str(),
            c.fifo_on_dead.as_str(),
            id,
            c.limits.max_per_second,
            c.limits.max_in_flight
        ],
    )?;
    let before = Limits { max_per_second: current.max_per_second, max_in_flight: current.max_in_flight };
    if c.limits != before {
        super::pacing::limits_changed(db, id, now)?;
    }
    if current.ordering == Ordering::Fifo && c.ordering == Ordering::None {
        super::ordering::unorder(db, id, now)?;
    } else if current.fifo_on_dead == OnDead::Block && c.fifo_on_dead == OnDead::Continue {
        super::ordering::unblock_all(db, id, now)?;
    }
    get(db, id)
}

/// Enables or disables; `reason` says why when the system (not the user) disabled it.
/// Disables an endpoint, keeping its failure record (a later re-enable resets it). `Manual`
/// is a choice of its owner; `Gone` and `SustainedFailure` come from the dispatcher, which writes
/// the `endpoint.disabled` notice in the same transaction. Disabling a disabled endpoint keeps
/// its first reason.
pub fn disable(db: Db<'_>, id: &str, reason: DisabledReason) -> Result<Endpoint> {
    let now = time::now_ms();
    let n = db.conn.execute(
        "UPDATE endpoints SET active = 0, disabled_kind = ?1, disabled_at = ?2, disabled_reason = NULL, updated_at = ?2
         WHERE id = ?3 AND active = 1",
        params![reason.as_str(), now, id],
    )?;
    if n == 0 {
        get(db, id)?; // not found, or already disabled
    } else if reason.holds() {
        // A FIFO endpoint's waiting deliveries are held at once, so that enabling it again
        // sends them in order from an empty line (the others are held as the claim meets them).
        super::ordering::hold_ordered(db, id)?;
    }
    get(db, id)
}

/// What to do with the deliveries an endpoint did not get while it was failing or disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// Send the held deliveries, and the dead ones since its failures began, in order.
    Send,
    /// Mark the held deliveries dead; leave the dead ones as they are.
    Discard,
}

impl Backlog {
    /// The choice as the API and the pages spell it: `send` (also when none is given) or
    /// `discard`; `None` for anything else.
    pub fn parse(choice: Option<&str>) -> Option<Backlog> {
        match choice {
            None | Some("send") => Some(Backlog::Send),
            Some("discard") => Some(Backlog::Discard),
            Some(_) => None,
        }
    }
}

/// What enabling did.
#[derive(Debug, Clone)]
pub struct Enabled {
    pub endpoint: Endpoint,
    /// Deliveries scheduled to be sent, and held ones discarded.
    pub replayed: usize,
    pub discarded: usize,
    /// The reason it had been disabled for, when it was.
    pub was: Option<DisabledReason>,
}

/// Enables an endpoint and resets its failure record, so one failure does not disable it again.
/// The deliveries it missed are sent or discarded as `backlog` says; events whose last delivery
/// is discarded keep their body for `payload_retention`. When the system had disabled it, the
/// `endpoint.enabled` notice is queued. Run it inside one write.
pub fn enable(db: Db<'_>, id: &str, backlog: Backlog, payload_retention: Duration, notify: &Notify) -> Result<Enabled> {
    let before = get(db, id)?;
    let now = time::now_ms();
    let since = before.failure.since.or(before.disabled_at.map(Time::ms)).unwrap_or(now);
    // Only the system holds deliveries: after a manual disable there is no backlog to decide on
    // (its dead deliveries are retried by hand, as before).
    let backlog = before.disabled_reason.is_some_and(DisabledReason::holds).then_some(backlog);
    let (replayed, discarded) = match backlog {
        None => (0, 0),
        Some(Backlog::Send) => {
            db.conn.execute(
                "UPDATE events SET payload_expires_at = NULL WHERE payload IS NOT NULL AND id IN
                   (SELECT event_id FROM deliveries WHERE endpoint_id = ?1
                      AND (status = 'held' OR (status = 'dead' AND finished_at >= ?2)))",
                params![id, since],
            )?;
            // In the order they were made (a FIFO endpoint's by its numbers; the others due a
            // millisecond apart, so that they are claimed in that order), each at the end of its
            // key's line on a FIFO endpoint (the line is empty: its deliveries were held).
            let backlog: Vec<String> = rows(
                db.conn
                    .prepare(
                        "SELECT id FROM deliveries
                         WHERE endpoint_id = ?1 AND (status = 'held' OR (status = 'dead' AND finished_at >= ?2))
                           AND event_id IN (SELECT id FROM events WHERE payload IS NOT NULL)
                         ORDER BY fifo_seq, id",
                    )?
                    .query_map(params![id, since], |r| r.get(0))?,
            )?;
            let mut n = 0;
            for (i, delivery) in backlog.iter().enumerate() {
                n += usize::from(super::ordering::requeue(db, delivery, now + i as i64 + 1)?);
            }
            (n, 0)
        }
        Some(Backlog::Discard) => {
            let n = db.conn.execute(
                "UPDATE deliveries SET status = 'dead', finished_at = ?1,
                        last_error_code = ?2, last_error = 'discarded when the endpoint was enabled again'
                 WHERE endpoint_id = ?3 AND status = 'held'",
                params![now, FailureCode::EndpointDisabled, id],
            )?;
            super::expire_bodies_of_ended_holds(db, now, payload_retention)?;
            (0, n)
        }
    };
    db.conn.execute(
        "UPDATE endpoints SET active = 1, disabled_kind = NULL, disabled_at = NULL, disabled_reason = NULL,
                fail_since = NULL, dead_count = 0, first_dead_at = NULL, last_dead_at = NULL, updated_at = ?1
         WHERE id = ?2",
        params![now, id],
    )?;
    if before.disabled_reason.is_some_and(DisabledReason::holds) {
        let user_id: i64 =
            db.conn.prepare_cached("SELECT user_id FROM endpoints WHERE id = ?1")?.query_row([id], |r| r.get(0))?;
        let n = Notice::EndpointEnabled {
            endpoint_id: id.to_string(),
            url: before.url.clone(),
            replayed: replayed as i64,
            discarded: discarded as i64,
        };
        super::notices::add(db, notify, user_id, &n, now)?;
    }
    Ok(Enabled { endpoint: get(db, id)?, replayed, discarded, was: before.disabled_reason })
}

/// Enables an endpoint (its backlog as `backlog` says) or disables it by hand; nothing changes
/// when it already is so.
pub fn set_active(
    db: Db<'_>,
    id: &str,
    active: bool,
    backlog: Backlog,
    payload_retention: Duration,
    notify: &Notify,
) -> Result<Endpoint> {
    let ep = get(db, id)?;
    match (active, ep.active) {
        (true, false) => Ok(enable(db, id, backlog, payload_retention, notify)?.endpoint),
        (false, true) => disable(db, id, DisabledReason::Manual),
        _ => Ok(ep),
    }
}

/// What the banner on a user's pages (or an admin's: everyone's) tells: endpoints failing,
/// endpoints the system disabled, and deliveries held for them.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Trouble {
    pub failing: i64,
    pub disabled: i64,
    pub held: i64,
    /// Admins only (`user` is `None`): inbound sources that are silent or failing verification.
    pub sources: i64,
}

pub fn trouble(db: Db<'_>, user: Option<&str>) -> Result<Trouble> {
    // Per state: (active, disabled_kind) -> endpoints, and the failing among the active ones.
    let states: Vec<(bool, Option<String>, i64, i64)> = rows(
        db.conn
            .prepare_cached(
                "SELECT e.active, e.disabled_kind, count(*), coalesce(sum(CASE WHEN e.dead_count > 0 THEN 1 ELSE 0 END), 0)
                 FROM endpoints e WHERE CAST(?1 AS TEXT) IS NULL OR e.user_id = (SELECT id FROM users WHERE name = ?1)
                 GROUP BY e.active, e.disabled_kind",
            )?
            .query_map([user], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?,
    )?;
    let failing = states.iter().filter(|s| s.0).map(|s| s.3).sum();
    let disabled = states.iter().filter(|s| !s.0 && holds(s.1.clone())).map(|s| s.2).sum();
    let held: i64 = match user {
        Some(name) => db
            .conn
            .prepare_cached(
                "SELECT count(*) FROM deliveries WHERE user_id = (SELECT id FROM users WHERE name = ?1) AND status = 'held'",
            )?
            .query_row([name], |r| r.get(0))?,
        None => {
            db.conn.prepare_cached("SELECT count(*) FROM deliveries WHERE status = 'held'")?.query_row(params![], |r| r.get(0))?
        }
    };
    let sources: i64 = match user {
        Some(_) => 0,
        None => db
            .conn
            .prepare_cached(
                "SELECT count(*) FROM sources WHERE active = 1 AND (silent_since IS NOT NULL OR failing_since IS NOT NULL)",
            )?
            .query_row(params![], |r| r.get(0))?,
    };
    Ok(Trouble { failing, disabled, held, sources })
}

/// Deletes the endpoint with its keys, deliveries and their attempts. Events whose last
/// unfinished delivery goes with it start their payload retention now.
pub fn delete(db: Db<'_>, id: &str, payload_retention: Duration) -> Result<()> {
    let events: Vec<String> = rows(
        db.conn
            .prepare("SELECT DISTINCT event_id FROM deliveries WHERE endpoint_id = ?1 AND finished_at IS NULL")?
            .query_map([id], |r| r.get(0))?,
    )?;
    if db.conn.execute("DELETE FROM endpoints WHERE id = ?1", [id])? == 0 {
        return Err(Error::not_found(format!("endpoint {id}")));
    }
    let expires = time::now_ms() + payload_retention.as_millis() as i64;
    let mut stmt = db.conn.prepare(
        "UPDATE events SET payload_expires_at = ?1 WHERE id = ?2 AND payload_expires_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.finished_at IS NULL)",
    )?;
    for event_id in events {
        stmt.execute(params![expires, event_id])?;
    }
    Ok(())
}

/// Makes a new primary key; keys that were signing keep signing for `grace`, then stop.
/// Returns the new secret (shown once) and the time the old keys stop signing.
pub fn rotate_secret(db: Db<'_>, keyring: &Keyring, id: &str, grace: Duration) -> Result<(String, KeyInfo, i64)> {
    get(db, id)?;
    let now = time::now_ms();
    let until = now + grace.as_millis() as i64;
    db.conn.execute(
        "UPDATE endpoint_keys SET expires_at = ?1
         WHERE endpoint_id = ?2 AND (expires_at IS NULL OR expires_at > ?1)",
        params![until, id],
    )?;
    let secret = secret::generate();
    let key_id = insert_key(db, keyring, id, &secret, now)?;
    let info = KeyInfo { id: key_id, created_at: Time(now), expires_at: None };
    Ok((secret, info, until))
}

/// The keys that sign now, newest first, with their expiry.
pub fn keys(db: Db<'_>, id: &str, now: i64) -> Result<Vec<KeyInfo>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, created_at, expires_at FROM endpoint_keys
         WHERE endpoint_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY created_at DESC, rowid DESC",
    )?;
    let found = rows(stmt.query_map(params![id, now], |r| {
        Ok(KeyInfo { id: r.get(0)?, created_at: r.get(1)?, expires_at: r.get(2)? })
    })?)?;
    Ok(found)
}

/// The decrypted secrets that sign now, newest first.
pub fn secrets(db: Db<'_>, keyring: &Keyring, id: &str, now: i64) -> Result<Vec<KeySecret>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, secret, created_at, expires_at FROM endpoint_keys
         WHERE endpoint_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY created_at DESC, rowid DESC",
    )?;
    let rows = stmt.query_map(params![id, now], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key_id, sealed, created, expires) = row?;
        let secret = keyring.open(&key_id, &sealed)?;
        out.push(KeySecret { key_id, secret, created_at: Time(created), expires_at: expires.map(Time) });
    }
    Ok(out)
}

/// Signing keys for a delivery now, newest first.
pub fn signing_keys(db: Db<'_>, keyring: &Keyring, id: &str, now: i64) -> Result<Vec<SigningKey>> {
    secrets(db, keyring, id, now)?
        .into_iter()
        .map(|k| Ok(SigningKey { key: secret::decode(&k.secret)?, id: k.key_id }))
        .collect()
}

/// Re-seals every endpoint secret under `new`; each opens with `new` (already re-sealed by an
/// interrupted run) or `retiring`. Returns how many. Run it inside one write.
pub fn reseal_all(db: Db<'_>, new: &[u8; 32], retiring: &[u8; 32]) -> Result<usize> {
    reseal_column(db, "endpoints", "headers_sealed", new, retiring)?;
    reseal_column(db, "endpoint_keys", "secret", new, retiring)
}

/// Re-seals every non-null sealed `column` of `table` (keyed by its `id`, the associated data)
/// under `new`; returns how many.
pub(super) fn reseal_column(
    db: Db<'_>,
    table: &str,
    column: &str,
    new: &[u8; 32],
    retiring: &[u8; 32],
) -> Result<usize> {
    let sealed: Vec<(String, Vec<u8>)> = rows(
        db.conn
            .prepare(&format!("SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL"))?
            .query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))?,
    )?;
    for (id, s) in &sealed {
        db.conn.execute(
            &format!("UPDATE {table} SET {column} = ?1 WHERE id = ?2"),
            params![secret::reseal(new, retiring, id, s)?, id],
        )?;
    }
    Ok(sealed.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::Store;

    const MASTER: Keyring = Keyring { current: [1; 32], previous: None };

    fn fields(url: &str, types: &[&str]) -> Fields {
        Fields {
            url: Some(url.into()),
            description: Some("d".into()),
            event_types: Some(types.iter().map(|s| s.to_string()).collect()),
            ..Fields::default()
        }
    }

    #[test]
    fn crud_and_rotation_with_grace() {
        let store = Store::memory();
        let conn = store.db();
        let p = Policy::default();
        let (ep, secret) = add(conn, &MASTER, &p, "alice", &fields("https://example.com/h", &["email.*"]), 2).unwrap();
        let (second, _) = add(conn, &MASTER, &p, "alice", &fields("https://example.com/2", &[]), 2).unwrap();
        let over = add(conn, &MASTER, &p, "alice", &fields("https://example.com/3", &[]), 2).unwrap_err();
        assert!(matches!(over, Error::Conflict { code: "endpoint_limit", .. }), "{over}");
        assert_eq!(list(conn, Some("alice")).unwrap().len(), 2);
        delete(conn, &second.id, Duration::from_secs(1)).unwrap();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(list(conn, Some("alice")).unwrap().len(), 1);
        assert_eq!(list(conn, Some("bob")).unwrap().len(), 0);
        assert!(get_owned(conn, &ep.id, Some("bob")).is_err());

        let now = time::now_ms();
        assert_eq!(secrets(conn, &MASTER, &ep.id, now).unwrap()[0].secret, secret);
        let (new_secret, _, until) = rotate_secret(conn, &MASTER, &ep.id, Duration::from_secs(3600)).unwrap();
        let during: Vec<String> =
            secrets(conn, &MASTER, &ep.id, now + 1).unwrap().into_iter().map(|s| s.secret).collect();
        assert_eq!(during, vec![new_secret.clone(), secret.clone()], "both, newest first");
        let after: Vec<String> =
            secrets(conn, &MASTER, &ep.id, until + 1).unwrap().into_iter().map(|s| s.secret).collect();
        assert_eq!(after, vec![new_secret]);

        let updated =
            update(conn, &MASTER, &p, &ep.id, &Fields { description: Some("new".into()), ..Fields::default() })
                .unwrap();
        assert_eq!(updated.description, "new");
        assert_eq!(updated.event_types, vec!["email.*"]);
        let off = disable(conn, &ep.id, DisabledReason::Gone).unwrap();
        assert!(!off.active);
        delete(conn, &ep.id, Duration::from_secs(60)).unwrap();
        assert!(find(conn, &ep.id).unwrap().is_none());
        let keys: i64 = conn.conn.query_row("SELECT count(*) FROM endpoint_keys", params![], |r| r.get(0)).unwrap();
        assert_eq!(keys, 0, "the keys went with the endpoint");
    }
}
