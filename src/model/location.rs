//! Where the data lives (`WEBHOOKS_DATABASE`): a SQLite file, or a PostgreSQL URL, which is
//! never shown with its password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the data lives: `WEBHOOKS_DATABASE`, a SQLite file or a PostgreSQL URL.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    Postgres(String),
}

impl Location {
    /// A `postgres://` or `postgresql://` URL, else a file path (relative ones below `root`).
    pub fn parse(value: &str, root: &Path) -> Location {
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return Location::Postgres(value.to_string());
        }
        let p = PathBuf::from(value);
        Location::File(if p.is_absolute() { p } else { root.join(p) })
    }

    /// A PostgreSQL URL without its own `connect_timeout` gets `timeout`'s (`WEBHOOKS_DB_CONNECT_TIMEOUT`),
    /// in whole seconds: the store bounds connecting, logging in and the first query by it.
    pub fn with_connect_timeout(self, timeout: Duration) -> Location {
        let Location::Postgres(url) = &self else { return self };
        match url::Url::parse(url) {
            Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "connect_timeout") => {
                u.query_pairs_mut().append_pair("connect_timeout", &timeout.as_secs().max(1).to_string());
                Location::Postgres(u.to_string())
            }
            _ => self,
        }
    }

    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::File(p) => Some(p),
            Location::Postgres(_) => None,
        }
    }
}

/// Never with the password, in `{:?}` either (`Config` derives `Debug`).
impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(p) => f.debug_tuple("File").field(p).finish(),
            Location::Postgres(url) => f.debug_tuple("Postgres").field(&redacted(url)).finish(),
        }
    }
}

/// The file's path, or the URL without its password.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

/// The URL as it can be shown: without its password.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("****"));
            }
            u.to_string()
        }
        Err(_) => "(an unreadable postgres:// URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_its_password_in_every_form() {
        let at = Location::parse("postgres://app:s3cret@db/webhooks", Path::new("/srv"));
        assert!(!format!("{at}").contains("s3cret") && !format!("{at:?}").contains("s3cret"), "{at:?}");
        assert_eq!(Location::parse("var/w.db", Path::new("/srv")), Location::File(PathBuf::from("/srv/var/w.db")));
    }
}
