//! `<data>/scheduler.db`: the jobs and every slot's row (SQLite, WAL,
//! `synchronous=FULL`). A slot's row is written, and the job's last
//! recorded slot moved past it, in one transaction before its intent
//! starts: a crash cannot fire a slot twice, and a run that a crash cut
//! short is found `running` at the next open and marked `interrupted`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

const SCHEMA: &[&str] = &["CREATE TABLE jobs(
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        schedule TEXT NOT NULL,
        zone TEXT,
        intent TEXT NOT NULL,
        chat TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        last_slot_ms INTEGER NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1
    );
    CREATE TABLE runs(
        id INTEGER PRIMARY KEY,
        job INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        slot_ms INTEGER NOT NULL,
        status TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        started_ms INTEGER,
        UNIQUE(job, slot_ms)
    );
    CREATE INDEX runs_by_job ON runs(job, slot_ms);"];

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
    #[error("no job {0}")]
    NoJob(i64),
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRow {
    pub id: i64,
    pub name: String,
    pub schedule: String,
    pub zone: Option<String>,
    pub intent: String,
    pub chat: String,
    pub created_ms: i64,
    /// The last slot that has a row (the creation time before the first).
    pub last_slot_ms: i64,
    pub enabled: bool,
}

/// What happened to one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub job: i64,
    pub slot_ms: i64,
    /// `running`, `ran`, `failed`, `missed` or `interrupted`.
    pub status: String,
    pub reason: String,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating or migrating) the database, and marks the runs a
    /// crash cut short as `interrupted`; returns how many there were.
    pub fn open(path: &Path) -> Result<(Store, usize), StoreError> {
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
        Ok((Store { conn }, interrupted))
    }

    /// A new job; its first slot is the first after `created_ms`.
    pub fn add(
        &self,
        name: &str,
        schedule: &str,
        zone: Option<&str>,
        intent: &str,
        chat: &str,
        created_ms: i64,
    ) -> Result<i64, StoreError> {
        self.conn.execute(
            "INSERT INTO jobs(name, schedule, zone, intent, chat, created_ms, last_slot_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![name, schedule, zone, intent, chat, created_ms],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, name, schedule, zone, intent, chat, created_ms, last_slot_ms, enabled FROM jobs ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(JobRow {
                id: r.get(0)?,
                name: r.get(1)?,
                schedule: r.get(2)?,
                zone: r.get(3)?,
                intent: r.get(4)?,
                chat: r.get(5)?,
                created_ms: r.get(6)?,
                last_slot_ms: r.get(7)?,
                enabled: r.get::<_, i64>(8)? != 0,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn remove(&self, id: i64) -> Result<(), StoreError> {
        match self.conn.execute("DELETE FROM jobs WHERE id = ?1", [id])? {
            0 => Err(StoreError::NoJob(id)),
            _ => Ok(()),
        }
    }

    /// Records a wake-up's decision for one job in one transaction: a
    /// `missed` row for each of `missed` (with `reason`), a `running` row
    /// for each of `run`, and the job's last recorded slot moved to the
    /// newest of them. Returns the run rows' ids, in `run`'s order.
    pub fn record(
        &self,
        job: i64,
        run: &[i64],
        missed: &[i64],
        reason: &str,
        now_ms: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let last: i64 = tx
            .query_row("SELECT last_slot_ms FROM jobs WHERE id = ?1", [job], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or(StoreError::NoJob(job))?;
        for slot in missed {
            tx.execute(
                "INSERT INTO runs(job, slot_ms, status, reason) VALUES(?1, ?2, 'missed', ?3)",
                params![job, slot, reason],
            )?;
        }
        let mut ids = Vec::with_capacity(run.len());
        for slot in run {
            tx.execute(
                "INSERT INTO runs(job, slot_ms, status, started_ms) VALUES(?1, ?2, 'running', ?3)",
                params![job, slot, now_ms],
            )?;
            ids.push(tx.last_insert_rowid());
        }
        let newest = run
            .iter()
            .chain(missed)
            .copied()
            .max()
            .unwrap_or(last)
            .max(last);
        tx.execute(
            "UPDATE jobs SET last_slot_ms = ?2 WHERE id = ?1",
            params![job, newest],
        )?;
        tx.commit()?;
        Ok(ids)
    }

    /// A run's end: `ran` or `failed`, with what to say.
    pub fn finish(&self, run: i64, status: &str, reason: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, reason = ?3 WHERE id = ?1 AND status = 'running'",
            params![run, status, reason],
        )?;
        Ok(())
    }

    /// A job's rows, newest first.
    pub fn history(&self, job: i64, limit: u32) -> Result<Vec<RunRow>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, job, slot_ms, status, reason FROM runs WHERE job = ?1 ORDER BY slot_ms DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![job, limit], |r| {
            Ok(RunRow {
                id: r.get(0)?,
                job: r.get(1)?,
                slot_ms: r.get(2)?,
                status: r.get(3)?,
                reason: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Schedule;
    use crate::slots::{MissedPolicy, Rules, decide};
    use jiff::{SignedDuration, Timestamp};

    fn ms(t: Timestamp) -> i64 {
        t.as_millisecond()
    }

    #[test]
    fn a_slot_cut_short_by_a_crash_is_interrupted_and_never_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler.db");
        let created: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let (store, _) = Store::open(&path).unwrap();
        let id = store
            .add(
                "weather",
                "every 1h",
                None,
                "check the weather",
                "cron:1",
                ms(created),
            )
            .unwrap();
        let every = Schedule::parse("every 1h", None, created).unwrap();
        let rules = Rules {
            missed: MissedPolicy::Skip,
            grace: SignedDuration::from_secs(30),
            catchup_window: SignedDuration::from_hours(1),
            max_runs: 3,
            max_slots: 100,
        };
        // 01:00 is due: its row is written before the intent starts...
        let now: Timestamp = "2026-12-01T01:00:01Z".parse().unwrap();
        let job = &store.jobs().unwrap()[0];
        let after = Timestamp::from_millisecond(job.last_slot_ms).unwrap();
        let d = decide(&every, created, after, now, &rules);
        let runs: Vec<i64> = d.run.iter().map(|t| ms(*t)).collect();
        store.record(id, &runs, &[], "", ms(now)).unwrap();
        // ...and the scheduler dies during the run.
        drop(store);
        let (store, interrupted) = Store::open(&path).unwrap();
        assert_eq!(interrupted, 1);
        let h = store.history(id, 10).unwrap();
        assert_eq!(
            (h[0].status.as_str(), h[0].slot_ms),
            ("interrupted", runs[0])
        );
        // The next wake-up starts after it: 01:00 is not run again.
        let job = &store.jobs().unwrap()[0];
        let after = Timestamp::from_millisecond(job.last_slot_ms).unwrap();
        let d = decide(
            &every,
            created,
            after,
            "2026-12-01T01:30:00Z".parse().unwrap(),
            &rules,
        );
        assert!(d.run.is_empty() && d.missed.is_empty(), "{d:?}");
        // A slot can never get two rows.
        assert!(store.record(id, &runs, &[], "", ms(now)).is_err());
    }

    #[test]
    fn missed_slots_and_runs_are_recorded_together_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler.db");
        let (store, _) = Store::open(&path).unwrap();
        let id = store
            .add("n", "0 * * * *", Some("UTC"), "x", "cron:1", 0)
            .unwrap();
        let ids = store
            .record(
                id,
                &[7_200_000],
                &[3_600_000],
                "the daemon was down",
                7_200_500,
            )
            .unwrap();
        store.finish(ids[0], "ran", "").unwrap();
        drop(store);
        let (store, interrupted) = Store::open(&path).unwrap();
        assert_eq!(interrupted, 0);
        let h = store.history(id, 10).unwrap();
        let seen: Vec<(&str, i64, &str)> = h
            .iter()
            .map(|r| (r.status.as_str(), r.slot_ms, r.reason.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("ran", 7_200_000, ""),
                ("missed", 3_600_000, "the daemon was down")
            ]
        );
        assert_eq!(store.jobs().unwrap()[0].last_slot_ms, 7_200_000);
        store.remove(id).unwrap();
        assert!(
            store.history(id, 10).unwrap().is_empty(),
            "rows go with the job"
        );
        assert!(matches!(store.remove(id), Err(StoreError::NoJob(_))));
        assert!(matches!(
            store.record(id, &[1], &[], "", 1),
            Err(StoreError::NoJob(_))
        ));
    }

    #[test]
    fn a_database_from_a_newer_version_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scheduler.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let e = Store::open(&path).err().unwrap();
        assert!(
            e.to_string().contains("schema 99, this build knows 1"),
            "{e}"
        );
    }
}
