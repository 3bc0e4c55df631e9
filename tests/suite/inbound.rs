//! Inbound sources end to end through the real binaries: a provider's request to the CGI's
//! `/in/{token}`, verified, logged, deduplicated and relayed by the dispatcher to a loopback
//! receiver. Signatures here are made with the providers' documented rules; the providers' own
//! libraries sign the same cases in tests/external/inbound_providers.py.

use std::time::Duration;

use crate::common::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

pub(crate) fn hmac256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Unix seconds just after a second began: a request signed 301 s ahead of it reaches the server
/// while the server's clock still reads the same second (else 301 s could shrink to 300).
fn at_a_fresh_second() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    std::thread::sleep(Duration::from_nanos(1_000_000_000 - u64::from(now.subsec_nanos())));
    now_s()
}

/// An installation with one source; returns its JSON (`url`, `secret`, `forwards`).
fn source(env: &Env, args: &[&str]) -> Value {
    let mut a = vec!["source", "add"];
    a.extend_from_slice(args);
    env.json(&a)
}

fn token(source: &Value) -> String {
    let url = source["url"].as_str().unwrap();
    url[url.find("/in/").unwrap()..].to_string()
}

fn post(env: &Env, path: &str, headers: &[(&str, &str)], body: &[u8]) -> CgiResponse {
    env.cgi("POST", path, headers, body)
}

fn stripe_header(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hex(&hmac256(secret.as_bytes(), &[format!("{t}.").as_bytes(), body])))
}

fn setup() -> (Env, Receiver) {
    let env = Env::new();
    env.init();
    (env, Receiver::always(200))
}

fn requests(env: &Env, outcome: &str) -> i64 {
    env.db().query_row("SELECT count(*) FROM inbound_requests WHERE outcome = ?1", [outcome], |r| r.get(0)).unwrap()
}

#[test]
fn stripe_accepts_dedupes_and_relays_the_raw_body_once() {
    let (env, recv) = setup();
    let secret = "whsec_stripe_test_secret";
    let s = source(
        &env,
        &["--name", "stripe", "--provider", "stripe", "--secret", secret, "--forward-url", &recv.url("/relay")],
    );
    let path = token(&s);
    // Whitespace and key order exactly as sent: the relay must carry these bytes.
    let body = b"{\n  \"id\": \"evt_1NG8Du2eZvKYlo2CUI79vXWy\",\n  \"type\": \"charge.succeeded\",\n  \"data\": {\"amount\": 2000}\n}";
    let t = now_s();
    let sig = stripe_header(secret, t, body);
    let headers = [("Content-Type", "application/json; charset=utf-8"), ("Stripe-Signature", sig.as_str())];

    let first = post(&env, &path, &headers, body);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["status"], "accepted");
    let again = post(&env, &path, &headers, body);
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["status"], "duplicate");

    let mut flipped = body.to_vec();
    flipped[20] ^= 0x01;
    let bad = post(&env, &path, &headers, &flipped);
    assert_eq!(bad.status, 401);
    assert_eq!(bad.json()["code"], "E_SIGNATURE");
    let wrong = stripe_header("whsec_not_it", t, body);
    let r = post(&env, &path, &[("Stripe-Signature", wrong.as_str())], body);
    assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (401, "E_SIGNATURE"));
    for off in [301, -301] {
        let stale = stripe_header(secret, at_a_fresh_second() + off, body);
        let r = post(&env, &path, &[("Stripe-Signature", stale.as_str())], body);
        assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (401, "E_TIMESTAMP"), "{off} s off");
    }
    assert_eq!((requests(&env, "accepted"), requests(&env, "duplicate"), requests(&env, "rejected")), (1, 1, 4));

    env.dispatch();
    let got = recv.received();
    assert_eq!(got.len(), 1, "one relay for the event, not one per request");
    let relayed = &got[0];
    assert_eq!(relayed.body, body.to_vec(), "the provider's body byte for byte");
    assert_eq!(relayed.header("content-type"), Some("application/json; charset=utf-8"));
    assert_eq!(relayed.header("x-qsm-source"), Some("stripe"));
    assert_eq!(relayed.header("x-qsm-provider"), Some("stripe"));
    assert_eq!(relayed.header("x-qsm-verified"), Some("true"));
    assert_eq!(relayed.header("x-qsm-event"), Some("stripe.charge.succeeded"));
    let event_id: String = env
        .db()
        .query_row("SELECT event_id FROM inbound_requests WHERE outcome = 'accepted'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(relayed.header("webhook-id"), Some(event_id.as_str()), "webhook-id is the relayed event's id");
    // The relay verifies with the forward destination's own secret.
    let fwd_secret = s["forwards"][0]["secret"].as_str().unwrap();
    let key = STANDARD.decode(fwd_secret.trim_start_matches("whsec_")).unwrap();
    let ts = relayed.header("webhook-timestamp").unwrap();
    let expect = STANDARD.encode(hmac256(&key, &[format!("{event_id}.{ts}.").as_bytes(), body]));
    assert_eq!(relayed.header("webhook-signature"), Some(format!("v1,{expect}").as_str()));
}

