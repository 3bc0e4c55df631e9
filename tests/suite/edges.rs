//! The edges a stranger or an outage reaches (issue 24, docs/reliability.md "Attacks and
//! faults"): bytes that are not UTF-8 anywhere in a request or the environment, a database that
//! is missing or unreachable, and what `/in/` answers then. Each test here failed on the code
//! before its fix.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;

use crate::common::*;
use serde_json::Value;

/// CGI variables as bytes.
type Vars = Vec<(&'static str, Vec<u8>)>;

/// `Caf\xe9`: Latin-1, not UTF-8.
const LATIN1: &[u8] = b"Caf\xe9";

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// Runs the CGI with every variable given as bytes; returns (status, stdout, stderr).
fn cgi_bytes(env: &Env, vars: &[(&str, &[u8])], body: &[u8]) -> (u16, Vec<u8>, String) {
    let mut c = env.command("webhooks-cgi");
    c.env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SCRIPT_NAME", "/cgi-bin/webhooks.cgi")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string());
    for (k, v) in vars {
        c.env(k, os(v));
    }
    let out = run_with_stdin(c, body);
    let stdout = out.stdout;
    let head = String::from_utf8_lossy(&stdout[..stdout.len().min(40)]).into_owned();
    let status = head
        .strip_prefix("Status: ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Status line: {head:?}; stderr {}", String::from_utf8_lossy(&out.stderr)));
    (status, stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Every route in the route table, with a Latin-1 byte in a header, in the query and in
/// `PATH_INFO`, is answered by the real CGI process: a Status line, never a panic or a 500.
#[test]
fn a_byte_that_is_not_utf8_anywhere_in_a_request_is_answered_on_every_route() {
    let env = Env::new();
    env.init();
    let token = env.app_token();
    let auth = format!("Bearer {token}");
    let mut answered = 0;
    for route in webhooks::web::routes::ROUTES {
        let path = route.path.replace("{id}", "x1");
        let mut in_path = path.clone().into_bytes();
        in_path.extend_from_slice(b"/\xe9");
        let cases: [(&str, Vars); 4] = [
            ("header", vec![("PATH_INFO", path.clone().into_bytes()), ("HTTP_X_SHOP_NAME", LATIN1.to_vec())]),
            (
                "user-agent",
                vec![("PATH_INFO", path.clone().into_bytes()), ("HTTP_USER_AGENT", b"Mozilla \xe9".to_vec())],
            ),
            ("query", vec![("PATH_INFO", path.clone().into_bytes()), ("QUERY_STRING", b"status=\xe9&x=%E9".to_vec())]),
            ("path", vec![("PATH_INFO", in_path)]),
        ];
        for (what, mut vars) in cases {
            vars.push(("REQUEST_METHOD", route.method.as_bytes().to_vec()));
            vars.push(("HTTP_AUTHORIZATION", auth.clone().into_bytes()));
            vars.push(("CONTENT_TYPE", b"application/json".to_vec()));
            let vars: Vec<(&str, &[u8])> = vars.iter().map(|(k, v)| (*k, v.as_slice())).collect();
            let (status, _, stderr) = cgi_bytes(&env, &vars, b"{}");
            assert!(
                status < 500,
                "{} {} with a Latin-1 byte in the {what}: {status} {stderr}",
                route.method,
                route.path
            );
            assert!(!stderr.contains("panic"), "{} {}: {stderr}", route.method, route.path);
            answered += 1;
        }
    }
    assert_eq!(answered, webhooks::web::routes::ROUTES.len() * 4);
}

/// `/in/` for each provider: a Latin-1 header is answered and the request logged, with the
/// header's exact bytes; a Latin-1 byte in the query or the token is answered too.
#[test]
fn inbound_requests_with_a_byte_that_is_not_utf8_are_answered_and_logged_exactly() {
    let env = Env::new();
    env.init();
    let providers: &[(&str, &[&str])] = &[
        ("stripe", &["--secret", "whsec_x"]),
        ("github", &["--secret", "s"]),
        ("shopify", &["--secret", "s"]),
        ("slack", &["--secret", "s"]),
        ("standard", &[]),
        ("postmark", &["--secret", "pw"]),
        ("circle", &["--key-url", "http://127.0.0.1:9/"]),
        ("hmac", &["--secret", "s", "--header", "X-Signature"]),
    ];
    for (provider, extra) in providers {
        let mut args = vec!["source", "add", "--name", provider, "--provider", provider];
        args.extend_from_slice(extra);
        let source = env.json(&args);
        let url = source["url"].as_str().unwrap();
        let path = url[url.find("/in/").unwrap()..].to_string();
        let id = source["id"].as_str().unwrap();
        let vars: Vec<(&str, &[u8])> = vec![
            ("REQUEST_METHOD", b"POST"),
            ("PATH_INFO", path.as_bytes()),
            ("QUERY_STRING", b"a=\xe9"),
            ("CONTENT_TYPE", b"application/json"),
            ("HTTP_X_SHOP_NAME", LATIN1),
            ("HTTP_USER_AGENT", b"WooCommerce/\xe9"),
        ];
        let (status, out, stderr) = cgi_bytes(&env, &vars, b"{\"id\":1}");
        assert_eq!(status, 401, "{provider}: {} {stderr}", String::from_utf8_lossy(&out));
        let logged = env.json(&["inbound", "--source", id]);
        let logged = logged.as_array().unwrap();
        assert_eq!(logged.len(), 1, "{provider}: the request is logged");
        let shown = env.json(&["inbound", "show", logged[0]["id"].as_str().unwrap()]);
        let header = shown["headers"].as_array().unwrap().iter().find(|h| h[0] == "x-shop-name").cloned();
        assert_eq!(header, Some(serde_json::json!(["x-shop-name", "Caf\u{FFFD}", "Q2Fm6Q=="])), "{provider}");
        // A Latin-1 byte in the token: no source, a JSON 404.
        let mut bad = path.clone().into_bytes();
        bad.push(0xe9);
        let (status, out, _) = cgi_bytes(&env, &[("REQUEST_METHOD", b"POST"), ("PATH_INFO", &bad)], b"{}");
        assert_eq!(status, 404);
        let body = &out[out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4..];
        let v: Value = serde_json::from_slice(body).expect("JSON at /in/");
        assert_eq!(v["code"], "E_NOT_FOUND");
    }
}

/// The CLI with a variable that is not UTF-8 in its environment: others' variables are ignored,
/// one of ours is one line naming it.
#[test]
fn the_cli_reads_an_environment_that_is_not_utf8() {
    let env = Env::new();
    env.init();
    let out =
        env.command("webhooks").arg("status").env("LANG", os(LATIN1)).env("X_SHOP", os(b"\xff")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("pending"), "{}", String::from_utf8_lossy(&out.stdout));
    let out = env.command("webhooks").arg("status").env("WEBHOOKS_ADMINS", os(LATIN1)).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !stderr.contains("panic"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("WEBHOOKS_ADMINS") && stderr.contains("UTF-8"), "{stderr}");
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The body of a CGI answer as JSON.
fn body_json(r: &CgiResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|_| panic!("not JSON: {}", r.text()))
}

/// `init` creates the database owner-only; once the file is moved away, no other entry point
/// makes a new one: the CGI answers 503 with `Retry-After` (JSON at `/in/`), the CLI one line
/// naming the path with exit 75, and `doctor` names it.
#[test]
fn a_missing_database_is_answered_unavailable_and_never_created_again() {
    let env = Env::on_sqlite();
    env.init();
    let db = env.db_path();
    assert_eq!(mode(&db), 0o600, "init creates the database owner-only");
    let token = env.app_token();
    let source = env.json(&["source", "add", "--name", "gh", "--provider", "github", "--secret", "s"]);
    let url = source["url"].as_str().unwrap();
    let inbound = url[url.find("/in/").unwrap()..].to_string();
    let moved = db.with_extension("moved");
    std::fs::rename(&db, &moved).unwrap();

    let out = env.run(&["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&db.display().to_string()) && stderr.contains("does not exist"), "{stderr}");
    assert!(!db.exists(), "status created a new database");

    let r = api(&env, &token, "GET", "/api/v1/endpoints", None);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("Retry-After").is_some());
    assert_eq!(r.error_code(), "unavailable");
    let page = env.run_cgi("GET", "/endpoints", &[], &[("REMOTE_USER", "alice")], b"", true);
    assert_eq!(page.status, 503);
    assert!(page.text().contains("<html") || page.text().contains("<!DOCTYPE"), "a page for pages");
    let r = env.cgi("POST", &inbound, &[("content-type", "application/json")], b"{}");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("Retry-After").is_some());
    assert_eq!(body_json(&r)["code"], "E_UNAVAILABLE");
    assert!(!db.exists(), "the CGI created a new database");

    let doctor = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout).to_string() + &String::from_utf8_lossy(&doctor.stderr);
    assert!(!doctor.status.success() && text.contains(&db.display().to_string()), "{text}");
    assert!(!db.exists(), "doctor created a new database");

    // Put back, everything works again; init on a missing file creates it (0600).
    std::fs::rename(&moved, &db).unwrap();
    assert!(env.run(&["status"]).status.success());
    std::fs::remove_file(&db).unwrap();
    env.init();
    assert_eq!(mode(&db), 0o600);
}

/// An intake that wrote into a file moved away before it answered is not acknowledged: the
/// intake waits on the write lock, the file is moved meanwhile, and its answer is 503.
#[test]
fn an_intake_racing_a_move_of_the_database_is_not_acknowledged() {
    let env = Env::on_sqlite();
    env.init();
    let token = env.app_token();
    let lock = env.hold_write_lock();
    let intake = std::thread::scope(|s| {
        let posting = s.spawn(|| {
            env.post_events(
                &token,
                r#"{"type":"email.received","user":"alice","data":{"alias":"a@x","message_id":"<1@x>","size_bytes":1}}"#,
                &[],
            )
        });
        // The intake has opened the file and waits for the lock.
        std::thread::sleep(std::time::Duration::from_millis(700));
        std::fs::rename(env.db_path(), env.db_path().with_extension("moved")).unwrap();
        drop(lock);
        posting.join().unwrap()
    });
    assert_eq!(intake.status, 503, "{}", intake.text());
    assert!(intake.header("Retry-After").is_some());
}

/// At `/in/`, every temporary condition is a JSON 503 with `Retry-After` and its code: a
/// database that was moved to PostgreSQL by migrate-store, one that cannot be reached, and a
/// configuration being fixed.
#[test]
fn inbound_answers_every_temporary_condition_with_json_503_and_retry_after() {
    let mut env = Env::on_sqlite();
    env.init();
    let source = env.json(&["source", "add", "--name", "gh", "--provider", "github", "--secret", "s"]);
    let url = source["url"].as_str().unwrap();
    let inbound = url[url.find("/in/").unwrap()..].to_string();
    let post = |env: &Env| env.cgi("POST", &inbound, &[("content-type", "application/json")], b"{}");

    // A configuration error: JSON, not an HTML page.
    env.set("WEBHOOKS_MAX_ATTEMPTS", "many");
    let r = post(&env);
    assert_eq!((r.status, body_json(&r)["code"].as_str()), (503, Some("E_MISCONFIGURED")), "{}", r.text());
    assert!(r.header("Retry-After").is_some());
    env.unset("WEBHOOKS_MAX_ATTEMPTS");

    // The file moved to PostgreSQL (migrate-store marks it).
    let c = env.sqlite();
    let version: i64 = c.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    c.execute_batch(&format!("PRAGMA user_version = {}", webhooks::store::sqlite::MOVED)).unwrap();
    let r = post(&env);
    assert_eq!((r.status, body_json(&r)["code"].as_str()), (503, Some("E_UNAVAILABLE")), "{}", r.text());
    assert!(r.header("Retry-After").is_some());
    c.execute_batch(&format!("PRAGMA user_version = {version}")).unwrap();
    assert_eq!(post(&env).status, 401, "back to normal: an unsigned request is refused");

    // PostgreSQL that cannot be reached.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    env.set("WEBHOOKS_DATABASE", &format!("postgres://u:p@127.0.0.1:{port}/db?sslmode=disable"));
    let r = post(&env);
    assert_eq!((r.status, body_json(&r)["code"].as_str()), (503, Some("E_UNAVAILABLE")), "{}", r.text());
    assert!(r.header("Retry-After").is_some());
}

/// Disk full, read-only and I/O errors from SQLite, and a reset connection from PostgreSQL,
/// are "unavailable": 503 with `Retry-After` at `/in/` and in the API, exit 75 in the CLI.
#[test]
fn storage_faults_are_temporary_conditions() {
    use webhooks::store::sql::SqlError;
    for code in [rusqlite::ffi::SQLITE_FULL, rusqlite::ffi::SQLITE_READONLY, rusqlite::ffi::SQLITE_IOERR] {
        let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None);
        let e: webhooks::model::Error = SqlError::from(e).into();
        assert!(matches!(e, webhooks::model::Error::Unavailable(_)), "{code}: {e:?}");
        let r = webhooks::web::receiver::failure(e);
        assert_eq!(r.status, 503);
        assert!(r.header("Retry-After").is_some());
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["code"], "E_UNAVAILABLE");
    }
    let e = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT), None);
    let e: webhooks::model::Error = SqlError::from(e).into();
    assert!(matches!(e, webhooks::model::Error::Internal(_)), "a constraint is a bug, not an outage");
}

