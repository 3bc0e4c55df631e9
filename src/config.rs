//! Configuration: raw strings from the environment and a `.env` file, checked once into a typed
//! [`Config`]. Sits beside the layers: it uses `model` only, and `outbound`, `web` and `cli` read
//! it (the store takes plain values). The process environment is read in exactly one place ([`Config::load`]); everything
//! else receives a `Config`.
//!
//! Discovery of the `.env` (first hit wins):
//! 1. `WEBHOOKS_ENV`, when set, names the file (it must exist);
//! 2. `.env` in the current directory;
//! 3. `.env` beside the running executable, or in one of its parent directories — unless the
//!    executable is build output inside a Cargo target directory.
//!
//! suexec strips `SetEnv` variables, so (3) is what makes a CGI find its configuration without
//! help: a `.env` in the install root above `cgi-bin/` or `bin/`. A binary under `target/` is not
//! an installation: were (3) to apply there, the `.env` that `webhooks serve` writes in a checkout
//! would capture every run of `target/*/webhooks`, tests included. Relative paths in the
//! configuration (the database) are taken relative to the directory holding the `.env`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::address::{Cidr, Policy};
use crate::model::delivery::Schedule;
use crate::model::location::Location;
use crate::model::secret::Keyring;
use crate::model::{Error, Result};

/// One configuration key: its name, default and the accepted form, in the order `.env.example`
/// lists them. The docs, `.env.example` and this table are checked against each other by a test.
pub struct Key {
    pub name: &'static str,
    pub default: &'static str,
    pub form: &'static str,
}

pub const KEYS: &[Key] = &[
    Key {
        name: "WEBHOOKS_DATABASE",
        default: "var/webhooks.db",
        form: "a file path (relative to the directory of the .env)",
    },
    Key {
        name: "WEBHOOKS_DB_CONNECT_TIMEOUT",
        default: "5s",
        form: "a duration from 1s to 5m such as 5s (PostgreSQL only)",
    },
    Key { name: "WEBHOOKS_SECRET_KEY", default: "", form: "base64 of 32 random bytes (run `webhooks init`)" },
    Key {
        name: "WEBHOOKS_PUBLIC_URL",
        default: "",
        form: "the CGI script's public http:// or https:// URL, such as https://example.org/cgi-bin/webhooks.cgi",
    },
    Key {
        name: "WEBHOOKS_RETRY_SCHEDULE",
        default: "1m,5m,30m,2h",
        form: "a comma-separated list of durations such as 1m,5m,30m,2h",
    },
    Key { name: "WEBHOOKS_MAX_ATTEMPTS", default: "5", form: "a whole number from 1 to 100" },
    Key { name: "WEBHOOKS_LOG_RETENTION", default: "30d", form: "a duration such as 30d" },
    Key { name: "WEBHOOKS_PAYLOAD_RETENTION", default: "7d", form: "a duration such as 7d" },
    Key { name: "WEBHOOKS_SKEW_TOLERANCE", default: "5m", form: "a duration such as 5m" },
    Key { name: "WEBHOOKS_CONCURRENCY", default: "8", form: "a whole number from 1 to 256" },
    Key { name: "WEBHOOKS_CONCURRENCY_PER_USER", default: "2", form: "a whole number from 1 to 256" },
    Key { name: "WEBHOOKS_TIME_BUDGET", default: "50s", form: "a duration such as 50s" },
    Key { name: "WEBHOOKS_REQUEST_TIMEOUT", default: "10s", form: "a duration from 1s to 5m such as 10s" },
    Key {
        name: "WEBHOOKS_ALLOWED_NETWORKS",
        default: "",
        form: "a comma-separated list of CIDRs such as 127.0.0.1/32,10.0.0.0/8 (or empty)",
    },
    Key { name: "WEBHOOKS_HEADER_PREFIX", default: "X-QSM", form: "letters, digits and dashes, such as X-QSM" },
    Key { name: "WEBHOOKS_MAX_BODY", default: "256KiB", form: "a size such as 256KiB, 1MiB or 65536" },
    Key { name: "WEBHOOKS_LOG_BODIES", default: "false", form: "true or false" },
    Key { name: "WEBHOOKS_DISPATCH_ON_INTAKE", default: "false", form: "true or false" },
    Key { name: "WEBHOOKS_ROTATION_GRACE", default: "24h", form: "a duration such as 24h" },
    Key { name: "WEBHOOKS_MAX_EVENTS_PER_REQUEST", default: "1000", form: "a whole number from 1 to 10000" },
    Key { name: "WEBHOOKS_MAX_ENDPOINTS_PER_USER", default: "20", form: "a whole number from 1 to 1000" },
    Key { name: "WEBHOOKS_ADMINS", default: "", form: "a comma-separated list of user names (or empty)" },
    Key { name: "WEBHOOKS_SESSION_TTL", default: "12h", form: "a duration from 1m to 30d such as 12h" },
    Key { name: "WEBHOOKS_LOGIN_LINK_TTL", default: "15m", form: "a duration from 10s to 1d such as 15m" },
    Key {
        name: "WEBHOOKS_EMBED_ORIGINS",
        default: "",
        form: "origins that may frame the pages, comma-separated, each scheme://host[:port] (https://shop.example.com, https://*.example.com), or empty for none",
    },
    Key {
        name: "WEBHOOKS_METRICS_USERS",
        default: "",
        form: "user names, comma-separated, whose own series the metrics show (or empty)",
    },
    Key {
        name: "WEBHOOKS_THEME_CSS",
        default: "",
        form: "the path of a .css file (relative to the .env's directory), or empty",
    },
    Key { name: "WEBHOOKS_TEST_TIMEOUT", default: "5s", form: "a duration from 1s to 30s such as 5s" },
    Key {
        name: "WEBHOOKS_PREVIOUS_SECRET_KEY",
        default: "",
        form: "base64 of 32 bytes, written only by `webhooks rotate-key`",
    },
    Key { name: "WEBHOOKS_DISABLE_AFTER", default: "72h", form: "a duration of at least 12h such as 72h, or off" },
    Key { name: "WEBHOOKS_HOLD_RETENTION", default: "7d", form: "a duration such as 7d" },
    Key { name: "WEBHOOKS_INBOUND_MAX_BODY", default: "1MiB", form: "a size from 1KiB to 64MiB such as 1MiB" },
    Key { name: "WEBHOOKS_INBOUND_BODY_RETENTION", default: "30d", form: "a duration such as 30d" },
    Key { name: "WEBHOOKS_INBOUND_RETENTION", default: "180d", form: "a duration of at least 4d such as 180d" },
    Key {
        name: "WEBHOOKS_INBOUND_REJECT_BUDGET",
        default: "1MiB",
        form: "a size such as 1MiB, or 0 to keep no rejected body",
    },
    Key { name: "WEBHOOKS_OPERATOR_URL", default: "", form: "an http:// or https:// URL (or empty)" },
    Key { name: "WEBHOOKS_OPERATOR_SECRET", default: "", form: "a secret whsec_ followed by base64 (or empty)" },
    Key {
        name: "WEBHOOKS_SENDMAIL",
        default: "/usr/sbin/sendmail -t -i",
        form: "a command that reads a mail on its input",
    },
    Key { name: "WEBHOOKS_OPERATOR_EMAIL", default: "", form: "an email address (or empty)" },
];

