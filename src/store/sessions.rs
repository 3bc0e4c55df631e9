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
    let found: Option<i64> = db
        .conn
        .prepare_cached(
            "SELECT 1 FROM sessions WHERE sid = ?1 AND user_name = ?2 AND ended_at IS NULL AND expires_at >= ?3",
        )?
        .query_row(params![sid, user, now_ms], |r| r.get(0))
        .optional()?;
    Ok(found.is_some())
}

/// Ends one session (signing out).
pub fn end(db: Db<'_>, sid: &str, now_ms: i64) -> Result<()> {
    db.conn.execute("UPDATE sessions SET ended_at = ?1 WHERE sid = ?2 AND ended_at IS NULL", params![now_ms, sid])?;
    Ok(())
}

/// Ends every live session of a user; returns how many.
pub fn revoke_user(db: Db<'_>, user: &str, now_ms: i64) -> Result<usize> {
    Ok(db.conn.execute(
        "UPDATE sessions SET ended_at = ?1 WHERE user_name = ?2 AND ended_at IS NULL AND expires_at >= ?1",
        params![now_ms, user],
    )?)
}
