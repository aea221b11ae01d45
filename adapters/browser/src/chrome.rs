//! The one Chromium: found, started with its DevTools on a pipe (no TCP
//! port another local process could attach to), proven ready by a CDP
//! round trip, and killed with the adapter.
//!
//! It stays in the adapter's process group, so the supervisor's kill of
//! the group takes its helpers too; it also gets `PDEATHSIG`, and a
//! browser whose pipe closes exits by itself.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::net::unix::pipe;

use crate::cdp::{Cdp, CdpError};

/// Names looked for on PATH, in order, when `[browser] executable` is "".
pub const NAMES: &[&str] = &[
    "chromium-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome",
];

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(
        "no Chromium found (looked for {} on PATH); install Debian's `chromium` or `chromium-headless-shell`, or set [browser] executable",
        NAMES.join(", ")
    )]
    NotFound,
    #[error("cannot start {path}: {error}")]
    Spawn { path: String, error: String },
    #[error("{path} started but did not answer Browser.getVersion within {secs} s: {error}")]
    NotReady {
        path: String,
        secs: u64,
        error: CdpError,
    },
}

/// The executable to run: `configured`, else the first of [`NAMES`] on
/// PATH.
pub fn find(configured: &str) -> Result<PathBuf, LaunchError> {
    if !configured.is_empty() {
        return Ok(PathBuf::from(configured));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in NAMES {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(LaunchError::NotFound)
}

/// A running browser.
pub struct Browser {
    pub cdp: Cdp,
    pub pid: u32,
    /// `Chrome/156.0...`.
    pub product: String,
    /// Whether it runs without its own sandbox (as root, it must).
    pub no_sandbox: bool,
    /// Milliseconds from exec to its first answer.
    pub started_ms: u64,
    /// Tells its watcher to kill it (dropping it does too).
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    /// Ends when it has exited and been reaped.
    gone: tokio::sync::oneshot::Receiver<()>,
}

impl Browser {
    /// Starts `exe` with its profile in `profile`, and waits for its first
    /// CDP answer.
    pub async fn launch(
        exe: &Path,
        profile: &Path,
        window: (u32, u32),
        proxy: std::net::SocketAddr,
        ready_within: Duration,
    ) -> Result<Browser, LaunchError> {
        let shown = exe.display().to_string();
        let spawn_err = |e: std::io::Error| LaunchError::Spawn {
            path: shown.clone(),
            error: e.to_string(),
        };
        let t0 = Instant::now();
        let (theirs_in, ours_out) = pipe_pair().map_err(spawn_err)?;
        let (ours_in, theirs_out) = pipe_pair().map_err(spawn_err)?;
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let headless_shell = exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("headless-shell"));
        let mut cmd = tokio::process::Command::new(exe);
        if !headless_shell {
            cmd.arg("--headless");
        }
        if root {
            cmd.arg("--no-sandbox");
        }
        cmd.args([
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--mute-audio",
            "--remote-debugging-pipe",
            // Every connection through the guarded proxy: loopback too
            // (`<-loopback>` removes Chromium's implicit bypass), no QUIC
            // and no WebRTC UDP beside it.
            "--proxy-bypass-list=<-loopback>",
            "--disable-quic",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        ])
        .arg(format!("--proxy-server=http://{proxy}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},{}", window.0, window.1))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
        let (a, b) = (theirs_in.as_raw_fd(), theirs_out.as_raw_fd());
        // SAFETY: between fork and exec only fcntl, dup2 and prctl run.
        unsafe {
            cmd.pre_exec(move || {
                // Out of the way first, so neither lands on the other's
                // target.
                let a2 = libc::fcntl(a, libc::F_DUPFD, 10);
                let b2 = libc::fcntl(b, libc::F_DUPFD, 10);
                if a2 < 0 || b2 < 0 || libc::dup2(a2, 3) < 0 || libc::dup2(b2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                #[cfg(target_os = "linux")]
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(spawn_err)?;
        drop((theirs_in, theirs_out));
        let pid = child.id().unwrap_or(0);
        let to = pipe::Sender::from_owned_fd(ours_out).map_err(spawn_err)?;
        let from = pipe::Receiver::from_owned_fd(ours_in).map_err(spawn_err)?;
        let cdp = Cdp::new(to, from);
        // Its helpers keep the pipe open after it dies, so its exit (not
        // the pipe's end) is what tells callers it is gone.
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let (done, gone) = tokio::sync::oneshot::channel();
        let watched = cdp.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = killed => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            let how = match status {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            watched.close(format!("it exited ({how})"));
            let _ = done.send(());
        });
        let version = cdp
            .call("Browser.getVersion", json!({}), None, ready_within)
            .await
            .map_err(|error| LaunchError::NotReady {
                path: shown.clone(),
                secs: ready_within.as_secs(),
                error,
            })?;
        Ok(Browser {
            cdp,
            pid,
            product: version["product"].as_str().unwrap_or_default().to_string(),
            no_sandbox: root,
            started_ms: t0.elapsed().as_millis() as u64,
            kill: Some(kill),
            gone,
        })
    }

    /// Whether it still runs and answers its pipe.
    pub fn alive(&self) -> bool {
        self.cdp.closed().is_none()
    }

    /// Kills it and its helpers, and waits until it is reaped (the
    /// helpers, orphaned, are reaped by openintentd, the subreaper).
    pub async fn stop(mut self) {
        let helpers = descendants(self.pid);
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        for p in helpers {
            // SAFETY: signalling pids that were this browser's own helpers
            // a moment ago.
            unsafe {
                libc::kill(p as i32, libc::SIGKILL);
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.gone).await;
    }

    /// A browser-level command with the standard deadline.
    pub async fn call(
        &self,
        method: &str,
        params: Value,
        deadline: Duration,
    ) -> Result<Value, CdpError> {
        self.cdp.call(method, params, None, deadline).await
    }
}

/// Every process below `pid` (its helpers: zygote, renderers, GPU), read
/// from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = dir
        .flatten()
        .filter_map(|e| {
            let p: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((p, oi_kernel::lineage::parent_of(p).ok()?))
        })
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for (p, pp) in &parents {
            if *pp == parent && !out.contains(p) {
                out.push(*p);
                frontier.push(*p);
            }
        }
    }
    out
}

/// A pipe (read end, write end), both close-on-exec.
fn pipe_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)
}
