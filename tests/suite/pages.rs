//! The pages through the real CGI binary with a synthetic CGI environment, driven like a browser
//! (cookies, CSRF tokens from the forms), checking the important elements of each page.

use crate::common;

use std::time::Duration;

use crate::common::{api, Browser, Env, Receiver, Reply};

const EVENT: &str = r#"{"alias":"a@x.example","message_id":"<1@x>","size_bytes":10}"#;

fn endpoint_id_from(html: &str) -> String {
    let at = html.find("<code>ep_").expect("the page names the endpoint id") + 6;
    html[at..at + 29].to_string()
}

#[test]
fn pages_need_a_signed_in_user() {
    let env = Env::new();
    let mut anon = Browser::new(&env, None);
    for path in ["/", "/endpoints", "/deliveries", "/tokens", "/docs/verify", "/endpoints/new"] {
        let r = anon.get(path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.text().contains("You are not signed in"), "{path}");
        assert!(!r.text().contains("<nav"), "no navigation for strangers");
    }
    let r = anon.get("/static/style.css");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Type").unwrap().starts_with("text/css"));
}

#[test]
fn a_refused_session_is_cleared_and_an_unchecked_password_is_named() {
    let env = Env::new();
    // An expired or forged session: 401, and the cookie is cleared so that a server which asks
    // for a password when no session is offered (.htaccess-password) asks again.
    let mut b = Browser::new(&env, None);
    b.cookies.insert("qsm_session".into(), "alice.1.x.forged".into());
    let r = b.get("/endpoints");
    assert_eq!(r.status, 401);
    let cleared = r.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("set-cookie") && v.starts_with("qsm_session=;") && v.contains("Max-Age=0")
    });
    assert!(cleared, "{:?}", r.headers);
    assert!(!b.cookies.contains_key("qsm_session"));
    // A password the web server let through unchecked (no REMOTE_USER): say so, and how to fix it.
    let r = env.cgi("GET", "/endpoints", &[("Authorization", "Basic YWxpY2U6cHc=")], b"");
    assert_eq!(r.status, 401);
    let text = r.text();
    assert!(text.contains("the web server did not check them") && text.contains(".htaccess-password"), "{text}");
    assert!(
        !r.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("qsm_session=")),
        "no session, nothing to clear"
    );
    // Any other Authorization value, however it is spelled, is simply not a sign-in.
    for junk in ["ࠀ𐀀", "Basic", "bearer x", "BASIC"] {
        let r = env.cgi("GET", "/endpoints", &[("Authorization", junk)], b"");
        assert_eq!(r.status, 401, "{junk}");
        assert!(r.text().contains("You are not signed in"), "{junk}");
    }
}

#[test]
fn dashboard_shows_counts_chart_and_a_cron_warning_until_cron_runs() {
    let mut env = Env::new();
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", EVENT);
    let r = Browser::new(&env, Some("alice")).get("/");
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("<h1>Dashboard</h1>"));
    // A user is told that deliveries are delayed; the crontab is the operator's business.
    assert!(html.contains("role=\"alert\"") && html.contains("Deliveries are delayed"), "{html}");
    assert!(!html.contains("crontab") && !html.contains("/home/USER"), "{html}");
    assert!(html.contains("<strong>1</strong> pending"));
    // An administrator gets the line to install, for this installation, as doctor prints it.
    env.set("WEBHOOKS_ADMINS", "root");
    let html = Browser::new(&env, Some("root")).get("/").text();
    let line = format!(
        "* * * * * cd {} &amp;&amp; bin/webhooks dispatch &gt;&gt; var/dispatch.log 2&gt;&amp;1",
        env.dir.path().display()
    );
    assert!(html.contains("The dispatcher has never run") && html.contains(&line), "{html}");
    let doctor = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(doctor.contains(&line.replace("&amp;", "&").replace("&gt;", ">")), "{doctor}");
    env.unset("WEBHOOKS_ADMINS");
    env.dispatch();
    let mut b = Browser::new(&env, Some("alice"));
    let html = b.get("/").text();
    assert!(!html.contains("Deliveries are delayed") && !html.contains("Deliveries are not being sent"));
    assert!(html.contains("<strong>1</strong> succeeded"));
    assert!(html.contains("<svg class=\"chart\""));
    assert_eq!(html.matches("<rect class=\"ok\"").count(), 24, "one bar per hour");
    assert!(html.contains("success rate 100.0%"), "{html}");
    // The chart has a scale (the busiest hour rounded up: 1 attempt, scale 0 to 1) and counts.
    assert!(html.contains("on a scale of 0 to 1:") && html.contains("class=\"scale\""), "{html}");
    assert_eq!(html.matches("<text class=\"count\"").count(), 1, "one hour had attempts");
    assert!(html.contains("text-anchor=\"middle\">1</text>"));
    assert!(html.contains("1 succeeded</span>, <span class=\"key bad\">0 unsuccessful</span>"), "{html}");
    // A run more than 3 minutes ago counts as stale.
    env.db().execute("UPDATE runs SET started_at = started_at - 200000", []).unwrap();
    assert!(b.get("/").text().contains("Deliveries are delayed"));
}

