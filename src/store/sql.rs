//! One connection, SQLite or PostgreSQL, with the few calls the store's operations make:
//! `execute`, `query_row`, `query_map` on cached prepared statements, values crossing as
//! [`Value`]. The operations write their SQL once, in the subset both engines read the same way
//! (`?N` placeholders, which PostgreSQL gets as `$N`; `ON CONFLICT`, `RETURNING`, `coalesce`,
//! `CASE`); where the engines differ, each engine says its statement in full in its own file
//! (`store/sqlite.rs`, `store/postgres.rs`, `store/queue/`), behind `store::engine::Engine`.
//!
//! Integers cross as `i64` and are stored as PostgreSQL `bigint`; text as `text`; bytes as
//! `bytea`; booleans as integers 0/1 in both (so `active = 1` reads the same everywhere).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;

use postgres::types::{IsNull, Kind, Type};

use crate::model::delivery::{FailureCode, Status};
use crate::model::health::DisabledReason;
use crate::model::time::Time;
use crate::model::Error;

/// An error from a statement: a missing row (for `optional`), a locked or unreachable
/// database, or anything else.
#[derive(Debug)]
pub enum SqlError {
    NoRows,
    /// Locked past the busy timeout, a deadlock, a serialization failure, or a connection that
    /// went away: the caller may try again.
    Busy(String),
    /// The database cannot take the statement for now, whatever the statement: the server went
    /// away (a reset or closed connection, a shutdown), the disk is full, or the database is
    /// read-only. Answered 503 with `Retry-After` by the CGI, exit 75 by the CLI.
    Unavailable(String),
    /// A value that does not fit the Rust type asked for.
    Conversion(String),
    Other(String),
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlError::NoRows => f.write_str("query returned no rows"),
            SqlError::Busy(m) | SqlError::Unavailable(m) | SqlError::Conversion(m) | SqlError::Other(m) => {
                f.write_str(m)
            }
        }
    }
}

impl From<SqlError> for Error {
    fn from(e: SqlError) -> Error {
        match e {
            SqlError::Busy(_) => Error::Busy,
            SqlError::Unavailable(m) => Error::Unavailable(format!("the database is unavailable: {m}")),
            other => Error::internal("database", other),
        }
    }
}

impl From<rusqlite::Error> for SqlError {
    fn from(e: rusqlite::Error) -> SqlError {
        match &e {
            rusqlite::Error::QueryReturnedNoRows => SqlError::NoRows,
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::DatabaseBusy || f.code == rusqlite::ErrorCode::DatabaseLocked =>
            {
                SqlError::Busy(e.to_string())
            }
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::ReadOnly
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::SystemIoFailure
                ) =>
            {
                SqlError::Unavailable(e.to_string())
            }
            _ => SqlError::Other(e.to_string()),
        }
    }
}

impl From<postgres::Error> for SqlError {
    fn from(e: postgres::Error) -> SqlError {
        use postgres::error::SqlState;
        let busy = e.code().is_some_and(|c| {
            [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::QUERY_CANCELED,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(c)
        });
        // However the server went away: a closed or reset connection (an I/O error underneath),
        // a shutdown, a connection failure, a full disk, a read-only server (a standby).
        let mut io = false;
        let mut cause = e.source();
        while let Some(c) = cause {
            io |= c.is::<std::io::Error>();
            cause = c.source();
        }
        let unavailable = e.is_closed()
            || io
            || e.code().is_some_and(|c| {
                let class = &c.code()[..2];
                class == "08" // connection exception
                    || class == "53" // insufficient resources: disk full, out of memory
                    || class == "57" && *c != SqlState::QUERY_CANCELED // operator intervention: shutdown
                    || class == "58" // system error: I/O
                    || *c == SqlState::READ_ONLY_SQL_TRANSACTION
            });
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => match e.source() {
                Some(s) => format!("{e}: {s}"),
                None => e.to_string(),
            },
        };
        if busy {
            SqlError::Busy(text)
        } else if unavailable {
            SqlError::Unavailable(text)
        } else {
            SqlError::Other(text)
        }
    }
}

/// `Ok(None)` for a query that found no row.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(SqlError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

// ---- values ---------------------------------------------------------------------------------

/// A value crossing to or from either engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

/// What can be a statement's parameter.
pub trait ToSql {
    fn to_value(&self) -> Value<'_>;
}

macro_rules! int_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_to_sql!(i64, i32, u32, u16, u8, usize, u64);

impl ToSql for bool {
    fn to_value(&self) -> Value<'_> {
        Value::Int(i64::from(*self))
    }
}

