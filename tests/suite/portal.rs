//! Portal links (`webhooks portal-link`, `POST /api/v1/portal-links`) and framed pages
//! (`WEBHOOKS_EMBED_ORIGINS`, `?embed=1`, `WEBHOOKS_THEME_CSS`): what the host application
//! gives its users, through the CGI as a browser reaches it.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const SCRIPT: &str = "/cgi-bin/webhooks.cgi";

/// The path below the script of a link the API or the CLI printed.
fn below_script(url: &str) -> String {
    let at = url.find("/login?").unwrap_or_else(|| panic!("no /login? in {url}"));
    url[at..].to_string()
}

fn mint(env: &Env, token: &str, body: Value) -> CgiResponse {
    api(env, token, "POST", "/api/v1/portal-links", Some(&body.to_string()))
}

fn location(r: &CgiResponse) -> String {
    r.header("Location").unwrap_or_else(|| panic!("no Location: {} {}", r.status, r.text())).to_string()
}

/// A browser signed in as `user` by a fresh link.
fn signed_in<'a>(env: &'a Env, user: &str) -> Browser<'a> {
    let link = env.json(&["portal-link", "--user", user])["url"].as_str().unwrap().to_string();
    let mut b = Browser::new(env, None);
    assert_eq!(b.get(&below_script(&link)).status, 303);
    b
}

