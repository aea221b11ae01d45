//! Running one judged command: its own process group (killed whole on
//! timeout, cancellation, or when the command ends and left children
//! behind), a scrubbed environment, a working directory opened beneath a
//! root, output captured up to a cap, and Landlock when available.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::policy::Plan;

/// Environment variable names that are never passed on.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSW",
        "CREDENTIAL",
        "AUTH",
        "PRIVATE",
        "SESSION",
        "COOKIE",
        "PASSPHRASE",
    ]
    .iter()
    .any(|w| n.contains(w))
}

pub struct Spec {
    pub plan: Plan,
    /// The working directory, opened beneath a root.
    pub cwd: OwnedFd,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    pub max_output: usize,
    #[cfg(target_os = "linux")]
    pub landlock: Option<oi_sandbox::landlock::Prepared>,
    /// The mount namespace that hides the runtime directory.
    #[cfg(target_os = "linux")]
    pub namespace: Option<oi_sandbox::namespace::Prepared>,
    /// Run under the PID-namespace shim ([`oi_sandbox::pidns`]), so that
    /// nothing the command starts outlives it.
    pub pid_namespace: bool,
}

#[derive(Debug, Serialize, Default)]
pub struct Outcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    /// Bytes of output beyond the cap, counted but not kept.
    pub stdout_dropped: u64,
    pub stderr_dropped: u64,
    pub duration_ms: u64,
}

/// Kills the process group when dropped (cancellation included).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn capture<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> (Vec<u8>, u64) {
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, dropped),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                let take = room.min(n);
                kept.extend_from_slice(&buf[..take]);
                dropped += (n - take) as u64;
            }
        }
    }
}

fn text(mut bytes: Vec<u8>) -> String {
    // The cap may have cut a character; drop the partial one.
    let n = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        Err(_) => bytes.len(),
    };
    bytes.truncate(n);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs the command to completion, timeout or cancellation (drop).
pub async fn run(spec: Spec) -> std::io::Result<Outcome> {
    let start = Instant::now();
    let (program, argv): (std::path::PathBuf, Vec<String>) = match &spec.plan {
        Plan::Argv { program, argv, .. } => (program.clone(), argv.clone()),
        Plan::Shell(line) => (
            "/bin/sh".into(),
            vec!["sh".into(), "-c".into(), line.clone()],
        ),
    };
    let mut cmd = if spec.pid_namespace {
        let (exe, args) = oi_sandbox::pidns::wrap(&program, &argv);
        let mut c = Command::new(exe);
        c.args(args);
        c
    } else {
        let mut c = Command::new(&program);
        c.arg0(&argv[0]).args(&argv[1..]);
        c
    };
    let line_env: &[(String, String)] = match &spec.plan {
        Plan::Argv { env, .. } => env,
        Plan::Shell(_) => &[],
    };
    cmd.env_clear()
        .envs(spec.env.iter().chain(line_env).map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let cwd = spec.cwd.as_raw_fd();
    #[cfg(target_os = "linux")]
    let (mut landlock, mut namespace) = (spec.landlock, spec.namespace);
    // SAFETY: runs in the child between fork and exec; it makes system
    // calls only (unshare, mount, fchdir, prctl, landlock_restrict_self)
    // and allocates nothing on the success path.
    unsafe {
        cmd.pre_exec(move || {
            // The working directory first: entering the new mount
            // namespace moves it (and the root) onto the namespace's copy
            // of the same mount, which an fchdir after it would not.
            if libc::fchdir(cwd) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            #[cfg(target_os = "linux")]
            if let Some(n) = namespace.as_mut() {
                n.apply()?;
            }
            #[cfg(target_os = "linux")]
            {
                // The command dies with the adapter; what it forks away is
                // openintentd's to kill (it is a child subreaper).
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
                if let Some(l) = landlock.as_mut() {
                    l.apply()?;
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let mut group = GroupGuard(child.id().map(|p| p as i32));
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(capture(s, spec.max_output)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(capture(s, spec.max_output)));

    let mut outcome = Outcome::default();
    match tokio::time::timeout(spec.timeout, child.wait()).await {
        Ok(status) => {
            let status = status?;
            use std::os::unix::process::ExitStatusExt;
            outcome.exit_code = status.code();
            outcome.signal = status.signal();
        }
        Err(_) => {
            outcome.timed_out = true;
            group.kill();
            if let Ok(status) = child.wait().await {
                use std::os::unix::process::ExitStatusExt;
                outcome.signal = status.signal();
            }
        }
    }
    // Output still open after the command ended belongs to something it
    // left running in the background: give it a moment, then end it.
    let collect = async {
        let o = match out {
            Some(h) => h.await.unwrap_or_default(),
            None => Default::default(),
        };
        let e = match err {
            Some(h) => h.await.unwrap_or_default(),
            None => Default::default(),
        };
        (o, e)
    };
    tokio::pin!(collect);
    let ((o, od), (e, ed)) =
        match tokio::time::timeout(Duration::from_millis(200), &mut collect).await {
            Ok(r) => r,
            Err(_) => {
                group.kill();
                collect.await
            }
        };
    group.kill();
    outcome.stdout = text(o);
    outcome.stderr = text(e);
    outcome.stdout_dropped = od;
    outcome.stderr_dropped = ed;
    outcome.duration_ms = start.elapsed().as_millis() as u64;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "OPENAI_API_KEY",
            "github_token",
            "DB_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "SSH_AUTH_SOCK",
        ] {
            assert!(looks_secret(n), "{n}");
        }
        for n in ["LANG", "TZ", "RUST_LOG", "TERM"] {
            assert!(!looks_secret(n), "{n}");
        }
    }

    #[test]
    fn a_cut_character_is_dropped_not_garbled() {
        let mut b = "日本".as_bytes().to_vec();
        b.truncate(4);
        assert_eq!(text(b), "日");
    }
}
