//! Where the data lives (`WEBHOOKS_DATABASE`): a SQLite file, or a PostgreSQL URL, which is
//! never shown with its password.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the data lives: `WEBHOOKS_DATABASE`, a SQLite file or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
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

    pub fn file(&self) -> Option<&Path> {
        match self {
            Location::File(p) => Some(p),
            Location::Postgres(_) => None,
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
