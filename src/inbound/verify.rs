//! One function verifies a provider's request, wherever it comes from (the `/in/` handler, a
//! re-check from the API, the pages or the CLI): with the source's current secrets and, for
//! Circle, the key the request names (from the store, or once from the key server).

use crate::config::Config;
use crate::inbound::keys::{self, Fetched};
use crate::model::inbound::{
    circle_signature, is_circle_key_id, verify as verify_with, Incoming, Material, Provider, Reason, Source, Verified,
    CIRCLE_KEY_URL, KEY_FETCHES_PER_MINUTE, KEY_MISS_TTL_MS,
};
use crate::model::secret::Keyring;
use crate::model::{time, Result};
use crate::store::{sources, Store};

/// Verifies `incoming` as its source's provider documents, at `at_s` (Unix seconds: now for a
/// new request, when it arrived for a re-check). `Ok(Err(reason))` is a verdict (reject with
/// it); `Err` is a condition of this machine (busy, unavailable).
pub fn verify(
    cfg: &Config,
    store: &mut Store,
    keyring: &Keyring,
    source: &Source,
    incoming: &Incoming<'_>,
    at_s: i64,
) -> Result<std::result::Result<Verified, Reason>> {
    let secrets = sources::secrets(store.db(), keyring, &source.id, time::now_ms())?;
    let public_key = match source.provider {
        Provider::Circle => {
            // The signature's form first: a request that could never verify costs no fetch.
            if let Err(reason) = circle_signature(incoming) {
                return Ok(Err(reason));
            }
            match circle_key(cfg, store, keyring, source, incoming.header("x-circle-key-id"))? {
                Ok(key) => key,
                Err(reason) => return Ok(Err(reason)),
            }
        }
        _ => None,
    };
    let m = Material {
        secrets: &secrets,
        settings: &source.settings,
        public_key: public_key.as_deref(),
        now_s: at_s,
        tolerance_s: cfg.skew_tolerance.as_secs() as i64,
    };
    Ok(verify_with(source.provider, &m, incoming))
}

/// The DER key a Circle request names: stored, or fetched from the key server and stored for
/// good. `Err` is the reason to reject with (unknown key, or key server unavailable).
fn circle_key(
    cfg: &Config,
    store: &mut Store,
    keyring: &Keyring,
    source: &Source,
    key_id: Option<&str>,
) -> Result<std::result::Result<Option<Vec<u8>>, Reason>> {
    let Some(key_id) = key_id.map(str::trim).filter(|k| !k.is_empty()) else {
        return Ok(Err(Reason::SignatureMissing));
    };
    if !is_circle_key_id(key_id) {
        return Ok(Err(Reason::KeyUnknown));
    }
    if let Some(der) = sources::public_key(store.db(), &source.id, key_id)? {
        return Ok(Ok(Some(der)));
    }
    // A key id the server did not know a few minutes ago is not asked for again, and a flood of
    // made-up ids is not a flood of requests to the key server.
    let now = time::now_ms();
    if sources::key_miss(store.db(), &source.id, key_id)?.is_some_and(|at| now - at < KEY_MISS_TTL_MS) {
        return Ok(Err(Reason::KeyUnknown));
    }
    if sources::key_fetches_since(store.db(), &source.id, now - 60_000)? >= KEY_FETCHES_PER_MINUTE {
        eprintln!("webhooks-cgi: source {}: more than {KEY_FETCHES_PER_MINUTE} key fetches in a minute; key {key_id} refused for now", source.name);
        return Ok(Err(Reason::KeyUnavailable));
    }
    let api_key = sources::api_key(store.db(), keyring, &source.id)?;
    let url = source.settings.key_url.as_deref().unwrap_or(CIRCLE_KEY_URL);
    // Counted before it is made, whatever the key server answers: the cap holds when it fails.
    store.write(|db| sources::add_key_fetch(db, &source.id, now))?;
    match keys::fetch(cfg, url, api_key.as_deref(), key_id) {
        Fetched::Key(der) => {
            store.write(|db| sources::add_public_key(db, &source.id, key_id, &der, "fetched"))?;
            Ok(Ok(Some(der)))
        }
        Fetched::Unknown(why) => {
            eprintln!("webhooks-cgi: source {}: Circle key {key_id}: {why}", source.name);
            store.write(|db| sources::add_key_miss(db, &source.id, key_id, now))?;
            Ok(Err(Reason::KeyUnknown))
        }
        Fetched::Unavailable(why) => {
            eprintln!("webhooks-cgi: source {}: Circle key {key_id}: {why}", source.name);
            Ok(Err(Reason::KeyUnavailable))
        }
    }
}
