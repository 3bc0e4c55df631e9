//! Creating an inbound source: the source and its forward destinations (endpoints of its relay
//! user, each with its own signing secret) in one transaction, then what is shown of it once
//! (its secret, the URL to give the provider, the forwards' secrets). The CLI, the API and the
//! pages all create sources through here.

use serde_json::{json, Value};

use crate::config::Config;
use crate::model::inbound::{forward_json, Detail, Provider};
use crate::model::{time, Result};
use crate::store::sources::{self, Changes, Created};
use crate::store::Store;

/// What a new source is made of.
pub struct NewSource<'a> {
    pub provider: Provider,
    /// Its name, settings and limits (`name` is required).
    pub changes: &'a Changes,
    /// The provider's secret, for providers that hand theirs out; otherwise one is generated.
    pub secret: Option<&'a str>,
    /// Forward destinations, in order.
    pub forward_urls: &'a [String],
}

/// A source just created, with what is shown only now.
pub struct Made {
    pub created: Created,
    pub detail: Detail,
    /// The URL to give the provider (with the secret in it for providers that take it so).
    pub provider_url: String,
    /// Each forward destination with its signing secret.
    pub forwards: Vec<Value>,
}

impl Made {
    /// The source as the API and `--json` show it on creation: its detail, its secret, the
    /// provider's URL and the forwards with their secrets.
    pub fn to_json(&self, base: &str) -> Value {
        let mut v = self.detail.to_json(base);
        v["secret"] = json!(self.created.secret);
        v["provider_url"] = json!(self.provider_url);
        v["forwards"] = Value::Array(self.forwards.clone());
        v
    }
}

/// Creates the source and its forwards in one transaction; `base` is the public address its
/// URLs are shown under.
pub fn create(cfg: &Config, store: &mut Store, new: &NewSource<'_>, base: &str) -> Result<Made> {
    let keyring = cfg.keyring()?;
    let policy = cfg.policy();
    let (created, forwards) = store.write(|db| {
        let created = sources::add(db, &keyring, new.provider, new.changes, new.secret)?;
        let added = sources::add_forwards(
            db,
            &keyring,
            &policy,
            &created.source.id,
            new.forward_urls,
            cfg.max_endpoints_per_user,
        )?;
        Ok((created, added))
    })?;
    let forwards = forwards.iter().map(|(ep, s)| forward_json(ep, Some(s))).collect();
    let detail = sources::detail(store.db(), &keyring, &created.source.id, time::now_ms())?;
    let provider_url = detail.provider_url(base, created.secret.as_deref());
    Ok(Made { created, detail, provider_url, forwards })
}
