//! `sources`: inbound sources with their secrets (sealed like endpoint secrets, two active during
//! a rotation), their URL token (looked up by its hash, kept sealed to show the URL again), and
//! Circle's public keys. A source's forward destinations are the endpoints of its relay user.

use std::time::Duration;

use super::sql::{self, params, OptionalExtension, Row};
use sha2::{Digest, Sha256};

use super::{rows, Db};
use crate::model::endpoint::Fields;
use crate::model::inbound::{check_name, check_secret, relay_user, Counts, Provider, Settings, Source};
use crate::model::secret::{self, hex, Keyring};
use crate::model::time::{hour_of, HOUR_MS};
use crate::model::{time, Error, Result};

const COLUMNS: &str = "s.id, s.name, s.provider, u.name, s.settings, s.api_key IS NOT NULL, s.max_body,
    s.expected_gap_ms, s.active, s.last_accepted_at, s.last_auth_seen_at, s.silent_since, s.failing_since,
    s.created_at, s.updated_at";

fn from_row(r: &Row<'_>) -> sql::Result<Source> {
    let provider: String = r.get(2)?;
    let settings: String = r.get(4)?;
    Ok(Source {
        id: r.get(0)?,
        name: r.get(1)?,
        provider: Provider::parse(&provider).map_err(|e| sql::SqlError::Conversion(e.to_string()))?,
        user: r.get(3)?,
        settings: serde_json::from_str(&settings).unwrap_or_default(),
        has_api_key: r.get(5)?,
        max_body: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
        expected_gap_seconds: r.get::<_, Option<i64>>(7)?.map(|ms| ms / 1000),
        active: r.get(8)?,
        last_accepted_at: r.get(9)?,
        last_auth_seen_at: r.get(10)?,
        silent_since: r.get(11)?,
        failing_since: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
    })
}

/// What an operator sets on a source (absent fields keep their value on update).
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub name: Option<String>,
    pub settings: Option<Settings>,
    /// Circle's key-server API key; `Some("")` removes it.
    pub api_key: Option<String>,
    /// `Some(None)` returns to the default.
    pub max_body: Option<Option<u64>>,
    pub expected_gap_seconds: Option<Option<i64>>,
}

/// A new source, with what is shown once.
#[derive(Debug, Clone)]
pub struct Created {
    pub source: Source,
    pub token: String,
    /// The secret, when this program made it (or echoed, when given).
    pub secret: Option<String>,
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn check_fields(provider: Provider, f: &Changes) -> Result<()> {
    if let Some(n) = &f.name {
        check_name(n)?;
    }
    if let Some(s) = &f.settings {
        s.check(provider)?;
    }
    if f.api_key.as_deref().is_some_and(|k| !k.is_empty()) && provider != Provider::Circle {
        return Err(Error::invalid("api_key", "api_key applies to circle sources only"));
    }
    if f.api_key.as_ref().is_some_and(|k| k.len() > 500 || k.chars().any(|c| c.is_control())) {
        return Err(Error::invalid("api_key", "at most 500 characters"));
    }
    if let Some(Some(n)) = f.max_body {
        if n == 0 || n > crate::model::inbound::MAX_BODY_LIMIT {
            return Err(Error::invalid("max_body", "1 byte to 64 MiB"));
        }
    }
    if let Some(Some(g)) = f.expected_gap_seconds {
        if !(60..=90 * 86400).contains(&g) {
            return Err(Error::invalid("expected_gap", "between 1 minute and 90 days"));
        }
    }
    Ok(())
}

/// Creates a source. `secret` is the provider's (Stripe, Shopify, Slack hand theirs out and must
/// be given); otherwise one is generated. Postmark sources get the user name `postmark` unless
/// settings name another.
pub fn add(
    db: Db<'_>,
    keyring: &Keyring,
    provider: Provider,
    fields: &Changes,
    secret: Option<&str>,
) -> Result<Created> {
    let name = fields.name.clone().ok_or_else(|| Error::invalid("name", "a source needs a name"))?;
    check_fields(provider, fields)?;
    let mut settings = fields.settings.clone().unwrap_or_default();
    settings.check(provider)?;
    if provider == Provider::Postmark && settings.username.is_none() {
        settings.username = Some("postmark".into());
    }
    let secret = secret_for(provider, secret)?;
    if find_by_name(db, &name)?.is_some() {
        return Err(Error::conflict("source_exists", format!("a source named {name:?} exists already")));
    }
    let user_id = super::principals::ensure(db, &relay_user(&name))?;
    let id = time::new_id("src");
    let token = format!("in_{}", hex(&secret::random_bytes::<24>()));
    let now = time::now_ms();
    db.conn.execute(
        "INSERT INTO sources (id, name, provider, user_id, token_hash, token, settings, api_key, max_body,
                              expected_gap_ms, active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1, ?11, ?11)",
        params![
            id,
            name,
            provider.as_str(),
            user_id,
            token_hash(&token),
            keyring.seal(&format!("{id}/token"), &token),
            serde_json::to_string(&settings)?,
            fields.api_key.as_deref().filter(|k| !k.is_empty()).map(|k| keyring.seal(&format!("{id}/api_key"), k)),
            fields.max_body.flatten().map(|n| n as i64),
            fields.expected_gap_seconds.flatten().map(|s| s * 1000),
            now
        ],
    )?;
    if let Some(s) = &secret {
        insert_key(db, keyring, &id, s, now)?;
    }
    Ok(Created { source: get(db, &id)?, token, secret })
}

