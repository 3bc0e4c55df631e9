//! Event schema v1: for every type, the intake rules (the Rust validator) and an independent
//! JSON Schema validator (the `jsonschema` crate, draft 2020-12) agree on valid examples and on
//! every mutation: each required field removed, each field given a wrong JSON type.

use jsonschema::{Draft, JSONSchema};
use serde_json::{json, Value};
use webhooks::model::event;
use webhooks::model::principal::Principal;
use webhooks::model::schema::{self, Problem};

fn independent(schema: &Value) -> JSONSchema {
    JSONSchema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .compile(schema)
        .expect("schema compiles")
}

fn ours(schema: &Value, instance: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    schema::validate(schema, instance, "$", &mut out);
    out
}

/// The intake object a host application would post for this envelope.
fn intake_of(envelope: &Value) -> Value {
    let mut v = json!({"type": envelope["type"], "user": envelope["user"], "data": envelope["data"]});
    for k in ["occurred_at", "actor"] {
        if let Some(x) = envelope.get(k) {
            v[k] = x.clone();
        }
    }
    v
}

fn intake_problems(intake: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    let parsed = event::parse_one(intake, "$", &Principal::App, &mut problems).unwrap();
    assert_eq!(parsed.is_some(), problems.is_empty());
    problems
}

fn wrong_type(v: &Value) -> Value {
    match v {
        Value::String(_) => json!(12345),
        Value::Number(_) => json!("12345"),
        Value::Bool(_) => json!("true"),
        Value::Array(_) => json!({"not": "an array"}),
        Value::Object(_) => json!(["not an object"]),
        Value::Null => json!(1),
    }
}

#[test]
fn examples_are_valid_for_both_validators_and_accepted_at_intake() {
    for t in schema::catalog() {
        let js = independent(&t.schema);
        let examples = t.schema["examples"].as_array().expect("each schema has examples");
        assert!(!examples.is_empty(), "{}", t.name);
        for ex in examples {
            assert!(js.is_valid(ex), "{}: independent validator rejects the example", t.name);
            assert!(ours(&t.schema, ex).is_empty(), "{}: {:?}", t.name, ours(&t.schema, ex));
            if webhooks::model::schema::intake_types().any(|i| i.name == t.name) {
                assert!(intake_problems(&intake_of(ex)).is_empty(), "{}", t.name);
            }
        }
    }
}

#[test]
fn each_required_field_missing_is_rejected_by_both_and_at_intake() {
    for t in schema::catalog() {
        let js = independent(&t.schema);
        let ex = &t.schema["examples"][0];
        for field in t.data_schema()["required"].as_array().unwrap() {
            let field = field.as_str().unwrap();
            let mut m = ex.clone();
            m["data"].as_object_mut().unwrap().remove(field);
            assert!(!js.is_valid(&m), "{}: independent accepts missing {field}", t.name);
            let p = ours(&t.schema, &m);
            assert_eq!(
                p,
                vec![Problem { path: format!("$.data.{field}"), message: "is required".into() }],
                "{}",
                t.name
            );
            if webhooks::model::schema::intake_types().any(|i| i.name == t.name) {
                let p = intake_problems(&intake_of(&m));
                assert_eq!(p.len(), 1, "{}: {p:?}", t.name);
                assert_eq!(p[0].path, format!("$.data.{field}"));
            }
        }
        for field in t.schema["required"].as_array().unwrap() {
            let mut m = ex.clone();
            m.as_object_mut().unwrap().remove(field.as_str().unwrap());
            assert!(!js.is_valid(&m), "{}: envelope without {field}", t.name);
            assert!(!ours(&t.schema, &m).is_empty(), "{}: envelope without {field}", t.name);
        }
    }
}

#[test]
fn each_field_with_a_wrong_json_type_is_rejected_by_both_and_at_intake() {
    for t in schema::catalog() {
        let js = independent(&t.schema);
        let ex = &t.schema["examples"][0];
        for (field, value) in ex["data"].as_object().unwrap() {
            let mut m = ex.clone();
            m["data"][field] = wrong_type(value);
            assert!(!js.is_valid(&m), "{}: independent accepts wrong type for {field}", t.name);
            let p = ours(&t.schema, &m);
            assert_eq!(p.len(), 1, "{}.{field}: {p:?}", t.name);
            assert_eq!(p[0].path, format!("$.data.{field}"));
            if webhooks::model::schema::intake_types().any(|i| i.name == t.name) {
                assert_eq!(intake_problems(&intake_of(&m))[0].path, format!("$.data.{field}"));
            }
        }
        // Unknown fields in data and a data that is not an object.
        let mut m = ex.clone();
        m["data"]["surprise"] = json!(1);
        assert!(!js.is_valid(&m) && !ours(&t.schema, &m).is_empty(), "{}: unknown field", t.name);
        let mut m = ex.clone();
        m["data"] = json!("text");
        assert!(!js.is_valid(&m) && !ours(&t.schema, &m).is_empty(), "{}: data as string", t.name);
    }
}