#[test]
fn create_an_endpoint_with_validation_beside_the_field_and_the_secret_shown_once() {
    let mut env = Env::new();
    env.set("WEBHOOKS_MAX_ENDPOINTS_PER_USER", "2");
    let mut b = Browser::new(&env, Some("alice"));
    let html = b.get("/endpoints").text();
    assert!(html.contains("No endpoints yet"));
    let form = b.get("/endpoints/new").text();
    assert!(form.contains("<label for=\"url\">URL</label>"));
    assert!(form.contains("<legend>email.*</legend>") && form.contains("<legend>usage.*</legend>"));
    assert!(form.contains("value=\"*\" checked"), "all types by default");
    assert!(form.contains("name=\"csrf\""));

    let r = b.post(
        "/endpoints/new",
        &[("url", "ftp://example.com/x"), ("description", "CRM <b>"), ("event_types", "email.forwarded")],
    );
    assert_eq!(r.status, 422);
    let html = r.text();
    assert!(html.contains("id=\"url-error\">The URL must start with https:// or http://"), "{html}");
    assert!(html.contains("aria-invalid=\"true\""));
    assert!(html.contains("value=\"ftp://example.com/x\""), "refilled");
    assert!(html.contains("value=\"CRM &lt;b&gt;\""), "refilled and escaped");
    assert!(html.contains("value=\"email.forwarded\" checked"), "checkbox kept");
    assert_eq!(env.count("endpoints"), 0);

    let r = b.post(
        "/endpoints/new",
        &[
            ("url", "https://example.com/hook"),
            ("description", "CRM"),
            ("event_types", "email.forwarded"),
            ("event_types", "usage.threshold"),
            ("active", "on"),
        ],
    );
    // Post/Redirect/Get: the address is the endpoint's own, and a reload posts nothing.
    assert_eq!(r.status, 303, "{}", r.text());
    let location = r.header("Location").unwrap().to_string();
    let id = location
        .strip_prefix("/cgi-bin/webhooks.cgi/endpoints/")
        .unwrap()
        .strip_suffix("?notice=created")
        .unwrap()
        .to_string();
    assert!(id.starts_with("ep_"), "{location}");
    let html = b.get(&format!("/endpoints/{id}?notice=created")).text();
    assert!(html.contains("role=\"status\">The endpoint was created.</p>"), "{html}");
    assert_eq!(html.matches("Signing secret").count(), 0, "one heading for the new secret, one for the keys");
    assert_eq!(html.matches("<h2>Your signing secret</h2>").count(), 1);
    assert!(html.contains("<h2 id=\"keys\">Signing keys</h2>"));
    assert!(html.contains("It is not shown on this page again") && !html.contains("only this once"), "{html}");
    let secret = html.split("<pre class=\"copy\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(endpoint_id_from(&html), id);
    let page = b.get(&format!("/endpoints/{id}?notice=created")).text();
    assert!(!page.contains(&secret), "a reload does not show it again");
    let page = b.get(&format!("/endpoints/{id}")).text();
    assert!(!page.contains(&secret), "not shown again on a plain visit");
    assert!(page.contains("value=\"email.forwarded\" checked") && page.contains("value=\"usage.threshold\" checked"));
    let list = b.get("/endpoints").text();
    assert!(list.contains("https://example.com/hook") && list.contains("email.forwarded, usage.threshold"));
    assert!(list.contains("class=\"state ok\""));

    // The cap.
    b.post("/endpoints/new", &[("url", "https://example.com/2"), ("event_types", "*")]);
    let r = b.post("/endpoints/new", &[("url", "https://example.com/3"), ("event_types", "*")]);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("the most allowed"));
    assert_eq!(env.count("endpoints"), 2);
}

