//! What leaves the machine: the dispatcher run (`dispatch`), signing (`signing`), sending with
//! failure classification (`send`), the resolver that applies the SSRF policy to the addresses
//! actually connected to (`network`), and the test button's probe (`probe`). Uses `store`,
//! `model` and `config`; never `web` or `cli`.

pub mod dispatch;
pub mod network;
pub mod notify;
pub mod probe;
pub mod send;
pub mod signing;
