//! What every page shares: the context (title, navigation, viewer, CSRF token, notice),
//! rendering, redirects, and the stylesheet.

use crate::store::endpoints;
use serde_json::json;
use tera::Context;

use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;
use crate::web::views;

const STYLESHEET: &str = include_str!("../../../static/style.css");

/// Messages for `?notice=`: fixed texts, so nothing from the URL is ever echoed.
const NOTICES: &[(&str, &str)] = &[
    ("created", "The endpoint was created."),
    ("saved", "Saved."),
    ("enabled", "The endpoint is enabled: deliveries are sent again."),
    ("disabled", "The endpoint is disabled: new events are not delivered to it."),
    ("deleted", "The endpoint was deleted."),
    ("retried", "The delivery will be sent again at the next dispatcher run."),
    ("retried-dead", "The endpoint's dead deliveries will be sent again at the next dispatcher run."),
    ("replayed", "The deliveries of that time range will be sent again, in order, from the next dispatcher run."),
    ("discarded", "The delivery was discarded: the next one of its ordering key goes at the next dispatcher run."),
    ("revoked", "The token was revoked."),
    ("key-added", "The public key was stored."),
    ("source-enabled", "The source is enabled: its address takes requests again."),
    ("source-disabled", "The source is disabled: its address answers 404."),
];

/// The context every page shares.
pub fn context(ctx: &mut Ctx<'_>, title: &str, nav: &str) -> Context {
    let mut c = Context::new();
    c.insert("title", title);
    c.insert("nav", nav);
    c.insert("base", &ctx.req.script_name);
    c.insert("viewer", &ctx.viewer.as_ref().map(|v| json!({"user": v.principal.user(), "admin": v.admin})));
    c.insert("csrf", &ctx.csrf());
    c.insert("prefix", &ctx.cfg.header_prefix);
    ctx.look().insert(&mut c);
    let notice = ctx.req.query("notice").and_then(|n| NOTICES.iter().find(|(k, _)| *k == n).map(|(_, m)| *m));
    // After re-enabling, how many deliveries it sends or discarded (numbers only, never echoed text).
    let count = |k: &str| ctx.req.query(k).and_then(|v| v.parse::<u64>().ok());
    let notice = match (notice, count("sent"), count("discarded")) {
        (Some(m), _, _) if m.starts_with("The deliveries of that time range") => match count("count") {
            Some(n) => Some(format!(
                "{n} deliver{} of that time range will be sent again, in order, from the next dispatcher run.",
                if n == 1 { "y" } else { "ies" }
            )),
            None => Some(m.to_string()),
        },
        (Some(_), Some(n), _) => Some(format!(
            "The endpoint is enabled: {n} held or dead deliver{} will be sent again, in order, at the next dispatcher run.",
            if n == 1 { "y" } else { "ies" }
        )),
        (Some(_), None, Some(n)) => Some(format!(
            "The endpoint is enabled; {n} held deliver{} discarded.",
            if n == 1 { "y was" } else { "ies were" }
        )),
        (n, _, _) => n.map(String::from),
    };
    c.insert("notice", &notice);
    // The banner: this viewer's endpoints that are failing or were disabled after failing. A
    // page that cannot count them is still shown.
    let scope = ctx.viewer.as_ref().and_then(|v| v.scope().map(String::from));
    let signed_in = ctx.viewer.is_some();
    let trouble =
        if signed_in { ctx.db().ok().and_then(|db| endpoints::trouble(db, scope.as_deref()).ok()) } else { None };
    c.insert("health_banner", &trouble.map(banner).filter(|b| !b.is_empty()));
    c
}

/// The banner's parts, each a bold phrase and what follows it: "**1 endpoint disabled** after
/// failing, 2 deliveries held; **1 endpoint failing**".
fn banner(t: endpoints::Trouble) -> Vec<(String, String)> {
    let plural = |n: i64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut parts = Vec::new();
    if t.disabled > 0 {
        let held =
            if t.held > 0 { format!(", {} held", plural(t.held, "delivery", "deliveries")) } else { String::new() };
        parts.push((
            format!("{} disabled", plural(t.disabled, "endpoint", "endpoints")),
            format!(" after failing{held}"),
        ));
    }
    if t.failing > 0 {
        parts.push((format!("{} failing", plural(t.failing, "endpoint", "endpoints")), String::new()));
    }
    if t.sources > 0 {
        parts.push((
            plural(t.sources, "inbound source", "inbound sources"),
            " silent or failing verification (see Sources)".into(),
        ));
    }
    parts
}

pub fn render(status: u16, template: &str, c: &Context) -> Result<Response, HttpError> {
    Ok(Response::html(status, views::render(template, c)?))
}

pub fn redirect(ctx: &Ctx<'_>, path: &str) -> Result<Response, HttpError> {
    Ok(Response::redirect(&ctx.req.link(path)))
}

pub fn stylesheet(_: &mut Ctx<'_>) -> Result<Response, HttpError> {
    Ok(Response::text(200, "text/css; charset=utf-8", STYLESHEET).with_header("Cache-Control", "public, max-age=3600"))
}

/// `GET /static/theme.css`: the host's stylesheet.
pub fn theme_stylesheet(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let path = ctx.cfg.theme_css.as_ref().ok_or_else(|| HttpError::not_found("no theme is configured"))?;
    let css = std::fs::read(path).map_err(|e| {
        eprintln!("webhooks-cgi: WEBHOOKS_THEME_CSS {}: {e}", path.display());
        HttpError::not_found("the theme stylesheet cannot be read")
    })?;
    Ok(Response::text(200, "text/css; charset=utf-8", css).with_header("Cache-Control", "public, max-age=86400"))
}
