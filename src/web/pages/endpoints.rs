//! The endpoint pages: the list, the form to create one, each endpoint's page with its health,
//! keys, secret rotation, test button and retry of dead deliveries.

use crate::model::health::DisabledReason;
use crate::store::deliveries::ReplayOf;
use crate::store::endpoints::Backlog;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use tera::Context;

use super::layout::{context, redirect, render};
use crate::config::format_duration;
use crate::model::endpoint::{Endpoint, Fields, OnDead, Ordering, MAX_ROTATION_GRACE};
use crate::model::{schema, time, Error};
use crate::outbound::{network, probe};
use crate::store::{deliveries, endpoints};
use crate::web::api::{self, owned_endpoint};
use crate::web::auth;
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

/// Form values to show, and what each field's problem is.
#[derive(Default)]
struct EndpointForm {
    url: String,
    description: String,
    types: Vec<String>,
    active: bool,
    ordering: Ordering,
    fifo_on_dead: OnDead,
    /// As typed (empty: no limit).
    max_per_second: String,
    max_in_flight: String,
}

impl EndpointForm {
    fn of(e: &Endpoint) -> Self {
        EndpointForm {
            url: e.url.clone(),
            description: e.description.clone(),
            types: e.event_types.clone(),
            active: e.active,
            ordering: e.ordering,
            fifo_on_dead: e.fifo_on_dead,
            max_per_second: e.max_per_second.map(|r| r.to_string()).unwrap_or_default(),
            max_in_flight: e.max_in_flight.map(|n| n.to_string()).unwrap_or_default(),
        }
    }

    fn from_post(ctx: &Ctx<'_>) -> Self {
        let f = ctx.req.form();
        let mut types = f.all("event_types");
        if types.iter().any(|t| t == "*") {
            types.clear(); // "all": no filter
        }
        EndpointForm {
            url: f.get("url").unwrap_or("").trim().to_string(),
            description: f.get("description").unwrap_or("").to_string(),
            types,
            active: f.get("active").is_some(),
            ordering: match f.get("ordering") {
                Some("fifo") => Ordering::Fifo,
                _ => Ordering::None,
            },
            fifo_on_dead: match f.get("fifo_on_dead") {
                Some("block") => OnDead::Block,
                _ => OnDead::Continue,
            },
            max_per_second: f.get("max_per_second").unwrap_or("").trim().to_string(),
            max_in_flight: f.get("max_in_flight").unwrap_or("").trim().to_string(),
        }
    }

    fn fields(&self) -> Fields {
        Fields {
            url: Some(self.url.clone()),
            description: Some(self.description.clone()),
            event_types: Some(self.types.clone()),
            ordering: Some(self.ordering),
            fifo_on_dead: Some(self.fifo_on_dead),
            // Custom headers are set through the API and the CLI (their values never come back).
            headers: None,
            signature_compat: None,
            // What is not a number fails the model's check, which names the field and the range.
            max_per_second: Some(
                (!self.max_per_second.is_empty()).then(|| self.max_per_second.parse().unwrap_or(f64::NAN)),
            ),
            max_in_flight: Some((!self.max_in_flight.is_empty()).then(|| self.max_in_flight.parse().unwrap_or(0))),
        }
    }

    fn insert(&self, c: &mut Context, errors: &BTreeMap<String, String>) {
        c.insert(
            "form",
            &json!({"url": self.url, "description": self.description, "active": self.active, "all": self.types.is_empty(),
                    "fifo": self.ordering == Ordering::Fifo, "block": self.fifo_on_dead == OnDead::Block,
                    "max_per_second": self.max_per_second, "max_in_flight": self.max_in_flight}),
        );
        let mut groups: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
        // The test event is sent by the test button whatever the filters say.
        for t in schema::intake_types() {
            let group = format!("{}.*", t.name.split('.').next().unwrap_or(""));
            let item = json!({"name": t.name, "description": t.description(), "checked": self.types.iter().any(|f| f == t.name || schema::filter_matches(f, t.name) && f != "*")});
            match groups.iter_mut().find(|(g, _)| *g == group) {
                Some((_, items)) => items.push(item),
                None => groups.push((group, vec![item])),
            }
        }
        let groups: Vec<_> = groups.into_iter().map(|(name, types)| json!({"name": name, "types": types})).collect();
        c.insert("groups", &groups);
        c.insert("errors", errors);
    }
}

