//! One dispatcher run (`webhooks dispatch`, from cron): claim due deliveries with a lease, send
//! them from a pool of worker threads, record every attempt, then apply retention.
//!
//! The coordinator thread owns the database connection; workers only sign and send. Claims go
//! user by user in round-robin order and take no more than a user's free share of
//! `WEBHOOKS_CONCURRENCY_PER_USER` — counted from live leases in the database, so the limit holds
//! across overlapping runs — which keeps one user's hanging endpoint from starving the others.
//! Nothing is claimed that could not finish within `WEBHOOKS_TIME_BUDGET`.

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::Config;
use crate::model::delivery::{decide, FailureCode, Next, Outcome};
use crate::model::delivery::{random_unit, Schedule};
use crate::model::endpoint::{Headers, SignatureCompat};
use crate::model::health::Notify;
use crate::model::metrics::{self, Counts};
use crate::model::pacing as pacing_rules;
use crate::model::secret::{Keyring, SigningKey};
use crate::model::{time, Error, Result};
use crate::outbound::notify;
use crate::outbound::send::{self, Sender};
use crate::outbound::signing;
use crate::store::queue::Attempted;
use crate::store::queue::{self, Claim, Due, Relay};
use crate::store::retention::{self, Purged};
use crate::store::{endpoints, pacing, Db, Store};

/// How long the coordinator waits to gather results into one transaction.
const GATHER_WAIT: Duration = Duration::from_millis(2);

/// How often a dispatcher on PostgreSQL looks again for work while others hold it.
const HELP_POLL: Duration = Duration::from_millis(50);

/// The longest a run with nothing due sleeps at once while parked deliveries wait (it looks
/// again after, in case another dispatcher parked some sooner).
const PARKED_POLL: Duration = Duration::from_millis(1000);

/// SQLite: WAL pages between the run's automatic checkpoints, 16 MiB at most ([`Store::checkpoint_every`]).
const CHECKPOINT_PAGES: u32 = 4_000;

/// What one run did; printed as the summary line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub run_id: String,
    pub started_at: String,
    pub duration_ms: u128,
    pub claimed: usize,
    pub sent: usize,
    pub succeeded: usize,
    pub retrying: usize,
    pub dead: usize,
    /// Claimed but given back untried because the time budget ran out.
    pub released: usize,
    /// Ended without a request (endpoint disabled, body expired).
    pub unsent: usize,
    pub failures: BTreeMap<String, usize>,
    pub budget_exhausted: bool,
    /// Another process held the database's write lock past the busy timeout: what could not be
    /// written was left for the next run (results not recorded are sent again: at least once).
    pub busy: bool,
    /// Deliveries held because their endpoint is disabled by the failure rule or a 410.
    pub held: usize,
    /// Operational events sent to the operator.
    pub notices: notify::Sent,
    pub purged: Purged,
    /// Attempts and other counter increments not yet written to the store (`flush_metrics`).
    #[serde(skip)]
    pub attempts: metrics::Attempts,
    #[serde(skip)]
    pub metrics: Counts,
    /// With `WEBHOOKS_METRICS_USERS`: outcomes per endpoint, whose users are looked up when
    /// written (a job does not carry its user).
    #[serde(skip)]
    pub by_endpoint: BTreeMap<String, [u64; 4]>,
}

impl Summary {
    pub fn line(&self) -> String {
        let failures: Vec<String> = self.failures.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "dispatch {}: sent {} (succeeded {}, retrying {}, dead {}), unsent {}, released {}{} in {} ms; purged {}, {}, {}{}",
            self.run_id, self.sent, self.succeeded, self.retrying, self.dead, self.unsent, self.released,
            if failures.is_empty() { String::new() } else { format!(" [{}]", failures.join(" ")) },
            self.duration_ms,
            crate::model::count(self.purged.payloads as i64, "payload", "payloads"),
            crate::model::count(self.purged.deliveries as i64, "delivery", "deliveries"),
            crate::model::count(self.purged.events as i64, "event", "events"),
            if self.budget_exhausted { "; time budget reached" } else { "" },
        ) + &if self.held > 0 { format!("; held {} for disabled endpoints", crate::model::count(self.held as i64, "delivery", "deliveries")) } else { String::new() }
            + &if self.notices.webhooks + self.notices.emails + self.notices.failed > 0 {
                format!(
                    "; operator notices: {} posted, {} mailed, {} to try again",
                    self.notices.webhooks, self.notices.emails, self.notices.failed
                )
            } else {
                String::new()
            }
            + if self.busy { "; database busy, work left for the next run" } else { "" }
    }
}

