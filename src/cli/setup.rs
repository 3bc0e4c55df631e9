//! The installation's files: `webhooks init` (the `.env` with its key, the database) and
//! `webhooks rotate-key`, which rewrite the `.env` atomically and keep it private.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::config::{self, Config};
use crate::model::location::Location;
use crate::model::secret;
use crate::store::{endpoints, Store};

/// `webhooks init`: the `.env` (named by WEBHOOKS_ENV, else found, else created in the current
/// directory) gets a secret key if it has none, and the database is created and migrated.
pub fn init(public_url: Option<&str>) -> Result<()> {
    init_with(&[], public_url)
}

/// `init`, with `extra` lines written after the key when the `.env` is created, and the public
/// URL (`--public-url`) set in the `.env` when given.
pub fn init_with(extra: &[&str], public_url: Option<&str>) -> Result<()> {
    let public_url = match public_url {
        Some(u) => Some(
            crate::config::check_public_url(u)
                .map_err(|e| anyhow!("--public-url {u:?}: {e}"))?
                .ok_or_else(|| anyhow!("--public-url: give the CGI script's public URL"))?,
        ),
        None => None,
    };
    let env_path = match std::env::var_os("WEBHOOKS_ENV").filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => std::env::current_dir()?.join(".env"),
    };
    let created = ensure_env_file(&env_path, extra)?;
    if let Some(u) = &public_url {
        set_env_lines(&env_path, &["WEBHOOKS_PUBLIC_URL"], &[format!("WEBHOOKS_PUBLIC_URL={u}")])?;
    }
    // The new .env is where discovery looks first (WEBHOOKS_ENV, else the current directory).
    let cfg = Config::load()?;
    let file = cfg.database.file();
    if let Some(dir) = file.and_then(Path::parent) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let existed = file.is_none_or(Path::exists);
    let store = Store::create(&cfg.database)?;
    if let Some(path) = file {
        restrict(path)?;
    }
    println!(
        "{} {}\n{} {} (schema version {})",
        if created { "created" } else { "kept" },
        env_path.display(),
        if existed { "migrated" } else { "created" },
        cfg.database,
        store.latest_version()
    );
    Ok(())
}

/// `webhooks rotate-key`. Crash-safe: the `.env` first names the new key and keeps the old one
/// as `WEBHOOKS_PREVIOUS_SECRET_KEY` (secrets open with either), then every secret is
/// re-encrypted in one transaction, then the old key is removed from the `.env`.
pub fn rotate_key(cfg: &Config) -> Result<()> {
    use base64::Engine;
    let env_path = cfg.env_file.clone().ok_or_else(|| {
        anyhow!("no .env file was found: rotate-key rewrites the .env that holds WEBHOOKS_SECRET_KEY")
    })?;
    if std::env::var_os("WEBHOOKS_SECRET_KEY").is_some() {
        bail!(
            "WEBHOOKS_SECRET_KEY is set in the environment, which overrides {}: unset it, or change it where it is set",
            env_path.display()
        );
    }
    let old = cfg.keyring()?.current;
    // Resuming after an interrupted rotation: the .env already names the new key.
    let previous = cfg.previous_secret_key;
    let new = if previous.is_some() { old } else { secret::random_bytes::<32>() };
    let b64 = |k: &[u8; 32]| base64::engine::general_purpose::STANDARD.encode(k);
    let retiring = previous.unwrap_or(old);
    set_env_keys(&env_path, &b64(&new), Some(&b64(&retiring)))?;
    let (n, m) = Store::open(&cfg.database)?.write(|db| {
        Ok((endpoints::reseal_all(db, &new, &retiring)?, crate::store::sources::reseal_all(db, &new, &retiring)?))
    })?;
    set_env_keys(&env_path, &b64(&new), None)?;
    println!(
        "re-encrypted {n} endpoint secrets and {m} inbound source secrets, URL tokens and API keys under a new WEBHOOKS_SECRET_KEY in {}; signed-in users must sign in again",
        env_path.display()
    );
    Ok(())
}

