//! systemd service notifications (`Type=notify`): `READY=1` once every
//! permanent child is ready, `STATUS=` with a one-line summary, `WATCHDOG=1`
//! from the main loop at half of `WATCHDOG_USEC`, and `STOPPING=1`.
//! Without `NOTIFY_SOCKET` (not under systemd) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

pub struct Notifier {
    enabled: bool,
    ready_sent: bool,
    stopping_sent: bool,
    last_status: String,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty());
        let mut usec = 0u64;
        let watchdog = (enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec / 2));
        Notifier {
            enabled,
            ready_sent: false,
            stopping_sent: false,
            last_status: String::new(),
            watchdog,
        }
    }

    fn send(&self, state: &[NotifyState<'_>]) {
        if self.enabled
            && let Err(e) = sd_notify::notify(false, state)
        {
            debug!(error = %e, "sd_notify failed");
        }
    }

    /// How often the main loop must send `WATCHDOG=1`, if systemd asked.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn ready(&mut self) {
        if !self.ready_sent {
            self.ready_sent = true;
            self.send(&[NotifyState::Ready]);
        }
    }

    pub fn status(&mut self, line: &str) {
        if line != self.last_status {
            self.last_status = line.to_string();
            self.send(&[NotifyState::Status(line)]);
        }
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn stopping(&mut self) {
        if !self.stopping_sent {
            self.stopping_sent = true;
            self.send(&[NotifyState::Stopping]);
        }
    }
}
