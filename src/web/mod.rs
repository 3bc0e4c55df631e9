//! The CGI program: the request and response at the CGI boundary (`cgi`), the route table and
//! sign-in checks (`routes`, `auth`), the JSON API (`api`), the pages (`pages`, rendered by
//! `views`), and the one place library errors become HTTP statuses (`error`). Uses `outbound`,
//! `store`, `model` and `config`.

pub mod api;
pub mod auth;
pub mod cgi;
pub mod error;
pub mod pages;
pub mod routes;
pub mod views;
