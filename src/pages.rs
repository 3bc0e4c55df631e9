//! HTML pages: server-rendered with Tera, working without JavaScript. Forms post back with a
//! CSRF token (checked by the router); success redirects (Post/Redirect/Get) except where a
//! secret or a test result must be shown once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tera::Context;

use crate::api::{self, in_tx, owned_delivery, owned_endpoint};
use crate::auth;
use crate::cgi::Response;
use crate::config::format_duration;
use crate::endpoint::{self, Endpoint, Fields};
use crate::error::{ApiError, Invalid};
use crate::network::Policy;
use crate::routes::Ctx;
use crate::{clock, delivery, health, probe, schema, token, views};

const STYLESHEET: &str = include_str!("../static/style.css");

/// Messages for `?notice=`: fixed texts, so nothing from the URL is ever echoed.
const NOTICES: &[(&str, &str)] = &[
    ("created", "The endpoint was created."),
    ("saved", "Saved."),
    ("enabled", "The endpoint is enabled: deliveries are sent again."),
    ("disabled", "The endpoint is disabled: new events are not delivered to it."),
    ("deleted", "The endpoint was deleted."),
    ("retried", "The delivery will be sent again at the next dispatcher run."),
    ("retried-dead", "The endpoint's dead deliveries will be sent again at the next dispatcher run."),
    ("revoked", "The token was revoked."),
];

fn to_api(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::of(e)
}

/// The context every page shares.
fn context(ctx: &Ctx<'_>, title: &str, nav: &str) -> Context {
    let mut c = Context::new();
    c.insert("title", title);
    c.insert("nav", nav);
    c.insert("base", &ctx.req.script_name);
    c.insert("viewer", &ctx.viewer.as_ref().map(|v| json!({"user": v.user, "admin": v.admin})));
    c.insert("csrf", &ctx.csrf());
    c.insert("prefix", &ctx.cfg.header_prefix);
    let notice = ctx.req.query("notice").and_then(|n| NOTICES.iter().find(|(k, _)| *k == n).map(|(_, m)| *m));
    c.insert("notice", &notice);
    c
}

fn render(status: u16, template: &str, c: &Context) -> Result<Response, ApiError> {
    Ok(Response::html(status, views::render(template, c).map_err(to_api)?))
}

fn redirect(ctx: &Ctx<'_>, path: &str) -> Result<Response, ApiError> {
    Ok(Response::redirect(&ctx.req.link(path)))
}

pub fn stylesheet(_: &mut Ctx<'_>) -> Result<Response, ApiError> {
    Ok(Response::text(200, "text/css; charset=utf-8", STYLESHEET).with_header("Cache-Control", "public, max-age=3600"))
}

// ---- dashboard ------------------------------------------------------------------------------

#[derive(Serialize)]
struct Bar {
    x: i64,
    ok: i64,
    bad: i64,
    ok_y: i64,
    ok_h: i64,
    bad_y: i64,
    bad_h: i64,
    label: String,
}

/// The chart's top value: the busiest hour rounded up to 1, 2 or 5 times a power of ten, so
/// that the scale's marks are whole numbers.
fn chart_top(max: i64) -> i64 {
    let mut unit = 1;
    loop {
        for m in [1, 2, 5] {
            if m * unit >= max {
                return m * unit;
            }
        }
        unit *= 10;
    }
}

