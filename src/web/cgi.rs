//! HTTP at the CGI boundary (RFC 3875): a [`Request`] built from CGI meta-variables and the body
//! stream, and a [`Response`] written back as CGI output. Handlers see neither the environment nor
//! the streams; tests build requests from a map and need no process.

use std::collections::HashMap;
use std::io::{Read, Write};

use serde_json::Value;

use crate::web::error::HttpError;

/// The CGI meta-variables as the web server passed them, values as bytes. A stranger chooses
/// the bytes of every header, the query and `PATH_INFO`, and they need not be UTF-8 (`Caf\xe9`
/// in Latin-1): nothing here assumes they are. Names that are not UTF-8 are dropped, since no
/// meta-variable this program reads has one.
#[derive(Debug, Clone, Default)]
pub struct CgiEnv {
    vars: HashMap<String, Vec<u8>>,
}

impl CgiEnv {
    /// This process's environment, read as bytes (`std::env::vars` panics on a non-UTF-8 value).
    pub fn from_process() -> CgiEnv {
        use std::os::unix::ffi::OsStringExt;
        CgiEnv { vars: std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_vec()))).collect() }
    }

    /// Sets a variable, returning its previous value.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Option<Vec<u8>> {
        self.vars.insert(name.into(), value.into())
    }

    /// A variable's exact bytes.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.vars.get(name).map(Vec::as_slice)
    }

    /// A variable as text, invalid UTF-8 shown as U+FFFD; empty when unset.
    pub fn text(&self, name: &str) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.bytes(name).unwrap_or_default())
    }

    /// A variable that is set, not empty and valid UTF-8 (`None` otherwise).
    pub fn utf8(&self, name: &str) -> Option<&str> {
        self.bytes(name).and_then(|b| std::str::from_utf8(b).ok()).filter(|v| !v.is_empty())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

impl<K: Into<String>, V: Into<Vec<u8>>> FromIterator<(K, V)> for CgiEnv {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> CgiEnv {
        CgiEnv { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// `PATH_INFO`, `/` when empty; bytes that are not UTF-8 read as U+FFFD (no route has one).
    pub path: String,
    /// `QUERY_STRING`, invalid UTF-8 as U+FFFD.
    pub query: String,
    /// Header names in lowercase with dashes (`content-type`, `authorization`); values as text,
    /// invalid UTF-8 shown as U+FFFD. [`Request::raw_headers`] has the exact bytes.
    pub headers: Vec<(String, String)>,
    /// The same headers with their values' exact bytes, for logging and verifying.
    pub raw_headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Set by the web server's own authentication. A name that is not UTF-8 is no one: shown
    /// lossily, two different names could read as the same user.
    pub remote_user: Option<String>,
    pub https: bool,
    /// `SCRIPT_NAME`, to build links below the script.
    pub script_name: String,
}

/// The request headers a CGI program sees (`HTTP_*`, `CONTENT_TYPE`, `CONTENT_LENGTH`), names
/// lowercase with dashes, values as their exact bytes, sorted.
pub fn headers_from_cgi(env: &CgiEnv) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<(String, Vec<u8>)> = env
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("HTTP_").map(|h| (h.to_ascii_lowercase().replace('_', "-"), v.to_vec())))
        .collect();
    for (var, name) in [("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")] {
        if let Some(v) = env.bytes(var).filter(|v| !v.is_empty()) {
            headers.retain(|(k, _)| k != name);
            headers.push((name.to_string(), v.to_vec()));
        }
    }
    headers.sort();
    headers
}

/// Header values as text, invalid UTF-8 shown as U+FFFD.
pub fn lossy_headers(raw: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    raw.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect()
}

impl Request {
    /// Query-string parameters, percent-decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    /// The first query parameter of that name, when not empty.
    pub fn query(&self, name: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v)
    }

    /// True when the body's media type, parameters aside (`application/json; charset=utf-8`),
    /// is `media`.
    fn body_is(&self, media: &str) -> bool {
        self.header("content-type")
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case(media))
    }

    pub fn is_json(&self) -> bool {
        self.body_is("application/json")
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(&self) -> Form {
        let pairs = if self.body_is("application/x-www-form-urlencoded") {
            url::form_urlencoded::parse(&self.body).into_owned().collect()
        } else {
            Vec::new()
        };
        Form { pairs }
    }

    /// A cookie's value (`Cookie: a=1; b=2`).
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.header("cookie")?
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_string())
    }

    /// This script's own public URL (`https://example.com/cgi-bin/webhooks.cgi`), from the
    /// request's Host header.
    pub fn script_url(&self) -> String {
        let host = self
            .header("host")
            .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '"', '<', '>']))
            .unwrap_or("localhost");
        format!("{}://{host}{}", if self.https { "https" } else { "http" }, self.script_name)
    }

    /// The URL of a path below this script (`/endpoints` → `/cgi-bin/webhooks.cgi/endpoints`).
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.script_name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A header's exact bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.raw_headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    /// Builds a request from CGI meta-variables and the body stream. The body is read up to
    /// `CONTENT_LENGTH`, or to EOF when that is absent (chunked bodies under Apache), never past
    /// `max_body`: a longer body is a 413 and is not read.
    pub fn from_cgi(env: &CgiEnv, mut stdin: impl Read, max_body: u64) -> Result<Request, HttpError> {
        let raw_headers = headers_from_cgi(env);
        let headers = lossy_headers(&raw_headers);
        let mut body = Vec::new();
        let length = env.text("CONTENT_LENGTH");
        match Some(length.trim()).filter(|s| !s.is_empty()) {
            Some(len) => {
                let n: u64 = len.parse().map_err(|_| HttpError::bad_request("CONTENT_LENGTH is not a number"))?;
                if n > max_body {
                    drain(&mut stdin, n);
                    return Err(HttpError::too_large(max_body));
                }
                body.reserve(n as usize);
                (&mut stdin)
                    .take(n)
                    .read_to_end(&mut body)
                    .map_err(|e| HttpError::bad_request(format!("reading the request body failed: {e}")))?;
                if (body.len() as u64) < n {
                    return Err(HttpError::bad_request("the request body ended before CONTENT_LENGTH bytes"));
                }
            }
            None => {
                (&mut stdin)
                    .take(max_body + 1)
                    .read_to_end(&mut body)
                    .map_err(|e| HttpError::bad_request(format!("reading the request body failed: {e}")))?;
                if body.len() as u64 > max_body {
                    drain(&mut stdin, DRAIN_LIMIT);
                    return Err(HttpError::too_large(max_body));
                }
            }
        }
        let path = env.text("PATH_INFO");
        Ok(Request {
            method: env.text("REQUEST_METHOD").to_ascii_uppercase(),
            path: if path.is_empty() { "/".into() } else { path.into_owned() },
            query: env.text("QUERY_STRING").into_owned(),
            headers,
            raw_headers,
            body,
            remote_user: env.utf8("REMOTE_USER").map(String::from),
            https: env.text("HTTPS").eq_ignore_ascii_case("on") || env.text("REQUEST_SCHEME") == "https",
            script_name: env.text("SCRIPT_NAME").into_owned(),
        })
    }
}

