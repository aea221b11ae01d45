//! Helpers for end-to-end tests: a real `openintentd` in a private home
//! directory, driven and inspected with the real `oictl`.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use oi_ipc_schema::{DEFAULT_MAX_FRAME_BYTES, Decode, Kind, decode_payload};
use oi_kernel::client::{BusClient, BusError, CallOptions};
use serde_json::Value;

pub const OPENINTENTD: &str = env!("CARGO_BIN_EXE_openintentd");
pub const OICTL: &str = env!("CARGO_BIN_EXE_oictl");

/// Polls `f` every 20 ms until it returns Some, or panics after `limit`.
pub fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// True while a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X") | None)
        }
        Err(_) => false,
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: sending a signal to a pid this test started.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

pub struct Daemon {
    pub home: tempfile::TempDir,
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts openintentd with `config` as its config.toml.
    pub fn start(config: &str) -> Daemon {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_in(new_home(), config, env)
    }

    /// Like [`Daemon::start_with`], in a home prepared beforehand (see
    /// [`new_home`]).
    pub fn start_in(home: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Daemon {
        std::fs::write(home.path().join("config.toml"), config).unwrap();
        let log = home.path().join("openintentd.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(OPENINTENTD);
        cmd.arg("--home")
            .arg(home.path())
            .env("OPENINTENT_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        // A key in the test runner's environment must not reach a provider
        // on the internet: tests give keys only through `env`.
        for (var, _) in oi_supervisor::cli::KNOWN_ENV_SECRETS {
            cmd.env_remove(var);
        }
        cmd.env_remove("TELEGRAM_BOT_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let d = Daemon {
            home,
            child: Some(child),
            log,
        };
        wait_for(Duration::from_secs(10), "the bus socket", || {
            d.home.path().join("run/bus.sock").exists().then_some(())
        });
        d
    }

    /// A plain client (like oictl's) on the daemon's bus.
    pub async fn bus_client(&self) -> BusClient {
        BusClient::connect(
            &self.home.path().join("run/bus.sock"),
            None,
            DEFAULT_MAX_FRAME_BYTES,
        )
        .await
        .unwrap()
        .0
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn oictl(&self, args: &[&str]) -> std::process::Output {
        Command::new(OICTL)
            .arg("--home")
            .arg(self.home.path())
            .arg("--no-autostart")
            .args(args)
            .output()
            .unwrap()
    }

    /// `oictl status --json`.
    pub fn status(&self) -> Value {
        let out = self.oictl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "oictl status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn service(&self, name: &str) -> Value {
        self.try_service(name)
            .unwrap_or_else(|| panic!("no service {name} in {}", self.status()))
    }

    pub fn try_service(&self, name: &str) -> Option<Value> {
        self.status()["services"]
            .as_array()?
            .iter()
            .find(|v| v["name"] == name)
            .cloned()
    }

    pub fn state(&self, name: &str) -> String {
        self.service(name)["state"].as_str().unwrap().to_string()
    }

    /// Waits until `name` is READY and returns its pid.
    pub fn ready_pid(&self, name: &str) -> u32 {
        wait_for(Duration::from_secs(15), &format!("{name} READY"), || {
            let s = self.try_service(name)?;
            (s["state"] == "READY").then(|| s["pid"].as_u64().unwrap() as u32)
        })
    }

    /// Waits until `name` is READY with a pid other than `old`.
    pub fn new_ready_pid(&self, name: &str, old: u32) -> u32 {
        wait_for(
            Duration::from_secs(15),
            &format!("{name} restarted"),
            || {
                let s = self.try_service(name)?;
                let pid = s["pid"].as_u64().map(|p| p as u32);
                (s["state"] == "READY" && pid != Some(old)).then(|| pid.unwrap())
            },
        )
    }

    /// Waits for the daemon to exit and returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let st = wait_for(limit, "openintentd to exit", || child.try_wait().unwrap());
        self.child = None;
        st
    }

    /// Stops the daemon (SIGTERM, reaped) and keeps its home for a new one.
    pub fn stop_keeping_home(mut self) -> tempfile::TempDir {
        if let Some(c) = &self.child {
            signal(c.id(), libc::SIGTERM);
        }
        self.wait_exit(Duration::from_secs(20));
        std::mem::replace(&mut self.home, new_home())
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(10) {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Services of the shipped config that tests turn on only when they need
/// them.
pub const OPTIONAL: &[&str] = &[
    "vault",
    "memory",
    "llm-router",
    "fs",
    "shell",
    "web",
    "http",
    "browser",
    "email",
    "calendar",
    "github",
    "agent",
    "telegram",
    "scheduler",
    "feishu",
];

/// A config with fast supervision timings for tests, plus `extra`.
/// An empty daemon home, to prepare before [`Daemon::start_in`].
pub fn new_home() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("oi-e2e").tempdir().unwrap()
}

pub fn config(extra: &str) -> String {
    config_with("", extra)
}

/// Like [`config`], with more `[supervisor]` keys.
pub fn config_with(supervisor: &str, extra: &str) -> String {
    config_enabling(&[], supervisor, extra)
}

/// Like [`config_with`], with the services named in `on` left enabled.
pub fn config_enabling(on: &[&str], supervisor: &str, extra: &str) -> String {
    let off: String = OPTIONAL
        .iter()
        .filter(|s| !on.contains(s))
        .map(|s| format!("[services.{s}]\nenabled = false\n\n"))
        .collect();
    // Never the shipped OpenAI embeddings (a key in the environment would
    // send test facts to the internet): local only unless a test says.
    let embeddings = if extra.contains("[embeddings]") {
        ""
    } else {
        "[embeddings]\nkind = \"\"\n\n"
    };
    format!(
        "{off}{embeddings}[bus]\nheartbeat_interval_ms = 200\n\n[supervisor]\n{supervisor}backoff_initial_ms = 100\nbackoff_max_ms = 400\nbackoff_jitter = 0.0\nmin_unready_backoff_ms = 100\nstart_timeout_secs = 10\nshutdown_timeout_secs = 2\nconfig_poll_ms = 100\n\n{extra}"
    )
}

/// The `[services.<name>]` table of a chaos service.
pub fn chaos(name: &str, group: &str, extra: &str) -> String {
    format!("[services.{name}]\nkind = \"chaos\"\ngroup = \"{group}\"\n{extra}\n")
}

pub fn exit_code(st: ExitStatus) -> Option<i32> {
    st.code().or_else(|| st.signal().map(|s| 128 + s))
}

pub fn marks(path: &Path) -> Vec<(u32, u128)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// A test config with the vault on (key in a file under the home).
pub fn vault_config(extra: &str) -> String {
    config_enabling(
        &["vault"],
        "",
        &format!("[vault]\nkey_source = \"file\"\n{extra}"),
    )
}

/// Starts `oictl` without waiting for it (to signal it, or to act while
/// it runs); stdout and stderr are piped.
pub fn spawn_oictl(d: &Daemon, args: &[&str]) -> Child {
    Command::new(OICTL)
        .arg("--home")
        .arg(d.home.path())
        .arg("--no-autostart")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs `oictl` with `stdin` as its standard input.
pub fn oictl_input(d: &Daemon, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut c = Command::new(OICTL)
        .arg("--home")
        .arg(d.home.path())
        .arg("--no-autostart")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin).unwrap();
    c.wait_with_output().unwrap()
}

/// The llm-router enabled, the rest as in [`config`]; `extra` holds the
/// `[models.*]`, `[provider]` and `[cascade]` tables.
pub fn router_config(extra: &str) -> String {
    config_enabling(&["llm-router"], "", extra)
}

/// A test config with the memory service on.
pub fn memory_config(extra: &str) -> String {
    config_enabling(&["memory"], "", extra)
}

/// An oictl run's stdout and stderr, for assertions and failure messages.
pub fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A one-thread tokio runtime for tests that talk to the bus directly.
pub fn bus_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A request whose answer is an archived `T`; a bus error is returned, an
/// unreadable answer fails the test.
pub async fn typed<T: Decode>(
    c: &BusClient,
    destination: &str,
    method: &str,
    payload: &[u8],
) -> Result<T, BusError> {
    let b = c
        .request(destination, method, payload, CallOptions::default())
        .await?;
    Ok(decode_payload(&b, Kind::Response, 0).unwrap())
}

/// A runtime for the fake providers a test runs in its own process.
pub fn fake_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A `[models.<alias>]` table for a fake provider; `key` is the key line
/// (`no_key = true`, `api_key_env = "..."`).
pub fn model(alias: &str, kind: &str, base_url: &str, key: &str) -> String {
    format!(
        "[models.{alias}]\nkind = \"{kind}\"\nbase_url = \"{base_url}\"\nmodel = \"m-{alias}\"\n{key}\ncontext_window = 32000\nmax_tokens = 200\n\n"
    )
}

/// Tool calls a scripted model answers with, as (id, tool, arguments).
pub fn calls(list: &[(&str, &str, Value)]) -> oi_llm_router::fake::Reply {
    let owned: Vec<(String, String, String)> = list
        .iter()
        .map(|(id, name, args)| (id.to_string(), name.to_string(), args.to_string()))
        .collect();
    let refs: Vec<(&str, &str, &str)> = owned
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    oi_llm_router::fake::openai::calls(None, &refs)
}

/// The tool messages (role "tool") of a recorded request, in order.
pub fn tool_messages(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Rows of an SQLite query, `|`-separated, one per line (python3's sqlite3).
pub fn sqlite_rows(db: &std::path::Path, sql: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print('\\n'.join('|'.join(map(str,r)) for r in c.execute(sys.argv[2])))"])
        .arg(db)
        .arg(sql)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The names of the tools an `oictl ask --json` answer called, in order.
pub fn tool_names(answer: &serde_json::Value) -> Vec<&str> {
    answer["tool_calls"]
        .as_array()
        .expect("the answer lists its tool calls")
        .iter()
        .map(|c| c["name"].as_str().expect("a tool call has a name"))
        .collect()
}

/// A tool called through `oictl tool`: its JSON result, or oictl's error
/// text.
/// Stores a vault secret with `oictl vault set` (the value on stdin).
pub fn set_secret(d: &Daemon, name: &str, value: &str) {
    let o = oictl_input(d, &["vault", "set", name], value.as_bytes());
    assert!(o.status.success(), "{}", out(&o));
}

pub fn tool(d: &Daemon, name: &str, args: Value) -> Result<Value, String> {
    let o = d.oictl(&["tool", name, &args.to_string()]);
    if o.status.success() {
        Ok(serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o))))
    } else {
        Err(out(&o))
    }
}

/// Kills a child's process group and reaps the child.
pub fn kill_group(c: &mut Child) {
    let pgid = c.id() as i32;
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = c.wait();
    // A server's own children are in the group too; wait until none is
    // left but zombies (ours is reaped above).
    wait_for(
        Duration::from_secs(5),
        "the server's processes to end",
        || {
            let alive = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .any(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .ok()
                        .and_then(|s| {
                            let f: Vec<String> = s
                                .rsplit(')')
                                .next()?
                                .split_whitespace()
                                .map(String::from)
                                .collect();
                            Some(f.get(2)?.parse::<i32>().ok()? == pgid && f.first()? != "Z")
                        })
                        .unwrap_or(false)
                });
            (!alive).then_some(())
        },
    );
}

/// A port nothing listens on now, on 127.0.0.1.
///
/// It is taken below Linux's ephemeral range (32768-60999), where every
/// `bind(0)` of the other tests running meanwhile lands: a server started
/// later on this port would otherwise race them for it.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 20);
    for _ in 0..1000 {
        // A splitmix64 step: spread over 20000..32767.
        let mut z = seed.wrapping_add(NEXT.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let port = 20_000 + ((z ^ (z >> 31)) % 12_768) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below 32768 on 127.0.0.1")
}
