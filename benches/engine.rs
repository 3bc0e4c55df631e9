//! Engine benchmarks: every figure beside a baseline measured in the same run, as a ratio,
//! because these machines are shared and noisy.
//!
//!     cargo bench --bench engine            # prints the table
//!     BENCH_DELIVERIES=20000 cargo bench --bench engine
//!
//! 1. one-event CGI intake (process start to exit) vs a trivial Rust CGI binary;
//! 2. a 1,000-event batch intake through the CGI vs raw SQLite inserts of the same rows;
//! 3. `webhooks dispatch` draining a backlog to a fast loopback receiver (a separate process)
//!    at default concurrency vs a plain ureq client posting the same signed bodies with the same
//!    number of threads.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const EVENT: &str = r#"{"type":"email.forwarded","user":"alice","data":{"alias":"hello@alice.example","message_id":"<CAF1234@mail.example.net>","destinations":["alice@example.org"],"size_bytes":48213}}"#;

fn main() {
    if let Ok(port) = std::env::var("QSM_BENCH_RECEIVER") {
        return receiver(port.parse().unwrap());
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return; // `cargo test --benches` lists; nothing to list.
    }
    let deliveries: usize = std::env::var("BENCH_DELIVERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let webhooks = PathBuf::from(env!("CARGO_BIN_EXE_webhooks"));
    let cgi = PathBuf::from(env!("CARGO_BIN_EXE_webhooks-cgi"));
    let work = tempfile::tempdir().unwrap();
    let trivial = build_trivial_cgi(work.path());
    println!("QSM Webhooks engine benchmarks — {} cores, {}", cores(), machine());
    println!("{:<58} {:>14} {:>14} {:>8}", "measure", "product", "baseline", "ratio");

    // BENCH_ONLY=cgi|dispatch runs one part.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();

    // 1. One-event CGI intake.
    if only != "dispatch" {
        cgi_benchmarks(&webhooks, &cgi, &trivial, work.path());
    }
    if only == "cgi" {
        return;
    }
    if only != "dispatch" {
        page_benchmarks(&webhooks, &cgi, &trivial);
    }
    if only == "pages" {
        return;
    }
    dispatch_benchmark(&webhooks, &cgi, deliveries);
}

/// The endpoints page with 50 endpoints and the delivery log with 100,000 deliveries.
fn page_benchmarks(webhooks: &Path, cgi: &Path, trivial: &Path) {
    let install = Install::new(webhooks);
    for i in 0..50 {
        install.run(&["endpoint", "add", "--user", "alice", "--url", &format!("https://example.com/hook/{i}")]);
    }
    let token = install.token();
    let batch = format!("[{}]", vec![EVENT; 1000].join(","));
    for _ in 0..2 {
        cgi_request(cgi, &install, &token, batch.as_bytes());
    }
    let count: i64 = rusqlite::Connection::open(install.dir.path().join("var/webhooks.db"))
        .unwrap()
        .query_row("SELECT count(*) FROM deliveries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 100_000);
    for (name, path) in [("endpoints page, 50 endpoints", "/endpoints"), ("delivery log page, 100,000 deliveries", "/deliveries")] {
        let (mut ours, mut base, mut rss) = (Vec::new(), Vec::new(), 0);
        for _ in 0..30 {
            let (t, r) = page_request(cgi, &install, path);
            ours.push(t);
            rss = rss.max(r);
            base.push(page_request(trivial, &install, path).0);
        }
        row(&format!("{name}, median wall (ms)"), median(&mut ours) * 1e3, median(&mut base) * 1e3, "vs trivial Rust CGI");
        row(&format!("{name}, peak RSS (MiB)"), rss as f64 / 1024.0, f64::NAN, "");
    }
}

fn page_request(exe: &Path, install: &Install, path: &str) -> (f64, i64) {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .env_clear()
        .env("WEBHOOKS_ENV", install.dir.path().join(".env"))
        .env("REQUEST_METHOD", "GET")
        .env("PATH_INFO", path)
        .env("REMOTE_USER", "alice")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let usage = wait4(child.id() as i32);
    std::mem::forget(child);
    assert!(out.starts_with(b"Status: 200") || out.starts_with(b"Status: 202"), "{}", String::from_utf8_lossy(&out[..out.len().min(300)]));
    (started.elapsed().as_secs_f64(), usage.max_rss_kib)
}

fn cgi_benchmarks(webhooks: &Path, cgi: &Path, trivial: &Path, work: &Path) {
    let install = Install::new(webhooks);
    install.run(&["endpoint", "add", "--user", "alice", "--url", "https://example.com/hook"]);
    let token = install.token();
    let runs = 200;
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut ours_rss = 0;
    let mut base_rss = 0;
    for _ in 0..runs {
        let (t, rss) = cgi_request(cgi, &install, &token, EVENT.as_bytes());
        ours.push(t);
        ours_rss = ours_rss.max(rss);
        let (t, rss) = cgi_request(trivial, &install, &token, EVENT.as_bytes());
        base.push(t);
        base_rss = base_rss.max(rss);
    }
    let (o, b) = (median(&mut ours), median(&mut base));
    row("one-event CGI intake, median wall (ms)", o * 1e3, b * 1e3, "vs trivial Rust CGI");
    row("one-event CGI intake, peak RSS (MiB)", ours_rss as f64 / 1024.0, base_rss as f64 / 1024.0, "");

    // 2. 1,000-event batch intake vs raw SQLite inserts of the same rows.
    let batch = format!("[{}]", vec![EVENT; 1000].join(","));
    let mut ours = Vec::new();
    for _ in 0..5 {
        let (t, _) = cgi_request(cgi, &install, &token, batch.as_bytes());
        ours.push(t);
    }
    let raw = raw_inserts(work, 1000, 5);
    let o = median(&mut ours);
    row("1,000-event batch intake (events/s)", 1000.0 / o, 1000.0 / raw, "vs raw SQLite inserts");

}

/// 3. Dispatcher throughput vs a plain ureq client.
fn dispatch_benchmark(webhooks: &Path, cgi: &Path, deliveries: usize) {
    let port = free_port();
    let mut rx = Command::new(std::env::current_exe().unwrap())
        .env("QSM_BENCH_RECEIVER", port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    wait_port(port);
    let d = Install::new(webhooks);
    let users = 10;
    for u in 0..users {
        d.run(&["endpoint", "add", "--user", &format!("u{u}"), "--url", &format!("http://127.0.0.1:{port}/hook")]);
    }
    let token = d.token();
    let per_batch = 1000;
    let mut queued = 0;
    while queued < deliveries {
        let n = per_batch.min(deliveries - queued);
        let body = format!(
            "[{}]",
            (0..n).map(|i| EVENT.replace("alice", &format!("u{}", (queued + i) % users))).collect::<Vec<_>>().join(",")
        );
        let (_, _) = cgi_request(cgi, &d, &token, body.as_bytes());
        queued += n;
    }
    let started = Instant::now();
    let (status, usage) = run_measured(d.command(&["dispatch", "--json"]));
    let wall = started.elapsed().as_secs_f64();
    let summary: serde_json::Value = serde_json::from_slice(&status).unwrap();
    let sent = summary["succeeded"].as_u64().unwrap() as usize;
    assert_eq!(sent, deliveries, "every delivery sent in one run: {summary}");
    let dispatch_cpu = usage.cpu;

    let (base_wall, base_cpu) = plain_ureq(port, deliveries, 8);
    row(
        &format!("dispatcher, {deliveries} deliveries, concurrency 8 (deliveries/s)"),
        deliveries as f64 / wall,
        deliveries as f64 / base_wall,
        "vs plain ureq, 8 threads",
    );
    row("  CPU-s per 1,000 deliveries", dispatch_cpu / deliveries as f64 * 1000.0, base_cpu / deliveries as f64 * 1000.0, "");
    row("  dispatcher peak RSS (MiB)", usage.max_rss_kib as f64 / 1024.0, f64::NAN, "");
    let _ = rx.kill();
    let _ = rx.wait();
}

fn row(name: &str, ours: f64, base: f64, note: &str) {
    let ratio = if base.is_nan() { String::from("-") } else { format!("{:.2}", ours / base) };
    let b = if base.is_nan() { String::from("-") } else { format!("{base:.2}") };
    println!("{name:<58} {ours:>14.2} {b:>14} {ratio:>8}  {note}");
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn machine() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default()
}

struct Install {
    dir: tempfile::TempDir,
    exe: PathBuf,
}

impl Install {
    fn new(exe: &Path) -> Install {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".env"),
            format!("WEBHOOKS_SECRET_KEY={MASTER_KEY}\nWEBHOOKS_ALLOWED_NETWORKS=127.0.0.1/32\nWEBHOOKS_MAX_BODY=1MiB\nWEBHOOKS_MAX_ENDPOINTS_PER_USER=100\n"),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("var")).unwrap();
        let i = Install { dir, exe: exe.to_path_buf() };
        i.run(&["init"]);
        i
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args).env_clear().env("WEBHOOKS_ENV", self.dir.path().join(".env")).current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn token(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.run(&["token", "create", "--app", "--json"])).unwrap();
        v["token"].as_str().unwrap().to_string()
    }
}

