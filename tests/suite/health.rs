//! Endpoint health automation (docs/reliability.md, "When an endpoint keeps failing"): the
//! failure rule, held deliveries, re-enabling, and the operational events on their channels.
//! Days pass without sleeping: the test builds' clock moves (`Env::set_clock`), and a dispatcher
//! run is started for each simulated hour, as cron would.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Env, Receiver, Reply};
use serde_json::Value;

const EVENT: &str = r#"{"alias":"a@x","message_id":"<m@x>","size_bytes":1}"#;
const OPERATOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const HOUR: Duration = Duration::from_secs(3600);

/// An installation whose deliveries die on their second attempt a minute later (so an event
/// emitted each hour dies at the next hour's run), with a stub operator receiver and sendmail.
struct Setup {
    env: Env,
    endpoint: String,
    operator: Receiver,
    mail: PathBuf,
}

fn setup(receiver: &Receiver) -> Setup {
    setup_with(receiver, Receiver::always(200))
}

fn setup_with(receiver: &Receiver, operator: Receiver) -> Setup {
    let mut env = Env::new();
    env.set("WEBHOOKS_RETRY_SCHEDULE", "1m").set("WEBHOOKS_MAX_ATTEMPTS", "2");
    env.set("WEBHOOKS_OPERATOR_URL", &operator.url("/ops")).set("WEBHOOKS_OPERATOR_SECRET", OPERATOR_SECRET);
    let mail = env.stub_sendmail();
    let (endpoint, _) = env.endpoint("alice", &receiver.url("/"), "");
    Setup { env, endpoint, operator, mail }
}

impl Setup {
    /// Hour `h`: an event, then a dispatcher run.
    fn hour(&self, h: u64) -> Value {
        self.env.set_clock(HOUR * h as u32);
        self.env.emit("alice", "email.received", EVENT);
        self.env.dispatch()
    }

    /// A dispatcher run at hour `h` (and `extra` past it), without a new event.
    fn run_at(&self, h: u64, extra: Duration) -> Value {
        self.env.set_clock(HOUR * h as u32 + extra);
        self.env.dispatch()
    }

    fn endpoint(&self) -> Value {
        self.env.json(&["endpoint", "show", &self.endpoint])
    }

    /// The notices of one type in the outbox.
    fn notices(&self, event_type: &str) -> Vec<Value> {
        let db = self.env.db();
        let mut stmt = db.prepare("SELECT payload FROM notices WHERE type = ?1 ORDER BY id").unwrap();
        let rows = stmt.query_map([event_type], |r| r.get::<_, String>(0)).unwrap();
        rows.map(|p| serde_json::from_str(&p.unwrap()).unwrap()).collect()
    }

    /// What the operator receiver was sent (answered or not), by type.
    fn received(&self, event_type: &str) -> Vec<common::Received> {
        self.operator.received().into_iter().filter(|r| r.header("X-QSM-Event") == Some(event_type)).collect()
    }

    fn mails(&self) -> Vec<String> {
        mails(&self.mail)
    }
}

fn mails(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort_by_key(|f| std::fs::metadata(f).unwrap().modified().unwrap());
    files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect()
}

