//! Errors that carry meaning across the program: a field that failed validation ([`Invalid`]) and
//! an HTTP API error ([`ApiError`]) with its status, stable code and JSON form.

use std::fmt;

use serde_json::{json, Value};

/// Bad input in one named field; says what to fix. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Invalid {
        Invalid { field, message: message.into() }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for Invalid {}

/// Something the caller asked for does not exist (or is not theirs: the answer is the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound(pub String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} not found", self.0)
    }
}

impl std::error::Error for NotFound {}

/// An API error: `{"error":{"code","message","details"}}` with an HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: Value::Null, headers: Vec::new() }
    }

    /// Any library error as an API error (see the `From<anyhow::Error>` mapping).
    pub fn of(e: impl Into<anyhow::Error>) -> ApiError {
        ApiError::from(e.into())
    }

    pub fn details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> ApiError {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "unauthorized", message).header("WWW-Authenticate", "Bearer")
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(404, "not_found", message)
    }
    pub fn method_not_allowed(allow: &str) -> ApiError {
        ApiError::new(405, "method_not_allowed", format!("this path accepts {allow}")).header("Allow", allow)
    }
    pub fn too_large(limit: u64) -> ApiError {
        ApiError::new(
            413,
            "payload_too_large",
            format!("the request body is over the {limit}-byte limit (WEBHOOKS_MAX_BODY)"),
        )
    }
    pub fn unsupported_media_type() -> ApiError {
        ApiError::new(415, "unsupported_media_type", "send the body as Content-Type: application/json")
    }
    pub fn invalid(message: impl Into<String>, details: Value) -> ApiError {
        ApiError::new(422, "invalid", message).details(details)
    }
    pub fn busy() -> ApiError {
        ApiError::new(503, "busy", "the database is busy; try again shortly").header("Retry-After", "2")
    }
    pub fn internal() -> ApiError {
        ApiError::new(500, "internal", "an internal error occurred; it has been logged")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> ApiError {
        ApiError::invalid(e.to_string(), json!([{"path": format!("$.{}", e.field), "message": e.message}]))
    }
}

/// Maps a library error to the API: validation → 422, not found → 404, busy → 503, else 500.
impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> ApiError {
        if let Some(api) = e.downcast_ref::<ApiError>() {
            return api.clone();
        }
        if let Some(inv) = e.downcast_ref::<Invalid>() {
            return inv.clone().into();
        }
        if let Some(nf) = e.downcast_ref::<NotFound>() {
            return ApiError::not_found(nf.to_string());
        }
        if crate::db::is_busy(&e) {
            return ApiError::busy();
        }
        eprintln!("webhooks: internal error: {e:#}");
        ApiError::internal()
    }
}
