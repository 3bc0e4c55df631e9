//! HTML pages: server-rendered with Tera, working without JavaScript. Forms post back with a
//! CSRF token (checked by the router); success redirects (Post/Redirect/Get) except where a
//! secret or a test result must be shown once.
//!
//! One module per page family; `layout` holds what they share.

pub mod dashboard;
pub mod deliveries;
pub mod endpoints;
pub mod layout;
pub mod signin;
pub mod sources;
pub mod tokens;
pub mod verify;
