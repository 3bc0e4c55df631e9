//! Crash safety: `webhooks dispatch` killed with SIGKILL at random moments, hundreds of times,
//! while events keep arriving. Afterwards every event has reached every matching endpoint at
//! least once, a repeated request is the same message (same `X-QSM-Id`, same body), and no
//! delivery is left stuck once its lease has run out.
//!
//! `CRASH_RUNS` sets the number of runs killed while running (default 200); the seed is printed so that a
//! failure can be replayed with `CRASH_SEED`.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Env, Receiver, Reply, Rng};

const USERS: usize = 24;

fn event(user: usize, n: usize, forwarded: bool) -> String {
    if forwarded {
        format!(
            r#"{{"type":"email.forwarded","user":"u{user}","data":{{"alias":"a@x","message_id":"<{n}@x>","destinations":["d@y"],"size_bytes":{n}}}}}"#
        )
    } else {
        format!(
            r#"{{"type":"email.received","user":"u{user}","data":{{"alias":"a@x","message_id":"<{n}@x>","size_bytes":{n}}}}}"#
        )
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_and_leaves_nothing_stuck() {
    let runs: usize = std::env::var("CRASH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("crash test: CRASH_SEED={seed} CRASH_RUNS={runs}");
    let mut rng = Rng(seed);

    let mut env = Env::new();
    env.set("WEBHOOKS_REQUEST_TIMEOUT", "1s").set("WEBHOOKS_CONCURRENCY_PER_USER", "2");
    // The receiver answers after 0–40 ms, and one request in eight with a 500 (a retry), while
    // `failing` is set; at the end it accepts everything.
    let failing = Arc::new(AtomicBool::new(true));
    let f = failing.clone();
    let rx = Receiver::start(move |n, _| {
        let h = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32;
        std::thread::sleep(Duration::from_millis(h % 41));
        if f.load(Ordering::SeqCst) && h.is_multiple_of(8) {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    });
    // Each user has a catch-all endpoint and one for email.forwarded only; a disabled endpoint
    // must receive nothing.
    for u in 0..USERS {
        env.endpoint(&format!("u{u}"), &rx.url(&format!("/u{u}/all")), "");
        env.endpoint(&format!("u{u}"), &rx.url(&format!("/u{u}/fwd")), "email.forwarded");
    }
    let (off, _) = env.endpoint("u0", &rx.url("/u0/off"), "");
    env.ok(&["endpoint", "disable", &off]);
    let token = env.app_token();

    // events accepted: id → (user, forwarded)
    let mut accepted: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    let mut n = 0;
    let mut post_batch = |env: &Env, rng: &mut Rng, size: usize, accepted: &mut BTreeMap<String, (usize, bool)>| {
        let mut meta = Vec::new();
        let mut body = Vec::new();
        for _ in 0..size {
            let (user, fwd) = (rng.below(USERS as u64) as usize, rng.below(2) == 0);
            n += 1;
            body.push(event(user, n, fwd));
            meta.push((user, fwd));
        }
        let r = env.post_events(&token, &format!("[{}]", body.join(",")), &[]);
        assert_eq!(r.status, 202, "{}", r.text());
        for (ev, m) in r.json()["events"].as_array().unwrap().iter().zip(meta) {
            accepted.insert(ev["id"].as_str().unwrap().to_string(), m);
        }
    };
    post_batch(&env, &mut rng, 200, &mut accepted);

    let started = Instant::now();
    let (mut killed_running, mut exited_first, mut killed_holding, mut orphaned_leases) = (0, 0, 0, 0);
    // Until `runs` kills have landed on a live dispatcher (runs that finish before their kill
    // are counted apart).
    while killed_running < runs {
        assert!(killed_running + exited_first < 30 * runs, "runs keep finishing before the kill");
        post_batch(&env, &mut rng, 10, &mut accepted);
        env.make_due();
        // Cron runs a minute apart, well past a lease (2 × timeout): half the time the killed
        // runs' leases are wound back as if that time had passed; the other half they are live
        // and the next run must leave those deliveries alone.
        if rng.below(2) == 0 {
            env.db()
                .execute("UPDATE queue SET lease_until = 1, next_attempt_at = 1 WHERE lease_until IS NOT NULL", [])
                .unwrap();
        }
        let owners_before = lease_owners(&env);
        let t0 = Instant::now();
        let mut child = env.command("webhooks").arg("dispatch").stdout(std::process::Stdio::null()).spawn().unwrap();
        let deadline = t0 + Duration::from_millis(rng.below(60));
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(1));
        }
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "a dispatcher run failed on its own: {status}");
                exited_first += 1;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                killed_running += 1;
                let orphaned: i64 =
                    lease_owners(&env).iter().filter(|(o, _)| !owners_before.contains_key(*o)).map(|(_, n)| n).sum();
                if orphaned > 0 {
                    killed_holding += 1;
                    orphaned_leases += orphaned;
                }
            }
        }
    }
    let kill_phase = started.elapsed();
    let received_during_kills = rx.len();

    // Recovery: the receiver now accepts everything; leases (2 × 1 s) run out; cron runs go on.
    failing.store(false, Ordering::SeqCst);
    if !env.is_postgres() {
        let integrity: String = env.db().query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        assert_eq!(integrity, "ok");
    }
    std::thread::sleep(Duration::from_millis(2100));
    let now_ms = chrono::Utc::now().timestamp_millis();
    let live: i64 =
        env.db().query_row("SELECT count(*) FROM queue WHERE lease_until > ?1", [now_ms], |r| r.get(0)).unwrap();
    assert_eq!(live, 0, "every lease of a killed run has run out");
    let mut recovery_runs = 0;
    loop {
        env.make_due();
        let s = env.dispatch();
        recovery_runs += 1;
        assert!(s["sent"].as_u64().unwrap() > 0, "a recovery run found nothing to send: {s}");
        let open: i64 = env
            .db()
            .query_row("SELECT count(*) FROM deliveries WHERE status != 'succeeded'", [], |r| r.get(0))
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            recovery_runs < 20,
            "{open} deliveries still not delivered after {recovery_runs} runs after the leases expired"
        );
    }
    let leased: i64 =
        env.db().query_row("SELECT count(*) FROM queue WHERE lease_until IS NOT NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(leased, 0, "no lease left behind");

    // What the receiver saw, by (endpoint path, X-QSM-Id).
    let mut seen: BTreeMap<(String, String), Vec<Vec<u8>>> = BTreeMap::new();
    for r in rx.received() {
        let id = r.header("X-QSM-Id").expect("every request carries X-QSM-Id").to_string();
        assert_eq!(r.json()["id"].as_str(), Some(id.as_str()), "X-QSM-Id names the event in the body");
        let target = path_of(&r);
        seen.entry((target, id)).or_default().push(r.body.clone());
    }
    let mut expected = BTreeSet::new();
    for (id, (user, fwd)) in &accepted {
        expected.insert((format!("/u{user}/all"), id.clone()));
        if *fwd {
            expected.insert((format!("/u{user}/fwd"), id.clone()));
        }
    }
    let got: BTreeSet<_> = seen.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty(),
        "{} (endpoint, event) pairs never delivered, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert!(unexpected.is_empty(), "{} deliveries nobody asked for, e.g. {:?}", unexpected.len(), unexpected.first());
    let mut repeated = 0;
    for ((path, id), bodies) in &seen {
        assert!(bodies.iter().all(|b| b == &bodies[0]), "a repeat of {id} to {path} carried a different body");
        repeated += bodies.len() - 1;
    }
    let deliveries = env.count("deliveries") as usize;
    assert_eq!(deliveries, expected.len(), "one delivery row per matching endpoint");
    assert_eq!(env.count("events") as usize, accepted.len(), "every accepted event stored");
    eprintln!(
        "crash test figures: {} runs, {killed_running} killed while running (SIGKILL after 0-59 ms), {exited_first} finished first; \
         {killed_holding} kills left {orphaned_leases} claimed deliveries unrecorded; \
         {} events, {} deliveries, {} requests received ({received_during_kills} during the kill phase of {:.1} s), \
         {repeated} repeats (same id, same body), {recovery_runs} recovery runs after the leases expired",
        killed_running + exited_first,
        accepted.len(),
        deliveries,
        rx.len(),
        kill_phase.as_secs_f64()
    );
}

/// Each endpoint has its own URL path; the receiver records the request line's path as `:path`.
fn path_of(r: &common::Received) -> String {
    r.header(":path").expect("the receiver records the request path").to_string()
}

/// Live leases by the run that holds them.
fn lease_owners(env: &Env) -> BTreeMap<String, i64> {
    let db = env.db();
    let mut q = db
        .prepare("SELECT lease_owner, count(*) FROM queue WHERE lease_until IS NOT NULL GROUP BY lease_owner")
        .unwrap();
    let rows = q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).unwrap();
    rows.map(Result::unwrap).collect()
}