/// Decoded form fields; a name may repeat (checkboxes).
#[derive(Debug, Clone, Default)]
pub struct Form {
    pub pairs: Vec<(String, String)>,
}

impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs.iter().filter(|(k, _)| k == name).map(|(_, v)| v.clone()).collect()
    }
}

/// How much of an oversized body is read and thrown away before answering 413. Some servers
/// (Apache's mod_cgid) drop the connection without sending the answer when the CGI exits while
/// they are still writing the body to it; a bound keeps a hostile client from holding a process.
const DRAIN_LIMIT: u64 = 16 << 20;

fn drain(stdin: impl Read, up_to: u64) {
    let _ = std::io::copy(&mut stdin.take(up_to.min(DRAIN_LIMIT)), &mut std::io::sink());
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Sent with every response: no caching of user data, no framing (unless `WEBHOOKS_EMBED_ORIGINS`
/// allows some: `embed::apply`), no sniffing, no inline script.
const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", DEFAULT_CSP),
];

/// The Content-Security-Policy: nothing but our own stylesheets and images, forms posting to
/// us, and no frames (`embed::content_security_policy` puts allowed origins in their place).
pub const DEFAULT_CSP: &str =
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

impl Response {
    pub fn json(status: u16, value: &Value) -> Response {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response { status, headers: vec![("Content-Type".into(), "application/json".into())], body }
    }

    pub fn html(status: u16, html: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: html.into_bytes(),
        }
    }

    /// 303 See Other: where a form POST lands (Post/Redirect/Get).
    pub fn redirect(location: &str) -> Response {
        Response { status: 303, headers: vec![("Location".into(), location.to_string())], body: Vec::new() }
    }

    pub fn text(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, headers: vec![("Content-Type".into(), content_type.to_string())], body: body.into() }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn error(e: &HttpError) -> Response {
        let mut r = Response::json(e.status, &e.body());
        r.headers.extend(e.headers.iter().cloned());
        r
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Writes CGI output: a `Status` line, headers, a blank line, the body.
    pub fn write_cgi(&self, mut out: impl Write) -> std::io::Result<()> {
        let mut head = format!("Status: {} {}\r\n", self.status, reason(self.status));
        for (k, v) in &self.headers {
            // Header values come from code, never raw from a client; refuse line breaks anyway.
            let v = v.replace(['\r', '\n'], " ");
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        // A response with its own frame policy (pages framed by allowed origins) goes without
        // `X-Frame-Options: DENY`, which would refuse every frame.
        let own_policy = self.header("Content-Security-Policy").is_some_and(|p| !p.contains("frame-ancestors 'none'"));
        for (k, v) in SECURITY_HEADERS {
            if self.header(k).is_none() && !(own_policy && *k == "X-Frame-Options") {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> CgiEnv {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_exactly_content_length() {
        let e = env(&[
            ("REQUEST_METHOD", "post"),
            ("PATH_INFO", "/api/v1/events"),
            ("CONTENT_LENGTH", "3"),
            ("HTTP_X_A_B", "1"),
        ]);
        let r = Request::from_cgi(&e, &b"abcdef"[..], 100).unwrap();
        assert_eq!(r.body, b"abc");
        assert_eq!(r.method, "POST");
        assert_eq!(r.header("X-A-B"), Some("1"));
    }

    #[test]
    fn reads_to_eof_without_content_length_but_bounded() {
        let r = Request::from_cgi(&env(&[]), &b"chunked body"[..], 100).unwrap();
        assert_eq!(r.body, b"chunked body");
        assert_eq!(r.path, "/");
        let big = [b'x'; 101];
        assert_eq!(Request::from_cgi(&env(&[]), &big[..], 100).unwrap_err().status, 413);
        let e = env(&[("CONTENT_LENGTH", "101")]);
        assert_eq!(Request::from_cgi(&e, &big[..], 100).unwrap_err().status, 413);
        let e = env(&[("CONTENT_LENGTH", "50")]);
        assert_eq!(Request::from_cgi(&e, &b"short"[..], 100).unwrap_err().status, 400);
    }

    #[test]
    fn output_has_status_and_security_headers() {
        let mut out = Vec::new();
        Response::json(202, &serde_json::json!({"ok": true})).write_cgi(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Status: 202 Accepted\r\n"));
        for h in [
            "Cache-Control: no-store",
            "X-Frame-Options: DENY",
            "X-Content-Type-Options: nosniff",
            "Content-Security-Policy: default-src 'none'",
            "Referrer-Policy:",
        ] {
            assert!(text.contains(h), "{h}");
        }
    }
}
