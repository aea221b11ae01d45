//! `oictl`: the control CLI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use oi_ipc_schema::control::{LogLines, LogsRequest, ServiceName, StatusReport, methods};
use oi_ipc_schema::frame::Kind;
use oi_ipc_schema::{DEFAULT_MAX_FRAME_BYTES, KERNEL_DESTINATION, decode_payload, encode_payload};
use oi_kernel::client::{BusClient, BusError, CallOptions, StreamItem};
use oi_kernel::paths::Paths;

use crate::cli_agent::Output;
use crate::install::{self, Platform};
use oi_ipc_schema::agent::IntentRequest;

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
    /// Show a service's captured output.
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
}

#[derive(Subcommand)]
enum VaultCmd {
    /// Store a secret. The value is read from standard input (or a hidden
    /// prompt on a terminal), never from the command line.
    Set {
        name: String,
        /// The hosts the secret may be sent to by http_request
        /// (comma-separated: api.github.com,*.example.com). Without it, a
        /// new secret is bound to none and an updated one keeps its hosts.
        #[arg(long, value_delimiter = ',')]
        hosts: Option<Vec<String>>,
    },
    /// Print a secret's value.
    Get { name: String },
    /// List secrets: names and metadata, never values.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a secret.
    Rm { name: String },
    /// Re-encrypt every secret under a new master key.
    Rotate,
    /// Move the known provider keys from the environment into the vault.
    ImportEnv,
    /// Where the master key lives, and how many secrets there are.
    Status,
}

/// Environment variables `oictl vault import-env` knows, and the secret
/// each becomes.
pub const KNOWN_ENV_SECRETS: &[(&str, &str)] = &[
    ("OPENAI_API_KEY", "openai-api-key"),
    ("ANTHROPIC_API_KEY", "anthropic-api-key"),
    ("GEMINI_API_KEY", "gemini-api-key"),
    ("GOOGLE_API_KEY", "google-api-key"),
    ("DEEPSEEK_API_KEY", "deepseek-api-key"),
    ("GROQ_API_KEY", "groq-api-key"),
    ("NVIDIA_API_KEY", "nvidia-api-key"),
    ("OPENROUTER_API_KEY", "openrouter-api-key"),
    ("XAI_API_KEY", "xai-api-key"),
    ("MISTRAL_API_KEY", "mistral-api-key"),
    ("TELEGRAM_BOT_TOKEN", "telegram-bot-token"),
    ("GITHUB_TOKEN", "github-token"),
];