/// The secret a source verifies with: the one given (checked), or one made where the provider
/// lets this program make it (Standard Webhooks: a `whsec_` secret; others: 48 hex digits).
/// `None` for Circle, which signs with its own key pair.
fn secret_for(provider: Provider, given: Option<&str>) -> Result<Option<String>> {
    match (given, provider) {
        (Some(s), _) => {
            check_secret(provider, s)?;
            Ok(Some(s.to_string()))
        }
        (None, p) if p.secret_from_provider() => Err(Error::invalid(
            "secret",
            format!("{p} hands out the signing secret: paste it from the provider's dashboard (--secret)"),
        )),
        (None, Provider::Circle) => Ok(None),
        (None, Provider::Standard) => Ok(Some(secret::generate())),
        (None, _) => Ok(Some(hex(&secret::random_bytes::<24>()))),
    }
}

fn insert_key(db: Db<'_>, keyring: &Keyring, source_id: &str, secret: &str, now: i64) -> Result<String> {
    let key_id = time::new_id("key");
    db.conn.execute(
        "INSERT INTO source_keys (id, source_id, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key_id, source_id, keyring.seal(&key_id, secret), now],
    )?;
    Ok(key_id)
}

pub fn get(db: Db<'_>, id: &str) -> Result<Source> {
    db.conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sources s JOIN users u ON u.id = s.user_id WHERE s.id = ?1"))?
        .query_row([id], from_row)
        .optional()?
        .ok_or_else(|| Error::not_found(format!("source {id}")))
}

fn find_by_name(db: Db<'_>, name: &str) -> Result<Option<Source>> {
    Ok(db
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sources s JOIN users u ON u.id = s.user_id WHERE s.name = ?1"))?
        .query_row([name], from_row)
        .optional()?)
}

/// The source a URL token belongs to, active or not.
pub fn by_token(db: Db<'_>, token: &str) -> Result<Option<Source>> {
    if token.len() > 200 {
        return Ok(None);
    }
    Ok(db
        .conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM sources s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?1"
        ))?
        .query_row([token_hash(token)], from_row)
        .optional()?)
}

pub fn list(db: Db<'_>) -> Result<Vec<Source>> {
    let mut stmt = db
        .conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM sources s JOIN users u ON u.id = s.user_id ORDER BY s.name"))?;
    let found = rows(stmt.query_map(params![], from_row)?)?;
    Ok(found)
}

