//! Endpoint secrets: `whsec_` + base64 of 32 random bytes (the Standard Webhooks form), and their
//! encryption at rest with XChaCha20-Poly1305 under `WEBHOOKS_SECRET_KEY`.
//!
//! The random 192-bit nonce makes nonce reuse a non-concern however many secrets are written; the
//! key id is bound as associated data so a ciphertext cannot be moved to another key's row.

use anyhow::{anyhow, bail, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

pub const PREFIX: &str = "whsec_";
const NONCE_LEN: usize = 24;

/// Fills a fresh array from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the operating system's random source is unavailable");
    b
}

/// A new endpoint secret in its printable form.
pub fn generate() -> String {
    format!("{PREFIX}{}", STANDARD.encode(random_bytes::<32>()))
}

/// The HMAC key of a secret: the base64-decoded bytes after `whsec_` (the prefix is optional, as
/// Standard Webhooks libraries accept it either way).
pub fn decode(secret: &str) -> Result<Vec<u8>> {
    let b64 = secret.trim().strip_prefix(PREFIX).unwrap_or(secret.trim());
    let bytes = STANDARD.decode(b64).map_err(|_| anyhow!("the secret is not whsec_ followed by base64"))?;
    if bytes.is_empty() {
        bail!("the secret is empty");
    }
    Ok(bytes)
}

/// Encrypts a printable secret for storage: nonce || ciphertext.
pub fn seal(master: &[u8; 32], key_id: &str, secret: &str) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(master.into());
    let nonce = random_bytes::<NONCE_LEN>();
    let ct = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: key_id.as_bytes() })
        .expect("encryption cannot fail for in-memory buffers");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// The master key being replaced while `webhooks rotate-key` runs
/// (`WEBHOOKS_PREVIOUS_SECRET_KEY`): secrets not yet re-encrypted still open with it.
static PREVIOUS_MASTER: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// Installs the previous master key from the configuration (once per process).
pub fn set_previous_master(key: Option<[u8; 32]>) {
    if let Some(k) = key {
        let _ = PREVIOUS_MASTER.set(k);
    }
}

/// Decrypts what [`seal`] stored, with the master key or, during a key rotation, the previous one.
pub fn open(master: &[u8; 32], key_id: &str, sealed: &[u8]) -> Result<String> {
    match open_with(master, key_id, sealed) {
        Err(e) => match PREVIOUS_MASTER.get() {
            Some(previous) => open_with(previous, key_id, sealed).map_err(|_| e),
            None => Err(e),
        },
        ok => ok,
    }
}

/// Decrypts with exactly this master key.
pub fn open_with(master: &[u8; 32], key_id: &str, sealed: &[u8]) -> Result<String> {
    if sealed.len() <= NONCE_LEN {
        bail!("stored secret of key {key_id} is truncated");
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(master.into());
    let pt = cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: key_id.as_bytes() }).map_err(|_| {
        anyhow!("cannot decrypt the secret of key {key_id}: WEBHOOKS_SECRET_KEY is not the key it was stored with")
    })?;
    Ok(String::from_utf8(pt)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_the_standard_form() {
        let s = generate();
        assert!(s.starts_with("whsec_"));
        assert_eq!(decode(&s).unwrap().len(), 32);
        assert_ne!(generate(), s);
    }

    #[test]
    fn seal_and_open_round_trip_and_detect_tampering() {
        let master = [7u8; 32];
        let s = generate();
        let sealed = seal(&master, "key_a", &s);
        assert!(!sealed.windows(s.len()).any(|w| w == s.as_bytes()), "plaintext visible");
        assert_eq!(open(&master, "key_a", &sealed).unwrap(), s);
        assert!(open(&[8u8; 32], "key_a", &sealed).is_err(), "wrong master key");
        assert!(open(&master, "key_b", &sealed).is_err(), "moved to another row");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open(&master, "key_a", &bad).is_err(), "tampered");
    }

    #[test]
    fn decode_rejects_non_base64() {
        assert!(decode("whsec_***").is_err());
        assert!(decode("whsec_").is_err());
    }
}
