//! `login_links_used`: the nonces of redeemed sign-in links, so each link works once. Kept until
//! the link would have expired anyway (`retention` removes them).

use super::sql::params;

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
