//! Signing in to the pages: a session started by a signed, expiring, single-use login link
//! issued by the host application (or the web server's `REMOTE_USER`, see
//! `Ctx::page_viewer`), its cookie, and CSRF tokens for every form.
//!
//! Every MAC here is HMAC-SHA256 under a key derived from `WEBHOOKS_SECRET_KEY` for its purpose
//! (`model::token`), so a login-link signature can never be replayed as a session or a CSRF
//! token.

use crate::config::Config;
use crate::model::token::{issued_ms, random_token, sign, verify};
use crate::store::{sessions, Db};
use crate::web::cgi::Request;
use crate::web::error::HttpError;

pub const SESSION_COOKIE: &str = "qsm_session";
pub const CSRF_COOKIE: &str = "qsm_csrf";
/// Set for a few minutes after a page creates an endpoint, naming it: the page it redirects to
/// shows that endpoint's new secret once, and clears it (Post/Redirect/Get).
pub const NEW_SECRET_COOKIE: &str = "qsm_new_secret";

/// A session that sign-in started.
#[derive(Debug)]
pub struct Started {
    pub user: String,
    pub sid: String,
    /// The session cookie's value.
    pub cookie: String,
}

/// Redeems a login link: checks signature, expiry and that it was not used before; starts the
/// session.
pub fn redeem(db: Db<'_>, cfg: &Config, master: &[u8; 32], req: &Request, now_s: i64) -> Result<Started, HttpError> {
    let get = |k: &str| req.query(k).unwrap_or_default();
    let (user, expires, nonce, sig) = (get("user"), get("expires"), get("nonce"), get("sig"));
    if !verify(master, "login-link", &[&user, &expires, &nonce], &sig) {
        return Err(HttpError::forbidden("this sign-in link is not valid: ask the application for a new one"));
    }
    let exp: i64 = expires.parse().unwrap_or(0);
    if exp < now_s {
        return Err(HttpError::forbidden("this sign-in link has expired: ask the application for a new one"));
    }
    if exp - now_s > cfg.login_link_ttl.as_secs() as i64 + 60 {
        return Err(HttpError::forbidden(
            "this sign-in link is valid for longer than WEBHOOKS_LOGIN_LINK_TTL allows: issue links that expire sooner",
        ));
    }
    let issued = issued_ms(&nonce, exp, cfg.login_link_ttl);
    if sessions::revoked_at(db, &user)?.is_some_and(|revoked| issued <= revoked) {
        return Err(HttpError::forbidden(
            "this sign-in link was issued before the user's sessions were revoked: ask the application for a new one",
        ));
    }
    if !sessions::use_login_nonce(db, &nonce, exp * 1000)? {
        return Err(HttpError::forbidden("this sign-in link was already used: ask the application for a new one"));
    }
    let expires_s = now_s + cfg.session_ttl.as_secs() as i64;
    let sid = random_token();
    sessions::start(db, &sid, &user, now_s * 1000, expires_s * 1000)?;
    let cookie = session_cookie(master, &user, expires_s, &sid);
    Ok(Started { user, sid, cookie })
}

/// A session cookie's value: `{user}.{expires}.{sid}.{sig}`.
pub fn session_cookie(master: &[u8; 32], user: &str, expires_s: i64, sid: &str) -> String {
    let expires = expires_s.to_string();
    format!("{user}.{expires}.{sid}.{}", sign(master, "session", &[user, &expires, sid]))
}

/// The user and session id of a session cookie whose signature and expiry are valid (whether
/// the session is still live is the store's: [`Ctx::page_viewer`]).
pub fn session_user(master: &[u8; 32], cookie: &str, now_s: i64) -> Option<(String, String)> {
    let mut parts = cookie.rsplitn(4, '.');
    let (sig, sid, expires, user) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = verify(master, "session", &[user, expires, sid], sig) && expires.parse::<i64>().ok()? >= now_s;
    valid.then(|| (user.to_string(), sid.to_string()))
}

/// The browser's CSRF nonce: the cookie's value, or a new one to set.
pub fn csrf_nonce(req: &Request) -> (String, bool) {
    match req.cookie(CSRF_COOKIE).filter(|c| c.len() >= 16 && c.len() <= 64) {
        Some(c) => (c, false),
        None => (random_token(), true),
    }
}

/// The form token for this user in this browser.
pub fn csrf_token(master: &[u8; 32], user: &str, nonce: &str) -> String {
    sign(master, "csrf", &[user, nonce])
}