/// A claimed delivery, ready to send.
struct Job {
    delivery_id: String,
    event_id: String,
    event_type: String,
    endpoint_id: String,
    url: String,
    created_at: i64,
    attempt: u32,
    payload: Arc<[u8]>,
    relay: Option<Relay>,
    ordering_key: Option<String>,
    block_on_dead: bool,
    keys: Arc<Signer>,
    /// Until when this run holds the delivery; a request that could outlast it is not started.
    lease_until: i64,
}

impl Job {
    fn of(due: Due, keys: Arc<Signer>, lease_until: i64) -> Job {
        Job {
            delivery_id: due.delivery_id,
            event_id: due.event_id,
            event_type: due.event_type,
            endpoint_id: due.endpoint_id,
            url: due.url,
            created_at: due.created_at,
            attempt: due.attempt,
            payload: Arc::from(due.payload),
            relay: due.relay,
            ordering_key: due.ordering_key,
            block_on_dead: due.block_on_dead,
            keys,
            lease_until,
        }
    }
}

/// What signs an endpoint's deliveries and what they carry besides the product's headers.
struct Signer {
    keys: Vec<SigningKey>,
    headers: Headers,
    compat: SignatureCompat,
}

enum Done {
    Sent {
        job: Job,
        outcome: Outcome,
        started_at: i64,
    },
    /// Given back untried; due again at the time given (this machine's clock), else at once.
    Released(Job, Option<i64>),
}

/// Endpoints whose receivers asked for no requests (429, 503 with `Retry-After`), until when
/// (this machine's clock): what a worker checks before it starts a request. A worker that gets
/// such an answer adds it at once; the coordinator adds those other dispatchers recorded at
/// each claim (docs/pacing.md).
type Pauses = Mutex<HashMap<String, i64>>;

/// Notes that an endpoint is paused until `until`, keeping the later of two pauses.
fn note_pause(p: &mut HashMap<String, i64>, endpoint_id: &str, until: i64) {
    let e = p.entry(endpoint_id.to_string()).or_insert(until);
    *e = (*e).max(until);
}

/// The argument with which `webhooks-cgi` runs as the after-intake dispatcher.
pub const ON_INTAKE_ARG: &str = "--dispatch-on-intake";

/// Starts this program again as a detached dispatcher (`WEBHOOKS_DISPATCH_ON_INTAKE`): its own
/// process group, no standard streams (the web server waits for the CGI's output to close, not
/// for this), not waited for.
pub fn start_detached() -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| Error::internal("cannot find this program's path", e))?;
    std::process::Command::new(exe)
        .arg(ON_INTAKE_ARG)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::internal("cannot start the dispatcher", e))?;
    Ok(())
}

/// The after-intake dispatcher: at most one at a time per installation (an exclusive lock on
/// `dispatch-on-intake.lock` beside the database; a second one returns at once). It runs until
/// nothing it can send is due — checked after the lock is released, so that an event that
/// arrived while a second start was turned away is not left for cron — at most a few runs.
pub fn on_intake(cfg: &Config) -> Result<()> {
    let lock_path = cfg.lock_file("dispatch-on-intake.lock");
    for _ in 0..5 {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::internal(&format!("cannot open {}", lock_path.display()), e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::internal("cannot lock", e)),
        }
        let summary = run(cfg)?;
        drop(lock);
        let due = queue::any_due(Store::open(&cfg.database)?.db(), time::now_ms())?;
        if !due || summary.sent == 0 {
            return Ok(());
        }
    }
    Ok(())
}

/// Runs one dispatch over the configured database.
pub fn run(cfg: &Config) -> Result<Summary> {
    let keyring = cfg.keyring()?;
    let mut store = Store::open(&cfg.database)?;
    run_on(&mut store, cfg, &keyring)
}

