//! Hostile input, generated: property tests over the CGI request parser and the whole router,
//! the query/form/cookie decoders, event validation and the signature-header parser.
//!
//! `cargo test` runs each with proptest's default 256 cases; CI runs them again with
//! `PROPTEST_CASES` raised for a bounded time (see `.ci/run`). A failure is shrunk and its seed
//! saved to `tests/fuzz.proptest-regressions`, which is committed: proptest replays every saved
//! case first on every run, so each crash found stays a regression test.

use crate::common;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use webhooks::web::error::HttpError;

use proptest::prelude::*;
use serde_json::{json, Value};

use webhooks::config::Config;
use webhooks::model::event;
use webhooks::model::inbound;
use webhooks::model::principal::Principal;
use webhooks::model::schema;
use webhooks::outbound::signing::{self, SigningKey};
use webhooks::web::cgi::{CgiEnv, Request};

/// One installation shared by all cases: alice with an endpoint (on a closed loopback port),
/// an event and its delivery, an app token and a user token.
struct World {
    _env: common::Env,
    cfg: Config,
    app: String,
    alice: String,
    endpoint: String,
    delivery: String,
    /// The `/in/{token}` paths of a GitHub, a Stripe and a Postmark source.
    inbound: Vec<String>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let env = common::Env::new();
        env.init();
        let (endpoint, _) = env.endpoint("alice", "http://127.0.0.1:9/", "");
        env.emit("alice", "email.received", r#"{"alias":"a@x","message_id":"<1@x>","size_bytes":1}"#);
        let delivery = env.deliveries()[0]["id"].as_str().unwrap().to_string();
        let (app, alice) = (env.app_token(), env.user_token("alice"));
        let inbound = [("gh", "github", "s"), ("st", "stripe", "whsec_x"), ("pm", "postmark", "pw")]
            .iter()
            .map(|(name, provider, secret)| {
                let v = env.json(&[
                    "source",
                    "add",
                    "--name",
                    name,
                    "--provider",
                    provider,
                    "--secret",
                    secret,
                    "--max-body",
                    "2KiB",
                ]);
                let url = v["url"].as_str().unwrap().to_string();
                url[url.find("/in/").unwrap()..].to_string()
            })
            .collect();
        let mut raw: BTreeMap<String, String> = env.vars.clone();
        raw.insert("WEBHOOKS_TEST_TIMEOUT".into(), "1s".into());
        let cfg = Config::from_raw(&raw, Some(env.env_file.clone()), env.dir.path().to_path_buf()).unwrap();
        World { _env: env, cfg, app, alice, endpoint, delivery, inbound }
    })
}

/// A method and path: mostly a route's own, with its `{id}` filled by a real id or by junk;
/// else any method on any path.
fn method_and_path() -> impl Strategy<Value = (String, String)> {
    let routes: Vec<(&'static str, &'static str)> =
        webhooks::web::routes::ROUTES.iter().map(|r| (r.method, r.path)).collect();
    let any_method = prop_oneof![
        4 => prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "HEAD"]).prop_map(String::from),
        1 => prop::sample::select(vec!["PUT", "OPTIONS", "get", "TRACE", ""]).prop_map(String::from),
        1 => "[A-Za-z]{0,8}",
    ];
    prop_oneof![
        6 => (prop::sample::select(routes), prop_oneof![Just(0u8), Just(1), Just(2)], "[^/]{0,12}").prop_map(|((method, t), which, junk)| {
            let w = world();
            let id = match which { 0 => w.endpoint.as_str(), 1 => w.delivery.as_str(), _ => junk.as_str() };
            (method.to_string(), t.replace("{id}", id))
        }),
        1 => (any_method.clone(), ".{0,40}"),
        1 => (any_method, "(/[a-z0-9%._~-]{0,10}){0,5}/?"),
    ]
}

