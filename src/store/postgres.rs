//! PostgreSQL's side of the store: connecting (libpq-style URLs, TLS through rustls with
//! `sslmode` kept strict), its migrations (`sql/postgres/`, applied under an advisory lock, the
//! version in `webhooks_schema`), and the database clock.
//!
//! `sslmode`:
//! - `disable`: plain TCP (or a Unix socket);
//! - `prefer` (the default, as libpq): TLS when the server offers it, else plain;
//! - `require`: TLS or an error, never plain. As in libpq the certificate is not checked unless
//!   `sslrootcert=FILE` names the CA to check it against (then it is, with the host name);
//! - `verify-ca`, `verify-full`: TLS with the certificate checked against `sslrootcert` (which
//!   must be given) and the host name.

use std::sync::Arc;
use std::time::Duration;

use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use std::cell::{RefCell, RefMut};
use std::path::Path;

use super::engine::{Capabilities, Engine, Opened};
use super::queue::Statements;
use super::sql::{Conn, PgClient, SqlError};
use crate::model::location::redacted;
use crate::model::{Error, Result};

/// The PostgreSQL engine.
pub struct Postgres;

pub static POSTGRES: Postgres = Postgres;

impl Engine for Postgres {
    /// Many dispatchers, on many machines: claims lock the user they claim for and the rows they
    /// lease (`store/queue/postgres.rs`), records the rows they change.
    fn capabilities(&self) -> Capabilities {
        Capabilities { concurrent_claims: true }
    }

    /// The one-writer lock is an advisory transaction lock.
    fn begin(&self, exclusive: bool) -> &'static str {
        if exclusive {
            "BEGIN; SELECT pg_advisory_xact_lock(7147)"
        } else {
            "BEGIN"
        }
    }

    fn began(&self, _conn: &Conn) -> Result<()> {
        Ok(())
    }

    fn migrate(&self, conn: &mut Conn) -> Result<()> {
        migrate(&mut client(conn))
    }

    fn schema_version(&self, conn: &Conn) -> Result<u32> {
        schema_version(&mut client(conn))
    }

    fn latest_version(&self) -> u32 {
        latest_version()
    }

    fn clock_skew(&self, conn: &Conn) -> Result<i64> {
        clock_skew(&mut client(conn))
    }

    fn backup(&self, _conn: &Conn, _to: &Path) -> Result<()> {
        Err(Error::Misconfigured("on PostgreSQL, back up with pg_dump (docs/postgres.md, \"Backup\")".to_string()))
    }

    /// The server manages its own log.
    fn checkpoint_every(&self, _conn: &Conn, _pages: u32) -> Result<()> {
        Ok(())
    }

    fn checkpoint(&self, _conn: &Conn) -> Result<()> {
        Ok(())
    }

    fn queue(&self) -> &'static dyn Statements {
        &super::queue::postgres::STATEMENTS
    }
}

fn client(conn: &Conn) -> RefMut<'_, PgClient> {
    match conn {
        Conn::Postgres(c) => c.borrow_mut(),
        Conn::Sqlite(_) => unreachable!("a PostgreSQL operation on SQLite"),
    }
}

/// Connects to the database at `url` ([`connect`]).
pub(super) fn open(url: &str) -> Result<Opened> {
    Ok(Opened { conn: Conn::Postgres(Box::new(RefCell::new(connect(url)?))), engine: &POSTGRES, file: None })
}

/// Migrations in order; the number in each name is the version it leaves behind.
pub const MIGRATIONS: &[(&str, &str)] = &[
    ("001_initial", include_str!("../../sql/postgres/001_initial.sql")),
    ("002_inbound_edges", include_str!("../../sql/postgres/002_inbound_edges.sql")),
    ("003_queue", include_str!("../../sql/postgres/003_queue.sql")),
    ("004_pacing", include_str!("../../sql/postgres/004_pacing.sql")),
    ("005_woocommerce", include_str!("../../sql/postgres/005_woocommerce.sql")),
    ("006_portal", include_str!("../../sql/postgres/006_portal.sql")),
    ("007_metrics", include_str!("../../sql/postgres/007_metrics.sql")),
];

