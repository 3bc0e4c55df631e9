//! QSM Webhooks: outgoing, user-configured webhooks for applications on shared hosting.
//!
//! An event posted by the host application (`event`) fans out into one delivery per matching
//! endpoint (`endpoint`, `delivery`); a cron-started dispatcher (`dispatch`) claims due
//! deliveries, signs them (`signing`), sends them (`send`, with the SSRF policy of `network`),
//! records each attempt (`attempt`) and reschedules failures (`retry`). The CGI (`cgi`,
//! `routes`) and the CLI (`cli`) are thin layers over these modules; `config` and `db` hold the
//! environment and the SQLite file.

pub mod api;
pub mod attempt;
pub mod auth;
pub mod cgi;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod dispatch;
pub mod doctor;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod health;
pub mod id;
pub mod network;
pub mod pages;
pub mod probe;
pub mod retention;
pub mod retry;
pub mod routes;
pub mod schema;
pub mod secret;
pub mod send;
pub mod serve;
pub mod signing;
pub mod token;
pub mod user;
pub mod views;
