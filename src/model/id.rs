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

/// The smallest id of this kind created at or after `ms` (ids sort by creation time), to turn a
/// time range into an index range.
pub fn at(prefix: &str, ms: i64) -> String {
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms.max(0) as u64, 0))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_by_time_and_bounds_work() {
        let a = super::new("dlv");
        assert!(super::is("dlv", &a));
        assert!(!super::is("evt", &a));
        let now = chrono::Utc::now().timestamp_millis();
        assert!(super::at("dlv", now - 1000) < a);
        assert!(super::at("dlv", now + 1000) > a);
    }
}
