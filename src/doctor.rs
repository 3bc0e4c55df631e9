//! `webhooks doctor`: every deployment problem it can detect, each with its fix.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::clock;
use crate::config::Config;
use crate::db;

/// API requests in a row without an Authorization header before `doctor` calls it a problem:
/// one or two are a client that sent no token; a missing `CGIPassAuth` drops it from every one.
pub const MISSING_AUTH_STREAK: i64 = 3;

const AUTH_PRESENT: &str = "api_auth_present";
const AUTH_MISSING: &str = "api_auth_missing";

/// Notes whether an API request reached the CGI with its Authorization header. A request with
/// one ends any streak of requests without at once, so `doctor` clears as soon as the fix works;
/// other writes happen at most once a minute (this runs on every API request, and even an
/// INSERT that changes nothing takes the write lock). Failures are ignored: an observation must
/// never break a request.
pub fn observe_api_auth(conn: &Connection, present: bool) {
    let now = clock::now_ms();
    let (name, other) = if present { (AUTH_PRESENT, AUTH_MISSING) } else { (AUTH_MISSING, AUTH_PRESENT) };
    if present && observed(conn, other).is_some() {
        let _ = conn.execute("DELETE FROM observations WHERE name = ?1", [other]);
    }
    let fresh = |(at, count): (i64, i64)| at >= now - 60_000 && (present || count >= MISSING_AUTH_STREAK);
    if observed(conn, name).is_some_and(fresh) {
        return;
    }
    let _ = conn.execute(
        "INSERT INTO observations (name, at, count) VALUES (?1, ?2, 1)
         ON CONFLICT (name) DO UPDATE SET at = ?2, count = count + 1",
        params![name, now],
    );
}

/// When `name` was last seen, and how many times in a row.
fn observed(conn: &Connection, name: &str) -> Option<(i64, i64)> {
    conn.query_row("SELECT at, count FROM observations WHERE name = ?1", [name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .ok()
        .flatten()
}

/// A dispatcher not seen for this long is reported (by `doctor` and on the dashboard).
pub const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(180);

/// The crontab line that runs the dispatcher of the installation rooted at `root`.
pub fn cron_line(root: &Path) -> String {
    format!("* * * * * cd {} && bin/webhooks dispatch >> var/dispatch.log 2>&1", root.display())
}

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

    let dir = cfg.database.parent().unwrap_or(Path::new("."));
    let writable = tempfile_in(dir);
    if !writable {
        out.push(problem(
            format!("the database directory {} is missing or not writable", dir.display()),
            format!("mkdir -p {0} && chmod 700 {0}", dir.display()),
        ));
        return out;
    }
    out.push(ok(format!("{} is writable", dir.display())));
    if !cfg.database.exists() {
        out.push(problem(format!("{} does not exist", cfg.database.display()), "run `webhooks init`"));
        return out;
    }
    if let Some(m) = mode(&cfg.database) {
        if m & 0o077 != 0 {
            out.push(problem(
                format!("{} can be read by other users (mode {m:o})", cfg.database.display()),
                format!("chmod 600 {}", cfg.database.display()),
            ));
        }
    }
    let conn = match db::open_unmigrated(&cfg.database) {
        Ok(c) => c,
        Err(e) => {
            out.push(problem(format!("{e:#}"), "check WEBHOOKS_DATABASE and the file's permissions"));
            return out;
        }
    };
    match db::schema_version(&conn) {
        Ok(v) if v < db::latest_version() => out.push(problem(
            format!("database migrations pending (schema {v}, this program {})", db::latest_version()),
            "run `webhooks init` (or any command): migrations apply automatically",
        )),
        Ok(v) if v > db::latest_version() => out.push(problem(
            format!("the database (schema {v}) is newer than this program ({})", db::latest_version()),
            "install the newer program, or restore the backup taken before the upgrade",
        )),
        Ok(v) => out.push(ok(format!("database schema is current ({v})"))),
        Err(e) => out.push(problem(format!("cannot read the database: {e:#}"), "restore a backup")),
    }
    if db::schema_version(&conn).ok() != Some(db::latest_version()) {
        return out;
    }
    let now = clock::now_ms();
    let last_run: Option<i64> = conn.query_row("SELECT max(started_at) FROM runs", [], |r| r.get(0)).ok().flatten();
    match last_run {
        None => {
            out.push(problem("the dispatcher has never run", format!("add to your crontab: {}", cron_line(&cfg.root))))
        }
        Some(t) if now - t > STALE_AFTER.as_millis() as i64 => out.push(problem(
            format!("the dispatcher last ran {} minutes ago", (now - t) / 60_000),
            format!("check the crontab line: {}", cron_line(&cfg.root)),
        )),
        Some(t) => out.push(ok(format!("the dispatcher ran {} s ago", (now - t) / 1000))),
    }
    out.push(match (observed(&conn, AUTH_MISSING), observed(&conn, AUTH_PRESENT)) {
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
            "{n} API request{} arrived without an Authorization header (a client that sent no token); \
             {MISSING_AUTH_STREAK} in a row would point at a missing `CGIPassAuth On`",
            if n == 1 { "" } else { "s" }
        )),
        (None, Some(_)) => ok("API requests arrive with their Authorization header"),
        (None, None) => ok("no API request seen yet"),
    });
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
