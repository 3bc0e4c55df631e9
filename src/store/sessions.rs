//! `login_links_used`: the nonces of redeemed sign-in links, so each link works once. Kept until
//! the link would have expired anyway (`retention` removes them). `sessions`: the sign-in
//! sessions those links start, so that signing out and revoking end them server-side.

use super::sql::{params, OptionalExtension};

use super::Db;
use crate::model::Result;

/// Marks a login link's nonce used; false when it was used before.
pub fn use_login_nonce(db: Db<'_>, nonce: &str, expires_at_ms: i64) -> Result<bool> {
    let fresh = db.conn.execute(
        "INSERT INTO login_links_used (nonce, expires_at) VALUES (?1, ?2) ON CONFLICT (nonce) DO NOTHING",
        params![nonce, expires_at_ms],
    )?;
    Ok(fresh == 1)
}

/// Records a new session (its id is in the signed cookie).
pub fn start(db: Db<'_>, sid: &str, user: &str, now_ms: i64, expires_at_ms: i64) -> Result<()> {
    db.conn.execute(
        "INSERT INTO sessions (sid, user_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![sid, user, now_ms, expires_at_ms],
    )?;
    Ok(())
}

/// Whether the session signs in: recorded for this user, not ended, not expired.
pub fn is_live(db: Db<'_>, sid: &str, user: &str, now_ms: i64) -> Result<bool> {
    Ok(live(db, sid, now_ms)?.is_some_and(|(u, _)| u == user))
}

/// A live session's user and expiry (Unix ms): `None` when it was ended, has expired or never was.
pub fn live(db: Db<'_>, sid: &str, now_ms: i64) -> Result<Option<(String, i64)>> {
    Ok(db
        .conn
        .prepare_cached(
            "SELECT user_name, expires_at FROM sessions WHERE sid = ?1 AND ended_at IS NULL AND expires_at >= ?2",
        )?
        .query_row(params![sid, now_ms], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Ends one session (signing out).
pub fn end(db: Db<'_>, sid: &str, now_ms: i64) -> Result<()> {
    db.conn.execute("UPDATE sessions SET ended_at = ?1 WHERE sid = ?2 AND ended_at IS NULL", params![now_ms, sid])?;
    Ok(())
}

/// Ends every live session of a user, and refuses the links issued to them until now; returns
/// how many sessions were live.
pub fn revoke_user(db: Db<'_>, user: &str, now_ms: i64) -> Result<usize> {
    db.conn.execute(
        "INSERT INTO session_revocations (user_name, revoked_at) VALUES (?1, ?2)
         ON CONFLICT (user_name) DO UPDATE SET revoked_at = excluded.revoked_at",
        params![user, now_ms],
    )?;
    Ok(db.conn.execute(
        "UPDATE sessions SET ended_at = ?1 WHERE user_name = ?2 AND ended_at IS NULL AND expires_at >= ?1",
        params![now_ms, user],
    )?)
}

/// When the user's sessions were last revoked (Unix ms), if they were.
pub fn revoked_at(db: Db<'_>, user: &str) -> Result<Option<i64>> {
    Ok(db
        .conn
        .prepare_cached("SELECT revoked_at FROM session_revocations WHERE user_name = ?1")?
        .query_row(params![user], |r| r.get(0))
        .optional()?)
}