#[test]
fn always_500_fails_then_is_disabled_at_72_hours_and_holds_what_comes_after() {
    let rx = Receiver::always(500);
    let s = setup(&rx);
    s.hour(0);
    assert_eq!(s.endpoint()["health"], "ok", "a failed attempt is not yet a failing endpoint");
    s.hour(1); // the first delivery goes dead
    let failing = s.notices("endpoint.failing");
    assert_eq!(failing.len(), 1, "one endpoint.failing after the first dead delivery");
    let shown = s.endpoint();
    assert_eq!(shown["health"], "failing");
    assert_eq!(failing[0]["data"]["disable_at"], shown["disable_at"], "the notice says when: {shown}");
    assert_eq!(failing[0]["data"]["last_status_code"], 500);
    for h in 2..72 {
        s.hour(h);
    }
    assert_eq!(s.endpoint()["health"], "failing", "not before 72 hours");
    assert_eq!(s.notices("endpoint.failing").len(), 1, "told once, not each hour");
    assert!(s.notices("endpoint.disabled").is_empty());
    s.hour(72);
    let shown = s.endpoint();
    assert_eq!(
        (shown["health"].as_str(), shown["disabled_reason"].as_str()),
        (Some("disabled"), Some("sustained_failure"))
    );
    let disabled = s.notices("endpoint.disabled");
    assert_eq!(disabled.len(), 1, "exactly one endpoint.disabled");
    assert_eq!(disabled[0]["data"]["reason"], "sustained_failure");
    assert_eq!(disabled[0]["data"]["fail_since"], failing[0]["data"]["fail_since"]);
    // The operator heard each once, signed with the operator secret; the mail went out twice.
    assert_eq!(s.received("endpoint.failing").len(), 1);
    let got = s.received("endpoint.disabled");
    assert_eq!(got.len(), 1);
    let key = webhooks::model::secret::decode(OPERATOR_SECRET).unwrap();
    let now = chrono::Utc::now().timestamp() + 72 * 3600;
    assert!(webhooks::outbound::signing::verify("X-QSM", &got[0].headers, &got[0].body, &[key], 300, now).is_ok());
    assert_eq!(got[0].json(), disabled[0], "the body is the outbox's payload");
    let mails = s.mails();
    assert_eq!(mails.len(), 2, "endpoint.failing and endpoint.disabled: {mails:#?}");
    assert!(
        mails[1].contains("To: ops@example.com")
            && mails[1].contains("Subject: Webhook endpoint disabled: http://127.0.0.1")
    );
    assert!(mails[1].contains(&format!("webhooks endpoint enable {} --replay", s.endpoint)), "{}", mails[1]);
    // The page to act on, at WEBHOOKS_PUBLIC_URL.
    let page = format!("On the web: https://webhooks.example/cgi-bin/webhooks.cgi/endpoints/{}", s.endpoint);
    assert!(mails.iter().all(|m| m.contains(&page)), "{}", mails[0]);
    // The banner on alice's pages.
    let page = s.env.run_cgi("GET", "/endpoints", &[], &[("REMOTE_USER", "alice")], b"", true);
    assert!(page.text().contains("1 endpoint disabled</strong> after failing"), "{}", page.text());
    // Later events are held: kept, counted, never sent.
    let requests = rx.len();
    for h in 73..76 {
        s.hour(h);
    }
    assert_eq!(rx.len(), requests, "no HTTP attempt while disabled");
    // The three new events, and the hour-72 event that was waiting for its retry.
    assert_eq!(s.endpoint()["held"], 4);
    let held = s.env.json(&["deliveries", "--status", "held"]);
    assert_eq!(held.as_array().unwrap().len(), 4);
    assert_eq!(s.notices("endpoint.disabled").len(), 1);
}

#[test]
fn one_success_at_60_hours_resets_everything() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let rx =
        Receiver::start(move |_, _| Reply::Status(if c.fetch_add(1, Ordering::SeqCst) == 999 { 200 } else { 500 }));
    let s = setup(&rx);
    for h in 0..60 {
        s.hour(h);
    }
    assert_eq!(s.endpoint()["health"], "failing");
    calls.store(999, Ordering::SeqCst); // the next request succeeds
    s.hour(60);
    let shown = s.endpoint();
    assert_eq!(shown["health"], "ok", "a 2xx resets the endpoint: {shown}");
    assert!(shown["fail_since"].is_null() && shown["disable_at"].is_null());
    for h in 61..80 {
        s.hour(h);
    }
    assert_eq!(s.endpoint()["health"], "failing", "failing again after a new dead delivery");
    assert!(s.notices("endpoint.disabled").is_empty(), "the clock started again at hour 61");
    assert_eq!(s.notices("endpoint.failing").len(), 2, "once per transition");
}

