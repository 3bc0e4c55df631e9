//! The CGI program, top down: `routes` (the process: read, route, check who is asking, answer;
//! the one table of routes), `inbound` (the providers' `/in/{token}`, answered before any
//! routing so that a source's own size limit applies to its body), the handlers in `api` (JSON) and `pages` (HTML, rendered by
//! `views`), `auth` (what a handler gets: who is asking, by session, login link or token, with
//! CSRF tokens for forms), `cgi` (the request and response at the CGI boundary) and `error` (the
//! one place a library error gets its HTTP status). Each module imports only those after it in
//! this list. Uses `outbound`, `store`, `model` and `config`.

pub mod api;
pub mod api_inbound;
pub mod auth;
pub mod cgi;
pub mod error;
pub mod pages;
pub mod receiver;
pub mod routes;
pub mod views;
