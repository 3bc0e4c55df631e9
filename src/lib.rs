//! QSM Webhooks: outgoing, user-configured webhooks for applications on shared hosting.
//!
//! The folders are the layers, and each imports only the ones below it:
//!
//! - [`model`]: pure types and rules (events, endpoints, deliveries, retry, errors). Imports
//!   nothing of ours.
//! - [`store`]: every SQL statement, behind typed operations. Uses `model`.
//! - [`outbound`]: what leaves the machine: the dispatcher, signing, sending, the SSRF resolver,
//!   the test probe. Uses `store`, `model` and `config`.
//! - [`inbound`]: provider webhooks as they come in: verified (with Circle's key server),
//!   logged, relayed, re-checked. Uses `outbound`, `store`, `model` and `config`.
//! - [`web`]: the CGI: request and response, routes, sign-in, the JSON API, the pages. Uses
//!   `inbound`, `outbound`, `store`, `model` and `config`.
//! - [`cli`]: the `webhooks` commands, `doctor` and `serve`. Uses the same as `web`, and never
//!   `web` itself: the `webhooks` binary hands it the CGI's entry point for `webhooks cgi`.
//!
//! [`config`] is the checked `.env`, read by `outbound`, `web` and `cli`. An event's path through
//! them, file by file: `docs/architecture.md`.

pub mod cli;
pub mod config;
pub mod inbound;
pub mod model;
pub mod outbound;
pub mod store;
pub mod web;
