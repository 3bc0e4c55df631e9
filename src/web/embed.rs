//! Pages inside the host application's own page: which sites may frame them
//! (`WEBHOOKS_EMBED_ORIGINS`, CSP `frame-ancestors`), the framed look without the product's
//! header (`?embed=1`), the host's stylesheet (`WEBHOOKS_THEME_CSS`), and cookies a frame on
//! another site can keep (`SameSite=None; Secure; Partitioned`).
//!
//! A framed page's links and redirects do not carry `?embed=1`: the first framed request sets
//! the `qsm_embed` cookie (partitioned: it exists only inside that host's frames), and a later
//! request is framed when it has the cookie and the browser does not say it is a top-level
//! page (`Sec-Fetch-Dest: document`), so the same user opening the pages in a tab sees them whole.

use crate::config::Config;
use crate::web::cgi::{Request, Response, DEFAULT_CSP};

pub const EMBED_COOKIE: &str = "qsm_embed";

/// Whether the browser says this request is a top-level page (absent: it does not say).
fn top_level(req: &Request) -> bool {
    req.header("sec-fetch-dest") == Some("document")
}

/// Whether this request is for a page without the product's header: `?embed=1`, or the embed
/// cookie on a request that is not a top-level page. `?embed=0` turns it off.
pub fn framed(req: &Request) -> bool {
    match req.query("embed").as_deref() {
        Some("1") => true,
        Some(_) => false,
        None => req.cookie(EMBED_COOKIE).as_deref() == Some("1") && !top_level(req),
    }
}

/// Whether this request's cookies must work inside another site's frame: embedding is
/// configured and the request is framed (or the browser says it comes from a frame).
pub fn cross_site(cfg: &Config, req: &Request) -> bool {
    !cfg.embed_origins.is_empty() && (framed(req) || req.header("sec-fetch-dest") == Some("iframe"))
}

/// The Content-Security-Policy with the configured `frame-ancestors` (`'none'` without any).
pub fn content_security_policy(origins: &[String]) -> String {
    if origins.is_empty() {
        return DEFAULT_CSP.to_string();
    }
    DEFAULT_CSP.replace("frame-ancestors 'none'", &format!("frame-ancestors {}", origins.join(" ")))
}

/// What every response of an installation that allows framing gets: its frame policy, and the
/// embed cookie set or cleared as `?embed=` asks (a framed session lasts as long as the frame).
pub fn apply(cfg: &Config, req: &Request, mut response: Response) -> Response {
    if cfg.embed_origins.is_empty() {
        return response;
    }
    response.headers.push(("Content-Security-Policy".into(), content_security_policy(&cfg.embed_origins)));
    let has = req.cookie(EMBED_COOKIE).is_some();
    match req.query("embed").as_deref() {
        Some("1") if !has => response
            .headers
            .push(("Set-Cookie".into(), crate::web::auth::cookie_header(req, EMBED_COOKIE, "1", None, true))),
        Some(v) if v != "1" && has => response
            .headers
            .push(("Set-Cookie".into(), crate::web::auth::cookie_header(req, EMBED_COOKIE, "", Some(0), true))),
        _ => {}
    }
    response
}

/// The theme stylesheet's version for its URL (its modification time), so that a browser
/// fetches it again when the host changes it; `None` when none is configured or it cannot be
/// read (the pages then go without it, and `webhooks doctor` says why).
pub fn theme_version(cfg: &Config) -> Option<String> {
    let meta = std::fs::metadata(cfg.theme_css.as_ref()?).ok()?;
    let modified = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(format!("{}-{}", modified.as_secs(), meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_origins_or_none() {
        assert!(content_security_policy(&[]).contains("frame-ancestors 'none';"));
        let p = content_security_policy(&["https://shop.example".into(), "http://localhost:8081".into()]);
        assert!(p.contains("frame-ancestors https://shop.example http://localhost:8081;"), "{p}");
    }
}
