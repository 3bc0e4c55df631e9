//! `webhooks source …` and `webhooks inbound …`: inbound sources and their request log.

use anyhow::{bail, Result};
use serde_json::{json, Value};

use super::{open, print, read_arg};
use crate::cli::args::{InboundCmd, SourceCmd, SourceSettings};
use crate::config::{parse_size, Config};
use crate::inbound::new_source::{self, NewSource};
use crate::model::endpoint::check_grace;
use crate::model::inbound::{forward_json, parse_public_key, Detail, Outcome, Provider, Request, Settings};
use crate::model::time;
use crate::store::inbound_requests::{self as log, Filter};
use crate::store::sources::{self, Changes};

/// The changes the settings flags ask for, on top of `current` settings.
fn changes(s: &SourceSettings, current: &Settings, name: Option<String>) -> Result<Changes> {
    let mut settings = current.clone();
    let mut touched = false;
    for (slot, value) in [
        (&mut settings.username, &s.username),
        (&mut settings.key_url, &s.key_url),
        (&mut settings.header, &s.header),
        (&mut settings.algorithm, &s.algorithm),
        (&mut settings.encoding, &s.encoding),
        (&mut settings.prefix, &s.prefix),
        (&mut settings.id_header, &s.id_header),
        (&mut settings.id_pointer, &s.id_pointer),
    ] {
        if let Some(v) = value {
            *slot = (!v.is_empty()).then(|| v.clone());
            touched = true;
        }
    }
    let expected_gap_seconds = match s.expected_gap.as_deref() {
        None => None,
        Some("off") => Some(None),
        Some(v) => Some(Some(
            crate::config::duration_arg(v).map_err(|e| anyhow::anyhow!("--expected-gap: {e}"))?.as_secs() as i64,
        )),
    };
    let max_body = match s.max_body.as_deref() {
        None => None,
        Some("default") => Some(None),
        Some(v) => Some(Some(
            parse_size(v).ok_or_else(|| anyhow::anyhow!("--max-body: {v:?} is not a size such as 1MiB or 25MiB"))?,
        )),
    };
    Ok(Changes {
        name,
        settings: touched.then_some(settings),
        api_key: s.api_key.clone(),
        max_body,
        expected_gap_seconds,
    })
}

fn human_detail(d: &Detail, base: &str) -> String {
    let s = &d.source;
    let mut out = vec![
        format!("{}  {}  provider={}  {}", s.id, s.name, s.provider, if s.active { "active" } else { "disabled" }),
        format!("url: {}", d.url(base)),
        format!(
            "last 24 h: {} accepted, {} duplicate, {} rejected{}",
            d.counts.accepted,
            d.counts.duplicate,
            d.counts.rejected,
            d.counts.reasons.iter().map(|(r, n)| format!(" ({r}: {n})")).collect::<String>()
        ),
        format!("last accepted: {}", s.last_accepted_at.map(time::rfc3339).unwrap_or_else(|| "never".into())),
    ];
    if s.provider.has_secret() {
        out.push(match d.rotation_ends_at {
            Some(t) => format!("secrets: {} verify (the older until {})", d.secrets, time::rfc3339(t)),
            None => format!("secrets: {}", d.secrets),
        });
    } else {
        let keys: Vec<String> = d.public_keys.iter().map(|(k, o)| format!("{k} ({o})")).collect();
        out.push(format!("public keys: {}", if keys.is_empty() { "none yet".into() } else { keys.join(", ") }));
    }
    if d.forwards.is_empty() {
        out.push("forwards: none (accepted requests are logged but relayed nowhere)".into());
    }
    for f in &d.forwards {
        out.push(format!("forward: {}  {}{}", f.id, f.url, if f.active { "" } else { " (disabled)" }));
    }
    out.join("\n")
}

/// The lines that show new forward destinations' secrets, once.
fn forward_lines(forwards: &[Value]) -> Vec<String> {
    forwards
        .iter()
        .map(|f| {
            format!(
                "forward {} → {} signs with {} (shown only now)",
                f["endpoint_id"].as_str().unwrap_or(""),
                f["url"].as_str().unwrap_or(""),
                f["secret"].as_str().unwrap_or("")
            )
        })
        .collect()
}

