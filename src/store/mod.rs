//! The store: every SQL statement of the product, behind typed operations. Nothing outside this
//! folder names `rusqlite` or writes SQL.
//!
//! - [`Store`] owns one connection: opening it with the pragmas every process needs, applying the
//!   `sql/` migrations by `PRAGMA user_version`, and [`Store::write`], one immediate transaction.
//! - [`Db`] is what every operation takes: a connection, or the transaction of a `write`. The
//!   operations live in one module per table or aggregate: `principals` (users, tokens),
//!   `endpoints` (with their keys), `events` (intake's fan-out), `deliveries` (the log, with
//!   attempts), `queue` (the dispatcher's claim and record, run heartbeats), `health`,
//!   `retention`, `sessions` (used login links), `observations`. Times (`model::time::Time`),
//!   delivery statuses and failure codes cross as typed values, ids as their strings (`evt_…`);
//!   errors as `model::Error` (a locked database is `Error::Busy`).
//!
//! A second backend (PostgreSQL) implements the same operations in a sibling module and makes
//! `Db` choose between them; `web/`, `cli/` and `outbound/` do not change. Uses `model` only.

use std::cell::RefCell;
use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::model::delivery::FailureCode;
use crate::model::health::COUNT_CAP;
pub use crate::model::location::Location;
use crate::model::{Error, Result};

pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod health;
pub mod inbound;
pub mod moving;
pub mod notices;
pub mod observations;
pub mod postgres;
pub mod principals;
pub mod queue;
pub mod retention;
pub mod sessions;
pub mod sources;
pub mod sql;

use sql::{params, Conn};

/// One open database.
pub struct Store {
    conn: Conn,
    /// SQLite: the file's path and identity (device, inode) when it was opened, to tell whether
    /// what this process wrote is still in the file the path names ([`Store::check_in_place`]).
    file: Option<(std::path::PathBuf, (u64, u64))>,
}

/// The connection (or the transaction) an operation runs on.
#[derive(Clone, Copy)]
pub struct Db<'a> {
    conn: &'a Conn,
}

impl Db<'_> {
    /// Whether this is PostgreSQL (for the few statements said differently there).
    pub fn is_postgres(&self) -> bool {
        self.conn.is_postgres()
    }
}

