//! Reaching the daemon: its bus socket, and, when it is not running and
//! the interface allows it, starting it in the background first (as
//! `oictl` does, and the TUI and desktop app will). A daemon that gives up
//! at once (a bad config: exit 78) is reported with the line it said.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES;
use oi_kernel::client::{BusClient, BusError};
use oi_kernel::paths::{Paths, PathsError};

/// How long a started daemon has to open its socket.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("{0} (autostart is off)")]
    NotRunning(BusError),
    #[error("cannot start openintentd ({}): {source}", exe.display())]
    Start {
        exe: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the daemon's log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot prepare the daemon's directories: {0}")]
    Paths(#[from] PathsError),
    #[error("openintentd exited at once ({status}): {said}\n(its log: {})", log.display())]
    Exited {
        status: ExitStatus,
        said: String,
        log: PathBuf,
    },
    #[error("{error}; the daemon started but did not open its socket in time; see {}", log.display())]
    NoSocket { error: BusError, log: PathBuf },
}

/// Whether to start the daemon when it is not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Autostart {
    Off,
    /// Started detached, with `--home` when given.
    On,
}

/// Connects to the daemon of `paths`, starting it when it is not running
/// and `autostart` is on. Returns the client and, when this call started
/// it, the daemon's pid.
pub async fn connect(
    paths: &Paths,
    home: Option<&Path>,
    autostart: Autostart,
) -> Result<(BusClient, Option<u32>), ConnectError> {
    let socket = paths.bus_socket();
    match BusClient::connect(&socket, None, DEFAULT_MAX_FRAME_BYTES).await {
        Ok((c, _)) => return Ok((c, None)),
        Err(BusError::NoDaemon { .. }) if autostart == Autostart::On => {}
        Err(e @ BusError::NoDaemon { .. }) => return Err(ConnectError::NotRunning(e)),
        Err(e) => return Err(e.into()),
    }
    let (mut child, log_from) = start_daemon(paths, home)?;
    let log = daemon_log(paths);
    let t0 = Instant::now();
    loop {
        match BusClient::connect(&socket, None, DEFAULT_MAX_FRAME_BYTES).await {
            Ok((c, _)) => return Ok((c, Some(child.id()))),
            Err(BusError::NoDaemon { .. }) if t0.elapsed() < START_TIMEOUT => {
                if let Ok(Some(status)) = child.try_wait() {
                    let said = last_said(&log, log_from);
                    return Err(ConnectError::Exited { status, said, log });
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => return Err(ConnectError::NoSocket { error, log }),
        }
    }
}

/// Where a daemon started by [`connect`] writes its output.
pub fn daemon_log(paths: &Paths) -> PathBuf {
    paths.runtime_dir.join("openintentd.log")
}

/// The `openintentd` beside this executable, else the one on PATH.
pub fn openintentd_exe() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("openintentd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("openintentd"))
}

/// The daemon's last word in its log since `from`: its own `openintentd:`
/// line, else the last line.
fn last_said(log: &Path, from: usize) -> String {
    let said = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b[from.min(b.len())..]).into_owned())
        .unwrap_or_default();
    said.lines()
        .rev()
        .find(|l| l.starts_with("openintentd: "))
        .or_else(|| said.lines().last())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Starts openintentd detached from this terminal (its own session), with
/// its output appended to [`daemon_log`]; returns it and where in the log
/// its output starts.
fn start_daemon(paths: &Paths, home: Option<&Path>) -> Result<(Child, usize), ConnectError> {
    use std::os::unix::process::CommandExt;
    paths.prepare()?;
    let exe = openintentd_exe();
    let start = |source| ConnectError::Start {
        exe: exe.clone(),
        source,
    };
    let log_path = daemon_log(paths);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| ConnectError::Log {
            path: log_path.clone(),
            source,
        })?;
    let log_from = log.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut cmd = std::process::Command::new(&exe);
    if let Some(h) = home {
        cmd.arg("--home").arg(h);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone().map_err(start)?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn().map_err(start)?;
    Ok((child, log_from))
}
