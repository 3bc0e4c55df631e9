//! `/in/{token}`: where providers post (docs/inbound.md). The source is found by its URL token
//! before the body is read, so that its own size limit applies; the raw bytes are verified
//! before anything parses them; every request to a known source is logged, rejects included,
//! and an accepted one is relayed through the dispatcher. Answers are what providers understand:
//! 200 accepted or duplicate, 401 for any verification failure (never 403), 404 for an unknown
//! or disabled source (never 410), 413 over the limit, 503 with `Retry-After` when busy.

use std::io::Read;

use serde_json::json;

use crate::config::Config;
use crate::model::inbound::{
    as_pairs, circle_signature, is_circle_key_id, redact, relay_content_type, verify, Incoming, Material, Outcome,
    Provider, Reason, Source, Verified, CIRCLE_KEY_URL, KEY_FETCHES_PER_MINUTE, KEY_MISS_TTL_MS,
};
use crate::model::{time, Error};
use crate::outbound::keys::{self, Fetched};
use crate::store::inbound::{self as log, Logged, Received};
use crate::store::{sources, Store};
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
    let keyring = cfg.keyring()?;
    let mut store = Store::open(&cfg.database)?;
    let Some(source) = sources::by_token(store.db(), token)?.filter(|s| s.active) else {
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
    let now = time::now_ms();
    let remote = env.text("REMOTE_ADDR").into_owned();
    let limit = source.max_body.unwrap_or(cfg.inbound_max_body);
    let req = match Request::from_cgi(env, stdin, limit) {
        Ok(r) => r,
        Err(e) if e.status == 413 => {
            let size = env.text("CONTENT_LENGTH").trim().parse::<i64>().unwrap_or(limit as i64 + 1);
            let headers = redact(&headers_from_cgi(env));
            let received = Received {
                source: &source,
                received_at: now,
                remote_addr: &remote,
                headers: &headers,
                content_type: None,
                body: None,
                body_size: size,
                verdict: Err(Reason::BodyTooLarge),
                reject_budget: cfg.inbound_reject_budget,
            };
            let logged = store.write(|db| log::log(db, &cfg.notify(), &received, cfg.payload_retention))?;
            return Ok(rejected(&logged, Reason::BodyTooLarge, Some(limit)));
        }
        Err(e) => return Ok(answer(e.status, json!({"code": "E_REQUEST", "message": e.message}))),
    };
    let secrets = sources::secrets(store.db(), &keyring, &source.id, now)?;
    let incoming = Incoming { headers: &req.headers, body: &req.body };
    let verdict = judge(cfg, &mut store, &keyring, &source, &incoming, &secrets, now / 1000)?;
    let headers = redact(&req.raw_headers);
    let content_type = relay_content_type(req.header("content-type"));
    let received = Received {
        source: &source,
        received_at: now,
        remote_addr: &remote,
        headers: &headers,
        content_type: content_type.as_deref(),
        body: Some(&req.body),
        body_size: req.body.len() as i64,
        verdict: verdict.as_ref().map_err(|r| *r),
        reject_budget: cfg.inbound_reject_budget,
    };
    let logged = store.write(|db| log::log(db, &cfg.notify(), &received, cfg.payload_retention))?;
    // Accepted only into the file the configured path names (not one moved away meanwhile).
    store.check_in_place()?;
    drop(store);
    match (&verdict, logged.outcome) {
        (Err(reason), _) => Ok(rejected(&logged, *reason, None)),
        (Ok(v), outcome) => {
            if outcome == Outcome::Accepted && logged.deliveries > 0 && cfg.dispatch_on_intake {
                // Best effort: cron delivers it otherwise.
                let _ = crate::outbound::dispatch::start_detached();
            }
            let mut body = json!({"status": outcome.as_str(), "id": logged.id});
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

/// Verifies a request as its source's provider documents, at `at_s` (Unix seconds): with the
/// source's secrets and, for Circle, the key the request names (from the store, or once from the
/// key server).
fn judge(
    cfg: &Config,
    store: &mut Store,
    keyring: &crate::model::secret::Keyring,
    source: &Source,
    incoming: &Incoming<'_>,
    secrets: &[String],
    at_s: i64,
) -> crate::model::Result<Result<Verified, Reason>> {
    let public_key = match source.provider {
        Provider::Circle => {
            // The signature's form first: a request that could never verify costs no fetch.
            if let Err(reason) = circle_signature(incoming) {
                return Ok(Err(reason));
            }
            match circle_key(cfg, store, keyring, source, incoming.header("x-circle-key-id"))? {
                Ok(key) => key,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        _ => None,
    };
    let m = Material {
        secrets,
        settings: &source.settings,
        public_key: public_key.as_deref(),
        now_s: at_s,
        tolerance_s: cfg.skew_tolerance.as_secs() as i64,
    };
    Ok(verify(source.provider, &m, incoming))
}

/// The DER key a Circle request names: stored, or fetched from the key server and stored for
/// good. `Err` is the reason to reject with (unknown key, or key server unavailable).
fn circle_key(
    cfg: &Config,
    store: &mut Store,
    keyring: &crate::model::secret::Keyring,
    source: &Source,
    key_id: Option<&str>,
) -> crate::model::Result<Result<Option<Vec<u8>>, Reason>> {
    let Some(key_id) = key_id.map(str::trim).filter(|k| !k.is_empty()) else {
        return Ok(Err(Reason::SignatureMissing));
    };
    if !is_circle_key_id(key_id) {
        return Ok(Err(Reason::KeyUnknown));
    }
    if let Some(der) = sources::public_key(store.db(), &source.id, key_id)? {
        return Ok(Ok(Some(der)));
    }
    // A key id the server did not know a few minutes ago is not asked for again, and a flood of
    // made-up ids is not a flood of requests to the key server.
    let now = time::now_ms();
    if sources::key_miss(store.db(), &source.id, key_id)?.is_some_and(|at| now - at < KEY_MISS_TTL_MS) {
        return Ok(Err(Reason::KeyUnknown));
    }
    if sources::key_fetches_since(store.db(), &source.id, now - 60_000)? >= KEY_FETCHES_PER_MINUTE {
        eprintln!("webhooks-cgi: source {}: more than {KEY_FETCHES_PER_MINUTE} key fetches in a minute; key {key_id} refused for now", source.name);
        return Ok(Err(Reason::KeyUnavailable));
    }
    let api_key = sources::api_key(store.db(), keyring, &source.id)?;
    let url = source.settings.key_url.as_deref().unwrap_or(CIRCLE_KEY_URL);
    // Counted before it is made, whatever the key server answers: the cap holds when it fails.
    store.write(|db| sources::add_key_fetch(db, &source.id, now))?;
    match keys::fetch(cfg, url, api_key.as_deref(), key_id) {
        Fetched::Key(der) => {
            store.write(|db| sources::add_public_key(db, &source.id, key_id, &der, "fetched"))?;
            Ok(Ok(Some(der)))
        }
        Fetched::Unknown(why) => {
            eprintln!("webhooks-cgi: source {}: Circle key {key_id}: {why}", source.name);
            store.write(|db| sources::add_key_miss(db, &source.id, key_id, now))?;
            Ok(Err(Reason::KeyUnknown))
        }
        Fetched::Unavailable(why) => {
            eprintln!("webhooks-cgi: source {}: Circle key {key_id}: {why}", source.name);
            Ok(Err(Reason::KeyUnavailable))
        }
    }
}

/// Re-verifies a stored reject with the source's current secrets and keys (after the operator
/// fixed one), at the time it was received, and relays it when it now verifies.
pub fn recheck(cfg: &Config, store: &mut Store, request_id: &str) -> crate::model::Result<Logged> {
    let keyring = cfg.keyring()?;
    let req = log::get(store.db(), request_id)?;
    let source = sources::get(store.db(), &req.source_id)?;
    if req.outcome != Outcome::Rejected {
        return Err(Error::conflict(
            "not_rejected",
            format!("request {request_id} was {}: only rejected requests are re-checked", req.outcome.as_str()),
        ));
    }
    let Some(body) = log::body(store.db(), request_id)? else {
        return Err(Error::conflict(
            "body_gone",
            format!("request {request_id} has no stored body (over the size limit, or past WEBHOOKS_INBOUND_BODY_RETENTION)"),
        ));
    };
    if source.provider == Provider::Postmark {
        return Err(Error::conflict(
            "credentials_not_stored",
            "Postmark's credentials are never stored, so its rejects cannot be re-checked; Postmark retries them itself once the password is right",
        ));
    }
    let now = time::now_ms();
    let secrets = sources::secrets(store.db(), &keyring, &source.id, now)?;
    let pairs = as_pairs(&req.headers);
    let incoming = Incoming { headers: &pairs, body: &body };
    // Timestamps are judged against when the request arrived, not now.
    let verdict = judge(cfg, store, &keyring, &source, &incoming, &secrets, req.received_at / 1000)?;
    store.write(|db| log::recheck(db, &source, &req, &body, verdict.as_ref().map_err(|r| *r), cfg.payload_retention))
}
