//! Inbound sources: webhooks from the host application's providers (docs/inbound.md).
//!
//! Verification here is exactly what each provider documents, on the raw bytes and before any
//! parsing, in constant time, against every active secret and every signature a header carries.
//! Only a verified body is parsed, for the provider's own event id (the duplicate key) and its
//! event type. Pure: the caller brings the headers, the body, the secrets, the clock and, for
//! Circle, the public key.

//!
//! This module holds what a source is (providers, outcomes, reject reasons, settings, the views
//! of a source and of a logged request, the alert rules); `signatures` holds the verification.

mod signatures;

pub use signatures::{
    body_hash, circle_signature, decode_hex, parse_basic, parse_hmac_header, parse_public_key,
    parse_standard_signatures, parse_stripe_header, verify, Dedupe, Incoming, Material, Verified,
};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Error, Result};

/// Largest body a source may be configured to take (mail with attachments fits).
pub const MAX_BODY_LIMIT: u64 = 64 * 1024 * 1024;
/// A GitHub or Shopify body seen again under a new (unsigned) delivery id within this window is
/// flagged as a suspected replay.
pub const REPLAY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// `source.verification_failing`: at least this many requests in the last hour …
pub const FAILING_MIN_REQUESTS: i64 = 5;
/// … of which at least half were rejected.
pub const FAILING_WINDOW_MS: i64 = 3600 * 1000;
/// A key id the key server did not know is refused without asking again for this long.
pub const KEY_MISS_TTL_MS: i64 = 10 * 60 * 1000;
/// At most this many key-server requests per source per minute; past it, an unknown key id is
/// answered 503 (the provider retries) instead of a request to the key server.
pub const KEY_FETCHES_PER_MINUTE: i64 = 10;
/// Whether a key id has the form Circle's do (a UUID: letters, digits and dashes), so that
/// nothing else is ever sent to the key server or remembered.
pub fn is_circle_key_id(key_id: &str) -> bool {
    !key_id.is_empty() && key_id.len() <= 100 && key_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Where Circle publishes its notification keys (`…/{keyId}`), unless a source says otherwise.
pub const CIRCLE_KEY_URL: &str = "https://api.circle.com/v2/notifications/publicKey";
/// Longest event type kept from a provider's body or header.
const KIND_MAX: usize = 100;

/// Whether a request to a WooCommerce source is the ping WooCommerce sends when a webhook is
/// saved (`WC_Webhook::deliver_ping`): unsigned, the form body `webhook_id=<its id>` and nothing
/// else. WooCommerce saves the webhook only if it is answered 2xx; it carries no event, so it is
/// answered 200 and neither stored nor relayed.
pub fn is_woocommerce_ping(headers: &[(String, String)], body: &[u8]) -> bool {
    let signed = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("x-wc-webhook-signature"));
    let id = body.strip_prefix(b"webhook_id=").unwrap_or_default();
    !signed && !id.is_empty() && id.len() <= 20 && id.iter().all(u8::is_ascii_digit)
}

/// A provider: how its requests are verified and deduplicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Stripe,
    Github,
    Shopify,
    Slack,
    Standard,
    Postmark,
    Circle,
    Hmac,
    Woocommerce,
}

impl Provider {
    pub const ALL: [Provider; 9] = [
        Provider::Stripe,
        Provider::Github,
        Provider::Shopify,
        Provider::Slack,
        Provider::Standard,
        Provider::Postmark,
        Provider::Circle,
        Provider::Hmac,
        Provider::Woocommerce,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Github => "github",
            Provider::Shopify => "shopify",
            Provider::Slack => "slack",
            Provider::Standard => "standard",
            Provider::Postmark => "postmark",
            Provider::Circle => "circle",
            Provider::Hmac => "hmac",
            Provider::Woocommerce => "woocommerce",
        }
    }

    pub fn parse(s: &str) -> Result<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            Error::invalid(
                "provider",
                format!(
                    "unknown provider {s:?}: one of stripe, github, shopify, slack, standard, postmark, circle, hmac, woocommerce"
                ),
            )
        })
    }

    /// Whether the provider hands out the secret (the operator pastes it) rather than this
    /// program generating one.
    pub fn secret_from_provider(self) -> bool {
        matches!(self, Provider::Stripe | Provider::Shopify | Provider::Slack | Provider::Woocommerce)
    }

    /// Whether the provider signs with a shared secret at all (Circle signs with its own key pair).
    pub fn has_secret(self) -> bool {
        self != Provider::Circle
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What became of an inbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Accepted,
    Duplicate,
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Result<Outcome> {
        match s {
            "accepted" => Ok(Outcome::Accepted),
            "duplicate" => Ok(Outcome::Duplicate),
            "rejected" => Ok(Outcome::Rejected),
            _ => Err(Error::invalid("outcome", "one of accepted, duplicate, rejected")),
        }
    }
}

