//! What users and tools ask of the scheduler: make, list, turn on and
//! off, run now and remove jobs, and read their rows.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};
use oi_ipc_schema::scheduler::{JobInfo, JobSpec, Missed, RunInfo};
use tracing::info;

use super::{Action, Core, CoreError};
use crate::job::{self, Job, JobError};
use crate::slots::{Rules, decide};
use crate::store::{NewRow, RunRow, Status, StoreError};

impl Core {
    /// A new job from `origin` (`oictl`, or the chat of an agent's tool
    /// call).
    pub fn add(
        &mut self,
        spec: &JobSpec,
        origin: &str,
        now: Timestamp,
    ) -> Result<JobInfo, CoreError> {
        if self.jobs.len() as u64 >= self.cfg.max_jobs {
            return Err(JobError::TooMany(self.cfg.max_jobs).into());
        }
        let new = job::check(spec, origin, now)?;
        let id = self.store.add(&new)?;
        let job = Job::from_row(self.store.job(id)?)?;
        let first = job.schedule()?.next_after(job.last_slot(), job.anchor());
        self.jobs.insert(id, job);
        self.set_next(id, first);
        info!(job = id, schedule = %new.schedule, "job added");
        self.info(id)
    }

    pub fn info(&self, id: i64) -> Result<JobInfo, CoreError> {
        let j = self.jobs.get(&id).ok_or(StoreError::NoJob(id))?;
        let last = self.store.history(Some(id), 1)?;
        Ok(j.info(&self.host_zone, last.first()))
    }

    /// Every job, or those made by `origin`.
    pub fn list(&self, origin: Option<&str>) -> Result<Vec<JobInfo>, CoreError> {
        let last: HashMap<i64, RunRow> = self
            .store
            .last_rows()?
            .into_iter()
            .map(|r| (r.job, r))
            .collect();
        let mut jobs: Vec<&Job> = self
            .jobs
            .values()
            .filter(|j| origin.is_none_or(|o| j.row.origin == o))
            .collect();
        jobs.sort_by_key(|j| j.row.id);
        Ok(jobs
            .into_iter()
            .map(|j| j.info(&self.host_zone, last.get(&j.row.id)))
            .collect())
    }

    /// Refuses a job another origin made (`None`: the user, who may touch
    /// any).
    pub fn check_origin(&self, id: i64, origin: Option<&str>) -> Result<(), CoreError> {
        let j = self.jobs.get(&id).ok_or(StoreError::NoJob(id))?;
        match origin {
            Some(o) if j.row.origin != o => Err(CoreError::NotYours(id)),
            _ => Ok(()),
        }
    }

    /// Removes a job with its history; a run going is cancelled.
    pub fn remove(&mut self, id: i64) -> Result<Vec<Action>, CoreError> {
        self.store.remove(id)?;
        self.set_next(id, None);
        self.jobs.remove(&id);
        self.queued.remove(&id);
        info!(job = id, "job removed");
        Ok(self
            .running
            .remove(&id)
            .map(|run| Action::Cancel {
                run,
                reason: "the job was removed".into(),
            })
            .into_iter()
            .collect())
    }

    /// Turns a job off (`reason` says by whom).
    pub fn disable(&mut self, id: i64, reason: &str) -> Result<JobInfo, CoreError> {
        self.store.set_enabled(id, false, reason)?;
        self.with_job(id, |j| {
            j.row.enabled = false;
            j.row.disabled_reason = reason.into();
        });
        self.set_next(id, None);
        self.info(id)
    }

    /// Turns a job on again: the slots that passed while it was off are
    /// recorded as missed, and its failures start from zero.
    pub fn enable(&mut self, id: i64, now: Timestamp) -> Result<JobInfo, CoreError> {
        let job = self.jobs.get(&id).ok_or(StoreError::NoJob(id))?;
        if job.row.enabled {
            return self.info(id);
        }
        let rules = Rules {
            missed: Missed::Skip,
            grace: SignedDuration::ZERO,
            ..self.rules(job)
        };
        let d = decide(&job.schedule()?, job.anchor(), job.last_slot(), now, &rules);
        let mut rows: Vec<NewRow> = Vec::new();
        if let Some((count, last)) = d.missed_more {
            rows.push(NewRow {
                slot_ms: last.as_millisecond(),
                trigger: "schedule",
                status: Status::Missed,
                reason: format!("{count} slots up to this one: the job was disabled"),
            });
        }
        for s in d.missed.iter().chain(&d.run) {
            rows.push(NewRow {
                slot_ms: s.as_millisecond(),
                trigger: "schedule",
                status: Status::Missed,
                reason: "the job was disabled".into(),
            });
        }
        self.store.record(id, &rows, now.as_millisecond())?;
        self.store.set_enabled(id, true, "")?;
        let newest = rows.iter().map(|r| r.slot_ms).max();
        self.with_job(id, |j| {
            j.row.enabled = true;
            j.row.disabled_reason.clear();
            j.row.failures = 0;
            if let Some(n) = newest {
                j.row.last_slot_ms = j.row.last_slot_ms.max(n);
            }
        });
        self.set_next(id, d.next);
        self.info(id)
    }

    /// Runs a job now, outside its schedule (`manual`); refused while it
    /// runs.
    pub fn run_now(
        &mut self,
        id: i64,
        now: Timestamp,
    ) -> Result<(RunInfo, Vec<Action>), CoreError> {
        if !self.jobs.contains_key(&id) {
            return Err(StoreError::NoJob(id).into());
        }
        if let Some(run) = self.running.get(&id) {
            return Err(CoreError::Busy { job: id, run: *run });
        }
        let row = NewRow {
            slot_ms: now.as_millisecond(),
            trigger: "manual",
            status: Status::Running,
            reason: String::new(),
        };
        let run = self.store.record(id, &[row], now.as_millisecond())?[0];
        let order = self.order(id, run).ok_or(StoreError::NoJob(id))?;
        self.running.insert(id, run);
        let info = self
            .store
            .history(Some(id), 1)?
            .first()
            .map(job::run_info)
            .ok_or(StoreError::NoJob(id))?;
        Ok((info, vec![Action::Start(order)]))
    }

    pub fn history(&self, job: Option<i64>, limit: u32) -> Result<Vec<RunInfo>, CoreError> {
        if let Some(id) = job
            && !self.jobs.contains_key(&id)
        {
            return Err(StoreError::NoJob(id).into());
        }
        Ok(self
            .store
            .history(job, limit)?
            .iter()
            .map(job::run_info)
            .collect())
    }
}
