//! `[scheduler]`: how late a slot may be, catch-up bounds, run limits,
//! failures before a job is disabled, and how long an answer is offered
//! to a gateway that is down.

use jiff::SignedDuration;
use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one};
use serde::{Deserialize, Serialize};

use crate::slots::{Missed, Rules};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// How late a slot may start and still count as on time.
    pub grace_secs: u64,
    /// How old the latest missed slot may be for `run_once` to run it.
    pub catchup_window_secs: u64,
    /// Missed slots `run_all` runs at most in one catch-up.
    pub max_catchup_runs: u64,
    /// Rows written one by one per job and wake-up; older missed slots
    /// are counted in one row.
    pub max_rows_per_catchup: u64,
    /// A run's limit when its job sets none.
    pub run_timeout_secs: u64,
    /// Failures in a row after which a job is disabled.
    pub max_consecutive_failures: u64,
    /// How long an answer is retried to a gateway that does not take it.
    pub delivery_max_age_secs: u64,
    /// Jobs at most.
    pub max_jobs: u64,
    /// Rows kept per job (the oldest go first).
    pub history_per_job: u64,
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<SchedulerConfig>()];

impl Section for SchedulerConfig {
    const NAME: &'static str = "scheduler";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[
            ("scheduler.max_catchup_runs", self.max_catchup_runs),
            ("scheduler.max_rows_per_catchup", self.max_rows_per_catchup),
            ("scheduler.run_timeout_secs", self.run_timeout_secs),
            (
                "scheduler.max_consecutive_failures",
                self.max_consecutive_failures,
            ),
            (
                "scheduler.delivery_max_age_secs",
                self.delivery_max_age_secs,
            ),
            ("scheduler.max_jobs", self.max_jobs),
            ("scheduler.history_per_job", self.history_per_job),
        ])?;
        if self.catchup_window_secs < self.grace_secs {
            return Err(Invalid::new(
                "scheduler.catchup_window_secs",
                format!(
                    "scheduler.catchup_window_secs ({}) is shorter than scheduler.grace_secs ({}); a catch-up window must cover at least the grace",
                    self.catchup_window_secs, self.grace_secs
                ),
            ));
        }
        Ok(())
    }
}

impl SchedulerConfig {
    /// The slot rules of a job with `missed` and `jitter` (a slot due up to
    /// `jitter` after its time is still on time).
    pub fn rules(&self, missed: Missed, jitter: SignedDuration) -> Rules {
        let secs = |s: u64| SignedDuration::from_secs(i64::try_from(s).unwrap_or(i64::MAX));
        Rules {
            missed,
            grace: secs(self.grace_secs) + jitter,
            catchup_window: secs(self.catchup_window_secs) + jitter,
            max_runs: self.max_catchup_runs as usize,
            max_slots: self.max_rows_per_catchup as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, oi_kernel::config::ConfigError> {
        Config::parse_checked(Some(text), Path::new("c.toml"), Some(SECTIONS))
    }

    #[test]
    fn scheduler_settings_are_checked_with_their_location() {
        let c: SchedulerConfig = parse("").unwrap().section().unwrap();
        assert_eq!(c.max_consecutive_failures, 5);
        assert!(c.catchup_window_secs >= c.grace_secs);
        let e = parse("[scheduler]\nmax_jobs = 0\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(
            e.message.contains("scheduler.max_jobs must be at least 1"),
            "{e}"
        );
        let e = parse("\n[scheduler]\ngrace_secs = 100\ncatchup_window_secs = 10\n").unwrap_err();
        assert_eq!(e.location, Some((4, 1)), "{e}");
        assert!(
            e.message.contains("shorter than scheduler.grace_secs"),
            "{e}"
        );
        let e = parse("[scheduler]\ngrace = 1\n").unwrap_err();
        assert!(e.message.contains("unknown field `grace`"), "{e}");
    }
}
