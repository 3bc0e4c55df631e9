//! The CGI program (`webhooks-cgi`): read the request (`cgi`), find its route, check who is asking,
//! run the handler, write the response. A panic or a configuration error still answers cleanly
//! (an HTML page for pages, JSON for the API) and leaves one line in the web server's error log.
//!
//! One table of (method, path pattern, kind, handler) is what the router below, the 405 `Allow`
//! header and the OpenAPI consistency test all read. `Api` routes take a
//! Bearer token and answer JSON; `Page` routes need a signed-in viewer (and a CSRF token on
//! POST) and answer HTML; `Public` routes need neither.

use std::io::Read;

use crate::config::Config;
use crate::model::principal::Principal;
use crate::model::time;
use crate::store::{observations, principals, Db};
use crate::web::auth;
use crate::web::cgi::{CgiEnv, Request, Response};
use crate::web::context::Ctx;
use crate::web::context::Viewer;
use crate::web::error::HttpError;
use crate::web::{api, api_sources, pages, views};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Page,
    Public,
}

pub type Handler = fn(&mut Ctx<'_>) -> Result<Response, HttpError>;

pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub kind: Kind,
    pub handler: Handler,
}

const fn r(method: &'static str, path: &'static str, kind: Kind, handler: Handler) -> Route {
    Route { method, path, kind, handler }
}

use Kind::{Api, Page, Public};