#[test]
fn value_constraints_agree() {
    let cases = [
        ("usage.threshold", "threshold_percent", json!(0)),
        ("usage.threshold", "threshold_percent", json!(101)),
        ("usage.threshold", "metric", json!("minutes")),
        ("usage.over_limit", "used", json!(-1)),
        ("email.forwarded", "destinations", json!([])),
        ("email.forwarded", "alias", json!("")),
        ("email.received", "status", json!("forwarded")),
        ("email.received", "size_bytes", json!(1.5)),
    ];
    for (name, field, value) in cases {
        let t = schema::find(name).unwrap();
        let js = independent(&t.schema);
        let mut m = t.schema["examples"][0].clone();
        m["data"][field] = value.clone();
        assert!(!js.is_valid(&m), "{name}.{field}={value}");
        assert!(!ours(&t.schema, &m).is_empty(), "{name}.{field}={value}");
    }
    // And a whole-number float is an integer for both.
    let t = schema::find("email.received").unwrap();
    let mut m = t.schema["examples"][0].clone();
    m["data"]["size_bytes"] = json!(10.0);
    assert!(independent(&t.schema).is_valid(&m));
    assert!(ours(&t.schema, &m).is_empty());
}

#[test]
fn every_envelope_intake_builds_is_valid_against_its_schema() {
    for t in schema::intake_types() {
        let intake = intake_of(&t.schema["examples"][0]);
        let mut problems = Vec::new();
        let parsed = event::parse_one(&intake, "$", &Principal::App, &mut problems).unwrap().unwrap();
        let envelope = event::envelope("evt_01JDZ6Q8T6Y3N5K0W2X4V7B9CD", &parsed, 1_763_853_117_000);
        assert!(independent(&t.schema).is_valid(&envelope), "{}: {envelope}", t.name);
        assert_eq!(envelope["schema_version"], 1);
    }
}

/// Every JSON example in docs/event-types.md is valid against its type's schema.
#[test]
fn the_catalog_examples_in_the_docs_are_valid() {
    let doc =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/event-types.md")).unwrap();
    let mut checked = Vec::new();
    for block in doc.split("```json\n").skip(1) {
        let example: serde_json::Value =
            serde_json::from_str(block.split("```").next().unwrap()).expect("examples are JSON");
        let t = schema::find(example["type"].as_str().unwrap()).expect("a known type");
        assert!(independent(&t.schema).is_valid(&example), "{}: the example in the docs is invalid", t.name);
        assert!(ours(&t.schema, &example).is_empty());
        checked.push(t.name);
    }
    checked.sort();
    let mut all: Vec<&str> = schema::catalog().iter().map(|t| t.name).collect();
    all.sort();
    assert_eq!(checked, all, "one example per type");
}

/// The OpenAPI document states each type's `data` schema for `POST /api/v1/events`: it must be
/// exactly the one intake enforces (schemathesis generates requests from it in CI).
#[test]
fn the_openapi_event_intake_carries_each_types_data_schema() {
    let doc: Value = serde_json::from_str(webhooks::web::api::OPENAPI).unwrap();
    let variants = doc["components"]["schemas"]["EventIntake"]["oneOf"].as_array().unwrap();
    let intake_types: Vec<&str> = schema::intake_types().map(|t| t.name).collect();
    assert_eq!(variants.len(), intake_types.len());
    for name in intake_types {
        let v = variants
            .iter()
            .find(|v| v["properties"]["type"]["const"] == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(&v["properties"]["data"], schema::find(name).unwrap().data_schema(), "{name}: data schema differs");
        assert_eq!(v["additionalProperties"], false);
    }
    assert_eq!(&doc["components"]["schemas"]["Actor"], schema::actor_schema());
    // And the document's examples: every catalog example, as an intake, validates against it.
    let mut doc_with_ref = doc.clone();
    doc_with_ref["$ref"] = json!("#/components/schemas/EventIntake");
    let compiled = independent(&doc_with_ref);
    for t in schema::intake_types() {
        for example in t.schema["examples"].as_array().unwrap() {
            let intake = intake_of(example);
            assert!(compiled.is_valid(&intake), "{}: {intake}", t.name);
        }
    }
}
