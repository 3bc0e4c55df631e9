//! Endpoints: where a user's events are delivered, with their filters and signing keys, and the
//! rules an endpoint's fields must follow.
//!
//! Each endpoint has one or more keys. The newest is primary; after a rotation the previous keys
//! keep signing until their expiry (the grace period), so receivers that accept any listed
//! signature never see a gap.

use std::time::Duration;

use serde::Serialize;

use crate::model::address::{literal_ip, Policy};
use crate::model::error::{Error, Result};
use crate::model::health::{DisabledReason, Failure, FailureRule, Health};
use crate::model::pacing::{check_in_flight, check_per_second, Limits};
use crate::model::schema;
use crate::model::time::Time;

/// The longest grace period a rotation may give the previous keys.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(30 * 86_400);
pub const DESCRIPTION_MAX_CHARS: usize = 500;
pub const URL_MAX_LEN: usize = 2048;

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: String,
    pub user: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub active: bool,
    /// `ok`, `failing` (a delivery went dead and none has succeeded since) or `disabled`.
    pub health: Health,
    /// Why it is disabled: `manual`, `gone` (a 410) or `sustained_failure` (the failure rule).
    pub disabled_reason: Option<DisabledReason>,
    pub disabled_at: Option<Time>,
    /// When its requests began to fail, with none succeeding since.
    pub fail_since: Option<Time>,
    /// When the failure rule disables it unless a delivery succeeds first (see [`Endpoint::apply_rule`]).
    pub disable_at: Option<Time>,
    /// Deliveries held while it is disabled by the rule or a 410.
    pub held: i64,
    /// `none`, or `fifo`: one delivery at a time per ordering key, in order (docs/ordering.md).
    pub ordering: Ordering,
    /// Under `fifo`, what a dead delivery does to its key: `continue` or `block`.
    pub fifo_on_dead: OnDead,
    /// The names of its custom headers (their values are sealed, never shown).
    pub headers: Vec<String>,
    pub signature_compat: SignatureCompat,
    /// Requests per second at most, across every dispatcher (docs/pacing.md); `None`: no limit.
    pub max_per_second: Option<f64>,
    /// Requests at once at most, across every dispatcher; `None`: no limit.
    pub max_in_flight: Option<i64>,
    /// Until when its receiver asked for no requests (a 429, or a 503 with `Retry-After`), while
    /// that is still to come.
    pub paused_until: Option<Time>,
    /// The status code that asked for the pause.
    pub paused_status: Option<u16>,
    pub created_at: Time,
    pub updated_at: Time,
    /// The failure record the rule works from.
    #[serde(skip)]
    pub failure: Failure,
}

impl Endpoint {
    /// Fills `disable_at` from the installation's rule.
    pub fn apply_rule(mut self, rule: FailureRule) -> Endpoint {
        self.disable_at = (self.health == Health::Failing).then(|| self.failure.disable_at(rule)).flatten().map(Time);
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created_at: Time,
    /// When the key stops signing; `None` for the primary key.
    pub expires_at: Option<Time>,
}

/// Custom headers sent with every delivery of an endpoint, name → value.
pub type Headers = std::collections::BTreeMap<String, String>;

pub const MAX_HEADERS: usize = 20;
pub const HEADER_NAME_MAX: usize = 64;
pub const HEADER_VALUE_MAX: usize = 1024;

/// The header names (lowercase) and families (`…-`) the product sets itself, or that HTTP keeps
/// for the connection: a custom header may not use them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "expect",
];
const RESERVED_FAMILIES: &[&str] = &["x-qsm-", "webhook-", "svix-", "proxy-"];

/// Whether a custom header may not be called `name`.
pub fn is_reserved_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&n.as_str()) || RESERVED_FAMILIES.iter().any(|f| n.starts_with(f))
}

/// Checks custom headers: at most [`MAX_HEADERS`], names HTTP tokens of at most
/// [`HEADER_NAME_MAX`] characters and not reserved, values of at most [`HEADER_VALUE_MAX`]
/// bytes of visible characters, spaces and tabs (no line breaks), trimmed.
pub fn check_headers(h: &Headers) -> Result<Headers> {
    if h.len() > MAX_HEADERS {
        return Err(Error::invalid("headers", format!("may hold at most {MAX_HEADERS} headers, not {}", h.len())));
    }
    let mut out = Headers::new();
    for (name, value) in h {
        let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
        if name.is_empty() || name.len() > HEADER_NAME_MAX || !name.chars().all(token) {
            return Err(Error::invalid(
                "headers",
                format!(
                    "{name:?} is not a header name (letters, digits and !#$%&'*+-.^_`|~, at most {HEADER_NAME_MAX})"
                ),
            ));
        }
        if is_reserved_header(name) {
            return Err(Error::invalid(
                "headers",
                format!(
                    "{name} is set by the product itself: Content-Type, Content-Length, Host, User-Agent, the connection's \
                     own headers and the X-QSM-*, webhook-*, svix-* and Proxy-* families are reserved"
                ),
            ));
        }
        let v = value.trim();
        if v.len() > HEADER_VALUE_MAX || v.chars().any(|c| c.is_control() && c != '\t') || !v.is_ascii() {
            return Err(Error::invalid(
                "headers",
                format!(
                    "the value of {name} must be at most {HEADER_VALUE_MAX} printable ASCII characters, on one line"
                ),
            ));
        }
        if out.keys().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(Error::invalid("headers", format!("{name} is given twice")));
        }
        out.insert(name.clone(), v.to_string());
    }
    Ok(out)
}

