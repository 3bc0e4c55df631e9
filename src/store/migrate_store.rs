//! `webhooks migrate-store`: a SQLite installation copied into an empty PostgreSQL database,
//! table by table, every row and column as it is (ids, sealed secrets, payload bytes, delivery
//! states, the queue with its leases, attempts).
//!
//! The copy is consistent and complete: it runs inside the SQLite database's write lock, so no
//! intake, page or dispatcher writes meanwhile (they wait, or answer 503 and are retried), and
//! in the same transaction the SQLite file is marked as moved (`sqlite::MOVED` as its `user_version`),
//! so that every later write to it is refused with a message naming the new store, instead of
//! landing where nobody reads any more. The PostgreSQL side is written in one transaction: a
//! copy that fails leaves it empty, and the SQLite file unmarked.

use serde::Serialize;

use super::sql::{Conn, Value};
use super::{sqlite, Store};
use crate::model::{Error, Result};

/// The tables in an order that satisfies their foreign keys, each with the columns to copy. The
/// tables that order ties by SQLite's `rowid` copy it into PostgreSQL's `rowid` column.
pub const TABLES: &[(&str, bool)] = &[
    ("users", false),
    ("tokens", false),
    ("endpoints", true),
    ("endpoint_keys", true),
    ("endpoint_pacing", false),
    ("events", false),
    ("deliveries", false),
    ("queue", false),
    ("attempts", false),
    ("runs", false),
    ("login_links_used", false),
    ("endpoint_stats", false),
    ("observations", false),
    ("notices", false),
    ("sources", false),
    ("source_keys", true),
    ("source_public_keys", false),
    ("inbound_requests", false),
    ("source_hours", false),
    ("source_key_misses", false),
    ("source_key_fetches", false),
    ("sessions", false),
    ("session_revocations", false),
    ("metric_counters", false),
    // Not copied but counted again from the queue copied before it (its triggers counted the
    // copy's rows already): `recount_queue`.
    ("queue_size", false),
];

/// Identity columns whose sequences must continue after the copied rows.
const IDENTITIES: &[(&str, &str)] = &[
    ("users", "id"),
    ("attempts", "id"),
    ("endpoints", "rowid"),
    ("endpoint_keys", "rowid"),
    ("source_keys", "rowid"),
];

/// Rows copied, per table, in copy order.
#[derive(Debug, Serialize)]
pub struct Copied {
    pub tables: Vec<(String, i64)>,
}

/// Copies `from` (SQLite) into `to` (PostgreSQL, migrated and empty); `target` names it in the
/// marker's message.
pub fn copy(from: &mut Store, to: &mut Store) -> Result<Copied> {
    if from.file.is_none() || to.file.is_some() {
        return Err(Error::invalid("to", "migrate-store copies a SQLite installation into PostgreSQL"));
    }
    let occupied: Vec<String> = TABLES
        .iter()
        .filter_map(|(t, _)| {
            let n = count(&to.conn, t);
            match n {
                Ok(0) => None,
                Ok(n) => Some(Ok(format!("{t}: {n} rows"))),
                Err(e) => Some(Err(e)),
            }
        })
        .collect::<Result<_>>()?;
    if !occupied.is_empty() {
        return Err(Error::conflict(
            "not_empty",
            format!(
                "the PostgreSQL database is not empty ({}): migrate-store copies into an empty database only \
                 (was this installation moved already? then set WEBHOOKS_DATABASE to it)",
                occupied.join(", ")
            ),
        ));
    }
    let target = to;
    from.write(|src| {
        let mut copied = Vec::new();
        target.work(|dst| {
            for (table, rowid) in TABLES {
                let n = if *table == "queue_size" {
                    recount_queue(dst.conn)?
                } else {
                    copy_table(src.conn, dst.conn, table, *rowid)?
                };
                copied.push((table.to_string(), n));
            }
            for (table, column) in IDENTITIES {
                dst.conn.execute(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                                       coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
                    ),
                    super::params![],
                )?;
            }
            // The copy must hold every row: counted again on both sides before either commits.
            for (table, n) in &copied {
                let there = count(dst.conn, table)?;
                if there != *n {
                    return Err(Error::Internal(format!("{table}: copied {n} rows but PostgreSQL holds {there}")));
                }
            }
            Ok(())
        })?;
        sqlite::mark_moved(src.conn)?;
        Ok(Copied { tables: copied })
    })
}

/// The queue's size, counted once from the copied rows into one row.
fn recount_queue(conn: &Conn) -> Result<i64> {
    conn.execute("DELETE FROM queue_size", super::params![])?;
    conn.execute("INSERT INTO queue_size (shard, n) SELECT 0, count(*) FROM queue", super::params![])?;
    Ok(1)
}

fn count(conn: &Conn, table: &str) -> Result<i64> {
    Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), super::params![], |r| r.get(0))?)
}

/// Tables SQLite keeps without a rowid (hourly counters, keys, the queue), each copied in one
/// read that streams its rows (as the pages do), so memory stays flat all the same.
const WITHOUT_ROWID: &[&str] = &[
    "endpoint_stats",
    "observations",
    "source_public_keys",
    "source_hours",
    "source_key_misses",
    "queue",
    "endpoint_pacing",
    "metric_counters",
];

/// Rows read from SQLite at a time, so that memory stays flat however large the tables are.
const PAGE: i64 = 2_000;

/// Copies one table's rows, page by page in rowid order; returns how many.
fn copy_table(src: &Conn, dst: &Conn, table: &str, rowid: bool) -> Result<i64> {
    let mut columns: Vec<String> = src
        .prepare(&format!("SELECT name FROM pragma_table_info('{table}') ORDER BY cid"))?
        .query_map(super::params![], |r| r.get(0))?
        .collect::<super::sql::Result<_>>()?;
    if rowid {
        columns.insert(0, "rowid".to_string());
    }
    let list = columns.join(", ");
    let marks: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    let insert = format!("INSERT INTO {table} ({list}) VALUES ({})", marks.join(", "));
    let width = columns.len();
    let paged = !WITHOUT_ROWID.contains(&table);
    let select = if paged {
        format!("SELECT rowid, {list} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT ?2")
    } else {
        format!("SELECT 0, {list} FROM {table}")
    };
    let mut n = 0i64;
    let mut after = i64::MIN;
    loop {
        let mut read = src.prepare(&select)?;
        let rows = if paged {
            read.query_map([after, PAGE], |r| row(r, width))?
        } else {
            read.query_map([], |r| row(r, width))?
        };
        let mut stmt = dst.prepare_cached(&insert)?;
        let mut got = 0;
        for r in rows {
            let (key, values) = r?;
            stmt.execute(values)?;
            after = key;
            got += 1;
        }
        n += got;
        if !paged || got < PAGE {
            return Ok(n);
        }
    }
}

/// A row's key (its rowid) and its `width` values.
fn row(r: &super::sql::Row<'_>, width: usize) -> super::sql::Result<(i64, Vec<Value<'static>>)> {
    let key = r.get(0)?;
    let values = (1..=width).map(|i| r.get::<_, Value<'static>>(i)).collect::<super::sql::Result<Vec<_>>>()?;
    Ok((key, values))
}
