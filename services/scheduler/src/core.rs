//! The scheduler's decisions, without I/O beyond its database: every
//! method takes the time it runs at and returns what the service must do
//! ([`Action`]: start a run, cancel one, hand an answer to a gateway).
//! The service owns the one timer, armed to [`Core::next_wake`], and the
//! bus; this owns the jobs and their rows. Tested on an injected clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use oi_ipc_schema::agent::IntentRequest;
use tracing::{info, warn};

use crate::config::SchedulerConfig;
use crate::job::{Job, JobError, intent_id, ts};
use crate::overlap;
use crate::slots::{Rules, decide};
use crate::store::{DeliveryRow, Finish, NewRow, Recovered, Status, Store, StoreError};

mod ops;
mod outcome;

pub use outcome::{Delivered, Outcome};

/// What the service must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run an intent; its row is written already.
    Start(RunOrder),
    /// Stop a run (its task reports `Cancelled` with this reason).
    Cancel { run: i64, reason: String },
    /// Hand an answer to a gateway.
    Deliver(DeliveryRow),
}

/// One run to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOrder {
    pub run: i64,
    pub job: i64,
    pub request: IntentRequest,
    pub timeout: Duration,
}

/// Why the scheduler woke up: the reason the missed slots get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The service started: slots since the last row passed while it was
    /// not running.
    Start,
    /// Its timer, or a change.
    Timer,
    /// The wall clock jumped by this much since the last wake-up.
    ClockJump(SignedDuration),
}

impl Why {
    fn reason(self, late: SignedDuration) -> String {
        match self {
            Why::Start => "the scheduler was not running".into(),
            Why::ClockJump(skew) => crate::jump::in_words(skew),
            Why::Timer => format!(
                "it came due {:#} late (the system was busy or asleep)",
                SignedDuration::from_secs(late.as_secs())
            ),
        }
    }
}

/// Errors of the operations users ask for.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{0}")]
    Job(#[from] JobError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("job {job} is running (run {run}); wait for it to end, or remove the job")]
    Busy { job: i64, run: i64 },
    #[error("job {0} is not yours: it was made elsewhere (`oictl cron list` shows every job)")]
    NotYours(i64),
}

impl CoreError {
    /// Whether the caller asked for something wrong (not a fault here).
    pub fn is_bad_request(&self) -> bool {
        !matches!(
            self,
            CoreError::Store(StoreError::Sql(_) | StoreError::Open { .. })
        )
    }
}

pub struct Core {
    store: Store,
    cfg: SchedulerConfig,
    host_zone: String,
    jobs: HashMap<i64, Job>,
    /// (due ms, job) of every enabled job with a slot left.
    due: BTreeSet<(i64, i64)>,
    /// The run going, per job.
    running: HashMap<i64, i64>,
    /// Runs waiting for the job's running one, per job.
    queued: HashMap<i64, VecDeque<i64>>,
    /// (next attempt ms, id) of every pending delivery not in flight.
    outbox: BTreeSet<(i64, i64)>,
    pending: HashMap<i64, DeliveryRow>,
}

impl Core {
    /// Opens the database and loads the jobs. Runs a crash cut short are
    /// `interrupted`, never re-run.
    pub fn open(
        path: &Path,
        cfg: SchedulerConfig,
        host_zone: String,
    ) -> Result<(Core, Recovered), CoreError> {
        let (store, recovered) = Store::open(path)?;
        let mut core = Core {
            store,
            cfg,
            host_zone,
            jobs: HashMap::new(),
            due: BTreeSet::new(),
            running: HashMap::new(),
            queued: HashMap::new(),
            outbox: BTreeSet::new(),
            pending: HashMap::new(),
        };
        for row in core.store.jobs()? {
            match Job::from_row(row) {
                Ok(j) => {
                    let id = j.row.id;
                    core.jobs.insert(id, j);
                    // Due at once: the first wake-up decides what happened
                    // to the slots since the last row.
                    let epoch = Timestamp::UNIX_EPOCH;
                    core.place(id, Some((epoch, epoch)));
                }
                Err(e) => warn!("{e}; the job is left as it is and not run"),
            }
        }
        for d in core.store.pending_deliveries()? {
            core.outbox.insert((d.next_ms, d.id));
            core.pending.insert(d.id, d);
        }
        Ok((core, recovered))
    }

