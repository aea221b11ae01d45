//! `<data>/scheduler.db`: the jobs, every slot's row and the answers still
//! to be delivered (SQLite, WAL, `synchronous=FULL`). A slot's row is
//! written, and the job's last recorded slot moved past it, in one
//! transaction before its intent starts: a crash cannot fire a slot twice,
//! and a run that a crash cut short is found `running` at the next open
//! and marked `interrupted`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, Row, params};

mod rows;

pub use rows::{DeliveryRow, Finish, JobRow, NewJob, NewRow, RunRow, Status};

const SCHEMA: &[&str] = &["CREATE TABLE jobs(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        schedule TEXT NOT NULL,
        zone TEXT,
        intent TEXT NOT NULL,
        chat TEXT NOT NULL,
        origin TEXT NOT NULL DEFAULT '',
        alias TEXT NOT NULL DEFAULT '',
        deliver TEXT NOT NULL DEFAULT '',
        timeout_secs INTEGER NOT NULL DEFAULT 0,
        overlap TEXT NOT NULL DEFAULT 'skip',
        missed TEXT NOT NULL DEFAULT 'skip',
        jitter_secs INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        last_slot_ms INTEGER NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        disabled_reason TEXT NOT NULL DEFAULT '',
        failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE runs(
        id INTEGER PRIMARY KEY,
        job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        slot_ms INTEGER NOT NULL,
        trigger TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        started_ms INTEGER NOT NULL DEFAULT 0,
        duration_ms INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        model TEXT NOT NULL DEFAULT '',
        excerpt TEXT NOT NULL DEFAULT ''
    );
    CREATE UNIQUE INDEX one_row_per_slot ON runs(job, slot_ms) WHERE trigger != 'manual';
    CREATE INDEX runs_by_job ON runs(job, id);
    CREATE TABLE deliveries(
        id INTEGER PRIMARY KEY,
        run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        detail TEXT NOT NULL DEFAULT '',
        attempts INTEGER NOT NULL DEFAULT 0,
        created_ms INTEGER NOT NULL,
        next_ms INTEGER NOT NULL
    );
    CREATE INDEX deliveries_by_run ON deliveries(run);
    CREATE INDEX pending_deliveries ON deliveries(next_ms) WHERE status = 'pending';"];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("scheduler database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "scheduler database {path} is from a newer version (schema {found}, this build knows {known})"
    )]
    TooNew {
        path: String,
        found: i64,
        known: i64,
    },
    #[error("scheduler database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("no job {0} (`oictl cron list` shows the jobs)")]
    NoJob(i64),
}

/// What opening found of a run a crash cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovered {
    /// Runs that were going: now `interrupted`, never re-run.
    pub interrupted: usize,
    /// Slots that were waiting for a run to end: now `missed`.
    pub queued: usize,
}

pub struct Store {
    conn: Connection,
}

const JOB_COLUMNS: &str = "id, name, schedule, zone, intent, chat, origin, alias, deliver, timeout_secs, overlap, missed, jitter_secs, created_ms, last_slot_ms, enabled, disabled_reason, failures";
const RUN_COLUMNS: &str =
    "id, job, slot_ms, trigger, status, reason, started_ms, duration_ms, tokens, model, excerpt";

