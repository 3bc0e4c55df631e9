//! `POST /api/v1/events` through the real CGI binary: success, idempotency, and every bad input
//! with its status code — and no rows written.

use crate::common::Env;
use serde_json::json;

const OK_EVENT: &str = r#"{"type":"email.forwarded","user":"alice","data":{"alias":"a@x","message_id":"<m>","destinations":["d@y"],"size_bytes":5}}"#;

fn setup() -> (Env, String) {
    let env = Env::new();
    env.init();
    env.endpoint("alice", "http://127.0.0.1:9/", "");
    let token = env.app_token();
    (env, token)
}

fn rows(env: &Env) -> (i64, i64) {
    (env.count("events"), env.count("deliveries"))
}

#[test]
fn one_event_is_accepted_with_its_id_and_delivery_count() {
    let (env, token) = setup();
    let r = env.post_events(&token, OK_EVENT, &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json();
    assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(v["deliveries"], 1);
    assert_eq!(v["events"][0]["type"], "email.forwarded");
    assert_eq!(rows(&env), (1, 1));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    let payload: String = env.db().query_row("SELECT payload FROM events", [], |r| r.get(0)).unwrap();
    let envelope: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(envelope["id"], v["id"]);
    assert_eq!(envelope["schema_version"], 1);
    assert_eq!(envelope["user"], "alice");
    assert!(envelope["created_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn a_batch_is_stored_whole() {
    let (env, token) = setup();
    let body = format!("[{OK_EVENT},{OK_EVENT},{OK_EVENT}]");
    let r = env.post_events(&token, &body, &[]);
    assert_eq!(r.status, 202);
    assert_eq!(r.json()["ids"].as_array().unwrap().len(), 3);
    assert_eq!(r.json()["deliveries"], 3);
    assert_eq!(rows(&env), (3, 3));
    // One bad event in a batch: nothing of the batch is stored, and the path names it.
    let bad = format!(r#"[{OK_EVENT},{{"type":"email.forwarded","user":"alice","data":{{"alias":"a"}}}}]"#);
    let r = env.post_events(&token, &bad, &[]);
    assert_eq!(r.status, 422);
    let paths: Vec<String> = r.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert!(paths.contains(&"$[1].data.message_id".to_string()), "{paths:?}");
    assert!(paths.contains(&"$[1].data.destinations".to_string()));
    assert!(paths.contains(&"$[1].data.size_bytes".to_string()));
    assert_eq!(rows(&env), (3, 3));
}

#[test]
fn idempotency_key_records_once() {
    let (env, token) = setup();
    let r1 = env.post_events(&token, OK_EVENT, &[("Idempotency-Key", "k-1")]);
    let r2 = env.post_events(&token, OK_EVENT, &[("Idempotency-Key", "k-1")]);
    assert_eq!((r1.status, r2.status), (202, 202));
    assert_eq!(r1.json()["id"], r2.json()["id"]);
    assert_eq!(r2.json()["events"][0]["duplicate"], true);
    assert_eq!(rows(&env), (1, 1), "same key twice = one event, one set of deliveries");
    // The key inside the event works the same way.
    let with_key = OK_EVENT.replacen('{', r#"{"idempotency_key":"k-2","#, 1);
    env.post_events(&token, &with_key, &[]);
    env.post_events(&token, &with_key, &[]);
    assert_eq!(rows(&env), (2, 2));
    // Reusing a key for a different event is a conflict, and stores nothing.
    let other = OK_EVENT.replace("\"size_bytes\":5", "\"size_bytes\":6");
    let r = env.post_events(&token, &other, &[("Idempotency-Key", "k-1")]);
    assert_eq!(r.status, 409);
    assert_eq!(r.error_code(), "idempotency_conflict");
    assert_eq!(rows(&env), (2, 2));
    // Keys are per user.
    let bob = OK_EVENT.replace("\"alice\"", "\"bob\"");
    assert_eq!(env.post_events(&token, &bob, &[("Idempotency-Key", "k-1")]).status, 202);
    assert_eq!(env.count("events"), 3);
}

#[test]
fn user_tokens_post_only_for_their_user() {
    let (env, _) = setup();
    let alice = env.user_token("alice");
    let no_user = r#"{"type":"email.received","data":{"alias":"a","message_id":"m","size_bytes":1}}"#;
    let r = env.post_events(&alice, no_user, &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json()["events"][0]["user"], "alice");
    let r = env.post_events(&alice, &OK_EVENT.replace("\"alice\"", "\"bob\""), &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "forbidden");
    assert_eq!(env.count("events"), 1);
    // A batch with one foreign event is refused whole.
    let r = env.post_events(&alice, &format!("[{no_user},{}]", OK_EVENT.replace("\"alice\"", "\"bob\"")), &[]);
    assert_eq!(r.status, 403);
    assert_eq!(env.count("events"), 1);
}

/// Every bad request, its status and error code; none may write a row.
#[test]
fn every_bad_input_gets_its_status_and_writes_nothing() {
    let (env, token) = setup();
    let auth = format!("Bearer {token}");
    let json_ct = ("Content-Type", "application/json");
    let revoked = {
        let v = env.json(&["token", "create", "--app"]);
        env.ok(&["token", "revoke", v["id"].as_str().unwrap()]);
        format!("Bearer {}", v["token"].as_str().unwrap())
    };
    let big = format!(r#"{{"type":"webhook.test","user":"alice","data":{{"message":"{}"}}}}"#, "x".repeat(300 * 1024));
    let too_many = format!("[{}]", vec![OK_EVENT; 1001].join(","));
    let missing = |field: &str| {
        let mut v: serde_json::Value = serde_json::from_str(OK_EVENT).unwrap();
        v.as_object_mut().unwrap().remove(field);
        v.to_string()
    };
    let long_key = "k".repeat(300);
    // (what, method, headers, body, status, error code)
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("malformed JSON", "POST", vec![json_ct, ("Authorization", &auth)], "{\"type\":".into(), 400, "malformed_json"),
        ("not UTF-8", "POST", vec![json_ct, ("Authorization", &auth)], vec![0xff, 0xfe, b'{'], 400, "malformed_json"),
        (
            "unknown type",
            "POST",
            vec![json_ct, ("Authorization", &auth)],
            OK_EVENT.replace("email.forwarded", "email.exploded").into(),
            422,
            "invalid",
        ),
        (
            "reserved type",
            "POST",
            vec![json_ct, ("Authorization", &auth)],
            r#"{"type":"webhook.test","user":"alice","data":{"message":"hi"}}"#.into(),
            422,
            "invalid",
        ),
        ("missing data", "POST", vec![json_ct, ("Authorization", &auth)], missing("data").into(), 422, "invalid"),
        ("missing type", "POST", vec![json_ct, ("Authorization", &auth)], missing("type").into(), 422, "invalid"),
        (
            "missing user on an app token",
            "POST",
            vec![json_ct, ("Authorization", &auth)],
            missing("user").into(),
            422,
            "invalid",
        ),
        (
            "wrong JSON type",
            "POST",
            vec![json_ct, ("Authorization", &auth)],
            OK_EVENT.replace("\"size_bytes\":5", "\"size_bytes\":\"5\"").into(),
            422,
            "invalid",
        ),
        (
            "server-assigned field",
            "POST",
            vec![json_ct, ("Authorization", &auth)],
            OK_EVENT.replacen('{', r#"{"id":"evt_x","#, 1).into(),
            422,
            "invalid",
        ),
        (
            "bad occurred_at",
            "POST",
            vec![json_ct, ("Authorization", &auth)],
            OK_EVENT.replacen('{', r#"{"occurred_at":"yesterday","#, 1).into(),
            422,
            "invalid",
        ),
        ("a JSON string", "POST", vec![json_ct, ("Authorization", &auth)], "\"hello\"".into(), 422, "invalid"),
        ("an empty array", "POST", vec![json_ct, ("Authorization", &auth)], "[]".into(), 422, "invalid"),
        ("too many events", "POST", vec![json_ct, ("Authorization", &auth)], too_many.into(), 413, "too_many_events"),
        ("no token", "POST", vec![json_ct], OK_EVENT.into(), 401, "unauthorized"),
        (
            "not a bearer token",
            "POST",
            vec![json_ct, ("Authorization", "Basic YTpi")],
            OK_EVENT.into(),
            401,
            "unauthorized",
        ),
        (
            "unknown token",
            "POST",
            vec![json_ct, ("Authorization", "Bearer qsm_nope")],
            OK_EVENT.into(),
            401,
            "unauthorized",
        ),
        ("revoked token", "POST", vec![json_ct, ("Authorization", &revoked)], OK_EVENT.into(), 401, "unauthorized"),
        (
            "over WEBHOOKS_MAX_BODY",
            "POST",
            vec![json_ct, ("Authorization", &auth)],
            big.into(),
            413,
            "payload_too_large",
        ),
        ("wrong method", "GET", vec![("Authorization", &auth)], Vec::new(), 405, "method_not_allowed"),
        (
            "wrong method PUT",
            "PUT",
            vec![json_ct, ("Authorization", &auth)],
            OK_EVENT.into(),
            405,
            "method_not_allowed",
        ),
        (
            "wrong content type",
            "POST",
            vec![("Content-Type", "text/plain"), ("Authorization", &auth)],
            OK_EVENT.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "form content type",
            "POST",
            vec![("Content-Type", "application/x-www-form-urlencoded"), ("Authorization", &auth)],
            OK_EVENT.into(),
            415,
            "unsupported_media_type",
        ),
        (
            "too long idempotency key",
            "POST",
            vec![json_ct, ("Authorization", &auth), ("Idempotency-Key", &long_key)],
            OK_EVENT.into(),
            400,
            "bad_request",
        ),
    ];
    for (name, method, headers, body, status, code) in cases {
        let r = env.cgi(method, "/api/v1/events", &headers, &body);
        assert_eq!(r.status, status, "{name}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], code, "{name}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(rows(&env), (0, 0), "{name} wrote rows");
        assert!(!r.stderr.contains("panic"), "{name}: {}", r.stderr);
    }
    // 405 says what is allowed; 401 asks for a bearer token and explains CGIPassAuth.
    let r = env.cgi("GET", "/api/v1/events", &[], b"");
    assert_eq!(r.header("Allow"), Some("POST"));
    let r = env.cgi("POST", "/api/v1/events", &[json_ct], OK_EVENT.as_bytes());
    assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("CGIPassAuth On"));
}

#[test]
fn schema_errors_list_every_json_path() {
    let (env, token) = setup();
    let body = json!({"type": "usage.over_limit", "user": "alice", "data": {"metric": "minutes", "used": -1, "limit": "10", "period": "", "extra": true}});
    let r = env.post_events(&token, &body.to_string(), &[]);
    assert_eq!(r.status, 422);
    let mut paths: Vec<String> = r.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec!["$.data.extra", "$.data.hold", "$.data.limit", "$.data.metric", "$.data.period", "$.data.used"]
    );
}

#[test]
fn a_body_without_content_length_is_read_to_eof() {
    let (env, token) = setup();
    let auth = format!("Bearer {token}");
    let headers = [("Content-Type", "application/json"), ("Authorization", auth.as_str())];
    let r = env.cgi_with("POST", "/api/v1/events", &headers, OK_EVENT.as_bytes(), false);
    assert_eq!(r.status, 202, "{}", r.text());
    // Still bounded by WEBHOOKS_MAX_BODY.
    let big = format!("[{}]", vec![OK_EVENT; 3000].join(","));
    assert!(big.len() > 256 * 1024);
    let r = env.cgi_with("POST", "/api/v1/events", &headers, big.as_bytes(), false);
    assert_eq!(r.status, 413);
    assert_eq!(env.count("events"), 1);
}

#[test]
fn busy_database_answers_503_with_retry_after_and_stores_nothing() {
    let (env, token) = setup();
    let blocker = env.hold_write_lock();
    let started = std::time::Instant::now();
    let r = env.post_events(&token, OK_EVENT, &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "busy");
    assert!(r.header("Retry-After").is_some());
    assert!(started.elapsed() >= std::time::Duration::from_secs(4), "waited for the busy timeout first");
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(rows(&env), (0, 0));
}

#[test]
fn unknown_api_routes_are_json_404_and_pages_are_html() {
    let (env, _) = setup();
    let r = env.cgi("GET", "/api/v1/nope", &[], b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "not_found");
    let r = env.cgi("GET", "/nope", &[], b"");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<h1>404 Not Found</h1>"));
    let r = env.cgi("GET", "/api/v1/event-types", &[], b"");
    assert_eq!(r.status, 200);
    let types: Vec<String> =
        r.json()["event_types"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap().to_string()).collect();
    assert_eq!(types.len(), 15, "8 the host posts or the test button sends, 7 operational");
    assert!(types.contains(&"usage.over_limit".to_string()));
}

#[test]
fn a_misconfigured_install_answers_a_clean_500() {
    let (mut env, token) = setup();
    env.set("WEBHOOKS_MAX_BODY", "lots");
    let r = env.post_events(&token, OK_EVENT, &[]);
    assert_eq!(r.status, 500);
    assert_eq!(r.error_code(), "misconfigured");
    assert!(r.stderr.contains("WEBHOOKS_MAX_BODY"), "the operator's log names the key: {}", r.stderr);
    assert!(!r.text().contains("WEBHOOKS_MAX_BODY"), "the client is not told internals");
}
