//! The shell adapter (`openintentd service shell`): `shell_execute`.
//!
//! A command is parsed (`parse`), judged by the policy (`policy`, with the
//! launchers' and programs' options read as GNU getopt reads them:
//! `getopt`, `options`), and run (`exec`) in its own process group with a
//! timeout, a scrubbed environment, a working directory inside the allowed
//! roots, a mount namespace without the bus socket, and Landlock.
//!
//! The policy is a convenience, not the boundary: a command that slips
//! past it still runs sandboxed, and is refused by the broker should it
//! reach the bus (`oi_kernel::lineage`).

pub mod approvals;
pub mod config;
pub mod exec;
pub mod getopt;
pub mod options;
pub mod parse;
pub mod policy;

pub use config::{LandlockMode, ShellConfig};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oi_ipc_schema::ToolSpec;
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply, spec};
use oi_sandbox::landlock::Coverage;
use oi_sandbox::namespace::Via;
use oi_sandbox::roots::Roots;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::policy::Policy;

pub const TOOL: &str = "shell_execute";

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![spec(
        TOOL,
        "Run a command (a program and its arguments) in the workspace and return its exit code, stdout and stderr. Only programs the policy allows run; pipes, ; and $(...) are refused unless shell syntax is enabled. A command that needs the user's approval is refused with an approval id: ask the user to approve it, then call again with the same command.",
        json!({"type": "object", "required": ["command"], "properties": {
            "command": {"type": "string", "description": "The command line, e.g. `ls -la docs`."},
            "cwd": {"type": "string", "description": "Working directory inside the workspace (default: the workspace)."},
            "timeout_secs": {"type": "integer", "minimum": 1, "description": "Time limit (default from config)."}}}),
    )]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    command: String,
    cwd: Option<String>,
    timeout_secs: Option<u64>,
    /// No longer an approval: refused with how approvals work.
    approve: Option<Value>,
}

/// Where commands run and what they may touch.
struct Setup {
    cfg: ShellConfig,
    policy: Policy,
    roots: Arc<Roots>,
    tmp: PathBuf,
    /// What Landlock confines, or why it is not applied.
    landlock: Result<Coverage, String>,
    /// The directories hidden from commands (the runtime directory with
    /// the bus socket) and how, or why they are not.
    namespace: Result<(Via, Vec<PathBuf>), String>,
    /// Whether commands run as the first process of a PID namespace.
    pid_namespace: Result<(), String>,
    /// This executable (the PID-namespace shim), readable by commands.
    exe: Option<PathBuf>,
    /// `read_only_paths`, without what only root may read when the
    /// adapter runs as root.
    read_only: Vec<PathBuf>,
}

/// The directories holding openintentd's sockets, from the environment
/// the supervisor gives every service.
fn runtime_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("OPENINTENT_RUNTIME_DIR") {
        dirs.push(d.into());
    }
    if let Some(parent) = std::env::var_os(oi_kernel::ENV_BUS_SOCKET)
        .map(PathBuf::from)
        .and_then(|s| s.parent().map(PathBuf::from))
    {
        dirs.push(parent);
    }
    let mut dirs: Vec<PathBuf> = dirs
        .into_iter()
        .filter_map(|d| std::fs::canonicalize(d).ok())
        .filter(|d| d.is_dir() && d != std::path::Path::new("/"))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Whether the PID-namespace shim works here: as root directly, otherwise
/// inside the user namespace the mount namespace comes with.
fn pid_namespace_for(ns: &Result<(Via, Vec<PathBuf>), String>) -> Result<(), String> {
    let via = match ns {
        Ok((via, _)) => *via,
        Err(_) => oi_sandbox::namespace::probe().unwrap_or(Via::MountNs),
    };
    #[cfg(target_os = "linux")]
    {
        let mut p = oi_sandbox::namespace::Prepared::new(&[], via).map_err(|e| e.to_string())?;
        oi_sandbox::pidns::probe(move || p.apply())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = via;
        Err("PID namespaces exist only on Linux".into())
    }
}

fn namespace_for(hide: Vec<PathBuf>) -> Result<(Via, Vec<PathBuf>), String> {
    if hide.is_empty() {
        return Err("no runtime directory to hide".into());
    }
    oi_sandbox::namespace::probe().map(|via| (via, hide))
}

