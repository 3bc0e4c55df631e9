//! The domain: pure types and rules. Events and their catalog, endpoints, deliveries with their
//! status and failure codes, the retry schedule, health figures, address policy, secrets and the
//! one library error. No SQL, no HTTP, no configuration: this folder imports nothing of the crate
//! outside itself, so every rule here is testable on its own.

pub mod address;

pub mod delivery;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod health;
pub mod inbound;
pub mod location;
pub mod metrics;
pub mod notice;
pub mod pacing;
pub mod portal;
pub mod principal;

pub mod schema;
pub mod secret;
pub mod time;
pub mod token;

pub use error::{Error, Problem, Result};

/// A count with its noun, singular for one: `count(1, "delivery", "deliveries")` is
/// "1 delivery", `count(2, …)` "2 deliveries".
pub fn count(n: impl Into<i128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod count_tests {
    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(super::count(1u32, "delivery", "deliveries"), "1 delivery");
        assert_eq!(super::count(0u32, "delivery", "deliveries"), "0 deliveries");
        assert_eq!(super::count(2i64, "byte", "bytes"), "2 bytes");
    }
}
