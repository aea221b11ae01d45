//! Restart policy, as plain functions over an injected clock: whether an
//! exit is restarted, which siblings go with it, how long to wait, and when
//! a group has restarted too often.
//!
//! The semantics are Erlang/OTP's: restart types `permanent`, `transient`,
//! `temporary`; strategies `one_for_one`, `rest_for_one`, `one_for_all`;
//! restart intensity as "at most R restarts in T".

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use oi_kernel::config::{RestartType, Strategy, SupervisorConfig};

/// Exit status that means "configuration error": never restarted.
pub const EXIT_CONFIG: i32 = 78;

/// Why a child stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// Exited with a status code.
    Code(i32),
    /// Killed by a signal we did not send.
    Signal(i32),
    /// Missed too many heartbeats and was killed.
    Watchdog,
    /// Did not send Ready within the start timeout and was killed.
    ReadyTimeout,
    /// Stopped on purpose (shutdown, `oictl stop`, a sibling's restart).
    Stopped,
}

impl ExitReason {
    /// An exit that OTP calls `normal`: status 0 or a stop we asked for.
    pub fn is_normal(&self) -> bool {
        matches!(self, ExitReason::Code(0) | ExitReason::Stopped)
    }

    pub fn is_config_error(&self) -> bool {
        *self == ExitReason::Code(EXIT_CONFIG)
    }
}

impl std::fmt::Display for ExitReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitReason::Code(EXIT_CONFIG) => write!(f, "exit 78 (configuration error)"),
            ExitReason::Code(c) => write!(f, "exit {c}"),
            ExitReason::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                write!(f, "signal {s} ({name})")
            }
            ExitReason::Watchdog => write!(f, "watchdog"),
            ExitReason::ReadyTimeout => write!(f, "ready timeout"),
            ExitReason::Stopped => write!(f, "stopped"),
        }
    }
}

/// Whether a child that stopped for `reason` is restarted.
pub fn should_restart(restart: RestartType, reason: &ExitReason) -> bool {
    if reason.is_config_error() || *reason == ExitReason::Stopped {
        return false;
    }
    match restart {
        RestartType::Permanent => true,
        RestartType::Transient => !reason.is_normal(),
        RestartType::Temporary => false,
    }
}

/// The children a failure affects, in start order. `children` is the
/// group's children in start order.
pub fn affected<'a>(strategy: Strategy, children: &'a [String], failed: &str) -> &'a [String] {
    let Some(i) = children.iter().position(|c| c == failed) else {
        return &[];
    };
    match strategy {
        Strategy::OneForOne => &children[i..=i],
        Strategy::RestForOne => &children[i..],
        Strategy::OneForAll => children,
    }
}

/// Exponential backoff with jitter between restarts of one child.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// Up to this fraction of the delay is added at random.
    pub jitter: f64,
    /// A child that dies before it was ready waits at least this long.
    pub min_unready: Duration,
    /// Running healthy this long resets the doubling.
    pub reset_after: Duration,
}

impl Backoff {
    pub fn from_config(c: &SupervisorConfig) -> Self {
        Backoff {
            initial: Duration::from_millis(c.backoff_initial_ms),
            max: Duration::from_millis(c.backoff_max_ms),
            jitter: c.backoff_jitter,
            min_unready: Duration::from_millis(c.min_unready_backoff_ms),
            reset_after: Duration::from_secs(c.backoff_reset_secs),
        }
    }

    /// The delay before restart number `attempt` (0-based: the first restart
    /// after a healthy run is attempt 0 and happens at once). `unit` is a
    /// random number in [0, 1) for the jitter.
    pub fn delay(&self, attempt: u32, was_ready: bool, unit: f64) -> Duration {
        let base = if attempt == 0 {
            Duration::ZERO
        } else {
            let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
            self.initial.saturating_mul(factor).min(self.max)
        };
        let jittered = base.mul_f64(1.0 + self.jitter * unit.clamp(0.0, 1.0));
        if was_ready {
            jittered
        } else {
            jittered.max(self.min_unready)
        }
    }

    /// The attempt number for this restart: the failures in a row so far,
    /// or 0 when the child ran healthy for `reset_after` this time.
    pub fn attempt_for(&self, failures_so_far: u32, ran_for: Duration) -> u32 {
        if ran_for >= self.reset_after {
            0
        } else {
            failures_so_far
        }
    }
}

/// Restart intensity: at most `max` restarts in any `period`.
#[derive(Debug, Clone)]
pub struct Intensity {
    pub max: u32,
    pub period: Duration,
    history: VecDeque<Instant>,
}