#[test]
fn edit_enable_disable_and_delete_with_confirmation() {
    let env = Env::new();
    let (id, _) = env.endpoint("alice", "https://example.com/h", "");
    let mut b = Browser::new(&env, Some("alice"));
    b.get(&format!("/endpoints/{id}"));
    let r = b.post(
        &format!("/endpoints/{id}"),
        &[("url", "https://example.org/new"), ("description", "renamed"), ("event_types", "usage.*"), ("active", "on")],
    );
    assert_eq!(r.status, 303);
    let loc = r.header("Location").unwrap().to_string();
    assert_eq!(loc, format!("/cgi-bin/webhooks.cgi/endpoints/{id}?notice=saved"));
    let html = b.get(&format!("/endpoints/{id}?notice=saved")).text();
    assert!(html.contains("role=\"status\">Saved.</p>"));
    assert!(html.contains("https://example.org/new") && html.contains("value=\"renamed\""));
    assert!(html.contains("value=\"usage.threshold\" checked") && html.contains("value=\"usage.over_limit\" checked"));
    // Invalid edit: 422 beside the field, nothing changed.
    let r = b.post(&format!("/endpoints/{id}"), &[("url", "http://10.1.1.1/"), ("active", "on")]);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("private or reserved address") && r.text().contains("WEBHOOKS_ALLOWED_NETWORKS"));
    assert_eq!(env.json(&["endpoint", "show", &id])["url"], "https://example.org/new");

    assert_eq!(b.post(&format!("/endpoints/{id}/disable"), &[]).status, 303);
    let html = b.get(&format!("/endpoints/{id}?notice=disabled")).text();
    assert!(html.contains("class=\"state disabled\"") && html.contains(">Enable</button>"));
    assert_eq!(b.post(&format!("/endpoints/{id}/enable"), &[]).status, 303);
    assert_eq!(env.json(&["endpoint", "show", &id])["active"], true);

    let confirm = b.get(&format!("/endpoints/{id}/delete")).text();
    assert!(confirm.contains("Delete this endpoint?") && confirm.contains("cannot be undone"));
    let r = b.post(&format!("/endpoints/{id}/delete"), &[]);
    assert_eq!(r.status, 303);
    assert_eq!(b.get(&format!("/endpoints/{id}")).status, 404);
    assert_eq!(env.count("endpoints"), 0);
}

