//! The seam between the store and its two engines: what differs between SQLite and PostgreSQL,
//! said once per engine (`store/sqlite.rs`, `store/postgres.rs`, and the queue's statements in
//! `store/queue/sqlite.rs`, `store/queue/postgres.rs`). A [`Store`](super::Store) gets its engine
//! when it is opened, from where the data is (`Store::open_unmigrated`, the one place that chooses);
//! everything else asks it.

use std::path::{Path, PathBuf};

use super::queue::Statements;
use super::sql::Conn;
use crate::model::Result;

/// What the dispatcher may count on, whichever engine runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Dispatchers claim and record at the same time, each locking only the rows it changes,
    /// possibly from many machines. When false, one writer at a time takes the database's
    /// lock, which serialises every run's claims anyway.
    pub concurrent_claims: bool,
}

/// One engine's own ways: its transactions, its migrations and versions, its clock, its backup
/// and its queue statements.
pub trait Engine: Sync {
    fn capabilities(&self) -> Capabilities;

    /// The statement that opens a transaction; `exclusive`: one that takes the one-writer lock
    /// (pages, intake, the CLI), else one that locks only the rows it touches (dispatchers).
    fn begin(&self, exclusive: bool) -> &'static str;

    /// Runs right after `begin`: what must hold before anything is written in it.
    fn began(&self, conn: &Conn) -> Result<()>;

    /// Brings the schema up to date (every process that opens the store).
    fn migrate(&self, conn: &mut Conn) -> Result<()>;

    fn schema_version(&self, conn: &Conn) -> Result<u32>;

    /// The schema version this program brings the database to.
    fn latest_version(&self) -> u32;

    /// The database's clock minus this machine's, in ms.
    fn clock_skew(&self, conn: &Conn) -> Result<i64>;

    /// Writes a consistent copy of the live database to `to`.
    fn backup(&self, conn: &Conn, to: &Path) -> Result<()>;

    /// Lets the engine's log grow to `pages` before commits copy it into the database.
    fn checkpoint_every(&self, conn: &Conn, pages: u32) -> Result<()>;

    /// Copies the engine's log into the database without blocking anyone.
    fn checkpoint(&self, conn: &Conn) -> Result<()>;

    /// The queue's statements in this engine's dialect.
    fn queue(&self) -> &'static dyn Statements;
}

/// An open connection with its engine.
pub struct Opened {
    pub conn: Conn,
    pub engine: &'static dyn Engine,
    /// A database file's path and (device, inode) when it was opened.
    pub file: Option<(PathBuf, (u64, u64))>,
}
