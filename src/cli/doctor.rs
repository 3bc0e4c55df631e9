//! `webhooks doctor`: every deployment problem it can detect, each with its fix.

use std::path::Path;

use crate::config::Config;
use crate::model::health::STALE_AFTER;
use crate::model::inbound::{Provider, Reason};
use crate::model::time;
use crate::store::observations::{self, AUTH_MISSING, AUTH_PRESENT, MISSING_AUTH_STREAK};
use crate::store::{self, queue, Store};

/// One finding: `Ok` with what was checked, or a problem with its fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Ok(String),
    Problem { what: String, fix: String },
}

fn ok(s: impl Into<String>) -> Finding {
    Finding::Ok(s.into())
}

fn problem(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding::Problem { what: what.into(), fix: fix.into() }
}

#[cfg(unix)]
fn mode(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).ok().map(|m| m.permissions().mode() & 0o777)
}

/// Runs every check against a loaded configuration.
pub fn check(cfg: &Config) -> Vec<Finding> {
    let mut out = vec![ok("configuration parses")];
    match &cfg.env_file {
        None => out.push(problem(
            "no .env file was found (WEBHOOKS_ENV, the current directory, or beside the program)",
            "run `webhooks init` in the install root, or set WEBHOOKS_ENV in the CGI wrapper",
        )),
        Some(p) => {
            match mode(p) {
                Some(m) if m & 0o077 != 0 => out.push(problem(
                    format!("{} can be read by other users (mode {m:o})", p.display()),
                    format!("chmod 600 {}", p.display()),
                )),
                _ => out.push(ok(format!("{} is private", p.display()))),
            }
            if p.components()
                .any(|c| c.as_os_str() == "public_html" || c.as_os_str() == "www" || c.as_os_str() == "htdocs")
            {
                out.push(problem(
                    format!("{} is inside the web root", p.display()),
                    "move the install root (with .env and var/) outside public_html and point the CGI wrapper at it",
                ));
            }
        }
    }
    if cfg.secret_key.is_none() {
        out.push(problem("WEBHOOKS_SECRET_KEY is not set", "run `webhooks init`"));
    } else {
        out.push(ok("WEBHOOKS_SECRET_KEY is set"));
    }
    if cfg.previous_secret_key.is_some() {
        out.push(problem(
            "a key rotation did not finish (WEBHOOKS_PREVIOUS_SECRET_KEY is set)",
            "run `webhooks rotate-key` again to finish it",
        ));
    }
    out.push(ok("templates are compiled into the programs"));
    match &cfg.public_url {
        Some(u) => out.push(ok(format!("links start with {u} (WEBHOOKS_PUBLIC_URL)"))),
        None => out.push(problem(
            "WEBHOOKS_PUBLIC_URL is not set: the links the CLI prints and mails (a source's URL to give a provider, login links) would name the local development server",
            "bin/webhooks init --public-url https://example.org/cgi-bin/webhooks.cgi (the CGI's public address)",
        )),
    }
    if let Some(theme) = &cfg.theme_css {
        match std::fs::read(theme) {
            Ok(_) => out.push(ok(format!("the theme {} is served after the product's stylesheet", theme.display()))),
            Err(e) => out.push(problem(
                format!(
                    "WEBHOOKS_THEME_CSS names {}, which cannot be read ({e}): the pages go without it",
                    theme.display()
                ),
                format!(
                    "create it, make it readable by the web server (chmod 644 {}), or empty the key",
                    theme.display()
                ),
            )),
        }
    }
    if !cfg.embed_origins.is_empty() {
        out.push(ok(format!("pages may be framed by {} (WEBHOOKS_EMBED_ORIGINS)", cfg.embed_origins.join(", "))));
    }

    if let Some(path) = cfg.database.file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        let writable = tempfile_in(dir);
        if !writable {
            out.push(problem(
                format!("the database directory {} is missing or not writable", dir.display()),
                format!("mkdir -p {0} && chmod 700 {0}", dir.display()),
            ));
            return out;
        }
        out.push(ok(format!("{} is writable", dir.display())));
        if !path.exists() {
            out.push(problem(format!("{} does not exist", path.display()), "run `webhooks init`"));
            return out;
        }
        if let Some(m) = mode(path) {
            if m & 0o077 != 0 {
                out.push(problem(
                    format!("{} can be read by other users (mode {m:o})", path.display()),
                    format!("chmod 600 {}", path.display()),
                ));
            }
        }
    }
    let db = match Store::open_unmigrated(&cfg.database) {
        Ok(c) => c,
        Err(e) => {
            let fix = match cfg.database.file() {
                Some(_) => "check WEBHOOKS_DATABASE and the file's permissions",
                None => "check WEBHOOKS_DATABASE (host, port, user, password, sslmode) and that the server is up",
            };
            out.push(problem(e.to_string(), fix));
            return out;
        }
    };
    let latest = db.latest_version();
    match db.schema_version() {
        Ok(v) if v < latest => out.push(problem(
            format!("database migrations pending (schema {v}, this program {latest})"),
            "run `webhooks init` (or any command): migrations apply automatically",
        )),
        Ok(v) if v > latest => out.push(problem(
            format!("the database (schema {v}) is newer than this program ({latest})"),
            "install the newer program, or restore the backup taken before the upgrade",
        )),
        Ok(v) => out.push(ok(format!("database schema is current ({v})"))),
        Err(e) => out.push(problem(format!("cannot read the database: {e}"), "restore a backup")),
    }
    if db.schema_version().ok() != Some(latest) {
        return out;
    }
    let now = time::now_ms();
    let last_run = queue::last_run_started(db.db()).ok().flatten();
    match last_run {
        None => out.push(problem("the dispatcher has never run", format!("add to your crontab: {}", cfg.cron_line()))),
        Some(t) if now - t > STALE_AFTER.as_millis() as i64 => out.push(problem(
            format!("the dispatcher last ran {} minutes ago", (now - t) / 60_000),
            format!("check the crontab line: {}", cfg.cron_line()),
        )),
        Some(t) => out.push(ok(format!("the dispatcher ran {} s ago", (now - t) / 1000))),
    }
    let observed = |name| observations::get(db.db(), name).ok().flatten();
    out.push(match (observed(AUTH_MISSING), observed(AUTH_PRESENT)) {
        (Some((at, n)), _) if n >= MISSING_AUTH_STREAK => problem(
            format!(
                "the last {n} API requests reached the CGI without an Authorization header \
                 (the latest {} s ago), and none has arrived with one since",
                (now - at).max(0) / 1000
            ),
            "if your clients send `Authorization: Bearer …`, the web server drops it: add \
             `CGIPassAuth On` to the .htaccess of the cgi-bin directory (Apache 2.4.13+)",
        ),
        (Some((_, n)), _) => ok(format!(
            "{} arrived without an Authorization header (a client that sent no token); \
             {MISSING_AUTH_STREAK} in a row would point at a missing `CGIPassAuth On`",
            crate::model::count(n, "API request", "API requests")
        )),
        (None, Some(_)) => ok("API requests arrive with their Authorization header"),
        (None, None) => ok("no API request seen yet"),
    });
    out.extend(sources(db.db(), now));
    out
}

