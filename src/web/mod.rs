//! The CGI program, top down: `routes` (the process: read, route, check who is asking, answer;
//! the one table of routes), `receiver` (the providers' `/in/{token}`, answered before any
//! routing so that a source's own size limit applies to its body; the work is
//! `inbound::receive`), the handlers in `api` (JSON: events, endpoints, deliveries, tokens),
//! `api_sources` (JSON: inbound sources and their requests) and `pages` (HTML, rendered by
//! `views`), `context` (what a handler gets: the request, who is asking, the store), `auth`
//! (signing in by session, login link or `REMOTE_USER`, with CSRF tokens for forms), `cgi`
//! (the request and response at the CGI boundary) and `error` (the one place a library error
//! gets its HTTP status). Each module imports only those after it in this list. Uses
//! `inbound`, `outbound`, `store`, `model` and `config`; never `cli`.

pub mod api;
pub mod api_sources;
pub mod auth;
pub mod cgi;
pub mod context;
pub mod embed;
pub mod error;
pub mod pages;
pub mod receiver;
pub mod routes;
pub mod views;
