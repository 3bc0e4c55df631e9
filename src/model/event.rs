//! Events: intake (parse and validate what the host application posts, every problem at once)
//! and the envelope each receiver gets. `store::events` records them with their deliveries.

use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::model::error::{Error, Result};
use crate::model::principal::Principal;
use crate::model::schema::{self, Problem};
use crate::model::time;

/// The longest idempotency key (the `Idempotency-Key` header or the field).
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
/// The longest `ordering_key`, in bytes.
pub const ORDERING_KEY_MAX: usize = 128;

/// One checked event as the host application submitted it.
#[derive(Debug, Clone)]
pub struct Intake {
    pub event_type: String,
    pub user: String,
    pub data: Value,
    pub occurred_at: Option<String>,
    pub actor: Option<Value>,
    pub idempotency_key: Option<String>,
    /// On FIFO endpoints, events with the same key are delivered one at a time, in order.
    pub ordering_key: Option<String>,
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
const INTAKE_FIELDS: &[&str] = &["type", "user", "data", "occurred_at", "actor", "idempotency_key", "ordering_key"];

/// Parses a request body (one event object or an array of them) for `principal`. Every problem
/// of every event is reported at once; a user token naming another user is forbidden.
pub fn parse_request(
    body: &Value,
    principal: &Principal,
    header_key: Option<&str>,
    max_events: usize,
) -> Result<Vec<Intake>> {
    let items: Vec<(&Value, String)> = match body {
        Value::Array(list) => {
            if list.is_empty() {
                return Err(Error::Invalid {
                    message: "the array holds no events".into(),
                    problems: vec![Problem { path: "$".into(), message: "must hold at least one event".into() }],
                });
            }
            if list.len() > max_events {
                return Err(Error::TooLarge {
                    code: "too_many_events",
                    message: format!(
                        "{} events in one request; the limit is {max_events} (WEBHOOKS_MAX_EVENTS_PER_REQUEST)",
                        list.len()
                    ),
                });
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
        return Err(Error::problems(problems, "stored"));
    }
    Ok(out)
}

/// Checks one intake object. `Err` only when forbidden (another user's event on a user token).
pub fn parse_one(
    value: &Value,
    path: &str,
    principal: &Principal,
    problems: &mut Vec<Problem>,
) -> Result<Option<Intake>> {
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
        Some(Ok(t)) if schema::OPERATIONAL.contains(&t) => {
            problem!(
                schema::child(path, "type"),
                format!("{t} is an operational event, sent by this system to the operator, never posted")
            );
            None
        }
        Some(Ok(t)) => match schema::find(t) {
            Some(et) => Some(et),
            None => {
                let known: Vec<&str> = schema::intake_types().map(|t| t.name).collect();
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
            return Err(Error::Forbidden(format!(
                "{}: this token belongs to {me:?} and cannot post events for {u:?}; use an application token",
                schema::child(path, "user")
            )));
        }
        (None, Principal::User(me)) => Some(me.clone()),
        (None, Principal::App) => {
            problem!(schema::child(path, "user"), "is required with an application token".into());
            None
        }
        (Some(Ok(u)), _) => match crate::model::principal::check_name("user", u) {
            Ok(()) => Some(u.to_string()),
            Err(_) => {
                problem!(schema::child(path, "user"), crate::model::principal::NAME_RULE.into());
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
        Some(Ok(t)) => match time::parse_rfc3339(t) {
            Some(ms) => Some(time::rfc3339(ms)),
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
        Some(Ok(k)) if !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX => Some(k.to_string()),
        Some(_) => {
            problem!(
                schema::child(path, "idempotency_key"),
                format!("must be a string of 1 to {IDEMPOTENCY_KEY_MAX} characters")
            );
            None
        }
    };
    let ordering_key = match text("ordering_key") {
        None => None,
        Some(Ok(k)) if k.len() <= ORDERING_KEY_MAX => Some(k.to_string()),
        Some(_) => {
            problem!(
                schema::child(path, "ordering_key"),
                format!("must be a string of at most {ORDERING_KEY_MAX} bytes")
            );
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
        ordering_key,
    }))
}

/// A stable hash of what the event says, to tell a replay from a conflicting reuse of a key.
pub fn request_hash(i: &Intake) -> String {
    // The ordering key only when given, so that the hashes of events without one stay as they were.
    let canonical = match &i.ordering_key {
        None => json!([i.event_type, i.data, i.occurred_at, i.actor]),
        Some(k) => json!([i.event_type, i.data, i.occurred_at, i.actor, k]),
    };
    format!("{:x}", Sha256::digest(canonical.to_string().as_bytes()))
}

/// An operational event's envelope (schema v1, `user` the endpoint's owner): the same shape as
/// every event, with `data` as its JSON Schema in `schemas/v1/` says.
pub fn operational(id: &str, event_type: &str, user: &str, data: Value, now: i64) -> Value {
    json!({
        "id": id,
        "type": event_type,
        "schema_version": schema::SCHEMA_VERSION,
        "created_at": time::rfc3339(now),
        "user": user,
        "data": data,
    })
}

/// The envelope as delivered (schema v1).
pub fn envelope(id: &str, i: &Intake, now: i64) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("type".into(), json!(i.event_type));
    m.insert("schema_version".into(), json!(schema::SCHEMA_VERSION));
    m.insert("created_at".into(), json!(time::rfc3339(now)));
    if let Some(t) = &i.occurred_at {
        m.insert("occurred_at".into(), json!(t));
    }
    m.insert("user".into(), json!(i.user));
    if let Some(a) = &i.actor {
        m.insert("actor".into(), a.clone());
    }
    if let Some(k) = &i.ordering_key {
        m.insert("ordering_key".into(), json!(k));
    }
    m.insert("data".into(), i.data.clone());
    Value::Object(m)
}
