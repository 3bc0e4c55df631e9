//! HTML pages: server-rendered with Tera, working without JavaScript. Forms post back with a
//! CSRF token (checked by the router); success redirects (Post/Redirect/Get) except where a
//! secret or a test result must be shown once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use tera::Context;

use crate::config::format_duration;
use crate::model::delivery::Status;
use crate::model::endpoint::{Endpoint, Fields, MAX_ROTATION_GRACE};
use crate::model::health::{is_stale, Overview, COUNT_CAP};
use crate::model::{principal, schema, time, Error};
use crate::outbound::{network, probe};
use crate::store::{deliveries, endpoints, health, principals};
use crate::web::api::{self, owned_delivery, owned_endpoint};
use crate::web::auth;
use crate::web::auth::Ctx;
use crate::web::cgi::Response;
use crate::web::error::HttpError;
use crate::web::views;

const STYLESHEET: &str = include_str!("../../static/style.css");

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

/// The context every page shares.
fn context(ctx: &Ctx<'_>, title: &str, nav: &str) -> Context {
    let mut c = Context::new();
    c.insert("title", title);
    c.insert("nav", nav);
    c.insert("base", &ctx.req.script_name);
    c.insert("viewer", &ctx.viewer.as_ref().map(|v| json!({"user": v.principal.user(), "admin": v.admin})));
    c.insert("csrf", &ctx.csrf());
    c.insert("prefix", &ctx.cfg.header_prefix);
    let notice = ctx.req.query("notice").and_then(|n| NOTICES.iter().find(|(k, _)| *k == n).map(|(_, m)| *m));
    c.insert("notice", &notice);
    c
}

fn render(status: u16, template: &str, c: &Context) -> Result<Response, HttpError> {
    Ok(Response::html(status, views::render(template, c)?))
}

fn redirect(ctx: &Ctx<'_>, path: &str) -> Result<Response, HttpError> {
    Ok(Response::redirect(&ctx.req.link(path)))
}