pub fn dashboard(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let scope = ctx.viewer().scope().map(String::from);
    let admin = ctx.viewer().admin;
    let health::Overview { deliveries_24h: counts, hourly_24h: hours, dispatcher: queue } =
        health::overview(ctx.db()?, scope.as_deref(), clock::now_ms()).map_err(to_api)?;
    let (height, bar_width, step, left) = (100i64, 14i64, 20i64, 30i64);
    let top = chart_top(hours.iter().map(|h| h.succeeded + h.unsuccessful).max().unwrap_or(0).max(1));
    let bars: Vec<Bar> = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let ok_h = h.succeeded * height / top;
            let bad_h = h.unsuccessful * height / top;
            Bar {
                x: left + i as i64 * step,
                ok: h.succeeded,
                bad: h.unsuccessful,
                ok_y: height - ok_h,
                ok_h,
                bad_y: height - ok_h - bad_h,
                bad_h,
                label: h.label.clone(),
            }
        })
        .collect();
    let scale: Vec<_> = [top, top / 2, 0]
        .iter()
        .filter(|v| **v == 0 || **v == top || top % 2 == 0)
        .map(|v| json!({"value": v, "y": height - v * height / top}))
        .collect();
    let (ok, bad): (i64, i64) = hours.iter().fold((0, 0), |(a, b), h| (a + h.succeeded, b + h.unsuccessful));
    let rate = (ok + bad > 0).then(|| format!("{:.1}", ok as f64 * 100.0 / (ok + bad) as f64));
    let mut c = context(ctx, "Dashboard", "dashboard");
    c.insert("counts", &counts);
    c.insert("cap", &health::COUNT_CAP);
    c.insert("queue", &queue);
    c.insert("stale", &queue.last_run_seconds_ago.is_none_or(|s| s > crate::doctor::STALE_AFTER.as_secs() as i64));
    // Only an administrator can act on a stopped dispatcher: they get the line to install.
    if admin {
        c.insert("cron_line", &crate::doctor::cron_line(&ctx.cfg.root));
    }
    c.insert(
        "chart",
        &json!({
            "width": left + 24 * step, "height": height, "left": left, "bar_width": bar_width, "bars": bars,
            "scale": scale, "rate": rate, "succeeded": ok, "unsuccessful": bad,
        }),
    );
    render(200, "dashboard.html", &c)
}

// ---- endpoints ------------------------------------------------------------------------------

/// Form values to show, and what each field's problem is.
#[derive(Default)]
struct EndpointForm {
    url: String,
    description: String,
    types: Vec<String>,
    active: bool,
}

impl EndpointForm {
    fn of(e: &Endpoint) -> Self {
        EndpointForm {
            url: e.url.clone(),
            description: e.description.clone(),
            types: e.event_types.clone(),
            active: e.active,
        }
    }

    fn from_post(ctx: &Ctx<'_>) -> Self {
        let f = ctx.req.form();
        let mut types = f.all("event_types");
        if types.iter().any(|t| t == "*") {
            types.clear(); // "all": no filter
        }
        EndpointForm {
            url: f.get("url").unwrap_or("").trim().to_string(),
            description: f.get("description").unwrap_or("").to_string(),
            types,
            active: f.get("active").is_some(),
        }
    }

    fn fields(&self) -> Fields {
        Fields {
            url: Some(self.url.clone()),
            description: Some(self.description.clone()),
            event_types: Some(self.types.clone()),
        }
    }

    fn insert(&self, c: &mut Context, errors: &BTreeMap<&str, String>) {
        c.insert("form", &json!({"url": self.url, "description": self.description, "active": self.active, "all": self.types.is_empty()}));
        let mut groups: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
        // The test event is sent by the test button whatever the filters say.
        for t in schema::catalog().iter().filter(|t| t.name != "webhook.test") {
            let group = format!("{}.*", t.name.split('.').next().unwrap_or(""));
            let item = json!({"name": t.name, "description": t.description(), "checked": self.types.iter().any(|f| f == t.name || schema::filter_matches(f, t.name) && f != "*")});
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, items)) => items.push(item),
                None => groups.push((group, vec![item])),
            }
        }
        let groups: Vec<_> = groups.into_iter().map(|(name, types)| json!({"name": name, "types": types})).collect();
        c.insert("groups", &groups);
        c.insert("errors", errors);
    }
}

/// Splits a failed save into a field message (shown beside the field) or a form message.
fn form_problem(e: anyhow::Error) -> Result<(BTreeMap<&'static str, String>, Option<String>), ApiError> {
    if let Some(inv) = e.downcast_ref::<Invalid>() {
        let mut m = BTreeMap::new();
        m.insert(inv.field, inv.message.clone());
        return Ok((m, None));
    }
    match e.downcast::<ApiError>() {
        Ok(api) if api.status == 409 => Ok((BTreeMap::new(), Some(api.message))),
        Ok(api) => Err(api),
        Err(e) => Err(to_api(e)),
    }
}