impl Setup {
    /// What applies to a command, for its result's `sandbox` field.
    fn describe(&self) -> String {
        let landlock = match &self.landlock {
            Ok(c) => c.to_string(),
            Err(why) => format!("no landlock: {why}"),
        };
        let ns = match &self.namespace {
            Ok((via, dirs)) => format!(
                "mount namespace ({}): {} hidden",
                match via {
                    Via::MountNs => "mount",
                    Via::UserNs => "user and mount",
                },
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(why) => format!("no mount namespace: {why}"),
        };
        let pid = match &self.pid_namespace {
            Ok(()) => "pid namespace: nothing it starts outlives it".to_string(),
            Err(why) => why.clone(),
        };
        format!("{landlock}; {ns}; {pid}")
    }
}

pub struct ShellAdapter {
    data: PathBuf,
    roots_cfg: Vec<String>,
    setup: Live<Setup>,
    approvals: approvals::Approvals,
    /// For the audit rows of approvals (none in unit tests).
    bus: Option<BusClient>,
}

fn build(
    data: &std::path::Path,
    roots_cfg: &[String],
    cfg: ShellConfig,
) -> Result<Setup, ServiceError> {
    let ws = data.join("workspace");
    let tmp = data.join("shell-tmp");
    for d in [&ws, &tmp] {
        std::fs::create_dir_all(d).map_err(|e| {
            ServiceError::config_error(format!("cannot create {}: {e}", d.display()))
        })?;
    }
    let paths: Vec<PathBuf> = std::iter::once(ws)
        .chain(roots_cfg.iter().map(PathBuf::from))
        .collect();
    let roots =
        Roots::open(&paths).map_err(|e| ServiceError::config_error(format!("[fs] roots: {e}")))?;
    let landlock = match cfg.landlock {
        LandlockMode::Off => Err("off in config ([shell] landlock = \"off\")".to_string()),
        LandlockMode::Auto | LandlockMode::Required => {
            oi_sandbox::landlock::kernel_abi().map(|abi| Coverage { abi })
        }
    };
    if let (LandlockMode::Required, Err(why)) = (cfg.landlock, &landlock) {
        return Err(ServiceError::config_error(format!(
            "[shell] landlock = \"required\", but {why}"
        )));
    }
    let policy = Policy {
        mode: cfg.policy,
        allow: cfg.allow.clone(),
        deny: cfg.deny.clone(),
        allow_shell_syntax: cfg.allow_shell_syntax,
        path: std::env::split_paths(&cfg.path).collect(),
    };
    let configured: Vec<PathBuf> = cfg.read_only_paths.iter().map(PathBuf::from).collect();
    let read_only = if nix::unistd::geteuid().is_root() {
        let (paths, unchecked) = oi_sandbox::landlock::readable_by_others(&configured);
        for u in unchecked {
            warn!("[shell] read_only_paths: {u}");
        }
        paths
    } else {
        configured
    };
    let namespace = namespace_for(runtime_dirs());
    let pid_namespace = pid_namespace_for(&namespace);
    Ok(Setup {
        cfg,
        policy,
        roots: Arc::new(roots),
        tmp,
        landlock,
        namespace,
        pid_namespace,
        exe: std::env::current_exe().ok(),
        read_only,
    })
}

impl ShellAdapter {
    pub fn new(
        data: PathBuf,
        roots_cfg: Vec<String>,
        cfg: ShellConfig,
    ) -> Result<ShellAdapter, ServiceError> {
        let setup = build(&data, &roots_cfg, cfg)?;
        let sandbox = setup.describe();
        match (&setup.landlock, &setup.namespace) {
            (Ok(_), Ok(_)) => info!(sandbox, "commands are sandboxed"),
            _ => warn!(sandbox, "commands are not fully sandboxed"),
        }
        Ok(ShellAdapter {
            data,
            roots_cfg,
            setup: Live::new(setup),
            approvals: approvals::Approvals::default(),
            bus: None,
        })
    }