#[test]
fn rotation_shows_both_keys_and_when_the_old_one_stops() {
    let env = Env::new();
    let (id, first) = env.endpoint("alice", "https://example.com/h", "");
    let mut b = Browser::new(&env, Some("alice"));
    let page = b.get(&format!("/endpoints/{id}")).text();
    assert!(page.contains("<option value=\"86400\" selected>1d</option>"), "default grace offered");
    let html = b.post(&format!("/endpoints/{id}/rotate-secret"), &[("grace", "3600")]).text();
    assert!(html.contains("The previous secret keeps signing until"));
    let new_secret = html.split("<pre class=\"copy\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert_ne!(new_secret, first);
    assert_eq!(html.matches("stops signing at").count(), 1);
    assert_eq!(html.matches("— primary").count(), 1);
    // Reveal shows both secrets, newest first.
    let html = b.post(&format!("/endpoints/{id}/secret"), &[]).text();
    let a = html.find(&new_secret).expect("new secret revealed");
    let o = html.find(&first).expect("old secret revealed");
    assert!(a < o);
}

#[test]
fn test_button_shows_the_result_inline_within_the_timeout() {
    let mut env = Env::new();
    env.set("WEBHOOKS_TEST_TIMEOUT", "1s");
    let rx = Receiver::start(|_, r| {
        if r.header("X-QSM-Event") == Some("webhook.test") {
            Reply::Body(200, "thanks".into())
        } else {
            Reply::Status(500)
        }
    });
    let (id, secret) = env.endpoint("alice", &rx.url("/hook"), "email.*");
    let mut b = Browser::new(&env, Some("alice"));
    b.get(&format!("/endpoints/{id}"));
    let html = b.post(&format!("/endpoints/{id}/test"), &[]).text();
    assert!(html.contains("Test delivery succeeded"), "{html}");
    assert!(html.contains("<dt>Status</dt><dd>200</dd>"));
    assert!(html.contains("<pre>thanks</pre>"));
    assert!(html.contains("X-QSM-Signature: v1="), "headers sent are shown");
    assert!(html.contains("&quot;type&quot;:&quot;webhook.test&quot;"));
    let got = &rx.received()[0];
    let key = webhooks::model::secret::decode(&secret).unwrap();
    assert!(webhooks::outbound::signing::verify(
        "X-QSM",
        &got.headers,
        &got.body,
        &[key],
        300,
        chrono::Utc::now().timestamp()
    )
    .is_ok());
    assert_eq!(env.count("deliveries"), 0, "a test is not a delivery");

    let hang = Receiver::start(|_, _| Reply::Hang);
    let (id2, _) = env.endpoint("alice", &hang.url("/"), "");
    b.get(&format!("/endpoints/{id2}"));
    let html = b.post(&format!("/endpoints/{id2}/test"), &[]).text();
    assert!(html.contains("Test delivery failed"));
    assert!(html.contains("<code>E_TIMEOUT</code>: the receiver did not answer completely"));
}

#[test]
fn delivery_log_filters_pages_details_and_retry() {
    let env = Env::new();
    let ok = Receiver::always(200);
    let bad = Receiver::always(503);
    let (good, _) = env.endpoint("alice", &ok.url("/"), "");
    let (failing, _) = env.endpoint("alice", &bad.url("/"), "email.*");
    for _ in 0..30 {
        env.emit(
            "alice",
            "usage.threshold",
            r#"{"metric":"bytes","used":9,"limit":10,"threshold_percent":90,"period":"2026-11"}"#,
        );
        env.emit("alice", "email.received", EVENT);
    }
    // 90 deliveries: 60 to `good`, 30 to `failing`.
    for _ in 0..10 {
        env.dispatch();
    }
    let mut b = Browser::new(&env, Some("alice"));
    let page1 = b.get("/deliveries").text();
    assert_eq!(page1.matches("<tr>").count() - 1, 50, "50 per page");
    assert!(page1.contains("rel=\"next\""));
    let next = page1
        .split("<a href=\"")
        .find(|s| s.contains("rel=\"next\""))
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let page2 = b.get(next.strip_prefix("/cgi-bin/webhooks.cgi").unwrap()).text();
    assert_eq!(page2.matches("<tr>").count() - 1, 40);
    assert!(!page2.contains("rel=\"next\""));

    let failed = b.get("/deliveries?status=failed").text();
    assert_eq!(failed.matches("class=\"status failed\"").count(), 30);
    let by_ep = b.get(&format!("/deliveries?endpoint={good}&type=usage.threshold")).text();
    assert_eq!(by_ep.matches("<code>usage.threshold</code>").count(), 30);
    // Every row names its endpoint: two deliveries of one event differ only there.
    let all = b.get("/deliveries?type=email.received").text();
    assert!(all.contains("<th scope=\"col\">Endpoint</th>"));
    let (ok_url, bad_url) = (ok.url("/"), bad.url("/"));
    // 60 deliveries of 30 events, newest first, 50 per page: each event's pair side by side.
    assert_eq!(all.matches(&format!("class=\"url\" title=\"{ok_url}\"")).count(), 25, "{all}");
    assert_eq!(all.matches(&format!("class=\"url\" title=\"{bad_url}\"")).count(), 25);
    assert!(by_ep.contains(&format!("<option value=\"{good}\" selected>")));
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%d").to_string();
    assert!(b.get(&format!("/deliveries?since={tomorrow}")).text().contains("No deliveries match."));
    assert!(
        b.get(&format!("/deliveries?since={today}&until={tomorrow}&status=failed")).text().matches("<tr>").count() > 1
    );
    assert_eq!(b.get("/deliveries?status=lost").status, 422);

    let d = env.json(&["deliveries", "--endpoint", &failing, "--limit", "1"])[0].clone();
    let id = d["id"].as_str().unwrap();
    let html = b.get(&format!("/deliveries/{id}")).text();
    assert!(html.contains("<h2>Attempts</h2>") && html.contains("<td data-label=\"Status\">503</td>"));
    assert!(html.contains("<code>E_HTTP_STATUS</code>"));
    assert!(html.contains(">Retry now</button>"));
    let r = b.post(&format!("/deliveries/{id}/retry"), &[]);
    assert_eq!(r.status, 303);
    let after_retry = r.header("Location").unwrap().strip_prefix("/cgi-bin/webhooks.cgi").unwrap().to_string();
    assert!(b.get(&after_retry).text().contains("will be sent again"));
    // Once the retry has happened, the same address says so instead of promising it.
    env.dispatch();
    let html = b.get(&after_retry).text();
    assert!(
        !html.contains("will be sent again") && html.contains("It was sent again: the newest attempt is below."),
        "{html}"
    );
    // An expired body is said, not offered for retry.
    env.db().execute("UPDATE events SET payload = NULL", []).unwrap();
    let html = b.get(&format!("/deliveries/{id}")).text();
    assert!(html.contains("body has expired") && !html.contains(">Retry now</button>"));
}

#[test]
fn retry_all_dead_deliveries_of_an_endpoint() {
    let mut env = Env::new();
    env.set("WEBHOOKS_MAX_ATTEMPTS", "1");
    let rx = Receiver::start(|n, _| Reply::Status(if n < 3 { 500 } else { 200 }));
    let (id, _) = env.endpoint("alice", &rx.url("/"), "");
    for _ in 0..3 {
        env.emit("alice", "email.received", EVENT);
    }
    env.dispatch();
    env.dispatch();
    assert_eq!(env.json(&["deliveries", "--status", "dead"]).as_array().unwrap().len(), 3);
    let mut b = Browser::new(&env, Some("alice"));
    b.get(&format!("/endpoints/{id}"));
    let r = b.post(&format!("/endpoints/{id}/retry-dead"), &[]);
    assert_eq!(r.status, 303);
    env.dispatch();
    env.dispatch();
    assert_eq!(env.json(&["deliveries", "--status", "succeeded"]).as_array().unwrap().len(), 3);
}

#[test]
fn tokens_are_created_once_and_revoked_on_a_page() {
    let env = Env::new();
    let mut b = Browser::new(&env, Some("alice"));
    assert!(b.get("/tokens").text().contains("No API tokens yet."), "an empty state, not an empty page");
    let html = b.post("/tokens", &[("label", "my <script> CRM")]).text();
    assert!(!html.contains("No API tokens yet."));
    assert!(html.contains("it is shown only this once"));
    let token = html.split("<pre class=\"copy\">").nth(1).unwrap().split('<').next().unwrap().to_string();
    assert!(token.starts_with("qsm_"));
    assert!(html.contains("my &lt;script&gt; CRM"));
    assert!(!b.get("/tokens").text().contains(&token), "shown once");
    let r = common::api(&env, &token, "GET", "/api/v1/endpoints", None);
    assert_eq!(r.status, 200);
    let tid = env.json(&["token", "list", "--user", "alice"])[0]["id"].as_str().unwrap().to_string();
    b.get("/tokens");
    assert_eq!(b.post(&format!("/tokens/{tid}/revoke"), &[]).status, 303);
    assert_eq!(common::api(&env, &token, "GET", "/api/v1/endpoints", None).status, 401);
}

#[test]
fn verify_docs_use_this_installations_header_prefix() {
    let mut env = Env::new();
    env.set("WEBHOOKS_HEADER_PREFIX", "X-Acme-Hook");
    let html = Browser::new(&env, Some("alice")).get("/docs/verify").text();
    assert!(
        html.contains("<h2 id=\"php\">PHP</h2>")
            && html.contains("<h2 id=\"python\">Python</h2>")
            && html.contains("<h2 id=\"node\">Node.js</h2>")
    );
    assert!(html.contains("HTTP_X_ACME_HOOK_SIGNATURE"));
    assert!(html.contains("headers[&quot;X-Acme-Hook-Timestamp&quot;]"));
    assert!(html.contains("headers[&quot;x-acme-hook-id&quot;]"));
    assert!(!html.contains("X-QSM"));
}

#[test]
fn login_links_start_a_session_once_and_logout_ends_it() {
    let env = Env::new();
    env.endpoint("alice", "https://example.com/a", "");
    let link = env.json(&["login-link", "--user", "alice", "--base", "/cgi-bin/webhooks.cgi"])["url"]
        .as_str()
        .unwrap()
        .to_string();
    let path = link.strip_prefix("/cgi-bin/webhooks.cgi").unwrap();
    let mut b = Browser::new(&env, None);
    b.https = true;
    let r = b.get(path);
    assert_eq!(r.status, 303, "{}", r.text());
    let cookie = r.headers.iter().find(|(k, v)| k == "Set-Cookie" && v.starts_with("qsm_session=")).unwrap().1.clone();
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/cgi-bin/webhooks.cgi", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    let html = b.get("/endpoints").text();
    assert!(html.contains("https://example.com/a"), "signed in as alice");
    // The same link again is refused, and so is a tampered one.
    let mut other = Browser::new(&env, None);
    assert_eq!(other.get(path).status, 403);
    assert!(other.get(path).text().contains("already used"));
    let link2 = env.json(&["login-link", "--user", "alice", "--base", ""])["url"].as_str().unwrap().to_string();
    assert_eq!(other.get(&link2.replace("user=alice", "user=bob")).status, 403);
    // Sign out clears the cookie, and ends the session server-side: a copy of the old cookie
    // (another tab, a stolen one) no longer signs in.
    b.get("/");
    let copy = b.cookies.clone();
    let r = b.post("/logout", &[]);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("You are signed out"));
    assert_eq!(b.get("/endpoints").status, 401);
    let mut stolen = Browser::new(&env, None);
    stolen.cookies = copy;
    assert_eq!(stolen.get("/endpoints").status, 401, "the old cookie is dead");
}