pub fn endpoints(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let scope = ctx.viewer().scope().map(String::from);
    let conn = ctx.db()?;
    let list = endpoint::list(conn, scope.as_deref()).map_err(to_api)?;
    let items = list.iter().map(|e| api::endpoint_json(conn, e)).collect::<Result<Vec<_>, _>>()?;
    let mut c = context(ctx, "Endpoints", "endpoints");
    c.insert("endpoints", &items);
    c.insert("limit", &ctx.cfg.max_endpoints_per_user);
    render(200, "endpoints.html", &c)
}

pub fn new_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let mut c = context(ctx, "New endpoint", "endpoints");
    EndpointForm { active: true, ..EndpointForm::default() }.insert(&mut c, &BTreeMap::new());
    render(200, "endpoint_new.html", &c)
}

pub fn create_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let form = EndpointForm::from_post(ctx);
    let (cfg, master, policy) = (ctx.cfg, ctx.master()?, Policy::of(ctx.cfg));
    let user = ctx.viewer().user.clone();
    let fields = form.fields();
    let active = form.active;
    let conn = ctx.db()?;
    let tx = crate::db::write_tx(conn).map_err(to_api)?;
    let created =
        endpoint::add(&tx, master, &policy, &user, &fields, cfg.max_endpoints_per_user).and_then(|(ep, secret)| {
            let ep = if active { ep } else { endpoint::set_active(&tx, &ep.id, false, None)? };
            Ok((ep, secret))
        });
    match created {
        Ok((ep, _)) => {
            tx.commit().map_err(to_api)?;
            // Post/Redirect/Get: the endpoint's page shows the secret once, then a reload does not.
            let flash = auth::cookie_header(ctx.req, auth::NEW_SECRET_COOKIE, &ep.id, Some(300));
            Ok(redirect(ctx, &format!("/endpoints/{}?notice=created", ep.id))?.with_header("Set-Cookie", &flash))
        }
        Err(e) => {
            drop(tx);
            let (errors, form_error) = form_problem(e)?;
            let mut c = context(ctx, "New endpoint", "endpoints");
            form.insert(&mut c, &errors);
            c.insert("form_error", &form_error);
            render(422, "endpoint_new.html", &c)
        }
    }
}

/// The endpoint page, with extra values (a secret shown once, a test result) from `extra`.
fn endpoint_page(ctx: &mut Ctx<'_>, ep: &Endpoint, extra: impl FnOnce(&mut Context)) -> Result<Response, ApiError> {
    endpoint_page_with(ctx, ep, &EndpointForm::of(ep), &BTreeMap::new(), None, 200, extra)
}

fn endpoint_page_with(
    ctx: &mut Ctx<'_>,
    ep: &Endpoint,
    form: &EndpointForm,
    errors: &BTreeMap<&str, String>,
    form_error: Option<String>,
    status: u16,
    extra: impl FnOnce(&mut Context),
) -> Result<Response, ApiError> {
    let json = api::endpoint_json(ctx.db()?, ep)?;
    let mut c = context(ctx, &format!("Endpoint {}", ep.url), "endpoints");
    c.insert("endpoint", &json);
    form.insert(&mut c, errors);
    c.insert("form_error", &form_error);
    let default = ctx.cfg.rotation_grace;
    let mut graces: Vec<Duration> = [0u64, 3600, 86_400, 7 * 86_400].iter().map(|s| Duration::from_secs(*s)).collect();
    if !graces.contains(&default) {
        graces.push(default);
        graces.sort();
    }
    let graces: Vec<_> = graces
        .iter()
        .map(|g| json!({"value": g.as_secs(), "label": if g.is_zero() { "no time (stop now)".to_string() } else { format_duration(*g) }, "selected": *g == default}))
        .collect();
    c.insert("graces", &graces);
    extra(&mut c);
    render(status, "endpoint.html", &c)
}

