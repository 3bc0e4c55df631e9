//! `users` and `tokens`: who acts (`model::principal`). A user's row is made on first sight; a
//! token is stored as its hash.

use super::sql::{params, OptionalExtension};

use super::{rows, Db};
use crate::model::principal::{self, Created, Principal, TokenInfo};
use crate::model::{time, Error, Result};

/// The user's row id, creating the user on first sight.
pub fn ensure(db: Db<'_>, name: &str) -> Result<i64> {
    if let Some(id) = find(db, name)? {
        return Ok(id);
    }
    Ok(db
        .conn
        .prepare_cached("INSERT INTO users (name, created_at) VALUES (?1, ?2) RETURNING id")?
        .query_row(params![name, time::now_ms()], |r| r.get(0))?)
}

pub fn find(db: Db<'_>, name: &str) -> Result<Option<i64>> {
    Ok(db.conn.prepare_cached("SELECT id FROM users WHERE name = ?1")?.query_row([name], |r| r.get(0)).optional()?)
}

/// Makes a token for `user`, or an application token for `None`.
pub fn create_token(db: Db<'_>, user: Option<&str>, label: &str) -> Result<Created> {
    let text = principal::generate_token();
    let id = time::new_id("tok");
    let user_id = match user {
        Some(name) => Some(ensure(db, name)?),
        None => None,
    };
    db.conn.execute(
        "INSERT INTO tokens (id, user_id, hash, label, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, user_id, principal::token_hash(&text), label, time::now_ms()],
    )?;
    Ok(Created { id, token: text, user: user.map(String::from), kind: principal::token_kind(user) })
}

/// The principal of a live token, or `None` for an unknown or revoked one.
pub fn authenticate_token(db: Db<'_>, text: &str) -> Result<Option<Principal>> {
    if !principal::plausible_token(text) {
        return Ok(None);
    }
    let row: Option<(String, Option<String>, Option<i64>)> = db
        .conn
        .prepare_cached(
            "SELECT t.id, u.name, t.last_used_at FROM tokens t LEFT JOIN users u ON u.id = t.user_id
             WHERE t.hash = ?1 AND t.revoked_at IS NULL",
        )?
        .query_row([principal::token_hash(text)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((id, user, last_used)) = row else { return Ok(None) };
    let now = time::now_ms();
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
pub fn list_tokens(db: Db<'_>, user: Option<&str>) -> Result<Vec<TokenInfo>> {
    let mut stmt = db.conn.prepare(
        "SELECT t.id, u.name, t.label, t.created_at, t.last_used_at, t.revoked_at
         FROM tokens t LEFT JOIN users u ON u.id = t.user_id
         WHERE CAST(?1 AS TEXT) IS NULL OR u.name = ?1 ORDER BY t.id",
    )?;
    let it = stmt.query_map([user], |r| {
        let user: Option<String> = r.get(1)?;
        Ok(TokenInfo {
            id: r.get(0)?,
            kind: principal::token_kind(user.as_deref()),
            user,
            label: r.get(2)?,
            created_at: r.get(3)?,
            last_used_at: r.get(4)?,
            revoked: r.get::<_, Option<i64>>(5)?.is_some(),
        })
    })?;
    rows(it)
}

/// Revokes a token; `user` limits it to that user's own tokens.
pub fn revoke_token(db: Db<'_>, id: &str, user: Option<&str>) -> Result<()> {
    let n = db.conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL
         AND (CAST(?3 AS TEXT) IS NULL OR user_id = (SELECT id FROM users WHERE name = ?3))",
        params![time::now_ms(), id, user],
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
        let app = create_token(db, None, "host").unwrap();
        let alice = create_token(db, Some("alice"), "").unwrap();
        assert_eq!(authenticate_token(db, &app.token).unwrap(), Some(Principal::App));
        assert_eq!(authenticate_token(db, &alice.token).unwrap(), Some(Principal::User("alice".into())));
        assert_eq!(authenticate_token(db, "qsm_nope").unwrap(), None);
        let stored: String =
            db.conn.query_row("SELECT group_concat(hash) FROM tokens", params![], |r| r.get(0)).unwrap();
        assert!(!stored.contains(&app.token[4..]));
        assert!(revoke_token(db, &alice.id, Some("bob")).is_err(), "not bob's");
        revoke_token(db, &alice.id, Some("alice")).unwrap();
        assert_eq!(authenticate_token(db, &alice.token).unwrap(), None);
        assert_eq!(list_tokens(db, None).unwrap().len(), 2);
        assert!(list_tokens(db, Some("alice")).unwrap()[0].revoked);
    }
}