/// The advisory lock that serialises migrations (the one-writer lock of `Store::write` is 7147).
const MIGRATION_LOCK: i64 = 7146;

/// How long connecting, logging in and the first query may take when the URL does not say
/// (`connect_timeout`, which `WEBHOOKS_DB_CONNECT_TIMEOUT` fills in).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a connection as `url` says, within the URL's `connect_timeout` in all: the TCP connect,
/// TLS, the login and the first statement. The driver bounds only the TCP connect, so a server
/// (or a pgbouncer whose server is down) that accepts and never answers held a request for a
/// minute; the whole handshake now runs on a helper thread that is given up on at the deadline
/// (it ends when the peer closes or the process exits, holding one socket meanwhile).
pub fn connect(url: &str) -> Result<PgClient> {
    let shown = redacted(url);
    let timeout = url::Url::parse(url)
        .ok()
        .and_then(|u| u.query_pairs().find(|(k, _)| k == "connect_timeout").and_then(|(_, v)| v.parse::<u64>().ok()))
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(CONNECT_TIMEOUT);
    let (tx, rx) = std::sync::mpsc::channel();
    let owned = url.to_string();
    std::thread::Builder::new()
        .name("pg-connect".into())
        .spawn(move || {
            let _ = tx.send(connect_now(&owned));
        })
        .map_err(|e| Error::internal("cannot start a thread", e))?;
    match rx.recv_timeout(timeout) {
        Ok(connected) => connected.map(PgClient::new),
        Err(_) => Err(Error::Unavailable(format!(
            "no answer from {shown} within {} s (connecting, logging in and the first query; WEBHOOKS_DB_CONNECT_TIMEOUT or the URL's connect_timeout)",
            timeout.as_secs()
        ))),
    }
}

fn connect_now(url: &str) -> Result<postgres::Client> {
    let shown = redacted(url);
    let bad = |m: String| Error::Misconfigured(format!("WEBHOOKS_DATABASE {shown}: {m}"));
    let mut parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let mut mode = "prefer".to_string();
    let mut root_cert: Option<String> = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| match k.as_ref() {
            "sslmode" => {
                mode = v.into_owned();
                None
            }
            "sslrootcert" => {
                root_cert = Some(v.into_owned());
                None
            }
            _ => Some((k.into_owned(), v.into_owned())),
        })
        .collect();
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    let mut config: postgres::Config = parsed.as_str().parse().map_err(|e: postgres::Error| bad(e.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("qsm-webhooks");
    }
    let verify = match mode.as_str() {
        "disable" => None,
        "allow" | "prefer" => Some(false),
        "require" => Some(root_cert.is_some()),
        "verify-ca" | "verify-full" => {
            if root_cert.is_none() {
                return Err(bad(format!(
                    "sslmode={mode} needs sslrootcert=FILE, the CA certificate to check the server's against"
                )));
            }
            Some(true)
        }
        other => {
            return Err(bad(format!(
                "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
            )))
        }
    };
    let connected = match verify {
        None => {
            config.ssl_mode(SslMode::Disable);
            config.connect(postgres::NoTls)
        }
        Some(check) => {
            config.ssl_mode(if mode == "prefer" || mode == "allow" { SslMode::Prefer } else { SslMode::Require });
            let tls = tls_config(check, root_cert.as_deref()).map_err(bad)?;
            config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
        }
    };
    let mut client =
        connected.map_err(|e| Error::Unavailable(format!("cannot connect to {shown}: {}", SqlError::from(e))))?;
    // Waiting for a lock ends as SQLite's busy timeout does: Error::Busy after the same time.
    // (Set once per session, not as a startup option: pgbouncer refuses unknown ones.)
    client
        .batch_execute(&format!("SET lock_timeout = '{}ms'", super::BUSY_TIMEOUT.as_millis()))
        .map_err(|e| Error::Unavailable(format!("cannot set up the session on {shown}: {}", SqlError::from(e))))?;
    Ok(client)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side of TLS: checking the server's certificate against `root_cert`, or (libpq's
/// `prefer` and `require` without a root certificate) only that it signs the handshake.
fn tls_config(check: bool, root_cert: Option<&str>) -> std::result::Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if !check {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unchecked(provider())))
            .with_no_client_auth());
    }
    use rustls::pki_types::pem::PemObject;
    let path = root_cert.unwrap_or_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read sslrootcert {path}: {e}"))? {
        let cert = cert.map_err(|e| format!("cannot read sslrootcert {path}: {e}"))?;
        roots.add(cert).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!("sslrootcert {path} holds no certificate"));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// libpq's `sslmode=require` without a root certificate: the connection is encrypted and the
