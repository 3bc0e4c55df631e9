//! Metrics (`webhooks metrics`, `GET /api/v1/metrics`): the counts the tests cause, read back
//! from the exposition every process's work goes into, on the suite's store.

use crate::common::*;
use crate::inbound::hmac256;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use std::collections::BTreeMap;

const MAIL: &str = r#"{"alias":"a@x.example","message_id":"<1@x>","size_bytes":3}"#;

/// The exposition's samples: `name{labels}` → value; checks each line's shape on the way.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
        assert!(series.starts_with("qsm_webhooks_"), "{line}");
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("not a number: {line}"));
        assert!(out.insert(series.to_string(), v).is_none(), "a series twice: {line}");
    }
    out
}

fn metrics(env: &Env) -> BTreeMap<String, f64> {
    samples(&env.ok(&["metrics"]))
}

fn get(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series).unwrap_or_else(|| panic!("no {series} in {m:#?}"))
}

#[test]
fn deliveries_attempts_and_holds_are_counted_as_they_happen() {
    let mut env = Env::new();
    env.set("WEBHOOKS_MAX_ATTEMPTS", "1");
    let ok = Receiver::always(200);
    let failing = Receiver::always(500);
    let gone = Receiver::always(410);
    env.endpoint("alice", &ok.url("/"), "");
    env.endpoint("bob", &failing.url("/"), "");
    env.endpoint("carol", &gone.url("/"), "");
    for _ in 0..3 {
        env.emit("alice", "email.received", MAIL);
    }
    for _ in 0..2 {
        env.emit("bob", "email.received", MAIL);
    }
    env.emit("carol", "email.received", MAIL);
    let before = metrics(&env);
    assert_eq!(get(&before, "qsm_webhooks_queue_depth"), 6.0);
    assert_eq!(get(&before, "qsm_webhooks_queue_due"), 6.0);
    assert!(get(&before, "qsm_webhooks_queue_oldest_due_seconds") >= 0.0);
    assert_eq!(
        get(&before, r#"qsm_webhooks_deliveries_total{outcome="succeeded"}"#),
        0.0,
        "every outcome is there from the start"
    );
    env.dispatch();
    // carol's endpoint answered 410: disabled; her next event is held.
    env.emit("carol", "email.received", MAIL);

    let m = metrics(&env);
    assert_eq!(get(&m, r#"qsm_webhooks_deliveries_total{outcome="succeeded"}"#), 3.0);
    assert_eq!(get(&m, r#"qsm_webhooks_deliveries_total{outcome="dead"}"#), 3.0, "bob's two, carol's 410");
    assert_eq!(get(&m, r#"qsm_webhooks_deliveries_total{outcome="failed"}"#), 0.0, "one attempt allowed: none retries");
    assert_eq!(get(&m, r#"qsm_webhooks_deliveries_total{outcome="held"}"#), 1.0);
    assert_eq!(get(&m, r#"qsm_webhooks_attempt_failures_total{code="E_HTTP_STATUS"}"#), 2.0, "bob's 500s");
    assert_eq!(get(&m, r#"qsm_webhooks_attempt_failures_total{code="E_GONE"}"#), 1.0, "carol's 410");
    assert_eq!(get(&m, "qsm_webhooks_attempt_duration_seconds_count"), 6.0);
    assert_eq!(get(&m, r#"qsm_webhooks_attempt_duration_seconds_bucket{le="+Inf"}"#), 6.0);
    assert_eq!(get(&m, "qsm_webhooks_queue_depth"), 0.0, "nothing waits: the held one is not queued");
    assert_eq!(get(&m, "qsm_webhooks_deliveries_held"), 1.0);
    assert_eq!(get(&m, "qsm_webhooks_deliveries_dead"), 3.0);
    assert_eq!(get(&m, r#"qsm_webhooks_endpoints{health="disabled"}"#), 1.0);
    assert_eq!(get(&m, r#"qsm_webhooks_endpoints_disabled{reason="gone"}"#), 1.0);
    assert_eq!(get(&m, r#"qsm_webhooks_endpoints{health="failing"}"#), 1.0, "bob's");
    assert_eq!(get(&m, r#"qsm_webhooks_endpoints{health="ok"}"#), 1.0, "alice's");
    assert_eq!(get(&m, "qsm_webhooks_dispatcher_runs_total"), 1.0);
    assert_eq!(get(&m, "qsm_webhooks_dispatcher_last_run_deliveries"), 6.0);
    assert!(get(&m, "qsm_webhooks_dispatcher_last_run_timestamp_seconds") > 1.7e9);

    // A second run adds to the counters; the API serves the same text to the app token only.
    env.emit("alice", "email.received", MAIL);
    env.dispatch();
    let m = metrics(&env);
    assert_eq!(get(&m, r#"qsm_webhooks_deliveries_total{outcome="succeeded"}"#), 4.0);
    assert_eq!(get(&m, "qsm_webhooks_dispatcher_runs_total"), 2.0);
    let r = api(&env, &env.app_token(), "GET", "/api/v1/metrics", None);
    assert_eq!((r.status, r.header("Content-Type")), (200, Some("text/plain; version=0.0.4; charset=utf-8")));
    assert_eq!(samples(&r.text()), m);
    let r = api(&env, &env.user_token("alice"), "GET", "/api/v1/metrics", None);
    assert_eq!(r.status, 403, "a user token sees no installation-wide figures");
}

#[test]
fn the_queue_size_is_exact_through_every_way_rows_come_and_go() {
    let env = Env::new();
    let (ep, _) = env.endpoint("alice", "https://example.com/a", "");
    env.endpoint("bob", "https://example.com/b", "");
    let batch: Vec<serde_json::Value> = (0..40)
        .map(|i| serde_json::json!({"type": "email.received", "user": if i % 4 == 0 { "bob" } else { "alice" }, "data": serde_json::from_str::<serde_json::Value>(MAIL).unwrap()}))
        .collect();
    let r = env.post_events(&env.app_token(), &serde_json::Value::from(batch).to_string(), &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let depth = |env: &Env| get(&metrics(env), "qsm_webhooks_queue_depth");
    assert_eq!(depth(&env), 40.0);
    env.ok(&["endpoint", "delete", &ep]);
    assert_eq!(depth(&env), 10.0, "alice's 30 left with her endpoint");
    let queue: i64 = env.db().query_row("SELECT count(*) FROM queue", [], |r| r.get(0)).unwrap();
    assert_eq!(queue, 10, "the gauge and the table agree");
}

#[test]
fn inbound_requests_are_counted_by_source_outcome_and_reason() {
    let env = Env::new();
    let rx = Receiver::always(200);
    let s = env.json(&[
        "source",
        "add",
        "--name",
        "shop",
        "--provider",
        "woocommerce",
        "--secret",
        "wc-secret",
        "--forward-url",
        &rx.url("/orders"),
    ]);
    let url = s["url"].as_str().unwrap();
    let path = &url[url.find("/in/").unwrap()..];
    let body = br#"{"id":1}"#;
    let sig = STANDARD.encode(hmac256(b"wc-secret", &[body]));
    let headers = |sig: &str, id: &str| {
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-WC-Webhook-Topic".to_string(), "order.created".to_string()),
            ("X-WC-Webhook-Signature".to_string(), sig.to_string()),
            ("X-WC-Webhook-Delivery-ID".to_string(), id.to_string()),
        ]
    };
    let send = |h: Vec<(String, String)>| {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.cgi("POST", path, &h, body).status
    };
    assert_eq!(send(headers(&sig, "d1")), 200);
    assert_eq!(send(headers(&sig, "d1")), 200);
    assert_eq!(send(headers("AAAA", "d2")), 401);
    let m = metrics(&env);
    let series = |outcome: &str, reason: &str| {
        get(
            &m,
            &format!(r#"qsm_webhooks_inbound_requests_total{{source="shop",outcome="{outcome}",reason="{reason}"}}"#),
        )
    };
    assert_eq!((series("accepted", ""), series("duplicate", "")), (1.0, 1.0));
    let rejected: f64 = m.iter().filter(|(k, _)| k.contains(r#"outcome="rejected""#)).map(|(_, v)| v).sum();
    assert_eq!(rejected, 1.0, "{m:#?}");
    assert_eq!(get(&m, r#"qsm_webhooks_source_state{source="shop",state="ok"}"#), 1.0);
}

#[test]
fn users_get_series_of_their_own_only_when_named() {
    let mut env = Env::new();
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    env.endpoint("bob", &rx.url("/"), "");
    env.emit("alice", "email.received", MAIL);
    env.emit("bob", "email.received", MAIL);
    let m = metrics(&env);
    assert!(!m.keys().any(|k| k.contains("user=")), "no per-user series unless asked: {m:#?}");
    env.set("WEBHOOKS_METRICS_USERS", "alice");
    let m = metrics(&env);
    assert_eq!(get(&m, r#"qsm_webhooks_user_queue_depth{user="alice"}"#), 1.0);
    env.dispatch();
    let m = metrics(&env);
    assert_eq!(get(&m, r#"qsm_webhooks_user_deliveries_total{outcome="succeeded",user="alice"}"#), 1.0);
    assert_eq!(get(&m, r#"qsm_webhooks_user_queue_depth{user="alice"}"#), 0.0);
    assert!(!m.keys().any(|k| k.contains(r#"user="bob""#)), "bob was not named");
    assert_eq!(get(&m, r#"qsm_webhooks_deliveries_total{outcome="succeeded"}"#), 2.0, "the totals count everyone");
}

#[test]
fn the_output_file_is_written_whole_or_not_at_all() {
    let env = Env::new();
    let file = env.dir.path().join("textfile").join("qsm_webhooks.prom");
    let out = env.run(&["metrics", "--output", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--output") && err.contains("must exist"), "{err}");
    std::fs::create_dir(file.parent().unwrap()).unwrap();
    env.ok(&["metrics", "--output", file.to_str().unwrap()]);
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(samples(&written), metrics(&env));
    let left: Vec<_> = std::fs::read_dir(file.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
}
