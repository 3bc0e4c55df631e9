//! `inbound_requests`: the log of every request to a known source, the durable duplicate check
//! (a unique index over accepted requests' provider ids, kept as long as the metadata), the relay
//! of an accepted request (an event whose payload is the provider's raw body, with a delivery to
//! each forward destination), hourly counters, and the two reception alerts.

use std::time::Duration;

use super::sql::{self, params, OptionalExtension, Row};

use super::notices;
use super::{rows, Db};
use crate::model::health::Notify;
use crate::model::inbound::{
    body_hash, is_silent, verification_failing, LoggedHeader, Outcome, Reason, Request, Source, Verified,
    FAILING_WINDOW_MS, REPLAY_WINDOW_MS,
};
use crate::model::notice::Notice;
use crate::model::time::{self, hour_of};
use crate::model::{Error, Result};

/// A request to log, with its verdict.
#[derive(Debug)]
pub struct Received<'a> {
    pub source: &'a Source,
    pub received_at: i64,
    pub remote_addr: &'a str,
    /// Already redacted.
    pub headers: &'a [LoggedHeader],
    pub content_type: Option<&'a str>,
    /// `None` when it was not read (over the size limit).
    pub body: Option<&'a [u8]>,
    pub body_size: i64,
    pub verdict: std::result::Result<&'a Verified, Reason>,
    /// `WEBHOOKS_INBOUND_REJECT_BUDGET`: bytes of rejected bodies kept per source per hour.
    pub reject_budget: u64,
}

/// What became of a logged request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub id: String,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    /// For a duplicate: the accepted request it repeats.
    pub duplicate_of: Option<String>,
    pub replay_of: Option<String>,
    pub event_id: Option<String>,
    /// Deliveries queued for the forward destinations.
    pub deliveries: usize,
}

impl Logged {
    /// A request not (yet) accepted: where a verdict starts.
    fn rejected(id: String) -> Logged {
        Logged {
            id,
            outcome: Outcome::Rejected,
            reason: None,
            duplicate_of: None,
            replay_of: None,
            event_id: None,
            deliveries: 0,
        }
    }
}

/// A verified body about to be relayed: its bytes, their SHA-256 (computed once, for the log,
/// the replay check and the event) and the content type it is relayed with.
struct Body<'a> {
    bytes: &'a [u8],
    hash: &'a str,
    content_type: Option<&'a str>,
}

/// Logs a request and, when it verified and is new, relays it. Run it inside one write.
pub fn log(db: Db<'_>, notify: &Notify, r: &Received<'_>, payload_retention: Duration) -> Result<Logged> {
    let id = time::new_id("inb");
    let hash = r.body.map(body_hash);
    let headers = serde_json::to_string(r.headers)?;
    let mut logged = Logged::rejected(id.clone());
    // A rejected body is kept within the source's hourly budget, so that a stranger's junk
    // cannot fill the disk; past it the reject is logged without its body, and counted.
    let mut body = r.body;
    let mut kept = Kept::default();
    if let (Err(_), Some(b)) = (r.verdict, r.body) {
        let stored = rejected_bytes_this_hour(db, &r.source.id, r.received_at)?;
        if stored.saturating_add(b.len() as u64) > r.reject_budget {
            body = None;
            kept.dropped = 1;
        } else {
            kept.bytes = b.len() as i64;
        }
    }
    let (dedupe_key, dedupe_signed, kind) = match r.verdict {
        Ok(v) => (Some(v.dedupe.key.as_str()), v.dedupe.signed, v.kind.as_deref()),
        Err(reason) => {
            logged.reason = Some(reason);
            (None, true, None)
        }
    };
    if let (Ok(v), Some(bytes), Some(hash)) = (r.verdict, r.body, hash.as_deref()) {
        let body = Body { bytes, hash, content_type: r.content_type };
        accept(db, r.source, v, &body, r.received_at, payload_retention, &mut logged)?;
    }
    db.conn
        .prepare_cached(
            "INSERT INTO inbound_requests (id, source_id, received_at, remote_addr, headers, content_type, body,
                 body_size, body_hash, outcome, reason, dedupe_key, dedupe_signed, duplicate_of, replay_of, kind, event_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
        )?
        .execute(params![
            id,
            r.source.id,
            r.received_at,
            r.remote_addr,
            headers,
            r.content_type,
            body,
            r.body_size,
            hash,
            logged.outcome.as_str(),
            logged.reason.map(Reason::as_str),
            dedupe_key,
            dedupe_signed,
            logged.duplicate_of,
            logged.replay_of,
            kind,
            logged.event_id
        ])?;
    let auth_seen = r.headers.iter().any(|h| h.name == "authorization");
    after_logging(db, notify, r.source, &logged, r.received_at, auth_seen, kept)?;
    Ok(logged)
}

