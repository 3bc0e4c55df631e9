//! Operational events leave here: each notice of the outbox (`store::notices`) goes to the
//! operator webhook (`WEBHOOKS_OPERATOR_URL`, signed with `WEBHOOKS_OPERATOR_SECRET` exactly like
//! a delivery) and, for the events that ask someone to act, by mail through the host's sendmail
//! (`WEBHOOKS_SENDMAIL` to `WEBHOOKS_OPERATOR_EMAIL`). A channel that fails is tried again at
//! the retry schedule's pace, its last interval repeating, until it succeeds; it never changes
//! an endpoint's state, and the banner on the pages comes from the endpoints, not from here.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::config::Config;
use crate::model::address::{Cidr, Policy};
use crate::model::delivery::next_delay;
use crate::model::secret::{self, SigningKey};
use crate::model::{time, Error, Result};
use crate::outbound::send::Sender;
use crate::outbound::signing;
use crate::store::notices::{self, Channel, Due};
use crate::store::Store;

/// What one run sent.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Sent {
    pub webhooks: usize,
    pub emails: usize,
    /// Channel attempts that failed (tried again later).
    pub failed: usize,
}

/// Sends what is due, until nothing is or `deadline` (Unix ms) comes.
pub fn send_due(store: &mut Store, cfg: &Config, run_id: &str, deadline: i64) -> Result<Sent> {
    let mut sent = Sent::default();
    let sender = cfg.operator_url.as_ref().map(|_| {
        let everywhere = Policy { allowed: vec![Cidr::everything_v4(), Cidr::everything_v6()] };
        Sender::with_policy(cfg, cfg.request_timeout, everywhere)
    });
    let key = match &cfg.operator_secret {
        Some(s) => Some(SigningKey { id: "operator".into(), key: secret::decode(s)? }),
        None => None,
    };
    // One notice at a time: each may take a request and a mail, each bounded by the request
    // timeout, and none is started that could end after the run's budget.
    let timeout = cfg.request_timeout.as_millis() as i64;
    loop {
        let now = time::now_ms();
        if now + 2 * timeout > deadline {
            return Ok(sent);
        }
        let lease = now + 2 * timeout + cfg.lease().as_millis() as i64;
        let channels = (sender.is_some() && key.is_some(), cfg.operator_email.is_some());
        let due = store.write(|db| notices::claim(db, run_id, now, lease, 1, channels))?;
        if due.is_empty() {
            return Ok(sent);
        }
        for n in due {
            let mut results = Vec::new();
            if let (Some(attempt), Some(url), Some(sender), Some(key)) = (n.webhook, &cfg.operator_url, &sender, &key) {
                let result = post(sender, &cfg.header_prefix, key, url, &n, attempt);
                tally(&mut sent, result.is_ok(), Channel::Webhook);
                results.push((Channel::Webhook, result.map_err(|why| (why, retry_at(cfg, attempt)))));
            }
            if let (Some(attempt), Some(to)) = (n.email, &cfg.operator_email) {
                let result = mail(&cfg.sendmail, cfg.request_timeout, to, &n, cfg.public_url.as_deref());
                tally(&mut sent, result.is_ok(), Channel::Email);
                results.push((Channel::Email, result.map_err(|why| (why, retry_at(cfg, attempt)))));
            }
            // Both channels' results, and the end of the lease, in one transaction.
            store.write(|db| {
                for (channel, result) in results {
                    notices::record(db, &n.id, run_id, channel, result)?;
                }
                notices::release(db, &n.id, run_id)
            })?;
        }
    }
}

fn tally(sent: &mut Sent, ok: bool, channel: Channel) {
    match (ok, channel) {
        (true, Channel::Webhook) => sent.webhooks += 1,
        (true, Channel::Email) => sent.emails += 1,
        (false, _) => sent.failed += 1,
    }
}

/// The next try after failed attempt number `attempt`: the retry schedule, its last interval
/// repeating for as long as it takes.
fn retry_at(cfg: &Config, attempt: u32) -> i64 {
    let wait = next_delay(&cfg.retry_schedule, attempt, u32::MAX).unwrap_or(Duration::from_secs(60));
    time::now_ms() + wait.as_millis() as i64
}

/// Posts the notice, signed like a delivery; a 2xx takes it.
fn post(
    sender: &Sender,
    prefix: &str,
    key: &SigningKey,
    url: &str,
    n: &Due,
    attempt: u32,
) -> std::result::Result<(), String> {
    let headers = signing::headers(
        prefix,
        std::slice::from_ref(key),
        &signing::Delivery {
            event_id: &n.id,
            event_type: &n.event_type,
            attempt,
            timestamp: time::now_ms() / 1000,
            body: n.payload.as_bytes(),
        },
    );
    let outcome = sender.post(url, &headers, n.payload.as_bytes());
    match outcome.error_code {
        None => Ok(()),
        Some(code) => Err(format!("{code}: {}", outcome.error.unwrap_or_default())),
    }
}