/// A POST's CSRF check: the form's `csrf` field must match the browser's cookie and the user.
pub fn check_csrf(master: &[u8; 32], user: &str, req: &Request, form_token: Option<&str>) -> bool {
    match (req.cookie(CSRF_COOKIE), form_token) {
        (Some(nonce), Some(token)) => verify(master, "csrf", &[user, &nonce], token),
        _ => false,
    }
}

/// `Set-Cookie` value: HttpOnly, SameSite=Lax, Secure under HTTPS, scoped to the script. A
/// `cross_site` cookie (pages framed by another site, `embed::cross_site`) is
/// `SameSite=None; Secure; Partitioned`: sent inside the frame, kept apart from every other
/// site's frames, and dropped by browsers over plain HTTP (except on `localhost`).
pub fn cookie_header(req: &Request, name: &str, value: &str, max_age: Option<i64>, cross_site: bool) -> String {
    let path = if req.script_name.is_empty() { "/".to_string() } else { req.script_name.clone() };
    let same_site = if cross_site { "None" } else { "Lax" };
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if req.https || cross_site {
        c.push_str("; Secure");
    }
    if cross_site {
        c.push_str("; Partitioned");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::principal::Principal;
    use crate::model::token::login_query;
    use crate::web::context::Viewer;
    use std::collections::BTreeMap;

    fn cfg() -> Config {
        let mut raw = BTreeMap::new();
        raw.insert("WEBHOOKS_ADMINS".to_string(), "root".to_string());
        Config::from_raw(&raw, None, ".".into()).unwrap()
    }

    fn req(query: &str) -> Request {
        Request { query: query.to_string(), ..Request::default() }
    }

    #[test]
    fn login_links_work_once_until_they_expire() {
        let store = crate::store::Store::memory();
        let conn = store.db();
        let (c, master) = (cfg(), [3u8; 32]);
        let q = login_query(&master, "alice", 1_000_000, c.login_link_ttl);
        let Started { user, cookie, sid } = redeem(conn, &c, &master, &req(&q), 1000).unwrap();
        assert_eq!(user, "alice");
        assert_eq!(session_user(&master, &cookie, 1000).map(|(_, s)| s), Some(sid));
        assert_eq!(session_user(&master, &cookie, 1000).map(|(u, _)| u).as_deref(), Some("alice"));
        assert_eq!(redeem(conn, &c, &master, &req(&q), 1000).unwrap_err().status, 403, "replay");
        let q2 = login_query(&master, "alice", 1_000_000, c.login_link_ttl);
        assert!(redeem(conn, &c, &master, &req(&q2), 1000 + 901).is_err(), "expired");
        let long = {
            let mut c2 = c.clone();
            c2.login_link_ttl = std::time::Duration::from_secs(86_400);
            login_query(&master, "alice", 1_000_000, c2.login_link_ttl)
        };
        assert!(redeem(conn, &c, &master, &req(&long), 1000).is_err(), "longer than the TTL allows");
        let forged = q2.replace("user=alice", "user=root");
        assert!(redeem(conn, &c, &master, &req(&forged), 1000).is_err(), "signature covers the user");
        assert!(session_user(&[4u8; 32], &cookie, 1000).is_none(), "other key");
        assert!(session_user(&master, &cookie, 1000 + 12 * 3600 + 1).is_none(), "session expired");
        assert!(session_user(&master, &cookie.replace("alice", "root"), 1000).is_none());
    }

    #[test]
    fn csrf_tokens_bind_user_and_browser() {
        let master = [5u8; 32];
        let t = csrf_token(&master, "alice", "nonce-aaaaaaaaaaaa");
        let r = Request {
            headers: vec![("cookie".into(), format!("{CSRF_COOKIE}=nonce-aaaaaaaaaaaa"))],
            ..Request::default()
        };
        assert!(check_csrf(&master, "alice", &r, Some(&t)));
        assert!(!check_csrf(&master, "bob", &r, Some(&t)));
        assert!(!check_csrf(&master, "alice", &r, Some("x")));
        assert!(!check_csrf(&master, "alice", &Request::default(), Some(&t)), "no cookie");
    }

    #[test]
    fn admins_see_everyone() {
        let c = cfg();
        assert_eq!(Viewer::user(&c, "root").scope(), None);
        assert_eq!(Viewer::user(&c, "alice").scope(), Some("alice"));
        assert_eq!(Viewer::new(&c, Principal::App).scope(), None, "the application sees everyone");
    }
}
