//! Portal links: what the host application hands one of its users so that they open these
//! pages signed in as themselves, in a new tab or inside the application's own page (a frame).
//! A link is a login link (`token::login_query`: signed, expiring, single-use) with two
//! unsigned presentation choices: `embed=1` (framed pages) and `page` (where it lands). Neither
//! widens what the link may do: the user is signed, the landing page is one of ours.
//!
//! Inside a frame, a browser that blocks third-party cookies keeps the session cookie out. The
//! sign-in then hands the session over to a new tab: a short-lived, single-use *handoff* token
//! naming the session, which a first-party request redeems for the same session's cookie.

use std::time::Duration;

use super::token::{login_query, sign, verify};

/// The shortest link: long enough for a page to load and the user to click.
pub const MIN_TTL: Duration = Duration::from_secs(10);
/// How long a framed sign-in's handoff to a new tab stays valid.
pub const HANDOFF_TTL_S: i64 = 300;

/// A portal link's query string (after `/login?`), when it expires (Unix seconds) and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub query: String,
    pub expires_at: i64,
    pub ttl_seconds: u64,
}

impl Link {
    /// What the API and `webhooks portal-link --json` answer: `{"url", "user", "expires_at",
    /// "ttl_seconds"}`, the URL below `base` (the CGI's public address).
    pub fn answer(&self, base: &str, user: &str) -> serde_json::Value {
        serde_json::json!({
            "url": format!("{}/login?{}", base.trim_end_matches('/'), self.query),
            "user": user,
            "expires_at": super::time::rfc3339(self.expires_at * 1000),
            "ttl_seconds": self.ttl_seconds,
        })
    }
}

/// The link's lifetime: `requested`, else `max` (`WEBHOOKS_LOGIN_LINK_TTL`), which it may only
/// shorten. The error names the bound.
pub fn ttl(requested: Option<Duration>, max: Duration) -> Result<Duration, String> {
    let t = requested.unwrap_or(max);
    if t < MIN_TTL {
        return Err(format!("must be at least {} seconds", MIN_TTL.as_secs()));
    }
    if t > max {
        return Err(format!(
            "must be at most WEBHOOKS_LOGIN_LINK_TTL ({} seconds): the sign-in refuses longer links",
            max.as_secs()
        ));
    }
    Ok(t)
}

/// A landing page: a path of these pages (`/endpoints`, `/deliveries?status=dead`), never
/// another site (`//host`), a sign-in page or the API.
pub fn check_page(page: &str) -> Result<(), String> {
    let path = page.split('?').next().unwrap_or("");
    let ok = page.len() <= 200
        && page.starts_with('/')
        && !page.starts_with("//")
        && page.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_-.?=&%".contains(&b))
        && !path.split('/').any(|seg| seg == "..")
        && !["/login", "/logout", "/api/", "/in/", "/static/"].iter().any(|p| path.starts_with(p));
    if ok {
        Ok(())
    } else {
        Err("a path of the pages such as /endpoints or /deliveries?status=dead".into())
    }
}

/// A portal link for `user`, valid for `ttl` from `now_ms`.
pub fn link(master: &[u8; 32], user: &str, now_ms: i64, ttl: Duration, embed: bool, page: Option<&str>) -> Link {
    let mut query = login_query(master, user, now_ms, ttl);
    let mut extra = url::form_urlencoded::Serializer::new(String::new());
    if embed {
        extra.append_pair("embed", "1");
    }
    if let Some(p) = page {
        extra.append_pair("page", p);
    }
    let extra = extra.finish();
    if !extra.is_empty() {
        query.push('&');
        query.push_str(&extra);
    }
    Link { query, expires_at: now_ms / 1000 + ttl.as_secs() as i64, ttl_seconds: ttl.as_secs() }
}

/// A handoff token for session `sid`: `{sid}.{expires}.{sig}`.
pub fn handoff(master: &[u8; 32], sid: &str, now_s: i64) -> String {
    let expires = (now_s + HANDOFF_TTL_S).to_string();
    format!("{sid}.{expires}.{}", sign(master, "handoff", &[sid, &expires]))
}

/// The session a handoff token names, when its signature holds and it has not expired.
pub fn check_handoff(master: &[u8; 32], token: &str, now_s: i64) -> Option<String> {
    let mut parts = token.rsplitn(3, '.');
    let (sig, expires, sid) = (parts.next()?, parts.next()?, parts.next()?);
    let live = expires.parse::<i64>().ok()? >= now_s;
    (live && verify(master, "handoff", &[sid, expires], sig)).then(|| sid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: [u8; 32] = [7; 32];

    #[test]
    fn a_link_may_only_be_shorter_than_the_configured_ttl() {
        let max = Duration::from_secs(900);
        assert_eq!(ttl(None, max), Ok(max));
        assert_eq!(ttl(Some(Duration::from_secs(60)), max), Ok(Duration::from_secs(60)));
        assert!(ttl(Some(Duration::from_secs(901)), max)
            .unwrap_err()
            .contains("WEBHOOKS_LOGIN_LINK_TTL (900 seconds)"));
        assert!(ttl(Some(Duration::from_secs(9)), max).unwrap_err().contains("at least 10"));
    }

    #[test]
    fn landing_pages_are_our_own_paths_only() {
        for ok in ["/", "/endpoints", "/deliveries?status=dead&endpoint=ep_1", "/endpoints/ep_x"] {
            assert_eq!(check_page(ok), Ok(()), "{ok}");
        }
        for bad in [
            "endpoints",
            "//evil.example/",
            "https://evil.example/",
            "/login?user=x",
            "/logout",
            "/api/v1/endpoints",
            "/static/../login",
            "/x\"><script>",
            "/a b",
            "/in/tok",
        ] {
            assert!(check_page(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_link_carries_its_presentation_after_the_signed_part() {
        let l = link(&M, "alice", 1_000_500, Duration::from_secs(60), true, Some("/deliveries?status=dead"));
        assert_eq!(l.expires_at, 1060);
        assert!(l.query.starts_with("user=alice&expires=1060&nonce=1000500."), "{}", l.query);
        assert!(l.query.ends_with("&embed=1&page=%2Fdeliveries%3Fstatus%3Ddead"), "{}", l.query);
        let plain = link(&M, "alice", 1_000_000, Duration::from_secs(60), false, None);
        assert!(!plain.query.contains("embed") && !plain.query.contains("page"), "{}", plain.query);
    }

    #[test]
    fn a_handoff_names_its_session_until_it_expires_and_cannot_be_forged() {
        let t = handoff(&M, "sid_abc", 1000);
        assert_eq!(check_handoff(&M, &t, 1000 + HANDOFF_TTL_S), Some("sid_abc".into()));
        assert_eq!(check_handoff(&M, &t, 1001 + HANDOFF_TTL_S), None);
        assert_eq!(check_handoff(&[8; 32], &t, 1000), None);
        let forged = t.replacen("sid_abc", "sid_abd", 1);
        assert_eq!(check_handoff(&M, &forged, 1000), None);
        assert_eq!(check_handoff(&M, "garbage", 1000), None);
    }
}
