//! Signing in with a login link from the host application, and signing out.

use super::layout::{context, render};
use crate::model::time;
use crate::web::auth;
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

/// `GET /login?user=…&expires=…&nonce=…&sig=…`: a link from the host application.
pub fn login(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let (cfg, keyring, req) = (ctx.cfg, ctx.keyring()?, ctx.req);
    let now = time::now_ms() / 1000;
    let (_, cookie) = auth::redeem(ctx.db()?, cfg, &keyring.current, req, now)?;
    let set = auth::cookie_header(req, auth::SESSION_COOKIE, &cookie, Some(cfg.session_ttl.as_secs() as i64));
    Ok(Response::redirect(&req.link("/")).with_header("Set-Cookie", &set))
}

/// `POST /logout`: ends the session server-side (the cookie no longer signs in, wherever a copy
/// of it is) and clears the cookie.
pub fn logout(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    if let Some(sid) = ctx.viewer().session.clone() {
        ctx.write(|db| crate::store::sessions::end(db, &sid, time::now_ms()))?;
    }
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
