//! `observations`: facts about the deployment that requests notice and `webhooks doctor`
//! reports (whether API requests arrive with their Authorization header). Best effort: a failed
//! write must never break the request that noticed.

use super::sql::{params, OptionalExtension};

use super::Db;
use crate::model::Result;

/// When `name` was last seen, and how many times in a row.
pub fn get(db: Db<'_>, name: &str) -> Result<Option<(i64, i64)>> {
    Ok(db
        .conn
        .prepare_cached("SELECT at, count FROM observations WHERE name = ?1")?
        .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Notes `name` seen at `at`: one more in its streak.
pub fn note(db: Db<'_>, name: &str, at: i64) -> Result<()> {
    db.conn
        .prepare_cached(
            "INSERT INTO observations (name, at, count) VALUES (?1, ?2, 1)
             ON CONFLICT (name) DO UPDATE SET at = ?2, count = observations.count + 1",
        )?
        .execute(params![name, at])?;
    Ok(())
}

/// Ends `name`'s streak.
pub fn clear(db: Db<'_>, name: &str) -> Result<()> {
    db.conn.prepare_cached("DELETE FROM observations WHERE name = ?1")?.execute([name])?;
    Ok(())
}

/// API requests in a row without an Authorization header before `doctor` calls it a problem:
/// one or two are a client that sent no token; a missing `CGIPassAuth` drops it from every one.
pub const MISSING_AUTH_STREAK: i64 = 3;

pub const AUTH_PRESENT: &str = "api_auth_present";
pub const AUTH_MISSING: &str = "api_auth_missing";

/// Notes whether an API request reached the CGI with its Authorization header. A request with
/// one ends any streak of requests without at once, so `doctor` clears as soon as the fix works;
/// other writes happen at most once a minute (this runs on every API request, and even an
/// INSERT that changes nothing takes the write lock). Failures are ignored: an observation must
/// never break a request.
pub fn observe_api_auth(db: Db<'_>, present: bool, now: i64) {
    let (name, other) = if present { (AUTH_PRESENT, AUTH_MISSING) } else { (AUTH_MISSING, AUTH_PRESENT) };
    if present && get(db, other).ok().flatten().is_some() {
        let _ = clear(db, other);
    }
    let fresh = |(at, count): (i64, i64)| at >= now - 60_000 && (present || count >= MISSING_AUTH_STREAK);
    if get(db, name).ok().flatten().is_some_and(fresh) {
        return;
    }
    let _ = note(db, name, now);
}