/// The checked configuration every part of the program works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The `.env` that was read, if any.
    pub env_file: Option<PathBuf>,
    /// The directory relative paths are resolved against.
    pub root: PathBuf,
    pub database: Location,
    /// `None` until `webhooks init` has generated one.
    pub secret_key: Option<[u8; 32]>,
    /// `WEBHOOKS_PUBLIC_URL`: the CGI script's public address, without a trailing slash; every
    /// printed or mailed link starts with it.
    pub public_url: Option<String>,
    pub retry_schedule: Vec<Duration>,
    pub max_attempts: u32,
    pub log_retention: Duration,
    pub payload_retention: Duration,
    pub skew_tolerance: Duration,
    pub concurrency: usize,
    pub concurrency_per_user: usize,
    pub time_budget: Duration,
    pub request_timeout: Duration,
    pub allowed_networks: Vec<Cidr>,
    pub header_prefix: String,
    pub max_body: u64,
    pub log_bodies: bool,
    /// After an intake that created deliveries, start one detached, lock-guarded dispatcher run.
    pub dispatch_on_intake: bool,
    pub rotation_grace: Duration,
    pub max_events_per_request: usize,
    pub max_endpoints_per_user: usize,
    /// Users who may see and manage every user's data.
    pub admins: Vec<String>,
    pub session_ttl: Duration,
    pub login_link_ttl: Duration,
    /// `WEBHOOKS_EMBED_ORIGINS`: origins whose pages may frame ours (CSP `frame-ancestors`);
    /// empty: none may.
    pub embed_origins: Vec<String>,
    /// `WEBHOOKS_METRICS_USERS`: users with series of their own in the metrics (each is a few
    /// series more; everyone's would be millions).
    pub metrics_users: Vec<String>,
    /// `WEBHOOKS_THEME_CSS`: the host's stylesheet, served after ours at `/static/theme.css`.
    pub theme_css: Option<PathBuf>,
    /// How long the test button waits for a receiver.
    pub test_timeout: Duration,
    /// The key being replaced while `webhooks rotate-key` runs.
    pub previous_secret_key: Option<[u8; 32]>,
    /// The failure rule: `None` when `WEBHOOKS_DISABLE_AFTER=off`.
    pub disable_after: Option<Duration>,
    /// How long deliveries are held for a disabled endpoint before they go dead.
    pub hold_retention: Duration,
    /// `WEBHOOKS_INBOUND_MAX_BODY`: the largest inbound body a source takes unless it says otherwise.
    pub inbound_max_body: u64,
    /// `WEBHOOKS_INBOUND_BODY_RETENTION`: how long inbound request bodies are kept.
    pub inbound_body_retention: Duration,
    /// `WEBHOOKS_INBOUND_RETENTION`: inbound request metadata and the duplicate check.
    pub inbound_retention: Duration,
    /// `WEBHOOKS_INBOUND_REJECT_BUDGET`: bytes of rejected bodies kept per source per hour.
    pub inbound_reject_budget: u64,
    /// Where operational events are posted, and the secret they are signed with.
    pub operator_url: Option<String>,
    pub operator_secret: Option<String>,
    /// The sendmail command line, and where operational events are mailed.
    pub sendmail: String,
    pub operator_email: Option<String>,
}

