//! `webhooks serve` on a fresh directory: initialises itself, runs the CGI per request as a real
//! process, and dispatches on its own.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{bin_path, wait_until, Receiver};

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

#[test]
fn serve_initialises_runs_the_cgi_and_dispatches() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(bin_path("webhooks"))
        .args(["serve", "--addr", &format!("127.0.0.1:{port}"), "--dispatch-every", "1s"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.1/32")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _server = Server(child);
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("QSM Webhooks (development) at") {
            break;
        }
    }
    assert!(seen.contains("first run: initialising"), "{seen}");
    assert!(seen.contains(&format!("http://127.0.0.1:{port}/")), "{seen}");
    std::thread::spawn(move || for _ in lines {});
    assert!(dir.path().join(".env").is_file());
    assert!(dir.path().join("var/webhooks.db").is_file());

    let cli = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(bin_path("webhooks"))
            .args(args)
            .arg("--json")
            .env_clear()
            .env("WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.1/32")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let rx = Receiver::always(200);
    cli(&["endpoint", "add", "--user", "alice", "--url", &rx.url("/hook")]);
    let token = cli(&["token", "create", "--app"])["token"].as_str().unwrap().to_string();

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
