//! Metrics in the Prometheus text exposition format (docs/operator.md, "Monitoring"): the
//! families and their help, the counters a process adds up before writing them to the store
//! ([`Counts`]), and rendering ([`render`]). Names start with `qsm_webhooks_`.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Upper bounds (seconds) of the attempt duration histogram's buckets; `+Inf` follows.
pub const DURATION_BUCKETS: [f64; 10] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

pub const DELIVERIES: &str = "qsm_webhooks_deliveries_total";
pub const FAILURES: &str = "qsm_webhooks_attempt_failures_total";
pub const DURATION: &str = "qsm_webhooks_attempt_duration_seconds";
pub const INBOUND: &str = "qsm_webhooks_inbound_requests_total";
pub const RUNS: &str = "qsm_webhooks_dispatcher_runs_total";
pub const EXHAUSTED: &str = "qsm_webhooks_dispatcher_budget_exhausted_total";
/// Per user, only for the users `WEBHOOKS_METRICS_USERS` names.
pub const USER_DELIVERIES: &str = "qsm_webhooks_user_deliveries_total";

/// What a delivery's attempt came to, for `qsm_webhooks_deliveries_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// Failed, and will be tried again.
    Failed,
    Dead,
    /// Held (not sent) while its endpoint is disabled.
    Held,
}

impl Outcome {
    /// In declaration order: `outcome as usize` is its place here (the arrays of [`Attempts`]).
    pub const ALL: [Outcome; 4] = [Outcome::Succeeded, Outcome::Failed, Outcome::Dead, Outcome::Held];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Dead => "dead",
            Outcome::Held => "held",
        }
    }
}

/// A series' labels as the exposition format writes them (`a="x",b="y"`), values escaped.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

/// Counter increments one process has made and not yet written: (series name, labels) → amount.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    pub added: BTreeMap<(String, String), f64>,
}

impl Counts {
    pub fn add(&mut self, name: &str, labels: String, by: f64) {
        *self.added.entry((name.to_string(), labels)).or_default() += by;
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
    }

    /// `n` deliveries that came to `outcome` (held ones have no attempt), and to `user`'s.
    pub fn delivery(&mut self, outcome: Outcome, user: Option<&str>, n: u64) {
        if n == 0 {
            return;
        }
        self.add(DELIVERIES, labels(&[("outcome", outcome.as_str())]), n as f64);
        if let Some(u) = user {
            self.user_delivery(outcome, u, n);
        }
    }

    /// `n` of `user`'s deliveries that came to `outcome`, counted in the totals already.
    pub fn user_delivery(&mut self, outcome: Outcome, user: &str, n: u64) {
        if n > 0 {
            self.add(USER_DELIVERIES, labels(&[("outcome", outcome.as_str()), ("user", user)]), n as f64);
        }
    }

    /// One inbound request and what became of it.
    pub fn inbound(&mut self, source: &str, outcome: &str, reason: &str) {
        self.add(INBOUND, labels(&[("source", source), ("outcome", outcome), ("reason", reason)]), 1.0);
    }
}

/// A dispatcher run's attempts, counted in arrays: counting one allocates nothing (it happens
/// once per delivery); the series are made when the run writes them ([`Attempts::add_to`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attempts {
    outcomes: [u64; 4],
    failures: BTreeMap<&'static str, u64>,
    /// Attempts per bucket: the first whose bound holds the duration (the last: `+Inf`).
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    seconds: f64,
}

impl Attempts {
    /// One attempt: what its delivery came to, its failure code and its duration.
    pub fn attempt(&mut self, outcome: Outcome, failure: Option<&'static str>, duration_ms: i64) {
        self.outcomes[outcome as usize] += 1;
        if let Some(code) = failure {
            *self.failures.entry(code).or_default() += 1;
        }
        let seconds = duration_ms.max(0) as f64 / 1000.0;
        let bucket = DURATION_BUCKETS.iter().position(|le| seconds <= *le).unwrap_or(DURATION_BUCKETS.len());
        self.buckets[bucket] += 1;
        self.seconds += seconds;
    }