/// A failed save's messages: beside a field, or above the form.
type FormProblem = (BTreeMap<String, String>, Option<String>);

/// Splits a failed save into a field message (shown beside the field) or a form message (a
/// conflict, such as the endpoint limit); anything else is an error page.
fn form_problem(e: Error) -> Result<FormProblem, HttpError> {
    match e {
        Error::Invalid { problems, .. } if problems.len() == 1 => {
            let p = &problems[0];
            let field = p.path.strip_prefix("$.").unwrap_or(&p.path).to_string();
            Ok((BTreeMap::from([(field, p.message.clone())]), None))
        }
        Error::Conflict { message, .. } => Ok((BTreeMap::new(), Some(message))),
        other => Err(other.into()),
    }
}

pub fn list(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let scope = ctx.viewer().scope().map(String::from);
    let rule = ctx.cfg.failure_rule();
    let db = ctx.db()?;
    let list = endpoints::list(db, scope.as_deref())?;
    let items = list.iter().map(|e| api::endpoint_json(db, rule, e)).collect::<Result<Vec<_>, _>>()?;
    let mut c = context(ctx, "Endpoints", "endpoints");
    c.insert("endpoints", &items);
    c.insert("limit", &ctx.cfg.max_endpoints_per_user);
    render(200, "endpoints.html", &c)
}

pub fn new(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let mut c = context(ctx, "New endpoint", "endpoints");
    EndpointForm { active: true, ..EndpointForm::default() }.insert(&mut c, &BTreeMap::new());
    render(200, "endpoint_new.html", &c)
}

pub fn create(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let form = EndpointForm::from_post(ctx);
    let (cfg, keyring, policy) = (ctx.cfg, ctx.keyring()?, ctx.cfg.policy());
    let user = ctx.user().to_string();
    let fields = form.fields();
    let active = form.active;
    let created = ctx.try_write(|db| {
        let (ep, secret) = endpoints::add(db, &keyring, &policy, &user, &fields, cfg.max_endpoints_per_user)?;
        let ep = if active { ep } else { endpoints::disable(db, &ep.id, DisabledReason::Manual)? };
        Ok((ep, secret))
    })?;
    match created {
        Ok((ep, _)) => {
            // Post/Redirect/Get: the endpoint's page shows the secret once, then a reload does not.
            let flash = ctx.cookie(auth::NEW_SECRET_COOKIE, &ep.id, Some(300));
            Ok(redirect(ctx, &format!("/endpoints/{}?notice=created", ep.id))?.with_header("Set-Cookie", &flash))
        }
        Err(e) => {
            let (errors, form_error) = form_problem(e)?;
            let mut c = context(ctx, "New endpoint", "endpoints");
            form.insert(&mut c, &errors);
            c.insert("form_error", &form_error);
            render(422, "endpoint_new.html", &c)
        }
    }
}

/// The endpoint page, with extra values (a secret shown once, a test result) from `extra`.
fn endpoint_page(ctx: &mut Ctx<'_>, ep: &Endpoint, extra: impl FnOnce(&mut Context)) -> Result<Response, HttpError> {
    endpoint_page_with(ctx, ep, &EndpointForm::of(ep), &BTreeMap::new(), None, 200, extra)
}

