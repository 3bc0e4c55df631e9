//! The `webhooks` command line: cron dispatcher and admin tool. Parses arguments, loads the
//! configuration once, calls the library, prints one value (`--json`) or a human summary, and
//! turns errors into one line and an exit code (the only place besides `web` where a library
//! error meets the user). `args` defines the commands; `doctor` checks a deployment; `serve`
//! runs the product locally; `setup` writes the installation's files (`init`, `rotate-key`,
//! `migrate-store`); `source_commands` is `webhooks source …` and `webhooks inbound …`.
//! A top layer beside `web`, never using it (`webhooks cgi` runs the entry point the binary
//! hands over): uses `inbound`, `outbound`, `store`, `model` and `config`.

pub mod args;
pub mod doctor;
pub mod serve;
pub mod setup;
pub mod source_commands;

use std::io::Read;

use anyhow::{anyhow, bail, Context, Result};
use clap::Parser;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::args::{Cli, Command, EndpointCmd, SessionsCmd, TokenCmd};
use crate::config::Config;
use crate::model::address::Policy;
use crate::model::delivery::{Filter, Status};
use crate::model::endpoint::{Endpoint, Fields, Headers, OnDead, Ordering, SignatureCompat};
use crate::model::health::{DisabledReason, Health};
use crate::model::pacing;
use crate::model::portal;
use crate::model::principal::{check_name, Principal};
use crate::model::{event, principal, secret, time, Error};
use crate::outbound::{dispatch, network, probe, signing};
use crate::store::deliveries::ReplayOf;
use crate::store::endpoints::Backlog;
use crate::store::{deliveries, endpoints, events, ordering, principals, retention, Store};

/// Exit status when the database stayed locked past the busy timeout: sysexits' EX_TEMPFAIL
/// ("try again later"), so a script can tell it from a mistake to fix (1).
pub const EXIT_BUSY: i32 = 75;

/// Entry point of the `webhooks` binary; returns the process exit code. `cgi` answers one CGI
/// request from the process's environment and stdin, returning its exit code (the web's entry
/// point, which the binary hands over: the CLI itself never reaches into `web`).
pub fn main(cgi: fn() -> i32) -> i32 {
    let cli = Cli::parse();
    match run(cli, cgi) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("webhooks: {}", one_line(&e));
            exit_code(&e)
        }
    }
}

fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<Error>() {
        Some(Error::Busy | Error::Unavailable(_)) => EXIT_BUSY,
        _ => 1,
    }
}

/// One line for any error: a library error's message with each problem it lists (unless the
/// message already says it), anything else with its causes.
fn one_line(e: &anyhow::Error) -> String {
    match e.downcast_ref::<Error>() {
        Some(Error::Invalid { message, problems }) => {
            let parts: Vec<String> = problems
                .iter()
                .filter(|p| !message.ends_with(&p.message))
                .map(|p| format!("{} {}", p.path, p.message))
                .collect();
            if parts.is_empty() {
                message.clone()
            } else {
                format!("{message}: {}", parts.join("; "))
            }
        }
        _ => format!("{e:#}"),
    }
}

fn print<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        println!("{}", human(value));
    }
    Ok(())
}

fn run(cli: Cli, cgi: fn() -> i32) -> Result<()> {
    match cli.command {
        Command::Init { public_url } => setup::init(public_url.as_deref()),
        Command::Doctor => {
            let findings = match Config::load() {
                Ok(cfg) => doctor::check(&cfg),
                Err(e) => vec![doctor::Finding::Problem {
                    what: format!("{e:#}"),
                    fix: "correct that line of the .env (every key and its form: .env.example)".into(),
                }],
            };
            if doctor::report(&findings) {
                Ok(())
            } else {
                bail!("doctor found problems (see above)")
            }
        }
        Command::Serve(args) => serve::run(&args),
        Command::Cgi => {
            let code = cgi();
            if code != 0 {
                bail!("could not write the CGI response");
            }
            Ok(())
        }
        command => {
            let cfg = Config::load()?;
            if !matches!(command, Command::Verify { .. }) {
                cfg.require_installation()?;
            }
            run_with(&cfg, command)
        }
    }
}

