//! SQLite's side of the store: opening the file (never creating it but through
//! [`Store::create`](super::Store::create)) with the pragmas every process needs, the `sql/`
//! migrations by `PRAGMA user_version`, immediate transactions, `VACUUM INTO` backups and the
//! WAL's checkpoints; and the marker `migrate-store` leaves in a file it moved away.

use std::path::Path;

use rusqlite::Connection;

use super::engine::{Capabilities, Engine, Opened};
use super::queue::Statements;
use super::sql::{Conn, SqlError};
use super::{file_identity, BUSY_TIMEOUT};
use crate::model::{Error, Result};

/// The SQLite engine.
pub struct Sqlite;

pub static SQLITE: Sqlite = Sqlite;

/// The `user_version` of an installation that `migrate-store` moved to PostgreSQL.
pub const MOVED: u32 = 1_000_000;

impl Engine for Sqlite {
    /// One writer at a time: a run's claim and record are one immediate transaction.
    fn capabilities(&self) -> Capabilities {
        Capabilities { concurrent_claims: false }
    }

    fn begin(&self, _exclusive: bool) -> &'static str {
        "BEGIN IMMEDIATE"
    }

    /// Moved to PostgreSQL while this process had the file open (`migrate-store` marks it inside
    /// the write lock this transaction now holds): nothing may land here.
    fn began(&self, conn: &Conn) -> Result<()> {
        if schema_version(sqlite(conn))? == MOVED {
            return Err(moved());
        }
        Ok(())
    }

    fn migrate(&self, conn: &mut Conn) -> Result<()> {
        let c = sqlite(conn);
        if schema_version(c)? == MOVED {
            return Err(moved());
        }
        migrate(c)
    }

    fn schema_version(&self, conn: &Conn) -> Result<u32> {
        schema_version(sqlite(conn))
    }

    fn latest_version(&self) -> u32 {
        latest_version()
    }

    /// SQLite's clock is this machine's.
    fn clock_skew(&self, _conn: &Conn) -> Result<i64> {
        Ok(0)
    }

    /// `VACUUM INTO`: safe while the CGI and the dispatcher keep writing.
    fn backup(&self, conn: &Conn, to: &Path) -> Result<()> {
        if to.exists() {
            return Err(Error::invalid("backup", format!("{} already exists: choose a new file name", to.display())));
        }
        sqlite(conn)
            .execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .map_err(|e| Error::Internal(format!("cannot write the backup {}: {e}", to.display())))?;
        Ok(())
    }

    /// A dispatcher rewrites some pages commit after commit (the endpoints' rows and hourly
    /// counters, the lease index, the growing ends of the status and attempt indexes):
    /// checkpointing a fourth as often copies each of those once for four times the commits,
    /// with a fourth of the fsyncs (measured: 163 against 43 fsyncs, 114,550 against 107,816
    /// writes for 20,000 deliveries). Most of the due index's pages are written at random places
    /// and gain little. SQLite's default is 1,000 pages.
    fn checkpoint_every(&self, conn: &Conn, pages: u32) -> Result<()> {
        sqlite(conn).pragma_update(None, "wal_autocheckpoint", pages).map_err(SqlError::from)?;
        Ok(())
    }

    fn checkpoint(&self, conn: &Conn) -> Result<()> {
        sqlite(conn).query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(SqlError::from)?;
        Ok(())
    }

    fn queue(&self) -> &'static dyn Statements {
        &super::queue::sqlite::STATEMENTS
    }
}

/// SQLite's own calls (pragmas, migrations) fail as any statement does.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        SqlError::from(e).into()
    }
}

fn sqlite(conn: &Conn) -> &Connection {
    match conn {
        Conn::Sqlite(c) => c,
        Conn::Postgres(_) => unreachable!("a SQLite operation on PostgreSQL"),
    }
}

#[cfg(test)]
impl super::Store {
    /// The SQLite connection underneath, for unit tests that set up rows or read plans.
    pub(crate) fn sqlite(&self) -> &Connection {
        sqlite(&self.conn)
    }
}

/// Opens the file at `path`, which must exist: a file made afresh would answer as a new, empty
/// installation. It is [`Error::Unavailable`] naming the path when it is not there.
pub(super) fn open(path: &Path) -> Result<Opened> {
    let missing = || {
        Error::Unavailable(format!(
            "the database {} does not exist (moved or deleted?); restore it, or run `webhooks init` to create a new, empty one (WEBHOOKS_DATABASE)",
            path.display()
        ))
    };
    let identity = file_identity(path).ok_or_else(missing)?;
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
        | rusqlite::OpenFlags::SQLITE_OPEN_URI
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| match file_identity(path) {
        None => missing(),
        Some(_) => Error::Misconfigured(format!(
            "cannot open the database {} (is it writable by this user? see WEBHOOKS_DATABASE): {e}",
            path.display()
        )),
    })?;
    configure(&conn).map_err(|e| Error::Misconfigured(format!("cannot open the database {}: {e}", path.display())))?;
    Ok(Opened { conn: Conn::Sqlite(conn), engine: &SQLITE, file: Some((path.to_path_buf(), identity)) })
}

