//! The inbound source pages (admins): the list, the form to create one, each source's page with
//! its URL, last 24 hours, recent requests, forward destinations, secret rotation, Circle keys
//! and disable/enable; and one request's page with its redacted headers, body and re-check.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tera::Context;

use super::layout::{context, redirect, render};
use crate::inbound::new_source::{self, NewSource};
use crate::model::inbound::{forward_json, parse_public_key, Outcome, Provider, Reason, Settings};
use crate::model::{time, Error};
use crate::store::inbound_requests::{self as log, Filter};
use crate::store::sources::{self, Changes};
use crate::web::api_sources::{request_json, require_admin};
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

/// Recent requests shown on a source's page.
const RECENT: usize = 25;

fn providers() -> Vec<Value> {
    Provider::ALL
        .iter()
        .map(|p| json!({"name": p.as_str(), "secret_from_provider": p.secret_from_provider(), "has_secret": p.has_secret()}))
        .collect()
}

pub fn list(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let keyring = ctx.keyring()?;
    let base = ctx.public_base();
    let now = time::now_ms();
    let db = ctx.db()?;
    let items = sources::list(db)?
        .iter()
        .map(|s| Ok(sources::detail(db, &keyring, &s.id, now)?.to_json(&base)))
        .collect::<Result<Vec<_>, Error>>()?;
    let mut c = context(ctx, "Inbound sources", "sources");
    c.insert("sources", &items);
    render(200, "sources.html", &c)
}

fn new_page(
    ctx: &mut Ctx<'_>,
    form: &Value,
    errors: &BTreeMap<String, String>,
    status: u16,
) -> Result<Response, HttpError> {
    let mut c = context(ctx, "New inbound source", "sources");
    c.insert("providers", &providers());
    c.insert("form", form);
    c.insert("errors", errors);
    render(status, "source_new.html", &c)
}

pub fn new(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let blank = json!({
        "name": "", "provider": "stripe", "forward_url": "", "header": "", "algorithm": "sha256",
        "encoding": "hex", "prefix": "", "expected_gap_hours": "",
    });
    new_page(ctx, &blank, &BTreeMap::new(), 200)
}

/// A field's problem, for the form; a conflict (a name in use) goes beside the name.
fn field_problem(e: Error) -> Result<BTreeMap<String, String>, HttpError> {
    match e {
        Error::Invalid { problems, message } => Ok(match problems.first() {
            Some(p) => BTreeMap::from([(p.path.strip_prefix("$.").unwrap_or(&p.path).to_string(), p.message.clone())]),
            None => BTreeMap::from([("form".to_string(), message)]),
        }),
        Error::Conflict { message, .. } => Ok(BTreeMap::from([("name".to_string(), message)])),
        other => Err(other.into()),
    }
}