/// Why a request was rejected: a stable code, logged with the request and counted per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No signature header (or no credentials) where the provider always sends one.
    SignatureMissing,
    /// A signature header that does not parse.
    SignatureMalformed,
    /// No active secret produces any of the signatures: a wrong secret or an altered body.
    SignatureMismatch,
    TimestampMissing,
    /// Further than the tolerance from this server's clock, either way.
    TimestampStale,
    CredentialsMissing,
    CredentialsWrong,
    /// Circle: the key id is neither cached nor known to the key server.
    KeyUnknown,
    /// Circle: the key server could not be asked (answered 503 so that Circle retries).
    KeyUnavailable,
    /// Over the source's size limit (answered 413).
    BodyTooLarge,
    /// The source has no secret (a `hmac` source without its settings, a Circle source without keys).
    NotConfigured,
    /// GitHub, Shopify, WooCommerce: the delivery id header is missing although the provider always sends it
    /// (a captured body and signature replayed without it).
    DeliveryIdMissing,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::SignatureMissing,
        Reason::SignatureMalformed,
        Reason::SignatureMismatch,
        Reason::TimestampMissing,
        Reason::TimestampStale,
        Reason::CredentialsMissing,
        Reason::CredentialsWrong,
        Reason::KeyUnknown,
        Reason::KeyUnavailable,
        Reason::BodyTooLarge,
        Reason::NotConfigured,
        Reason::DeliveryIdMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::SignatureMissing => "signature_missing",
            Reason::SignatureMalformed => "signature_malformed",
            Reason::SignatureMismatch => "signature_mismatch",
            Reason::TimestampMissing => "timestamp_missing",
            Reason::TimestampStale => "timestamp_stale",
            Reason::CredentialsMissing => "credentials_missing",
            Reason::CredentialsWrong => "credentials_wrong",
            Reason::KeyUnknown => "key_unknown",
            Reason::KeyUnavailable => "key_unavailable",
            Reason::BodyTooLarge => "body_too_large",
            Reason::NotConfigured => "not_configured",
            Reason::DeliveryIdMissing => "delivery_id_missing",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The `code` the provider is answered with (DESIGN.md "Inbound sources").
    pub fn answer_code(self) -> &'static str {
        match self {
            Reason::TimestampMissing | Reason::TimestampStale => "E_TIMESTAMP",
            Reason::CredentialsMissing | Reason::CredentialsWrong => "E_AUTH",
            Reason::BodyTooLarge => "E_TOO_LARGE",
            Reason::KeyUnavailable => "E_KEY_UNAVAILABLE",
            _ => "E_SIGNATURE",
        }
    }

    /// The HTTP status the provider sees: 401 for every verification failure (never 403, which
    /// makes Postmark give up), 413 over the limit, 503 when Circle's key could not be fetched.
    pub fn status(self) -> u16 {
        match self {
            Reason::BodyTooLarge => 413,
            Reason::KeyUnavailable => 503,
            _ => 401,
        }
    }

    /// What it means, for the pages and the CLI.
    pub fn meaning(self) -> &'static str {
        match self {
            Reason::SignatureMissing => "the request carried no signature header",
            Reason::SignatureMalformed => "the signature header does not have the provider's form",
            Reason::SignatureMismatch => {
                "no active secret produces the signature: the secret pasted here differs from the provider's, or the body was changed on the way"
            }
            Reason::TimestampMissing => "the signed timestamp header is missing",
            Reason::TimestampStale => {
                "the signed timestamp is further from this server's clock than the tolerance (WEBHOOKS_SKEW_TOLERANCE): a replay, or a clock that is off"
            }
            Reason::CredentialsMissing => {
                "no Authorization header reached this program: put the user name and password in the URL given to the provider; under Apache the cgi-bin .htaccess needs `CGIPassAuth On`"
            }
            Reason::CredentialsWrong => "the user name or the password in the URL given to the provider is not this source's",
            Reason::KeyUnknown => "the signing key id is neither stored nor known to the key server",
            Reason::KeyUnavailable => "the key server could not be reached to fetch the signing key (the provider was told to retry)",
            Reason::BodyTooLarge => "the body is larger than the source's size limit",
            Reason::NotConfigured => "the source has no secret or key to verify with yet",
            Reason::DeliveryIdMissing => {
                "the provider's delivery id header (X-GitHub-Delivery, X-Shopify-Webhook-Id, X-WC-Webhook-Delivery-ID) is missing: the provider always sends it, so this is a captured request replayed without it"
            }
        }
    }
}

