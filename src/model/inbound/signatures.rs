//! Each provider's verification, exactly as the provider documents it: on the raw bytes, in
//! constant time, against every active secret and every signature a header carries; then, from
//! the now trusted request, the provider's event id and type.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256, Sha512};

use super::{Provider, Reason, Settings, KIND_MAX};
use crate::model::secret::{self, hex};
use crate::model::{Error, Result};

type HmacSha256 = Hmac<Sha256>;
type HmacSha512 = Hmac<Sha512>;

/// A request as the verifier sees it: header names in lowercase.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl<'a> Incoming<'a> {
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What verification uses besides the request.
#[derive(Debug, Clone)]
pub struct Material<'a> {
    /// Active secrets, newest first.
    pub secrets: &'a [String],
    pub settings: &'a Settings,
    /// Circle: the DER SubjectPublicKeyInfo of the key the request names.
    pub public_key: Option<&'a [u8]>,
    /// Unix seconds now, and the tolerance for signed timestamps.
    pub now_s: i64,
    pub tolerance_s: i64,
}

/// The provider's event id: the duplicate key, and whether the provider signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedupe {
    pub key: String,
    pub signed: bool,
}

/// A verified request, with what its body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub dedupe: Dedupe,
    /// The provider's event type where it names one (`charge.succeeded`, `push`).
    pub kind: Option<String>,
    /// Slack's URL check: the challenge to echo back.
    pub challenge: Option<String>,
}

/// Verifies `req` as `provider` documents it; on success, reads the duplicate key and the event
/// type from the now trusted request.
pub fn verify(provider: Provider, m: &Material<'_>, req: &Incoming<'_>) -> std::result::Result<Verified, Reason> {
    match provider {
        Provider::Stripe => verify_stripe(m, req)?,
        Provider::Github => {
            let sig = req.header("x-hub-signature-256").ok_or(Reason::SignatureMissing)?;
            let hex_sig = sig.trim().strip_prefix("sha256=").ok_or(Reason::SignatureMalformed)?;
            let bytes = decode_hex(hex_sig).ok_or(Reason::SignatureMalformed)?;
            any_hmac256(m.secrets, &[req.body], &[bytes])?;
            delivery_id(req, "x-github-delivery")?;
        }
        Provider::Shopify => {
            let sig = req.header("x-shopify-hmac-sha256").ok_or(Reason::SignatureMissing)?;
            let bytes = STANDARD.decode(sig.trim()).map_err(|_| Reason::SignatureMalformed)?;
            any_hmac256(m.secrets, &[req.body], &[bytes])?;
            delivery_id(req, "x-shopify-webhook-id")?;
        }
        Provider::Woocommerce => {
            // WooCommerce's rule (WC_Webhook::generate_signature): base64 of the raw
            // HMAC-SHA256 of the body, keyed with the webhook's secret.
            let sig = req.header("x-wc-webhook-signature").ok_or(Reason::SignatureMissing)?;
            let bytes = STANDARD.decode(sig.trim()).map_err(|_| Reason::SignatureMalformed)?;
            any_hmac256(m.secrets, &[req.body], &[bytes])?;
            delivery_id(req, "x-wc-webhook-delivery-id")?;
        }
        Provider::Slack => {
            let ts = req.header("x-slack-request-timestamp").ok_or(Reason::TimestampMissing)?;
            let t = check_timestamp(ts, m)?;
            let sig = req.header("x-slack-signature").ok_or(Reason::SignatureMissing)?;
            let hex_sig = sig.trim().strip_prefix("v0=").ok_or(Reason::SignatureMalformed)?;
            let bytes = decode_hex(hex_sig).ok_or(Reason::SignatureMalformed)?;
            let prefix = format!("v0:{t}:");
            any_hmac256(m.secrets, &[prefix.as_bytes(), req.body], &[bytes])?
        }
        Provider::Standard => verify_standard(m, req)?,
        Provider::Postmark => verify_basic(m, req)?,
        Provider::Circle => verify_circle(m, req)?,
        Provider::Hmac => verify_hmac(m, req)?,
    }
    Ok(read_verified(provider, m.settings, req))
}

