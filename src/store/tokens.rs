//! `tokens`: API tokens, stored as SHA-256 hashes.

use rusqlite::{params, OptionalExtension};

use super::{rows, Db};
use crate::model::token::{self, Created, TokenInfo};
use crate::model::user::Principal;
use crate::model::{clock, id, Error, Result};

/// Makes a token for `user`, or an application token for `None`.
pub fn create(db: Db<'_>, user: Option<&str>, label: &str) -> Result<Created> {
    let text = token::generate();
    let id = id::new("tok");
    let user_id = match user {
        Some(name) => Some(super::users::ensure(db, name)?),
        None => None,
    };
    db.conn.execute(
        "INSERT INTO tokens (id, user_id, hash, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, user_id, token::hash(&text), label, clock::now_ms()],
    )?;
    Ok(Created { id, token: text, user: user.map(String::from), kind: token::kind(user) })
}

/// The principal of a live token, or `None` for an unknown or revoked one.
pub fn authenticate(db: Db<'_>, text: &str) -> Result<Option<Principal>> {
    if !token::plausible(text) {
        return Ok(None);
    }
    let row: Option<(String, Option<String>, Option<i64>)> = db
        .conn
        .prepare_cached(
            "SELECT t.id, u.name, t.last_used_at FROM tokens t LEFT JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1 AND t.revoked_at IS NULL",
        )?
        .query_row([token::hash(text)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, user, last_used)) = row else { return Ok(None) };
    let now = clock::now_ms();
    // Record use at most once a minute, so reads stay reads.
    if last_used.is_none_or(|t| now - t > 60_000) {
        db.conn.prepare_cached("UPDATE tokens SET last_used_at = ?1 WHERE id = ?2")?.execute(params![now, id])?;
    }
    Ok(Some(match user {
        Some(name) => Principal::User(name),
        None => Principal::App,
    }))
}

/// Tokens of one user, or every token when `user` is `None`.
pub fn list(db: Db<'_>, user: Option<&str>) -> Result<Vec<TokenInfo>> {
    let mut stmt = db.conn.prepare(
        "SELECT t.id, u.name, t.label, t.created_at, t.last_used_at, t.revoked_at
         FROM tokens t LEFT JOIN users u ON u.id = t.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY t.id",
    )?;
    let it = stmt.query_map([user], |r| {
        let user: Option<String> = r.get(1)?;
        Ok(TokenInfo {
            id: r.get(0)?,
            kind: token::kind(user.as_deref()),
            user,
            label: r.get(2)?,
            created_at: clock::rfc3339(r.get(3)?),
            last_used_at: r.get::<_, Option<i64>>(4)?.map(clock::rfc3339),
            revoked: r.get::<_, Option<i64>>(5)?.is_some(),
        })
    })?;
    rows(it)
}

/// Revokes a token; `user` limits it to that user's own tokens.
pub fn revoke(db: Db<'_>, id: &str, user: Option<&str>) -> Result<()> {
    let n = db.conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL
         AND (?3 IS NULL OR user_id = (SELECT id FROM users WHERE name = ?3))",
        params![clock::now_ms(), id, user],
    )?;
    if n == 0 {
        return Err(Error::not_found(format!("active token {id}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn tokens_authenticate_until_revoked_and_are_stored_hashed() {
        let store = Store::memory();
        let db = store.db();
        let app = create(db, None, "host").unwrap();
        let alice = create(db, Some("alice"), "").unwrap();
        assert_eq!(authenticate(db, &app.token).unwrap(), Some(Principal::App));
        assert_eq!(authenticate(db, &alice.token).unwrap(), Some(Principal::User("alice".into())));
        assert_eq!(authenticate(db, "qsm_nope").unwrap(), None);
        let stored: String = db.conn.query_row("SELECT group_concat(hash) FROM tokens", [], |r| r.get(0)).unwrap();
        assert!(!stored.contains(&app.token[4..]));
        assert!(revoke(db, &alice.id, Some("bob")).is_err(), "not bob's");
        revoke(db, &alice.id, Some("alice")).unwrap();
        assert_eq!(authenticate(db, &alice.token).unwrap(), None);
        assert_eq!(list(db, None).unwrap().len(), 2);
        assert!(list(db, Some("alice")).unwrap()[0].revoked);
    }
}