pub fn endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    // Right after a create or a save, say if deliveries could not reach the URL today.
    let warning = matches!(ctx.req.query("notice").as_deref(), Some("created" | "saved"))
        .then(|| crate::network::reachability_warning(&ep.url, &Policy::of(ctx.cfg)))
        .flatten();
    // Right after a create, the new secret, once (see `create_endpoint`).
    let fresh = ctx.req.cookie(auth::NEW_SECRET_COOKIE).as_deref() == Some(ep.id.as_str());
    let secret = if fresh {
        let master = ctx.master()?;
        let keys = endpoint::secrets(ctx.db()?, master, &ep.id, clock::now_ms()).map_err(to_api)?;
        keys.into_iter().find(|k| k.expires_at.is_none()).map(|k| k.secret)
    } else {
        None
    };
    let page = endpoint_page(ctx, &ep, |c| {
        c.insert("secret", &secret);
        c.insert("url_warning", &warning);
    })?;
    if !fresh {
        return Ok(page);
    }
    Ok(page.with_header("Set-Cookie", &auth::cookie_header(ctx.req, auth::NEW_SECRET_COOKIE, "", Some(0))))
}

pub fn update_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let form = EndpointForm::from_post(ctx);
    let policy = Policy::of(ctx.cfg);
    let fields = form.fields();
    let active = form.active;
    let conn = ctx.db()?;
    let tx = crate::db::write_tx(conn).map_err(to_api)?;
    let saved = endpoint::update(&tx, &policy, &ep.id, &fields).and_then(|updated| {
        if updated.active != active {
            endpoint::set_active(&tx, &ep.id, active, None)?;
        }
        Ok(())
    });
    match saved {
        Ok(()) => {
            tx.commit().map_err(to_api)?;
            redirect(ctx, &format!("/endpoints/{}?notice=saved", ep.id))
        }
        Err(e) => {
            drop(tx);
            let (errors, form_error) = form_problem(e)?;
            endpoint_page_with(ctx, &ep, &form, &errors, form_error, 422, |_| {})
        }
    }
}

fn set_active(ctx: &mut Ctx<'_>, active: bool) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    in_tx(ctx, |tx| endpoint::set_active(tx, &ep.id, active, None))?;
    redirect(ctx, &format!("/endpoints/{}?notice={}", ep.id, if active { "enabled" } else { "disabled" }))
}

pub fn enable_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    set_active(ctx, true)
}

pub fn disable_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    set_active(ctx, false)
}

pub fn confirm_delete(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let mut c = context(ctx, "Delete endpoint", "endpoints");
    c.insert("endpoint", &ep);
    render(200, "endpoint_delete.html", &c)
}

pub fn delete_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let retention = ctx.cfg.payload_retention;
    in_tx(ctx, |tx| endpoint::delete(tx, &ep.id, retention))?;
    redirect(ctx, "/endpoints?notice=deleted")
}

pub fn rotate_secret(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let grace = match ctx.req.form().get("grace") {
        None => ctx.cfg.rotation_grace,
        Some(g) => Duration::from_secs(
            g.parse::<u64>()
                .ok()
                .filter(|s| *s <= 30 * 86_400)
                .ok_or_else(|| ApiError::bad_request("the grace period is not one of the offered choices"))?,
        ),
    };
    let master = ctx.master()?;
    let (secret, _, until) = in_tx(ctx, |tx| endpoint::rotate_secret(tx, master, &ep.id, grace))?;
    let until = (!grace.is_zero()).then(|| clock::rfc3339(until));
    endpoint_page(ctx, &ep, |c| {
        c.insert("secret", &secret);
        c.insert("grace_until", &until);
    })
}

pub fn reveal_secret(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let master = ctx.master()?;
    let revealed = endpoint::secrets(ctx.db()?, master, &ep.id, clock::now_ms()).map_err(to_api)?;
    endpoint_page(ctx, &ep, |c| c.insert("revealed", &revealed))
}

pub fn test_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    let (cfg, master) = (ctx.cfg, ctx.master()?);
    let result = probe::send_test(ctx.db()?, cfg, master, &ep).map_err(to_api)?;
    endpoint_page(ctx, &ep, |c| c.insert("test", &result))
}

pub fn retry_dead(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let ep = owned_endpoint(ctx)?;
    in_tx(ctx, |tx| crate::delivery::retry_dead(tx, &ep.id))?;
    redirect(ctx, &format!("/endpoints/{}?notice=retried-dead", ep.id))
}

// ---- deliveries -----------------------------------------------------------------------------

