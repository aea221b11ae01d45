//! The supervision tree's logic: starts children in order, watches their
//! readiness and heartbeats, applies the restart policy of `restart.rs`
//! when they die, stops them in reverse order, and reloads the config.
//! [`crate::actor`] drives it as a ractor actor, one message at a time.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use oi_ipc_schema::ConfigChanged;
use oi_ipc_schema::control::{ChildState, ServiceStatus, StatusReport};
use oi_kernel::broker::{Broker, BusEvent};
use oi_kernel::config::{Config, RestartType, Strategy};
use oi_kernel::paths::Paths;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

use crate::environment;
use crate::logs::LogBuffer;
use crate::notify::Notifier;
use crate::process::{self, Launch};
use crate::requirements;
use crate::restart::{Backoff, ExitReason, Intensity, Jitter, affected, should_restart};
use crate::tree::{AfterStop, Child, Group, layout};

mod commands;
mod failures;
mod reload;
mod starting;
mod stopping;

/// Requests from the control plane (`oictl`).
pub enum Command {
    Status(oneshot::Sender<StatusReport>),
    Restart(String, oneshot::Sender<Result<(), String>>),
    Stop(String, oneshot::Sender<Result<(), String>>),
    /// The answer is why it will not run yet, if it will not.
    Start(String, oneshot::Sender<Result<Option<String>, String>>),
    Logs(String, oneshot::Sender<Result<LogBuffer, String>>),
    /// `oictl shutdown`: the orderly stop SIGTERM starts.
    Shutdown(oneshot::Sender<()>),
}

/// Why the loop ended; becomes the exit status of openintentd.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// SIGTERM/SIGINT: everything stopped in order.
    Stopped,
    /// Restart intensity exceeded at the top level.
    Escalated(String),
}

struct StopSequence {
    /// Children still to stop; the last one is stopped first.
    remaining: Vec<String>,
    /// The child being stopped now; the next waits until it has exited.
    current: Option<String>,
    then: Then,
}

enum Then {
    Exit(Outcome),
    RestartGroup(String),
}

/// Everything the supervisor needs from the daemon.
pub struct Setup {
    pub exe: PathBuf,
    pub paths: Paths,
    pub config: Config,
    pub broker: Broker,
    /// The vault's passphrase, taken out of openintentd's environment.
    pub passphrase: Option<zeroize::Zeroizing<String>>,
}

pub struct Supervisor {
    exe: PathBuf,
    paths: Paths,
    config: Config,
    generation: u64,
    config_error: Option<String>,
    config_stamp: Option<FileStamp>,
    broker: Broker,
    groups: Vec<Group>,
    children: BTreeMap<String, Child>,
    root: Intensity,
    backoff: Backoff,
    jitter: Jitter,
    /// Processes started since the last turn, to be handed to child actors.
    pub(crate) to_link: Vec<(String, u32, tokio::process::Child)>,
    /// Processes that could not be started, to be handled as failures.
    pub(crate) spawn_failures: Vec<(String, String)>,
    sequences: VecDeque<StopSequence>,
    shutting_down: bool,
    started: Instant,
    notifier: Notifier,
    home_env: Vec<(String, String)>,
    /// openintentd's own environment, from which each service gets only
    /// what is bound for it ([`crate::environment`]).
    outside_env: BTreeMap<String, String>,
    passphrase: Option<zeroize::Zeroizing<String>>,
    /// The vault's secret names, as last looked up (for `requires`).
    secret_names: Option<std::collections::BTreeSet<String>>,
    /// What [`Supervisor::publish_wanted`] last told the broker.
    published_wanted: Option<std::collections::HashSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<std::time::SystemTime>,
    len: u64,
    ino: u64,
}

