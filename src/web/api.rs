//! JSON API handlers (`/api/v1/…`, described in `docs/openapi.json` and `docs/api.md`).
//! Everything the pages can do. A user token sees only its user's data; an application token
//! and admins see everyone's. Another user's object answers 404, never 403.

use std::time::Duration;

use serde_json::{json, Value};

use crate::model::address::Policy;
use crate::model::delivery::{Delivery, Filter, Status, MAX_PAGE};
use crate::model::endpoint::{check_grace, Endpoint, Fields, Headers, OnDead, Ordering, SignatureCompat};
use crate::model::event::IDEMPOTENCY_KEY_MAX;
use crate::model::health::{DisabledReason, FailureRule};
use crate::model::pacing;
use crate::model::{event, portal, principal, schema, time, Error, Problem};
use crate::outbound::{dispatch, network, probe};
use crate::store::deliveries::ReplayOf;
use crate::store::endpoints::Backlog;
use crate::store::{deliveries, endpoints, events, health, ordering, principals, Db};
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// A JSON request body (an empty body counts as `{}`).
pub(crate) fn json_body(ctx: &Ctx<'_>) -> Result<Value, HttpError> {
    if ctx.req.body.is_empty() {
        return Ok(json!({}));
    }
    if !ctx.req.is_json() {
        return Err(HttpError::unsupported_media_type());
    }
    serde_json::from_slice(&ctx.req.body).map_err(|e| HttpError::malformed_json(&e))
}

pub(crate) fn problem(path: String, message: String) -> Problem {
    Problem { path, message }
}

/// Reads optional typed fields, collecting every problem with its JSON path.
pub(crate) struct Fields422<'a> {
    body: &'a Value,
    problems: Vec<Problem>,
}

impl<'a> Fields422<'a> {
    pub(crate) fn new(body: &'a Value, allowed: &[&str]) -> Self {
        let mut f = Fields422 { body, problems: Vec::new() };
        match body.as_object() {
            None => f.problems.push(problem("$".into(), "must be a JSON object".into())),
            Some(o) => {
                for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
                    f.problems.push(problem(
                        format!("$.{k}"),
                        format!("is not a known field (known: {})", allowed.join(", ")),
                    ));
                }
            }
        }
        f
    }

    pub(crate) fn string(&mut self, name: &str) -> Option<String> {
        match self.body.get(name) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.problems
                    .push(problem(format!("$.{name}"), format!("must be a string, not {}", schema::type_name(v))));
                None
            }
        }
    }

    pub(crate) fn strings(&mut self, name: &str) -> Option<Vec<String>> {
        match self.body.get(name) {
            None => None,
            Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
                Some(a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            }
            Some(_) => {
                self.problems.push(problem(format!("$.{name}"), "must be an array of strings".into()));
                None
            }
        }
    }

    /// The endpoint's `ordering` and `fifo_on_dead`, when given.
    pub(crate) fn ordering(&mut self) -> (Option<Ordering>, Option<OnDead>) {
        let ordering = self.string("ordering").and_then(|s| match Ordering::parse("ordering", &s) {
            Ok(o) => Some(o),
            Err(_) => {
                self.problems.push(problem("$.ordering".into(), format!("must be {}", Ordering::NAMES)));
                None
            }
        });
        let on_dead = self.string("fifo_on_dead").and_then(|s| match OnDead::parse("fifo_on_dead", &s) {
            Ok(o) => Some(o),
            Err(_) => {
                self.problems.push(problem("$.fifo_on_dead".into(), format!("must be {}", OnDead::NAMES)));
                None
            }
        });
        (ordering, on_dead)
    }

    /// `max_per_second` and `max_in_flight`: a number, or null to remove the limit.
    pub(crate) fn limits(&mut self) -> (Option<Option<f64>>, Option<Option<i64>>) {
        let per_second =
            self.nullable("max_per_second", Value::as_f64, pacing::check_per_second, pacing::per_second_rule);
        let in_flight = self.nullable("max_in_flight", Value::as_i64, pacing::check_in_flight, pacing::in_flight_rule);
        (per_second, in_flight)
    }

    /// A field that is absent (`None`: kept), null (`Some(None)`: removed) or a value `read`
    /// takes and `check` accepts; anything else is a problem saying `rule`.
    fn nullable<T>(
        &mut self,
        name: &str,
        read: impl Fn(&Value) -> Option<T>,
        check: impl Fn(&str, T) -> Result<T, Error>,
        rule: impl Fn() -> String,
    ) -> Option<Option<T>> {
        match self.body.get(name) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(v) => match read(v).map(|n| check(name, n)) {
                Some(Ok(n)) => Some(Some(n)),
                _ => {
                    self.problems.push(problem(format!("$.{name}"), rule()));
                    None
                }
            },
        }
    }

    /// `headers`: an object of strings (custom headers, checked by the model).
    pub(crate) fn headers(&mut self) -> Option<Headers> {
        match self.body.get("headers") {
            None => None,
            Some(Value::Object(o)) if o.values().all(Value::is_string) => {
                Some(o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            }
            Some(_) => {
                self.problems
                    .push(problem("$.headers".into(), "must be an object of header names to string values".into()));
                None
            }
        }
    }

    pub(crate) fn signature_compat(&mut self) -> Option<SignatureCompat> {
        self.string("signature_compat").and_then(|s| match SignatureCompat::parse("signature_compat", &s) {
            Ok(c) => Some(c),
            Err(_) => {
                self.problems.push(problem("$.signature_compat".into(), format!("must be {}", SignatureCompat::NAMES)));
                None
            }
        })
    }

    pub(crate) fn boolean(&mut self, name: &str) -> Option<bool> {
        match self.body.get(name) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.problems
                    .push(problem(format!("$.{name}"), format!("must be true or false, not {}", schema::type_name(v))));
                None
            }
        }
    }

    pub(crate) fn uint(&mut self, name: &str) -> Option<u64> {
        match self.body.get(name) {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => {
                    self.problems.push(problem(format!("$.{name}"), "must be a whole number of 0 or more".into()));
                    None
                }
            },
        }
    }

    /// A field's raw value, for the caller to read (it records its own problems).
    pub(crate) fn raw(&self, name: &str) -> Option<&'a Value> {
        self.body.get(name)
    }

    pub(crate) fn push(&mut self, path: &str, message: impl Into<String>) {
        self.problems.push(problem(path.into(), message.into()));
    }

    pub(crate) fn finish(self) -> Result<(), HttpError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::problems(self.problems, "changed").into())
        }
    }
}

