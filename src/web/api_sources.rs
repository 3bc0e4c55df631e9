//! JSON API of inbound sources and their request log (`/api/v1/sources`, `/api/v1/inbound`),
//! for admins: the application token and users named in `WEBHOOKS_ADMINS`.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::inbound::new_source::{self, NewSource};
use crate::model::endpoint::check_grace;
use crate::model::inbound::{forward_json, parse_public_key, Outcome, Provider, Request, Settings};
use crate::model::{time, Error};
use crate::store::inbound_requests::{self as log, Filter};
use crate::store::sources::{self, Changes};
use crate::web::api::{json_body, Fields422};
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

/// Sources are the operator's: admins only.
pub fn require_admin(ctx: &Ctx<'_>) -> Result<(), HttpError> {
    if ctx.viewer().admin {
        Ok(())
    } else {
        Err(HttpError::forbidden("inbound sources are managed by admins (the application token or WEBHOOKS_ADMINS)"))
    }
}

/// The source fields of a POST or PATCH body.
fn read_changes(f: &mut Fields422<'_>, name: Option<String>) -> Changes {
    let settings = f.raw("settings").and_then(|v| match serde_json::from_value::<Settings>(v.clone()) {
        Ok(s) => Some(s),
        Err(e) => {
            f.push("$.settings", format!("{e}"));
            None
        }
    });
    let api_key = f.string("api_key");
    let max_body = match f.raw("max_body") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => f.uint("max_body").map(Some),
    };
    let expected_gap_seconds = match f.raw("expected_gap_seconds") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(_) => f.uint("expected_gap_seconds").map(|n| Some(n.min(i64::MAX as u64) as i64)),
    };
    Changes { name, settings, api_key, max_body, expected_gap_seconds }
}

fn detail_json(ctx: &mut Ctx<'_>, id: &str) -> Result<Value, HttpError> {
    let keyring = ctx.keyring()?;
    let base = ctx.public_base();
    let d = sources::detail(ctx.db()?, &keyring, id, time::now_ms())?;
    Ok(d.to_json(&base))
}

pub fn list_sources(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let ids: Vec<String> = sources::list(ctx.db()?)?.into_iter().map(|s| s.id).collect();
    let items = ids.iter().map(|id| detail_json(ctx, id)).collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &json!({"sources": items})))
}

pub fn create_source(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let body = json_body(ctx)?;
    let mut f = Fields422::new(
        &body,
        &["name", "provider", "secret", "forward_urls", "settings", "api_key", "max_body", "expected_gap_seconds"],
    );
    let name = f.string("name");
    let provider = f.string("provider");
    let secret = f.string("secret");
    let forward_urls = f.strings("forward_urls").unwrap_or_default();
    let changes = read_changes(&mut f, name.clone());
    for (field, v) in [("name", &name), ("provider", &provider)] {
        if v.is_none() && f.raw(field).is_none_or(|v| v.is_string()) {
            f.push(&format!("$.{field}"), "is required");
        }
    }
    f.finish()?;
    let provider = Provider::parse(provider.as_deref().unwrap_or(""))?;
    // A missing WEBHOOKS_SECRET_KEY answers as the other handlers do, before anything is written.
    ctx.keyring()?;
    let base = ctx.public_base();
    let new = NewSource { provider, changes: &changes, secret: secret.as_deref(), forward_urls: &forward_urls };
    let cfg = ctx.cfg;
    let made = new_source::create(cfg, ctx.store()?, &new, &base)?;
    Ok(Response::json(201, &made.to_json(&base)))
}

pub fn get_source(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    Ok(Response::json(200, &detail_json(ctx, &id)?))
}

pub fn update_source(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["name", "settings", "api_key", "max_body", "expected_gap_seconds", "active"]);
    let name = f.string("name");
    let active = f.boolean("active");
    let changes = read_changes(&mut f, name);
    f.finish()?;
    let keyring = ctx.keyring()?;
    ctx.write(|db| {
        sources::update(db, &keyring, &id, &changes)?;
        if let Some(a) = active {
            sources::set_active(db, &id, a)?;
        }
        Ok(())
    })?;
    Ok(Response::json(200, &detail_json(ctx, &id)?))
}

