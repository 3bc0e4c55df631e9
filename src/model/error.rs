//! The library's one error type. Every layer below the edges returns [`Error`]; the web layer
//! alone turns it into an HTTP status (`web::error`), the CLI into an exit code and one line.

use std::fmt;

use serde::Serialize;

/// One problem with the input: where (a JSON path such as `$.url` or `$[2].data.to`) and what to
/// fix there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

/// What went wrong. Each message says what happened and, where it can, what to do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The input is wrong and nothing was changed: `message` sums up, `problems` name each place.
    Invalid { message: String, problems: Vec<Problem> },
    /// What was asked for does not exist, or is not the caller's (the answer is the same). The
    /// text names it: "endpoint ep_…".
    NotFound(String),
    /// The request conflicts with the current state; `code` is stable (`idempotency_conflict`,
    /// `endpoint_limit`, `in_flight`, `payload_expired`).
    Conflict { code: &'static str, message: String },
    /// The caller may not do this.
    Forbidden(String),
    /// More in one request than a limit allows; `code` is stable (`too_many_events`).
    TooLarge { code: &'static str, message: String },
    /// Another process held the database's write lock past the busy timeout: try again shortly.
    Busy,
    /// The database server cannot be reached, or refused the connection (a wrong password, TLS
    /// required but not offered): the message says which, for the operator; callers see 503.
    Unavailable(String),
    /// The installation is not set up for this (no secret key yet): the message names the fix,
    /// for the operator.
    Misconfigured(String),
    /// Anything else: a broken database file, a full disk, a bug. Logged; users see a generic text.
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad input in one named field (`url`, `--user`): "url: must start with https://".
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        let message = message.into();
        Error::Invalid {
            message: format!("{field}: {message}"),
            problems: vec![Problem { path: format!("$.{}", field.trim_start_matches('-')), message }],
        }
    }

    /// Several problems at once, summed up as "3 problems in the request; nothing was `done`".
    pub fn problems(problems: Vec<Problem>, done: &str) -> Error {
        let n = problems.len();
        Error::Invalid {
            message: format!("{n} problem{} in the request; nothing was {done}", if n == 1 { "" } else { "s" }),
            problems,
        }
    }

    pub fn not_found(what: impl Into<String>) -> Error {
        Error::NotFound(what.into())
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict { code, message: message.into() }
    }

    pub fn internal(context: &str, e: impl fmt::Display) -> Error {
        Error::Internal(format!("{context}: {e}"))
    }

    /// The field of a one-field [`Error::Invalid`] (`url`), to show the message beside it.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid { problems, .. } if problems.len() == 1 => problems[0].path.strip_prefix("$."),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { message, .. } => f.write_str(message),
            Error::NotFound(what) => write!(f, "{what} not found"),
            Error::Conflict { message, .. } | Error::TooLarge { message, .. } => f.write_str(message),
            Error::Forbidden(message)
            | Error::Misconfigured(message)
            | Error::Internal(message)
            | Error::Unavailable(message) => f.write_str(message),
            Error::Busy => f.write_str("the database is busy; try again shortly"),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::internal("JSON", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_field_errors_name_the_field_and_its_path() {
        let e = Error::invalid("url", "must name a host");
        assert_eq!(e.to_string(), "url: must name a host");
        assert_eq!(e.field(), Some("url"));
        let Error::Invalid { problems, .. } = &e else { panic!() };
        assert_eq!(problems[0], Problem { path: "$.url".into(), message: "must name a host".into() });
        let many = Error::problems(vec![problems[0].clone(), problems[0].clone()], "stored");
        assert_eq!(many.to_string(), "2 problems in the request; nothing was stored");
        assert_eq!(many.field(), None);
    }
}