fn run_with(cfg: &Config, command: Command) -> Result<()> {
    match command {
        Command::Init { .. } | Command::Serve(_) | Command::Cgi | Command::Doctor => {
            unreachable!("handled before loading")
        }
        Command::Dispatch { json, every } => {
            let report = |s: &dispatch::Summary| {
                if json {
                    println!("{}", serde_json::to_string(s).unwrap_or_default());
                } else {
                    println!("{}", s.line());
                }
            };
            match every {
                Some(d) => Ok(dispatch::run_every(cfg, d, report)?),
                None => {
                    report(&dispatch::run(cfg)?);
                    Ok(())
                }
            }
        }
        Command::Emit { user, event_type, data, occurred_at, idempotency_key, ordering_key, json } => {
            let data: Value =
                serde_json::from_str(&read_arg(&data)?).map_err(|e| anyhow!("--data is not valid JSON: {e}"))?;
            let mut intake = json!({"type": event_type, "user": user, "data": data});
            if let Some(t) = occurred_at {
                intake["occurred_at"] = json!(t);
            }
            if let Some(k) = idempotency_key {
                intake["idempotency_key"] = json!(k);
            }
            if let Some(k) = ordering_key {
                intake["ordering_key"] = json!(k);
            }
            let intakes = event::parse_request(&intake, &Principal::App, None, 1)?;
            let recorded = open(cfg)?.write(|db| events::record(db, cfg.payload_retention, &intakes))?;
            print(json, &recorded[0], |r| {
                format!(
                    "{}{} ({} queued)",
                    r.id,
                    if r.duplicate { " (already recorded)" } else { "" },
                    crate::model::count(r.deliveries as i64, "delivery", "deliveries")
                )
            })
        }
        Command::Endpoint(cmd) => endpoint_cmd(cfg, cmd),
        Command::Deliveries { status, user, endpoint, event_type, limit, json } => {
            let status = status.map(|s| Status::parse("--status", &s)).transpose()?;
            let filter = Filter { status, user, endpoint, event_type, limit, ..Filter::default() };
            let list = deliveries::list(open(cfg)?.db(), &filter)?;
            print(json, &list, |list| {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|d| {
                        vec![
                            d.id.clone(),
                            d.event_id.clone(),
                            d.event_type.clone(),
                            d.status.to_string(),
                            d.attempts.to_string(),
                            d.last_status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                            d.last_error_code.map(|c| c.as_str()).unwrap_or("").to_string(),
                        ]
                    })
                    .collect();
                table(&["DELIVERY", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "HTTP", "FAILURE"], &[4, 5], &rows)
            })
        }
        Command::Attempts { delivery_id, json } => {
            let store = open(cfg)?;
            deliveries::get(store.db(), &delivery_id)?;
            let list = deliveries::attempts(store.db(), &delivery_id)?;
            print(json, &list, |list| {
                let lines: Vec<String> = list
                    .iter()
                    .map(|a| {
                        format!(
                            "#{} {} {} ms status {} {} {}",
                            a.attempt,
                            a.started_at,
                            a.duration_ms,
                            a.status_code.map(|c| c.to_string()).unwrap_or_else(|| "-".into()),
                            a.error_code.map(|c| c.as_str()).unwrap_or("ok"),
                            a.error.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    "no attempts yet".into()
                } else {
                    lines.join("\n")
                }
            })
        }
        Command::Retry { delivery_id, dead, endpoint, discard, since, until, all, yes, json } => {
            if let Some(since) = since {
                let ep = endpoint.expect("clap requires --endpoint with --since");
                let moment = |flag: &str, v: &str| {
                    time::parse_moment(v).ok_or_else(|| anyhow!("{flag} {v:?} is not {}", time::MOMENT_FORMS))
                };
                let from = moment("--since", &since)?;
                let to = until.as_deref().map(|u| moment("--until", u)).transpose()?.unwrap_or_else(time::now_ms);
                if from >= to {
                    bail!("--until must be after --since");
                }
                let of = if all { ReplayOf::All } else { ReplayOf::Dead };
                let r = open(cfg)?.write(|db| {
                    endpoints::get(db, &ep)?;
                    deliveries::replay(db, &ep, from, to, of, yes)
                })?;
                let v = json!({"endpoint_id": ep, "since": time::rfc3339(from), "until": time::rfc3339(to),
                               "status": of.as_str(), "dry_run": !yes,
                               "count": r.count, "expired": r.expired, "replayed": r.replayed});
                return print(json, &v, |_| {
                    let what = if all { "ended" } else { "dead" };
                    let expired = if r.expired > 0 {
                        format!("; {} more cannot be sent, their event bodies have expired", r.expired)
                    } else {
                        String::new()
                    };
                    if yes {
                        format!("{} {what} deliveries scheduled again, in order{expired}", r.replayed)
                    } else {
                        format!(
                            "{} {what} deliveries in that range would be sent again{expired}; add --yes to send them",
                            r.count
                        )
                    }
                });
            }
            let value = if dead {
                let ep = endpoint.expect("clap requires --endpoint with --dead");
                let n = open(cfg)?.write(|db| {
                    endpoints::get(db, &ep)?;
                    deliveries::retry_dead(db, &ep)
                })?;
                json!({"endpoint_id": ep, "retried": n})
            } else {
                let id = delivery_id.ok_or_else(|| anyhow!("give a DELIVERY_ID, or --dead --endpoint ENDPOINT_ID"))?;
                if discard {
                    serde_json::to_value(open(cfg)?.write(|db| deliveries::discard(db, &id))?)?
                } else {
                    serde_json::to_value(open(cfg)?.write(|db| deliveries::retry(db, &id))?)?
                }
            };
            print(json, &value, |v| match v.get("retried") {
                Some(n) => format!("{n} dead deliveries scheduled again"),
                None if discard => {
                    format!(
                        "{} discarded: the next delivery of its key goes at the next dispatcher run",
                        v["id"].as_str().unwrap_or("")
                    )
                }
                None => format!("{} scheduled to be sent at the next dispatcher run", v["id"].as_str().unwrap_or("")),
            })
        }
        Command::Token(cmd) => token_cmd(cfg, cmd),
        Command::Sessions(SessionsCmd::Revoke { user, json }) => {
            check_name("--user", &user)?;
            let store = open(cfg)?;
            let n = crate::store::sessions::revoke_user(store.db(), &user, time::now_ms())?;
            print(json, &json!({"user": user, "revoked": n}), |_| {
                format!("ended {} of {user}", crate::model::count(n as i64, "session", "sessions"))
            })
        }
        Command::Source(cmd) => source_commands::source_cmd(cfg, *cmd),
        Command::Inbound { command, source, outcome, limit, json } => {
            source_commands::inbound_cmd(cfg, command, source, outcome, limit, json)
        }
        Command::Backup { to } => {
            open(cfg)?.backup(&to)?;
            setup::restrict(&to)?;
            println!("wrote {}", to.display());
            Ok(())
        }
        Command::MigrateStore { to, json } => {
            let (copied, switched) = setup::migrate_store(cfg, &to)?;
            let shown = crate::model::location::redacted(&to);
            let value = serde_json::json!({
                "to": shown,
                "tables": copied.tables.iter().map(|(t, n)| (t.clone(), serde_json::json!(*n))).collect::<serde_json::Map<_, _>>(),
                "env_updated": switched,
            });
            print(json, &value, |_| {
                let rows: Vec<String> =
                    copied.tables.iter().filter(|(_, n)| *n > 0).map(|(t, n)| format!("{n} {t}")).collect();
                let next = if switched {
                    format!(
                        "WEBHOOKS_DATABASE in {} now names it; run `webhooks doctor`",
                        cfg.env_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                    )
                } else {
                    "set WEBHOOKS_DATABASE to it where it is set, then run `webhooks doctor`".to_string()
                };
                format!(
                    "copied {} into {shown}; the SQLite file now refuses writes; {next}",
                    if rows.is_empty() { "nothing (the installation was empty)".to_string() } else { rows.join(", ") }
                )
            })
        }
        Command::RotateKey => setup::rotate_key(cfg),
        Command::Purge { json } => {
            let p = retention::purge(open(cfg)?.db(), &cfg.retention(), time::now_ms(), usize::MAX)?;
            print(json, &p, |p| {
                let c = |n: usize, one: &str, many: &str| crate::model::count(n as i64, one, many);
                format!(
                    "purged {}, {}, {}, {}, {}, {}",
                    c(p.payloads, "payload", "payloads"),
                    c(p.deliveries, "delivery", "deliveries"),
                    c(p.events, "event", "events"),
                    c(p.runs, "run", "runs"),
                    c(p.inbound_bodies, "inbound body", "inbound bodies"),
                    c(p.inbound_requests, "inbound request", "inbound requests")
                )
            })
        }
        Command::Status { json } => {
            let s = deliveries::queue_status(open(cfg)?.db(), true)?;
            print(json, &s, |s| {
                format!(
                    "pending {} (due {}, in flight {}), dead {}, oldest due {}, last dispatcher run {}",
                    s.pending,
                    s.due,
                    s.in_flight,
                    s.dead,
                    s.oldest_due_seconds.map(|x| format!("{x}s ago")).unwrap_or_else(|| "-".into()),
                    s.last_run_at
                        .map(|t| format!("{t} ({}s ago)", s.last_run_seconds_ago.unwrap_or(0)))
                        .unwrap_or_else(|| "never".into())
                )
            })
        }
        Command::Metrics { output } => {
            let text = crate::store::metrics::exposition(open(cfg)?.db(), time::now_ms(), &cfg.metrics_users)?;
            match output {
                None => print!("{text}"),
                Some(path) => write_atomically(&path, text.as_bytes())?,
            }
            Ok(())
        }
        Command::PortalLink { user, ttl, embed, page, base, json } => {
            check_name("--user", &user)?;
            let requested = ttl
                .map(|t| {
                    crate::config::parse_duration(&t).map_err(|_| anyhow!("--ttl {t:?} must be a duration such as 5m"))
                })
                .transpose()?;
            let ttl = portal::ttl(requested, cfg.login_link_ttl).map_err(|m| anyhow!("--ttl {m}"))?;
            if let Some(p) = &page {
                portal::check_page(p).map_err(|m| anyhow!("--page {p:?} must be {m}"))?;
            }
            let keyring = cfg.keyring()?;
            let link = portal::link(&keyring.current, &user, time::now_ms(), ttl, embed, page.as_deref());
            let mut v = link.answer(&link_base(cfg, base), &user);
            v["valid_for_seconds"] = json!(ttl.as_secs());
            let url = v["url"].as_str().unwrap_or_default().to_string();
            print(json, &v, |_| url.clone())
        }
        Command::Verify { secret: secrets, header, body, now } => {
            let keys = secrets.iter().map(|s| secret::decode(s)).collect::<Result<Vec<_>, Error>>()?;
            let headers = header
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                        .ok_or_else(|| anyhow!("--header {h:?} is not 'name: value'"))
                })
                .collect::<Result<Vec<_>>>()?;
            let body = read_arg_bytes(&body)?;
            let now = now.unwrap_or_else(|| time::now_ms() / 1000);
            let tolerance = cfg.skew_tolerance.as_secs() as i64;
            match signing::verify(&cfg.header_prefix, &headers, &body, &keys, tolerance, now) {
                Ok(family) => {
                    println!(
                        "valid ({})",
                        match family {
                            signing::Family::Qsm => format!("{}-Signature", cfg.header_prefix),
                            signing::Family::StandardWebhooks => "webhook-signature".into(),
                        }
                    );
                    Ok(())
                }
                Err(e) => bail!("invalid: {e}"),
            }
        }
    }
}

