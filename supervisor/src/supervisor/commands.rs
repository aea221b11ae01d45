//! What `oictl` asks of the supervisor: status, restart, stop, start,
//! logs and shutdown.

use super::*;

impl Supervisor {
    pub(crate) fn on_command(&mut self, cmd: Command) {
        let known = |s: &Self, name: &str| -> Result<(), String> {
            if s.children.get(name).is_some_and(|c| !c.removed) {
                Ok(())
            } else {
                let names: Vec<&str> = s
                    .children
                    .values()
                    .filter(|c| c.spec.enabled && !c.removed)
                    .map(|c| c.name.as_str())
                    .collect();
                Err(format!(
                    "no service named '{name}' (services: {})",
                    names.join(", ")
                ))
            }
        };
        match cmd {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Shutdown(reply) => {
                self.begin_shutdown("oictl shutdown");
                let _ = reply.send(());
            }
            Command::Logs(name, reply) => {
                let _ = reply.send(known(self, &name).map(|_| self.children[&name].logs.clone()));
            }
            Command::Stop(name, reply) => {
                let r = known(self, &name).map(|_| {
                    if let Some(c) = self.children.get_mut(&name) {
                        c.wanted = false;
                    }
                    self.stop_child(&name, AfterStop::Idle);
                });
                let _ = reply.send(r);
            }
            Command::Start(name, reply) => {
                let r = known(self, &name).map(|_| {
                    self.want_running(&name);
                    // A service whose `requires` are all missing stays
                    // WAITING: say so, and what for.
                    let c = &self.children[&name];
                    requirements::missing(&c.spec, &self.config, self.secret_names.as_ref())
                });
                let _ = reply.send(r);
            }
            Command::Restart(name, reply) => {
                let r = known(self, &name).map(|_| {
                    self.want_running(&name);
                    self.stop_child(&name, AfterStop::Restart);
                });
                let _ = reply.send(r);
            }
        }
    }

    /// `oictl start`/`restart`: the child should run again, with a fresh
    /// backoff, even if it had failed for good.
    pub(super) fn want_running(&mut self, name: &str) {
        if let Some(c) = self.children.get_mut(name) {
            c.wanted = true;
            c.attempt = 0;
            if matches!(c.state, ChildState::Fatal | ChildState::Backoff) {
                c.set_state(ChildState::Exited);
            }
        }
    }

    pub(super) fn status(&mut self) -> StatusReport {
        let now = Instant::now();
        let order: Vec<String> = self
            .groups
            .iter()
            .flat_map(|g| g.children.iter().cloned())
            .collect();
        let mut services = Vec::with_capacity(order.len());
        for n in &order {
            // Disabled services are configuration, not running state.
            let Some(c) = self.children.get_mut(n).filter(|c| c.spec.enabled) else {
                continue;
            };
            services.push(ServiceStatus {
                name: c.name.clone(),
                state: c.state,
                pid: c.pid,
                uptime_ms: c
                    .started_at
                    .map(|t| millis(now.saturating_duration_since(t))),
                restarts_window: c.window.count(now),
                restarts_total: c.restarts_total,
                last_exit: if c.state == ChildState::Waiting {
                    c.waiting_for.clone()
                } else {
                    c.last_exit.clone()
                },
                heartbeat_age_ms: if c.state == ChildState::Ready {
                    self.broker.heartbeat_age(&c.name).map(millis)
                } else {
                    None
                },
                rss_kb: c.pid.and_then(process::rss_kb),
                backoff_remaining_ms: if c.state == ChildState::Backoff {
                    c.backoff_until
                        .map(|t| millis(t.saturating_duration_since(now)))
                } else {
                    None
                },
            });
        }
        StatusReport {
            supervisor_pid: std::process::id(),
            uptime_ms: millis(now.saturating_duration_since(self.started)),
            config_path: self.paths.config_file.display().to_string(),
            config_generation: self.generation,
            config_error: self.config_error.clone(),
            services,
        }
    }
}
