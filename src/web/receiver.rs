//! `/in/{token}`: where providers post (docs/inbound.md). The source is found by its URL token
//! before the body is read, so that its own size limit applies; then `inbound::receive::take`
//! verifies the raw bytes before anything parses them, logs the request, rejects included, and
//! relays an accepted one through the dispatcher. Answers are what providers understand:
//! 200 accepted or duplicate, 401 for any verification failure (never 403), 404 for an unknown
//! or disabled source (never 410), 413 over the limit, 503 with `Retry-After` when busy.

use std::io::Read;

use serde_json::json;

use crate::config::Config;
use crate::inbound::receive::{self, Arrived};
use crate::model::inbound::{is_woocommerce_ping, Provider, Reason};
use crate::model::Error;
use crate::store::inbound_requests::Logged;
use crate::store::Store;
use crate::web::cgi::{headers_from_cgi, CgiEnv, Request, Response};
use crate::web::error::HttpError;

/// Seconds a provider is asked to wait when the database is busy or a key server is down.
const RETRY_AFTER: &str = "10";

/// Whether a CGI request is for a source's URL.
pub fn is_inbound(path: &str) -> bool {
    path.starts_with("/in/")
}

/// Answers a request to `/in/{token}` from the CGI environment and body stream.
pub fn respond(cfg: &Config, env: &CgiEnv, stdin: impl Read) -> Response {
    match receive(cfg, env, stdin) {
        Ok(r) => r,
        Err(e) => failure(e),
    }
}

/// What `/in/` answers when it cannot take a request: always JSON, and 503 with `Retry-After`
/// for every condition that passes (busy, the database unreachable, moved, full or read-only,
/// the configuration being fixed), so that the provider sends again; 500 only for a bug. The
/// codes are listed in docs/inbound.md. The reason goes to the web server's error log.
pub fn failure(e: Error) -> Response {
    let (status, code, message) = match &e {
        Error::Busy => return busy(),
        Error::Unavailable(m) => {
            eprintln!("webhooks-cgi: /in/: {m}");
            (503, "E_UNAVAILABLE", "the database is unavailable; send again shortly")
        }
        Error::Misconfigured(m) => {
            eprintln!("webhooks-cgi: /in/: configuration error: {m}");
            (503, "E_MISCONFIGURED", "this receiver is not set up correctly yet; send again later")
        }
        _ => {
            let e = HttpError::from(e);
            return answer(e.status.max(500), json!({"code": "E_INTERNAL", "message": e.message}));
        }
    };
    answer(status, json!({"code": code, "message": message})).with_header("Retry-After", RETRY_AFTER)
}

fn answer(status: u16, body: serde_json::Value) -> Response {
    Response::json(status, &body).with_header("Cache-Control", "no-store")
}

fn busy() -> Response {
    answer(503, json!({"code": "E_BUSY", "message": "the database is busy; send again shortly"}))
        .with_header("Retry-After", RETRY_AFTER)
}

fn not_found() -> Response {
    answer(404, json!({"code": "E_NOT_FOUND", "message": "no active source has this address"}))
}

fn receive(cfg: &Config, env: &CgiEnv, stdin: impl Read) -> crate::model::Result<Response> {
    let path = env.text("PATH_INFO");
    let token = path.trim_end_matches('/').strip_prefix("/in/").unwrap_or("");
    if token.is_empty() || token.contains('/') {
        return Ok(not_found());
    }
    // A missing WEBHOOKS_SECRET_KEY is a 503 before anything is read (E_MISCONFIGURED).
    cfg.keyring()?;
    let mut store = Store::open(&cfg.database)?;
    let Some(source) = receive::source_at(&store, token)? else {
        return Ok(not_found());
    };
    match env.text("REQUEST_METHOD").as_ref() {
        // Providers check the URL before they send to it (Circle with HEAD, others with GET).
        "GET" | "HEAD" => return Ok(answer(200, json!({"status": "ok"}))),
        "POST" => {}
        _ => {
            return Ok(answer(405, json!({"code": "E_METHOD", "message": "POST a webhook here"}))
                .with_header("Allow", "GET, HEAD, POST"))
        }
    }
    let remote = env.text("REMOTE_ADDR").into_owned();
    let limit = source.max_body.unwrap_or(cfg.inbound_max_body);
    let req = match Request::from_cgi(env, stdin, limit) {
        Ok(r) => r,
        Err(e) if e.status == 413 => {
            let size = env.text("CONTENT_LENGTH").trim().parse::<i64>().unwrap_or(limit as i64 + 1);
            let logged = receive::too_large(cfg, &mut store, &source, &remote, &headers_from_cgi(env), size)?;
            return Ok(rejected(&logged, Reason::BodyTooLarge, Some(limit)));
        }
        Err(e) => return Ok(answer(e.status, json!({"code": "E_REQUEST", "message": e.message}))),
    };
    if source.provider == Provider::Woocommerce && is_woocommerce_ping(&req.headers, &req.body) {
        return Ok(answer(200, json!({"status": "ping"})));
    }
    let arrived =
        Arrived { remote_addr: &remote, raw_headers: &req.raw_headers, headers: &req.headers, body: &req.body };
    let taken = receive::take(cfg, &mut store, &source, &arrived)?;
    match &taken.verdict {
        Err(reason) => Ok(rejected(&taken.logged, *reason, None)),
        Ok(v) => {
            let mut body = json!({"status": taken.logged.outcome.as_str(), "id": taken.logged.id});
            if let Some(c) = &v.challenge {
                body["challenge"] = json!(c);
            }
            Ok(answer(200, body))
        }
    }
}

fn rejected(logged: &Logged, reason: Reason, limit: Option<u64>) -> Response {
    let message = match limit {
        Some(n) => format!("the body is larger than this source takes ({n} bytes)"),
        None => reason.meaning().to_string(),
    };
    let r = answer(
        reason.status(),
        json!({"code": reason.answer_code(), "reason": reason.as_str(), "message": message, "id": logged.id}),
    );
    if reason.status() == 503 {
        return r.with_header("Retry-After", RETRY_AFTER);
    }
    r
}