pub fn deliveries(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let filter = api::delivery_filter(ctx, 50)?;
    let scope = ctx.viewer().scope().map(String::from);
    let conn = ctx.db()?;
    let list = delivery::list(conn, &filter).map_err(to_api)?;
    let endpoints = endpoint::list(conn, scope.as_deref()).map_err(to_api)?;
    let next_link = (list.len() == filter.limit).then(|| list.last()).flatten().map(|last| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in ctx.req.query_pairs().iter().filter(|(k, _)| k != "before" && k != "notice") {
            q.append_pair(k, v);
        }
        q.append_pair("before", &last.id);
        ctx.req.link(&format!("/deliveries?{}", q.finish()))
    });
    // Each row names its endpoint: two deliveries of one type differ only there.
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|d| {
            let ep = endpoints.iter().find(|e| e.id == d.endpoint_id);
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["endpoint_url"] = json!(ep.map(|e| e.url.as_str()));
            v["endpoint_description"] = json!(ep.map(|e| e.description.as_str()));
            v
        })
        .collect();
    let mut c = context(ctx, "Deliveries", "deliveries");
    c.insert("deliveries", &rows);
    c.insert("endpoints", &endpoints);
    c.insert("statuses", delivery::STATUSES);
    c.insert("types", &schema::catalog().iter().map(|t| t.name).collect::<Vec<_>>());
    c.insert(
        "filter",
        &json!({
            "status": filter.status, "endpoint": filter.endpoint, "type": filter.event_type,
            "since": ctx.req.query("since").and_then(|s| s.get(..10).map(String::from)),
            "until": ctx.req.query("until").and_then(|s| s.get(..10).map(String::from)),
        }),
    );
    c.insert("next_link", &next_link);
    render(200, "deliveries.html", &c)
}

pub fn delivery(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let d = owned_delivery(ctx)?;
    let conn = ctx.db()?;
    let attempts = crate::attempt::list(conn, &d.id).map_err(to_api)?;
    let url = endpoint::find(conn, &d.endpoint_id).map_err(to_api)?.map(|e| e.url).unwrap_or_default();
    let mut c = context(ctx, "Delivery", "deliveries");
    // After Retry now, the notice follows what happened since: `after` is the number of
    // attempts when the retry was asked for.
    if ctx.req.query("notice").as_deref() == Some("retried") {
        let after: Option<u32> = ctx.req.query("after").and_then(|a| a.parse().ok());
        if after.is_some_and(|n| d.attempts > n) {
            let text = match d.status.as_str() {
                "succeeded" => "It was sent again and delivered: the newest attempt is below.",
                _ if d.in_flight => "It is being sent again right now.",
                _ => "It was sent again: the newest attempt is below.",
            };
            c.insert("notice", text);
        }
    }
    c.insert("d", &d);
    c.insert("attempts", &attempts);
    c.insert("endpoint_url", &url);
    c.insert("payload_retention", &format_duration(ctx.cfg.payload_retention));
    render(200, "delivery.html", &c)
}

pub fn retry_delivery(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let d = owned_delivery(ctx)?;
    in_tx(ctx, |tx| delivery::retry(tx, &d.id))?;
    redirect(ctx, &format!("/deliveries/{}?notice=retried&after={}", d.id, d.attempts))
}

// ---- tokens ---------------------------------------------------------------------------------

fn tokens_page(ctx: &mut Ctx<'_>, status: u16, extra: impl FnOnce(&mut Context)) -> Result<Response, ApiError> {
    let scope = ctx.viewer().scope().map(String::from);
    let list = token::list(ctx.db()?, scope.as_deref()).map_err(to_api)?;
    let mut c = context(ctx, "API tokens", "tokens");
    c.insert("tokens", &list);
    c.insert("label", "");
    c.insert("label_error", &None::<String>);
    c.insert("new_token", &None::<String>);
    extra(&mut c);
    render(status, "tokens.html", &c)
}

pub fn tokens(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    tokens_page(ctx, 200, |_| {})
}

pub fn create_token(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let label = ctx.req.form().get("label").unwrap_or("").trim().to_string();
    if label.chars().count() > 100 {
        return tokens_page(ctx, 422, |c| {
            c.insert("label", &label);
            c.insert("label_error", "must be at most 100 characters");
        });
    }
    let user = ctx.viewer().user.clone();
    let created = in_tx(ctx, |tx| token::create(tx, Some(&user), &label))?;
    tokens_page(ctx, 200, |c| c.insert("new_token", &created.token))
}

