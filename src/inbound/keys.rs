//! Circle's notification keys: fetched from the source's key URL (`{key_url}/{keyId}`, with its
//! API key as a Bearer token) the first time a key id is seen; the caller keeps them for good.
//! The fetch goes through the same address policy as deliveries (`WEBHOOKS_ALLOWED_NETWORKS`,
//! checked on the address actually connected to): a key URL changed to `127.0.0.1` or a
//! metadata address would otherwise make the CGI carry the stored API key wherever it names.

use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::model::inbound::{is_circle_key_id, parse_public_key};
use crate::outbound::send::Sender;

/// A key fetch gives up after this, so that Circle's request is still answered within a second
/// (then 503: Circle retries, and the key is fetched once it answers in time).
pub const FETCH_TIMEOUT: Duration = Duration::from_millis(800);

#[derive(Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The DER SubjectPublicKeyInfo.
    Key(Vec<u8>),
    /// The key server does not know the id (404), or answered with no usable key.
    Unknown(String),
    /// The key server could not be asked: the provider is told to retry.
    Unavailable(String),
}

pub fn fetch(cfg: &Config, key_url: &str, api_key: Option<&str>, key_id: &str) -> Fetched {
    if !is_circle_key_id(key_id) {
        return Fetched::Unknown(format!("the key id {key_id:?} is not one Circle issues"));
    }
    let sender = Sender::with_timeout(cfg, FETCH_TIMEOUT);
    let mut headers = vec![("Accept".to_string(), "application/json".to_string())];
    if let Some(k) = api_key {
        headers.push(("Authorization".into(), format!("Bearer {k}")));
    }
    let url = format!("{}/{key_id}", key_url.trim_end_matches('/'));
    match sender.get(&url, &headers, 64 * 1024) {
        Err(e) => Fetched::Unavailable(format!("the key server {key_url} could not be reached: {e}")),
        Ok((404, _)) => Fetched::Unknown(format!("the key server does not know key {key_id}")),
        Ok((status, _)) if status >= 500 || status == 429 => {
            Fetched::Unavailable(format!("the key server answered {status}"))
        }
        // The API key is this installation's problem: Circle retries while the operator fixes it.
        Ok((status @ (401 | 403), _)) => {
            Fetched::Unavailable(format!("the key server refused the source's API key ({status})"))
        }
        Ok((200, body)) => {
            let key = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["data"]["publicKey"].as_str().map(String::from))
                .and_then(|k| parse_public_key(&k).ok());
            match key {
                Some(der) => Fetched::Key(der),
                None => Fetched::Unknown("the key server's answer carries no P-256 data.publicKey".into()),
            }
        }
        Ok((status, _)) => Fetched::Unknown(format!("the key server answered {status}")),
    }
}