    /// Deliveries held (no attempt).
    pub fn held(&mut self, n: u64) {
        self.outcomes[Outcome::Held as usize] += n;
    }

    pub fn is_empty(&self) -> bool {
        self.outcomes.iter().all(|n| *n == 0)
    }

    /// The counter increments these make; the histogram's buckets cumulative, as Prometheus'.
    pub fn add_to(&self, counts: &mut Counts) {
        for o in Outcome::ALL {
            counts.delivery(o, None, self.outcomes[o as usize]);
        }
        for (code, n) in &self.failures {
            counts.add(FAILURES, labels(&[("code", code)]), *n as f64);
        }
        let attempts: u64 = self.buckets.iter().sum();
        if attempts == 0 {
            return;
        }
        let bucket = format!("{DURATION}_bucket");
        let mut cumulative = 0;
        for (n, le) in self.buckets.iter().zip(bucket_labels()) {
            cumulative += n;
            counts.add(&bucket, le, cumulative as f64);
        }
        counts.add(&format!("{DURATION}_sum"), String::new(), self.seconds);
        counts.add(&format!("{DURATION}_count"), String::new(), attempts as f64);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family: its name, help, type and samples (series name, labels, value). A
/// histogram's samples are its `_bucket`, `_sum` and `_count` series.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub samples: Vec<(String, String, f64)>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family { name, help, kind, samples: Vec::new() }
    }

    /// A sample of this family's own series.
    pub fn with(mut self, labels: String, value: f64) -> Family {
        self.samples.push((self.name.to_string(), labels, value));
        self
    }
}

/// The text exposition format (version 0.0.4) of `families`, in the order given.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for f in families {
        let _ = writeln!(out, "# HELP {} {}", f.name, f.help.replace('\\', "\\\\").replace('\n', "\\n"));
        let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
        for (series, labels, value) in &f.samples {
            let v = if value.is_finite() { format_value(*value) } else { "NaN".into() };
            if labels.is_empty() {
                let _ = writeln!(out, "{series} {v}");
            } else {
                let _ = writeln!(out, "{series}{{{labels}}} {v}");
            }
        }
    }
    out
}

