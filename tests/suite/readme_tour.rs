//! The README's five-minute tour, run as written (with the placeholders a reader fills in —
//! the secret, the port, a delivery id — filled in here). Needs python3 for the receiver.

use crate::common;

use std::path::Path;
use std::process::Command;

use crate::common::bin_path;

#[test]
fn the_readme_tour_runs_as_written() {
    if !common::have("python3", "the tour's receiver is a Python script") {
        return;
    }
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let tour = readme.split("## A five-minute tour").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut blocks = Vec::new();
    let mut rest = tour;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").unwrap();
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    assert!(blocks.len() >= 5, "the tour has its command blocks");

    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let bin_dir = bin_path("webhooks").parent().unwrap().to_path_buf();
    let rx_log = dir.path().join("receiver.log");
    let mut script = String::from("set -euo pipefail\n");
    for line in blocks.join("\n").replace("\\\n", " ").lines() {
        let line = line.trim();
        let code = line.split("  #").next().unwrap().trim();
        if code.is_empty() || code == "cargo build --release" {
            continue; // the test already built the binaries
        }
        let code = code
            .replace("/tmp/webhooks-tour", &dir.path().join("tour").to_string_lossy())
            .replace("9000", &port.to_string())
            .replace("$PWD/target/release", &bin_dir.to_string_lossy())
            .replace("REPO=\"$PWD\"", &format!("REPO=\"{}\"", env!("CARGO_MANIFEST_DIR")));
        if code.starts_with("webhooks endpoint add") {
            script.push_str(&format!("SECRET=$({code} | grep -o 'whsec_[^ ]*')\n"));
        } else if code.starts_with("python3") && code.contains("receiver.py") {
            let code = code.replace("whsec_…", "$SECRET");
            script.push_str(&format!("{code} > '{}' 2>&1 &\nRX=$!\ntrap 'kill $RX' EXIT\nsleep 1\n", rx_log.display()));
        } else if code.contains("dlv_…") {
            script.push_str("DLV=$(webhooks deliveries --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0][\"id\"])')\n");
            script.push_str(&format!("{}\n", code.replace("dlv_…", "$DLV")));
        } else {
            assert!(!code.contains('…'), "a placeholder the test does not fill: {code}");
            script.push_str(&format!("{code}\n"));
        }
    }
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tour failed:\n{script}\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("sent 2 (succeeded 2"), "{stdout}");
    let log = std::fs::read_to_string(&rx_log).unwrap();
    assert_eq!(log.matches("VERIFIED").count(), 2, "{log}");
    assert!(log.contains("email.forwarded") && log.contains("email.received"));
}
