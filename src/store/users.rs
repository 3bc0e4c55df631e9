//! `users`: a row per user name, made on first sight.

use rusqlite::{params, OptionalExtension};

use super::Db;
use crate::model::{clock, Result};

/// The user's row id, creating the user on first sight.
pub fn ensure(db: Db<'_>, name: &str) -> Result<i64> {
    if let Some(id) = find(db, name)? {
        return Ok(id);
    }
    db.conn
        .prepare_cached("INSERT INTO users (name, created_at) VALUES (?1, ?2)")?
        .execute(params![name, clock::now_ms()])?;
    Ok(db.conn.last_insert_rowid())
}

pub fn find(db: Db<'_>, name: &str) -> Result<Option<i64>> {
    Ok(db.conn.prepare_cached("SELECT id FROM users WHERE name = ?1")?.query_row([name], |r| r.get(0)).optional()?)
}
