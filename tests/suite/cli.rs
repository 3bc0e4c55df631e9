//! The `webhooks` CLI: init, configuration errors and discovery, endpoints, tokens, emit, verify.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use crate::common::{bin_path, Env, Receiver};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn init_creates_a_private_env_and_database_and_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        std::process::Command::new(bin_path("webhooks"))
            .arg("init")
            .env_clear()
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run();
    assert!(out.status.success(), "{}", stderr(&out));
    let env_file = dir.path().join(".env");
    let text = std::fs::read_to_string(&env_file).unwrap();
    let key = text.lines().find_map(|l| l.strip_prefix("WEBHOOKS_SECRET_KEY=")).unwrap().to_string();
    assert!(webhooks::config::parse_secret_key(&key).is_ok());
    assert_eq!(std::fs::metadata(&env_file).unwrap().permissions().mode() & 0o777, 0o600);
    let db = dir.path().join("var/webhooks.db");
    assert_eq!(std::fs::metadata(&db).unwrap().permissions().mode() & 0o777, 0o600);

    let out = run();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&env_file).unwrap(), text, "the key is kept");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: u32 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(v as usize, webhooks::store::sqlite::MIGRATIONS.len());

    // A .env without a key gets one added; its other settings stay.
    std::fs::write(&env_file, "WEBHOOKS_MAX_ATTEMPTS=3\n").unwrap();
    assert!(run().status.success());
    let text = std::fs::read_to_string(&env_file).unwrap();
    assert!(text.contains("WEBHOOKS_MAX_ATTEMPTS=3"));
    assert!(text.contains("WEBHOOKS_SECRET_KEY="));
}

