//! The supervision tree's data: each child's state machine and each group's
//! membership and restart intensity.
//!
//! Per-child state machine (shown by `oictl status`):
//!
//! ```text
//!            start                Ready frame
//!  EXITED ───────────▶ STARTING ─────────────▶ READY
//!    ▲  ▲                 │ start timeout         │ exit / watchdog
//!    │  │                 ▼                       ▼
//!    │  └── stop done ── STOPPING ◀── stop ── (failure handling)
//!    │                                            │ restart allowed
//!    └──────── backoff elapsed ── BACKOFF ◀───────┘
//!                                                 │ exit 78
//!                                                 ▼
//!                                               FATAL
//! ```
//!
//! A child with `requires` that are all missing waits in WAITING instead of
//! EXITED or BACKOFF (see `requirements.rs`); once one is present it goes
//! back to EXITED and starts as usual.

use std::time::{Duration, Instant};

use oi_ipc_schema::control::ChildState;
use oi_kernel::config::{Config, GroupSpec, ServiceSpec};

use crate::logs::LogBuffer;
use crate::restart::{ExitReason, Intensity};

/// What to do once a stopping child has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    /// Stay down.
    Idle,
    /// Start again (a sibling's restart, `oictl restart`, group restart);
    /// not counted as a failure.
    Restart,
    /// We killed it because it failed (watchdog, ready timeout): handle the
    /// exit as a failure.
    Fail,
}

#[derive(Debug)]
pub struct Child {
    pub name: String,
    pub spec: ServiceSpec,
    pub state: ChildState,
    pub pid: Option<u32>,
    pub started_at: Option<Instant>,
    pub ready_at: Option<Instant>,
    /// The child should be running (false after `oictl stop`, a temporary
    /// child's exit, or a removal).
    pub wanted: bool,
    pub backoff_until: Option<Instant>,
    pub stop_deadline: Option<Instant>,
    /// When a READY child was first seen off the bus (its connection gone
    /// before its exit was reaped).
    pub off_bus_since: Option<Instant>,
    pub stop_reason: Option<ExitReason>,
    pub after_stop: AfterStop,
    /// Next backoff attempt number (0 = restart at once).
    pub attempt: u32,
    /// Restarts of this child inside its group's window.
    pub window: Intensity,
    pub restarts_total: u32,
    pub last_exit: Option<String>,
    pub logs: LogBuffer,
    /// Removed from the config: drop it once it has exited.
    pub removed: bool,
    /// In state WAITING: what it needs before it may start.
    pub waiting_for: Option<String>,
}

impl Child {
    pub fn new(name: &str, spec: ServiceSpec, group: &GroupSpec, log_lines: usize) -> Self {
        Child {
            name: name.to_string(),
            wanted: spec.enabled,
            spec,
            state: ChildState::Exited,
            pid: None,
            started_at: None,
            ready_at: None,
            backoff_until: None,
            stop_deadline: None,
            off_bus_since: None,
            stop_reason: None,
            after_stop: AfterStop::Idle,
            attempt: 0,
            window: Intensity::new(group.intensity, Duration::from_secs(group.period_secs)),
            restarts_total: 0,
            last_exit: None,
            logs: LogBuffer::new(name, log_lines),
            removed: false,
            waiting_for: None,
        }
    }

    pub fn is_running(&self) -> bool {
        self.pid.is_some()
    }

    /// Whether it may be started now (down, wanted, backoff elapsed).
    pub fn startable(&self, now: Instant) -> bool {
        self.wanted
            && !self.removed
            && self.pid.is_none()
            && match self.state {
                ChildState::Exited => true,
                ChildState::Backoff => self.backoff_until.is_none_or(|t| t <= now),
                _ => false,
            }
    }
}

#[derive(Debug)]
pub struct Group {
    pub name: String,
    pub spec: GroupSpec,
    pub intensity: Intensity,
    /// Children in start order.
    pub children: Vec<String>,
    /// Every wanted child has been ready at least once since the group
    /// (re)started: later groups may start.
    pub booted: bool,
    /// Being stopped for escalation: no restarts inside it.
    pub held: bool,
}

impl Group {
    pub fn new(name: &str, spec: GroupSpec) -> Self {
        Group {
            name: name.to_string(),
            intensity: Intensity::new(spec.intensity, Duration::from_secs(spec.period_secs)),
            spec,
            children: Vec::new(),
            booted: false,
            held: false,
        }
    }
}

/// Groups in start order, each with its children in start order.
pub fn layout(config: &Config) -> Vec<(String, Vec<String>)> {
    let mut groups: Vec<(&String, &GroupSpec)> = config.groups.iter().collect();
    groups.sort_by_key(|(name, g)| (g.order, (*name).clone()));
    groups
        .into_iter()
        .map(|(g, _)| {
            let mut kids: Vec<(&String, &ServiceSpec)> = config
                .services
                .iter()
                .filter(|(_, s)| &s.group == g)
                .collect();
            kids.sort_by_key(|(name, s)| (s.order, (*name).clone()));
            (
                g.clone(),
                kids.into_iter().map(|(n, _)| n.clone()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_orders_groups_then_children() {
        let c = Config::parse_layers(
            Some("[services.b]\norder = 1\n[services.a]\norder = 1\n[services.z]\norder = 0\n[services.x]\ngroup = \"adapters\"\n"),
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let l = layout(&c);
        // The shipped vault (10), memory (20) and llm-router (30) are in the
        // core group too.
        assert_eq!(
            l[0],
            (
                "core".to_string(),
                vec![
                    "z".to_string(),
                    "a".into(),
                    "b".into(),
                    "vault".into(),
                    "memory".into(),
                    "llm-router".into()
                ]
            )
        );
        // The shipped adapters have orders 10..80; x has the default 100.
        assert_eq!(
            l[1],
            (
                "adapters".to_string(),
                [
                    "fs", "shell", "web", "http", "browser", "email", "calendar", "github", "x"
                ]
                .map(String::from)
                .to_vec()
            )
        );
    }
}
