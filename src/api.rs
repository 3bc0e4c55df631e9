//! JSON API handlers (`/api/v1/…`, paths fixed in DESIGN.md, described in `docs/openapi.json`).
//! Everything the pages can do. A user token sees only its user's data; an application token
//! and admins see everyone's. Another user's object answers 404, never 403.

use std::time::Duration;

use serde_json::{json, Value};

use crate::cgi::Response;
use crate::endpoint::{self, Endpoint, Fields};
use crate::error::{ApiError, Invalid};
use crate::network::Policy;
use crate::routes::Ctx;
use crate::token::Principal;
use crate::{clock, db, delivery, event, health, probe, schema, token};

pub const OPENAPI: &str = include_str!("../docs/openapi.json");

fn to_api(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::of(e)
}

/// A JSON request body (an empty body counts as `{}`).
fn json_body(ctx: &Ctx<'_>) -> Result<Value, ApiError> {
    if ctx.req.body.is_empty() {
        return Ok(json!({}));
    }
    if !ctx.req.is_json() {
        return Err(ApiError::unsupported_media_type());
    }
    serde_json::from_slice(&ctx.req.body)
        .map_err(|e| ApiError::new(400, "malformed_json", format!("the body is not valid JSON: {e}")))
}

/// Reads optional typed fields, collecting every problem with its JSON path.
struct Fields422<'a> {
    body: &'a Value,
    problems: Vec<Value>,
}

impl<'a> Fields422<'a> {
    fn new(body: &'a Value, allowed: &[&str]) -> Self {
        let mut f = Fields422 { body, problems: Vec::new() };
        match body.as_object() {
            None => f.problems.push(json!({"path": "$", "message": "must be a JSON object"})),
            Some(o) => {
                for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
                    f.problems.push(json!({"path": format!("$.{k}"), "message": format!("is not a known field (known: {})", allowed.join(", "))}));
                }
            }
        }
        f
    }

    fn string(&mut self, name: &str) -> Option<String> {
        match self.body.get(name) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.problems.push(json!({"path": format!("$.{name}"), "message": format!("must be a string, not {}", schema::type_name(v))}));
                None
            }
        }
    }

    fn strings(&mut self, name: &str) -> Option<Vec<String>> {
        match self.body.get(name) {
            None => None,
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                Some(a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            }
            Some(_) => {
                self.problems.push(json!({"path": format!("$.{name}"), "message": "must be an array of strings"}));
                None
            }
        }
    }

    fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.body.get(name) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.problems.push(json!({"path": format!("$.{name}"), "message": format!("must be true or false, not {}", schema::type_name(v))}));
                None
            }
        }
    }

    fn uint(&mut self, name: &str) -> Option<u64> {
        match self.body.get(name) {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.problems
                        .push(json!({"path": format!("$.{name}"), "message": "must be a whole number of 0 or more"}));
                    None
                }
            },
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            let n = self.problems.len();
            Err(ApiError::invalid(
                format!("{n} problem{} in the request; nothing was changed", if n == 1 { "" } else { "s" }),
                Value::Array(self.problems),
            ))
        }
    }
}

/// The endpoint as the API shows it: fields, signing keys (ids and expiry, never secrets) and health.
pub fn endpoint_json(conn: &rusqlite::Connection, ep: &Endpoint) -> Result<Value, ApiError> {
    let now = clock::now_ms();
    let mut v = serde_json::to_value(ep).map_err(to_api)?;
    v["keys"] = serde_json::to_value(endpoint::keys(conn, &ep.id, now).map_err(to_api)?).map_err(to_api)?;
    v["health"] =
        serde_json::to_value(health::endpoint(conn, &ep.id, ep.active, now).map_err(to_api)?).map_err(to_api)?;
    Ok(v)
}

/// The endpoint named in the path, if the viewer may see it (404 otherwise).
pub fn owned_endpoint(ctx: &mut Ctx<'_>) -> Result<Endpoint, ApiError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    endpoint::get_owned(ctx.db()?, &id, scope.as_deref()).map_err(to_api)
}

