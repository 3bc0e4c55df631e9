//! Ordered delivery (docs/ordering.md): FIFO endpoints send one delivery at a time per ordering
//! key, in the order the events were recorded, through failures, timeouts, `Retry-After`,
//! overlapping runs, `kill -9` of dispatchers and many dispatchers on PostgreSQL; a dead
//! delivery lets its key go on (`continue`) or blocks it (`block`) until a person retries or
//! discards it; re-enabling a FIFO endpoint replays what it held in order.

use std::collections::{BTreeMap, HashMap};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{self, api, Env, Receiver, Reply, Rng};

fn seed() -> u64 {
    let s = std::env::var("ORDERING_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("ordering seed: {s} (ORDERING_SEED={s} replays it)");
    s
}

fn fifo_endpoint(env: &Env, user: &str, url: &str, on_dead: &str) -> String {
    let v =
        env.json(&["endpoint", "add", "--user", user, "--url", url, "--ordering", "fifo", "--fifo-on-dead", on_dead]);
    assert_eq!((v["ordering"].as_str(), v["fifo_on_dead"].as_str()), (Some("fifo"), Some(on_dead)));
    v["id"].as_str().unwrap().to_string()
}

/// Posts one batch: for each key, its next event (`usage.threshold` with the index in `used`).
/// Returns the event ids with their (key, index).
fn post_round(env: &Env, token: &str, user: &str, keys: &[String], index: usize) -> Vec<(String, (String, usize))> {
    let batch: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({"type": "usage.threshold", "user": user, "ordering_key": k,
                   "data": {"metric": "messages", "used": index, "limit": 1000, "threshold_percent": 80, "period": "2026-12"}})
        })
        .collect();
    let r = env.post_events(token, &Value::Array(batch).to_string(), &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    let ids: Vec<String> =
        r.json()["ids"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().to_string()).collect();
    ids.into_iter().zip(keys.iter().map(|k| (k.clone(), index))).collect()
}

/// Dispatcher processes kept running (`runs` at once, each one `dispatch` run), some killed
/// with SIGKILL at random moments, until `done` or the deadline.
fn fleet(env: &Env, runs: usize, rng: &mut Rng, deadline: Duration, mut done: impl FnMut() -> bool) -> usize {
    let started = Instant::now();
    let mut live: Vec<Child> = Vec::new();
    let mut kills = 0;
    while !done() {
        assert!(started.elapsed() < deadline, "not everything was delivered within {deadline:?}");
        live.retain_mut(|c| c.try_wait().unwrap().is_none());
        while live.len() < runs {
            live.push(
                env.command("webhooks").arg("dispatch").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
            );
        }
        std::thread::sleep(Duration::from_millis(50 + rng.below(250)));
        if rng.below(6) == 0 {
            let i = rng.below(live.len() as u64) as usize;
            let mut victim = live.remove(i);
            let _ = victim.kill(); // SIGKILL
            let _ = victim.wait();
            kills += 1;
        }
    }
    for mut c in live {
        let _ = c.kill();
        let _ = c.wait();
    }
    kills
}

/// The receiver's view: per request, the event id and whether it answered 2xx.
type Log = Arc<Mutex<Vec<(String, bool)>>>;

