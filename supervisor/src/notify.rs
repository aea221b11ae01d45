//! systemd service notifications (`Type=notify`): `READY=1` once every
//! permanent child is ready, `STATUS=` with a one-line summary, `WATCHDOG=1`
//! from the main loop at half of `WATCHDOG_USEC`, and `STOPPING=1`.
//!
//! Sends never block: the socket is non-blocking, and a notification that
//! does not fit (a manager that stopped reading) is dropped with a debug
//! line rather than stalling the supervisor. Without `NOTIFY_SOCKET` (not
//! under systemd) every call does nothing.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

use tracing::debug;

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    ready_sent: bool,
    stopping_sent: bool,
    last_status: String,
    watchdog: Option<Duration>,
}

fn socket_addr(spec: &str) -> Option<SocketAddr> {
    if let Some(name) = spec.strip_prefix('@') {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(name.as_bytes()).ok();
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return None;
        }
    }
    SocketAddr::from_pathname(spec).ok()
}

impl Notifier {
    pub fn from_env() -> Self {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|spec| {
                let addr = socket_addr(&spec)?;
                let sock = UnixDatagram::unbound().ok()?;
                sock.set_nonblocking(true).ok()?;
                Some((sock, addr))
            });
        let for_us = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_none_or(|p| p == std::process::id());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.parse::<u64>().ok())
            .filter(|u| *u > 0 && for_us && target.is_some())
            .map(|u| Duration::from_micros(u / 2));
        Notifier {
            target,
            ready_sent: false,
            stopping_sent: false,
            last_status: String::new(),
            watchdog,
        }
    }

    fn send(&self, msg: &str) {
        if let Some((sock, addr)) = &self.target
            && let Err(e) = sock.send_to_addr(msg.as_bytes(), addr)
        {
            debug!(error = %e, message = msg, "systemd notification dropped");
        }
    }

    /// How often the main loop must send `WATCHDOG=1`, if systemd asked.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn ready(&mut self) {
        if !self.ready_sent {
            self.ready_sent = true;
            self.send("READY=1");
        }
    }

    pub fn status(&mut self, line: &str) {
        if line != self.last_status {
            self.last_status = line.to_string();
            // One line: a newline would start another assignment.
            self.send(&format!("STATUS={}", line.replace('\n', " ")));
        }
    }

    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    pub fn stopping(&mut self) {
        if !self.stopping_sent {
            self.stopping_sent = true;
            self.send("STOPPING=1");
        }
    }
}
