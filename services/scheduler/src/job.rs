//! A job in memory: its stored row with the schedule and policies read,
//! and its next due time. New jobs are checked here, field by field, before
//! anything is stored.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use oi_ipc_schema::gateway;
use oi_ipc_schema::scheduler::{JobInfo, JobSpec, Missed, Overlap, RunInfo};

use crate::schedule::{Schedule, ScheduleError};
use crate::store::{JobRow, NewJob, RunRow};

/// Why a job is refused; nothing is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("schedule: {0}")]
    Schedule(#[from] ScheduleError),
    #[error("intent: the text is empty; say what the job should do")]
    NoIntent,
    #[error("deliver: {0}")]
    Target(String),
    #[error("jitter_secs: {jitter} s is not shorter than the interval, {every} s")]
    Jitter { jitter: u64, every: i64 },
    #[error("there are {0} jobs already, the limit ([scheduler] max_jobs); remove some first")]
    TooMany(u64),
    #[error("stored job {id}: {why}")]
    Stored { id: i64, why: String },
}

/// A job the scheduler runs. Its schedule is parsed again when a slot is
/// decided, not kept: a parsed cron expression holds about 6 KB (croner
/// keeps a bit per possible year), which 10,000 jobs would pay for in
/// memory while they wait for months.
#[derive(Debug, Clone)]
pub struct Job {
    pub row: JobRow,
    /// The schedule in words, with its zone.
    pub described: String,
    pub overlap: Overlap,
    pub missed: Missed,
    /// The next slot and when it is due (the slot plus its jitter).
    pub next: Option<(Timestamp, Timestamp)>,
}

/// A name from the intent's first words.
fn default_name(intent: &str) -> String {
    let mut name = String::new();
    for w in intent.split_whitespace().take(6) {
        if name.len() + w.len() > 40 {
            break;
        }
        if !name.is_empty() {
            name.push(' ');
        }
        name.push_str(w);
    }
    name
}

/// The stored form of a spec, checked as of `now`.
pub fn check(spec: &JobSpec, origin: &str, now: Timestamp) -> Result<NewJob, JobError> {
    let intent = spec.intent.trim();
    if intent.is_empty() {
        return Err(JobError::NoIntent);
    }
    let zone = Some(spec.zone.trim()).filter(|z| !z.is_empty());
    let schedule = Schedule::parse(&spec.schedule, zone, now)?;
    for t in &spec.deliver {
        gateway::target(t).map_err(JobError::Target)?;
    }
    if let Schedule::Every(every) = &schedule
        && spec.jitter_secs > 0
        && SignedDuration::from_secs(spec.jitter_secs as i64) >= *every
    {
        return Err(JobError::Jitter {
            jitter: spec.jitter_secs,
            every: every.as_secs(),
        });
    }
    let name = match spec.name.trim() {
        "" => default_name(intent),
        n => n.to_string(),
    };
    Ok(NewJob {
        name,
        schedule: schedule.canonical(),
        zone: schedule.zone().map(String::from),
        intent: intent.to_string(),
        chat: spec.chat.trim().to_string(),
        origin: origin.to_string(),
        alias: spec.alias.trim().to_string(),
        deliver: spec.deliver.iter().map(|t| t.trim().to_string()).collect(),
        timeout_secs: spec.timeout_secs,
        overlap: spec.overlap.as_str().into(),
        missed: spec.missed.as_str().into(),
        jitter_secs: spec.jitter_secs,
        created_ms: now.as_millisecond(),
    })
}

impl Job {
    /// A stored job, read back (the schedule parses as of its creation, so
    /// an `at` that has passed still reads).
    pub fn from_row(row: JobRow) -> Result<Job, JobError> {
        let stored = |why: String| JobError::Stored { id: row.id, why };
        let created = Timestamp::from_millisecond(row.created_ms)
            .map_err(|e| stored(format!("created_ms: {e}")))?;
        let schedule = parse_stored(&row, created).map_err(|e| stored(e.to_string()))?;
        let overlap = Overlap::parse(&row.overlap).map_err(|e| stored(format!("overlap {e}")))?;
        let missed = Missed::parse(&row.missed).map_err(|e| stored(format!("missed {e}")))?;
        Ok(Job {
            row,
            described: schedule.describe(),
            overlap,
            missed,
            next: None,
        })
    }

    /// The schedule, parsed (it parsed when the job was loaded).
    pub fn schedule(&self) -> Result<Schedule, JobError> {
        parse_stored(&self.row, self.anchor()).map_err(|e| JobError::Stored {
            id: self.row.id,
            why: e.to_string(),
        })
    }

    pub fn anchor(&self) -> Timestamp {
        ts(self.row.created_ms)
    }

    pub fn last_slot(&self) -> Timestamp {
        ts(self.row.last_slot_ms)
    }

    pub fn jitter(&self) -> SignedDuration {
        SignedDuration::from_secs(self.row.jitter_secs as i64)
    }

    /// The delay of `slot`: fixed per job and slot (a restart keeps it),
    /// below the job's jitter.
    pub fn delay(&self, slot: Timestamp) -> SignedDuration {
        let span = self.row.jitter_secs.saturating_mul(1000);
        if span == 0 {
            return SignedDuration::ZERO;
        }
        let h = splitmix(self.row.id as u64 ^ (slot.as_millisecond() as u64).rotate_left(17));
        SignedDuration::from_millis((h % span) as i64)
    }

    pub fn due(&self) -> Option<Timestamp> {
        self.next.map(|(_, due)| due)
    }

    /// The zone times are shown in: a cron's own, else the host's.
    fn zone(&self, host: &str) -> (TimeZone, String) {
        let name = self.row.zone.as_deref().unwrap_or(host);
        match TimeZone::get(name) {
            Ok(tz) => (tz, name.to_string()),
            Err(_) => (TimeZone::UTC, "UTC".into()),
        }
    }

