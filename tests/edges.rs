//! The edges a stranger or an outage reaches (issue 24, docs/reliability.md "Attacks and
//! faults"): bytes that are not UTF-8 anywhere in a request or the environment, a database that
//! is missing or unreachable, and what `/in/` answers then. Each test here failed on the code
//! before its fix.

mod common;

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStringExt;
use std::process::Stdio;

use common::*;
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
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let body = body.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
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
