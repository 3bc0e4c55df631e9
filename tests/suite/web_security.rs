//! Web security across the whole route table: CSRF on every form, nobody reaches another user's
//! objects (404 on every route with an id), security headers on every response, and hostile text
//! in every user-controlled field escaped on every page.

use crate::common::{api, Browser, CgiResponse, Env, Receiver};
use webhooks::web::routes::{Kind, ROUTES};

const EVENT: &str = r#"{"alias":"a@x.example","message_id":"<1@x>","size_bytes":10}"#;

struct World {
    env: Env,
    endpoint: String,
    delivery: String,
    token: String,
    _rx: Receiver,
}

/// Alice owns an endpoint with a delivery and a token; Bob owns nothing.
fn world() -> World {
    let env = Env::new();
    env.init();
    let rx = Receiver::always(200);
    let (endpoint, _) = env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", EVENT);
    let delivery = env.deliveries()[0]["id"].as_str().unwrap().to_string();
    let token = env.json(&["token", "create", "--user", "alice"])["id"].as_str().unwrap().to_string();
    World { env, endpoint, delivery, token, _rx: rx }
}

fn fill(path: &str, w: &World) -> String {
    let id = if path.starts_with("/api/v1/endpoints/") || path.starts_with("/endpoints/") {
        &w.endpoint
    } else if path.contains("deliveries/") {
        &w.delivery
    } else {
        &w.token
    };
    path.replace("{id}", id)
}

/// Everything a POST could change, to compare before and after.
fn snapshot(env: &Env) -> String {
    let sql = "SELECT (SELECT AGG(id || url || description || event_types || CAST(active AS TEXT)) FROM endpoints)
                 || (SELECT AGG(id || coalesce(CAST(expires_at AS TEXT), '')) FROM endpoint_keys)
                 || (SELECT AGG(id || status) FROM deliveries)
                 || (SELECT AGG(delivery_id || status || CAST(next_attempt_at AS TEXT)) FROM queue)
                 || (SELECT AGG(id || coalesce(CAST(revoked_at AS TEXT), '')) FROM tokens)
                 || CAST((SELECT count(*) AS n FROM endpoints) AS TEXT)";
    let agg = if env.is_postgres() { "string_agg(" } else { "group_concat(" };
    let sql = sql.replace("AGG(", agg).replace(") FROM", ", ',') FROM");
    env.db().query_row(&sql, [], |r| r.get::<_, Option<String>>(0)).unwrap().unwrap_or_default()
}

