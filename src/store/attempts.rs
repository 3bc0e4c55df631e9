//! `attempts`: one append-only row per request made for a delivery.

use rusqlite::params;

use super::{rows, Db};
use crate::model::delivery::{Attempt, Next, Outcome};
use crate::model::{clock, Result};

/// What one attempt did, to record.
#[derive(Debug)]
pub struct Attempted<'a> {
    pub delivery_id: &'a str,
    pub attempt: u32,
    pub run_id: &'a str,
    pub started_at: i64,
    pub outcome: &'a Outcome,
    /// The request body, kept only when `WEBHOOKS_LOG_BODIES` asks for it.
    pub request_body: Option<&'a str>,
    /// The decision (`model::delivery::decide`).
    pub next: Next,
}

/// Appends the attempt (the dispatcher calls it through `claim::record`).
pub(super) fn insert(db: Db<'_>, a: &Attempted<'_>) -> Result<()> {
    let o = a.outcome;
    db.conn
        .prepare_cached(
            "INSERT INTO attempts (delivery_id, attempt, run_id, started_at, duration_ms, status_code,
                                   error_code, error, response_snippet, request_body, response_body)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            a.delivery_id,
            a.attempt,
            a.run_id,
            a.started_at,
            o.duration_ms,
            o.status_code,
            o.error_code,
            o.error,
            o.snippet,
            a.request_body,
            o.response_body,
        ])?;
    Ok(())
}

/// Every attempt of a delivery, in order.
pub fn list(db: Db<'_>, delivery_id: &str) -> Result<Vec<Attempt>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT attempt, started_at, duration_ms, status_code, error_code, error, response_snippet,
                request_body, response_body
         FROM attempts WHERE delivery_id = ?1 ORDER BY attempt, id",
    )?;
    let found = rows(stmt.query_map([delivery_id], |r| {
        Ok(Attempt {
            attempt: r.get(0)?,
            started_at: clock::rfc3339(r.get(1)?),
            duration_ms: r.get(2)?,
            status_code: r.get(3)?,
            error_code: r.get(4)?,
            error: r.get(5)?,
            response_snippet: r.get(6)?,
            request_body: r.get(7)?,
            response_body: r.get(8)?,
        })
    })?)?;
    Ok(found)
}