/// handshake's signatures are checked, the certificate's issuer and name are not.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn latest_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// The schema version, 0 for an empty database. One round trip (every CGI request asks).
fn schema_version(client: &mut PgClient) -> Result<u32> {
    match client.client.query_one("SELECT max(version) FROM webhooks_schema", &[]) {
        Ok(row) => Ok(row.get::<_, Option<i64>>(0).unwrap_or(0) as u32),
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => Ok(0),
        Err(e) => Err(SqlError::from(e).into()),
    }
}

/// Applies pending migrations in one transaction under an advisory lock, re-reading the
/// version inside it, so that processes starting at once apply each exactly once.
fn migrate(client: &mut PgClient) -> Result<()> {
    let version = schema_version(client)?;
    check_not_newer(version)?;
    if version == latest_version() {
        return Ok(());
    }
    let c = &mut client.client;
    let mut tx = c.transaction().map_err(SqlError::from)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).map_err(SqlError::from)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS webhooks_schema (version BIGINT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        .map_err(SqlError::from)?;
    let current: Option<i64> =
        tx.query_one("SELECT max(version) FROM webhooks_schema", &[]).map_err(SqlError::from)?.get(0);
    let current = current.unwrap_or(0) as u32;
    for (i, (name, sql)) in MIGRATIONS.iter().enumerate() {
        let v = i as u32 + 1;
        if v > current {
            tx.batch_execute(sql).map_err(|e| {
                Error::Internal(format!("migration sql/postgres/{name}.sql failed: {}", SqlError::from(e)))
            })?;
            tx.execute("INSERT INTO webhooks_schema (version) VALUES ($1)", &[&i64::from(v)])
                .map_err(SqlError::from)?;
        }
    }
    tx.commit().map_err(SqlError::from)?;
    Ok(())
}

pub fn check_not_newer(version: u32) -> Result<()> {
    if version > latest_version() {
        return Err(Error::Misconfigured(format!(
            "the database has schema version {version}, newer than this program knows ({}): \
             run the newer program, or restore the backup taken before the upgrade",
            latest_version()
        )));
    }
    Ok(())
}

/// The database's clock minus this machine's, in ms (test builds move both by
/// `WEBHOOKS_TEST_CLOCK_OFFSET`, as `time::now_ms` does).
fn clock_skew(client: &mut PgClient) -> Result<i64> {
    let before = crate::model::time::now_ms();
    let row = client
        .client
        .query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint", &[])
        .map_err(SqlError::from)?;
    let after = crate::model::time::now_ms();
    let db: i64 = row.get(0);
    let offset = crate::model::time::test_clock_offset();
    Ok(db + offset - (before + after) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_never_shown() {
        let shown = redacted("postgres://app:s3cret@db.example:5432/webhooks?sslmode=require");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.example:5432/webhooks"), "{shown}");
    }

    #[test]
    fn unknown_or_incomplete_ssl_modes_are_refused_before_connecting() {
        for (url, says) in [
            ("postgres://a:pw@127.0.0.1:1/x?sslmode=sometimes", "unknown sslmode"),
            ("postgres://a:pw@127.0.0.1:1/x?sslmode=verify-full", "needs sslrootcert"),
        ] {
            let e = connect(url).err().expect("refused").to_string();
            assert!(e.contains(says) && !e.contains("pw@"), "{e}");
        }
    }

    #[test]
    fn an_unreachable_server_is_unavailable_with_one_line() {
        let e = connect("postgresql://a:pw@127.0.0.1:1/x?sslmode=disable").err().expect("refused");
        assert!(matches!(e, Error::Unavailable(_)), "{e:?}");
        let line = e.to_string();
        assert!(line.contains("cannot connect to postgresql://a:****@127.0.0.1:1/x") && !line.contains('\n'), "{line}");
    }
}
