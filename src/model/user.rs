//! Users of the host application, known here by name (the `REMOTE_USER` or the host's user id),
//! and who a request acts as.

use crate::model::error::{Error, Result};

/// What a user name must be.
pub const NAME_RULE: &str = "must be 1–128 characters of letters, digits and . _ @ + -";

/// Names are what the host application and the web server call the user: 1–128 characters of
/// letters, digits and `. _ @ + -`.
pub fn check_name(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, NAME_RULE))
    }
}

/// Who a request acts as: the host application (an application token, which may act for any
/// user) or one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    App,
    User(String),
}

impl Principal {
    /// The user's name; `None` for the application.
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::App => None,
            Principal::User(u) => Some(u),
        }
    }
}