#[test]
fn one_payload_refused_while_others_get_through_never_fails_the_endpoint() {
    let rx = Receiver::start(|_, r| Reply::Status(if r.json()["data"]["alias"] == "bad@x" { 400 } else { 200 }));
    let s = setup(&rx);
    for h in 0..100 {
        s.env.set_clock(HOUR * h as u32);
        s.env.emit("alice", "email.received", r#"{"alias":"bad@x","message_id":"<m@x>","size_bytes":1}"#);
        s.env.emit("alice", "email.received", EVENT);
        s.env.dispatch();
        assert_eq!(s.endpoint()["health"], "ok", "hour {h}");
    }
    assert!(s.notices("endpoint.failing").is_empty() && s.notices("endpoint.disabled").is_empty());
    assert_eq!(s.notices("delivery.exhausted").len(), 99, "each refused payload is reported");
}

#[test]
fn a_20_hour_outage_or_dead_deliveries_within_12_hours_do_not_disable() {
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let d = down.clone();
    let rx = Receiver::start(move |_, _| Reply::Status(if d.load(Ordering::SeqCst) { 503 } else { 200 }));
    let s = setup(&rx);
    for h in 0..20 {
        s.hour(h);
    }
    down.store(false, Ordering::SeqCst);
    s.hour(20);
    s.run_at(20, Duration::from_secs(120));
    assert_eq!(s.endpoint()["health"], "ok");
    assert!(s.notices("endpoint.disabled").is_empty());

    // With the shortest period the rule allows (12 hours), dead deliveries over only 9 hours.
    let rx = Receiver::always(500);
    let mut s = setup(&rx);
    s.env.set("WEBHOOKS_DISABLE_AFTER", "12h");
    for h in 0..10 {
        s.hour(h);
    }
    for h in 10..30 {
        s.run_at(h, Duration::ZERO);
    }
    let shown = s.endpoint();
    assert_eq!(shown["health"], "failing", "{shown}");
    assert!(s.notices("endpoint.disabled").is_empty(), "the dead deliveries spanned 9 hours");
}

#[test]
fn four_days_of_429_do_not_disable() {
    let rx = Receiver::always(429);
    let s = setup(&rx);
    for h in 0..96 {
        s.hour(h);
    }
    let shown = s.endpoint();
    assert_eq!(shown["health"], "ok", "429 asks to slow down; it never counts as a failure: {shown}");
    assert!(s.notices("endpoint.failing").is_empty() && s.notices("endpoint.disabled").is_empty());
}

#[test]
fn a_410_disables_at_once_with_reason_gone() {
    let rx = Receiver::always(410);
    let s = setup(&rx);
    s.hour(0);
    let shown = s.endpoint();
    assert_eq!((shown["health"].as_str(), shown["disabled_reason"].as_str()), (Some("disabled"), Some("gone")));
    let disabled = s.notices("endpoint.disabled");
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["data"]["reason"], "gone");
    assert_eq!(s.received("endpoint.disabled").len(), 1, "one notice");
    s.hour(1);
    assert_eq!(rx.len(), 1, "no request after the 410");
    assert_eq!(s.endpoint()["held"], 1);
    assert_eq!(s.notices("endpoint.disabled").len(), 1);
    // A held delivery is sent or discarded by enabling its endpoint, not retried by hand.
    let held = s.env.json(&["deliveries", "--status", "held"]);
    let id = held[0]["id"].as_str().unwrap();
    let out = s.env.run(&["retry", id]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("held") && err.contains("enable the endpoint"), "{err}");
    assert_eq!(s.env.json(&["deliveries", "--status", "held"]).as_array().unwrap().len(), 1, "still held");
    assert_eq!(s.env.count("queue"), 0, "and not queued");
}