/// Runs `f` in one immediate transaction, committed only when it succeeds.
pub fn in_tx<T>(ctx: &mut Ctx<'_>, f: impl FnOnce(&rusqlite::Connection) -> anyhow::Result<T>) -> Result<T, ApiError> {
    let conn = ctx.db()?;
    let tx = db::write_tx(conn).map_err(to_api)?;
    let out = f(&tx).map_err(to_api)?;
    tx.commit().map_err(to_api)?;
    Ok(out)
}

pub fn post_events(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let req = ctx.req;
    if !req.is_json() {
        return Err(ApiError::unsupported_media_type());
    }
    let principal = match ctx.viewer() {
        v if v.user.is_empty() => Principal::App,
        v => Principal::User(v.user.clone()),
    };
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::new(400, "malformed_json", format!("the body is not valid JSON: {e}")))?;
    let key = req.header("idempotency-key").map(str::trim).filter(|k| !k.is_empty());
    if key.is_some_and(|k| k.len() > 255) {
        return Err(ApiError::bad_request("the Idempotency-Key header must be at most 255 characters"));
    }
    let intakes = event::parse_request(&body, &principal, key, ctx.cfg.max_events_per_request)?;
    let cfg = ctx.cfg;
    let recorded = in_tx(ctx, |tx| event::record(tx, cfg, &intakes))?;
    let total: usize = recorded.iter().map(|r| r.deliveries).sum();
    let mut out = json!({
        "ids": recorded.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        "deliveries": total,
        "events": recorded,
    });
    if !body.is_array() {
        out["id"] = json!(recorded[0].id);
    }
    if cfg.dispatch_on_intake && recorded.iter().any(|r| !r.duplicate && r.deliveries > 0) {
        // Never fails the intake: the events are stored and cron delivers them anyway.
        if let Err(e) = crate::dispatch::start_detached() {
            eprintln!("webhooks-cgi: could not start a dispatcher run after intake: {e:#}");
        }
    }
    Ok(Response::json(202, &out))
}

pub fn event_types(_: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let types: Vec<Value> = schema::catalog()
        .iter()
        .map(|t| json!({"type": t.name, "description": t.description(), "schema": t.schema}))
        .collect();
    Ok(Response::json(200, &json!({"schema_version": schema::SCHEMA_VERSION, "event_types": types})))
}

pub fn openapi(_: &mut Ctx<'_>) -> Result<Response, ApiError> {
    Ok(Response::text(200, "application/json", OPENAPI))
}

pub fn status(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let scope = ctx.viewer().scope().map(String::from);
    let overview = health::overview(ctx.db()?, scope.as_deref(), clock::now_ms()).map_err(to_api)?;
    Ok(Response::json(200, &serde_json::to_value(overview).map_err(to_api)?))
}

pub fn list_endpoints(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let scope = match ctx.viewer().scope() {
        Some(u) => Some(u.to_string()),
        None => ctx.req.query("user"),
    };
    let conn = ctx.db()?;
    let list = endpoint::list(conn, scope.as_deref()).map_err(to_api)?;
    let items = list.iter().map(|e| endpoint_json(conn, e)).collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &json!({"endpoints": items})))
}

pub fn create_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["url", "description", "event_types", "active", "user"]);
    let url = f.string("url");
    let description = f.string("description");
    let event_types = f.strings("event_types");
    let active = f.boolean("active");
    let user = f.string("user");
    if url.is_none() && !f.problems.iter().any(|p| p["path"] == "$.url") {
        f.problems.push(json!({"path": "$.url", "message": "is required"}));
    }
    f.finish()?;
    let viewer = ctx.viewer().clone();
    let owner = match (user, viewer.admin) {
        (Some(u), true) => u,
        (Some(u), false) if u == viewer.user => u,
        (Some(_), false) => return Err(ApiError::forbidden("a user token creates endpoints only for its own user")),
        (None, _) if !viewer.user.is_empty() => viewer.user.clone(),
        (None, _) => return Err(Invalid::new("user", "is required with an application token").into()),
    };
    let (cfg, master, policy) = (ctx.cfg, ctx.master()?, Policy::of(ctx.cfg));
    let fields = Fields { url, description, event_types };
    let (ep, secret) = in_tx(ctx, |tx| {
        let (ep, secret) = endpoint::add(tx, master, &policy, &owner, &fields, cfg.max_endpoints_per_user)?;
        let ep = if active == Some(false) { endpoint::set_active(tx, &ep.id, false, None)? } else { ep };
        Ok((ep, secret))
    })?;
    let mut v = endpoint_json(ctx.db()?, &ep)?;
    v["secret"] = json!(secret);
    add_warnings(&mut v, &ep.url, &policy);
    Ok(Response::json(201, &v))
}