/// The endpoint as the API shows it: fields, signing keys (ids and expiry, never secrets) and health.
/// The most blocked FIFO keys an endpoint's JSON and page list.
pub const BLOCKED_SHOWN: usize = 100;

pub fn endpoint_json(db: Db<'_>, rule: FailureRule, ep: &Endpoint) -> Result<Value, HttpError> {
    let now = time::now_ms();
    let mut v = serde_json::to_value(ep.clone().apply_rule(rule))?;
    v["keys"] = serde_json::to_value(endpoints::keys(db, &ep.id, now)?)?;
    v["stats"] = serde_json::to_value(health::endpoint(db, &ep.id, now)?)?;
    v["blocked_keys"] = serde_json::to_value(ordering::blocked(db, Some(&ep.id), None, BLOCKED_SHOWN)?)?;
    Ok(v)
}

/// The endpoint named in the path, if the viewer may see it (404 otherwise).
pub fn owned_endpoint(ctx: &mut Ctx<'_>) -> Result<Endpoint, HttpError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    Ok(endpoints::get_owned(ctx.db()?, &id, scope.as_deref())?)
}

pub fn post_events(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let req = ctx.req;
    if !req.is_json() {
        return Err(HttpError::unsupported_media_type());
    }
    let principal = ctx.viewer().principal.clone();
    let body: Value = serde_json::from_slice(&req.body).map_err(|e| HttpError::malformed_json(&e))?;
    let key = req.header("idempotency-key").map(str::trim).filter(|k| !k.is_empty());
    if key.is_some_and(|k| k.len() > IDEMPOTENCY_KEY_MAX) {
        return Err(HttpError::bad_request(format!(
            "the Idempotency-Key header must be at most {IDEMPOTENCY_KEY_MAX} characters"
        )));
    }
    let intakes = event::parse_request(&body, &principal, key, ctx.cfg.max_events_per_request)?;
    let cfg = ctx.cfg;
    let recorded = ctx.write(|db| events::record(db, cfg.payload_retention, &intakes))?;
    let total: usize = recorded.iter().map(|r| r.deliveries).sum();
    let mut out = json!({
        "ids": recorded.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        "deliveries": total,
        "events": recorded,
    });
    if !body.is_array() {
        out["id"] = json!(recorded[0].id);
    }
    if cfg.dispatch_on_intake && recorded.iter().any(|r| !r.duplicate && r.deliveries > 0) {
        // Never fails the intake: the events are stored and cron delivers them anyway.
        if let Err(e) = dispatch::start_detached() {
            eprintln!("webhooks-cgi: could not start a dispatcher run after intake: {e:#}");
        }
    }
    Ok(Response::json(202, &out))
}