impl Store {
    /// Creates the SQLite file when it is missing (owner-only, mode 0600, its directory too),
    /// then opens and migrates it. Only `webhooks init` and `serve`'s first run call this: every
    /// other entry point answers a missing file as unavailable ([`Store::open`]), since a file
    /// made afresh would answer as a new, empty installation.
    pub fn create(at: &Location) -> Result<Store> {
        if let Location::File(path) = at {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Misconfigured(format!("cannot create the directory {}: {e}", dir.display())))?;
            }
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(Error::Misconfigured(format!("cannot create the database {}: {e}", path.display())))
                }
            }
        }
        Store::open(at)
    }

    /// Opens an existing database and brings its schema up to date. A SQLite file that is not
    /// there is [`Error::Unavailable`] naming the path (moved away, or `init` not run yet): it is
    /// never created here.
    pub fn open(at: &Location) -> Result<Store> {
        let mut store = Store::open_unmigrated(at)?;
        if let Conn::Sqlite(c) = &store.conn {
            if schema_version(c)? == moving::MOVED {
                return Err(moved());
            }
        }
        let migrated = match &mut store.conn {
            Conn::Sqlite(c) => migrate(c),
            Conn::Postgres(c) => postgres::migrate(c.get_mut()),
        };
        migrated.map_err(|e| match e {
            Error::Internal(m) => Error::Internal(format!("cannot migrate the database {at}: {m}")),
            other => other,
        })?;
        Ok(store)
    }

    /// Opens without migrating: for `doctor`-style checks that must not change anything.
    pub fn open_unmigrated(at: &Location) -> Result<Store> {
        let path = match at {
            Location::File(p) => p,
            Location::Postgres(url) => {
                let client = postgres::connect(url)?;
                return Ok(Store { conn: Conn::Postgres(Box::new(RefCell::new(client))), file: None });
            }
        };
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
        configure(&conn)
            .map_err(|e| Error::Misconfigured(format!("cannot open the database {}: {e}", path.display())))?;
        Ok(Store { conn: Conn::Sqlite(conn), file: Some((path.clone(), identity)) })
    }

    /// Whether what this process wrote is in the file that the configured path names now. A
    /// SQLite file moved or deleted while a request ran keeps taking its writes through the open
    /// handle, and they are lost with it: a request must not be acknowledged then (503 instead).
    pub fn check_in_place(&self) -> Result<()> {
        let Some((path, identity)) = &self.file else { return Ok(()) };
        if file_identity(path) == Some(*identity) {
            return Ok(());
        }
        Err(Error::Unavailable(format!(
            "the database {} was moved or deleted while this request ran; what it wrote is not in the file WEBHOOKS_DATABASE names",
            path.display()
        )))
    }

    /// A migrated in-memory database, for unit tests.
    pub fn memory() -> Store {
        let conn = Connection::open_in_memory().expect("an in-memory database opens");
        conn.pragma_update(None, "foreign_keys", "ON").expect("pragma");
        migrate(&conn).expect("migrations apply");
        Store { conn: Conn::Sqlite(conn), file: None }
    }

    pub fn is_postgres(&self) -> bool {
        self.conn.is_postgres()
    }

    /// The database's clock minus this machine's, in ms: 0 for SQLite, whose clock is this
    /// machine's. Dispatchers add it to their own clock so that leases on PostgreSQL are in
    /// the database's time, the same for every machine.
    pub fn clock_skew(&self) -> Result<i64> {
        match &self.conn {
            Conn::Sqlite(_) => Ok(0),
            Conn::Postgres(c) => postgres::clock_skew(&mut c.borrow_mut()),
        }
    }

    /// The schema version this program brings the database to.
    pub fn latest_version(&self) -> u32 {
        match &self.conn {
            Conn::Sqlite(_) => latest_version(),
            Conn::Postgres(_) => postgres::latest_version(),
        }
    }

    fn sqlite(&self) -> &Connection {
        match &self.conn {
            Conn::Sqlite(c) => c,
            Conn::Postgres(_) => unreachable!("a SQLite operation on PostgreSQL"),
        }
    }

    /// Reads (and single-statement writes) outside a transaction.
    pub fn db(&self) -> Db<'_> {
        Db { conn: &self.conn }
    }

    /// Runs `f` in one write transaction, committed only when it succeeds. Every multi-statement
    /// write goes through one. On SQLite it is an immediate (write-locking) transaction; on
    /// PostgreSQL it takes the same one-writer lock (an advisory transaction lock), so that the
    /// read-then-write rules of pages, intake and the CLI hold there as they do here. The
    /// dispatcher's claim and record use [`Store::work`] instead.
    pub fn write<T>(&mut self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        self.transaction(true, f)
    }

    /// Runs `f` in one transaction that, on PostgreSQL, does not take the one-writer lock: for
    /// the dispatchers' claims and records, which lock the rows they change (and the user they
    /// claim for) so that many can run at once. The same as [`Store::write`] on SQLite.
    pub fn work<T>(&mut self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        self.transaction(false, f)
    }

    fn transaction<T>(&mut self, exclusive: bool, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        let begin = match (&self.conn, exclusive) {
            (Conn::Sqlite(_), _) => "BEGIN IMMEDIATE",
            (Conn::Postgres(_), true) => "BEGIN; SELECT pg_advisory_xact_lock(7147)",
            (Conn::Postgres(_), false) => "BEGIN",
        };
        if let Err(e) = self.conn.execute_batch(begin) {
            // PostgreSQL: BEGIN went through and the lock after it timed out; close it.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        if let Conn::Sqlite(c) = &self.conn {
            // Moved to PostgreSQL while this process had the file open (`migrate-store` marks
            // it inside the write lock this transaction now holds): nothing may land here.
            if schema_version(c)? == moving::MOVED {
                let _ = self.conn.execute_batch("ROLLBACK");
                return Err(moved());
            }
        }
        let out = f(Db { conn: &self.conn }).and_then(|v| {
            self.conn.execute_batch("COMMIT")?;
            Ok(v)
        });
        if out.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        out
    }

    pub fn schema_version(&self) -> Result<u32> {
        match &self.conn {
            Conn::Sqlite(c) => schema_version(c),
            Conn::Postgres(c) => postgres::schema_version(&mut c.borrow_mut()),
        }
    }

    /// Writes a consistent copy of the live database to `to` (SQLite's `VACUUM INTO`: safe while
    /// the CGI and the dispatcher keep writing). `to` must not exist yet.
    pub fn backup(&self, to: &Path) -> Result<()> {
        if self.is_postgres() {
            return Err(Error::Misconfigured(
                "on PostgreSQL, back up with pg_dump (docs/postgres.md, \"Backup\")".to_string(),
            ));
        }
        if to.exists() {
            return Err(Error::invalid("backup", format!("{} already exists: choose a new file name", to.display())));
        }
        self.sqlite()
            .execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .map_err(|e| Error::Internal(format!("cannot write the backup {}: {e}", to.display())))?;
        Ok(())
    }

    /// SQLite: lets the WAL grow to `pages` before this connection's commits copy it into the
    /// database (SQLite's default is 1,000). A dispatcher rewrites some pages commit after
    /// commit (the endpoints' rows and hourly counters, the lease index, the growing ends of
    /// the status and attempt indexes): checkpointing a fourth as often copies each of those
    /// once for four times the commits, with a fourth of the fsyncs (measured: 163 against 43
    /// fsyncs, 114,550 against 107,816 writes for 20,000 deliveries). Most of the due index's
    /// pages are written at random places and gain little.
    /// The run ends with [`Store::checkpoint`], and closing the last connection empties the WAL.
    pub fn checkpoint_every(&self, pages: u32) -> Result<()> {
        if let Conn::Sqlite(c) = &self.conn {
            c.pragma_update(None, "wal_autocheckpoint", pages).map_err(sql::SqlError::from)?;
        }
        Ok(())
    }

    /// Copies WAL content into the database without blocking readers or writers.
    pub fn checkpoint(&self) -> Result<()> {
        if let Conn::Sqlite(c) = &self.conn {
            c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())).map_err(sql::SqlError::from)?;
        }
        Ok(())
    }
}

