//! oictl's command tree (clap), and what it says of a word that is not one
//! of its commands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use super::lifecycle::ServiceCmd;
use super::vault::VaultCmd;

#[derive(Parser)]
#[command(
    name = "oictl",
    version,
    about = "Control OpenIntentOS: service health, restarts, logs, install"
)]
pub(super) struct Args {
    /// Use config, data and runtime directories under this directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub(super) home: Option<PathBuf>,
    /// Do not start openintentd when it is not running.
    #[arg(long, global = true)]
    pub(super) no_autostart: bool,
    #[command(subcommand)]
    pub(super) command: Cmd,
}

#[derive(Subcommand)]
pub(super) enum Cmd {
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
        #[arg(long, default_value = crate::cli::models::CLI_CHAT)]
        chat: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 900)]
        timeout: u64,
    },
    /// An interactive session that keeps the conversation's history, with
    /// the chat commands (/model, /models, /tokens, /status, /clear,
    /// /reset, /help).
    Chat {
        #[arg(long, default_value = crate::cli::models::CLI_CHAT)]
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
        action: crate::cli::memory::MemoryCmd,
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
        #[arg(long, default_value = crate::cli::models::CLI_CHAT)]
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
        #[arg(long, default_value = crate::cli::models::CLI_CHAT)]
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
    /// Email accounts: `login` runs an OAuth2 login.
    Email {
        #[command(subcommand)]
        action: crate::cli::email::EmailCmd,
    },
    /// The browser adapter: `reset` deletes its profile.
    Browser {
        #[command(subcommand)]
        action: crate::cli::browser::BrowserCmd,
    },
    /// Scheduled intents: add, list, remove, enable, disable, run now, and
    /// what happened to every slot.
    Cron {
        #[command(subcommand)]
        action: crate::cli::cron::CronCmd,
    },
    /// The Telegram gateway: pair a chat, list or remove allowed chats.
    Telegram {
        #[command(subcommand)]
        action: crate::cli::telegram::TelegramCmd,
    },
    /// Install or remove openintentd as a systemd or launchd service.
    Service {
        #[command(subcommand)]
        action: ServiceCmd,
    },
}

#[derive(Subcommand)]
pub(super) enum ModelsCmd {
    /// The same list; with --json, for scripts.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// End cooldowns now (of one alias, or of all): after fixing a key or
    /// starting a local server, try again at once.
    Reset { alias: Option<String> },
}

/// One word that is not a command is a typo, not an intent: sent to the
/// model it would cost tokens and, with tools, could act. Several words,
/// or `oictl ask`, are an intent.
pub(super) fn not_an_intent(words: &[String]) -> Option<String> {
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