/// The settings of a source beyond its secrets (stored as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// `postmark`: the user name of the Basic credentials (the password is the secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `circle`: where public keys are fetched (`{key_url}/{keyId}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_url: Option<String>,
    /// `hmac`: the signature header, e.g. `X-Signature`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// `hmac`: `sha256` (default) or `sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// `hmac`: `hex` (default) or `base64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// `hmac`: text before the signature in the header, e.g. `sha256=`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `hmac`: the header whose value is the provider's event id (unsigned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_header: Option<String>,
    /// `hmac`: a JSON pointer into the (signed) body for the provider's event id, e.g. `/id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_pointer: Option<String>,
}

impl Settings {
    /// Checks the settings that `provider` uses and refuses those it does not.
    pub fn check(&self, provider: Provider) -> Result<()> {
        let hmac_only = [
            ("header", &self.header),
            ("algorithm", &self.algorithm),
            ("encoding", &self.encoding),
            ("prefix", &self.prefix),
            ("id_header", &self.id_header),
            ("id_pointer", &self.id_pointer),
        ];
        for (name, v) in hmac_only {
            if v.is_some() && provider != Provider::Hmac {
                return Err(Error::invalid(name, format!("{name} applies to hmac sources only")));
            }
        }
        if self.username.is_some() && provider != Provider::Postmark {
            return Err(Error::invalid("username", "username applies to postmark sources only"));
        }
        if self.key_url.is_some() && provider != Provider::Circle {
            return Err(Error::invalid("key_url", "key_url applies to circle sources only"));
        }
        if let Some(u) = &self.username {
            if u.is_empty() || u.len() > 100 || u.contains(':') || u.chars().any(|c| c.is_control()) {
                return Err(Error::invalid("username", "1 to 100 characters, no colon"));
            }
        }
        if let Some(k) = &self.key_url {
            let ok = url::Url::parse(k).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(Error::invalid(
                    "key_url",
                    "an http(s) URL, e.g. https://api.circle.com/v2/notifications/publicKey",
                ));
            }
        }
        if provider == Provider::Hmac {
            let header = self.header.as_deref().unwrap_or("");
            if !is_header_name(header) {
                return Err(Error::invalid(
                    "header",
                    "hmac sources need the signature header's name, e.g. X-Signature",
                ));
            }
            if !matches!(self.algorithm.as_deref(), None | Some("sha256") | Some("sha512")) {
                return Err(Error::invalid("algorithm", "sha256 or sha512"));
            }
            if !matches!(self.encoding.as_deref(), None | Some("hex") | Some("base64")) {
                return Err(Error::invalid("encoding", "hex or base64"));
            }
            if self.prefix.as_ref().is_some_and(|p| p.len() > 40 || p.chars().any(|c| c.is_control())) {
                return Err(Error::invalid("prefix", "at most 40 characters"));
            }
            if self.id_header.as_deref().is_some_and(|h| !is_header_name(h)) {
                return Err(Error::invalid("id_header", "a header name, e.g. X-Event-Id"));
            }
            if self.id_pointer.as_deref().is_some_and(|p| !(p.starts_with('/') && p.len() <= 200)) {
                return Err(Error::invalid("id_pointer", "a JSON pointer such as /id or /data/event_id"));
            }
        }
        Ok(())
    }
}

