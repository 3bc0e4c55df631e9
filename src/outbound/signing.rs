//! Signing deliveries and verifying them (fixed scheme, docs/signing.md).
//!
//! Signed content is `{id}.{timestamp}.{body}`, HMAC-SHA256 with the decoded endpoint secret.
//! Two header families carry the same MACs: `{prefix}-Signature: v1=<hex>` (one per active key,
//! newest first, with `{prefix}-Key-Id` in the same order) and Standard Webhooks'
//! `webhook-signature: v1,<base64>`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::model::endpoint::{Headers, SignatureCompat};
use crate::model::secret::{encode, spatie_signature};
pub use crate::model::secret::{hex, sign, SigningKey};
use crate::model::secret::{signature_matches, unhex};

pub const USER_AGENT: &str = concat!("qsm-webhooks/", env!("CARGO_PKG_VERSION"));

/// What a delivery request carries besides its body.
pub struct Delivery<'a> {
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub attempt: u32,
    pub timestamp: i64,
    pub body: &'a [u8],
}

/// Every header of a delivery request, signatures from `keys` (newest first).
pub fn headers(prefix: &str, keys: &[SigningKey], d: &Delivery<'_>) -> Vec<(String, String)> {
    let macs: Vec<[u8; 32]> = keys.iter().map(|k| sign(&k.key, d.event_id, d.timestamp, d.body)).collect();
    let join = |f: &dyn Fn(usize) -> String| (0..keys.len()).map(f).collect::<Vec<_>>().join(" ");
    vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), USER_AGENT.into()),
        (format!("{prefix}-Id"), d.event_id.into()),
        (format!("{prefix}-Timestamp"), d.timestamp.to_string()),
        (format!("{prefix}-Signature"), join(&|i| format!("v1={}", hex(&macs[i])))),
        (format!("{prefix}-Key-Id"), join(&|i| keys[i].id.clone())),
        (format!("{prefix}-Event"), d.event_type.into()),
        (format!("{prefix}-Attempt"), d.attempt.to_string()),
        ("webhook-id".into(), d.event_id.into()),
        ("webhook-timestamp".into(), d.timestamp.to_string()),
        ("webhook-signature".into(), join(&|i| format!("v1,{}", STANDARD.encode(macs[i])))),
    ]
}

/// Adds an endpoint's own headers to a delivery's: its custom headers (never one the product
/// sets: the product's win, whatever the case of the name) and, for `spatie`, `Signature` (the
/// hex HMAC-SHA256 of the raw body keyed with the primary secret's text, `whsec_…`).
pub fn add_endpoint_headers(
    headers: &mut Vec<(String, String)>,
    custom: &Headers,
    compat: SignatureCompat,
    primary: Option<&SigningKey>,
    body: &[u8],
) {
    if compat == SignatureCompat::Spatie {
        if let Some(k) = primary {
            headers.push(("Signature".into(), spatie_signature(&encode(&k.key), body)));
        }
    }
    for (name, value) in custom {
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
            headers.push((name.clone(), value.clone()));
        }
    }
}

/// Makes a delivery's headers those of a relayed inbound request: the provider's content type,
/// and where it came from (`{prefix}-Source`, `{prefix}-Provider`, `{prefix}-Verified: true`),
/// and, for a request flagged as a suspected replay, the request it repeats (`{prefix}-Replay-Of`).
pub fn relayed(
    prefix: &str,
    headers: &mut Vec<(String, String)>,
    content_type: &str,
    source: &str,
    provider: &str,
    replay_of: Option<&str>,
) {
    for (k, v) in headers.iter_mut() {
        if k == "Content-Type" {
            *v = content_type.to_string();
        }
    }
    headers.push((format!("{prefix}-Source"), source.to_string()));
    headers.push((format!("{prefix}-Provider"), provider.to_string()));
    headers.push((format!("{prefix}-Verified"), "true".to_string()));
    if let Some(id) = replay_of {
        headers.push((format!("{prefix}-Replay-Of"), id.to_string()));
    }
}