#[test]
fn after_re_enabling_the_held_deliveries_go_out_in_order_and_one_failure_does_not_disable_again() {
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = fail.clone();
    let rx = Receiver::start(move |_, _| Reply::Status(if f.load(Ordering::SeqCst) { 410 } else { 200 }));
    let mut s = setup(&rx);
    s.env.set("WEBHOOKS_CONCURRENCY_PER_USER", "1"); // one at a time: arrival order is send order
    s.hour(0); // 410: disabled
    for h in 1..5 {
        s.hour(h);
    }
    assert_eq!(s.endpoint()["held"], 4);
    let out = s.env.run(&["endpoint", "enable", &s.endpoint]);
    assert_eq!(out.status.code(), Some(1), "held deliveries need a choice");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--replay"));
    fail.store(false, Ordering::SeqCst);
    let v = s.env.json(&["endpoint", "enable", &s.endpoint, "--replay"]);
    assert_eq!((v["health"].as_str(), v["replayed"].as_u64(), v["held"].as_u64()), (Some("ok"), Some(5), Some(0)));
    let enabled = s.notices("endpoint.enabled");
    assert_eq!(enabled.len(), 1);
    assert_eq!((enabled[0]["data"]["replayed"].as_u64(), enabled[0]["data"]["discarded"].as_u64()), (Some(5), Some(0)));
    let before = rx.len();
    s.run_at(5, Duration::from_secs(60));
    let sent: Vec<String> = rx.received()[before..].iter().map(|r| r.header("X-QSM-Id").unwrap().to_string()).collect();
    assert_eq!(sent.len(), 5, "the 410'd delivery and the 4 held ones");
    let mut ordered = sent.clone();
    ordered.sort(); // event ids sort by creation time
    assert_eq!(sent, ordered, "in order");
    assert_eq!(s.received("endpoint.enabled").len(), 1);

    // One failure after re-enabling: failing at most, not disabled again.
    let rx500 = Receiver::always(500);
    s.env.ok(&["endpoint", "update", &s.endpoint, "--url", &rx500.url("/")]);
    s.hour(6);
    s.run_at(6, Duration::from_secs(120));
    let shown = s.endpoint();
    assert_eq!(shown["health"], "failing", "counters started again: {shown}");
    assert_eq!(s.notices("endpoint.disabled").len(), 1);
}

#[test]
fn discarding_on_re_enable_marks_the_held_deliveries_dead() {
    let rx = Receiver::always(410);
    let s = setup(&rx);
    s.hour(0);
    s.hour(1);
    s.hour(2);
    let v = s.env.json(&["endpoint", "enable", &s.endpoint, "--discard"]);
    assert_eq!((v["replayed"].as_u64(), v["discarded"].as_u64()), (Some(0), Some(2)));
    let dead: Vec<Value> = s.env.json(&["deliveries", "--status", "dead"]).as_array().unwrap().clone();
    assert_eq!(dead.iter().filter(|d| d["last_error_code"] == "E_ENDPOINT_DISABLED").count(), 2);
}

#[test]
fn the_operator_receiver_down_for_a_while_gets_each_notice_once_when_it_recovers() {
    let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let u = up.clone();
    let operator = Receiver::start(move |_, _| Reply::Status(if u.load(Ordering::SeqCst) { 204 } else { 502 }));
    let rx = Receiver::always(410);
    let s = setup_with(&rx, operator);
    s.hour(0); // endpoint.disabled and delivery.exhausted, both refused by the operator
    for h in 1..4 {
        s.run_at(h, Duration::ZERO);
    }
    let tries = s.operator.len();
    assert!(tries >= 8, "both retried at each run: {tries}");
    assert_eq!(s.notices("endpoint.disabled").len(), 1, "still one notice");
    up.store(true, Ordering::SeqCst);
    s.run_at(4, Duration::ZERO);
    for h in 5..8 {
        s.run_at(h, Duration::ZERO);
    }
    let mut taken: Vec<String> =
        s.operator.received()[tries..].iter().map(|r| r.header("X-QSM-Event").unwrap().to_string()).collect();
    taken.sort();
    assert_eq!(taken, vec!["delivery.exhausted", "endpoint.disabled"], "each once after it recovered");
    // The banner never depended on the operator webhook.
    let page = s.env.run_cgi("GET", "/", &[], &[("REMOTE_USER", "alice")], b"", true);
    assert!(page.text().contains("endpoint disabled"));
}

