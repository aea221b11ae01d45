//! The shell adapter (`openintentd service shell`): `shell_execute`.
//!
//! A command is parsed (`parse`), judged by the policy (`policy`), and run
//! (`exec`) in its own process group with a timeout, a scrubbed
//! environment, a working directory inside the allowed roots and, on Linux
//! kernels that have it, Landlock.

pub mod exec;
pub mod parse;
pub mod policy;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oi_ipc_schema::ToolSpec;
use oi_kernel::client::IncomingRequest;
use oi_kernel::config::ShellConfig;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply, spec};
use oi_sandbox::roots::Roots;
use serde::Deserialize;
use serde_json::json;
use tracing::{info, warn};

use crate::policy::{Mode, Policy};

pub const TOOL: &str = "shell_execute";

pub fn tool_specs() -> Vec<ToolSpec> {
    vec![spec(
        TOOL,
        "Run a command (a program and its arguments) in the workspace and return its exit code, stdout and stderr. Only programs the policy allows run; pipes, ; and $(...) are refused unless shell syntax is enabled.",
        json!({"type": "object", "required": ["command"], "properties": {
            "command": {"type": "string", "description": "The command line, e.g. `ls -la docs`."},
            "cwd": {"type": "string", "description": "Working directory inside the workspace (default: the workspace)."},
            "timeout_secs": {"type": "integer", "minimum": 1, "description": "Time limit (default from config)."},
            "approve": {"type": "boolean", "description": "Only honoured when the user calls the tool directly."}}}),
    )]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    command: String,
    cwd: Option<String>,
    timeout_secs: Option<u64>,
    #[serde(default)]
    approve: bool,
}

/// Where commands run and what they may touch.
struct Setup {
    cfg: ShellConfig,
    policy: Policy,
    roots: Arc<Roots>,
    tmp: PathBuf,
    /// `Ok(abi)` when Landlock will be applied, `Err(why)` when not.
    landlock: Result<i32, String>,
}

pub struct ShellAdapter {
    data: PathBuf,
    roots_cfg: Vec<String>,
    setup: Live<Setup>,
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
    let landlock = match cfg.landlock.as_str() {
        "off" => Err("off in config ([shell] landlock = \"off\")".to_string()),
        _ => oi_sandbox::landlock::kernel_abi(),
    };
    if let (true, Err(why)) = (cfg.landlock == "required", &landlock) {
        return Err(ServiceError::config_error(format!(
            "[shell] landlock = \"required\", but {why}"
        )));
    }
    let policy = Policy {
        mode: Mode::parse(&cfg.policy),
        allow: cfg.allow.clone(),
        deny: cfg.deny.clone(),
        allow_shell_syntax: cfg.allow_shell_syntax,
        path: std::env::split_paths(&cfg.path).collect(),
    };
    Ok(Setup {
        cfg,
        policy,
        roots: Arc::new(roots),
        tmp,
        landlock,
    })
}

impl ShellAdapter {
    pub fn new(
        data: PathBuf,
        roots_cfg: Vec<String>,
        cfg: ShellConfig,
    ) -> Result<ShellAdapter, ServiceError> {
        let setup = build(&data, &roots_cfg, cfg)?;
        match &setup.landlock {
            Ok(abi) => info!(abi, "commands run under Landlock"),
            Err(why) => warn!("commands run without Landlock: {why}"),
        }
        Ok(ShellAdapter {
            data,
            roots_cfg,
            setup: Live::new(setup),
        })
    }

    fn setup(&self) -> Arc<Setup> {
        self.setup.get()
    }

    /// Runs `shell_execute`. `caller` is the bus identity of the caller
    /// (empty for the user's own client), which alone may approve.
    pub async fn execute(
        &self,
        caller: &str,
        payload: &[u8],
    ) -> Result<serde_json::Value, ServiceError> {
        let a: Args = tool::parse_args(TOOL, payload)?;
        let s = self.setup();
        let approve = a.approve && caller.is_empty();
        let (plan, verdict) = s
            .policy
            .judge(&a.command, approve)
            .map_err(|r| tool::denied(format!("{TOOL}: {r}")))?;
        let cwd_loc = s
            .roots
            .locate(a.cwd.as_deref().unwrap_or("."))
            .map_err(|e| tool::denied(format!("{TOOL}: cwd: {e}")))?;
        let cwd_shown = cwd_loc.display();
        let cwd = cwd_loc
            .open_dir()
            .map_err(|e| tool::denied(format!("{TOOL}: cwd: {e}")))?;
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
                let rules = oi_sandbox::landlock::Rules {
                    read_write: rw,
                    read_only: s.cfg.read_only_paths.iter().map(PathBuf::from).collect(),
                };
                Some(
                    rules
                        .prepare()
                        .map_err(|e| ServiceError::internal(format!("{TOOL}: {e}")))?,
                )
            }
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
        };
        let outcome = exec::run(spec).await.map_err(|e| {
            ServiceError::internal(format!("{TOOL}: cannot start '{}': {e}", a.command))
        })?;
        if !verdict.approved.is_empty() {
            info!(programs = ?verdict.approved, "ran with the user's approval");
        }
        let mut v =
            serde_json::to_value(&outcome).map_err(|e| ServiceError::internal(e.to_string()))?;
        v["command"] = json!(a.command);
        v["cwd"] = json!(cwd_shown);
        v["sandbox"] = json!(match &s.landlock {
            Ok(abi) => format!("landlock (ABI {abi})"),
            Err(why) => format!("none: {why}"),
        });
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
            TOOL => json_reply(self.execute(req.caller(), req.payload()).await?),
            other => Err(ServiceError::bad_request(format!(
                "the shell adapter has no tool '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(c) = harness::config_update(generation, config_toml) else {
            return;
        };
        if c.shell == self.setup().cfg && c.fs.roots == self.roots_cfg {
            return;
        }
        self.setup
            .rebuild("shell", || build(&self.data, &c.fs.roots, c.shell));
    }
}

