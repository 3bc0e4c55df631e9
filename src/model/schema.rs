//! The event catalog and its JSON Schemas (draft 2020-12), kept as data files in `schemas/v1/`
//! and compiled in. Intake validates against these same files with a small interpreter of the
//! keywords they use, so the documents receivers read and the rules intake applies cannot drift;
//! a test checks the files with an independent JSON Schema validator on the same examples.

use std::sync::OnceLock;

use serde_json::{Map, Value};

pub const SCHEMA_VERSION: u32 = 1;

/// Every event type of schema v1 with its schema file.
const FILES: &[(&str, &str)] = &[
    ("email.received", include_str!("../../schemas/v1/email.received.json")),
    ("email.forwarded", include_str!("../../schemas/v1/email.forwarded.json")),
    ("email.failed", include_str!("../../schemas/v1/email.failed.json")),
    ("email.spam", include_str!("../../schemas/v1/email.spam.json")),
    ("email.oversize", include_str!("../../schemas/v1/email.oversize.json")),
    ("usage.threshold", include_str!("../../schemas/v1/usage.threshold.json")),
    ("usage.over_limit", include_str!("../../schemas/v1/usage.over_limit.json")),
    ("webhook.test", include_str!("../../schemas/v1/webhook.test.json")),
    ("endpoint.failing", include_str!("../../schemas/v1/endpoint.failing.json")),
    ("endpoint.disabled", include_str!("../../schemas/v1/endpoint.disabled.json")),
    ("endpoint.enabled", include_str!("../../schemas/v1/endpoint.enabled.json")),
    ("delivery.exhausted", include_str!("../../schemas/v1/delivery.exhausted.json")),
    ("endpoint.key_blocked", include_str!("../../schemas/v1/endpoint.key_blocked.json")),
    ("source.silent", include_str!("../../schemas/v1/source.silent.json")),
    ("source.verification_failing", include_str!("../../schemas/v1/source.verification_failing.json")),
];

/// Keywords the interpreter understands. Annotations are accepted and ignored.
const KEYWORDS: &[&str] = &[
    "type",
    "const",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minItems",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "format",
];
const ANNOTATIONS: &[&str] = &["$schema", "$id", "title", "description", "examples"];

pub struct EventType {
    pub name: &'static str,
    pub schema: Value,
}

impl EventType {
    pub fn description(&self) -> &str {
        self.schema["description"].as_str().unwrap_or("")
    }

    /// The schema of `data` alone.
    pub fn data_schema(&self) -> &Value {
        &self.schema["properties"]["data"]
    }
}

/// The catalog, parsed once per process.
pub fn catalog() -> &'static [EventType] {
    static CATALOG: OnceLock<Vec<EventType>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        FILES
            .iter()
            .map(|(name, text)| EventType {
                name,
                schema: serde_json::from_str(text).expect("schema files are valid JSON (tested)"),
            })
            .collect()
    })
}

/// Events about the webhook system itself (docs/event-types.md, "Operational events"): made by
/// the dispatcher and sent to the operator, never posted by the host application nor delivered
/// to users' endpoints.
pub const OPERATIONAL: &[&str] = &[
    "endpoint.failing",
    "endpoint.disabled",
    "endpoint.enabled",
    "delivery.exhausted",
    "endpoint.key_blocked",
    "source.silent",
    "source.verification_failing",
];

/// The types the host application posts: the catalog without `webhook.test` (the test button's)
/// and the operational events.
pub fn intake_types() -> impl Iterator<Item = &'static EventType> {
    catalog().iter().filter(|t| t.name != "webhook.test" && !OPERATIONAL.contains(&t.name))
}

pub fn find(name: &str) -> Option<&'static EventType> {
    catalog().iter().find(|t| t.name == name)
}

/// The schema of the envelope's optional `actor` (the same in every type's file).
pub fn actor_schema() -> &'static Value {
    &catalog()[0].schema["properties"]["actor"]
}

/// True when an endpoint with these filters receives events of `event_type` (no filter: every
/// type).
pub fn wants(filters: &[String], event_type: &str) -> bool {
    filters.is_empty() || filters.iter().any(|f| filter_matches(f, event_type))
}

/// True when `filter` (a type, `prefix.*`, or `*`) matches `event_type`.
pub fn filter_matches(filter: &str, event_type: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => filter == event_type,
    }
}

/// Whether a filter names at least one catalog type (so a typo is caught when it is entered).
pub fn filter_is_known(filter: &str) -> bool {
    filterable().any(|t| filter_matches(filter, t.name))
}

/// The types an endpoint's filters may name: every type but the operational ones.
pub fn filterable() -> impl Iterator<Item = &'static EventType> {
    catalog().iter().filter(|t| !OPERATIONAL.contains(&t.name))
}

pub use crate::model::error::Problem;

