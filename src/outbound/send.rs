//! Sending one signed delivery request and classifying what happened into an [`Outcome`] with a
//! stable failure code. One [`Sender`] (one ureq agent, one connection pool) serves a whole
//! dispatcher run; its resolver enforces the SSRF policy on the addresses actually connected to.

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::model::address::{literal_ip, Blocked, Policy};
use crate::model::delivery::parse_retry_after;
use crate::model::delivery::{FailureCode, Outcome};
use crate::model::time;
use crate::outbound::network::{DnsFailure, GuardedResolver};

/// Bytes of the response kept in the delivery log.
pub const SNIPPET_BYTES: usize = 512;
/// Bytes of the response kept when `WEBHOOKS_LOG_BODIES=true`.
pub const LOGGED_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct Sender {
    agent: ureq::Agent,
    policy: Arc<Policy>,
    log_bodies: bool,
}

impl Sender {
    pub fn new(cfg: &Config) -> Sender {
        Sender::with_timeout(cfg, cfg.request_timeout)
    }

    pub fn with_timeout(cfg: &Config, timeout: Duration) -> Sender {
        Sender::with_policy(cfg, timeout, cfg.policy())
    }

    /// A sender whose connections `policy` judges (the operator's own URL is trusted
    /// configuration, not a user's input: it may be on this machine).
    pub fn with_policy(cfg: &Config, timeout: Duration, policy: Policy) -> Sender {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            // A proxy would make the connected address unknowable to the SSRF check.
            .proxy(None)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout))
            .user_agent(crate::outbound::signing::USER_AGENT)
            .max_idle_connections(cfg.concurrency * 2)
            .max_idle_connections_per_host(cfg.concurrency)
            .build();
        let policy = Arc::new(policy);
        let connector = ureq::unversioned::transport::DefaultConnector::default();
        let agent = ureq::Agent::with_parts(config, connector, GuardedResolver::new(policy.clone()));
        Sender { agent, policy, log_bodies: cfg.log_bodies }
    }

    /// POSTs `body` with `headers` to `url`; never follows redirects, never panics.
    pub fn post(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Outcome {
        let started = Instant::now();
        let mut out = self.post_inner(url, headers, body);
        out.duration_ms = started.elapsed().as_millis() as i64;
        out.error = out.error.map(|e| storable(&e));
        out
    }

    fn post_inner(&self, url: &str, headers: &[(String, String)], body: &[u8]) -> Outcome {
        let mut req = self.agent.post(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => return classify(e),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, time::now_ms()));
        let keep = if self.log_bodies { LOGGED_BODY_BYTES } else { SNIPPET_BYTES };
        let mut buf = Vec::with_capacity(keep.min(4096));
        // Read at most `keep` bytes: an endless or slow body costs no more than that (the global
        // timeout bounds the time).
        let read = resp.body_mut().as_reader().take(keep as u64).read_to_end(&mut buf);
        let text = storable(&String::from_utf8_lossy(&buf));
        let mut out = Outcome {
            status_code: Some(status),
            snippet: truncate_chars(&text, SNIPPET_BYTES),
            response_body: self.log_bodies.then(|| text.clone()),
            ..Outcome::default()
        };
        if let Err(e) = read {
            // A 2xx whose body broke off is still a delivered request: the status was received.
            if !(200..300).contains(&status) {
                out.error = Some(format!("reading the response failed: {e}"));
            }
        }
        match status {
            200..=299 => {}
            300..=399 => {
                let loc = resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("");
                // Never followed either way; a redirect aimed at a private address is named for
                // what it is (a receiver probing for SSRF, or a misconfigured proxy).
                let target = url::Url::parse(url).and_then(|base| base.join(loc)).ok();
                match target.as_ref().and_then(literal_ip).filter(|ip| !self.policy.permits(*ip)) {
                    Some(ip) => {
                        out.error_code = Some(FailureCode::BlockedAddress);
                        out.error = Some(format!(
                            "redirect {status} to {loc:?} refused: {ip} is not a public address (redirects are never followed)"
                        ));
                    }
                    None => {
                        out.error_code = Some(FailureCode::Redirect);
                        out.error = Some(format!("redirect {status} to {loc:?} not followed"));
                    }
                }
            }
            410 => {
                out.error_code = Some(FailureCode::Gone);
                out.error = Some("410 Gone: the endpoint was disabled".into());
            }
            _ => {
                out.error_code = Some(FailureCode::HttpStatus);
                out.error = Some(format!("the receiver answered {status}"));
                if status == 429 || status == 503 {
                    out.retry_after = retry_after;
                }
            }
        }
        out
    }
}

impl Sender {
    /// GETs `url` and reads at most `max` bytes of the answer: (status, body). An error says
    /// why no answer came (refused, timed out, blocked address).
    pub fn get(
        &self,
        url: &str,
        headers: &[(String, String)],
        max: u64,
    ) -> std::result::Result<(u16, Vec<u8>), String> {
        let mut req = self.agent.get(url);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let mut resp = req.call().map_err(|e| classify(e).error.unwrap_or_default())?;
        let status = resp.status().as_u16();
        let mut buf = Vec::new();
        resp.body_mut().as_reader().take(max).read_to_end(&mut buf).map_err(|e| e.to_string())?;
        Ok((status, buf))
    }
}

/// Text a receiver sent, as the delivery log keeps it: NUL characters (which PostgreSQL's text
/// cannot hold) become U+FFFD, as undecodable bytes already have.
pub fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

/// Keeps at most `max` bytes, cut on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

fn classify(e: ureq::Error) -> Outcome {
    use ureq::Error as E;
    let (code, msg) = match &e {
        E::Timeout(t) => (FailureCode::Timeout, format!("timed out ({t})")),
        E::HostNotFound => (FailureCode::Dns, "the host name did not resolve".to_string()),
        E::Io(io) => {
            if let Some(b) = io.get_ref().and_then(|i| i.downcast_ref::<Blocked>()) {
                (FailureCode::BlockedAddress, b.to_string())
            } else if let Some(d) = io.get_ref().and_then(|i| i.downcast_ref::<DnsFailure>()) {
                (FailureCode::Dns, d.to_string())
            } else if io.kind() == std::io::ErrorKind::TimedOut || io.kind() == std::io::ErrorKind::WouldBlock {
                (FailureCode::Timeout, io.to_string())
            } else {
                (FailureCode::Connect, io.to_string())
            }
        }
        E::Tls(_) | E::Rustls(_) | E::Pem(_) => (FailureCode::Tls, e.to_string()),
        E::Protocol(_) => (FailureCode::Protocol, e.to_string()),
        // The answer's head grew past ureq's cap (64 KiB): not HTTP we will read.
        E::LargeResponseHeader(..) => (FailureCode::Protocol, e.to_string()),
        E::BadUri(_) | E::Http(_) => (FailureCode::InvalidUrl, e.to_string()),
        E::ConnectionFailed => (FailureCode::Connect, e.to_string()),
        _ => (FailureCode::Connect, e.to_string()),
    };
    Outcome::failure(code, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate_chars("héllo", 2), "h");
        assert_eq!(truncate_chars("abc", 10), "abc");
    }
}
