//! The delivery log, one delivery with its attempts, and Retry now.

use serde_json::json;

use super::layout::{context, redirect, render};
use crate::config::format_duration;
use crate::model::delivery::Status;
use crate::model::schema;
use crate::store::{deliveries, endpoints};
use crate::web::api::{self, owned_delivery};
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

pub fn list(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let filter = api::delivery_filter(ctx, 50)?;
    let scope = ctx.viewer().scope().map(String::from);
    let db = ctx.db()?;
    let list = deliveries::list(db, &filter)?;
    let endpoints = endpoints::list(db, scope.as_deref())?;
    let next_link = (list.len() == filter.limit).then(|| list.last()).flatten().map(|last| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in ctx.req.query_pairs().iter().filter(|(k, _)| k != "before" && k != "notice") {
            q.append_pair(k, v);
        }
        q.append_pair("before", &last.id);
        ctx.req.link(&format!("/deliveries?{}", q.finish()))
    });
    // Each row names its endpoint: two deliveries of one type differ only there.
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|d| {
            let ep = endpoints.iter().find(|e| e.id == d.endpoint_id);
            let mut v = serde_json::to_value(d).unwrap_or_default();
            v["endpoint_url"] = json!(ep.map(|e| e.url.as_str()));
            v["endpoint_description"] = json!(ep.map(|e| e.description.as_str()));
            v
        })
        .collect();
    let mut c = context(ctx, "Deliveries", "deliveries");
    c.insert("deliveries", &rows);
    c.insert("endpoints", &endpoints);
    c.insert("statuses", &Status::ALL);
    c.insert("types", &schema::filterable().map(|t| t.name).collect::<Vec<_>>());
    c.insert(
        "filter",
        &json!({
            "status": filter.status, "endpoint": filter.endpoint, "type": filter.event_type,
            "since": ctx.req.query("since").and_then(|s| s.get(..10).map(String::from)),
            "until": ctx.req.query("until").and_then(|s| s.get(..10).map(String::from)),
        }),
    );
    c.insert("next_link", &next_link);
    render(200, "deliveries.html", &c)
}

pub fn show(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    let db = ctx.db()?;
    let history = deliveries::attempts(db, &d.id)?;
    let url = endpoints::find(db, &d.endpoint_id)?.map(|e| e.url).unwrap_or_default();
    let mut c = context(ctx, "Delivery", "deliveries");
    // After Retry now, the notice follows what happened since: `after` is the number of
    // attempts when the retry was asked for.
    if ctx.req.query("notice").as_deref() == Some("retried") {
        let after: Option<u32> = ctx.req.query("after").and_then(|a| a.parse().ok());
        if after.is_some_and(|n| d.attempts > n) {
            let text = match d.status {
                Status::Succeeded => "It was sent again and delivered: the newest attempt is below.",
                _ if d.in_flight => "It is being sent again right now.",
                _ => "It was sent again: the newest attempt is below.",
            };
            c.insert("notice", text);
        }
    }
    c.insert("d", &d);
    c.insert("attempts", &history);
    c.insert("endpoint_url", &url);
    c.insert("payload_retention", &format_duration(ctx.cfg.payload_retention));
    render(200, "delivery.html", &c)
}

pub fn retry(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    ctx.write(|db| deliveries::retry(db, &d.id))?;
    redirect(ctx, &format!("/deliveries/{}?notice=retried&after={}", d.id, d.attempts))
}

/// Lets the FIFO key this dead delivery blocks move on.
pub fn discard(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let d = owned_delivery(ctx)?;
    ctx.write(|db| deliveries::discard(db, &d.id))?;
    redirect(ctx, &format!("/deliveries/{}?notice=discarded", d.id))
}