/// A listener that accepts connections and never answers (a hung server; a pgbouncer whose
/// server is down behaves the same after the login). Returns its port; it stops with the test.
fn silent_listener() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming() {
            held.push(s);
        }
    });
    port
}

/// Runs a command, killing it after `limit`: `None` when it had to be killed.
fn run_within(mut c: std::process::Command, limit: std::time::Duration) -> Option<std::process::Output> {
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A database server that accepts and never answers: `WEBHOOKS_DB_CONNECT_TIMEOUT` (or the URL's
/// `connect_timeout`) bounds it, then the CLI exits 75 with one line and the CGI answers 503.
#[test]
fn a_server_that_accepts_and_never_answers_is_given_up_on() {
    let mut env = Env::on_sqlite();
    let port = silent_listener();
    env.set("WEBHOOKS_DATABASE", &format!("postgres://u:p@127.0.0.1:{port}/db?sslmode=disable"));
    env.set("WEBHOOKS_DB_CONNECT_TIMEOUT", "1s");
    let mut c = env.command("webhooks");
    c.arg("status");
    let out = run_within(c, std::time::Duration::from_secs(30)).expect("status gave up on the server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no answer from") && !stderr.contains(":p@"), "{stderr}");
    // The URL's connect_timeout wins over the key.
    env.set("WEBHOOKS_DB_CONNECT_TIMEOUT", "5m");
    env.set("WEBHOOKS_DATABASE", &format!("postgres://u:p@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=1"));
    let mut c = env.command("webhooks-cgi");
    c.env("REQUEST_METHOD", "GET").env("PATH_INFO", "/api/v1/endpoints").env("HTTP_AUTHORIZATION", "Bearer x");
    let out = run_within(c, std::time::Duration::from_secs(30)).expect("the CGI gave up on the server");
    let r = CgiResponse::parse(&out);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "unavailable");
    assert!(r.header("Retry-After").is_some());
}