struct Usage {
    cpu: f64,
    max_rss_kib: i64,
}

/// Runs a command to completion; returns stdout and its own resource usage (wait4).
fn run_measured(mut cmd: Command) -> (Vec<u8>, Usage) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let usage = wait4(child.id() as i32);
    std::mem::forget(child);
    (out, usage)
}

fn wait4(pid: i32) -> Usage {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Usage { cpu: secs(ru.ru_utime) + secs(ru.ru_stime), max_rss_kib: ru.ru_maxrss }
}

/// One CGI request as Apache would run it: wall time from spawn to exit, and peak RSS (KiB).
fn cgi_request(exe: &Path, install: &Install, token: &str, body: &[u8]) -> (f64, i64) {
    let started = Instant::now();
    let mut child = Command::new(exe)
        .env_clear()
        .env("WEBHOOKS_ENV", install.dir.path().join(".env"))
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REQUEST_METHOD", "POST")
        .env("PATH_INFO", "/api/v1/events")
        .env("CONTENT_TYPE", "application/json")
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_AUTHORIZATION", format!("Bearer {token}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let usage = wait4(child.id() as i32);
    std::mem::forget(child);
    let t = started.elapsed().as_secs_f64();
    assert!(out.starts_with(b"Status: 20"), "{}", String::from_utf8_lossy(&out));
    (t, usage.max_rss_kib)
}