pub fn event_types(_: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let types: Vec<Value> = schema::catalog()
        .iter()
        .map(|t| json!({"type": t.name, "description": t.description(), "schema": t.schema}))
        .collect();
    Ok(Response::json(200, &json!({"schema_version": schema::SCHEMA_VERSION, "event_types": types})))
}

pub fn openapi(_: &mut Ctx<'_>) -> Result<Response, HttpError> {
    Ok(Response::text(200, "application/json", OPENAPI))
}

pub fn status(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let scope = ctx.viewer().scope().map(String::from);
    let overview = health::overview(ctx.db()?, scope.as_deref(), time::now_ms())?;
    Ok(Response::json(200, &serde_json::to_value(overview)?))
}

/// `GET /api/v1/metrics`: Prometheus' text format, for the app token and admins (a scrape sees
/// every user's totals).
pub fn metrics(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    if !ctx.viewer().admin {
        return Err(HttpError::forbidden("the metrics are for the application token and admins (WEBHOOKS_ADMINS)"));
    }
    let users = ctx.cfg.metrics_users.clone();
    let text = crate::store::metrics::exposition(ctx.db()?, time::now_ms(), &users)?;
    Ok(Response::text(200, "text/plain; version=0.0.4; charset=utf-8", text))
}

pub fn list_endpoints(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let scope = match ctx.viewer().scope() {
        Some(u) => Some(u.to_string()),
        None => ctx.req.query("user"),
    };
    let rule = ctx.cfg.failure_rule();
    let db = ctx.db()?;
    let list = endpoints::list(db, scope.as_deref())?;
    let items = list.iter().map(|e| endpoint_json(db, rule, e)).collect::<Result<Vec<_>, _>>()?;
    Ok(Response::json(200, &json!({"endpoints": items})))
}

pub fn create_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let body = json_body(ctx)?;
    let mut f = Fields422::new(
        &body,
        &[
            "url",
            "description",
            "event_types",
            "active",
            "user",
            "ordering",
            "fifo_on_dead",
            "headers",
            "signature_compat",
            "max_per_second",
            "max_in_flight",
        ],
    );
    let url = f.string("url");
    let description = f.string("description");
    let event_types = f.strings("event_types");
    let (ordering, fifo_on_dead) = f.ordering();
    let (headers, signature_compat) = (f.headers(), f.signature_compat());
    let (max_per_second, max_in_flight) = f.limits();
    let active = f.boolean("active");
    let user = f.string("user");
    if url.is_none() && !f.problems.iter().any(|p| p.path == "$.url") {
        f.problems.push(problem("$.url".into(), "is required".into()));
    }
    f.finish()?;
    let owner = owner_for(ctx, user, "endpoints")?;
    let (cfg, keyring, policy) = (ctx.cfg, ctx.keyring()?, ctx.cfg.policy());
    let fields = Fields {
        url,
        description,
        event_types,
        ordering,
        fifo_on_dead,
        headers,
        signature_compat,
        max_per_second,
        max_in_flight,
    };
    let (ep, secret) = ctx.write(|db| {
        let (ep, secret) = endpoints::add(db, &keyring, &policy, &owner, &fields, cfg.max_endpoints_per_user)?;
        let ep = if active == Some(false) { endpoints::disable(db, &ep.id, DisabledReason::Manual)? } else { ep };
        Ok((ep, secret))
    })?;
    let rule = ctx.cfg.failure_rule();
    let mut v = endpoint_json(ctx.db()?, rule, &ep)?;
    v["secret"] = json!(secret);
    add_warnings(&mut v, &ep.url, &policy);
    Ok(Response::json(201, &v))
}