#[derive(Subcommand)]
enum ServiceCmd {
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

pub fn main() -> ExitCode {
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
            control(&connect().await?, methods::RESTART, &service, "restarting").await
        }
        Cmd::Stop { service } => {
            control(&connect().await?, methods::STOP, &service, "stopping").await
        }
        Cmd::Start { service } => {
            control(&connect().await?, methods::START, &service, "starting").await
        }
        Cmd::Logs {
            service,
            follow,
            lines,
        } => {
            let client = connect().await?;
            let req = encode_payload(&LogsRequest {
                name: service,
                lines,
                follow,
            })?;
            let opts = CallOptions::deadline(Duration::from_secs(if follow {
                u32::MAX as u64 / 1000
            } else {
                10
            }));
            let mut out = std::io::stdout().lock();
            if !follow {
                let bytes = client
                    .request(KERNEL_DESTINATION, methods::LOGS, &req, opts)
                    .await?;
                let l: LogLines = decode_payload(&bytes, Kind::Response, 0)?;
                for line in l.lines {
                    writeln!(out, "{line}")?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let mut stream = client.stream(KERNEL_DESTINATION, methods::LOGS, &req, opts)?;
            while let Some(item) = stream.next().await {
                match item {
                    StreamItem::Chunk(c) => {
                        let l: LogLines = decode_payload(&c, Kind::StreamChunk, 0)?;
                        for line in l.lines {
                            writeln!(out, "{line}")?;
                        }
                        out.flush()?;
                    }
                    StreamItem::End(_) => break,
                    StreamItem::Error(e) => return Err(e.into()),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Service { action } => service_cmd(action, args.home.as_deref()),
        Cmd::Vault { action } => vault_cmd(&connect().await?, action).await,
        Cmd::Doctor => doctor(&paths).await,
        Cmd::Memory { action } => crate::cli_memory::memory(&connect().await?, action).await,
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

async fn vault_call(client: &BusClient, method: &str, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let opts = CallOptions::deadline(Duration::from_secs(30)).waiting();
    Ok(client.request("vault", method, payload, opts).await?)
}

/// Calls a vault method and decodes its archived answer.
async fn vault_typed<T>(client: &BusClient, method: &str, payload: &[u8]) -> anyhow::Result<T>
where
    T: oi_ipc_schema::Decode,
{
    let opts = CallOptions::deadline(Duration::from_secs(30)).waiting();
    typed_request(client, "vault", method, payload, opts).await
}

/// Calls `method` of `destination` and decodes its archived answer.
pub(crate) async fn typed_request<T>(
    client: &BusClient,
    destination: &str,
    method: &str,
    payload: &[u8],
    opts: CallOptions,
) -> anyhow::Result<T>
where
    T: oi_ipc_schema::Decode,
{
    let bytes = client.request(destination, method, payload, opts).await?;
    Ok(decode_payload(&bytes, Kind::Response, 0)?)
}

/// Reads a secret value: all of standard input, or a hidden prompt on a
/// terminal. A single trailing newline is dropped.
fn read_secret(name: &str) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    use std::io::{IsTerminal, Read};
    let mut value = zeroize::Zeroizing::new(Vec::new());
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("value for {name} (not shown): ");
        let _echo = EchoOff::new();
        let mut line = zeroize::Zeroizing::new(String::new());
        stdin.read_line(&mut line)?;
        eprintln!();
        value.extend_from_slice(line.trim_end_matches(['\r', '\n']).as_bytes());
    } else {
        stdin.lock().read_to_end(&mut value)?;
        if value.last() == Some(&b'\n') {
            value.pop();
            if value.last() == Some(&b'\r') {
                value.pop();
            }
        }
    }
    if value.is_empty() {
        bail!("no value given for {name} on standard input");
    }
    Ok(value)
}

/// Turns terminal echo off until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on standard input with a local struct.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return EchoOff(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(0, libc::TCSANOW, &t);
            EchoOff(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(t) = self.0 {
            // SAFETY: restoring the settings read in new().
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

async fn vault_cmd(client: &BusClient, action: VaultCmd) -> anyhow::Result<ExitCode> {
    use oi_ipc_schema::vault::{self as v, methods as vm};
    match action {
        VaultCmd::Set { name, hosts } => {
            let value = read_secret(&name)?;
            let meta = vault_set(client, &name, &value, hosts).await?;
            let bound = if meta.hosts.is_empty() {
                "bound to no host".to_string()
            } else {
                format!("may be sent to {}", meta.hosts.join(", "))
            };
            eprintln!(
                "oictl: stored {} (version {}, {} bytes; {bound})",
                meta.name, meta.version, meta.len
            );
        }
        VaultCmd::Get { name } => {
            let bytes = zeroize::Zeroizing::new(
                vault_call(client, vm::GET, &encode_payload(&v::SecretName { name })?).await?,
            );
            let secret: v::SecretValue = decode_payload(&bytes, Kind::Response, 0)?;
            let value = zeroize::Zeroizing::new(secret.value);
            let mut out = std::io::stdout().lock();
            out.write_all(&value)?;
            out.write_all(b"\n")?;
        }
        VaultCmd::List { json } => {
            let list: v::SecretList = vault_typed(client, vm::LIST, b"").await?;
            if json {
                let items: Vec<_> = list.secrets.iter().map(|m| serde_json::json!({"name": m.name, "version": m.version, "len": m.len, "created_unix": m.created_unix, "updated_unix": m.updated_unix, "hosts": m.hosts})).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"secrets": items}))?
                );
            } else if list.secrets.is_empty() {
                println!("no secrets stored");
            } else {
                let w = list
                    .secrets
                    .iter()
                    .map(|m| m.name.len())
                    .max()
                    .unwrap_or(4)
                    .max(4);
                println!("{:<w$}  VERSION  BYTES  HOSTS", "NAME");
                for m in &list.secrets {
                    let hosts = if m.hosts.is_empty() {
                        "-".to_string()
                    } else {
                        m.hosts.join(",")
                    };
                    println!("{:<w$}  {:<7}  {:<5}  {hosts}", m.name, m.version, m.len);
                }
            }
        }
        VaultCmd::Rm { name } => {
            vault_call(
                client,
                vm::REMOVE,
                &encode_payload(&v::SecretName { name: name.clone() })?,
            )
            .await?;
            eprintln!("oictl: removed {name}");
        }
        VaultCmd::Rotate => {
            let st: v::VaultStatus = vault_typed(client, vm::ROTATE, b"").await?;
            eprintln!(
                "oictl: re-encrypted {} secrets under a new master key (epoch {})",
                st.secrets, st.key_epoch
            );
        }
        VaultCmd::ImportEnv => {
            let mut moved = 0;
            for (var, name) in KNOWN_ENV_SECRETS {
                let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let value = zeroize::Zeroizing::new(value.into_encoded_bytes());
                vault_set(client, name, &value, None).await?;
                eprintln!("oictl: {var} -> vault secret {name}");
                moved += 1;
            }
            if moved == 0 {
                eprintln!(
                    "oictl: none of the known variables is set ({})",
                    KNOWN_ENV_SECRETS
                        .iter()
                        .map(|(v, _)| *v)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            } else {
                eprintln!(
                    "oictl: moved {moved} keys; remove them from your shell profile and environment now"
                );
            }
        }
        VaultCmd::Status => {
            let st: v::VaultStatus = vault_typed(client, vm::STATUS, b"").await?;
            println!(
                "key source: {}\nsecrets: {}\nkey epoch: {}",
                st.key_source, st.secrets, st.key_epoch
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn vault_set(
    client: &BusClient,
    name: &str,
    value: &[u8],
    hosts: Option<Vec<String>>,
) -> anyhow::Result<oi_ipc_schema::vault::SecretMeta> {
    use oi_ipc_schema::vault::{SetSecret, methods};
    let payload = zeroize::Zeroizing::new(encode_payload(&SetSecret {
        name: name.to_string(),
        value: value.to_vec(),
        hosts,
    })?);
    vault_typed(client, methods::SET, &payload).await
}

/// `oictl doctor`: every check prints one line, `ok` or `PROBLEM` with what
/// to do.
async fn doctor(paths: &Paths) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::MetadataExt;
    let mut problems = 0;
    let mut report = |ok: bool, line: String| {
        println!("{} {line}", if ok { "ok     " } else { "PROBLEM" });
        if !ok {
            problems += 1;
        }
    };
    let kinds = crate::services::known_kinds();
    match oi_kernel::config::Config::load_checked(&paths.config_file, Some(&kinds)) {
        Ok(c) => report(
            true,
            format!(
                "config {}: valid, {} services enabled",
                paths.config_file.display(),
                c.services.values().filter(|s| s.enabled).count()
            ),
        ),
        Err(e) => report(false, format!("config: {e}")),
    }
    match std::fs::metadata(&paths.runtime_dir) {
        Ok(m) if m.mode() & 0o077 == 0 && m.uid() == nix::unistd::geteuid().as_raw() => report(
            true,
            format!("runtime directory {}: private", paths.runtime_dir.display()),
        ),
        Ok(m) => report(
            false,
            format!(
                "runtime directory {} has mode {:04o} (owner uid {}); fix: chmod 700 {}",
                paths.runtime_dir.display(),
                m.mode() & 0o7777,
                m.uid(),
                paths.runtime_dir.display()
            ),
        ),
        Err(_) => report(
            true,
            format!(
                "runtime directory {}: not created yet (the daemon creates it)",
                paths.runtime_dir.display()
            ),
        ),
    }
    let client = match BusClient::connect(&paths.bus_socket(), None, DEFAULT_MAX_FRAME_BYTES).await
    {
        Ok((c, _)) => c,
        Err(e) => {
            report(false, format!("daemon: {e}"));
            return Ok(ExitCode::from(1));
        }
    };
    let st = supervisor_status(&client).await?;
    report(
        true,
        format!(
            "daemon: openintentd pid {}, up {}",
            st.supervisor_pid,
            human_duration(st.uptime_ms)
        ),
    );
    if let Some(e) = &st.config_error {
        report(
            false,
            format!("config reload refused, still running the previous config: {e}"),
        );
    }
    for s in &st.services {
        let state = s.state.as_str();
        let last = s.last_exit.as_deref().unwrap_or("none");
        match s.state {
            oi_ipc_schema::control::ChildState::Ready => report(
                true,
                format!(
                    "service {}: READY (restarts {}/{})",
                    s.name, s.restarts_window, s.restarts_total
                ),
            ),
            _ => report(
                false,
                format!(
                    "service {}: {state} (last exit: {last}); see `oictl logs {}`",
                    s.name, s.name
                ),
            ),
        }
    }
    if st.services.iter().any(|s| s.name == "vault") {
        match vault_status(&client).await {
            Some(v) => report(
                true,
                format!(
                    "vault: key source {}, {} secrets, key epoch {}",
                    v.key_source, v.secrets, v.key_epoch
                ),
            ),
            None => report(
                false,
                "vault: not answering; see `oictl logs vault`".to_string(),
            ),
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The supervisor's status report.
async fn supervisor_status(client: &BusClient) -> anyhow::Result<StatusReport> {
    let opts = CallOptions::deadline(Duration::from_secs(10));
    let bytes = client
        .request(KERNEL_DESTINATION, methods::STATUS, b"", opts)
        .await?;
    Ok(decode_payload(&bytes, Kind::Response, 0)?)
}

/// The vault's status, when the vault is up (for `oictl status`).
async fn vault_status(client: &BusClient) -> Option<oi_ipc_schema::vault::VaultStatus> {
    let bytes = client
        .request(
            "vault",
            oi_ipc_schema::vault::methods::STATUS,
            b"",
            CallOptions::deadline(Duration::from_secs(2)),
        )
        .await
        .ok()?;
    decode_payload(&bytes, Kind::Response, 0).ok()
}

async fn control(
    client: &BusClient,
    method: &str,
    service: &str,
    verb: &str,
) -> anyhow::Result<ExitCode> {
    let payload = encode_payload(&ServiceName {
        name: service.to_string(),
    })?;
    client
        .request(
            KERNEL_DESTINATION,
            method,
            &payload,
            CallOptions::deadline(Duration::from_secs(10)),
        )
        .await?;
    eprintln!("oictl: {verb} {service}");
    Ok(ExitCode::SUCCESS)
}

/// Connects to the daemon, starting it in the background when it is not
/// running (unless autostart is off).
async fn connect(paths: &Paths, home: Option<&Path>, autostart: bool) -> anyhow::Result<BusClient> {
    let socket = paths.bus_socket();
    match BusClient::connect(&socket, None, DEFAULT_MAX_FRAME_BYTES).await {
        Ok((c, _)) => return Ok(c),
        Err(BusError::NoDaemon { .. }) if autostart => {}
        Err(e @ BusError::NoDaemon { .. }) => bail!("{e} (autostart is off)"),
        Err(e) => return Err(e.into()),
    }
    let pid = start_daemon(paths, home)?;
    eprintln!("oictl: openintentd was not running; started it in the background (pid {pid})");
    let t0 = Instant::now();
    loop {
        match BusClient::connect(&socket, None, DEFAULT_MAX_FRAME_BYTES).await {
            Ok((c, _)) => return Ok(c),
            Err(BusError::NoDaemon { .. }) if t0.elapsed() < Duration::from_secs(10) => {
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

fn openintentd_exe() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("openintentd")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("openintentd"))
}

/// Starts openintentd detached from this terminal (its own session), with
/// its output in `<runtime>/openintentd.log`.
fn start_daemon(paths: &Paths, home: Option<&Path>) -> anyhow::Result<u32> {
    use std::os::unix::process::CommandExt;
    paths.prepare()?;
    let log_path = paths.runtime_dir.join("openintentd.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
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
    Ok(child.id())
}

fn service_cmd(action: ServiceCmd, home: Option<&Path>) -> anyhow::Result<ExitCode> {
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

/// The `--json` shape of `oictl status`.
pub fn status_json(r: &StatusReport) -> serde_json::Value {
    serde_json::json!({
        "supervisor": {
            "pid": r.supervisor_pid,
            "uptime_s": r.uptime_ms / 1000,
            "config": r.config_path,
            "config_generation": r.config_generation,
            "config_error": r.config_error,
        },
        "services": r.services.iter().map(|s| serde_json::json!({
            "name": s.name,
            "state": s.state.as_str(),
            "pid": s.pid,
            "uptime_s": s.uptime_ms.map(|ms| ms / 1000),
            "restarts": s.restarts_window,
            "restarts_total": s.restarts_total,
            "last_exit": s.last_exit,
            "heartbeat_age_ms": s.heartbeat_age_ms,
            "rss_kb": s.rss_kb,
            "backoff_remaining_ms": s.backoff_remaining_ms,
        })).collect::<Vec<_>>(),
    })
}

pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

pub fn status_table(r: &StatusReport) -> String {
    let mut rows = vec![[
        "SERVICE".to_string(),
        "STATE".into(),
        "PID".into(),
        "UPTIME".into(),
        "RESTARTS".into(),
        "LAST EXIT".into(),
        "HEARTBEAT".into(),
        "RSS".into(),
    ]];
    for s in &r.services {
        let state = match s.backoff_remaining_ms {
            Some(ms) => format!(
                "{} ({}.{}s)",
                s.state.as_str(),
                ms / 1000,
                (ms % 1000) / 100
            ),
            None => s.state.as_str().to_string(),
        };
        rows.push([
            s.name.clone(),
            state,
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            s.uptime_ms
                .map(human_duration)
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", s.restarts_window, s.restarts_total),
            s.last_exit.clone().unwrap_or_else(|| "-".into()),
            s.heartbeat_age_ms
                .map(|ms| format!("{ms}ms"))
                .unwrap_or_else(|| "-".into()),
            s.rss_kb
                .map(|kb| format!("{:.1} MB", kb as f64 / 1024.0))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "openintentd pid {} up {} · config {} (generation {})\n",
        r.supervisor_pid,
        human_duration(r.uptime_ms),
        r.config_path,
        r.config_generation
    );
    if let Some(e) = &r.config_error {
        out.push_str(&format!(
            "config reload failed, still running the previous config: {e}\n"
        ));
    }
    if r.services.is_empty() {
        out.push_str("no services configured\n");
        return out;
    }
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}
