//! The integration suite, one binary with a module per topic (ripgrep's layout): each module
//! drives the built binaries (`CARGO_BIN_EXE_*`) with a temp dir, an environment and stdin, or
//! reads the repository (`layers`, `operator_guide`, `snippets`, `deploy_files`). `common` is
//! what they share. Run one topic with `cargo test --test suite crash::`.

mod common;

mod api;
mod cli;
mod concurrency;
mod crash;
mod deploy_files;
mod dispatch;
mod edges;
mod endpoint_headers;
mod fuzz;
mod health;
mod inbound;
mod intake;
mod layers;
mod metrics;
mod operator_guide;
mod ordering;
mod pacing;
mod pages;
mod portal;
mod postgres;
mod readme_tour;
mod resource_bounds;
mod schemas;
mod serve;
mod snippets;
mod ssrf;
mod vectors;
mod web_security;