/// Whose object a request creates: the `user` field (an admin may name anyone, a user only
/// themselves), else the caller's own user; an application token must name one.
fn owner_for(ctx: &Ctx<'_>, user: Option<String>, what: &str) -> Result<String, HttpError> {
    let viewer = ctx.viewer();
    match (user, viewer.principal.user()) {
        (Some(u), _) if viewer.admin => Ok(u),
        (Some(u), Some(me)) if u == me => Ok(u),
        (Some(_), _) => Err(HttpError::forbidden(format!("a user token creates {what} only for its own user"))),
        (None, Some(me)) => Ok(me.to_string()),
        (None, None) => Err(Error::invalid("user", "is required with an application token").into()),
    }
}

/// `warnings` for an endpoint whose URL deliveries could not reach today (saved all the same).
fn add_warnings(v: &mut Value, url: &str, policy: &Policy) {
    if let Some(w) = network::reachability_warning(url, policy) {
        v["warnings"] = json!([w]);
    }
}

pub fn get_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let rule = ctx.cfg.failure_rule();
    Ok(Response::json(200, &endpoint_json(ctx.db()?, rule, &ep)?))
}

pub fn update_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let body = json_body(ctx)?;
    let mut f = Fields422::new(
        &body,
        &[
            "url",
            "description",
            "event_types",
            "active",
            "backlog",
            "ordering",
            "fifo_on_dead",
            "headers",
            "signature_compat",
            "max_per_second",
            "max_in_flight",
        ],
    );
    let (ordering, fifo_on_dead) = f.ordering();
    let (max_per_second, max_in_flight) = f.limits();
    let fields = Fields {
        url: f.string("url"),
        description: f.string("description"),
        event_types: f.strings("event_types"),
        ordering,
        fifo_on_dead,
        headers: f.headers(),
        signature_compat: f.signature_compat(),
        max_per_second,
        max_in_flight,
    };
    let active = f.boolean("active");
    let backlog = Backlog::parse(f.string("backlog").as_deref()).unwrap_or_else(|| {
        f.problems.push(problem("$.backlog".into(), "must be send or discard".into()));
        Backlog::Send
    });
    f.finish()?;
    let (policy, retention, notify) = (ctx.cfg.policy(), ctx.cfg.payload_retention, ctx.cfg.notify());
    let keyring = ctx.keyring()?;
    let ep = ctx.write(|db| {
        let ep = endpoints::update(db, &keyring, &policy, &ep.id, &fields)?;
        match active {
            Some(a) => endpoints::set_active(db, &ep.id, a, backlog, retention, &notify),
            None => Ok(ep),
        }
    })?;
    let rule = ctx.cfg.failure_rule();
    let mut v = endpoint_json(ctx.db()?, rule, &ep)?;
    if fields.url.is_some() {
        add_warnings(&mut v, &ep.url, &policy);
    }
    Ok(Response::json(200, &v))
}

pub fn delete_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let retention = ctx.cfg.payload_retention;
    ctx.write(|db| endpoints::delete(db, &ep.id, retention))?;
    Ok(Response::json(200, &json!({"id": ep.id, "deleted": true})))
}

pub fn rotate_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["grace_seconds"]);
    let grace = f.uint("grace_seconds").map(Duration::from_secs).unwrap_or(ctx.cfg.rotation_grace);
    f.finish()?;
    let grace = check_grace("grace_seconds", grace)?;
    let keyring = ctx.keyring()?;
    let (secret, key, until) = ctx.write(|db| endpoints::rotate_secret(db, &keyring, &ep.id, grace))?;
    Ok(Response::json(
        200,
        &json!({
            "id": ep.id, "secret": secret, "key_id": key.id, "previous_keys_sign_until": time::rfc3339(until),
        }),
    ))
}

