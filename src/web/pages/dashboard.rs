//! The dashboard: deliveries by status over 24 hours, the hourly chart, the dispatcher's state.

use serde::Serialize;
use serde_json::json;

use super::layout::{context, render};
use crate::model::health::{is_stale, Overview, COUNT_CAP};
use crate::model::time;
use crate::store::{health, ordering, principals};
use crate::web::cgi::Response;
use crate::web::context::Ctx;
use crate::web::error::HttpError;

#[derive(Serialize)]
struct Bar {
    x: i64,
    ok: i64,
    bad: i64,
    ok_y: i64,
    ok_h: i64,
    bad_y: i64,
    bad_h: i64,
    label: String,
}

/// The chart's top value: the busiest hour rounded up to 1, 2 or 5 times a power of ten, so
/// that the scale's marks are whole numbers.
fn chart_top(max: i64) -> i64 {
    let mut unit = 1;
    loop {
        for m in [1, 2, 5] {
            if m * unit >= max {
                return m * unit;
            }
        }
        unit *= 10;
    }
}

/// The most blocked FIFO keys the dashboard lists (each endpoint's page lists its own).
const BLOCKED_ON_DASHBOARD: usize = 20;

pub fn show(ctx: &mut Ctx<'_>) -> Result<Response, HttpError> {
    let scope = ctx.viewer().scope().map(String::from);
    let admin = ctx.viewer().admin;
    let Overview { deliveries_24h: counts, hourly_24h: hours, dispatcher: queue } =
        health::overview(ctx.db()?, scope.as_deref(), time::now_ms())?;
    let (height, bar_width, step, left) = (100i64, 14i64, 20i64, 30i64);
    let top = chart_top(hours.iter().map(|h| h.succeeded + h.unsuccessful).max().unwrap_or(0).max(1));
    let bars: Vec<Bar> = hours
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let ok_h = h.succeeded * height / top;
            let bad_h = h.unsuccessful * height / top;
            Bar {
                x: left + i as i64 * step,
                ok: h.succeeded,
                bad: h.unsuccessful,
                ok_y: height - ok_h,
                ok_h,
                bad_y: height - ok_h - bad_h,
                bad_h,
                label: h.label.clone(),
            }
        })
        .collect();
    let scale: Vec<_> = [top, top / 2, 0]
        .iter()
        .filter(|v| **v == 0 || **v == top || top % 2 == 0)
        .map(|v| json!({"value": v, "y": height - v * height / top}))
        .collect();
    let (ok, bad): (i64, i64) = hours.iter().fold((0, 0), |(a, b), h| (a + h.succeeded, b + h.unsuccessful));
    let rate = (ok + bad > 0).then(|| format!("{:.1}", ok as f64 * 100.0 / (ok + bad) as f64));
    let mut c = context(ctx, "Dashboard", "dashboard");
    c.insert("counts", &counts);
    c.insert("cap", &COUNT_CAP);
    c.insert("queue", &queue);
    c.insert("stale", &is_stale(queue.last_run_seconds_ago));
    let user_id = match scope.as_deref() {
        Some(name) => Some(principals::find(ctx.db()?, name)?.unwrap_or(-1)),
        None => None,
    };
    c.insert("blocked", &ordering::blocked(ctx.db()?, None, user_id, BLOCKED_ON_DASHBOARD)?);
    c.insert("blocked_cap", &BLOCKED_ON_DASHBOARD);
    // Only an administrator can act on a stopped dispatcher: they get the line to install.
    if admin {
        c.insert("cron_line", &ctx.cfg.cron_line());
    }
    c.insert(
        "chart",
        &json!({
            "width": left + 24 * step, "height": height, "left": left, "bar_width": bar_width, "bars": bars,
            "scale": scale, "rate": rate, "succeeded": ok, "unsuccessful": bad,
        }),
    );
    render(200, "dashboard.html", &c)
}