pub fn run_on(store: &mut Store, cfg: &Config, keyring: &Keyring) -> Result<Summary> {
    let started = Instant::now();
    let start_ms = time::now_ms();
    let deadline = start_ms + cfg.time_budget.as_millis() as i64;
    let timeout_ms = cfg.request_timeout.as_millis() as i64;
    let mut summary =
        Summary { run_id: time::new_id("run"), started_at: time::rfc3339(start_ms), ..Summary::default() };
    store.checkpoint_every(CHECKPOINT_PAGES)?;
    // On PostgreSQL leases are in the database's time, the same for every dispatcher whatever
    // its own clock says: the run works on its clock plus this difference.
    let skew = match store.clock_skew() {
        Ok(s) => s,
        Err(Error::Busy) => 0,
        Err(e) => return Err(e),
    };
    let registered = queue::start_run(store.db(), &summary.run_id, start_ms);
    if unless_busy(registered, &mut summary)?.is_none() {
        // Nothing claimed, nothing lost; no heartbeat either, so a lock held for good shows up
        // as a stale dispatcher on the dashboard and in `doctor`.
        summary.duration_ms = started.elapsed().as_millis();
        return Ok(summary);
    }

    let sender = Sender::new(cfg);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let pauses: Pauses = Mutex::new(HashMap::new());

    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..cfg.concurrency {
            let (rx, tx, sender) = (Arc::clone(&job_rx), done_tx.clone(), sender.clone());
            let prefix = cfg.header_prefix.as_str();
            let pauses = &pauses;
            scope.spawn(move || worker(&rx, &tx, &sender, pauses, prefix, deadline, timeout_ms));
        }
        drop(done_tx);
        let mut coordinator = Coordinator {
            cfg,
            keyring,
            schedule: cfg.retry(),
            notify: cfg.notify(),
            run_id: summary.run_id.clone(),
            skew,
            cursor: None,
            keys: HashMap::new(),
            pauses: &pauses,
            wake_at: None,
        };
        // Claimed jobs not yet reported back. Up to 3 × `concurrency` more than the workers can
        // take wait in the queue, so that workers never idle while the coordinator writes, and
        // the coordinator can record results and claim in batches (a job whose lease would run
        // out before it could finish is released at pick-up, see `worker`).
        // Measured (docs/benchmarks.md): a queue of 4 × concurrency recorded in batches of up
        // to `concurrency` results sends 20-40% more per second than 2 × and a half.
        // Where claims run at once (PostgreSQL), other dispatchers share the users' caps: leases
        // parked in this run's queue keep them idle, so a run claims hardly more than its
        // workers can send (a quarter more, to cover its own record and claim). Measured with 4
        // processes of 8 workers against 40 leases' worth of caps: 2 × parked enough to halve
        // the throughput.
        let concurrent = store.capabilities().concurrent_claims;
        let capacity = if concurrent { cfg.concurrency + cfg.concurrency.div_ceil(4) } else { cfg.concurrency * 4 };
        let gather = cfg.concurrency.max(1);
        let mut outstanding = 0usize;
        let mut batch: Vec<Done> = Vec::new();
        let mut flushed = Instant::now();
        let result = (|| -> Result<()> {
            loop {
                let now = time::now_ms();
                let can_start = now + timeout_ms <= deadline;
                let slots = if can_start { capacity - outstanding } else { 0 };
                // Record what came back and claim what fits (`step`).
                let (jobs, progressed) =
                    coordinator.step(store, std::mem::take(&mut batch), slots, now, &mut summary)?;
                if flushed.elapsed() >= METRICS_EVERY {
                    flush_metrics(store, cfg, &mut summary)?;
                    flushed = Instant::now();
                }
                for job in jobs {
                    outstanding += 1;
                    summary.claimed += 1;
                    job_tx.send(job).expect("workers live until the job channel closes");
                }
                if !can_start
                    && !summary.budget_exhausted
                    && (outstanding > 0 || queue::any_due(store.db(), now + skew)?)
                {
                    summary.budget_exhausted = true;
                }
                if outstanding == 0 {
                    if progressed && can_start {
                        continue; // only ended unsendable deliveries: claim again
                    }
                    // Claims at once: deliveries are due that this run may not claim, their users'
                    // caps being full with other dispatchers' leases: keep helping until none
                    // is due (work leased by others is theirs, or due again when they die).
                    if concurrent && can_start && queue::any_due(store.db(), now + skew)? {
                        std::thread::sleep(HELP_POLL);
                        continue;
                    }
                    // Deliveries parked by pacing or a pause (this run's or another's) that come
                    // due within the budget: wait for them rather than leave them to the next run.
                    let next = match coordinator.wake_at {
                        Some(w) => Some(w),
                        None => pacing::next_parked(store.db(), now + skew)?.map(|t| t - skew),
                    };
                    match next {
                        Some(at) if can_start && at + timeout_ms <= deadline => {
                            let wait = (at - time::now_ms()).clamp(1, PARKED_POLL.as_millis() as i64);
                            std::thread::sleep(Duration::from_millis(wait as u64));
                            coordinator.wake_at = None; // the claim after the wait finds the next
                            continue;
                        }
                        _ => return Ok(()),
                    }
                }
                // Wait for one result (or, with deliveries parked, until the first comes due),
                // then gather a few more (briefly) to record them together.
                let first = match coordinator.wake_at {
                    Some(at) => {
                        let wait = (at - time::now_ms()).max(0) as u64;
                        match done_rx.recv_timeout(Duration::from_millis(wait)) {
                            Ok(done) => Some(done),
                            Err(mpsc::RecvTimeoutError::Timeout) => None,
                            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a worker answers every job"),
                        }
                    }
                    None => Some(done_rx.recv().expect("a worker answers every job")),
                };
                let Some(first) = first else {
                    coordinator.wake_at = None; // due now: the next step claims it
                    continue;
                };
                batch.push(first);
                let until = Instant::now() + GATHER_WAIT;
                while batch.len() < gather.min(outstanding) {
                    match done_rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok(more) => batch.push(more),
                        Err(_) => break,
                    }
                }
                while let Ok(more) = done_rx.try_recv() {
                    batch.push(more);
                }
                outstanding -= batch.len();
            }
        })();
        drop(job_tx);
        result
    })?;

    if !summary.busy {
        // Inbound sources: silence, and the failing-verification alert's end (its start is
        // seen by the CGI on the reject that crosses the rule).
        let notify = cfg.notify();
        let told = store.write(|db| crate::store::inbound_requests::tick(db, &notify, time::now_ms()));
        unless_busy(told, &mut summary)?;
        let sent = notify::send_due(store, cfg, &summary.run_id, deadline);
        summary.notices = unless_busy(sent, &mut summary)?.unwrap_or_default();
    }
    let now = time::now_ms();
    if !summary.busy {
        let purged = retention::purge(store.db(), &cfg.retention(), now, 20);
        summary.purged = unless_busy(purged, &mut summary)?.unwrap_or_default();
    }
    summary.metrics.add(metrics::RUNS, String::new(), 1.0);
    if summary.budget_exhausted {
        summary.metrics.add(metrics::EXHAUSTED, String::new(), 1.0);
    }
    flush_metrics(store, cfg, &mut summary)?;
    store.checkpoint()?;
    summary.duration_ms = started.elapsed().as_millis();
    let finished = queue::finish_run(store.db(), &summary.run_id, time::now_ms(), &serde_json::to_string(&summary)?);
    unless_busy(finished, &mut summary)?;
    Ok(summary)
}