impl Intensity {
    pub fn new(max: u32, period: Duration) -> Self {
        Intensity {
            max,
            period,
            history: VecDeque::new(),
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&t) = self.history.front() {
            if now.saturating_duration_since(t) >= self.period {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a restart at `now`. False when this restart exceeds the limit
    /// (the group must give up and escalate).
    pub fn record(&mut self, now: Instant) -> bool {
        self.expire(now);
        self.history.push_back(now);
        self.history.len() <= self.max as usize
    }

    /// Restarts inside the window ending at `now`.
    pub fn count(&mut self, now: Instant) -> u32 {
        self.expire(now);
        u32::try_from(self.history.len()).unwrap_or(u32::MAX)
    }

    pub fn reset(&mut self) {
        self.history.clear();
    }
}

/// A small xorshift generator for jitter; seeded from the clock and pid so
/// that restarting siblings do not synchronise.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Jitter((t ^ (u64::from(std::process::id()) << 32)) | 1)
    }

    /// A number in [0, 1).
    pub fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_kernel::config::Strategy;
    use proptest::prelude::{prop_assert, proptest};

    fn backoff() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: 0.2,
            min_unready: Duration::from_secs(1),
            reset_after: Duration::from_secs(60),
        }
    }

    #[test]
    fn restart_types_times_exit_causes() {
        use ExitReason::*;
        use RestartType::*;
        let causes = [
            Code(0),
            Code(1),
            Signal(9),
            Watchdog,
            ReadyTimeout,
            Code(78),
            Stopped,
        ];
        // permanent: everything but config errors and deliberate stops.
        let p: Vec<bool> = causes
            .iter()
            .map(|c| should_restart(Permanent, c))
            .collect();
        assert_eq!(p, [true, true, true, true, true, false, false]);
        // transient: only abnormal exits.
        let t: Vec<bool> = causes
            .iter()
            .map(|c| should_restart(Transient, c))
            .collect();
        assert_eq!(t, [false, true, true, true, true, false, false]);
        // temporary: never.
        assert!(causes.iter().all(|c| !should_restart(Temporary, c)));
    }

    #[test]
    fn strategies_pick_the_otp_sets() {
        let kids: Vec<String> = ["vault", "memory", "llm-router", "agent"]
            .map(String::from)
            .to_vec();
        assert_eq!(affected(Strategy::OneForOne, &kids, "memory"), ["memory"]);
        assert_eq!(
            affected(Strategy::RestForOne, &kids, "memory"),
            ["memory", "llm-router", "agent"]
        );
        assert_eq!(
            affected(Strategy::RestForOne, &kids, "vault"),
            kids.as_slice()
        );
        assert_eq!(affected(Strategy::RestForOne, &kids, "agent"), ["agent"]);
        assert_eq!(
            affected(Strategy::OneForAll, &kids, "agent"),
            kids.as_slice()
        );
        assert!(affected(Strategy::OneForAll, &kids, "ghost").is_empty());
    }

    #[test]
    fn backoff_is_immediate_then_doubles_to_the_cap() {
        let b = backoff();
        let delays: Vec<u64> = (0..8)
            .map(|a| b.delay(a, true, 0.0).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    }

    #[test]
    fn unready_child_waits_at_least_the_minimum() {
        let b = backoff();
        assert_eq!(b.delay(0, false, 0.0), Duration::from_secs(1));
        assert_eq!(b.delay(3, false, 0.0), Duration::from_secs(4));
    }

    #[test]
    fn healthy_run_resets_the_doubling() {
        let b = backoff();
        assert_eq!(b.attempt_for(4, Duration::from_secs(59)), 4);
        assert_eq!(b.attempt_for(4, Duration::from_secs(60)), 0);
    }

    #[test]
    fn intensity_allows_r_and_refuses_r_plus_one_in_the_window() {
        let t0 = Instant::now();
        let mut i = Intensity::new(5, Duration::from_secs(30));
        for k in 0..5 {
            assert!(i.record(t0 + Duration::from_secs(k)), "restart {k}");
        }
        assert!(!i.record(t0 + Duration::from_secs(5)));
        // Outside the window, old restarts no longer count.
        let mut i = Intensity::new(5, Duration::from_secs(30));
        for k in 0..5 {
            assert!(i.record(t0 + Duration::from_secs(k * 10)));
        }
        assert!(i.record(t0 + Duration::from_secs(50)));
        assert_eq!(i.count(t0 + Duration::from_secs(50)), 3);
    }

    #[test]
    fn zero_intensity_refuses_the_first_restart() {
        let mut i = Intensity::new(0, Duration::from_secs(30));
        assert!(!i.record(Instant::now()));
    }

    #[test]
    fn exit_reasons_read_well() {
        assert_eq!(
            ExitReason::Code(78).to_string(),
            "exit 78 (configuration error)"
        );
        assert_eq!(ExitReason::Signal(9).to_string(), "signal 9 (SIGKILL)");
        assert_eq!(ExitReason::Watchdog.to_string(), "watchdog");
    }

    proptest! {
        #[test]
        fn backoff_is_bounded_and_monotone(attempt in 0u32..200, unit in 0.0f64..1.0) {
            let b = backoff();
            let d = b.delay(attempt, true, unit);
            // Never above the cap plus its jitter.
            prop_assert!(d <= b.max.mul_f64(1.0 + b.jitter));
            // Jitter only ever adds, by at most the fraction.
            let plain = b.delay(attempt, true, 0.0);
            prop_assert!(d >= plain && d <= plain.mul_f64(1.0 + b.jitter) + Duration::from_nanos(1));
            // Without jitter the delay never shrinks as attempts grow.
            prop_assert!(b.delay(attempt + 1, true, 0.0) >= plain);
        }

        #[test]
        fn jitter_is_a_unit_fraction(seed: u64) {
            let mut j = Jitter(seed | 1);
            for _ in 0..50 {
                let u = j.unit();
                prop_assert!((0.0..1.0).contains(&u));
            }
        }

        #[test]
        fn intensity_never_allows_more_than_max_in_any_window(gaps in proptest::collection::vec(0u64..20_000, 1..40)) {
            let t0 = Instant::now();
            let mut i = Intensity::new(5, Duration::from_secs(30));
            let mut t = t0;
            let mut accepted: Vec<Instant> = Vec::new();
            for g in gaps {
                t += Duration::from_millis(g);
                if i.record(t) {
                    accepted.push(t);
                }
                let in_window = accepted.iter().filter(|a| t.saturating_duration_since(**a) < Duration::from_secs(30)).count();
                prop_assert!(in_window <= 5);
            }
        }
    }
}