/// GitHub, Shopify and WooCommerce sign the body only, and send their delivery id beside it in a header on
/// every request: a request without it is a captured body and signature replayed, whose body
/// hash would otherwise stand in for the id.
fn delivery_id(req: &Incoming<'_>, header: &str) -> std::result::Result<(), Reason> {
    match req.header(header).map(str::trim) {
        Some(v) if !v.is_empty() && v.len() <= 200 => Ok(()),
        _ => Err(Reason::DeliveryIdMissing),
    }
}

/// Standard Webhooks' header family a request is verified with: `webhook-*` when it carries a
/// `webhook-signature`, else `svix-*`. Its id, and only its, is the duplicate key.
fn standard_family(req: &Incoming<'_>) -> &'static str {
    if req.header("webhook-signature").is_some() {
        "webhook"
    } else {
        "svix"
    }
}

/// `Stripe-Signature: t=…,v1=…[,v1=…][,v0=…]`: the timestamp and every `v1` signature.
pub fn parse_stripe_header(value: &str) -> Option<(i64, Vec<Vec<u8>>)> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in value.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k {
            "t" => t = Some(parse_seconds(v)?),
            "v1" => sigs.push(decode_hex(v)?),
            _ => {} // v0 (test-mode legacy) and future schemes are ignored, as Stripe's libraries do
        }
    }
    Some((t?, sigs))
}

fn verify_stripe(m: &Material<'_>, req: &Incoming<'_>) -> std::result::Result<(), Reason> {
    let header = req.header("stripe-signature").ok_or(Reason::SignatureMissing)?;
    let (t, sigs) = parse_stripe_header(header).ok_or(Reason::SignatureMalformed)?;
    if sigs.is_empty() {
        return Err(Reason::SignatureMissing);
    }
    // The signature first: a stale request with a wrong signature is a signature problem.
    let prefix = format!("{t}.");
    any_hmac256(m.secrets, &[prefix.as_bytes(), req.body], &sigs)?;
    within_tolerance(t, m)
}

/// Standard Webhooks' `webhook-signature` (or `svix-signature`): space-separated `v1,<base64>`;
/// other versions are skipped. Returns the signatures, or `None` when nothing parses.
pub fn parse_standard_signatures(value: &str) -> Option<Vec<Vec<u8>>> {
    let mut found = Vec::new();
    let mut any = false;
    for part in value.split_whitespace() {
        let (version, sig) = part.split_once(',')?;
        any = true;
        if version == "v1" {
            found.push(STANDARD.decode(sig).ok()?);
        }
    }
    any.then_some(found)
}

fn verify_standard(m: &Material<'_>, req: &Incoming<'_>) -> std::result::Result<(), Reason> {
    let family = standard_family(req);
    let id = req.header(&format!("{family}-id")).ok_or(Reason::SignatureMissing)?;
    let ts = req.header(&format!("{family}-timestamp")).ok_or(Reason::TimestampMissing)?;
    let sig = req.header(&format!("{family}-signature")).ok_or(Reason::SignatureMissing)?;
    let sigs = parse_standard_signatures(sig).ok_or(Reason::SignatureMalformed)?;
    let t = parse_seconds(ts.trim()).ok_or(Reason::TimestampMissing)?;
    let keys: Vec<Vec<u8>> = m.secrets.iter().filter_map(|s| secret::decode(s).ok()).collect();
    let mut matched = false;
    for key in &keys {
        for sig in &sigs {
            matched |= secret::signature_matches(key, id, t, req.body, sig);
        }
    }
    if !matched {
        return Err(if sigs.is_empty() { Reason::SignatureMissing } else { Reason::SignatureMismatch });
    }
    within_tolerance(t, m)
}