/// Every session of a user can be ended: `webhooks sessions revoke --user`, and the API for the
/// app token, an admin, or the user itself (another user's token is refused).
#[test]
fn a_users_sessions_are_revoked_from_the_cli_and_the_api() {
    let env = Env::new();
    let sign_in = || {
        let link = env.json(&["login-link", "--user", "alice", "--base", ""])["url"].as_str().unwrap().to_string();
        let mut b = Browser::new(&env, None);
        assert_eq!(b.get(&link).status, 303);
        assert_eq!(b.get("/endpoints").status, 200);
        b
    };
    let (mut one, mut two) = (sign_in(), sign_in());
    let out = env.json(&["sessions", "revoke", "--user", "alice"]);
    assert_eq!(out["revoked"], 2);
    assert_eq!(one.get("/endpoints").status, 401);
    assert_eq!(two.get("/endpoints").status, 401);

    let mut three = sign_in();
    let bob = env.user_token("bob");
    let r = api(&env, &bob, "DELETE", "/api/v1/users/alice/sessions", None);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(three.get("/endpoints").status, 200, "still signed in");
    let alice = env.user_token("alice");
    let r = api(&env, &alice, "DELETE", "/api/v1/users/alice/sessions", None);
    assert_eq!((r.status, r.json()["revoked"].as_i64()), (200, Some(1)), "{}", r.text());
    assert_eq!(three.get("/endpoints").status, 401);
    let mut four = sign_in();
    let r = api(&env, &env.app_token(), "DELETE", "/api/v1/users/alice/sessions", None);
    assert_eq!((r.status, r.json()["revoked"].as_i64()), (200, Some(1)));
    assert_eq!(four.get("/endpoints").status, 401);
}