/// One logged request, its source by name (`source_id` in `--json`).
fn request_line(r: &Request, source: &str) -> String {
    format!(
        "{}  {}  {}  {}{}  {}  {}",
        r.id,
        time::rfc3339(r.received_at),
        source,
        r.outcome.as_str(),
        r.reason.as_deref().map(|x| format!(" ({x})")).unwrap_or_default(),
        crate::model::count(r.body_size, "byte", "bytes"),
        r.dedupe_key.as_deref().unwrap_or("")
    )
}

/// Source ids → names, to show requests by their source's name.
fn source_names(db: crate::store::Db<'_>) -> Result<std::collections::HashMap<String, String>> {
    Ok(sources::list(db)?.into_iter().map(|s| (s.id, s.name)).collect())
}

pub fn source_cmd(cfg: &Config, cmd: SourceCmd) -> Result<()> {
    let mut store = open(cfg)?;
    let keyring = cfg.keyring()?;
    let now = time::now_ms();
    match cmd {
        SourceCmd::Add { name, provider, secret, forward_url, settings, base, json } => {
            let base = super::link_base(cfg, base);
            let provider = Provider::parse(&provider)?;
            let ch = changes(&settings, &Settings::default(), Some(name))?;
            let new = NewSource { provider, changes: &ch, secret: secret.as_deref(), forward_urls: &forward_url };
            let made = new_source::create(cfg, &mut store, &new, &base)?;
            let v = made.to_json(&base);
            print(json, &v, |_| {
                let mut lines = vec![
                    format!("{}  {}", made.created.source.id, made.created.source.name),
                    format!("url for {}: {}", provider, made.provider_url),
                ];
                if let Some(s) = &made.created.secret {
                    lines.push(format!("secret: {s} (shown only now)"));
                }
                lines.extend(forward_lines(&made.forwards));
                lines.join("\n")
            })
        }
        SourceCmd::List { json } => {
            let list = sources::list(store.db())?;
            let v: Vec<Value> = list
                .iter()
                .map(|s| {
                    json!({"id": s.id, "name": s.name, "provider": s.provider, "active": s.active,
                           "last_accepted_at": s.last_accepted_at.map(time::rfc3339)})
                })
                .collect();
            print(json, &v, |_| {
                if list.is_empty() {
                    return "no sources".into();
                }
                list.iter()
                    .map(|s| {
                        format!(
                            "{}  {}  {}  {}  last accepted {}",
                            s.id,
                            s.name,
                            s.provider,
                            if s.active { "active" } else { "disabled" },
                            s.last_accepted_at.map(time::rfc3339).unwrap_or_else(|| "never".into())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        SourceCmd::Show { id, base, json } => {
            let base = super::link_base(cfg, base);
            let id = sources::resolve(store.db(), &id)?.id;
            let d = sources::detail(store.db(), &keyring, &id, now)?;
            print(json, &d.to_json(&base), |_| human_detail(&d, &base))
        }
        SourceCmd::Update { id, name, add_forward, settings, base, json } => {
            let base = super::link_base(cfg, base);
            let current = sources::resolve(store.db(), &id)?;
            let ch = changes(&settings, &current.settings, name)?;
            let policy = cfg.policy();
            let forwards = store.write(|db| {
                sources::update(db, &keyring, &current.id, &ch)?;
                sources::add_forwards(db, &keyring, &policy, &current.id, &add_forward, cfg.max_endpoints_per_user)
            })?;
            let forwards: Vec<Value> = forwards.iter().map(|(ep, s)| forward_json(ep, Some(s))).collect();
            let d = sources::detail(store.db(), &keyring, &current.id, now)?;
            let mut v = d.to_json(&base);
            v["added_forwards"] = Value::Array(forwards.clone());
            print(json, &v, |_| {
                let mut lines = vec![format!("updated {}", d.source.id)];
                lines.extend(forward_lines(&forwards));
                lines.join("\n")
            })
        }
        SourceCmd::AddKey { id, key_id, public_key } => {
            let source = sources::resolve(store.db(), &id)?;
            if source.provider != Provider::Circle {
                bail!("only circle sources verify with public keys");
            }
            let der = parse_public_key(&read_arg(&public_key)?)?;
            store.write(|db| sources::add_public_key(db, &source.id, &key_id, &der, "pasted"))?;
            println!("key {key_id} stored for {}", source.name);
            Ok(())
        }
        SourceCmd::RotateSecret { id, secret, grace, json } => {
            let source = sources::resolve(store.db(), &id)?;
            let grace = check_grace("--grace", grace.unwrap_or(cfg.rotation_grace))?;
            let (secret, until) =
                store.write(|db| sources::rotate_secret(db, &keyring, &source.id, secret.as_deref(), grace))?;
            let v = json!({"id": source.id, "secret": secret, "previous_secrets_verify_until": time::rfc3339(until)});
            print(json, &v, |_| {
                format!("new secret: {secret}\nthe previous secret keeps verifying until {}", time::rfc3339(until))
            })
        }
        SourceCmd::Disable { id } => {
            let s = sources::resolve(store.db(), &id)?;
            store.write(|db| sources::set_active(db, &s.id, false))?;
            println!("disabled {} (its URL now answers 404)", s.name);
            Ok(())
        }
        SourceCmd::Enable { id } => {
            let s = sources::resolve(store.db(), &id)?;
            store.write(|db| sources::set_active(db, &s.id, true))?;
            println!("enabled {}", s.name);
            Ok(())
        }
        SourceCmd::Delete { id } => {
            let s = sources::resolve(store.db(), &id)?;
            store.write(|db| sources::delete(db, &s.id, cfg.payload_retention))?;
            println!("deleted {} with its request log and forward destinations", s.name);
            Ok(())
        }
    }
}

pub fn inbound_cmd(
    cfg: &Config,
    command: Option<InboundCmd>,
    source: Option<String>,
    outcome: Option<String>,
    limit: usize,
    json: bool,
) -> Result<()> {
    let mut store = open(cfg)?;
    match command {
        None => {
            let source_id = match source {
                Some(s) => Some(sources::resolve(store.db(), &s)?.id),
                None => None,
            };
            let outcome = outcome.as_deref().map(Outcome::parse).transpose()?;
            let list = log::list(store.db(), &Filter { source_id, outcome, before: None, limit })?;
            let names = source_names(store.db())?;
            print(json, &list, |l| {
                if l.is_empty() {
                    "no inbound requests".into()
                } else {
                    l.iter()
                        .map(|r| request_line(r, names.get(&r.source_id).map_or(r.source_id.as_str(), String::as_str)))
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            })
        }
        Some(InboundCmd::Show { id, json }) => {
            let r = log::get(store.db(), &id)?;
            let body = log::body(store.db(), &id)?;
            let mut v = serde_json::to_value(&r)?;
            v["body"] = json!(body.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()));
            let name = source_names(store.db())?.remove(&r.source_id).unwrap_or_else(|| r.source_id.clone());
            print(json, &v, |_| {
                let mut lines = vec![request_line(&r, &name)];
                if let Some(reason) = r.reason.as_deref().and_then(crate::model::inbound::Reason::parse) {
                    lines.push(format!("why: {}", reason.meaning()));
                }
                for h in &r.headers {
                    let exact = if h.raw.is_some() { "   (not UTF-8: exact bytes in --json)" } else { "" };
                    lines.push(format!("{}: {}{exact}", h.name, h.value));
                }
                lines.push(String::new());
                lines.push(match &body {
                    Some(b) => String::from_utf8_lossy(b).into_owned(),
                    None => "(body not stored: over the size limit, past its retention, or a reject past WEBHOOKS_INBOUND_REJECT_BUDGET)".into(),
                });
                lines.join("\n")
            })
        }
        Some(InboundCmd::Recheck { id, json }) => {
            let l = crate::inbound::receive::recheck(cfg, &mut store, &id)?;
            let v = json!({"id": l.id, "outcome": l.outcome, "reason": l.reason.map(|r| r.as_str()),
                           "event_id": l.event_id, "deliveries": l.deliveries, "duplicate_of": l.duplicate_of});
            print(json, &v, |_| match l.outcome {
                Outcome::Rejected => format!("still rejected: {}", l.reason.map(|r| r.meaning()).unwrap_or("")),
                Outcome::Accepted => format!(
                    "accepted now; relayed as {} to {} destinations",
                    l.event_id.clone().unwrap_or_default(),
                    l.deliveries
                ),
                Outcome::Duplicate => {
                    format!("verifies now, but repeats {}", l.duplicate_of.clone().unwrap_or_default())
                }
            })?;
            if l.outcome == Outcome::Rejected {
                bail!("request {id} is still rejected");
            }
            Ok(())
        }
    }
}
