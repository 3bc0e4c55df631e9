//! Attempts: one append-only row per request made for a delivery, summarising what happened.

use anyhow::Result;
use rusqlite::{params, Connection};
use serde::Serialize;

use crate::clock;
use crate::send::Outcome;

#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: u32,
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error_code: Option<String>,
    pub error: Option<String>,
    pub response_snippet: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// Appends the attempt; the request body is kept only when `WEBHOOKS_LOG_BODIES` asked for it.
pub fn insert(
    conn: &Connection,
    delivery_id: &str,
    attempt: u32,
    run_id: &str,
    started_at: i64,
    outcome: &Outcome,
    request_body: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO attempts (delivery_id, attempt, run_id, started_at, duration_ms, status_code,
                               error_code, error, response_snippet, request_body, response_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        delivery_id,
        attempt,
        run_id,
        started_at,
        outcome.duration_ms,
        outcome.status_code,
        outcome.error_code,
        outcome.error,
        outcome.snippet,
        request_body,
        outcome.response_body,
    ])?;
    Ok(())
}

pub fn list(conn: &Connection, delivery_id: &str) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempt, started_at, duration_ms, status_code, error_code, error, response_snippet,
                request_body, response_body
         FROM attempts WHERE delivery_id = ?1 ORDER BY attempt, id",
    )?;
    let rows = stmt.query_map([delivery_id], |r| {
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
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
