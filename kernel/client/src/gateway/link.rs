//! A gateway's connection to its chat service, as `oictl status` and
//! `oictl doctor` show it: when it last worked, and how many attempts
//! have failed since (a bot can be READY while every poll fails).

use std::time::{Duration, Instant};

use oi_ipc_schema::gateway::LinkHealth;

/// Failures in a row before the link counts as broken (one failed poll
/// is weather; several are a problem).
pub const BROKEN_AFTER: u32 = 3;

#[derive(Debug, Clone)]
pub struct Link {
    /// What the link does when it works ("polling", "connected").
    doing: &'static str,
    started: Instant,
    last_ok: Option<Instant>,
    failures: u32,
    last_error: String,
}

impl Link {
    pub fn new(doing: &'static str, now: Instant) -> Link {
        Link {
            doing,
            started: now,
            last_ok: None,
            failures: 0,
            last_error: String::new(),
        }
    }

    pub fn ok(&mut self, now: Instant) {
        self.last_ok = Some(now);
        self.failures = 0;
        self.last_error.clear();
    }

    pub fn failed(&mut self, error: &str) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = error.to_string();
    }

    /// The state in words, and whether it is healthy.
    pub fn health(&self, now: Instant) -> LinkHealth {
        let ago = |t: Instant| secs(now.saturating_duration_since(t));
        let last = match self.last_ok {
            Some(t) => format!("last success {} ago", ago(t)),
            None => format!("no success yet (up {})", ago(self.started)),
        };
        if self.failures == 0 {
            return LinkHealth {
                healthy: true,
                summary: format!("{}, {last}", self.doing),
            };
        }
        LinkHealth {
            healthy: self.failures < BROKEN_AFTER,
            summary: format!(
                "{} failed {} time{} in a row ({last}): {}",
                self.doing,
                self.failures,
                if self.failures == 1 { "" } else { "s" },
                self.last_error
            ),
        }
    }
}

fn secs(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_broken_after_failures_in_a_row_and_heals_on_success() {
        let t0 = Instant::now();
        let mut l = Link::new("polling", t0);
        assert_eq!(
            l.health(t0 + Duration::from_secs(5)).summary,
            "polling, no success yet (up 5 s)"
        );
        l.ok(t0 + Duration::from_secs(6));
        let h = l.health(t0 + Duration::from_secs(9));
        assert!(h.healthy);
        assert_eq!(h.summary, "polling, last success 3 s ago");
        l.failed("502 Bad Gateway");
        assert!(
            l.health(t0 + Duration::from_secs(10)).healthy,
            "one failure is weather"
        );
        l.failed("502 Bad Gateway");
        l.failed("connection refused");
        let h = l.health(t0 + Duration::from_secs(200));
        assert!(!h.healthy);
        assert_eq!(
            h.summary,
            "polling failed 3 times in a row (last success 3 min ago): connection refused"
        );
        l.ok(t0 + Duration::from_secs(201));
        assert!(l.health(t0 + Duration::from_secs(201)).healthy);
    }
}