pub fn delete_source(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let retention = ctx.cfg.payload_retention;
    ctx.write(|db| sources::delete(db, &id, retention))?;
    Ok(Response::json(200, &json!({"id": id, "deleted": true})))
}

pub fn rotate_source_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["secret", "grace_seconds"]);
    let secret = f.string("secret");
    let grace = f.uint("grace_seconds");
    f.finish()?;
    let grace = check_grace("grace_seconds", grace.map(Duration::from_secs).unwrap_or(ctx.cfg.rotation_grace))?;
    let keyring = ctx.keyring()?;
    let (secret, until) = ctx.write(|db| sources::rotate_secret(db, &keyring, &id, secret.as_deref(), grace))?;
    let mut v = detail_json(ctx, &id)?;
    v["secret"] = json!(secret);
    v["previous_secrets_verify_until"] = json!(time::rfc3339(until));
    Ok(Response::json(200, &v))
}

pub fn add_forward(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["url"]);
    let url = f.string("url");
    if url.is_none() && f.raw("url").is_none() {
        f.push("$.url", "is required");
    }
    f.finish()?;
    let (cfg, keyring, policy) = (ctx.cfg, ctx.keyring()?, ctx.cfg.policy());
    let url = url.unwrap_or_default();
    let (ep, secret) =
        ctx.write(|db| sources::add_forward(db, &keyring, &policy, &id, &url, cfg.max_endpoints_per_user))?;
    Ok(Response::json(201, &forward_json(&ep, Some(&secret))))
}

pub fn add_public_key(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["key_id", "public_key"]);
    let key_id = f.string("key_id");
    let public_key = f.string("public_key");
    for (field, v) in [("key_id", &key_id), ("public_key", &public_key)] {
        if v.is_none() && f.raw(field).is_none() {
            f.push(&format!("$.{field}"), "is required");
        }
    }
    f.finish()?;
    let der = parse_public_key(public_key.as_deref().unwrap_or(""))?;
    let key_id = key_id.unwrap_or_default();
    ctx.write(|db| {
        let s = sources::get(db, &id)?;
        if s.provider != Provider::Circle {
            return Err(Error::invalid("public_key", "only circle sources verify with public keys"));
        }
        sources::add_public_key(db, &id, &key_id, &der, "pasted")
    })?;
    Ok(Response::json(201, &detail_json(ctx, &id)?))
}

/// A logged request as the API shows it; `with_body` adds the body (text and base64).
pub fn request_json(r: &Request, body: Option<&[u8]>) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["received_at"] = json!(time::rfc3339(r.received_at));
    v["rechecked_at"] = json!(r.rechecked_at.map(time::rfc3339));
    if let Some(b) = body {
        v["body_base64"] = json!(STANDARD.encode(b));
        v["body_text"] = json!(std::str::from_utf8(b).ok());
    }
    v
}

pub fn list_inbound(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let outcome = ctx.req.query("outcome").map(|o| Outcome::parse(&o)).transpose()?;
    let limit = match ctx.req.query("limit") {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| Error::invalid("limit", "a whole number from 1 to 1000"))?,
    };
    let source = ctx.req.query("source");
    let before = ctx.req.query("before");
    let db = ctx.db()?;
    let source_id = match source {
        Some(s) => Some(sources::resolve(db, &s)?.id),
        None => None,
    };
    let list = log::list(db, &Filter { source_id, outcome, before, limit })?;
    let next = (list.len() == limit).then(|| list.last().map(|r| r.id.clone())).flatten();
    let items: Vec<Value> = list.iter().map(|r| request_json(r, None)).collect();
    Ok(Response::json(200, &json!({"requests": items, "next_before": next})))
}

pub fn get_inbound(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let db = ctx.db()?;
    let r = log::get(db, &id)?;
    let body = log::body(db, &id)?;
    Ok(Response::json(200, &request_json(&r, body.as_deref())))
}

pub fn recheck_inbound(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let cfg = ctx.cfg;
    let l = crate::inbound::receive::recheck(cfg, ctx.store()?, &id)?;
    let db = ctx.db()?;
    let r = log::get(db, &id)?;
    let mut v = request_json(&r, None);
    v["deliveries"] = json!(l.deliveries);
    Ok(Response::json(200, &v))
}
