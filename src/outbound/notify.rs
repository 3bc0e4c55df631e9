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
use crate::model::delivery::{next_delay, FailureCode};
use crate::model::notice::Notice;
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
    let one_line = |s: &str| s.replace(['\r', '\n'], " ");
    let last = |status: Option<u16>, code: Option<FailureCode>| match (status, code) {
        (Some(s), Some(c)) => format!("the last attempt got {s} ({c})"),
        (None, Some(c)) => format!("the last attempt failed with {c}"),
        _ => "no attempt has succeeded".into(),
    };
    let user = one_line(v["user"].as_str().unwrap_or(""));
    let notice = Notice::parse(&n.event_type, &v["data"]);
    let (subject, body) = match &notice {
        Some(Notice::EndpointFailing {
            endpoint_id,
            url,
            fail_since,
            disable_at,
            last_status_code,
            last_error_code,
        }) => {
            let (url, endpoint_id) = (one_line(url), one_line(endpoint_id));
            (
                format!("Webhook endpoint failing: {url}"),
                format!(
                    "Deliveries to {url} (endpoint {endpoint_id}, user {user}) have failed since {}, and {}.\n\n{}\n\nThe deliveries: webhooks deliveries --endpoint {endpoint_id}\n",
                    fail_since.as_deref().unwrap_or(""),
                    last(*last_status_code, *last_error_code),
                    match disable_at {
                        Some(at) => format!("It will be disabled at {at} unless a delivery succeeds first; its new events are then held, not lost."),
                        None => "It will not be disabled for this (WEBHOOKS_DISABLE_AFTER=off).".into(),
                    },
                ),
            )
        }
        Some(Notice::EndpointDisabled {
            endpoint_id, url, reason, held, last_status_code, last_error_code, ..
        }) => {
            let (url, endpoint_id) = (one_line(url), one_line(endpoint_id));
            (
                format!("Webhook endpoint disabled: {url}"),
                format!(
                    "The endpoint {url} (user {user}) was disabled: {}, and {}.\n\nIts new events are held ({held} so far), not sent, for WEBHOOKS_HOLD_RETENTION. Once the receiver works, enable it again and send them:\n\n    webhooks endpoint enable {endpoint_id} --replay\n\nor use Enable on its page.\n",
                    reason.describe(),
                    last(*last_status_code, *last_error_code),
                ),
            )
        }
        Some(Notice::SourceSilent { source_id, name, last_accepted_at, expected_gap_seconds }) => {
            let (name, source_id) = (one_line(name), one_line(source_id));
            (
                format!("Inbound source silent: {name}"),
                format!(
                    "The inbound source {name} ({source_id}) has accepted no request since {} (its expected gap is {expected_gap_seconds} seconds). The provider may have stopped sending, or its requests no longer reach this program: check the provider's dashboard and the source's recent requests:\n\n    webhooks inbound --source {source_id}\n",
                    last_accepted_at.as_deref().unwrap_or("it was created"),
                ),
            )
        }
        Some(Notice::SourceVerificationFailing { source_id, name, requests, rejected, top_reason }) => {
            let (name, source_id) = (one_line(name), one_line(source_id));
            (
                format!("Inbound source failing verification: {name}"),
                format!(
                    "{rejected} of {requests} requests to the inbound source {name} ({source_id}) in the last hour were rejected, most often for {}. A secret rotated at the provider and not here is the usual cause; a stored reject can be re-checked after fixing it:\n\n    webhooks inbound --source {source_id} --outcome rejected\n    webhooks inbound recheck REQUEST_ID\n",
                    one_line(top_reason),
                ),
            )
        }
        _ => (format!("Webhooks: {}", one_line(&n.event_type)), format!("{}\n", serde_json::to_string_pretty(&v)?)),
    };
    let page = match (
        public_url,
        notice.as_ref().and_then(Notice::endpoint_id),
        notice.as_ref().and_then(Notice::source_id),
    ) {
        (Some(base), Some(e), _) => format!("On the web: {base}/endpoints/{}\n", one_line(e)),
        (Some(base), _, Some(s)) => format!("On the web: {base}/sources/{}\n", one_line(s)),
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