fn stamp(path: &std::path::Path) -> Option<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino: m.ino(),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Supervisor {
    pub fn new(s: Setup) -> Self {
        let home_env = vec![
            (
                "OPENINTENT_CONFIG".to_string(),
                s.paths.effective_config().display().to_string(),
            ),
            (
                "OPENINTENT_DATA_DIR".to_string(),
                s.paths.data_dir.display().to_string(),
            ),
            (
                "OPENINTENT_RUNTIME_DIR".to_string(),
                s.paths.runtime_dir.display().to_string(),
            ),
        ];
        let mut sup = Supervisor {
            exe: s.exe,
            config_stamp: stamp(&s.paths.config_file),
            paths: s.paths,
            root: Intensity::new(
                s.config.supervisor.intensity,
                Duration::from_secs(s.config.supervisor.period_secs),
            ),
            backoff: Backoff::from_config(&s.config.supervisor),
            config: s.config,
            generation: 1,
            config_error: None,
            broker: s.broker,
            groups: Vec::new(),
            children: BTreeMap::new(),
            jitter: Jitter::seeded(),
            to_link: Vec::new(),
            spawn_failures: Vec::new(),
            sequences: VecDeque::new(),
            shutting_down: false,
            started: Instant::now(),
            secret_names: None,
            notifier: Notifier::from_env(),
            home_env,
            outside_env: std::env::vars().collect(),
            passphrase: s.passphrase,
            published_wanted: None,
        };
        sup.apply_layout();
        sup.publish_config();
        sup
    }

    /// Builds groups and children from the current config, keeping the
    /// runtime state of children that already exist.
    fn apply_layout(&mut self) {
        let layout = layout(&self.config);
        let mut groups = Vec::new();
        for (gname, kids) in layout {
            let spec = self.config.groups[&gname].clone();
            let mut group = match self.groups.iter().position(|g| g.name == gname) {
                Some(i) => {
                    let mut g = self.groups.remove(i);
                    g.intensity.max = spec.intensity;
                    g.intensity.period = Duration::from_secs(spec.period_secs);
                    g.spec = spec.clone();
                    g
                }
                None => Group::new(&gname, spec.clone()),
            };
            for k in &kids {
                let sspec = self.config.services[k].clone();
                match self.children.get_mut(k) {
                    Some(c) => {
                        c.removed = false;
                        c.window.max = spec.intensity;
                        c.window.period = Duration::from_secs(spec.period_secs);
                        if !sspec.enabled {
                            c.wanted = false;
                        } else if !c.spec.enabled {
                            c.wanted = true;
                        }
                        c.spec = sspec;
                    }
                    None => {
                        let c = Child::new(k, sspec, &spec, self.config.supervisor.log_lines);
                        self.children.insert(k.clone(), c);
                    }
                }
            }
            group.children = kids;
            groups.push(group);
        }
        // Children no longer in the config are stopped and then dropped.
        for (name, c) in self.children.iter_mut() {
            if !self.config.services.contains_key(name) {
                c.removed = true;
                c.wanted = false;
            }
        }
        self.groups = groups;
    }

    fn group_of(&self, child: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.children.iter().any(|c| c == child))
    }

    /// Called once when the supervisor actor starts.
    pub(crate) fn started(&mut self) {
        self.notifier.status(&self.summary());
        info!(services = self.children.len(), "supervisor started");
    }

    pub(crate) fn tick_interval(&self) -> Duration {
        Duration::from_millis(50)
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.config.supervisor.config_poll_ms.max(50))
    }

    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.notifier.watchdog_interval()
    }

    pub(crate) fn watchdog_ping(&self) {
        self.notifier.watchdog();
    }

    pub(crate) fn stopping(&mut self) {
        self.notifier.stopping();
    }

    /// A process could not be started (or waited for): a failure with
    /// status 127, like a shell's "command not found".
    pub(crate) fn on_spawn_failed(&mut self, name: &str, error: &str) {
        error!(service = %name, %error, "cannot start service process");
        if let Some(c) = self.children.get_mut(name) {
            if let Some(pid) = c.pid.take() {
                let _ = process::signal_group(pid, Signal::SIGKILL);
            }
            c.last_exit = Some(format!("spawn failed: {error}"));
            c.set_state(ChildState::Exited);
        }
        self.on_failure(name, ExitReason::Code(127), false, Duration::ZERO);
    }

    pub(crate) fn on_bus_event(&mut self, ev: BusEvent) {
        if let BusEvent::Ready { name, pid } = ev
            && let Some(c) = self.children.get_mut(&name)
            && c.pid == Some(pid)
            && c.state == ChildState::Starting
        {
            let now = Instant::now();
            c.set_state(ChildState::Ready);
            c.ready_at = Some(now);
            info!(service = %name, pid, startup_ms = c.started_at.map(|t| millis(now - t)).unwrap_or(0), "service ready");
        }
    }

    pub(crate) fn on_tick(&mut self) {
        let now = Instant::now();
        let beat = self.config.heartbeat_interval();
        let hung_after = beat * self.config.supervisor.missed_heartbeats;
        let mut to_kill = Vec::new();
        for c in self.children.values_mut() {
            match (c.state, c.pid) {
                (ChildState::Starting, Some(_)) => {
                    let limit = Duration::from_secs(
                        c.spec
                            .start_timeout_secs
                            .unwrap_or(self.config.supervisor.start_timeout_secs),
                    );
                    if c.started_at
                        .is_some_and(|t| now.saturating_duration_since(t) >= limit)
                    {
                        to_kill.push((c.name.clone(), ExitReason::ReadyTimeout));
                    }
                }
                (ChildState::Ready, Some(_)) => {
                    // A service whose connection just closed is usually
                    // exiting: its exit, reaped a moment later, is the
                    // cause to report, not a watchdog kill. One that stays
                    // off the bus as long as a hang is killed as hung.
                    let hung = match self.broker.heartbeat_age(&c.name) {
                        Some(age) => {
                            c.off_bus_since = None;
                            age > hung_after
                        }
                        None => {
                            let since = *c.off_bus_since.get_or_insert(now);
                            now.saturating_duration_since(since) > hung_after
                        }
                    };
                    if hung {
                        to_kill.push((c.name.clone(), ExitReason::Watchdog));
                    }
                }
                (ChildState::Stopping, Some(pid)) if c.stop_deadline.is_some_and(|d| d <= now) => {
                    warn!(service = %c.name, pid, "did not stop in time; sending SIGKILL");
                    let _ = process::signal_group(pid, Signal::SIGKILL);
                    c.stop_deadline = Some(now + Duration::from_secs(5));
                }
                _ => {}
            }
        }
        for (name, reason) in to_kill {
            self.kill_failed(&name, reason);
        }
    }

    /// Moves the tree forward: runs stop sequences, starts what may start,
    /// and reports readiness. Returns the outcome when the loop must end.
    pub(crate) fn advance(&mut self) -> Option<Outcome> {
        while let Some(seq) = self.sequences.front_mut() {
            if let Some(cur) = &seq.current {
                if self.children.get(cur).is_some_and(Child::is_running) {
                    break;
                }
                seq.current = None;
            }
            // The last still-running child of the sequence is next.
            let mut next = None;
            while let Some(n) = seq.remaining.pop() {
                match self.children.get_mut(&n) {
                    Some(c) if c.is_running() => {
                        next = Some(n);
                        break;
                    }
                    Some(c) if c.state == ChildState::Backoff => {
                        c.set_state(ChildState::Exited);
                    }
                    _ => {}
                }
            }
            if let Some(n) = next {
                seq.current = Some(n.clone());
                self.stop_child(&n, AfterStop::Idle);
                break;
            }
            let Some(done) = self.sequences.pop_front() else {
                break;
            };
            match done.then {
                Then::Exit(outcome) => return Some(outcome),
                Then::RestartGroup(g) => {
                    if let Some(group) = self.groups.iter_mut().find(|x| x.name == g) {
                        info!(group = %g, "restarting group after escalation");
                        group.held = false;
                        group.intensity.reset();
                        group.booted = false;
                        for k in group.children.clone() {
                            if let Some(c) = self.children.get_mut(&k) {
                                c.wanted =
                                    c.spec.enabled && !c.removed && c.state != ChildState::Fatal;
                                c.attempt = 0;
                                if c.state != ChildState::Fatal {
                                    c.set_state(ChildState::Exited);
                                }
                            }
                        }
                    }
                }
            }
        }
        if !self.shutting_down {
            self.start_what_may_start();
        }
        self.report_readiness();
        None
    }

    /// The pids of the service processes the tree tracks.
    pub(crate) fn service_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.children.values().filter_map(|c| c.pid)
    }

    pub(crate) fn bus_socket(&self) -> std::path::PathBuf {
        self.broker.socket_path().to_path_buf()
    }

    fn all_permanent_ready(&self) -> bool {
        self.children.values().all(|c| {
            !c.wanted
                || c.spec.restart != RestartType::Permanent
                || matches!(c.state, ChildState::Ready | ChildState::Waiting)
        })
    }

    fn report_readiness(&mut self) {
        if !self.shutting_down && self.all_permanent_ready() {
            self.notifier.ready();
        }
        let summary = self.summary();
        self.notifier.status(&summary);
    }

    fn summary(&self) -> String {
        let total = self
            .children
            .values()
            .filter(|c| {
                (c.wanted && c.state != ChildState::Waiting) || c.state == ChildState::Fatal
            })
            .count();
        let ready = self
            .children
            .values()
            .filter(|c| c.state == ChildState::Ready)
            .count();
        let mut s = format!("{ready}/{total} services ready");
        let troubled: Vec<String> = self
            .children
            .values()
            .filter(|c| matches!(c.state, ChildState::Backoff | ChildState::Fatal))
            .map(|c| format!("{} {}", c.name, c.state.as_str()))
            .collect();
        if !troubled.is_empty() {
            s.push_str("; ");
            s.push_str(&troubled.join(", "));
        }
        if self.config_error.is_some() {
            s.push_str("; config reload failed");
        }
        s
    }
}

/// A wanted permanent child that is not ready (and not given up on) holds
/// back what starts after it.
fn holds_back(c: &Child) -> bool {
    c.wanted
        && c.spec.restart == RestartType::Permanent
        && !matches!(
            c.state,
            ChildState::Ready | ChildState::Fatal | ChildState::Waiting
        )
}
