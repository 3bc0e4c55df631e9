//! Shared test harness: a temporary installation driven through the real binaries, and a
//! scriptable loopback receiver that records every request.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use webhooks::model::location::Location;
use webhooks::store::sql::Conn;

pub const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// A temporary installation: its own `.env`, database and binaries.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub env_file: PathBuf,
    pub vars: BTreeMap<String, String>,
    /// Added to the programs' clock (test builds only: WEBHOOKS_TEST_CLOCK_OFFSET), in ms.
    pub clock: std::sync::atomic::AtomicI64,
    /// The PostgreSQL database made for this installation, when the suite runs on PostgreSQL.
    pub pg_database: Option<String>,
}

/// A role on a PostgreSQL server that may create databases, from `WEBHOOKS_TEST_POSTGRES`
/// (`.ci/postgres start DIR` starts a throw-away cluster and prints it).
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("WEBHOOKS_TEST_POSTGRES").ok().filter(|v| !v.is_empty())
}

/// Whether the behavioural suite runs on PostgreSQL: `WEBHOOKS_TEST_STORE=postgres` (with
/// `WEBHOOKS_TEST_POSTGRES` set); SQLite otherwise. `.ci/run` runs the suite once on each.
pub fn suite_on_postgres() -> bool {
    match std::env::var("WEBHOOKS_TEST_STORE").as_deref() {
        Ok("postgres") => {
            assert!(postgres_admin_url().is_some(), "WEBHOOKS_TEST_STORE=postgres needs WEBHOOKS_TEST_POSTGRES");
            true
        }
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("WEBHOOKS_TEST_STORE={other}: use sqlite or postgres"),
    }
}

/// `url` with its database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A fresh, empty PostgreSQL database: its name.
pub fn create_pg_database(admin: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "t_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos()
    );
    let admin_db = webhooks::store::connect(&Location::Postgres(admin.to_string())).unwrap();
    admin_db.execute_batch(&format!("CREATE DATABASE {name}")).unwrap();
    name
}