impl Config {
    /// Reads the process environment and the discovered `.env`. Process variables win over the
    /// file, so a wrapper script or a test can override one key.
    pub fn load() -> Result<Config> {
        let process = process_vars()?;
        let env_file = discover_env_file(&process)?;
        let mut raw = BTreeMap::new();
        if let Some(path) = &env_file {
            raw = read_env_file(path)?;
        }
        for (k, v) in process {
            if k.starts_with("WEBHOOKS_") {
                raw.insert(k, v);
            }
        }
        let root = match &env_file {
            Some(p) => p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
            None => std::env::current_dir().map_err(|e| Error::internal("cannot read the current directory", e))?,
        };
        Config::from_raw(&raw, env_file, root)
    }

    /// Checks raw key/value strings into a `Config`. Unknown `WEBHOOKS_*` keys are ignored so
    /// that a newer `.env` still works with an older binary.
    pub fn from_raw(raw: &BTreeMap<String, String>, env_file: Option<PathBuf>, root: PathBuf) -> Result<Config> {
        let get = |name: &str| -> (&'static Key, String) {
            let key = KEYS.iter().find(|k| k.name == name).expect("known key");
            let value = raw.get(name).map(|v| v.trim().to_string());
            (key, value.unwrap_or_else(|| key.default.to_string()))
        };
        let database = {
            let (key, v) = get("WEBHOOKS_DATABASE");
            if v.is_empty() {
                return Err(bad(key, &v));
            }
            let timeout =
                duration(get("WEBHOOKS_DB_CONNECT_TIMEOUT"), Some((Duration::from_secs(1), Duration::from_secs(300))))?;
            Location::parse(&v, &root).with_connect_timeout(timeout)
        };
        let secret_key = optional_secret(get("WEBHOOKS_SECRET_KEY"))?;
        let public_url = {
            let (key, v) = get("WEBHOOKS_PUBLIC_URL");
            check_public_url(&v).map_err(|_| bad(key, &v))?
        };
        let retry_schedule = {
            let (key, v) = get("WEBHOOKS_RETRY_SCHEDULE");
            let items: Result<Vec<_>> = v.split(',').map(|s| parse_duration(s.trim())).collect();
            items.ok().filter(|d| !d.is_empty()).ok_or_else(|| bad(key, &v))?
        };
        let theme_css = {
            let (key, v) = get("WEBHOOKS_THEME_CSS");
            if !v.is_empty() && !v.ends_with(".css") {
                return Err(bad(key, &v));
            }
            (!v.is_empty()).then(|| root.join(&v))
        };
        Ok(Config {
            env_file,
            root,
            database,
            secret_key,
            public_url,
            retry_schedule,
            max_attempts: number(get("WEBHOOKS_MAX_ATTEMPTS"), 1, 100)? as u32,
            log_retention: duration(get("WEBHOOKS_LOG_RETENTION"), None)?,
            payload_retention: duration(get("WEBHOOKS_PAYLOAD_RETENTION"), None)?,
            skew_tolerance: duration(get("WEBHOOKS_SKEW_TOLERANCE"), None)?,
            concurrency: number(get("WEBHOOKS_CONCURRENCY"), 1, 256)? as usize,
            concurrency_per_user: number(get("WEBHOOKS_CONCURRENCY_PER_USER"), 1, 256)? as usize,
            time_budget: duration(get("WEBHOOKS_TIME_BUDGET"), None)?,
            request_timeout: duration(
                get("WEBHOOKS_REQUEST_TIMEOUT"),
                Some((Duration::from_secs(1), Duration::from_secs(300))),
            )?,
            allowed_networks: {
                let (key, v) = get("WEBHOOKS_ALLOWED_NETWORKS");
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<Cidr>())
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(|_| bad(key, &v))?
            },
            header_prefix: {
                let (key, v) = get("WEBHOOKS_HEADER_PREFIX");
                let ok = !v.is_empty()
                    && v.len() <= 40
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !v.starts_with('-')
                    && !v.ends_with('-');
                if !ok {
                    return Err(bad(key, &v));
                }
                v
            },
            max_body: {
                let (key, v) = get("WEBHOOKS_MAX_BODY");
                parse_size(&v).filter(|n| *n >= 1024).ok_or_else(|| bad(key, &v))?
            },
            log_bodies: {
                let (key, v) = get("WEBHOOKS_LOG_BODIES");
                parse_bool(&v).ok_or_else(|| bad(key, &v))?
            },
            dispatch_on_intake: {
                let (key, v) = get("WEBHOOKS_DISPATCH_ON_INTAKE");
                parse_bool(&v).ok_or_else(|| bad(key, &v))?
            },
            rotation_grace: duration(get("WEBHOOKS_ROTATION_GRACE"), None)?,
            max_events_per_request: number(get("WEBHOOKS_MAX_EVENTS_PER_REQUEST"), 1, 10_000)? as usize,
            max_endpoints_per_user: number(get("WEBHOOKS_MAX_ENDPOINTS_PER_USER"), 1, 1000)? as usize,
            admins: names(get("WEBHOOKS_ADMINS"))?,
            session_ttl: duration(
                get("WEBHOOKS_SESSION_TTL"),
                Some((Duration::from_secs(60), Duration::from_secs(30 * 86_400))),
            )?,
            login_link_ttl: duration(
                get("WEBHOOKS_LOGIN_LINK_TTL"),
                Some((Duration::from_secs(10), Duration::from_secs(86_400))),
            )?,
            embed_origins: {
                let (key, v) = get("WEBHOOKS_EMBED_ORIGINS");
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(check_origin)
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(key, &v))?
            },
            theme_css,
            metrics_users: names(get("WEBHOOKS_METRICS_USERS"))?,
            test_timeout: duration(
                get("WEBHOOKS_TEST_TIMEOUT"),
                Some((Duration::from_secs(1), Duration::from_secs(30))),
            )?,
            previous_secret_key: optional_secret(get("WEBHOOKS_PREVIOUS_SECRET_KEY"))?,
            disable_after: {
                let (key, v) = get("WEBHOOKS_DISABLE_AFTER");
                if v == "off" {
                    None
                } else {
                    let d = parse_duration(&v).map_err(|_| bad(key, &v))?;
                    if d < crate::model::health::DEAD_SPAN_TO_DISABLE {
                        return Err(bad(key, &v));
                    }
                    Some(d)
                }
            },
            hold_retention: duration(get("WEBHOOKS_HOLD_RETENTION"), None)?,
            inbound_max_body: {
                let (key, v) = get("WEBHOOKS_INBOUND_MAX_BODY");
                parse_size(&v)
                    .filter(|n| (1024..=crate::model::inbound::MAX_BODY_LIMIT).contains(n))
                    .ok_or_else(|| bad(key, &v))?
            },
            inbound_body_retention: duration(get("WEBHOOKS_INBOUND_BODY_RETENTION"), None)?,
            inbound_retention: {
                // The duplicate check must outlast the providers' retries (Stripe's: 3 days).
                let range = (Duration::from_secs(4 * 86400), Duration::from_secs(3650 * 86400));
                duration(get("WEBHOOKS_INBOUND_RETENTION"), Some(range))?
            },
            inbound_reject_budget: {
                let (key, v) = get("WEBHOOKS_INBOUND_REJECT_BUDGET");
                parse_size(&v).filter(|n| *n <= 1 << 30).ok_or_else(|| bad(key, &v))?
            },
            operator_url: {
                let (key, v) = get("WEBHOOKS_OPERATOR_URL");
                let ok = v.is_empty()
                    || url::Url::parse(&v).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    return Err(bad(key, &v));
                }
                (!v.is_empty()).then_some(v)
            },
            operator_secret: {
                let (key, v) = get("WEBHOOKS_OPERATOR_SECRET");
                if !v.is_empty() && (!v.starts_with("whsec_") || crate::model::secret::decode(&v).is_err()) {
                    return Err(bad(key, "(hidden)"));
                }
                (!v.is_empty()).then_some(v)
            },
            sendmail: {
                let (key, v) = get("WEBHOOKS_SENDMAIL");
                if v.split_whitespace().next().is_none() {
                    return Err(bad(key, &v));
                }
                v
            },
            operator_email: {
                let (key, v) = get("WEBHOOKS_OPERATOR_EMAIL");
                let ok = v.is_empty()
                    || (v.len() <= 254
                        && v.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                        && !v.contains(|c: char| c.is_whitespace() || c == ',' || c == '<' || c == '>'));
                if !ok {
                    return Err(bad(key, &v));
                }
                (!v.is_empty()).then_some(v)
            },
        })
        .and_then(Config::check_operator)
    }

    /// The operator webhook is signed: a URL needs its secret.
    fn check_operator(self) -> Result<Config> {
        if self.operator_url.is_some() && self.operator_secret.is_none() {
            return Err(Error::Misconfigured(
                "WEBHOOKS_OPERATOR_URL is set but WEBHOOKS_OPERATOR_SECRET is not: set it to a whsec_ secret, \
                 the one the operator receiver verifies with"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// The keys that seal endpoint secrets (and, the current one, sign sessions): an operator
    /// error when `WEBHOOKS_SECRET_KEY` is absent.
    pub fn keyring(&self) -> Result<Keyring> {
        let current = self.secret_key.ok_or_else(|| {
            Error::Misconfigured(format!(
                "WEBHOOKS_SECRET_KEY is not set{}: run `webhooks init` to generate one",
                match &self.env_file {
                    Some(p) => format!(" in {}", p.display()),
                    None => " (no .env file was found)".to_string(),
                }
            ))
        })?;
        Ok(Keyring { current, previous: self.previous_secret_key })
    }

    /// Where deliveries may connect: public addresses, and `WEBHOOKS_ALLOWED_NETWORKS`.
    pub fn policy(&self) -> Policy {
        Policy { allowed: self.allowed_networks.clone() }
    }

    /// `WEBHOOKS_RETRY_SCHEDULE` and `WEBHOOKS_MAX_ATTEMPTS`.
    pub fn retry(&self) -> Schedule {
        Schedule { intervals: self.retry_schedule.clone(), max_attempts: self.max_attempts }
    }

    /// The failure rule (`WEBHOOKS_DISABLE_AFTER`).
    pub fn failure_rule(&self) -> crate::model::health::FailureRule {
        crate::model::health::FailureRule { disable_after: self.disable_after }
    }

    /// The retention settings.
    pub fn retention(&self) -> crate::model::delivery::Retention {
        crate::model::delivery::Retention {
            log: self.log_retention,
            payload: self.payload_retention,
            hold: self.hold_retention,
            inbound_body: self.inbound_body_retention,
            inbound: self.inbound_retention,
        }
    }

    /// The rule and the operator channels the dispatcher and re-enabling need.
    pub fn notify(&self) -> crate::model::health::Notify {
        crate::model::health::Notify {
            rule: self.failure_rule(),
            webhook: self.operator_url.is_some(),
            email: self.operator_email.is_some(),
        }
    }

    /// The crontab line that runs this installation's dispatcher every minute.
    pub fn cron_line(&self) -> String {
        format!("* * * * * cd {} && bin/webhooks dispatch >> var/dispatch.log 2>&1", self.root.display())
    }

    /// A lock file of this installation on this machine: beside a SQLite file; in the install
    /// root with PostgreSQL.
    pub fn lock_file(&self, name: &str) -> PathBuf {
        match self.database.file() {
            Some(p) => p.with_file_name(name),
            None => self.root.join(name),
        }
    }

    /// For commands that work on an installation: an error saying how to make one when no `.env`
    /// was found and the database does not exist either (a configuration given entirely by
    /// environment variables still works), instead of SQLite's "unable to open database file".
    pub fn require_installation(&self) -> Result<()> {
        if self.env_file.is_none() && self.database.file().is_some_and(|p| !p.exists()) {
            return Err(Error::Misconfigured(format!(
                "no .env was found (WEBHOOKS_ENV is not set; none in {} nor above the program): \
                 run `webhooks init` in the install root, or set WEBHOOKS_ENV to the path of its .env",
                self.root.display()
            )));
        }
        Ok(())
    }

    /// How long a claimed delivery stays leased: the request timeout plus the lesser of it and
    /// 30 s (20 s at the default 10 s; 5 m 30 s at the largest timeout, 5 m). Long enough for one
    /// request and its recording, short enough that a killed dispatcher's work is picked up
    /// again by a later cron run.
    pub fn lease(&self) -> Duration {
        self.request_timeout + self.request_timeout.min(Duration::from_secs(30))
    }
}

fn bad(key: &Key, value: &str) -> Error {
    Error::Misconfigured(format!("{} has an invalid value {:?}: expected {}", key.name, value, key.form))
}

/// A master key, or none when empty; the value is never echoed in the error.
fn optional_secret((key, v): (&'static Key, String)) -> Result<Option<[u8; 32]>> {
    if v.is_empty() {
        return Ok(None);
    }
    parse_secret_key(&v).map(Some).map_err(|_| bad(key, "(hidden)"))
}

fn number((key, v): (&'static Key, String), min: u64, max: u64) -> Result<u64> {
    v.parse::<u64>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| bad(key, &v))
}

fn duration((key, v): (&'static Key, String), range: Option<(Duration, Duration)>) -> Result<Duration> {
    let d = parse_duration(&v).map_err(|_| bad(key, &v))?;
    if let Some((lo, hi)) = range {
        if d < lo || d > hi {
            return Err(bad(key, &v));
        }
    }
    Ok(d)
}

/// Parses `90s`, `1m`, `2h`, `7d` (a whole number and one unit; `0s` is allowed).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() || digits.len() > 9 {
        return Err(Error::invalid("duration", "expected a number followed by s, m, h or d"));
    }
    let n: u64 = digits.parse().map_err(|_| Error::invalid("duration", "expected a whole number"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(Error::invalid("duration", "expected a unit of s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

/// [`parse_duration`] for a command-line flag: the error says which forms work.
pub fn duration_arg(s: &str) -> std::result::Result<Duration, String> {
    parse_duration(s).map_err(|_| format!("{s:?} is not a duration such as 30s, 5m, 2h or 1d"))
}

/// Formats a duration the way the configuration writes it (largest exact unit).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Parses `65536`, `256KiB`, `1MiB`, `1GiB`, `64KB`, `1MB` into bytes.
pub fn parse_size(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() || digits.len() > 12 {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let mult = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn parse_secret_key(s: &str) -> Result<[u8; 32]> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|_| Error::invalid("key", "is not base64"))?;
    bytes.try_into().map_err(|_| Error::invalid("key", "must decode to exactly 32 bytes"))
}

fn discover_env_file(process: &BTreeMap<String, String>) -> Result<Option<PathBuf>> {
    if let Some(p) = process.get("WEBHOOKS_ENV").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(p);
        if !path.is_file() {
            return Err(Error::Misconfigured(format!(
                "WEBHOOKS_ENV names {}, which is not a readable file",
                path.display()
            )));
        }
        return Ok(Some(path));
    }
    if let Ok(cwd) = std::env::current_dir() {
        let candidate = cwd.join(".env");
        if candidate.is_file() {
            return Ok(Some(candidate));
        }
    }
    Ok(std::env::current_exe().ok().and_then(|exe| env_file_above(&exe)))
}

/// `WEBHOOKS_PUBLIC_URL` (and `init --public-url`): empty, or an http(s) URL with a host and no
/// query or fragment; returned without its trailing slash.
pub fn check_public_url(v: &str) -> std::result::Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let u = url::Url::parse(v).map_err(|e| e.to_string())?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() || u.query().is_some() || u.fragment().is_some() {
        return Err("an http:// or https:// URL with a host, without ?query or #fragment".into());
    }
    Ok(Some(v.trim_end_matches('/').to_string()))
}

/// A comma-separated list of user names (`WEBHOOKS_ADMINS`, `WEBHOOKS_METRICS_USERS`).
fn names((key, v): (&'static Key, String)) -> Result<Vec<String>> {
    let names: Vec<String> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    if names.iter().any(|n| crate::model::principal::check_name("user", n).is_err()) {
        return Err(bad(key, &v));
    }
    Ok(names)
}

/// One origin of `WEBHOOKS_EMBED_ORIGINS`, lower-cased: `http(s)://` and a host name (its first
/// label may be `*`), an IPv4 address or `localhost`, with an optional port; no path, so that it
/// is exactly a CSP source expression and nothing can be smuggled into the header.
pub fn check_origin(v: &str) -> Option<String> {
    let v = v.to_ascii_lowercase();
    let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"))?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let host = host.strip_prefix("*.").unwrap_or(host);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    (!host.is_empty() && host.len() <= 253 && host.split('.').all(label_ok)).then_some(v)
}

/// The process's `WEBHOOKS_*` variables. The environment is read as bytes: a variable that is
/// not UTF-8 (a Latin-1 `LANG`, a header a web server passed on) is none of ours and is skipped,
/// where `std::env::vars` would panic; one of ours that is not UTF-8 is an error naming it.
fn process_vars() -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (k, v) in std::env::vars_os() {
        let Some(k) = k.to_str().filter(|k| k.starts_with("WEBHOOKS_")) else { continue };
        let v = v.into_string().map_err(|_| {
            Error::Misconfigured(format!("the environment variable {k} is not UTF-8 text; set it to plain text"))
        })?;
        out.insert(k.to_string(), v);
    }
    Ok(out)
}

/// The `.env` beside `exe` or in one of its parent directories; none for a binary inside a Cargo
/// target directory (Cargo marks each one's root with `CACHEDIR.TAG`).
pub fn env_file_above(exe: &Path) -> Option<PathBuf> {
    let dir = exe.parent()?;
    if dir.ancestors().any(is_cargo_target_dir) {
        return None;
    }
    dir.ancestors().map(|a| a.join(".env")).find(|c| c.is_file())
}

fn is_cargo_target_dir(dir: &Path) -> bool {
    dir.join("CACHEDIR.TAG").is_file()
}

/// Reads a `.env` file with dotenvy's parser (quotes, comments, `export`), without touching the
/// process environment.
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>> {
    let iter = dotenvy::from_path_iter(path)
        .map_err(|e| Error::Misconfigured(format!("cannot read the configuration file {}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for item in iter {
        let (k, v) =
            item.map_err(|e| Error::Misconfigured(format!("{} is not a valid .env file: {e}", path.display())))?;
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config> {
        let raw = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_raw(&raw, None, PathBuf::from("/srv/app"))
    }

    #[test]
    fn defaults_are_applied() {
        let c = load(&[]).unwrap();
        assert_eq!(c.database, Location::File(PathBuf::from("/srv/app/var/webhooks.db")));
        assert!(c.secret_key.is_none());
        let mins: Vec<u64> = c.retry_schedule.iter().map(|d| d.as_secs() / 60).collect();
        assert_eq!(mins, vec![1, 5, 30, 120]);
        assert_eq!(c.max_attempts, 5);
        assert_eq!(c.log_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.payload_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(c.skew_tolerance, Duration::from_secs(300));
        assert_eq!((c.concurrency, c.concurrency_per_user), (8, 2));
        assert_eq!(c.time_budget, Duration::from_secs(50));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert!(c.allowed_networks.is_empty());
        assert_eq!(c.header_prefix, "X-QSM");
        assert_eq!(c.max_body, 256 * 1024);
        assert!(!c.log_bodies);
        assert_eq!(c.rotation_grace, Duration::from_secs(86_400));
        assert_eq!(c.max_events_per_request, 1000);
        assert_eq!(c.max_endpoints_per_user, 20);
        assert!(c.admins.is_empty());
        assert_eq!(c.session_ttl, Duration::from_secs(12 * 3600));
        assert_eq!(c.login_link_ttl, Duration::from_secs(900));
        assert_eq!(c.test_timeout, Duration::from_secs(5));
    }

    #[test]
    fn values_are_parsed() {
        let c = load(&[
            ("WEBHOOKS_DATABASE", "/tmp/x.db"),
            ("WEBHOOKS_SECRET_KEY", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ("WEBHOOKS_RETRY_SCHEDULE", "90s, 2h,7d"),
            ("WEBHOOKS_MAX_BODY", "1MiB"),
            ("WEBHOOKS_ALLOWED_NETWORKS", "127.0.0.1/32, ::1, 10.0.0.0/8"),
            ("WEBHOOKS_LOG_BODIES", "yes"),
        ])
        .unwrap();
        assert_eq!(c.database, Location::File(PathBuf::from("/tmp/x.db")));
        assert_eq!(c.secret_key, Some([0u8; 32]));
        assert_eq!(
            c.retry_schedule,
            vec![Duration::from_secs(90), Duration::from_secs(7200), Duration::from_secs(604_800)]
        );
        assert_eq!(c.max_body, 1 << 20);
        assert_eq!(c.allowed_networks.len(), 3);
        assert!(c.allowed_networks[2].contains("10.9.8.7".parse().unwrap()));
        assert!(!c.allowed_networks[0].contains("127.0.0.2".parse().unwrap()));
        assert!(c.log_bodies);
    }

    #[test]
    fn every_bad_form_is_rejected_naming_the_key_and_the_form() {
        let cases = [
            ("WEBHOOKS_RETRY_SCHEDULE", "1m,,5m"),
            ("WEBHOOKS_RETRY_SCHEDULE", "1 minute"),
            ("WEBHOOKS_RETRY_SCHEDULE", ""),
            ("WEBHOOKS_MAX_ATTEMPTS", "0"),
            ("WEBHOOKS_MAX_ATTEMPTS", "five"),
            ("WEBHOOKS_MAX_ATTEMPTS", "-1"),
            ("WEBHOOKS_LOG_RETENTION", "30"),
            ("WEBHOOKS_PAYLOAD_RETENTION", "7w"),
            ("WEBHOOKS_SKEW_TOLERANCE", "5m30s"),
            ("WEBHOOKS_CONCURRENCY", "0"),
            ("WEBHOOKS_CONCURRENCY_PER_USER", "1000"),
            ("WEBHOOKS_TIME_BUDGET", "1.5m"),
            ("WEBHOOKS_REQUEST_TIMEOUT", "0s"),
            ("WEBHOOKS_REQUEST_TIMEOUT", "1h"),
            ("WEBHOOKS_ALLOWED_NETWORKS", "10.0.0.0/33"),
            ("WEBHOOKS_ALLOWED_NETWORKS", "localhost"),
            ("WEBHOOKS_HEADER_PREFIX", "X QSM"),
            ("WEBHOOKS_HEADER_PREFIX", ""),
            ("WEBHOOKS_MAX_BODY", "256kb"),
            ("WEBHOOKS_MAX_BODY", "12"),
            ("WEBHOOKS_LOG_BODIES", "maybe"),
            ("WEBHOOKS_SECRET_KEY", "c2hvcnQ="),
            ("WEBHOOKS_SECRET_KEY", "not base64!"),
            ("WEBHOOKS_DATABASE", ""),
            ("WEBHOOKS_ROTATION_GRACE", "forever"),
            ("WEBHOOKS_MAX_EVENTS_PER_REQUEST", "0"),
            ("WEBHOOKS_MAX_ENDPOINTS_PER_USER", "0"),
            ("WEBHOOKS_ADMINS", "root, bad name"),
            ("WEBHOOKS_SESSION_TTL", "10s"),
            ("WEBHOOKS_LOGIN_LINK_TTL", "2d"),
            ("WEBHOOKS_EMBED_ORIGINS", "shop.example.com"),
            ("WEBHOOKS_EMBED_ORIGINS", "https://shop.example.com/account"),
            ("WEBHOOKS_EMBED_ORIGINS", "https://a.example; script-src *"),
            ("WEBHOOKS_EMBED_ORIGINS", "*"),
            ("WEBHOOKS_EMBED_ORIGINS", "https://shop.example.com:"),
            ("WEBHOOKS_EMBED_ORIGINS", "javascript://x"),
            ("WEBHOOKS_THEME_CSS", "theme.txt"),
            ("WEBHOOKS_METRICS_USERS", "alice, bad name"),
            ("WEBHOOKS_TEST_TIMEOUT", "1m"),
            ("WEBHOOKS_PREVIOUS_SECRET_KEY", "short"),
        ];
        for (key, value) in cases {
            let err = load(&[(key, value)]).expect_err(&format!("{key}={value:?} must fail"));
            let msg = err.to_string();
            let form = KEYS.iter().find(|k| k.name == key).unwrap().form;
            assert!(msg.starts_with(key), "{msg}");
            assert!(msg.contains(form), "{msg}");
        }
    }

    #[test]
    fn embed_origins_are_read_as_csp_sources_and_the_theme_relative_to_the_root() {
        let c = load(&[
            ("WEBHOOKS_EMBED_ORIGINS", " https://Shop.Example.com, http://localhost:8081,https://*.example.org "),
            ("WEBHOOKS_THEME_CSS", "theme/shop.css"),
        ])
        .unwrap();
        assert_eq!(c.embed_origins, ["https://shop.example.com", "http://localhost:8081", "https://*.example.org"]);
        assert_eq!(c.theme_css, Some(PathBuf::from("/srv/app/theme/shop.css")));
        let d = load(&[]).unwrap();
        assert!(d.embed_origins.is_empty() && d.theme_css.is_none());
    }

    #[test]
    fn the_failure_rule_and_the_operator_channels() {
        let c = load(&[]).unwrap();
        assert_eq!(
            (c.disable_after, c.hold_retention),
            (Some(Duration::from_secs(72 * 3600)), Duration::from_secs(7 * 86_400))
        );
        assert_eq!(c.notify(), crate::model::health::Notify { rule: c.failure_rule(), webhook: false, email: false });
        assert_eq!(load(&[("WEBHOOKS_DISABLE_AFTER", "off")]).unwrap().disable_after, None);
        for (key, value) in [
            ("WEBHOOKS_DISABLE_AFTER", "6h"),
            ("WEBHOOKS_OPERATOR_URL", "ftp://x/"),
            ("WEBHOOKS_OPERATOR_EMAIL", "ops"),
            ("WEBHOOKS_OPERATOR_EMAIL", "a@b.c, d@e.f"),
            ("WEBHOOKS_OPERATOR_SECRET", "hunter2"),
        ] {
            let e = load(&[(key, value)]).expect_err(value).to_string();
            assert!(e.starts_with(key) && !e.contains("hunter2"), "{e}");
        }
        let e = load(&[("WEBHOOKS_OPERATOR_URL", "https://ops.example/h")]).unwrap_err().to_string();
        assert!(e.contains("WEBHOOKS_OPERATOR_SECRET is not"), "a URL needs its secret: {e}");
        let c = load(&[
            ("WEBHOOKS_OPERATOR_URL", "https://ops.example/h"),
            ("WEBHOOKS_OPERATOR_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("WEBHOOKS_OPERATOR_EMAIL", "ops@example.com"),
        ])
        .unwrap();
        assert!(c.notify().webhook && c.notify().email);
    }

    #[test]
    fn secret_key_is_never_echoed_in_errors() {
        let err = load(&[("WEBHOOKS_SECRET_KEY", "c2VjcmV0LXZhbHVl")]).unwrap_err();
        assert!(!err.to_string().contains("c2VjcmV0LXZhbHVl"));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5").is_err());
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(parse_size("256KiB"), Some(262_144));
        assert_eq!(parse_size("64KB"), Some(64_000));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("1 MiB"), None);
        assert_eq!(parse_size("999999999999GiB"), None);
    }

    #[test]
    fn the_env_above_a_binary_is_found_unless_it_is_cargo_build_output() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join(".env"), "WEBHOOKS_MAX_ATTEMPTS=3\n").unwrap();
        let installed = root.path().join("bin/webhooks");
        std::fs::create_dir_all(installed.parent().unwrap()).unwrap();
        assert_eq!(env_file_above(&installed), Some(root.path().join(".env")));
        let built = root.path().join("target/release/webhooks");
        std::fs::create_dir_all(built.parent().unwrap()).unwrap();
        assert_eq!(env_file_above(&built), Some(root.path().join(".env")), "not marked yet");
        std::fs::write(root.path().join("target/CACHEDIR.TAG"), "Signature: 8a477f597d28d172789f06886806bc55").unwrap();
        assert_eq!(env_file_above(&built), None, "a checkout's .env never configures its build output");
    }
}
