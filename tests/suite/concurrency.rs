//! Concurrency: 16 CGI intake processes at a time, 200 events each, while two dispatcher loops
//! overlap — and, in the middle, another process holds SQLite's write lock for longer than the
//! busy timeout. Every event answered 202 is stored and delivered once per matching endpoint;
//! an event answered 503 (with `Retry-After`) was not stored, and the client's retry stores it
//! once; nothing answers 500.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{Env, Receiver};

const WRITERS: usize = 16;
const EVENTS_EACH: usize = 200;
const USERS: usize = 4;

fn event(user: usize, tag: &str, forwarded: bool) -> String {
    if forwarded {
        format!(
            r#"{{"type":"email.forwarded","user":"u{user}","data":{{"alias":"a@x","message_id":"{tag}","destinations":["d@y"],"size_bytes":1}}}}"#
        )
    } else {
        format!(
            r#"{{"type":"email.received","user":"u{user}","data":{{"alias":"a@x","message_id":"{tag}","size_bytes":1}}}}"#
        )
    }
}

#[test]
fn parallel_intakes_and_overlapping_dispatchers_store_and_deliver_everything_once() {
    let mut env = Env::new();
    env.set("WEBHOOKS_REQUEST_TIMEOUT", "5s").set("WEBHOOKS_CONCURRENCY_PER_USER", "4");
    let rx = Receiver::always(200);
    for u in 0..USERS {
        env.endpoint(&format!("u{u}"), &rx.url(&format!("/u{u}/all")), "");
        env.endpoint(&format!("u{u}"), &rx.url(&format!("/u{u}/fwd")), "email.forwarded");
    }
    let token = env.app_token();
    let env = Arc::new(env);
    let posting = Arc::new(AtomicBool::new(true));
    let posted = Arc::new(AtomicUsize::new(0));

    // Two dispatcher loops, overlapping all the time, collecting what they say on stderr.
    let dispatch_log = Arc::new(Mutex::new(String::new()));
    let dispatchers: Vec<_> = (0..2)
        .map(|_| {
            let (env, posting, log) = (env.clone(), posting.clone(), dispatch_log.clone());
            std::thread::spawn(move || {
                let mut runs = 0;
                while posting.load(Ordering::SeqCst) {
                    let out = env.run(&["dispatch", "--json"]);
                    let err = String::from_utf8_lossy(&out.stderr).into_owned();
                    assert!(out.status.success(), "a dispatcher run failed: {err}");
                    log.lock().unwrap().push_str(&err);
                    runs += 1;
                }
                runs
            })
        })
        .collect();

    // Halfway through, another process takes the write lock for longer than the busy timeout (5 s).
    let blocker = {
        let (env, posted) = (env.clone(), posted.clone());
        std::thread::spawn(move || {
            common::wait_until(Duration::from_secs(120), || posted.load(Ordering::SeqCst) >= WRITERS * EVENTS_EACH / 2);
            let db = env.hold_write_lock();
            std::thread::sleep(Duration::from_millis(6500));
            db.execute_batch("ROLLBACK").unwrap();
        })
    };

    let started = Instant::now();
    // tag → (user, forwarded, event id from the 202)
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (env, token, posted) = (env.clone(), token.clone(), posted.clone());
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                let (mut busy, mut retried_ok) = (0, 0);
                for i in 0..EVENTS_EACH {
                    let (user, fwd, tag) = ((w + i) % USERS, i % 3 == 0, format!("<w{w}-{i}>"));
                    let body = event(user, &tag, fwd);
                    loop {
                        let r = env.post_events(&token, &body, &[]);
                        assert!(!r.stderr.contains("panic"), "{}", r.stderr);
                        match r.status {
                            202 => {
                                accepted.push((tag.clone(), user, fwd, r.json()["id"].as_str().unwrap().to_string()));
                                break;
                            }
                            503 => {
                                // Busy: nothing was stored; the client waits as told and retries.
                                assert_eq!(r.error_code(), "busy");
                                let wait: u64 =
                                    r.header("Retry-After").expect("503 carries Retry-After").parse().unwrap();
                                assert!((1..=60).contains(&wait));
                                busy += 1;
                                retried_ok += 1;
                                std::thread::sleep(Duration::from_millis(200));
                            }
                            s => panic!("intake answered {s}: {} {}", r.text(), r.stderr),
                        }
                    }
                    posted.fetch_add(1, Ordering::SeqCst);
                }
                (accepted, busy, retried_ok)
            })
        })
        .collect();
    let mut accepted = Vec::new();
    let mut busy = 0;
    for w in writers {
        let (a, b, _) = w.join().unwrap();
        accepted.extend(a);
        busy += b;
    }
    let intake_time = started.elapsed();
    blocker.join().unwrap();
    posting.store(false, Ordering::SeqCst);
    let runs: usize = dispatchers.into_iter().map(|d| d.join().unwrap()).sum();
    // Drain what is left.
    let mut drain = 0;
    while env.count("deliveries") > 0
        && env
            .db()
            .query_row("SELECT count(*) FROM deliveries WHERE status != 'succeeded'", [], |r| r.get::<_, i64>(0))
            .unwrap()
            > 0
    {
        env.make_due();
        env.dispatch();
        drain += 1;
        assert!(drain < 20, "deliveries left undelivered");
    }

    // Stored: exactly the accepted events, each once, with the id the 202 gave.
    assert_eq!(accepted.len(), WRITERS * EVENTS_EACH);
    let db = env.db();
    let mut q = db.prepare("SELECT id, payload FROM events").unwrap();
    let stored: BTreeMap<String, String> = q
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(0)?)))
        .unwrap()
        .map(|row| {
            let (payload, id) = row.unwrap();
            let envelope: serde_json::Value = serde_json::from_str(&payload).unwrap();
            (envelope["data"]["message_id"].as_str().unwrap().to_string(), id)
        })
        .collect();
    assert_eq!(stored.len(), accepted.len(), "one row per accepted event, none for a 503");
    for (tag, _, _, id) in &accepted {
        assert_eq!(stored.get(tag), Some(id), "event {tag} stored under the id its 202 gave");
    }

    // Delivered: once per matching endpoint.
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in rx.received() {
        *seen
            .entry((r.header(":path").unwrap().to_string(), r.header("X-QSM-Id").unwrap().to_string()))
            .or_default() += 1;
    }
    let mut expected = BTreeSet::new();
    for (_, user, fwd, id) in &accepted {
        expected.insert((format!("/u{user}/all"), id.clone()));
        if *fwd {
            expected.insert((format!("/u{user}/fwd"), id.clone()));
        }
    }
    let got: BTreeSet<_> = seen.keys().cloned().collect();
    assert_eq!(got.difference(&expected).count(), 0, "deliveries to endpoints that did not match");
    assert_eq!(expected.difference(&got).count(), 0, "matching endpoints that never got their event");
    let log = dispatch_log.lock().unwrap().clone();
    let dropped: usize =
        log.lines().filter_map(|l| l.split("could not record ").nth(1)?.split(' ').next()?.parse::<usize>().ok()).sum();
    let repeats: usize = seen.values().map(|n| n - 1).sum();
    assert!(repeats <= dropped, "{repeats} repeated sends, but only {dropped} in-flight results were dropped: {log}");
    assert!(busy > 0, "the lock held past the busy timeout produced 503s");
    eprintln!(
        "concurrency figures: {WRITERS} writers x {EVENTS_EACH} events = {} accepted in {:.1} s ({:.0}/s) with {runs} overlapping \
         dispatcher runs; {busy} answers 503 while the lock was held 6.5 s (retried, stored once); {} deliveries, {repeats} repeats, \
         {dropped} results dropped on busy; no 500",
        accepted.len(),
        intake_time.as_secs_f64(),
        accepted.len() as f64 / intake_time.as_secs_f64(),
        expected.len()
    );
}