fn endpoint_cmd(cfg: &Config, cmd: EndpointCmd) -> Result<()> {
    let mut store = open(cfg)?;
    let policy = cfg.policy();
    let human = |e: &Endpoint| {
        format!(
            "{}  {}  user={} {} events={} {}",
            e.id,
            e.url,
            e.user,
            match (e.health, e.disabled_reason) {
                (Health::Ok, _) => "active".to_string(),
                (Health::Failing, _) => format!(
                    "failing since {}{}",
                    e.fail_since.map(|t| t.to_string()).unwrap_or_default(),
                    e.disable_at
                        .map(|t| format!(", to be disabled at {t} unless a delivery succeeds"))
                        .unwrap_or_default()
                ),
                (Health::Disabled, r) => format!(
                    "disabled ({}){}",
                    r.map(DisabledReason::describe).unwrap_or("disabled"),
                    if e.held > 0 { format!(", {} held", e.held) } else { String::new() }
                ),
            },
            if e.event_types.is_empty() { "*".into() } else { e.event_types.join(",") },
            e.description
        ) + &pace_line(e)
    };
    match cmd {
        EndpointCmd::Add { user, url, events, description, order, extra, json } => {
            let keyring = cfg.keyring()?;
            let (ordering, fifo_on_dead) = order_of(&order)?;
            let (headers, signature_compat) = extras_of(&extra)?;
            let fields = Fields {
                url: Some(url.trim().to_string()),
                description: Some(description),
                event_types: Some(trimmed(events)),
                ordering,
                fifo_on_dead,
                headers,
                signature_compat,
                max_per_second: per_second_of(&order)?,
                max_in_flight: in_flight_of(&order)?,
            };
            let limit = cfg.max_endpoints_per_user;
            let (ep, secret) = store.write(|db| endpoints::add(db, &keyring, &policy, &user, &fields, limit))?;
            let mut v = serde_json::to_value(&ep)?;
            v["secret"] = json!(secret);
            warn_about_url(&mut v, &ep.url, &policy);
            print(json, &v, |_| {
                format!(
                    "{}\nsecret: {secret}\n(store it in the receiver now; `webhooks endpoint show` lists its keys)",
                    human(&ep)
                )
            })
        }
        EndpointCmd::List { user, json } => {
            let list = endpoints::list(store.db(), user.as_deref())?;
            print(json, &list, |l| {
                if l.is_empty() {
                    "no endpoints".into()
                } else {
                    l.iter().map(human).collect::<Vec<_>>().join("\n")
                }
            })
        }
        EndpointCmd::Show { id, json } => {
            let ep = endpoints::get(store.db(), &id)?.apply_rule(cfg.failure_rule());
            let keys = endpoints::keys(store.db(), &id, time::now_ms())?;
            let blocked = ordering::blocked(store.db(), Some(&id), None, 100)?;
            let mut v = serde_json::to_value(&ep)?;
            v["keys"] = serde_json::to_value(&keys)?;
            v["blocked_keys"] = serde_json::to_value(&blocked)?;
            print(json, &v, |_| {
                let mut out = human(&ep);
                for b in &blocked {
                    out.push_str(&format!(
                        "\n  key {:?} blocked by dead delivery {} ({} waiting): `webhooks retry {}` or `webhooks retry {} --discard`",
                        b.ordering_key, b.delivery_id, b.waiting, b.delivery_id, b.delivery_id
                    ));
                }
                for k in &keys {
                    out.push_str(&format!(
                        "\n  key {} created {}{}",
                        k.id,
                        k.created_at,
                        k.expires_at.map(|t| format!(", signs until {t}")).unwrap_or_else(|| " (primary)".into())
                    ));
                }
                out
            })
        }
        EndpointCmd::Update { id, url, events, description, order, extra, json } => {
            let (ordering, fifo_on_dead) = order_of(&order)?;
            let (headers, signature_compat) = extras_of(&extra)?;
            let keyring = cfg.keyring()?;
            let fields = Fields {
                url: url.map(|u| u.trim().to_string()),
                description,
                event_types: events.map(trimmed),
                ordering,
                fifo_on_dead,
                headers,
                signature_compat,
                max_per_second: per_second_of(&order)?,
                max_in_flight: in_flight_of(&order)?,
            };
            let ep = store.write(|db| endpoints::update(db, &keyring, &policy, &id, &fields))?;
            let mut v = serde_json::to_value(&ep)?;
            if fields.url.is_some() {
                warn_about_url(&mut v, &ep.url, &policy);
            }
            print(json, &v, |_| human(&ep))
        }
        EndpointCmd::Disable { id, json } => {
            print(json, &endpoints::disable(store.db(), &id, DisabledReason::Manual)?, human)
        }
        EndpointCmd::Enable { id, replay, discard, json } => {
            let held = endpoints::get(store.db(), &id)?.held;
            if held > 0 && !replay && !discard {
                bail!("{id} has {held} held deliveries: choose --replay to send them (and the dead ones since its failures began) or --discard");
            }
            let backlog = if discard { Backlog::Discard } else { Backlog::Send };
            let (retention, notify) = (cfg.payload_retention, cfg.notify());
            let done = store.write(|db| endpoints::enable(db, &id, backlog, retention, &notify))?;
            let mut v = serde_json::to_value(&done.endpoint)?;
            v["replayed"] = json!(done.replayed);
            v["discarded"] = json!(done.discarded);
            print(json, &v, |_| {
                format!(
                    "{}
{} to be sent again, {} discarded",
                    human(&done.endpoint),
                    crate::model::count(done.replayed as i64, "delivery", "deliveries"),
                    done.discarded
                )
            })
        }
        EndpointCmd::Delete { id } => {
            store.write(|db| endpoints::delete(db, &id, cfg.payload_retention))?;
            println!("deleted {id}");
            Ok(())
        }
        EndpointCmd::Test { id, json } => {
            let keyring = cfg.keyring()?;
            let ep = endpoints::get(store.db(), &id)?;
            let r = probe::send_test(store.db(), cfg, &keyring, &ep)?;
            print(json, &r, |r| match (&r.error_code, r.status_code) {
                (None, Some(code)) => format!("delivered: {code} in {} ms", r.duration_ms),
                (Some(c), status) => format!(
                    "failed: {c} ({}){} in {} ms: {}",
                    r.error_meaning.as_deref().unwrap_or(""),
                    status.map(|s| format!(", status {s}")).unwrap_or_default(),
                    r.duration_ms,
                    r.error.as_deref().unwrap_or("")
                ),
                (None, None) => "no answer".into(),
            })?;
            if r.delivered {
                Ok(())
            } else {
                bail!("the test delivery to {} failed", ep.url)
            }
        }
        EndpointCmd::RotateSecret { id, grace, json } => {
            let keyring = cfg.keyring()?;
            let grace = crate::model::endpoint::check_grace("--grace", grace.unwrap_or(cfg.rotation_grace))?;
            let (secret, key, until) = store.write(|db| endpoints::rotate_secret(db, &keyring, &id, grace))?;
            let v =
                json!({"id": id, "secret": secret, "key_id": key.id, "previous_keys_sign_until": time::rfc3339(until)});
            print(json, &v, |_| {
                format!(
                    "new secret: {secret} (key {})\nthe previous secret keeps signing until {}",
                    key.id,
                    time::rfc3339(until)
                )
            })
        }
    }
}

