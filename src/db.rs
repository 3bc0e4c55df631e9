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
    ("004_observations", include_str!("../sql/004_observations.sql")),
    ("005_bounded_counts", include_str!("../sql/005_bounded_counts.sql")),
    ("006_observation_counts", include_str!("../sql/006_observation_counts.sql")),
];

/// How long a writer waits for another before SQLite reports busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens (creating if needed) the database and brings its schema up to date.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = open_unmigrated(path)?;
    migrate(&conn).with_context(|| format!("cannot migrate the database {}", path.display()))?;
    Ok(conn)
}

/// Writes a consistent copy of the live database to `to` (SQLite's `VACUUM INTO`: safe while
/// the CGI and the dispatcher keep writing). `to` must not exist yet.
pub fn backup(conn: &Connection, to: &Path) -> Result<()> {
    if to.exists() {
        anyhow::bail!("{} already exists: choose a new file name", to.display());
    }
    conn.execute("VACUUM INTO ?1", [to.to_string_lossy()])
        .with_context(|| format!("cannot write the backup {}", to.display()))?;
    Ok(())
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
    // SQLite checkpoints the WAL when the last connection closes. That is kept on purpose:
    // without it (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE) every short-lived CGI process had to
    // recover an ever larger WAL on open — measured 10-20 ms per request instead of 5 ms.
    // Keeping the files instead (SQLITE_FCNTL_PERSIST_WAL, truncated at that checkpoint) was
    // measured too and made no difference, so they are created and removed as SQLite likes.
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
    let version = schema_version(conn)?;
    if version > latest_version() {
        anyhow::bail!(
            "the database has schema version {version}, newer than this program knows ({}): \
             run the newer program, or restore the backup taken before the upgrade",
            latest_version()
        );
    }
    if version == latest_version() {
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
    fn a_database_newer_than_the_program_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = open(&path).unwrap();
        conn.pragma_update(None, "user_version", latest_version() + 1).unwrap();
        drop(conn);
        let err = open(&path).unwrap_err();
        assert!(format!("{err:#}").contains("newer than this program"), "{err:#}");
    }

    #[test]
    fn backups_are_consistent_copies() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("w.db")).unwrap();
        conn.execute("INSERT INTO users (name, created_at) VALUES ('alice', 0)", []).unwrap();
        let copy = dir.path().join("copy.db");
        backup(&conn, &copy).unwrap();
        assert!(backup(&conn, &copy).is_err(), "never overwrites");
        let restored = open(&copy).unwrap();
        let n: i64 = restored.query_row("SELECT count(*) FROM users", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
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
