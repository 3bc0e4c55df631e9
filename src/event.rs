//! Events: intake (parse and validate what the host application posts) and recording (store the
//! event and fan it out into one delivery per matching active endpoint, in the caller's
//! transaction, so that an event is stored with all its deliveries or not at all).

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::clock;
use crate::config::Config;
use crate::endpoint;
use crate::error::ApiError;
use crate::schema::{self, Problem};
use crate::token::Principal;

/// One checked event as the host application submitted it.
#[derive(Debug, Clone)]
pub struct Intake {
    pub event_type: String,
    pub user: String,
    pub data: Value,
    pub occurred_at: Option<String>,
    pub actor: Option<Value>,
    pub idempotency_key: Option<String>,
}

/// What recording one event did.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub user: String,
    pub deliveries: usize,
    /// True when an earlier request with the same idempotency key already recorded it.
    pub duplicate: bool,
}

const SERVER_FIELDS: &[&str] = &["id", "created_at", "schema_version"];
const INTAKE_FIELDS: &[&str] = &["type", "user", "data", "occurred_at", "actor", "idempotency_key"];

/// Parses a request body (one event object or an array of them) for `principal`. Every problem
/// of every event is reported at once (422); a user token naming another user is a 403.
pub fn parse_request(
    body: &Value,
    principal: &Principal,
    header_key: Option<&str>,
    max_events: usize,
) -> Result<Vec<Intake>, ApiError> {
    let items: Vec<(&Value, String)> = match body {
        Value::Array(list) => {
            if list.is_empty() {
                return Err(ApiError::invalid(
                    "the array holds no events",
                    json!([{"path": "$", "message": "must hold at least one event"}]),
                ));
            }
            if list.len() > max_events {
                return Err(ApiError::new(
                    413,
                    "too_many_events",
                    format!(
                        "{} events in one request; the limit is {max_events} (WEBHOOKS_MAX_EVENTS_PER_REQUEST)",
                        list.len()
                    ),
                ));
            }
            list.iter().enumerate().map(|(i, v)| (v, format!("$[{i}]"))).collect()
        }
        other => vec![(other, "$".to_string())],
    };
    let many = matches!(body, Value::Array(_));
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (i, (value, path)) in items.into_iter().enumerate() {
        if let Some(mut intake) = parse_one(value, &path, principal, &mut problems)? {
            if intake.idempotency_key.is_none() {
                intake.idempotency_key = header_key.map(|k| if many { format!("{k}:{i}") } else { k.to_string() });
            }
            out.push(intake);
        }
    }
    if !problems.is_empty() {
        let n = problems.len();
        return Err(ApiError::invalid(
            format!("{n} problem{} in the request; nothing was stored", if n == 1 { "" } else { "s" }),
            serde_json::to_value(problems).unwrap_or_default(),
        ));
    }
    Ok(out)
}

/// Checks one intake object. `Err` only for a 403 (another user's event on a user token).
pub fn parse_one(
    value: &Value,
    path: &str,
    principal: &Principal,
    problems: &mut Vec<Problem>,
) -> Result<Option<Intake>, ApiError> {
    let before = problems.len();
    macro_rules! problem {
        ($p:expr, $m:expr) => {
            problems.push(Problem { path: $p, message: $m })
        };
    }
    let Some(obj) = value.as_object() else {
        problem!(path.to_string(), format!("must be an event object, not {}", schema::type_name(value)));
        return Ok(None);
    };
    for key in obj.keys().filter(|k| !INTAKE_FIELDS.contains(&k.as_str())) {
        let why = if SERVER_FIELDS.contains(&key.as_str()) {
            "is assigned by the server and must not be sent".to_string()
        } else {
            format!("is not a known field (known: {})", INTAKE_FIELDS.join(", "))
        };
        problem!(schema::child(path, key), why);
    }
    let text = |name: &str| obj.get(name).map(|v| v.as_str().ok_or(v));
    let event_type = match text("type") {
        None => {
            problem!(schema::child(path, "type"), "is required".into());
            None
        }
        Some(Err(v)) => {
            problem!(schema::child(path, "type"), format!("must be a string, not {}", schema::type_name(v)));
            None
        }
        Some(Ok("webhook.test")) => {
            problem!(
                schema::child(path, "type"),
                "webhook.test is sent only by the test button and `webhooks endpoint test`".into()
            );
            None
        }
        Some(Ok(t)) => match schema::find(t) {
            Some(et) => Some(et),
            None => {
                let known: Vec<&str> =
                    schema::catalog().iter().map(|t| t.name).filter(|n| *n != "webhook.test").collect();
                problem!(
                    schema::child(path, "type"),
                    format!("{t:?} is not an event type (known: {})", known.join(", "))
                );
                None
            }
        },
    };
    let user = match (text("user"), principal) {
        (Some(Err(v)), _) => {
            problem!(schema::child(path, "user"), format!("must be a string, not {}", schema::type_name(v)));
            None
        }
        (Some(Ok(u)), Principal::User(me)) if u != me => {
            return Err(ApiError::forbidden(format!(
                "{}: this token belongs to {me:?} and cannot post events for {u:?}; use an application token",
                schema::child(path, "user")
            )));
        }
        (None, Principal::User(me)) => Some(me.clone()),
        (None, Principal::App) => {
            problem!(schema::child(path, "user"), "is required with an application token".into());
            None
        }
        (Some(Ok(u)), _) => match crate::user::check_name("user", u) {
            Ok(()) => Some(u.to_string()),
            Err(e) => {
                problem!(schema::child(path, "user"), e.message);
                None
            }
        },
    };
    let data_path = schema::child(path, "data");
    match (obj.get("data"), event_type) {
        (None, _) => problem!(data_path, "is required".into()),
        (Some(d), Some(et)) => schema::validate(et.data_schema(), d, &data_path, problems),
        (Some(d), None) if !d.is_object() => {
            problem!(data_path, format!("must be an object, not {}", schema::type_name(d)))
        }
        _ => {}
    }
    let occurred_at = match text("occurred_at") {
        None => None,
        Some(Ok(t)) => match clock::parse_rfc3339(t) {
            Some(ms) => Some(clock::rfc3339(ms)),
            None => {
                problem!(
                    schema::child(path, "occurred_at"),
                    "must be an RFC 3339 date-time such as 2026-11-22T23:11:55Z".into()
                );
                None
            }
        },
        Some(Err(v)) => {
            problem!(schema::child(path, "occurred_at"), format!("must be a string, not {}", schema::type_name(v)));
            None
        }
    };
    if let Some(actor) = obj.get("actor") {
        schema::validate(schema::actor_schema(), actor, &schema::child(path, "actor"), problems);
    }
    let idempotency_key = match text("idempotency_key") {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
        Some(_) => {
            problem!(schema::child(path, "idempotency_key"), "must be a string of 1 to 255 characters".into());
            None
        }
    };
    if problems.len() > before {
        return Ok(None);
    }
    Ok(Some(Intake {
        event_type: event_type.expect("checked").name.to_string(),
        user: user.expect("checked"),
        data: obj.get("data").cloned().unwrap_or(Value::Null),
        occurred_at,
        actor: obj.get("actor").cloned(),
        idempotency_key,
    }))
}

