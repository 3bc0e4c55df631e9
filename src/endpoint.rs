//! Endpoints: where a user's events are delivered, with their filters and signing keys.
//!
//! Each endpoint has one or more keys in `endpoint_keys`. The newest is primary; after a rotation
//! the previous keys keep signing until their `expires_at` (the grace period), so receivers that
//! accept any listed signature never see a gap.

use std::time::Duration;

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use crate::clock;
use crate::error::{Invalid, NotFound};
use crate::network::Policy;
use crate::schema;
use crate::secret;
use crate::signing::SigningKey;

#[derive(Debug, Clone, Serialize)]
pub struct Endpoint {
    pub id: String,
    pub user: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub created_at: String,
    /// When the key stops signing; `None` for the primary key.
    pub expires_at: Option<String>,
}

/// A new or changed endpoint; `None` fields of an update stay as they are.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
}

const COLUMNS: &str = "e.id, u.name, e.url, e.description, e.event_types, e.active, \
                       e.disabled_reason, e.created_at, e.updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let types: String = r.get(4)?;
    Ok(Endpoint {
        id: r.get(0)?,
        user: r.get(1)?,
        url: r.get(2)?,
        description: r.get(3)?,
        event_types: serde_json::from_str(&types).unwrap_or_default(),
        active: r.get(5)?,
        disabled_reason: r.get(6)?,
        created_at: clock::rfc3339(r.get(7)?),
        updated_at: clock::rfc3339(r.get(8)?),
    })
}

/// Checks and normalises an endpoint URL: http(s), a host, no credentials, and not an address
/// literal that deliveries could never reach. Names are checked again at every delivery, on
/// the addresses they resolve to.
pub fn check_url(raw: &str, policy: &Policy) -> Result<String, Invalid> {
    if raw.trim() != raw {
        return Err(Invalid::new("url", "must not start or end with spaces"));
    }
    if raw.len() > 2048 {
        return Err(Invalid::new("url", "must be at most 2048 characters"));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| Invalid::new("url", format!("is not a valid URL ({e}); use https://host/path")))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(Invalid::new("url", "must start with https:// or http://"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Invalid::new(
            "url",
            "must not contain a user name or password; deliveries are authenticated by their signature",
        ));
    }
    if matches!(url.host(), None | Some(url::Host::Domain(""))) {
        return Err(Invalid::new("url", "must name a host"));
    }
    if let Some(ip) = crate::network::literal_ip(&url) {
        if !policy.permits(ip) {
            return Err(Invalid::new(
                "url",
                format!(
                    "points at {ip}, a private or reserved address that deliveries may not reach \
                     (the operator can allow it with WEBHOOKS_ALLOWED_NETWORKS in the .env, \
                     e.g. 127.0.0.0/8 for receivers on the same machine)"
                ),
            ));
        }
    }
    if url.fragment().is_some() {
        return Err(Invalid::new("url", "must not contain a #fragment"));
    }
    Ok(url.to_string())
}

/// Checks type filters: known types or `prefix.*` / `*` wildcards that match at least one type.
pub fn check_filters(filters: &[String]) -> Result<Vec<String>, Invalid> {
    let mut out: Vec<String> = Vec::new();
    for f in filters.iter().map(String::as_str) {
        if f.is_empty() {
            return Err(Invalid::new(
                "event_types",
                "an empty filter matches nothing; leave the list empty for every type",
            ));
        }
        if !schema::filter_is_known(f) {
            let known: Vec<&str> = schema::catalog().iter().map(|t| t.name).collect();
            return Err(Invalid::new(
                "event_types",
                format!("{f:?} matches no event type (known: {}; wildcards like email.* or *)", known.join(", ")),
            ));
        }
        if !out.iter().any(|o| o == f) {
            out.push(f.to_string());
        }
    }
    Ok(out)
}

fn check_description(d: &str) -> Result<String, Invalid> {
    if d.chars().count() > 500 {
        return Err(Invalid::new("description", "must be at most 500 characters"));
    }
    Ok(d.trim().to_string())
}

/// True when an endpoint with these filters receives events of `event_type`.
pub fn wants(filters: &[String], event_type: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| schema::filter_matches(f, event_type))
}