/// A JSON value of any shape, including the awkward ones.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "email.received",
            "email.*",
            "*",
            "alice",
            "bob",
            "https://example.com/h",
            "2026-11-23T00:00:00Z",
            ""
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec![
                        "type",
                        "user",
                        "data",
                        "url",
                        "events",
                        "description",
                        "active",
                        "label",
                        "occurred_at",
                        "actor",
                        "idempotency_key",
                        "alias",
                        "message_id",
                        "size_bytes",
                        "grace_period"
                    ])
                    .prop_map(String::from),
                    ".{0,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Auth {
    None,
    App,
    Alice,
    Junk(String),
}

#[derive(Debug, Clone)]
struct Hostile {
    method: String,
    path: String,
    query: String,
    auth: Auth,
    remote_user: Option<String>,
    cookie: Option<String>,
    content_type: Option<String>,
    content_length: Option<String>,
    body: Vec<u8>,
}

/// Signed-in API calls with JSON bodies: deeper into the handlers than random headers get.
fn api_request() -> impl Strategy<Value = Hostile> {
    (
        hostile_request(),
        any::<bool>(),
        prop::sample::select(
            webhooks::web::routes::ROUTES
                .iter()
                .filter(|r| r.path.starts_with("/api/"))
                .map(|r| (r.method, r.path))
                .collect::<Vec<_>>(),
        ),
        any::<bool>(),
    )
        .prop_map(|(mut h, app, (method, path), real_id)| {
            let w = world();
            h.method = method.to_string();
            h.path = path.replace(
                "{id}",
                if real_id {
                    if path.contains("deliveries") {
                        &w.delivery
                    } else {
                        &w.endpoint
                    }
                } else {
                    "x"
                },
            );
            h.auth = if app { Auth::App } else { Auth::Alice };
            h.content_type = Some("application/json".into());
            h.content_length = Some("exact".into());
            h
        })
}

