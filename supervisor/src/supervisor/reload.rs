//! The configuration: watching the file, applying a valid change, and
//! publishing the running one for services to read.

use super::*;

impl Supervisor {
    /// Writes the running configuration where services read it at start
    /// (atomically: a starting service sees the old one or the new one).
    pub(super) fn publish_config(&self) {
        let path = self.paths.effective_config();
        let tmp = path.with_extension("toml.tmp");
        let written = (|| {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(self.config.to_toml().as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            error!(path = %path.display(), error = %e, "cannot write the configuration for services");
        }
    }

    pub(crate) fn poll_config(&mut self) {
        let now = stamp(&self.paths.config_file);
        if now != self.config_stamp {
            self.config_stamp = now;
            self.reload("file changed");
        }
    }

    /// Reloads the config file. A valid change is applied and pushed to the
    /// services; an invalid one keeps the running config and is shown in
    /// `oictl status`.
    pub(crate) fn reload(&mut self, why: &str) {
        if self.shutting_down {
            return;
        }
        // The same checks as at start, kinds included.
        match Config::load_checked(&self.paths.config_file, Some(&crate::services::build())) {
            Err(e) => {
                error!(error = %e, "config reload refused; keeping the running configuration");
                self.config_error = Some(e.to_string());
            }
            Ok(new) => {
                self.config_error = None;
                if new == self.config {
                    return;
                }
                info!(trigger = why, "applying new configuration");
                let old = std::mem::replace(&mut self.config, new);
                self.generation += 1;
                self.publish_config();
                self.backoff = Backoff::from_config(&self.config.supervisor);
                self.root.max = self.config.supervisor.intensity;
                self.root.period = Duration::from_secs(self.config.supervisor.period_secs);
                self.apply_layout();
                // A child whose process would start differently is restarted.
                let changed: Vec<String> = self
                    .config
                    .services
                    .iter()
                    .filter(|(n, s)| {
                        old.services.get(*n).is_some_and(|o| {
                            o.enabled
                                && s.enabled
                                && (o.env != s.env || o.kind != s.kind || o.group != s.group)
                        })
                    })
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in changed {
                    info!(service = %n, "service spec changed; restarting it");
                    self.stop_child(&n, AfterStop::Restart);
                }
                let gone: Vec<String> = self
                    .children
                    .values()
                    .filter(|c| !c.wanted && c.is_running() && c.state != ChildState::Stopping)
                    .map(|c| c.name.clone())
                    .collect();
                for n in gone {
                    self.stop_child(&n, AfterStop::Idle);
                }
                // A service that stopped on a configuration error gets
                // another chance with the new configuration.
                let fatal: Vec<String> = self
                    .children
                    .values()
                    .filter(|c| c.state == ChildState::Fatal && c.spec.enabled && !c.removed)
                    .map(|c| c.name.clone())
                    .collect();
                for n in fatal {
                    info!(service = %n, "configuration changed; starting the service again after its configuration error");
                    self.want_running(&n);
                }
                self.children.retain(|_, c| !c.removed || c.is_running());
                let sent = self.broker.broadcast(&ConfigChanged {
                    generation: self.generation,
                    config_toml: self.config.to_toml(),
                });
                info!(
                    generation = self.generation,
                    services = sent,
                    "configuration applied"
                );
            }
        }
    }
}
