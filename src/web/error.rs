//! HTTP errors: `{"error":{"code","message","details"}}` with a status. The one place where a
//! library error ([`crate::model::Error`]) gets its HTTP status.

use std::fmt;

use serde_json::{json, Value};

use crate::model::Error;

#[derive(Debug, Clone)]
pub struct HttpError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    pub headers: Vec<(String, String)>,
}

impl HttpError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> HttpError {
        HttpError { status, code, message: message.into(), details: Value::Null, headers: Vec::new() }
    }

    pub fn details(mut self, details: Value) -> HttpError {
        self.details = details;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> HttpError {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message, "details": self.details}})
    }

    pub fn bad_request(message: impl Into<String>) -> HttpError {
        HttpError::new(400, "bad_request", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> HttpError {
        HttpError::new(401, "unauthorized", message).header("WWW-Authenticate", "Bearer")
    }
    pub fn forbidden(message: impl Into<String>) -> HttpError {
        HttpError::new(403, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> HttpError {
        HttpError::new(404, "not_found", message)
    }
    pub fn method_not_allowed(allow: &str) -> HttpError {
        HttpError::new(405, "method_not_allowed", format!("this path accepts {allow}")).header("Allow", allow)
    }
    pub fn too_large(limit: u64) -> HttpError {
        HttpError::new(
            413,
            "payload_too_large",
            format!("the request body is over the {limit}-byte limit (WEBHOOKS_MAX_BODY)"),
        )
    }
    pub fn unsupported_media_type() -> HttpError {
        HttpError::new(415, "unsupported_media_type", "send the body as Content-Type: application/json")
    }
    pub fn malformed_json(e: &serde_json::Error) -> HttpError {
        HttpError::new(400, "malformed_json", format!("the body is not valid JSON: {e}"))
    }
    pub fn busy() -> HttpError {
        HttpError::new(503, "busy", "the database is busy; try again shortly").header("Retry-After", "2")
    }
    pub fn internal() -> HttpError {
        HttpError::new(500, "internal", "an internal error occurred; it has been logged")
    }
    pub fn misconfigured() -> HttpError {
        HttpError::new(
            500,
            "misconfigured",
            "the server is not set up correctly yet; the operator can see why in the error log",
        )
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

/// Invalid input → 422 with every problem in `details`; not found → 404; conflict → 409;
/// forbidden → 403; too large → 413; busy or unavailable → 503 with `Retry-After` (the reason an
/// unavailable database gave goes to the server's error log); misconfigured and internal →
/// 500, their text written to the server's error log and never to the client.
impl From<Error> for HttpError {
    fn from(e: Error) -> HttpError {
        match e {
            Error::Invalid { message, problems } => {
                HttpError::new(422, "invalid", message).details(serde_json::to_value(problems).unwrap_or_default())
            }
            Error::NotFound(_) => HttpError::not_found(e.to_string()),
            Error::Conflict { code, message } => HttpError::new(409, code, message),
            Error::Forbidden(message) => HttpError::forbidden(message),
            Error::TooLarge { code, message } => HttpError::new(413, code, message),
            Error::Busy => HttpError::busy(),
            Error::Unavailable(message) => {
                eprintln!("webhooks-cgi: {message}");
                HttpError::new(503, "unavailable", "the database is unavailable; try again shortly")
                    .header("Retry-After", "30")
            }
            Error::Misconfigured(message) => {
                eprintln!("webhooks-cgi: {message}");
                HttpError::misconfigured()
            }
            Error::Internal(message) => {
                eprintln!("webhooks: internal error: {message}");
                HttpError::internal()
            }
        }
    }
}

impl From<serde_json::Error> for HttpError {
    fn from(e: serde_json::Error) -> HttpError {
        HttpError::from(Error::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_error_gets_its_status() {
        let cases = [
            (Error::invalid("url", "bad"), 422, "invalid"),
            (Error::not_found("endpoint ep_1"), 404, "not_found"),
            (Error::conflict("in_flight", "x"), 409, "in_flight"),
            (Error::Forbidden("no".into()), 403, "forbidden"),
            (Error::TooLarge { code: "too_many_events", message: "x".into() }, 413, "too_many_events"),
            (Error::Busy, 503, "busy"),
            (Error::Unavailable("password authentication failed: secret detail".into()), 503, "unavailable"),
            (Error::Misconfigured("no key".into()), 500, "misconfigured"),
            (Error::Internal("secret detail".into()), 500, "internal"),
        ];
        for (e, status, code) in cases {
            let h = HttpError::from(e);
            assert_eq!((h.status, h.code), (status, code));
            assert!(!h.message.contains("secret detail") && !h.message.contains("no key"), "{h}");
        }
        let h = HttpError::from(Error::invalid("url", "bad"));
        assert_eq!(h.details, json!([{"path": "$.url", "message": "bad"}]));
        assert_eq!(HttpError::from(Error::not_found("endpoint ep_1")).message, "endpoint ep_1 not found");
    }
}