/// A write that found the database busy past the timeout is skipped (`None`) and the run
/// marked busy; any other error stands.
fn unless_busy<T>(result: Result<T>, summary: &mut Summary) -> Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(Error::Busy) => {
            summary.busy = true;
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn worker(
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: &mpsc::Sender<Done>,
    sender: &Sender,
    pauses: &Pauses,
    prefix: &str,
    deadline: i64,
    timeout_ms: i64,
) {
    loop {
        let job = match jobs.lock().map(|rx| rx.recv()) {
            Ok(Ok(job)) => job,
            _ => return,
        };
        let now = time::now_ms();
        // The run's last safe start time, or the job's lease, may pass between claim and
        // pick-up (jobs wait in a queue): a request that could outlast either is not started,
        // so no other run can ever be sending the same delivery.
        if now + timeout_ms > deadline || now + timeout_ms > job.lease_until {
            let _ = done.send(Done::Released(job, None));
            continue;
        }
        // Its receiver asked for a pause since the claim: not started, due again after it.
        let paused = pauses.lock().ok().and_then(|p| p.get(&job.endpoint_id).copied()).filter(|&t| t > now);
        if paused.is_some() {
            let _ = done.send(Done::Released(job, paused));
            continue;
        }
        let mut headers = signing::headers(
            prefix,
            &job.keys.keys,
            &signing::Delivery {
                event_id: &job.event_id,
                event_type: &job.event_type,
                attempt: job.attempt,
                timestamp: now / 1000,
                body: &job.payload,
            },
        );
        if let Some(r) = &job.relay {
            signing::relayed(prefix, &mut headers, &r.content_type, &r.source, &r.provider, r.replay_of.as_deref());
        }
        let s = &job.keys;
        signing::add_endpoint_headers(&mut headers, &s.headers, s.compat, s.keys.first(), &job.payload);
        // A panic here must not lose the job: the coordinator waits for an answer to each one.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sender.post(&job.url, &headers, &job.payload)))
                .unwrap_or_else(|_| Outcome::failure(FailureCode::Connect, "internal error while sending (logged)"));
        if let Some(pause) = pacing_rules::pause_of(&outcome) {
            // The other workers hold this endpoint's jobs from now, before the record says so.
            if let Ok(mut p) = pauses.lock() {
                note_pause(&mut p, &job.endpoint_id, time::now_ms() + pause.as_millis() as i64);
            }
        }
        let _ = done.send(Done::Sent { job, outcome, started_at: now });
    }
}

struct Coordinator<'a> {
    cfg: &'a Config,
    keyring: &'a Keyring,
    schedule: Schedule,
    notify: Notify,
    run_id: String,
    /// The database's clock minus this machine's (0 on SQLite), in ms.
    skew: i64,
    /// The last user served: the next claim starts after it (round-robin).
    cursor: Option<i64>,
    /// Signing keys and custom headers per endpoint, read once per run.
    keys: HashMap<String, Arc<Signer>>,
    /// What the workers check before they start a request.
    pauses: &'a Pauses,
    /// When the first delivery this run parked comes due (this machine's clock).
    wake_at: Option<i64>,
}

