//! Configuration: the shipped defaults (`config/default.toml`, compiled in)
//! with the user's `config.toml` laid over them key by key.
//!
//! Errors name the file, line and column, and say what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod validate;

/// The shipped defaults.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bus: BusConfig,
    pub supervisor: SupervisorConfig,
    pub groups: BTreeMap<String, GroupSpec>,
    pub services: BTreeMap<String, ServiceSpec>,
    pub vault: VaultConfig,
    pub memory: MemoryConfig,
    /// The primary model, tried before the cascade when `kind` is set.
    pub provider: ModelEntry,
    /// Model aliases.
    pub models: BTreeMap<String, ModelEntry>,
    pub cascade: CascadeConfig,
    pub fs: FsConfig,
    pub shell: ShellConfig,
    pub web: WebConfig,
    pub agent: AgentConfig,
    pub intents: IntentsConfig,
    pub telegram: TelegramConfig,
    pub embeddings: EmbeddingsConfig,
}

/// The embeddings endpoint semantic memory uses (`[embeddings]`), reached
/// through the llm-router, which holds its key. An empty `kind` means the
/// built-in local embedding only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingsConfig {
    /// `openai` (OpenAI `/embeddings` and compatible servers) or `gemini`
    /// (`batchEmbedContents`); empty for none.
    pub kind: String,
    pub base_url: String,
    pub model: String,
    pub api_key_env: String,
    pub api_key_secret: String,
    pub no_key: bool,
    /// Output dimensions asked for (models that can shorten their
    /// vectors); 0 for the model's own.
    pub dimensions: u32,
}

/// The wire formats that have an embeddings endpoint.
pub const EMBEDDING_KINDS: &[&str] = &["openai", "gemini"];

impl EmbeddingsConfig {
    pub fn enabled(&self) -> bool {
        !self.kind.is_empty()
    }
    /// The same deployment as a model entry (for key resolution).
    pub fn as_model_entry(&self) -> ModelEntry {
        ModelEntry {
            kind: self.kind.clone(),
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            api_key_secret: self.api_key_secret.clone(),
            no_key: self.no_key,
            context_window: 0,
            max_tokens: 0,
        }
    }
}

/// The Telegram gateway (`[telegram]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelegramConfig {
    /// The Bot API up to (not including) `/bot<token>`.
    pub api_base_url: String,
    /// Chats that get answers, besides those paired with `oictl telegram
    /// pair`. Empty means none: never everybody.
    pub allowed_chat_ids: Vec<i64>,
    /// Long-poll timeout of `getUpdates`.
    pub poll_timeout_secs: u64,
    /// Shortest time between two edits of the progress message.
    pub edit_interval_ms: u64,
    /// `html` (Markdown answers rendered as Telegram HTML) or `plain`.
    pub format: String,
    /// Minutes a pairing code from `oictl telegram pair` stays valid.
    pub pair_code_minutes: u64,
}

/// The agent's limits (`[agent]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Model calls with tools per intent; then one last call for a summary.
    pub max_react_turns: u32,
    /// Time limit of every tool call.
    pub tool_timeout_secs: u64,
    /// Time limit of a whole intent.
    pub intent_timeout_secs: u64,
    /// Prompt + completion tokens one intent may use.
    pub token_budget: u64,
    /// Context the conversation is kept within; 0 for the model's window.
    pub context_tokens: u32,
    /// Characters of one tool result put into the prompt at most.
    pub max_tool_result_chars: u64,
    /// Intents run at once; more wait their turn.
    pub max_concurrent_intents: u32,
    /// Instructions added to the system prompt.
    pub instructions: String,
}

/// The intent router (`[intents]`): phrases answered without a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentsConfig {
    pub enabled: bool,
    pub patterns: BTreeMap<String, IntentPattern>,
}

/// Built-in answers a pattern may give.
pub const INTENT_ANSWERS: &[&str] = &["status", "help", "models", "tools", "time"];
/// What may follow a pattern's phrase.
pub const INTENT_RESTS: &[&str] = &["none", "word", "url", "text"];

