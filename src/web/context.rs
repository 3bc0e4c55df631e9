//! What a handler gets ([`Ctx`]): the configuration, the request, its path parameters, who is
//! asking ([`Viewer`]), and the store, opened on first use.

use crate::config::Config;
use crate::model::principal::{check_name, Principal};
use crate::model::secret::Keyring;
use crate::model::Result as ModelResult;
use crate::store::{sessions, Db, Store};
use crate::web::auth::{csrf_token, session_user, SESSION_COOKIE};
use crate::web::cgi::Request;
use crate::web::error::HttpError;

/// Who is asking: a signed-in user of a page, or the principal of an API token. The application
/// and users named in `WEBHOOKS_ADMINS` are admins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub principal: Principal,
    pub admin: bool,
    /// The server-side session a session cookie signed in with (`None` for `REMOTE_USER` and
    /// tokens): signing out ends it.
    pub session: Option<String>,
}

impl Viewer {
    pub fn new(cfg: &Config, principal: Principal) -> Viewer {
        let admin = match &principal {
            Principal::App => true,
            Principal::User(u) => cfg.admins.iter().any(|a| a == u),
        };
        Viewer { principal, admin, session: None }
    }

    pub fn user(cfg: &Config, user: &str) -> Viewer {
        Viewer::new(cfg, Principal::User(user.to_string()))
    }

    /// `None` for admins (every user's data), else the user's own name.
    pub fn scope(&self) -> Option<&str> {
        if self.admin {
            None
        } else {
            self.principal.user()
        }
    }
}

/// Everything a handler needs: configuration, the request, path parameters, who is asking,
/// and the store, opened on first use.
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

    /// Where links to this program start: `WEBHOOKS_PUBLIC_URL`, else this request's own
    /// address (its `Host` and script name).
    pub fn public_base(&self) -> String {
        self.cfg.public_url.clone().unwrap_or_else(|| self.req.script_url())
    }

    /// The store itself, for operations that manage their own transactions.
    pub fn store(&mut self) -> Result<&mut Store, HttpError> {
        if self.store.is_none() {
            self.store = Some(Store::open(&self.cfg.database)?);
        }
        Ok(self.store.as_mut().expect("just opened"))
    }

    /// Whether what this request wrote or read is in the file the configured path names now
    /// (always, unless a SQLite file was moved away meanwhile); nothing to check when the
    /// request never opened the store.
    pub fn check_in_place(&self) -> Result<(), HttpError> {
        match &self.store {
            Some(store) => Ok(store.check_in_place()?),
            None => Ok(()),
        }
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

    /// A `Set-Cookie` value for this request: one that works inside another site's frame when
    /// the request is framed there (`embed::cross_site`).
    pub fn cookie(&self, name: &str, value: &str, max_age: Option<i64>) -> String {
        crate::web::auth::cookie_header(
            self.req,
            name,
            value,
            max_age,
            crate::web::embed::cross_site(self.cfg, self.req),
        )
    }

    /// How the pages look for this request: framed or whole, with the host's theme or not.
    pub fn look(&self) -> crate::web::views::Look {
        crate::web::views::Look {
            embed: crate::web::embed::framed(self.req),
            theme: crate::web::embed::theme_version(self.cfg),
        }
    }

    /// The CSRF token for forms on this page.
    pub fn csrf(&self) -> String {
        let user = self.viewer.as_ref().and_then(|v| v.principal.user());
        match (user, self.cfg.secret_key.as_ref()) {
            (Some(user), Some(master)) => csrf_token(master, user, &self.csrf_nonce),
            _ => String::new(),
        }
    }
}

impl Ctx<'_> {
    /// The viewer of a page request: `REMOTE_USER` first (the web server authenticated it), then
    /// a session cookie whose session is live in the store (not signed out, not revoked).
    pub fn page_viewer(&mut self, master: &[u8; 32], now_s: i64) -> Result<Option<Viewer>, HttpError> {
        if let Some(u) = self.req.remote_user.as_deref().filter(|u| check_name("user", u).is_ok()) {
            return Ok(Some(Viewer::user(self.cfg, u)));
        }
        let Some(cookie) = self.req.cookie(SESSION_COOKIE) else { return Ok(None) };
        let Some((user, sid)) = session_user(master, &cookie, now_s) else { return Ok(None) };
        if !sessions::is_live(self.db()?, &sid, &user, now_s * 1000)? {
            return Ok(None);
        }
        let mut viewer = Viewer::user(self.cfg, &user);
        viewer.session = Some(sid);
        Ok(Some(viewer))
    }
}
