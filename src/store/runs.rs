//! `runs`: one heartbeat row per dispatcher run, with its summary once it ends.

use rusqlite::params;

use super::Db;
use crate::model::Result;

/// Notes that run `id` started at `at`.
pub fn start(db: Db<'_>, id: &str, at: i64) -> Result<()> {
    db.conn.execute("INSERT INTO runs (id, started_at) VALUES (?1, ?2)", params![id, at])?;
    Ok(())
}

/// Notes that run `id` ended, with its summary (JSON).
pub fn finish(db: Db<'_>, id: &str, at: i64, summary: &str) -> Result<()> {
    db.conn.execute("UPDATE runs SET finished_at = ?1, summary = ?2 WHERE id = ?3", params![at, summary, id])?;
    Ok(())
}

/// When the latest run started, if any ever did.
pub fn last_started(db: Db<'_>) -> Result<Option<i64>> {
    Ok(db.conn.query_row("SELECT max(started_at) FROM runs", [], |r| r.get(0))?)
}
