//! `openintentd`: with no subcommand, the supervisor; with `service <kind>`,
//! one service process (that is how the supervisor starts its children).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use oi_kernel::broker::{Broker, BrokerConfig, BrokerError};
use oi_kernel::config::Config;
use oi_kernel::paths::Paths;
use tokio::sync::mpsc;
use tracing::{error, info};

use crate::control::Control;
use crate::supervisor::{Outcome, Setup};

/// Exit status for configuration errors (EX_CONFIG); systemd's
/// `RestartPreventExitStatus=78` keeps it from restart loops.
pub const EXIT_CONFIG: u8 = 78;

#[derive(Parser)]
#[command(
    name = "openintentd",
    version,
    about = "OpenIntentOS daemon: supervises every service as its own process"
)]
struct Args {
    /// Put config, data and runtime files under this directory
    /// (config.toml, data/, run/). Default: OPENINTENT_HOME, else XDG.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Sub>,
}

#[derive(Subcommand)]
enum Sub {
    /// Run one service in this process (started by the supervisor).
    Service {
        kind: String,
        /// The instance name on the bus (default: the kind).
        #[arg(long)]
        name: Option<String>,
    },
    /// Check the configuration and print the effective result.
    CheckConfig,
}

pub fn main() -> ExitCode {
    // SAFETY: the first thing main does; no other thread exists yet.
    let passphrase = unsafe { crate::environment::take_passphrase() };
    let args = Args::parse();
    match args.command {
        Some(Sub::Service { kind, name }) => {
            // A service run by hand (or by an older supervisor) reads the
            // passphrase as before.
            if let Some(p) = &passphrase {
                // SAFETY: still single-threaded.
                unsafe { std::env::set_var(crate::environment::PASSPHRASE, p.as_str()) };
            }
            let name = name.unwrap_or_else(|| kind.clone());
            let code = crate::services::run(&kind, &name);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
        Some(Sub::CheckConfig) => {
            oi_kernel::telemetry::init();
            match load(args.home.as_deref()) {
                Ok((_, config)) => {
                    print!("{}", config.to_toml());
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        None => {
            oi_kernel::telemetry::init();
            match supervise(args.home.as_deref(), passphrase) {
                Ok(code) => code,
                Err(e) => {
                    error!(service = "openintentd", "{e:#}");
                    eprintln!("openintentd: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(home: Option<&std::path::Path>) -> Result<(Paths, Config), ExitCode> {
    let paths = match Paths::resolve(home) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("openintentd: {e}");
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    let build = crate::services::build();
    match Config::load_checked(&paths.config_file, Some(&build)) {
        Ok(c) => Ok((paths, c)),
        Err(e) => {
            error!(service = "openintentd", error = %e, "invalid configuration");
            eprintln!("openintentd: invalid configuration: {e}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn supervise(
    home: Option<&std::path::Path>,
    passphrase: Option<zeroize::Zeroizing<String>>,
) -> anyhow::Result<ExitCode> {
    let (paths, config) = match load(home) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    paths.prepare().context("preparing directories")?;
    // Whatever a service starts stays below openintentd even after its
    // parents die: the broker then knows it for what it is, and the
    // supervisor kills it (see `orphans`).
    crate::orphans::become_subreaper().context("becoming a child subreaper")?;
    let exe = std::env::current_exe().context("locating the openintentd executable")?;
    // One thread for the supervisor and the broker: routing frames is I/O
    // bound, and a current-thread runtime has the lowest latency and the
    // highest throughput on the bus (`oi-bench ipc`). Children are spawned
    // from this thread, which lives as long as the process, so their
    // parent-death signal fires only when openintentd itself dies.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut bus = BrokerConfig::new(paths.bus_socket());
        bus.max_frame_bytes = config.bus.max_frame_bytes;
        bus.heartbeat_interval = config.heartbeat_interval();
        bus.default_deadline = std::time::Duration::from_millis(config.bus.default_deadline_ms);
        bus.limits = config.bus.limits();
        let (broker, bus_events) = match Broker::bind(bus).await {
            Ok(b) => b,
            Err(e @ BrokerError::AlreadyRunning(_)) => {
                eprintln!("openintentd: {e}");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(e).context("starting the bus"),
        };
        // The audit log of tool calls and provider requests. Without it
        // the system would act unrecorded: refuse to start instead.
        match oi_kernel::audit::AuditLog::start(&paths.data_dir.join("audit.db")) {
            Ok(audit) => broker.set_audit(audit),
            Err(e) => {
                broker.close();
                return Err(e).context("opening the audit log");
            }
        }
        let pid_file = paths.pid_file();
        std::fs::write(&pid_file, format!("{}\n", std::process::id())).with_context(|| format!("writing {}", pid_file.display()))?;
        let (cmd_tx, commands) = mpsc::unbounded_channel();
        broker.set_kernel_handler(Control::new(cmd_tx));
        info!(service = "openintentd", pid = std::process::id(), config = %paths.config_file.display(), "starting");
        let setup = Setup { exe, paths: paths.clone(), config, broker: broker.clone(), passphrase };
        let outcome = crate::actor::run(setup, bus_events, commands).await;
        broker.close();
        let _ = std::fs::remove_file(&pid_file);
        Ok(match outcome {
            Outcome::Stopped => {
                info!(service = "openintentd", "stopped");
                ExitCode::SUCCESS
            }
            Outcome::Escalated(why) => {
                error!(service = "openintentd", "{why}");
                eprintln!("openintentd: {why}");
                ExitCode::FAILURE
            }
        })
    })
}
