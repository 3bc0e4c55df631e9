//! Resource bounds: one dispatcher run against every kind of hostile receiver at once — an
//! endless response body, endless headers, a receiver that accepts and never answers, one that
//! answers a byte at a time, one that never reads the request — beside a well-behaved one. The
//! run stays within the stated memory bound (docs/reliability.md: 64 MiB peak RSS) and its time
//! budget, stored response snippets stay capped, and the well-behaved user is fully served.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{Env, Receiver};

/// The dispatcher's stated memory bound (peak resident set size of one run).
const MEMORY_BOUND_KIB: i64 = 64 * 1024;

fn endless_body(mut s: TcpStream) {
    common::read_request(&mut s);
    let _ = s.write_all(b"HTTP/1.1 500 Oops\r\nContent-Type: text/plain\r\n\r\n");
    let chunk = vec![b'z'; 64 * 1024];
    while s.write_all(&chunk).is_ok() {}
}

fn endless_headers(mut s: TcpStream) {
    common::read_request(&mut s);
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
    let line = format!("X-Pad: {}\r\n", "h".repeat(1000));
    while s.write_all(line.as_bytes()).is_ok() {}
}

fn never_answers(mut s: TcpStream) {
    common::read_request(&mut s);
    std::thread::sleep(Duration::from_secs(600));
}

fn never_reads(s: TcpStream) {
    std::thread::sleep(Duration::from_secs(600));
    drop(s);
}

fn byte_at_a_time(mut s: TcpStream) {
    common::read_request(&mut s);
    for b in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".iter().chain(std::iter::repeat(&b'a')) {
        if s.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Peak RSS (KiB) and exit status of a child: the high-water mark of its own memory
/// (`VmHWM`, which starts afresh at exec), read every 5 ms until it exits. Not wait4's
/// `ru_maxrss`: a spawned child starts with its parent's high-water mark and keeps it across
/// exec, and the parent is this test binary, whose other tests may hold far more than the bound.
fn wait_with_peak_rss(child: &std::process::Child) -> (i64, i32) {
    let pid = child.id() as i32;
    let mut peak = 0;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok());
            peak = peak.max(hwm.unwrap_or(0));
        }
        let mut status = 0;
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            return (peak, status);
        }
        assert_eq!(done, 0, "waitpid failed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn hostile_receivers_cost_bounded_memory_time_and_storage() {
    let mut env = Env::new();
    // A large request body (each event 100 KiB of data) makes a never-reading receiver fill
    // its socket buffer, so the send itself blocks.
    env.set("WEBHOOKS_TIME_BUDGET", "8s")
        .set("WEBHOOKS_REQUEST_TIMEOUT", "2s")
        .set("WEBHOOKS_CONCURRENCY", "8")
        .set("WEBHOOKS_CONCURRENCY_PER_USER", "2")
        .set("WEBHOOKS_LOG_BODIES", "true");
    type Respond = fn(TcpStream);
    let hostile: [(&str, Respond); 5] = [
        ("endless-body", endless_body),
        ("endless-headers", endless_headers),
        ("never-answers", never_answers),
        ("never-reads", never_reads),
        ("byte-at-a-time", byte_at_a_time),
    ];
    for (name, f) in hostile {
        let port = common::raw_receiver(f);
        env.endpoint(name, &format!("http://127.0.0.1:{port}/"), "");
    }
    let good = Receiver::always(200);
    env.endpoint("good", &good.url("/"), "");
    let big = "m".repeat(100 * 1024);
    for user in ["endless-body", "endless-headers", "never-answers", "never-reads", "byte-at-a-time", "good"] {
        for i in 0..10 {
            env.emit(
                user,
                "email.received",
                &format!(r#"{{"alias":"a@x","message_id":"<{i}@{big}>","size_bytes":1}}"#),
            );
        }
    }

    let started = Instant::now();
    #[allow(clippy::zombie_processes)] // reaped by waitpid in wait_with_peak_rss
    let child =
        env.command("webhooks").args(["dispatch", "--json"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let (peak_kib, status) = wait_with_peak_rss(&child);
    assert!(peak_kib > 1024, "the peak was read: {peak_kib} KiB");
    let took = started.elapsed();
    let mut out = String::new();
    child.stdout.unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(status, 0, "{out}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();

    assert!(peak_kib <= MEMORY_BOUND_KIB, "peak RSS {peak_kib} KiB over the bound of {MEMORY_BOUND_KIB} KiB");
    // No request starts later than one timeout (2 s) before the budget's end (8 s), by the run's
    // own clock, so the run ends within its budget plus its recording and purge.
    let into = env.last_attempt_into_the_run_ms();
    assert!(into <= 8000 - 2000, "an attempt began {into} ms into the budget");
    assert_eq!(good.len(), 10, "the well-behaved user was served in full: {summary}");
    let db = env.db();
    let longest: i64 =
        db.query_row("SELECT coalesce(max(length(response_snippet)), 0) FROM attempts", [], |r| r.get(0)).unwrap();
    let longest_body: i64 =
        db.query_row("SELECT coalesce(max(length(response_body)), 0) FROM attempts", [], |r| r.get(0)).unwrap();
    assert!(longest <= 512, "snippet of {longest} bytes");
    assert!(longest_body <= 64 * 1024, "logged body of {longest_body} bytes");
    let codes: Vec<(String, String)> = db
        .prepare(
            "SELECT u.name, max(coalesce(a.error_code, '')) FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             JOIN users u ON u.id = d.user_id GROUP BY u.name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let code_of = |u: &str| codes.iter().find(|(n, _)| n == u).map(|(_, c)| c.as_str()).unwrap_or("(not tried)");
    assert_eq!(code_of("endless-body"), "E_HTTP_STATUS");
    assert_eq!(code_of("never-answers"), "E_TIMEOUT");
    assert_eq!(code_of("never-reads"), "E_TIMEOUT");
    assert_eq!(code_of("byte-at-a-time"), "E_TIMEOUT");
    assert!(["E_PROTOCOL", "E_TIMEOUT"].contains(&code_of("endless-headers")), "{codes:?}");
    let attempts: i64 = db.query_row("SELECT count(*) FROM attempts", [], |r| r.get(0)).unwrap();
    eprintln!(
        "resource bounds figures: {attempts} attempts against 5 hostile receivers + 1 good one in {:.2} s (budget 8 s, timeout 2 s); \
         peak RSS {:.1} MiB (bound {} MiB); longest snippet {longest} B, longest logged body {longest_body} B; failures {}",
        took.as_secs_f64(),
        peak_kib as f64 / 1024.0,
        MEMORY_BOUND_KIB / 1024,
        summary["failures"]
    );
}
