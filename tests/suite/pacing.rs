//! Paced delivery (docs/pacing.md): `max_per_second` and `max_in_flight` hold across several
//! dispatcher processes at once (on the suite's store: SQLite, or PostgreSQL in the suite's
//! second pass), and a `429` with `Retry-After` pauses the whole endpoint. The receivers here
//! note when each request arrives, and the tests count what they saw.

use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicI64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{api, Env, Receiver, Reply};

/// Keeps `runs` dispatcher processes going (a new one as each run ends) until `done`.
fn dispatchers(env: &Env, runs: usize, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    let mut live: Vec<Child> = Vec::new();
    while !done() {
        assert!(started.elapsed() < limit, "not done within {limit:?}");
        live.retain_mut(|c| c.try_wait().unwrap().is_none());
        while live.len() < runs {
            live.push(
                env.command("webhooks").arg("dispatch").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut c in live {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Posts `n` events for `user` in batches of 50.
fn post_events(env: &Env, user: &str, n: usize) {
    let token = env.app_token();
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"type": "usage.threshold", "user": user,
                       "data": {"metric": "messages", "used": i, "limit": 1000, "threshold_percent": 80, "period": "2026-12"}})
            })
            .collect();
        let r = env.post_events(&token, &Value::Array(batch).to_string(), &[]);
        assert_eq!(r.status, 202, "{}", r.text());
    }
}

fn paced_env() -> Env {
    let mut env = Env::new();
    env.set("WEBHOOKS_CONCURRENCY", "8")
        .set("WEBHOOKS_CONCURRENCY_PER_USER", "8")
        .set("WEBHOOKS_REQUEST_TIMEOUT", "2s")
        .set("WEBHOOKS_TIME_BUDGET", "6s");
    env
}

fn endpoint_with(env: &Env, url: &str, flags: &[&str]) -> String {
    let mut args = vec!["endpoint", "add", "--user", "alice", "--url", url];
    args.extend(flags);
    env.json(&args)["id"].as_str().unwrap().to_string()
}

