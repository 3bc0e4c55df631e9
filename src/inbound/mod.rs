//! Provider webhooks as they come in (docs/inbound.md): verifying a request against its
//! source's secrets and keys (`verify`, with Circle's key server in `keys`), and taking it
//! (`receive`): logging it, rejects included, and relaying an accepted one through the
//! dispatcher; re-checking a stored reject after the operator fixed a secret. The CGI's `/in/`
//! handler, the API, the pages and the CLI all call these, so that each rule has one home.
//! Uses `outbound` (the key fetch's sender, the detached dispatcher), `store`, `model` and
//! `config`; never `web` or `cli`.

pub mod keys;
pub mod new_source;
pub mod receive;
pub mod verify;
