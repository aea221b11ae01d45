//! `oictl`: the control CLI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use oi_ipc_schema::control::{self, LogsRequest, ServiceName, StatusReport};
use oi_ipc_schema::{Call, DEFAULT_MAX_FRAME_BYTES, Text};
use oi_kernel::client::{BusClient, BusError, CallOptions};
use oi_kernel::paths::Paths;

use crate::cli_agent::Output;
use crate::install::{self, Platform};
use oi_ipc_schema::agent::IntentRequest;

mod doctor;
mod lifecycle;
mod status;
mod vault;

use doctor::*;
use lifecycle::*;
use status::supervisor_status;
pub use status::{human_duration, status_json, status_table};
pub use vault::KNOWN_ENV_SECRETS;
use vault::*;

#[derive(Parser)]
#[command(
    name = "oictl",
    version,
    about = "Control OpenIntentOS: service health, restarts, logs, install"
)]
struct Args {
    /// Use config, data and runtime directories under this directory.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Do not start openintentd when it is not running.
    #[arg(long, global = true)]
    no_autostart: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Say what you want: the agent plans it, calls tools and answers.
    /// Progress lines and a summary go to stderr, the answer to stdout.
    /// `oictl "<intent>"` is the same. Ctrl-C cancels.
    Ask {
        #[arg(required = true, num_args = 1..)]
        intent: Vec<String>,
        /// One JSON object for scripts: answer, tool_calls, tokens,
        /// provider, model, fallbacks.
        #[arg(long)]
        json: bool,
        /// Start with this model alias instead of the chat's.
        #[arg(short, long)]
        model: Option<String>,
        #[arg(long, default_value = crate::cli_models::CLI_CHAT)]
        chat: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// An interactive session that keeps the conversation's history, with
    /// the chat commands (/model, /models, /tokens, /status, /clear,
    /// /reset, /help).
    Chat {
        #[arg(long, default_value = crate::cli_models::CLI_CHAT)]
        chat: String,
        #[arg(short, long)]
        model: Option<String>,
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// The audit log of tool calls and provider requests; --verify checks
    /// its hash chain (exit 1 when it was tampered with).
    Audit {
        #[arg(long)]
        verify: bool,
        /// Only this intent's rows.
        #[arg(long)]
        intent: Option<String>,
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Any other words are an intent, as with `oictl ask`.
    #[command(external_subcommand)]
    Intent(Vec<String>),
    /// Show every service's state, pid, uptime, restarts and health.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Restart a service.
    Restart { service: String },
    /// Stop a service (it stays down until `oictl start`).
    Stop { service: String },
    /// Start a stopped or failed service.
    Start { service: String },
    /// Stop every service in order, then openintentd itself.
    Shutdown,
    /// Show a service's captured output (`openintentd` for the daemon's own log).
    Logs {
        service: String,
        /// Keep printing new lines as they arrive.
        #[arg(short, long)]
        follow: bool,
        /// How many past lines to show.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: u32,
    },
    /// Check the configuration, the directories, the daemon, every service
    /// and the vault; exits non-zero when something needs attention.
    Doctor,
    /// Long-term memory: save, search, list and delete facts; statistics;
    /// the chat gateways' user accounts.
    Memory {
        #[command(subcommand)]
        action: crate::cli_memory::MemoryCmd,
    },
    /// List model aliases with availability: key present, cooling until,
    /// last error (`oictl models status --json` for scripts).
    Models {
        #[command(subcommand)]
        action: Option<ModelsCmd>,
        #[arg(long)]
        json: bool,
    },
    /// Show or set the model a chat starts with (kept across restarts and
    /// failovers). Without an alias, shows the current one.
    Model {
        alias: Option<String>,
        /// The chat to set it for (Telegram chats are `telegram:<id>`).
        #[arg(long, default_value = crate::cli_models::CLI_CHAT)]
        chat: String,
        /// Remove the override: start with the cascade's primary again.
        #[arg(long, conflicts_with = "alias")]
        clear: bool,
    },
    /// One completion from the LLM router, without tools (to check a
    /// provider): prints the answer, then which deployment gave it.
    Llm {
        #[arg(required = true, num_args = 1..)]
        prompt: Vec<String>,
        /// Start with this alias instead of the chat's model.
        #[arg(short, long)]
        model: Option<String>,
        #[arg(long, default_value = crate::cli_models::CLI_CHAT)]
        chat: String,
        /// Print the answer as it is generated.
        #[arg(long)]
        stream: bool,
        #[arg(long)]
        json: bool,
    },
    /// List the tools the running services offer.
    Tools {
        #[arg(long)]
        json: bool,
    },
    /// Approve a command that [shell] policy = "approval" holds back: shows
    /// the exact command and asks you to type a one-time code (needs a
    /// terminal). Without an id, lists the commands that wait.
    Approve {
        id: Option<String>,
        /// Refuse it instead.
        #[arg(long)]
        refuse: bool,
    },
    /// Call one tool directly with JSON arguments (for debugging adapters);
    /// prints its JSON result.
    Tool {
        name: String,
        /// The arguments as a JSON object (default {}).
        #[arg(default_value = "{}")]
        args: String,
        /// Seconds to wait for the result.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// Manage secrets in the vault.
    Vault {
        #[command(subcommand)]
        action: VaultCmd,
    },
    /// The Telegram gateway: pair a chat, list or remove allowed chats.
    Telegram {
        #[command(subcommand)]
        action: crate::cli_telegram::TelegramCmd,
    },
    /// Install or remove openintentd as a systemd or launchd service.
    Service {
        #[command(subcommand)]
        action: ServiceCmd,
    },
}

#[derive(Subcommand)]
enum ModelsCmd {
    /// The same list; with --json, for scripts.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// End cooldowns now (of one alias, or of all): after fixing a key or
    /// starting a local server, try again at once.
    Reset { alias: Option<String> },
}

pub fn main() -> ExitCode {
    // A closed stdout (`oictl status | head -1`) ends oictl quietly, as it
    // ends `ls`, instead of a panic on the failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oictl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oictl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `oictl logs openintentd`: the daemon's own log, when oictl started it in
/// the background (`<runtime>/openintentd.log`); under systemd or launchd
/// it goes to their logs, which this says.
async fn daemon_log(paths: &Paths, lines: u32, follow: bool) -> anyhow::Result<ExitCode> {
    let file = paths.runtime_dir.join("openintentd.log");
    let Ok(text) = std::fs::read_to_string(&file) else {
        bail!(
            "{} does not exist: openintentd was not started by oictl, so its log is its standard error (under systemd: `journalctl -u openintentd`, or `journalctl --user-unit openintentd` for a user unit; under launchd: the file its plist names as StandardErrorPath)",
            file.display()
        );
    };
    let all: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout().lock();
    for l in &all[all.len().saturating_sub(lines as usize)..] {
        writeln!(out, "{l}")?;
    }
    drop(out);
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut seen = text.len() as u64;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        if (bytes.len() as u64) < seen {
            seen = 0;
        }
        let new = &bytes[seen as usize..];
        if !new.is_empty() {
            std::io::stdout().lock().write_all(new)?;
            seen = bytes.len() as u64;
        }
    }
}

/// One word that is not a command is a typo, not an intent: sent to the
/// model it would cost tokens and, with tools, could act. Several words,
/// or `oictl ask`, are an intent.
fn not_an_intent(words: &[String]) -> Option<String> {
    let [word] = words else {
        return None;
    };
    if word.contains(char::is_whitespace) {
        return None;
    }
    use clap::CommandFactory;
    let commands: Vec<String> = Args::command()
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    let near = commands
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min();
    Some(match near {
        Some((_, c)) => format!(
            "'{word}' is not a command; did you mean `oictl {c}`? (to ask the agent, write more than one word, or `oictl ask {word}`)"
        ),
        None => format!(
            "'{word}' is not a command (`oictl --help` lists them); to ask the agent, write more than one word, or `oictl ask {word}`"
        ),
    })
}

/// Levenshtein distance, for "did you mean".
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::resolve(args.home.as_deref())?;
    let connect = || connect(&paths, args.home.as_deref(), !args.no_autostart);
    match args.command {
        Cmd::Status { json } => {
            let client = connect().await?;
            let report = supervisor_status(&client).await?;
            let vault = vault_status(&client).await;
            if json {
                let mut j = status_json(&report);
                j["vault"] = match &vault {
                    Some(v) => {
                        serde_json::json!({"key_source": v.key_source, "secrets": v.secrets, "key_epoch": v.key_epoch})
                    }
                    None => serde_json::Value::Null,
                };
                println!("{}", serde_json::to_string_pretty(&j)?);
            } else {
                print!("{}", status_table(&report));
                if let Some(v) = vault {
                    println!("vault: key source {}, {} secrets", v.key_source, v.secrets);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Restart { service } => {
            control(&connect().await?, control::RESTART, &service, "restarting").await
        }
        Cmd::Stop { service } => {
            control(&connect().await?, control::STOP, &service, "stopping").await
        }
        Cmd::Shutdown => {
            let client = match BusClient::connect(
                &paths.bus_socket(),
                None,
                DEFAULT_MAX_FRAME_BYTES,
            )
            .await
            {
                Ok((c, _)) => c,
                Err(BusError::NoDaemon { .. }) => {
                    eprintln!("oictl: openintentd is not running");
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Err(e.into()),
            };
            client
                .call(
                    control::SHUTDOWN,
                    &(),
                    CallOptions::deadline(Duration::from_secs(10)),
                )
                .await?;
            // Wait for the daemon to be gone (its socket closes last).
            let t0 = Instant::now();
            while BusClient::connect(&paths.bus_socket(), None, DEFAULT_MAX_FRAME_BYTES)
                .await
                .is_ok()
            {
                if t0.elapsed() > Duration::from_secs(60) {
                    bail!("openintentd was asked to shut down but is still running after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            eprintln!("oictl: openintentd stopped");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Start { service } => start(&connect().await?, &service).await,
        Cmd::Logs {
            service,
            follow,
            lines,
        } if service == "openintentd" => daemon_log(&paths, lines, follow).await,
        Cmd::Logs {
            service,
            follow,
            lines,
        } => {
            let client = connect().await?;
            let req = LogsRequest {
                name: service,
                lines,
                follow,
            };
            let opts = CallOptions::deadline(Duration::from_secs(if follow {
                u32::MAX as u64 / 1000
            } else {
                10
            }));
            let mut out = std::io::stdout().lock();
            if !follow {
                let l = client.call(control::LOGS, &req, opts).await?;
                for line in l.lines {
                    writeln!(out, "{line}")?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut stream = client.stream(control::LOGS_FOLLOW, &req, opts)?;
            while let Some(l) = stream.next().await? {
                for line in l.lines {
                    writeln!(out, "{line}")?;
                }
                out.flush()?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Service { action } => service_cmd(action, args.home.as_deref()),
        Cmd::Vault { action } => vault_cmd(&connect().await?, action).await,
        Cmd::Doctor => doctor(&paths).await,
        Cmd::Memory { action } => crate::cli_memory::memory(&connect().await?, action).await,
        Cmd::Models {
            action: Some(ModelsCmd::Reset { alias }),
            ..
        } => crate::cli_models::reset(&connect().await?, alias).await,
        Cmd::Models { action, json } => {
            let json = json || matches!(action, Some(ModelsCmd::Status { json: true }));
            crate::cli_models::models(&connect().await?, json).await
        }
        Cmd::Model { alias, chat, clear } => {
            crate::cli_models::model(&connect().await?, alias, chat, clear).await
        }
        Cmd::Llm {
            prompt,
            model,
            chat,
            stream,
            json,
        } => {
            crate::cli_models::llm(
                &connect().await?,
                prompt.join(" "),
                model,
                chat,
                stream,
                json,
            )
            .await
        }
        Cmd::Ask {
            intent,
            json,
            model,
            chat,
            timeout,
        } => {
            let req = IntentRequest {
                chat,
                text: intent.join(" "),
                alias: model.unwrap_or_default(),
                ..Default::default()
            };
            let out = if json { Output::Json } else { Output::Human };
            crate::cli_agent::ask(&connect().await?, req, out, Duration::from_secs(timeout)).await
        }
        Cmd::Intent(words) => {
            if let Some(why) = not_an_intent(&words) {
                bail!("{why}");
            }
            let req = IntentRequest {
                chat: crate::cli_models::CLI_CHAT.into(),
                text: words.join(" "),
                ..Default::default()
            };
            crate::cli_agent::ask(
                &connect().await?,
                req,
                Output::Human,
                Duration::from_secs(900),
            )
            .await
        }
        Cmd::Chat {
            chat,
            model,
            timeout,
        } => {
            crate::cli_agent::chat(
                &connect().await?,
                &chat,
                model,
                Duration::from_secs(timeout),
            )
            .await
        }
        Cmd::Audit {
            verify,
            intent,
            limit,
            json,
        } => crate::cli_agent::audit(&connect().await?, verify, intent, limit, json).await,
        Cmd::Tools { json } => crate::cli_tools::tools(&connect().await?, json).await,
        Cmd::Approve { id, refuse } => {
            crate::cli_approve::approve(&connect().await?, id, refuse).await
        }
        Cmd::Telegram { action } => crate::cli_telegram::telegram(&connect().await?, action).await,
        Cmd::Tool {
            name,
            args,
            timeout,
        } => crate::cli_tools::tool(&connect().await?, &name, &args, timeout).await,
    }
}

/// `oictl restart` and `oictl stop`.
async fn control(
    client: &BusClient,
    method: Call<ServiceName, ()>,
    service: &str,
    verb: &str,
) -> anyhow::Result<ExitCode> {
    let name = ServiceName {
        name: service.to_string(),
    };
    let opts = CallOptions::deadline(Duration::from_secs(10));
    client.call(method, &name, opts).await?;
    eprintln!("oictl: {verb} {service}");
    Ok(ExitCode::SUCCESS)
}

/// `oictl start`: says why a service stays WAITING.
async fn start(client: &BusClient, service: &str) -> anyhow::Result<ExitCode> {
    let name = ServiceName {
        name: service.to_string(),
    };
    let opts = CallOptions::deadline(Duration::from_secs(10));
    let Text(note) = client.call(control::START, &name, opts).await?;
    if note.is_empty() {
        eprintln!("oictl: starting {service}");
    } else {
        eprintln!("oictl: {service} stays WAITING, {note}; it starts by itself once that is there");
    }
    Ok(ExitCode::SUCCESS)
}
