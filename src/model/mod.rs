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
pub mod principal;

pub mod schema;
pub mod secret;
pub mod time;

pub use error::{Error, Problem, Result};