impl Coordinator<'_> {
    /// Records `batch` and claims up to `slots` due deliveries: in one transaction on SQLite, in
    /// two on PostgreSQL (the record's endpoint locks are then not held for the claim). Busy errors
    /// are retried; if the database stays busy the results are dropped (their leases expire and
    /// the deliveries are sent again: at least once) and nothing is claimed.
    fn step(
        &mut self,
        store: &mut Store,
        batch: Vec<Done>,
        slots: usize,
        now: i64,
        summary: &mut Summary,
    ) -> Result<(Vec<Job>, bool)> {
        if batch.is_empty() && slots == 0 {
            return Ok((Vec::new(), false));
        }
        let nothing = || (Vec::new(), 0, 0);
        let (recorded, claimed) = if store.capabilities().concurrent_claims {
            // Claims at once: two transactions: the record's locks on the endpoints' rows, which every
            // dispatcher sending to those endpoints must take in turn, are held only for the
            // record, not for the claim after it as well.
            let recorded = if batch.is_empty() {
                Some(Vec::new())
            } else {
                retry_busy(|| store.work(|db| self.record(db, &batch)))?
            };
            let claimed = match recorded {
                None => None,
                Some(_) if slots == 0 => Some(nothing()),
                Some(_) => retry_busy(|| {
                    let cursor = self.cursor;
                    let claimed = store.work(|db| self.claim(db, slots, now));
                    if claimed.is_err() {
                        self.cursor = cursor; // rolled back (cached keys stay valid)
                    }
                    claimed
                })?,
            };
            (recorded, claimed)
        } else {
            // One writer at a time: one transaction, that writer serialising the runs anyway.
            let stepped = retry_busy(|| {
                let cursor = self.cursor;
                let stepped = store.work(|db| {
                    let nexts = self.record(db, &batch)?;
                    Ok((nexts, if slots > 0 { self.claim(db, slots, now)? } else { nothing() }))
                });
                if stepped.is_err() {
                    self.cursor = cursor; // rolled back (cached keys stay valid)
                }
                stepped
            })?;
            stepped.map_or((None, None), |(nexts, claimed)| (Some(nexts), Some(claimed)))
        };
        let Some(nexts) = recorded else {
            eprintln!("webhooks dispatch: database busy, could not record {} results", batch.len());
            summary.busy = true;
            return Ok((Vec::new(), false));
        };
        let per_user = !self.cfg.metrics_users.is_empty();
        for (done, next) in batch.iter().zip(nexts) {
            tally(summary, done, next, per_user);
        }
        let Some((jobs, unsent, held)) = claimed else {
            summary.busy = true;
            return Ok((Vec::new(), false));
        };
        summary.unsent += unsent;
        summary.held += held;
        summary.attempts.held(held as u64);
        let progressed = !jobs.is_empty() || unsent > 0 || held > 0;
        Ok((jobs, progressed))
    }

    /// Claims up to `slots` due deliveries (`store::queue`) and makes jobs of them; a delivery
    /// whose endpoint has no signing key is ended unsent. Returns the jobs, how many deliveries
    /// were ended unsent and how many were held.
    fn claim(&mut self, db: Db<'_>, slots: usize, local_now: i64) -> Result<(Vec<Job>, usize, usize)> {
        // Not before the record just made in this step: a FIFO key's next delivery became due
        // at the record's time, and must be claimable by the claim that follows it.
        let now = local_now.max(time::now_ms()) + self.skew;
        let lease_until = now + self.cfg.lease().as_millis() as i64;
        let request = Claim {
            run_id: &self.run_id,
            now,
            lease_until,
            per_user: self.cfg.concurrency_per_user,
            slots,
            payload_retention: self.cfg.payload_retention,
        };
        let claimed = queue::claim(db, &request, &mut self.cursor)?;
        if let Some(at) = claimed.parked_until {
            let at = at - self.skew;
            self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
        }
        // Pauses other dispatchers recorded, for this run's workers.
        let paused = pacing::paused(db, now)?;
        if let Ok(mut p) = self.pauses.lock() {
            p.retain(|_, until| *until > local_now);
            for (id, until) in paused {
                note_pause(&mut p, &id, until - self.skew);
            }
        }
        let mut unsent = claimed.unsent;
        let mut jobs = Vec::with_capacity(claimed.due.len());
        for due in claimed.due {
            let keys = self.keys_for(db, &due.endpoint_id, now)?;
            if keys.keys.is_empty() {
                let (id, run) = (&due.delivery_id, &self.run_id);
                let why = "the endpoint has no signing key";
                queue::finish_unsent(db, id, run, FailureCode::NoSigningKey, why, now, self.cfg.payload_retention)?;
                unsent += 1;
                continue;
            }
            // The workers compare the lease with this machine's clock.
            jobs.push(Job::of(due, keys, lease_until - self.skew));
        }
        Ok((jobs, unsent, claimed.held))
    }

    fn keys_for(&mut self, db: Db<'_>, endpoint_id: &str, now: i64) -> Result<Arc<Signer>> {
        if let Some(k) = self.keys.get(endpoint_id) {
            return Ok(Arc::clone(k));
        }
        let (headers, compat) = endpoints::custom_headers(db, self.keyring, endpoint_id)?;
        let k =
            Arc::new(Signer { keys: endpoints::signing_keys(db, self.keyring, endpoint_id, now)?, headers, compat });
        self.keys.insert(endpoint_id.to_string(), Arc::clone(&k));
        Ok(k)
    }

    /// Applies a batch of results: the attempts together (`queue::record`), then the releases.
    fn record(&self, db: Db<'_>, batch: &[Done]) -> Result<Vec<Option<Next>>> {
        let now = time::now_ms() + self.skew;
        let decided: Vec<Option<(Next, Option<String>)>> = batch
            .iter()
            .map(|done| match done {
                Done::Sent { job, outcome, .. } => {
                    let next = decide(&self.schedule, job.attempt, outcome, now, random_unit());
                    let logged_body =
                        self.cfg.log_bodies.then(|| send::storable(&String::from_utf8_lossy(&job.payload)));
                    Some((next, logged_body))
                }
                Done::Released(..) => None,
            })
            .collect();
        let attempted: Vec<Attempted<'_>> = batch
            .iter()
            .zip(&decided)
            .filter_map(|(done, decided)| match (done, decided) {
                (Done::Sent { job, outcome, started_at }, Some((next, logged_body))) => Some(Attempted {
                    delivery_id: &job.delivery_id,
                    event_id: &job.event_id,
                    created_at: job.created_at,
                    endpoint_id: &job.endpoint_id,
                    attempt: job.attempt,
                    run_id: &self.run_id,
                    started_at: *started_at,
                    outcome,
                    request_body: logged_body.as_deref(),
                    next: *next,
                    ordering_key: job.ordering_key.as_deref(),
                    block_on_dead: job.block_on_dead,
                }),
                _ => None,
            })
            .collect();
        queue::record(db, &attempted, now, self.cfg.payload_retention, &self.notify)?;
        for done in batch {
            if let Done::Released(job, until) = done {
                let at = until.map_or(now, |u| (u + self.skew).max(now));
                queue::release(db, &job.delivery_id, &self.run_id, at)?;
            }
        }
        Ok(decided.into_iter().map(|d| d.map(|(next, _)| next)).collect())
    }
}