impl Store {
    /// Opens (creating or migrating) the database, and closes the rows a
    /// crash left open.
    pub fn open(path: &Path) -> Result<(Store, Recovered), StoreError> {
        let at = path.display().to_string();
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: at.clone(),
            source,
        })?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
        )?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let known = SCHEMA.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: at,
                found: version,
                known,
            });
        }
        for (i, step) in SCHEMA.iter().enumerate().skip(version as usize) {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(step)?;
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
            tx.commit()?;
        }
        let interrupted = conn.execute(
            "UPDATE runs SET status = 'interrupted', reason = 'the scheduler stopped during the run' WHERE status = 'running'",
            [],
        )?;
        let queued = conn.execute(
            "UPDATE runs SET status = 'missed', reason = 'the scheduler stopped while it waited for the previous run' WHERE status = 'queued'",
            [],
        )?;
        Ok((
            Store { conn },
            Recovered {
                interrupted,
                queued,
            },
        ))
    }

    /// A new job; its first slot is the first after `created_ms`. An empty
    /// chat becomes `cron:<id>`.
    pub fn add(&self, j: &NewJob) -> Result<i64, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO jobs(name, schedule, zone, intent, chat, origin, alias, deliver, timeout_secs, overlap, missed, jitter_secs, created_ms, last_slot_ms)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13)",
            params![
                j.name,
                j.schedule,
                j.zone,
                j.intent,
                j.chat,
                j.origin,
                j.alias,
                j.deliver.join("\n"),
                j.timeout_secs,
                j.overlap,
                j.missed,
                j.jitter_secs,
                j.created_ms
            ],
        )?;
        let id = tx.last_insert_rowid();
        if j.chat.is_empty() {
            tx.execute(
                "UPDATE jobs SET chat = ?2 WHERE id = ?1",
                params![id, format!("cron:{id}")],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    pub fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {JOB_COLUMNS} FROM jobs ORDER BY id"))?;
        let rows = st.query_map([], JobRow::read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn job(&self, id: i64) -> Result<JobRow, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                JobRow::read,
            )
            .optional()?
            .ok_or(StoreError::NoJob(id))
    }

    pub fn remove(&self, id: i64) -> Result<(), StoreError> {
        match self.conn.execute("DELETE FROM jobs WHERE id = ?1", [id])? {
            0 => Err(StoreError::NoJob(id)),
            _ => Ok(()),
        }
    }

    /// Enables (reason empty) or disables a job, and resets its failures
    /// when it is enabled.
    pub fn set_enabled(&self, id: i64, enabled: bool, reason: &str) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE jobs SET enabled = ?2, disabled_reason = ?3, failures = CASE WHEN ?2 THEN 0 ELSE failures END WHERE id = ?1",
            params![id, enabled, reason],
        )?;
        if n == 0 {
            return Err(StoreError::NoJob(id));
        }
        Ok(())
    }

    pub fn set_failures(&self, id: i64, failures: u32) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET failures = ?2 WHERE id = ?1",
            params![id, failures],
        )?;
        Ok(())
    }

    /// Records a wake-up's outcome for one job in one transaction: its
    /// rows, and the job's last recorded slot moved to the newest
    /// scheduled one. Returns the rows' ids, in order.
    pub fn record(&self, job: i64, rows: &[NewRow], now_ms: i64) -> Result<Vec<i64>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let last: i64 = tx
            .query_row("SELECT last_slot_ms FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(StoreError::NoJob(job))?;
        let mut ids = Vec::with_capacity(rows.len());
        let mut newest = last;
        for r in rows {
            let started = if r.status == Status::Running {
                now_ms
            } else {
                0
            };
            tx.execute(
                "INSERT INTO runs(job, slot_ms, trigger, status, reason, started_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                params![job, r.slot_ms, r.trigger, r.status.as_str(), r.reason, started],
            )?;
            ids.push(tx.last_insert_rowid());
            if r.trigger != "manual" {
                newest = newest.max(r.slot_ms);
            }
        }
        tx.execute(
            "UPDATE jobs SET last_slot_ms = ?2 WHERE id = ?1",
            params![job, newest],
        )?;
        tx.commit()?;
        Ok(ids)
    }

    /// A queued slot starts.
    pub fn start_queued(&self, run: i64, now_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET status = 'running', started_ms = ?2 WHERE id = ?1 AND status = 'queued'",
            params![run, now_ms],
        )?;
        Ok(())
    }

    /// A run's end.
    pub fn finish(&self, run: i64, f: &Finish) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, reason = ?3, duration_ms = ?4, tokens = ?5, model = ?6, excerpt = ?7
             WHERE id = ?1 AND status IN ('running', 'queued')",
            params![
                run,
                f.status.as_str(),
                f.reason,
                f.duration_ms,
                f.tokens,
                f.model,
                f.excerpt
            ],
        )?;
        Ok(())
    }

    /// Rows, newest first: one job's, or every job's (`job` = None).
    pub fn history(&self, job: Option<i64>, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE ?1 IS NULL OR job = ?1 ORDER BY slot_ms DESC, id DESC LIMIT ?2"
        ))?;
        let rows = st.query_map(params![job, limit], RunRow::read)?;
        let mut runs: Vec<RunRow> = rows.collect::<Result<_, _>>()?;
        let mut st = self.conn.prepare(
            "SELECT id, run, target, text, status, detail, attempts, created_ms, next_ms FROM deliveries WHERE run = ?1 ORDER BY id",
        )?;
        for r in &mut runs {
            r.deliveries = st
                .query_map([r.id], DeliveryRow::read)?
                .collect::<Result<_, _>>()?;
        }
        Ok(runs)
    }

    /// Each job's newest row.
    pub fn last_rows(&self) -> Result<Vec<RunRow>, StoreError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE id IN (SELECT MAX(id) FROM runs GROUP BY job)"
        ))?;
        let rows = st.query_map([], RunRow::read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Keeps the newest `keep` rows of a job.
    pub fn prune(&self, job: i64, keep: u64) -> Result<usize, StoreError> {
        Ok(self.conn.execute(
            "DELETE FROM runs WHERE job = ?1 AND status NOT IN ('running', 'queued') AND id NOT IN (SELECT id FROM runs WHERE job = ?1 ORDER BY slot_ms DESC, id DESC LIMIT ?2)",
            params![job, keep],
        )?)
    }

    /// Answers of `run` to hand to `targets`, due now.
    pub fn add_deliveries(
        &self,
        run: i64,
        targets: &[String],
        text: &str,
        now_ms: i64,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            tx.execute(
                "INSERT INTO deliveries(run, target, text, created_ms, next_ms) VALUES(?1, ?2, ?3, ?4, ?4)",
                params![run, t, text, now_ms],
            )?;
            out.push(DeliveryRow {
                id: tx.last_insert_rowid(),
                run,
                target: t.clone(),
                text: text.to_string(),
                status: "pending".into(),
                detail: String::new(),
                attempts: 0,
                created_ms: now_ms,
                next_ms: now_ms,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Deliveries still to make, soonest first.
    pub fn pending_deliveries(&self) -> Result<Vec<DeliveryRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, run, target, text, status, detail, attempts, created_ms, next_ms FROM deliveries WHERE status = 'pending' ORDER BY next_ms",
        )?;
        let rows = st.query_map([], DeliveryRow::read)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// An attempt's outcome: `delivered`, `failed` (given up) or still
    /// `pending` with its next attempt at `next_ms`. The text goes once it
    /// is no longer needed.
    pub fn delivery_attempt(
        &self,
        id: i64,
        status: &str,
        detail: &str,
        next_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE deliveries SET status = ?2, detail = ?3, attempts = attempts + 1, next_ms = ?4,
             text = CASE WHEN ?2 = 'pending' THEN text ELSE '' END WHERE id = ?1",
            params![id, status, detail, next_ms],
        )?;
        Ok(())
    }
}

impl JobRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<JobRow> {
        let deliver: String = r.get(8)?;
        Ok(JobRow {
            id: r.get(0)?,
            name: r.get(1)?,
            schedule: r.get(2)?,
            zone: r.get(3)?,
            intent: r.get(4)?,
            chat: r.get(5)?,
            origin: r.get(6)?,
            alias: r.get(7)?,
            deliver: deliver
                .lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            timeout_secs: r.get(9)?,
            overlap: r.get(10)?,
            missed: r.get(11)?,
            jitter_secs: r.get(12)?,
            created_ms: r.get(13)?,
            last_slot_ms: r.get(14)?,
            enabled: r.get::<_, i64>(15)? != 0,
            disabled_reason: r.get(16)?,
            failures: r.get(17)?,
        })
    }
}

impl RunRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            id: r.get(0)?,
            job: r.get(1)?,
            slot_ms: r.get(2)?,
            trigger: r.get(3)?,
            status: r.get(4)?,
            reason: r.get(5)?,
            started_ms: r.get(6)?,
            duration_ms: r.get(7)?,
            tokens: r.get(8)?,
            model: r.get(9)?,
            excerpt: r.get(10)?,
            deliveries: Vec::new(),
        })
    }
}

impl DeliveryRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
        Ok(DeliveryRow {
            id: r.get(0)?,
            run: r.get(1)?,
            target: r.get(2)?,
            text: r.get(3)?,
            status: r.get(4)?,
            detail: r.get(5)?,
            attempts: r.get(6)?,
            created_ms: r.get(7)?,
            next_ms: r.get(8)?,
        })
    }
}

#[cfg(test)]
mod tests;
