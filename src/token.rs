//! API tokens: `qsm_` + 43 characters, shown once and stored as SHA-256 hashes. An application
//! token (no user) may post events for any user; a user token acts only for its user.

use anyhow::Result;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock;
use crate::error::NotFound;

pub const PREFIX: &str = "qsm_";

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    App,
    User(String),
}

#[derive(Debug, Serialize)]
pub struct Created {
    pub id: String,
    pub token: String,
    pub user: Option<String>,
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: Option<String>,
    pub kind: &'static str,
    pub label: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked: bool,
}

pub fn hash(token: &str) -> String {
    crate::signing::hex(&Sha256::digest(token.as_bytes()))
}

pub fn create(conn: &Connection, user: Option<&str>, label: &str) -> Result<Created> {
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(crate::secret::random_bytes::<32>()));
    let id = crate::id::new("tok");
    let user_id = match user {
        Some(name) => Some(crate::user::ensure(conn, name)?),
        None => None,
    };
    conn.execute(
        "INSERT INTO tokens (id, user_id, hash, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, user_id, hash(&token), label, clock::now_ms()],
    )?;
    Ok(Created { id, token, user: user.map(String::from), kind: if user.is_some() { "user" } else { "app" } })
}

/// The principal of a live token, or `None` for an unknown or revoked one.
pub fn authenticate(conn: &Connection, token: &str) -> Result<Option<Principal>> {
    if !token.starts_with(PREFIX) || token.len() > 200 {
        return Ok(None);
    }
    let row: Option<(String, Option<String>, Option<i64>)> = conn
        .prepare_cached(
            "SELECT t.id, u.name, t.last_used_at FROM tokens t LEFT JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1 AND t.revoked_at IS NULL",
        )?
        .query_row([hash(token)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, user, last_used)) = row else { return Ok(None) };
    let now = clock::now_ms();
    // Record use at most once a minute, so reads stay reads.
    if last_used.is_none_or(|t| now - t > 60_000) {
        conn.prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2")?.execute(params![now, id])?;
    }
    Ok(Some(match user {
        Some(name) => Principal::User(name),
        None => Principal::App,
    }))
}

/// Tokens of one user, or every token when `user` is `None`.
pub fn list(conn: &Connection, user: Option<&str>) -> Result<Vec<TokenInfo>> {
    let mut stmt = conn.prepare(
        "SELECT t.id, u.name, t.label, t.created_at, t.last_used_at, t.revoked_at
         FROM tokens t LEFT JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id",
    )?;
    let rows = stmt.query_map([user], |r| {
        let user: Option<String> = r.get(1)?;
        Ok(TokenInfo {
            id: r.get(0)?,
            kind: if user.is_some() { "user" } else { "app" },
            user,
            label: r.get(2)?,
            created_at: clock::rfc3339(r.get(3)?),
            last_used_at: r.get::<_, Option<i64>>(4)?.map(clock::rfc3339),
            revoked: r.get::<_, Option<i64>>(5)?.is_some(),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Revokes a token; `user` limits it to that user's own tokens.
pub fn revoke(conn: &Connection, id: &str, user: Option<&str>) -> Result<()> {
    let n = conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL
         AND (?3 IS NULL OR user_id = (SELECT id FROM users WHERE name = ?3))",
        params![clock::now_ms(), id, user],
    )?;
    if n == 0 {
        return Err(NotFound(format!("active token {id}")).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_until_revoked_and_are_stored_hashed() {
        let conn = crate::db::memory();
        let app = create(&conn, None, "host").unwrap();
        let alice = create(&conn, Some("alice"), "").unwrap();
        assert_eq!(authenticate(&conn, &app.token).unwrap(), Some(Principal::App));
        assert_eq!(authenticate(&conn, &alice.token).unwrap(), Some(Principal::User("alice".into())));
        assert_eq!(authenticate(&conn, "qsm_nope").unwrap(), None);
        let stored: String = conn.query_row("SELECT group_concat(hash) FROM tokens", [], |r| r.get(0)).unwrap();
        assert!(!stored.contains(&app.token[4..]));
        assert!(revoke(&conn, &alice.id, Some("bob")).is_err(), "not bob's");
        revoke(&conn, &alice.id, Some("alice")).unwrap();
        assert_eq!(authenticate(&conn, &alice.token).unwrap(), None);
        assert_eq!(list(&conn, None).unwrap().len(), 2);
        assert!(list(&conn, Some("alice")).unwrap()[0].revoked);
    }
}