    /// Records approvals in the audit log through `bus`.
    pub fn with_bus(mut self, bus: BusClient) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Appends an approval step to the audit log.
    async fn audit(&self, intent: &str, arguments: String, outcome: String) {
        let Some(bus) = &self.bus else {
            return;
        };
        let record = oi_ipc_schema::control::audit::AuditRecord {
            intent: intent.to_string(),
            action: "approval:shell_execute".into(),
            arguments,
            outcome,
            duration_ms: 0,
        };
        // One-way: the broker appends it before it routes anything this
        // adapter sends after it (the reply to the approval).
        if let Err(e) = bus.audit(&record) {
            warn!(error = %e, "cannot record an approval in the audit log");
        }
    }

    fn setup(&self) -> Arc<Setup> {
        self.setup.get()
    }

    /// Runs `shell_execute` for `intent`. A command that needs approval
    /// runs only on a grant the user gave for exactly it ([`approvals`]).
    pub async fn execute(
        &self,
        intent: &str,
        payload: &[u8],
    ) -> Result<serde_json::Value, ServiceError> {
        let a: Args = tool::parse_args(TOOL, payload)?;
        if a.approve.is_some() {
            return Err(ServiceError::bad_request(format!(
                "{TOOL}: \"approve\" is not an argument: a command that needs approval is refused with an id, the user approves it with `oictl approve <id>`, and the call is made again"
            )));
        }
        let s = self.setup();
        let cwd_loc = s
            .roots
            .locate(a.cwd.as_deref().unwrap_or("."))
            .map_err(|e| tool::denied(format!("{TOOL}: cwd: {e}")))?;
        let cwd_shown = cwd_loc.display();
        let cwd = cwd_loc
            .open_dir()
            .map_err(|e| tool::denied(format!("{TOOL}: cwd: {e}")))?;
        // Relative program paths are judged from the directory the command
        // runs in (the one opened above), not from the adapter's.
        let cwd_path = PathBuf::from(format!("/proc/self/fd/{}", cwd.as_raw_fd()));
        let subject = approvals::Subject {
            command: a.command.clone(),
            cwd: cwd_shown.clone(),
            intent: intent.to_string(),
        };
        let mut approved_by = None;
        let (plan, verdict) = match s.policy.judge(&a.command, false, &cwd_path) {
            Ok(judged) => judged,
            Err(policy::Refusal::NeedsApproval(program)) => {
                match self.approvals.take_grant(&subject) {
                    Some(grant) => {
                        let judged = s
                            .policy
                            .judge(&a.command, true, &cwd_path)
                            .map_err(|r| tool::denied(format!("{TOOL}: {r}")))?;
                        approved_by = Some(grant);
                        judged
                    }
                    None => {
                        let id = self
                            .approvals
                            .request(subject.clone(), vec![program.clone()])?;
                        self.audit(
                            intent,
                            json!(subject).to_string(),
                            format!("pending: approval {id} asked for '{program}'"),
                        )
                        .await;
                        return Err(tool::denied(format!(
                            "{TOOL}: '{program}' needs the user's approval ([shell] policy = \"approval\"); approval {id} is waiting: ask the user to run `oictl approve {id}`, which shows them this exact command, then call {TOOL} again with the same command"
                        )));
                    }
                }
            }
            Err(r) => return Err(tool::denied(format!("{TOOL}: {r}"))),
        };
        let timeout = Duration::from_secs(
            a.timeout_secs
                .unwrap_or(s.cfg.timeout_secs)
                .clamp(1, s.cfg.max_timeout_secs),
        );
        let ws = s.roots.home().path.display().to_string();
        let mut env = vec![
            ("PATH".to_string(), s.cfg.path.clone()),
            ("HOME".to_string(), ws),
            ("LANG".to_string(), "C.UTF-8".to_string()),
            ("TERM".to_string(), "dumb".to_string()),
            ("TMPDIR".to_string(), s.tmp.display().to_string()),
        ];
        for name in &s.cfg.env_passthrough {
            if exec::looks_secret(name) {
                continue;
            }
            if let Ok(v) = std::env::var(name) {
                env.push((name.clone(), v));
            }
        }
        #[cfg(target_os = "linux")]
        let landlock = match &s.landlock {
            Ok(_) => {
                let mut rw: Vec<PathBuf> = s.roots.iter().map(|r| r.path.clone()).collect();
                rw.push(s.tmp.clone());
                rw.push("/dev/null".into());
                let mut ro = s.read_only.clone();
                // The shim is this executable: it must be runnable.
                ro.extend(s.exe.clone().filter(|_| s.pid_namespace.is_ok()));
                let rules = oi_sandbox::landlock::Rules {
                    read_write: rw,
                    read_only: ro,
                    connect_tcp: s.cfg.allow_connect_ports.clone(),
                    bind_tcp: s.cfg.allow_bind_ports.clone(),
                };
                Some(
                    rules
                        .prepare()
                        .map_err(|e| ServiceError::internal(format!("{TOOL}: {e}")))?,
                )
            }
            Err(_) => None,
        };
        #[cfg(target_os = "linux")]
        let namespace = match &s.namespace {
            Ok((via, dirs)) => Some(
                oi_sandbox::namespace::Prepared::new(dirs, *via)
                    .map_err(|e| ServiceError::internal(format!("{TOOL}: {e}")))?,
            ),
            Err(_) => None,
        };
        let spec = exec::Spec {
            plan,
            cwd,
            env,
            timeout,
            max_output: s.cfg.max_output_bytes as usize,
            #[cfg(target_os = "linux")]
            landlock,
            #[cfg(target_os = "linux")]
            namespace,
            pid_namespace: s.pid_namespace.is_ok(),
        };
        let outcome = exec::run(spec).await.map_err(|e| {
            ServiceError::internal(format!("{TOOL}: cannot start '{}': {e}", a.command))
        })?;
        let mut v =
            serde_json::to_value(&outcome).map_err(|e| ServiceError::internal(e.to_string()))?;
        if let Some((id, who)) = &approved_by {
            info!(programs = ?verdict.approved, approval = %id, by = %who, "ran with the user's approval");
            self.audit(
                intent,
                json!(subject).to_string(),
                format!("ran: approval {id} given by {who}"),
            )
            .await;
            v["approval"] = json!({"id": id, "approved_by": who});
        }
        v["command"] = json!(a.command);
        v["cwd"] = json!(cwd_shown);
        v["sandbox"] = json!(s.describe());
        if outcome.timed_out {
            v["note"] = json!(format!(
                "timed out after {} s; the command and everything it started were killed",
                timeout.as_secs()
            ));
        }
        Ok(v)
    }
}

impl Service for ShellAdapter {
    fn tools(&self) -> Vec<ToolSpec> {
        tool_specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        match req.method() {
            TOOL => json_reply(self.execute(req.intent(), req.payload()).await?),
            m if m.starts_with("shell.approval") => {
                let v = self.approvals.handle(req.caller(), m, req.payload())?;
                if m == approvals::methods::GRANT {
                    let asked: serde_json::Value =
                        serde_json::from_slice(req.payload()).unwrap_or_default();
                    let a = &v["approval"];
                    self.audit(
                        a["intent"].as_str().unwrap_or(""),
                        json!({"command": a["command"], "cwd": a["cwd"]}).to_string(),
                        format!(
                            "granted: approval {} by {} (a one-time code typed at a terminal)",
                            a["id"].as_str().unwrap_or(""),
                            asked["who"].as_str().unwrap_or("the user")
                        ),
                    )
                    .await;
                }
                json_reply(v)
            }
            other => Err(ServiceError::bad_request(format!(
                "the shell adapter has no tool '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some((shell, roots)) = harness::config_update(generation, config_toml, sections) else {
            return;
        };
        if shell == self.setup().cfg && roots == self.roots_cfg {
            return;
        }
        self.setup
            .rebuild("shell", || build(&self.data, &roots, shell));
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "shell",
    run,
    sections: config::SECTIONS,
    env: config::passthrough,
};

/// `openintentd service shell`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let (shell, roots) = sections(&harness::service_config()?)?;
        let data = harness::data_dir(name)?;
        Ok(ShellAdapter::new(data, roots, shell)?.with_bus(client))
    })
}

/// What the adapter reads: `[shell]`, and the roots of `[fs]`.
fn sections(c: &Config) -> Result<(ShellConfig, Vec<String>), oi_kernel::config::ConfigError> {
    Ok((c.section()?, c.section::<oi_adapter_fs::FsConfig>()?.roots))
}

#[cfg(test)]
mod tests;