/// `Authorization: Basic base64(user:password)` → (user, password).
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(rest.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn verify_basic(m: &Material<'_>, req: &Incoming<'_>) -> std::result::Result<(), Reason> {
    let header = req.header("authorization").ok_or(Reason::CredentialsMissing)?;
    let (user, password) = parse_basic(header).ok_or(Reason::CredentialsWrong)?;
    let want_user = m.settings.username.as_deref().unwrap_or("");
    // Compare digests, so that neither the lengths nor the contents leak through timing.
    let digest = |s: &str| Sha256::digest(s.as_bytes());
    let user_ok = ct_eq(&digest(&user), &digest(want_user));
    let mut password_ok = false;
    for secret in m.secrets {
        password_ok |= ct_eq(&digest(&password), &digest(secret));
    }
    if user_ok & password_ok {
        Ok(())
    } else {
        Err(Reason::CredentialsWrong)
    }
}

fn verify_circle(m: &Material<'_>, req: &Incoming<'_>) -> std::result::Result<(), Reason> {
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::VerifyingKey;
    use p256::pkcs8::DecodePublicKey;
    let signature = circle_signature(req)?;
    let key_der = m.public_key.ok_or(Reason::KeyUnknown)?;
    let key = VerifyingKey::from_public_key_der(key_der).map_err(|_| Reason::NotConfigured)?;
    // ECDSA over SHA-256 of the body; a high-S signature is as valid as its low-S twin here.
    let signature = signature.normalize_s();
    key.verify(req.body, &signature).map_err(|_| Reason::SignatureMismatch)
}

/// Circle's `X-Circle-Signature`, base64 of a DER ECDSA signature, beside an `X-Circle-Key-Id`:
/// checked for form before the key server is asked for the key, so that junk requests never
/// cost a fetch.
pub fn circle_signature(req: &Incoming<'_>) -> std::result::Result<p256::ecdsa::Signature, Reason> {
    let sig = req.header("x-circle-signature").ok_or(Reason::SignatureMissing)?;
    req.header("x-circle-key-id").ok_or(Reason::SignatureMissing)?;
    let der = STANDARD.decode(sig.trim()).map_err(|_| Reason::SignatureMalformed)?;
    p256::ecdsa::Signature::from_der(&der).map_err(|_| Reason::SignatureMalformed)
}

/// Reads a Circle public key as Circle's key server or an operator gives it: base64 of a DER
/// SubjectPublicKeyInfo, or a PEM block. Returns the DER bytes of a valid P-256 key.
pub fn parse_public_key(text: &str) -> Result<Vec<u8>> {
    use p256::pkcs8::DecodePublicKey;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| Error::invalid("public_key", "base64 of a DER public key, or a PEM block"))?;
    p256::ecdsa::VerifyingKey::from_public_key_der(&der)
        .map_err(|_| Error::invalid("public_key", "not an ECDSA P-256 public key (SubjectPublicKeyInfo)"))?;
    Ok(der)
}

fn verify_hmac(m: &Material<'_>, req: &Incoming<'_>) -> std::result::Result<(), Reason> {
    let s = m.settings;
    let header = s.header.as_deref().ok_or(Reason::NotConfigured)?;
    let value = req.header(header).ok_or(Reason::SignatureMissing)?;
    let sigs = parse_hmac_header(value, s).ok_or(Reason::SignatureMalformed)?;
    let sha512 = s.algorithm.as_deref() == Some("sha512");
    let mut matched = false;
    for secret in m.secrets {
        for sig in &sigs {
            matched |= if sha512 {
                let mut mac = HmacSha512::new_from_slice(secret.as_bytes()).expect("any key length");
                mac.update(req.body);
                mac.verify_slice(sig).is_ok()
            } else {
                let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
                mac.update(req.body);
                mac.verify_slice(sig).is_ok()
            };
        }
    }
    if matched {
        Ok(())
    } else {
        Err(Reason::SignatureMismatch)
    }
}

