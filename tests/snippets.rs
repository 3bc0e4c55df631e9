//! The verification snippets on /docs/verify, run by their real runtimes against a real
//! delivery: each accepts it and rejects a tampered copy. (PHP is run by .ci/run's external
//! suite once installed; Python and Node.js are on every development machine.)

mod common;

use std::process::Command;

use common::{Env, Receiver};

fn delivery(prefix: &str) -> (String, Vec<(String, String)>, Vec<u8>) {
    let mut env = Env::new();
    env.set("WEBHOOKS_HEADER_PREFIX", prefix);
    let rx = Receiver::always(200);
    let (_, secret) = env.endpoint("alice", &rx.url("/"), "");
    env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<m>","size_bytes":1}"#);
    env.dispatch();
    let r = rx.received().remove(0);
    (secret, r.headers, r.body)
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} is needed for this test: {e}"));
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_snippet_verifies_a_real_delivery() {
    let (secret, headers, body) = delivery("X-QSM");
    let [_, (_, python), _] = webhooks::pages::snippets("X-QSM");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &body).unwrap();
    let headers_json = serde_json::to_string(&headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()).unwrap();
    let script = format!(
        "{python}\nimport json, sys\nfrom email.message import Message\nh = Message()\nfor k, v in json.loads(sys.argv[1]).items():\n    h[k] = v\nb = open(sys.argv[2], 'rb').read()\nprint(verify(sys.argv[3], h, b), verify(sys.argv[3], h, b + b' '))\n"
    );
    let path = dir.path().join("v.py");
    std::fs::write(&path, script).unwrap();
    let out = run("python3", &[path.to_str().unwrap(), &headers_json, dir.path().join("body").to_str().unwrap(), &secret]);
    assert_eq!(out.trim(), "True False");
}

#[test]
fn node_snippet_verifies_a_real_delivery() {
    let (secret, headers, body) = delivery("X-Acme");
    let [_, _, (_, node)] = webhooks::pages::snippets("X-Acme");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &body).unwrap();
    // Node lowercases incoming header names, as its http module does.
    let lower: std::collections::BTreeMap<String, String> = headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
    let script = format!(
        "{node}\nconst fs = require('fs');\nconst h = JSON.parse(process.argv[2]);\nconst b = fs.readFileSync(process.argv[3]);\nconsole.log(verify(process.argv[4], h, b), verify(process.argv[4], h, Buffer.concat([b, Buffer.from(' ')])));\n"
    );
    let path = dir.path().join("v.js");
    std::fs::write(&path, script).unwrap();
    let out = run("node", &[path.to_str().unwrap(), &serde_json::to_string(&lower).unwrap(), dir.path().join("body").to_str().unwrap(), &secret]);
    assert_eq!(out.trim(), "true false");
}

/// PHP runs as CGI (php-cgi), so that the snippet reads `php://input` and `$_SERVER` exactly as
/// under Apache. `.ci/run` installs php-cgi; elsewhere the test says how to get it.
#[test]
fn php_snippet_verifies_a_real_delivery() {
    let php = std::path::Path::new("/usr/bin/php-cgi");
    if !php.exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "php-cgi is missing: CI must install it");
        eprintln!("skipping: install php-cgi (apt-get install php-cgi) to run the PHP snippet");
        return;
    }
    let (secret, headers, body) = delivery("X-QSM");
    let [(_, code), _, _] = webhooks::pages::snippets("X-QSM");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hook.php");
    std::fs::write(&script, code).unwrap();
    let status_for = |body: &[u8]| {
        let mut c = Command::new(php);
        c.env_clear()
            .env("REDIRECT_STATUS", "200")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("REQUEST_METHOD", "POST")
            .env("SCRIPT_FILENAME", &script)
            .env("CONTENT_TYPE", "application/json")
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("WEBHOOK_SECRET", &secret);
        for (k, v) in &headers {
            c.env(format!("HTTP_{}", k.to_ascii_uppercase().replace('-', "_")), v);
        }
        let mut child = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(body).unwrap();
        let out = String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned();
        out.lines().find(|l| l.starts_with("Status:")).unwrap_or("Status: 200").to_string()
    };
    assert!(status_for(&body).starts_with("Status: 204"), "the real delivery is accepted");
    let mut tampered = body.clone();
    tampered.push(b' ');
    assert!(status_for(&tampered).starts_with("Status: 400"), "a tampered body is rejected");
}
