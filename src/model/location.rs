//! Where the data lives (`WEBHOOKS_DATABASE`): a SQLite file, or a PostgreSQL URL, which is
//! never shown with its password.

use std::fmt;
use std::path::{Path, PathBuf};

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