/// A generic HMAC header: one or more signatures separated by commas or spaces, each after the
/// optional prefix, in hex or base64.
pub fn parse_hmac_header(value: &str, s: &Settings) -> Option<Vec<Vec<u8>>> {
    let prefix = s.prefix.as_deref().unwrap_or("");
    let base64 = s.encoding.as_deref() == Some("base64");
    let mut out = Vec::new();
    for part in value.split([',', ' ']).filter(|p| !p.is_empty()) {
        let sig = part.strip_prefix(prefix)?;
        out.push(if base64 { STANDARD.decode(sig).ok()? } else { decode_hex(sig)? });
    }
    (!out.is_empty()).then_some(out)
}

/// True when some secret's HMAC-SHA256 over the concatenated `parts` equals some signature
/// (compared in constant time by `verify_slice`).
fn any_hmac256(secrets: &[String], parts: &[&[u8]], sigs: &[Vec<u8>]) -> std::result::Result<(), Reason> {
    let mut matched = false;
    for secret in secrets {
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
        for p in parts {
            mac.update(p);
        }
        for sig in sigs {
            matched |= mac.clone().verify_slice(sig).is_ok();
        }
    }
    if matched {
        Ok(())
    } else {
        Err(Reason::SignatureMismatch)
    }
}

fn check_timestamp(ts: &str, m: &Material<'_>) -> std::result::Result<i64, Reason> {
    let t = parse_seconds(ts.trim()).ok_or(Reason::TimestampMissing)?;
    within_tolerance(t, m)?;
    Ok(t)
}

fn within_tolerance(t: i64, m: &Material<'_>) -> std::result::Result<(), Reason> {
    if (m.now_s - t).abs() > m.tolerance_s {
        Err(Reason::TimestampStale)
    } else {
        Ok(())
    }
}

