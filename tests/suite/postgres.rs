//! What PostgreSQL adds: many dispatchers on one database. The per-user cap across processes,
//! round-robin fairness, no loss under `kill -9`, fencing, and clear answers when the database
//! cannot be reached.
//!
//! The PostgreSQL cases run when `WEBHOOKS_TEST_POSTGRES` names a role that may create databases
//! (`.ci/postgres start DIR` starts a throw-away cluster and prints it); every installation gets
//! a database of its own. Without it they are skipped with a one-line hint; under `CI=true` they
//! fail instead. (The whole behavioural suite runs on PostgreSQL too: `.ci/run` runs `cargo test`
//! a second time with `WEBHOOKS_TEST_STORE=postgres`, without this module: its cases choose their
//! engines themselves, so they would run twice alike.)

use crate::common;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Env, Receiver, Reply};
use serde_json::{json, Value};
use webhooks::model::delivery::{Next, Outcome};
use webhooks::model::health::{FailureRule, Notify};
use webhooks::store::queue::{self, Attempted, Claim};
use webhooks::store::Store;

/// The admin URL, or `None` (with the hint) outside CI.
fn postgres() -> Option<String> {
    match common::postgres_admin_url() {
        Some(u) => Some(u),
        None => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but WEBHOOKS_TEST_POSTGRES is not set: .ci/run starts a cluster with .ci/postgres"
            );
            // Written past the test harness's capture, once, so that `cargo test` shows it.
            static HINT: std::sync::Once = std::sync::Once::new();
            HINT.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "tests/suite/postgres.rs: PostgreSQL cases skipped; to run them: .ci/postgres start /tmp/pg, then export the two lines it prints"
                );
            });
            None
        }
    }
}

fn event(user: &str, n: usize) -> Value {
    json!({"type": "email.received", "user": user,
           "data": {"alias": "a@x.example", "message_id": format!("<{n}@x>"), "size_bytes": 10}})
}

/// Posts `events` through the CGI in batches of 100.
fn post_all(env: &Env, token: &str, events: &[Value]) {
    for chunk in events.chunks(100) {
        let r = env.post_events(token, &Value::Array(chunk.to_vec()).to_string(), &[]);
        assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    }
}