#[test]
fn two_dispatcher_runs_at_once_make_one_transition_and_one_notice() {
    let rx = Receiver::always(500);
    let mut s = setup(&rx);
    s.env.set("WEBHOOKS_CONCURRENCY_PER_USER", "4");
    s.env.set_clock(Duration::ZERO);
    for _ in 0..6 {
        s.env.emit("alice", "email.received", EVENT);
    }
    s.env.dispatch(); // six first attempts fail
    s.env.set_clock(HOUR);
    let runs: Vec<_> = (0..2)
        .map(|_| s.env.command("webhooks").args(["dispatch"]).stdout(std::process::Stdio::null()).spawn().unwrap())
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    assert_eq!(s.notices("delivery.exhausted").len(), 6, "every delivery died once");
    assert_eq!(s.notices("endpoint.failing").len(), 1, "one transition, one notice");
}

#[test]
fn held_deliveries_older_than_the_hold_retention_go_dead_with_their_code() {
    let rx = Receiver::always(410);
    let mut s = setup(&rx);
    s.env.set("WEBHOOKS_HOLD_RETENTION", "2d");
    s.hour(0);
    s.hour(1);
    s.hour(2);
    assert_eq!(s.endpoint()["held"], 2);
    s.run_at(49, Duration::ZERO); // the hour-1 delivery is past 48 hours
    let shown = s.endpoint();
    assert_eq!(shown["held"], 1, "{shown}");
    let dead: Vec<Value> = s.env.json(&["deliveries", "--status", "dead"]).as_array().unwrap().clone();
    let expired: Vec<&Value> = dead.iter().filter(|d| d["last_error_code"] == "E_ENDPOINT_DISABLED").collect();
    assert_eq!(expired.len(), 1);
    assert!(expired[0]["last_error"].as_str().unwrap().contains("WEBHOOKS_HOLD_RETENTION"));
    s.run_at(51, Duration::ZERO);
    assert_eq!(s.endpoint()["held"], 0);
}

