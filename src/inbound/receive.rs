//! Taking a request to a source's URL: verified on its raw bytes, logged whatever the verdict
//! (headers redacted, a rejected body within the source's hourly budget), and, when accepted,
//! relayed to the source's forwards through the dispatcher. A stored reject is re-checked here
//! too, after the operator fixed a secret or a key.

use crate::config::Config;
use crate::inbound::verify::verify;
use crate::model::inbound::{
    as_pairs, redact, relay_content_type, Incoming, Outcome, Provider, Reason, Source, Verified,
};
use crate::model::{time, Error, Result};
use crate::store::inbound_requests::{self as log, Logged, Received};
use crate::store::{sources, Store};

/// A request that came to a source's URL, as the web server handed it over.
pub struct Arrived<'a> {
    pub remote_addr: &'a str,
    /// Every header with its exact bytes (for the log).
    pub raw_headers: &'a [(String, Vec<u8>)],
    /// The same headers as text (invalid UTF-8 shown as U+FFFD), for the verifiers.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// What became of a request: its log entry, and the verdict on it.
pub struct Taken {
    pub logged: Logged,
    pub verdict: std::result::Result<Verified, Reason>,
}

/// The active source whose URL token is `token`, if any.
pub fn source_at(store: &Store, token: &str) -> Result<Option<Source>> {
    Ok(sources::by_token(store.db(), token)?.filter(|s| s.active))
}

/// Verifies, logs and (when accepted) relays a request to `source`. Acknowledged only when
/// what was written is in the database file the configuration names (`Store::check_in_place`).
pub fn take(cfg: &Config, store: &mut Store, source: &Source, arrived: &Arrived<'_>) -> Result<Taken> {
    let keyring = cfg.keyring()?;
    let now = time::now_ms();
    let incoming = Incoming { headers: arrived.headers, body: arrived.body };
    let verdict = verify(cfg, store, &keyring, source, &incoming, now / 1000)?;
    let headers = redact(arrived.raw_headers);
    let content_type = relay_content_type(incoming.header("content-type"));
    let received = Received {
        source,
        received_at: now,
        remote_addr: arrived.remote_addr,
        headers: &headers,
        content_type: content_type.as_deref(),
        body: Some(arrived.body),
        body_size: arrived.body.len() as i64,
        verdict: verdict.as_ref().map_err(|r| *r),
        reject_budget: cfg.inbound_reject_budget,
    };
    let logged = store.write(|db| log::log(db, &cfg.notify(), &received, cfg.payload_retention))?;
    store.check_in_place()?;
    if verdict.is_ok() && logged.outcome == Outcome::Accepted && logged.deliveries > 0 && cfg.dispatch_on_intake {
        // Best effort: cron delivers it otherwise.
        let _ = crate::outbound::dispatch::start_detached();
    }
    Ok(Taken { logged, verdict })
}

/// Logs a request whose body was over the source's limit (and so not read): rejected,
/// `body_too_large`, with its headers and its announced size.
pub fn too_large(
    cfg: &Config,
    store: &mut Store,
    source: &Source,
    remote_addr: &str,
    raw_headers: &[(String, Vec<u8>)],
    size: i64,
) -> Result<Logged> {
    let headers = redact(raw_headers);
    let received = Received {
        source,
        received_at: time::now_ms(),
        remote_addr,
        headers: &headers,
        content_type: None,
        body: None,
        body_size: size,
        verdict: Err(Reason::BodyTooLarge),
        reject_budget: cfg.inbound_reject_budget,
    };
    store.write(|db| log::log(db, &cfg.notify(), &received, cfg.payload_retention))
}

/// Re-verifies a stored reject with the source's current secrets and keys (after the operator
/// fixed one), at the time it was received, and relays it when it now verifies.
pub fn recheck(cfg: &Config, store: &mut Store, request_id: &str) -> Result<Logged> {
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
    let pairs = as_pairs(&req.headers);
    let incoming = Incoming { headers: &pairs, body: &body };
    // Timestamps are judged against when the request arrived, not now.
    let verdict = verify(cfg, store, &keyring, &source, &incoming, req.received_at / 1000)?;
    store.write(|db| log::recheck(db, &source, &req, &body, verdict.as_ref().map_err(|r| *r), cfg.payload_retention))
}
