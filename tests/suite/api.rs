//! The JSON API through the CGI binary: every route, success and failure, and every answer
//! checked against the OpenAPI document's schema for it.

use crate::common::{api, CgiResponse, Env, Receiver, Reply};
use jsonschema::{Draft, JSONSchema};
use serde_json::{json, Value};

const EVENT: &str = r#"{"alias":"a@x.example","message_id":"<1@x>","size_bytes":10}"#;

/// Validates a response body against a component schema of docs/openapi.json.
fn conforms(r: &CgiResponse, component: &str) -> Value {
    let doc: Value = serde_json::from_str(webhooks::web::api::OPENAPI).unwrap();
    let schema = json!({"$ref": format!("#/components/schemas/{component}"), "components": doc["components"]});
    let compiled = JSONSchema::options().with_draft(Draft::Draft202012).compile(&schema).unwrap();
    let body = r.json();
    if let Err(errors) = compiled.validate(&body) {
        let list: Vec<String> = errors.map(|e| format!("{} at {}", e, e.instance_path)).collect();
        panic!("response does not match {component}: {list:?}\n{body}");
    }
    body
}

fn setup() -> (Env, String, String) {
    let env = Env::new();
    env.init();
    let alice = env.user_token("alice");
    let app = env.app_token();
    (env, alice, app)
}

