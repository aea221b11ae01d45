//! Stopping: a child (SIGTERM, then SIGKILL after its timeout), and the
//! whole tree in reverse order on shutdown.

use super::*;

impl Supervisor {
    pub(crate) fn begin_shutdown(&mut self, why: &str) {
        info!(signal = why, "orderly shutdown");
        self.begin_shutdown_with(Outcome::Stopped);
    }

    pub(super) fn begin_shutdown_with(&mut self, outcome: Outcome) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.notifier.stopping();
        for c in self.children.values_mut() {
            c.wanted = false;
            if c.state == ChildState::Backoff {
                c.set_state(ChildState::Exited);
            }
        }
        let remaining: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.children.iter().cloned())
            .collect();
        self.sequences.clear();
        self.sequences.push_back(StopSequence {
            remaining,
            current: None,
            then: Then::Exit(outcome),
        });
    }

    /// SIGTERM to the child's process group; SIGKILL after its timeout.
    pub(super) fn stop_child(&mut self, name: &str, after: AfterStop) {
        let timeout = self.shutdown_timeout(name);
        let Some(c) = self.children.get_mut(name) else {
            return;
        };
        match c.pid {
            Some(pid) if c.state != ChildState::Stopping => {
                let _ = process::signal_group(pid, Signal::SIGTERM);
                c.set_state(ChildState::Stopping);
                c.stop_deadline = Some(Instant::now() + timeout);
                c.stop_reason.get_or_insert(ExitReason::Stopped);
                c.after_stop = after;
            }
            Some(_) => {
                if after == AfterStop::Restart || c.after_stop == AfterStop::Idle {
                    c.after_stop = after;
                }
            }
            None => {
                if c.state == ChildState::Backoff && after == AfterStop::Restart {
                    return;
                }
                c.set_state(ChildState::Exited);
                c.backoff_until = None;
                if after == AfterStop::Restart {
                    c.wanted = true;
                }
            }
        }
    }

    /// Kills a failing child at once; its exit is handled as a failure.
    pub(super) fn kill_failed(&mut self, name: &str, reason: ExitReason) {
        let Some(c) = self.children.get_mut(name) else {
            return;
        };
        if let Some(pid) = c.pid {
            warn!(service = %name, pid, reason = %reason, "killing service");
            let _ = process::signal_group(pid, Signal::SIGKILL);
            c.set_state(ChildState::Stopping);
            c.stop_reason = Some(reason);
            c.after_stop = AfterStop::Fail;
            c.stop_deadline = Some(Instant::now() + Duration::from_secs(1));
        }
    }

    pub(super) fn shutdown_timeout(&self, name: &str) -> Duration {
        let secs = self
            .children
            .get(name)
            .and_then(|c| c.spec.shutdown_timeout_secs)
            .unwrap_or(self.config.supervisor.shutdown_timeout_secs);
        Duration::from_secs(secs)
    }
}