/// What became of a rejected body: its bytes kept, or dropped past the budget.
#[derive(Debug, Clone, Copy, Default)]
struct Kept {
    bytes: i64,
    dropped: i64,
}

/// Bytes of rejected bodies kept for a source in the hour of `now` (a few counter rows).
fn rejected_bytes_this_hour(db: Db<'_>, source_id: &str, now: i64) -> Result<u64> {
    let n: i64 = db
        .conn
        .prepare_cached(
            "SELECT coalesce(sum(stored_bytes), 0) FROM source_hours WHERE source_id = ?1 AND hour = ?2 AND outcome = 'rejected'",
        )?
        .query_row(params![source_id, hour_of(now)], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

/// Counters, the source's last accepted time, and the failing-verification alert.
fn after_logging(
    db: Db<'_>,
    notify: &Notify,
    source: &Source,
    l: &Logged,
    now: i64,
    auth_seen: bool,
    kept: Kept,
) -> Result<()> {
    count(db, source, now, l.outcome, l.reason, kept)?;
    if auth_seen {
        db.conn
            .prepare_cached("UPDATE sources SET last_auth_seen_at = ?1 WHERE id = ?2")?
            .execute(params![now, source.id])?;
    }
    match l.outcome {
        Outcome::Accepted => mark_accepted(db, &source.id, now)?,
        Outcome::Rejected => failing_alert(db, notify, source, now)?,
        Outcome::Duplicate => {}
    }
    Ok(())
}

/// A verified request: a duplicate of the accepted request with its provider event id, or
/// accepted (flagged when an unsigned id carries a body accepted under another id within 24
/// hours) and relayed.
fn accept(
    db: Db<'_>,
    source: &Source,
    v: &Verified,
    body: &Body<'_>,
    now: i64,
    payload_retention: Duration,
    logged: &mut Logged,
) -> Result<()> {
    if let Some(prev) = accepted_with_key(db, &source.id, &v.dedupe.key)? {
        logged.outcome = Outcome::Duplicate;
        logged.duplicate_of = Some(prev);
        return Ok(());
    }
    logged.outcome = Outcome::Accepted;
    if !v.dedupe.signed {
        logged.replay_of = replay_of(db, &source.id, body.hash, &v.dedupe.key, now)?;
    }
    let (event_id, n) =
        relay(db, source, v.kind.as_deref(), body, logged.replay_of.as_deref(), now, payload_retention)?;
    logged.event_id = Some(event_id);
    logged.deliveries = n;
    Ok(())
}

/// The source's last accepted request, which also ends a silence.
fn mark_accepted(db: Db<'_>, source_id: &str, now: i64) -> Result<()> {
    db.conn
        .prepare_cached("UPDATE sources SET last_accepted_at = ?1, silent_since = NULL WHERE id = ?2")?
        .execute(params![now, source_id])?;
    Ok(())
}

/// Counts a request in its source's hour and in the metrics' counter (which never goes down:
/// a re-checked reject that becomes accepted counts once more, as what it became).
fn count(db: Db<'_>, source: &Source, now: i64, outcome: Outcome, reason: Option<Reason>, kept: Kept) -> Result<()> {
    let source_id = &source.id;
    let mut metric = crate::model::metrics::Counts::default();
    metric.inbound(&source.name, outcome.as_str(), reason.map(Reason::as_str).unwrap_or(""));
    super::metrics::add(db, &metric)?;
    db.conn
        .prepare_cached(
            "INSERT INTO source_hours (source_id, hour, outcome, reason, n, stored_bytes, dropped_bodies)
             VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)
             ON CONFLICT (source_id, hour, outcome, reason) DO UPDATE SET n = source_hours.n + 1,
                 stored_bytes = source_hours.stored_bytes + excluded.stored_bytes,
                 dropped_bodies = source_hours.dropped_bodies + excluded.dropped_bodies",
        )?
        .execute(params![
            source_id,
            hour_of(now),
            outcome.as_str(),
            reason.map(Reason::as_str).unwrap_or(""),
            kept.bytes,
            kept.dropped
        ])?;
    Ok(())
}

/// Raises `source.verification_failing` once when the last hour's requests meet the rule.
fn failing_alert(db: Db<'_>, notify: &Notify, source: &Source, now: i64) -> Result<()> {
    let already: Option<i64> = db
        .conn
        .prepare_cached("SELECT failing_since FROM sources WHERE id = ?1")?
        .query_row([&source.id], |r| r.get(0))?;
    if already.is_some() {
        return Ok(());
    }
    let (requests, rejected, top) = last_hour(db, &source.id, now)?;
    if !verification_failing(requests, rejected) {
        return Ok(());
    }
    db.conn.prepare_cached("UPDATE sources SET failing_since = ?1 WHERE id = ?2")?.execute(params![now, source.id])?;
    let n = Notice::SourceVerificationFailing {
        source_id: source.id.clone(),
        name: source.name.clone(),
        requests,
        rejected,
        top_reason: top.unwrap_or_default(),
    };
    add_notice(db, notify, source, &n, now)
}

/// Requests and rejects of the last hour, with the most frequent reject reason.
fn last_hour(db: Db<'_>, source_id: &str, now: i64) -> Result<(i64, i64, Option<String>)> {
    let since = now - FAILING_WINDOW_MS;
    let (requests, rejected): (i64, i64) = db
        .conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(CASE WHEN outcome = 'rejected' THEN 1 ELSE 0 END), 0) FROM inbound_requests
             WHERE source_id = ?1 AND received_at > ?2",
        )?
        .query_row(params![source_id, since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let top: Option<String> = db
        .conn
        .prepare_cached(
            "SELECT reason FROM inbound_requests WHERE source_id = ?1 AND received_at > ?2 AND outcome = 'rejected'
             GROUP BY reason ORDER BY count(*) DESC, reason LIMIT 1",
        )?
        .query_row(params![source_id, since], |r| r.get(0))
        .optional()?
        .flatten();
    Ok((requests, rejected, top))
}

/// Queues a notice about a source, as its relay user's.
fn add_notice(db: Db<'_>, notify: &Notify, source: &Source, n: &Notice, now: i64) -> Result<()> {
    let user_id = super::sources::relay_user_id(db, &source.id)?;
    notices::add(db, notify, user_id, n, now)?;
    Ok(())
}

/// The dispatcher's look at every source: `source.silent` once per silence, and the failing
/// alert cleared once the last hour no longer meets its rule (so that a new episode is told).
/// Returns how many notices it queued.
pub fn tick(db: Db<'_>, notify: &Notify, now: i64) -> Result<usize> {
    let mut told = 0;
    for s in super::sources::list(db)? {
        if !s.active {
            continue;
        }
        let gap_ms = s.expected_gap_seconds.map(|g| g * 1000);
        if s.silent_since.is_none() && is_silent(gap_ms, s.last_accepted_at, s.created_at, now) {
            db.conn
                .prepare_cached("UPDATE sources SET silent_since = ?1 WHERE id = ?2")?
                .execute(params![now, s.id])?;
            let n = Notice::SourceSilent {
                source_id: s.id.clone(),
                name: s.name.clone(),
                last_accepted_at: s.last_accepted_at.map(time::rfc3339),
                expected_gap_seconds: s.expected_gap_seconds.unwrap_or_default(),
            };
            add_notice(db, notify, &s, &n, now)?;
            told += 1;
        }
        if s.failing_since.is_some() {
            let (requests, rejected, _) = last_hour(db, &s.id, now)?;
            if !verification_failing(requests, rejected) {
                db.conn.prepare_cached("UPDATE sources SET failing_since = NULL WHERE id = ?1")?.execute([&s.id])?;
            }
        }
    }
    Ok(told)
}

fn accepted_with_key(db: Db<'_>, source_id: &str, key: &str) -> Result<Option<String>> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT id FROM inbound_requests WHERE source_id = ?1 AND dedupe_key = ?2 AND outcome = 'accepted'",
        )?
        .query_row(params![source_id, key], |r| r.get(0))
        .optional()?)
}