/// A pgbouncer whose server is down (a closed port): it takes the login from its own auth_file,
/// then holds the first query while it tries the server. The same bound applies: exit 75 and
/// one line from the CLI, 503 from the CGI.
#[test]
fn a_pgbouncer_whose_server_is_down_is_given_up_on() {
    if !have("pgbouncer", "apt-get install pgbouncer") {
        return;
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = closed.local_addr().unwrap().port();
    drop(closed);
    let bouncer = Bouncer::start(
        &format!(
            "[databases]\n* = host=127.0.0.1 port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {{port}}\nauth_type = plain\nauth_file = {{dir}}/userlist.txt\npool_mode = session\n"
        ),
        "\"app\" \"pw\"\n",
    );
    let port = bouncer.port;
    let mut env = Env::on_sqlite();
    env.set("WEBHOOKS_DATABASE", &format!("postgres://app:pw@127.0.0.1:{port}/webhooks?sslmode=disable"));
    env.set("WEBHOOKS_DB_CONNECT_TIMEOUT", "2s");
    let mut status = env.command("webhooks");
    status.arg("status");
    let out = run_within(status, std::time::Duration::from_secs(60));
    let mut cgi = env.command("webhooks-cgi");
    cgi.env("REQUEST_METHOD", "GET").env("PATH_INFO", "/api/v1/endpoints").env("HTTP_AUTHORIZATION", "Bearer x");
    let answer = run_within(cgi, std::time::Duration::from_secs(60));
    drop(bouncer);
    let out = out.expect("status gave up on pgbouncer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let r = CgiResponse::parse(&answer.expect("the CGI gave up on pgbouncer"));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("Retry-After").is_some());
}

/// Printed links start with `WEBHOOKS_PUBLIC_URL` (written by `init --public-url`), never with
/// the development server's address unless nothing else is known, and then with a warning;
/// `doctor` asks for it.
#[test]
fn printed_links_use_the_public_url() {
    let mut env = Env::on_sqlite();
    env.unset("WEBHOOKS_PUBLIC_URL");
    let doctor = env.run(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("PROBLEM  WEBHOOKS_PUBLIC_URL is not set") && text.contains("--public-url"), "{text}");
    let out = env.run(&["source", "add", "--name", "st", "--provider", "stripe", "--secret", "whsec_x", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["url"].as_str().unwrap().starts_with("http://127.0.0.1:8080/in/"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WEBHOOKS_PUBLIC_URL is not set"));

    let bad = env.run(&["init", "--public-url", "ftp://example.org/x"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--public-url"));
    env.ok(&["init", "--public-url", "https://example.org/cgi-bin/webhooks.cgi/"]);
    let text = std::fs::read_to_string(&env.env_file).unwrap();
    assert!(text.contains("WEBHOOKS_PUBLIC_URL=https://example.org/cgi-bin/webhooks.cgi\n"), "{text}");
    let shown = env.json(&["source", "show", "st"]);
    assert!(shown["url"].as_str().unwrap().starts_with("https://example.org/cgi-bin/webhooks.cgi/in/"), "{shown}");
    let human = env.ok(&["source", "show", "st"]);
    assert!(human.contains("https://example.org/cgi-bin/webhooks.cgi/in/") && !human.contains("127.0.0.1"), "{human}");
    let link = env.json(&["login-link", "--user", "alice"]);
    assert!(link["url"].as_str().unwrap().starts_with("https://example.org/cgi-bin/webhooks.cgi/login?"));
    // --base still wins for one command.
    let other = env.json(&["source", "show", "st", "--base", "https://other.example/w.cgi"]);
    assert!(other["url"].as_str().unwrap().starts_with("https://other.example/w.cgi/in/"));
    // The API names it too, whatever Host the request came with.
    let r = api(&env, &env.app_token(), "GET", "/api/v1/sources", None);
    assert!(r.text().contains("https://example.org/cgi-bin/webhooks.cgi/in/"), "{}", r.text());
}