fn spawn_dispatch(env: &Env) -> Child {
    env.command("webhooks").args(["dispatch", "--json"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// `n` dispatcher runs started at once, each waited for and required to succeed: their stderr.
fn dispatch_at_once(env: &Env, n: usize) -> Vec<String> {
    let runs: Vec<Child> = (0..n).map(|_| spawn_dispatch(env)).collect();
    runs.into_iter()
        .map(|r| {
            let out = r.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(out.status.success(), "{err}");
            err
        })
        .collect()
}

/// Who a request was for, from its body.
fn user_of(r: &common::Received) -> String {
    r.json()["user"].as_str().unwrap_or_default().to_string()
}

/// A receiver that holds each request `hold` and tracks, per user, how many it holds at once.
struct Tracking {
    rx: Receiver,
    peaks: Arc<Mutex<HashMap<String, usize>>>,
}

fn tracking_receiver(addr: &str, hold: Duration) -> Tracking {
    let now: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let peaks: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (n, p) = (now.clone(), peaks.clone());
    let rx = Receiver::start_on(addr, move |_, r| {
        let user = user_of(r);
        {
            let mut n = n.lock().unwrap();
            let c = n.entry(user.clone()).or_default();
            *c += 1;
            let mut p = p.lock().unwrap();
            let peak = p.entry(user.clone()).or_default();
            *peak = (*peak).max(*c);
        }
        std::thread::sleep(hold);
        *n.lock().unwrap().get_mut(&user).unwrap() -= 1;
        Reply::Status(200)
    });
    Tracking { rx, peaks }
}

#[test]
fn the_per_user_cap_holds_for_sixteen_claimers_in_four_processes() {
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    env.set("WEBHOOKS_CONCURRENCY", "4").set("WEBHOOKS_CONCURRENCY_PER_USER", "2").set("WEBHOOKS_TIME_BUDGET", "50s");
    let t = tracking_receiver("127.0.0.1", Duration::from_millis(40));
    let users = ["ann", "bob", "cat"];
    for u in users {
        env.endpoint(u, &t.rx.url(&format!("/{u}")), "");
    }
    let token = env.app_token();
    let events: Vec<Value> = (0..40).flat_map(|i| users.iter().map(move |u| event(u, i))).collect();
    post_all(&env, &token, &events);
    dispatch_at_once(&env, 4);
    let got = t.rx.received();
    let ids: HashSet<String> = got.iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    assert_eq!((got.len(), ids.len()), (120, 120), "each delivery once");
    let peaks = t.peaks.lock().unwrap().clone();
    for u in users {
        let peak = peaks.get(u).copied().unwrap_or(0);
        assert!((1..=2).contains(&peak), "{u} had {peak} requests in flight at once (cap 2): {peaks:?}");
    }
    assert_eq!(env.count("deliveries WHERE status <> 'succeeded'"), 0);
}

#[test]
fn four_dispatchers_recording_at_once_never_find_the_database_busy() {
    // Results of many endpoints in every batch, in each run's own order: the failure records,
    // hourly counters and fanned-out events they rewrite are shared by the four runs.
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    env.set("WEBHOOKS_CONCURRENCY", "8").set("WEBHOOKS_CONCURRENCY_PER_USER", "6").set("WEBHOOKS_TIME_BUDGET", "50s");
    let (ok, failing) = (Receiver::always(200), Receiver::always(500));
    let users: Vec<String> = (0..8).map(|u| format!("u{u}")).collect();
    for u in &users {
        env.endpoint(u, &ok.url("/a"), "");
        env.endpoint(u, &failing.url("/b"), "");
        env.endpoint(u, &ok.url("/c"), "");
    }
    let token = env.app_token();
    let events: Vec<Value> = (0..100).flat_map(|i| users.iter().map(move |u| event(u, i))).collect();
    post_all(&env, &token, &events);
    for err in dispatch_at_once(&env, 4) {
        assert!(!err.contains("busy"), "{err}");
    }
    let deliveries = 800 * 3;
    assert_eq!(env.count("deliveries"), deliveries);
    assert_eq!(env.count("attempts"), deliveries, "each delivery tried once, every result recorded");
    assert_eq!(env.count("deliveries WHERE status = 'succeeded'"), 1600);
    assert_eq!(env.count("queue WHERE status = 'failed'"), 800);
    assert_eq!(env.count("deliveries WHERE status = 'pending'"), 800, "the record of a delivery that will retry");
    assert_eq!(env.count("queue WHERE lease_owner IS NOT NULL"), 0);
    let counted: i64 =
        env.db().query_row("SELECT sum(succeeded + failed) FROM endpoint_stats", [], |r| r.get(0)).unwrap();
    assert_eq!(counted, deliveries, "the hourly counters hold every attempt");
    assert_eq!(env.count("endpoints WHERE fail_since IS NOT NULL"), 8, "the failing endpoints' records");
    assert_eq!((ok.received().len(), failing.received().len()), (1600, 800));
}

#[test]
fn a_heavy_user_does_not_hold_up_twenty_light_ones() {
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    env.set("WEBHOOKS_CONCURRENCY", "8").set("WEBHOOKS_CONCURRENCY_PER_USER", "2").set("WEBHOOKS_TIME_BUDGET", "50s");
    let rx = Receiver::always(200);
    let light: Vec<String> = (0..20).map(|i| format!("light{i:02}")).collect();
    env.endpoint("heavy", &rx.url("/heavy"), "");
    for u in &light {
        env.endpoint(u, &rx.url(&format!("/{u}")), "");
    }
    let token = env.app_token();
    // The heavy user's 2,000 first, then 10 for each light user.
    post_all(&env, &token, &(0..2000).map(|i| event("heavy", i)).collect::<Vec<_>>());
    let mut rest = Vec::new();
    for u in &light {
        rest.extend((0..10).map(|i| event(u, i)));
    }
    post_all(&env, &token, &rest);
    let s = env.dispatch();
    assert_eq!(s["succeeded"], 2200, "{s}");
    let order: Vec<String> = rx.received().iter().map(user_of).collect();
    let tenth = order.len() / 10;
    for u in &light {
        let first = order.iter().position(|o| o == u).expect("served");
        assert!(first < tenth, "{u} was first served at {first}, after the first 10 % ({tenth}) of 2,200");
    }
}

#[test]
fn kill_9_of_four_dispatchers_200_times_while_events_arrive_loses_nothing() {
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    env.set("WEBHOOKS_CONCURRENCY", "4")
        .set("WEBHOOKS_CONCURRENCY_PER_USER", "4")
        .set("WEBHOOKS_REQUEST_TIMEOUT", "1s")
        .set("WEBHOOKS_TIME_BUDGET", "20s");
    let rx = Receiver::start(|n, _| {
        std::thread::sleep(Duration::from_millis(if n % 3 == 0 { 15 } else { 2 }));
        Reply::Status(200)
    });
    let users = ["ann", "bob"];
    for u in users {
        env.endpoint(u, &rx.url(&format!("/{u}")), "");
    }
    let token = env.app_token();
    let posted = Arc::new(AtomicUsize::new(0));
    let env = Arc::new(env);
    let intake = {
        let (env, token, posted) = (env.clone(), token.clone(), posted.clone());
        std::thread::spawn(move || {
            for i in 0..60 {
                let batch: Vec<Value> = (0..5).map(|j| event(users[(i + j) % 2], i * 5 + j)).collect();
                post_all(&env, &token, &batch);
                posted.fetch_add(batch.len(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
            }
        })
    };
    let mut slots: Vec<Child> = (0..4).map(|_| spawn_dispatch(&env)).collect();
    let mut kills = 0;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    while kills < 200 {
        std::thread::sleep(Duration::from_millis(5 + random(40)));
        let i = random(4) as usize;
        if slots[i].try_wait().unwrap().is_none() {
            unsafe { libc::kill(slots[i].id() as i32, libc::SIGKILL) };
            kills += 1;
        }
        let _ = slots[i].wait();
        slots[i] = spawn_dispatch(&env);
    }
    intake.join().unwrap();
    for mut c in slots {
        let _ = c.kill();
        let _ = c.wait();
    }
    // Every lease of a killed run has run out (2 × the request timeout); then one clean run.
    env.set_clock(Duration::from_secs(10));
    let s = env.dispatch();
    assert_eq!(s["busy"], false, "{s}");
    let total = posted.load(Ordering::SeqCst);
    assert_eq!(total, 300);
    assert_eq!(env.count("deliveries WHERE status = 'succeeded'"), 300, "nothing lost");
    assert_eq!(env.count("queue WHERE lease_until IS NOT NULL"), 0, "nothing stuck");
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    let mut repeats = 0;
    for r in rx.received() {
        let id = r.header("webhook-id").unwrap().to_string();
        match bodies.get(&id) {
            Some(b) => {
                repeats += 1;
                assert_eq!(b, &r.body, "a repeat of {id} has the same body");
            }
            None => {
                bodies.insert(id, r.body.clone());
            }
        }
    }
    assert_eq!(bodies.len(), 300, "every event reached its receiver");
    // A repeat is a delivery a killed run had claimed: at most its queue (4 × concurrency).
    assert!(repeats <= kills * 16, "{repeats} repeats for {kills} kills");
    eprintln!("{kills} kills, {repeats} repeats of 300 deliveries");
}

#[test]
fn an_outcome_recorded_under_a_lease_another_run_has_since_claimed_changes_nothing() {
    // Both engines, whichever store the suite runs on: the fence is the lease's owner.
    fenced(Env::on_sqlite());
    if let Some(admin) = postgres() {
        fenced(Env::on_postgres(&admin));
    }
}

fn fenced(env: Env) {
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", r#"{"alias":"a@x.example","message_id":"<1@x>","size_bytes":10}"#);
    let mut store = Store::open(&env.location()).unwrap();
    let t = webhooks::model::time::now_ms();
    let claim = |run_id: &'static str, now: i64| Claim {
        run_id,
        now,
        lease_until: now + 1_000,
        per_user: 2,
        slots: 10,
        payload_retention: Duration::from_secs(3600),
    };
    let a = store.work(|db| queue::claim(db, &claim("run_a", t), &mut None)).unwrap();
    assert_eq!(a.due.len(), 1);
    // run_a's lease runs out; run_b claims the delivery.
    let b = store.work(|db| queue::claim(db, &claim("run_b", t + 2_000), &mut None)).unwrap();
    assert_eq!(b.due.len(), 1, "claimable again once the lease has run out");
    let ok = Outcome { status_code: Some(200), duration_ms: 3, ..Outcome::default() };
    let record = |store: &mut Store, run_id: &str| {
        let attempted = Attempted {
            delivery_id: &a.due[0].delivery_id,
            event_id: &a.due[0].event_id,
            created_at: a.due[0].created_at,
            endpoint_id: &a.due[0].endpoint_id,
            attempt: 1,
            run_id,
            started_at: t,
            outcome: &ok,
            request_body: None,
            next: Next::Succeeded,
            ordering_key: None,
            block_on_dead: false,
        };
        store
            .work(|db| {
                queue::record(
                    db,
                    std::slice::from_ref(&attempted),
                    t + 2_500,
                    Duration::from_secs(3600),
                    &Notify { rule: FailureRule { disable_after: None }, webhook: false, email: false },
                )
            })
            .unwrap()[0]
    };
    assert!(!record(&mut store, "run_a"), "the stale lease is refused");
    assert_eq!(env.count("attempts"), 0, "and leaves no attempt");
    assert_eq!(env.count("queue WHERE status = 'pending' AND lease_owner = 'run_b'"), 1, "run_b's lease stands");
    assert!(record(&mut store, "run_b"));
    assert_eq!(env.count("attempts"), 1);
    assert_eq!(env.count("deliveries WHERE status = 'succeeded'"), 1);
    assert_eq!(env.count("queue"), 0, "it left the queue");
}

fn assert_unavailable(env: &Env, says: &str) {
    let out = env.run(&["endpoint", "list", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(says) && !err.contains("panicked"), "{err}");
    assert!(!err.contains("s3cret") && !err.contains("test-password"), "no password in {err}");
    let r = env.cgi("GET", "/api/v1/endpoints", &[("Authorization", "Bearer whk_x")], b"");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("Retry-After").is_some());
    assert_eq!(r.error_code(), "unavailable");
}

#[test]
fn an_unreachable_database_is_one_line_and_a_503() {
    let mut env = Env::on_sqlite();
    env.set("WEBHOOKS_DATABASE", "postgres://webhooks:s3cret@127.0.0.1:1/webhooks?sslmode=disable");
    assert_unavailable(&env, "cannot connect to postgres://webhooks:****@127.0.0.1:1/webhooks");
}

#[test]
fn a_wrong_password_is_one_line_and_a_503() {
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    let mut url = url::Url::parse(&common::with_database(&admin, env.pg_database.as_deref().unwrap())).unwrap();
    url.set_password(Some("s3cret")).unwrap();
    env.set("WEBHOOKS_DATABASE", url.as_str());
    assert_unavailable(&env, "password authentication failed");
}

#[test]
fn sslmode_require_means_tls_or_an_error() {
    let Some(admin) = postgres() else { return };
    let env = Env::on_postgres(&admin);
    let db = env.pg_database.clone().unwrap();
    // The test cluster offers TLS: require gets it.
    let tls = format!("{}?sslmode=require", common::with_database(&admin, &db));
    let c = webhooks::store::connect(&webhooks::model::location::Location::Postgres(tls)).unwrap();
    let on: bool = c.query_row("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", [], |r| r.get(0)).unwrap();
    assert!(on, "sslmode=require connected without TLS");
    // pgbouncer, as started by .ci/postgres, offers none: require refuses, prefer falls back.
    let Some(bouncer) = std::env::var("WEBHOOKS_TEST_PGBOUNCER").ok() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI=true but WEBHOOKS_TEST_PGBOUNCER is not set");
        eprintln!("skipped the plain-server half: set WEBHOOKS_TEST_PGBOUNCER (.ci/postgres prints it)");
        return;
    };
    let plain = common::with_database(&bouncer, &db);
    let refused =
        webhooks::store::connect(&webhooks::model::location::Location::Postgres(format!("{plain}?sslmode=require")));
    let e = refused.err().expect("require never falls back to plain text").to_string();
    assert!(e.contains("TLS"), "{e}");
    webhooks::store::connect(&webhooks::model::location::Location::Postgres(format!("{plain}?sslmode=prefer")))
        .unwrap();
}

#[test]
fn a_populated_sqlite_installation_moves_to_postgresql_with_everything_it_shows() {
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    let target = common::with_database(&admin, env.pg_database.as_deref().unwrap());
    // A SQLite installation first, with endpoints, a rotated key, events, deliveries in every
    // state, attempts, tokens and an inbound source.
    env.set("WEBHOOKS_DATABASE", "var/webhooks.db");
    env.init();
    let failing = Arc::new(AtomicUsize::new(0));
    let f = failing.clone();
    let rx = Receiver::start(move |_, r| {
        if r.json()["data"]["message_id"] == "<1@x>" && f.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    });
    let (ep, _) = env.endpoint("alice", &rx.url("/a"), "");
    env.endpoint("bob", &rx.url("/b"), "email.*");
    env.ok(&["endpoint", "rotate-secret", &ep]);
    let token = env.user_token("alice");
    for i in 0..3 {
        env.emit(
            "alice",
            "email.received",
            &json!({"alias":"a@x.example","message_id":format!("<{i}@x>"),"size_bytes":10}).to_string(),
        );
    }
    env.dispatch(); // <1@x> fails once: a retry waits, with its attempt
    env.emit("bob", "email.received", r#"{"alias":"a@x.example","message_id":"<9@x>","size_bytes":10}"#);
    env.json(&["source", "add", "--name", "gh", "--provider", "github", "--secret", "s"]);
    let before_endpoints = env.json(&["endpoint", "list"]);
    let before_deliveries = env.json(&["deliveries", "--limit", "100"]);
    let before_api = common::api(&env, &token, "GET", "/api/v1/deliveries", None).json();
    assert_eq!(before_deliveries.as_array().unwrap().len(), 4);

    let moved = env.json(&["migrate-store", "--to", &target]);
    assert_eq!(moved["tables"]["deliveries"], 4, "{moved}");
    assert_eq!(moved["tables"]["attempts"], 3, "{moved}");
    assert_eq!(moved["env_updated"], true);
    env.vars.insert("WEBHOOKS_DATABASE".into(), target.clone()); // as the command wrote it
    let text = std::fs::read_to_string(&env.env_file).unwrap();
    assert!(text.contains(&format!("WEBHOOKS_DATABASE={target}")), "{text}");

    // The same endpoints, log and pending deliveries, through the CLI, the API and the pages.
    assert_eq!(env.json(&["endpoint", "list"]), before_endpoints);
    assert_eq!(env.json(&["deliveries", "--limit", "100"]), before_deliveries);
    assert_eq!(common::api(&env, &token, "GET", "/api/v1/deliveries", None).json(), before_api);
    let page = common::Browser::new(&env, Some("alice")).get("/deliveries").text();
    let listed = before_api["deliveries"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "alice's three");
    for d in listed {
        assert!(page.contains(d["id"].as_str().unwrap()), "{page}");
    }
    let doctor = env.run(&["doctor"]);
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("database schema is current"));
    // Run again: a clear refusal, nothing copied twice.
    let again = env.run(&["migrate-store", "--to", &target]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("PostgreSQL already"));
    // The old file refuses writes, naming the way out.
    let old = env
        .command("webhooks")
        .env("WEBHOOKS_DATABASE", "var/webhooks.db")
        .args([
            "emit",
            "--user",
            "alice",
            "--type",
            "email.received",
            "--data",
            r#"{"alias":"a@x.example","message_id":"<5@x>","size_bytes":1}"#,
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&old.stderr).contains("moved to PostgreSQL"),
        "{}",
        String::from_utf8_lossy(&old.stderr)
    );
    // A dispatcher on PostgreSQL sends what was pending, with the same ids; new keys sign.
    env.make_due();
    let s = env.dispatch();
    assert_eq!(s["succeeded"], 2, "{s}");
    let got = rx.received();
    let retried: Vec<_> = got.iter().filter(|r| r.json()["data"]["message_id"] == "<1@x>").collect();
    assert_eq!(retried.len(), 2);
    assert_eq!(retried[0].header("webhook-id"), retried[1].header("webhook-id"));
    assert_eq!(env.json(&["deliveries", "--status", "pending"]).as_array().unwrap().len(), 0);
}

/// Test hosts: network namespaces joined to this one by veth pairs, removed on drop.
struct Hosts {
    names: Vec<String>,
}

impl Hosts {
    /// `n` hosts; host `i` is 10.77.{i+1}.2 and sees this namespace as 10.77.{i+1}.1, its
    /// default route. `None` where namespaces cannot be made (not root, no `ip`).
    fn make(n: usize) -> Option<Hosts> {
        let mut hosts = Hosts { names: Vec::new() };
        for i in 0..n {
            let (ns, here, there) = (format!("qsmtest-h{i}"), format!("qsmt-h{i}a"), format!("qsmt-h{i}b"));
            // Left over by a run that was killed (deleting the namespace deletes its veth pair).
            let _ = std::process::Command::new("ip").args(["netns", "delete", &ns]).stderr(Stdio::null()).status();
            let _ = std::process::Command::new("ip").args(["link", "delete", &here]).stderr(Stdio::null()).status();
            let net = i + 1;
            let steps: Vec<Vec<String>> = vec![
                vec!["netns".into(), "add".into(), ns.clone()],
                vec![
                    "link".into(),
                    "add".into(),
                    here.clone(),
                    "type".into(),
                    "veth".into(),
                    "peer".into(),
                    "name".into(),
                    there.clone(),
                ],
                vec!["link".into(), "set".into(), there.clone(), "netns".into(), ns.clone()],
                vec!["addr".into(), "add".into(), format!("10.77.{net}.1/24"), "dev".into(), here.clone()],
                vec!["link".into(), "set".into(), here.clone(), "up".into()],
                vec![
                    "-n".into(),
                    ns.clone(),
                    "addr".into(),
                    "add".into(),
                    format!("10.77.{net}.2/24"),
                    "dev".into(),
                    there.clone(),
                ],
                vec!["-n".into(), ns.clone(), "link".into(), "set".into(), there.clone(), "up".into()],
                vec!["-n".into(), ns.clone(), "link".into(), "set".into(), "lo".into(), "up".into()],
                vec![
                    "-n".into(),
                    ns.clone(),
                    "route".into(),
                    "add".into(),
                    "default".into(),
                    "via".into(),
                    format!("10.77.{net}.1"),
                ],
            ];
            for step in steps {
                let ok = std::process::Command::new("ip")
                    .args(&step)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if step[1] == "add" && step[0] == "netns" && ok {
                    hosts.names.push(ns.clone());
                }
                if !ok {
                    return None;
                }
            }
        }
        Some(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = std::process::Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

#[test]
fn dispatchers_on_two_machines_keep_the_cap_fairness_and_every_delivery() {
    let Some(admin) = postgres() else { return };
    let Some(hosts) = Hosts::make(2) else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but network namespaces cannot be made here (needs root and iproute2)"
        );
        eprintln!("skipped: network namespaces cannot be made here (needs root and iproute2's ip)");
        return;
    };
    // The database and the receivers on this host, reached by both machines at 10.77.1.1 (the
    // second routes there through its own link).
    let mut env = Env::on_postgres(&admin);
    let mut url = url::Url::parse(&common::with_database(&admin, env.pg_database.as_deref().unwrap())).unwrap();
    url.set_host(Some("10.77.1.1")).unwrap();
    env.set("WEBHOOKS_DATABASE", url.as_str())
        .set("WEBHOOKS_ALLOWED_NETWORKS", "10.77.0.0/16,127.0.0.1/32")
        .set("WEBHOOKS_CONCURRENCY", "6")
        .set("WEBHOOKS_CONCURRENCY_PER_USER", "2")
        .set("WEBHOOKS_TIME_BUDGET", "50s");
    let t = tracking_receiver("0.0.0.0", Duration::from_millis(20));
    let heavy_then_light: Vec<String> =
        std::iter::once("heavy".to_string()).chain((0..10).map(|i| format!("light{i}"))).collect();
    for u in &heavy_then_light {
        env.endpoint(u, &format!("http://10.77.1.1:{}/{u}", t.rx.port), "");
    }
    let token = env.app_token();
    post_all(&env, &token, &(0..300).map(|i| event("heavy", i)).collect::<Vec<_>>());
    let mut light = Vec::new();
    for u in &heavy_then_light[1..] {
        light.extend((0..6).map(|i| event(u, i)));
    }
    post_all(&env, &token, &light);
    // Two dispatchers on each machine.
    let runs: Vec<Child> = hosts
        .names
        .iter()
        .flat_map(|ns| [ns.clone(), ns.clone()])
        .map(|ns| {
            let base = env.command("webhooks");
            let mut c = std::process::Command::new("ip");
            c.args(["netns", "exec", &ns]).arg(base.get_program()).args(["dispatch", "--json"]).env_clear();
            for (k, v) in base.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c.current_dir(env.dir.path()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let mut sent_by_machine = Vec::new();
    for r in runs {
        let out = r.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        sent_by_machine.push(s["sent"].as_u64().unwrap());
    }
    let got = t.rx.received();
    let ids: HashSet<String> = got.iter().map(|r| r.header("webhook-id").unwrap().to_string()).collect();
    assert_eq!((got.len(), ids.len()), (360, 360), "every delivery once, none lost");
    assert!(
        sent_by_machine[..2].iter().sum::<u64>() > 0 && sent_by_machine[2..].iter().sum::<u64>() > 0,
        "both machines worked: {sent_by_machine:?}"
    );
    let peaks = t.peaks.lock().unwrap().clone();
    for (u, peak) in &peaks {
        assert!(*peak <= 2, "{u} had {peak} requests in flight at once across the machines (cap 2)");
    }
    let order: Vec<String> = got.iter().map(user_of).collect();
    for u in &heavy_then_light[1..] {
        let first = order.iter().position(|o| o == u).expect("served");
        assert!(first < 36, "{u} first served at {first}, after the first 10 % of 360");
    }
}

#[test]
fn text_with_a_nul_is_stored_with_u_fffd_in_its_place() {
    // What SQLite's text holds and PostgreSQL's cannot must not fail a statement.
    let Some(admin) = postgres() else { return };
    let env = Env::on_postgres(&admin);
    env.init();
    let db = env.db();
    db.execute("INSERT INTO observations (name, at) VALUES (?1, 1)", ["a\0b"]).unwrap();
    let name: String = db.query_row("SELECT name FROM observations", [], |r| r.get(0)).unwrap();
    assert_eq!(name, "a\u{FFFD}b");
}

/// A TCP relay in front of the PostgreSQL server that a test can take down, as if the server
/// stopped: while down, new connections are reset at once and every open one is reset (RST,
/// what a crashed or restarted server's host sends).
struct Outage {
    port: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

fn reset(s: &std::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
}

impl Outage {
    fn start(server: &str) -> Outage {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (u, o, server) = (up.clone(), open.clone(), server.to_string());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if !u.load(Ordering::SeqCst) {
                    reset(&client);
                    continue;
                }
                let Ok(upstream) = std::net::TcpStream::connect(&server) else {
                    reset(&client);
                    continue;
                };
                o.lock().unwrap().extend([client.try_clone().unwrap(), upstream.try_clone().unwrap()]);
                for (mut from, mut to) in
                    [(client.try_clone().unwrap(), upstream.try_clone().unwrap()), (upstream, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Outage { port, up, open }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            reset(&s);
        }
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by this relay's.
    fn url(&self, url: &str) -> String {
        let mut u = url::Url::parse(url).unwrap();
        u.set_host(Some("127.0.0.1")).unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }
}

/// The server's `host:port` from a URL.
fn server_of(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!("{}:{}", u.host_str().unwrap(), u.port().unwrap_or(5432))
}

/// PostgreSQL stops and starts again under a running `dispatch --every`: each failed run is one
/// line on stderr, the worker keeps going, and every event arrives, each repeat with the same id
/// and body.
#[test]
fn dispatch_every_outlives_a_database_outage_and_delivers_everything() {
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    let direct = env.vars["WEBHOOKS_DATABASE"].clone();
    let outage = Outage::start(&server_of(&direct));
    env.set("WEBHOOKS_DATABASE", &outage.url(&direct));
    env.set("WEBHOOKS_DB_CONNECT_TIMEOUT", "2s");
    env.init();
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/hook"), "");
    let mut worker = env
        .command("webhooks")
        .args(["dispatch", "--every", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let emit = |n: usize, url: &str| {
        let out = env
            .command("webhooks")
            .env("WEBHOOKS_DATABASE", url)
            .args(["emit", "--user", "alice", "--type", "email.received", "--data"])
            .arg(event("alice", n)["data"].to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    for n in 0..3 {
        emit(n, &outage.url(&direct));
    }
    assert!(common::wait_until(Duration::from_secs(20), || rx.len() >= 3), "{} before the outage", rx.len());

    outage.down();
    // The host application goes on recording events (on a path the outage does not cut).
    for n in 3..6 {
        emit(n, &direct);
    }
    std::thread::sleep(Duration::from_secs(4));
    assert!(worker.try_wait().unwrap().is_none(), "the worker stopped during the outage");
    outage.up();

    let ids =
        |rx: &Receiver| rx.received().iter().map(|r| r.header("x-qsm-id").unwrap().to_string()).collect::<HashSet<_>>();
    assert!(common::wait_until(Duration::from_secs(30), || ids(&rx).len() >= 6), "{} arrived", ids(&rx).len());
    assert!(worker.try_wait().unwrap().is_none(), "the worker is still running");
    worker.kill().unwrap();
    let out = worker.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.lines().any(|l| l.starts_with("webhooks dispatch: run failed")), "{stderr}");
    assert!(
        stderr.lines().all(|l| l.starts_with("webhooks dispatch: run failed")),
        "one line per failed run: {stderr}"
    );
    // Every event, each repeat with the same id and body.
    let mut bodies: HashMap<String, Vec<u8>> = HashMap::new();
    for r in rx.received() {
        let id = r.header("x-qsm-id").unwrap().to_string();
        assert_eq!(r.header("webhook-id"), Some(id.as_str()));
        let first = bodies.entry(id.clone()).or_insert_with(|| r.body.clone());
        assert_eq!(first, &r.body, "a repeat of {id} with another body");
    }
    let ids: HashSet<String> = bodies
        .values()
        .map(|b| serde_json::from_slice::<Value>(b).unwrap()["data"]["message_id"].to_string())
        .collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
}

/// A connection reset while a command runs is "temporarily unavailable" like any other: exit 75
/// (it was 1: a reset is an I/O error, not a closed connection).
#[test]
fn a_connection_reset_during_a_run_exits_75() {
    let Some(admin) = postgres() else { return };
    let mut env = Env::on_postgres(&admin);
    let direct = env.vars["WEBHOOKS_DATABASE"].clone();
    let outage = Outage::start(&server_of(&direct));
    env.set("WEBHOOKS_DATABASE", &outage.url(&direct));
    env.init();
    let rx = Receiver::start(|_, _| {
        std::thread::sleep(Duration::from_secs(2));
        Reply::Status(200)
    });
    env.endpoint("alice", &rx.url("/slow"), "");
    env.emit("alice", "email.received", &event("alice", 1)["data"].to_string());
    let run = env.command("webhooks").arg("dispatch").stderr(Stdio::piped()).stdout(Stdio::null()).spawn().unwrap();
    assert!(common::wait_until(Duration::from_secs(20), || rx.len() == 1));
    outage.down(); // while the receiver holds the request: the run's connection is reset
    let out = run.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// A fenced block of docs/postgres.md: the first whose text contains `marker`.
fn doc_block(marker: &str) -> String {
    let doc =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/postgres.md")).unwrap();
    doc.split("```")
        .skip(1)
        .step_by(2)
        .find(|b| b.contains(marker))
        .map(|b| b.split_once('\n').map(|(_, rest)| rest.to_string()).unwrap_or_default())
        .unwrap_or_else(|| panic!("docs/postgres.md has no block with {marker}"))
}

/// docs/postgres.md's pgbouncer recipe, run as pasted: the userlist from `pg_authid` by its
/// psql line, the pgbouncer.ini (host, ports and paths changed for the test), TLS to the server
/// required; the product works through it, and a wrong password is one line and exit 75.
#[test]
fn the_pgbouncer_recipe_works_as_pasted() {
    let Some(admin) = postgres() else { return };
    if !common::have("pgbouncer", "apt-get install pgbouncer")
        || !common::have("psql", "apt-get install postgresql-client")
    {
        return;
    }
    let mut env = Env::on_postgres(&admin);
    let db = env.pg_database.clone().unwrap();
    let a = url::Url::parse(&admin).unwrap();
    assert_eq!(a.username(), "webhooks", "the recipe is for the role webhooks; the test cluster's superuser is it");
    let dir = tempfile::tempdir().unwrap();
    // The userlist, by the recipe's own psql line.
    let sh = doc_block("pg_authid");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .current_dir(dir.path())
        .env("PGHOST", a.host_str().unwrap())
        .env("PGPORT", a.port().unwrap().to_string())
        .env("PGUSER", a.username())
        .env("PGPASSWORD", a.password().unwrap())
        .env("PGDATABASE", "postgres")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let userlist = std::fs::read_to_string(dir.path().join("userlist.txt")).unwrap();
    assert!(userlist.starts_with("\"webhooks\" \"SCRAM-SHA-256$"), "a SCRAM verifier, not a password");
    let ini = doc_block("[pgbouncer]")
        .replace(
            "host=db.internal port=5432 dbname=webhooks",
            &format!("host=127.0.0.1 port={} dbname={db}", a.port().unwrap()),
        )
        .replace("listen_port = 6432", "listen_port = {port}")
        .replace("/etc/pgbouncer/userlist.txt", "{dir}/userlist.txt");
    assert!(ini.contains("server_tls_sslmode = require") && ini.contains("auth_type = scram-sha-256"), "{ini}");
    let bouncer = common::Bouncer::start(&ini, &userlist);
    let port = bouncer.port;
    let password = a.password().unwrap().to_string();
    env.set("WEBHOOKS_DATABASE", &format!("postgres://webhooks:{password}@127.0.0.1:{port}/webhooks?sslmode=disable"));
    env.init();
    env.emit("alice", "email.received", &event("alice", 1)["data"].to_string());
    let status = env.json(&["status"]);
    env.set("WEBHOOKS_DATABASE", &format!("postgres://webhooks:wrong@127.0.0.1:{port}/webhooks?sslmode=disable"));
    let wrong = env.run(&["status"]);
    let log = bouncer.log();
    drop(bouncer);
    assert!(status["pending"].is_number(), "{status}");
    assert_eq!(wrong.status.code(), Some(75), "{}", String::from_utf8_lossy(&wrong.stderr));
    assert!(log.contains("password authentication failed"), "pgbouncer refused the wrong password: {log}");
}

/// A schema's shape: each table with its columns and its indexes (`name(col, col)`; the
/// indexes a table's keys and unique constraints make are left out, they follow from the
/// columns' definitions).
type Catalog = std::collections::BTreeMap<String, (Vec<String>, Vec<String>)>;

fn strings(db: &webhooks::store::sql::Conn, sql: &str, param: &str) -> Vec<String> {
    let mut found: Vec<String> =
        db.prepare(sql).unwrap().query_map([param], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
    found.sort();
    found
}

fn sqlite_catalog(db: &webhooks::store::sql::Conn) -> Catalog {
    let tables = strings(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != ?1",
        "",
    );
    tables
        .into_iter()
        .map(|t| {
            let columns = strings(db, "SELECT name FROM pragma_table_info(?1)", &t);
            let indexes = strings(
                db,
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name = ?1",
                &t,
            )
            .into_iter()
            .map(|i| {
                let cols: Vec<String> = db
                    .prepare("SELECT coalesce(name, '(expression)') FROM pragma_index_info(?1) ORDER BY seqno")
                    .unwrap()
                    .query_map([i.as_str()], |r| r.get(0))
                    .unwrap()
                    .map(|r| r.unwrap())
                    .collect();
                format!("{i}({})", cols.join(", "))
            })
            .collect();
            (t, (columns, indexes))
        })
        .collect()
}

fn postgres_catalog(db: &webhooks::store::sql::Conn) -> Catalog {
    let tables = strings(
        db,
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != ?1",
        "webhooks_schema",
    );
    tables
        .into_iter()
        .map(|t| {
            let columns = strings(
                db,
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ?1",
                &t,
            );
            let indexes = strings(
                db,
                "SELECT i.relname::text || '(' || (SELECT string_agg(CASE WHEN k.attnum = 0 THEN '(expression)' ELSE a.attname::text END, ', ' ORDER BY k.n)
                        FROM unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                        LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) || ')'
                 FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
                 WHERE c.relname = ?1 AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)",
                &t,
            );
            (t, (columns, indexes))
        })
        .collect()
}

/// Where the engines differ on purpose, each with its reason (docs/postgres.md, "Schema").
const ENGINE_DIFFERENCES: &[(&str, &str, &str)] = &[
    // SQLite orders these tables' rows by its implicit rowid; PostgreSQL has no implicit one.
    ("postgres", "column", "endpoints.rowid"),
    ("postgres", "column", "endpoint_keys.rowid"),
    ("postgres", "column", "source_keys.rowid"),
    // PostgreSQL walks the whole queue by due time (many dispatchers, `any_due`, the oldest due);
    // SQLite walks it user by user and keeps no index on the due time alone (sql/010).
    ("postgres", "index", "queue.queue_due_time(next_attempt_at)"),
];

fn flatten(c: &Catalog) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (t, (columns, indexes)) in c {
        out.insert(format!("table {t}"));
        out.extend(columns.iter().map(|col| format!("column {t}.{col}")));
        out.extend(indexes.iter().map(|i| format!("index {t}.{i}")));
    }
    out
}

#[test]
fn the_two_engines_migrate_to_the_same_tables_columns_and_indexes() {
    let Some(admin) = postgres() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = webhooks::model::location::Location::File(dir.path().join("w.db"));
    Store::create(&file).unwrap();
    let sqlite = flatten(&sqlite_catalog(&webhooks::store::connect(&file).unwrap()));
    let pg = webhooks::model::location::Location::Postgres(common::with_database(
        &admin,
        &common::create_pg_database(&admin),
    ));
    Store::open(&pg).unwrap();
    let postgres = flatten(&postgres_catalog(&webhooks::store::connect(&pg).unwrap()));
    assert!(sqlite.len() > 150 && sqlite.contains("column queue.lease_until"), "the catalog was read: {sqlite:?}");

    let allowed = |engine: &str, item: &String| {
        ENGINE_DIFFERENCES.iter().any(|(e, kind, what)| *e == engine && *item == format!("{kind} {what}"))
    };
    let only_sqlite: Vec<&String> = sqlite.difference(&postgres).filter(|i| !allowed("sqlite", i)).collect();
    let only_postgres: Vec<&String> = postgres.difference(&sqlite).filter(|i| !allowed("postgres", i)).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "a table, column or index in one engine's migrations only (sql/ against sql/postgres/):\n  SQLite only: {only_sqlite:#?}\n  PostgreSQL only: {only_postgres:#?}"
    );
    for (engine, kind, what) in ENGINE_DIFFERENCES {
        let there = if *engine == "sqlite" { &sqlite } else { &postgres };
        assert!(there.contains(&format!("{kind} {what}")), "a listed difference that is gone: {kind} {what}");
    }

    // migrate-store copies every table, each after those it refers to.
    let copied: Vec<&str> = webhooks::store::migrate_store::TABLES.iter().map(|(t, _)| *t).collect();
    let tables: std::collections::BTreeSet<&str> = sqlite.iter().filter_map(|i| i.strip_prefix("table ")).collect();
    assert_eq!(copied.iter().copied().collect::<std::collections::BTreeSet<_>>(), tables, "migrate-store's table list");
    let db = webhooks::store::connect(&file).unwrap();
    for (i, t) in copied.iter().enumerate() {
        for parent in strings(&db, "SELECT \"table\" FROM pragma_foreign_key_list(?1)", t) {
            assert!(
                copied[..i].contains(&parent.as_str()) || parent == *t,
                "{t} is copied before {parent}, which it refers to"
            );
        }
    }
    // A table with a rowid column on PostgreSQL is copied with SQLite's rowid, and only those.
    for (t, rowid) in webhooks::store::migrate_store::TABLES {
        assert_eq!(*rowid, postgres.contains(&format!("column {t}.rowid")), "{t}: copied with its rowid or not");
    }
}

// ---- the queue beside the record (sql/012_queue.sql, sql/postgres/003_queue.sql) -------------

/// Deliveries in every state as the schema before the queue kept them (times relative to `now`):
/// pending and due, failed twice and due later, pending and leased, held, dead, succeeded.
fn deliveries_before_the_queue(now: i64) -> String {
    let later = now + 3_600_000;
    format!(
        "INSERT INTO users (id, name, created_at) VALUES (1, 'alice', 0);
         INSERT INTO endpoints (id, user_id, url, created_at, updated_at) VALUES ('ep_1', 1, 'https://x/', 0, 0);
         INSERT INTO events (id, user_id, type, request_hash, payload, created_at)
             VALUES ('evt_1', 1, 'email.received', 'h', '{{}}', 0);
         INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, attempts, next_attempt_at, lease_until,
                                 lease_owner, last_attempt_at, last_status_code, last_error_code, last_error,
                                 created_at, finished_at) VALUES
             ('dlv_1pending', 'evt_1', 'ep_1', 1, 'pending', 0, {now}, NULL, NULL, NULL, NULL, NULL, NULL, 1, NULL),
             ('dlv_2failed', 'evt_1', 'ep_1', 1, 'failed', 2, {later}, NULL, NULL, 5, 500, 'E_HTTP_STATUS', 'HTTP 500', 2, NULL),
             ('dlv_3leased', 'evt_1', 'ep_1', 1, 'pending', 0, {now}, {later}, 'run_old', NULL, NULL, NULL, NULL, 3, NULL),
             ('dlv_4held', 'evt_1', 'ep_1', 1, 'held', 1, NULL, NULL, NULL, 6, 503, 'E_HTTP_STATUS', 'HTTP 503', 4, NULL),
             ('dlv_5dead', 'evt_1', 'ep_1', 1, 'dead', 5, NULL, NULL, NULL, 7, NULL, 'E_TIMEOUT', 'timed out', 5, 7),
             ('dlv_6succeeded', 'evt_1', 'ep_1', 1, 'succeeded', 1, NULL, NULL, NULL, 8, 200, NULL, NULL, 6, 8);
         INSERT INTO attempts (delivery_id, attempt, started_at, duration_ms, status_code, error_code, error) VALUES
             ('dlv_2failed', 1, 4, 3, 500, 'E_HTTP_STATUS', 'HTTP 500'),
             ('dlv_2failed', 2, 5, 3, 500, 'E_HTTP_STATUS', 'HTTP 500');"
    )
}

/// Every delivery is where it was: the waiting ones in the queue with their attempts, due times
/// and leases, the others as they were; the log shows each as before; the dispatcher claims the
/// due ones (not the leased one) and sends them.
fn the_queue_migration_kept(store: &mut Store, now: i64) {
    use webhooks::model::delivery::{Filter, Status};
    let list = webhooks::store::deliveries::list(store.db(), &Filter { limit: 100, ..Filter::default() }).unwrap();
    let shown: Vec<(String, Status, u32, Option<u16>)> =
        list.iter().rev().map(|d| (d.id.clone(), d.status, d.attempts, d.last_status_code)).collect();
    assert_eq!(
        shown,
        vec![
            ("dlv_1pending".to_string(), Status::Pending, 0, None),
            ("dlv_2failed".to_string(), Status::Failed, 2, Some(500)),
            ("dlv_3leased".to_string(), Status::Pending, 0, None),
            ("dlv_4held".to_string(), Status::Held, 1, Some(503)),
            ("dlv_5dead".to_string(), Status::Dead, 5, None),
            ("dlv_6succeeded".to_string(), Status::Succeeded, 1, Some(200)),
        ]
    );
    let by_id = |id: &str| list.iter().find(|d| d.id == id).unwrap().clone();
    assert!(by_id("dlv_3leased").in_flight, "the lease is kept");
    assert_eq!(by_id("dlv_2failed").next_attempt_at.map(|t| t.0), Some(now + 3_600_000));
    for (status, ids) in [(Status::Failed, vec!["dlv_2failed"]), (Status::Pending, vec!["dlv_3leased", "dlv_1pending"])]
    {
        let f = Filter { status: Some(status), limit: 100, ..Filter::default() };
        let found: Vec<String> =
            webhooks::store::deliveries::list(store.db(), &f).unwrap().into_iter().map(|d| d.id).collect();
        assert_eq!(found, ids, "the log filtered by {status:?}");
    }
    let q = webhooks::store::deliveries::queue_status(store.db(), true).unwrap();
    assert_eq!((q.pending, q.in_flight, q.dead), (3, 1, 1));
    let claim = Claim {
        run_id: "run_new",
        now: now + 1,
        lease_until: now + 60_000,
        per_user: 10,
        slots: 10,
        payload_retention: Duration::from_secs(3600),
    };
    let claimed = store.work(|db| queue::claim(db, &claim, &mut None)).unwrap();
    let ids: Vec<&str> = claimed.due.iter().map(|d| d.delivery_id.as_str()).collect();
    assert_eq!(ids, vec!["dlv_1pending"], "due now and not leased: only the first");
}

#[test]
fn the_queue_migration_keeps_every_pending_failed_held_and_dead_delivery_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let now = webhooks::model::time::now_ms();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        for (i, (name, sql)) in
            webhooks::store::sqlite::MIGRATIONS.iter().enumerate().take_while(|(_, (n, _))| *n != "012_queue")
        {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("{name}: {e}"));
            conn.pragma_update(None, "user_version", i + 1).unwrap();
        }
        conn.execute_batch(&deliveries_before_the_queue(now)).unwrap();
    }
    let mut store = Store::open(&webhooks::model::location::Location::File(path)).unwrap();
    assert_eq!(store.schema_version().unwrap(), webhooks::store::sqlite::MIGRATIONS.len() as u32);
    the_queue_migration_kept(&mut store, now);
}

#[test]
fn the_queue_migration_keeps_every_pending_failed_held_and_dead_delivery_on_postgres() {
    let Some(admin) = postgres() else { return };
    let url = common::with_database(&admin, &common::create_pg_database(&admin));
    let pg = webhooks::model::location::Location::Postgres(url);
    let now = webhooks::model::time::now_ms();
    {
        let conn = webhooks::store::connect(&pg).unwrap();
        let before: Vec<&(&str, &str)> =
            webhooks::store::postgres::MIGRATIONS.iter().take_while(|(n, _)| *n != "003_queue").collect();
        conn.execute_batch(
            "CREATE TABLE webhooks_schema (version BIGINT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .unwrap();
        for (i, (name, sql)) in before.iter().enumerate() {
            conn.execute_batch(sql).unwrap_or_else(|e| panic!("{name}: {e}"));
            conn.execute("INSERT INTO webhooks_schema (version) VALUES (?1)", [i as i64 + 1]).unwrap();
        }
        conn.execute_batch(&deliveries_before_the_queue(now)).unwrap();
    }
    let mut store = Store::open(&pg).unwrap();
    assert_eq!(store.schema_version().unwrap(), webhooks::store::postgres::MIGRATIONS.len() as u32);
    the_queue_migration_kept(&mut store, now);
}