/// Validates `value` against `schema`, appending every problem found under `path`.
pub fn validate(schema: &Value, value: &Value, path: &str, out: &mut Vec<Problem>) {
    let Some(s) = schema.as_object() else { return };
    let mut push = |message: String| out.push(Problem { path: path.to_string(), message });
    if let Some(c) = s.get("const") {
        if !json_equal(c, value) {
            push(format!("must be {c}"));
            return;
        }
    }
    if let Some(Value::Array(options)) = s.get("enum") {
        if !options.iter().any(|o| json_equal(o, value)) {
            let list: Vec<String> = options.iter().map(Value::to_string).collect();
            push(format!("must be one of {}", list.join(", ")));
            return;
        }
    }
    if let Some(Value::String(t)) = s.get("type") {
        if !has_type(t, value) {
            push(format!("must be {} {t}, not {}", article(t), type_name(value)));
            return;
        }
    }
    // A list of types (operational events: `["string", "null"]`).
    if let Some(Value::Array(types)) = s.get("type") {
        let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
        if !names.iter().any(|t| has_type(t, value)) {
            push(format!("must be {}, not {}", names.join(" or "), type_name(value)));
            return;
        }
    }
    match value {
        Value::String(text) => {
            let chars = text.chars().count() as u64;
            if let Some(min) = s.get("minLength").and_then(Value::as_u64) {
                if chars < min {
                    push(if min == 1 {
                        "must not be empty".into()
                    } else {
                        format!("must be at least {min} characters")
                    });
                }
            }
            if let Some(max) = s.get("maxLength").and_then(Value::as_u64) {
                if chars > max {
                    push(format!("must be at most {max} characters"));
                }
            }
            if s.get("format").and_then(Value::as_str) == Some("date-time")
                && crate::model::time::parse_rfc3339(text).is_none()
            {
                push("must be an RFC 3339 date-time such as 2026-11-22T23:11:55Z".into());
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
                if x < min {
                    push(format!("must be at least {min}"));
                }
            }
            if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
                if x > max {
                    push(format!("must be at most {max}"));
                }
            }
        }
        Value::Array(items) => {
            if let Some(min) = s.get("minItems").and_then(Value::as_u64) {
                if (items.len() as u64) < min {
                    push(format!("must have at least {min} item{}", if min == 1 { "" } else { "s" }));
                }
            }
            if let Some(item_schema) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => validate_object(s, map, path, out),
        _ => {}
    }
}

fn validate_object(s: &Map<String, Value>, map: &Map<String, Value>, path: &str, out: &mut Vec<Problem>) {
    let empty = Map::new();
    let props = s.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    if let Some(Value::Array(required)) = s.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(name) {
                out.push(Problem { path: child(path, name), message: "is required".into() });
            }
        }
    }
    for (name, v) in map {
        match props.get(name) {
            Some(p) => validate(p, v, &child(path, name), out),
            None if s.get("additionalProperties") == Some(&Value::Bool(false)) => {
                let known: Vec<&str> = props.keys().map(String::as_str).collect();
                out.push(Problem {
                    path: child(path, name),
                    message: format!("is not a known field (known: {})", known.join(", ")),
                });
            }
            None => {}
        }
    }
}

/// `$.data` + `alias` → `$.data.alias`; names that are not identifiers are quoted.
pub fn child(path: &str, name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("{path}.{name}")
    } else {
        format!("{path}[{}]", Value::String(name.to_string()))
    }
}

fn has_type(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => match v {
            Value::Number(n) => n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0),
            _ => false,
        },
        _ => false,
    }
}

/// JSON equality where 1 and 1.0 are the same number, as JSON Schema defines it.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn article(t: &str) -> &'static str {
    if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// Checks that a schema uses only keywords the interpreter implements.
pub fn unsupported_keywords(schema: &Value, path: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    for (k, v) in s {
        if !KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
            out.push(format!("{path}/{k}"));
        }
        match k.as_str() {
            "properties" => {
                for (name, sub) in v.as_object().into_iter().flatten() {
                    unsupported_keywords(sub, &format!("{path}/properties/{name}"), out);
                }
            }
            "items" => unsupported_keywords(v, &format!("{path}/items"), out),
            "type" if !(v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Value::is_string))) => {
                out.push(format!("{path}/type (a type or a list of types)"))
            }
            "additionalProperties" if !v.is_boolean() => {
                out.push(format!("{path}/additionalProperties (only true/false)"))
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_schema_file_is_in_the_catalog_and_well_formed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/v1");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_string())
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = catalog().iter().map(|t| t.name.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        for t in catalog() {
            let mut bad = Vec::new();
            unsupported_keywords(&t.schema, "", &mut bad);
            assert!(bad.is_empty(), "{}: unsupported keywords {bad:?}", t.name);
            assert_eq!(t.schema["properties"]["type"]["const"], json!(t.name));
            assert!(!t.description().is_empty());
            assert_eq!(&t.schema["properties"]["actor"], actor_schema(), "{}: one actor shape", t.name);
        }
    }

    #[test]
    fn filters_with_wildcards() {
        assert!(filter_matches("*", "email.spam"));
        assert!(filter_matches("email.*", "email.spam"));
        assert!(!filter_matches("email.*", "usage.threshold"));
        assert!(filter_matches("usage.threshold", "usage.threshold"));
        assert!(!filter_matches("usage.threshold", "usage.threshold2"));
        assert!(filter_is_known("usage.*"));
        assert!(!filter_is_known("emial.*"));
    }

    #[test]
    fn problems_name_their_json_paths() {
        let t = find("email.forwarded").unwrap();
        let mut out = Vec::new();
        validate(
            t.data_schema(),
            &json!({"alias": "", "destinations": ["a@b", 3], "size_bytes": "big", "extra": 1}),
            "$.data",
            &mut out,
        );
        let paths: Vec<&str> = out.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"$.data.message_id"), "{out:?}");
        assert!(paths.contains(&"$.data.alias"));
        assert!(paths.contains(&"$.data.destinations[1]"));
        assert!(paths.contains(&"$.data.size_bytes"));
        assert!(paths.contains(&"$.data.extra"));
        assert_eq!(out.len(), 5, "{out:?}");
    }
}