fn is_header_name(h: &str) -> bool {
    !h.is_empty() && h.len() <= 100 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a secret a provider's operator pasted (or `None` to generate one where we may).
pub fn check_secret(provider: Provider, secret: &str) -> Result<()> {
    if secret.is_empty() || secret.len() > 1000 || secret.chars().any(|c| c.is_control()) {
        return Err(Error::invalid("secret", "1 to 1000 characters, no control characters"));
    }
    match provider {
        Provider::Standard => crate::model::secret::decode(secret).map(|_| ()).map_err(|_| {
            Error::invalid(
                "secret",
                "a Standard Webhooks secret: whsec_ followed by base64 (the sender's signing secret)",
            )
        }),
        Provider::Postmark if secret.contains(':') => {
            Err(Error::invalid("secret", "the Basic-auth password may not contain a colon"))
        }
        Provider::Circle => Err(Error::invalid(
            "secret",
            "circle sources verify with Circle's public keys: give --api-key or a key instead",
        )),
        _ => Ok(()),
    }
}

/// A source as stored (its secrets and URL token aside).
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub id: String,
    pub name: String,
    pub provider: Provider,
    /// The user whose endpoints are its forward destinations (`source:{name}`).
    pub user: String,
    pub settings: Settings,
    pub has_api_key: bool,
    /// Bytes; `None` takes `WEBHOOKS_INBOUND_MAX_BODY`.
    pub max_body: Option<u64>,
    pub expected_gap_seconds: Option<i64>,
    pub active: bool,
    pub last_accepted_at: Option<i64>,
    pub last_auth_seen_at: Option<i64>,
    pub silent_since: Option<i64>,
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The relay user of a source: a colon no real user name may carry (`principal::check_name`).
pub fn relay_user(name: &str) -> String {
    format!("source:{name}")
}

/// Checks a source's name (the same rule as user names: letters, digits, `._@+-`).
pub fn check_name(name: &str) -> Result<()> {
    crate::model::principal::check_name("name", name)
}

/// One logged inbound request.
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    pub id: String,
    pub source_id: String,
    pub received_at: i64,
    pub remote_addr: String,
    /// Redacted ([`redact`]).
    pub headers: Vec<LoggedHeader>,
    pub content_type: Option<String>,
    pub body_size: i64,
    /// Whether the body is still stored (within the size limit and the body retention).
    pub body_kept: bool,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub dedupe_key: Option<String>,
    pub dedupe_signed: bool,
    pub duplicate_of: Option<String>,
    pub replay_of: Option<String>,
    pub kind: Option<String>,
    pub event_id: Option<String>,
    pub rechecked_at: Option<i64>,
}

/// A source's last 24 hours: requests per outcome and rejects per reason.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub accepted: i64,
    pub duplicate: i64,
    pub rejected: i64,
    /// (reason, count), most frequent first.
    pub reasons: Vec<(String, i64)>,
    /// Rejects logged without their body, past `WEBHOOKS_INBOUND_REJECT_BUDGET`.
    pub bodies_dropped: i64,
}

/// Everything the detail views (page, API, CLI) show of a source.
#[derive(Debug, Clone)]
pub struct Detail {
    pub source: Source,
    /// The URL token (`/in/{token}`).
    pub token: String,
    pub forwards: Vec<crate::model::endpoint::Endpoint>,
    /// Secrets verifying now, and when the older ones stop (during a rotation).
    pub secrets: i64,
    pub rotation_ends_at: Option<i64>,
    /// Circle: (key id, `fetched` | `pasted`).
    pub public_keys: Vec<(String, String)>,
    pub counts: Counts,
}

impl Detail {
    /// The source's URL below the CGI's public URL.
    pub fn url(&self, base: &str) -> String {
        format!("{}/in/{}", base.trim_end_matches('/'), self.token)
    }

    /// The URL to paste into the provider's dashboard: Postmark's carries the Basic credentials.
    pub fn provider_url(&self, base: &str, secret: Option<&str>) -> String {
        let url = self.url(base);
        match (self.source.provider, secret, self.source.settings.username.as_deref()) {
            (Provider::Postmark, Some(p), Some(u)) => match url.split_once("://") {
                Some((scheme, rest)) => format!("{scheme}://{}:{}@{rest}", enc(u), enc(p)),
                None => url,
            },
            _ => url,
        }
    }

