//! An endpoint's own headers (docs/signing.md, "Custom headers" and "Spatie"): custom headers
//! arrive with every delivery, are sealed at rest and never shown or logged in clear, names the
//! product sets are refused; `signature_compat: spatie` adds the signature an unmodified
//! spatie/laravel-webhook-client receiver checks, verified here by PHP's own `hash_hmac` the way
//! the package does.

use serde_json::json;

use crate::common::{self, api, Env, Receiver};

const TOKEN: &str = "Bearer s3cr3t-tenant-token-7Qx";

#[test]
fn custom_headers_arrive_are_sealed_and_never_shown_and_reserved_names_are_refused() {
    let mut env = Env::new();
    env.set("WEBHOOKS_LOG_BODIES", "true");
    let rx = Receiver::always(200);
    let auth = format!("Authorization: {TOKEN}");
    let added = env.json(&[
        "endpoint",
        "add",
        "--user",
        "alice",
        "--url",
        &rx.url("/"),
        "--header",
        &auth,
        "--header",
        "X-Tenant: acme",
    ]);
    assert_eq!(added["headers"], json!(["Authorization", "X-Tenant"]), "names only: {added}");
    assert!(!added.to_string().contains("s3cr3t"), "{added}");
    let ep = added["id"].as_str().unwrap().to_string();
    env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<m@x>","size_bytes":1}"#);
    let summary = env.run(&["dispatch", "--json"]);
    let r = &rx.received()[0];
    assert_eq!((r.header("Authorization"), r.header("X-Tenant")), (Some(TOKEN), Some("acme")));
    assert!(r.header("X-QSM-Signature").is_some() && r.header("webhook-signature").is_some());
    // Not in the database (sealed), the log, the CLI, the API or the test button's result.
    for bytes in env.stored_bytes() {
        assert!(!String::from_utf8_lossy(&bytes).contains("s3cr3t"), "stored in clear");
    }
    let printed = [
        String::from_utf8_lossy(&summary.stdout).to_string(),
        String::from_utf8_lossy(&summary.stderr).to_string(),
        env.ok(&["deliveries", "--json"]),
        env.ok(&["endpoint", "show", &ep, "--json"]),
    ];
    let token = env.user_token("alice");
    let tested = api(&env, &token, "POST", &format!("/api/v1/endpoints/{ep}/test"), None);
    assert_eq!(tested.status, 200);
    assert!(tested.text().contains("(sealed)"), "{}", tested.text());
    assert_eq!(rx.received().last().unwrap().header("Authorization"), Some(TOKEN), "the test sends them too");
    for text in printed
        .iter()
        .chain([tested.text(), api(&env, &token, "GET", &format!("/api/v1/endpoints/{ep}"), None).text()].iter())
    {
        assert!(!text.contains("s3cr3t"), "shown in clear: {text}");
    }

    // Names the product sets itself are refused, with what to fix, and nothing changes.
    let before = env.count("endpoints");
    for (name, value) in
        [("X-QSM-Id", "x"), ("webhook-signature", "x"), ("svix-id", "x"), ("Content-Type", "text/plain"), ("host", "x")]
    {
        let body = json!({"url": rx.url("/"), "headers": {name: value}}).to_string();
        let r = api(&env, &token, "POST", "/api/v1/endpoints", Some(&body));
        assert_eq!(r.status, 422, "{name}: {}", r.text());
        assert!(r.text().contains("is set by the product itself"), "{}", r.text());
    }
    for bad in [json!({"Bad Name": "x"}), json!({"X-Ok": "line\r\nX-Injected: 1"}), json!({"X-Ok": 1})] {
        let body = json!({"url": rx.url("/"), "headers": bad}).to_string();
        assert_eq!(api(&env, &token, "POST", "/api/v1/endpoints", Some(&body)).status, 422, "{bad}");
    }
    let out = env.run(&["endpoint", "update", &ep, "--header", "User-Agent: mine"]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("User-Agent is set by the product itself"), "{err}");
    assert_eq!(env.count("endpoints"), before);
    assert_eq!(env.json(&["endpoint", "show", &ep])["headers"], json!(["Authorization", "X-Tenant"]), "unchanged");

    // PATCH replaces them; an empty object removes them.
    let r = api(&env, &token, "PATCH", &format!("/api/v1/endpoints/{ep}"), Some(r#"{"headers":{"X-Tenant":"beta"}}"#));
    assert_eq!((r.status, r.json()["headers"].clone()), (200, json!(["X-Tenant"])));
    env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<m2@x>","size_bytes":1}"#);
    env.dispatch();
    let last = rx.received().last().unwrap().headers.clone();
    assert!(last.iter().any(|(k, v)| k.eq_ignore_ascii_case("X-Tenant") && v == "beta"), "{last:?}");
    assert!(!last.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")));
    // A new WEBHOOKS_SECRET_KEY re-seals them: they still arrive after rotate-key.
    env.ok(&["rotate-key"]);
    env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<m3@x>","size_bytes":1}"#);
    env.dispatch();
    let last = rx.received().last().unwrap().headers.clone();
    assert!(last.iter().any(|(k, v)| k.eq_ignore_ascii_case("X-Tenant") && v == "beta"), "{last:?}");
    let cleared = env.json(&["endpoint", "update", &ep, "--clear-headers"]);
    assert_eq!(cleared["headers"], json!([]));
    assert_eq!(env.count("endpoints WHERE headers_sealed IS NOT NULL"), 0);
}

#[test]
fn a_spatie_receiver_accepts_our_deliveries_checked_with_phps_own_hash_hmac() {
    if !common::have("php-cgi", "apt-get install php-cgi") {
        return;
    }
    let env = Env::new();
    let rx = Receiver::always(200);
    let added =
        env.json(&["endpoint", "add", "--user", "alice", "--url", &rx.url("/"), "--signature-compat", "spatie"]);
    assert_eq!(added["signature_compat"], "spatie");
    let secret = added["secret"].as_str().unwrap().to_string();
    env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<m@x>","size_bytes":1}"#);
    env.dispatch();
    let r = &rx.received()[0];
    let signature = r.header("Signature").expect("the Signature header").to_string();
    // spatie/laravel-webhook-client's DefaultSignatureValidator, with its default config
    // (signature_header_name 'Signature', signing_secret from WEBHOOK_CLIENT_SECRET).
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("validate.php");
    std::fs::write(
        &script,
        r#"<?php
$payload = file_get_contents(getenv('BODY_FILE'));
$signature = getenv('HTTP_SIGNATURE');
$signingSecret = getenv('WEBHOOK_CLIENT_SECRET');
if (! $signature) { echo "invalid: no signature"; exit(1); }
$computedSignature = hash_hmac('sha256', $payload, $signingSecret);
echo hash_equals($computedSignature, $signature) ? "valid" : "invalid";
"#,
    )
    .unwrap();
    let body_file = dir.path().join("body");
    let run = |body: &[u8], sig: &str| -> String {
        std::fs::write(&body_file, body).unwrap();
        let out = std::process::Command::new("php-cgi")
            .args(["-q", "-f"])
            .arg(&script)
            .env("BODY_FILE", &body_file)
            .env("HTTP_SIGNATURE", sig)
            .env("WEBHOOK_CLIENT_SECRET", &secret)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(run(&r.body, &signature), "valid");
    let mut tampered = r.body.clone();
    tampered[0] = b' ';
    assert_eq!(run(&tampered, &signature), "invalid", "the check can fail");
    // Each attempt carries it (retries are signed again), beside the product's own signatures.
    assert!(r.header("X-QSM-Signature").is_some());
}
