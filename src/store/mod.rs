//! The store: every SQL statement of the product, behind typed operations. Nothing outside this
//! folder names `rusqlite` or writes SQL, nor knows which engine holds the data.
//!
//! - [`Store`] owns one connection and its [`Engine`](engine::Engine), chosen once when it is
//!   opened from `WEBHOOKS_DATABASE` ([`Store::open_unmigrated`]): SQLite (`sqlite.rs`) or
//!   PostgreSQL (`postgres.rs`). [`Store::write`] is one transaction under the one-writer lock,
//!   [`Store::work`] one that locks only the rows it changes (the dispatchers').
//! - [`Db`] is what every operation takes: a connection, or the transaction of a `write`, with
//!   its engine. The operations live in one module per table or aggregate, written once in the
//!   SQL both engines read alike (`sql.rs`, the driver): `principals` (users, tokens),
//!   `endpoints` (with their keys), `events` (intake's fan-out), `deliveries` (the log, with
//!   attempts), `queue/` (the dispatcher's claim and record, each engine's statements in its
//!   own file), `health`, `notices`, `retention`, `sessions`, `observations`, `sources` and
//!   `inbound_requests` (provider webhooks and their log), `migrate_store` (a SQLite installation copied to
//!   PostgreSQL). Times (`model::time::Time`), delivery statuses and failure codes cross as
//!   typed values, ids as their strings (`evt_…`); errors as `model::Error` (a locked database
//!   is `Error::Busy`, an unreachable one `Error::Unavailable`). Uses `model` only.

use std::path::Path;
use std::time::Duration;

use crate::model::delivery::FailureCode;
use crate::model::health::COUNT_CAP;
pub use crate::model::location::Location;
use crate::model::{Error, Result};

pub mod deliveries;
pub mod endpoints;
pub mod engine;
pub mod events;
pub mod health;
pub mod inbound_requests;
pub mod metrics;
pub mod migrate_store;
pub mod notices;
pub mod observations;
pub mod ordering;
pub mod pacing;
pub mod postgres;
pub mod principals;
pub mod queue;
pub mod retention;
pub mod sessions;
pub mod sources;
pub mod sql;
pub mod sqlite;

use engine::{Capabilities, Engine};
use sql::{params, Conn};

/// How long a writer waits for another before the engine reports busy.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// One open database.
pub struct Store {
    conn: Conn,
    engine: &'static dyn Engine,
    /// A database file's path and identity (device, inode) when it was opened, to tell whether
    /// what this process wrote is still in the file the path names ([`Store::check_in_place`]).
    file: Option<(std::path::PathBuf, (u64, u64))>,
}

/// The connection (or the transaction) an operation runs on.
#[derive(Clone, Copy)]
pub struct Db<'a> {
    conn: &'a Conn,
    engine: &'static dyn Engine,
}

impl Db<'_> {
    /// The queue's statements in this database's dialect.
    fn queue(&self) -> &'static dyn queue::Statements {
        self.engine.queue()
    }
}