/// A bare connection to the file, for tests and tools that look at the tables themselves.
pub(super) fn connect(path: &Path) -> Result<Conn> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(Conn::Sqlite(c))
}

/// A migrated in-memory database, for unit tests.
pub(super) fn memory() -> Opened {
    let conn = Connection::open_in_memory().expect("an in-memory database opens");
    conn.pragma_update(None, "foreign_keys", "ON").expect("pragma");
    migrate(&conn).expect("migrations apply");
    Opened { conn: Conn::Sqlite(conn), engine: &SQLITE, file: None }
}

/// Marks the file as moved (`migrate-store`, inside the write lock of its copy): every later
/// transaction on it is refused, naming where the data went.
pub(super) fn mark_moved(conn: &Conn) -> Result<()> {
    sqlite(conn).pragma_update(None, "user_version", MOVED)?;
    Ok(())
}

fn moved() -> Error {
    Error::Unavailable(
        "this SQLite database was moved to PostgreSQL by `webhooks migrate-store`: set WEBHOOKS_DATABASE \
         in .env to the postgres:// URL it was moved to"
            .to_string(),
    )
}

/// Migrations in order; the number in each name is the `user_version` it leaves behind.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_initial", include_str!("../../sql/001_initial.sql")),
    ("002_login_links", include_str!("../../sql/002_login_links.sql")),
    ("003_endpoint_stats", include_str!("../../sql/003_endpoint_stats.sql")),
    ("004_observations", include_str!("../../sql/004_observations.sql")),
    ("005_bounded_counts", include_str!("../../sql/005_bounded_counts.sql")),
    ("006_observation_counts", include_str!("../../sql/006_observation_counts.sql")),
    ("007_endpoint_failure", include_str!("../../sql/007_endpoint_failure.sql")),
    ("008_inbound", include_str!("../../sql/008_inbound.sql")),
    ("009_key_misses", include_str!("../../sql/009_key_misses.sql")),
    ("010_due_by_user", include_str!("../../sql/010_due_by_user.sql")),
    ("011_inbound_edges", include_str!("../../sql/011_inbound_edges.sql")),
    ("012_queue", include_str!("../../sql/012_queue.sql")),
    ("013_pacing", include_str!("../../sql/013_pacing.sql")),
    ("014_woocommerce", include_str!("../../sql/014_woocommerce.sql")),
    ("015_portal", include_str!("../../sql/015_portal.sql")),
    ("016_metrics", include_str!("../../sql/016_metrics.sql")),
];

/// The first line of a migration that rebuilds a table others refer to: it runs with foreign
/// keys off (SQLite's documented way, else dropping the old table would cascade), and is
/// checked with `foreign_key_check` before it commits.
const FOREIGN_KEYS_OFF: &str = "-- requires: foreign_keys off";

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

fn schema_version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |r| r.get(0))?)
}

fn latest_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// Applies pending migrations in one immediate transaction, re-reading the version inside it so
/// that two processes starting at once apply each migration exactly once.
fn migrate(conn: &Connection) -> Result<()> {
    let version = schema_version(conn)?;
    if version > latest_version() {
        return Err(Error::Misconfigured(format!(
            "the database has schema version {version}, newer than this program knows ({}): \
             run the newer program, or restore the backup taken before the upgrade",
            latest_version()
        )));
    }
    if version == latest_version() {
        return Ok(());
    }
    let rebuilds = MIGRATIONS[version as usize..].iter().any(|(_, sql)| sql.starts_with(FOREIGN_KEYS_OFF));
    let fk_on: bool = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
    if rebuilds {
        // A no-op inside a transaction: it must come before BEGIN.
        conn.pragma_update(None, "foreign_keys", "OFF")?;
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let applied = apply_pending(conn).and_then(|()| {
        let broken: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| r.get(0))?;
        if broken > 0 {
            return Err(Error::Internal(format!("the migration left {broken} rows that break a foreign key")));
        }
        Ok(())
    });
    let result = match applied {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Error::from),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    };
    if rebuilds && fk_on {
        conn.pragma_update(None, "foreign_keys", "ON")?;
    }
    result
}