/// An accepted request with the same body under another (unsigned) id within 24 hours.
fn replay_of(db: Db<'_>, source_id: &str, hash: &str, key: &str, now: i64) -> Result<Option<String>> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT id FROM inbound_requests WHERE source_id = ?1 AND body_hash = ?2 AND outcome = 'accepted'
               AND dedupe_key != ?3 AND received_at > ?4 ORDER BY received_at LIMIT 1",
        )?
        .query_row(params![source_id, hash, key, now - REPLAY_WINDOW_MS], |r| r.get(0))
        .optional()?)
}

/// The relayed event: the raw body as payload (a BLOB, byte for byte) with its content type, one
/// delivery per forward destination. Returns its id and how many deliveries.
fn relay(
    db: Db<'_>,
    source: &Source,
    kind: Option<&str>,
    body: &Body<'_>,
    replay_of: Option<&str>,
    now: i64,
    payload_retention: Duration,
) -> Result<(String, usize)> {
    let user_id = super::sources::relay_user_id(db, &source.id)?;
    let targets = super::endpoints::targets_of_user(db, user_id)?;
    let id = time::new_id("evt");
    let event_type = kind.map(|k| format!("{}.{k}", source.provider)).unwrap_or_else(|| source.provider.to_string());
    let expires = targets.is_empty().then(|| now + payload_retention.as_millis() as i64);
    db.conn
        .prepare_cached(
            "INSERT INTO events (id, user_id, type, request_hash, payload, created_at, payload_expires_at, content_type, source_id, replay_of)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            id,
            user_id,
            event_type,
            body.hash,
            body.bytes,
            now,
            expires,
            body.content_type.unwrap_or("application/octet-stream"),
            source.id,
            replay_of
        ])?;
    super::events::fan_out(db, &id, user_id, &targets.iter().collect::<Vec<_>>(), None, now)?;
    Ok((id, targets.len()))
}

