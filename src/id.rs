//! Identifiers: a type prefix and a ULID (`evt_01JDZ6Q8T6Y3N5K0W2X4V7B9CD`), sortable by
//! creation time, so "newest first" is an index scan on the id alone.

pub fn new(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new())
}

/// True when `s` looks like an id of this kind (used to answer 404 early, not as a security check).
pub fn is(prefix: &str, s: &str) -> bool {
    s.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|u| u.len() == 26 && ulid::Ulid::from_string(u).is_ok())
}
