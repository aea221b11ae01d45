//! Child processes: spawning `openintentd service <kind>` in its own process
//! group with the parent-death signal set, capturing its output, signalling
//! the whole group, and reading its memory use.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use crate::logs::LogBuffer;

/// What a child needs to be started.
pub struct Launch<'a> {
    pub exe: &'a Path,
    pub name: &'a str,
    pub kind: &'a str,
    /// The whole environment besides the bus socket and `home_env`
    /// ([`crate::environment::for_service`]): nothing else is inherited.
    pub env: &'a BTreeMap<String, String>,
    pub bus_socket: &'a Path,
    pub home_env: &'a [(String, String)],
}

/// Spawns the child. It leads its own process group (so signals reach its
/// grandchildren too) and, on Linux, gets SIGKILL when openintentd dies.
pub fn spawn(l: &Launch<'_>, logs: &LogBuffer) -> io::Result<Child> {
    let mut cmd = Command::new(l.exe);
    cmd.arg("service")
        .arg(l.kind)
        .arg("--name")
        .arg(l.name)
        .env_clear()
        .env(oi_kernel::ENV_BUS_SOCKET, l.bus_socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    for (k, v) in l.home_env {
        cmd.env(k, v);
    }
    for (k, v) in l.env {
        cmd.env(k, v);
    }
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (setpgid, prctl, getppid, _exit)
    // run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setpgid(0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                // The parent may have died before prctl took effect.
                if libc::getppid() as u32 != parent {
                    libc::_exit(1);
                }
            }
            #[cfg(not(target_os = "linux"))]
            let _ = parent;
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(pump(out, logs.clone()));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(pump(err, logs.clone()));
    }
    Ok(child)
}

/// Copies a child's output, line by line, into its log buffer and onto our
/// stderr prefixed with the service name (so journald sees it).
async fn pump<R: AsyncRead + Unpin>(r: R, logs: LogBuffer) {
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        eprintln!("[{}] {line}", logs.service());
        logs.push(line);
    }
}

/// Sends `signal` to the child's whole process group. ESRCH (already gone)
/// is not an error.
pub fn signal_group(pid: u32, signal: Signal) -> io::Result<()> {
    let Ok(raw) = i32::try_from(pid) else {
        return Ok(());
    };
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Resident memory of a process in KiB, from /proc (Linux).
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
