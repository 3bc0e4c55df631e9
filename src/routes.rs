//! The CGI's router: `PATH_INFO` and method to a handler. JSON API below `/api/v1/`, pages
//! elsewhere. Every handler returns a [`Response`]; errors become the documented JSON error.

use serde_json::{json, Value};

use crate::cgi::{Request, Response};
use crate::config::Config;
use crate::error::ApiError;
use crate::token::{self, Principal};
use crate::{db, delivery, event, schema, views};

pub fn handle(cfg: &Config, req: &Request) -> Response {
    let result = match req.path.as_str() {
        "/api/v1/events" => only(req, "POST").and_then(|()| post_events(cfg, req)),
        "/api/v1/event-types" => only(req, "GET").map(|()| event_types()),
        p if p.starts_with("/api/") => Err(ApiError::not_found(format!("no API route {p}"))),
        "/" => only(req, "GET").and_then(|()| index(cfg, req)),
        _ => return Response::html(404, views::error_page(404, "There is no page at this address.")),
    };
    result.unwrap_or_else(|e| Response::error(&e))
}

fn only(req: &Request, method: &str) -> Result<(), ApiError> {
    if req.method == method {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method))
    }
}

/// The caller's token from `Authorization: Bearer …`.
fn authenticate(conn: &rusqlite::Connection, req: &Request) -> Result<Principal, ApiError> {
    let Some(auth) = req.header("authorization") else {
        return Err(ApiError::unauthorized(
            "no Authorization header reached the server; send `Authorization: Bearer <token>`. \
             If you did send one, the web server is dropping it: add `CGIPassAuth On` to the .htaccess \
             of the cgi-bin directory (Apache 2.4.13+)",
        ));
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    token::authenticate(conn, token)?
        .ok_or_else(|| ApiError::unauthorized("the token is unknown or revoked"))
}

fn open_db(cfg: &Config) -> Result<rusqlite::Connection, ApiError> {
    db::open(&cfg.database).map_err(ApiError::from)
}

fn is_json(req: &Request) -> bool {
    req.header("content-type")
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// `POST /api/v1/events`: validate everything, then store events and deliveries in one
/// transaction. Any error leaves the database as it was.
fn post_events(cfg: &Config, req: &Request) -> Result<Response, ApiError> {
    if !is_json(req) {
        return Err(ApiError::unsupported_media_type());
    }
    let mut conn = open_db(cfg)?;
    let principal = authenticate(&conn, req)?;
    let body: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::new(400, "malformed_json", format!("the body is not valid JSON: {e}")))?;
    let key = req.header("idempotency-key").map(str::trim).filter(|k| !k.is_empty());
    if key.is_some_and(|k| k.len() > 255) {
        return Err(ApiError::bad_request("the Idempotency-Key header must be at most 255 characters"));
    }
    let intakes = event::parse_request(&body, &principal, key, cfg.max_events_per_request)?;
    let tx = db::write_tx(&mut conn).map_err(|e| ApiError::from(anyhow::Error::from(e)))?;
    let recorded = event::record(&tx, cfg, &intakes)?;
    tx.commit().map_err(|e| ApiError::from(anyhow::Error::from(e)))?;
    let total: usize = recorded.iter().map(|r| r.deliveries).sum();
    let mut out = json!({
        "ids": recorded.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        "deliveries": total,
        "events": recorded,
    });
    if !body.is_array() {
        out["id"] = json!(recorded[0].id);
    }
    Ok(Response::json(202, &out))
}

/// `GET /api/v1/event-types`: the catalog with its schemas (public: it is documentation).
fn event_types() -> Response {
    let types: Vec<Value> = schema::catalog()
        .iter()
        .map(|t| json!({"type": t.name, "description": t.description(), "schema": t.schema}))
        .collect();
    Response::json(200, &json!({"schema_version": schema::SCHEMA_VERSION, "event_types": types}))
}

fn index(cfg: &Config, req: &Request) -> Result<Response, ApiError> {
    let conn = open_db(cfg)?;
    let status = delivery::queue_status(&conn)?;
    let mut ctx = tera::Context::new();
    ctx.insert("stale", &status.last_run_seconds_ago.is_none_or(|s| s > 180));
    ctx.insert("status", &status);
    ctx.insert("user", &req.remote_user);
    ctx.insert("script_name", &req.script_name);
    ctx.insert("cron_line", &"cd /path/to/webhooks && bin/webhooks dispatch >> var/dispatch.log 2>&1");
    Ok(Response::html(200, views::render("index.html", &ctx)?))
}