fn token_cmd(cfg: &Config, cmd: TokenCmd) -> Result<()> {
    let store = open(cfg)?;
    match cmd {
        TokenCmd::Create { user, app: _, label, json } => {
            if let Some(u) = &user {
                check_name("--user", u)?;
            }
            principal::check_label(&label)?;
            let t = principals::create_token(store.db(), user.as_deref(), &label)?;
            print(json, &t, |t| format!("{}\ntoken: {}\n(shown only now)", t.id, t.token))
        }
        TokenCmd::List { user, json } => {
            let list = principals::list_tokens(store.db(), user.as_deref())?;
            print(json, &list, |l| {
                l.iter()
                    .map(|t| {
                        format!(
                            "{} {} {} {}{}",
                            t.id,
                            t.kind,
                            t.user.as_deref().unwrap_or("-"),
                            t.label,
                            if t.revoked { " (revoked)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        TokenCmd::Revoke { id } => {
            principals::revoke_token(store.db(), &id, None)?;
            println!("revoked {id}");
            Ok(())
        }
    }
}

/// Text columns as wide as their widest cell (a relayed type such as
/// `stripe.payment_intent.succeeded` widens its column instead of pushing the rest out of line),
/// the columns numbered in `right` aligned right, the last one never padded.
pub fn table(headers: &[&str], right: &[usize], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| match i {
                i if i == last && !right.contains(&i) => c.to_string(),
                i if right.contains(&i) => format!("{c:>w$}", w = widths[i]),
                i => format!("{c:<w$}", w = widths[i]),
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    std::iter::once(line(headers.to_vec()))
        .chain(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes `bytes` to `path` through a temporary file in the same directory, renamed over it:
/// a reader (node_exporter) sees the old file or the new one, never half of one.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().ok_or_else(|| anyhow!("--output {} names no file", path.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("--output {}: cannot write it ({e}): the directory must exist and be writable", path.display())
    })
}

/// Where printed links start: `--base` when given, else `WEBHOOKS_PUBLIC_URL`, else the local
/// development server's address, with a line on stderr saying that it is only that.
pub fn link_base(cfg: &Config, base: Option<String>) -> String {
    if let Some(b) = base.or_else(|| cfg.public_url.clone()) {
        return b;
    }
    eprintln!(
        "webhooks: WEBHOOKS_PUBLIC_URL is not set, so this link is the local development server's (http://127.0.0.1:8080); set it to the CGI's public URL, e.g. https://example.org/cgi-bin/webhooks.cgi"
    );
    "http://127.0.0.1:8080".to_string()
}

/// The installation's store.
fn open(cfg: &Config) -> Result<Store> {
    Ok(Store::open(&cfg.database)?)
}

fn read_arg(arg: &str) -> Result<String> {
    String::from_utf8(read_arg_bytes(arg)?).context("the input is not UTF-8")
}

/// `@file` reads the file, `-` standard input, anything else is the value itself.
fn read_arg_bytes(arg: &str) -> Result<Vec<u8>> {
    if arg == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf)?;
        Ok(buf)
    } else if let Some(path) = arg.strip_prefix('@') {
        std::fs::read(path).with_context(|| format!("cannot read {path}"))
    } else {
        Ok(arg.as_bytes().to_vec())
    }
}

/// Warns on stderr (and in the JSON's `warnings`) when deliveries could not reach `url` today.
fn warn_about_url(v: &mut Value, url: &str, policy: &Policy) {
    if let Some(w) = network::reachability_warning(url, policy) {
        eprintln!("webhooks: warning: {w}");
        v["warnings"] = json!([w]);
    }
}

/// `--events a, b` and `--events ''` (every type): filters as typed on a command line.
fn trimmed(filters: Vec<String>) -> Vec<String> {
    filters.iter().map(|f| f.trim()).filter(|f| !f.is_empty()).map(String::from).collect()
}

/// The ordering flags, checked.
fn order_of(o: &args::OrderFlags) -> Result<(Option<Ordering>, Option<OnDead>)> {
    Ok((
        o.ordering.as_deref().map(|s| Ordering::parse("--ordering", s)).transpose()?,
        o.fifo_on_dead.as_deref().map(|s| OnDead::parse("--fifo-on-dead", s)).transpose()?,
    ))
}

/// An endpoint's limits and pause, as the human listing adds them ("" when it has none).
fn pace_line(e: &Endpoint) -> String {
    let mut parts = Vec::new();
    if let Some(r) = e.max_per_second {
        parts.push(format!("max {r}/s"));
    }
    if let Some(n) = e.max_in_flight {
        parts.push(format!("max {n} in flight"));
    }
    if let Some(t) = e.paused_until {
        parts.push(format!("paused until {t} (the receiver answered {})", e.paused_status.unwrap_or(429)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("  [{}]", parts.join(", "))
    }
}

/// `--max-per-second N|none`: `Some(None)` removes the limit.
fn per_second_of(o: &args::OrderFlags) -> Result<Option<Option<f64>>> {
    limit_flag(
        "--max-per-second",
        o.max_per_second.as_deref(),
        pacing::check_per_second,
        "a number of requests per second",
    )
}

/// `--max-in-flight N|none`.
fn in_flight_of(o: &args::OrderFlags) -> Result<Option<Option<i64>>> {
    limit_flag("--max-in-flight", o.max_in_flight.as_deref(), pacing::check_in_flight, "a whole number")
}

/// A limit flag: absent (kept), `none` (removed), or a value of `what` that `check` accepts.
fn limit_flag<T: std::str::FromStr>(
    flag: &str,
    value: Option<&str>,
    check: impl Fn(&str, T) -> crate::model::Result<T>,
    what: &str,
) -> Result<Option<Option<T>>> {
    let Some(v) = value.map(str::trim) else { return Ok(None) };
    if v == "none" {
        return Ok(Some(None));
    }
    let n: T = v.parse().map_err(|_| Error::invalid(flag, format!("must be {what} or none, not {v:?}")))?;
    Ok(Some(Some(check(flag, n)?)))
}

/// The custom header flags, read: `None` keeps the headers an endpoint has.
fn extras_of(f: &args::HeaderFlags) -> Result<(Option<Headers>, Option<SignatureCompat>)> {
    let headers = if f.clear_headers {
        Some(Headers::new())
    } else if f.header.is_empty() {
        None
    } else {
        let mut h = Headers::new();
        for line in &f.header {
            let (name, value) =
                line.split_once(':').ok_or_else(|| anyhow!("--header {line:?} is not 'Name: value'"))?;
            h.insert(name.trim().to_string(), value.trim().to_string());
        }
        Some(h)
    };
    let compat = f.signature_compat.as_deref().map(|s| SignatureCompat::parse("--signature-compat", s)).transpose()?;
    Ok((headers, compat))
}