impl Store {
    /// Creates the database file when it is missing (owner-only, mode 0600, its directory too),
    /// then opens and migrates it. Only `webhooks init` and `serve`'s first run call this: every
    /// other entry point answers a missing file as unavailable ([`Store::open`]), since a file
    /// made afresh would answer as a new, empty installation.
    pub fn create(at: &Location) -> Result<Store> {
        if let Some(path) = at.file() {
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

    /// Opens an existing database and brings its schema up to date. A database file that is
    /// not there is [`Error::Unavailable`] naming the path (moved away, or `init` not run yet):
    /// it is never created here.
    pub fn open(at: &Location) -> Result<Store> {
        let mut store = Store::open_unmigrated(at)?;
        store.engine.migrate(&mut store.conn).map_err(|e| match e {
            Error::Internal(m) => Error::Internal(format!("cannot migrate the database {at}: {m}")),
            other => other,
        })?;
        Ok(store)
    }

    /// Opens without migrating: for `doctor`-style checks that must not change anything.
    pub fn open_unmigrated(at: &Location) -> Result<Store> {
        // The one place where the engine is chosen: from where the data is.
        let engine::Opened { conn, engine, file } = match at {
            Location::File(path) => sqlite::open(path)?,
            Location::Postgres(url) => postgres::open(url)?,
        };
        Ok(Store { conn, engine, file })
    }

    /// Whether what this process wrote is in the file that the configured path names now. A
    /// database file moved or deleted while a request ran keeps taking its writes through the
    /// open handle, and they are lost with it: a request must not be acknowledged then (503).
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
        let engine::Opened { conn, engine, file } = sqlite::memory();
        Store { conn, engine, file }
    }

    /// What the dispatcher may count on here (whether claims run at once, ...).
    pub fn capabilities(&self) -> Capabilities {
        self.engine.capabilities()
    }

    /// The database's clock minus this machine's, in ms (0 where the database runs on this
    /// machine). Dispatchers add it to their own clock so that leases are in the database's
    /// time, the same for every machine.
    pub fn clock_skew(&self) -> Result<i64> {
        self.engine.clock_skew(&self.conn)
    }

    /// The schema version this program brings the database to.
    pub fn latest_version(&self) -> u32 {
        self.engine.latest_version()
    }

    /// Reads (and single-statement writes) outside a transaction.
    pub fn db(&self) -> Db<'_> {
        Db { conn: &self.conn, engine: self.engine }
    }

    /// Runs `f` in one write transaction, committed only when it succeeds. Every multi-statement
    /// write goes through one. It takes the one-writer lock (SQLite's immediate transaction,
    /// PostgreSQL's advisory transaction lock), so that the read-then-write rules of pages,
    /// intake and the CLI hold on both. The dispatcher's claim and record use [`Store::work`].
    pub fn write<T>(&mut self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        self.transaction(true, f)
    }

    /// Runs `f` in one transaction that does not take the one-writer lock where the engine
    /// lets claims run at once ([`Capabilities::concurrent_claims`]): for the dispatchers'
    /// claims and records, which lock the rows they change (and the user they claim for). The
    /// same as [`Store::write`] elsewhere.
    pub fn work<T>(&mut self, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        self.transaction(false, f)
    }

    fn transaction<T>(&mut self, exclusive: bool, f: impl FnOnce(Db<'_>) -> Result<T>) -> Result<T> {
        if let Err(e) = self.conn.execute_batch(self.engine.begin(exclusive)) {
            // BEGIN went through and the lock after it timed out: close it.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        if let Err(e) = self.engine.began(&self.conn) {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e);
        }
        let out = f(self.db()).and_then(|v| {
            self.conn.execute_batch("COMMIT")?;
            Ok(v)
        });
        if out.is_err() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        out
    }

    pub fn schema_version(&self) -> Result<u32> {
        self.engine.schema_version(&self.conn)
    }

    /// Writes a consistent copy of the live database to `to` (safe while the CGI and the
    /// dispatcher keep writing). `to` must not exist yet. A database server is backed up with
    /// its own tools.
    pub fn backup(&self, to: &Path) -> Result<()> {
        self.engine.backup(&self.conn, to)
    }

    /// Lets the write-ahead log grow to `pages` before this connection's commits copy it into
    /// the database (a dispatcher's setting, see the engine). The run ends with
    /// [`Store::checkpoint`], and closing the last connection empties the log.
    pub fn checkpoint_every(&self, pages: u32) -> Result<()> {
        self.engine.checkpoint_every(&self.conn, pages)
    }

    /// Copies the write-ahead log into the database without blocking readers or writers.
    pub fn checkpoint(&self) -> Result<()> {
        self.engine.checkpoint(&self.conn)
    }
}

/// A file's (device, inode), `None` when there is no file at the path.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| (m.dev(), m.ino()))
}

/// A bare connection, not migrated: for tests and tools that look at the tables themselves.
pub fn connect(at: &Location) -> Result<Conn> {
    match at {
        Location::File(path) => sqlite::connect(path),
        Location::Postgres(url) => postgres::open(url).map(|o| o.conn),
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