/// The URL token, to show the source's URL again.
pub fn token(db: Db<'_>, keyring: &Keyring, id: &str) -> Result<String> {
    let sealed: Vec<u8> = db
        .conn
        .query_row("SELECT token FROM sources WHERE id = ?1", [id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::not_found(format!("source {id}")))?;
    keyring.open(&format!("{id}/token"), &sealed)
}

/// Circle's key-server API key.
pub fn api_key(db: Db<'_>, keyring: &Keyring, id: &str) -> Result<Option<String>> {
    let sealed: Option<Vec<u8>> =
        db.conn.query_row("SELECT api_key FROM sources WHERE id = ?1", [id], |r| r.get(0)).optional()?.flatten();
    sealed.map(|s| keyring.open(&format!("{id}/api_key"), &s)).transpose()
}

pub fn update(db: Db<'_>, keyring: &Keyring, id: &str, f: &Changes) -> Result<Source> {
    let current = get(db, id)?;
    check_fields(current.provider, f)?;
    let now = time::now_ms();
    if let Some(name) = f.name.as_ref().filter(|n| **n != current.name) {
        if find_by_name(db, name)?.is_some() {
            return Err(Error::conflict("source_exists", format!("a source named {name:?} exists already")));
        }
        if super::principals::find(db, &relay_user(name))?.is_some() {
            return Err(Error::conflict(
                "source_exists",
                format!("the relay user {} exists already", relay_user(name)),
            ));
        }
        db.conn.execute(
            "UPDATE users SET name = ?1 WHERE id = (SELECT user_id FROM sources WHERE id = ?2)",
            params![relay_user(name), id],
        )?;
        db.conn.execute("UPDATE sources SET name = ?1, updated_at = ?2 WHERE id = ?3", params![name, now, id])?;
    }
    if let Some(s) = &f.settings {
        let mut s = s.clone();
        if current.provider == Provider::Postmark && s.username.is_none() {
            s.username = current.settings.username.clone();
        }
        // The API key was given for the key server the source named: a new key URL forgets it,
        // unless a key for the new server comes in the same change (it is set below).
        if s.key_url != current.settings.key_url && f.api_key.is_none() {
            db.conn.execute("UPDATE sources SET api_key = NULL, updated_at = ?1 WHERE id = ?2", params![now, id])?;
        }
        db.conn.execute(
            "UPDATE sources SET settings = ?1, updated_at = ?2 WHERE id = ?3",
            params![serde_json::to_string(&s)?, now, id],
        )?;
    }
    if let Some(k) = &f.api_key {
        let sealed = (!k.is_empty()).then(|| keyring.seal(&format!("{id}/api_key"), k));
        db.conn.execute("UPDATE sources SET api_key = ?1, updated_at = ?2 WHERE id = ?3", params![sealed, now, id])?;
    }
    if let Some(m) = f.max_body {
        db.conn.execute(
            "UPDATE sources SET max_body = ?1, updated_at = ?2 WHERE id = ?3",
            params![m.map(|n| n as i64), now, id],
        )?;
    }
    if let Some(g) = f.expected_gap_seconds {
        db.conn.execute(
            "UPDATE sources SET expected_gap_ms = ?1, silent_since = NULL, updated_at = ?2 WHERE id = ?3",
            params![g.map(|s| s * 1000), now, id],
        )?;
    }
    get(db, id)
}

pub fn set_active(db: Db<'_>, id: &str, active: bool) -> Result<Source> {
    get(db, id)?;
    db.conn.execute(
        "UPDATE sources SET active = ?1, updated_at = ?2 WHERE id = ?3",
        params![active, time::now_ms(), id],
    )?;
    get(db, id)
}

/// Deletes the source with its keys, its request log and its forward destinations (their
/// deliveries go with them).
pub fn delete(db: Db<'_>, id: &str, payload_retention: Duration) -> Result<()> {
    get(db, id)?;
    let user_id = relay_user_id(db, id)?;
    let forwards: Vec<String> =
        rows(db.conn.prepare("SELECT id FROM endpoints WHERE user_id = ?1")?.query_map([user_id], |r| r.get(0))?)?;
    for ep in forwards {
        super::endpoints::delete(db, &ep, payload_retention)?;
    }
    db.conn.execute("DELETE FROM sources WHERE id = ?1", [id])?;
    db.conn.execute("DELETE FROM events WHERE user_id = ?1", [user_id])?;
    db.conn.execute("DELETE FROM notices WHERE user_id = ?1", [user_id])?;
    db.conn.execute("DELETE FROM users WHERE id = ?1", [user_id])?;
    Ok(())
}

/// Makes `secret` (or a generated one) primary; the older secrets keep verifying for `grace`.
/// Returns the new secret and when the old ones stop.
pub fn rotate_secret(
    db: Db<'_>,
    keyring: &Keyring,
    id: &str,
    secret: Option<&str>,
    grace: Duration,
) -> Result<(String, i64)> {
    let source = get(db, id)?;
    let no_secret =
        || Error::invalid("secret", "circle sources have no shared secret: add Circle's public key instead");
    if !source.provider.has_secret() {
        return Err(no_secret());
    }
    let secret = secret_for(source.provider, secret)?.ok_or_else(no_secret)?;
    let now = time::now_ms();
    let until = now + grace.as_millis() as i64;
    db.conn.execute(
        "UPDATE source_keys SET expires_at = ?1 WHERE source_id = ?2 AND (expires_at IS NULL OR expires_at > ?1)",
        params![until, id],
    )?;
    insert_key(db, keyring, id, &secret, now)?;
    db.conn.execute("UPDATE sources SET updated_at = ?1 WHERE id = ?2", params![now, id])?;
    Ok((secret, until))
}

/// The secrets that verify now, newest first.
pub fn secrets(db: Db<'_>, keyring: &Keyring, id: &str, now: i64) -> Result<Vec<String>> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, secret FROM source_keys WHERE source_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY created_at DESC, rowid DESC",
    )?;
    let sealed = rows(stmt.query_map(params![id, now], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)))?)?;
    sealed.iter().map(|(key_id, s)| keyring.open(key_id, s)).collect()
}

