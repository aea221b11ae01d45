//! Starting: what may start now (in order, behind what holds it back), the
//! `requires` of each service, and the secret names they wait for.

use super::*;

impl Supervisor {
    /// Starts every child that may start now. Groups start in order, each
    /// once the groups before it have booted (every permanent child ready).
    /// Inside a `rest_for_one` group children start one after another in
    /// start order (later ones depend on earlier ones, which is why the group
    /// restarts them together); in other groups they start in parallel.
    /// `depends_on` is honoured everywhere. Only permanent children hold
    /// others back.
    pub(super) fn start_what_may_start(&mut self) {
        self.check_requirements();
        let now = Instant::now();
        let mut earlier_groups_booted = true;
        for gi in 0..self.groups.len() {
            if self.groups[gi].held {
                earlier_groups_booted = false;
                continue;
            }
            let sequential = self.groups[gi].spec.strategy == Strategy::RestForOne;
            if earlier_groups_booted || self.groups[gi].booted {
                let mut earlier_ready = true;
                for name in self.groups[gi].children.clone() {
                    let Some(c) = self.children.get(&name) else {
                        continue;
                    };
                    let deps_ready = c.spec.depends_on.iter().all(|d| {
                        self.children
                            .get(d)
                            .is_some_and(|x| x.state == ChildState::Ready)
                    });
                    if c.startable(now) && earlier_ready && deps_ready {
                        self.start_child(&name);
                    }
                    if sequential && self.children.get(&name).is_some_and(holds_back) {
                        earlier_ready = false;
                    }
                }
            }
            let booted = self.groups[gi]
                .children
                .iter()
                .all(|n| self.children.get(n).is_none_or(|c| !holds_back(c)));
            if booted && earlier_groups_booted {
                self.groups[gi].booted = true;
            }
            earlier_groups_booted = earlier_groups_booted && self.groups[gi].booted;
        }
    }

    /// Moves children that are down between WAITING and EXITED as their
    /// `requires` come and go. A running child is left alone.
    pub(super) fn check_requirements(&mut self) {
        for c in self.children.values_mut() {
            if c.pid.is_some()
                || !matches!(
                    c.state,
                    ChildState::Exited | ChildState::Backoff | ChildState::Waiting
                )
            {
                continue;
            }
            match requirements::missing(&c.spec, &self.config, self.secret_names.as_ref()) {
                Some(why) if c.wanted => {
                    if c.state != ChildState::Waiting {
                        info!(service = %c.name, "not starting: {why}");
                    }
                    c.set_state(ChildState::Waiting);
                    c.waiting_for = Some(why);
                }
                _ if c.state == ChildState::Waiting => {
                    info!(service = %c.name, "what it needs is there now; starting");
                    c.set_state(ChildState::Exited);
                    c.waiting_for = None;
                }
                _ => {}
            }
        }
    }

    /// Whether a waiting child needs the vault's list of secret names, and
    /// the vault is there to ask.
    pub(crate) fn wants_secret_names(&self) -> bool {
        self.children
            .get("vault")
            .is_some_and(|v| v.state == ChildState::Ready)
            && self
                .children
                .values()
                .any(|c| c.state == ChildState::Waiting && requirements::needs_secret(&c.spec))
    }

    pub(crate) fn on_secret_names(&mut self, names: std::collections::BTreeSet<String>) {
        self.secret_names = Some(names);
    }

    /// Tells the broker which services it may hold requests for: those the
    /// tree means to run (running, starting, restarting). Only when the
    /// set changed.
    pub(crate) fn publish_wanted(&mut self) {
        let wanted: std::collections::HashSet<String> = self
            .children
            .values()
            .filter(|c| {
                c.wanted
                    && c.spec.enabled
                    && !c.removed
                    && !matches!(c.state, ChildState::Fatal | ChildState::Waiting)
            })
            .map(|c| c.name.clone())
            .collect();
        if self.published_wanted.as_ref() != Some(&wanted) {
            self.broker.set_wanted(wanted.clone());
            self.published_wanted = Some(wanted);
        }
    }

    pub(super) fn start_child(&mut self, name: &str) {
        let Some(c) = self.children.get_mut(name) else {
            return;
        };
        let kind = c.spec.kind(name).to_string();
        let env = environment::for_service(
            &self.config,
            &kind,
            &c.spec,
            self.passphrase.as_ref().map(|p| p.as_str()),
            &self.outside_env,
        );
        let launch = Launch {
            exe: &self.exe,
            name,
            kind: &kind,
            env: &env,
            bus_socket: self.broker.socket_path(),
            home_env: &self.home_env,
        };
        match process::spawn(&launch, &c.logs) {
            Ok(child) => {
                let Some(pid) = child.id() else {
                    return;
                };
                self.broker.expect_service(name, pid);
                c.pid = Some(pid);
                c.set_state(ChildState::Starting);
                c.started_at = Some(Instant::now());
                c.ready_at = None;
                c.backoff_until = None;
                c.stop_reason = None;
                c.after_stop = AfterStop::Idle;
                info!(service = %name, pid, "service started");
                self.to_link.push((name.to_string(), pid, child));
            }
            Err(e) => {
                self.spawn_failures.push((name.to_string(), e.to_string()));
            }
        }
    }
}