    /// The job for `oictl cron list` and the tools.
    pub fn info(&self, host_zone: &str, last: Option<&RunRow>) -> JobInfo {
        let (tz, zone) = self.zone(host_zone);
        let r = &self.row;
        let due = self.due();
        JobInfo {
            id: r.id,
            name: r.name.clone(),
            schedule: r.schedule.clone(),
            described: self.described.clone(),
            zone,
            intent: r.intent.clone(),
            chat: r.chat.clone(),
            alias: r.alias.clone(),
            deliver: r.deliver.clone(),
            timeout_secs: r.timeout_secs,
            overlap: self.overlap,
            missed: self.missed,
            jitter_secs: r.jitter_secs,
            enabled: r.enabled,
            disabled_reason: r.disabled_reason.clone(),
            consecutive_failures: r.failures,
            next_ms: due.map(|t| t.as_millisecond()).unwrap_or(0),
            next_local: due
                .map(|t| t.to_zoned(tz.clone()).to_string())
                .unwrap_or_default(),
            next_utc: due.map(|t| t.to_string()).unwrap_or_default(),
            created_ms: r.created_ms,
            last: last.map(run_info),
        }
    }
}

/// A stored schedule, as of its job's creation (so an `at` that has passed
/// still reads).
fn parse_stored(row: &JobRow, created: Timestamp) -> Result<Schedule, ScheduleError> {
    let before = created - SignedDuration::from_millis(1);
    Schedule::parse(&row.schedule, row.zone.as_deref(), before)
}

/// A stored row as the bus carries it.
pub fn run_info(r: &RunRow) -> RunInfo {
    RunInfo {
        id: r.id,
        job: r.job,
        slot_ms: r.slot_ms,
        status: r.status.clone(),
        reason: r.reason.clone(),
        trigger: r.trigger.clone(),
        intent_id: if r.started_ms > 0 {
            intent_id(r.id)
        } else {
            String::new()
        },
        started_ms: r.started_ms,
        duration_ms: r.duration_ms,
        tokens: r.tokens,
        model: r.model.clone(),
        excerpt: r.excerpt.clone(),
        delivery: r
            .deliveries
            .iter()
            .map(|d| match d.status.as_str() {
                "delivered" => format!("{} delivered", d.target),
                "pending" if d.attempts == 0 => format!("{} pending", d.target),
                "pending" => format!(
                    "{} pending (attempt {}: {})",
                    d.target, d.attempts, d.detail
                ),
                _ => format!("{} not delivered: {}", d.target, d.detail),
            })
            .collect(),
    }
}

/// The intent id of run `run`: known before it starts, so its row names it.
pub fn intent_id(run: i64) -> String {
    format!("cron-{run}")
}

pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(schedule: &str) -> JobSpec {
        JobSpec {
            schedule: schedule.into(),
            intent: "check the weather in Berlin and tell me if I need an umbrella".into(),
            ..JobSpec::default()
        }
    }

    #[test]
    fn a_job_is_checked_field_by_field_before_it_is_stored() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let j = check(&spec("in 2h"), "oictl", now).unwrap();
        assert_eq!(j.schedule, "at 2026-12-01T12:00:00Z");
        assert_eq!(j.name, "check the weather in Berlin and");
        let e = check(&spec("0 0 31 2 *"), "oictl", now).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("schedule: cron expression `0 0 31 2 *` can never fire"),
            "{e}"
        );
        let mut s = spec("0 8 * * 1-5");
        s.zone = "Mars/Olympus".into();
        assert!(
            check(&s, "oictl", now)
                .unwrap_err()
                .to_string()
                .contains("time zone `Mars/Olympus`")
        );
        let mut s = spec("every 10s");
        s.deliver = vec!["telegram:7".into(), "irc:#x".into()];
        assert!(
            check(&s, "oictl", now)
                .unwrap_err()
                .to_string()
                .starts_with("deliver: delivery target `irc:#x`: no gateway `irc`")
        );
        s.deliver.clear();
        s.jitter_secs = 10;
        assert_eq!(
            check(&s, "oictl", now).unwrap_err(),
            JobError::Jitter {
                jitter: 10,
                every: 10
            }
        );
        s.intent = "  ".into();
        assert_eq!(check(&s, "oictl", now).unwrap_err(), JobError::NoIntent);
    }

    #[test]
    fn a_slot_keeps_its_delay_and_the_delay_stays_below_the_jitter() {
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let mut s = spec("every 1m");
        s.jitter_secs = 30;
        let new = check(&s, "oictl", now).unwrap();
        let row = JobRow {
            id: 3,
            name: new.name,
            schedule: new.schedule,
            zone: new.zone,
            intent: new.intent,
            chat: "cron:3".into(),
            origin: new.origin,
            alias: String::new(),
            deliver: Vec::new(),
            timeout_secs: 0,
            overlap: new.overlap,
            missed: new.missed,
            jitter_secs: 30,
            created_ms: new.created_ms,
            last_slot_ms: new.created_ms,
            enabled: true,
            disabled_reason: String::new(),
            failures: 0,
        };
        let job = Job::from_row(row).unwrap();
        let mut delays = std::collections::BTreeSet::new();
        for k in 1..200 {
            let slot = now + SignedDuration::from_mins(k);
            let d = job.delay(slot);
            assert_eq!(d, job.delay(slot));
            assert!(d >= SignedDuration::ZERO && d < SignedDuration::from_secs(30));
            delays.insert(d.as_millis());
        }
        assert!(
            delays.len() > 100,
            "the delays are spread: {}",
            delays.len()
        );
    }
}
