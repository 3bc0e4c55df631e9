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
/// (`WEBHOOKS_LOGIN_LINK_TTL`) and once (the web's sign-in redeems it).
pub fn login_query(master: &[u8; 32], user: &str, now_s: i64, ttl: Duration) -> String {
    let expires = (now_s + ttl.as_secs() as i64).to_string();
    let nonce = random_token();
    let sig = sign(master, "login-link", &[user, &expires, &nonce]);
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("user", user)
        .append_pair("expires", &expires)
        .append_pair("nonce", &nonce)
        .append_pair("sig", &sig)
        .finish()
}
