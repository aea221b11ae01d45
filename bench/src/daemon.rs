//! Building and running the real binaries for the supervisor benchmarks.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

fn build(args: &[&str]) -> anyhow::Result<()> {
    eprintln!("oi-bench: cargo {}", args.join(" "));
    let st = Command::new(cargo())
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .status()
        .context("running cargo")?;
    if !st.success() {
        bail!("cargo {} failed", args.join(" "));
    }
    Ok(())
}

/// The shipped release binaries (openintentd, oictl), built if stale.
pub fn release_bins() -> anyhow::Result<PathBuf> {
    build(&["build", "--release", "-p", "oi-supervisor", "--bins"])?;
    Ok(target_dir().join("release"))
}

/// A release openintentd with the test-only `chaos` service, built into
/// its own target directory so the shipped binaries stay without it.
pub fn chaos_openintentd() -> anyhow::Result<PathBuf> {
    let dir = target_dir().join("bench-chaos");
    let dir_s = dir.to_string_lossy().into_owned();
    build(&[
        "build",
        "--release",
        "-p",
        "oi-supervisor",
        "--features",
        "chaos",
        "--bin",
        "openintentd",
        "--target-dir",
        &dir_s,
    ])?;
    Ok(dir.join("release/openintentd"))
}

/// A running openintentd in a private home; SIGTERM and wait on drop.
pub struct Daemon {
    pub child: Child,
    pub home: tempfile::TempDir,
    pub notify: UnixDatagram,
    pub started: Instant,
}

impl Daemon {
    pub fn start(exe: &Path, config: &str) -> anyhow::Result<Daemon> {
        Daemon::start_in(exe, tempfile::tempdir()?, config)
    }

    /// Like [`Daemon::start`], in a home prepared beforehand (a database
    /// already in `<home>/data`).
    pub fn start_in(exe: &Path, home: tempfile::TempDir, config: &str) -> anyhow::Result<Daemon> {
        std::fs::write(home.path().join("config.toml"), config)?;
        let sock = home.path().join("notify.sock");
        let notify = UnixDatagram::bind(&sock)?;
        notify.set_read_timeout(Some(Duration::from_secs(30)))?;
        let started = Instant::now();
        let child = Command::new(exe)
            .arg("--home")
            .arg(home.path())
            .env("NOTIFY_SOCKET", &sock)
            .env("OPENINTENT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Daemon {
            child,
            home,
            notify,
            started,
        })
    }

    /// Waits for `READY=1` and returns the time since exec.
    pub fn wait_ready(&self) -> anyhow::Result<Duration> {
        let mut buf = [0u8; 4096];
        loop {
            let n = self.notify.recv(&mut buf).context("waiting for READY=1")?;
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                return Ok(self.started.elapsed());
            }
        }
    }

    pub fn bus(&self) -> PathBuf {
        self.home.path().join("run/bus.sock")
    }

    /// A client on the daemon's bus.
    pub async fn client(&self) -> anyhow::Result<oi_kernel::client::BusClient> {
        let (client, _) = oi_kernel::client::BusClient::connect(
            &self.bus(),
            None,
            oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES,
        )
        .await
        .context("connecting to the bus")?;
        Ok(client)
    }
}

/// The services of the shipped config.
const SHIPPED: &[&str] = &[
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
];

/// Config lines turning every shipped service but `keep` off.
pub fn only(keep: &[&str]) -> String {
    let off: Vec<&str> = SHIPPED
        .iter()
        .copied()
        .filter(|s| !keep.contains(s))
        .collect();
    disabled(&off)
}

/// Config lines turning the shipped services `names` off.
pub fn disabled(names: &[&str]) -> String {
    names
        .iter()
        .map(|s| format!("[services.{s}]\nenabled = false\n"))
        .collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// Proportional set size of a process in KiB.
pub fn pss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The pid of the running service `name`, from the supervisor's status.
pub async fn pid_of(client: &oi_kernel::client::BusClient, name: &str) -> anyhow::Result<u32> {
    let r: oi_ipc_schema::control::StatusReport = client
        .call(
            oi_ipc_schema::control::STATUS,
            &(),
            oi_kernel::client::CallOptions::deadline(Duration::from_secs(60)),
        )
        .await?;
    r.services
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.pid)
        .with_context(|| format!("{name} is not running"))
}

/// A server the benchmark started in its own process group, killed with
/// the group and reaped when dropped.
pub struct Group(pub std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: signalling the group of our own child.
        unsafe {
            libc::kill(-(self.0.id() as i32), libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// Waits until something listens on 127.0.0.1:`port`.
pub fn wait_port(port: u16, what: &str, limit: Duration) -> anyhow::Result<()> {
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(t0.elapsed() < limit, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Stores a vault secret through the bus (as oictl does).
pub async fn set_secret(
    client: &oi_kernel::client::BusClient,
    name: &str,
    value: &str,
) -> anyhow::Result<()> {
    client
        .call(
            oi_ipc_schema::vault::SET,
            &oi_ipc_schema::vault::SetSecret {
                name: name.into(),
                value: value.as_bytes().to_vec(),
                hosts: None,
            },
            oi_kernel::client::CallOptions::deadline(Duration::from_secs(10)),
        )
        .await?;
    Ok(())
}