fn twenty_keys_of_fifty_events_through_failures_and_kills(env: &mut Env, runs: usize) {
    let mut rng = Rng(seed());
    env.set("WEBHOOKS_RETRY_SCHEDULE", "1s")
        .set("WEBHOOKS_MAX_ATTEMPTS", "30")
        .set("WEBHOOKS_REQUEST_TIMEOUT", "1s")
        .set("WEBHOOKS_TIME_BUDGET", "4s")
        .set("WEBHOOKS_CONCURRENCY", "8")
        .set("WEBHOOKS_CONCURRENCY_PER_USER", "8");
    // The FIFO receiver fails at random: 500, no answer (a timeout), 503 with Retry-After.
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let chance = Arc::new(Mutex::new(Rng(rng.next() | 1)));
    let (l, c) = (log.clone(), chance.clone());
    let rx = Receiver::start(move |_, r| {
        let id = r.header("X-QSM-Id").unwrap().to_string();
        let roll = c.lock().unwrap().below(100);
        let reply = match roll {
            0..=11 => Reply::Status(500),
            12..=15 => Reply::Hang,
            16..=19 => Reply::WithHeaders(503, vec![("Retry-After".into(), "1".into())]),
            _ => Reply::Status(200),
        };
        l.lock().unwrap().push((id, matches!(reply, Reply::Status(200))));
        reply
    });
    let ep = fifo_endpoint(env, "alice", &rx.url("/fifo"), "continue");
    // Another endpoint of the same user answers 410 once and is disabled: its deliveries are
    // held and never hold up the FIFO keys.
    let gone = Receiver::always(410);
    let (gone_ep, _) = env.endpoint("alice", &gone.url("/gone"), "");
    let token = env.app_token();
    let keys: Vec<String> = (0..20).map(|k| format!("order-{k:02}")).collect();
    let mut order: HashMap<String, (String, usize)> = HashMap::new();
    // Half the events are there before the first run; the rest arrive while the runs go on.
    for i in 0..25 {
        order.extend(post_round(env, &token, "alice", &keys, i));
    }
    let posted = Mutex::new(25);
    let succeeded = |log: &Log| -> usize {
        let l = log.lock().unwrap();
        l.iter().filter(|(_, ok)| *ok).map(|(id, _)| id.as_str()).collect::<std::collections::HashSet<_>>().len()
    };
    let env: &Env = env;
    let (more, kills) = std::thread::scope(|s| {
        let poster = s.spawn(|| {
            let mut more = HashMap::new();
            for i in 25..50 {
                more.extend(post_round(env, &token, "alice", &keys, i));
                *posted.lock().unwrap() = i + 1;
                std::thread::sleep(Duration::from_millis(40));
            }
            more
        });
        let kills = fleet(env, runs, &mut rng, Duration::from_secs(150), || {
            *posted.lock().unwrap() == 50 && succeeded(&log) == 1000
        });
        (poster.join().unwrap(), kills)
    });
    order.extend(more);
    assert_eq!(order.len(), 1000);

    // Per key, the receiver saw its events' ids in order: never an earlier one after a later
    // one; the same id again only after a failed attempt, or a kill (its 2xx not recorded).
    let log = log.lock().unwrap().clone();
    let mut seen: BTreeMap<&str, Vec<(usize, bool)>> = BTreeMap::new();
    for (id, ok) in &log {
        let (key, index) = &order[id];
        seen.entry(key.as_str()).or_default().push((*index, *ok));
    }
    assert_eq!(seen.len(), 20);
    let mut repeated_after_success = 0;
    for (key, requests) in &seen {
        for w in requests.windows(2) {
            assert!(w[1].0 >= w[0].0, "key {key}: event {} sent after event {}: {requests:?}", w[1].0, w[0].0);
            if w[1].0 == w[0].0 && w[0].1 {
                repeated_after_success += 1;
            }
        }
        let delivered: Vec<usize> = requests.iter().filter(|(_, ok)| *ok).map(|(i, _)| *i).collect();
        let mut firsts = delivered.clone();
        firsts.dedup();
        assert_eq!(firsts, (0..50).collect::<Vec<_>>(), "key {key}: every event delivered once, in order");
    }
    assert!(
        repeated_after_success <= kills * 8,
        "{repeated_after_success} ids sent again after a 2xx, with {kills} kills (at most 8 in flight each)"
    );
    // Nothing lost, nothing stuck: every FIFO delivery succeeded and left the queue; the 410'd
    // endpoint's are held.
    let failures = log.iter().filter(|(_, ok)| !ok).count();
    eprintln!(
        "ordering: 1000 events on 20 keys, {} requests ({failures} failed), {kills} dispatchers killed, {repeated_after_success} sent again after a 2xx",
        log.len()
    );
    assert!(failures > 50, "the receiver failed often enough to matter: {failures}");
    let deliveries = env.db().query_row(
        "SELECT count(*) FROM deliveries WHERE endpoint_id = ?1 AND status = 'succeeded'",
        [ep.as_str()],
        |r| r.get::<_, i64>(0),
    );
    assert_eq!(deliveries.unwrap(), 1000);
    assert_eq!(env.count(&format!("queue WHERE endpoint_id = '{ep}'")), 0);
    // The 410 endpoint: disabled at its first answers (as many as were in flight), the rest held
    // (by one more run, for any the runs had not reached).
    env.dispatch();
    let shown = env.json(&["endpoint", "show", &gone_ep]);
    assert_eq!((shown["health"].as_str(), shown["disabled_reason"].as_str()), (Some("disabled"), Some("gone")));
    let tried = gone.len() as i64;
    assert!(tried <= 8 * (kills as i64 + 1), "{tried} requests to the 410 endpoint");
    assert_eq!(
        env.count(&format!("deliveries WHERE endpoint_id = '{gone_ep}' AND status = 'held'")),
        shown["held"].as_i64().unwrap()
    );
    assert_eq!(
        env.count(&format!("deliveries WHERE endpoint_id = '{gone_ep}' AND status IN ('held', 'dead')")),
        1000,
        "every delivery of the 410 endpoint is held or ended by its 410"
    );
}

