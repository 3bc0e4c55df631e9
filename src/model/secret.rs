//! Endpoint secrets: `whsec_` + base64 of 32 random bytes (the Standard Webhooks form), and their
//! encryption at rest with XChaCha20-Poly1305 under `WEBHOOKS_SECRET_KEY`.
//!
//! The random 192-bit nonce makes nonce reuse a non-concern however many secrets are written; the
//! key id is bound as associated data so a ciphertext cannot be moved to another key's row.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::error::{Error, Result};

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

/// A key's printable form (`whsec_` + base64), the inverse of [`decode`].
pub fn encode(key: &[u8]) -> String {
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC key of a secret: the base64-decoded bytes after `whsec_` (the prefix is optional, as
/// Standard Webhooks libraries accept it either way).
pub fn decode(secret: &str) -> Result<Vec<u8>> {
    let b64 = secret.trim().strip_prefix(PREFIX).unwrap_or(secret.trim());
    let bytes = STANDARD.decode(b64).map_err(|_| Error::invalid("secret", "is not whsec_ followed by base64"))?;
    if bytes.is_empty() {
        return Err(Error::invalid("secret", "is empty"));
    }
    Ok(bytes)
}

/// A key that signs now, with its decrypted secret.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeySecret {
    pub key_id: String,
    pub secret: String,
    pub created_at: crate::model::time::Time,
    pub expires_at: Option<crate::model::time::Time>,
}

/// One signing key: its id and HMAC key bytes.
#[derive(Clone)]
pub struct SigningKey {
    pub id: String,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({}, <redacted>)", self.id)
    }
}

/// Lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Bytes from hexadecimal (either case); `None` for an odd length or a non-hex digit.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// The signature scheme (docs/signing.md, the same as Standard Webhooks'): HMAC-SHA256 with the
/// decoded secret over `{id}.{timestamp}.{body}`.
fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Spatie's signature (spatie/laravel-webhook-client's default signer): the lowercase hex of
/// HMAC-SHA256 of the raw body alone, keyed with the secret's text as the receiver configures it.
pub fn spatie_signature(secret_text: &str, body: &[u8]) -> String {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret_text.as_bytes()).expect("HMAC takes keys of any length");
    m.update(body);
    hex(&m.finalize().into_bytes())
}

/// The raw signature of `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    mac(key, id, timestamp, body).finalize().into_bytes().into()
}

/// Whether `signature` is that of `{id}.{timestamp}.{body}` under `key`, compared in constant
/// time (`Mac::verify_slice`).
pub fn signature_matches(key: &[u8], id: &str, timestamp: i64, body: &[u8], signature: &[u8]) -> bool {
    mac(key, id, timestamp, body).verify_slice(signature).is_ok()
}

/// The master keys endpoint secrets are sealed with: `WEBHOOKS_SECRET_KEY`, and while
/// `webhooks rotate-key` runs, `WEBHOOKS_PREVIOUS_SECRET_KEY` (secrets not yet re-encrypted still
/// open with it). Passed as a value to whatever seals or opens a secret.
#[derive(Clone, Copy)]
pub struct Keyring {
    pub current: [u8; 32],
    pub previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring(<redacted>)")
    }
}

impl Keyring {
    pub fn new(current: [u8; 32]) -> Keyring {
        Keyring { current, previous: None }
    }

    /// Seals under the current key.
    pub fn seal(&self, key_id: &str, secret: &str) -> Vec<u8> {
        seal(&self.current, key_id, secret)
    }

    /// Opens with the current key or, during a key rotation, the previous one.
    pub fn open(&self, key_id: &str, sealed: &[u8]) -> Result<String> {
        match open_with(&self.current, key_id, sealed) {
            Err(e) => match &self.previous {
                Some(previous) => open_with(previous, key_id, sealed).map_err(|_| e),
                None => Err(e),
            },
            ok => ok,
        }
    }
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

/// Re-seals under `new` what was sealed under `new` (an interrupted re-seal) or `retiring`.
pub fn reseal(new: &[u8; 32], retiring: &[u8; 32], key_id: &str, sealed: &[u8]) -> Result<Vec<u8>> {
    let plain = open_with(new, key_id, sealed).or_else(|_| open_with(retiring, key_id, sealed))?;
    Ok(seal(new, key_id, &plain))
}

/// Decrypts with exactly this master key.
pub fn open_with(master: &[u8; 32], key_id: &str, sealed: &[u8]) -> Result<String> {
    if sealed.len() <= NONCE_LEN {
        return Err(Error::Internal(format!("stored secret of key {key_id} is truncated")));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(master.into());
    let pt = cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: key_id.as_bytes() }).map_err(|_| {
        Error::Misconfigured(format!(
            "cannot decrypt the secret of key {key_id}: WEBHOOKS_SECRET_KEY is not the key it was stored with"
        ))
    })?;
    String::from_utf8(pt).map_err(|e| Error::internal("stored secret", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_a_byte_and_unhex_reads_it_back() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unhex(&hex(&all)).unwrap(), all);
        assert_eq!(unhex("0FA5").unwrap(), vec![0x0f, 0xa5]);
    }

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
        assert_eq!(open_with(&master, "key_a", &sealed).unwrap(), s);
        assert!(open_with(&[8u8; 32], "key_a", &sealed).is_err(), "wrong master key");
        assert!(open_with(&master, "key_b", &sealed).is_err(), "moved to another row");
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(open_with(&master, "key_a", &bad).is_err(), "tampered");
    }

    #[test]
    fn a_keyring_opens_with_the_previous_key_during_a_rotation() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let sealed = seal(&old, "key_a", "whsec_x");
        assert!(Keyring::new(new).open("key_a", &sealed).is_err());
        let rotating = Keyring { current: new, previous: Some(old) };
        assert_eq!(rotating.open("key_a", &sealed).unwrap(), "whsec_x");
        assert_eq!(Keyring::new(old).open("key_a", &rotating.seal("key_a", "whsec_y")).ok(), None);
    }

    #[test]
    fn decode_rejects_non_base64() {
        assert!(decode("whsec_***").is_err());
        assert!(decode("whsec_").is_err());
    }
}