impl ToSql for f64 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

impl ToSql for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}

impl ToSql for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}

impl ToSql for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl ToSql for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(*i),
            Value::Real(f) => Value::Real(*f),
            Value::Text(t) => Value::Text(Cow::Borrowed(t)),
            Value::Blob(b) => Value::Blob(Cow::Borrowed(b)),
        }
    }
}

/// Times are stored as Unix milliseconds.
impl ToSql for Time {
    fn to_value(&self) -> Value<'_> {
        Value::Int(self.0)
    }
}

/// Statuses and failure codes are stored as their names (`pending`, `E_TIMEOUT`).
impl ToSql for Status {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self.as_str()))
    }
}

impl ToSql for FailureCode {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self.as_str()))
    }
}

/// The parameters of one statement: `params![a, b]`, `[x]`, or `[]`.
pub trait Params {
    fn values(&self) -> Vec<Value<'_>>;
}

impl Params for &[&dyn ToSql] {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for [&dyn ToSql; 0] {
    fn values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(&self) -> Vec<Value<'_>> {
                self.iter().map(|p| p.to_value()).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);

impl Params for Vec<Value<'_>> {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

/// `params![a, b, c]`: a statement's parameters of different types.
#[macro_export]
macro_rules! sql_params {
    () => { &[] as &[&dyn $crate::store::sql::ToSql] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::sql::ToSql),+] as &[&dyn $crate::store::sql::ToSql] };
}
pub use crate::sql_params as params;

/// What a column can be read as.
pub trait FromSql: Sized {
    fn from_value(v: Value<'_>) -> Result<Self>;
}

fn wrong(want: &str, v: &Value<'_>) -> SqlError {
    SqlError::Conversion(format!("expected {want}, found {v:?}"))
}

macro_rules! int_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_value(v: Value<'_>) -> Result<Self> {
                match v {
                    Value::Int(i) => <$t>::try_from(i).map_err(|_| wrong(stringify!($t), &v)),
                    other => Err(wrong(stringify!($t), &other)),
                }
            }
        }
    )*};
}
int_from_sql!(i64, i32, u32, u16, u8, usize, u64);

impl FromSql for bool {
    fn from_value(v: Value<'_>) -> Result<Self> {
        match v {
            Value::Int(i) => Ok(i != 0),
            other => Err(wrong("a boolean", &other)),
        }
    }
}

impl FromSql for f64 {
    fn from_value(v: Value<'_>) -> Result<Self> {
        match v {
            Value::Real(f) => Ok(f),
            Value::Int(i) => Ok(i as f64),
            other => Err(wrong("a number", &other)),
        }
    }
}