#[test]
fn fifo_keys_stay_in_order_through_failures_and_kills_of_overlapping_runs() {
    let mut env = Env::new();
    twenty_keys_of_fifty_events_through_failures_and_kills(&mut env, 2);
}

#[test]
fn fifo_keys_stay_in_order_with_three_dispatchers_on_postgresql() {
    let Some(admin) = common::postgres_admin_url() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but WEBHOOKS_TEST_POSTGRES is not set");
        return;
    };
    let mut env = Env::on_postgres(&admin);
    twenty_keys_of_fifty_events_through_failures_and_kills(&mut env, 3);
}

/// Sends `n` events on each of `keys` (one batch per index), returns their ids by (key, index).
fn post(env: &Env, keys: &[&str], n: usize) -> BTreeMap<(String, usize), String> {
    let token = env.app_token();
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let mut ids = BTreeMap::new();
    for i in 0..n {
        for (id, k) in post_round(env, &token, "alice", &keys, i) {
            ids.insert(k, id);
        }
    }
    ids
}

/// Runs the dispatcher until `done` (retries come 1 s apart), then once more, so that anything
/// sent too early would have been.
fn drain_until(env: &Env, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < until, "not done within a minute");
        env.dispatch();
        std::thread::sleep(Duration::from_millis(100));
    }
    env.dispatch();
}

