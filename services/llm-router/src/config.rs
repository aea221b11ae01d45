//! The router's sections: `[provider]` (the primary model), `[models.*]`
//! (aliases), `[cascade]` (the failover order and its timings) and
//! `[embeddings]` (the endpoint semantic memory uses, whose key the router
//! holds).

use std::collections::BTreeMap;

use oi_kernel::config::{
    Config, ConfigError, Invalid, Section, SectionRule, at_least_one, http_url,
};
use serde::{Deserialize, Serialize};

use crate::wire::WireKind;

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

impl ModelEntry {
    /// The entry's checks; `key` is where it is (`models.gpt4o`).
    fn check(&self, key: &str) -> Result<(), Invalid> {
        if WireKind::parse(&self.kind).is_none() {
            return Err(Invalid::new(
                key,
                format!("{key}: kind is '{}'; use {}", self.kind, WireKind::names()),
            ));
        }
        if self.model.is_empty() {
            return Err(Invalid::new(key, format!("{key}: 'model' is required")));
        }
        if !http_url(&self.base_url) {
            return Err(Invalid::new(
                key,
                format!(
                    "{key}: base_url '{}' must start with http:// or https://",
                    self.base_url
                ),
            ));
        }
        Ok(())
    }
}

/// `[provider]`: the primary model, tried before the cascade when its
/// `kind` is set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Provider(pub ModelEntry);

impl Section for Provider {
    const NAME: &'static str = "provider";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        match self.0.kind.is_empty() {
            true => Ok(()),
            false => self.0.check("provider"),
        }
    }
}

/// `[models.<alias>]`: the model aliases.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Models(pub BTreeMap<String, ModelEntry>);

impl Section for Models {
    const NAME: &'static str = "models";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        for (alias, e) in &self.0 {
            e.check(&format!("models.{alias}"))?;
        }
        Ok(())
    }
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

impl Section for CascadeConfig {
    const NAME: &'static str = "cascade";
    fn validate(&self, config: &Config) -> Result<(), Invalid> {
        let models = config
            .section::<Models>()
            .map_err(|e| Invalid::new("models", e.message))?;
        for alias in &self.order {
            if !models.0.contains_key(alias) {
                return Err(Invalid::new(
                    "cascade.order",
                    format!("cascade.order names '{alias}', which is not a [models.{alias}] entry"),
                ));
            }
        }
        at_least_one(&[("cascade.max_attempts", u64::from(self.max_attempts))])?;
        if self.first_token_timeout_secs == 0 || self.idle_timeout_secs == 0 {
            return Err(Invalid::new(
                "cascade",
                "cascade.first_token_timeout_secs and idle_timeout_secs must be at least 1",
            ));
        }
        Ok(())
    }
}

/// `[embeddings]`: the endpoint semantic memory uses, reached through the
/// router, which holds its key. An empty `kind` means the built-in local
/// embedding only.
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

impl Section for EmbeddingsConfig {
    const NAME: &'static str = "embeddings";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        if !self.enabled() {
            return Ok(());
        }
        match WireKind::parse(&self.kind) {
            Some(WireKind::Anthropic) => {
                return Err(Invalid::new(
                    "embeddings.kind",
                    "embeddings.kind: Anthropic has no embeddings endpoint; use kind = \"openai\" (OpenAI, Voyage AI, Ollama, llama.cpp and other compatible servers) or \"gemini\"",
                ));
            }
            Some(_) => {}
            None => {
                return Err(Invalid::new(
                    "embeddings.kind",
                    format!(
                        "embeddings.kind is '{}'; use openai, gemini (or leave it empty for the built-in local embedding only)",
                        self.kind
                    ),
                ));
            }
        }
        if self.model.is_empty() {
            return Err(Invalid::new(
                "embeddings.model",
                "embeddings: 'model' is required",
            ));
        }
        if !http_url(&self.base_url) {
            return Err(Invalid::new(
                "embeddings.base_url",
                format!(
                    "embeddings.base_url '{}' must start with http:// or https://",
                    self.base_url
                ),
            ));
        }
        Ok(())
    }
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[
    SectionRule::of::<Provider>(),
    SectionRule::of::<Models>(),
    SectionRule::of::<CascadeConfig>(),
    SectionRule::of::<EmbeddingsConfig>(),
];

/// Everything the router reads, read once per config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RouterConfig {
    pub provider: ModelEntry,
    pub models: BTreeMap<String, ModelEntry>,
    pub cascade: CascadeConfig,
    pub embeddings: EmbeddingsConfig,
}

impl RouterConfig {
    pub fn of(config: &Config) -> Result<RouterConfig, ConfigError> {
        Ok(RouterConfig {
            provider: config.section::<Provider>()?.0,
            models: config.section::<Models>()?.0,
            cascade: config.section()?,
            embeddings: config.section()?,
        })
    }

    /// The environment variables that hold the configured keys: the ones
    /// `openintentd` hands the router from its own environment.
    pub fn key_variables(&self) -> Vec<String> {
        std::iter::once(&self.provider)
            .chain(self.models.values())
            .map(|m| m.api_key_env.as_str())
            .chain(std::iter::once(self.embeddings.api_key_env.as_str()))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }
}

/// The variables holding the configured keys, which `openintentd` hands
/// the router from its own environment.
pub fn key_variables(config: &Config) -> Vec<String> {
    RouterConfig::of(config)
        .map(|r| r.key_variables())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse_checked(Some(text), Path::new("c.toml"), Some(SECTIONS))
    }

    #[test]
    fn embeddings_settings_are_checked_with_their_location() {
        let c = RouterConfig::of(&parse("").unwrap()).unwrap();
        assert!(c.embeddings.enabled());
        assert_eq!(c.embeddings.api_key_secret, "openai-api-key");
        let off = RouterConfig::of(&parse("[embeddings]\nkind = \"\"\n").unwrap()).unwrap();
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
        let e = parse("[embeddings]\ndimensions = -1\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
    }

    #[test]
    fn model_entries_and_the_cascade_are_checked_with_their_location() {
        let e =
            parse("\n[models.mine]\nkind = \"cohere\"\nmodel = \"m\"\nbase_url = \"http://x\"\n")
                .unwrap_err();
        assert_eq!(e.location, Some((2, 1)), "{e}");
        assert!(
            e.message
                .contains("models.mine: kind is 'cohere'; use openai, anthropic, gemini"),
            "{e}"
        );
        let e = parse("[provider]\nkind = \"openai\"\nbase_url = \"http://x\"\n").unwrap_err();
        assert!(e.message.contains("provider: 'model' is required"), "{e}");
        let e = parse("[cascade]\norder = [\"ghost\"]\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)), "{e}");
        assert!(
            e.message
                .contains("'ghost', which is not a [models.ghost] entry"),
            "{e}"
        );
        // The order may name an alias the user adds in the same file.
        let c = parse("[models.mine]\nkind = \"openai\"\nmodel = \"m\"\nbase_url = \"http://x\"\n[cascade]\norder = [\"mine\"]\n").unwrap();
        assert_eq!(RouterConfig::of(&c).unwrap().cascade.order, ["mine"]);
    }
}