    /// The JSON the API and `--json` print.
    pub fn to_json(&self, base: &str) -> Value {
        let s = &self.source;
        let t = |ms: Option<i64>| ms.map(crate::model::time::rfc3339);
        serde_json::json!({
            "id": s.id,
            "name": s.name,
            "provider": s.provider,
            "url": self.url(base),
            "active": s.active,
            "relay_user": s.user,
            "settings": s.settings,
            "has_api_key": s.has_api_key,
            "max_body": s.max_body,
            "expected_gap_seconds": s.expected_gap_seconds,
            "last_accepted_at": t(s.last_accepted_at),
            "silent": s.silent_since.is_some(),
            "verification_failing": s.failing_since.is_some(),
            "secrets": self.secrets,
            "rotation_ends_at": t(self.rotation_ends_at),
            "public_keys": self.public_keys.iter().map(|(id, origin)| serde_json::json!({"key_id": id, "origin": origin})).collect::<Vec<_>>(),
            "forwards": self.forwards.iter().map(|e| forward_json(e, None)).collect::<Vec<_>>(),
            "counts_24h": self.counts,
            "created_at": t(Some(s.created_at)),
            "updated_at": t(Some(s.updated_at)),
        })
    }
}

/// A forward destination as the API and `--json` show it; its signing secret only when just made.
pub fn forward_json(ep: &crate::model::endpoint::Endpoint, secret: Option<&str>) -> Value {
    let mut v = serde_json::json!({"endpoint_id": ep.id, "url": ep.url, "active": ep.active});
    if let Some(s) = secret {
        v["secret"] = serde_json::json!(s);
    }
    v
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The content type a relay is sent with: the provider's, when it is a plain header value.
pub fn relay_content_type(header: Option<&str>) -> Option<String> {
    header
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 200 && v.bytes().all(|b| b.is_ascii_graphic() || b == b' '))
        .map(String::from)
}

/// A header as logged: its name, its value as text (bytes that are not UTF-8 shown as U+FFFD,
/// credentials redacted), and, when the value was not UTF-8, its exact bytes. Stored and shown
/// as `[name, value]`, or `[name, value, base64 of the exact bytes]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedHeader {
    pub name: String,
    pub value: String,
    pub raw: Option<Vec<u8>>,
}

impl Serialize for LoggedHeader {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(if self.raw.is_some() { 3 } else { 2 }))?;
        seq.serialize_element(&self.name)?;
        seq.serialize_element(&self.value)?;
        if let Some(raw) = &self.raw {
            seq.serialize_element(&base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw))?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for LoggedHeader {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let mut parts = Vec::<String>::deserialize(d)?.into_iter();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            return Err(serde::de::Error::custom("a logged header is [name, value] or [name, value, base64]"));
        };
        let raw = parts.next().and_then(|b| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).ok());
        Ok(LoggedHeader { name, value, raw })
    }
}

/// The longest header value kept in the log, in bytes.
pub const LOGGED_VALUE_MAX: usize = 2000;

/// Whether a header carries credentials, so that its value is never stored or shown: the
/// authorization and cookie headers, and every name that speaks of a token, a key, a secret, a
/// password or a session, except the providers' signature and key-id headers, which carry no
/// secret and which re-checking a request needs (`x-circle-key-id`, `x-hub-signature-256`).
pub fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if matches!(n.as_str(), "authorization" | "proxy-authorization" | "cookie" | "set-cookie") {
        return true;
    }
    if n.contains("signature") || n.ends_with("key-id") {
        return false;
    }
    ["token", "key", "secret", "password", "passwd", "session", "credential"].iter().any(|w| n.contains(w))
}

/// The headers as logged: the whole value of every credential header ([`is_credential_header`])
/// replaced by `[redacted]` (an `Authorization` keeps its scheme, `Basic [redacted]`, which tells
/// an operator what was sent); other values kept exactly, at most [`LOGGED_VALUE_MAX`] bytes.
pub fn redact(headers: &[(String, Vec<u8>)]) -> Vec<LoggedHeader> {
    headers
        .iter()
        .map(|(k, v)| {
            if is_credential_header(k) {
                let scheme = v.iter().position(|b| *b == b' ').map(|i| &v[..i]).filter(|s| {
                    k.to_ascii_lowercase().ends_with("authorization")
                        && !s.is_empty()
                        && s.len() < 20
                        && s.iter().all(u8::is_ascii_alphanumeric)
                });
                let value = match scheme {
                    Some(s) => format!("{} [redacted]", String::from_utf8_lossy(s)),
                    None => "[redacted]".into(),
                };
                return LoggedHeader { name: k.clone(), value, raw: None };
            }
            let cut = v.len() > LOGGED_VALUE_MAX;
            let v = &v[..v.len().min(LOGGED_VALUE_MAX)];
            match std::str::from_utf8(v) {
                Ok(text) => LoggedHeader { name: k.clone(), value: text.to_string(), raw: None },
                // Valid text cut inside a character by the limit: keep the whole ones.
                Err(e) if cut && e.error_len().is_none() => LoggedHeader {
                    name: k.clone(),
                    value: String::from_utf8_lossy(&v[..e.valid_up_to()]).into_owned(),
                    raw: None,
                },
                Err(_) => LoggedHeader {
                    name: k.clone(),
                    value: String::from_utf8_lossy(v).into_owned(),
                    raw: Some(v.to_vec()),
                },
            }
        })
        .collect()
}