#[test]
fn unknown_disabled_and_url_checks() {
    let (env, _recv) = setup();
    let s = source(&env, &["--name", "gh", "--provider", "github"]);
    let path = token(&s);
    assert_eq!(env.cgi("GET", &path, &[], b"").status, 200);
    assert_eq!(env.cgi("HEAD", &path, &[], b"").status, 200);
    assert_eq!(env.cgi("PUT", &path, &[], b"").status, 405);
    let unknown = post(&env, "/in/in_nosuchtoken", &[], b"{}");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "E_NOT_FOUND");
    env.ok(&["source", "disable", "gh"]);
    assert_eq!(post(&env, &path, &[], b"{}").status, 404, "a disabled source answers 404, never 410");
    assert_eq!(env.cgi("GET", &path, &[], b"").status, 404);
    assert_eq!(env.count("inbound_requests"), 0, "requests to no active source are not logged");
}

#[test]
fn rotation_keeps_both_secrets_and_a_fixed_reject_is_rechecked_and_relayed() {
    let (env, recv) = setup();
    let s = source(
        &env,
        &["--name", "gh", "--provider", "github", "--secret", "old-secret", "--forward-url", &recv.url("/r")],
    );
    let path = token(&s);
    let sign = |secret: &str, body: &[u8]| format!("sha256={}", hex(&hmac256(secret.as_bytes(), &[body])));
    let post_gh = |secret: &str, id: &str, body: &[u8]| {
        let sig = sign(secret, body);
        post(
            &env,
            &path,
            &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", id), ("X-GitHub-Event", "push")],
            body,
        )
    };
    // The provider already signs with a secret this source does not know yet.
    let early = post_gh("new-secret", "d-1", br#"{"ref":"refs/heads/main","n":1}"#);
    assert_eq!(early.status, 401);
    let reject_id = early.json()["id"].as_str().unwrap().to_string();

    let rotated = env.json(&["source", "rotate-secret", "gh", "--secret", "new-secret"]);
    assert!(rotated["previous_secrets_verify_until"].is_string());
    assert_eq!(post_gh("old-secret", "d-2", br#"{"n":2}"#).json()["status"], "accepted");
    assert_eq!(post_gh("new-secret", "d-3", br#"{"n":3}"#).json()["status"], "accepted");

    let counts = |env: &Env| env.json(&["source", "show", "gh"])["counts_24h"].clone();
    assert_eq!((counts(&env)["accepted"].as_i64(), counts(&env)["rejected"].as_i64()), (Some(2), Some(1)));
    let re = env.json(&["inbound", "recheck", &reject_id]);
    assert_eq!(re["outcome"], "accepted");
    assert_eq!(re["deliveries"], 1);
    // It counts once, as what it became.
    let c = counts(&env);
    assert_eq!((c["accepted"].as_i64(), c["rejected"].as_i64()), (Some(3), Some(0)), "{c}");
    let again = env.run(&["inbound", "recheck", &reject_id]);
    assert!(!again.status.success(), "an accepted request is not re-checked twice");
    env.dispatch();
    let bodies: Vec<Vec<u8>> = recv.received().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies.len(), 3);
    assert!(bodies.contains(&br#"{"ref":"refs/heads/main","n":1}"#.to_vec()), "the rechecked request is relayed");
}

#[test]
fn a_github_replay_under_a_new_unsigned_id_is_accepted_but_flagged() {
    let (env, recv) = setup();
    let forward = recv.url("/gh");
    let s = source(&env, &["--name", "gh", "--provider", "github", "--secret", "k", "--forward-url", &forward]);
    let path = token(&s);
    let body = br#"{"action":"opened"}"#;
    let sig = format!("sha256={}", hex(&hmac256(b"k", &[body])));
    let send = |id: &str| post(&env, &path, &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", id)], body);
    let first = send("72d3162e-1");
    assert_eq!(first.json()["status"], "accepted");
    assert_eq!(send("72d3162e-1").json()["status"], "duplicate", "same delivery id: a retry");
    let replay = send("72d3162e-2");
    assert_eq!(replay.json()["status"], "accepted");
    let listed = env.json(&["inbound", "--source", "gh", "--outcome", "accepted"]);
    let flagged: Vec<&Value> = listed.as_array().unwrap().iter().filter(|r| r["replay_of"].is_string()).collect();
    assert_eq!(flagged.len(), 1, "{listed:#}");
    assert_eq!(flagged[0]["dedupe_key"], "72d3162e-2");
    assert_eq!(flagged[0]["dedupe_signed"], false);
    // The captured body and signature without the delivery id: rejected with its own reason,
    // not accepted under the body's hash.
    let bare = post(&env, &path, &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Event", "release")], body);
    assert_eq!(bare.status, 401, "{}", bare.text());
    assert_eq!(bare.json()["reason"], "delivery_id_missing");
    // The relay of the flagged one says what it repeats; the first relay does not.
    env.dispatch();
    let got = recv.received();
    assert_eq!(got.len(), 2, "two accepted, two relays");
    let replay_of: Vec<Option<&str>> = got.iter().map(|r| r.header("x-qsm-replay-of")).collect();
    let first_id = first.json()["id"].as_str().unwrap().to_string();
    assert!(replay_of.contains(&None) && replay_of.contains(&Some(first_id.as_str())), "{replay_of:?}");
}

/// A request signed with the `svix-*` headers and replayed with an added, unsigned `webhook-id`
/// is the same event: its duplicate key is the verified family's id.
#[test]
fn an_unsigned_header_of_the_other_family_never_changes_the_duplicate_key() {
    let (env, _recv) = setup();
    let s = source(&env, &["--name", "sw", "--provider", "standard"]);
    let path = token(&s);
    let secret = s["secret"].as_str().unwrap();
    let key = STANDARD.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let body = br#"{"type":"invoice.paid"}"#;
    let t = now_s().to_string();
    let sig = format!("v1,{}", STANDARD.encode(hmac256(&key, &[format!("msg_9.{t}.").as_bytes(), body])));
    let signed = [("svix-id", "msg_9"), ("svix-timestamp", t.as_str()), ("svix-signature", sig.as_str())];
    assert_eq!(post(&env, &path, &signed, body).json()["status"], "accepted");
    let mut replay = signed.to_vec();
    replay.push(("webhook-id", "anything"));
    assert_eq!(post(&env, &path, &replay, body).json()["status"], "duplicate");
    assert_eq!(requests(&env, "accepted"), 1);
}

#[test]
fn postmark_credentials_oversize_bodies_and_slack_challenges() {
    let (env, _recv) = setup();
    let s = source(&env, &["--name", "mail", "--provider", "postmark", "--max-body", "2KiB"]);
    let path = token(&s);
    let password = s["secret"].as_str().unwrap();
    assert!(s["provider_url"].as_str().unwrap().contains(&format!("postmark:{password}@")));
    let auth = |u: &str, p: &str| format!("Basic {}", STANDARD.encode(format!("{u}:{p}")));
    let body = br#"{"MessageID":"b7bc2f4a-e38e-4336-af7d-e6c392c2f817","From":"a@example.net"}"#;
    let good = auth("postmark", password);
    let r = post(&env, &path, &[("Authorization", good.as_str())], body);
    assert_eq!(r.json()["status"], "accepted");
    let bad = auth("postmark", "guess");
    let r = post(&env, &path, &[("Authorization", bad.as_str())], body);
    assert_eq!((r.status, r.json()["code"].as_str().unwrap()), (401, "E_AUTH"), "401, never 403");
    let r = post(&env, &path, &[], body);
    assert_eq!(r.json()["reason"], "credentials_missing");
    let big = vec![b'x'; 3000];
    let r = post(&env, &path, &[("Authorization", good.as_str())], &big);
    assert_eq!(r.status, 413);
    let logged: (String, Option<String>, i64, bool) = env
        .db()
        .query_row(
            "SELECT outcome, reason, body_size, body IS NULL FROM inbound_requests WHERE reason = 'body_too_large'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!(logged, ("rejected".into(), Some("body_too_large".into()), 3000, true));
    // Headers are stored redacted.
    let stored: String = env.db().query_row("SELECT headers FROM inbound_requests LIMIT 1", [], |r| r.get(0)).unwrap();
    assert!(!stored.contains(password) && stored.contains("Basic [redacted]"), "{stored}");

    let slack =
        source(&env, &["--name", "slack", "--provider", "slack", "--secret", "8f742231b10e8888abcd99yyyzzz85a5"]);
    let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = now_s().to_string();
    let sig =
        format!("v0={}", hex(&hmac256(b"8f742231b10e8888abcd99yyyzzz85a5", &[format!("v0:{ts}:").as_bytes(), body])));
    let r = post(
        &env,
        &token(&slack),
        &[("X-Slack-Request-Timestamp", ts.as_str()), ("X-Slack-Signature", sig.as_str())],
        body,
    );
    assert_eq!(r.json()["challenge"], "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P");
}

#[test]
fn circle_fetches_each_key_once_and_answers_503_when_the_key_server_is_down() {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::EncodePublicKey;
    let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
    let der = key.verifying_key().to_public_key_der().unwrap();
    let public = STANDARD.encode(der.as_bytes());
    let answer = format!(
        r#"{{"data":{{"id":"a1b2c3d4-0000-4000-8000-000000000001","algorithm":"ECDSA_SHA_256","publicKey":"{public}","createdDate":"2026-01-01T00:00:00Z"}}}}"#
    );
    let keys = Receiver::start(move |_, r| {
        if r.header("authorization") == Some("Bearer TEST_API_KEY:abc") {
            Reply::Body(200, answer.clone())
        } else {
            Reply::Status(401)
        }
    });
    let (env, _recv) = setup();
    let key_url = keys.url("/v2/notifications/publicKey");
    let s = source(
        &env,
        &["--name", "circle", "--provider", "circle", "--key-url", &key_url, "--api-key", "TEST_API_KEY:abc"],
    );
    let path = token(&s);
    let sign = |body: &[u8]| {
        let sig: Signature = key.sign(body);
        STANDARD.encode(sig.to_der().as_bytes())
    };
    let send = |id: &str, key_id: &str| {
        let body = format!(
            r#"{{"subscriptionId":"s","notificationId":"{id}","notificationType":"transfers","notification":{{}}}}"#
        );
        let sig = sign(body.as_bytes());
        post(&env, &path, &[("X-Circle-Signature", sig.as_str()), ("X-Circle-Key-Id", key_id)], body.as_bytes())
    };
    let kid = "a1b2c3d4-0000-4000-8000-000000000001";
    assert_eq!(send("n-1", kid).json()["status"], "accepted");
    assert_eq!(send("n-2", kid).json()["status"], "accepted");
    assert_eq!(keys.len(), 1, "the key server is asked once for two requests");
    assert_eq!(send("n-2", kid).json()["status"], "duplicate");
    drop(keys);
    std::thread::sleep(Duration::from_millis(50));
    let r = send("n-3", "ffffffff-0000-4000-8000-00000000000f");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["reason"], "key_unavailable");
    // A stored key still verifies without the key server.
    assert_eq!(send("n-4", kid).json()["status"], "accepted");
}

#[test]
fn verification_failing_and_silence_are_each_told_once() {
    let (mut env, _recv) = setup();
    let mail = env.stub_sendmail();
    let s = source(&env, &["--name", "gh", "--provider", "github", "--secret", "k", "--expected-gap", "1h"]);
    let path = token(&s);
    for i in 0..8 {
        let r = post(
            &env,
            &path,
            &[("X-Hub-Signature-256", "sha256=not-hex"), ("X-GitHub-Delivery", &format!("d{i}"))],
            b"{}",
        );
        assert_eq!(r.status, 401);
    }
    let told = |kind: &str| -> i64 {
        env.db().query_row("SELECT count(*) FROM notices WHERE type = ?1", [kind], |r| r.get(0)).unwrap()
    };
    assert_eq!(told("source.verification_failing"), 1, "raised once, not on each reject");
    let payload: String = env
        .db()
        .query_row("SELECT payload FROM notices WHERE type = 'source.verification_failing'", [], |r| r.get(0))
        .unwrap();
    let v: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(v["data"]["top_reason"], "signature_malformed");
    assert_eq!(v["data"]["rejected"], 5, "raised when the fifth request met the rule");
    env.dispatch();
    assert_eq!(told("source.silent"), 0, "not silent within the gap");
    env.set_clock(Duration::from_secs(2 * 3600));
    env.dispatch();
    env.dispatch();
    assert_eq!(told("source.silent"), 1, "silent once, however many runs");
    let mails: Vec<String> =
        std::fs::read_dir(&mail).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
    assert!(mails.iter().any(|m| m.contains("Subject: Inbound source silent: gh")), "{mails:#?}");
    assert!(mails.iter().any(|m| m.contains("Subject: Inbound source failing verification: gh")));
    // The failing alert ended with its hour: a new episode is told again.
    let sig = format!("sha256={}", hex(&hmac256(b"k", &[b"{}"])));
    assert_eq!(
        post(&env, &path, &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", "ok")], b"{}").status,
        200
    );
    let silent: Option<i64> = env.db().query_row("SELECT silent_since FROM sources", [], |r| r.get(0)).unwrap();
    assert_eq!(silent, None, "an accepted request ends the silence");
}

#[test]
fn bodies_and_metadata_expire_on_their_own_keys() {
    let (mut env, _recv) = setup();
    env.set("WEBHOOKS_INBOUND_BODY_RETENTION", "1d");
    env.set("WEBHOOKS_INBOUND_RETENTION", "5d");
    let s = source(&env, &["--name", "gh", "--provider", "github", "--secret", "k"]);
    let sig = format!("sha256={}", hex(&hmac256(b"k", &[b"{}"])));
    post(&env, &token(&s), &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", "a")], b"{}");
    let bodies = || -> i64 {
        env.db().query_row("SELECT count(*) FROM inbound_requests WHERE body IS NOT NULL", [], |r| r.get(0)).unwrap()
    };
    assert_eq!(bodies(), 1);
    env.set_clock(Duration::from_secs(2 * 86400));
    env.ok(&["purge"]);
    assert_eq!((bodies(), env.count("inbound_requests")), (0, 1), "the body goes first");
    // Within the metadata retention the duplicate check still holds.
    let r = post(&env, &token(&s), &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", "a")], b"{}");
    assert_eq!(r.json()["status"], "duplicate");
    env.set_clock(Duration::from_secs(8 * 86400));
    env.ok(&["purge"]);
    assert_eq!(env.count("inbound_requests"), 0);
}

#[test]
fn bad_source_settings_are_refused_and_change_nothing() {
    let (env, _recv) = setup();
    let cases: &[&[&str]] = &[
        &["--name", "s", "--provider", "paypal"],
        &["--name", "s", "--provider", "stripe"],
        &["--name", "bad name", "--provider", "github"],
        &["--name", "s", "--provider", "hmac"],
        &["--name", "s", "--provider", "github", "--header", "X-Sig"],
        &["--name", "s", "--provider", "standard", "--secret", "not-whsec"],
        &["--name", "s", "--provider", "github", "--forward-url", "http://10.0.0.1/x"],
    ];
    for args in cases {
        let mut a = vec!["source", "add"];
        a.extend_from_slice(args);
        let out = env.run(&a);
        assert!(!out.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    assert_eq!(env.count("sources"), 0);
    assert_eq!(env.count("endpoints"), 0);
}

#[test]
fn the_api_manages_sources_and_reads_the_log_for_admins_only() {
    let (env, recv) = setup();
    let app = env.app_token();
    let create = format!(
        r#"{{"name":"shop","provider":"shopify","secret":"shpss_123","forward_urls":["{}"],"expected_gap_seconds":3600}}"#,
        recv.url("/shop")
    );
    let r = api(&env, &app, "POST", "/api/v1/sources", Some(&create));
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["secret"], "shpss_123");
    assert!(created["forwards"][0]["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["expected_gap_seconds"], 3600);

    // Refusals change nothing.
    let before = env.count("sources");
    for bad in [
        r#"{"name":"x","provider":"stripe"}"#,
        r#"{"name":"x","provider":"nope","secret":"s"}"#,
        r#"{"name":"shop","provider":"github"}"#,
        r#"{"name":"x","provider":"github","settings":{"header":"X-Sig"}}"#,
        r#"{"provider":"github"}"#,
    ] {
        let r = api(&env, &app, "POST", "/api/v1/sources", Some(bad));
        assert!(matches!(r.status, 409 | 422), "{bad}: {} {}", r.status, r.text());
    }
    assert_eq!(env.count("sources"), before);
    let user = env.user_token("alice");
    assert_eq!(api(&env, &user, "GET", "/api/v1/sources", None).status, 403);
    assert_eq!(api(&env, &user, "GET", "/api/v1/inbound", None).status, 403);

    let url = created["url"].as_str().unwrap();
    let path = &url[url.find("/in/").unwrap()..];
    let body = br#"{"id":820982911946154508}"#;
    let sig = STANDARD.encode(hmac256(b"shpss_123", &[body]));
    let headers = [
        ("X-Shopify-Hmac-Sha256", sig.as_str()),
        ("X-Shopify-Webhook-Id", "w-1"),
        ("X-Shopify-Topic", "orders/create"),
    ];
    assert_eq!(post(&env, path, &headers, body).json()["status"], "accepted");
    assert_eq!(post(&env, path, &[("X-Shopify-Hmac-Sha256", "AAAA")], body).status, 401);

    let list = api(&env, &app, "GET", &format!("/api/v1/inbound?source={id}&outcome=rejected"), None).json();
    let rejected = &list["requests"][0];
    assert_eq!(rejected["reason"], "signature_mismatch");
    let one = api(&env, &app, "GET", &format!("/api/v1/inbound/{}", rejected["id"].as_str().unwrap()), None).json();
    assert_eq!(one["body_text"], std::str::from_utf8(body).unwrap());
    let re = api(&env, &app, "POST", &format!("/api/v1/inbound/{}/recheck", rejected["id"].as_str().unwrap()), None);
    assert_eq!((re.status, re.json()["outcome"].as_str().unwrap()), (200, "rejected"), "still the wrong signature");

    let shown = api(&env, &app, "GET", &format!("/api/v1/sources/{id}"), None).json();
    assert_eq!(shown["counts_24h"]["accepted"], 1);
    assert_eq!(shown["counts_24h"]["rejected"], 1);
    let rotated =
        api(&env, &app, "POST", &format!("/api/v1/sources/{id}/rotate-secret"), Some(r#"{"secret":"shpss_456"}"#));
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    assert_eq!(rotated.json()["secrets"], 2);
    let off = api(&env, &app, "PATCH", &format!("/api/v1/sources/{id}"), Some(r#"{"active":false}"#));
    assert_eq!(off.json()["active"], false);
    assert_eq!(post(&env, path, &headers, body).status, 404);
    assert_eq!(api(&env, &app, "DELETE", &format!("/api/v1/sources/{id}"), None).status, 200);
    assert_eq!((env.count("sources"), env.count("inbound_requests"), env.count("endpoints")), (0, 0, 0));
}

#[test]
fn the_pages_create_a_source_show_its_requests_and_recheck_a_reject() {
    let (mut env, recv) = setup();
    env.set("WEBHOOKS_ADMINS", "root");
    let mut alice = Browser::new(&env, Some("alice"));
    assert_eq!(alice.get("/sources").status, 403, "sources are for admins");
    assert!(!alice.get("/").text().contains("/sources\""), "no Sources link for users");

    let mut root = Browser::new(&env, Some("root"));
    assert!(root.get("/").text().contains("Sources</a>"));
    assert_eq!(root.get("/sources/new").status, 200);
    let bad = root.post("/sources/new", &[("name", "pm"), ("provider", "stripe")]);
    assert_eq!(bad.status, 422);
    assert!(bad.text().contains("hands out the signing secret"), "{}", bad.text());
    assert_eq!(env.count("sources"), 0);

    let created =
        root.post("/sources/new", &[("name", "pm"), ("provider", "postmark"), ("forward_url", &recv.url("/mail"))]);
    assert_eq!(created.status, 201, "{}", created.text());
    let html = created.text();
    // The address to paste into Postmark carries the generated password, shown once.
    let start = html.find("//postmark:").expect("the provider URL with its credentials") + "//postmark:".len();
    let password = html[start..start + html[start..].find('@').unwrap()].to_string();
    let source = env.json(&["source", "show", "pm"]);
    let id = source["id"].as_str().unwrap().to_string();
    let path = token(&source);

    // Postmark without the Authorization header (Apache without CGIPassAuth On).
    let body = br#"{"MessageID":"m-1","Subject":"<script>alert(1)</script>"}"#;
    assert_eq!(post(&env, &path, &[], body).status, 401);
    let page = root.get(&format!("/sources/{id}")).text();
    assert!(page.contains("No request to this source has carried credentials"), "the page says so");
    assert!(page.contains("add <code>CGIPassAuth On</code>"), "and how to fix it");
    let auth = format!("Basic {}", STANDARD.encode(format!("postmark:{password}")));
    assert_eq!(post(&env, &path, &[("Authorization", auth.as_str())], body).json()["status"], "accepted");
    let page = root.get(&format!("/sources/{id}")).text();
    assert!(!page.contains("No request to this source has carried credentials"), "credentials arrived since");
    assert!(page.contains("<strong>1</strong> accepted") && page.contains("<strong>1</strong> rejected"), "{page}");
    let accepted: String =
        env.db().query_row("SELECT id FROM inbound_requests WHERE outcome = 'accepted'", [], |r| r.get(0)).unwrap();
    let request = root.get(&format!("/inbound/{accepted}")).text();
    assert!(request.contains("Basic [redacted]") && !request.contains(&password));
    assert!(request.contains("&lt;script&gt;") && !request.contains("<script>alert"), "the body is escaped");

    // A GitHub reject, fixed by rotating to the provider's secret, then re-checked from its page.
    let gh = root.post("/sources/new", &[("name", "gh"), ("provider", "github"), ("forward_url", &recv.url("/gh"))]);
    assert_eq!(gh.status, 201);
    let gh = env.json(&["source", "show", "gh"]);
    let gh_id = gh["id"].as_str().unwrap().to_string();
    let body = br#"{"zen":"Design for failure."}"#;
    let sig = format!("sha256={}", hex(&hmac256(b"the-real-secret", &[body])));
    let r = post(&env, &token(&gh), &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", "g-1")], body);
    let reject = r.json()["id"].as_str().unwrap().to_string();
    assert!(root.get(&format!("/inbound/{reject}")).text().contains("Re-check with the current secrets"));
    root.get(&format!("/sources/{gh_id}"));
    let rotated =
        root.post(&format!("/sources/{gh_id}/rotate-secret"), &[("secret", "the-real-secret"), ("grace", "0")]);
    assert_eq!(rotated.status, 200);
    root.get(&format!("/inbound/{reject}"));
    let re = root.post(&format!("/inbound/{reject}/recheck"), &[]);
    assert!(re.text().contains("It verifies now: accepted, and relayed to 1 destination"), "{}", re.text());
    root.get(&format!("/sources/{gh_id}"));
    assert_eq!(root.post(&format!("/sources/{gh_id}/disable"), &[]).status, 303);
    assert_eq!(post(&env, &token(&gh), &[], body).status, 404);
    env.dispatch();
    assert_eq!(recv.len(), 2, "the Postmark mail and the re-checked GitHub event");
}

#[test]
fn unknown_circle_keys_are_not_fetched_again_and_fetches_are_capped_per_minute() {
    let keys = Receiver::always(404);
    let (env, _recv) = setup();
    let key_url = keys.url("/v2/notifications/publicKey");
    let s = source(&env, &["--name", "circle", "--provider", "circle", "--key-url", &key_url]);
    let path = token(&s);
    let body = br#"{"notificationId":"n-1","notificationType":"transfers"}"#;
    let sig = well_formed_circle_signature(body);
    let send = |key_id: &str| post(&env, &path, &[("X-Circle-Signature", &sig), ("X-Circle-Key-Id", key_id)], body);
    let kid = "0b0e6a2c-0000-4000-8000-000000000001";
    assert_eq!(send(kid).status, 401);
    assert_eq!(send(kid).status, 401);
    assert_eq!(keys.len(), 1, "a key id the server did not know is not asked for again at once");
    assert_eq!(send("not a key id/../x").status, 401);
    assert_eq!(keys.len(), 1, "a key id that is not Circle's form never reaches the key server");
    // A signature header that could never verify costs no fetch.
    for junk in ["MEUCIQDx", "not base64!", ""] {
        let r = post(
            &env,
            &path,
            &[("X-Circle-Signature", junk), ("X-Circle-Key-Id", "0b0e6a2c-0000-4000-8000-00000000aaaa")],
            body,
        );
        assert_eq!(r.status, 401, "{junk:?}");
        assert_eq!(r.json()["reason"], "signature_malformed", "{junk:?}");
    }
    assert_eq!(keys.len(), 1, "malformed signatures never reach the key server");
    // Made-up ids, each new: at most 10 requests to the key server in a minute, then 503.
    let mut statuses = Vec::new();
    for i in 2..=12 {
        statuses.push(send(&format!("0b0e6a2c-0000-4000-8000-{i:012}")).status);
    }
    assert_eq!(keys.len(), 10, "{statuses:?}");
    assert_eq!(&statuses[9..], &[503, 503], "past the cap: try again later, not a request");
}

/// A base64 DER ECDSA signature over `body` by a key nobody has stored: well-formed, so that the
/// key it names is looked up.
fn well_formed_circle_signature(body: &[u8]) -> String {
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    let key = SigningKey::from_slice(&[9u8; 32]).unwrap();
    let sig: Signature = key.sign(body);
    STANDARD.encode(sig.to_der().as_bytes())
}

/// Failed fetches count against the cap: 25 requests naming new keys against a key server that
/// answers 429 make at most 10 fetches a minute.
#[test]
fn failed_circle_key_fetches_count_against_the_cap() {
    let keys = Receiver::always(429);
    let (env, _recv) = setup();
    let s = source(&env, &["--name", "circle", "--provider", "circle", "--key-url", &keys.url("/keys")]);
    let path = token(&s);
    let body = br#"{"notificationId":"n-1"}"#;
    let sig = well_formed_circle_signature(body);
    for i in 0..25 {
        let kid = format!("0b0e6a2c-0000-4000-8000-{i:012}");
        let r = post(&env, &path, &[("X-Circle-Signature", &sig), ("X-Circle-Key-Id", &kid)], body);
        assert_eq!(r.status, 503, "the key server is down or the cap is reached: Circle retries");
    }
    assert_eq!(keys.len(), 10, "at most 10 fetches a minute, failed ones included");
}

/// The key URL goes through the address policy of deliveries, and a new key URL forgets the
/// stored API key unless a new one comes with it.
#[test]
fn circle_key_fetches_keep_to_the_network_policy_and_the_api_key_to_its_server() {
    let keys = Receiver::always(404);
    let (mut env, _recv) = setup();
    let s = source(
        &env,
        &["--name", "circle", "--provider", "circle", "--key-url", &keys.url("/keys"), "--api-key", "TEST_API_KEY:abc"],
    );
    let path = token(&s);
    let body = br#"{"notificationId":"n-1"}"#;
    let sig = well_formed_circle_signature(body);
    let kid = "0b0e6a2c-0000-4000-8000-000000000001";
    let send = |env: &Env| post(env, &path, &[("X-Circle-Signature", &sig), ("X-Circle-Key-Id", kid)], body);
    // 127.0.0.1 is refused unless it is in WEBHOOKS_ALLOWED_NETWORKS, as for deliveries.
    env.set("WEBHOOKS_ALLOWED_NETWORKS", "");
    let r = send(&env);
    assert_eq!((r.status, r.json()["reason"].as_str()), (503, Some("key_unavailable")), "{}", r.text());
    assert_eq!(keys.len(), 0, "the key server on loopback was never asked");
    env.set("WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.1/32");
    assert_eq!(send(&env).status, 401);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys.received()[0].header("authorization"), Some("Bearer TEST_API_KEY:abc"));
    // A new key URL alone forgets the API key; with a new key, the new key is kept.
    let other = Receiver::always(404);
    env.ok(&["source", "update", "circle", "--key-url", &other.url("/other")]);
    assert_eq!(env.json(&["source", "show", "circle"])["has_api_key"], false);
    env.ok(&["source", "update", "circle", "--key-url", &keys.url("/keys"), "--api-key", "TEST_API_KEY:new"]);
    assert_eq!(env.json(&["source", "show", "circle"])["has_api_key"], true);
    // Other changes keep it.
    env.ok(&["source", "update", "circle", "--expected-gap", "1d"]);
    assert_eq!(env.json(&["source", "show", "circle"])["has_api_key"], true);
}

#[test]
fn doctor_names_sources_that_relay_nowhere_or_never_see_credentials() {
    let (env, recv) = setup();
    let s = source(&env, &["--name", "pm", "--provider", "postmark"]);
    let path = token(&s);
    for i in 0..3 {
        let body = format!(r#"{{"MessageID":"m-{i}"}}"#);
        assert_eq!(post(&env, &path, &[], body.as_bytes()).status, 401);
    }
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success());
    assert!(text.contains("PROBLEM  inbound source pm relays nowhere"), "{text}");
    assert!(text.contains("PROBLEM  3 requests to inbound source pm arrived without credentials"), "{text}");
    assert!(text.contains("CGIPassAuth On"), "{text}");
    env.ok(&["source", "update", "pm", "--add-forward", &recv.url("/mail")]);
    let password = s["secret"].as_str().unwrap();
    let auth = format!("Basic {}", STANDARD.encode(format!("postmark:{password}")));
    assert_eq!(post(&env, &path, &[("Authorization", auth.as_str())], br#"{"MessageID":"m-9"}"#).status, 200);
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).to_string();
    assert!(!text.contains("inbound source pm"), "{text}");
    assert!(text.contains("ok       1 inbound source(s): each relays somewhere and none needs attention"), "{text}");
}

/// Rejected bodies are kept within the source's hourly budget: 10 unsigned 1 KiB posts against a
/// 3 KiB budget keep 3 bodies and log the other 7 without theirs, counted; an accepted body past
/// the budget is kept all the same.
#[test]
fn rejected_bodies_are_kept_within_an_hourly_budget() {
    let (mut env, _recv) = setup();
    env.set("WEBHOOKS_INBOUND_REJECT_BUDGET", "3KiB");
    let s = source(&env, &["--name", "gh", "--provider", "github", "--secret", "k"]);
    let path = token(&s);
    let junk = vec![b'x'; 1024];
    for _ in 0..10 {
        assert_eq!(post(&env, &path, &[("X-Hub-Signature-256", "sha256=00")], &junk).status, 401);
    }
    let logged = env.json(&["inbound", "--source", "gh"]);
    let logged = logged.as_array().unwrap();
    assert_eq!(logged.len(), 10, "every reject is logged");
    assert_eq!(logged.iter().filter(|r| r["body_kept"] == true).count(), 3);
    assert!(logged.iter().all(|r| r["body_size"] == 1024));
    let stored: i64 = env
        .db()
        .query_row("SELECT coalesce(sum(length(body)), 0) FROM inbound_requests WHERE outcome = 'rejected'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(stored, 3 * 1024);
    assert_eq!(env.json(&["source", "show", "gh"])["counts_24h"]["bodies_dropped"], 7);
    // Accepted bodies are never dropped.
    let body = vec![b'{'; 1].into_iter().chain(br#""n":1}"#.iter().copied()).collect::<Vec<u8>>();
    let sig = format!("sha256={}", hex(&hmac256(b"k", &[&body])));
    let r = post(&env, &path, &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", "d-1")], &body);
    assert_eq!(r.json()["status"], "accepted");
    let shown = env.json(&["inbound", "show", r.json()["id"].as_str().unwrap()]);
    assert_eq!(shown["body_kept"], true);
}

/// The CLI's tables stay in line with long relayed types, and name sources by name.
#[test]
fn cli_listings_stay_aligned_and_name_sources() {
    let (env, recv) = setup();
    let s = source(
        &env,
        &["--name", "payments", "--provider", "stripe", "--secret", "whsec_abc", "--forward-url", &recv.url("/s")],
    );
    let path = token(&s);
    env.endpoint("alice", &recv.url("/a"), "");
    env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<1@x>","size_bytes":1}"#);
    let body = br#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
    let r = post(&env, &path, &[("Stripe-Signature", &stripe_header("whsec_abc", now_s(), body))], body);
    assert_eq!(r.json()["status"], "accepted");
    let table = env.ok(&["deliveries"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(table.contains("stripe.payment_intent.succeeded"), "{table}");
    let status_at: Vec<usize> = lines.iter().map(|l| l.find("STATUS").or_else(|| l.find("pending")).unwrap()).collect();
    assert!(status_at.windows(2).all(|w| w[0] == w[1]), "columns out of line:\n{table}");
    let listed = env.ok(&["inbound"]);
    assert!(listed.contains("  payments  ") && !listed.contains(s["id"].as_str().unwrap()), "{listed}");
    assert!(listed.contains(&format!("{} bytes", body.len())), "{listed}");
}

#[test]
fn woocommerce_requests_signed_as_woocommerce_signs_them() {
    let (env, recv) = setup();
    let secret = "wc_secret_5f2b";
    let s = source(
        &env,
        &["--name", "shop", "--provider", "woocommerce", "--secret", secret, "--forward-url", &recv.url("/orders")],
    );
    let path = token(&s);
    // WooCommerce signs base64(HMAC-SHA256(body, secret)), raw bytes (WC_Webhook::generate_signature).
    // The signature below was computed independently with PHP 8.2:
    //   php -r 'echo base64_encode(hash_hmac("sha256", $body, "wc_secret_5f2b", true));'
    let body = br#"{"id":4242,"status":"processing","total":"19.90"}"#;
    let sig = "q2CxiyhnUdzndSJu6b4e1oynap/l2H2+eUPSoEwDB4Y=";
    assert_eq!(STANDARD.encode(hmac256(secret.as_bytes(), &[body])), sig, "the same rule as PHP's");
    let headers = [
        ("Content-Type", "application/json"),
        ("X-WC-Webhook-Source", "https://shop.example/"),
        ("X-WC-Webhook-Topic", "order.updated"),
        ("X-WC-Webhook-Resource", "order"),
        ("X-WC-Webhook-Event", "updated"),
        ("X-WC-Webhook-Signature", sig),
        ("X-WC-Webhook-ID", "7"),
        ("X-WC-Webhook-Delivery-ID", "c9a5d3f0e1b24f0e9d1a"),
    ];
    let first = post(&env, &path, &headers, body);
    assert_eq!((first.status, first.json()["status"].as_str()), (200, Some("accepted")), "{}", first.text());
    let again = post(&env, &path, &headers, body);
    assert_eq!((again.status, again.json()["status"].as_str()), (200, Some("duplicate")));
    // Tampered: one byte of the body, or a signature made with another secret.
    let mut flipped = body.to_vec();
    flipped[8] ^= 0x01;
    let bad = post(&env, &path, &headers, &flipped);
    assert_eq!((bad.status, bad.json()["reason"].as_str()), (401, Some("signature_mismatch")));
    let other = STANDARD.encode(hmac256(b"wc_other", &[body]));
    let mut wrong = headers;
    wrong[5] = ("X-WC-Webhook-Signature", other.as_str());
    assert_eq!(post(&env, &path, &wrong, body).status, 401);
    // Without its delivery id: a captured request replayed.
    let no_id: Vec<(&str, &str)> = headers.iter().copied().filter(|(k, _)| *k != "X-WC-Webhook-Delivery-ID").collect();
    assert_eq!(post(&env, &path, &no_id, body).json()["reason"], "delivery_id_missing");
    // The ping WooCommerce sends when the webhook is saved: answered 200, nothing stored.
    let logged = env.count("inbound_requests");
    let ping = post(
        &env,
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded"), ("X-WC-Webhook-ID", "7")],
        b"webhook_id=7",
    );
    assert_eq!((ping.status, ping.json()["status"].as_str()), (200, Some("ping")), "{}", ping.text());
    assert_eq!(env.count("inbound_requests"), logged, "the ping is not an event");
    // Anything else unsigned is not a ping.
    let forged = post(&env, &path, &[("Content-Type", "application/x-www-form-urlencoded")], b"webhook_id=7&x=1");
    assert_eq!(forged.status, 401);
    assert_eq!((requests(&env, "accepted"), requests(&env, "duplicate"), requests(&env, "rejected")), (1, 1, 4));

    env.dispatch();
    let got = recv.received();
    assert_eq!(got.len(), 1, "one relay");
    assert_eq!(got[0].body, body.to_vec());
    assert_eq!(got[0].header("x-qsm-provider"), Some("woocommerce"));
    assert_eq!(got[0].header("x-qsm-event"), Some("woocommerce.order.updated"));
}
