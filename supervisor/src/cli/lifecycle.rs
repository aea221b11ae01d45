//! Reaching the daemon (starting it when it is not running) and
//! installing it as a system or user service.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;
use oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES;
use oi_kernel::client::{BusClient, BusError};
use oi_kernel::paths::Paths;

use crate::install::{self, Platform};

#[derive(Subcommand)]
pub(super) enum ServiceCmd {
    /// Write the unit for this platform, then enable and start it.
    Install {
        /// Install for this user (systemctl --user, a LaunchAgent).
        #[arg(long)]
        user: bool,
        /// Print the unit and the commands instead of running them.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Platform::native())]
        platform: Platform,
    },
    /// Stop and disable the service and remove its unit.
    Uninstall {
        #[arg(long)]
        user: bool,
        #[arg(long)]
        dry_run: bool,
        #[arg(long, value_enum, default_value_t = Platform::native())]
        platform: Platform,
    },
}

/// Connects to the daemon, starting it in the background when it is not
/// running (unless autostart is off).
pub(super) async fn connect(
    paths: &Paths,
    home: Option<&Path>,
    autostart: bool,
) -> anyhow::Result<BusClient> {
    let socket = paths.bus_socket();
    match BusClient::connect(&socket, None, DEFAULT_MAX_FRAME_BYTES).await {
        Ok((c, _)) => return Ok(c),
        Err(BusError::NoDaemon { .. }) if autostart => {}
        Err(e @ BusError::NoDaemon { .. }) => bail!("{e} (autostart is off)"),
        Err(e) => return Err(e.into()),
    }
    let (mut child, log_from) = start_daemon(paths, home)?;
    eprintln!(
        "oictl: openintentd was not running; started it in the background (pid {})",
        child.id()
    );
    let t0 = Instant::now();
    loop {
        match BusClient::connect(&socket, None, DEFAULT_MAX_FRAME_BYTES).await {
            Ok((c, _)) => return Ok(c),
            Err(BusError::NoDaemon { .. }) if t0.elapsed() < Duration::from_secs(10) => {
                // A daemon that gave up (a bad config: exit 78) says why at
                // once, instead of a socket that never opens.
                if let Ok(Some(status)) = child.try_wait() {
                    let log = paths.runtime_dir.join("openintentd.log");
                    let said = std::fs::read(&log)
                        .map(|b| String::from_utf8_lossy(&b[log_from.min(b.len())..]).into_owned())
                        .unwrap_or_default();
                    let last = said
                        .lines()
                        .rev()
                        .find(|l| l.starts_with("openintentd: "))
                        .or_else(|| said.lines().last())
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    bail!(
                        "openintentd exited at once ({status}): {last}\n(its log: {})",
                        log.display()
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => {
                let log = paths.runtime_dir.join("openintentd.log");
                bail!(
                    "{e}; the daemon started but did not open its socket in time; see {}",
                    log.display()
                );
            }
        }
    }
}

pub(super) fn openintentd_exe() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("openintentd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("openintentd"))
}

/// Starts openintentd detached from this terminal (its own session), with
/// its output in `<runtime>/openintentd.log`; returns it and where in the
/// log its output starts.
pub(super) fn start_daemon(
    paths: &Paths,
    home: Option<&Path>,
) -> anyhow::Result<(std::process::Child, usize)> {
    use std::os::unix::process::CommandExt;
    paths.prepare()?;
    let log_path = paths.runtime_dir.join("openintentd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let log_from = log.metadata().map(|m| m.len() as usize).unwrap_or(0);
    let mut cmd = std::process::Command::new(openintentd_exe());
    if let Some(h) = home {
        cmd.arg("--home").arg(h);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().context("starting openintentd")?;
    Ok((child, log_from))
}

pub(super) fn service_cmd(action: ServiceCmd, home: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (install_it, user, dry_run, platform) = match action {
        ServiceCmd::Install {
            user,
            dry_run,
            platform,
        } => (true, user, dry_run, platform),
        ServiceCmd::Uninstall {
            user,
            dry_run,
            platform,
        } => (false, user, dry_run, platform),
    };
    let exe = openintentd_exe();
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let home = home
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(oi_kernel::paths::ENV_HOME).map(PathBuf::from));
    let user_home = std::env::var_os("HOME").map(PathBuf::from);
    let plan = install::plan(
        platform,
        user,
        &exe,
        home.as_deref(),
        user_home.as_deref(),
        nix::unistd::getuid().as_raw(),
    )?;
    let cmds = if install_it {
        &plan.enable
    } else {
        &plan.disable
    };
    if dry_run {
        if install_it {
            println!("# {}", plan.file.display());
            print!("{}", plan.contents);
        } else {
            println!("rm {}", plan.file.display());
        }
        for c in cmds {
            println!("$ {}", c.join(" "));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if install_it {
        if let Some(dir) = plan.file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&plan.file, &plan.contents)
            .with_context(|| format!("writing {}", plan.file.display()))?;
        eprintln!("oictl: wrote {}", plan.file.display());
    }
    for c in cmds {
        let status = std::process::Command::new(&c[0])
            .args(&c[1..])
            .status()
            .with_context(|| format!("running {}", c.join(" ")))?;
        if !status.success() {
            bail!("`{}` failed ({status})", c.join(" "));
        }
    }
    if !install_it {
        match std::fs::remove_file(&plan.file) {
            Ok(()) => eprintln!("oictl: removed {}", plan.file.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", plan.file.display())),
        }
    }
    Ok(ExitCode::SUCCESS)
}
