//! The CGI program: read the request (`http`), route it (`routes`), write the response. A
//! panic or a configuration error still answers cleanly (an HTML page for pages, JSON for the
//! API) and leaves one line in the web server's error log.

use std::collections::HashMap;

use crate::web::error::HttpError;
use crate::web::http::{Request, Response};

/// The argument with which `webhooks-cgi` runs as the after-intake dispatcher
/// (`WEBHOOKS_DISPATCH_ON_INTAKE`, started by `outbound::dispatch::start_detached`).
pub use crate::outbound::dispatch::ON_INTAKE_ARG;

/// `webhooks-cgi --dispatch-on-intake`: one lock-guarded dispatcher after an intake.
pub fn on_intake_main() -> i32 {
    let result = crate::config::Config::load()
        .map_err(|e| format!("{e:#}"))
        .and_then(|cfg| crate::outbound::dispatch::on_intake(&cfg).map_err(|e| e.to_string()));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("webhooks dispatch (on intake): {e}");
            1
        }
    }
}

/// The whole CGI program: read the request, handle it, write the response. A panic becomes a
/// clean 500 and one line on stderr (the server's error log).
pub fn main() -> i32 {
    let env: HashMap<String, String> = std::env::vars().collect();
    let response = catching(&env, || respond(&env));
    match response.write_cgi(std::io::stdout().lock()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Runs a handler; a panic becomes a clean 500 (HTML for pages, JSON for the API) and one line
/// on stderr, which the web server writes to its error log.
pub fn catching(env: &HashMap<String, String>, handler: impl FnOnce() -> Response) -> Response {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the one line below replaces the default report
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(handler));
    std::panic::set_hook(previous);
    match result {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let path = env.get("PATH_INFO").map(String::as_str).unwrap_or("/");
            eprintln!(
                "webhooks-cgi: internal error (panic: {what}) handling {} {path}",
                env.get("REQUEST_METHOD").map(String::as_str).unwrap_or("?")
            );
            let e = if path.starts_with("/api/") {
                HttpError::internal()
            } else {
                HttpError::new(
                    500,
                    "internal",
                    "Something went wrong on our side. It has been logged; please try again later.",
                )
            };
            early_error(env, &e)
        }
    }
}

/// An error answered before the router runs: JSON for the API, an HTML page for everything
/// else (a browser must never be shown a raw JSON error).
fn early_error(env: &HashMap<String, String>, e: &HttpError) -> Response {
    let path = env.get("PATH_INFO").map(String::as_str).unwrap_or("/");
    if path.starts_with("/api/") {
        return Response::error(e);
    }
    let base = env.get("SCRIPT_NAME").map(String::as_str).unwrap_or("");
    let mut r = Response::html(e.status, crate::web::views::error_page(e.status, &e.message, base));
    r.headers.extend(e.headers.iter().filter(|(k, _)| k != "WWW-Authenticate").cloned());
    r
}

fn respond(env: &HashMap<String, String>) -> Response {
    let cfg = match crate::config::Config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("webhooks-cgi: configuration error: {e:#}");
            let path = env.get("PATH_INFO").map(String::as_str).unwrap_or("/");
            let message = if path.starts_with("/api/") {
                "the server's webhook configuration is invalid; the operator can see why in the error log"
            } else {
                "This service is not set up correctly yet. The site's operator can see why in the web server's error log."
            };
            return early_error(env, &HttpError::new(500, "misconfigured", message));
        }
    };
    match Request::from_cgi(env, std::io::stdin().lock(), cfg.max_body) {
        Ok(req) => crate::web::routes::handle(&cfg, &req),
        Err(e) => early_error(env, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_panic_becomes_a_clean_500() {
        let page = catching(&env(&[("PATH_INFO", "/endpoints")]), || panic!("boom <script>"));
        assert_eq!(page.status, 500);
        let html = String::from_utf8(page.body).unwrap();
        assert!(html.contains("<h1>500 Internal Server Error</h1>") && !html.contains("boom"));
        let api = catching(&env(&[("PATH_INFO", "/api/v1/endpoints")]), || panic!("boom"));
        assert_eq!(api.status, 500);
        let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
        assert_eq!(v["error"]["code"], "internal");
    }
}