/// The route takes every user name the API takes (1-128 characters), and answers anything else
/// with the documented 422, never "no API route".
#[test]
fn sessions_are_revoked_for_a_name_of_any_allowed_length_and_a_bad_name_is_422() {
    let env = Env::new();
    let app = env.app_token();
    for user in ["a".to_string(), "u".repeat(101), "u".repeat(128)] {
        let r = api(&env, &app, "DELETE", &format!("/api/v1/users/{user}/sessions"), None);
        assert_eq!((r.status, r.json()["user"].as_str()), (200, Some(user.as_str())), "{}", r.text());
    }
    for bad in ["u".repeat(129), "%F0%9D%91%BB%20x".to_string(), "x".repeat(2_000)] {
        let r = api(&env, &app, "DELETE", &format!("/api/v1/users/{bad}/sessions"), None);
        assert_eq!(r.status, 422, "{bad}: {}", r.text());
    }
}

#[test]
fn expired_login_links_are_refused() {
    let mut env = Env::new();
    env.set("WEBHOOKS_LOGIN_LINK_TTL", "10s");
    let link = env.json(&["login-link", "--user", "alice", "--base", ""])["url"].as_str().unwrap().to_string();
    let expired = {
        let exp: i64 = link.split("expires=").nth(1).unwrap().split('&').next().unwrap().parse().unwrap();
        link.replace(&format!("expires={exp}"), &format!("expires={}", exp - 20))
    };
    assert_eq!(Browser::new(&env, None).get(&expired).status, 403, "the signature covers the expiry");
    std::thread::sleep(Duration::from_millis(100));
    let r = Browser::new(&env, None).get(&link);
    assert_eq!(r.status, 303, "still valid");
}