/// The most requests in any one-second window starting at a request.
fn busiest_second(times: &[Instant]) -> usize {
    let mut t = times.to_vec();
    t.sort();
    (0..t.len())
        .map(|i| t[i..].iter().take_while(|x| x.duration_since(t[i]) < Duration::from_secs(1)).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn max_per_second_holds_across_three_dispatchers_and_other_endpoints_go_on() {
    let env = paced_env();
    let times: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let paced_rx = Receiver::start(move |_, _| {
        t.lock().unwrap().push(Instant::now());
        Reply::Status(200)
    });
    let free_rx = Receiver::always(200);
    let paced = endpoint_with(&env, &paced_rx.url("/paced"), &["--max-per-second", "5"]);
    assert_eq!(env.json(&["endpoint", "show", &paced])["max_per_second"], 5.0);
    endpoint_with(&env, &free_rx.url("/free"), &[]);
    // 150 events: 30 s of work at 5 per second, more than the 20 s the dispatchers run.
    post_events(&env, "alice", 150);
    let started = Instant::now();
    let mut free_done: Option<Duration> = None;
    dispatchers(&env, 3, Duration::from_secs(60), || {
        if free_done.is_none() && free_rx.len() == 150 {
            free_done = Some(started.elapsed());
        }
        started.elapsed() >= Duration::from_secs(20)
    });
    let times = times.lock().unwrap().clone();
    let busiest = busiest_second(&times);
    let span = times.iter().max().unwrap().duration_since(*times.iter().min().unwrap());
    let rate = (times.len() - 1) as f64 / span.as_secs_f64();
    eprintln!(
        "pacing: max_per_second 5, 3 dispatchers for 20 s: {} requests, {rate:.2}/s achieved, busiest second {busiest}; the endpoint without limits got its 150 in {free_done:?}",
        times.len()
    );
    assert!(busiest <= 6, "{busiest} requests in one second against a limit of 5 (+1 for a window's edge)");
    // Paced, not starved: about 5 a second for 20 s.
    assert!(times.len() >= 60, "only {} requests in 20 s at 5 per second", times.len());
    assert!(times.len() <= 5 * 21 + 1, "{} requests in 20 s", times.len());
    // The user's endpoint without limits is not held up by the paced one's backlog.
    assert!(
        free_done.is_some_and(|d| d < Duration::from_secs(15)),
        "the endpoint without limits got {} of 150 (done: {free_done:?})",
        free_rx.len()
    );
    // What is left waits, parked, for the next runs: nothing is lost.
    let left = env.count(&format!("queue WHERE endpoint_id = '{paced}'"));
    let sent = env.count(&format!("deliveries WHERE endpoint_id = '{paced}' AND status = 'succeeded'"));
    assert_eq!(left + sent, 150, "{left} waiting and {sent} sent");
    // A request whose run was stopped before it recorded the answer is sent again later.
    assert!((sent as usize..=sent as usize + 3).contains(&times.len()), "{sent} recorded, {} received", times.len());
}

#[test]
fn max_in_flight_one_is_never_exceeded_by_three_dispatchers() {
    let env = paced_env();
    // Each request takes 150 ms; the receiver counts how many are open at once, per path.
    let open = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
    let most = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
    let (o, m) = (open.clone(), most.clone());
    let rx = Receiver::start(move |_, r| {
        let i = usize::from(r.header(":path") == Some("/free"));
        let now = o[i].fetch_add(1, AtomicOrdering::SeqCst) + 1;
        m[i].fetch_max(now, AtomicOrdering::SeqCst);
        std::thread::sleep(Duration::from_millis(150));
        o[i].fetch_sub(1, AtomicOrdering::SeqCst);
        Reply::Status(200)
    });
    let one = endpoint_with(&env, &rx.url("/one"), &["--max-in-flight", "1"]);
    assert_eq!(env.json(&["endpoint", "show", &one])["max_in_flight"], 1);
    endpoint_with(&env, &rx.url("/free"), &[]);
    post_events(&env, "alice", 24);
    let succeeded = |ep: &str| env.count(&format!("deliveries WHERE endpoint_id = '{ep}' AND status = 'succeeded'"));
    dispatchers(&env, 3, Duration::from_secs(60), || succeeded(&one) == 24 && env.count("queue") == 0);
    let (limited, free) = (most[0].load(AtomicOrdering::SeqCst), most[1].load(AtomicOrdering::SeqCst));
    eprintln!(
        "pacing: max_in_flight 1 with 3 dispatchers: at most {limited} at once (the endpoint without a limit: {free})"
    );
    assert_eq!(limited, 1, "requests at once to the max_in_flight 1 endpoint");
    // The same receiver, the same runs: without the limit requests overlap (so the count above
    // could have shown it).
    assert!(free >= 2, "the endpoint without a limit had at most {free} at once");
    let attempts =
        env.count(&format!("attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE d.endpoint_id = '{one}'"));
    assert_eq!(attempts, 24, "each delivered once, none sent twice");
}

fn a_429_with_retry_after_pauses_the_whole_endpoint(runs: usize) {
    let mut env = paced_env();
    env.set("WEBHOOKS_CONCURRENCY_PER_USER", "4").set("WEBHOOKS_RETRY_SCHEDULE", "1s");
    // The first request is answered 429 with Retry-After: 3; the rest 200, each after 20 ms.
    let log: Arc<Mutex<Vec<(Instant, String, u16)>>> = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let rx = Receiver::start(move |n, r| {
        let id = r.header("X-QSM-Id").unwrap_or("").to_string();
        if n == 0 {
            l.lock().unwrap().push((Instant::now(), id, 429));
            return Reply::WithHeaders(429, vec![("Retry-After".into(), "3".into())]);
        }
        std::thread::sleep(Duration::from_millis(20));
        l.lock().unwrap().push((Instant::now(), id, 200));
        Reply::Status(200)
    });
    let ep = endpoint_with(&env, &rx.url("/slow-down"), &[]);
    post_events(&env, "alice", 30);
    let token = env.user_token("alice");
    let mut shown_paused: Option<Value> = None;
    let delivered = || env.count(&format!("deliveries WHERE endpoint_id = '{ep}' AND status = 'succeeded'"));
    dispatchers(&env, runs, Duration::from_secs(60), || {
        if shown_paused.is_none() && rx.len() >= 1 {
            let v = api(&env, &token, "GET", &format!("/api/v1/endpoints/{ep}"), None).json();
            if v["paused_until"].is_string() {
                shown_paused = Some(v);
            }
        }
        delivered() == 30
    });
    let log = log.lock().unwrap().clone();
    let (at, first_id, _) = log.iter().find(|(_, _, s)| *s == 429).cloned().expect("a 429 was answered");
    // The 200s are noted when answered, 20 ms after they arrive.
    let arrived: Vec<Duration> =
        log.iter().filter(|(_, _, s)| *s == 200).map(|(t, _, _)| t.saturating_duration_since(at)).collect();
    let already = arrived.iter().filter(|d| **d < Duration::from_millis(150)).count();
    let during: Vec<&Duration> =
        arrived.iter().filter(|d| **d >= Duration::from_millis(150) && **d < Duration::from_millis(3000)).collect();
    eprintln!(
        "pacing: 429 Retry-After 3 with {runs} dispatcher(s): {already} requests already on their way, {} in the pause, first after it at {:?}",
        during.len(),
        arrived.iter().filter(|d| **d >= Duration::from_millis(150)).min()
    );
    assert!(during.is_empty(), "requests to the paused endpoint during its pause: {during:?}");
    // Only those already leased when the 429 came (the user's cap of 4, less the 429'd one).
    assert!(already <= 3, "{already} requests started after the 429 was answered");
    // The 429'd delivery itself came back after its Retry-After, and the 429 counted against
    // nothing: the endpoint is healthy.
    let again =
        log.iter().filter(|(_, id, s)| id == &first_id && *s == 200).map(|(t, _, _)| t.duration_since(at)).next();
    assert!(again.is_some_and(|d| d >= Duration::from_secs(3)), "the 429'd delivery again after {again:?}");
    let shown = env.json(&["endpoint", "show", &ep]);
    assert_eq!((shown["health"].as_str(), shown["fail_since"].as_str()), (Some("ok"), None), "{shown}");
    let paused = shown_paused.expect("the API showed the pause while it lasted");
    assert_eq!(paused["paused_status"], 429, "{paused}");
    assert_eq!(env.count("queue"), 0);
}

#[test]
fn a_429_with_retry_after_pauses_the_whole_endpoint_for_one_dispatcher() {
    a_429_with_retry_after_pauses_the_whole_endpoint(1);
}

#[test]
fn a_429_with_retry_after_pauses_the_whole_endpoint_for_three_dispatchers() {
    a_429_with_retry_after_pauses_the_whole_endpoint(3);
}

#[test]
fn changing_the_limits_brings_parked_deliveries_back_at_once() {
    let mut env = Env::new();
    env.set("WEBHOOKS_TIME_BUDGET", "2s").set("WEBHOOKS_REQUEST_TIMEOUT", "1s");
    let rx = Receiver::always(200);
    // One request every 10 s: one run sends the first and parks the others 10 s apart.
    let ep = endpoint_with(&env, &rx.url("/"), &["--max-per-second", "0.1"]);
    post_events(&env, "alice", 4);
    env.dispatch();
    assert_eq!(rx.len(), 1);
    let parked: Vec<i64> = {
        let db = env.db();
        let mut s = db.prepare("SELECT next_attempt_at FROM queue WHERE parked = 1 ORDER BY next_attempt_at").unwrap();
        s.query_map([], |r| r.get::<_, i64>(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(parked.len(), 3, "the others parked");
    assert!(parked.windows(2).all(|w| w[1] - w[0] == 10_000), "one slot apart: {parked:?}");
    env.dispatch();
    assert_eq!(rx.len(), 1, "nothing before its slot");
    // The limit removed: the parked deliveries are due at once.
    env.ok(&["endpoint", "update", &ep, "--max-per-second", "none"]);
    assert!(env.json(&["endpoint", "show", &ep])["max_per_second"].is_null());
    env.dispatch();
    assert_eq!(rx.len(), 4);
    assert_eq!(env.count("queue"), 0);
}

#[test]
fn pacing_fields_are_checked_everywhere_they_are_set() {
    let env = Env::new();
    for (flag, value, says) in [
        ("--max-per-second", "0", "from 0.01 to 1000"),
        ("--max-per-second", "fast", "must be a number"),
        ("--max-in-flight", "0", "from 1 to 1000"),
        ("--max-in-flight", "1.5", "whole number"),
    ] {
        let out = env.run(&["endpoint", "add", "--user", "alice", "--url", "https://x.example/", flag, value]);
        assert_ne!(out.status.code(), Some(0));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(flag) && err.contains(says), "{flag} {value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(env.count("endpoints"), 0, "nothing saved");
    let token = env.user_token("alice");
    for body in [
        r#"{"url":"https://x.example/","max_per_second":0}"#,
        r#"{"url":"https://x.example/","max_per_second":"5"}"#,
        r#"{"url":"https://x.example/","max_in_flight":2.5}"#,
        r#"{"url":"https://x.example/","max_in_flight":100000}"#,
    ] {
        let r = api(&env, &token, "POST", "/api/v1/endpoints", Some(body));
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert!(r.text().contains("$.max_"), "{}", r.text());
    }
    assert_eq!(env.count("endpoints"), 0, "nothing saved");
    let r = api(
        &env,
        &token,
        "POST",
        "/api/v1/endpoints",
        Some(r#"{"url":"https://x.example/","max_per_second":2.5,"max_in_flight":3}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!((r.json()["max_per_second"].as_f64(), r.json()["max_in_flight"].as_i64()), (Some(2.5), Some(3)));
    // PATCH: absent keeps, null removes.
    let r = api(&env, &token, "PATCH", &format!("/api/v1/endpoints/{id}"), Some(r#"{"max_in_flight":null}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((r.json()["max_per_second"].as_f64(), r.json()["max_in_flight"].as_i64()), (Some(2.5), None));
    // The page: the fields show their values, and a bad one is named beside its field.
    let mut b = crate::common::Browser::new(&env, Some("alice"));
    let page = b.get(&format!("/endpoints/{id}")).text();
    assert!(page.contains("name=\"max_per_second\"") && page.contains("value=\"2.5\""), "{page}");
    let r = b.post(
        &format!("/endpoints/{id}"),
        &[
            ("url", "https://x.example/"),
            ("event_types", "*"),
            ("active", "on"),
            ("ordering", "none"),
            ("fifo_on_dead", "continue"),
            ("max_per_second", "lots"),
            ("max_in_flight", ""),
        ],
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("max_per_second-error"), "{}", r.text());
    assert_eq!(env.json(&["endpoint", "show", &id])["max_per_second"], 2.5, "unchanged");
}