pub const ROUTES: &[Route] = &[
    r("POST", "/api/v1/events", Api, api::post_events),
    r("GET", "/api/v1/event-types", Public, api::event_types),
    r("GET", "/api/v1/openapi.json", Public, api::openapi),
    r("GET", "/api/v1/status", Api, api::status),
    r("GET", "/api/v1/metrics", Api, api::metrics),
    r("GET", "/api/v1/endpoints", Api, api::list_endpoints),
    r("POST", "/api/v1/endpoints", Api, api::create_endpoint),
    r("GET", "/api/v1/endpoints/{id}", Api, api::get_endpoint),
    r("PATCH", "/api/v1/endpoints/{id}", Api, api::update_endpoint),
    r("DELETE", "/api/v1/endpoints/{id}", Api, api::delete_endpoint),
    r("POST", "/api/v1/endpoints/{id}/rotate-secret", Api, api::rotate_secret),
    r("POST", "/api/v1/endpoints/{id}/secret", Api, api::reveal_secret),
    r("POST", "/api/v1/endpoints/{id}/test", Api, api::test_endpoint),
    r("POST", "/api/v1/endpoints/{id}/retry-dead", Api, api::retry_dead),
    r("POST", "/api/v1/endpoints/{id}/replay", Api, api::replay),
    r("GET", "/api/v1/deliveries", Api, api::list_deliveries),
    r("GET", "/api/v1/deliveries/{id}", Api, api::get_delivery),
    r("POST", "/api/v1/deliveries/{id}/retry", Api, api::retry_delivery),
    r("POST", "/api/v1/deliveries/{id}/discard", Api, api::discard_delivery),
    r("GET", "/api/v1/tokens", Api, api::list_tokens),
    r("POST", "/api/v1/tokens", Api, api::create_token),
    r("DELETE", "/api/v1/tokens/{id}", Api, api::revoke_token),
    r("DELETE", "/api/v1/users/{user}/sessions", Api, api::revoke_sessions),
    r("POST", "/api/v1/portal-links", Api, api::create_portal_link),
    r("GET", "/api/v1/sources", Api, api_sources::list_sources),
    r("POST", "/api/v1/sources", Api, api_sources::create_source),
    r("GET", "/api/v1/sources/{id}", Api, api_sources::get_source),
    r("PATCH", "/api/v1/sources/{id}", Api, api_sources::update_source),
    r("DELETE", "/api/v1/sources/{id}", Api, api_sources::delete_source),
    r("POST", "/api/v1/sources/{id}/rotate-secret", Api, api_sources::rotate_source_secret),
    r("POST", "/api/v1/sources/{id}/forwards", Api, api_sources::add_forward),
    r("POST", "/api/v1/sources/{id}/public-keys", Api, api_sources::add_public_key),
    r("GET", "/api/v1/inbound", Api, api_sources::list_inbound),
    r("GET", "/api/v1/inbound/{id}", Api, api_sources::get_inbound),
    r("POST", "/api/v1/inbound/{id}/recheck", Api, api_sources::recheck_inbound),
    r("GET", "/", Page, pages::dashboard::show),
    r("GET", "/endpoints", Page, pages::endpoints::list),
    r("GET", "/endpoints/new", Page, pages::endpoints::new),
    r("POST", "/endpoints/new", Page, pages::endpoints::create),
    r("GET", "/endpoints/{id}", Page, pages::endpoints::show),
    r("POST", "/endpoints/{id}", Page, pages::endpoints::update),
    r("POST", "/endpoints/{id}/enable", Page, pages::endpoints::enable),
    r("POST", "/endpoints/{id}/disable", Page, pages::endpoints::disable),
    r("GET", "/endpoints/{id}/delete", Page, pages::endpoints::confirm_delete),
    r("POST", "/endpoints/{id}/delete", Page, pages::endpoints::delete),
    r("POST", "/endpoints/{id}/rotate-secret", Page, pages::endpoints::rotate_secret),
    r("POST", "/endpoints/{id}/secret", Page, pages::endpoints::reveal_secret),
    r("POST", "/endpoints/{id}/test", Page, pages::endpoints::test),
    r("POST", "/endpoints/{id}/retry-dead", Page, pages::endpoints::retry_dead),
    r("POST", "/endpoints/{id}/replay", Page, pages::endpoints::replay),
    r("GET", "/deliveries", Page, pages::deliveries::list),
    r("GET", "/deliveries/{id}", Page, pages::deliveries::show),
    r("POST", "/deliveries/{id}/retry", Page, pages::deliveries::retry),
    r("POST", "/deliveries/{id}/discard", Page, pages::deliveries::discard),
    r("GET", "/sources", Page, pages::sources::list),
    r("GET", "/sources/new", Page, pages::sources::new),
    r("POST", "/sources/new", Page, pages::sources::create),
    r("GET", "/sources/{id}", Page, pages::sources::show),
    r("POST", "/sources/{id}/rotate-secret", Page, pages::sources::rotate_secret),
    r("POST", "/sources/{id}/forwards", Page, pages::sources::add_forward),
    r("POST", "/sources/{id}/public-keys", Page, pages::sources::add_public_key),
    r("POST", "/sources/{id}/enable", Page, pages::sources::enable),
    r("POST", "/sources/{id}/disable", Page, pages::sources::disable),
    r("GET", "/inbound/{id}", Page, pages::sources::show_request),
    r("POST", "/inbound/{id}/recheck", Page, pages::sources::recheck),
    r("GET", "/tokens", Page, pages::tokens::list),
    r("POST", "/tokens", Page, pages::tokens::create),
    r("POST", "/tokens/{id}/revoke", Page, pages::tokens::revoke),
    r("GET", "/docs/verify", Page, pages::verify::show),
    r("GET", "/login", Public, pages::signin::login),
    r("GET", "/login/check", Public, pages::signin::check),
    r("GET", "/login/continue", Public, pages::signin::continue_in_tab),
    r("POST", "/logout", Page, pages::signin::logout),
    r("GET", "/static/style.css", Public, pages::layout::stylesheet),
    r("GET", "/static/theme.css", Public, pages::layout::theme_stylesheet),
];

/// Matches `/endpoints/{id}` against `/endpoints/ep_123`, returning the parameters. Any
/// non-empty segment is a parameter, however long or odd: the handler checks it and answers as
/// its route documents (a user name of 101-128 characters, valid, was once "no API route").
pub fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let (p, a): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    if p.len() != a.len() {
        return None;
    }
    let mut params = Vec::new();
    for (ps, seg) in p.iter().zip(&a) {
        if ps.starts_with('{') {
            if seg.is_empty() {
                return None;
            }
            params.push(seg.to_string());
        } else if ps != seg {
            return None;
        }
    }
    Some(params)
}

pub fn handle(cfg: &Config, req: &Request) -> Response {
    crate::web::embed::apply(cfg, req, route(cfg, req))
}