impl FromSql for String {
    fn from_value(v: Value<'_>) -> Result<Self> {
        match v {
            Value::Text(t) => Ok(t.into_owned()),
            Value::Blob(b) => String::from_utf8(b.into_owned()).map_err(|e| SqlError::Conversion(e.to_string())),
            other => Err(wrong("text", &other)),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_value(v: Value<'_>) -> Result<Self> {
        match v {
            Value::Blob(b) => Ok(b.into_owned()),
            Value::Text(t) => Ok(t.into_owned().into_bytes()),
            other => Err(wrong("bytes", &other)),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(v: Value<'_>) -> Result<Self> {
        match v {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl FromSql for Value<'static> {
    fn from_value(v: Value<'_>) -> Result<Self> {
        Ok(match v {
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(i),
            Value::Real(f) => Value::Real(f),
            Value::Text(t) => Value::Text(Cow::Owned(t.into_owned())),
            Value::Blob(b) => Value::Blob(Cow::Owned(b.into_owned())),
        })
    }
}

impl FromSql for Time {
    fn from_value(v: Value<'_>) -> Result<Self> {
        i64::from_value(v).map(Time)
    }
}

/// Parses a stored name with `parse`, naming `what` when it is unknown.
fn named<T>(v: Value<'_>, what: &str, parse: impl FnOnce(&str) -> Option<T>) -> Result<T> {
    let s = String::from_value(v)?;
    parse(&s).ok_or_else(|| SqlError::Conversion(format!("unknown {what} {s:?}")))
}

impl FromSql for Status {
    fn from_value(v: Value<'_>) -> Result<Self> {
        named(v, "delivery status", |s| Status::parse("status", s).ok())
    }
}

impl FromSql for FailureCode {
    fn from_value(v: Value<'_>) -> Result<Self> {
        named(v, "failure code", FailureCode::parse)
    }
}

impl FromSql for DisabledReason {
    fn from_value(v: Value<'_>) -> Result<Self> {
        named(v, "disabled reason", DisabledReason::parse)
    }
}

// ---- SQLite's side --------------------------------------------------------------------------

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn from_sqlite(v: rusqlite::types::ValueRef<'_>) -> Result<Value<'_>> {
    use rusqlite::types::ValueRef;
    Ok(match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(Cow::Borrowed(s)),
            Err(_) => Value::Blob(Cow::Borrowed(t)),
        },
        ValueRef::Blob(b) => Value::Blob(Cow::Borrowed(b)),
    })
}

// ---- PostgreSQL's side ----------------------------------------------------------------------

impl postgres::types::ToSql for Value<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let bad = || -> Box<dyn StdError + Sync + Send> { format!("cannot store {self:?} as {ty}").into() };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i).map_err(|_| bad())?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i).map_err(|_| bad())?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => i.to_string().to_sql(ty, out),
                _ => Err(bad()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => Err(bad()),
            },
            Value::Text(t) => match *ty {
                Type::BYTEA => t.as_bytes().to_sql(ty, out),
                Type::INT8 => t.parse::<i64>().map_err(|_| bad())?.to_sql(ty, out),
                // PostgreSQL's text holds no NUL, which SQLite's does: the one character that
                // would otherwise fail the whole statement is kept as U+FFFD.
                _ if t.contains('\0') => t.replace('\0', "\u{FFFD}").as_str().to_sql(&Type::TEXT, out),
                _ => t.as_ref().to_sql(&Type::TEXT, out),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_ref().to_sql(ty, out),
                _ => std::str::from_utf8(b).map_err(|_| bad())?.to_sql(&Type::TEXT, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A column of any type the schema uses, read as a [`Value`].
struct Any(Value<'static>);

impl<'a> postgres::types::FromSql<'a> for Any {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Any, Box<dyn StdError + Sync + Send>> {
        Ok(Any(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::NUMERIC => numeric(raw)?,
            Type::BYTEA => Value::Blob(Cow::Owned(raw.to_vec())),
            _ if matches!(ty.kind(), Kind::Simple) => Value::Text(Cow::Owned(String::from_sql(&Type::TEXT, raw)?)),
            _ => return Err(format!("cannot read a column of type {ty}").into()),
        }))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Any, Box<dyn StdError + Sync + Send>> {
        Ok(Any(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary `numeric` (what `sum` of a bigint gives): base-10000 digits. Whole
/// numbers come back as integers, others as reals.
fn numeric(raw: &[u8]) -> std::result::Result<Value<'static>, Box<dyn StdError + Sync + Send>> {
    let word = |i: usize| -> std::result::Result<i16, Box<dyn StdError + Sync + Send>> {
        raw.get(i * 2..i * 2 + 2).map(|b| i16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "short numeric".into())
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut value = 0f64;
    for i in 0..ndigits.max(0) as usize {
        value += f64::from(word(4 + i)?) * 10000f64.powi(i32::from(weight) - i as i32);
    }
    if sign == 0x4000 {
        value = -value;
    }
    if dscale == 0 && value.abs() < 9.0e15 {
        Ok(Value::Int(value as i64))
    } else {
        Ok(Value::Real(value))
    }
}

/// `?N` placeholders as PostgreSQL's `$N` (outside quoted text).
pub fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

/// A PostgreSQL client with its prepared statements, by SQL text.
pub struct PgClient {
    pub client: postgres::Client,
    statements: HashMap<String, postgres::Statement>,
}

impl PgClient {
    pub fn new(client: postgres::Client) -> PgClient {
        PgClient { client, statements: HashMap::new() }
    }

    /// The statement for `sql`, prepared on first use. (A parameter PostgreSQL cannot type from
    /// where it stands, as in `?1 IS NULL OR …`, is written `CAST(?1 AS TEXT) IS NULL`: a failed
    /// prepare would abort the transaction it ran in.)
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(&to_postgres(sql))?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }
}

// ---- the connection -------------------------------------------------------------------------

/// An open connection to either engine.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<PgClient>>),
}

/// A prepared statement on either engine.
pub enum Statement<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres(&'c RefCell<PgClient>, String),
}

/// One result row.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

/// A column number (`r.get(0)`; `r.get::<_, u32>(6)` as with rusqlite).
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    pub fn get<I: RowIndex, T: FromSql>(&self, i: I) -> Result<T> {
        let i = i.index();
        match self {
            Row::Sqlite(r) => T::from_value(from_sqlite(r.get_ref(i)?)?),
            Row::Postgres(r) => {
                let v: Any = r.try_get(i)?;
                T::from_value(v.0)
            }
        }
    }
}

fn pg_query(c: &RefCell<PgClient>, sql: &str, values: &[Value<'_>]) -> Result<Vec<postgres::Row>> {
    let mut c = c.borrow_mut();
    let s = c.statement(sql)?;
    Ok(c.client.query(&s, &pg_values(values))?)
}

fn pg_values<'v>(values: &'v [Value<'v>]) -> Vec<&'v (dyn postgres::types::ToSql + Sync)> {
    values.iter().map(|v| v as &(dyn postgres::types::ToSql + Sync)).collect()
}

impl Statement<'_> {
    /// Runs the statement; returns the number of rows it changed.
    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        let values = params.values();
        match self {
            Statement::Sqlite(s) => Ok(s.execute(rusqlite::params_from_iter(values.iter()))?),
            Statement::Postgres(c, sql) => {
                let mut c = c.borrow_mut();
                let s = c.statement(sql)?;
                Ok(c.client.execute(&s, &pg_values(&values))? as usize)
            }
        }
    }

    /// The first row, mapped; [`SqlError::NoRows`] when there is none.
    pub fn query_row<T>(&mut self, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        let values = params.values();
        match self {
            Statement::Sqlite(s) => {
                let mut rows = s.query(rusqlite::params_from_iter(values.iter()))?;
                match rows.next()? {
                    Some(r) => f(&Row::Sqlite(r)),
                    None => Err(SqlError::NoRows),
                }
            }
            Statement::Postgres(c, sql) => {
                let rows = pg_query(c, sql, &values)?;
                match rows.first() {
                    Some(r) => f(&Row::Postgres(r)),
                    None => Err(SqlError::NoRows),
                }
            }
        }
    }

    /// Every row, mapped.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let values = params.values();
        let mut out = Vec::new();
        match self {
            Statement::Sqlite(s) => {
                let mut rows = s.query(rusqlite::params_from_iter(values.iter()))?;
                while let Some(r) = rows.next()? {
                    out.push(f(&Row::Sqlite(r)));
                }
            }
            Statement::Postgres(c, sql) => {
                for r in pg_query(c, sql, &values)? {
                    out.push(f(&Row::Postgres(&r)));
                }
            }
        }
        Ok(out.into_iter())
    }

    /// Whether the query finds a row.
    pub fn exists(&mut self, params: impl Params) -> Result<bool> {
        self.query_row(params, |_| Ok(())).optional().map(|r| r.is_some())
    }
}

impl Conn {
    /// A statement from the connection's cache (prepared on first use).
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        match self {
            Conn::Sqlite(c) => Ok(Statement::Sqlite(c.prepare_cached(sql)?)),
            // Prepared at its first run, when its parameters' values are known.
            Conn::Postgres(c) => Ok(Statement::Postgres(c, sql.to_string())),
        }
    }

    /// A statement run rarely (kept in the cache all the same: the cache is small and bounded).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Conn::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Conn::Postgres(c) => Ok(c.borrow_mut().client.batch_execute(sql)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            to_postgres("SELECT '?1', x FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1', x FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn numerics_decode_to_integers_and_reals() {
        // 12345678 = digits [1234, 5678], weight 1, positive, scale 0.
        let raw = [0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0xD2, 0x16, 0x2E];
        assert_eq!(numeric(&raw).unwrap(), Value::Int(12_345_678));
        // -7 = digit [7], weight 0, negative.
        assert_eq!(numeric(&[0, 1, 0, 0, 0x40, 0, 0, 0, 0, 7]).unwrap(), Value::Int(-7));
        // 0 = no digits.
        assert_eq!(numeric(&[0, 0, 0, 0, 0, 0, 0, 0]).unwrap(), Value::Int(0));
        // 1.5 = digits [1, 5000], weight 0, scale 1.
        assert_eq!(numeric(&[0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0x13, 0x88]).unwrap(), Value::Real(1.5));
    }

    #[test]
    fn values_read_back_as_their_rust_types() {
        assert_eq!(u32::from_value(Value::Int(7)).unwrap(), 7);
        assert!(u32::from_value(Value::Int(-1)).is_err());
        assert!(bool::from_value(Value::Int(1)).unwrap());
        assert_eq!(Option::<i64>::from_value(Value::Null).unwrap(), None);
        assert_eq!(String::from_value(Value::Blob(Cow::Borrowed(b"ab"))).unwrap(), "ab");
        assert_eq!(Status::from_value(Value::Text("held".into())).unwrap(), Status::Held);
        assert!(Status::from_value(Value::Text("lost".into())).is_err());
    }
}