/// One pattern: phrases that start an intent, and what answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentPattern {
    pub enabled: bool,
    /// Matched at the start of the intent, ignoring ASCII case.
    pub phrases: Vec<String>,
    /// A built-in answer (one of [`INTENT_ANSWERS`]); or
    pub answer: String,
    /// a tool to call directly.
    pub tool: String,
    /// The tool argument the rest of the intent fills.
    pub argument: String,
    /// What may follow the phrase: `none`, `word` (one word or a quoted
    /// string), `url`, or `text` (anything).
    pub rest: String,
    /// The argument's value when nothing follows the phrase; empty means
    /// something must follow.
    pub default: String,
    /// A `text` rest of more words than this is a task for the model, not
    /// an argument ("search the web for X, then write a report"); 0 for
    /// no limit.
    pub max_words: u32,
    /// Shown by `help`.
    pub description: String,
}

impl Default for IntentPattern {
    fn default() -> Self {
        IntentPattern {
            enabled: true,
            phrases: Vec::new(),
            answer: String::new(),
            tool: String::new(),
            argument: String::new(),
            rest: "none".into(),
            default: String::new(),
            max_words: 0,
            description: String::new(),
        }
    }
}

/// The filesystem adapter (`fs_*` tools).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FsConfig {
    /// Directories the tools may touch besides `<data>/workspace`.
    pub roots: Vec<String>,
    /// Largest piece of a file one `fs_read_file` returns.
    pub max_read_bytes: u64,
    /// Largest content one `fs_write_file` accepts.
    pub max_write_bytes: u64,
    /// Matches one `fs_search` returns at most.
    pub search_max_results: u32,
    /// Files larger than this are not searched by content.
    pub search_max_file_bytes: u64,
}

/// A closed vocabulary of the config: a serde enum, so an unknown value
/// is an error at its line and column that names the allowed ones (never
/// a silent default), with `as_str` for its spelling.
macro_rules! vocabulary {
    ($(#[$m:meta])* $name:ident default $def:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $text)] $variant,)+
        }
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                $name::$def
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

vocabulary! {
    /// How the shell adapter decides what runs.
    ShellPolicy default Allowlist {
        /// Only the programs in `allow` run.
        Allowlist = "allowlist",
        /// Everything but the programs in `deny` runs.
        Denylist = "denylist",
        /// Like `allowlist`; any other command waits for `oictl approve`.
        Approval = "approval",
    }
}

vocabulary! {
    /// Whether commands run under Landlock.
    LandlockMode default Auto {
        /// When the kernel has it.
        Auto = "auto",
        /// Or the adapter refuses to start (exit 78).
        Required = "required",
        Off = "off",
    }
}

vocabulary! {
    /// Where `web_search` asks.
    SearchEngine default Duckduckgo {
        Duckduckgo = "duckduckgo",
        /// A SearXNG instance's JSON API at `search_url`.
        Searxng = "searxng",
    }
}

vocabulary! {
    /// Where the vault's master key comes from.
    KeySetting default Auto {
        /// The passphrase when set, else the keyring when it answers, else
        /// the key file.
        Auto = "auto",
        Keyring = "keyring",
        File = "file",
        Passphrase = "passphrase",
    }
}

/// The shell adapter (`shell_execute`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShellConfig {
    /// Default time limit of a command.
    pub timeout_secs: u64,
    /// Longest time limit a call may ask for.
    pub max_timeout_secs: u64,
    /// Bytes of stdout and of stderr kept (the rest is counted, not kept).
    pub max_output_bytes: u64,
    pub policy: ShellPolicy,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    /// Run lines with pipes, `;`, `$(...)` etc. through `sh -c` (every
    /// program in the line is checked by the policy) instead of refusing.
    pub allow_shell_syntax: bool,
    /// PATH of the commands; only programs found on it run.
    pub path: String,
    /// Variables copied from the adapter's environment (never ones that
    /// look like secrets).
    pub env_passthrough: Vec<String>,
    pub landlock: LandlockMode,
    /// Read-only paths a sandboxed command may see besides the roots.
    pub read_only_paths: Vec<String>,
    /// TCP ports a command may connect to (Landlock ABI 4); none by default.
    pub allow_connect_ports: Vec<u16>,
    /// TCP ports a command may bind (Landlock ABI 4); none by default.
    pub allow_bind_ports: Vec<u16>,
}

/// The web adapters (`web_search`, `web_fetch`, `http_request`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub search_engine: SearchEngine,
    pub search_url: String,
    pub max_results: u32,
    /// Seconds a search result stays cached.
    pub cache_secs: u64,
    pub user_agent: String,
    pub timeout_secs: u64,
    pub max_response_bytes: u64,
    pub max_redirects: u32,
    /// Characters of page text one `web_fetch` returns at most.
    pub max_text_chars: u64,
    /// Addresses or networks (`127.0.0.1`, `10.1.0.0/16`) that the SSRF
    /// guard lets through although they are private, loopback or link-local.
    pub allow_addresses: Vec<String>,
}

