//! Configuration: the shipped defaults (`config/default.toml`, compiled in)
//! with the user's `config.toml` laid over them key by key.
//!
//! Errors name the file, line and column, and say what was expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

/// Policies of the shell adapter.
pub const SHELL_POLICIES: &[&str] = &["allowlist", "denylist", "approval"];

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
    /// `allowlist`, `denylist` or `approval`.
    pub policy: String,
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
    /// `auto` (use Landlock when the kernel has it), `required` or `off`.
    pub landlock: String,
    /// Read-only paths a sandboxed command may see besides the roots.
    pub read_only_paths: Vec<String>,
    /// TCP ports a command may connect to (Landlock ABI 4); none by default.
    pub allow_connect_ports: Vec<u16>,
    /// TCP ports a command may bind (Landlock ABI 4); none by default.
    pub allow_bind_ports: Vec<u16>,
}

/// Search engines `web_search` speaks.
pub const SEARCH_ENGINES: &[&str] = &["duckduckgo", "searxng"];

/// The web adapters (`web_search`, `web_fetch`, `http_request`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// `duckduckgo` (its HTML endpoint) or `searxng` (its JSON API).
    pub search_engine: String,
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
    /// `auto`, `keyring`, `file` or `passphrase`.
    pub key_source: String,
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

    /// Cross-field checks: groups exist, dependencies exist and form no
    /// cycle, durations are positive. Returns the offending key path.
    fn validate(&self) -> Result<(), (String, String)> {
        self.validate_ranges()?;
        if !(0.0..=1.0).contains(&self.supervisor.backoff_jitter) {
            return Err((
                "supervisor.backoff_jitter".into(),
                "supervisor.backoff_jitter must be between 0.0 and 1.0".into(),
            ));
        }
        if !["auto", "keyring", "file", "passphrase"].contains(&self.vault.key_source.as_str()) {
            return Err((
                "vault.key_source".into(),
                format!(
                    "vault.key_source is '{}'; use auto, keyring, file or passphrase",
                    self.vault.key_source
                ),
            ));
        }
        self.validate_models()?;
        self.validate_adapters()?;
        self.validate_agent()?;
        self.validate_telegram()?;
        self.validate_memory()?;
        for (name, spec) in &self.services {
            if !valid_name(name) {
                return Err((
                    format!("services.{name}"),
                    format!("service name '{name}' may only contain a-z, 0-9, '-' and '_'"),
                ));
            }
            if !self.groups.contains_key(&spec.group) {
                let known: Vec<&str> = self.groups.keys().map(String::as_str).collect();
                return Err((
                    format!("services.{name}"),
                    format!(
                        "service '{name}' is in group '{}', which is not defined (groups: {})",
                        spec.group,
                        known.join(", ")
                    ),
                ));
            }
            for r in &spec.requires {
                if Requirement::parse(r).is_none() {
                    return Err((
                        format!("services.{name}"),
                        format!(
                            "services.{name}.requires: '{r}' is neither 'env:<VARIABLE>' nor 'secret:<vault secret>'"
                        ),
                    ));
                }
            }
            for dep in &spec.depends_on {
                match self.services.get(dep) {
                    None => {
                        return Err((
                            format!("services.{name}"),
                            format!(
                                "service '{name}' depends on '{dep}', which is not a configured service"
                            ),
                        ));
                    }
                    Some(d) if !d.enabled && spec.enabled => {
                        return Err((
                            format!("services.{name}"),
                            format!("service '{name}' depends on '{dep}', which is disabled"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(cycle) = self.dependency_cycle() {
            return Err((
                format!("services.{}", cycle[0]),
                format!(
                    "services depend on each other in a cycle: {}",
                    cycle.join(" -> ")
                ),
            ));
        }
        Ok(())
    }

    /// Every timing and size of the bus and the supervisor within a range
    /// that works: a 1 ms heartbeat makes the watchdog kill healthy
    /// services, a huge one turns it off, a zero timeout never lets a
    /// service start. The same checks run at start and on every reload.
    fn validate_ranges(&self) -> Result<(), (String, String)> {
        const DAY_MS: u64 = 86_400_000;
        let b = &self.bus;
        let s = &self.supervisor;
        let mut fields: Vec<(String, u64, u64, u64)> = vec![
            (
                "bus.max_frame_bytes".into(),
                u64::from(b.max_frame_bytes),
                1024,
                1 << 30,
            ),
            (
                "bus.heartbeat_interval_ms".into(),
                b.heartbeat_interval_ms,
                50,
                60_000,
            ),
            (
                "bus.default_deadline_ms".into(),
                b.default_deadline_ms,
                1,
                DAY_MS,
            ),
            // Above the services' reserve, so clients get some too.
            (
                "bus.max_connections".into(),
                b.max_connections,
                crate::limits::SERVICE_RESERVE as u64 + 8,
                65_536,
            ),
            (
                "bus.max_connections_per_process".into(),
                b.max_connections_per_process,
                2,
                65_536,
            ),
            (
                "bus.max_requests_per_connection".into(),
                b.max_requests_per_connection,
                8,
                1_000_000,
            ),
            (
                "bus.max_queued_bytes".into(),
                b.max_queued_bytes,
                1 << 20,
                1 << 34,
            ),
            (
                "supervisor.intensity".into(),
                u64::from(s.intensity),
                0,
                1_000_000,
            ),
            ("supervisor.period_secs".into(), s.period_secs, 1, 86_400),
            (
                "supervisor.backoff_initial_ms".into(),
                s.backoff_initial_ms,
                1,
                3_600_000,
            ),
            (
                "supervisor.backoff_max_ms".into(),
                s.backoff_max_ms,
                s.backoff_initial_ms,
                DAY_MS,
            ),
            (
                "supervisor.min_unready_backoff_ms".into(),
                s.min_unready_backoff_ms,
                0,
                3_600_000,
            ),
            (
                "supervisor.backoff_reset_secs".into(),
                s.backoff_reset_secs,
                0,
                86_400,
            ),
            (
                "supervisor.start_timeout_secs".into(),
                s.start_timeout_secs,
                1,
                3600,
            ),
            (
                "supervisor.shutdown_timeout_secs".into(),
                s.shutdown_timeout_secs,
                1,
                3600,
            ),
            (
                "supervisor.missed_heartbeats".into(),
                u64::from(s.missed_heartbeats),
                1,
                1000,
            ),
            (
                "supervisor.log_lines".into(),
                s.log_lines as u64,
                1,
                1_000_000,
            ),
            (
                "supervisor.config_poll_ms".into(),
                s.config_poll_ms,
                50,
                3_600_000,
            ),
        ];
        for (name, g) in &self.groups {
            fields.push((
                format!("groups.{name}.intensity"),
                u64::from(g.intensity),
                0,
                1_000_000,
            ));
            fields.push((
                format!("groups.{name}.period_secs"),
                g.period_secs,
                1,
                86_400,
            ));
        }
        for (name, spec) in &self.services {
            if let Some(t) = spec.start_timeout_secs {
                fields.push((format!("services.{name}.start_timeout_secs"), t, 1, 3600));
            }
            if let Some(t) = spec.shutdown_timeout_secs {
                fields.push((format!("services.{name}.shutdown_timeout_secs"), t, 1, 3600));
            }
        }
        match fields.iter().find(|(_, v, lo, hi)| v < lo || v > hi) {
            Some((key, v, lo, hi)) => {
                // A group's or a service's key is located at its table.
                let at = match key.split('.').collect::<Vec<_>>().as_slice() {
                    [t @ ("groups" | "services"), name, _] => format!("{t}.{name}"),
                    _ => key.clone(),
                };
                Err((
                    at,
                    format!("{key} is {v}; it must be between {lo} and {hi}"),
                ))
            }
            None => Ok(()),
        }
    }

    fn validate_models(&self) -> Result<(), (String, String)> {
        let entries = std::iter::once(("provider".to_string(), &self.provider))
            .filter(|(_, e)| !e.kind.is_empty())
            .chain(self.models.iter().map(|(a, e)| (format!("models.{a}"), e)));
        for (key, e) in entries {
            if !MODEL_KINDS.contains(&e.kind.as_str()) {
                return Err((
                    key.clone(),
                    format!(
                        "{key}: kind is '{}'; use {}",
                        e.kind,
                        MODEL_KINDS.join(", ")
                    ),
                ));
            }
            if e.model.is_empty() {
                return Err((key.clone(), format!("{key}: 'model' is required")));
            }
            if !http_url(&e.base_url) {
                return Err((
                    key.clone(),
                    format!(
                        "{key}: base_url '{}' must start with http:// or https://",
                        e.base_url
                    ),
                ));
            }
        }
        for alias in &self.cascade.order {
            if !self.models.contains_key(alias) {
                return Err((
                    "cascade.order".into(),
                    format!("cascade.order names '{alias}', which is not a [models.{alias}] entry"),
                ));
            }
        }
        at_least_one(&[("cascade.max_attempts", u64::from(self.cascade.max_attempts))])?;
        if self.cascade.first_token_timeout_secs == 0 || self.cascade.idle_timeout_secs == 0 {
            return Err((
                "cascade".into(),
                "cascade.first_token_timeout_secs and idle_timeout_secs must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn validate_memory(&self) -> Result<(), (String, String)> {
        let m = &self.memory;
        at_least_one(&[
            ("memory.retention_check_secs", m.retention_check_secs),
            ("memory.embed_timeout_ms", m.embed_timeout_ms),
        ])?;
        let e = &self.embeddings;
        if !e.enabled() {
            return Ok(());
        }
        if e.kind == "anthropic" {
            return Err((
                "embeddings.kind".into(),
                "embeddings.kind: Anthropic has no embeddings endpoint; use kind = \"openai\" (OpenAI, Voyage AI, Ollama, llama.cpp and other compatible servers) or \"gemini\"".into(),
            ));
        }
        if !EMBEDDING_KINDS.contains(&e.kind.as_str()) {
            return Err((
                "embeddings.kind".into(),
                format!(
                    "embeddings.kind is '{}'; use {} (or leave it empty for the built-in local embedding only)",
                    e.kind,
                    EMBEDDING_KINDS.join(", ")
                ),
            ));
        }
        if e.model.is_empty() {
            return Err((
                "embeddings.model".into(),
                "embeddings: 'model' is required".into(),
            ));
        }
        if !http_url(&e.base_url) {
            return Err((
                "embeddings.base_url".into(),
                format!(
                    "embeddings.base_url '{}' must start with http:// or https://",
                    e.base_url
                ),
            ));
        }
        Ok(())
    }

    fn validate_adapters(&self) -> Result<(), (String, String)> {
        if !SHELL_POLICIES.contains(&self.shell.policy.as_str()) {
            return Err((
                "shell.policy".into(),
                format!(
                    "shell.policy is '{}'; use {}",
                    self.shell.policy,
                    SHELL_POLICIES.join(", ")
                ),
            ));
        }
        if !["auto", "required", "off"].contains(&self.shell.landlock.as_str()) {
            return Err((
                "shell.landlock".into(),
                format!(
                    "shell.landlock is '{}'; use auto, required or off",
                    self.shell.landlock
                ),
            ));
        }
        if self.shell.timeout_secs == 0 || self.shell.max_timeout_secs < self.shell.timeout_secs {
            return Err((
                "shell.timeout_secs".into(),
                "shell.timeout_secs must be at least 1 and at most shell.max_timeout_secs".into(),
            ));
        }
        if !SEARCH_ENGINES.contains(&self.web.search_engine.as_str()) {
            return Err((
                "web.search_engine".into(),
                format!(
                    "web.search_engine is '{}'; use {}",
                    self.web.search_engine,
                    SEARCH_ENGINES.join(", ")
                ),
            ));
        }
        if !http_url(&self.web.search_url) {
            return Err((
                "web.search_url".into(),
                format!(
                    "web.search_url '{}' must start with http:// or https://",
                    self.web.search_url
                ),
            ));
        }
        for a in &self.web.allow_addresses {
            if parse_net(a).is_none() {
                return Err((
                    "web.allow_addresses".into(),
                    format!(
                        "web.allow_addresses: '{a}' is not an IP address or network (like 127.0.0.1 or 10.1.0.0/16)"
                    ),
                ));
            }
        }
        at_least_one(&[("web.timeout_secs", self.web.timeout_secs)])?;
        Ok(())
    }

    fn validate_telegram(&self) -> Result<(), (String, String)> {
        let t = &self.telegram;
        let url = t.api_base_url.trim_end_matches('/');
        if !http_url(url) || url.len() < 10 {
            return Err((
                "telegram.api_base_url".into(),
                format!(
                    "telegram.api_base_url is '{}'; give an http(s) URL such as https://api.telegram.org",
                    t.api_base_url
                ),
            ));
        }
        if !(1..=50).contains(&t.poll_timeout_secs) {
            return Err((
                "telegram.poll_timeout_secs".into(),
                "telegram.poll_timeout_secs must be between 1 and 50 (Telegram's limit)".into(),
            ));
        }
        if !["html", "plain"].contains(&t.format.as_str()) {
            return Err((
                "telegram.format".into(),
                format!("telegram.format is '{}'; use html or plain", t.format),
            ));
        }
        at_least_one(&[("telegram.pair_code_minutes", t.pair_code_minutes)])?;
        Ok(())
    }

    fn validate_agent(&self) -> Result<(), (String, String)> {
        let a = &self.agent;
        at_least_one(&[
            ("agent.max_react_turns", u64::from(a.max_react_turns)),
            ("agent.tool_timeout_secs", a.tool_timeout_secs),
            ("agent.intent_timeout_secs", a.intent_timeout_secs),
            ("agent.token_budget", a.token_budget),
            (
                "agent.max_concurrent_intents",
                u64::from(a.max_concurrent_intents),
            ),
        ])?;
        for (name, p) in &self.intents.patterns {
            let key = format!("intents.patterns.{name}");
            let fail = |m: String| Err((key.clone(), format!("{key}: {m}")));
            if !p.enabled {
                continue;
            }
            if p.phrases.is_empty() || p.phrases.iter().any(|ph| ph.trim().is_empty()) {
                return fail("'phrases' must list at least one non-empty phrase".into());
            }
            match (p.answer.is_empty(), p.tool.is_empty()) {
                (true, true) | (false, false) => {
                    return fail("set exactly one of 'answer' (a built-in) and 'tool'".into());
                }
                (false, true) if !INTENT_ANSWERS.contains(&p.answer.as_str()) => {
                    return fail(format!(
                        "answer is '{}'; use {}",
                        p.answer,
                        INTENT_ANSWERS.join(", ")
                    ));
                }
                _ => {}
            }
            if !INTENT_RESTS.contains(&p.rest.as_str()) {
                return fail(format!(
                    "rest is '{}'; use {}",
                    p.rest,
                    INTENT_RESTS.join(", ")
                ));
            }
            if !p.tool.is_empty() && p.rest != "none" && p.argument.is_empty() {
                return fail(
                    "a tool pattern with a rest needs 'argument' (the field it fills)".into(),
                );
            }
        }
        Ok(())
    }

    fn dependency_cycle(&self) -> Option<Vec<String>> {
        fn visit<'a>(
            c: &'a Config,
            n: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut std::collections::BTreeSet<&'a str>,
        ) -> Option<Vec<String>> {
            if let Some(i) = stack.iter().position(|s| *s == n) {
                let mut cycle: Vec<String> = stack[i..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            if done.contains(n) {
                return None;
            }
            stack.push(n);
            for d in c
                .services
                .get(n)
                .map(|s| s.depends_on.as_slice())
                .unwrap_or_default()
            {
                if let Some(cycle) = visit(c, d, stack, done) {
                    return Some(cycle);
                }
            }
            stack.pop();
            done.insert(n);
            None
        }
        let mut done = std::collections::BTreeSet::new();
        for name in self.services.keys() {
            if let Some(c) = visit(self, name, &mut Vec::new(), &mut done) {
                return Some(c);
            }
        }
        None
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

/// The first of `fields` (key path, value) that is 0, as an error.
fn at_least_one(fields: &[(&str, u64)]) -> Result<(), (String, String)> {
    match fields.iter().find(|(_, v)| *v == 0) {
        Some((key, _)) => Err((key.to_string(), format!("{key} must be at least 1"))),
        None => Ok(()),
    }
}

/// Whether `url` is an http or https URL (the scheme only).
fn http_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
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
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_layers(Some(text), Path::new("/etc/oi/config.toml"))
    }

    #[test]
    fn shipped_defaults_are_complete() {
        let c = Config::defaults();
        assert_eq!(c.bus.max_frame_bytes, 8 * 1024 * 1024);
        assert_eq!(c.bus.heartbeat_interval_ms, 1000);
        assert_eq!(c.supervisor.backoff_max_ms, 30_000);
        assert_eq!(c.supervisor.missed_heartbeats, 3);
        assert_eq!(c.groups["core"].strategy, Strategy::RestForOne);
        assert_eq!(c.groups["adapters"].strategy, Strategy::OneForOne);
        assert_eq!(
            (c.groups["core"].intensity, c.groups["core"].period_secs),
            (5, 30)
        );
        // Every key of every section is present in the file: parsing the
        // defaults over zeroed structs must not leave any zero behind.
        let s = &c.supervisor;
        for v in [
            s.intensity as u64,
            s.period_secs,
            s.backoff_initial_ms,
            s.backoff_max_ms,
            s.min_unready_backoff_ms,
            s.backoff_reset_secs,
            s.start_timeout_secs,
            s.shutdown_timeout_secs,
            s.log_lines as u64,
            s.config_poll_ms,
            c.bus.default_deadline_ms,
        ] {
            assert_ne!(v, 0);
        }
    }

    #[test]
    fn user_file_overrides_key_by_key() {
        let c = parse("[supervisor]\nintensity = 9\n\n[services.chaos]\ngroup = \"adapters\"\n")
            .unwrap();
        assert_eq!(c.supervisor.intensity, 9);
        assert_eq!(c.supervisor.period_secs, 120);
        assert_eq!(c.services["chaos"].group, "adapters");
        assert!(c.services["chaos"].enabled);
        assert_eq!(c.services["chaos"].restart, RestartType::Permanent);
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let e = parse("[bus]\nmax_frame_bytes = = 3\n").unwrap_err();
        assert_eq!(e.location, Some((2, 19)), "{e}");
        assert!(
            e.to_string().starts_with("/etc/oi/config.toml:2:19: "),
            "{e}"
        );
    }

    #[test]
    fn type_error_has_line_column_and_expectation() {
        let e = parse("[supervisor]\n\nintensity = \"five\"\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(3), "{e}");
        assert!(
            e.message.contains("u32") || e.message.contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_is_refused_with_its_location() {
        let e = parse("[bus]\nheartbeat_ms = 5\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)), "{e}");
        assert!(e.message.contains("heartbeat_ms"), "{e}");
        let e = parse("[services.x]\nrestart = \"sometimes\"\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
        assert!(e.message.contains("permanent"), "{e}");
    }

    #[test]
    fn semantic_errors_point_at_the_service() {
        let e = parse("[services.a]\ngroup = \"nope\"\n").unwrap_err();
        assert_eq!(e.location, Some((1, 1)));
        assert!(
            e.message.contains("group 'nope', which is not defined"),
            "{e}"
        );
        let e = parse("[services.a]\ndepends_on = [\"b\"]\n[services.b]\ndepends_on = [\"a\"]\n")
            .unwrap_err();
        assert!(e.message.contains("cycle: a -> b -> a"), "{e}");
        let e = parse("[services.a]\ndepends_on = [\"ghost\"]\n").unwrap_err();
        assert!(
            e.message
                .contains("'ghost', which is not a configured service"),
            "{e}"
        );
        let e = parse("[services.Bad]\n").unwrap_err();
        assert!(e.message.contains("may only contain"), "{e}");
    }

    #[test]
    fn timings_outside_their_range_are_refused_with_their_location() {
        for (text, key, line) in [
            (
                "[bus]\nheartbeat_interval_ms = 1\n",
                "bus.heartbeat_interval_ms is 1",
                2,
            ),
            (
                "[bus]\nheartbeat_interval_ms = 99999999999\n",
                "bus.heartbeat_interval_ms is 99999999999",
                2,
            ),
            (
                "[supervisor]\nstart_timeout_secs = 0\n",
                "supervisor.start_timeout_secs is 0",
                2,
            ),
            (
                "[supervisor]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100\n",
                "supervisor.backoff_max_ms is 100; it must be between 500",
                3,
            ),
            (
                "[supervisor]\nmissed_heartbeats = 0\n",
                "supervisor.missed_heartbeats is 0",
                2,
            ),
            (
                "[services.vault]\nstart_timeout_secs = 0\n",
                "services.vault.start_timeout_secs is 0",
                1,
            ),
            (
                "[groups.core]\nperiod_secs = 0\n",
                "groups.core.period_secs is 0",
                1,
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.message.contains(key), "{text}: {e}");
            assert!(e.message.contains("it must be between"), "{e}");
            assert_eq!(e.location.map(|l| l.0), Some(line), "{text}: {e}");
        }
        // Edges are accepted.
        parse("[bus]\nheartbeat_interval_ms = 50\n[supervisor]\nstart_timeout_secs = 1\nintensity = 0\n").unwrap();
    }

    #[test]
    fn unknown_service_kind_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "\n[services.mail]\nkind = \"imap\"\n").unwrap();
        let kinds = [
            "vault",
            "memory",
            "llm-router",
            "fs",
            "shell",
            "web",
            "http",
            "agent",
            "telegram",
        ];
        let e = Config::load_checked(&p, Some(&kinds)).unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(
            e.message.contains(
                "kind 'imap', which this build does not have (kinds: vault, memory, llm-router, fs, shell, web, http, agent, telegram)"
            ),
            "{e}"
        );
        assert!(Config::load_checked(&p, None).is_ok());
    }

    #[test]
    fn telegram_settings_and_service_requirements_are_checked_with_their_location() {
        let c = parse("").unwrap();
        assert_eq!(c.telegram.api_base_url, "https://api.telegram.org");
        assert!(c.telegram.allowed_chat_ids.is_empty());
        assert_eq!(
            c.services["telegram"].requires,
            ["env:TELEGRAM_BOT_TOKEN", "secret:telegram-bot-token"]
        );
        let e = parse("[telegram]\npoll_timeout_secs = 90\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(e.message.contains("between 1 and 50"), "{e}");
        let e = parse("\n[telegram]\napi_base_url = \"api.telegram.org\"\n").unwrap_err();
        assert_eq!(e.location, Some((3, 1)));
        assert!(e.message.contains("give an http(s) URL"), "{e}");
        let e = parse("[telegram]\nformat = \"markdown\"\n").unwrap_err();
        assert!(e.message.contains("use html or plain"), "{e}");
        let e = parse("[telegram]\nallowed_chat_ids = [\"me\"]\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
        let e = parse("\n[services.telegram]\nrequires = [\"token:X\"]\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(
            e.message
                .contains("'token:X' is neither 'env:<VARIABLE>' nor 'secret:<vault secret>'"),
            "{e}"
        );
        assert_eq!(
            Requirement::parse("secret:telegram-bot-token"),
            Some(Requirement::Secret("telegram-bot-token".into()))
        );
        assert_eq!(Requirement::parse("env:"), None);
    }

    #[test]
    fn embeddings_and_memory_settings_are_checked_with_their_location() {
        let c = parse("").unwrap();
        assert!(c.embeddings.enabled());
        assert_eq!(c.embeddings.api_key_secret, "openai-api-key");
        assert_eq!(c.memory.retention_check_secs, 60);
        let off = parse("[embeddings]\nkind = \"\"\n").unwrap();
        assert!(!off.embeddings.enabled());
        let e = parse("\n[embeddings]\nkind = \"anthropic\"\n").unwrap_err();
        assert_eq!(e.location, Some((3, 1)));
        assert!(
            e.message.contains("Anthropic has no embeddings endpoint"),
            "{e}"
        );
        let e = parse("[embeddings]\nkind = \"cohere\"\n").unwrap_err();
        assert!(e.message.contains("use openai, gemini"), "{e}");
        let e = parse("[embeddings]\nbase_url = \"localhost:11434\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(e.message.contains("must start with http://"), "{e}");
        let e = parse("[memory]\nembed_timeout_ms = 0\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        let e = parse("[embeddings]\ndimensions = -1\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
    }

    #[test]
    fn intent_patterns_and_agent_limits_are_checked_with_their_location() {
        let e = parse("[intents.patterns.deploy]\nphrases = [\"deploy\"]\ntool = \"shell_execute\"\nrest = \"text\"\n").unwrap_err();
        assert_eq!(e.location, Some((1, 1)));
        assert!(e.message.contains("needs 'argument'"), "{e}");
        let e =
            parse("\n[intents.patterns.x]\nphrases = [\"x\"]\nanswer = \"weather\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(
            e.message.contains("answer is 'weather'; use status, help"),
            "{e}"
        );
        let e = parse("[intents.patterns.status]\ntool = \"fs_list_dir\"\n").unwrap_err();
        assert!(e.message.contains("exactly one of 'answer'"), "{e}");
        let e = parse("[agent]\nmax_react_turns = 0\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(
            e.message
                .contains("agent.max_react_turns must be at least 1"),
            "{e}"
        );
        // A pattern switched off is not checked.
        assert!(parse("[intents.patterns.status]\nenabled = false\ntool = \"x\"\n").is_ok());
    }

    #[test]
    fn adapter_settings_are_checked_with_their_location() {
        let e = parse("[shell]\npolicy = \"anything\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)), "{e}");
        assert!(
            e.message.contains("use allowlist, denylist, approval"),
            "{e}"
        );
        let e = parse("[web]\n\nallow_addresses = [\"127.0.0.1\", \"10.0.0.0/33\"]\n").unwrap_err();
        assert_eq!(e.location, Some((3, 1)), "{e}");
        assert!(
            e.message
                .contains("'10.0.0.0/33' is not an IP address or network"),
            "{e}"
        );
        let e = parse("[web]\nsearch_engine = \"bing\"\n").unwrap_err();
        assert!(e.message.contains("use duckduckgo, searxng"), "{e}");
        let c = parse("[web]\nallow_addresses = [\"127.0.0.1\", \"fd00::/8\"]\n").unwrap();
        assert_eq!(c.web.allow_addresses.len(), 2);
        let d = Config::defaults();
        assert_eq!(d.fs.max_read_bytes, 16384);
        assert_eq!(
            (d.shell.timeout_secs, d.shell.policy.as_str()),
            (30, "allowlist")
        );
        assert!(d.shell.deny.contains(&"sudo".to_string()));
        assert_eq!(d.web.search_engine, "duckduckgo");
    }

    #[test]
    fn missing_file_means_defaults() {
        let c = Config::load(Path::new("/nonexistent/openintent/config.toml")).unwrap();
        assert_eq!(c, Config::defaults());
    }
}