#[test]
fn every_form_post_without_a_valid_csrf_token_is_refused_and_changes_nothing() {
    let w = world();
    let posts: Vec<&str> =
        ROUTES.iter().filter(|r| r.kind == Kind::Page && r.method == "POST").map(|r| r.path).collect();
    assert_eq!(posts.len(), 22, "every form route is covered");
    for path in posts {
        let path = fill(path, &w);
        let before = snapshot(&w.env);
        let mut b = Browser::new(&w.env, Some("alice"));
        b.get("/"); // has a CSRF cookie now
        let fields = [("url", "https://evil.example/"), ("label", "x"), ("grace", "0"), ("active", "on")];
        let r = b.post_raw(&path, &fields);
        assert_eq!(r.status, 403, "POST {path} without a token");
        assert!(r.text().contains("The form has expired"), "{path}");
        let mut with_wrong = fields.to_vec();
        with_wrong.push(("csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
        assert_eq!(b.post_raw(&path, &with_wrong).status, 403, "POST {path} with a forged token");
        // Bob's valid token does not work for Alice's session.
        let mut bob = Browser::new(&w.env, Some("bob"));
        bob.get("/");
        let bobs = bob.csrf.clone().unwrap();
        let mut with_bobs = fields.to_vec();
        with_bobs.push(("csrf", &bobs));
        assert_eq!(b.post_raw(&path, &with_bobs).status, 403, "POST {path} with another user's token");
        assert_eq!(snapshot(&w.env), before, "POST {path} changed something");
    }
}

#[test]
fn nobody_reaches_another_users_objects_on_any_route() {
    let w = world();
    let bob_token = w.env.user_token("bob");
    for route in ROUTES.iter().filter(|r| r.path.contains("{id}")) {
        let path = fill(route.path, &w);
        let before = snapshot(&w.env);
        let r = match route.kind {
            Kind::Api => api(
                &w.env,
                &bob_token,
                route.method,
                &path,
                (route.method != "GET" && route.method != "DELETE").then_some("{}"),
            ),
            Kind::Page => {
                let mut bob = Browser::new(&w.env, Some("bob"));
                bob.get("/");
                if route.method == "GET" {
                    bob.get(&path)
                } else {
                    bob.post(&path, &[("url", "https://x.example/"), ("grace", "0")])
                }
            }
            Kind::Public => continue,
        };
        // Inbound sources are the operator's: a user who is not an admin is refused outright.
        let admin_only =
            ["/api/v1/sources", "/api/v1/inbound", "/sources", "/inbound"].iter().any(|p| route.path.starts_with(p));
        let expected = if admin_only { 403 } else { 404 };
        assert_eq!(r.status, expected, "{} {path} as bob: {}", route.method, r.text());
        assert!(!r.text().contains("alice"), "{} {path} leaks the owner", route.method);
        assert_eq!(snapshot(&w.env), before, "{} {path} as bob changed something", route.method);
    }
    // And Alice herself reaches each of them (so the 404s above are about ownership).
    let alice = w.env.user_token("alice");
    for route in ROUTES.iter().filter(|r| {
        r.path.contains("{id}")
            && r.kind == Kind::Api
            && r.method == "GET"
            && !r.path.starts_with("/api/v1/sources")
            && !r.path.starts_with("/api/v1/inbound")
    }) {
        assert_eq!(api(&w.env, &alice, "GET", &fill(route.path, &w), None).status, 200, "{}", route.path);
    }
}

fn assert_security_headers(r: &CgiResponse, what: &str) {
    assert_eq!(r.header("Cache-Control").map(|v| v == "no-store" || v.starts_with("public")), Some(true), "{what}");
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"), "{what}");
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"), "{what}");
    assert!(r.header("Referrer-Policy").is_some(), "{what}");
    let csp = r.header("Content-Security-Policy").unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"),
        "{what}: {csp}"
    );
}

#[test]
fn every_response_carries_the_security_headers_and_no_page_has_inline_script() {
    let w = world();
    let alice = w.env.user_token("alice");
    for route in ROUTES {
        let path = fill(route.path, &w);
        let r = match route.kind {
            Kind::Api | Kind::Public if route.path.starts_with("/api/") => api(
                &w.env,
                &alice,
                route.method,
                &path,
                (route.method == "POST" || route.method == "PATCH").then_some("{}"),
            ),
            _ => {
                let mut b = Browser::new(&w.env, Some("alice"));
                b.get("/");
                if route.method == "GET" {
                    b.get(&path)
                } else {
                    b.post(&path, &[])
                }
            }
        };
        assert!(r.status < 500, "{} {path}: {} {}", route.method, r.status, r.text());
        assert_security_headers(&r, &format!("{} {path}", route.method));
        if r.header("Content-Type").is_some_and(|c| c.starts_with("text/html")) {
            let html = r.text();
            assert!(!html.contains("<script"), "{path}: inline script");
            assert!(!html.contains(" style=\""), "{path}: inline style (blocked by the CSP)");
        }
    }
    // Errors too.
    assert_security_headers(&Browser::new(&w.env, None).get("/endpoints"), "401 page");
    assert_security_headers(&api(&w.env, "bad", "GET", "/api/v1/endpoints", None), "401 API");
    assert_security_headers(&Browser::new(&w.env, Some("alice")).get("/no/such/page"), "404 page");
}

#[test]
fn hostile_text_in_every_user_controlled_field_is_escaped_on_every_page() {
    let env = Env::new();
    env.init();
    let xss = r#"<script>alert(1)</script>"'><img src=x onerror=alert(2)>javascript:alert(3)"#;
    let rx = Receiver::always(200);
    // Fields a user controls: endpoint description, URL path and query, token label, event data.
    let url = format!("{}?q=%3Cscript%3E&x=\"><script>alert(1)</script>", rx.url("/hook/<b>"));
    let out = env.run(&["endpoint", "add", "--user", "alice", "--url", &url, "--description", xss, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let ep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = ep["id"].as_str().unwrap().to_string();
    assert!(!ep["url"].as_str().unwrap().contains('<'), "the URL is normalised, angle brackets encoded");
    env.json(&["token", "create", "--user", "alice", "--label", xss]);
    let data = serde_json::json!({"alias": xss, "message_id": xss, "size_bytes": 1}).to_string();
    env.emit("alice", "email.received", &data);
    env.dispatch();
    let delivery = env.deliveries()[0]["id"].as_str().unwrap().to_string();
    let out = env.run(&["endpoint", "add", "--user", "alice", "--url", "javascript:alert(1)"]);
    assert!(!out.status.success(), "javascript: URLs are refused");

    let mut b = Browser::new(&env, Some("alice"));
    b.get("/");
    let mut pages = vec![
        b.get("/"),
        b.get("/endpoints"),
        b.get(&format!("/endpoints/{id}")),
        b.get(&format!("/endpoints/{id}/delete")),
        b.get("/deliveries"),
        b.get(&format!("/deliveries/{delivery}")),
        b.get("/tokens"),
        b.get("/docs/verify"),
    ];
    pages.push(b.post(&format!("/endpoints/{id}/test"), &[]));
    pages.push(b.post(&format!("/endpoints/{id}/secret"), &[]));
    pages.push(b.post("/endpoints/new", &[("url", "ftp://x"), ("description", xss)]));
    pages.push(b.post("/tokens", &[("label", xss)]));
    for (i, p) in pages.iter().enumerate() {
        let html = p.text();
        assert!(p.status < 500, "page {i}");
        assert!(!html.contains("<script>alert"), "page {i}: raw script\n{html}");
        assert!(!html.contains("<img src=x"), "page {i}: raw tag");
        assert!(!html.contains("\"'>"), "page {i}: attribute break-out");
    }
    assert!(
        pages[1].text().contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
            || pages[1].text().contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the description is shown, escaped"
    );
}

/// Secrets — endpoint signing secrets (as text and as raw key bytes), API tokens and the master
/// key — appear only where they are meant to be shown once, never in the database files, the
/// logs (dispatcher and CGI output) or any page, API answer or error page afterwards.
#[test]
fn secrets_are_never_stored_or_logged_in_plaintext() {
    use base64::Engine;
    let mut env = Env::new();
    env.set("WEBHOOKS_LOG_BODIES", "true");
    env.init();
    let rx = Receiver::always(200);
    let (ep1, s1) = env.endpoint("alice", &rx.url("/a"), "");
    let s2 = env.json(&["endpoint", "rotate-secret", &ep1])["secret"].as_str().unwrap().to_string();
    let app = env.app_token();
    let alice = env.user_token("alice");
    let created =
        api(&env, &app, "POST", "/api/v1/endpoints", Some(&format!(r#"{{"user":"alice","url":"{}"}}"#, rx.url("/b"))));
    let s3 = created.json()["secret"].as_str().unwrap().to_string();
    let ep2 = created.json()["id"].as_str().unwrap().to_string();

    // Everything that happens afterwards is recorded as "logs and pages".
    let mut seen = String::new();
    let mut record = |what: &str, text: String| {
        seen.push_str(&format!("\n--- {what}\n{text}"));
    };
    for _ in 0..3 {
        env.emit("alice", "email.received", EVENT);
    }
    let out = env.run(&["dispatch", "--json"]);
    record("dispatch", format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    let out = env.run(&["deliveries", "--json"]);
    record("deliveries", String::from_utf8_lossy(&out.stdout).into_owned());
    for path in [
        "/api/v1/endpoints",
        &format!("/api/v1/endpoints/{ep1}"),
        &format!("/api/v1/endpoints/{ep2}"),
        "/api/v1/deliveries",
        "/api/v1/tokens",
        "/api/v1/status",
    ] {
        let r = api(&env, &alice, "GET", path, None);
        record(path, format!("{}{}", r.text(), r.stderr));
    }
    let r = api(&env, &alice, "POST", &format!("/api/v1/endpoints/{ep1}/test"), Some("{}"));
    record("api test", format!("{}{}", r.text(), r.stderr));
    let mut b = Browser::new(&env, Some("alice"));
    for path in [
        "/",
        "/endpoints",
        &format!("/endpoints/{ep1}"),
        &format!("/endpoints/{ep2}"),
        "/deliveries",
        "/tokens",
        "/docs/verify",
    ] {
        let r = b.get(path);
        record(path, format!("{}{}", r.text(), r.stderr));
    }
    let r = b.post(&format!("/endpoints/{ep1}/test"), &[]);
    record("page test", format!("{}{}", r.text(), r.stderr));
    for (path, status) in [("/nope", 404), ("/api/v1/nope", 404)] {
        let r = b.get(path);
        assert_eq!(r.status, status);
        record(path, format!("{}{}", r.text(), r.stderr));
    }
    // Error pages and logs of a broken installation (a bad key value, a wrong master key).
    let good_key = env.vars["WEBHOOKS_SECRET_KEY"].clone();
    env.set("WEBHOOKS_MAX_BODY", "lots");
    let r = api(&env, &alice, "GET", "/api/v1/endpoints", None);
    record("misconfigured", format!("{}{}", r.text(), r.stderr));
    env.set("WEBHOOKS_MAX_BODY", "256KiB");
    env.set("WEBHOOKS_SECRET_KEY", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=");
    let r = Browser::new(&env, Some("alice")).post(&format!("/endpoints/{ep1}/test"), &[]);
    record("wrong master key page", format!("{}{}", r.text(), r.stderr));
    let out = env.run(&["dispatch"]);
    record(
        "wrong master key dispatch",
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    );
    env.set("WEBHOOKS_SECRET_KEY", &good_key);
    assert!(rx.len() >= 3, "the deliveries were signed and sent");

    // What must not appear, as text and as raw bytes.
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for s in [&s1, &s2, &s3] {
        let body = s.strip_prefix("whsec_").unwrap();
        needles.push((format!("secret {s}"), body.as_bytes().to_vec()));
        needles.push((format!("raw key of {s}"), b64.decode(body).unwrap()));
    }
    for t in [&app, &alice] {
        needles.push((format!("token {t}"), t.as_bytes().to_vec()));
    }
    needles.push(("master key".into(), good_key.as_bytes().to_vec()));
    needles.push(("raw master key".into(), b64.decode(&good_key).unwrap()));
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(contains(&created.body, &needles[4].1), "the scan finds a secret where it is shown (once, at creation)");
    for (what, needle) in &needles {
        assert!(!contains(seen.as_bytes(), needle), "{what} appears in logs or pages:\n{seen}");
    }
    // The database (and its WAL) at rest: SQLite's files, or every row PostgreSQL holds.
    let mut files = 0;
    for bytes in env.stored_bytes() {
        files += 1;
        for (what, needle) in &needles {
            assert!(!contains(&bytes, needle), "{what} stored in plaintext in the database");
        }
    }
    assert!(files >= 1);
    // Tokens are kept as SHA-256 hashes.
    let hashes: Vec<String> = env
        .db()
        .prepare("SELECT hash FROM tokens")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(
        hashes.contains(&webhooks::model::principal::token_hash(&app))
            && hashes.contains(&webhooks::model::principal::token_hash(&alice))
    );
}

#[test]
fn caps_on_endpoints_per_user_hold_on_every_route() {
    let mut env = Env::new();
    env.set("WEBHOOKS_MAX_ENDPOINTS_PER_USER", "2");
    env.init();
    let alice = env.user_token("alice");
    for i in 0..2 {
        let r =
            api(&env, &alice, "POST", "/api/v1/endpoints", Some(&format!(r#"{{"url":"https://example.com/{i}"}}"#)));
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = api(&env, &alice, "POST", "/api/v1/endpoints", Some(r#"{"url":"https://example.com/3"}"#));
    assert_eq!((r.status, r.error_code().as_str()), (409, "endpoint_limit"), "{}", r.text());
    assert!(r.text().contains("WEBHOOKS_MAX_ENDPOINTS_PER_USER"));
    let out = env.run(&["endpoint", "add", "--user", "alice", "--url", "https://example.com/4"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the most allowed"));
    assert_eq!(env.count("endpoints"), 2);
    // Another user has their own allowance.
    let bob = env.user_token("bob");
    assert_eq!(api(&env, &bob, "POST", "/api/v1/endpoints", Some(r#"{"url":"https://example.com/b"}"#)).status, 201);
}
