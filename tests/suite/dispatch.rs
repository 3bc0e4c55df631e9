//! The dispatcher end to end: real binaries, loopback receivers started by the tests.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Env, Receiver, Reply};
use serde_json::Value;

const RECEIVED: &str = r#"{"alias":"a@x.example","message_id":"<1@x>","size_bytes":10}"#;

fn only_delivery(env: &Env) -> Value {
    let all = env.deliveries();
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

#[test]
fn retries_on_5xx_then_succeeds_with_the_same_event_id() {
    let env = Env::new();
    let rx = Receiver::start(|n, _| Reply::Status(if n == 0 { 500 } else { 200 }));
    env.endpoint("alice", &rx.url("/hook"), "");
    let ev = env.emit("alice", "email.received", RECEIVED);
    assert_eq!(ev["deliveries"], 1);

    let s = env.dispatch();
    assert_eq!((s["sent"].as_u64(), s["retrying"].as_u64()), (Some(1), Some(1)));
    let d = only_delivery(&env);
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status_code"], 500);
    assert_eq!(d["last_error_code"], "E_HTTP_STATUS");
    // The default schedule puts the retry 1 minute (plus at most 10% jitter) out.
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next.timestamp() - chrono::Utc::now().timestamp();
    assert!((55..=67).contains(&wait), "retry in {wait}s");

    assert_eq!(env.dispatch()["sent"], 0, "not due yet");
    env.make_due();
    let s = env.dispatch();
    assert_eq!(s["succeeded"], 1);
    let d = only_delivery(&env);
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["attempts"], 2);

    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("X-QSM-Id"), Some(ev["id"].as_str().unwrap()));
    assert_eq!(got[0].header("X-QSM-Id"), got[1].header("X-QSM-Id"));
    assert_eq!(got[0].body, got[1].body, "the same bytes on every attempt");
    assert_eq!(got[0].header("X-QSM-Attempt"), Some("1"));
    assert_eq!(got[1].header("X-QSM-Attempt"), Some("2"));
    assert_eq!(got[0].header("webhook-id"), got[0].header("X-QSM-Id"));
    let attempts = env.json(&["attempts", d["id"].as_str().unwrap()]);
    assert_eq!(attempts.as_array().unwrap().len(), 2);
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["response_snippet"], "ok");
}

#[test]
fn a_2xx_stops_and_nothing_is_sent_again() {
    let env = Env::new();
    let rx = Receiver::always(204);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    assert_eq!(env.dispatch()["succeeded"], 1);
    env.make_due();
    assert_eq!(env.dispatch()["sent"], 0);
    assert_eq!(rx.len(), 1);
    let d = only_delivery(&env);
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("succeeded"), Some(1)));
    assert!(d["next_attempt_at"].is_null());
}

#[test]
fn dead_after_max_attempts_with_the_last_interval_repeating() {
    let mut env = Env::new();
    env.set("WEBHOOKS_MAX_ATTEMPTS", "3");
    let rx = Receiver::always(503);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    for expected in ["failed", "failed", "dead"] {
        env.make_due();
        env.dispatch();
        assert_eq!(only_delivery(&env)["status"], expected);
    }
    env.make_due();
    assert_eq!(env.dispatch()["sent"], 0);
    assert_eq!(rx.len(), 3);
    let d = only_delivery(&env);
    assert_eq!(d["attempts"], 3);
    assert!(d["finished_at"].is_string());
    // A dead delivery can be retried by hand: exactly one more attempt.
    env.ok(&["retry", d["id"].as_str().unwrap()]);
    env.dispatch();
    assert_eq!(rx.len(), 4);
    assert_eq!(only_delivery(&env)["status"], "dead");
}

#[test]
fn redirects_are_failures_and_not_followed() {
    let env = Env::new();
    let target = Receiver::always(200);
    let loc = target.url("/elsewhere");
    let rx = Receiver::start(move |_, _| Reply::WithHeaders(302, vec![("Location".into(), loc.clone())]));
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let d = only_delivery(&env);
    assert_eq!(d["last_error_code"], "E_REDIRECT");
    assert_eq!(d["status"], "failed");
    assert_eq!(target.len(), 0);
}