/// Runs `f` up to three times while the database is busy; `None` if it stayed busy.
fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<Option<T>> {
    for _ in 0..3 {
        match f() {
            Ok(v) => return Ok(Some(v)),
            Err(Error::Busy) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

fn tally(summary: &mut Summary, done: &Done, next: Option<Next>, per_user: bool) {
    match (done, next) {
        (Done::Sent { job, outcome, .. }, Some(next)) => {
            summary.sent += 1;
            if let Some(code) = outcome.error_code {
                *summary.failures.entry(code.as_str().to_string()).or_default() += 1;
            }
            let came_to = match next {
                Next::Succeeded => {
                    summary.succeeded += 1;
                    metrics::Outcome::Succeeded
                }
                Next::RetryAt(_) => {
                    summary.retrying += 1;
                    metrics::Outcome::Failed
                }
                Next::Dead => {
                    summary.dead += 1;
                    metrics::Outcome::Dead
                }
            };
            summary.attempts.attempt(came_to, outcome.error_code.map(|c| c.as_str()), outcome.duration_ms);
            if per_user {
                summary.by_endpoint.entry(job.endpoint_id.clone()).or_default()[came_to as usize] += 1;
            }
        }
        _ => summary.released += 1,
    }
}

/// How often a run writes its counters while it runs (and once more when it ends): a run
/// killed on the way loses at most this much of them.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Writes the run's counter increments (and, for the users `WEBHOOKS_METRICS_USERS` names, its
/// outcomes per endpoint as theirs); kept for the next try when the database is busy.
fn flush_metrics(store: &mut Store, cfg: &Config, summary: &mut Summary) -> Result<()> {
    if summary.attempts.is_empty() && summary.metrics.is_empty() && summary.by_endpoint.is_empty() {
        return Ok(());
    }
    let users = &cfg.metrics_users;
    let written = store.write(|db| {
        let mut counts = summary.metrics.clone();
        summary.attempts.add_to(&mut counts);
        for (endpoint, outcomes) in &summary.by_endpoint {
            let Some(user) = endpoints::user_of(db, endpoint)?.filter(|u| users.contains(u)) else { continue };
            for (o, n) in metrics::Outcome::ALL.iter().zip(outcomes) {
                counts.user_delivery(*o, &user, *n);
            }
        }
        crate::store::metrics::add(db, &counts)
    });
    match written {
        Ok(()) => {
            summary.attempts = metrics::Attempts::default();
            summary.metrics = Counts::default();
            summary.by_endpoint.clear();
            Ok(())
        }
        Err(Error::Busy) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `--every`: one run per interval until interrupted. A run that fails (the database stopped,
/// moved or unreachable) is one line on stderr and the loop goes on: the next try comes after
/// 1 s, then 2, 4, … while runs keep failing, never later than the interval.
pub fn run_every(cfg: &Config, every: Duration, mut report: impl FnMut(&Summary)) -> Result<()> {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        let wait = match run(cfg) {
            Ok(summary) => {
                failures = 0;
                report(&summary);
                every.saturating_sub(started.elapsed())
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let wait = retry_wait(failures, every);
                eprintln!("webhooks dispatch: run failed, next try in {} s: {e}", wait.as_secs_f64());
                wait
            }
        };
        std::thread::sleep(wait);
    }
}

/// The wait after the `failures`-th failed run in a row: 1 s doubling, at most `every`.
pub fn retry_wait(failures: u32, every: Duration) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(16)).min(every)
}