/// A file's (device, inode), `None` when there is no file at the path.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| (m.dev(), m.ino()))
}

fn moved() -> Error {
    Error::Unavailable(
        "this SQLite database was moved to PostgreSQL by `webhooks migrate-store`: set WEBHOOKS_DATABASE \
         in .env to the postgres:// URL it was moved to"
            .to_string(),
    )
}

/// A bare connection, not migrated: for tests and tools that look at the tables themselves.
pub fn connect(at: &Location) -> Result<Conn> {
    match at {
        Location::File(p) => {
            let c = Connection::open(p)?;
            c.busy_timeout(Duration::from_secs(10))?;
            Ok(Conn::Sqlite(c))
        }
        Location::Postgres(url) => Ok(Conn::Postgres(Box::new(RefCell::new(postgres::connect(url)?)))),
    }
}

/// SQLite's own calls (pragmas, migrations) fail as any statement does.
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        sql::SqlError::from(e).into()
    }
}

/// A `count(*)` over a subquery limited to `COUNT_CAP + 1` rows, capped at `COUNT_CAP` (pages
/// count no further, so their cost does not grow with the backlog).
fn bounded_count(db: Db<'_>, sql: &str, params: impl sql::Params, capped: &mut bool) -> Result<i64> {
    let n: i64 = db.conn.prepare_cached(sql)?.query_row(params, |r| r.get(0))?;
    if n > COUNT_CAP {
        *capped = true;
        return Ok(COUNT_CAP);
    }
    Ok(n)
}

/// Held deliveries ended at `at` (discarded on re-enabling, or past the hold retention) are dead
/// with `E_ENDPOINT_DISABLED`: the events whose last unfinished delivery they were keep their
/// bodies for `payload_retention` from now on, as after any last delivery.
fn expire_bodies_of_ended_holds(db: Db<'_>, at: i64, payload_retention: Duration) -> Result<()> {
    db.conn
        .prepare_cached(
            "UPDATE events SET payload_expires_at = ?1 WHERE payload_expires_at IS NULL AND id IN
               (SELECT event_id FROM deliveries WHERE finished_at = ?2 AND status = 'dead' AND last_error_code = ?3)
               AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.finished_at IS NULL)",
        )?
        .execute(params![at + payload_retention.as_millis() as i64, at, FailureCode::EndpointDisabled])?;
    Ok(())
}

/// Collects mapped rows.
fn rows<T>(it: impl Iterator<Item = sql::Result<T>>) -> Result<Vec<T>> {
    Ok(it.collect::<sql::Result<Vec<T>>>()?)
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
];

/// The first line of a migration that rebuilds a table others refer to: it runs with foreign
/// keys off (SQLite's documented way, else dropping the old table would cascade), and is
/// checked with `foreign_key_check` before it commits.
const FOREIGN_KEYS_OFF: &str = "-- requires: foreign_keys off";

/// How long a writer waits for another before SQLite reports busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

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

pub fn latest_version() -> u32 {
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
        assert_eq!(count("SELECT count(*) FROM deliveries WHERE status = 'failed'"), 1);
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