fn route(cfg: &Config, req: &Request) -> Response {
    let path = if req.path.len() > 1 { req.path.trim_end_matches('/') } else { "/" };
    let is_api = path.starts_with("/api/");
    let candidates: Vec<(&Route, Vec<String>)> =
        ROUTES.iter().filter_map(|r| matches(r.path, path).map(|p| (r, p))).collect();
    let Some((route, params)) =
        candidates.iter().find(|(r, _)| r.method == req.method || (req.method == "HEAD" && r.method == "GET")).cloned()
    else {
        let e = if candidates.is_empty() {
            HttpError::not_found(if is_api {
                format!("no API route {path}")
            } else {
                "There is no page at this address.".into()
            })
        } else {
            let allow: Vec<&str> = candidates.iter().map(|(r, _)| r.method).collect();
            HttpError::method_not_allowed(&allow.join(", "))
        };
        if is_api {
            return Response::error(&e);
        }
        // A page that does not exist, for someone who may be signed in: keep the navigation.
        let mut ctx = Ctx::new(cfg, req, Vec::new(), auth::csrf_nonce(req));
        if let Some(master) = cfg.secret_key.as_ref() {
            ctx.viewer = ctx.page_viewer(master, time::now_ms() / 1000).unwrap_or(None);
        }
        ctx.set_csrf_cookie &= ctx.viewer.is_some();
        return with_csrf_cookie(page_error(&e, &ctx), &ctx);
    };
    // Only pages carry forms.
    let csrf = if route.kind == Kind::Page { auth::csrf_nonce(req) } else { (String::new(), false) };
    let mut ctx = Ctx::new(cfg, req, params, csrf);
    let result = authorize(&mut ctx, route.kind)
        .and_then(|()| (route.handler)(&mut ctx))
        // A success is answered only for data in the file the configured path names.
        .and_then(|r| if r.status < 400 { ctx.check_in_place().map(|()| r) } else { Ok(r) });
    let response = match (result, route.kind) {
        (Ok(r), _) => r,
        (Err(e), Kind::Page) => page_error(&e, &ctx),
        (Err(e), Kind::Public) if !is_api => page_error(&e, &ctx),
        (Err(e), _) => Response::error(&e),
    };
    if route.kind == Kind::Page {
        return with_csrf_cookie(response, &ctx);
    }
    response
}

/// Sets the browser's CSRF cookie when this request chose a new one for its forms.
fn with_csrf_cookie(mut response: Response, ctx: &Ctx<'_>) -> Response {
    if ctx.set_csrf_cookie {
        response.headers.push(("Set-Cookie".into(), ctx.cookie(auth::CSRF_COOKIE, &ctx.csrf_nonce, None)));
    }
    response
}

/// An error as an HTML page; a signed-in viewer keeps the navigation.
fn page_error(e: &HttpError, ctx: &Ctx<'_>) -> Response {
    let csrf = ctx.csrf();
    let viewer = ctx.viewer.as_ref().and_then(|v| {
        let user = v.principal.user()?;
        Some(views::SignedIn { user, admin: v.admin, csrf: &csrf })
    });
    let mut r = Response::html(
        e.status,
        views::error_page_for(e.status, &e.message, &ctx.req.script_name, viewer, &ctx.look()),
    );
    r.headers.extend(e.headers.iter().filter(|(k, _)| k != "WWW-Authenticate").cloned());
    r
}

/// Establishes who is asking, per the route's kind.
fn authorize(ctx: &mut Ctx<'_>, kind: Kind) -> Result<(), HttpError> {
    match kind {
        Kind::Public => Ok(()),
        Kind::Api => {
            let req = ctx.req;
            observations::observe_api_auth(ctx.db()?, req.header("authorization").is_some(), time::now_ms());
            let principal = authenticate(ctx.db()?, req)?;
            ctx.viewer = Some(Viewer::new(ctx.cfg, principal));
            Ok(())
        }
        Kind::Page => {
            let master = ctx.keyring()?.current;
            let now = time::now_ms() / 1000;
            ctx.viewer = ctx.page_viewer(&master, now)?;
            let Some(user) = ctx.viewer.as_ref().and_then(|v| v.principal.user()) else {
                return Err(not_signed_in(ctx));
            };
            if ctx.req.method == "POST" {
                let form = ctx.req.form();
                if !auth::check_csrf(&master, user, ctx.req, form.get("csrf")) {
                    return Err(HttpError::forbidden(
                        "The form has expired or did not come from this site. Go back, reload the page and try again.",
                    ));
                }
            }
            Ok(())
        }
    }
}