/// Creates an endpoint with a fresh secret; returns it with the secret (shown once). A user may
/// have at most `limit` endpoints.
pub fn add(
    conn: &Connection,
    master: &[u8; 32],
    policy: &Policy,
    user: &str,
    fields: &Fields,
    limit: usize,
) -> Result<(Endpoint, String)> {
    crate::user::check_name("user", user)?;
    let url = check_url(fields.url.as_deref().unwrap_or(""), policy)?;
    let types = check_filters(fields.event_types.as_deref().unwrap_or(&[]))?;
    let description = check_description(fields.description.as_deref().unwrap_or(""))?;
    let user_id = crate::user::ensure(conn, user)?;
    let count: i64 = conn.query_row("SELECT count(*) FROM endpoints WHERE user_id = ?1", [user_id], |r| r.get(0))?;
    if count as usize >= limit {
        return Err(crate::error::ApiError::new(
            409,
            "endpoint_limit",
            format!("{user} already has {count} endpoints, the most allowed (WEBHOOKS_MAX_ENDPOINTS_PER_USER); delete one first"),
        )
        .into());
    }
    let id = crate::id::new("ep");
    let now = clock::now_ms();
    conn.execute(
        "INSERT INTO endpoints (id, user_id, url, description, event_types, active, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?6)",
        params![id, user_id, url, description, serde_json::to_string(&types)?, now],
    )?;
    let secret = secret::generate();
    insert_key(conn, master, &id, &secret, now)?;
    Ok((get(conn, &id)?, secret))
}

fn insert_key(conn: &Connection, master: &[u8; 32], endpoint_id: &str, secret: &str, now: i64) -> Result<String> {
    let key_id = crate::id::new("key");
    conn.execute(
        "INSERT INTO endpoint_keys (id, endpoint_id, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key_id, endpoint_id, secret::seal(master, &key_id, secret), now],
    )?;
    Ok(key_id)
}

pub fn get(conn: &Connection, id: &str) -> Result<Endpoint> {
    find(conn, id)?.ok_or_else(|| NotFound(format!("endpoint {id}")).into())
}

pub fn find(conn: &Connection, id: &str) -> Result<Option<Endpoint>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM endpoints e JOIN users u ON u.id = e.user_id WHERE e.id = ?1"))?
        .query_row([id], from_row)
        .optional()?)
}

/// An endpoint only if it belongs to `user` (otherwise "not found", never "forbidden").
pub fn get_owned(conn: &Connection, id: &str, user: Option<&str>) -> Result<Endpoint> {
    match find(conn, id)? {
        Some(e) if user.is_none_or(|u| u == e.user) => Ok(e),
        _ => Err(NotFound(format!("endpoint {id}")).into()),
    }
}