pub fn stylesheet(_: &mut Ctx<'_>) -> Result<Response, HttpError> {
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

pub fn dashboard(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let scope = ctx.viewer().scope().map(String::from);
    let admin = ctx.viewer().admin;
    let Overview { deliveries_24h: counts, hourly_24h: hours, dispatcher: queue } =
        health::overview(ctx.db()?, scope.as_deref(), time::now_ms())?;
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
    c.insert("cap", &COUNT_CAP);
    c.insert("queue", &queue);
    c.insert("stale", &is_stale(queue.last_run_seconds_ago));
    // Only an administrator can act on a stopped dispatcher: they get the line to install.
    if admin {
        c.insert("cron_line", &ctx.cfg.cron_line());
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

    fn insert(&self, c: &mut Context, errors: &BTreeMap<String, String>) {
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

/// A failed save's messages: beside a field, or above the form.
type FormProblem = (BTreeMap<String, String>, Option<String>);

/// Splits a failed save into a field message (shown beside the field) or a form message (a
/// conflict, such as the endpoint limit); anything else is an error page.
fn form_problem(e: Error) -> Result<FormProblem, HttpError> {
    match e {
        Error::Invalid { problems, .. } if problems.len() == 1 => {
            let p = &problems[0];
            let field = p.path.strip_prefix("$.").unwrap_or(&p.path).to_string();
            Ok((BTreeMap::from([(field, p.message.clone())]), None))
        }
        Error::Conflict { message, .. } => Ok((BTreeMap::new(), Some(message))),
        other => Err(other.into()),
    }
}

pub fn endpoints(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let scope = ctx.viewer().scope().map(String::from);
    let db = ctx.db()?;
    let list = endpoints::list(db, scope.as_deref())?;
    let items = list.iter().map(|e| api::endpoint_json(db, e)).collect::<Result<Vec<_>, _>>()?;
    let mut c = context(ctx, "Endpoints", "endpoints");
    c.insert("endpoints", &items);
    c.insert("limit", &ctx.cfg.max_endpoints_per_user);
    render(200, "endpoints.html", &c)
}

pub fn new_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let mut c = context(ctx, "New endpoint", "endpoints");
    EndpointForm { active: true, ..EndpointForm::default() }.insert(&mut c, &BTreeMap::new());
    render(200, "endpoint_new.html", &c)
}

pub fn create_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let form = EndpointForm::from_post(ctx);
    let (cfg, keyring, policy) = (ctx.cfg, ctx.keyring()?, ctx.cfg.policy());
    let user = ctx.user().to_string();
    let fields = form.fields();
    let active = form.active;
    let created = ctx.try_write(|db| {
        let (ep, secret) = endpoints::add(db, &keyring, &policy, &user, &fields, cfg.max_endpoints_per_user)?;
        let ep = if active { ep } else { endpoints::set_active(db, &ep.id, false, None)? };
        Ok((ep, secret))
    })?;
    match created {
        Ok((ep, _)) => {
            // Post/Redirect/Get: the endpoint's page shows the secret once, then a reload does not.
            let flash = auth::cookie_header(ctx.req, auth::NEW_SECRET_COOKIE, &ep.id, Some(300));
            Ok(redirect(ctx, &format!("/endpoints/{}?notice=created", ep.id))?.with_header("Set-Cookie", &flash))
        }
        Err(e) => {
            let (errors, form_error) = form_problem(e)?;
            let mut c = context(ctx, "New endpoint", "endpoints");
            form.insert(&mut c, &errors);
            c.insert("form_error", &form_error);
            render(422, "endpoint_new.html", &c)
        }
    }
}

/// The endpoint page, with extra values (a secret shown once, a test result) from `extra`.
fn endpoint_page(ctx: &mut Ctx<'_>, ep: &Endpoint, extra: impl FnOnce(&mut Context)) -> Result<Response, HttpError> {
    endpoint_page_with(ctx, ep, &EndpointForm::of(ep), &BTreeMap::new(), None, 200, extra)
}

fn endpoint_page_with(
    ctx: &mut Ctx<'_>,
    ep: &Endpoint,
    form: &EndpointForm,
    errors: &BTreeMap<String, String>,
    form_error: Option<String>,
    status: u16,
    extra: impl FnOnce(&mut Context),
) -> Result<Response, HttpError> {
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

pub fn endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    // Right after a create or a save, say if deliveries could not reach the URL today.
    let warning = matches!(ctx.req.query("notice").as_deref(), Some("created" | "saved"))
        .then(|| network::reachability_warning(&ep.url, &ctx.cfg.policy()))
        .flatten();
    // Right after a create, the new secret, once (see `create_endpoint`).
    let fresh = ctx.req.cookie(auth::NEW_SECRET_COOKIE).as_deref() == Some(ep.id.as_str());
    let secret = if fresh {
        let keyring = ctx.keyring()?;
        let keys = endpoints::secrets(ctx.db()?, &keyring, &ep.id, time::now_ms())?;
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

pub fn update_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let form = EndpointForm::from_post(ctx);
    let policy = ctx.cfg.policy();
    let fields = form.fields();
    let active = form.active;
    let saved = ctx.try_write(|db| {
        let updated = endpoints::update(db, &policy, &ep.id, &fields)?;
        if updated.active != active {
            endpoints::set_active(db, &ep.id, active, None)?;
        }
        Ok(())
    })?;
    match saved {
        Ok(()) => redirect(ctx, &format!("/endpoints/{}?notice=saved", ep.id)),
        Err(e) => {
            let (errors, form_error) = form_problem(e)?;
            endpoint_page_with(ctx, &ep, &form, &errors, form_error, 422, |_| {})
        }
    }
}

fn set_active(ctx: &mut Ctx<'_>, active: bool) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    ctx.write(|db| endpoints::set_active(db, &ep.id, active, None))?;
    redirect(ctx, &format!("/endpoints/{}?notice={}", ep.id, if active { "enabled" } else { "disabled" }))
}

pub fn enable_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    set_active(ctx, true)
}

pub fn disable_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    set_active(ctx, false)
}

pub fn confirm_delete(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let mut c = context(ctx, "Delete endpoint", "endpoints");
    c.insert("endpoint", &ep);
    render(200, "endpoint_delete.html", &c)
}

pub fn delete_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let retention = ctx.cfg.payload_retention;
    ctx.write(|db| endpoints::delete(db, &ep.id, retention))?;
    redirect(ctx, "/endpoints?notice=deleted")
}

pub fn rotate_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let grace = match ctx.req.form().get("grace") {
        None => ctx.cfg.rotation_grace,
        Some(g) => Duration::from_secs(
            g.parse::<u64>()
                .ok()
                .filter(|s| *s <= MAX_ROTATION_GRACE.as_secs())
                .ok_or_else(|| HttpError::bad_request("the grace period is not one of the offered choices"))?,
        ),
    };
    let keyring = ctx.keyring()?;
    let (secret, _, until) = ctx.write(|db| endpoints::rotate_secret(db, &keyring, &ep.id, grace))?;
    let until = (!grace.is_zero()).then(|| time::rfc3339(until));
    endpoint_page(ctx, &ep, |c| {
        c.insert("secret", &secret);
        c.insert("grace_until", &until);
    })
}