/// A page request from no one: says how to sign in, or, when a browser sent a password that the
/// web server did not check, that the server's configuration lets every request through. A
/// session cookie that was refused (expired, or signed with a rotated key) is cleared, so that
/// a server that asks for passwords when no session is offered asks again.
fn not_signed_in(ctx: &Ctx<'_>) -> HttpError {
    let req = ctx.req;
    let basic = req.header("authorization").and_then(|a| a.get(..6)).is_some_and(|s| s.eq_ignore_ascii_case("basic "));
    let mut e = if basic {
        HttpError::new(
            401,
            "unauthorized",
            "Your browser sent a user name and password, but the web server did not check them: \
             its .htaccess lets every request through to this program. To protect these pages \
             with a password, the operator installs .htaccess-password (docs/operator.md, \
             \"Signing in\"). Otherwise, open the webhooks page from your account in the application.",
        )
    } else {
        HttpError::new(
            401,
            "unauthorized",
            "You are not signed in. Open the webhooks page from your account in the application, or sign in through the web server.",
        )
    };
    if req.cookie(auth::SESSION_COOKIE).is_some() {
        e.headers.push(("Set-Cookie".into(), ctx.cookie(auth::SESSION_COOKIE, "", Some(0))));
    }
    e
}

/// The caller's token from `Authorization: Bearer …`.
fn authenticate(db: Db<'_>, req: &Request) -> Result<Principal, HttpError> {
    let Some(auth) = req.header("authorization") else {
        return Err(HttpError::unauthorized(
            "no Authorization header reached the server; send `Authorization: Bearer <token>`. \
             If you did send one, the web server is dropping it: add `CGIPassAuth On` to the .htaccess \
             of the cgi-bin directory (Apache 2.4.13+)",
        ));
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(|| HttpError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    principals::authenticate_token(db, token)?.ok_or_else(|| HttpError::unauthorized("the token is unknown or revoked"))
}

/// The argument with which `webhooks-cgi` runs as the after-intake dispatcher
/// (`WEBHOOKS_DISPATCH_ON_INTAKE`, started by `outbound::dispatch::start_detached`).
pub use crate::outbound::dispatch::ON_INTAKE_ARG;

/// `webhooks-cgi --dispatch-on-intake`: one lock-guarded dispatcher after an intake.
pub fn on_intake_main() -> i32 {
    let result = crate::config::Config::load()
        .map_err(|e| format!("{e:#}"))
        .and_then(|cfg| crate::outbound::dispatch::on_intake(&cfg).map_err(|e| e.to_string()));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("webhooks dispatch (on intake): {e}");
            1
        }
    }
}

/// The whole CGI program: read the request, handle it, write the response. A panic becomes a
/// clean 500 and one line on stderr (the server's error log).
pub fn main() -> i32 {
    let env = CgiEnv::from_process();
    let response = catching(&env, || respond(&env));
    match response.write_cgi(std::io::stdout().lock()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Runs a handler; a panic becomes a clean 500 (HTML for pages, JSON for the API) and one line
/// on stderr, which the web server writes to its error log.
pub fn catching(env: &CgiEnv, handler: impl FnOnce() -> Response) -> Response {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the one line below replaces the default report
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(handler));
    std::panic::set_hook(previous);
    match result {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let path = env.text("PATH_INFO");
            eprintln!(
                "webhooks-cgi: internal error (panic: {what}) handling {} {}",
                env.text("REQUEST_METHOD").escape_debug(),
                path.escape_debug()
            );
            let e = if path.starts_with("/api/") {
                HttpError::internal()
            } else {
                HttpError::new(
                    500,
                    "internal",
                    "Something went wrong on our side. It has been logged; please try again later.",
                )
            };
            early_error(env, &e)
        }
    }
}