/// Why a request did not verify. Each message says what to check.
#[derive(Debug, PartialEq, Eq)]
pub enum VerifyError {
    MissingHeader(String),
    BadTimestamp,
    TooOld { skew_seconds: i64 },
    TooNew { skew_seconds: i64 },
    NoSignature,
    Mismatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::MissingHeader(h) => write!(f, "the {h} header is missing"),
            VerifyError::BadTimestamp => write!(f, "the timestamp header is not whole Unix seconds"),
            VerifyError::TooOld { skew_seconds } => write!(
                f,
                "the timestamp is {skew_seconds}s in the past, beyond the tolerance (a replay, or this clock is wrong)"
            ),
            VerifyError::TooNew { skew_seconds } => write!(
                f,
                "the timestamp is {skew_seconds}s in the future, beyond the tolerance (check this machine's clock)"
            ),
            VerifyError::NoSignature => write!(f, "the signature header holds no v1 signature"),
            VerifyError::Mismatch => write!(
                f,
                "no signature matches: the secret is wrong, or the body was changed (verify the raw bytes, before any JSON parsing)"
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Which header family verified.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Family {
    Qsm,
    StandardWebhooks,
}

/// Verifies a received delivery: headers as (name, value) pairs (names case-insensitive), the
/// raw body, candidate secrets, the allowed clock skew and the current time in Unix seconds.
/// Prefers the product's own headers when present, else the Standard Webhooks ones.
/// Signatures are compared in constant time (`Mac::verify_slice`).
pub fn verify(
    prefix: &str,
    headers: &[(String, String)],
    body: &[u8],
    keys: &[Vec<u8>],
    tolerance_seconds: i64,
    now: i64,
) -> Result<Family, VerifyError> {
    let get = |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim());
    let qsm_sig = format!("{prefix}-Signature");
    let (family, id, ts, sigs) = if let Some(sig) = get(&qsm_sig) {
        let id_h = format!("{prefix}-Id");
        let ts_h = format!("{prefix}-Timestamp");
        let id = get(&id_h).ok_or(VerifyError::MissingHeader(id_h))?;
        let ts = get(&ts_h).ok_or(VerifyError::MissingHeader(ts_h))?;
        let sigs: Vec<Vec<u8>> =
            sig.split_whitespace().filter_map(|s| s.strip_prefix("v1=")).filter_map(unhex).collect();
        (Family::Qsm, id, ts, sigs)
    } else if let Some(sig) = get("webhook-signature") {
        let id = get("webhook-id").ok_or(VerifyError::MissingHeader("webhook-id".into()))?;
        let ts = get("webhook-timestamp").ok_or(VerifyError::MissingHeader("webhook-timestamp".into()))?;
        let sigs: Vec<Vec<u8>> = sig
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b| STANDARD.decode(b).ok())
            .collect();
        (Family::StandardWebhooks, id, ts, sigs)
    } else {
        return Err(VerifyError::MissingHeader(format!("{qsm_sig} (or webhook-signature)")));
    };
    if ts.is_empty() || !ts.bytes().all(|b| b.is_ascii_digit()) || ts.len() > 12 {
        return Err(VerifyError::BadTimestamp);
    }
    let ts: i64 = ts.parse().map_err(|_| VerifyError::BadTimestamp)?;
    if now - ts > tolerance_seconds {
        return Err(VerifyError::TooOld { skew_seconds: now - ts });
    }
    if ts - now > tolerance_seconds {
        return Err(VerifyError::TooNew { skew_seconds: ts - now });
    }
    if sigs.is_empty() {
        return Err(VerifyError::NoSignature);
    }
    for key in keys {
        for sig in &sigs {
            if signature_matches(key, id, ts, body, sig) {
                return Ok(family);
            }
        }
    }
    Err(VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::secret;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1649367553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    fn key(id: &str, s: &str) -> SigningKey {
        SigningKey { id: id.into(), key: secret::decode(s).unwrap() }
    }

    #[test]
    fn design_test_vector() {
        let mac = sign(&secret::decode(SECRET).unwrap(), ID, TS, BODY);
        assert_eq!(hex(&mac), "b59d48e3f843ca000980ee5363189277a49dd240d6ea13de9c37be6d36b72a4c");
        assert_eq!(STANDARD.encode(mac), "tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    fn delivery() -> Delivery<'static> {
        Delivery { event_id: ID, event_type: "email.received", attempt: 2, timestamp: TS, body: BODY }
    }

    #[test]
    fn headers_carry_both_families_newest_first() {
        let other = secret::generate();
        let h = headers("X-QSM", &[key("key_new", &other), key("key_old", SECRET)], &delivery());
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
        let sigs: Vec<String> = get("X-QSM-Signature").split(' ').map(String::from).collect();
        assert_eq!(sigs.len(), 2);
        assert_eq!(sigs[1], "v1=b59d48e3f843ca000980ee5363189277a49dd240d6ea13de9c37be6d36b72a4c");
        assert_eq!(get("X-QSM-Key-Id"), "key_new key_old");
        assert!(get("webhook-signature").ends_with(" v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="));
        assert_eq!(get("X-QSM-Id"), ID);
        assert_eq!(get("webhook-id"), ID);
        assert_eq!(get("X-QSM-Attempt"), "2");
        assert_eq!(get("X-QSM-Event"), "email.received");
        assert_eq!(get("User-Agent"), USER_AGENT);
        let custom = headers("X-Acme-Hook", &[key("k", SECRET)], &delivery());
        assert!(custom.iter().any(|(k, _)| k == "X-Acme-Hook-Signature"));
    }

    #[test]
    fn verify_accepts_both_families_and_rejects_what_it_must() {
        let h = headers("X-QSM", &[key("k", SECRET)], &delivery());
        let keys = vec![secret::decode(SECRET).unwrap()];
        assert_eq!(verify("X-QSM", &h, BODY, &keys, 300, TS + 10), Ok(Family::Qsm));
        let sw: Vec<_> = h.iter().filter(|(k, _)| k.starts_with("webhook-")).cloned().collect();
        assert_eq!(verify("X-QSM", &sw, BODY, &keys, 300, TS), Ok(Family::StandardWebhooks));

        let tampered = br#"{"email":"test@example.com","username":"test_user2"}"#;
        assert_eq!(verify("X-QSM", &h, tampered, &keys, 300, TS), Err(VerifyError::Mismatch));
        assert_eq!(verify("X-QSM", &sw, tampered, &keys, 300, TS), Err(VerifyError::Mismatch));
        let wrong = vec![secret::decode(&secret::generate()).unwrap()];
        assert_eq!(verify("X-QSM", &h, BODY, &wrong, 300, TS), Err(VerifyError::Mismatch));
        assert_eq!(verify("X-QSM", &h, BODY, &keys, 300, TS + 301), Err(VerifyError::TooOld { skew_seconds: 301 }));
        assert_eq!(verify("X-QSM", &h, BODY, &keys, 300, TS - 301), Err(VerifyError::TooNew { skew_seconds: 301 }));
        assert!(verify("X-QSM", &h, BODY, &keys, 300, TS + 300).is_ok());
        assert!(verify("X-QSM", &h, BODY, &keys, 300, TS - 300).is_ok());
        assert!(matches!(verify("X-QSM", &[], BODY, &keys, 300, TS), Err(VerifyError::MissingHeader(_))));
    }

    #[test]
    fn verify_accepts_any_listed_signature() {
        let old = secret::generate();
        let h = headers("X-QSM", &[key("new", &secret::generate()), key("old", &old)], &delivery());
        let keys = vec![secret::decode(&old).unwrap()];
        assert!(verify("X-QSM", &h, BODY, &keys, 300, TS).is_ok());
    }
}