/// Whole Unix seconds, at most 12 digits.
fn parse_seconds(s: &str) -> Option<i64> {
    (!s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// Hex signature bytes, at most 512 of them.
pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() > 1024 {
        return None;
    }
    secret::unhex(s)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The SHA-256 of a body, hex: the duplicate key of last resort and the replay fingerprint.
pub fn body_hash(body: &[u8]) -> String {
    hex(&Sha256::digest(body))
}

/// The duplicate key, the event type and Slack's challenge, read from a verified request.
fn read_verified(provider: Provider, settings: &Settings, req: &Incoming<'_>) -> Verified {
    let json: Option<Value> = serde_json::from_slice(req.body).ok();
    let field = |path: &str| json.as_ref().and_then(|v| v.pointer(path)).and_then(id_text);
    let header = |name: &str| req.header(name).map(str::trim).filter(|v| !v.is_empty() && v.len() <= 200);
    let signed = |key: Option<String>| key.map(|key| Dedupe { key, signed: true });
    let unsigned = |key: Option<&str>| key.map(|k| Dedupe { key: k.to_string(), signed: false });
    let (dedupe, kind) = match provider {
        Provider::Stripe => (signed(field("/id")), field("/type")),
        Provider::Github => (unsigned(header("x-github-delivery")), header("x-github-event").map(String::from)),
        Provider::Shopify => (unsigned(header("x-shopify-webhook-id")), header("x-shopify-topic").map(String::from)),
        Provider::Woocommerce => {
            (unsigned(header("x-wc-webhook-delivery-id")), header("x-wc-webhook-topic").map(String::from))
        }
        Provider::Slack => (signed(field("/event_id")), field("/event/type").or_else(|| field("/type"))),
        Provider::Standard => (
            // The id of the family that was verified: an unsigned header of the other never
            // changes the duplicate key.
            signed(header(&format!("{}-id", standard_family(req))).map(String::from)),
            field("/type").or_else(|| field("/eventType")),
        ),
        Provider::Postmark => (signed(field("/MessageID")), field("/RecordType")),
        Provider::Circle => (signed(field("/notificationId")), field("/notificationType")),
        Provider::Hmac => {
            let from_header = settings.id_header.as_deref().and_then(|h| unsigned(header(h)));
            let from_body = settings.id_pointer.as_deref().and_then(|p| signed(field(p)));
            (from_header.or(from_body), None)
        }
    };
    let dedupe = dedupe.unwrap_or_else(|| Dedupe { key: format!("sha256:{}", body_hash(req.body)), signed: true });
    let challenge = (provider == Provider::Slack && field("/type").as_deref() == Some("url_verification"))
        .then(|| field("/challenge"))
        .flatten();
    // It becomes part of a header (`X-QSM-Event`): printable ASCII only.
    let kind = kind
        .map(|k| k.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(KIND_MAX).collect::<String>())
        .filter(|k| !k.trim().is_empty());
    Verified { dedupe, kind, challenge }
}

/// A JSON string or integer as an id, at most 200 characters.
fn id_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.len() <= 200).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::inbound::relay_content_type;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = HmacSha256::new_from_slice(key).unwrap();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }

    fn material<'a>(secrets: &'a [String], settings: &'a Settings, now_s: i64) -> Material<'a> {
        Material { secrets, settings, public_key: None, now_s, tolerance_s: 300 }
    }

    #[test]
    fn shopify_is_base64_hmac_of_the_raw_body() {
        // Shopify's documented rule: base64(HMAC-SHA256(client secret, raw body)). The signature
        // here is made by the hmac crate from that rule; tests/external/inbound_providers.py
        // makes it with Python's standard library as Shopify's example code does.
        let secret = "hush".to_string();
        let body = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;
        let sig = STANDARD.encode(hmac256(secret.as_bytes(), &[body]));
        let h = headers(&[
            ("x-shopify-hmac-sha256", &sig),
            ("x-shopify-webhook-id", "b54557e4"),
            ("x-shopify-topic", "orders/create"),
        ]);
        let secrets = [secret];
        let s = Settings::default();
        let v = verify(Provider::Shopify, &material(&secrets, &s, 0), &Incoming { headers: &h, body }).unwrap();
        assert_eq!(v.dedupe, Dedupe { key: "b54557e4".into(), signed: false });
        assert_eq!(v.kind.as_deref(), Some("orders/create"));
        let mut altered = body.to_vec();
        altered[5] ^= 1;
        assert_eq!(
            verify(Provider::Shopify, &material(&secrets, &s, 0), &Incoming { headers: &h, body: &altered }),
            Err(Reason::SignatureMismatch)
        );
    }

    #[test]
    fn stripe_checks_every_v1_and_the_timestamp_both_ways() {
        let secrets = ["whsec_old".to_string(), "whsec_new".to_string()];
        let s = Settings::default();
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let t = 1_700_000_000;
        let good = hex(&hmac256(b"whsec_new", &[format!("{t}.").as_bytes(), body]));
        let header = format!("t={t},v1={},v1={good},v0=abcd", "00".repeat(32));
        let h = headers(&[("stripe-signature", &header)]);
        let req = Incoming { headers: &h, body };
        let v = verify(Provider::Stripe, &material(&secrets, &s, t + 300), &req).unwrap();
        assert_eq!(v.dedupe, Dedupe { key: "evt_1".into(), signed: true });
        assert_eq!(v.kind.as_deref(), Some("charge.succeeded"));
        assert_eq!(verify(Provider::Stripe, &material(&secrets, &s, t + 301), &req), Err(Reason::TimestampStale));
        assert_eq!(verify(Provider::Stripe, &material(&secrets, &s, t - 301), &req), Err(Reason::TimestampStale));
        let only_old = ["whsec_old".to_string()];
        assert_eq!(verify(Provider::Stripe, &material(&only_old, &s, t), &req), Err(Reason::SignatureMismatch));
    }

    #[test]
    fn standard_takes_both_header_families() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let key = crate::model::secret::decode(&secret).unwrap();
        let body = br#"{"type":"email.received"}"#;
        let sig = STANDARD.encode(hmac256(&key, &[b"msg_1.1700000000.", body]));
        let secrets = [secret];
        let s = Settings::default();
        for family in ["webhook", "svix"] {
            let h = headers(&[
                (&format!("{family}-id"), "msg_1"),
                (&format!("{family}-timestamp"), "1700000000"),
                (&format!("{family}-signature"), &format!("v2,abc v1,{sig}")),
            ]);
            let v = verify(Provider::Standard, &material(&secrets, &s, 1_700_000_010), &Incoming { headers: &h, body })
                .unwrap();
            assert_eq!(v.dedupe, Dedupe { key: "msg_1".into(), signed: true });
            assert_eq!(v.kind.as_deref(), Some("email.received"));
        }
    }

    #[test]
    fn the_duplicate_key_comes_from_the_verified_header_family_only() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string();
        let key = crate::model::secret::decode(&secret).unwrap();
        let body = br#"{"type":"email.received"}"#;
        let sig = STANDARD.encode(hmac256(&key, &[b"msg_1.1700000000.", body]));
        let secrets = [secret];
        let s = Settings::default();
        // Signed with svix-*, an unsigned webhook-id added on the way.
        let h = headers(&[
            ("svix-id", "msg_1"),
            ("svix-timestamp", "1700000000"),
            ("svix-signature", &format!("v1,{sig}")),
            ("webhook-id", "anything"),
        ]);
        let v = verify(Provider::Standard, &material(&secrets, &s, 1_700_000_010), &Incoming { headers: &h, body })
            .unwrap();
        assert_eq!(v.dedupe, Dedupe { key: "msg_1".into(), signed: true });
    }

    #[test]
    fn github_and_shopify_requests_without_their_delivery_id_are_rejected() {
        let secrets = ["hush".to_string()];
        let s = Settings::default();
        let body = br#"{"action":"opened"}"#;
        let gh = format!("sha256={}", hex(&hmac256(b"hush", &[body])));
        let shop = STANDARD.encode(hmac256(b"hush", &[body]));
        let cases = [
            (
                Provider::Github,
                vec![("x-hub-signature-256", gh.as_str()), ("x-github-event", "push")],
                "x-github-delivery",
            ),
            (Provider::Shopify, vec![("x-shopify-hmac-sha256", shop.as_str())], "x-shopify-webhook-id"),
        ];
        for (provider, mut pairs, id_header) in cases {
            let h = headers(&pairs);
            assert_eq!(
                verify(provider, &material(&secrets, &s, 0), &Incoming { headers: &h, body }),
                Err(Reason::DeliveryIdMissing),
                "{provider:?}"
            );
            pairs.push((id_header, " "));
            let h = headers(&pairs);
            assert_eq!(
                verify(provider, &material(&secrets, &s, 0), &Incoming { headers: &h, body }),
                Err(Reason::DeliveryIdMissing),
                "{provider:?}: a blank id"
            );
            pairs.pop();
            pairs.push((id_header, "d-1"));
            let h = headers(&pairs);
            let v = verify(provider, &material(&secrets, &s, 0), &Incoming { headers: &h, body }).unwrap();
            assert_eq!(v.dedupe, Dedupe { key: "d-1".into(), signed: false }, "{provider:?}");
        }
        // A forged request without the id is still a signature problem first.
        let h = headers(&[("x-hub-signature-256", "sha256=00")]);
        assert_eq!(
            verify(Provider::Github, &material(&secrets, &s, 0), &Incoming { headers: &h, body }),
            Err(Reason::SignatureMismatch)
        );
    }

    #[test]
    fn postmark_compares_both_credentials() {
        let secrets = ["pw-new".to_string(), "pw-old".to_string()];
        let s = Settings { username: Some("postmark".into()), ..Settings::default() };
        let body = br#"{"MessageID":"a8c1","RecordType":"Inbound"}"#;
        let auth = |u: &str, p: &str| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
        let check = |value: Option<String>| {
            let h: Vec<(String, String)> = value.map(|v| ("authorization".to_string(), v)).into_iter().collect();
            verify(Provider::Postmark, &material(&secrets, &s, 0), &Incoming { headers: &h, body })
        };
        assert_eq!(check(Some(auth("postmark", "pw-old"))).unwrap().dedupe.key, "a8c1");
        assert!(check(Some(auth("postmark", "pw-new"))).is_ok());
        assert_eq!(check(Some(auth("postmark", "pw-other"))), Err(Reason::CredentialsWrong));
        assert_eq!(check(Some(auth("someone", "pw-new"))), Err(Reason::CredentialsWrong));
        assert_eq!(check(None), Err(Reason::CredentialsMissing));
        assert_eq!(Reason::CredentialsWrong.status(), 401);
    }

    #[test]
    fn hmac_settings_choose_the_algorithm_encoding_prefix_and_id() {
        let s = Settings {
            header: Some("X-Sig".into()),
            algorithm: Some("sha512".into()),
            encoding: Some("base64".into()),
            prefix: Some("sha512=".into()),
            id_pointer: Some("/data/id".into()),
            ..Settings::default()
        };
        s.check(Provider::Hmac).unwrap();
        let body = br#"{"data":{"id":42}}"#;
        let mut mac = HmacSha512::new_from_slice(b"k").unwrap();
        mac.update(body);
        let sig = format!("sha512={}", STANDARD.encode(mac.finalize().into_bytes()));
        let h = headers(&[("x-sig", &sig)]);
        let secrets = ["k".to_string()];
        let v = verify(Provider::Hmac, &material(&secrets, &s, 0), &Incoming { headers: &h, body }).unwrap();
        assert_eq!(v.dedupe, Dedupe { key: "42".into(), signed: true });
        let plain = Settings { header: Some("X-Sig".into()), ..Settings::default() };
        assert_eq!(
            verify(Provider::Hmac, &material(&secrets, &plain, 0), &Incoming { headers: &h, body }),
            Err(Reason::SignatureMalformed)
        );
        assert!(Settings { header: Some("X-Sig".into()), ..Settings::default() }.check(Provider::Github).is_err());
        assert!(Settings::default().check(Provider::Hmac).is_err());
    }

    #[test]
    fn a_missing_event_id_falls_back_to_the_body_hash() {
        let secrets = ["s".to_string()];
        let s = Settings::default();
        let body = b"token=x&payload=%7B%7D";
        let ts = "1700000000";
        let sig = format!("v0={}", hex(&hmac256(b"s", &[b"v0:1700000000:", body])));
        let h = headers(&[("x-slack-request-timestamp", ts), ("x-slack-signature", &sig)]);
        let v =
            verify(Provider::Slack, &material(&secrets, &s, 1_700_000_000), &Incoming { headers: &h, body }).unwrap();
        assert_eq!(v.dedupe, Dedupe { key: format!("sha256:{}", body_hash(body)), signed: true });
    }

    #[test]
    fn event_types_and_content_types_are_safe_header_values() {
        let secrets = ["k".to_string()];
        let s = Settings::default();
        let body = "{\"id\":\"evt_1\",\"type\":\"caf\u{e9}.cr\u{e9}\u{e9}\\r\\nX-Evil: 1\"}".as_bytes();
        let t = 1_700_000_000;
        let sig = hex(&hmac256(b"k", &[format!("{t}.").as_bytes(), body]));
        let h = headers(&[("stripe-signature", &format!("t={t},v1={sig}"))]);
        let v = verify(Provider::Stripe, &material(&secrets, &s, t), &Incoming { headers: &h, body }).unwrap();
        assert_eq!(v.kind.as_deref(), Some("caf.crX-Evil: 1"));
        assert_eq!(relay_content_type(Some("message/rfc822")), Some("message/rfc822".into()));
        assert_eq!(relay_content_type(Some("text/plain\u{e9}")), None);
        assert_eq!(relay_content_type(Some("  ")), None);
    }
}