/// `warnings` for an endpoint whose URL deliveries could not reach today (saved all the same).
fn add_warnings(v: &mut Value, url: &str, policy: &Policy) {
    if let Some(w) = crate::network::reachability_warning(url, policy) {
        v["warnings"] = json!([w]);
    }
}

pub fn get_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    Ok(Response::json(200, &endpoint_json(ctx.db()?, &ep)?))
}

pub fn update_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["url", "description", "event_types", "active"]);
    let fields =
        Fields { url: f.string("url"), description: f.string("description"), event_types: f.strings("event_types") };
    let active = f.boolean("active");
    f.finish()?;
    let policy = Policy::of(ctx.cfg);
    let ep = in_tx(ctx, |tx| {
        let mut ep = endpoint::update(tx, &policy, &ep.id, &fields)?;
        if let Some(a) = active {
            if a != ep.active {
                ep = endpoint::set_active(tx, &ep.id, a, None)?;
            }
        }
        Ok(ep)
    })?;
    let mut v = endpoint_json(ctx.db()?, &ep)?;
    if fields.url.is_some() {
        add_warnings(&mut v, &ep.url, &policy);
    }
    Ok(Response::json(200, &v))
}

pub fn delete_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let retention = ctx.cfg.payload_retention;
    in_tx(ctx, |tx| endpoint::delete(tx, &ep.id, retention))?;
    Ok(Response::json(200, &json!({"id": ep.id, "deleted": true})))
}

pub fn rotate_secret(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["grace_seconds"]);
    let grace = f.uint("grace_seconds").map(Duration::from_secs).unwrap_or(ctx.cfg.rotation_grace);
    f.finish()?;
    if grace > Duration::from_secs(30 * 86_400) {
        return Err(Invalid::new("grace_seconds", "must be at most 30 days (2592000)").into());
    }
    let master = ctx.master()?;
    let (secret, key, until) = in_tx(ctx, |tx| endpoint::rotate_secret(tx, master, &ep.id, grace))?;
    Ok(Response::json(
        200,
        &json!({
            "id": ep.id, "secret": secret, "key_id": key.id, "previous_keys_sign_until": clock::rfc3339(until),
        }),
    ))
}

/// The secrets that sign now, newest first (the owner may see them again; POST so that no
/// cache, log or prefetch ever holds them).
pub fn reveal_secret(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let master = ctx.master()?;
    let keys = endpoint::secrets(ctx.db()?, master, &ep.id, clock::now_ms()).map_err(to_api)?;
    Ok(Response::json(200, &json!({"id": ep.id, "secret": keys.first().map(|k| &k.secret), "keys": keys})))
}

pub fn test_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let (cfg, master) = (ctx.cfg, ctx.master()?);
    let result = probe::send_test(ctx.db()?, cfg, master, &ep).map_err(to_api)?;
    Ok(Response::json(200, &serde_json::to_value(result).map_err(to_api)?))
}

pub fn retry_dead(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let n = in_tx(ctx, |tx| delivery::retry_dead(tx, &ep.id))?;
    Ok(Response::json(200, &json!({"endpoint_id": ep.id, "retried": n})))
}