#[test]
fn admins_see_everyones_endpoints() {
    let mut env = Env::new();
    env.set("WEBHOOKS_ADMINS", "root");
    let (id, _) = env.endpoint("alice", "https://example.com/alice", "");
    let html = Browser::new(&env, Some("root")).get("/endpoints").text();
    assert!(html.contains("<th scope=\"col\">User</th>") && html.contains("<td>alice</td>"));
    assert_eq!(Browser::new(&env, Some("root")).get(&format!("/endpoints/{id}")).status, 200);
    assert!(Browser::new(&env, Some("bob")).get("/endpoints").text().contains("No endpoints yet"));
}

#[test]
fn form_failures_say_what_to_fix() {
    let env = Env::new();
    let (id, _) = env.endpoint("alice", "https://example.com/h", "");
    let mut b = Browser::new(&env, Some("alice"));
    b.get("/tokens");
    let long = "x".repeat(101);
    let r = b.post("/tokens", &[("label", &long)]);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("The label must be at most 100 characters"));
    assert_eq!(env.count("tokens"), 0);
    b.get(&format!("/endpoints/{id}"));
    let r = b.post(&format!("/endpoints/{id}/rotate-secret"), &[("grace", "forever")]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("grace period is not one of the offered choices"));
    assert_eq!(env.json(&["endpoint", "show", &id])["keys"].as_array().unwrap().len(), 1);
    let r = b.post(&format!("/endpoints/{id}"), &[("url", "https://example.com/h"), ("event_types", "email.nope")]);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("The event types &quot;email.nope&quot; matches no event type"));
    assert_eq!(b.get("/endpoints/ep_01M8NOTAREALID0000000000000").status, 404);
    assert_eq!(b.get("/deliveries/dlv_nope").status, 404);
    let r = b.get("/no/such/page");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("There is no page at this address."));
    let r = Browser::new(&env, Some("alice")).post_raw("/endpoints", &[]);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET"));
}

#[test]
fn dashboard_counts_stop_at_the_cap_and_the_status_command_is_exact() {
    let env = Env::new();
    let (ep, _) = env.endpoint("alice", "https://example.com/a", "");
    // 10,005 pending deliveries, inserted directly (the intake path is tested elsewhere).
    {
        let tx = env.db();
        let user: i64 = tx.query_row("SELECT id FROM users WHERE name = 'alice'", [], |r| r.get(0)).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        tx.execute_batch("BEGIN").unwrap();
        for i in 0..10_005 {
            let id = webhooks::model::time::new_id("evt");
            tx.execute("INSERT INTO events (id, user_id, type, request_hash, payload, created_at) VALUES (?1, ?2, 'email.received', 'h', '{}', ?3)", webhooks::sql_params![id, user, now]).unwrap();
            let dlv = webhooks::model::time::new_id("dlv");
            tx.execute(
                "INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, created_at) VALUES (?1, ?2, ?3, ?4, 'pending', ?5)",
                webhooks::sql_params![dlv, id, ep, user, now],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO queue (delivery_id, user_id, endpoint_id, status, next_attempt_at) VALUES (?1, ?2, ?3, 'pending', ?4)",
                webhooks::sql_params![dlv, user, ep, now + 3_600_000 + i],
            )
            .unwrap();
        }
        tx.execute_batch("COMMIT").unwrap();
    }
    let html = Browser::new(&env, Some("alice")).get("/").text();
    assert!(html.contains("<strong>10000+</strong> pending"), "{html}");
    assert!(html.contains("<dd>10000+ (0 due now)</dd>"), "{html}");
    let status = env.json(&["status"]);
    assert_eq!(status["pending"], 10_005, "the operator's command counts exactly");
    assert_eq!(status["capped"], false);
}

