//! Who acts: users of the host application, known here by name (the `REMOTE_USER` or the host's
//! user id), the application itself, and the API tokens that stand for either. A token is
//! `qsm_` + 43 characters, shown once and stored as its SHA-256 hash; an application token may
//! post events for any user, a user token acts only for its user.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::error::{Error, Result};
use crate::model::time::Time;

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

// ---- tokens ---------------------------------------------------------------------------------

pub const PREFIX: &str = "qsm_";
/// Longer than any token this program makes: longer ones are refused without a lookup.
pub const MAX_LEN: usize = 200;
/// The longest label of a token (API, pages, CLI).
pub const LABEL_MAX_CHARS: usize = 100;

/// A new token in its printable form.
pub fn generate_token() -> String {
    format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(crate::model::secret::random_bytes::<32>()))
}

/// What is stored of a token.
pub fn token_hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// True when `token` could be one of ours (checked before any lookup).
pub fn plausible_token(token: &str) -> bool {
    token.starts_with(PREFIX) && token.len() <= MAX_LEN
}

/// Checks a token label.
pub fn check_label(label: &str) -> Result<()> {
    if label.chars().count() > LABEL_MAX_CHARS {
        return Err(Error::invalid("label", format!("must be at most {LABEL_MAX_CHARS} characters")));
    }
    Ok(())
}

/// `user` or `app`, as the API and the CLI show a token's kind.
pub fn token_kind(user: Option<&str>) -> &'static str {
    if user.is_some() {
        "user"
    } else {
        "app"
    }
}

/// A token just made: the only time its text is shown.
#[derive(Debug, Serialize)]
pub struct Created {
    pub id: String,
    pub token: String,
    pub user: Option<String>,
    pub kind: &'static str,
}

#[derive(Debug, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub user: Option<String>,
    pub kind: &'static str,
    pub label: String,
    pub created_at: Time,
    pub last_used_at: Option<Time>,
    pub revoked: bool,
}