#[test]
fn gone_disables_the_endpoint() {
    let env = Env::new();
    let rx = Receiver::always(410);
    let (ep, _) = env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    env.emit("alice", "email.received", RECEIVED);
    let s = env.dispatch();
    // Per-user concurrency 2: both go out in the first claim, both get 410.
    assert!(s["dead"].as_u64().unwrap() >= 1);
    let shown = env.json(&["endpoint", "show", &ep]);
    assert_eq!(shown["active"], false);
    assert_eq!(shown["disabled_reason"], "gone");
    let before = rx.len();
    let ev = env.emit("alice", "email.received", RECEIVED);
    assert_eq!(ev["deliveries"], 1, "a disabled endpoint's new events are held, not lost");
    env.make_due();
    env.dispatch();
    assert_eq!(rx.len(), before, "and not sent");
    let all = env.deliveries();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["event_id"], ev["id"], "newest first");
    assert_eq!(all[0]["status"], "held");
    assert!(all.iter().all(|d| d["status"] == "dead" || d["status"] == "held"), "{all:?}");
}

#[test]
fn retry_after_is_honoured() {
    let env = Env::new();
    let rx = Receiver::start(|_, _| Reply::WithHeaders(429, vec![("Retry-After".into(), "900".into())]));
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let d = only_delivery(&env);
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next.timestamp() - chrono::Utc::now().timestamp();
    assert!((890..=905).contains(&wait), "Retry-After 900 gave a wait of {wait}s");
    // A huge Retry-After is capped at 24 hours.
    let env2 = Env::new();
    let rx2 = Receiver::start(|_, _| Reply::WithHeaders(503, vec![("Retry-After".into(), "99999999".into())]));
    env2.endpoint("alice", &rx2.url("/"), "");
    env2.emit("alice", "email.received", RECEIVED);
    env2.dispatch();
    let d = only_delivery(&env2);
    let next = chrono::DateTime::parse_from_rfc3339(d["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next.timestamp() - chrono::Utc::now().timestamp();
    assert!((86_390..=86_405).contains(&wait), "capped wait {wait}s");
}

#[test]
fn fans_out_to_matching_endpoints_of_one_user_only_with_wildcards() {
    let env = Env::new();
    let rx = Receiver::always(200);
    let (all, _) = env.endpoint("alice", &rx.url("/all"), "");
    let (email, _) = env.endpoint("alice", &rx.url("/email"), "email.*");
    let (usage, _) = env.endpoint("alice", &rx.url("/usage"), "usage.threshold");
    let (star, _) = env.endpoint("alice", &rx.url("/star"), "*");
    let (bob, _) = env.endpoint("bob", &rx.url("/bob"), "");
    let (off, _) = env.endpoint("alice", &rx.url("/off"), "");
    env.ok(&["endpoint", "disable", &off]);

    let ev = env.emit("alice", "email.spam", r#"{"alias":"a@x","message_id":"<m>","reason_code":"rbl"}"#);
    assert_eq!(ev["deliveries"], 3);
    let ev2 = env.emit(
        "alice",
        "usage.threshold",
        r#"{"metric":"bytes","used":9,"limit":10,"threshold_percent":90,"period":"2026-11"}"#,
    );
    assert_eq!(ev2["deliveries"], 3);
    let endpoints_of = |event: &Value| -> Vec<String> {
        let mut v: Vec<String> = env
            .deliveries()
            .into_iter()
            .filter(|d| d["event_id"] == event["id"])
            .map(|d| d["endpoint_id"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let mut want = vec![all.clone(), email, star.clone()];
    want.sort();
    assert_eq!(endpoints_of(&ev), want);
    let mut want = vec![all, usage, star];
    want.sort();
    assert_eq!(endpoints_of(&ev2), want);
    assert!(env.deliveries().iter().all(|d| d["endpoint_id"] != bob.as_str()));

    env.dispatch();
    env.dispatch();
    let mut paths: Vec<String> = rx.received().iter().map(|r| r.json()["type"].as_str().unwrap().to_string()).collect();
    paths.sort();
    assert_eq!(paths.len(), 6);
    for r in rx.received() {
        assert_eq!(r.json()["user"], "alice");
    }
}

#[test]
fn signatures_verify_in_both_families_and_rotation_signs_with_both_keys_during_grace() {
    let env = Env::new();
    let rx = Receiver::always(200);
    let (ep, old_secret) = env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let r = &rx.received()[0];
    let old_key = webhooks::model::secret::decode(&old_secret).unwrap();
    let now = chrono::Utc::now().timestamp();
    let verify = |headers: &[(String, String)], body: &[u8], keys: &[Vec<u8>]| {
        webhooks::outbound::signing::verify("X-QSM", headers, body, keys, 300, now)
    };
    assert_eq!(
        verify(&r.headers, &r.body, std::slice::from_ref(&old_key)),
        Ok(webhooks::outbound::signing::Family::Qsm)
    );
    let sw: Vec<(String, String)> = r.headers.iter().filter(|(k, _)| k.starts_with("webhook-")).cloned().collect();
    assert_eq!(sw.len(), 3);
    assert_eq!(
        verify(&sw, &r.body, std::slice::from_ref(&old_key)),
        Ok(webhooks::outbound::signing::Family::StandardWebhooks)
    );
    assert_eq!(r.header("X-QSM-Signature").unwrap().split(' ').count(), 1);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    assert!(r.header("User-Agent").unwrap().starts_with("qsm-webhooks/"));
    assert_eq!(r.header("X-QSM-Event"), Some("email.received"));
    let envelope = r.json();
    assert_eq!(envelope["schema_version"], 1);
    assert_eq!(envelope["data"]["alias"], "a@x.example");

    // Rotate with a 3 s grace: two signatures, newest first, then one.
    let rot = env.json(&["endpoint", "rotate-secret", &ep, "--grace", "3s"]);
    let new_key = webhooks::model::secret::decode(rot["secret"].as_str().unwrap()).unwrap();
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let r = &rx.received()[1];
    let sigs: Vec<&str> = r.header("X-QSM-Signature").unwrap().split(' ').collect();
    let kids: Vec<&str> = r.header("X-QSM-Key-Id").unwrap().split(' ').collect();
    assert_eq!(sigs.len(), 2);
    assert_eq!(kids[0], rot["key_id"].as_str().unwrap(), "newest first");
    assert_eq!(r.header("webhook-signature").unwrap().split(' ').count(), 2);
    assert!(verify(&r.headers, &r.body, std::slice::from_ref(&old_key)).is_ok(), "old secret still verifies");
    assert!(verify(&r.headers, &r.body, std::slice::from_ref(&new_key)).is_ok(), "new secret verifies");
    let ts: i64 = r.header("X-QSM-Timestamp").unwrap().parse().unwrap();
    let expected = webhooks::outbound::signing::hex(&webhooks::outbound::signing::sign(
        &new_key,
        r.header("X-QSM-Id").unwrap(),
        ts,
        &r.body,
    ));
    assert_eq!(sigs[0], format!("v1={expected}"));

    std::thread::sleep(Duration::from_millis(3200));
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let r = &rx.received()[2];
    assert_eq!(r.header("X-QSM-Signature").unwrap().split(' ').count(), 1);
    assert!(verify(&r.headers, &r.body, &[old_key]).is_err(), "grace over: old secret no longer signs");
    assert!(verify(&r.headers, &r.body, &[new_key]).is_ok());
}

#[test]
fn ssrf_loopback_is_refused_unless_allowed() {
    let mut env = Env::new();
    let rx = Receiver::always(200);
    let (ep, _) = env.endpoint("alice", &rx.url("/"), "");
    let _ = ep;
    env.unset("WEBHOOKS_ALLOWED_NETWORKS");
    // Creating an endpoint on a loopback literal is refused outright...
    let out = env.run(&["endpoint", "add", "--user", "alice", "--url", &rx.url("/")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("private or reserved address"));
    // ...and the one created while loopback was allowed is refused at delivery time.
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let d = only_delivery(&env);
    assert_eq!(d["last_error_code"], "E_BLOCKED_ADDRESS");
    assert!(d["last_error"].as_str().unwrap().contains("127.0.0.1"));
    assert_eq!(rx.len(), 0);
}

#[test]
fn ssrf_is_checked_on_the_addresses_a_name_resolves_to() {
    let mut env = Env::new();
    let rx = Receiver::always(200);
    // Created while loopback is allowed; then the operator removes the allowance.
    env.endpoint("alice", &format!("http://localhost:{}/", rx.port), "");
    env.unset("WEBHOOKS_ALLOWED_NETWORKS");
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let d = only_delivery(&env);
    assert_eq!(d["last_error_code"], "E_BLOCKED_ADDRESS", "{d}");
    assert_eq!(d["status"], "failed");
    assert_eq!(rx.len(), 0);
}

#[test]
fn time_budget_ends_the_run_with_a_receiver_that_never_answers() {
    let mut env = Env::new();
    env.set("WEBHOOKS_TIME_BUDGET", "4s").set("WEBHOOKS_REQUEST_TIMEOUT", "1s");
    let rx = Receiver::start(|_, _| Reply::Hang);
    env.endpoint("alice", &rx.url("/"), "");
    for _ in 0..30 {
        env.emit("alice", "email.received", RECEIVED);
    }
    let s = env.dispatch();
    assert!(s["failures"]["E_TIMEOUT"].as_u64().unwrap() >= 4, "{s}");
    assert_eq!(s["budget_exhausted"], true);
    // Nothing started that could end after the budget: every attempt began ≥ 1 s (the request
    // timeout) before the budget's end, by the run's own clock.
    let into = env.last_attempt_into_the_run_ms();
    assert!(into <= 4000 - 1000, "an attempt began {into} ms into a 4 s budget");
    let pending = env.deliveries().iter().filter(|d| d["attempts"] == 0).count();
    assert!(pending > 0, "the budget left work for the next run");
    assert!(env.deliveries().iter().all(|d| d["in_flight"] == false), "no lease left behind");
}

#[test]
fn fairness_a_hanging_user_does_not_starve_others() {
    let mut env = Env::new();
    env.set("WEBHOOKS_TIME_BUDGET", "6s").set("WEBHOOKS_REQUEST_TIMEOUT", "2s");
    let hang = Receiver::start(|_, _| Reply::Hang);
    let fast = Receiver::always(200);
    env.endpoint("alice", &hang.url("/"), "");
    env.endpoint("bob", &fast.url("/"), "");
    env.endpoint("carol", &fast.url("/"), "");
    for _ in 0..20 {
        env.emit("alice", "email.received", RECEIVED);
    }
    for _ in 0..15 {
        env.emit("bob", "email.received", RECEIVED);
        env.emit("carol", "email.received", RECEIVED);
    }
    let s = env.dispatch();
    assert_eq!(fast.len(), 30, "every due delivery of bob and carol went out in the same run: {s}");
    // And first: while bob's and carol's went out, alice's hanging endpoint held only her share
    // (2) of the workers, so at most 2 of her requests had started before their last one.
    let last = fast.received().iter().map(|r| r.at).max().unwrap();
    let alice_before = hang.received().iter().filter(|r| r.at < last).count();
    assert!(alice_before <= 2, "{alice_before} of alice's requests started before bob and carol were done");
    assert!(hang.len() <= 6, "alice used at most her share per timeout window: {}", hang.len());
}

#[test]
fn per_user_concurrency_holds_across_overlapping_runs() {
    let mut env = Env::new();
    env.set("WEBHOOKS_TIME_BUDGET", "5s").set("WEBHOOKS_REQUEST_TIMEOUT", "2s");
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (f, p) = (in_flight.clone(), peak.clone());
    let rx = Receiver::start(move |_, _| {
        let now = f.fetch_add(1, Ordering::SeqCst) + 1;
        p.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        f.fetch_sub(1, Ordering::SeqCst);
        Reply::Status(200)
    });
    env.endpoint("alice", &rx.url("/"), "");
    for _ in 0..12 {
        env.emit("alice", "email.received", RECEIVED);
    }
    let runs: Vec<_> = (0..2)
        .map(|_| {
            env.command("webhooks").args(["dispatch", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap()
        })
        .collect();
    for r in runs {
        assert!(r.wait_with_output().unwrap().status.success());
    }
    assert_eq!(rx.len(), 12);
    assert!(peak.load(Ordering::SeqCst) <= 2, "peak {} > WEBHOOKS_CONCURRENCY_PER_USER", peak.load(Ordering::SeqCst));
}

#[test]
fn a_killed_dispatcher_loses_nothing_after_the_lease_expires() {
    let mut env = Env::new();
    env.set("WEBHOOKS_REQUEST_TIMEOUT", "1s");
    let first = Arc::new(AtomicUsize::new(0));
    let f = first.clone();
    // The first request hangs so the dispatcher is mid-send when it is killed.
    let rx = Receiver::start(move |n, _| {
        if n == 0 {
            f.store(1, Ordering::SeqCst);
            Reply::Hang
        } else {
            Reply::Status(200)
        }
    });
    env.endpoint("alice", &rx.url("/"), "");
    let ev = env.emit("alice", "email.received", RECEIVED);
    let mut child = env.command("webhooks").args(["dispatch"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    assert!(common::wait_until(Duration::from_secs(5), || first.load(Ordering::SeqCst) == 1));
    child.kill().unwrap();
    child.wait().unwrap();
    let d = only_delivery(&env);
    assert_eq!(d["in_flight"], true, "leased by the killed run");
    assert_eq!(env.dispatch()["sent"], 0, "the lease protects it from a second sender");
    // Lease = 2 × request timeout = 2 s.
    std::thread::sleep(Duration::from_millis(2100));
    let s = env.dispatch();
    assert_eq!(s["succeeded"], 1, "{s}");
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("X-QSM-Id"), Some(ev["id"].as_str().unwrap()));
    assert_eq!(only_delivery(&env)["status"], "succeeded");
}

#[test]
fn cgi_intakes_during_a_dispatch_lose_nothing_and_never_see_locked() {
    let mut env = Env::new();
    env.set("WEBHOOKS_CONCURRENCY_PER_USER", "8");
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    let token = env.app_token();
    for _ in 0..50 {
        env.emit("alice", "email.received", RECEIVED);
    }
    let env = Arc::new(env);
    let dispatcher = {
        let env = env.clone();
        std::thread::spawn(move || {
            let mut sent = 0;
            for _ in 0..5 {
                sent += env.dispatch()["sent"].as_u64().unwrap();
            }
            sent
        })
    };
    let posters: Vec<_> = (0..4)
        .map(|t| {
            let (env, token) = (env.clone(), token.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for i in 0..15 {
                    let body = format!(r#"{{"type":"email.received","user":"alice","data":{{"alias":"a@x","message_id":"<{t}-{i}>","size_bytes":1}}}}"#);
                    let r = env.post_events(&token, &body, &[]);
                    assert_eq!(r.status, 202, "{} {}", r.text(), r.stderr);
                    assert!(!r.stderr.contains("locked"), "{}", r.stderr);
                    ids.push(r.json()["id"].as_str().unwrap().to_string());
                }
                ids
            })
        })
        .collect();
    let mut ids: Vec<String> = posters.into_iter().flat_map(|p| p.join().unwrap()).collect();
    dispatcher.join().unwrap();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    assert_eq!(env.count("events"), 110);
    assert_eq!(env.count("deliveries"), 110);
    for _ in 0..5 {
        env.dispatch();
    }
    assert_eq!(rx.len(), 110, "every event delivered exactly once");
    let mut seen: Vec<String> = rx.received().iter().map(|r| r.header("X-QSM-Id").unwrap().to_string()).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 110);
}

#[test]
fn each_run_writes_a_heartbeat_and_one_summary_line() {
    let env = Env::new();
    let out = env.ok(&["dispatch"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("dispatch run_"), "{out}");
    let status = env.json(&["status"]);
    assert!(status["last_run_at"].is_string());
    assert_eq!(status["pending"], 0);
    assert_eq!(env.count("runs"), 1);
}

#[test]
fn payloads_are_purged_after_retention_and_retry_then_refuses() {
    let mut env = Env::new();
    env.set("WEBHOOKS_PAYLOAD_RETENTION", "0s");
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let left: i64 =
        env.db().query_row("SELECT count(*) FROM events WHERE payload IS NOT NULL", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 0, "the body is gone once the delivery ended and retention passed");
    let d = only_delivery(&env);
    assert_eq!(d["payload_available"], false);
    let out = env.run(&["retry", d["id"].as_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expired"));
}

#[test]
fn deliveries_of_a_disabled_endpoint_all_end_in_one_run_and_can_be_retried() {
    let env = Env::new();
    let rx = Receiver::always(200);
    let (ep, _) = env.endpoint("alice", &rx.url("/"), "");
    for _ in 0..25 {
        env.emit("alice", "email.received", RECEIVED);
    }
    env.ok(&["endpoint", "disable", &ep]);
    let s = env.dispatch();
    assert_eq!(s["unsent"], 25, "{s}");
    assert_eq!(rx.len(), 0);
    assert!(env.deliveries().iter().all(|d| d["status"] == "dead" && d["last_error_code"] == "E_ENDPOINT_DISABLED"));
    // After enabling, the dead-letter queue of the endpoint is sent again.
    env.ok(&["endpoint", "enable", &ep]);
    let r = env.json(&["retry", "--dead", "--endpoint", &ep]);
    assert_eq!(r["retried"], 25);
    for _ in 0..3 {
        env.dispatch();
    }
    assert_eq!(rx.len(), 25);
    assert!(env.deliveries().iter().all(|d| d["status"] == "succeeded"));
}

#[test]
fn response_snippets_are_capped_and_bodies_logged_only_when_asked() {
    let mut env = Env::new();
    let rx = Receiver::start(|_, _| Reply::Body(500, "x".repeat(100_000)));
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let (snippet, req_body): (String, Option<String>) = env
        .db()
        .query_row("SELECT response_snippet, request_body FROM attempts", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(snippet.len(), 512);
    assert!(req_body.is_none(), "WEBHOOKS_LOG_BODIES=false keeps summaries only");

    env.set("WEBHOOKS_LOG_BODIES", "true");
    env.make_due();
    env.dispatch();
    let (req_body, resp_body): (Option<String>, Option<String>) = env
        .db()
        .query_row("SELECT request_body, response_body FROM attempts WHERE attempt = 2", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(req_body.unwrap().contains("\"type\":\"email.received\""));
    assert_eq!(resp_body.unwrap().len(), 64 * 1024);
}

#[test]
fn log_retention_purges_finished_deliveries_their_attempts_and_events() {
    let mut env = Env::new();
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    let pending = env.emit("alice", "email.received", RECEIVED);
    env.db()
        .execute(
            "UPDATE queue SET next_attempt_at = 9e15 WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?1)",
            [pending["id"].as_str().unwrap()],
        )
        .unwrap();
    env.dispatch();
    env.set("WEBHOOKS_LOG_RETENTION", "0s");
    let p = env.json(&["purge"]);
    assert_eq!((p["deliveries"].as_u64(), p["events"].as_u64()), (Some(1), Some(1)), "{p}");
    assert_eq!(env.count("attempts"), 0);
    assert_eq!(env.count("deliveries"), 1, "the unfinished delivery stays");
    assert_eq!(env.count("events"), 1);
}

#[test]
fn dispatch_every_keeps_running_one_run_per_interval() {
    let env = Env::new();
    env.init();
    let mut child = env
        .command("webhooks")
        .args(["dispatch", "--every", "1s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Three summary lines: three runs, one after the other.
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let runs: Vec<String> = (0..3).map(|_| lines.next().unwrap().unwrap()).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(runs.iter().all(|l| l.starts_with("dispatch run_")), "{runs:?}");
    // Each started a full interval after the one before (the heartbeats in `runs`).
    let starts: Vec<i64> = {
        let db = env.db();
        let mut stmt = db.prepare("SELECT started_at FROM runs ORDER BY started_at").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert!(starts.len() >= 3, "{starts:?}");
    // Two intervals of at least 1 s each lie between the first and the third (each run's start is
    // taken a moment after its interval begins, so a single gap may read a little short).
    assert!(starts[2] - starts[0] >= 1000, "runs waited for their interval: {starts:?}");
}

#[test]
fn deleting_an_endpoint_starts_the_payload_retention_of_its_events() {
    let mut env = Env::new();
    env.set("WEBHOOKS_PAYLOAD_RETENTION", "0s");
    let (ep, _) = env.endpoint("alice", "http://127.0.0.1:9/", "");
    env.endpoint("bob", "http://127.0.0.1:9/", "");
    env.emit("alice", "email.received", RECEIVED);
    env.emit("bob", "email.received", RECEIVED);
    env.ok(&["endpoint", "delete", &ep]);
    env.ok(&["purge"]);
    let kept: Vec<String> = env
        .db()
        .prepare("SELECT u.name FROM events e JOIN users u ON u.id = e.user_id WHERE payload IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(kept, vec!["bob"], "alice's event lost its last delivery; bob's still waits");
}

#[test]
fn a_manual_retry_puts_a_finished_delivery_back_to_pending() {
    let env = Env::new();
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    env.dispatch();
    let d = only_delivery(&env);
    let again = env.json(&["retry", d["id"].as_str().unwrap()]);
    assert_eq!(again["status"], "pending");
    assert!(again["finished_at"].is_null());
    env.dispatch();
    assert_eq!(rx.len(), 2);
    let d = only_delivery(&env);
    assert_eq!((d["status"].as_str(), d["attempts"].as_u64()), (Some("succeeded"), Some(2)));
}

#[test]
fn an_endless_response_body_costs_one_snippet_and_no_time() {
    let mut env = Env::new();
    env.set("WEBHOOKS_REQUEST_TIMEOUT", "3s");
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    let port = common::raw_receiver(|mut s| {
        use std::io::Write;
        common::read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
        let chunk = vec![b'z'; 64 * 1024];
        while s.write_all(&chunk).is_ok() {
            WRITTEN.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    env.endpoint("alice", &format!("http://127.0.0.1:{port}/"), "");
    env.emit("alice", "email.received", RECEIVED);
    let s = env.dispatch();
    assert_eq!(s["succeeded"], 1, "the status arrived: {s}");
    // The dispatcher hung up after its snippet: the receiver could write no more than the socket
    // buffers hold (reading on until the 3 s timeout would take gigabytes over loopback).
    let written = WRITTEN.load(Ordering::SeqCst);
    assert!(written < 64 << 20, "the receiver wrote {written} bytes before the connection closed");
    let snippet: String = env.db().query_row("SELECT response_snippet FROM attempts", [], |r| r.get(0)).unwrap();
    assert_eq!(snippet.len(), 512);
}

#[test]
fn a_receiver_answering_a_byte_at_a_time_is_cut_off_at_the_request_timeout() {
    let mut env = Env::new();
    env.set("WEBHOOKS_REQUEST_TIMEOUT", "2s");
    static TRICKLED: AtomicUsize = AtomicUsize::new(0);
    let port = common::raw_receiver(|mut s| {
        use std::io::Write;
        common::read_request(&mut s);
        for b in b"HTTP/1.1 200 OK\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
            if s.write_all(&[*b]).is_err() {
                return;
            }
            TRICKLED.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    env.endpoint("alice", &format!("http://127.0.0.1:{port}/"), "");
    env.emit("alice", "email.received", RECEIVED);
    let s = env.dispatch();
    assert_eq!(s["failures"]["E_TIMEOUT"], 1, "{s}");
    // The whole request is bounded by the timeout, not each read: the answer was cut off after
    // about 10 bytes (2 s at 5 a second), never left to trickle on for the run's 50 s budget.
    std::thread::sleep(Duration::from_millis(600)); // the receiver notices the closed socket
    let trickled = TRICKLED.load(Ordering::SeqCst);
    assert!(trickled < 60, "the receiver trickled {trickled} bytes before the connection closed");
    assert_eq!(only_delivery(&env)["status"], "failed");
}

#[test]
fn a_database_locked_past_the_busy_timeout_skips_the_run_and_loses_nothing() {
    let env = Env::new();
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    let blocker = env.hold_write_lock();
    let out = env.run(&["dispatch", "--json"]);
    assert!(out.status.success(), "a busy database is not a failed cron run: {}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["busy"], true, "{s}");
    assert_eq!(s["sent"], 0);
    assert_eq!(rx.len(), 0);
    let text = env.run(&["dispatch"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("database busy, work left for the next run"));
    blocker.execute_batch("ROLLBACK").unwrap();
    let s = env.dispatch();
    assert_eq!((s["succeeded"].as_u64(), s["busy"].as_bool()), (Some(1), Some(false)), "{s}");
    assert_eq!(rx.len(), 1);
}

#[test]
fn dispatch_on_intake_delivers_within_a_second_without_holding_the_request() {
    let mut env = Env::new();
    // Off by default: nothing leaves before a dispatcher run.
    // A receiver that holds each delivery until the test lets it answer.
    let gate = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicUsize::new(0));
    let (g, a) = (gate.clone(), answered.clone());
    let rx = Receiver::start(move |_, _| {
        common::wait_until(Duration::from_secs(20), || g.load(Ordering::SeqCst));
        a.fetch_add(1, Ordering::SeqCst);
        Reply::Status(200)
    });
    env.endpoint("alice", &rx.url("/"), "");
    let token = env.app_token();
    let event =
        r#"{"type":"email.received","user":"alice","data":{"alias":"a@x","message_id":"<1@x>","size_bytes":1}}"#;
    assert_eq!(env.post_events(&token, event, &[]).status, 202);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(rx.len(), 0, "off by default");
    gate.store(true, Ordering::SeqCst);
    env.dispatch();
    assert_eq!(rx.len(), 1);

    gate.store(false, Ordering::SeqCst);
    env.set("WEBHOOKS_DISPATCH_ON_INTAKE", "true");
    let r = env.post_events(&token, event, &[]);
    assert_eq!(r.status, 202, "{}", r.text());
    // The answer came while the delivery was still held at the receiver: the intake did not wait.
    assert_eq!(answered.load(Ordering::SeqCst), 1, "the intake answered before the delivery did");
    assert!(common::wait_until(Duration::from_secs(10), || rx.len() == 2), "delivered without cron");
    gate.store(true, Ordering::SeqCst);
    assert!(common::wait_until(Duration::from_secs(10), || answered.load(Ordering::SeqCst) == 2));

    // A burst of intakes: every event delivered exactly once, by at most one background run at a
    // time (the lock), with no cron run at all.
    let env = Arc::new(env);
    let posters: Vec<_> = (0..8)
        .map(|i| {
            let (env, token) = (env.clone(), token.clone());
            std::thread::spawn(move || {
                let body = format!(r#"{{"type":"email.received","user":"alice","data":{{"alias":"a@x","message_id":"<b{i}@x>","size_bytes":1}}}}"#);
                assert_eq!(env.post_events(&token, &body, &[]).status, 202);
            })
        })
        .collect();
    for p in posters {
        p.join().unwrap();
    }
    assert!(common::wait_until(Duration::from_secs(20), || rx.len() == 10), "{} of 10 delivered", rx.len());
    std::thread::sleep(Duration::from_millis(500));
    let mut ids: Vec<String> = rx.received().iter().map(|r| r.header("X-QSM-Id").unwrap().to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10, "each event once");
    let overlapping: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM runs a JOIN runs b ON a.id < b.id AND a.started_at < b.finished_at AND b.started_at < a.finished_at",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(overlapping, 0, "background runs never overlapped");
}

#[test]
fn a_response_with_nul_bytes_is_recorded_with_them_replaced() {
    // PostgreSQL's text holds no NUL: a receiver answering with one must not stop the record
    // (on either store the log shows U+FFFD in its place).
    let mut env = Env::new();
    env.set("WEBHOOKS_LOG_BODIES", "true");
    let rx = Receiver::start(|_, _| Reply::Body(500, "bad\0body".into()));
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    let summary = env.dispatch();
    assert_eq!(summary["sent"], 1, "{summary}");
    let (snippet, body): (String, Option<String>) = env
        .db()
        .query_row("SELECT response_snippet, response_body FROM attempts", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap();
    assert_eq!(snippet, "bad\u{FFFD}body");
    assert_eq!(body.as_deref(), Some("bad\u{FFFD}body"));
    assert_eq!(only_delivery(&env)["status"], "failed");
}

#[test]
fn every_attempt_is_recorded_whatever_state_it_was_made_from() {
    // The record's statement depends on the delivery's state: a first failure (pending to
    // failed), a later one (failed stays failed), a success that ends it, and a failure after a
    // manual resend made it pending again with attempts behind it.
    let env = Env::new();
    let fail = Arc::new(AtomicBool::new(true));
    let f = fail.clone();
    let rx = Receiver::start(move |_, _| Reply::Status(if f.load(Ordering::SeqCst) { 503 } else { 200 }));
    env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", RECEIVED);
    let state = || {
        let d = only_delivery(&env);
        (d["status"].as_str().unwrap().to_string(), d["attempts"].as_u64().unwrap())
    };
    env.dispatch();
    assert_eq!(state(), ("failed".into(), 1));
    env.make_due();
    env.dispatch();
    assert_eq!(state(), ("failed".into(), 2));
    fail.store(false, Ordering::SeqCst);
    env.make_due();
    env.dispatch();
    assert_eq!(state(), ("succeeded".into(), 3));
    let id = only_delivery(&env)["id"].as_str().unwrap().to_string();
    let retried = env.run(&["retry", &id]);
    assert!(retried.status.success(), "{}", String::from_utf8_lossy(&retried.stderr));
    assert_eq!(state(), ("pending".into(), 3));
    fail.store(true, Ordering::SeqCst);
    env.dispatch();
    assert_eq!(state(), ("failed".into(), 4), "the failure after a resend is recorded");
    assert_eq!(env.count("attempts"), 4);
    assert_eq!(
        env.count("queue WHERE lease_owner IS NOT NULL") + env.count("deliveries WHERE finished_at IS NOT NULL"),
        0
    );
    assert_eq!(rx.received().len(), 4);
}