fn hostile_request() -> impl Strategy<Value = Hostile> {
    let query = prop_oneof![
        Just(String::new()),
        ".{0,40}",
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "limit",
                    "status",
                    "cursor",
                    "before",
                    "endpoint",
                    "event_type",
                    "q",
                    "expires",
                    "user",
                    "sig",
                    "page"
                ]),
                "[^&#]{0,12}"
            ),
            0..4
        )
        .prop_map(|pairs| url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()),
    ];
    let auth = prop_oneof![
        1 => Just(Auth::None),
        2 => Just(Auth::App),
        2 => Just(Auth::Alice),
        1 => ".{0,30}".prop_map(Auth::Junk),
    ];
    let valid = prop::sample::select(vec![
        r#"{"type":"email.received","user":"alice","data":{"alias":"a@x","message_id":"<f@x>","size_bytes":3}}"#,
        r#"[{"type":"email.received","user":"alice","data":{"alias":"a@x","message_id":"<g@x>","size_bytes":3}}]"#,
        r#"{"url":"http://127.0.0.1:9/fuzz","events":["email.*"],"description":"<b>x</b>"}"#,
        r#"{"active":false}"#,
        r#"{"active":true,"events":[]}"#,
        r#"{"label":"fuzz"}"#,
        r#"{"grace_period":"1h"}"#,
    ]);
    let body = prop_oneof![
        2 => valid.prop_map(|b| b.as_bytes().to_vec()),
        2 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec((".{0,8}", ".{0,12}"), 0..5).prop_map(|pairs| {
            url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish().into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    (
        method_and_path(),
        query,
        auth,
        prop::option::of(prop_oneof![Just("alice".to_string()), ".{0,10}"]),
        prop::option::of(".{0,40}"),
        prop::option::of(prop_oneof![
            3 => Just("application/json".to_string()),
            3 => Just("application/x-www-form-urlencoded".to_string()),
            1 => ".{0,30}"
        ]),
        prop::option::of(prop_oneof![6 => Just("exact".to_string()), 1 => "[0-9]{1,4}", 1 => ".{0,6}"]),
        body,
    )
        .prop_map(|((method, path), query, auth, remote_user, cookie, content_type, content_length, body)| {
            Hostile { method, path, query, auth, remote_user, cookie, content_type, content_length, body }
        })
}

/// Runs one request through the parser and the router, in process. Returns the status.
fn serve(h: &Hostile) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let w = world();
    let mut env = CgiEnv::default();
    env.insert("GATEWAY_INTERFACE", "CGI/1.1");
    env.insert("REQUEST_METHOD", h.method.clone());
    env.insert("PATH_INFO", h.path.clone());
    env.insert("QUERY_STRING", h.query.clone());
    env.insert("SCRIPT_NAME", "/cgi-bin/webhooks.cgi");
    match &h.auth {
        Auth::None => None,
        Auth::App => env.insert("HTTP_AUTHORIZATION", format!("Bearer {}", w.app)),
        Auth::Alice => env.insert("HTTP_AUTHORIZATION", format!("Bearer {}", w.alice)),
        Auth::Junk(j) => env.insert("HTTP_AUTHORIZATION", j.clone()),
    };
    if let Some(u) = &h.remote_user {
        env.insert("REMOTE_USER", u.clone());
    }
    if let Some(c) = &h.cookie {
        env.insert("HTTP_COOKIE", c.clone());
    }
    if let Some(ct) = &h.content_type {
        env.insert("CONTENT_TYPE", ct.clone());
    }
    match h.content_length.as_deref() {
        Some("exact") => env.insert("CONTENT_LENGTH", h.body.len().to_string()),
        Some(other) => env.insert("CONTENT_LENGTH", other.to_string()),
        None => None,
    };
    let response = match Request::from_cgi(&env, h.body.as_slice(), w.cfg.max_body) {
        Ok(req) => webhooks::web::routes::handle(&w.cfg, &req),
        Err(e) => webhooks::web::cgi::Response::error(&e),
    };
    let mut out = Vec::new();
    response.write_cgi(&mut out).unwrap();
    webhooks::cli::serve::parse_cgi_output(&out).expect("the CGI output is well-formed")
}

proptest! {
    /// Any request — method, path, query, headers, cookies, body and its length — gets a
    /// well-formed answer that is not a 5xx, and the API always answers JSON.
    #[test]
    fn any_request_gets_a_clean_answer(h in prop_oneof![hostile_request(), api_request()]) {
        let (status, headers, body) = serve(&h);
        prop_assert!(status < 500, "{h:?} answered {status}: {}", String::from_utf8_lossy(&body));
        let header = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        let frame = header("X-Frame-Options");
        prop_assert_eq!(frame.as_deref(), Some("DENY"));
        if h.path.starts_with("/api/") && status >= 400 {
            let v: Value = serde_json::from_slice(&body).map_err(|e| TestCaseError::fail(format!("{h:?}: not JSON: {e}")))?;
            prop_assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string(), "{v}");
        }
    }

    /// The query-string, form and cookie decoders take any bytes, and give back exactly what
    /// an encoder put in.
    #[test]
    fn decoders_take_anything_and_round_trip(
        raw in ".{0,60}",
        bytes in prop::collection::vec(any::<u8>(), 0..60),
        pairs in prop::collection::vec((".{0,10}", ".{0,10}"), 0..5),
        cookie_value in "[A-Za-z0-9._~-]{0,20}",
    ) {
        let mut req = Request { query: raw.clone(), body: bytes, ..Request::default() };
        req.headers = vec![("content-type".into(), "application/x-www-form-urlencoded".into()), ("cookie".into(), raw.clone())];
        let _ = (req.query_pairs(), req.query("limit"), req.form().get("csrf"), req.cookie("qsm_session"));
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        req.query = encoded.clone();
        req.body = encoded.into_bytes();
        prop_assert_eq!(req.query_pairs(), pairs.clone());
        prop_assert_eq!(req.form().pairs, pairs);
        req.headers = vec![("cookie".into(), format!("a=1; qsm_session={cookie_value}; z=2"))];
        prop_assert_eq!(req.cookie("qsm_session"), Some(cookie_value));
    }

    /// Event validation takes any JSON: it accepts only events of a known type whose data
    /// matches that type's schema, and every refusal says where.
    #[test]
    fn event_validation_accepts_only_valid_events(v in json_value(), as_user in any::<bool>()) {
        let principal = if as_user { Principal::User("alice".into()) } else { Principal::App };
        match event::parse_request(&v, &principal, None, 10) {
            Ok(intakes) => {
                for i in intakes {
                    let t = schema::find(&i.event_type).expect("a known type");
                    let mut problems = Vec::new();
                    schema::validate(t.data_schema(), &i.data, "$.data", &mut problems);
                    prop_assert!(problems.is_empty(), "{v} accepted with {problems:?}");
                }
            }
            Err(e) => {
                let e = HttpError::from(e);
                prop_assert!([403, 413, 422].contains(&e.status), "{v}: {}", e.status);
                if e.status == 422 {
                    let details = e.details.as_array().cloned().unwrap_or_default();
                    prop_assert!(!details.is_empty());
                    prop_assert!(details.iter().all(|d| d["path"].as_str().is_some_and(|p| p.starts_with('$'))), "{details:?}");
                }
            }
        }
    }

    /// Valid events changed at one place: still accepted, or refused with the place named.
    #[test]
    fn a_valid_event_with_one_field_changed_is_judged_on_that_field(
        which in 0usize..64, field in prop::sample::select(vec!["type", "user", "data", "occurred_at", "actor", "idempotency_key", "extra"]),
        value in json_value(),
    ) {
        let examples: Vec<(String, Value)> = schema::intake_types()
            .flat_map(|t| t.schema["examples"].as_array().unwrap().iter().map(move |e| (t.name.to_string(), e["data"].clone())))
            .collect();
        let (name, data) = &examples[which % examples.len()];
        let mut ev = json!({"type": name, "user": "alice", "data": data});
        prop_assert!(event::parse_request(&ev, &Principal::App, None, 10).is_ok(), "the example itself is valid: {ev}");
        ev[field] = value;
        if let Err(e) = event::parse_request(&ev, &Principal::App, None, 10) {
            let e = HttpError::from(e);
            prop_assert!([403, 422].contains(&e.status));
            let details = e.details.to_string();
            let named = if field == "extra" { "$.extra" } else { field };
            prop_assert!(details.contains(named) || (field == "type" && details.contains("$.data")), "{ev} refused without naming {field}: {details}");
        }
    }

    /// The signature-header parser takes any header values without panicking and accepts only
    /// the signature of exactly this body, id and timestamp under one of the keys.
    #[test]
    fn signature_headers_verify_only_the_signed_message(
        key in prop::collection::vec(any::<u8>(), 1..40),
        body in prop::collection::vec(any::<u8>(), 0..200),
        id in "[a-zA-Z0-9_]{1,30}",
        ts in 1_000_000_000i64..4_000_000_000,
        junk in prop::collection::vec((prop::sample::select(vec!["X-QSM-Signature", "X-QSM-Id", "X-QSM-Timestamp", "webhook-signature", "webhook-id", "webhook-timestamp"]), ".{0,80}"), 0..4),
        flip in any::<prop::sample::Index>(),
    ) {
        let keys = [SigningKey { id: "k".into(), key: key.clone() }];
        let d = signing::Delivery { event_id: &id, event_type: "email.received", attempt: 1, timestamp: ts, body: &body };
        let headers = signing::headers("X-QSM", &keys, &d);
        prop_assert!(signing::verify("X-QSM", &headers, &body, std::slice::from_ref(&key), 300, ts).is_ok());
        // Junk in any header: no panic, and no acceptance unless the junk left the signed
        // headers untouched.
        let mut tampered = headers.clone();
        for (name, value) in &junk {
            tampered.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            tampered.push((name.to_string(), value.clone()));
        }
        let _ = signing::verify("X-QSM", &tampered, &body, std::slice::from_ref(&key), 300, ts);
        let junk_only: Vec<(String, String)> = junk.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        prop_assert!(signing::verify("X-QSM", &junk_only, &body, std::slice::from_ref(&key), 300, ts).is_err());
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip.index(changed.len());
            changed[i] ^= 0x01;
            prop_assert!(signing::verify("X-QSM", &headers, &changed, std::slice::from_ref(&key), 300, ts).is_err());
        }
        let mut other_key = key.clone();
        other_key[0] ^= 0x80;
        prop_assert!(signing::verify("X-QSM", &headers, &body, &[other_key], 300, ts).is_err());
    }

    /// The inbound signature-header parsers take any text without panicking, and read back
    /// exactly what a well-formed header carries.
    #[test]
    fn inbound_header_parsers_take_anything_and_read_well_formed_headers(
        junk in ".{0,200}",
        t in 0i64..100_000_000_000,
        sigs in prop::collection::vec(prop::collection::vec(any::<u8>(), 32), 0..4),
        user in "[a-zA-Z0-9._-]{0,20}",
        password in "[ -~]{0,30}",
    ) {
        let _ = inbound::parse_stripe_header(&junk);
        let _ = inbound::parse_standard_signatures(&junk);
        let _ = inbound::parse_basic(&junk);
        let _ = inbound::decode_hex(&junk);
        let _ = inbound::parse_public_key(&junk);
        for s in [inbound::Settings::default(), inbound::Settings { encoding: Some("base64".into()), prefix: Some("sha256=".into()), ..Default::default() }] {
            let _ = inbound::parse_hmac_header(&junk, &s);
        }
        let hex = |b: &[u8]| webhooks::model::secret::hex(b);
        let stripe: Vec<String> = std::iter::once(format!("t={t}")).chain(sigs.iter().map(|s| format!("v1={}", hex(s)))).chain(std::iter::once("v0=00ff".to_string())).collect();
        prop_assert_eq!(inbound::parse_stripe_header(&stripe.join(",")), Some((t, sigs.clone())));
        let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
        let standard: Vec<String> = sigs.iter().map(|s| format!("v1,{}", b64(s))).chain(std::iter::once("v1a,xyz".to_string())).collect();
        prop_assert_eq!(inbound::parse_standard_signatures(&standard.join(" ")), Some(sigs.clone()));
        let basic = format!("Basic {}", b64(format!("{user}:{password}").as_bytes()));
        prop_assert_eq!(inbound::parse_basic(&basic), Some((user.clone(), password.clone())));
        if !sigs.is_empty() {
            let s = inbound::Settings { prefix: Some("sha256=".into()), ..Default::default() };
            let header: Vec<String> = sigs.iter().map(|x| format!("sha256={}", hex(x))).collect();
            prop_assert_eq!(inbound::parse_hmac_header(&header.join(", "), &s), Some(sigs.clone()));
        }
    }

    /// Any request to a source's address gets one of the answers providers understand, and
    /// never a panic or a 5xx: 200, 401 (never 403), 404 (never 410), 405 or 413.
    #[test]
    fn any_request_to_a_source_gets_an_answer_providers_understand(
        which in 0usize..4,
        method in prop::sample::select(vec!["POST", "POST", "POST", "GET", "HEAD", "PUT"]),
        headers in prop::collection::vec((prop::sample::select(vec![
            "HTTP_STRIPE_SIGNATURE", "HTTP_X_HUB_SIGNATURE_256", "HTTP_X_GITHUB_DELIVERY", "HTTP_AUTHORIZATION",
            "CONTENT_TYPE", "HTTP_WEBHOOK_ID", "HTTP_X_FORWARDED_FOR"]), ".{0,120}"), 0..5),
        body in prop::collection::vec(any::<u8>(), 0..3000),
        junk_token in "[^/]{0,30}",
    ) {
        let w = world();
        let path = if which < 3 { w.inbound[which].clone() } else { format!("/in/{junk_token}") };
        let mut env: CgiEnv = [
            ("REQUEST_METHOD", method.to_string()),
            ("PATH_INFO", path),
            ("CONTENT_LENGTH", body.len().to_string()),
            ("REMOTE_ADDR", "127.0.0.1".to_string()),
        ]
        .into_iter()
        .collect();
        for (k, v) in headers {
            env.insert(k.to_string(), v);
        }
        let r = webhooks::web::receiver::respond(&w.cfg, &env, body.as_slice());
        prop_assert!([200, 401, 404, 405, 413].contains(&r.status), "{} for {:?}", r.status, env);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        prop_assert!(v.is_object());
    }
}