/// A stable hash of what the event says, to tell a replay from a conflicting reuse of a key.
fn request_hash(i: &Intake) -> String {
    let canonical = json!([i.event_type, i.data, i.occurred_at, i.actor]);
    crate::signing::hex(&Sha256::digest(canonical.to_string().as_bytes()))
}

/// Records events with their deliveries. Call inside one write transaction.
pub fn record(conn: &Connection, cfg: &Config, intakes: &[Intake]) -> Result<Vec<Recorded>> {
    let now = clock::now_ms();
    let mut endpoints_of: HashMap<String, (i64, Vec<(String, Vec<String>)>)> = HashMap::new();
    let mut out = Vec::with_capacity(intakes.len());
    for intake in intakes {
        if !endpoints_of.contains_key(&intake.user) {
            let uid = crate::user::ensure(conn, &intake.user)?;
            endpoints_of.insert(intake.user.clone(), (uid, endpoint::active_for_user(conn, uid)?));
        }
        let (user_id, endpoints) = &endpoints_of[&intake.user];
        let hash = request_hash(intake);
        if let Some(key) = &intake.idempotency_key {
            if let Some(prev) = find_by_key(conn, *user_id, key)? {
                if prev.1 != hash {
                    return Err(ApiError::new(
                        409,
                        "idempotency_conflict",
                        format!("idempotency key {key:?} was already used for a different event ({})", prev.0),
                    )
                    .into());
                }
                let deliveries: i64 = conn
                    .prepare_cached("SELECT count(*) FROM deliveries WHERE event_id = ?1")?
                    .query_row([&prev.0], |r| r.get(0))?;
                out.push(Recorded {
                    id: prev.0,
                    event_type: intake.event_type.clone(),
                    user: intake.user.clone(),
                    deliveries: deliveries as usize,
                    duplicate: true,
                });
                continue;
            }
        }
        let id = crate::id::new("evt");
        let payload = envelope(&id, intake, now).to_string();
        let targets: Vec<&String> =
            endpoints.iter().filter(|(_, f)| endpoint::wants(f, &intake.event_type)).map(|(id, _)| id).collect();
        let expires = targets.is_empty().then(|| now + cfg.payload_retention.as_millis() as i64);
        conn.prepare_cached(
            "INSERT INTO events (id, user_id, type, idempotency_key, request_hash, payload, created_at, payload_expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![id, user_id, intake.event_type, intake.idempotency_key, hash, payload, now, expires])?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, next_attempt_at, created_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)",
        )?;
        for endpoint_id in &targets {
            insert.execute(params![crate::id::new("dlv"), id, endpoint_id, user_id, now])?;
        }
        out.push(Recorded {
            id,
            event_type: intake.event_type.clone(),
            user: intake.user.clone(),
            deliveries: targets.len(),
            duplicate: false,
        });
    }
    Ok(out)
}

fn find_by_key(conn: &Connection, user_id: i64, key: &str) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached("SELECT id, request_hash FROM events WHERE user_id = ?1 AND idempotency_key = ?2")?
        .query_row(params![user_id, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The envelope as delivered (schema v1).
pub fn envelope(id: &str, i: &Intake, now: i64) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("type".into(), json!(i.event_type));
    m.insert("schema_version".into(), json!(schema::SCHEMA_VERSION));
    m.insert("created_at".into(), json!(clock::rfc3339(now)));
    if let Some(t) = &i.occurred_at {
        m.insert("occurred_at".into(), json!(t));
    }
    m.insert("user".into(), json!(i.user));
    if let Some(a) = &i.actor {
        m.insert("actor".into(), a.clone());
    }
    m.insert("data".into(), i.data.clone());
    Value::Object(m)
}