/// The labels of the duration histogram's buckets, in order: `le="0.05"` … `le="+Inf"`.
fn bucket_labels() -> impl Iterator<Item = String> {
    DURATION_BUCKETS.iter().map(|le| le.to_string()).chain(["+Inf".to_string()]).map(|le| labels(&[("le", &le)]))
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(labels(&[("a", "x"), ("b", "q\"u\\o\nte")]), r#"a="x",b="q\"u\\o\nte""#);
    }

    #[test]
    fn attempts_count_their_outcome_code_and_cumulative_buckets() {
        let mut a = Attempts::default();
        assert!(a.is_empty());
        a.attempt(Outcome::Failed, Some("E_TIMEOUT"), 300);
        a.attempt(Outcome::Succeeded, None, 40);
        a.held(2);
        let mut c = Counts::default();
        a.add_to(&mut c);
        c.user_delivery(Outcome::Failed, "alice", 1);
        let get = |n: &str, l: &str| c.added.get(&(n.to_string(), l.to_string())).copied();
        assert_eq!(get(DELIVERIES, r#"outcome="failed""#), Some(1.0));
        assert_eq!(get(DELIVERIES, r#"outcome="succeeded""#), Some(1.0));
        assert_eq!(get(DELIVERIES, r#"outcome="held""#), Some(2.0));
        assert_eq!(get(DELIVERIES, r#"outcome="dead""#), None, "nothing to add");
        assert_eq!(get(USER_DELIVERIES, r#"outcome="failed",user="alice""#), Some(1.0));
        assert_eq!(get(FAILURES, r#"code="E_TIMEOUT""#), Some(1.0));
        let bucket = format!("{DURATION}_bucket");
        assert_eq!(get(&bucket, r#"le="0.05""#), Some(1.0), "only the 40 ms one");
        assert_eq!(get(&bucket, r#"le="0.25""#), Some(1.0));
        assert_eq!(get(&bucket, r#"le="0.5""#), Some(2.0));
        assert_eq!(get(&bucket, r#"le="+Inf""#), Some(2.0));
        assert_eq!(get(&format!("{DURATION}_count"), ""), Some(2.0));
        assert!((get(&format!("{DURATION}_sum"), "").unwrap() - 0.34).abs() < 1e-9);
    }

    #[test]
    fn families_render_in_the_text_format() {
        let f = [
            Family::new("qsm_webhooks_queue_depth", Kind::Gauge, "Deliveries waiting.").with(String::new(), 3.0),
            Family::new(DELIVERIES, Kind::Counter, "Deliveries by outcome.")
                .with(labels(&[("outcome", "dead")]), 2.0)
                .with(labels(&[("outcome", "held")]), 0.5),
        ];
        assert_eq!(
            render(&f),
            "# HELP qsm_webhooks_queue_depth Deliveries waiting.\n# TYPE qsm_webhooks_queue_depth gauge\nqsm_webhooks_queue_depth 3\n\
             # HELP qsm_webhooks_deliveries_total Deliveries by outcome.\n# TYPE qsm_webhooks_deliveries_total counter\n\
             qsm_webhooks_deliveries_total{outcome=\"dead\"} 2\nqsm_webhooks_deliveries_total{outcome=\"held\"} 0.5\n"
        );
    }
}

/// A count that stops at [`crate::model::health::COUNT_CAP`]: `capped` says "at least".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounded {
    pub n: i64,
    pub capped: bool,
}

/// The last finished dispatcher run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastRun {
    pub duration_seconds: f64,
    pub deliveries: i64,
    pub budget_exhausted: bool,
}

/// One inbound source's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceState {
    pub name: String,
    /// `ok`, `silent`, `failing` (verification) or `disabled`.
    pub state: &'static str,
}

/// The series of one user `WEBHOOKS_METRICS_USERS` names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSeries {
    pub user: String,
    pub queued: Bounded,
    pub due: Bounded,
    pub dead: Bounded,
}

/// Everything a scrape reads from the store, one cheap read per family.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The stored counters: (series name, labels, value).
    pub counters: Vec<(String, String, f64)>,
    pub queue_depth: i64,
    pub due: Bounded,
    pub in_flight: Bounded,
    pub oldest_due_seconds: Option<i64>,
    pub held: Bounded,
    pub dead: Bounded,
    /// Endpoints by health (`ok`, `failing`, `disabled`), and the disabled ones by reason.
    pub endpoints: Vec<(String, i64)>,
    pub disabled: Vec<(String, i64)>,
    pub fifo_blocked: Bounded,
    pub parked: Bounded,
    pub paused_endpoints: i64,
    /// When the last dispatcher run started (Unix seconds), and the last finished one.
    pub last_run_started: Option<i64>,
    pub last_run: Option<LastRun>,
    pub sources: Vec<SourceState>,
    pub users: Vec<UserSeries>,
}

/// `family` with one series per value of `label` in `values`, each the count `counts` has for
/// it, or 0.
fn by_label(mut family: Family, label: &str, values: &[&str], counts: &[(String, i64)]) -> Family {
    for v in values {
        let n = counts.iter().find(|(k, _)| k == v).map_or(0, |x| x.1);
        family = family.with(labels(&[(label, v)]), n as f64);
    }
    family
}

/// The families of a snapshot, in a fixed order; every series that can be zero is written as
/// zero rather than left out, so that alert rules and graphs never meet an absent series.
pub fn families(s: &Snapshot, version: &str) -> Vec<Family> {
    // Every stored series of a counter, and one stored series' value (0 until it was counted).
    let counter = |name: &'static str| -> Vec<(String, String, f64)> {
        s.counters.iter().filter(|(n, _, _)| n == name).cloned().collect()
    };
    let stored = |name: &str, l: &str| s.counters.iter().find(|(n, sl, _)| n == name && sl == l).map_or(0.0, |x| x.2);
    let mut out = Vec::new();
    out.push(
        Family::new("qsm_webhooks_build_info", Kind::Gauge, "The program's version; always 1.")
            .with(labels(&[("version", version)]), 1.0),
    );

    let mut deliveries = Family::new(DELIVERIES, Kind::Counter, "Deliveries by what their attempt came to (failed: will be retried), and those held while their endpoint is disabled.");
    for o in Outcome::ALL {
        let l = labels(&[("outcome", o.as_str())]);
        let v = stored(DELIVERIES, &l);
        deliveries = deliveries.with(l, v);
    }
    out.push(deliveries);

    let mut failures =
        Family::new(FAILURES, Kind::Counter, "Failed attempts by failure code (docs/troubleshooting.md).");
    failures.samples = counter(FAILURES);
    out.push(failures);

    let mut duration =
        Family::new(DURATION, Kind::Histogram, "How long attempts took, request to answer (or failure).");
    let bucket = format!("{DURATION}_bucket");
    duration.samples = bucket_labels().map(|l| (bucket.clone(), l.clone(), stored(&bucket, &l))).collect();
    for part in ["_sum", "_count"] {
        let name = format!("{DURATION}{part}");
        let v = stored(&name, "");
        duration.samples.push((name, String::new(), v));
    }
    out.push(duration);

    let gauge =
        |name: &'static str, help: &'static str, v: f64| Family::new(name, Kind::Gauge, help).with(String::new(), v);
    for (name, help, v) in [
        (
            "qsm_webhooks_queue_depth",
            "Deliveries waiting to be sent (due or not, leased, parked, blocked).",
            s.queue_depth as f64,
        ),
        (
            "qsm_webhooks_queue_due",
            "Deliveries due now and not leased (counted up to 10000: see qsm_webhooks_count_capped).",
            s.due.n as f64,
        ),
        (
            "qsm_webhooks_queue_in_flight",
            "Deliveries leased by a dispatcher run now (counted up to 10000).",
            s.in_flight.n as f64,
        ),
        (
            "qsm_webhooks_queue_oldest_due_seconds",
            "How long the oldest due delivery has waited past its due time; 0 when none is due.",
            s.oldest_due_seconds.unwrap_or(0) as f64,
        ),
        (
            "qsm_webhooks_deliveries_held",
            "Deliveries held while their endpoint is disabled (counted up to 10000).",
            s.held.n as f64,
        ),
        ("qsm_webhooks_deliveries_dead", "Dead deliveries still in the log (counted up to 10000).", s.dead.n as f64),
    ] {
        out.push(gauge(name, help, v));
    }

    out.push(by_label(
        Family::new(
            "qsm_webhooks_endpoints",
            Kind::Gauge,
            "Endpoints by health: ok, failing (since a failed delivery, no success after), disabled.",
        ),
        "health",
        &["ok", "failing", "disabled"],
        &s.endpoints,
    ));
    out.push(by_label(
        Family::new(
            "qsm_webhooks_endpoints_disabled",
            Kind::Gauge,
            "Disabled endpoints by reason: manual, gone (a 410), sustained_failure (the failure rule).",
        ),
        "reason",
        &["manual", "gone", "sustained_failure"],
        &s.disabled,
    ));
    for (name, help, v) in [
        (
            "qsm_webhooks_fifo_keys_blocked",
            "Ordering keys of FIFO endpoints blocked by a dead delivery (counted up to 10000).",
            s.fifo_blocked.n as f64,
        ),
        (
            "qsm_webhooks_paced_deliveries_waiting",
            "Deliveries parked by an endpoint's pacing or pause until their slot (counted up to 10000).",
            s.parked.n as f64,
        ),
        (
            "qsm_webhooks_endpoints_paused",
            "Endpoints paused now by a 429 or a 503 with Retry-After.",
            s.paused_endpoints as f64,
        ),
    ] {
        out.push(gauge(name, help, v));
    }

    let mut capped = Family::new(
        "qsm_webhooks_count_capped",
        Kind::Gauge,
        "1 when a counted gauge reached its cap of 10000 and means at least that many.",
    );
    for (name, b) in [
        ("queue_due", s.due),
        ("queue_in_flight", s.in_flight),
        ("deliveries_held", s.held),
        ("deliveries_dead", s.dead),
        ("fifo_keys_blocked", s.fifo_blocked),
        ("paced_deliveries_waiting", s.parked),
    ] {
        capped = capped.with(labels(&[("metric", name)]), if b.capped { 1.0 } else { 0.0 });
    }
    out.push(capped);

    let mut inbound = Family::new(
        INBOUND,
        Kind::Counter,
        "Requests to inbound sources by source, outcome (accepted, duplicate, rejected) and reject reason.",
    );
    inbound.samples = counter(INBOUND);
    out.push(inbound);
    let mut sources = Family::new(
        "qsm_webhooks_source_state",
        Kind::Gauge,
        "Each inbound source's state: 1 for its state (ok, silent, failing verification, disabled), 0 for the others.",
    );
    for src in &s.sources {
        for st in ["ok", "silent", "failing", "disabled"] {
            sources =
                sources.with(labels(&[("source", &src.name), ("state", st)]), if src.state == st { 1.0 } else { 0.0 });
        }
    }
    out.push(sources);

    let last = s.last_run.clone().unwrap_or_default();
    for (name, help, v) in [
        (
            "qsm_webhooks_dispatcher_last_run_timestamp_seconds",
            "When the last dispatcher run started (Unix time); 0 when none has.",
            s.last_run_started.unwrap_or(0) as f64,
        ),
        (
            "qsm_webhooks_dispatcher_last_run_duration_seconds",
            "How long the last finished run took.",
            last.duration_seconds,
        ),
        ("qsm_webhooks_dispatcher_last_run_deliveries", "Requests the last finished run sent.", last.deliveries as f64),
        (
            "qsm_webhooks_dispatcher_last_run_budget_exhausted",
            "1 when the last finished run stopped at its time budget with work left.",
            if last.budget_exhausted { 1.0 } else { 0.0 },
        ),
    ] {
        out.push(gauge(name, help, v));
    }
    out.push(Family::new(RUNS, Kind::Counter, "Dispatcher runs finished.").with(String::new(), stored(RUNS, "")));
    out.push(
        Family::new(EXHAUSTED, Kind::Counter, "Dispatcher runs that stopped at their time budget with work left.")
            .with(String::new(), stored(EXHAUSTED, "")),
    );

    if !s.users.is_empty() {
        let mut user_deliveries = Family::new(
            USER_DELIVERIES,
            Kind::Counter,
            "Deliveries by what their attempt came to, per user named in WEBHOOKS_METRICS_USERS.",
        );
        let mut queued = Family::new(
            "qsm_webhooks_user_queue_depth",
            Kind::Gauge,
            "Deliveries waiting, per user named in WEBHOOKS_METRICS_USERS (counted up to 10000).",
        );
        let mut due = Family::new(
            "qsm_webhooks_user_queue_due",
            Kind::Gauge,
            "Deliveries due now, per user named in WEBHOOKS_METRICS_USERS (counted up to 10000).",
        );
        let mut dead = Family::new(
            "qsm_webhooks_user_deliveries_dead",
            Kind::Gauge,
            "Dead deliveries in the log, per user named in WEBHOOKS_METRICS_USERS (counted up to 10000).",
        );
        for u in &s.users {
            // Held deliveries are counted installation-wide only.
            for o in [Outcome::Succeeded, Outcome::Failed, Outcome::Dead] {
                let l = labels(&[("outcome", o.as_str()), ("user", &u.user)]);
                let v = stored(USER_DELIVERIES, &l);
                user_deliveries = user_deliveries.with(l, v);
            }
            let l = labels(&[("user", &u.user)]);
            queued = queued.with(l.clone(), u.queued.n as f64);
            due = due.with(l.clone(), u.due.n as f64);
            dead = dead.with(l, u.dead.n as f64);
        }
        out.extend([user_deliveries, queued, due, dead]);
    }
    out
}