/// Cases for the whole-program fuzz below: `PROPTEST_CASES` up to 4,000 (each case opens the
/// store and may render a page, about 5 ms; CI's 20,000 would take it past a minute and a half).
/// Set here, after proptest reads the variable, which would otherwise win over any cap.
fn entry_point_config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    config.cases = config.cases.min(4000);
    config
}

/// Arbitrary bytes as the CGI environment (meta-variables and headers, valid UTF-8 or not)
/// and as the body, through the request entry point the CGI binary calls: an answer that is
/// well-formed CGI output, never a panic, and JSON at `/in/` and below `/api/`.
#[test]
fn arbitrary_environment_bytes_and_body_get_an_answer() {
    let path = prop_oneof![
        3 => prop::sample::select(vec!["/", "/endpoints", "/api/v1/events", "/api/v1/endpoints/x", "/login", "/in/"])
            .prop_map(|p| p.as_bytes().to_vec()),
        2 => prop::collection::vec(any::<u8>(), 0..40),
    ];
    let method = prop_oneof![
        prop::sample::select(vec!["GET", "POST", "PATCH"]).prop_map(|m| m.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..8)
    ];
    let names = prop::sample::select(vec![
        "QUERY_STRING",
        "HTTP_USER_AGENT",
        "HTTP_COOKIE",
        "HTTP_AUTHORIZATION",
        "HTTP_HOST",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "REMOTE_USER",
        "HTTPS",
        "SCRIPT_NAME",
        "HTTP_X_HUB_SIGNATURE_256",
        "HTTP_STRIPE_SIGNATURE",
        "HTTP_WEBHOOK_ID",
        "HTTP_X_GITHUB_DELIVERY",
        "REMOTE_ADDR",
    ]);
    let vars = prop::collection::vec((names, prop::collection::vec(any::<u8>(), 0..60)), 0..8);
    let body = prop::collection::vec(any::<u8>(), 0..600);
    let mut runner = proptest::test_runner::TestRunner::new(entry_point_config());
    runner
        .run(&(path, 0usize..4, method, vars, body), |(path, inbound, method, vars, body)| {
            let w = world();
            let path =
                if inbound < 3 && path.starts_with(b"/in/") { w.inbound[inbound].as_bytes().to_vec() } else { path };
            let mut env = CgiEnv::default();
            env.insert("PATH_INFO", path.clone());
            env.insert("REQUEST_METHOD", method);
            for (k, v) in vars {
                env.insert(k, v);
            }
            let r = webhooks::web::routes::answer(&w.cfg, &env, body.as_slice());
            let mut out = Vec::new();
            r.write_cgi(&mut out).unwrap();
            let (status, _, body) = webhooks::cli::serve::parse_cgi_output(&out).expect("well-formed CGI output");
            prop_assert!((200..600).contains(&status));
            if path.starts_with(b"/in/") || path.starts_with(b"/api/") {
                prop_assert!(
                    serde_json::from_slice::<Value>(&body).is_ok(),
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            Ok(())
        })
        .unwrap();
}