#[test]
fn a_host_that_does_not_resolve_is_saved_with_a_warning_on_the_page_the_api_and_the_cli() {
    let env = Env::new();
    let typo = "https://exmaple.invalid/hook"; // RFC 6761: .invalid never resolves
    let mut b = Browser::new(&env, Some("alice"));
    b.get("/endpoints/new");
    let r = b.post("/endpoints/new", &[("url", typo), ("event_types", "*"), ("active", "on")]);
    assert_eq!(r.status, 303, "saved, not refused: {}", r.text());
    let html = b.get(r.header("Location").unwrap().strip_prefix("/cgi-bin/webhooks.cgi").unwrap()).text();
    assert!(html.contains("class=\"warning\"") && html.contains("exmaple.invalid does not resolve"), "{html}");
    assert!(html.contains("E_DNS"));

    let token = env.user_token("bob");
    let r = common::api(&env, &token, "POST", "/api/v1/endpoints", Some(&format!(r#"{{"url":"{typo}"}}"#)));
    assert_eq!(r.status, 201);
    let v = r.json();
    assert!(v["warnings"][0].as_str().unwrap().contains("exmaple.invalid does not resolve"), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let fixed = common::api(
        &env,
        &token,
        "PATCH",
        &format!("/api/v1/endpoints/{id}"),
        Some(r#"{"url":"http://127.0.0.1:9/hook"}"#),
    );
    assert_eq!(fixed.status, 200);
    assert!(fixed.json().get("warnings").is_none(), "a reachable address: no warning");

    let out = env.run(&["endpoint", "add", "--user", "carol", "--url", typo, "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("webhooks: warning: exmaple.invalid does not resolve"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    assert_eq!(env.count("endpoints"), 3);
}

#[test]
fn error_pages_keep_the_navigation_for_the_signed_in_and_are_html_for_browsers() {
    let env = Env::new();
    let mut b = Browser::new(&env, Some("alice"));
    for path in ["/no-such-page", "/endpoints/ep_00000000000000000000000000"] {
        let r = b.get(path);
        assert_eq!(r.status, 404, "{path}");
        let html = r.text();
        assert!(html.contains("<nav aria-label=\"Main\">") && html.contains("<span>alice</span>"), "{path}: {html}");
        assert!(html.contains("Go to the dashboard"), "{path}");
        // Its sign-out form works like every page's.
        assert!(html.contains("action=\"/cgi-bin/webhooks.cgi/logout\"") && b.csrf.is_some());
    }
    assert_eq!(b.post("/logout", &[]).status, 200, "the 404 page's CSRF token is valid");
    let r = Browser::new(&env, None).get("/no-such-page");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("<nav"), "no navigation for strangers");

    // The wrapper names a .env that is missing: pages get an HTML page, the API JSON.
    let missing = env.dir.path().join("gone/.env");
    let extra = [("WEBHOOKS_ENV", missing.to_str().unwrap())];
    let mut page = env.command("webhooks-cgi");
    page.envs(extra)
        .env("REQUEST_METHOD", "GET")
        .env("PATH_INFO", "/endpoints")
        .env("SCRIPT_NAME", "/cgi-bin/webhooks.cgi");
    let out = page.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("Status: 500"), "{text}");
    assert!(text.contains("Content-Type: text/html") && text.contains("<h1>500 Internal Server Error</h1>"), "{text}");
    assert!(text.contains("not set up correctly") && !text.contains("\"code\""), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("WEBHOOKS_ENV names"), "the reason goes to the error log");
    let mut api = env.command("webhooks-cgi");
    api.envs(extra).env("REQUEST_METHOD", "GET").env("PATH_INFO", "/api/v1/endpoints");
    let text = String::from_utf8_lossy(&api.output().unwrap().stdout).into_owned();
    assert!(text.contains("application/json") && text.contains("\"misconfigured\""), "{text}");
}