pub fn create(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let f = ctx.req.form();
    let get = |k: &str| f.get(k).map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    let shown = |k: &str| f.get(k).unwrap_or("").trim().to_string();
    let form = json!({
        "name": shown("name"), "provider": shown("provider"), "forward_url": shown("forward_url"),
        "header": shown("header"), "algorithm": shown("algorithm"), "encoding": shown("encoding"),
        "prefix": shown("prefix"), "expected_gap_hours": shown("expected_gap_hours"),
    });
    let provider = match Provider::parse(get("provider").as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(_) => return new_page(ctx, &form, &BTreeMap::from([("provider".into(), "choose a provider".into())]), 422),
    };
    let gap = match get("expected_gap_hours").map(|h| h.parse::<u32>()) {
        None => None,
        Some(Ok(h)) if (1..=2160).contains(&h) => Some(Some(i64::from(h) * 3600)),
        Some(_) => {
            let e = BTreeMap::from([("expected_gap_hours".into(), "a whole number of hours from 1 to 2160".into())]);
            return new_page(ctx, &form, &e, 422);
        }
    };
    let settings = (provider == Provider::Hmac).then(|| Settings {
        header: get("header"),
        algorithm: get("algorithm"),
        encoding: get("encoding"),
        prefix: get("prefix"),
        ..Settings::default()
    });
    let changes = Changes { name: get("name"), settings, expected_gap_seconds: gap, ..Changes::default() };
    let secret = get("secret");
    let forward_urls: Vec<String> = get("forward_url").into_iter().collect();
    // A missing WEBHOOKS_SECRET_KEY answers as the other pages do, before anything is written.
    ctx.keyring()?;
    let base = ctx.public_base();
    let new = NewSource { provider, changes: &changes, secret: secret.as_deref(), forward_urls: &forward_urls };
    let cfg = ctx.cfg;
    match new_source::create(cfg, ctx.store()?, &new, &base) {
        Ok(made) => {
            let id = made.created.source.id.clone();
            source_page(ctx, &id, 201, |c, _| {
                c.insert("secret", &made.created.secret);
                c.insert("provider_url", &made.provider_url);
                c.insert("forward_secret", &made.forwards.first());
            })
        }
        Err(e) => {
            let errors = field_problem(e)?;
            new_page(ctx, &form, &errors, 422)
        }
    }
}

/// The source's page; `extra` adds what is shown once (a secret, a forward's secret).
fn source_page(
    ctx: &mut Ctx<'_>,
    id: &str,
    status: u16,
    extra: impl FnOnce(&mut Context, &crate::model::inbound::Detail),
) -> Result<Response, HttpError> {
    let keyring = ctx.keyring()?;
    let base = ctx.public_base();
    let now = time::now_ms();
    let db = ctx.db()?;
    let d = sources::detail(db, &keyring, id, now)?;
    let recent = log::list(db, &Filter { source_id: Some(id.to_string()), limit: RECENT, ..Filter::default() })?;
    // Postmark posts Basic credentials; under Apache they reach the CGI only with CGIPassAuth On.
    let auth_never_seen = d.source.provider == Provider::Postmark
        && d.source.last_auth_seen_at.is_none()
        && recent.iter().any(|r| r.reason.as_deref() == Some(Reason::CredentialsMissing.as_str()));
    let reasons: Vec<Value> = d
        .counts
        .reasons
        .iter()
        .map(|(r, n)| json!({"reason": r, "count": n, "meaning": Reason::parse(r).map(Reason::meaning)}))
        .collect();
    let mut c = context(ctx, &format!("Source {}", d.source.name), "sources");
    c.insert("source", &d.to_json(&base));
    c.insert("reasons", &reasons);
    c.insert("requests", &recent.iter().map(|r| request_json(r, None)).collect::<Vec<_>>());
    c.insert("auth_never_seen", &auth_never_seen);
    c.insert("secret_from_provider", &d.source.provider.secret_from_provider());
    c.insert("forward_url", "");
    extra(&mut c, &d);
    render(status, "source.html", &c)
}

pub fn show(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    source_page(ctx, &id, 200, |_, _| {})
}