#[test]
fn a_portal_link_opens_the_pages_once_on_its_page_and_expires_when_it_says() {
    let env = Env::new();
    env.endpoint("alice", "https://example.com/alice-hook", "");
    let before = webhooks::model::time::now_ms() / 1000;
    let r = mint(&env, &env.app_token(), json!({"user": "alice", "ttl": "2m", "page": "/deliveries?status=dead"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with("https://webhooks.example/cgi-bin/webhooks.cgi/login?user=alice&"), "{url}");
    assert_eq!((v["user"].as_str(), v["ttl_seconds"].as_i64()), (Some("alice"), Some(120)));
    let expires = webhooks::model::time::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap() / 1000;
    assert!((before + 120..=before + 122).contains(&expires), "{expires} against {before}");

    let mut b = Browser::new(&env, None);
    let first = b.get(&below_script(url));
    assert_eq!((first.status, location(&first)), (303, format!("{SCRIPT}/deliveries?status=dead")));
    assert!(b.get("/endpoints").text().contains("https://example.com/alice-hook"), "signed in as alice");
    // Used once: the same link again, in another browser, is refused.
    let again = Browser::new(&env, None).get(&below_script(url));
    assert_eq!(again.status, 403);
    assert!(again.text().contains("already used"), "{}", again.text());

    // The CLI mints the same kind, with its own lifetime and page.
    let out = env.json(&["portal-link", "--user", "alice", "--ttl", "30s", "--page", "/endpoints"]);
    assert_eq!(out["ttl_seconds"], 30);
    let r = Browser::new(&env, None).get(&below_script(out["url"].as_str().unwrap()));
    assert_eq!((r.status, location(&r)), (303, format!("{SCRIPT}/endpoints")));

    // A link whose time is up: signed correctly, expired five minutes ago.
    let key: [u8; 32] = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(MASTER_KEY).unwrap().try_into().unwrap()
    };
    let now_ms = webhooks::model::time::now_ms();
    let old = webhooks::model::token::login_query(&key, "alice", now_ms - 20 * 60_000, Duration::from_secs(15 * 60));
    let r = Browser::new(&env, None).get(&format!("/login?{old}"));
    assert_eq!(r.status, 403);
    assert!(r.text().contains("expired"), "{}", r.text());
    let fresh = webhooks::model::token::login_query(&key, "alice", now_ms, Duration::from_secs(60));
    assert_eq!(Browser::new(&env, None).get(&format!("/login?{fresh}")).status, 303, "the same key, in time");
}

#[test]
fn links_are_minted_only_as_far_as_the_caller_may_and_only_for_our_pages() {
    let env = Env::new();
    let app = env.app_token();
    let bob = env.user_token("bob");
    // A user token mints for itself only.
    assert_eq!(mint(&env, &bob, json!({})).json()["user"], "bob");
    let r = mint(&env, &bob, json!({"user": "alice"}));
    assert_eq!(r.status, 403, "{}", r.text());
    // Bad fields: one 422 naming each, and nothing minted.
    let r = mint(&env, &app, json!({"user": "alice", "ttl": "1h", "page": "//evil.example/", "embed": "yes"}));
    assert_eq!(r.status, 422, "{}", r.text());
    let paths: Vec<String> =
        r.json()["error"]["details"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap().into()).collect();
    assert_eq!(paths, ["$.ttl", "$.embed", "$.page"], "{}", r.text());
    assert!(r.text().contains("WEBHOOKS_LOGIN_LINK_TTL (900 seconds)"), "{}", r.text());
    assert_eq!(mint(&env, &app, json!({"ttl": 60})).status, 422, "the app token names the user");
    assert_eq!(mint(&env, &app, json!({"user": "alice", "ttl": 5})).status, 422, "shorter than 10 s");
    // The CLI says the same in one line naming the flag.
    for (args, says) in [
        (vec!["--ttl", "1h"], "--ttl must be at most WEBHOOKS_LOGIN_LINK_TTL"),
        (vec!["--ttl", "soon"], "--ttl \"soon\" must be a duration"),
        (vec!["--page", "https://evil.example/"], "--page \"https://evil.example/\" must be a path of the pages"),
    ] {
        let mut all = vec!["portal-link", "--user", "alice"];
        all.extend(args);
        let out = env.run(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{all:?}: {err}");
    }
    // A landing page that is not ours is refused at sign-in too, before the link is used up.
    let link = below_script(env.json(&["portal-link", "--user", "alice"])["url"].as_str().unwrap());
    let r = Browser::new(&env, None).get(&format!("{link}&page=//evil.example/"));
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(Browser::new(&env, None).get(&link).status, 303, "still unused");
}

#[test]
fn revoking_ends_the_sessions_and_refuses_the_links_issued_before() {
    let env = Env::new();
    let mut session = signed_in(&env, "alice");
    assert_eq!(session.get("/endpoints").status, 200);
    let unopened = below_script(env.json(&["portal-link", "--user", "alice"])["url"].as_str().unwrap());
    let bobs = below_script(env.json(&["portal-link", "--user", "bob"])["url"].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(5));
    let r = api(&env, &env.app_token(), "DELETE", "/api/v1/users/alice/sessions", None);
    assert_eq!((r.status, r.json()["revoked"].as_i64()), (200, Some(1)), "{}", r.text());
    assert_eq!(session.get("/endpoints").status, 401, "the session is over");
    let r = Browser::new(&env, None).get(&unopened);
    assert_eq!(r.status, 403, "a link issued before the revocation");
    assert!(r.text().contains("issued before the user&#x27;s sessions were revoked"), "{}", r.text());
    assert_eq!(Browser::new(&env, None).get(&bobs).status, 303, "another user's link is untouched");
    let mut again = signed_in(&env, "alice");
    assert_eq!(again.get("/endpoints").status, 200, "a link issued after signs in");
}

#[test]
fn a_portal_session_never_reaches_another_users_data() {
    let env = Env::new();
    let (bob_ep, _) = env.endpoint("bob", "https://example.com/bob-secret-hook", "");
    env.emit("bob", "email.received", r#"{"alias":"a","message_id":"m","size_bytes":3}"#);
    let bob_delivery =
        env.deliveries().iter().find(|d| d["user"] == "bob").unwrap()["id"].as_str().unwrap().to_string();
    let bob_token = env.json(&["token", "create", "--user", "bob"])["id"].as_str().unwrap().to_string();
    let source = env.json(&[
        "source",
        "add",
        "--name",
        "shop",
        "--provider",
        "woocommerce",
        "--secret",
        "s3cret-value",
        "--forward-url",
        "https://example.com/orders",
    ]);
    let source_id = source["id"].as_str().unwrap().to_string();

    let mut alice = signed_in(&env, "alice");
    for page in ["/endpoints", "/deliveries", "/", "/tokens"] {
        let r = alice.get(page);
        assert_eq!(r.status, 200, "{page}");
        let html = r.text();
        assert!(!html.contains("bob-secret-hook") && !html.contains(&bob_delivery), "{page} shows bob's data");
    }
    for page in [
        format!("/endpoints/{bob_ep}"),
        format!("/deliveries/{bob_delivery}"),
        format!("/deliveries?endpoint={bob_ep}"),
    ] {
        let r = alice.get(&page);
        assert!(!r.text().contains("bob-secret-hook"), "{page}");
        assert!(r.status == 404 || (r.status == 200 && page.contains('?')), "{page}: {}", r.status);
    }
    for page in ["/sources".to_string(), format!("/sources/{source_id}")] {
        let r = alice.get(&page);
        assert!(matches!(r.status, 403 | 404), "{page}: {}", r.status);
        assert!(!r.text().contains("s3cret-value") && !r.text().contains("example.com/orders"), "{page}");
    }
    // Forms on another user's ids change nothing.
    alice.get("/endpoints");
    for (path, fields) in [
        (format!("/endpoints/{bob_ep}/disable"), vec![]),
        (format!("/endpoints/{bob_ep}/delete"), vec![]),
        (format!("/endpoints/{bob_ep}/rotate-secret"), vec![("grace", "0")]),
        (format!("/deliveries/{bob_delivery}/retry"), vec![]),
        (format!("/tokens/{bob_token}/revoke"), vec![]),
        (format!("/sources/{source_id}/disable"), vec![]),
    ] {
        let r = alice.post(&path, &fields);
        assert!(matches!(r.status, 403 | 404), "{path}: {} {}", r.status, r.text());
    }
    let ep = env.json(&["endpoint", "show", &bob_ep]);
    assert_eq!((ep["active"].as_bool(), ep["url"].as_str()), (Some(true), Some("https://example.com/bob-secret-hook")));
    let tokens = env.json(&["token", "list"]);
    assert!(
        tokens.as_array().unwrap().iter().any(|t| t["id"] == bob_token.as_str() && t["revoked"] == false),
        "{tokens}"
    );
    assert_eq!(env.json(&["source", "show", "shop"])["active"], true);
}

#[test]
fn framed_pages_drop_the_header_and_only_listed_origins_may_frame_them() {
    let mut env = Env::new();
    // Without WEBHOOKS_EMBED_ORIGINS no site may frame the pages, embed=1 or not.
    let mut b = Browser::new(&env, Some("alice"));
    let r = b.get("/?embed=1");
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("<header class=\"top\">") && r.text().contains("<body class=\"embed\">"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert!(r.header("Content-Security-Policy").unwrap().contains("frame-ancestors 'none'"));
    assert!(b.get("/").text().contains("<header class=\"top\">"), "whole without embed=1");

    env.set("WEBHOOKS_EMBED_ORIGINS", "https://shop.example, http://localhost:9");
    let mut b = Browser::new(&env, Some("alice"));
    let r = b.get("/endpoints?embed=1");
    let csp = r.header("Content-Security-Policy").unwrap().to_string();
    assert!(csp.contains("frame-ancestors https://shop.example http://localhost:9;"), "{csp}");
    assert_eq!(r.header("X-Frame-Options"), None, "DENY would refuse the allowed origins too");
    let cookies = b.set_cookies.join("\n");
    for c in ["qsm_embed=1;", "qsm_csrf="] {
        let line = b.set_cookies.iter().find(|l| l.starts_with(c)).unwrap_or_else(|| panic!("{c} in {cookies}"));
        assert!(works_in_a_frame(line), "{line}");
    }
    // The frame's next pages stay framed without embed=1; the same browser's own tab does not.
    b.headers = vec![("Sec-Fetch-Dest".into(), "iframe".into())];
    assert!(!b.get("/deliveries").text().contains("<header class=\"top\">"), "inside the frame");
    b.headers = vec![("Sec-Fetch-Dest".into(), "document".into())];
    assert!(b.get("/deliveries").text().contains("<header class=\"top\">"), "a tab of its own");
    assert!(b.get("/deliveries?embed=0").set_cookies_cleared("qsm_embed"));
    // Every response carries the policy, the API's and errors' too.
    let r = api(&env, &env.app_token(), "GET", "/api/v1/endpoints", None);
    assert!(r.header("Content-Security-Policy").unwrap().contains("frame-ancestors https://shop.example"));
}

/// A cookie a frame on another site keeps: `SameSite=None; Secure; Partitioned`.
fn works_in_a_frame(set_cookie: &str) -> bool {
    let attrs: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    ["SameSite=None", "Secure", "Partitioned", "HttpOnly"].iter().all(|a| attrs.contains(a))
}

trait Cleared {
    fn set_cookies_cleared(&self, name: &str) -> bool;
}

impl Cleared for CgiResponse {
    fn set_cookies_cleared(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("set-cookie") && v.starts_with(&format!("{name}=;")) && v.contains("Max-Age=0")
        })
    }
}

#[test]
fn a_framed_sign_in_keeps_its_cookie_or_continues_in_a_new_tab() {
    let mut env = Env::new();
    env.set("WEBHOOKS_EMBED_ORIGINS", "https://shop.example");
    env.endpoint("alice", "https://example.com/alice-hook", "");
    let link = |page: &str| {
        let v = env.json(&["portal-link", "--user", "alice", "--embed", "--page", page]);
        below_script(v["url"].as_str().unwrap())
    };
    let frame = || {
        let mut b = Browser::new(&env, None);
        b.headers = vec![("Sec-Fetch-Dest".into(), "iframe".into())];
        b
    };

    // A browser that keeps the frame's cookies: the check passes it on to its page.
    let mut b = frame();
    let r = b.get(&link("/endpoints"));
    assert_eq!(r.status, 303);
    let session = b.set_cookies.iter().find(|c| c.starts_with("qsm_session=")).unwrap().clone();
    assert!(works_in_a_frame(&session), "{session}");
    assert!(location(&r).starts_with(&format!("{SCRIPT}/login/check?handoff=")), "{}", location(&r));
    let check = b.get(location(&r).strip_prefix(SCRIPT).unwrap());
    assert_eq!((check.status, location(&check)), (303, format!("{SCRIPT}/endpoints")));
    let page = b.get("/endpoints");
    assert!(page.text().contains("alice-hook") && !page.text().contains("<header class=\"top\">"));
    // A form inside the frame posts with its CSRF token (and without it, does not).
    assert!(b.get("/tokens").text().contains("name=\"csrf\""));
    let r = b.post("/tokens", &[("label", "from the frame")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(b.post_raw("/tokens", &[("label", "forged")]).status, 403);

    // A browser that blocks them: the check offers the same session in a new tab, once.
    let mut blocked = frame();
    blocked.block_cookies = true;
    let r = blocked.get(&link("/deliveries"));
    let check = blocked.get(location(&r).strip_prefix(SCRIPT).unwrap());
    assert_eq!(check.status, 200);
    let html = check.text();
    assert!(html.contains("Open in a new tab") && html.contains("target=\"_blank\""), "{html}");
    let continue_url = html
        .split("href=\"")
        .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
        .find(|h| h.contains("/login/continue?"))
        .unwrap();
    let mut tab = Browser::new(&env, None);
    tab.headers = vec![("Sec-Fetch-Dest".into(), "document".into())];
    let r = tab.get(continue_url.strip_prefix(SCRIPT).unwrap());
    assert_eq!((r.status, location(&r)), (303, format!("{SCRIPT}/deliveries")));
    let cookie = tab.set_cookies.iter().find(|c| c.starts_with("qsm_session=")).unwrap();
    assert!(cookie.contains("SameSite=Lax") && !cookie.contains("Partitioned"), "first-party: {cookie}");
    let page = tab.get("/endpoints");
    assert!(page.text().contains("alice-hook") && page.text().contains("<header class=\"top\">"));
    let mut other = Browser::new(&env, None);
    let r = other.get(continue_url.strip_prefix(SCRIPT).unwrap());
    assert_eq!(r.status, 403, "once");
    // Signing out in the tab ends that session, the frame's handoff with it.
    tab.post("/logout", &[]);
    assert_eq!(tab.get("/endpoints").status, 401);
    // A forged or expired handoff is refused.
    let forged = continue_url.replace("handoff=", "handoff=x");
    assert_eq!(Browser::new(&env, None).get(forged.strip_prefix(SCRIPT).unwrap()).status, 403);
}

#[test]
fn the_hosts_theme_is_served_after_ours() {
    let mut env = Env::new();
    assert_eq!(Browser::new(&env, None).get("/static/theme.css").status, 404, "none configured");
    assert!(!Browser::new(&env, Some("alice")).get("/").text().contains("theme.css"));
    let css = ":root { --qsm-accent: #7b1fa2; }\n";
    std::fs::write(env.dir.path().join("shop.css"), css).unwrap();
    env.set("WEBHOOKS_THEME_CSS", "shop.css");
    let html = Browser::new(&env, Some("alice")).get("/").text();
    let ours = html.find("/static/style.css").unwrap();
    let theirs = html.find(&format!("{SCRIPT}/static/theme.css?v=")).expect("the theme is linked");
    assert!(theirs > ours, "after ours, so that it wins");
    let r = Browser::new(&env, None).get("/static/theme.css");
    assert_eq!((r.status, r.text().as_str()), (200, css));
    assert_eq!(r.header("Content-Type"), Some("text/css; charset=utf-8"));
    // A theme that cannot be read: the pages go on without it.
    std::fs::remove_file(env.dir.path().join("shop.css")).unwrap();
    let r = Browser::new(&env, Some("alice")).get("/");
    assert!(r.status == 200 && !r.text().contains("theme.css"));
}
