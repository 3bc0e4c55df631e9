//! The SQLite database: opening it with the pragmas every process needs, applying the `sql/`
//! migrations by `PRAGMA user_version`, and recognising "busy" so callers can answer 503.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

/// Migrations in order; the number in each name is the `user_version` it leaves behind.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_initial", include_str!("../sql/001_initial.sql")),
    ("002_login_links", include_str!("../sql/002_login_links.sql")),
    ("003_endpoint_stats", include_str!("../sql/003_endpoint_stats.sql")),
];

/// How long a writer waits for another before SQLite reports busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating if needed) the database and brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = open_unmigrated(path)?;
    migrate(&conn).with_context(|| format!("cannot migrate the database {}", path.display()))?;
    Ok(conn)
}

/// Copies WAL content into the database without blocking readers or writers.
pub fn checkpoint(conn: &Connection) -> Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
    Ok(())
}

/// Opens without migrating: for `doctor`-style checks that must not change anything.
pub fn open_unmigrated(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| {
        format!(
            "cannot open the database {} (does its directory exist and is it writable? see WEBHOOKS_DATABASE)",
            path.display()
        )
    })?;
    configure(&conn).with_context(|| format!("cannot open the database {}", path.display()))?;
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets CGI intakes write while a dispatcher reads; NORMAL is durable across process
    // crashes in WAL mode (only an OS crash can lose the last commits).
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Every CGI request is a short-lived process, usually the only connection: without this,
    // SQLite checkpoints and deletes the WAL at each close (four fsyncs per request). The WAL is
    // checkpointed instead by SQLite's auto-checkpoint and at the end of each dispatcher run.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

pub fn schema_version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

pub fn latest_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// Applies pending migrations in one immediate transaction, re-reading the version inside it so
/// that two processes starting at once apply each migration exactly once.
pub fn migrate(conn: &Connection) -> Result<()> {
    if schema_version(conn)? >= latest_version() {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match apply_pending(conn) {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    Ok(())
}

fn apply_pending(conn: &Connection) -> Result<()> {
    let current = schema_version(conn)?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = i as u32 + 1;
        if version > current {
            conn.execute_batch(sql).with_context(|| format!("migration sql/{name}.sql failed"))?;
            conn.pragma_update(None, "user_version", version)?;
        }
    }
    Ok(())
}

/// Starts an immediate (write-locking) transaction: every multi-statement write goes through one.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// True when the error (anywhere in its chain) is SQLite reporting the database busy or locked.
pub fn is_busy(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy || e.code == ErrorCode::DatabaseLocked
        )
    })
}

#[cfg(test)]
pub fn memory() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    migrate(&conn).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_a_listed_migration_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|(n, _)| format!("{n}.sql")).collect();
        assert_eq!(files, listed);
        for (i, name) in listed.iter().enumerate() {
            assert!(name.starts_with(&format!("{:03}_", i + 1)), "{name} out of order");
        }
    }

    #[test]
    fn migrate_is_idempotent_and_sets_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), latest_version());
        drop(conn);
        let conn = open(&path).unwrap();
        assert_eq!(schema_version(&conn).unwrap(), latest_version());
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
    }
}