/// One user's endpoints, or everyone's when `user` is `None`, oldest first.
pub fn list(conn: &Connection, user: Option<&str>) -> Result<Vec<Endpoint>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM endpoints e JOIN users u ON u.id = e.user_id
         WHERE ?1 IS NULL OR u.name = ?1 ORDER BY e.created_at, e.rowid"
    ))?;
    let rows = stmt.query_map([user], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The active endpoints of a user with their filters, for fan-out.
pub fn active_for_user(conn: &Connection, user_id: i64) -> Result<Vec<(String, Vec<String>)>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, event_types FROM endpoints WHERE user_id = ?1 AND active = 1 ORDER BY id")?;
    let rows = stmt.query_map([user_id], |r| {
        let types: String = r.get(1)?;
        Ok((r.get(0)?, serde_json::from_str(&types).unwrap_or_default()))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn update(conn: &Connection, policy: &Policy, id: &str, fields: &Fields) -> Result<Endpoint> {
    let current = get(conn, id)?;
    let url = match &fields.url {
        Some(u) => check_url(u, policy)?,
        None => current.url,
    };
    let types = match &fields.event_types {
        Some(t) => check_filters(t)?,
        None => current.event_types,
    };
    let description = match &fields.description {
        Some(d) => check_description(d)?,
        None => current.description,
    };
    conn.execute(
        "UPDATE endpoints SET url = ?1, description = ?2, event_types = ?3, updated_at = ?4 WHERE id = ?5",
        params![url, description, serde_json::to_string(&types)?, clock::now_ms(), id],
    )?;
    get(conn, id)
}

/// Enables or disables; `reason` says why when the system (not the user) disabled it.
pub fn set_active(conn: &Connection, id: &str, active: bool, reason: Option<&str>) -> Result<Endpoint> {
    let n = conn.execute(
        "UPDATE endpoints SET active = ?1, disabled_reason = ?2, updated_at = ?3 WHERE id = ?4",
        params![active, if active { None } else { reason }, clock::now_ms(), id],
    )?;
    if n == 0 {
        return Err(NotFound(format!("endpoint {id}")).into());
    }
    get(conn, id)
}

/// Deletes the endpoint with its keys, deliveries and their attempts. Events whose last
/// unfinished delivery goes with it start their payload retention now.
pub fn delete(conn: &Connection, id: &str, payload_retention: Duration) -> Result<()> {
    let events: Vec<String> = conn
        .prepare("SELECT DISTINCT event_id FROM deliveries WHERE endpoint_id = ?1 AND finished_at IS NULL")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if conn.execute("DELETE FROM endpoints WHERE id = ?1", [id])? == 0 {
        return Err(NotFound(format!("endpoint {id}")).into());
    }
    let expires = clock::now_ms() + payload_retention.as_millis() as i64;
    let mut stmt = conn.prepare(
        "UPDATE events SET payload_expires_at = ?1 WHERE id = ?2 AND payload_expires_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = events.id AND d.finished_at IS NULL)",
    )?;
    for event_id in events {
        stmt.execute(params![expires, event_id])?;
    }
    Ok(())
}

/// Makes a new primary key; keys that were signing keep signing for `grace`, then stop.
/// Returns the new secret (shown once) and the time the old keys stop signing.
pub fn rotate_secret(
    conn: &Connection,
    master: &[u8; 32],
    id: &str,
    grace: Duration,
) -> Result<(String, KeyInfo, i64)> {
    get(conn, id)?;
    let now = clock::now_ms();
    let until = now + grace.as_millis() as i64;
    conn.execute(
        "UPDATE endpoint_keys SET expires_at = ?1
         WHERE endpoint_id = ?2 AND (expires_at IS NULL OR expires_at > ?1)",
        params![until, id],
    )?;
    let secret = secret::generate();
    let key_id = insert_key(conn, master, id, &secret, now)?;
    let info = KeyInfo { id: key_id, created_at: clock::rfc3339(now), expires_at: None };
    Ok((secret, info, until))
}

/// The keys that sign now, newest first, with their expiry.
pub fn keys(conn: &Connection, id: &str, now: i64) -> Result<Vec<KeyInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, expires_at FROM endpoint_keys
         WHERE endpoint_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY created_at DESC, rowid DESC",
    )?;
    let rows = stmt.query_map(params![id, now], |r| {
        Ok(KeyInfo {
            id: r.get(0)?,
            created_at: clock::rfc3339(r.get(1)?),
            expires_at: r.get::<_, Option<i64>>(2)?.map(clock::rfc3339),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A key that signs now, with its decrypted secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeySecret {
    pub key_id: String,
    pub secret: String,
    pub created_at: String,
    pub expires_at: Option<String>,
}

/// The decrypted secrets that sign now, newest first.
pub fn secrets(conn: &Connection, master: &[u8; 32], id: &str, now: i64) -> Result<Vec<KeySecret>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, secret, created_at, expires_at FROM endpoint_keys
         WHERE endpoint_id = ?1 AND (expires_at IS NULL OR expires_at > ?2)
         ORDER BY created_at DESC, rowid DESC",
    )?;
    let rows = stmt.query_map(params![id, now], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<i64>>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key_id, sealed, created, expires) = row?;
        let secret = secret::open(master, &key_id, &sealed)?;
        out.push(KeySecret {
            key_id,
            secret,
            created_at: clock::rfc3339(created),
            expires_at: expires.map(clock::rfc3339),
        });
    }
    Ok(out)
}

/// Signing keys for a delivery now, newest first.
pub fn signing_keys(conn: &Connection, master: &[u8; 32], id: &str, now: i64) -> Result<Vec<SigningKey>> {
    secrets(conn, master, id, now)?
        .into_iter()
        .map(|k| Ok(SigningKey { key: secret::decode(&k.secret)?, id: k.key_id }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: [u8; 32] = [1; 32];

    fn fields(url: &str, types: &[&str]) -> Fields {
        Fields {
            url: Some(url.into()),
            description: Some("d".into()),
            event_types: Some(types.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn urls_are_checked_and_normalised() {
        let p = Policy::default();
        assert_eq!(check_url("https://Example.COM/hook", &p).unwrap(), "https://example.com/hook");
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "https://",
            "http://user:pw@example.com/",
            "http://127.0.0.1/",
            "http://localhost:8080/",
            "http://[::1]/",
            "http://10.0.0.1/",
            "http://169.254.169.254/latest",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "https://example.com/#frag",
        ] {
            let e = check_url(bad, &p).expect_err(bad);
            assert_eq!(e.field, "url");
        }
        let allow = Policy { allowed: vec!["127.0.0.1/32".parse().unwrap()] };
        assert!(check_url("http://127.0.0.1:9/", &allow).is_ok());
    }

    #[test]
    fn filters_are_checked() {
        assert_eq!(check_filters(&["email.*".into(), "email.*".into()]).unwrap(), vec!["email.*"]);
        // Exactly as documented: no spaces around a filter, no empty one (the CLI trims what
        // is typed before it gets here).
        assert!(check_filters(&[" email.*".into()]).is_err());
        assert!(check_filters(&["".into()]).unwrap_err().message.contains("empty"));
        assert_eq!(check_filters(&["nope".into()]).unwrap_err().field, "event_types");
        assert!(wants(&[], "usage.threshold"));
        assert!(wants(&["usage.*".into()], "usage.threshold"));
        assert!(!wants(&["email.spam".into()], "usage.threshold"));
    }

    #[test]
    fn crud_and_rotation_with_grace() {
        let conn = crate::db::memory();
        let p = Policy::default();
        let (ep, secret) = add(&conn, &MASTER, &p, "alice", &fields("https://example.com/h", &["email.*"]), 2).unwrap();
        let (second, _) = add(&conn, &MASTER, &p, "alice", &fields("https://example.com/2", &[]), 2).unwrap();
        let over = add(&conn, &MASTER, &p, "alice", &fields("https://example.com/3", &[]), 2).unwrap_err();
        assert!(over.to_string().contains("endpoint_limit"), "{over}");
        assert_eq!(list(&conn, Some("alice")).unwrap().len(), 2);
        delete(&conn, &second.id, Duration::from_secs(1)).unwrap();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(list(&conn, Some("alice")).unwrap().len(), 1);
        assert_eq!(list(&conn, Some("bob")).unwrap().len(), 0);
        assert!(get_owned(&conn, &ep.id, Some("bob")).is_err());

        let now = clock::now_ms();
        assert_eq!(secrets(&conn, &MASTER, &ep.id, now).unwrap()[0].secret, secret);
        let (new_secret, _, until) = rotate_secret(&conn, &MASTER, &ep.id, Duration::from_secs(3600)).unwrap();
        let during: Vec<String> =
            secrets(&conn, &MASTER, &ep.id, now + 1).unwrap().into_iter().map(|s| s.secret).collect();
        assert_eq!(during, vec![new_secret.clone(), secret.clone()], "both, newest first");
        let after: Vec<String> =
            secrets(&conn, &MASTER, &ep.id, until + 1).unwrap().into_iter().map(|s| s.secret).collect();
        assert_eq!(after, vec![new_secret]);

        let updated =
            update(&conn, &p, &ep.id, &Fields { description: Some("new".into()), ..Fields::default() }).unwrap();
        assert_eq!(updated.description, "new");
        assert_eq!(updated.event_types, vec!["email.*"]);
        let off = set_active(&conn, &ep.id, false, Some("410")).unwrap();
        assert!(!off.active);
        delete(&conn, &ep.id, Duration::from_secs(60)).unwrap();
        assert!(find(&conn, &ep.id).unwrap().is_none());
        let raw: Vec<u8> = conn
            .query_row("SELECT count(*) FROM endpoint_keys", [], |r| r.get::<_, i64>(0))
            .map(|n| vec![n as u8])
            .unwrap();
        assert_eq!(raw, vec![0]);
    }
}