fn apply_pending(conn: &Connection) -> Result<()> {
    let current = schema_version(conn)?;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let version = i as u32 + 1;
        if version > current {
            conn.execute_batch(sql).map_err(|e| Error::Internal(format!("migration sql/{name}.sql failed: {e}")))?;
            conn.pragma_update(None, "user_version", version)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::location::Location;
    use crate::store::{principals, Store};

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
        let store = Store::create(&Location::File(path.clone())).unwrap();
        store.sqlite().pragma_update(None, "user_version", latest_version() + 1).unwrap();
        drop(store);
        let err = Store::open(&Location::File(path.clone())).err().unwrap();
        assert!(err.to_string().contains("newer than this program"), "{err}");
    }

    #[test]
    fn a_dispatcher_checkpoints_its_wal_a_fourth_as_often() {
        let dir = tempfile::tempdir().unwrap();
        let frames_after_1500_pages = |every: Option<u32>| -> i64 {
            let path = dir.path().join(format!("w{}.db", every.unwrap_or(0)));
            let store = Store::create(&Location::File(path)).unwrap();
            if let Some(pages) = every {
                store.checkpoint_every(pages).unwrap();
            }
            let c = store.sqlite();
            c.execute_batch("CREATE TABLE t (b BLOB)").unwrap();
            for _ in 0..30 {
                c.execute_batch(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
                     INSERT INTO t SELECT zeroblob(4000) FROM n",
                )
                .unwrap();
            }
            // (busy, frames in the WAL, frames checkpointed)
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1)).unwrap()
        };
        let default = frames_after_1500_pages(None);
        let dispatcher = frames_after_1500_pages(Some(4_000));
        assert!(default < 1_000, "SQLite's default restarts the WAL past 1,000 pages: {default}");
        assert!(dispatcher > 1_400, "every page written since the start is still in the WAL: {dispatcher}");
    }

    #[test]
    fn backups_are_consistent_copies() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(&Location::File(dir.path().join("w.db"))).unwrap();
        principals::ensure(store.db(), "alice").unwrap();
        let copy = dir.path().join("copy.db");
        store.backup(&copy).unwrap();
        assert!(store.backup(&copy).is_err(), "never overwrites");
        let restored = Store::open(&Location::File(copy.clone())).unwrap();
        assert!(principals::find(restored.db(), "alice").unwrap().is_some());
    }

    #[test]
    fn the_deliveries_rebuild_keeps_every_row_and_its_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        {
            // A database of schema 6, with a delivery that has an attempt.
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            for (i, (_, sql)) in MIGRATIONS[..6].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", i + 1).unwrap();
            }
            conn.execute_batch(
                "INSERT INTO users (id, name, created_at) VALUES (1, 'alice', 0);
                 INSERT INTO endpoints (id, user_id, url, created_at, updated_at, active, disabled_reason)
                     VALUES ('ep_1', 1, 'https://x/', 0, 5, 0, 'the receiver answered 410 Gone');
                 INSERT INTO events (id, user_id, type, request_hash, payload, created_at)
                     VALUES ('evt_1', 1, 'email.received', 'h', '{}', 0);
                 INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, attempts, created_at)
                     VALUES ('dlv_1', 'evt_1', 'ep_1', 1, 'failed', 1, 0);
                 INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms) VALUES ('dlv_1', 1, 0, 3);",
            )
            .unwrap();
        }
        let store = Store::create(&Location::File(path.clone())).unwrap();
        let count = |sql: &str| -> i64 { store.sqlite().query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(count("SELECT count(*) FROM attempts"), 1, "no cascade from the rebuild");
        // The failed delivery waits in the queue since sql/012_queue.sql; its record says pending.
        assert_eq!(
            count("SELECT count(*) FROM queue WHERE delivery_id = 'dlv_1' AND status = 'failed' AND attempts = 1"),
            1
        );
        assert_eq!(count("SELECT count(*) FROM deliveries WHERE status = 'pending'"), 1);
        assert_eq!(count("SELECT count(*) FROM endpoints WHERE disabled_kind = 'gone' AND disabled_at = 5"), 1);
        store
            .sqlite()
            .execute_batch(
                "INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, created_at)
                 VALUES ('dlv_2', 'evt_1', 'ep_1', 1, 'held', 0)",
            )
            .unwrap();
        let fk: i64 = store.sqlite().pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert_eq!(fk, 1, "foreign keys are on again");
        store.sqlite().execute_batch("DELETE FROM deliveries WHERE id = 'dlv_1'").unwrap();
        assert_eq!(count("SELECT count(*) FROM attempts"), 0, "and the attempts still follow their delivery");
    }

    #[test]
    fn migrate_is_idempotent_and_sets_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let store = Store::create(&Location::File(path.clone())).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        drop(store);
        let store = Store::open(&Location::File(path.clone())).unwrap();
        let conn = store.sqlite();
        assert_eq!(schema_version(conn).unwrap(), latest_version());
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert_eq!(fk, 1);
    }
}