pub fn rotate_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let f = ctx.req.form();
    let secret = f.get("secret").map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    let grace = super::endpoints::grace_of(ctx)?;
    let keyring = ctx.keyring()?;
    let rotated = ctx.try_write(|db| sources::rotate_secret(db, &keyring, &id, secret.as_deref(), grace))?;
    match rotated {
        Ok((secret, until)) => {
            let base = ctx.public_base();
            source_page(ctx, &id, 200, |c, d| {
                c.insert("secret", &secret);
                c.insert("provider_url", &d.provider_url(&base, Some(&secret)));
                c.insert("grace_until", &time::rfc3339(until));
            })
        }
        Err(Error::Invalid { message, problems }) => {
            let why = problems.first().map(|p| p.message.clone()).unwrap_or(message);
            source_page(ctx, &id, 422, |c, _| c.insert("rotate_error", &why))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn add_forward(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let url = ctx.req.form().get("url").unwrap_or("").trim().to_string();
    let (cfg, keyring, policy) = (ctx.cfg, ctx.keyring()?, ctx.cfg.policy());
    let added =
        ctx.try_write(|db| sources::add_forward(db, &keyring, &policy, &id, &url, cfg.max_endpoints_per_user))?;
    match added {
        Ok((ep, secret)) => source_page(ctx, &id, 200, |c, _| {
            c.insert("forward_secret", &forward_json(&ep, Some(&secret)));
        }),
        Err(Error::Invalid { message, problems }) => {
            let why = problems.first().map(|p| p.message.clone()).unwrap_or(message);
            source_page(ctx, &id, 422, |c, _| {
                c.insert("forward_error", &why);
                c.insert("forward_url", &url);
            })
        }
        Err(Error::Conflict { message, .. }) => source_page(ctx, &id, 422, |c, _| c.insert("forward_error", &message)),
        Err(e) => Err(e.into()),
    }
}

pub fn add_public_key(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let f = ctx.req.form();
    let key_id = f.get("key_id").unwrap_or("").trim().to_string();
    let parsed = parse_public_key(f.get("public_key").unwrap_or(""));
    let stored = match parsed {
        Ok(der) => ctx.try_write(|db| {
            if sources::get(db, &id)?.provider != Provider::Circle {
                return Err(Error::invalid("public_key", "only circle sources verify with public keys"));
            }
            sources::add_public_key(db, &id, &key_id, &der, "pasted")
        })?,
        Err(e) => Err(e),
    };
    match stored {
        Ok(()) => redirect(ctx, &format!("/sources/{id}?notice=key-added")),
        Err(Error::Invalid { message, problems }) => {
            let why = problems.first().map(|p| p.message.clone()).unwrap_or(message);
            source_page(ctx, &id, 422, |c, _| c.insert("key_error", &why))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn enable(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    set_active(ctx, true)
}

pub fn disable(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    set_active(ctx, false)
}

fn set_active(ctx: &mut Ctx<'_>, active: bool) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    ctx.write(|db| sources::set_active(db, &id, active))?;
    redirect(ctx, &format!("/sources/{id}?notice={}", if active { "source-enabled" } else { "source-disabled" }))
}

fn request_page(
    ctx: &mut Ctx<'_>,
    id: &str,
    status: u16,
    extra: impl FnOnce(&mut Context),
) -> Result<Response, HttpError> {
    let db = ctx.db()?;
    let r = log::get(db, id)?;
    let body = log::body(db, id)?;
    let source = sources::get(db, &r.source_id)?;
    let meaning = r.reason.as_deref().and_then(Reason::parse).map(Reason::meaning);
    let mut c = context(ctx, &format!("Inbound request {id}"), "sources");
    c.insert("request", &request_json(&r, None));
    c.insert("source", &json!({"id": source.id, "name": source.name, "provider": source.provider}));
    c.insert("meaning", &meaning);
    c.insert("body", &body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()));
    c.insert(
        "can_recheck",
        &(r.outcome == Outcome::Rejected && body.is_some() && source.provider != Provider::Postmark),
    );
    extra(&mut c);
    render(status, "inbound_request.html", &c)
}

pub fn show_request(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    request_page(ctx, &id, 200, |_| {})
}

pub fn recheck(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    require_admin(ctx)?;
    let id = ctx.param().to_string();
    let cfg = ctx.cfg;
    match crate::inbound::receive::recheck(cfg, ctx.store()?, &id) {
        Ok(l) => request_page(ctx, &id, 200, |c| {
            c.insert("rechecked", &json!({"outcome": l.outcome, "deliveries": l.deliveries}));
        }),
        Err(Error::Conflict { message, .. }) => request_page(ctx, &id, 409, |c| c.insert("recheck_error", &message)),
        Err(e) => Err(e.into()),
    }
}
