//! SSRF: hostile endpoint URLs and DNS answers. Every spelling of a non-public address is
//! refused at delivery with `E_BLOCKED_ADDRESS` (the check runs on the addresses the resolver
//! returned, which are the only ones connected to); address literals are refused already when
//! the endpoint is created, with a message naming the address.

use crate::common;

use std::net::{SocketAddr, ToSocketAddrs};

use crate::common::{Env, Receiver, Reply};
use webhooks::model::address::Policy;

/// Loopback in every spelling the URL parser accepts; `{p}` is the receiver's port, so a guard
/// that failed would show up as a request at the receiver.
const LOOPBACK: &[&str] = &[
    "http://127.0.0.1:{p}/",
    "http://127.1:{p}/",
    "http://127.0.1:{p}/",
    "http://2130706433:{p}/",
    "http://0x7f000001:{p}/",
    "http://0x7f.0x0.0x0.0x1:{p}/",
    "http://0x7F.1:{p}/",
    "http://017700000001:{p}/",
    "http://0177.0.0.01:{p}/",
    "http://127.000.000.001:{p}/",
    "http://localhost:{p}/",
    "http://LocalHost.:{p}/",
    "http://api.localhost:{p}/",
    "http://[::1]:{p}/",
    "http://[0:0:0:0:0:0:0:1]:{p}/",
    "http://[::ffff:127.0.0.1]:{p}/",
    "http://[::ffff:7f00:1]:{p}/",
    "http://[::127.0.0.1]:{p}/",
    "http://0.0.0.0:{p}/",
    "http://0:{p}/",
    "http://[::]:{p}/",
];

/// Private, link-local, CGNAT, ULA, mapped and other reserved ranges.
const PRIVATE: &[&str] = &[
    "http://10.0.0.1/",
    "http://10.255.255.255/",
    "http://172.16.0.1/",
    "http://172.31.255.254/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://0251.0376.0251.0376/",
    "http://100.64.0.1/",
    "http://100.127.255.254/",
    "http://192.0.0.170/",
    "http://198.18.0.1/",
    "http://192.0.2.10/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[fe80::1]/",
    "http://[febf::1]/",
    "http://[ff02::1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:10.0.0.1]/",
    "http://[::ffff:192.168.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[2001:db8::1]/",
    "https://[::ffff:a9fe:a9fe]:8443/",
];

fn urls(port: u16) -> Vec<String> {
    LOOPBACK.iter().map(|u| u.replace("{p}", &port.to_string())).chain(PRIVATE.iter().map(|u| u.to_string())).collect()
}