/// The secrets that sign now, newest first (the owner may see them again; POST so that no
/// cache, log or prefetch ever holds them).
pub fn reveal_secret(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let keyring = ctx.keyring()?;
    let keys = endpoints::secrets(ctx.db()?, &keyring, &ep.id, time::now_ms())?;
    Ok(Response::json(200, &json!({"id": ep.id, "secret": keys.first().map(|k| &k.secret), "keys": keys})))
}

pub fn test_endpoint(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let (cfg, keyring) = (ctx.cfg, ctx.keyring()?);
    let result = probe::send_test(ctx.db()?, cfg, &keyring, &ep)?;
    Ok(Response::json(200, &serde_json::to_value(result)?))
}

pub fn retry_dead(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let n = ctx.write(|db| deliveries::retry_dead(db, &ep.id))?;
    Ok(Response::json(200, &json!({"endpoint_id": ep.id, "retried": n})))
}

/// Sends again the deliveries of a time range (`since`, `until`, `status`: `dead` or `all`);
/// with `"dry_run": true`, only counts them, so that a client can confirm first.
pub fn replay(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let ep = owned_endpoint(ctx)?;
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["since", "until", "status", "dry_run"]);
    let since = f.string("since");
    let until = f.string("until");
    let status = f.string("status");
    let dry_run = f.boolean("dry_run").unwrap_or(false);
    if since.is_none() && !f.problems.iter().any(|p| p.path == "$.since") {
        f.problems.push(problem("$.since".into(), "is required".into()));
    }
    let mut time_of = |name: &str, v: Option<String>| -> Option<i64> {
        let v = v?;
        let t = time::parse_moment(&v);
        if t.is_none() {
            f.problems.push(problem(format!("$.{name}"), format!("must be {}", time::MOMENT_FORMS)));
        }
        t
    };
    let (since, until) = (time_of("since", since), time_of("until", until));
    let of = ReplayOf::parse(status.as_deref()).unwrap_or_else(|| {
        f.problems.push(problem("$.status".into(), "must be dead or all".into()));
        ReplayOf::Dead
    });
    let until = until.unwrap_or_else(time::now_ms);
    if since.is_some_and(|s| s >= until) {
        f.problems.push(problem("$.until".into(), "must be after since".into()));
    }
    f.finish()?;
    let since = since.expect("checked");
    let r = ctx.write(|db| deliveries::replay(db, &ep.id, since, until, of, !dry_run))?;
    Ok(Response::json(
        200,
        &json!({"endpoint_id": ep.id, "since": time::rfc3339(since), "until": time::rfc3339(until),
                "status": of.as_str(), "dry_run": dry_run,
                "count": r.count, "expired": r.expired, "replayed": r.replayed}),
    ))
}

/// Parses a time filter ([`time::parse_moment`]).
pub fn parse_time(field: &str, s: &str) -> Result<i64, Error> {
    time::parse_moment(s).ok_or_else(|| Error::invalid(field, format!("must be {}", time::MOMENT_FORMS)))
}

/// The delivery-log filter from query parameters, limited to what the viewer may see.
pub fn delivery_filter(ctx: &Ctx<'_>, default_limit: usize) -> Result<Filter, HttpError> {
    let q = |k: &str| ctx.req.query(k);
    let limit = match q("limit") {
        None => default_limit,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Error::invalid("limit", format!("must be a whole number from 1 to {MAX_PAGE}")))?,
    };
    Ok(Filter {
        status: q("status").map(|s| Status::parse("status", &s)).transpose()?,
        user: match ctx.viewer().scope() {
            Some(u) => Some(u.to_string()),
            None => q("user"),
        },
        endpoint: q("endpoint"),
        event_type: q("type"),
        before: q("before"),
        since: q("since").map(|s| parse_time("since", &s)).transpose()?,
        until: q("until").map(|s| parse_time("until", &s)).transpose()?,
        limit,
    })
}

pub fn list_deliveries(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let filter = delivery_filter(ctx, 50)?;
    let list = deliveries::list(ctx.db()?, &filter)?;
    let next = (list.len() == filter.limit).then(|| list.last().map(|d| d.id.clone())).flatten();
    Ok(Response::json(200, &json!({"deliveries": list, "next_before": next})))
}