fn endpoint_page_with(
    ctx: &mut Ctx<'_>,
    ep: &Endpoint,
    form: &EndpointForm,
    errors: &BTreeMap<String, String>,
    form_error: Option<String>,
    status: u16,
    extra: impl FnOnce(&mut Context),
) -> Result<Response, HttpError> {
    let rule = ctx.cfg.failure_rule();
    let json = api::endpoint_json(ctx.db()?, rule, ep)?;
    let mut c = context(ctx, &format!("Endpoint {}", ep.url), "endpoints");
    c.insert("endpoint", &json);
    form.insert(&mut c, errors);
    c.insert("form_error", &form_error);
    let default = ctx.cfg.rotation_grace;
    let mut graces: Vec<Duration> = [0u64, 3600, 86_400, 7 * 86_400].iter().map(|s| Duration::from_secs(*s)).collect();
    if !graces.contains(&default) {
        graces.push(default);
        graces.sort();
    }
    let graces: Vec<_> = graces
        .iter()
        .map(|g| json!({"value": g.as_secs(), "label": if g.is_zero() { "no time (stop now)".to_string() } else { format_duration(*g) }, "selected": *g == default}))
        .collect();
    c.insert("graces", &graces);
    extra(&mut c);
    render(status, "endpoint.html", &c)
}

pub fn show(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    // Right after a create or a save, say if deliveries could not reach the URL today.
    let warning = matches!(ctx.req.query("notice").as_deref(), Some("created" | "saved"))
        .then(|| network::reachability_warning(&ep.url, &ctx.cfg.policy()))
        .flatten();
    // Right after a create, the new secret, once (see `create_endpoint`).
    let fresh = ctx.req.cookie(auth::NEW_SECRET_COOKIE).as_deref() == Some(ep.id.as_str());
    let secret = if fresh {
        let keyring = ctx.keyring()?;
        let keys = endpoints::secrets(ctx.db()?, &keyring, &ep.id, time::now_ms())?;
        keys.into_iter().find(|k| k.expires_at.is_none()).map(|k| k.secret)
    } else {
        None
    };
    let page = endpoint_page(ctx, &ep, |c| {
        c.insert("secret", &secret);
        c.insert("url_warning", &warning);
    })?;
    if !fresh {
        return Ok(page);
    }
    Ok(page.with_header("Set-Cookie", &ctx.cookie(auth::NEW_SECRET_COOKIE, "", Some(0))))
}

pub fn update(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let form = EndpointForm::from_post(ctx);
    let policy = ctx.cfg.policy();
    let fields = form.fields();
    let active = form.active;
    let (retention, notify) = (ctx.cfg.payload_retention, ctx.cfg.notify());
    let keyring = ctx.keyring()?;
    let saved = ctx.try_write(|db| {
        let updated = endpoints::update(db, &keyring, &policy, &ep.id, &fields)?;
        endpoints::set_active(db, &updated.id, active, Backlog::Send, retention, &notify)?;
        Ok(())
    })?;
    match saved {
        Ok(()) => redirect(ctx, &format!("/endpoints/{}?notice=saved", ep.id)),
        Err(e) => {
            let (errors, form_error) = form_problem(e)?;
            endpoint_page_with(ctx, &ep, &form, &errors, form_error, 422, |_| {})
        }
    }
}

/// Enable: the form's `backlog` says whether the deliveries it missed are sent (`send`, the
/// default) or discarded (`discard`).
pub fn enable(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let backlog = Backlog::parse(ctx.req.form().get("backlog"))
        .ok_or_else(|| HttpError::bad_request("the choice is not one of those offered"))?;
    let (retention, notify) = (ctx.cfg.payload_retention, ctx.cfg.notify());
    let done = ctx.write(|db| endpoints::enable(db, &ep.id, backlog, retention, &notify))?;
    let notice = match (done.replayed, done.discarded) {
        (0, 0) => "enabled".to_string(),
        (n, 0) => format!("enabled&sent={n}"),
        (_, n) => format!("enabled&discarded={n}"),
    };
    redirect(ctx, &format!("/endpoints/{}?notice={notice}", ep.id))
}

pub fn disable(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    ctx.write(|db| endpoints::disable(db, &ep.id, DisabledReason::Manual))?;
    redirect(ctx, &format!("/endpoints/{}?notice=disabled", ep.id))
}

