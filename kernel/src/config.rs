//! Configuration: the shipped defaults (`config/default.toml`, compiled in)
//! with the user's `config.toml` laid over them key by key.
//!
//! The kernel owns the loader and its own sections (`[bus]`,
//! `[supervisor]`, `[groups]`, `[services]`); every other section belongs
//! to the crate that uses it ([`Section`]), which defines its type and its
//! checks. Errors name the file, line and column, and say what was
//! expected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod section;
mod validate;

pub use section::{Invalid, Section, SectionRule, at_least_one, http_url, pick_account};

/// The shipped defaults.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// The sections the kernel owns.
const OWN: &[&str] = &["bus", "supervisor", "groups", "services"];

/// The whole configuration: the kernel's sections typed, the others kept
/// as the merged TOML their owners read with [`Config::section`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    pub bus: BusConfig,
    pub supervisor: SupervisorConfig,
    pub groups: BTreeMap<String, GroupSpec>,
    pub services: BTreeMap<String, ServiceSpec>,
    sections: toml::Table,
}

/// The kernel's part of a file, read alone so its type errors are located.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Own {
    bus: BusConfig,
    supervisor: SupervisorConfig,
    groups: BTreeMap<String, GroupSpec>,
    services: BTreeMap<String, ServiceSpec>,
}

/// What this build knows: the service kinds compiled in and every section
/// their crates own. With it, a section nobody owns is an error.
#[derive(Debug, Clone, Default)]
pub struct Build {
    pub kinds: Vec<&'static str>,
    pub sections: Vec<SectionRule>,
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
    /// A non-empty table (or value) at this dotted path of the config
    /// (`config:email.accounts`).
    Config(String),
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
            "config" => Some(Requirement::Config(name.into())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Requirement::Env(n) => write!(f, "the environment variable {n}"),
            Requirement::Secret(n) => write!(f, "the vault secret {n}"),
            Requirement::Config(n) => write!(f, "a [{n}] table in the config"),
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
    /// Only the kernel's sections are checked (a service reads and checks
    /// its own with [`Config::section`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_checked(path, None)
    }