/// How many secrets verify now, and when the older ones stop (during a rotation).
pub fn key_summary(db: Db<'_>, id: &str, now: i64) -> Result<(i64, Option<i64>)> {
    Ok(db.conn.prepare_cached(
        "SELECT count(*), min(expires_at) FROM source_keys WHERE source_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)",
    )?
    .query_row(params![id, now], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// A stored Circle public key (DER).
pub fn public_key(db: Db<'_>, source_id: &str, key_id: &str) -> Result<Option<Vec<u8>>> {
    Ok(db
        .conn
        .prepare_cached("SELECT public_key FROM source_public_keys WHERE source_id = ?1 AND key_id = ?2")?
        .query_row(params![source_id, key_id], |r| r.get(0))
        .optional()?)
}

/// When the key server last said it does not know `key_id` (Unix ms), if it did.
pub fn key_miss(db: Db<'_>, source_id: &str, key_id: &str) -> Result<Option<i64>> {
    Ok(db
        .conn
        .prepare_cached("SELECT at FROM source_key_misses WHERE source_id = ?1 AND key_id = ?2")?
        .query_row(params![source_id, key_id], |r| r.get(0))
        .optional()?)
}

/// Notes that the key server does not know `key_id`.
pub fn add_key_miss(db: Db<'_>, source_id: &str, key_id: &str, at: i64) -> Result<()> {
    db.conn
        .prepare_cached(
            "INSERT INTO source_key_misses (source_id, key_id, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (source_id, key_id) DO UPDATE SET at = excluded.at",
        )?
        .execute(params![source_id, key_id, at])?;
    Ok(())
}

/// How many times the key server was asked for this source's keys since `since`, whatever it
/// answered (a key, an unknown id, an error or nothing).
pub fn key_fetches_since(db: Db<'_>, source_id: &str, since: i64) -> Result<i64> {
    Ok(db
        .conn
        .prepare_cached("SELECT count(*) FROM source_key_fetches WHERE source_id = ?1 AND at > ?2")?
        .query_row(params![source_id, since], |r| r.get(0))?)
}

/// Counts one request to the key server, before it is made.
pub fn add_key_fetch(db: Db<'_>, source_id: &str, at: i64) -> Result<()> {
    db.conn
        .prepare_cached("INSERT INTO source_key_fetches (source_id, at) VALUES (?1, ?2)")?
        .execute(params![source_id, at])?;
    Ok(())
}

/// Keeps a Circle public key for good (`fetched` from the key server, or `pasted`).
pub fn add_public_key(db: Db<'_>, source_id: &str, key_id: &str, der: &[u8], origin: &str) -> Result<()> {
    // The rule requests are held to (`web/inbound.rs` looks up no other id): a key pasted under
    // any other id could never be used.
    if !crate::model::inbound::is_circle_key_id(key_id) {
        return Err(Error::invalid("key_id", "Circle's key id: 1 to 100 letters, digits and dashes"));
    }
    db.conn.execute(
        "INSERT INTO source_public_keys (source_id, key_id, public_key, origin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (source_id, key_id) DO UPDATE SET public_key = excluded.public_key, origin = excluded.origin",
        params![source_id, key_id, der, origin, time::now_ms()],
    )?;
    Ok(())
}

/// The stored Circle key ids with their origin.
pub fn public_keys(db: Db<'_>, source_id: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = db
        .conn
        .prepare_cached("SELECT key_id, origin FROM source_public_keys WHERE source_id = ?1 ORDER BY created_at")?;
    let found = rows(stmt.query_map([source_id], |r| Ok((r.get(0)?, r.get(1)?)))?)?;
    Ok(found)
}

/// Adds a forward destination: an endpoint of the source's relay user (its own signing secret,
/// shown once).
pub fn add_forward(
    db: Db<'_>,
    keyring: &Keyring,
    policy: &crate::model::address::Policy,
    source_id: &str,
    url: &str,
    limit: usize,
) -> Result<(crate::model::endpoint::Endpoint, String)> {
    let source = get(db, source_id)?;
    let fields = Fields {
        url: Some(url.to_string()),
        description: Some(format!("forward destination of inbound source {}", source.name)),
        ..Fields::default()
    };
    super::endpoints::add_for(db, keyring, policy, &source.user, &fields, limit)
}

/// Adds a forward destination for each URL, in order ([`add_forward`]).
pub fn add_forwards(
    db: Db<'_>,
    keyring: &Keyring,
    policy: &crate::model::address::Policy,
    source_id: &str,
    urls: &[String],
    limit: usize,
) -> Result<Vec<(crate::model::endpoint::Endpoint, String)>> {
    urls.iter().map(|url| add_forward(db, keyring, policy, source_id, url, limit)).collect()
}

/// Re-seals every source secret, URL token and API key under `new` (see `endpoints::reseal_all`).
pub fn reseal_all(db: Db<'_>, new: &[u8; 32], retiring: &[u8; 32]) -> Result<usize> {
    let keys = super::endpoints::reseal_column(db, "source_keys", "secret", new, retiring)?;
    let sources: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = rows(
        db.conn
            .prepare("SELECT id, token, api_key FROM sources")?
            .query_map(params![], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?,
    )?;
    for (id, token, api_key) in &sources {
        let tid = format!("{id}/token");
        let t = secret::reseal(new, retiring, &tid, token)?;
        db.conn.execute("UPDATE sources SET token = ?1 WHERE id = ?2", params![t, id])?;
        if let Some(k) = api_key {
            let kid = format!("{id}/api_key");
            db.conn.execute(
                "UPDATE sources SET api_key = ?1 WHERE id = ?2",
                params![secret::reseal(new, retiring, &kid, k)?, id],
            )?;
        }
    }
    Ok(keys + sources.len())
}

/// A source with everything its detail views show.
pub fn detail(db: Db<'_>, keyring: &Keyring, id: &str, now: i64) -> Result<crate::model::inbound::Detail> {
    let source = get(db, id)?;
    let token = token(db, keyring, id)?;
    let forwards = super::endpoints::list(db, Some(&source.user))?;
    let (secrets, rotation_ends_at) = key_summary(db, id, now)?;
    Ok(crate::model::inbound::Detail {
        public_keys: public_keys(db, id)?,
        counts: counts_24h(db, id, now)?,
        source,
        token,
        forwards,
        secrets,
        rotation_ends_at,
    })
}

/// How many of a source's requests were rejected for `reason` (within the counters' retention).
pub fn rejects_for(db: Db<'_>, source_id: &str, reason: &str) -> Result<i64> {
    Ok(db
        .conn
        .prepare_cached("SELECT coalesce(sum(n), 0) FROM source_hours WHERE source_id = ?1 AND reason = ?2")?
        .query_row(params![source_id, reason], |r| r.get(0))?)
}

/// The row id of a source's relay user (the owner of its forward destinations, its relayed
/// events and its notices).
pub(super) fn relay_user_id(db: Db<'_>, source_id: &str) -> Result<i64> {
    Ok(db.conn.prepare_cached("SELECT user_id FROM sources WHERE id = ?1")?.query_row([source_id], |r| r.get(0))?)
}

/// A source by id, or by name.
pub fn resolve(db: Db<'_>, id_or_name: &str) -> Result<Source> {
    match find_by_name(db, id_or_name)? {
        Some(s) => Ok(s),
        None => get(db, id_or_name),
    }
}

/// A source's last 24 hours from its hourly counters: requests per outcome, rejects per reason.
pub fn counts_24h(db: Db<'_>, source_id: &str, now: i64) -> Result<Counts> {
    let since = hour_of(now) - 23 * HOUR_MS;
    let mut stmt = db.conn.prepare_cached(
        "SELECT outcome, reason, sum(n), sum(dropped_bodies) FROM source_hours WHERE source_id = ?1 AND hour >= ?2
         GROUP BY outcome, reason ORDER BY sum(n) DESC, reason",
    )?;
    let found: Vec<(String, String, i64, i64)> =
        rows(stmt.query_map(params![source_id, since], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?)?;
    let mut c = Counts::default();
    for (outcome, reason, n, dropped) in found {
        c.bodies_dropped += dropped;
        match outcome.as_str() {
            "accepted" => c.accepted += n,
            "duplicate" => c.duplicate += n,
            _ => {
                c.rejected += n;
                c.reasons.push((reason, n));
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[test]
    fn a_public_key_is_kept_only_under_an_id_a_request_can_name() {
        let store = Store::memory();
        for id in ["", "key_1", "a b", &"a".repeat(101)] {
            let e = add_public_key(store.db(), "src_x", id, b"der", "pasted").expect_err("refused");
            assert_eq!(e.field(), Some("key_id"), "{id:?}: {e}");
        }
    }
}
