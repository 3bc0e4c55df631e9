//! Signed tokens: login links, session cookies and CSRF tokens. Every MAC is HMAC-SHA256 under
//! a key derived from `WEBHOOKS_SECRET_KEY` for its purpose, so that a login-link signature can
//! never be replayed as a session or a CSRF token. The web checks them; the CLI and the host
//! application's API make login links.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac(master: &[u8; 32], purpose: &str, parts: &[&str]) -> Hmac<Sha256> {
    let mut derive = Hmac::<Sha256>::new_from_slice(master).expect("any key length");
    derive.update(purpose.as_bytes());
    let key = derive.finalize().into_bytes();
    let mut m = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
    for p in parts {
        m.update(p.as_bytes());
        m.update(b"\0");
    }
    m
}

pub fn sign(master: &[u8; 32], purpose: &str, parts: &[&str]) -> String {
    URL_SAFE_NO_PAD.encode(mac(master, purpose, parts).finalize().into_bytes())
}

/// Constant-time check of a signature made by [`sign`].
pub fn verify(master: &[u8; 32], purpose: &str, parts: &[&str], sig: &str) -> bool {
    match URL_SAFE_NO_PAD.decode(sig) {
        Ok(bytes) => mac(master, purpose, parts).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(super::secret::random_bytes::<16>())
}

/// A login link's query string: `user=…&expires=…&nonce=…&sig=…`, valid for `ttl`
/// (`WEBHOOKS_LOGIN_LINK_TTL`) and once (the web's sign-in redeems it). The nonce starts with
/// the time it was issued (`{unix ms}.{random}`, signed with the rest), so that revoking a
/// user's sessions can refuse the links issued before.
pub fn login_query(master: &[u8; 32], user: &str, now_ms: i64, ttl: Duration) -> String {
    let expires = (now_ms / 1000 + ttl.as_secs() as i64).to_string();
    let nonce = format!("{now_ms}.{}", random_token());
    let sig = sign(master, "login-link", &[user, &expires, &nonce]);
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("user", user)
        .append_pair("expires", &expires)
        .append_pair("nonce", &nonce)
        .append_pair("sig", &sig)
        .finish()
}

/// When a login link was issued (Unix ms): from its nonce, or, for a link whose nonce does not
/// say (made by hand before nonces did), the latest time a link of the longest `max_ttl`
/// expiring at `expires_s` could have been.
pub fn issued_ms(nonce: &str, expires_s: i64, max_ttl: Duration) -> i64 {
    nonce
        .split_once('.')
        .and_then(|(t, _)| t.parse::<i64>().ok())
        .unwrap_or((expires_s - max_ttl.as_secs() as i64) * 1000)
}

#[cfg(test)]
mod issued_tests {
    use super::*;

    #[test]
    fn a_link_says_when_it_was_issued() {
        let q = login_query(&[1; 32], "alice", 1_700_000_000_123, Duration::from_secs(60));
        let nonce = q.split("nonce=").nth(1).unwrap().split('&').next().unwrap();
        assert_eq!(issued_ms(nonce, 1_700_000_060, Duration::from_secs(900)), 1_700_000_000_123);
        assert!(q.contains("expires=1700000060&"), "{q}");
        assert_eq!(issued_ms("q83vEjRWeJA", 1_700_000_900, Duration::from_secs(900)), 1_700_000_000_000);
    }
}