/// An extra signature for receivers already in the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureCompat {
    #[default]
    None,
    /// `Signature: <hex HMAC-SHA256 of the raw body>`, keyed with the endpoint's secret as
    /// written (`whsec_…`): what spatie/laravel-webhook-client checks.
    Spatie,
}

impl SignatureCompat {
    pub const NAMES: &'static str = "none or spatie";

    pub fn as_str(self) -> &'static str {
        match self {
            SignatureCompat::None => "none",
            SignatureCompat::Spatie => "spatie",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<SignatureCompat> {
        match s {
            "none" => Ok(SignatureCompat::None),
            "spatie" => Ok(SignatureCompat::Spatie),
            _ => Err(Error::invalid(field, format!("must be {}, not {s:?}", SignatureCompat::NAMES))),
        }
    }
}

/// How an endpoint orders its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Sent as they come due, several at once (docs/ordering.md says what order that gives).
    #[default]
    None,
    /// For one (endpoint, ordering key), the next is not sent before the previous one ended.
    Fifo,
}

/// Under FIFO, what a delivery that went dead does to the ones behind it on its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDead {
    /// The next one goes.
    #[default]
    Continue,
    /// The key waits until a person retries or discards the dead one.
    Block,
}

impl Ordering {
    pub const NAMES: &'static str = "none or fifo";

    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::None => "none",
            Ordering::Fifo => "fifo",
        }
    }

    /// `field` names the field in the error.
    pub fn parse(field: &str, s: &str) -> Result<Ordering> {
        match s {
            "none" => Ok(Ordering::None),
            "fifo" => Ok(Ordering::Fifo),
            _ => Err(Error::invalid(field, format!("must be {}, not {s:?}", Ordering::NAMES))),
        }
    }
}

impl OnDead {
    pub const NAMES: &'static str = "continue or block";

    pub fn as_str(self) -> &'static str {
        match self {
            OnDead::Continue => "continue",
            OnDead::Block => "block",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<OnDead> {
        match s {
            "continue" => Ok(OnDead::Continue),
            "block" => Ok(OnDead::Block),
            _ => Err(Error::invalid(field, format!("must be {}, not {s:?}", OnDead::NAMES))),
        }
    }
}

/// A new or changed endpoint; `None` fields of an update stay as they are.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub ordering: Option<Ordering>,
    pub fifo_on_dead: Option<OnDead>,
    /// Replaces every custom header (an empty map removes them).
    pub headers: Option<Headers>,
    pub signature_compat: Option<SignatureCompat>,
    /// `Some(None)` removes the limit.
    pub max_per_second: Option<Option<f64>>,
    pub max_in_flight: Option<Option<i64>>,
}

/// An update's fields, checked: what the store writes.
#[derive(Debug, Clone)]
pub struct Checked {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub ordering: Ordering,
    pub fifo_on_dead: OnDead,
    /// New custom headers; `None` keeps those it has.
    pub headers: Option<Headers>,
    pub signature_compat: SignatureCompat,
    pub limits: Limits,
}

impl Fields {
    /// Checks every given field, taking the missing ones from `current` (a new endpoint has none
    /// and needs a URL).
    pub fn check(&self, policy: &Policy, current: Option<&Endpoint>) -> Result<Checked> {
        Ok(Checked {
            url: match (&self.url, current) {
                (Some(u), _) => check_url(u, policy)?,
                (None, Some(c)) => c.url.clone(),
                (None, None) => check_url("", policy)?,
            },
            description: match (&self.description, current) {
                (Some(d), _) => check_description(d)?,
                (None, Some(c)) => c.description.clone(),
                (None, None) => String::new(),
            },
            event_types: match (&self.event_types, current) {
                (Some(t), _) => check_filters(t)?,
                (None, Some(c)) => c.event_types.clone(),
                (None, None) => Vec::new(),
            },
            ordering: self.ordering.or(current.map(|c| c.ordering)).unwrap_or_default(),
            fifo_on_dead: self.fifo_on_dead.or(current.map(|c| c.fifo_on_dead)).unwrap_or_default(),
            headers: self.headers.as_ref().map(check_headers).transpose()?,
            signature_compat: self.signature_compat.or(current.map(|c| c.signature_compat)).unwrap_or_default(),
            limits: Limits {
                max_per_second: match self.max_per_second {
                    Some(v) => v.map(|v| check_per_second("max_per_second", v)).transpose()?,
                    None => current.and_then(|c| c.max_per_second),
                },
                max_in_flight: match self.max_in_flight {
                    Some(v) => v.map(|v| check_in_flight("max_in_flight", v)).transpose()?,
                    None => current.and_then(|c| c.max_in_flight),
                },
            },
        })
    }
}