/// The wire formats the LLM router speaks.
pub const MODEL_KINDS: &[&str] = &["openai", "anthropic", "gemini"];

/// One model deployment: provider, base URL, model and where its key is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelEntry {
    /// `openai` (any OpenAI-compatible server), `anthropic` or `gemini`.
    pub kind: String,
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// Vault secret holding the API key (used when the variable is unset).
    pub api_key_secret: String,
    /// No key needed (a local llama.cpp or Ollama server).
    pub no_key: bool,
    /// Context window in tokens; 0 for unknown.
    pub context_window: u32,
    /// Completion tokens asked for when the request says 0.
    pub max_tokens: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CascadeConfig {
    /// Aliases tried in this order after the primary.
    pub order: Vec<String>,
    /// Cooldown after a transient failure (the provider's hint wins when larger).
    pub cooldown_secs: u64,
    /// Ceiling of the escalating cooldown.
    pub max_cooldown_secs: u64,
    /// Cooldown after an auth, billing or model-not-found failure.
    pub auth_cooldown_secs: u64,
    /// No first byte within this: the deployment counts as stalled.
    pub first_token_timeout_secs: u64,
    /// Longest silence allowed inside a stream.
    pub idle_timeout_secs: u64,
    /// Attempts per request, across deployments.
    pub max_attempts: u32,
    /// Whether a content-policy refusal fails over to the next deployment.
    pub failover_on_content_policy: bool,
    /// Longest a request waits for a cooling deployment to come back; a
    /// longer cooldown is answered at once with when it ends.
    pub max_cooldown_wait_secs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemoryConfig {
    pub history_window: u32,
    /// Episodes kept, newest first; 0 keeps all.
    pub episode_max_count: u64,
    /// Episodes older than this many days go; 0 keeps all.
    pub episode_max_age_days: u64,
    pub readers: u32,
    pub mmap_mb: u64,
    pub cache_entries: u64,
    /// How often episode retention runs (and once at start).
    pub retention_check_secs: u64,
    /// How long a save or a search waits for the provider's embedding
    /// before it goes on with the local one.
    pub embed_timeout_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    pub key_source: KeySetting,
    /// Service name -> secret name patterns it may read.
    pub policy: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BusConfig {
    pub max_frame_bytes: u32,
    pub heartbeat_interval_ms: u64,
    pub default_deadline_ms: u64,
    pub max_connections: u64,
    pub max_connections_per_process: u64,
    pub max_requests_per_connection: u64,
    pub max_queued_bytes: u64,
}

impl BusConfig {
    /// The broker's limits.
    pub fn limits(&self) -> crate::limits::Limits {
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        crate::limits::Limits {
            max_connections: n(self.max_connections),
            max_connections_per_process: n(self.max_connections_per_process),
            max_requests_per_connection: n(self.max_requests_per_connection),
            max_queued_bytes: n(self.max_queued_bytes),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupervisorConfig {
    pub intensity: u32,
    pub period_secs: u64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub backoff_jitter: f64,
    pub min_unready_backoff_ms: u64,
    pub backoff_reset_secs: u64,
    pub start_timeout_secs: u64,
    pub shutdown_timeout_secs: u64,
    pub missed_heartbeats: u32,
    pub log_lines: usize,
    pub config_poll_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    OneForOne,
    RestForOne,
    OneForAll,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartType {
    #[default]
    Permanent,
    Transient,
    Temporary,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupSpec {
    pub strategy: Strategy,
    pub order: i64,
    pub intensity: u32,
    pub period_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceSpec {
    pub kind: Option<String>,
    pub enabled: bool,
    pub group: String,
    pub restart: RestartType,
    pub order: i64,
    pub depends_on: Vec<String>,
    pub start_timeout_secs: Option<u64>,
    pub shutdown_timeout_secs: Option<u64>,
    pub env: BTreeMap<String, String>,
    /// Start only while one of these is present: `env:NAME` (a non-empty
    /// environment variable of openintentd or of `env`) or `secret:NAME`
    /// (a vault secret). Empty: always.
    pub requires: Vec<String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            kind: None,
            enabled: true,
            group: "core".into(),
            restart: RestartType::Permanent,
            order: 100,
            depends_on: Vec::new(),
            start_timeout_secs: None,
            shutdown_timeout_secs: None,
            env: BTreeMap::new(),
            requires: Vec::new(),
        }
    }
}

impl ServiceSpec {
    /// The built-in service this entry runs.
    pub fn kind<'a>(&'a self, name: &'a str) -> &'a str {
        self.kind.as_deref().unwrap_or(name)
    }
}

/// One entry of a service's `requires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// A non-empty environment variable.
    Env(String),
    /// A secret in the vault.
    Secret(String),
}

impl Requirement {
    pub fn parse(s: &str) -> Option<Requirement> {
        let (kind, name) = s.split_once(':')?;
        let name = name.trim();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return None;
        }
        match kind.trim() {
            "env" => Some(Requirement::Env(name.into())),
            "secret" => Some(Requirement::Secret(name.into())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::Env(n) => write!(f, "the environment variable {n}"),
            Requirement::Secret(n) => write!(f, "the vault secret {n}"),
        }
    }
}

/// A configuration error, located in its file where possible.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{}{}: {message}", file.display(), location.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line and column.
    pub location: Option<(usize, usize)>,
    pub message: String,
}

impl Config {
    /// The shipped defaults alone.
    pub fn defaults() -> Config {
        match Self::parse_layers(None, Path::new("config/default.toml")) {
            Ok(c) => c,
            // The defaults are tested; this cannot fail in a released build.
            Err(e) => panic!("shipped defaults are invalid: {e}"),
        }
    }

    /// Loads `path` over the defaults; a missing file means defaults only.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_checked(path, None)
    }

    /// Like [`Config::load`], and every enabled service must be of one of
    /// `known_kinds` (the services compiled into this build).
    pub fn load_checked(path: &Path, known_kinds: Option<&[&str]>) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ConfigError {
                    file: path.to_path_buf(),
                    location: None,
                    message: format!("cannot read: {e}"),
                });
            }
        };
        let config = Self::parse_layers(text.as_deref(), path)?;
        if let Some(known) = known_kinds {
            for (name, spec) in config.services.iter().filter(|(_, s)| s.enabled) {
                let kind = spec.kind(name);
                if !known.contains(&kind) {
                    return Err(ConfigError {
                        file: path.to_path_buf(),
                        location: text
                            .as_deref()
                            .and_then(|t| find_key(t, &format!("services.{name}"))),
                        message: format!(
                            "service '{name}' is of kind '{kind}', which this build does not have (kinds: {})",
                            known.join(", ")
                        ),
                    });
                }
            }
        }
        Ok(config)
    }

    /// Parses the user's text (if any) over the defaults.
    pub fn parse_layers(user: Option<&str>, file: &Path) -> Result<Config, ConfigError> {
        let mut base: toml::Table = toml::from_str(DEFAULT_TOML)
            .map_err(|e| located(e, DEFAULT_TOML, Path::new("config/default.toml")))?;
        if let Some(text) = user {
            // First pass: the user's file alone, so type errors and unknown
            // keys are reported with their line and column.
            let _: Config = toml::from_str(text).map_err(|e| located(e, text, file))?;
            let layer: toml::Table = toml::from_str(text).map_err(|e| located(e, text, file))?;
            merge(&mut base, layer);
        }
        let config: Config =
            toml::Value::Table(base)
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError {
                    file: file.to_path_buf(),
                    location: None,
                    message: e.message().to_string(),
                })?;
        config.validate().map_err(|(key, message)| ConfigError {
            file: file.to_path_buf(),
            location: user.and_then(|t| find_key(t, &key)),
            message,
        })?;
        Ok(config)
    }

    /// The config as TOML text (sent to services in `ConfigChanged`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.bus.heartbeat_interval_ms)
    }
}

/// An address (`127.0.0.1`, `::1`) or network (`10.0.0.0/8`) of
/// `web.allow_addresses`.
pub fn parse_net(s: &str) -> Option<ipnet::IpNet> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// Lays `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn located(e: toml::de::Error, text: &str, file: &Path) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        location: e.span().map(|s| line_col(text, s.start)),
        message: e.message().trim().to_string(),
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Finds where a dotted key path (`services.vault`) is defined in the text:
/// its table header, or the last segment as a key.
fn find_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let header = format!("[{key}]");
    let last = key.rsplit('.').next().unwrap_or(key);
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with(&header)
            || trimmed.starts_with(&format!("{last} "))
            || trimmed.starts_with(&format!("{last}="))
        {
            return Some(line_col(text, offset + (line.len() - trimmed.len())));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests;