const COLUMNS: &str = "id, source_id, received_at, remote_addr, headers, content_type, body_size, body IS NOT NULL,
    outcome, reason, dedupe_key, dedupe_signed, duplicate_of, replay_of, kind, event_id, rechecked_at";

fn from_row(r: &Row<'_>) -> sql::Result<Request> {
    let headers: String = r.get(4)?;
    let outcome: String = r.get(8)?;
    Ok(Request {
        id: r.get(0)?,
        source_id: r.get(1)?,
        received_at: r.get(2)?,
        remote_addr: r.get(3)?,
        headers: serde_json::from_str(&headers).unwrap_or_default(),
        content_type: r.get(5)?,
        body_size: r.get(6)?,
        body_kept: r.get(7)?,
        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Rejected),
        reason: r.get(9)?,
        dedupe_key: r.get(10)?,
        dedupe_signed: r.get(11)?,
        duplicate_of: r.get(12)?,
        replay_of: r.get(13)?,
        kind: r.get(14)?,
        event_id: r.get(15)?,
        rechecked_at: r.get(16)?,
    })
}

/// Which logged requests to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub source_id: Option<String>,
    pub outcome: Option<Outcome>,
    /// Only requests with ids below this (paging).
    pub before: Option<String>,
    pub limit: usize,
}