/// Hands the notice to sendmail; exit status 0 takes it.
fn mail(
    command: &str,
    timeout: Duration,
    to: &str,
    n: &Due,
    public_url: Option<&str>,
) -> std::result::Result<(), String> {
    let message = message(to, n, public_url).map_err(|e| e.to_string())?;
    let mut words = command.split_whitespace();
    let program = words.next().ok_or("WEBHOOKS_SENDMAIL is empty")?;
    let mut child = Command::new(program)
        .args(words)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program} (WEBHOOKS_SENDMAIL): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(message.as_bytes()).map_err(|e| format!("writing to {program}: {e}"))?;
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                return Err(format!("{program} exited with {status}: {}", err.trim()));
            }
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {} s (WEBHOOKS_REQUEST_TIMEOUT)",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// The mail for a notice: who it is about, what happened, what to do, and, when
/// `WEBHOOKS_PUBLIC_URL` is set, the page to do it on.
pub fn message(to: &str, n: &Due, public_url: Option<&str>) -> Result<String> {
    let v: Value = serde_json::from_str(&n.payload)?;
    let d = &v["data"];
    let text = |k: &str| d[k].as_str().unwrap_or("").replace(['\r', '\n'], " ");
    let last = match (d["last_status_code"].as_u64(), d["last_error_code"].as_str()) {
        (Some(s), Some(c)) => format!("the last attempt got {s} ({c})"),
        (None, Some(c)) => format!("the last attempt failed with {c}"),
        _ => "no attempt has succeeded".into(),
    };
    let user = v["user"].as_str().unwrap_or("").replace(['\r', '\n'], " ");
    let (subject, body) = match n.event_type.as_str() {
        "endpoint.failing" => (
            format!("Webhook endpoint failing: {}", text("url")),
            format!(
                "Deliveries to {} (endpoint {}, user {user}) have failed since {}, and {last}.\n\n{}\n\nThe deliveries: webhooks deliveries --endpoint {}\n",
                text("url"),
                text("endpoint_id"),
                text("fail_since"),
                match d["disable_at"].as_str() {
                    Some(at) => format!("It will be disabled at {at} unless a delivery succeeds first; its new events are then held, not lost."),
                    None => "It will not be disabled for this (WEBHOOKS_DISABLE_AFTER=off).".into(),
                },
                text("endpoint_id"),
            ),
        ),
        "endpoint.disabled" => (
            format!("Webhook endpoint disabled: {}", text("url")),
            format!(
                "The endpoint {} (user {user}) was disabled: {}, and {last}.\n\nIts new events are held ({} so far), not sent, for WEBHOOKS_HOLD_RETENTION. Once the receiver works, enable it again and send them:\n\n    webhooks endpoint enable {} --replay\n\nor use Enable on its page.\n",
                text("url"),
                if text("reason") == "gone" { "the receiver answered 410 Gone" } else { "every delivery failed for too long" },
                d["held"].as_u64().unwrap_or(0),
                text("endpoint_id"),
            ),
        ),
        "source.silent" => (
            format!("Inbound source silent: {}", text("name")),
            format!(
                "The inbound source {} ({}) has accepted no request since {} (its expected gap is {} seconds). The provider may have stopped sending, or its requests no longer reach this program: check the provider's dashboard and the source's recent requests:\n\n    webhooks inbound --source {}\n",
                text("name"),
                text("source_id"),
                d["last_accepted_at"].as_str().unwrap_or("it was created"),
                d["expected_gap_seconds"].as_i64().unwrap_or(0),
                text("source_id"),
            ),
        ),
        "source.verification_failing" => (
            format!("Inbound source failing verification: {}", text("name")),
            format!(
                "{} of {} requests to the inbound source {} ({}) in the last hour were rejected, most often for {}. A secret rotated at the provider and not here is the usual cause; a stored reject can be re-checked after fixing it:\n\n    webhooks inbound --source {} --outcome rejected\n    webhooks inbound recheck REQUEST_ID\n",
                d["rejected"].as_i64().unwrap_or(0),
                d["requests"].as_i64().unwrap_or(0),
                text("name"),
                text("source_id"),
                text("top_reason"),
                text("source_id"),
            ),
        ),
        other => (format!("Webhooks: {other}"), format!("{}\n", serde_json::to_string_pretty(&v)?)),
    };
    let page = match (public_url, text("endpoint_id"), text("source_id")) {
        (Some(base), e, _) if !e.is_empty() => format!("On the web: {base}/endpoints/{e}\n"),
        (Some(base), _, s) if !s.is_empty() => format!("On the web: {base}/sources/{s}\n"),
        _ => String::new(),
    };
    let body = body + &page;
    if to.contains(['\r', '\n']) {
        return Err(Error::invalid("WEBHOOKS_OPERATOR_EMAIL", "must be one address"));
    }
    Ok(format!(
        "To: {to}\nSubject: {subject}\nContent-Type: text/plain; charset=utf-8\nX-QSM-Event: {}\nX-QSM-Id: {}\n\n{body}\n{}\n",
        n.event_type,
        n.id,
        serde_json::to_string_pretty(&v)?
    ))
}