/// `openintentd service shell`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |_client| async move {
        let config = harness::service_config()?;
        let data = harness::data_dir(name)?;
        ShellAdapter::new(data, config.fs.roots, config.shell)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_ipc_schema::ErrorCode;
    use std::time::Instant;

    fn config(f: impl FnOnce(&mut ShellConfig)) -> ShellConfig {
        let mut c = oi_kernel::config::Config::defaults().shell;
        f(&mut c);
        c
    }

    fn adapter(c: ShellConfig) -> (tempfile::TempDir, ShellAdapter) {
        let dir = tempfile::tempdir().unwrap();
        let a = ShellAdapter::new(dir.path().to_path_buf(), Vec::new(), c).unwrap();
        (dir, a)
    }

    async fn exec(
        a: &ShellAdapter,
        caller: &str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, ServiceError> {
        a.execute(caller, args.to_string().as_bytes()).await
    }

    fn gone(pid: i32) -> bool {
        // Gone, or a zombie waiting for init to reap it.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.split(") ").nth(1).is_some_and(|r| r.starts_with('Z')))
                .unwrap_or(true)
    }

    async fn wait_gone(pid: i32) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn runs_a_command_and_reports_the_sandbox() {
        let (dir, a) = adapter(config(|_| {}));
        let v = exec(&a, "agent", json!({"command": "echo 'hello world'"}))
            .await
            .unwrap();
        assert_eq!(v["stdout"], "hello world\n");
        assert_eq!(v["exit_code"], 0);
        let ws = dir.path().join("workspace").canonicalize().unwrap();
        assert_eq!(v["cwd"], ws.display().to_string());
        let sandbox = v["sandbox"].as_str().unwrap();
        match oi_sandbox::landlock::kernel_abi() {
            Ok(abi) => assert_eq!(sandbox, format!("landlock (ABI {abi})")),
            Err(why) => assert_eq!(sandbox, format!("none: {why}")),
        }
        let v = exec(&a, "agent", json!({"command": "ls /nonexistent-dir"}))
            .await
            .unwrap();
        assert_eq!(v["exit_code"], 2);
        assert!(
            v["stderr"].as_str().unwrap().contains("No such file"),
            "{v}"
        );
    }

    #[tokio::test]
    async fn landlock_keeps_commands_inside_the_roots() {
        if let Err(why) = oi_sandbox::landlock::kernel_abi() {
            // Without Landlock the adapter must say so, which the test
            // above checks; here there is nothing to enforce.
            let (_d, a) = adapter(config(|c| c.landlock = "required".into()));
            let _ = a;
            panic!("this test needs Landlock, which the CI kernel has: {why}");
        }
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s3cret").unwrap();
        let (dir, a) = adapter(config(|_| {}));
        let target = outside.path().join("new.txt");
        let v = exec(
            &a,
            "agent",
            json!({"command": format!("touch {}", target.display())}),
        )
        .await
        .unwrap();
        assert_ne!(v["exit_code"], 0, "{v}");
        assert!(!target.exists());
        let v = exec(
            &a,
            "agent",
            json!({"command": format!("cat {}", outside.path().join("secret.txt").display())}),
        )
        .await
        .unwrap();
        assert_ne!(v["exit_code"], 0, "{v}");
        assert!(!v["stdout"].as_str().unwrap().contains("s3cret"));
        // Inside the workspace both work.
        let v = exec(&a, "agent", json!({"command": "touch made-here.txt"}))
            .await
            .unwrap();
        assert_eq!(v["exit_code"], 0, "{v}");
        assert!(dir.path().join("workspace/made-here.txt").exists());
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let (dir, a) = adapter(config(|c| {
            c.allow_shell_syntax = true;
            c.allow.push("sh".into());
        }));
        let t = Instant::now();
        let v = exec(
            &a,
            "agent",
            json!({"command": "sleep 30 & echo $! > bg.pid; sleep 30", "timeout_secs": 1}),
        )
        .await
        .unwrap();
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert_eq!(v["timed_out"], true, "{v}");
        assert_eq!(v["signal"], 9);
        assert!(v["note"].as_str().unwrap().contains("timed out after 1 s"));
        let pid: i32 = std::fs::read_to_string(dir.path().join("workspace/bg.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            wait_gone(pid).await,
            "background child {pid} survived the timeout"
        );
    }

    #[tokio::test]
    async fn cancelling_the_call_kills_the_command() {
        let (dir, a) = adapter(config(|c| c.allow_shell_syntax = true));
        let a = Arc::new(a);
        let task = {
            let a = a.clone();
            tokio::spawn(async move {
                exec(
                    &a,
                    "agent",
                    json!({"command": "echo $$ > fg.pid; sleep 30"}),
                )
                .await
            })
        };
        let pidfile = dir.path().join("workspace/fg.pid");
        let t = Instant::now();
        while !pidfile.exists() || std::fs::read_to_string(&pidfile).unwrap().trim().is_empty() {
            assert!(!task.is_finished(), "the command ended early");
            assert!(t.elapsed() < Duration::from_secs(5));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(!gone(pid));
        task.abort();
        assert!(wait_gone(pid).await, "command {pid} survived cancellation");
    }

    #[tokio::test]
    async fn environment_is_scrubbed_of_secrets() {
        // SAFETY: this test's own process (nextest runs each test alone).
        unsafe {
            std::env::set_var("OI_TEST_API_KEY", "sk-live-123");
            std::env::set_var("OI_TEST_COLOR", "blue");
        }
        let (_d, a) = adapter(config(|c| {
            c.env_passthrough = vec!["OI_TEST_API_KEY".into(), "OI_TEST_COLOR".into()];
        }));
        let v = exec(&a, "agent", json!({"command": "env"})).await.unwrap();
        let out = v["stdout"].as_str().unwrap();
        assert!(out.contains("OI_TEST_COLOR=blue"), "{out}");
        assert!(out.contains("PATH=/usr/local/bin:/usr/bin:/bin"), "{out}");
        assert!(!out.contains("sk-live-123"), "{out}");
        assert!(!out.contains("OI_TEST_API_KEY"), "{out}");
    }

    #[tokio::test]
    async fn output_is_capped_and_counted() {
        let (_d, a) = adapter(config(|c| c.max_output_bytes = 1000));
        let v = exec(&a, "agent", json!({"command": "seq 1 100000"}))
            .await
            .unwrap();
        let out = v["stdout"].as_str().unwrap();
        assert_eq!(out.len(), 1000);
        assert!(out.starts_with("1\n2\n3\n"));
        // seq 1 100000 prints 588,895 bytes.
        assert_eq!(v["stdout_dropped"], 588_895 - 1000);
    }

    #[tokio::test]
    async fn refusals_are_denied_errors_that_say_why() {
        let (_d, a) = adapter(config(|_| {}));
        for (cmd, why) in [
            ("ls; rm -rf /", "shell syntax is not allowed"),
            ("echo $(cat /etc/passwd)", "command substitution"),
            ("env X=1 rm -rf x", "'rm' is on the deny list"),
            ("/usr/bin/rm x", "'rm' is on the deny list"),
            (
                "python3 -c 'import os'",
                "'python3' is not on the allow list",
            ),
        ] {
            let e = exec(&a, "agent", json!({"command": cmd}))
                .await
                .unwrap_err();
            assert_eq!(e.code, ErrorCode::Denied, "{cmd}");
            assert!(e.message.contains(why), "{cmd}: {}", e.message);
        }
        let e = exec(&a, "agent", json!({"command": "ls", "cwd": "/etc"}))
            .await
            .unwrap_err();
        assert!(
            e.message.contains("outside the allowed roots"),
            "{}",
            e.message
        );
        let e = exec(&a, "agent", json!({"command": "ls", "cwd": "../.."}))
            .await
            .unwrap_err();
        assert!(
            e.message.contains("leads outside the allowed roots"),
            "{}",
            e.message
        );
        let e = exec(&a, "agent", json!({"cmd": "ls"})).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    #[tokio::test]
    async fn only_the_user_can_approve() {
        let (_d, a) = adapter(config(|c| c.policy = "approval".into()));
        let e = exec(&a, "agent", json!({"command": "id -u", "approve": true}))
            .await
            .unwrap_err();
        assert!(
            e.message.contains("needs the user's approval"),
            "{}",
            e.message
        );
        let v = exec(&a, "", json!({"command": "id -u", "approve": true}))
            .await
            .unwrap();
        assert_eq!(v["exit_code"], 0);
    }
}