    pub fn set_config(&mut self, cfg: SchedulerConfig) {
        self.cfg = cfg;
    }

    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }

    /// When the timer must fire next: the earliest due job or delivery.
    pub fn next_wake(&self) -> Option<Timestamp> {
        let job = self.due.first().map(|(ms, _)| *ms);
        let delivery = self.outbox.first().map(|(ms, _)| *ms);
        job.into_iter().chain(delivery).min().map(ts)
    }

    /// Puts the job in the due set with its next (slot, due time), or
    /// takes it out (`None`, or the job is disabled).
    fn place(&mut self, id: i64, next: Option<(Timestamp, Timestamp)>) {
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        if let Some(old) = j.due() {
            self.due.remove(&(old.as_millisecond(), id));
        }
        j.next = next;
        if let (Some(due), true) = (j.due(), j.row.enabled) {
            self.due.insert((due.as_millisecond(), id));
        }
    }

    /// Sets the job's next slot (its due time adds the job's delay).
    fn set_next(&mut self, id: i64, slot: Option<Timestamp>) {
        let next = self
            .jobs
            .get(&id)
            .and_then(|j| slot.map(|s| (s, s + j.delay(s))));
        self.place(id, next);
    }

    /// Every job and delivery due by `now`.
    pub fn wake(&mut self, now: Timestamp, why: Why) -> Vec<Action> {
        let mut actions = Vec::new();
        let now_ms = now.as_millisecond();
        let due: Vec<i64> = self
            .due
            .range(..=(now_ms, i64::MAX))
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            match self.wake_job(id, now, why) {
                Ok(a) => actions.extend(a),
                Err(e) => {
                    // The job's rows could not be written: nothing ran, and
                    // the same slots come due again in a minute.
                    warn!(job = id, "cannot record the job's slots: {e}");
                    let retry = now + SignedDuration::from_mins(1);
                    self.place(id, Some((retry, retry)));
                }
            }
        }
        let ready: Vec<(i64, i64)> = self.outbox.range(..=(now_ms, i64::MAX)).copied().collect();
        for key in ready {
            self.outbox.remove(&key);
            if let Some(d) = self.pending.get(&key.1) {
                actions.push(Action::Deliver(d.clone()));
            }
        }
        actions
    }

    fn rules(&self, job: &Job) -> Rules {
        self.cfg.rules(job.missed, job.jitter())
    }

    /// Decides the job's slots up to `now`, writes their rows, and says
    /// which runs start.
    fn wake_job(&mut self, id: i64, now: Timestamp, why: Why) -> Result<Vec<Action>, CoreError> {
        let Some(job) = self.jobs.get(&id) else {
            return Ok(Vec::new());
        };
        let d = decide(
            &job.schedule()?,
            job.anchor(),
            job.last_slot(),
            now,
            &self.rules(job),
        );
        let grace = self.rules(job).grace;
        let mut rows = Vec::new();
        if let Some((count, last)) = d.missed_more {
            rows.push(NewRow {
                slot_ms: last.as_millisecond(),
                trigger: "schedule",
                status: Status::Missed,
                reason: format!(
                    "{count} slots up to this one: {}",
                    why.reason(now.duration_since(last))
                ),
            });
        }
        for m in &d.missed {
            rows.push(NewRow {
                slot_ms: m.as_millisecond(),
                trigger: "schedule",
                status: Status::Missed,
                reason: why.reason(now.duration_since(*m)),
            });
        }
        let running = self.running.get(&id).copied();
        let queued = self.queued.get(&id).map_or(0, VecDeque::len);
        let plan = overlap::plan(job.overlap, running.is_some(), queued, d.run.len());
        let first_run_row = rows.len();
        for (i, s) in d.run.iter().enumerate() {
            let trigger = if now.duration_since(*s) <= grace {
                "schedule"
            } else {
                "catch-up"
            };
            let (status, reason) = if plan.start == Some(i) {
                (Status::Running, String::new())
            } else if plan.queue.contains(&i) {
                (Status::Queued, String::new())
            } else {
                let why = plan
                    .missed
                    .iter()
                    .find(|(m, _)| *m == i)
                    .map_or("", |(_, r)| *r);
                (Status::Missed, why.to_string())
            };
            rows.push(NewRow {
                slot_ms: s.as_millisecond(),
                trigger,
                status,
                reason,
            });
        }
        let ids = self.store.record(id, &rows, now.as_millisecond())?;
        let last = rows
            .iter()
            .filter(|r| r.trigger != "manual")
            .map(|r| r.slot_ms)
            .max();
        let mut actions = Vec::new();
        if let Some(job) = self.jobs.get_mut(&id)
            && let Some(last) = last
        {
            job.row.last_slot_ms = job.row.last_slot_ms.max(last);
        }
        if plan.cancel_running
            && let Some(run) = running
        {
            actions.push(Action::Cancel {
                run,
                reason: overlap::REPLACED.into(),
            });
            for q in self.queued.remove(&id).unwrap_or_default() {
                self.store
                    .finish(q, &Finish::cancelled(overlap::REPLACED))?;
            }
            self.running.remove(&id);
        }
        for (i, row_id) in ids.iter().enumerate().skip(first_run_row) {
            match rows[i].status {
                Status::Running => {
                    if let Some(order) = self.order(id, *row_id) {
                        self.running.insert(id, *row_id);
                        actions.push(Action::Start(order));
                    }
                }
                Status::Queued => self.queued.entry(id).or_default().push_back(*row_id),
                _ => {}
            }
        }
        if !rows.is_empty() {
            self.store.prune(id, self.cfg.history_per_job)?;
        }
        self.set_next(id, d.next);
        Ok(actions)
    }

    /// The intent of run `run` of job `id`.
    fn order(&self, id: i64, run: i64) -> Option<RunOrder> {
        let j = self.jobs.get(&id)?;
        let secs = match j.row.timeout_secs {
            0 => self.cfg.run_timeout_secs,
            s => s,
        };
        Some(RunOrder {
            run,
            job: id,
            request: IntentRequest {
                id: intent_id(run),
                chat: j.row.chat.clone(),
                text: j.row.intent.clone(),
                alias: j.row.alias.clone(),
                history: true,
            },
            timeout: Duration::from_secs(secs),
        })
    }

    /// A run ended: its row, the job's failure count (disabling it after
    /// too many, with a notice), its answer for the delivery targets, and
    /// the next queued run.
    pub fn finished(
        &mut self,
        job_id: i64,
        run: i64,
        o: &Outcome,
        now: Timestamp,
    ) -> Result<Vec<Action>, CoreError> {
        self.store.finish(run, &o.finish())?;
        let mut actions = Vec::new();
        if self.running.get(&job_id) == Some(&run) {
            self.running.remove(&job_id);
        }
        let Some(job) = self.jobs.get(&job_id) else {
            return Ok(actions);
        };
        let (name, targets, failures) = (
            job.row.name.clone(),
            job.row.deliver.clone(),
            job.row.failures,
        );
        let mut text = None;
        match o.status {
            Status::Ran => {
                if failures > 0 {
                    self.store.set_failures(job_id, 0)?;
                }
                text = Some(format!("**{name}**\n\n{}", o.answer));
                self.with_job(job_id, |j| j.row.failures = 0);
            }
            Status::Failed => {
                let failures = failures + 1;
                self.store.set_failures(job_id, failures)?;
                self.with_job(job_id, |j| j.row.failures = failures);
                if u64::from(failures) >= self.cfg.max_consecutive_failures {
                    let reason = format!(
                        "it failed {failures} times in a row ([scheduler] max_consecutive_failures); the last error: {}",
                        o.reason
                    );
                    self.store.set_enabled(job_id, false, &reason)?;
                    self.with_job(job_id, |j| {
                        j.row.enabled = false;
                        j.row.disabled_reason = reason.clone();
                    });
                    self.set_next(job_id, None);
                    info!(job = job_id, "job disabled: {reason}");
                    text = Some(format!(
                        "The scheduled job **{name}** (#{job_id}) was disabled: {reason}. Turn it on again with `oictl cron enable {job_id}`."
                    ));
                } else if failures == 1 {
                    text = Some(format!(
                        "The scheduled job **{name}** (#{job_id}) failed: {}",
                        o.reason
                    ));
                }
            }
            _ => {}
        }
        if let Some(text) = text
            && !targets.is_empty()
        {
            for d in self
                .store
                .add_deliveries(run, &targets, &text, now.as_millisecond())?
            {
                self.pending.insert(d.id, d.clone());
                actions.push(Action::Deliver(d));
            }
        }
        if !self.running.contains_key(&job_id)
            && let Some(next) = self.queued.get_mut(&job_id).and_then(VecDeque::pop_front)
        {
            self.store.start_queued(next, now.as_millisecond())?;
            if let Some(order) = self.order(job_id, next) {
                self.running.insert(job_id, next);
                actions.push(Action::Start(order));
            }
        }
        Ok(actions)
    }

    fn with_job(&mut self, id: i64, f: impl FnOnce(&mut Job)) {
        if let Some(j) = self.jobs.get_mut(&id) {
            f(j);
        }
    }

    /// An attempt to hand an answer to its gateway ended.
    pub fn delivered(
        &mut self,
        id: i64,
        result: &Delivered,
        now: Timestamp,
    ) -> Result<(), CoreError> {
        let Some(d) = self.pending.get(&id).cloned() else {
            return Ok(());
        };
        let attempts = d.attempts + 1;
        let age = Duration::from_millis((now.as_millisecond() - d.created_ms).max(0) as u64);
        let (status, detail, next) = match result {
            Delivered::Yes => ("delivered", String::new(), 0),
            Delivered::Never(why) => ("failed", why.clone(), 0),
            Delivered::NotYet(why)
                if age >= Duration::from_secs(self.cfg.delivery_max_age_secs) =>
            {
                (
                    "failed",
                    format!(
                        "gave up after {attempts} attempts over {} s: {why}",
                        age.as_secs()
                    ),
                    0,
                )
            }
            Delivered::NotYet(why) => {
                let wait = backoff(attempts);
                (
                    "pending",
                    why.clone(),
                    now.as_millisecond() + wait.as_millis() as i64,
                )
            }
        };
        self.store.delivery_attempt(id, status, &detail, next)?;
        if status == "pending" {
            let mut d = d;
            d.attempts = attempts;
            d.detail = detail;
            d.next_ms = next;
            self.outbox.insert((next, id));
            self.pending.insert(id, d);
        } else {
            self.pending.remove(&id);
        }
        Ok(())
    }
}

/// The wait before delivery attempt `attempts + 1`: 1 s doubling to 5 min.
pub fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

#[cfg(test)]
mod tests;