/// The logged headers as the verifier reads them (re-checking a stored request).
pub fn as_pairs(headers: &[LoggedHeader]) -> Vec<(String, String)> {
    headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect()
}

/// `source.verification_failing`: at least [`FAILING_MIN_REQUESTS`] requests in the last hour,
/// at least half of them rejected.
pub fn verification_failing(requests: i64, rejected: i64) -> bool {
    requests >= FAILING_MIN_REQUESTS && rejected * 2 >= requests
}

/// `source.silent`: an expected gap is set and nothing was accepted for longer than it (since
/// the last accepted request, or since the source was created).
pub fn is_silent(expected_gap_ms: Option<i64>, last_accepted_at: Option<i64>, created_at: i64, now: i64) -> bool {
    match expected_gap_ms {
        Some(gap) => now - last_accepted_at.unwrap_or(created_at) > gap,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn headers_are_redacted_with_their_scheme_kept() {
        let h = redact(&headers(&[("authorization", "Basic dXNlcjpwYXNz"), ("cookie", "a=b"), ("x-a", "1")]));
        assert_eq!(h[0].value, "Basic [redacted]");
        assert_eq!(h[1].value, "[redacted]");
        assert_eq!(h[2].value, "1");
    }

    #[test]
    fn whole_values_of_credential_headers_are_redacted() {
        let h = redact(&headers(&[
            ("cookie", "sess=S3CR3T; theme=dark"),
            ("set-cookie", "sess=S3CR3T; Path=/"),
            ("x-api-key", "k-123 456"),
            ("x-auth-token", "Bearer abc"),
            ("x-gitlab-token", "glt"),
            ("x-client-secret", "cs"),
            ("x-session-id", "sid"),
            ("x-password", "pw"),
            ("proxy-authorization", "Basic cHc="),
            ("x-circle-api-key", "TEST_API_KEY:1:2"),
        ]));
        for l in &h {
            assert!(l.value == "[redacted]" || l.value == "Basic [redacted]", "{l:?}");
        }
        assert_eq!(h[8].value, "Basic [redacted]", "an authorization keeps its scheme");
        assert_eq!(h[3].value, "[redacted]", "only authorization headers keep a scheme");
        // What re-checking needs stays: signatures and key ids.
        let kept = redact(&headers(&[
            ("x-circle-key-id", "k1"),
            ("x-hub-signature-256", "sha256=ab"),
            ("x-wc-webhook-signature", "c2ln"),
            ("stripe-signature", "t=1,v1=ab"),
            ("webhook-id", "msg_1"),
        ]));
        assert!(kept.iter().all(|l| l.value != "[redacted]"), "{kept:?}");
    }

    #[test]
    fn values_that_are_not_utf8_are_shown_lossily_and_kept_exactly() {
        let raw = vec![("x-shop-name".to_string(), b"Caf\xe9".to_vec())];
        let h = redact(&raw);
        assert_eq!(h[0].value, "Caf\u{FFFD}");
        assert_eq!(h[0].raw.as_deref(), Some(&b"Caf\xe9"[..]));
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, "[[\"x-shop-name\",\"Caf\u{FFFD}\",\"Q2Fm6Q==\"]]");
        let back: Vec<LoggedHeader> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, h);
        let plain: Vec<LoggedHeader> = serde_json::from_str(r#"[["a","1"]]"#).unwrap();
        assert_eq!(plain[0], LoggedHeader { name: "a".into(), value: "1".into(), raw: None });
    }

    #[test]
    fn alert_rules() {
        assert!(!verification_failing(4, 4));
        assert!(verification_failing(5, 3));
        assert!(verification_failing(6, 3));
        assert!(!verification_failing(7, 3));
        assert!(is_silent(Some(1000), None, 0, 1001));
        assert!(!is_silent(Some(1000), Some(500), 0, 1400));
        assert!(!is_silent(None, None, 0, i64::MAX));
    }
}
