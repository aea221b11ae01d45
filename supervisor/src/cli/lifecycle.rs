//! Reaching the daemon (starting it when it is not running) and
//! installing it as a system or user service.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use oi_client::connect::Autostart;
use oi_kernel::client::BusClient;
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
        /// The user a system unit runs as (created when missing; never
        /// root).
        #[arg(long, default_value = install::SERVICE_USER)]
        user_name: String,
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
/// running (unless autostart is off), and says so.
pub(super) async fn connect(
    paths: &Paths,
    home: Option<&Path>,
    autostart: bool,
) -> anyhow::Result<BusClient> {
    let how = if autostart {
        Autostart::On
    } else {
        Autostart::Off
    };
    let (client, started) = oi_client::connect::connect(paths, home, how).await?;
    if let Some(pid) = started {
        eprintln!("oictl: openintentd was not running; started it in the background (pid {pid})");
    }
    Ok(client)
}

pub(super) fn service_cmd(action: ServiceCmd, home: Option<&Path>) -> anyhow::Result<ExitCode> {
    let (install_it, user, dry_run, platform, user_name) = match action {
        ServiceCmd::Install {
            user,
            dry_run,
            platform,
            user_name,
        } => (true, user, dry_run, platform, user_name),
        ServiceCmd::Uninstall {
            user,
            dry_run,
            platform,
        } => (
            false,
            user,
            dry_run,
            platform,
            install::SERVICE_USER.to_string(),
        ),
    };
    let service_user = install::ServiceUser {
        exists: nix::unistd::User::from_name(&user_name)
            .ok()
            .flatten()
            .is_some(),
        name: user_name,
    };
    let exe = oi_client::connect::openintentd_exe();
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
        &service_user,
    )?;
    for w in &plan.warnings {
        eprintln!("oictl: warning: {w}");
    }
    let cmds = if install_it {
        &plan.enable
    } else {
        &plan.disable
    };
    if dry_run {
        if install_it {
            for c in &plan.prepare {
                println!("$ {}", c.join(" "));
            }
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
    let system = !user && platform == Platform::Systemd;
    if system && !nix::unistd::geteuid().is_root() {
        bail!(
            "a system unit is installed as root (it creates the '{}' user and writes /etc/systemd/system): run this with sudo, or use --user for a unit of your own",
            service_user.name
        );
    }
    if install_it {
        for c in &plan.prepare {
            run(c)?;
        }
        if let Some(dir) = plan.file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&plan.file, &plan.contents)
            .with_context(|| format!("writing {}", plan.file.display()))?;
        eprintln!("oictl: wrote {}", plan.file.display());
    }
    for c in cmds {
        run(c)?;
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

/// Runs one step of an install; a failure names the command.
fn run(c: &[String]) -> anyhow::Result<()> {
    let status = std::process::Command::new(&c[0])
        .args(&c[1..])
        .status()
        .with_context(|| format!("running {}", c.join(" ")))?;
    if !status.success() {
        bail!("`{}` failed ({status})", c.join(" "));
    }
    Ok(())
}