/// Inbound sources: each one relays somewhere, reaches the program with its credentials, hears
/// from its provider and verifies what it hears.
fn sources(db: store::Db<'_>, now: i64) -> Vec<Finding> {
    let Ok(list) = store::sources::list(db) else {
        return vec![problem("cannot read the inbound sources", "restore a backup")];
    };
    let mut out = Vec::new();
    for s in list.iter().filter(|s| s.active) {
        let name = &s.name;
        let forwards = store::endpoints::list(db, Some(&s.user)).map(|l| l.len()).unwrap_or(0);
        if forwards == 0 {
            out.push(problem(
                format!("inbound source {name} relays nowhere: its accepted requests are logged and dropped"),
                format!("webhooks source update {name} --add-forward https://…"),
            ));
        }
        let missing = store::sources::rejects_for(db, &s.id, Reason::CredentialsMissing.as_str()).unwrap_or(0);
        if s.provider == Provider::Postmark && s.last_auth_seen_at.is_none() && missing >= MISSING_AUTH_STREAK {
            out.push(problem(
                format!(
                    "{} to inbound source {name} arrived without credentials, and none with them",
                    crate::model::count(missing, "request", "requests")
                ),
                "Postmark sends Basic credentials: add `CGIPassAuth On` to the .htaccess of the cgi-bin directory \
                 (Apache 2.4.13+), and give Postmark the URL with user:password@ (webhooks source show)",
            ));
        }
        if let Some(since) = s.silent_since {
            out.push(problem(
                format!(
                    "inbound source {name} has accepted nothing for longer than its expected gap ({} min since the alert)",
                    (now - since).max(0) / 60_000
                ),
                format!("check the provider's dashboard, then `webhooks inbound --source {name}`"),
            ));
        }
        if s.failing_since.is_some() {
            out.push(problem(
                format!("most requests to inbound source {name} in the last hour were rejected"),
                format!(
                    "`webhooks inbound --source {name} --outcome rejected` says why; after pasting the provider's \
                     current secret (`webhooks source rotate-secret {name} --secret …`), re-check them"
                ),
            ));
        }
    }
    if !list.is_empty() && out.is_empty() {
        out.push(ok(format!("{} inbound source(s): each relays somewhere and none needs attention", list.len())));
    }
    out
}

fn tempfile_in(dir: &Path) -> bool {
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    let ok = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Prints the findings; true when there is no problem.
pub fn report(findings: &[Finding]) -> bool {
    for f in findings {
        match f {
            Finding::Ok(s) => println!("ok       {s}"),
            Finding::Problem { what, fix } => println!("PROBLEM  {what}\n         fix: {fix}"),
        }
    }
    !findings.iter().any(|f| matches!(f, Finding::Problem { .. }))
}
