//! The CGI program, top down: `cgi` (the process: read, route, write; a panic is a clean 500),
//! `routes` (the one table of routes, sign-in and CSRF checks), the handlers in `api` (JSON) and
//! `pages` (HTML, rendered by `views`), `ctx` (what a handler gets), `auth` (sessions, login
//! links, CSRF tokens), `http` (the request and response at the CGI boundary) and `error` (the
//! one place a library error gets its HTTP status). Each module imports only those after it in
//! this list. Uses `outbound`, `store`, `model` and `config`.

pub mod api;
pub mod auth;
pub mod cgi;
pub mod ctx;
pub mod error;
pub mod http;
pub mod pages;
pub mod routes;
pub mod views;