#[test]
fn endpoints_crud() {
    let (env, alice, app) = setup();
    let r = api(
        &env,
        &alice,
        "POST",
        "/api/v1/endpoints",
        Some(r#"{"url":"https://example.com/h","description":"CRM","event_types":["email.*"]}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let created = conforms(&r, "EndpointWithSecret");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["user"], "alice");
    assert_eq!(created["health"], "ok");
    assert_eq!((created["held"].as_i64(), created["fail_since"].is_null()), (Some(0), true));
    let id = created["id"].as_str().unwrap().to_string();

    let list = api(&env, &alice, "GET", "/api/v1/endpoints", None);
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["endpoints"].as_array().unwrap().len(), 1);
    assert!(list.json()["endpoints"][0].get("secret").is_none());
    for e in list.json()["endpoints"].as_array().unwrap() {
        let one = CgiResponse { status: 200, headers: vec![], body: e.to_string().into_bytes(), stderr: String::new() };
        conforms(&one, "Endpoint");
    }

    let got = api(&env, &alice, "GET", &format!("/api/v1/endpoints/{id}"), None);
    conforms(&got, "Endpoint");
    let patched =
        api(&env, &alice, "PATCH", &format!("/api/v1/endpoints/{id}"), Some(r#"{"description":"new","active":false}"#));
    assert_eq!(patched.status, 200);
    let p = conforms(&patched, "Endpoint");
    assert_eq!((p["description"].as_str(), p["active"].as_bool()), (Some("new"), Some(false)));
    assert_eq!(p["event_types"], json!(["email.*"]));

    // Validation: every problem with its path, nothing changed.
    let bad = api(
        &env,
        &alice,
        "PATCH",
        &format!("/api/v1/endpoints/{id}"),
        Some(r#"{"url":5,"event_types":"all","colour":"red"}"#),
    );
    assert_eq!(bad.status, 422);
    let paths: Vec<String> = bad.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    let bad = api(&env, &alice, "POST", "/api/v1/endpoints", Some(r#"{"url":"javascript:alert(1)"}"#));
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["error"]["details"][0]["path"], "$.url");
    assert_eq!(
        api(&env, &alice, "POST", "/api/v1/endpoints", Some(r#"{"description":"x"}"#)).status,
        422,
        "url required"
    );
    assert_eq!(api(&env, &alice, "POST", "/api/v1/endpoints", Some("{nope")).status, 400);
    assert_eq!(env.count("endpoints"), 1);

    // An app token must say for whom; a user token only for itself.
    assert_eq!(api(&env, &app, "POST", "/api/v1/endpoints", Some(r#"{"url":"https://example.com/b"}"#)).status, 422);
    let r = api(&env, &app, "POST", "/api/v1/endpoints", Some(r#"{"url":"https://example.com/b","user":"bob"}"#));
    assert_eq!(r.status, 201);
    assert_eq!(
        api(&env, &alice, "POST", "/api/v1/endpoints", Some(r#"{"url":"https://example.com/c","user":"bob"}"#)).status,
        403
    );
    assert_eq!(api(&env, &app, "GET", "/api/v1/endpoints", None).json()["endpoints"].as_array().unwrap().len(), 2);
    assert_eq!(
        api(&env, &app, "GET", "/api/v1/endpoints?user=bob", None).json()["endpoints"].as_array().unwrap().len(),
        1
    );

    let del = api(&env, &alice, "DELETE", &format!("/api/v1/endpoints/{id}"), None);
    assert_eq!(del.status, 200);
    assert_eq!(api(&env, &alice, "GET", &format!("/api/v1/endpoints/{id}"), None).status, 404);
    assert_eq!(
        api(&env, &alice, "PUT", &format!("/api/v1/endpoints/{id}"), None).header("Allow"),
        Some("GET, PATCH, DELETE")
    );
}

#[test]
fn secrets_rotation_test_and_dead_letters() {
    let (env, alice, _) = setup();
    let rx = Receiver::start(|_, r| {
        if r.header("X-QSM-Event") == Some("webhook.test") {
            Reply::Status(204)
        } else {
            Reply::Status(500)
        }
    });
    let r = api(&env, &alice, "POST", "/api/v1/endpoints", Some(&format!(r#"{{"url":"{}"}}"#, rx.url("/"))));
    let created = r.json();
    let id = created["id"].as_str().unwrap();
    let rot =
        api(&env, &alice, "POST", &format!("/api/v1/endpoints/{id}/rotate-secret"), Some(r#"{"grace_seconds":600}"#));
    assert_eq!(rot.status, 200);
    let rot = conforms(&rot, "Rotation");
    let shown = conforms(&api(&env, &alice, "POST", &format!("/api/v1/endpoints/{id}/secret"), None), "Secrets");
    assert_eq!(shown["secret"], rot["secret"]);
    assert_eq!(shown["keys"][1]["secret"], created["secret"]);
    assert_eq!(
        api(&env, &alice, "POST", &format!("/api/v1/endpoints/{id}/rotate-secret"), Some(r#"{"grace_seconds":-1}"#))
            .status,
        422
    );

    let t = api(&env, &alice, "POST", &format!("/api/v1/endpoints/{id}/test"), None);
    let t = conforms(&t, "TestResult");
    assert_eq!((t["delivered"].as_bool(), t["status_code"].as_u64()), (Some(true), Some(204)));
    assert!(t["request_headers"].as_array().unwrap().iter().any(|h| h[0] == "X-QSM-Signature"));

    let mut env = env;
    env.set("WEBHOOKS_MAX_ATTEMPTS", "1");
    env.emit("alice", "email.received", EVENT);
    env.dispatch();
    let shown = conforms(&api(&env, &alice, "GET", &format!("/api/v1/endpoints/{id}"), None), "Endpoint");
    assert_eq!(shown["health"], "failing", "its one delivery went dead: {shown}");
    assert!(shown["fail_since"].is_string() && shown["disable_at"].is_string(), "{shown}");
    let stats = &shown["stats"];
    assert_eq!((stats["failed_24h"].as_i64(), stats["succeeded_24h"].as_i64()), (Some(1), Some(0)));
    assert_eq!(stats["last_status_code"], 500);
    assert_eq!(stats["success_rate_24h"], 0.0);
    let r = api(&env, &alice, "POST", &format!("/api/v1/endpoints/{id}/retry-dead"), None);
    assert_eq!(r.json()["retried"], 1);
}

#[test]
fn deliveries_list_filter_page_detail_and_retry() {
    let (env, alice, _) = setup();
    let rx = Receiver::always(200);
    env.endpoint("alice", &rx.url("/"), "");
    for _ in 0..5 {
        env.emit("alice", "email.received", EVENT);
    }
    env.dispatch();
    env.dispatch();
    let page = api(&env, &alice, "GET", "/api/v1/deliveries?limit=3", None);
    assert_eq!(page.status, 200);
    let v = page.json();
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 3);
    for d in v["deliveries"].as_array().unwrap() {
        let one = CgiResponse { status: 200, headers: vec![], body: d.to_string().into_bytes(), stderr: String::new() };
        conforms(&one, "Delivery");
    }
    let next = v["next_before"].as_str().unwrap();
    let rest = api(&env, &alice, "GET", &format!("/api/v1/deliveries?limit=3&before={next}"), None).json();
    assert_eq!(rest["deliveries"].as_array().unwrap().len(), 2);
    assert!(rest["next_before"].is_null());
    assert_eq!(
        api(&env, &alice, "GET", "/api/v1/deliveries?status=succeeded&type=email.received", None).json()["deliveries"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        api(&env, &alice, "GET", "/api/v1/deliveries?status=dead", None).json()["deliveries"].as_array().unwrap().len(),
        0
    );
    for bad in ["status=lost", "limit=0", "limit=x", "since=yesterday"] {
        let r = api(&env, &alice, "GET", &format!("/api/v1/deliveries?{bad}"), None);
        assert_eq!(r.status, 422, "{bad}");
    }
    let id = v["deliveries"][0]["id"].as_str().unwrap();
    let detail = conforms(&api(&env, &alice, "GET", &format!("/api/v1/deliveries/{id}"), None), "DeliveryDetail");
    assert_eq!(detail["attempt_history"].as_array().unwrap().len(), 1);
    let retried = api(&env, &alice, "POST", &format!("/api/v1/deliveries/{id}/retry"), None);
    assert_eq!(conforms(&retried, "Delivery")["status"], "pending");
    env.db().execute("UPDATE events SET payload = NULL", []).unwrap();
    let refused = api(&env, &alice, "POST", &format!("/api/v1/deliveries/{id}/retry"), None);
    assert_eq!(refused.status, 409);
    assert_eq!(refused.error_code(), "payload_expired");
}

#[test]
fn tokens_and_status_and_documents() {
    let (env, alice, app) = setup();
    let created = api(&env, &alice, "POST", "/api/v1/tokens", Some(r#"{"label":"ci"}"#));
    assert_eq!(created.status, 201);
    let created = conforms(&created, "TokenCreated");
    let list = api(&env, &alice, "GET", "/api/v1/tokens", None).json();
    assert_eq!(list["tokens"].as_array().unwrap().len(), 2, "alice's own two tokens");
    assert!(!list.to_string().contains(created["token"].as_str().unwrap()));
    let id = created["id"].as_str().unwrap();
    assert_eq!(api(&env, &alice, "DELETE", &format!("/api/v1/tokens/{id}"), None).status, 200);
    assert_eq!(api(&env, created["token"].as_str().unwrap(), "GET", "/api/v1/status", None).status, 401);
    assert_eq!(api(&env, &alice, "DELETE", &format!("/api/v1/tokens/{id}"), None).status, 404, "already revoked");
    assert_eq!(api(&env, &app, "POST", "/api/v1/tokens", Some("{}")).status, 422, "app tokens name the user");

    let status = api(&env, &alice, "GET", "/api/v1/status", None);
    conforms(&status, "Status");
    assert_eq!(status.json()["hourly_24h"].as_array().unwrap().len(), 24);

    let doc = api(&env, "none", "GET", "/api/v1/openapi.json", None);
    assert_eq!(doc.status, 200);
    assert_eq!(doc.json(), serde_json::from_str::<Value>(webhooks::web::api::OPENAPI).unwrap());
    let types = api(&env, "none", "GET", "/api/v1/event-types", None);
    conforms(&types, "EventTypes");
}

#[test]
fn events_answer_matches_the_document() {
    let (env, _, app) = setup();
    let r = env.post_events(
        &app,
        r#"{"type":"email.received","user":"alice","data":{"alias":"a","message_id":"m","size_bytes":1}}"#,
        &[],
    );
    assert_eq!(r.status, 202);
    conforms(&r, "EventsAccepted");
    let bad = env.post_events(&app, r#"{"type":"nope"}"#, &[]);
    conforms(&bad, "Error");
}

#[test]
fn null_is_not_a_value_for_optional_fields() {
    let (env, alice, _) = setup();
    for (path, body, field) in [
        ("/api/v1/tokens", r#"{"label":null}"#, "$.label"),
        ("/api/v1/endpoints", r#"{"url":"https://example.com/h","description":null}"#, "$.description"),
        ("/api/v1/endpoints", r#"{"url":"https://example.com/h","event_types":null}"#, "$.event_types"),
    ] {
        let r = api(&env, &alice, "POST", path, Some(body));
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["details"][0]["path"], field, "{body}");
    }
    assert_eq!(env.count("endpoints"), 0);
}

/// Found by schemathesis: values outside the document's forms were quietly tidied and accepted.
#[test]
fn filters_and_urls_are_taken_exactly_as_documented() {
    let (env, alice, _) = setup();
    let created = api(&env, &alice, "POST", "/api/v1/endpoints", Some(r#"{"url":"https://example.com/h"}"#));
    let id = created.json()["id"].as_str().unwrap().to_string();
    for body in [r#"{"event_types":[""]}"#, r#"{"event_types":[" email.*"]}"#, r#"{"url":" https://example.com/x"}"#] {
        let r = api(&env, &alice, "PATCH", &format!("/api/v1/endpoints/{id}"), Some(body));
        assert_eq!(r.status, 422, "{body}: {}", r.text());
    }
    let r = api(&env, &alice, "GET", &format!("/api/v1/endpoints/{id}"), None).json();
    assert_eq!(
        (r["url"].as_str(), r["event_types"].as_array().map(Vec::len)),
        (Some("https://example.com/h"), Some(0))
    );
}

#[test]
fn text_with_a_nul_character_is_an_answer_not_a_database_error() {
    // SQLite's text holds NUL, PostgreSQL's does not: the store keeps the two alike.
    let (env, token, _) = setup();
    let auth = format!("Bearer {token}");
    let r = env.cgi("GET", "/api/v1/endpoints/ep_%00x", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 404, "{}", String::from_utf8_lossy(&r.body));
    let r = env.cgi("GET", "/api/v1/deliveries?endpoint_id=ep_%00x", &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = env.cgi(
        "POST",
        "/api/v1/endpoints",
        &[("Authorization", &auth), ("Content-Type", "application/json")],
        br#"{"url": "https://example.com/h", "description": "a\u0000b"}"#,
    );
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.error_code(), "invalid");
    assert_eq!(env.count("endpoints"), 0);
}