pub fn reveal_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let keyring = ctx.keyring()?;
    let revealed = endpoints::secrets(ctx.db()?, &keyring, &ep.id, time::now_ms())?;
    endpoint_page(ctx, &ep, |c| c.insert("revealed", &revealed))
}

pub fn test_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let (cfg, keyring) = (ctx.cfg, ctx.keyring()?);
    let result = probe::send_test(ctx.db()?, cfg, &keyring, &ep)?;
    endpoint_page(ctx, &ep, |c| c.insert("test", &result))
}

pub fn retry_dead(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    ctx.write(|db| deliveries::retry_dead(db, &ep.id))?;
    redirect(ctx, &format!("/endpoints/{}?notice=retried-dead", ep.id))
}

// ---- deliveries -----------------------------------------------------------------------------

pub fn deliveries(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let filter = api::delivery_filter(ctx, 50)?;
    let scope = ctx.viewer().scope().map(String::from);
    let db = ctx.db()?;
    let list = deliveries::list(db, &filter)?;
    let endpoints = endpoints::list(db, scope.as_deref())?;
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
    c.insert("statuses", &Status::ALL);
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

pub fn delivery(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    let db = ctx.db()?;
    let history = deliveries::attempts(db, &d.id)?;
    let url = endpoints::find(db, &d.endpoint_id)?.map(|e| e.url).unwrap_or_default();
    let mut c = context(ctx, "Delivery", "deliveries");
    // After Retry now, the notice follows what happened since: `after` is the number of
    // attempts when the retry was asked for.
    if ctx.req.query("notice").as_deref() == Some("retried") {
        let after: Option<u32> = ctx.req.query("after").and_then(|a| a.parse().ok());
        if after.is_some_and(|n| d.attempts > n) {
            let text = match d.status {
                Status::Succeeded => "It was sent again and delivered: the newest attempt is below.",
                _ if d.in_flight => "It is being sent again right now.",
                _ => "It was sent again: the newest attempt is below.",
            };
            c.insert("notice", text);
        }
    }
    c.insert("d", &d);
    c.insert("attempts", &history);
    c.insert("endpoint_url", &url);
    c.insert("payload_retention", &format_duration(ctx.cfg.payload_retention));
    render(200, "delivery.html", &c)
}

pub fn retry_delivery(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    ctx.write(|db| deliveries::retry(db, &d.id))?;
    redirect(ctx, &format!("/deliveries/{}?notice=retried&after={}", d.id, d.attempts))
}

// ---- tokens ---------------------------------------------------------------------------------

fn tokens_page(ctx: &mut Ctx<'_>, status: u16, extra: impl FnOnce(&mut Context)) -> Result<Response, HttpError> {
    let scope = ctx.viewer().scope().map(String::from);
    let list = principals::list_tokens(ctx.db()?, scope.as_deref())?;
    let mut c = context(ctx, "API tokens", "tokens");
    c.insert("tokens", &list);
    c.insert("label", "");
    c.insert("label_error", &None::<String>);
    c.insert("new_token", &None::<String>);
    extra(&mut c);
    render(status, "tokens.html", &c)
}

pub fn tokens(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    tokens_page(ctx, 200, |_| {})
}

pub fn create_token(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let label = ctx.req.form().get("label").unwrap_or("").trim().to_string();
    if let Err(Error::Invalid { problems, .. }) = principal::check_label(&label) {
        return tokens_page(ctx, 422, |c| {
            c.insert("label", &label);
            c.insert("label_error", &problems[0].message);
        });
    }
    let user = ctx.user().to_string();
    let created = ctx.write(|db| principals::create_token(db, Some(&user), &label))?;
    tokens_page(ctx, 200, |c| c.insert("new_token", &created.token))
}

pub fn revoke_token(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    ctx.write(|db| principals::revoke_token(db, &id, scope.as_deref()))?;
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

pub fn docs_verify(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let mut c = context(ctx, "Verifying deliveries", "docs");
    for (name, code) in snippets(&ctx.cfg.header_prefix) {
        c.insert(name, &code);
    }
    render(200, "docs_verify.html", &c)
}

/// `GET /login?user=…&expires=…&nonce=…&sig=…`: a link from the host application.
pub fn login(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let (cfg, keyring, req) = (ctx.cfg, ctx.keyring()?, ctx.req);
    let now = time::now_ms() / 1000;
    let (_, cookie) = auth::redeem(ctx.db()?, cfg, &keyring.current, req, now)?;
    let set = auth::cookie_header(req, auth::SESSION_COOKIE, &cookie, Some(cfg.session_ttl.as_secs() as i64));
    Ok(Response::redirect(&req.link("/")).with_header("Set-Cookie", &set))
}

pub fn logout(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
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