#[test]
fn address_literals_are_refused_at_creation_with_the_address_named() {
    let env = Env::new();
    let mut env = env;
    env.unset("WEBHOOKS_ALLOWED_NETWORKS");
    env.init();
    for url in urls(8080) {
        let out = env.run(&["endpoint", "add", "--user", "alice", "--url", &url]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url} was accepted");
        assert!(err.contains("a private or reserved address that deliveries may not reach"), "{url}: {err}");
        assert_eq!(err.lines().count(), 1, "one line naming what to fix: {err}");
    }
    assert_eq!(env.count("endpoints"), 0);
    // The API says the same, on the field.
    let token = env.user_token("alice");
    let r = common::api(&env, &token, "POST", "/api/v1/endpoints", Some(r#"{"url":"http://0xa9fea9fe/latest/"}"#));
    assert_eq!(r.status, 422, "{}", r.text());
    let detail = &r.json()["error"]["details"][0];
    assert_eq!(detail["path"], "$.url");
    assert!(detail["message"].as_str().unwrap().contains("169.254.169.254"), "{detail}");
    assert_eq!(env.count("endpoints"), 0);
}

#[test]
fn every_non_public_address_is_refused_at_delivery() {
    let mut env = Env::new();
    let rx = Receiver::always(200);
    // Created while the operator allowed everything (or with an older, laxer version)...
    env.set("WEBHOOKS_ALLOWED_NETWORKS", "0.0.0.0/0,::/0").set("WEBHOOKS_MAX_ENDPOINTS_PER_USER", "1000");
    let mut by_endpoint = std::collections::BTreeMap::new();
    let mut names = vec![format!("http://localhost:{}/by-name", rx.port)];
    // ...plus this machine's own names that resolve only to non-public addresses: the check is
    // on what DNS answers, not on how the name looks.
    if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
        let host = host.trim().to_string();
        let resolved: Vec<SocketAddr> = (host.as_str(), 80).to_socket_addrs().map(|a| a.collect()).unwrap_or_default();
        if !host.is_empty()
            && !resolved.is_empty()
            && resolved.iter().all(|a| !webhooks::model::address::is_public(a.ip()))
        {
            names.push(format!("http://{host}:{}/by-hostname", rx.port));
        }
    }
    for url in urls(rx.port).into_iter().chain(names) {
        let (id, _) = env.endpoint("alice", &url, "");
        by_endpoint.insert(id, url);
    }
    // ...then the allowance is removed: every delivery must be refused before connecting.
    env.unset("WEBHOOKS_ALLOWED_NETWORKS");
    env.set("WEBHOOKS_REQUEST_TIMEOUT", "1s").set("WEBHOOKS_CONCURRENCY_PER_USER", "8");
    env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<1@x>","size_bytes":1}"#);
    let s = env.dispatch();
    assert_eq!(s["sent"].as_u64().unwrap() as usize, by_endpoint.len(), "{s}");
    for d in env.deliveries() {
        let url = &by_endpoint[d["endpoint_id"].as_str().unwrap()];
        assert_eq!(d["last_error_code"], "E_BLOCKED_ADDRESS", "{url}: {d}");
        assert!(d["last_error"].as_str().unwrap().contains("not a public address"), "{url}: {d}");
        assert!(d["last_status_code"].is_null(), "{url}: no request was made");
    }
    assert_eq!(rx.len(), 0, "nothing reached the loopback receiver");
    eprintln!(
        "ssrf figures: {} hostile URLs refused at creation, {} at delivery",
        LOOPBACK.len() + PRIVATE.len(),
        by_endpoint.len()
    );
}

#[test]
fn a_redirect_to_a_private_address_is_refused_and_never_followed() {
    let env = Env::new();
    let rx = Receiver::start(|n, _| {
        let to = [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::ffff:a9fe:a9fe]/admin",
            "//10.0.0.1/x",
            "https://example.com/moved",
        ][n % 4];
        Reply::WithHeaders(302, vec![("Location".into(), to.into())])
    });
    env.endpoint("alice", &rx.url("/"), "");
    for i in 0..4 {
        env.emit("alice", "email.received", &format!(r#"{{"alias":"a@x","message_id":"<{i}@x>","size_bytes":1}}"#));
        env.dispatch();
    }
    let mut ds = env.deliveries();
    ds.sort_by_key(|d| d["event_id"].as_str().unwrap().to_string());
    let codes: Vec<&str> = ds.iter().map(|d| d["last_error_code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["E_BLOCKED_ADDRESS", "E_BLOCKED_ADDRESS", "E_BLOCKED_ADDRESS", "E_REDIRECT"]);
    assert!(ds[0]["last_error"].as_str().unwrap().contains("169.254.169.254 is not a public address"), "{}", ds[0]);
    assert_eq!(rx.len(), 4, "one request each; no redirect was followed");
}

/// The resolver's decision on hostile DNS answers: only permitted addresses are kept (and only
/// those are connected to); an answer with none left is refused.
#[test]
fn hostile_dns_answers_leave_only_public_addresses() {
    let sa = |s: &str| -> SocketAddr { s.parse().unwrap() };
    let policy = Policy::default();
    let refused: &[&[&str]] = &[
        &["10.0.0.5:443"],
        &["169.254.169.254:80"],
        &["127.0.0.1:443", "[::1]:443"],
        &["[::ffff:169.254.169.254]:80"],
        &["[::ffff:10.1.2.3]:443", "192.168.0.1:443"],
        &["[fd00::1]:443", "[fe80::1]:443"],
        &["100.100.100.200:80"],
        &["[64:ff9b::7f00:1]:80"],
        &["0.0.0.0:80"],
        &[],
    ];
    for answer in refused {
        let addrs: Vec<SocketAddr> = answer.iter().map(|s| sa(s)).collect();
        let err = policy.filter(addrs.clone()).expect_err(&format!("{answer:?} was let through"));
        assert_eq!(err.0, addrs.iter().map(SocketAddr::ip).collect::<Vec<_>>());
    }
    // A mixed answer (rebinding-style) keeps only the public address: the private one is never
    // connected to, whatever order the resolver gave.
    let kept = policy
        .filter(vec![
            sa("127.0.0.1:443"),
            sa("93.184.215.14:443"),
            sa("[::ffff:10.0.0.1]:443"),
            sa("[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443"),
        ])
        .unwrap();
    assert_eq!(kept, vec![sa("93.184.215.14:443"), sa("[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443")]);
    // The operator's allowance opens exactly its range, in either address family's spelling.
    let allowed = Policy { allowed: vec!["10.20.0.0/16".parse().unwrap()] };
    assert!(allowed.filter(vec![sa("10.20.3.4:80")]).is_ok());
    assert!(allowed.filter(vec![sa("[::ffff:10.20.3.4]:80")]).is_ok());
    assert!(allowed.filter(vec![sa("10.21.0.1:80")]).is_err());
}