    /// Like [`Config::load`], and with `build`: every enabled service is of
    /// a kind compiled in, every section has an owner, and every owner's
    /// checks pass.
    pub fn load_checked(path: &Path, build: Option<&Build>) -> Result<Config, ConfigError> {
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
        let config =
            Self::parse_checked(text.as_deref(), path, build.map(|b| b.sections.as_slice()))?;
        if let Some(known) = build.map(|b| b.kinds.as_slice()) {
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

    /// Parses the user's text (if any) over the defaults, checking the
    /// kernel's sections.
    pub fn parse_layers(user: Option<&str>, file: &Path) -> Result<Config, ConfigError> {
        Self::parse_checked(user, file, None)
    }

    /// Like [`Config::parse_layers`], and with `sections`, every top-level
    /// key must be the kernel's or one of them, and each passes its checks.
    pub fn parse_checked(
        user: Option<&str>,
        file: &Path,
        sections: Option<&[SectionRule]>,
    ) -> Result<Config, ConfigError> {
        let mut merged: toml::Table = toml::from_str(DEFAULT_TOML)
            .map_err(|e| located(e, DEFAULT_TOML, Path::new("config/default.toml")))?;
        if let Some(text) = user {
            // The user's file alone first, so syntax and type errors of the
            // kernel's sections are reported with their line and column.
            let _: Own = toml::from_str(text).map_err(|e| located(e, text, file))?;
            let layer: toml::Table = toml::from_str(text).map_err(|e| located(e, text, file))?;
            if let Some(rules) = sections
                && let Some(key) = layer
                    .keys()
                    .find(|k| !OWN.contains(&k.as_str()) && !rules.iter().any(|r| r.name == *k))
            {
                let mut known: Vec<&str> = OWN.to_vec();
                known.extend(rules.iter().map(|r| r.name));
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    location: find_key(text, key),
                    message: format!("unknown section '{key}' (sections: {})", known.join(", ")),
                });
            }
            merge(&mut merged, layer);
        }
        let mut own = toml::Table::new();
        for key in OWN {
            if let Some(v) = merged.remove(*key) {
                own.insert((*key).to_string(), v);
            }
        }
        let own: Own = toml::Value::Table(own)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError {
                file: file.to_path_buf(),
                location: None,
                message: e.message().to_string(),
            })?;
        let config = Config {
            bus: own.bus,
            supervisor: own.supervisor,
            groups: own.groups,
            services: own.services,
            sections: merged,
        };
        let refused = |key: String, message: String| ConfigError {
            file: file.to_path_buf(),
            location: user.and_then(|t| find_key(t, &key)),
            message,
        };
        config
            .validate()
            .map_err(|(key, message)| refused(key, message))?;
        for rule in sections.unwrap_or_default() {
            rule.check(&config, user).map_err(|fault| match fault {
                section::Fault::Typed(offset, message) => ConfigError {
                    file: file.to_path_buf(),
                    location: offset.zip(user).map(|(o, t)| line_col(t, o)),
                    message,
                },
                section::Fault::Refused(Invalid { key, message }) => refused(key, message),
            })?;
        }
        Ok(config)
    }

    /// The section `S` from the merged config, checked. A service calls this
    /// at start and on every change; `openintentd` has already refused a
    /// file whose section fails, so an error here means the service was run
    /// with a config nobody checked.
    pub fn section<S: Section>(&self) -> Result<S, ConfigError> {
        let fail = |message: String| ConfigError {
            file: PathBuf::from("config"),
            location: None,
            message: format!("[{}] {message}", S::NAME),
        };
        let s: S = self.section_value().map_err(fail)?;
        s.validate(self).map_err(|i| fail(i.message))?;
        Ok(s)
    }

    /// The section `S` as the merged TOML gives it (its default when the
    /// section is absent), unchecked.
    fn section_value<S: Section>(&self) -> Result<S, String> {
        match self.sections.get(S::NAME) {
            None => Ok(S::default()),
            Some(v) => v
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| e.message().trim().to_string()),
        }
    }

    /// Replaces section `S` (for tools and tests that build a config).
    pub fn set_section<S: Section>(&mut self, section: &S) {
        match toml::Value::try_from(section) {
            Ok(v) => {
                self.sections.insert(S::NAME.to_string(), v);
            }
            // Section types are tables of plain values; they serialize.
            Err(e) => panic!("section [{}] does not serialize: {e}", S::NAME),
        }
    }

    /// The config as TOML text (sent to services in `ConfigChanged`).
    pub fn to_toml(&self) -> String {
        let mut table = self.sections.clone();
        let own = [
            ("bus", toml::Value::try_from(&self.bus)),
            ("supervisor", toml::Value::try_from(&self.supervisor)),
            ("groups", toml::Value::try_from(&self.groups)),
            ("services", toml::Value::try_from(&self.services)),
        ];
        for (key, value) in own {
            if let Ok(v) = value {
                table.insert(key.to_string(), v);
            }
        }
        toml::to_string(&table).unwrap_or_default()
    }

    /// Whether the sections hold a non-empty value at the dotted `path`.
    pub fn has(&self, path: &str) -> bool {
        let mut parts = path.split('.');
        let Some(first) = parts.next() else {
            return false;
        };
        let mut v = self.sections.get(first);
        for p in parts {
            v = v.and_then(|x| x.get(p));
        }
        match v {
            None => false,
            Some(toml::Value::Table(t)) => !t.is_empty(),
            Some(toml::Value::Array(a)) => !a.is_empty(),
            Some(toml::Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.bus.heartbeat_interval_ms)
    }
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
    // A key inside an inline table (`imap = { tls = "none" }`) is found
    // where its table is.
    let mut k = key;
    loop {
        if let Some(at) = find_exact_key(text, k) {
            return Some(at);
        }
        k = k.rsplit_once('.')?.0;
    }
}

fn find_exact_key(text: &str, key: &str) -> Option<(usize, usize)> {
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
