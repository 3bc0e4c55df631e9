//! Signing in with a portal link from the host application, and signing out.
//!
//! A framed sign-in checks that the browser kept its session cookie (`/login/check`): a browser
//! that blocks third-party cookies keeps it out of the frame, and is then offered the same
//! session in a new tab (`/login/continue`, a single-use handoff), so the link still signs in.

use super::layout::{context, render};
use crate::model::{portal, time};
use crate::store::sessions;
use crate::web::auth;
use crate::web::cgi::{Request, Response};
use crate::web::context::Ctx;
use crate::web::embed;
use crate::web::error::HttpError;

/// The page a link lands on (`page=`, default the dashboard), checked to be one of ours.
fn landing(req: &Request) -> Result<String, HttpError> {
    let page = req.query("page").unwrap_or_else(|| "/".into());
    portal::check_page(&page).map_err(|form| HttpError::bad_request(format!("page must be {form}")))?;
    Ok(page)
}

/// `/login/check` and `/login/continue` with their handoff and landing page.
fn handoff_query(handoff: &str, page: &str, embed: bool) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("handoff", handoff).append_pair("page", page);
    if embed {
        q.append_pair("embed", "1");
    }
    q.finish()
}

/// `GET /login?user=…&expires=…&nonce=…&sig=…[&embed=1][&page=/…]`: a portal link.
pub fn login(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let (cfg, keyring, req) = (ctx.cfg, ctx.keyring()?, ctx.req);
    let page = landing(req)?;
    let now = time::now_ms() / 1000;
    let started = auth::redeem(ctx.db()?, cfg, &keyring.current, req, now)?;
    let set = ctx.cookie(auth::SESSION_COOKIE, &started.cookie, Some(cfg.session_ttl.as_secs() as i64));
    let to = if embed::cross_site(cfg, req) {
        let handoff = portal::handoff(&keyring.current, &started.sid, now);
        format!("/login/check?{}", handoff_query(&handoff, &page, true))
    } else {
        page
    };
    Ok(Response::redirect(&req.link(&to)).with_header("Set-Cookie", &set))
}

/// The session a handoff names, or why not.
fn handed_off(ctx: &Ctx<'_>, master: &[u8; 32], now: i64) -> Result<String, HttpError> {
    let token = ctx.req.query("handoff").unwrap_or_default();
    portal::check_handoff(master, &token, now).ok_or_else(|| {
        HttpError::forbidden("this sign-in has expired: open the webhooks page from the application again")
    })
}

/// `GET /login/check?handoff=…&page=…`: after a framed sign-in, whether the browser sent the
/// session cookie back. If so, on to the page; if not, the frame offers the session in a new tab.
pub fn check(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let master = ctx.keyring()?.current;
    let page = landing(ctx.req)?;
    let now = time::now_ms() / 1000;
    let sid = handed_off(ctx, &master, now)?;
    let kept = ctx
        .req
        .cookie(auth::SESSION_COOKIE)
        .and_then(|c| auth::session_user(&master, &c, now))
        .is_some_and(|(_, s)| s == sid);
    if kept {
        return Ok(Response::redirect(&ctx.req.link(&page)));
    }
    let handoff = ctx.req.query("handoff").unwrap_or_default();
    let mut c = context(ctx, "Open in a new tab", "");
    c.insert("continue_url", &ctx.req.link(&format!("/login/continue?{}", handoff_query(&handoff, &page, false))));
    render(200, "cookies_blocked.html", &c)
}

/// `GET /login/continue?handoff=…&page=…`, opened in a tab of its own: the framed sign-in's
/// session, with a first-party cookie. Once, within `portal::HANDOFF_TTL_S`.
pub fn continue_in_tab(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let master = ctx.keyring()?.current;
    let page = landing(ctx.req)?;
    let now = time::now_ms() / 1000;
    let sid = handed_off(ctx, &master, now)?;
    let once_key = format!("handoff:{sid}");
    let expires_ms = (now + portal::HANDOFF_TTL_S) * 1000;
    let session = ctx.write(|db| {
        if !sessions::use_login_nonce(db, &once_key, expires_ms)? {
            return Ok(None);
        }
        sessions::live(db, &sid, now * 1000)
    })?;
    let Some((user, expires_at_ms)) = session else {
        return Err(HttpError::forbidden(
            "this sign-in was already used or has ended: open the webhooks page from the application again",
        ));
    };
    let cookie = auth::session_cookie(&master, &user, expires_at_ms / 1000, &sid);
    let set = ctx.cookie(auth::SESSION_COOKIE, &cookie, Some(expires_at_ms / 1000 - now));
    Ok(Response::redirect(&ctx.req.link(&page)).with_header("Set-Cookie", &set))
}

/// `POST /logout`: ends the session server-side (the cookie no longer signs in, wherever a copy
/// of it is) and clears the cookie.
pub fn logout(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    if let Some(sid) = ctx.viewer().session.clone() {
        ctx.write(|db| crate::store::sessions::end(db, &sid, time::now_ms()))?;
    }
    let by_server = ctx.req.remote_user.is_some();
    let clear = ctx.cookie(auth::SESSION_COOKIE, "", Some(0));
    let mut c = context(ctx, "Signed out", "");
    c.insert("viewer", &None::<String>);
    c.insert("message", if by_server {
        "Your session cookie is cleared, but you signed in through the web server: close the browser to sign out there."
    } else {
        "You are signed out. Open the webhooks page from the application to sign in again."
    });
    Ok(render(200, "signed_out.html", &c)?.with_header("Set-Cookie", &clear))
}