#[test]
fn operational_events_cannot_be_posted_and_filters_cannot_name_them() {
    let env = Env::new();
    let out = env.run(&["emit", "--user", "alice", "--type", "endpoint.disabled", "--data", "{}"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is an operational event"));
    let out =
        env.run(&["endpoint", "add", "--user", "alice", "--url", "https://example.com/", "--events", "endpoint.*"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches no event type"));
}

#[test]
fn the_pages_mark_failing_and_disabled_endpoints_and_offer_both_re_enable_choices() {
    let rx = Receiver::always(500);
    let s = setup(&rx);
    let mut b = common::Browser::new(&s.env, Some("alice"));
    s.hour(0);
    s.hour(1);
    b.env.set_clock(HOUR);
    let page = b.get(&format!("/endpoints/{}", s.endpoint)).text();
    assert!(page.contains("<strong>Failing since"), "{page}");
    assert!(page.contains("unless a delivery succeeds"));
    let list = b.get("/endpoints").text();
    assert!(list.contains("class=\"state failing\"") && list.contains("since <time"), "{list}");
    assert!(list.contains("1 endpoint failing</strong>"), "the banner: {list}");
    for h in 2..=74 {
        s.hour(h);
    }
    s.env.set_clock(HOUR * 74);
    let page = b.get(&format!("/endpoints/{}", s.endpoint)).text();
    assert!(page.contains("every delivery failed for too long"), "{page}");
    assert!(page.contains("<strong>3 held</strong>"), "{page}");
    assert!(page.contains("Re-enable and send 3 held deliveries") && page.contains("Re-enable and discard"));
    let list = b.get("/endpoints").text();
    assert!(list.contains("class=\"state disabled\"") && list.contains("3 held"));
    let dash = b.get("/").text();
    assert!(dash.contains("1 endpoint disabled</strong> after failing, 3 deliveries held"), "{dash}");
    // Without a choice the form sends; a choice not offered is refused.
    let r = b.post(&format!("/endpoints/{}/enable", s.endpoint), &[("backlog", "all")]);
    assert_eq!(r.status, 400);
    let r = b.post(&format!("/endpoints/{}/enable", s.endpoint), &[("backlog", "send")]);
    assert_eq!(r.status, 303);
    let to = r.header("location").unwrap().to_string();
    // The 3 held, and the 72 that went dead since its failures began (hours 0 to 71).
    assert!(to.ends_with("?notice=enabled&sent=75"), "{to}");
    let page = b.get(to.trim_start_matches("/cgi-bin/webhooks.cgi")).text();
    assert!(page.contains("75 held or dead deliveries will be sent again, in order"), "{page}");
    assert!(!page.contains("class=\"banner\""), "no banner once nothing is failing or disabled");
    assert_eq!(s.notices("endpoint.enabled").len(), 1);
}

#[test]
fn the_api_re_enables_with_a_backlog_choice() {
    let rx = Receiver::always(410);
    let s = setup(&rx);
    s.hour(0);
    s.hour(1);
    let token = s.env.app_token();
    let path = format!("/api/v1/endpoints/{}", s.endpoint);
    let auth = format!("Bearer {token}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let shown = s.env.cgi("GET", &path, &headers, b"").json();
    assert_eq!(
        (shown["health"].as_str(), shown["disabled_reason"].as_str(), shown["held"].as_u64()),
        (Some("disabled"), Some("gone"), Some(1))
    );
    let r = s.env.cgi("PATCH", &path, &headers, br#"{"active":true,"backlog":"later"}"#);
    assert_eq!((r.status, r.json()["error"]["details"][0]["path"].as_str()), (422, Some("$.backlog")));
    let r = s.env.cgi("PATCH", &path, &headers, br#"{"active":true,"backlog":"discard"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!((r.json()["health"].as_str(), r.json()["held"].as_u64()), (Some("ok"), Some(0)));
    let enabled = s.notices("endpoint.enabled");
    assert_eq!((enabled[0]["data"]["replayed"].as_u64(), enabled[0]["data"]["discarded"].as_u64()), (Some(0), Some(1)));
}

#[test]
fn notices_every_channel_took_are_purged_with_the_log_and_pending_ones_are_kept() {
    let operator = Receiver::always(502);
    let rx = Receiver::always(410);
    let mut s = setup_with(&rx, operator);
    s.env.unset("WEBHOOKS_OPERATOR_EMAIL");
    s.hour(0); // two notices, both refused by the operator
    s.env.set("WEBHOOKS_OPERATOR_URL", "").set("WEBHOOKS_OPERATOR_SECRET", "");
    s.hour(1); // a third, for no channel (delivery.exhausted of nothing: the next event is held)
    assert_eq!(s.env.count("notices"), 2, "a held delivery is not exhausted");
    s.run_at(31 * 24, Duration::ZERO);
    assert_eq!(s.env.count("notices"), 2, "still pending for the operator webhook: kept");
    s.env.db().execute("UPDATE notices SET webhook_state = 'sent'", []).unwrap();
    s.run_at(31 * 24 + 1, Duration::ZERO);
    assert_eq!(s.env.count("notices"), 0, "taken, and past WEBHOOKS_LOG_RETENTION");
}