pub fn revoke_token(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    in_tx(ctx, |tx| token::revoke(tx, &id, scope.as_deref()))?;
    redirect(ctx, "/tokens?notice=revoked")
}

// ---- docs, sign-in --------------------------------------------------------------------------

const PHP: &str = r#"<?php
$secret = base64_decode(substr(getenv('WEBHOOK_SECRET'), strlen('whsec_')));
$body = file_get_contents('php://input');
$id = $_SERVER['HTTP_{P}_ID'] ?? '';
$ts = $_SERVER['HTTP_{P}_TIMESTAMP'] ?? '';
if (!ctype_digit($ts) || abs(time() - (int)$ts) > 300) { http_response_code(400); exit; }
$expected = hash_hmac('sha256', "$id.$ts.$body", $secret);
$ok = false;
foreach (explode(' ', $_SERVER['HTTP_{P}_SIGNATURE'] ?? '') as $sig) {
    if (str_starts_with($sig, 'v1=') && hash_equals($expected, substr($sig, 3))) { $ok = true; }
}
if (!$ok) { http_response_code(400); exit; }
$event = json_decode($body, true);
http_response_code(204);"#;

const PYTHON: &str = r#"import base64, hashlib, hmac, time

def verify(secret: str, headers, body: bytes) -> bool:
    """headers: case-insensitive, like Flask's or Django's request.headers; body: the raw bytes."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts = headers["{H}-Id"], headers["{H}-Timestamp"]
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False
    expected = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return any(s.startswith("v1=") and hmac.compare_digest(s[3:], expected)
               for s in headers["{H}-Signature"].split())"#;

const NODE: &str = r#"const crypto = require("crypto");

function verify(secret, headers, rawBody) {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const id = headers["{h}-id"], ts = headers["{h}-timestamp"];
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const expected = crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(rawBody).digest("hex");
  return (headers["{h}-signature"] || "").split(" ").some((s) =>
    s.startsWith("v1=") && s.length === 67 &&
    crypto.timingSafeEqual(Buffer.from(s.slice(3)), Buffer.from(expected)));
}"#;

/// The verification snippets with this installation's header prefix filled in.
pub fn snippets(prefix: &str) -> [(&'static str, String); 3] {
    [
        ("php", PHP.replace("{P}", &prefix.to_ascii_uppercase().replace('-', "_"))),
        ("python", PYTHON.replace("{H}", prefix)),
        ("node", NODE.replace("{h}", &prefix.to_ascii_lowercase())),
    ]
}

pub fn docs_verify(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let mut c = context(ctx, "Verifying deliveries", "docs");
    for (name, code) in snippets(&ctx.cfg.header_prefix) {
        c.insert(name, &code);
    }
    render(200, "docs_verify.html", &c)
}

/// `GET /login?user=…&expires=…&nonce=…&sig=…`: a link from the host application.
pub fn login(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let (cfg, master, req) = (ctx.cfg, ctx.master()?, ctx.req);
    let now = clock::now_ms() / 1000;
    let (_, cookie) = auth::redeem(ctx.db()?, cfg, master, req, now)?;
    let set = auth::cookie_header(req, auth::SESSION_COOKIE, &cookie, Some(cfg.session_ttl.as_secs() as i64));
    Ok(Response::redirect(&req.link("/")).with_header("Set-Cookie", &set))
}

pub fn logout(ctx: &mut Ctx<'_>) -> Result<Response, ApiError> {
    let by_server = ctx.req.remote_user.is_some();
    let clear = auth::cookie_header(ctx.req, auth::SESSION_COOKIE, "", Some(0));
    let mut c = context(ctx, "Signed out", "");
    c.insert("viewer", &None::<String>);
    c.insert("message", if by_server {
        "Your session cookie is cleared, but you signed in through the web server: close the browser to sign out there."
    } else {
        "You are signed out. Open the webhooks page from the application to sign in again."
    });
    Ok(render(200, "signed_out.html", &c)?.with_header("Set-Cookie", &clear))
}
