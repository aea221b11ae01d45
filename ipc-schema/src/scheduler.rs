//! Payloads of the scheduler's methods (destination `scheduler`): jobs
//! that run an intent on a schedule, and the row each of their slots gets.
//! `oictl cron` speaks these; the agent's `cron_*` tools are the same
//! operations as JSON.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::Call;

pub mod methods {
    /// [`super::JobSpec`] -> [`super::JobInfo`]: a new job, checked first
    /// (a bad schedule, zone, target or policy changes nothing).
    pub const ADD: &str = "scheduler.add";
    /// empty -> [`super::JobList`]: every job with its next run.
    pub const LIST: &str = "scheduler.list";
    /// [`super::JobRef`] -> empty: the job and its history go.
    pub const REMOVE: &str = "scheduler.remove";
    /// [`super::JobRef`] -> [`super::JobInfo`]: runs again; the slots that
    /// passed while it was disabled are recorded as missed.
    pub const ENABLE: &str = "scheduler.enable";
    /// [`super::JobRef`] -> [`super::JobInfo`].
    pub const DISABLE: &str = "scheduler.disable";
    /// [`super::JobRef`] -> [`super::RunInfo`]: runs it now, recorded as
    /// `manual`.
    pub const RUN: &str = "scheduler.run";
    /// [`super::HistoryQuery`] -> [`super::History`]: rows, newest first.
    pub const HISTORY: &str = "scheduler.history";
}

/// The scheduler's destination.
pub const SERVICE: &str = "scheduler";

pub const ADD: Call<JobSpec, JobInfo> = Call::new(SERVICE, methods::ADD);
pub const LIST: Call<(), JobList> = Call::new(SERVICE, methods::LIST);
pub const REMOVE: Call<JobRef, ()> = Call::new(SERVICE, methods::REMOVE);
pub const ENABLE: Call<JobRef, JobInfo> = Call::new(SERVICE, methods::ENABLE);
pub const DISABLE: Call<JobRef, JobInfo> = Call::new(SERVICE, methods::DISABLE);
pub const RUN: Call<JobRef, RunInfo> = Call::new(SERVICE, methods::RUN);
pub const HISTORY: Call<HistoryQuery, History> = Call::new(SERVICE, methods::HISTORY);

/// What to do with a slot that comes due while the job's last run is
/// still going.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub enum Overlap {
    /// Recorded as missed.
    #[default]
    Skip,
    /// Runs when the last run ends (one slot waits at most; more are
    /// missed).
    Queue,
    /// The last run is cancelled and this one starts.
    CancelPrevious,
}

/// What to do with slots that passed while the job could not run.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub enum Missed {
    /// Each is recorded as missed.
    #[default]
    Skip,
    /// The latest, if within `[scheduler] catchup_window_secs`, runs once.
    RunOnce,
    /// Each runs, up to `[scheduler] max_catchup_runs`.
    RunAll,
}

/// The words of a policy, for `oictl`, the tools and config.
macro_rules! words {
    ($ty:ident { $($v:ident = $w:literal),* }) => {
        impl $ty {
            pub const WORDS: &'static [&'static str] = &[$($w),*];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$v => $w),* }
            }
            /// The policy named `word`; the error lists the words.
            pub fn parse(word: &str) -> Result<$ty, String> {
                match word.trim() {
                    $($w => Ok($ty::$v),)*
                    other => Err(format!(
                        "`{other}`: expected one of {}",
                        Self::WORDS.join(", ")
                    )),
                }
            }
        }
    };
}
words!(Overlap { Skip = "skip", Queue = "queue", CancelPrevious = "cancel_previous" });
words!(Missed { Skip = "skip", RunOnce = "run_once", RunAll = "run_all" });

/// A job to create.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct JobSpec {
    /// Empty: the first words of the intent.
    pub name: String,
    /// `0 9 * * 1-5`, `@daily`, `every 10m`, `at 2026-12-24T09:00:00+01:00`,
    /// `in 2h`.
    pub schedule: String,
    /// The IANA zone of a cron expression; empty for the host's.
    pub zone: String,
    pub intent: String,
    /// The chat it runs in (its history and model); empty for `cron:<id>`.
    pub chat: String,
    /// Start the model cascade at this alias; empty for the chat's model.
    pub alias: String,
    /// Where answers go besides the run history: `telegram:<chat id>`.
    pub deliver: Vec<String>,
    /// Seconds a run may take; 0 for `[scheduler] run_timeout_secs`.
    pub timeout_secs: u64,
    pub overlap: Overlap,
    pub missed: Missed,
    /// Up to this many seconds of delay, fixed per slot, to spread load.
    pub jitter_secs: u64,
}

/// A job as it stands.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: i64,
    pub name: String,
    /// As stored (`in 2h` is stored as the `at` it means).
    pub schedule: String,
    /// In words, with the zone of a cron ("At 09:00, Monday through Friday
    /// (Europe/Berlin)").
    pub described: String,
    /// The zone times are shown in: a cron's own, else the host's.
    pub zone: String,
    pub intent: String,
    pub chat: String,
    pub alias: String,
    pub deliver: Vec<String>,
    pub timeout_secs: u64,
    pub overlap: Overlap,
    pub missed: Missed,
    pub jitter_secs: u64,
    pub enabled: bool,
    /// Why it was disabled (by a user, or after failures); empty if enabled.
    pub disabled_reason: String,
    pub consecutive_failures: u32,
    /// The next run (unix ms, jitter included); 0 when none is left.
    pub next_ms: i64,
    /// The next run in `zone` and in UTC (RFC 3339); empty when none.
    pub next_local: String,
    pub next_utc: String,
    pub created_ms: i64,
    /// Its newest row, if any.
    pub last: Option<RunInfo>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JobList {
    pub jobs: Vec<JobInfo>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub id: i64,
}

/// What happened to one slot.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RunInfo {
    pub id: i64,
    pub job: i64,
    /// The slot (unix ms); a manual run's is when it was asked for.
    pub slot_ms: i64,
    /// `queued`, `running`, `ran`, `failed`, `missed`, `cancelled` or
    /// `interrupted`.
    pub status: String,
    /// Why it was missed, how it failed; empty when it ran.
    pub reason: String,
    /// `schedule`, `catch-up` or `manual`.
    pub trigger: String,
    pub intent_id: String,
    pub started_ms: i64,
    pub duration_ms: i64,
    pub tokens: u64,
    pub model: String,
    /// The start of the answer.
    pub excerpt: String,
    /// Per target: `telegram:42 delivered`, `... pending (attempt 3: ...)`,
    /// `... not delivered: ...`.
    pub delivery: Vec<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// 0 for every job.
    pub job: i64,
    pub limit: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub runs: Vec<RunInfo>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_read_their_words_and_say_the_others() {
        for w in Overlap::WORDS {
            assert_eq!(Overlap::parse(w).unwrap().as_str(), *w);
        }
        for w in Missed::WORDS {
            assert_eq!(Missed::parse(w).unwrap().as_str(), *w);
        }
        assert_eq!(
            Overlap::parse("kill").unwrap_err(),
            "`kill`: expected one of skip, queue, cancel_previous"
        );
        assert_eq!(Missed::parse(" run_once ").unwrap(), Missed::RunOnce);
    }
}
