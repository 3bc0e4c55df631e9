//! What a handler gets: the configuration, the request, path parameters, who is asking, and the
//! store, opened on first use.

use crate::config::Config;
use crate::model::secret::Keyring;
use crate::model::Result as ModelResult;
use crate::store::{Db, Store};
use crate::web::auth::{self, Viewer};
use crate::web::error::HttpError;
use crate::web::http::Request;

pub struct Ctx<'a> {
    pub cfg: &'a Config,
    pub req: &'a Request,
    pub params: Vec<String>,
    pub viewer: Option<Viewer>,
    /// The browser's CSRF nonce (pages) and whether it must be set as a cookie.
    pub csrf_nonce: String,
    pub set_csrf_cookie: bool,
    store: Option<Store>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(cfg: &'a Config, req: &'a Request, params: Vec<String>, csrf: (String, bool)) -> Ctx<'a> {
        let (csrf_nonce, set_csrf_cookie) = csrf;
        Ctx { cfg, req, params, viewer: None, csrf_nonce, set_csrf_cookie, store: None }
    }

    fn store(&mut self) -> Result<&mut Store, HttpError> {
        if self.store.is_none() {
            self.store = Some(Store::open(&self.cfg.database)?);
        }
        Ok(self.store.as_mut().expect("just opened"))
    }

    /// The store for reads (and single-statement writes).
    pub fn db(&mut self) -> Result<Db<'_>, HttpError> {
        Ok(self.store()?.db())
    }

    /// Runs `f` in one immediate transaction, committed only when it succeeds.
    pub fn write<T>(&mut self, f: impl FnOnce(Db<'_>) -> ModelResult<T>) -> Result<T, HttpError> {
        Ok(self.store()?.write(f)?)
    }

    /// Like [`Ctx::write`], but hands the operation's own error back to the handler (a form
    /// shows its problems beside its fields); only failing to open the store is an HTTP error.
    pub fn try_write<T>(&mut self, f: impl FnOnce(Db<'_>) -> ModelResult<T>) -> Result<ModelResult<T>, HttpError> {
        Ok(self.store()?.write(f))
    }

    pub fn keyring(&self) -> Result<Keyring, HttpError> {
        self.cfg.keyring().map_err(|e| {
            eprintln!("webhooks-cgi: {e}");
            HttpError::new(
                500,
                "misconfigured",
                "the server has no secret key yet; the operator must run `webhooks init`",
            )
        })
    }

    pub fn viewer(&self) -> &Viewer {
        self.viewer.as_ref().expect("the router checks sign-in before page and API handlers")
    }

    pub fn param(&self) -> &str {
        self.params.first().map(String::as_str).unwrap_or("")
    }

    /// The user a page is for (pages are only ever shown to a user, never the application).
    pub fn user(&self) -> &str {
        self.viewer().principal.user().expect("the router lets only users see pages")
    }

    /// The CSRF token for forms on this page.
    pub fn csrf(&self) -> String {
        let user = self.viewer.as_ref().and_then(|v| v.principal.user());
        match (user, self.cfg.secret_key.as_ref()) {
            (Some(user), Some(master)) => auth::csrf_token(master, user, &self.csrf_nonce),
            _ => String::new(),
        }
    }
}
