//! A child that exited: its exit reason, whether and when it restarts
//! (the decisions of `restart.rs`), and a group that escalates.

use super::*;

impl Supervisor {
    pub(super) fn exit_reason(status: std::process::ExitStatus) -> ExitReason {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitReason::Code(code),
            (None, Some(sig)) => ExitReason::Signal(sig),
            (None, None) => ExitReason::Code(-1),
        }
    }

    pub(crate) fn on_exit(&mut self, name: &str, pid: u32, status: std::process::ExitStatus) {
        let Some(c) = self.children.get_mut(name) else {
            return;
        };
        if c.pid != Some(pid) {
            return;
        }
        self.broker.forget_service(name);
        let now = Instant::now();
        let ran_for = c
            .started_at
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or_default();
        let was_ready = c.ready_at.is_some();
        let observed = Self::exit_reason(status);
        let reason = c.stop_reason.take().unwrap_or(observed.clone());
        let after = std::mem::replace(&mut c.after_stop, AfterStop::Idle);
        let deliberate = c.state == ChildState::Stopping && after != AfterStop::Fail;
        c.pid = None;
        c.started_at = None;
        c.ready_at = None;
        c.stop_deadline = None;
        c.last_exit = Some(if reason == observed {
            reason.to_string()
        } else {
            format!("{reason} ({observed})")
        });
        info!(service = %name, pid, reason = %reason, ran_ms = millis(ran_for), "service exited");
        if deliberate || self.shutting_down {
            c.set_state(ChildState::Exited);
            if after == AfterStop::Restart && !self.shutting_down {
                c.wanted = true;
            }
            if c.removed {
                self.children.remove(name);
            }
            return;
        }
        let held = self.group_of(name).is_some_and(|g| self.groups[g].held);
        if held {
            if let Some(c) = self.children.get_mut(name) {
                c.set_state(ChildState::Exited);
            }
            return;
        }
        self.on_failure(name, reason, was_ready, ran_for);
    }

    /// A child stopped on its own or was killed for failing.
    pub(super) fn on_failure(
        &mut self,
        name: &str,
        reason: ExitReason,
        was_ready: bool,
        ran_for: Duration,
    ) {
        let now = Instant::now();
        let Some(gi) = self.group_of(name) else {
            return;
        };
        let Some(c) = self.children.get_mut(name) else {
            return;
        };
        if reason.is_config_error() {
            error!(service = %name, "service reported a configuration error (exit 78); not restarting it");
            c.set_state(ChildState::Fatal);
            c.wanted = false;
            return;
        }
        if !should_restart(c.spec.restart, &reason) {
            c.set_state(ChildState::Exited);
            c.wanted = false;
            return;
        }
        if !self.groups[gi].intensity.record(now) {
            let g = &self.groups[gi];
            error!(group = %g.name, max = g.intensity.max, period_s = g.intensity.period.as_secs(), "restart intensity exceeded; stopping the group and escalating");
            c.set_state(ChildState::Exited);
            self.escalate(gi);
            return;
        }
        let attempt = self.backoff.attempt_for(c.attempt, ran_for);
        let delay = self.backoff.delay(attempt, was_ready, self.jitter.unit());
        c.attempt = attempt.saturating_add(1);
        c.window.record(now);
        c.restarts_total += 1;
        c.set_state(ChildState::Backoff);
        c.backoff_until = Some(now + delay);
        warn!(service = %name, reason = %reason, delay_ms = millis(delay), "restarting service");
        let strategy = self.groups[gi].spec.strategy;
        let siblings: Vec<String> = affected(strategy, &self.groups[gi].children, name)
            .iter()
            .filter(|s| s.as_str() != name)
            .cloned()
            .collect();
        for s in siblings {
            self.stop_child(&s, AfterStop::Restart);
        }
    }

    /// Group restart intensity exceeded: stop its children in reverse order,
    /// then let the top level decide.
    pub(super) fn escalate(&mut self, gi: usize) {
        let name = self.groups[gi].name.clone();
        let now = Instant::now();
        if !self.root.record(now) {
            error!(group = %name, "restart intensity exceeded at the top level; shutting down");
            self.begin_shutdown_with(Outcome::Escalated(format!(
                "restart intensity of group '{name}' exceeded and the top level gave up"
            )));
            return;
        }
        self.groups[gi].held = true;
        let remaining = self.groups[gi].children.clone();
        self.sequences.push_back(StopSequence {
            remaining,
            current: None,
            then: Then::RestartGroup(name),
        });
    }
}
