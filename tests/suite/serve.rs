//! `webhooks serve` on a fresh directory: initialises itself, runs the CGI per request as a real
//! process, and dispatches on its own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{bin_path, wait_until, Receiver};

struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http(port: u16, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Starts `webhooks serve` in `dir` with a clean environment plus `vars`; returns the server,
/// its port and what it printed up to its banner's last line.
fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> (Server, u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(bin_path("webhooks"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--dispatch-every", "1s"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let server = Server(child);
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("the dispatcher runs every") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (server, port, seen)
}

/// Runs `webhooks ARGS --json` in `dir` with a clean environment plus `vars`.
fn cli(dir: &std::path::Path, vars: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin_path("webhooks"))
        .args(args)
        .arg("--json")
        .env_clear()
        .envs(vars.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn serve_initialises_runs_the_cgi_and_dispatches() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port, seen) = start(dir.path(), &[]);
    assert!(seen.contains("first run: initialising"), "{seen}");
    assert!(seen.contains(&format!("http://127.0.0.1:{port}/")), "{seen}");
    assert!(dir.path().join(".env").is_file());
    assert!(dir.path().join("var/webhooks.db").is_file());
    assert!(seen.contains("receivers on this machine (http://127.0.0.1:PORT/…) may be used"), "{seen}");

    // The banner's command works as printed, from where serve was started (cargo's binary is
    // not on PATH).
    let command = seen.lines().find_map(|l| l.strip_prefix("create an API token with: ")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} --json"))
        .env_clear()
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{command}: {}", String::from_utf8_lossy(&out.stderr));
    let token: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = token["token"].as_str().unwrap().to_string();

    // A receiver on this machine is accepted with no configuration: the first run allowed it.
    let rx = Receiver::always(200);
    cli(dir.path(), &[], &["endpoint", "add", "--user", "alice", "--url", &rx.url("/hook")]);

    let body = r#"{"type":"usage.threshold","user":"alice","data":{"metric":"messages","used":80,"limit":100,"threshold_percent":80,"period":"2026-11"}}"#;
    let req = format!(
        "POST /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (status, resp) = http(port, &req);
    assert_eq!(status, 202, "{resp}");
    assert!(resp.contains("evt_"));

    assert!(wait_until(Duration::from_secs(15), || rx.len() == 1), "the dispatcher delivered");
    assert_eq!(rx.received()[0].json()["type"], "usage.threshold");

    let (status, page) = http(port, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    assert!(page.contains("<h1>Dashboard</h1>") && page.contains("<span>dev</span>"), "{page}");
    let (status, _) = http(port, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 405);
}

#[test]
fn serve_names_the_setting_for_local_receivers_and_its_dispatcher_sees_env_edits() {
    // An existing .env from `webhooks init`, which allows no local receiver.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin_path("webhooks")).arg("init").env_clear().current_dir(dir.path()).output().unwrap();
    assert!(out.status.success());
    let (_server, _port, seen) = start(dir.path(), &[]);
    assert!(!seen.contains("first run"), "{seen}");
    let env_file = dir.path().join(".env");
    let hint = format!(
        "receivers on this machine are refused: to use one, add WEBHOOKS_ALLOWED_NETWORKS=127.0.0.0/8,::1/128 to {}",
        env_file.display()
    );
    assert!(seen.contains(&hint), "{seen}");

    // An endpoint made while allowed (by the process environment of this one command) ...
    let rx = Receiver::always(200);
    let allow = [("WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.1/32")];
    let ep = cli(dir.path(), &allow, &["endpoint", "add", "--user", "alice", "--url", &rx.url("/hook")]);
    let ep = ep["id"].as_str().unwrap().to_string();
    cli(
        dir.path(),
        &[],
        &[
            "emit",
            "--user",
            "alice",
            "--type",
            "usage.threshold",
            "--data",
            r#"{"metric":"messages","used":80,"limit":100,"threshold_percent":80,"period":"2026-11"}"#,
        ],
    );
    // ... is refused by serve's dispatcher under the .env as it is,
    let blocked = || {
        let list = cli(dir.path(), &[], &["deliveries", "--endpoint", &ep]);
        list[0]["last_error_code"] == "E_BLOCKED_ADDRESS"
    };
    assert!(wait_until(Duration::from_secs(15), blocked), "refused while the .env does not allow it");
    assert_eq!(rx.len(), 0);
    // and delivered once the .env allows it, without a restart.
    let mut text = std::fs::read_to_string(&env_file).unwrap();
    text.push_str("WEBHOOKS_ALLOWED_NETWORKS=127.0.0.0/8\n");
    std::fs::write(&env_file, text).unwrap();
    let dlv = cli(dir.path(), &[], &["deliveries", "--endpoint", &ep])[0]["id"].as_str().unwrap().to_string();
    cli(dir.path(), &[], &["retry", &dlv]);
    assert!(wait_until(Duration::from_secs(15), || rx.len() == 1), "delivered after the edit");
}

/// Peak resident memory of a process, in bytes (Linux: VmHWM).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// A chunked body far over the limit is answered 413 while it is read, never held whole: the
/// server's memory stays far below the body's size (it held all 200 MB before answering).
#[test]
fn a_huge_chunked_body_is_refused_without_being_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let (server, port, _) = start(dir.path(), &[]);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(
        b"POST /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0usize;
    // 128 MiB, or until the server stops reading (it answered and closed).
    for _ in 0..128 {
        let head = format!("{:x}\r\n", chunk.len());
        if s.write_all(head.as_bytes()).and_then(|()| s.write_all(&chunk)).and_then(|()| s.write_all(b"\r\n")).is_err()
        {
            break;
        }
        sent += chunk.len();
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{}", &text[..text.len().min(300)]);
    let peak = peak_rss(server.0.id());
    assert!(sent >= 16 << 20, "the server read on past the limit before answering ({sent} bytes)");
    assert!(peak < 64 << 20, "serve held {peak} bytes for a {sent}-byte body");
}
