//! The verification snippets on /docs/verify, run by their real runtimes against a real
//! delivery: each accepts it and rejects a tampered copy. (PHP is run by .ci/run's external
//! suite once installed; Python and Node.js are on every development machine.)

use crate::common;

use std::process::Command;

use crate::common::{Env, Receiver};

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
    let out =
        Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program} is needed for this test: {e}"));
    assert!(out.status.success(), "{program}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_snippet_verifies_a_real_delivery() {
    if !common::have("python3", "apt-get install python3") {
        return;
    }
    let (secret, headers, body) = delivery("X-QSM");
    let [_, (_, python), _] = webhooks::web::pages::verify::snippets("X-QSM");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &body).unwrap();
    let headers_json =
        serde_json::to_string(&headers.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()).unwrap();
    let script = format!(
        "{python}\nimport json, sys\nfrom email.message import Message\nh = Message()\nfor k, v in json.loads(sys.argv[1]).items():\n    h[k] = v\nb = open(sys.argv[2], 'rb').read()\nprint(verify(sys.argv[3], h, b), verify(sys.argv[3], h, b + b' '))\n"
    );
    let path = dir.path().join("v.py");
    std::fs::write(&path, script).unwrap();
    let out =
        run("python3", &[path.to_str().unwrap(), &headers_json, dir.path().join("body").to_str().unwrap(), &secret]);
    assert_eq!(out.trim(), "True False");
}

#[test]
fn node_snippet_verifies_a_real_delivery() {
    if !common::have("node", "apt-get install nodejs") {
        return;
    }
    let (secret, headers, body) = delivery("X-Acme");
    let [_, _, (_, node)] = webhooks::web::pages::verify::snippets("X-Acme");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &body).unwrap();
    // Node lowercases incoming header names, as its http module does.
    let lower: std::collections::BTreeMap<String, String> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
    let script = format!(
        "{node}\nconst fs = require('fs');\nconst h = JSON.parse(process.argv[2]);\nconst b = fs.readFileSync(process.argv[3]);\nconsole.log(verify(process.argv[4], h, b), verify(process.argv[4], h, Buffer.concat([b, Buffer.from(' ')])));\n"
    );
    let path = dir.path().join("v.js");
    std::fs::write(&path, script).unwrap();
    let out = run(
        "node",
        &[
            path.to_str().unwrap(),
            &serde_json::to_string(&lower).unwrap(),
            dir.path().join("body").to_str().unwrap(),
            &secret,
        ],
    );
    assert_eq!(out.trim(), "true false");
}

/// PHP runs as CGI (php-cgi), so that the snippet reads `php://input` and `$_SERVER` exactly as
/// under Apache. `.ci/run` installs php-cgi; elsewhere the test says how to get it.
#[test]
fn php_snippet_verifies_a_real_delivery() {
    let php = std::path::Path::new("/usr/bin/php-cgi");
    if !common::have("php-cgi", "apt-get install php-cgi") {
        return;
    }
    let (secret, headers, body) = delivery("X-QSM");
    let [(_, code), _, _] = webhooks::web::pages::verify::snippets("X-QSM");
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

/// docs/examples/verify.rb, run by Ruby (`.ci/run` installs it).
#[test]
fn ruby_example_verifies_a_real_delivery() {
    if !common::have("ruby", "apt-get install ruby") {
        return;
    }
    let (secret, headers, body) = delivery("X-QSM");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("body"), &body).unwrap();
    let lower: std::collections::BTreeMap<String, String> =
        headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/verify.rb");
    let script = format!(
        "require 'json'\nload '{}'\nh = JSON.parse(ARGV[0])\nb = File.binread(ARGV[1])\nputs [qsm_verify(ARGV[2], h, b), qsm_verify(ARGV[2], h, b + ' ')].join(' ')\n",
        example.display()
    );
    let path = dir.path().join("v.rb");
    std::fs::write(&path, script).unwrap();
    let out = run(
        "ruby",
        &[
            path.to_str().unwrap(),
            &serde_json::to_string(&lower).unwrap(),
            dir.path().join("body").to_str().unwrap(),
            &secret,
        ],
    );
    assert_eq!(out.trim(), "true false");
}

/// docs/examples/verify.go, built and run by Go (`.ci/run` installs golang-go).
#[test]
fn go_example_verifies_a_real_delivery() {
    if !common::have("go", "apt-get install golang-go") {
        return;
    }
    let (secret, headers, body) = delivery("X-QSM");
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("m");
    std::fs::create_dir_all(module.join("qsmwebhooks")).unwrap();
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples/verify.go"),
        module.join("qsmwebhooks/verify.go"),
    )
    .unwrap();
    std::fs::write(module.join("go.mod"), "module example.com/m\n\ngo 1.19\n").unwrap();
    std::fs::write(
        module.join("main.go"),
        r#"package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"

	"example.com/m/qsmwebhooks"
)

func main() {
	var pairs map[string]string
	json.Unmarshal([]byte(os.Args[1]), &pairs)
	h := http.Header{}
	for k, v := range pairs {
		h.Set(k, v)
	}
	body, _ := os.ReadFile(os.Args[2])
	fmt.Println(qsmwebhooks.Verify(os.Args[3], h, body), qsmwebhooks.Verify(os.Args[3], h, append(body, ' ')))
}
"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("body"), &body).unwrap();
    let pairs: std::collections::BTreeMap<String, String> = headers.into_iter().collect();
    let out = Command::new("go")
        .args(["run", "."])
        .arg(serde_json::to_string(&pairs).unwrap())
        .arg(dir.path().join("body"))
        .arg(&secret)
        .current_dir(&module)
        .env("HOME", dir.path())
        .env("GOCACHE", dir.path().join("gocache"))
        .env("GOPATH", dir.path().join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(out.status.success(), "go: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "true false");
}

/// The guide's copies of the PHP, Python and Node.js snippets are the ones the /docs/verify page
/// shows (and the tests above run), for the default header prefix.
#[test]
fn the_docs_examples_are_the_page_snippets() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples");
    for (name, code) in webhooks::web::pages::verify::snippets("X-QSM") {
        let file = match name {
            "php" => "verify.php",
            "python" => "verify.py",
            _ => "verify.js",
        };
        let on_disk =
            std::fs::read_to_string(dir.join(file)).unwrap_or_else(|_| panic!("docs/examples/{file} is missing"));
        assert_eq!(on_disk.trim_end(), code.trim_end(), "docs/examples/{file} differs from the page's {name} snippet");
    }
}