/// Checks a rotation's grace period.
pub fn check_grace(field: &str, grace: Duration) -> Result<Duration> {
    if grace > MAX_ROTATION_GRACE {
        return Err(Error::invalid(field, format!("must be at most 30 days ({})", MAX_ROTATION_GRACE.as_secs())));
    }
    Ok(grace)
}

/// Checks and normalises an endpoint URL: http(s), a host, no credentials, and not an address
/// literal that deliveries could never reach. Names are checked again at every delivery, on
/// the addresses they resolve to.
pub fn check_url(raw: &str, policy: &Policy) -> Result<String> {
    if raw.trim() != raw {
        return Err(Error::invalid("url", "must not start or end with spaces"));
    }
    if raw.len() > URL_MAX_LEN {
        return Err(Error::invalid("url", format!("must be at most {URL_MAX_LEN} characters")));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| Error::invalid("url", format!("is not a valid URL ({e}); use https://host/path")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(Error::invalid("url", "must start with https:// or http://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::invalid(
            "url",
            "must not contain a user name or password; deliveries are authenticated by their signature",
        ));
    }
    if matches!(url.host(), None | Some(url::Host::Domain(""))) {
        return Err(Error::invalid("url", "must name a host"));
    }
    if let Some(ip) = literal_ip(&url) {
        if !policy.permits(ip) {
            return Err(Error::invalid(
                "url",
                format!(
                    "points at {ip}, a private or reserved address that deliveries may not reach \
                     (the operator can allow it with WEBHOOKS_ALLOWED_NETWORKS in the .env, \
                     e.g. 127.0.0.0/8 for receivers on the same machine)"
                ),
            ));
        }
    }
    if url.fragment().is_some() {
        return Err(Error::invalid("url", "must not contain a #fragment"));
    }
    Ok(url.to_string())
}

/// Checks type filters: known types or `prefix.*` / `*` wildcards that match at least one type.
pub fn check_filters(filters: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for f in filters.iter().map(String::as_str) {
        if f.is_empty() {
            return Err(Error::invalid(
                "event_types",
                "an empty filter matches nothing; leave the list empty for every type",
            ));
        }
        if !schema::filter_is_known(f) {
            let known: Vec<&str> = schema::filterable().map(|t| t.name).collect();
            return Err(Error::invalid(
                "event_types",
                format!("{f:?} matches no event type (known: {}; wildcards like email.* or *)", known.join(", ")),
            ));
        }
        if !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    }
    Ok(out)
}

pub fn check_description(d: &str) -> Result<String> {
    if d.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(Error::invalid("description", format!("must be at most {DESCRIPTION_MAX_CHARS} characters")));
    }
    if d.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(Error::invalid("description", "must not contain control characters"));
    }
    Ok(d.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_hold_text_not_control_characters() {
        assert_eq!(check_description("  Orders\tprod\n").unwrap(), "Orders\tprod");
        for bad in ["a\0b", "bell\u{7}", "esc\u{1b}[31m"] {
            assert!(check_description(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        let p = Policy::default();
        assert_eq!(check_url("https://Example.COM/hook", &p).unwrap(), "https://example.com/hook");
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "http://user:pw@example.com/",
            "http://127.0.0.1/",
            "http://localhost:8080/",
            "http://[::1]/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "https://example.com/#frag",
        ] {
            let e = check_url(bad, &p).expect_err(bad);
            assert_eq!(e.field(), Some("url"));
        }
        let allow = Policy { allowed: vec!["127.0.0.1/32".parse().unwrap()] };
        assert!(check_url("http://127.0.0.1:9/", &allow).is_ok());
    }

    #[test]
    fn filters_are_checked() {
        assert_eq!(check_filters(&["email.*".into(), "email.*".into()]).unwrap(), vec!["email.*"]);
        // Exactly as documented: no spaces around a filter, no empty one (the CLI trims what
        // is typed before it gets here).
        assert!(check_filters(&[" email.*".into()]).is_err());
        assert!(check_filters(&["".into()]).unwrap_err().to_string().contains("empty"));
        assert_eq!(check_filters(&["nope".into()]).unwrap_err().field(), Some("event_types"));
        assert!(schema::wants(&[], "usage.threshold"));
        assert!(schema::wants(&["usage.*".into()], "usage.threshold"));
        assert!(!schema::wants(&["email.spam".into()], "usage.threshold"));
    }

    #[test]
    fn grace_periods_stop_at_thirty_days() {
        assert!(check_grace("grace_seconds", MAX_ROTATION_GRACE).is_ok());
        let e = check_grace("grace_seconds", MAX_ROTATION_GRACE + Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "grace_seconds: must be at most 30 days (2592000)");
    }
}