/// A trivial Rust CGI: reads its body, answers 200. Compiled here with the same rustc.
fn build_trivial_cgi(dir: &Path) -> PathBuf {
    let src = dir.join("trivial_cgi.rs");
    std::fs::write(
        &src,
        r#"use std::io::{Read, Write};
fn main() {
    let mut body = Vec::new();
    std::io::stdin().read_to_end(&mut body).unwrap();
    let out = format!("Status: 202 Accepted\r\nContent-Type: application/json\r\n\r\n{{\"bytes\":{}}}", body.len());
    std::io::stdout().write_all(out.as_bytes()).unwrap();
}"#,
    )
    .unwrap();
    let exe = dir.join("trivial_cgi");
    let status = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["-O", "--edition", "2021", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .unwrap();
    assert!(status.success());
    exe
}

/// The same rows intake writes (event + one delivery each), inserted straight with rusqlite in
/// one transaction over the product's schema. Returns the median seconds per 1,000.
fn raw_inserts(dir: &Path, n: usize, rounds: usize) -> f64 {
    let path = dir.join("raw.db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(include_str!("../sql/001_initial.sql")).unwrap();
    conn.execute("INSERT INTO users (id, name, created_at) VALUES (1, 'alice', 0)", []).unwrap();
    conn.execute("INSERT INTO endpoints (id, user_id, url, created_at, updated_at) VALUES ('ep', 1, 'x', 0, 0)", []).unwrap();
    let payload = EVENT.to_string();
    let mut times = Vec::new();
    for r in 0..rounds {
        let started = Instant::now();
        let tx = conn.transaction().unwrap();
        {
            let mut ev = tx.prepare("INSERT INTO events (id, user_id, type, request_hash, payload, created_at) VALUES (?1, 1, 'email.forwarded', 'h', ?2, 0)").unwrap();
            let mut dl = tx.prepare("INSERT INTO deliveries (id, event_id, endpoint_id, user_id, status, next_attempt_at, created_at) VALUES (?1, ?2, 'ep', 1, 'pending', 0, 0)").unwrap();
            for i in 0..n {
                let id = format!("evt_{r}_{i}");
                ev.execute(rusqlite::params![id, payload]).unwrap();
                dl.execute(rusqlite::params![format!("dlv_{r}_{i}"), id]).unwrap();
            }
        }
        tx.commit().unwrap();
        times.push(started.elapsed().as_secs_f64());
    }
    median(&mut times)
}

/// The baseline client: `threads` threads with one ureq agent posting signed bodies.
fn plain_ureq(port: u16, n: usize, threads: usize) -> (f64, f64) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let key = vec![7u8; 32];
    let body = format!(r#"{{"id":"evt_01JDZ6Q8T6Y3N5K0W2X4V7B9CD","type":"email.forwarded","schema_version":1,"created_at":"2026-11-22T23:11:57Z","user":"u1","data":{}}}"#, &EVENT[EVENT.find("\"data\":").unwrap() + 7..EVENT.len() - 1]);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = self_cpu();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (agent, next, body, key) = (agent.clone(), next.clone(), body.clone(), key.clone());
            s.spawn(move || {
                while next.fetch_add(1, Ordering::SeqCst) < n {
                    let ts = chrono::Utc::now().timestamp();
                    let mac = webhooks::signing::sign(&key, "evt_01JDZ6Q8T6Y3N5K0W2X4V7B9CD", ts, body.as_bytes());
                    let r = agent
                        .post(&format!("http://127.0.0.1:{port}/hook"))
                        .header("Content-Type", "application/json")
                        .header("X-QSM-Id", "evt_01JDZ6Q8T6Y3N5K0W2X4V7B9CD")
                        .header("X-QSM-Timestamp", ts.to_string())
                        .header("X-QSM-Signature", format!("v1={}", webhooks::signing::hex(&mac)))
                        .send(body.as_bytes())
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 200);
                    let mut buf = Vec::new();
                    let _ = r.into_body().as_reader().take(512).read_to_end(&mut buf);
                }
            });
        }
    });
    (started.elapsed().as_secs_f64(), self_cpu() - cpu_before)
}

fn self_cpu() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_port(port: u16) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("receiver did not start");
}

/// The fast receiver (its own process): HTTP/1.1 keep-alive, a thread per connection, answers
/// 200 "ok" to everything.
fn receiver(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            let mut line = String::new();
            loop {
                let mut len = 0usize;
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0; len];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                if writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").is_err() {
                    return;
                }
            }
        });
    }
}