/// The delivery named in the path, if the viewer may see it (404 otherwise).
pub fn owned_delivery(ctx: &mut Ctx<'_>) -> Result<Delivery, HttpError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    Ok(deliveries::get_owned(ctx.db()?, &id, scope.as_deref())?)
}

pub fn get_delivery(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    let history = deliveries::attempts(ctx.db()?, &d.id)?;
    let mut v = serde_json::to_value(&d)?;
    v["attempt_history"] = serde_json::to_value(history)?;
    Ok(Response::json(200, &v))
}

pub fn retry_delivery(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    let d = ctx.write(|db| deliveries::retry(db, &d.id))?;
    Ok(Response::json(200, &serde_json::to_value(d)?))
}

/// Lets a FIFO key blocked by this dead delivery move on (it stays dead).
pub fn discard_delivery(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    let d = ctx.write(|db| deliveries::discard(db, &d.id))?;
    Ok(Response::json(200, &serde_json::to_value(d)?))
}

pub fn list_tokens(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let scope = match ctx.viewer().scope() {
        Some(u) => Some(u.to_string()),
        None => ctx.req.query("user"),
    };
    let list = principals::list_tokens(ctx.db()?, scope.as_deref())?;
    Ok(Response::json(200, &json!({"tokens": list})))
}

pub fn create_token(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["label", "user"]);
    let label = f.string("label").unwrap_or_default();
    let user = f.string("user");
    f.finish()?;
    principal::check_label(&label)?;
    let owner = owner_for(ctx, user, "tokens")?;
    principal::check_name("user", &owner)?;
    let created = ctx.write(|db| principals::create_token(db, Some(&owner), &label))?;
    Ok(Response::json(201, &serde_json::to_value(created)?))
}

/// `POST /api/v1/portal-links` `{"user", "ttl", "embed", "page"}`: a signed, expiring,
/// single-use link that opens the pages signed in as `user` (the app token and admins for
/// anyone, a user token for itself). `ttl` is a duration (`"5m"`) or seconds, at most
/// `WEBHOOKS_LOGIN_LINK_TTL`.
pub fn create_portal_link(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let body = json_body(ctx)?;
    let mut f = Fields422::new(&body, &["user", "ttl", "embed", "page"]);
    let user = f.string("user");
    let requested = match body.get("ttl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => crate::config::parse_duration(s).map(Some).map_err(|_| ()),
        Some(v) => v.as_u64().map(|n| Some(Duration::from_secs(n))).ok_or(()),
    };
    let ttl = requested
        .map_err(|()| "must be a duration such as \"10m\" or a number of seconds".to_string())
        .and_then(|t| portal::ttl(t, ctx.cfg.login_link_ttl))
        .map_err(|m| f.problems.push(problem("$.ttl".into(), m)))
        .ok();
    let embed = f.boolean("embed").unwrap_or(false);
    let page = f.string("page");
    if let Some(Err(m)) = page.as_deref().map(portal::check_page) {
        f.problems.push(problem("$.page".into(), format!("must be {m}")));
    }
    f.finish()?;
    let user = owner_for(ctx, user, "portal links")?;
    principal::check_name("user", &user)?;
    let master = ctx.keyring()?.current;
    let link = portal::link(&master, &user, time::now_ms(), ttl.expect("checked above"), embed, page.as_deref());
    Ok(Response::json(201, &link.answer(&ctx.public_base(), &user)))
}

/// `DELETE /api/v1/users/{user}/sessions`: ends every sign-in session of a user (the app token
/// and admins for anyone, a user for itself).
pub fn revoke_sessions(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let user = ctx.param().to_string();
    crate::model::principal::check_name("user", &user)?;
    if ctx.viewer().scope().is_some_and(|own| own != user) {
        return Err(HttpError::forbidden("a user token may end its own sessions only"));
    }
    let n = ctx.write(|db| crate::store::sessions::revoke_user(db, &user, crate::model::time::now_ms()))?;
    Ok(Response::json(200, &json!({"user": user, "revoked": n})))
}

pub fn revoke_token(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let id = ctx.param().to_string();
    let scope = ctx.viewer().scope().map(String::from);
    ctx.write(|db| principals::revoke_token(db, &id, scope.as_deref()))?;
    Ok(Response::json(200, &json!({"id": id, "revoked": true})))
}