pub fn list(db: Db<'_>, f: &Filter) -> Result<Vec<Request>> {
    let mut stmt = db.conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM inbound_requests
         WHERE (CAST(?1 AS TEXT) IS NULL OR source_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR outcome = ?2) AND (CAST(?3 AS TEXT) IS NULL OR id < ?3)
         ORDER BY id DESC LIMIT ?4"
    ))?;
    let found = rows(stmt.query_map(
        params![f.source_id, f.outcome.map(Outcome::as_str), f.before, f.limit.clamp(1, 1000) as i64],
        from_row,
    )?)?;
    Ok(found)
}

pub fn get(db: Db<'_>, id: &str) -> Result<Request> {
    db.conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM inbound_requests WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("inbound request {id}")))
}

/// The stored body, byte for byte (`None` once expired or when it was over the limit).
pub fn body(db: Db<'_>, id: &str) -> Result<Option<Vec<u8>>> {
    Ok(db
        .conn
        .prepare_cached("SELECT body FROM inbound_requests WHERE id = ?1")?
        .query_row([id], |r| r.get::<_, Option<Vec<u8>>>(0))
        .optional()?
        .flatten())
}

/// A rejected request verified again (after its secret was fixed): it becomes accepted (relayed)
/// or a duplicate; a reject stays a reject with the new reason. Run it inside one write.
pub fn recheck(
    db: Db<'_>,
    source: &Source,
    req: &Request,
    body: &[u8],
    verdict: std::result::Result<&Verified, Reason>,
    payload_retention: Duration,
) -> Result<Logged> {
    // Read again inside this write: another re-check may have accepted it since `req` was read.
    let outcome: String = db
        .conn
        .prepare_cached("SELECT outcome FROM inbound_requests WHERE id = ?1")?
        .query_row([&req.id], |r| r.get(0))?;
    if outcome != Outcome::Rejected.as_str() {
        return Err(Error::conflict(
            "not_rejected",
            format!("request {} was {outcome}: only rejects are re-checked", req.id),
        ));
    }
    let now = time::now_ms();
    let mut logged = Logged::rejected(req.id.clone());
    match verdict {
        Err(reason) => {
            logged.reason = Some(reason);
            db.conn.execute(
                "UPDATE inbound_requests SET reason = ?1, rechecked_at = ?2 WHERE id = ?3",
                params![reason.as_str(), now, req.id],
            )?;
        }
        Ok(v) => {
            let hash = body_hash(body);
            let body = Body { bytes: body, hash: &hash, content_type: req.content_type.as_deref() };
            accept(db, source, v, &body, now, payload_retention, &mut logged)?;
            if logged.outcome == Outcome::Accepted {
                mark_accepted(db, &source.id, now)?;
            }
            db.conn.execute(
                "UPDATE inbound_requests SET outcome = ?1, reason = NULL, dedupe_key = ?2, dedupe_signed = ?3,
                     duplicate_of = ?4, replay_of = ?5, kind = ?6, event_id = ?7, rechecked_at = ?8
                 WHERE id = ?9",
                params![
                    logged.outcome.as_str(),
                    v.dedupe.key,
                    v.dedupe.signed,
                    logged.duplicate_of,
                    logged.replay_of,
                    v.kind,
                    logged.event_id,
                    now,
                    req.id
                ],
            )?;
            // It now counts as what it became, in the hour it arrived, and no longer as a reject:
            // once in the 24-hour summary.
            db.conn
                .prepare_cached(
                    "UPDATE source_hours SET n = n - 1
                     WHERE source_id = ?1 AND hour = ?2 AND outcome = 'rejected' AND reason = ?3 AND n > 0",
                )?
                .execute(params![source.id, hour_of(req.received_at), req.reason.as_deref().unwrap_or("")])?;
            count(db, source, req.received_at, logged.outcome, None, Kept::default())?;
        }
    }
    Ok(logged)
}