#[test]
fn a_dead_delivery_blocks_its_key_and_only_its_key_until_it_is_retried_or_discarded() {
    let mut env = Env::new();
    env.set("WEBHOOKS_RETRY_SCHEDULE", "1s")
        .set("WEBHOOKS_MAX_ATTEMPTS", "2")
        .set("WEBHOOKS_CONCURRENCY_PER_USER", "4");
    let refuse: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let r = refuse.clone();
    let rx = Receiver::start(move |_, req| {
        let id = req.header("X-QSM-Id").unwrap();
        Reply::Status(if r.lock().unwrap().iter().any(|x| x == id) { 500 } else { 200 })
    });
    let blocking = fifo_endpoint(&env, "alice", &rx.url("/block"), "block");
    fifo_endpoint(&env, "alice", &rx.url("/continue"), "continue");
    let ids = post(&env, &["a", "b"], 5);
    // Event a#2 is refused by both endpoints.
    refuse.lock().unwrap().push(ids[&("a".to_string(), 2)].clone());
    let sent = |path: &str| -> Vec<String> {
        rx.received()
            .iter()
            .filter(|q| {
                q.header("X-QSM-Signature").is_some() && q_path(q) == path && q.header("X-QSM-Attempt") == Some("1")
            })
            .map(|q| q.header("X-QSM-Id").unwrap().to_string())
            .collect()
    };
    let of =
        |key: &str, idx: &[usize]| -> Vec<String> { idx.iter().map(|i| ids[&(key.to_string(), *i)].clone()).collect() };
    let keyed = |list: Vec<String>, key: &str| -> Vec<String> {
        list.into_iter().filter(|id| ids.iter().any(|((k, _), v)| k == key && v == id)).collect()
    };
    let blocked_notices = || env.count("notices WHERE type = 'endpoint.key_blocked'");
    drain_until(&env, || {
        blocked_notices() == 1 && keyed(sent("/continue"), "a").len() == 5 && keyed(sent("/block"), "b").len() == 5
    });
    // `continue`: a#2 went dead and a#3, a#4 followed; `block`: a stops at a#2, b goes on.
    assert_eq!(keyed(sent("/continue"), "a"), of("a", &[0, 1, 2, 3, 4]));
    assert_eq!(keyed(sent("/block"), "a"), of("a", &[0, 1, 2]), "nothing after the dead head");
    assert_eq!(keyed(sent("/block"), "b"), of("b", &[0, 1, 2, 3, 4]), "another key is not held up");
    let dead = ids[&("a".to_string(), 2)].clone();
    let dead_delivery: String = env
        .db()
        .query_row(
            "SELECT id FROM deliveries WHERE event_id = ?1 AND endpoint_id = ?2",
            [dead.as_str(), blocking.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    // The blocked key is told once (and mailed), shown on the endpoint and the dashboard.
    let notices: Vec<Value> = env
        .db()
        .prepare("SELECT payload FROM notices WHERE type = 'endpoint.key_blocked'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|p| serde_json::from_str(&p.unwrap()).unwrap())
        .collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert_eq!(notices[0]["data"]["ordering_key"], "a");
    assert_eq!(notices[0]["data"]["delivery_id"], dead_delivery.as_str());
    let shown = env.json(&["endpoint", "show", &blocking]);
    assert_eq!(shown["blocked_keys"][0]["ordering_key"], "a", "{shown}");
    assert_eq!(shown["blocked_keys"][0]["delivery_id"], dead_delivery.as_str());
    assert_eq!(shown["blocked_keys"][0]["waiting"], 2);
    let mut b = common::Browser::new(&env, Some("alice"));
    let page = b.get(&format!("/endpoints/{blocking}")).text();
    assert!(page.contains("blocked") && page.contains(&dead_delivery), "{page}");
    let dash = b.get("/").text();
    assert!(dash.contains(&dead_delivery), "the dashboard names the blocked key's head");
    assert_eq!(env.deliveries().iter().find(|d| d["id"] == dead_delivery.as_str()).unwrap()["status"], "dead");

    // Retried by hand (and now accepted): a#2, then a#3, a#4, in order.
    refuse.lock().unwrap().clear();
    let retried = env.json(&["retry", &dead_delivery]);
    assert_eq!(retried["status"], "pending");
    let all_of = |key: &str| -> usize {
        keyed(
            rx.received()
                .iter()
                .filter(|q| q_path(q) == "/block" && q.header("X-QSM-Signature").is_some())
                .map(|q| q.header("X-QSM-Id").unwrap().to_string())
                .collect(),
            key,
        )
        .len()
    };
    drain_until(&env, || all_of("a") == 7);
    let all_a: Vec<String> = keyed(
        rx.received()
            .iter()
            .filter(|q| q_path(q) == "/block" && q.header("X-QSM-Signature").is_some())
            .map(|q| q.header("X-QSM-Id").unwrap().to_string())
            .collect(),
        "a",
    );
    assert_eq!(all_a, of("a", &[0, 1, 2, 2, 2, 3, 4]), "two failed attempts, the retry, then the rest");
    assert!(env.json(&["endpoint", "show", &blocking])["blocked_keys"].as_array().unwrap().is_empty());

    // Blocked again, then discarded: the key goes on without it, and it stays dead.
    let more = post(&env, &["c"], 3);
    refuse.lock().unwrap().push(more[&("c".to_string(), 0)].clone());
    drain_until(&env, || blocked_notices() == 2);
    let head: String = env
        .db()
        .query_row(
            "SELECT id FROM deliveries WHERE event_id = ?1 AND endpoint_id = ?2",
            [more[&("c".to_string(), 0)].as_str(), blocking.as_str()],
            |r| r.get(0),
        )
        .unwrap();
    let keyed_c =
        |list: Vec<String>| -> Vec<String> { list.into_iter().filter(|id| more.values().any(|v| v == id)).collect() };
    assert_eq!(keyed_c(sent("/block")), of_map(&more, "c", &[0]));
    let token = env.user_token("alice");
    let r = api(&env, &token, "POST", &format!("/api/v1/deliveries/{head}/discard"), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "dead");
    let again = api(&env, &token, "POST", &format!("/api/v1/deliveries/{head}/discard"), None);
    assert_eq!((again.status, again.error_code()), (409, "not_blocking".to_string()));
    drain_until(&env, || keyed_c(sent("/block")).len() == 3);
    assert_eq!(keyed_c(sent("/block")), of_map(&more, "c", &[0, 1, 2]));
    assert_eq!(env.count("queue"), 0);
}

fn of_map(ids: &BTreeMap<(String, usize), String>, key: &str, idx: &[usize]) -> Vec<String> {
    idx.iter().map(|i| ids[&(key.to_string(), *i)].clone()).collect()
}

fn q_path(q: &common::Received) -> String {
    q.header(":path").unwrap_or("").to_string()
}

#[test]
fn re_enabling_a_fifo_endpoint_replays_what_it_held_in_order() {
    let mut env = Env::new();
    env.set("WEBHOOKS_CONCURRENCY_PER_USER", "8").set("WEBHOOKS_CONCURRENCY", "8");
    let gone = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let g = gone.clone();
    let rx =
        Receiver::start(move |_, _| Reply::Status(if g.load(std::sync::atomic::Ordering::SeqCst) { 410 } else { 200 }));
    let ep = fifo_endpoint(&env, "alice", &rx.url("/"), "continue");
    let first = post(&env, &["k"], 1);
    env.dispatch(); // 410: disabled, k#0 held
    let ids = post(&env, &["k", "j"], 6); // held as they come
    assert_eq!(env.json(&["endpoint", "show", &ep])["held"], 12, "k#0 went dead with the 410");
    gone.store(false, std::sync::atomic::Ordering::SeqCst);
    let enabled = env.json(&["endpoint", "enable", &ep, "--replay"]);
    assert_eq!(enabled["replayed"], 13);
    let before = rx.len();
    let until = Instant::now() + Duration::from_secs(20);
    while rx.len() < before + 13 && Instant::now() < until {
        env.dispatch();
    }
    let sent: Vec<String> = rx.received()[before..].iter().map(|q| q.header("X-QSM-Id").unwrap().to_string()).collect();
    let keyed = |key: &str| -> Vec<String> {
        sent.iter()
            .filter(|id| ids.iter().chain(first.iter()).any(|((k, _), v)| k == key && &v == id))
            .cloned()
            .collect()
    };
    let mut k: Vec<String> = vec![first[&("k".to_string(), 0)].clone()];
    k.extend(of_map(&ids, "k", &[0, 1, 2, 3, 4, 5]));
    assert_eq!(keyed("k"), k, "the 410'd delivery, then the held ones, in order, with 8 in flight allowed");
    assert_eq!(keyed("j"), of_map(&ids, "j", &[0, 1, 2, 3, 4, 5]));
}

#[test]
fn ordering_fields_are_checked_everywhere_they_are_set() {
    let env = Env::new();
    let out = env.run(&["endpoint", "add", "--user", "alice", "--url", "https://x.example/", "--ordering", "lifo"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("none or fifo"));
    let token = env.user_token("alice");
    let r =
        api(&env, &token, "POST", "/api/v1/endpoints", Some(r#"{"url":"https://x.example/","fifo_on_dead":"stop"}"#));
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("continue or block"));
    let long = "k".repeat(129);
    let body = json!({"type": "usage.threshold", "ordering_key": long,
                      "data": {"metric": "messages", "used": 1, "limit": 2, "threshold_percent": 50, "period": "2026-12"}});
    let r = env.post_events(&token, &body.to_string(), &[]);
    assert_eq!(r.status, 422);
    assert!(r.text().contains("ordering_key"), "{}", r.text());
    assert_eq!(env.count("events"), 0, "nothing stored");
    // A key of 128 bytes is taken, and delivered in the envelope.
    let rx = Receiver::always(200);
    fifo_endpoint(&env, "alice", &rx.url("/"), "continue");
    let body = json!({"type": "usage.threshold", "ordering_key": "k".repeat(128),
                      "data": {"metric": "messages", "used": 1, "limit": 2, "threshold_percent": 50, "period": "2026-12"}});
    assert_eq!(env.post_events(&token, &body.to_string(), &[]).status, 202);
    env.dispatch();
    assert_eq!(rx.received()[0].json()["ordering_key"], "k".repeat(128));
}

/// RFC 3339 with milliseconds, for range boundaries between batches posted a moment apart.
fn at_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[test]
fn replaying_a_time_range_counts_first_and_sends_exactly_the_deliveries_in_it() {
    let mut env = Env::new();
    env.set("WEBHOOKS_MAX_ATTEMPTS", "1");
    // The first and third event of each batch are refused (so each range holds dead and
    // succeeded ones), whatever order the requests come in.
    let refuse: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let r = refuse.clone();
    let rx = Receiver::start(move |_, q| {
        let id = q.header("X-QSM-Id").unwrap_or("");
        Reply::Status(if r.lock().unwrap().iter().any(|x| x == id) { 500 } else { 200 })
    });
    let (ep, _) = env.endpoint("alice", &rx.url("/"), "");
    let batch = |env: &Env| -> Vec<String> {
        (0..4)
            .map(|_| {
                env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<m@x>","size_bytes":1}"#)["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let before = batch(&env);
    std::thread::sleep(Duration::from_millis(20));
    let since = webhooks::model::time::now_ms();
    let inside = batch(&env);
    std::thread::sleep(Duration::from_millis(20));
    let until = webhooks::model::time::now_ms();
    let after = batch(&env);
    for b in [&before, &inside, &after] {
        refuse.lock().unwrap().extend([b[0].clone(), b[2].clone()]);
    }
    env.dispatch();
    assert_eq!(rx.len(), 12);
    let status_of = |event: &str| -> String {
        env.deliveries().iter().find(|d| d["event_id"] == event).unwrap()["status"].as_str().unwrap().to_string()
    };
    let dead_inside: Vec<String> = inside.iter().filter(|e| status_of(e) == "dead").cloned().collect();
    assert_eq!(dead_inside, vec![inside[0].clone(), inside[2].clone()], "the refused ones went dead");
    refuse.lock().unwrap().clear();

    // The CLI counts without --yes and changes nothing.
    let (from, to) = (at_ms(since), at_ms(until));
    let counted = env.json(&["retry", "--endpoint", &ep, "--since", &from, "--until", &to]);
    assert_eq!(
        (counted["count"].as_u64(), counted["replayed"].as_u64(), counted["dry_run"].as_bool()),
        (Some(2), Some(0), Some(true))
    );
    assert_eq!(env.count("queue"), 0, "counting queues nothing");
    // The API: a dry run, then the real thing; `all` counts the succeeded ones too.
    let token = env.user_token("alice");
    let path = format!("/api/v1/endpoints/{ep}/replay");
    let all = api(
        &env,
        &token,
        "POST",
        &path,
        Some(&json!({"since": from, "until": to, "status": "all", "dry_run": true}).to_string()),
    );
    assert_eq!((all.status, all.json()["count"].as_u64()), (200, Some(4)), "{}", all.text());
    let bad = api(&env, &token, "POST", &path, Some(r#"{"since":"yesterday"}"#));
    assert_eq!(bad.status, 422);
    let sent = api(&env, &token, "POST", &path, Some(&json!({"since": from, "until": to}).to_string()));
    assert_eq!((sent.status, sent.json()["replayed"].as_u64()), (200, Some(2)), "{}", sent.text());
    let before = rx.len();
    env.dispatch();
    let mut resent: Vec<String> =
        rx.received()[before..].iter().map(|q| q.header("X-QSM-Id").unwrap().to_string()).collect();
    resent.sort();
    let mut expected = dead_inside.clone();
    expected.sort();
    assert_eq!(resent, expected, "exactly the dead ones of the range (two in flight: in either order)");
    // Nothing dead is left in the range; the page counts again (0) and sends nothing.
    let mut b = common::Browser::new(&env, Some("alice"));
    assert!(b.get(&format!("/endpoints/{ep}")).text().contains("Send a time range again"));
    let page = b.post(&format!("/endpoints/{ep}/replay"), &[("since", &from), ("until", &to), ("status", "dead")]);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<strong>0 deliveries</strong>"), "{}", page.text());
    // `all` on the page: counted (4), then confirmed.
    let page = b.post(&format!("/endpoints/{ep}/replay"), &[("since", &from), ("until", &to), ("status", "all")]);
    assert!(page.text().contains("<strong>4 deliveries</strong>"), "{}", page.text());
    assert_eq!(env.count("queue"), 0);
    let done = b.post(
        &format!("/endpoints/{ep}/replay"),
        &[("since", &from), ("until", &to), ("status", "all"), ("confirm", "yes")],
    );
    assert_eq!(done.status, 303, "{}", done.text());
    assert_eq!(env.count("queue"), 4);
}

#[test]
fn one_dispatcher_run_sends_a_whole_key_one_after_the_other() {
    let mut env = Env::new();
    env.set("WEBHOOKS_CONCURRENCY_PER_USER", "8");
    let rx = Receiver::always(200);
    fifo_endpoint(&env, "alice", &rx.url("/"), "continue");
    let ids = post(&env, &["k"], 20);
    let summary = env.dispatch();
    assert_eq!(summary["succeeded"], 20, "the run claims each next one as the previous ends: {summary}");
    let sent: Vec<String> = rx.received().iter().map(|q| q.header("X-QSM-Id").unwrap().to_string()).collect();
    assert_eq!(sent, of_map(&ids, "k", &(0..20).collect::<Vec<_>>()));
}