/// Rewrites the `.env` atomically (temporary file, then rename) with these key lines, keeping
/// every other line as it was.
fn set_env_keys(path: &Path, current: &str, previous: Option<&str>) -> Result<()> {
    let mut add = vec![format!("WEBHOOKS_SECRET_KEY={current}")];
    if let Some(p) = previous {
        add.push(format!("WEBHOOKS_PREVIOUS_SECRET_KEY={p}"));
    }
    set_env_lines(path, &["WEBHOOKS_SECRET_KEY", "WEBHOOKS_PREVIOUS_SECRET_KEY"], &add)
}

/// Rewrites the `.env` without the lines setting `remove`, with `add` at its end, atomically
/// (a new file renamed over the old, mode 0600).
fn set_env_lines(path: &Path, remove: &[&str], add: &[String]) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start().trim_start_matches("export ");
            !remove.iter().any(|k| t.starts_with(&format!("{k}=")))
        })
        .map(String::from)
        .collect();
    lines.extend(add.iter().cloned());
    let tmp = path.with_extension("rotating");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, format!("{}\n", lines.join("\n")).as_bytes(), false)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// `webhooks migrate-store --to URL`: copies this SQLite installation into the empty PostgreSQL
/// database at `to` (`store::migrate_store`), then points the `.env` at it. Returns what was copied.
pub fn migrate_store(cfg: &Config, to: &str) -> Result<(crate::store::migrate_store::Copied, bool)> {
    let target = Location::parse(to, &cfg.root);
    if target.file().is_some() {
        bail!("--to must be a postgres:// or postgresql:// URL (got {to:?})");
    }
    if cfg.database.file().is_none() {
        bail!("WEBHOOKS_DATABASE is PostgreSQL already ({}): migrate-store copies a SQLite installation", cfg.database);
    }
    let mut from = Store::open(&cfg.database)?;
    let mut into = Store::open(&target)?;
    let copied = crate::store::migrate_store::copy(&mut from, &mut into)?;
    // The SQLite file now refuses writes: the .env names the new store at once (unless the
    // process environment sets WEBHOOKS_DATABASE, which would override it anyway).
    let switched = match (&cfg.env_file, std::env::var_os("WEBHOOKS_DATABASE")) {
        (Some(path), None) => {
            set_env_lines(path, &["WEBHOOKS_DATABASE"], &[format!("WEBHOOKS_DATABASE={to}")])?;
            true
        }
        _ => false,
    };
    Ok((copied, switched))
}

/// Creates the `.env` (mode 0600) or adds a secret key to one that lacks it. Returns whether
/// the file was created.
fn ensure_env_file(path: &Path, extra: &[&str]) -> Result<bool> {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD.encode(secret::random_bytes::<32>());
    let line = format!(
        "# Generated by `webhooks init`. Keep this file secret and outside the web root.\n\
         # Every key and its default: .env.example\n\
         WEBHOOKS_SECRET_KEY={key}\n"
    );
    if !path.exists() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text: String = std::iter::once(line).chain(extra.iter().map(|l| format!("{l}\n"))).collect();
        write_private(path, text.as_bytes(), false)?;
        return Ok(true);
    }
    let existing = config::read_env_file(path)?;
    if existing.get("WEBHOOKS_SECRET_KEY").is_none_or(|v| v.trim().is_empty()) {
        if existing.contains_key("WEBHOOKS_SECRET_KEY") {
            bail!("{} has an empty WEBHOOKS_SECRET_KEY line: remove it and run init again", path.display());
        }
        write_private(path, format!("\n{line}").as_bytes(), true)?;
    }
    restrict(path)?;
    Ok(false)
}

fn write_private(path: &Path, bytes: &[u8], append: bool) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true);
    if append {
        opts.append(true);
    } else {
        opts.truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// Makes a file readable by its owner only (the CGI and cron run as that user under suexec).
pub fn restrict(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    }
    Ok(())
}