/// An error answered before the router runs: JSON for the API, an HTML page for everything
/// else (a browser must never be shown a raw JSON error).
fn early_error(env: &CgiEnv, e: &HttpError) -> Response {
    let path = env.text("PATH_INFO");
    if crate::web::receiver::is_inbound(&path) {
        let body = serde_json::json!({"code": "E_INTERNAL", "message": e.message});
        return Response::json(e.status, &body);
    }
    if path.starts_with("/api/") {
        return Response::error(e);
    }
    let base = env.text("SCRIPT_NAME");
    let mut r = Response::html(e.status, crate::web::views::error_page(e.status, &e.message, &base));
    r.headers.extend(e.headers.iter().filter(|(k, _)| k != "WWW-Authenticate").cloned());
    r
}

fn respond(env: &CgiEnv) -> Response {
    let cfg = match crate::config::Config::load() {
        Ok(c) => c,
        Err(e) => {
            let path = env.text("PATH_INFO");
            if crate::web::receiver::is_inbound(&path) {
                return crate::web::receiver::failure(crate::model::Error::Misconfigured(format!("{e:#}")));
            }
            eprintln!("webhooks-cgi: configuration error: {e:#}");
            let message = if path.starts_with("/api/") {
                "the server's webhook configuration is invalid; the operator can see why in the error log"
            } else {
                "This service is not set up correctly yet. The site's operator can see why in the web server's error log."
            };
            return early_error(env, &HttpError::new(500, "misconfigured", message));
        }
    };
    answer(&cfg, env, std::io::stdin().lock())
}

/// The request entry point once the configuration is read: a CGI environment (any bytes) and
/// the body stream in, a response out. `/in/` goes to the inbound handler, everything else
/// through the route table.
pub fn answer(cfg: &Config, env: &CgiEnv, stdin: impl Read) -> Response {
    if crate::web::receiver::is_inbound(&env.text("PATH_INFO")) {
        return crate::web::receiver::respond(cfg, env, stdin);
    }
    match Request::from_cgi(env, stdin, cfg.max_body) {
        Ok(req) => handle(cfg, &req),
        Err(e) => early_error(env, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_segments() {
        assert_eq!(matches("/endpoints/{id}", "/endpoints/ep_1"), Some(vec!["ep_1".to_string()]));
        assert_eq!(matches("/endpoints/{id}", "/endpoints/"), None);
        assert_eq!(matches("/endpoints/{id}", "/endpoints/a/b"), None);
        assert_eq!(matches("/", "/"), Some(vec![]));
        let long = "u".repeat(300);
        assert_eq!(
            matches("/api/v1/users/{user}/sessions", &format!("/api/v1/users/{long}/sessions")),
            Some(vec![long])
        );
    }

    #[test]
    fn the_openapi_document_and_the_router_agree() {
        let doc: serde_json::Value = serde_json::from_str(crate::web::api::OPENAPI).expect("docs/openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, ops) in paths {
            for method in ops.as_object().unwrap().keys() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        let mut routed: Vec<String> =
            ROUTES.iter().filter(|r| r.path.starts_with("/api/")).map(|r| format!("{} {}", r.method, r.path)).collect();
        documented.sort();
        routed.sort();
        assert_eq!(routed, documented, "every API route documented, every documented path routed");
        // Every $ref resolves.
        let text = crate::web::api::OPENAPI;
        assert!(text.matches("\"$ref\": \"#/components/").count() > 20, "refs are found");
        for part in text.split("\"$ref\": \"#/components/").skip(1) {
            let target = &part[..part.find('"').unwrap()];
            let (kind, name) = target.split_once('/').unwrap();
            assert!(doc["components"][kind][name].is_object(), "dangling $ref {target}");
        }
    }

    #[test]
    fn every_route_is_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(!(a.method == b.method && a.path == b.path), "{} {} twice", a.method, a.path);
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> CgiEnv {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_panic_becomes_a_clean_500() {
        let page = catching(&env(&[("PATH_INFO", "/endpoints")]), || panic!("boom <script>"));
        assert_eq!(page.status, 500);
        let html = String::from_utf8(page.body).unwrap();
        assert!(html.contains("<h1>500 Internal Server Error</h1>") && !html.contains("boom"));
        let api = catching(&env(&[("PATH_INFO", "/api/v1/endpoints")]), || panic!("boom"));
        assert_eq!(api.status, 500);
        let v: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
        assert_eq!(v["error"]["code"], "internal");
    }
}
