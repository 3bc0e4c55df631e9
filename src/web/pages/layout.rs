//! What every page shares: the context (title, navigation, viewer, CSRF token, notice),
//! rendering, redirects, and the stylesheet.

use serde_json::json;
use tera::Context;

use crate::web::auth::Ctx;
use crate::web::cgi::Response;
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
    ("revoked", "The token was revoked."),
];

/// The context every page shares.
pub fn context(ctx: &Ctx<'_>, title: &str, nav: &str) -> Context {
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

pub fn render(status: u16, template: &str, c: &Context) -> Result<Response, HttpError> {
    Ok(Response::html(status, views::render(template, c)?))
}

pub fn redirect(ctx: &Ctx<'_>, path: &str) -> Result<Response, HttpError> {
    Ok(Response::redirect(&ctx.req.link(path)))
}

pub fn stylesheet(_: &mut Ctx<'_>) -> Result<Response, HttpError> {
    Ok(Response::text(200, "text/css; charset=utf-8", STYLESHEET).with_header("Cache-Control", "public, max-age=3600"))
}