pub fn drop_pg_database(admin: &str, name: &str) {
    if let Ok(c) = webhooks::store::connect(&Location::Postgres(admin.to_string())) {
        let _ = c.execute_batch(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let (Some(admin), Some(name)) = (postgres_admin_url(), &self.pg_database) {
            drop_pg_database(&admin, name);
        }
    }
}

impl Env {
    /// Defaults for tests: loopback allowed, short timeouts and budget; the suite's store.
    pub fn new() -> Env {
        Env::with_store(if suite_on_postgres() { postgres_admin_url() } else { None })
    }

    /// An installation on SQLite, whichever store the suite runs on: for what only a file has.
    pub fn on_sqlite() -> Env {
        Env::with_store(None)
    }

    /// An installation on PostgreSQL, in a new database on the server `admin` names.
    pub fn on_postgres(admin: &str) -> Env {
        Env::with_store(Some(admin.to_string()))
    }

    fn with_store(postgres: Option<String>) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let env_file = dir.path().join(".env");
        let mut env = Env { env_file, dir, vars: BTreeMap::new(), clock: Default::default(), pg_database: None };
        env.set("WEBHOOKS_SECRET_KEY", MASTER_KEY);
        match postgres {
            Some(admin) => {
                let name = create_pg_database(&admin);
                env.set("WEBHOOKS_DATABASE", &with_database(&admin, &name));
                env.pg_database = Some(name);
            }
            None => {
                env.set("WEBHOOKS_DATABASE", "var/webhooks.db");
            }
        }
        env.set("WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.1/32");
        env.set("WEBHOOKS_PUBLIC_URL", "https://webhooks.example/cgi-bin/webhooks.cgi");
        env.set("WEBHOOKS_REQUEST_TIMEOUT", "2s");
        env.set("WEBHOOKS_TIME_BUDGET", "20s");
        std::fs::create_dir_all(dir_of(&env)).unwrap();
        // An installation, as `webhooks init` leaves it: only init makes a SQLite database.
        if env.pg_database.is_none() {
            webhooks::store::Store::create(&env.location()).unwrap();
        }
        env
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Env {
        self.vars.insert(key.into(), value.into());
        let text: String = self.vars.iter().map(|(k, v)| format!("{k}={}\n", quoted(v))).collect();
        std::fs::write(&self.env_file, text).unwrap();
        self
    }

    pub fn unset(&mut self, key: &str) -> &mut Env {
        self.vars.remove(key);
        let text: String = self.vars.iter().map(|(k, v)| format!("{k}={}\n", quoted(v))).collect();
        std::fs::write(&self.env_file, text).unwrap();
        self
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("var/webhooks.db")
    }

    /// Whether this installation runs on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.pg_database.is_some()
    }

    /// Where this installation's data is.
    pub fn location(&self) -> Location {
        match postgres_admin_url().zip(self.pg_database.as_ref()) {
            Some((admin, name)) => Location::Postgres(with_database(&admin, name)),
            None => Location::File(self.db_path()),
        }
    }

    /// A connection to the installation's database (SQLite or PostgreSQL), to look at its tables.
    pub fn db(&self) -> Conn {
        webhooks::store::connect(&self.location()).unwrap()
    }

    /// Takes the installation's write lock, as another writer would: SQLite's (an immediate
    /// transaction); on PostgreSQL the one-writer advisory lock that pages, intake and the CLI
    /// take, and locks on the tables that let readers in and keep every writer out. Held until
    /// `ROLLBACK` on the returned connection (or its drop).
    ///
    /// On PostgreSQL the table locks are taken all at once or not at all (`NOWAIT`, then a
    /// rollback and another try): waiting for one table while holding another would close a
    /// cycle with a dispatcher that holds a row of the first and wants the second, and the
    /// server would end one of the two as a deadlock.
    pub fn hold_write_lock(&self) -> Conn {
        let c = self.db();
        if self.is_postgres() {
            c.execute_batch("SET lock_timeout = 0").unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while let Err(e) = c.execute_batch(
                "BEGIN; SELECT pg_advisory_xact_lock(7147);
                 LOCK TABLE users, tokens, endpoints, endpoint_keys, events, deliveries, attempts, runs
                     IN SHARE ROW EXCLUSIVE MODE NOWAIT",
            ) {
                assert!(Instant::now() < deadline, "the write lock was not free within a minute: {e}");
                c.execute_batch("ROLLBACK").unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
        } else {
            c.execute_batch("BEGIN IMMEDIATE").unwrap();
        }
        c
    }

    /// Everything the database holds at rest, to search for what must never be stored in
    /// plain text: SQLite's files (the database, its WAL); on PostgreSQL every row of every
    /// table as text, with `bytea` values decoded back to their bytes.
    pub fn stored_bytes(&self) -> Vec<Vec<u8>> {
        if !self.is_postgres() {
            return std::fs::read_dir(self.db_path().parent().unwrap())
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap())
                .collect();
        }
        let db = self.db();
        let tables: Vec<String> = db
            .prepare("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|t| t.unwrap())
            .collect();
        tables
            .iter()
            .map(|t| {
                let text: String = db
                    .query_row(&format!("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {t} t"), [], |r| {
                        r.get(0)
                    })
                    .unwrap();
                decode_bytea(&text)
            })
            .collect()
    }

    /// A SQLite connection, for the tests of what only SQLite has (its file, its write lock).
    pub fn sqlite(&self) -> rusqlite::Connection {
        assert!(!self.is_postgres(), "a SQLite-only check on PostgreSQL");
        let c = rusqlite::Connection::open(self.db_path()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c
    }

    pub fn count(&self, table: &str) -> i64 {
        self.db().query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).unwrap()
    }

    /// How long after the (one) dispatcher run's start its last attempt began, in ms by the run's
    /// own clock: a run with budget B and request timeout T must keep it at most B - T.
    pub fn last_attempt_into_the_run_ms(&self) -> i64 {
        self.db()
            .query_row("SELECT (SELECT max(started_at) FROM attempts) - (SELECT started_at FROM runs)", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    /// A command for one of the binaries with a clean environment pointing at this installation.
    pub fn command(&self, bin: &str) -> Command {
        let mut c = Command::new(bin_path(bin));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("WEBHOOKS_ENV", &self.env_file)
            .env("WEBHOOKS_TEST_CLOCK_OFFSET", self.clock.load(Ordering::SeqCst).to_string())
            .current_dir(self.dir.path());
        c
    }

    /// Moves the programs' clock to `at` past the real time (never backwards in a test).
    pub fn set_clock(&self, at: Duration) {
        self.clock.store(at.as_millis() as i64, Ordering::SeqCst);
    }

    /// A stand-in for sendmail that keeps each message it is given as a file in the returned
    /// folder; operational events are mailed to ops@example.com through it.
    pub fn stub_sendmail(&mut self) -> PathBuf {
        let dir = self.dir.path().join("mail");
        std::fs::create_dir_all(&dir).unwrap();
        let script = self.dir.path().join("sendmail");
        let text = format!("#!/bin/sh\nf=$(mktemp {}/mail.XXXXXXXX) && cat > \"$f\"\n", dir.display());
        write_program(&script, &text);
        self.set("WEBHOOKS_SENDMAIL", &format!("{} -t -i", script.display()));
        self.set("WEBHOOKS_OPERATOR_EMAIL", "ops@example.com");
        dir
    }

    /// Runs `webhooks ARGS`, asserting nothing.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command("webhooks").args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Runs `webhooks ARGS`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "webhooks {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `webhooks ARGS --json` and parses its one JSON value.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    pub fn init(&self) {
        self.ok(&["init"]);
    }

    pub fn app_token(&self) -> String {
        self.json(&["token", "create", "--app"])["token"].as_str().unwrap().to_string()
    }

    pub fn user_token(&self, user: &str) -> String {
        self.json(&["token", "create", "--user", user])["token"].as_str().unwrap().to_string()
    }

    /// Adds an endpoint; returns (id, secret).
    pub fn endpoint(&self, user: &str, url: &str, events: &str) -> (String, String) {
        let mut args = vec!["endpoint", "add", "--user", user, "--url", url];
        if !events.is_empty() {
            args.extend(["--events", events]);
        }
        let v = self.json(&args);
        (v["id"].as_str().unwrap().into(), v["secret"].as_str().unwrap().into())
    }

    pub fn emit(&self, user: &str, event_type: &str, data: &str) -> Value {
        self.json(&["emit", "--user", user, "--type", event_type, "--data", data])
    }

    /// One dispatcher run through the binary; returns its JSON summary.
    pub fn dispatch(&self) -> Value {
        self.json(&["dispatch"])
    }

    /// Runs the CGI binary with a synthetic RFC 3875 environment.
    pub fn cgi(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> CgiResponse {
        self.cgi_with(method, path, headers, body, true)
    }

    pub fn cgi_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        content_length: bool,
    ) -> CgiResponse {
        self.run_cgi(method, path, headers, &[], body, content_length)
    }

    /// Runs the CGI binary for one request: RFC 3875 variables, `headers` as `HTTP_*` (and
    /// `CONTENT_TYPE`), `extra` variables as given, the body on stdin.
    pub fn run_cgi(
        &self,
        method: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        extra: &[(&str, &str)],
        body: &[u8],
        content_length: bool,
    ) -> CgiResponse {
        let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
        let mut c = self.command("webhooks-cgi");
        c.env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", method)
            .env("SCRIPT_NAME", "/cgi-bin/webhooks.cgi")
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .env("REMOTE_ADDR", "127.0.0.1");
        if content_length {
            c.env("CONTENT_LENGTH", body.len().to_string());
        }
        for (k, v) in headers {
            let name = k.to_ascii_uppercase().replace('-', "_");
            if name == "CONTENT_TYPE" {
                c.env("CONTENT_TYPE", v);
            } else {
                c.env(format!("HTTP_{name}"), v);
            }
        }
        for (k, v) in extra {
            c.env(k, v);
        }
        CgiResponse::parse(&run_with_stdin(c, body))
    }

    /// POSTs JSON events with a token through the CGI.
    pub fn post_events(&self, token: &str, body: &str, extra: &[(&str, &str)]) -> CgiResponse {
        let auth = format!("Bearer {token}");
        let mut headers = vec![("Content-Type", "application/json"), ("Authorization", auth.as_str())];
        headers.extend_from_slice(extra);
        self.cgi("POST", "/api/v1/events", &headers, body.as_bytes())
    }

    /// Makes every waiting delivery due now (instead of waiting out the retry schedule).
    pub fn make_due(&self) {
        self.db()
            .execute("UPDATE queue SET next_attempt_at = 0 WHERE lease_until IS NULL", webhooks::sql_params![])
            .unwrap();
    }

    pub fn deliveries(&self) -> Vec<Value> {
        self.json(&["deliveries", "--limit", "100000"]).as_array().unwrap().clone()
    }
}

/// PostgreSQL's text form of rows with every `\x…` (a `bytea` in hex) turned back into bytes.
fn decode_bytea(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex: Vec<u8> = b[i + 2..].iter().take_while(|c| c.is_ascii_hexdigit()).copied().collect();
            if hex.len() >= 2 && hex.len().is_multiple_of(2) {
                for pair in hex.chunks(2) {
                    out.push(u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap());
                }
                i += 2 + hex.len();
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// A `.env` value: quoted when it holds spaces (a command line).
fn quoted(v: &str) -> String {
    if v.contains(' ') {
        format!("\"{v}\"")
    } else {
        v.to_string()
    }
}

fn dir_of(env: &Env) -> PathBuf {
    env.dir.path().join("var")
}

/// Copies a program for a test to run. The copy is written by a `cp` child process, never
/// through a file this test process holds open: another test thread's fork would inherit such a
/// descriptor, and exec'ing the copy while any child still holds it open for writing fails with
/// `Text file busy` (ETXTBSY).
/// Writes an executable script, from a child process for the same reason as [`copy_program`].
pub fn write_program(path: &Path, text: &str) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("cat > \"$1\" && chmod 755 \"$1\"")
        .arg("sh")
        .arg(path)
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh runs");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "writing {}", path.display());
}

pub fn copy_program(from: &Path, to: &Path) {
    let status = Command::new("cp").arg(from).arg(to).status().expect("cp runs");
    assert!(status.success(), "cp {} {}", from.display(), to.display());
}

pub fn bin_path(bin: &str) -> PathBuf {
    match bin {
        "webhooks" => PathBuf::from(env!("CARGO_BIN_EXE_webhooks")),
        "webhooks-cgi" => PathBuf::from(env!("CARGO_BIN_EXE_webhooks-cgi")),
        other => panic!("unknown binary {other}"),
    }
}

#[derive(Debug)]
pub struct CgiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub stderr: String,
}

impl CgiResponse {
    pub fn parse(out: &Output) -> CgiResponse {
        let (status, headers, body) = webhooks::cli::serve::parse_cgi_output(&out.stdout)
            .unwrap_or_else(|e| panic!("bad CGI output ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        CgiResponse { status, headers, body, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text. Tera escapes `/` as `&#x2F;` (harmless, the browser shows `/`); it is
    /// turned back so that tests read naturally. `<`, `>`, `&` and quotes stay escaped.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).replace("&#x2F;", "/")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").to_string()
    }
}

/// A request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// What the receiver does with a request.
#[derive(Clone)]
pub enum Reply {
    Status(u16),
    WithHeaders(u16, Vec<(String, String)>),
    Body(u16, String),
    /// Accept the request and never answer.
    Hang,
}

type Script = dyn Fn(usize, &Received) -> Reply + Send + Sync;

/// A loopback HTTP/1.1 receiver that records every request and answers per a script
/// (called with the 0-based request number).
pub struct Receiver {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start(script: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) -> Receiver {
        Receiver::start_on("127.0.0.1", script)
    }

    /// A receiver listening on `addr` (`0.0.0.0` for every interface, as for test hosts in
    /// network namespaces).
    pub fn start_on(addr: &str, script: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind((addr, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (r, c, s) = (requests.clone(), count.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (r, c, script) = (r.clone(), c.clone(), script.clone());
                std::thread::spawn(move || serve_conn(stream, &r, &c, &*script));
            }
        });
        Receiver { port, requests, stop }
    }

    pub fn always(status: u16) -> Receiver {
        Receiver::start(move |_, _| Reply::Status(status))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
    }
}

fn serve_conn(stream: TcpStream, log: &Mutex<Vec<Received>>, count: &AtomicUsize, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        // The request line's path is recorded as the pseudo-header `:path`.
        let mut headers = vec![(":path".to_string(), line.split(' ').nth(1).unwrap_or("").to_string())];
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = Received { headers, body, at: std::time::Instant::now() };
        let n = count.fetch_add(1, Ordering::SeqCst);
        log.lock().unwrap().push(req.clone());
        let (status, extra, body) = match script(n, &req) {
            Reply::Status(s) => (s, vec![], "ok".to_string()),
            Reply::WithHeaders(s, h) => (s, h, "ok".to_string()),
            Reply::Body(s, b) => (s, vec![], b),
            Reply::Hang => {
                std::thread::sleep(Duration::from_secs(3600));
                return;
            }
        };
        let mut resp = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
        for (k, v) in extra {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        resp.push_str(&body);
        if writer.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A browser session against the CGI: keeps cookies, reads the CSRF token from each page and
/// posts forms with it, as a person's browser would.
pub struct Browser<'a> {
    pub env: &'a Env,
    pub remote_user: Option<String>,
    pub cookies: BTreeMap<String, String>,
    pub csrf: Option<String>,
    pub https: bool,
    /// Request headers sent with every request (e.g. `Sec-Fetch-Dest: iframe` for a frame).
    pub headers: Vec<(String, String)>,
    /// A browser that keeps no cookies (one blocking third-party cookies, inside a frame).
    pub block_cookies: bool,
    /// Every `Set-Cookie` of the last response, whole.
    pub set_cookies: Vec<String>,
}

impl<'a> Browser<'a> {
    pub fn new(env: &'a Env, remote_user: Option<&str>) -> Browser<'a> {
        Browser {
            env,
            remote_user: remote_user.map(String::from),
            cookies: BTreeMap::new(),
            csrf: None,
            https: false,
            headers: Vec::new(),
            block_cookies: false,
            set_cookies: Vec::new(),
        }
    }

    fn request(&mut self, method: &str, path_and_query: &str, body: &[u8], content_type: Option<&str>) -> CgiResponse {
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let jar = jar.join("; ");
        let mut headers = Vec::new();
        if let Some(ct) = content_type {
            headers.push(("Content-Type", ct));
        }
        if !jar.is_empty() {
            headers.push(("Cookie", jar.as_str()));
        }
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut extra = Vec::new();
        if let Some(u) = &self.remote_user {
            extra.push(("REMOTE_USER", u.as_str()));
        }
        if self.https {
            extra.push(("HTTPS", "on"));
        }
        let r = self.env.run_cgi(method, path_and_query, &headers, &extra, body, true);
        self.set_cookies =
            r.headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.clone()).collect();
        for (k, v) in &r.headers {
            if k.eq_ignore_ascii_case("set-cookie") && !self.block_cookies {
                let pair = v.split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
        if let Some(token) = hidden_csrf(&r.text()) {
            self.csrf = Some(token);
        }
        r
    }

    pub fn get(&mut self, path: &str) -> CgiResponse {
        self.request("GET", path, b"", None)
    }

    /// Posts a form with the CSRF token of the last page seen.
    pub fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> CgiResponse {
        let csrf = self.csrf.clone().unwrap_or_default();
        let mut pairs: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
        pairs.extend_from_slice(fields);
        self.post_raw(path, &pairs)
    }

    /// Posts exactly these fields (no CSRF token added).
    pub fn post_raw(&mut self, path: &str, fields: &[(&str, &str)]) -> CgiResponse {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
        self.request("POST", path, body.as_bytes(), Some("application/x-www-form-urlencoded"))
    }
}

fn hidden_csrf(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")?;
    let rest = &html[at + 19..];
    Some(rest[..rest.find('"')?].to_string())
}

/// The API through the CGI with a Bearer token.
pub fn api(env: &Env, token: &str, method: &str, path_and_query: &str, body: Option<&str>) -> CgiResponse {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    env.run_cgi(method, path_and_query, &headers, &[], body.unwrap_or("").as_bytes(), true)
}

/// Whether an outside program can be run. Outside CI a missing one skips the test that needs it
/// (with a line saying what to install); under `CI=true` it fails the test, as CI must have it.
pub fn have(program: &str, install_hint: &str) -> bool {
    let found = std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is missing: CI must install it ({install_hint})"
        );
        eprintln!("skipping: {program} is not installed ({install_hint})");
    }
    found
}

/// A raw TCP receiver: `respond` gets each accepted connection.
pub fn raw_receiver(respond: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || respond(stream));
        }
    });
    port
}

pub fn read_request(stream: &mut TcpStream) {
    let mut buf = [0u8; 65536];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.read(&mut buf);
}

/// A pgbouncer started by a test from `ini` (with `userlist` beside it) in its own temporary
/// directory, run as the user `postgres` when the test runs as root (pgbouncer refuses root);
/// stopped by its pidfile when dropped (runuser does not pass a kill on).
pub struct Bouncer {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: std::process::Child,
}

impl Bouncer {
    /// `ini` may name `{dir}` (the directory, for auth_file) and `{port}` (the port it listens
    /// on); the logfile, pidfile and no unix socket are added.
    pub fn start(ini: &str, userlist: &str) -> Bouncer {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let d = dir.path().display().to_string();
        let ini = ini.replace("{dir}", &d).replace("{port}", &port.to_string())
            + &format!("unix_socket_dir =\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n");
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.path().join("userlist.txt"), userlist).unwrap();
        let mut c = if unsafe { libc::geteuid() } == 0 {
            for f in ["", "pgbouncer.ini", "userlist.txt"] {
                Command::new("chown").arg("postgres").arg(dir.path().join(f)).status().unwrap();
            }
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbouncer"]);
            c
        } else {
            Command::new("pgbouncer")
        };
        let child =
            c.arg(dir.path().join("pgbouncer.ini")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let b = Bouncer { dir, port, child };
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok()),
            "pgbouncer did not start: {}",
            b.log()
        );
        b
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let pidfile = self.dir.path().join("pgbouncer.pid");
        if let Some(pid) = std::fs::read_to_string(pidfile).ok().and_then(|p| p.trim().parse().ok()) {
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command with `body` on its stdin, written from another thread (a CGI may answer
/// before reading everything), and returns its output.
pub fn run_with_stdin(mut c: Command, body: &[u8]) -> Output {
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// A small deterministic generator (xorshift64*), so a randomised run can be replayed from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