#[test]
fn a_malformed_value_stops_with_one_line_naming_the_key_and_form() {
    let mut env = Env::new();
    for (key, value) in
        [("WEBHOOKS_MAX_ATTEMPTS", "zero"), ("WEBHOOKS_RETRY_SCHEDULE", "1m,soon"), ("WEBHOOKS_MAX_BODY", "big")]
    {
        env.set(key, value);
        let out = env.run(&["dispatch"]);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(key) && err.contains("expected"), "{err}");
        env.unset(key);
    }
    let out = env.run(&["dispatch", "--every", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a duration"));
}

#[test]
fn a_missing_secret_key_says_to_run_init() {
    let mut env = Env::new();
    env.unset("WEBHOOKS_SECRET_KEY");
    let out = env.run(&["endpoint", "add", "--user", "a", "--url", "https://example.com/"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("WEBHOOKS_SECRET_KEY is not set") && stderr(&out).contains("webhooks init"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_env_is_found_above_the_executable_as_under_suexec() {
    let env = Env::new();
    env.init();
    env.endpoint("alice", "https://example.com/", "");
    let install = env.dir.path();
    std::fs::create_dir_all(install.join("bin")).unwrap();
    let exe = install.join("bin/webhooks");
    common::copy_program(&bin_path("webhooks"), &exe);
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(&exe)
        .args(["endpoint", "list", "--json"])
        .env_clear()
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "used the install's database");
}

#[test]
fn a_binary_inside_a_cargo_target_dir_ignores_a_env_above_it() {
    // A checkout where `webhooks serve` wrote .env and var/, and cargo built into target/.
    let checkout = Env::new();
    checkout.init();
    checkout.endpoint("alice", "https://example.com/", "");
    let exe = checkout.dir.path().join("target/release/webhooks");
    std::fs::create_dir_all(exe.parent().unwrap()).unwrap();
    std::fs::write(checkout.dir.path().join("target/CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55\n")
        .unwrap();
    common::copy_program(&bin_path("webhooks"), &exe);
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&exe).args(args).env_clear().current_dir(elsewhere.path()).output().unwrap()
    };
    for args in [&["endpoint", "list", "--json"][..], &["status"], &["deliveries"]] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} must not use the checkout's database: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("no .env was found") && err.contains("webhooks init") && err.contains("WEBHOOKS_ENV"),
            "{err}"
        );
    }
    assert!(!elsewhere.path().join("var").exists(), "nothing was created");
    // In the checkout's own directory, the current directory's .env is used as before.
    let out = std::process::Command::new(&exe)
        .args(["endpoint", "list", "--json"])
        .env_clear()
        .current_dir(checkout.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn endpoint_lifecycle_with_json_output() {
    let env = Env::new();
    let added = env.json(&[
        "endpoint",
        "add",
        "--user",
        "alice",
        "--url",
        "https://Example.com/hook",
        "--events",
        "email.*,usage.threshold",
        "--description",
        "CRM",
    ]);
    let id = added["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("ep_"));
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(added["url"], "https://example.com/hook");
    assert_eq!(added["event_types"], serde_json::json!(["email.*", "usage.threshold"]));
    assert_eq!(added["active"], true);

    let list = env.json(&["endpoint", "list", "--user", "alice"]);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none(), "list never shows secrets");
    assert_eq!(env.json(&["endpoint", "list", "--user", "bob"]).as_array().unwrap().len(), 0);

    let updated = env.json(&["endpoint", "update", &id, "--url", "https://example.org/h2", "--events", ""]);
    assert_eq!(updated["url"], "https://example.org/h2");
    assert_eq!(updated["event_types"], serde_json::json!([]));
    assert_eq!(updated["description"], "CRM");
    assert_eq!(env.json(&["endpoint", "disable", &id])["active"], false);
    assert_eq!(env.json(&["endpoint", "enable", &id])["active"], true);

    let rot = env.json(&["endpoint", "rotate-secret", &id]);
    assert!(rot["secret"].as_str().unwrap().starts_with("whsec_"));
    let shown = env.json(&["endpoint", "show", &id]);
    let keys = shown["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], rot["key_id"]);
    assert!(keys[0]["expires_at"].is_null());
    let until = chrono::DateTime::parse_from_rfc3339(keys[1]["expires_at"].as_str().unwrap()).unwrap();
    let hours = (until.timestamp() - chrono::Utc::now().timestamp()) as f64 / 3600.0;
    assert!((23.9..=24.0).contains(&hours), "default grace 24h, got {hours}");

    // Secrets are not in the database in plaintext.
    for raw in env.stored_bytes() {
        for s in [added["secret"].as_str().unwrap(), rot["secret"].as_str().unwrap()] {
            let needle = &s.as_bytes()[6..];
            assert!(!raw.windows(needle.len()).any(|w| w == needle), "secret stored in plaintext");
        }
    }

    env.ok(&["endpoint", "delete", &id]);
    let out = env.run(&["endpoint", "show", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not found"));
}

#[test]
fn bad_endpoint_input_is_one_clear_line_and_changes_nothing() {
    let env = Env::new();
    for (args, expect) in [
        (vec!["--url", "ftp://example.com/"], "url: must start with https:// or http://"),
        (vec!["--url", "not a url"], "url: is not a valid URL"),
        (vec!["--url", "http://10.0.0.8/"], "private or reserved"),
        (
            vec!["--url", "https://example.com/", "--events", "email.sent"],
            "event_types: \"email.sent\" matches no event type",
        ),
    ] {
        let mut a = vec!["endpoint", "add", "--user", "alice"];
        a.extend(args);
        let out = env.run(&a);
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{err}");
    }
    assert_eq!(env.count("endpoints"), 0);
    assert_eq!(env.count("users"), 0);
}

#[test]
fn emit_validates_like_the_api_and_writes_nothing_on_error() {
    let env = Env::new();
    env.endpoint("alice", "https://example.com/", "");
    let out = env.run(&["emit", "--user", "alice", "--type", "email.received", "--data", r#"{"alias":"a"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("$.data.message_id is required") && err.contains("$.data.size_bytes is required"), "{err}");
    let out = env.run(&["emit", "--user", "alice", "--type", "email.received", "--data", "{nope"]);
    assert!(stderr(&out).contains("--data is not valid JSON"));
    assert_eq!(env.count("events"), 0);
    let file = env.dir.path().join("data.json");
    std::fs::write(&file, r#"{"alias":"a","message_id":"m","size_bytes":3}"#).unwrap();
    let v =
        env.json(&["emit", "--user", "alice", "--type", "email.received", "--data", &format!("@{}", file.display())]);
    assert!(v["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(v["deliveries"], 1);
    let mut child = env
        .command("webhooks")
        .args(["emit", "--user", "alice", "--type", "webhook.test", "--data", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(br#"{"message":"x"}"#).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(stderr(&out).contains("webhook.test is sent only by the test button"), "{}", stderr(&out));
}

#[test]
fn tokens_are_created_listed_and_revoked() {
    let env = Env::new();
    let app = env.json(&["token", "create", "--app", "--label", "host"]);
    assert!(app["token"].as_str().unwrap().starts_with("qsm_"));
    assert_eq!(app["kind"], "app");
    let user = env.json(&["token", "create", "--user", "alice"]);
    assert_eq!(user["user"], "alice");
    let list = env.json(&["token", "list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(list.to_string().find(app["token"].as_str().unwrap()).is_none(), "list never shows tokens");
    env.ok(&["token", "revoke", user["id"].as_str().unwrap()]);
    assert_eq!(env.json(&["token", "list", "--user", "alice"])[0]["revoked"], true);
    assert_eq!(env.run(&["token", "create"]).status.code(), Some(2), "--user or --app is required");
}

#[test]
fn verify_says_valid_or_exactly_why_not() {
    let env = Env::new();
    let rx = Receiver::always(200);
    let (_, secret) = env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", r#"{"alias":"a","message_id":"m","size_bytes":3}"#);
    env.dispatch();
    let got = rx.received().remove(0);
    let body_file = env.dir.path().join("body.json");
    std::fs::write(&body_file, &got.body).unwrap();
    let headers: Vec<String> =
        got.headers.iter().filter(|(k, _)| !k.starts_with(':')).map(|(k, v)| format!("{k}: {v}")).collect();
    let verify = |secret: &str, body: &std::path::Path, extra: &[&str], only: &dyn Fn(&str) -> bool| {
        let mut args = vec![
            "verify".to_string(),
            "--secret".into(),
            secret.into(),
            "--body".into(),
            format!("@{}", body.display()),
        ];
        for h in headers.iter().filter(|h| only(h)) {
            args.push("--header".into());
            args.push(h.clone());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        env.run(&a)
    };
    let all = |_: &str| true;
    let out = verify(&secret, &body_file, &[], &all);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (X-QSM-Signature)"));
    let sw = |h: &str| h.starts_with("webhook-");
    let out = verify(&secret, &body_file, &[], &sw);
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid (webhook-signature)"));

    let tampered = env.dir.path().join("tampered.json");
    let mut t = got.body.clone();
    t.push(b' ');
    std::fs::write(&tampered, &t).unwrap();
    let out = verify(&secret, &tampered, &[], &all);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no signature matches"), "{}", stderr(&out));
    let out = verify(&webhooks::model::secret::generate(), &body_file, &[], &all);
    assert!(stderr(&out).contains("no signature matches"));
    let ts: i64 = got.header("X-QSM-Timestamp").unwrap().parse().unwrap();
    let late = (ts + 301).to_string();
    let out = verify(&secret, &body_file, &["--now", &late], &all);
    assert!(stderr(&out).contains("301s in the past"), "{}", stderr(&out));
    let early = (ts - 301).to_string();
    let out = verify(&secret, &body_file, &["--now", &early], &all);
    assert!(stderr(&out).contains("301s in the future"), "{}", stderr(&out));
}

#[test]
fn deliveries_json_has_the_documented_fields() {
    let env = Env::new();
    env.endpoint("alice", "http://127.0.0.1:9/", "");
    env.emit("alice", "email.received", r#"{"alias":"a","message_id":"m","size_bytes":3}"#);
    let list = env.json(&["deliveries", "--user", "alice", "--status", "pending"]);
    let d = &list[0];
    for field in ["id", "event_id", "endpoint_id", "user", "status", "attempts", "last_status_code", "last_error_code"]
    {
        assert!(d.get(field).is_some(), "missing {field}");
    }
    assert_eq!(d["status"], "pending");
    let status = env.json(&["status"]);
    for field in ["pending", "due", "oldest_due_seconds", "last_run_at"] {
        assert!(status.get(field).is_some(), "missing {field}");
    }
    assert_eq!(status["pending"], 1);
    let out = env.run(&["deliveries", "--status", "lost"]);
    assert!(stderr(&out).contains("status: must be one of pending, held, succeeded, failed, dead"));
}

fn env_key(env: &Env, name: &str) -> Option<String> {
    std::fs::read_to_string(&env.env_file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")).map(String::from))
}

fn delivers_signed_with(env: &Env, rx: &Receiver, secret: &str) -> bool {
    let before = rx.len();
    env.emit("alice", "email.received", r#"{"alias":"a","message_id":"m","size_bytes":3}"#);
    env.dispatch();
    let got = rx.received();
    let r = &got[before];
    let key = webhooks::model::secret::decode(secret).unwrap();
    webhooks::outbound::signing::verify("X-QSM", &r.headers, &r.body, &[key], 300, chrono::Utc::now().timestamp())
        .is_ok()
}

#[test]
fn rotate_key_re_encrypts_every_secret_under_a_new_key() {
    let env = Env::new();
    let rx = Receiver::always(200);
    let (ep, secret) = env.endpoint("alice", &rx.url("/"), "");
    env.ok(&["endpoint", "rotate-secret", &ep]);
    let source = env.json(&["source", "add", "--name", "gh", "--provider", "github", "--secret", "gh-secret"]);
    let sealed_before: Vec<Vec<u8>> = env
        .db()
        .prepare("SELECT secret FROM endpoint_keys")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let out = env.ok(&["rotate-key"]);
    assert!(out.contains("re-encrypted 2 endpoint secrets and 2 inbound source secrets"), "{out}");
    // The source keeps its URL and its secret under the new key.
    let shown = env.json(&["source", "show", "gh"]);
    assert_eq!(shown["url"], source["url"]);
    let url = source["url"].as_str().unwrap();
    let path = &url[url.find("/in/").unwrap()..];
    let body = br#"{"zen":"Keep it logically awesome."}"#;
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(b"gh-secret").unwrap();
    hmac::Mac::update(&mut mac, body);
    let sig = format!("sha256={}", webhooks::model::secret::hex(&hmac::Mac::finalize(mac).into_bytes()));
    let r = env.cgi("POST", path, &[("X-Hub-Signature-256", sig.as_str()), ("X-GitHub-Delivery", "1")], body);
    assert_eq!(r.json()["status"], "accepted", "{}", r.text());
    let new_key = env_key(&env, "WEBHOOKS_SECRET_KEY").unwrap();
    assert_ne!(new_key, common::MASTER_KEY);
    assert!(env_key(&env, "WEBHOOKS_PREVIOUS_SECRET_KEY").is_none(), "the old key is gone when done");
    assert_eq!(env_key(&env, "WEBHOOKS_ALLOWED_NETWORKS").as_deref(), Some("127.0.0.1/32"), "other settings kept");
    assert_eq!(std::fs::metadata(&env.env_file).unwrap().permissions().mode() & 0o777, 0o600);
    // Every stored secret changed ciphertext, opens only with the new key, and deliveries still
    // carry the endpoint's unchanged secret.
    let rows: Vec<(String, Vec<u8>)> = env
        .db()
        .prepare("SELECT id, secret FROM endpoint_keys")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let old = webhooks::config::parse_secret_key(common::MASTER_KEY).unwrap();
    let new = webhooks::config::parse_secret_key(&new_key).unwrap();
    for (id, sealed) in &rows {
        assert!(!sealed_before.contains(sealed));
        assert!(webhooks::model::secret::open_with(&old, id, sealed).is_err());
        assert!(webhooks::model::secret::open_with(&new, id, sealed).is_ok());
    }
    assert!(delivers_signed_with(&env, &rx, &secret), "the original secret still verifies (grace period)");
}

#[test]
fn an_interrupted_key_rotation_keeps_working_and_resumes() {
    let env = Env::new();
    let rx = Receiver::always(200);
    let (_, secret) = env.endpoint("alice", &rx.url("/"), "");
    // As if rotate-key stopped after writing the .env, before re-encrypting.
    let text = std::fs::read_to_string(&env.env_file).unwrap().replace(
        &format!("WEBHOOKS_SECRET_KEY={}", common::MASTER_KEY),
        &format!(
            "WEBHOOKS_SECRET_KEY=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\nWEBHOOKS_PREVIOUS_SECRET_KEY={}",
            common::MASTER_KEY
        ),
    );
    std::fs::write(&env.env_file, text).unwrap();
    assert!(delivers_signed_with(&env, &rx, &secret), "secrets open with the previous key meanwhile");
    env.ok(&["rotate-key"]);
    assert_eq!(
        env_key(&env, "WEBHOOKS_SECRET_KEY").as_deref(),
        Some("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="),
        "resumed with the same new key"
    );
    assert!(env_key(&env, "WEBHOOKS_PREVIOUS_SECRET_KEY").is_none());
    assert!(delivers_signed_with(&env, &rx, &secret));
}

#[test]
fn backup_writes_a_private_consistent_copy_and_never_overwrites() {
    let env = Env::new();
    env.endpoint("alice", "https://example.com/", "");
    let to = env.dir.path().join("var/backup.db");
    if env.is_postgres() {
        // PostgreSQL has its own tools: the command says so and writes nothing.
        let out = env.run(&["backup", to.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr(&out).trim(), "webhooks: on PostgreSQL, back up with pg_dump (docs/postgres.md, \"Backup\")");
        assert!(!to.exists());
        return;
    }
    env.ok(&["backup", to.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&to).unwrap().permissions().mode() & 0o777, 0o600);
    let copy = rusqlite::Connection::open(&to).unwrap();
    let n: i64 = copy.query_row("SELECT count(*) FROM endpoints", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 1);
    let out = env.run(&["backup", to.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists"));
}

#[test]
fn doctor_reports_each_problem_with_its_fix() {
    let env = Env::new();
    if !env.is_postgres() {
        std::fs::remove_file(env.db_path()).unwrap(); // before `webhooks init`
    }
    std::fs::set_permissions(&env.env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("can be read by other users") && text.contains("fix: chmod 600"), "{text}");
    if env.is_postgres() {
        assert!(
            text.contains("database migrations pending (schema 0") && text.contains("fix: run `webhooks init`"),
            "{text}"
        );
    } else {
        assert!(text.contains("webhooks.db does not exist") && text.contains("fix: run `webhooks init`"), "{text}");
    }

    std::fs::set_permissions(&env.env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    env.init();
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("the dispatcher has never run") && text.contains("* * * * * cd "), "{text}");

    env.dispatch();
    let out = env.run(&["doctor"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // One API request without a token is a client that sent none, not a server problem.
    env.cgi("POST", "/api/v1/events", &[("Content-Type", "application/json")], b"{}");
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok       1 API request arrived without an Authorization header"), "{text}");
    // Every request losing its header on the way (no CGIPassAuth) is.
    env.cgi("GET", "/api/v1/endpoints", &[], b"");
    env.cgi("GET", "/api/v1/endpoints", &[], b"");
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PROBLEM  the last 3 API requests reached the CGI without an Authorization header"),
        "{text}"
    );
    assert!(text.contains("CGIPassAuth On"), "{text}");
    // The fix shows at the very next request that carries its header, not a minute later.
    let token = env.user_token("alice");
    common::api(&env, &token, "GET", "/api/v1/endpoints", None);
    let out = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "fixed once a request arrives with its header: {text}");
    assert!(text.contains("API requests arrive with their Authorization header"), "{text}");
    // A later streak counts from zero.
    env.cgi("GET", "/api/v1/endpoints", &[], b"");
    assert!(env.run(&["doctor"]).status.success());

    env.db().execute("UPDATE runs SET started_at = started_at - 600000", []).unwrap();
    let text = String::from_utf8_lossy(&env.run(&["doctor"]).stdout).into_owned();
    assert!(text.contains("the dispatcher last ran 10 minutes ago"), "{text}");
}

#[test]
fn doctor_names_a_bad_setting() {
    let mut env = Env::new();
    env.set("WEBHOOKS_CONCURRENCY", "lots");
    let out = env.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("WEBHOOKS_CONCURRENCY has an invalid value") && text.contains("fix:"), "{text}");
}

#[test]
fn a_database_locked_past_the_busy_timeout_exits_75_and_changes_nothing() {
    let env = Env::new();
    env.init();
    let blocker = env.hold_write_lock();
    let out = env.run(&["token", "create", "--app"]);
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(out.status.code(), Some(75), "EX_TEMPFAIL: {}", stderr(&out));
    assert_eq!(stderr(&out).trim(), "webhooks: the database is busy; try again shortly");
    assert_eq!(env.count("tokens"), 0);
    assert_eq!(env.run(&["token", "create", "--app"]).status.code(), Some(0), "and works once the lock is gone");
}
