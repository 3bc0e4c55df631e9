//! Users of the host application, known here by name (the `REMOTE_USER` or the host's user id).

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::Invalid;

/// Names are what the host application and the web server call the user: 1–128 characters of
/// letters, digits and `. _ @ + -`.
pub fn check_name(field: &'static str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(field, "must be 1–128 characters of letters, digits and . _ @ + -"))
    }
}

/// The user's row id, creating the user on first sight.
pub fn ensure(conn: &Connection, name: &str) -> Result<i64> {
    if let Some(id) = find(conn, name)? {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO users (name, created_at) VALUES (?1, ?2)")?
        .execute(params![name, crate::clock::now_ms()])?;
    Ok(conn.last_insert_rowid())
}

pub fn find(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn.prepare_cached("SELECT id FROM users WHERE name = ?1")?.query_row([name], |r| r.get(0)).optional()?)
}