pub fn confirm_delete(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let mut c = context(ctx, "Delete endpoint", "endpoints");
    c.insert("endpoint", &ep);
    render(200, "endpoint_delete.html", &c)
}

pub fn delete(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let retention = ctx.cfg.payload_retention;
    ctx.write(|db| endpoints::delete(db, &ep.id, retention))?;
    redirect(ctx, "/endpoints?notice=deleted")
}

/// A rotation form's grace period (`grace`, seconds, one of the offered choices), or the default.
pub fn grace_of(ctx: &Ctx<'_>) -> Result<Duration, HttpError> {
    match ctx.req.form().get("grace") {
        None => Ok(ctx.cfg.rotation_grace),
        Some(g) => g
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= MAX_ROTATION_GRACE.as_secs())
            .map(Duration::from_secs)
            .ok_or_else(|| HttpError::bad_request("the grace period is not one of the offered choices")),
    }
}

pub fn rotate_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let grace = grace_of(ctx)?;
    let keyring = ctx.keyring()?;
    let (secret, _, until) = ctx.write(|db| endpoints::rotate_secret(db, &keyring, &ep.id, grace))?;
    let until = (!grace.is_zero()).then(|| time::rfc3339(until));
    endpoint_page(ctx, &ep, |c| {
        c.insert("secret", &secret);
        c.insert("grace_until", &until);
    })
}

pub fn reveal_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let keyring = ctx.keyring()?;
    let revealed = endpoints::secrets(ctx.db()?, &keyring, &ep.id, time::now_ms())?;
    endpoint_page(ctx, &ep, |c| c.insert("revealed", &revealed))
}

pub fn test(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let (cfg, keyring) = (ctx.cfg, ctx.keyring()?);
    let result = probe::send_test(ctx.db()?, cfg, &keyring, &ep)?;
    endpoint_page(ctx, &ep, |c| c.insert("test", &result))
}

/// Replay a time range: the first post counts what it would send and asks to confirm; the
/// confirming post (`confirm=yes`) sends them.
pub fn replay(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let form = ctx.req.form();
    let field = |k: &str| form.get(k).map(str::trim).filter(|v| !v.is_empty()).map(String::from);
    let (since_text, until_text, status) = (field("since"), field("until"), field("status"));
    let confirmed = form.get("confirm") == Some("yes");
    let parse = |name: &str, v: &Option<String>| -> Result<Option<i64>, HttpError> {
        match v {
            None => Ok(None),
            Some(v) => Ok(Some(
                time::parse_moment(v).ok_or_else(|| Error::invalid(name, format!("must be {}", time::MOMENT_FORMS)))?,
            )),
        }
    };
    let since = parse("since", &since_text)?.ok_or_else(|| Error::invalid("since", "is required"))?;
    let until = parse("until", &until_text)?.unwrap_or_else(time::now_ms);
    if since >= until {
        return Err(Error::invalid("until", "must be after since").into());
    }
    let of = ReplayOf::parse(status.as_deref())
        .ok_or_else(|| HttpError::bad_request("the choice is not one of those offered"))?;
    let found = ctx.write(|db| deliveries::replay(db, &ep.id, since, until, of, confirmed))?;
    if confirmed {
        return redirect(ctx, &format!("/endpoints/{}?notice=replayed&count={}", ep.id, found.replayed));
    }
    let preview = json!({
        "since": time::rfc3339(since), "until": time::rfc3339(until),
        "since_text": since_text, "until_text": until_text.unwrap_or_default(),
        "status": of.as_str(),
        "count": found.count, "expired": found.expired,
    });
    endpoint_page(ctx, &ep, |c| c.insert("replay", &preview))
}

pub fn retry_dead(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    ctx.write(|db| deliveries::retry_dead(db, &ep.id))?;
    redirect(ctx, &format!("/endpoints/{}?notice=retried-dead", ep.id))
}