/// Parses a time filter: RFC 3339, or a date (`2026-11-23`, midnight UTC).
pub fn parse_time(field: &'static str, s: &str) -> Result<i64, Invalid> {
    clock::parse_rfc3339(s)
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc().timestamp_millis())
        })
        .ok_or_else(|| Invalid::new(field, "must be a date (2026-11-23) or an RFC 3339 time (2026-11-23T10:00:00Z)"))
}

/// The delivery-log filter from query parameters, limited to what the viewer may see.
pub fn delivery_filter(ctx: &Ctx<'_>, default_limit: usize) -> Result<delivery::Filter, ApiError> {
    let q = |k: &str| ctx.req.query(k);
    let limit = match q("limit") {
        None => default_limit,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| Invalid::new("limit", "must be a whole number from 1 to 500"))?,
    };
    if let Some(s) = q("status") {
        if !delivery::STATUSES.contains(&s.as_str()) {
            return Err(Invalid::new("status", format!("must be one of {}", delivery::STATUSES.join(", "))).into());
        }
    }
    Ok(delivery::Filter {
        status: q("status"),
        user: match ctx.viewer().scope() {
            Some(u) => Some(u.to_string()),
            None => q("user"),
        },
        endpoint: q("endpoint"),
        event_type: q("type"),
        before: q("before"),
        since: q("since").map(|s| parse_time("since", &s)).transpose()?,
        until: q("until").map(|s| parse_time("until", &s)).transpose()?,
        limit,
    })
}

pub fn list_deliveries(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let filter = delivery_filter(ctx, 50)?;
    let list = delivery::list(ctx.db()?, &filter).map_err(to_api)?;
    let next = (list.len() == filter.limit).then(|| list.last().map(|d| d.id.clone())).flatten();
    Ok(Response::json(200, &json!({"deliveries": list, "next_before": next})))
}

/// The delivery named in the path, if the viewer may see it (404 otherwise).
pub fn owned_delivery(ctx: &mut Ctx<'_>) -> Result<delivery::Delivery, ApiError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    delivery::get_owned(ctx.db()?, &id, scope.as_deref()).map_err(to_api)
}

pub fn get_delivery(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let d = owned_delivery(ctx)?;
    let attempts = crate::attempt::list(ctx.db()?, &d.id).map_err(to_api)?;
    let mut v = serde_json::to_value(&d).map_err(to_api)?;
    v["attempt_history"] = serde_json::to_value(attempts).map_err(to_api)?;
    Ok(Response::json(200, &v))
}

pub fn retry_delivery(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let d = owned_delivery(ctx)?;
    let d = in_tx(ctx, |tx| delivery::retry(tx, &d.id))?;
    Ok(Response::json(200, &serde_json::to_value(d).map_err(to_api)?))
}

pub fn list_tokens(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let scope = match ctx.viewer().scope() {
        Some(u) => Some(u.to_string()),
        None => ctx.req.query("user"),
    };
    let list = token::list(ctx.db()?, scope.as_deref()).map_err(to_api)?;
    Ok(Response::json(200, &json!({"tokens": list})))
}

pub fn create_token(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["label", "user"]);
    let label = f.string("label").unwrap_or_default();
    let user = f.string("user");
    f.finish()?;
    if label.chars().count() > 100 {
        return Err(Invalid::new("label", "must be at most 100 characters").into());
    }
    let viewer = ctx.viewer().clone();
    let owner = match user {
        Some(u) if viewer.admin || u == viewer.user => u,
        Some(_) => return Err(ApiError::forbidden("a user token creates tokens only for its own user")),
        None if !viewer.user.is_empty() => viewer.user.clone(),
        None => return Err(Invalid::new("user", "is required with an application token").into()),
    };
    crate::user::check_name("user", &owner)?;
    let created = in_tx(ctx, |tx| token::create(tx, Some(&owner), &label))?;
    Ok(Response::json(201, &serde_json::to_value(created).map_err(to_api)?))
}

pub fn revoke_token(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    in_tx(ctx, |tx| token::revoke(tx, &id, scope.as_deref()))?;
    Ok(Response::json(200, &json!({"id": id, "revoked": true})))
}
