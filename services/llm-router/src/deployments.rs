//! Deployments from the config: (provider, base URL, model, credential),
//! in cascade order, each with its key resolved (environment first, then
//! the vault) or the reason it is skipped.

use std::collections::HashMap;

use crate::config::{ModelEntry, RouterConfig};

use crate::wire::{Target, WireKind};

/// The alias `[provider]` gets.
pub const PRIMARY_ALIAS: &str = "provider";

#[derive(Clone)]
pub struct Deployment {
    pub alias: String,
    pub kind: WireKind,
    pub base_url: String,
    pub model: String,
    key: Option<String>,
    /// The credential's identity (`env:NAME`, `vault:NAME`, `none`): auth
    /// and billing failures are kept per credential.
    pub credential: String,
    /// Why it cannot be used (no key); `None` when usable.
    pub missing_key: Option<String>,
    /// The vault secret that may hold its key (a name, never a value).
    pub secret: String,
    pub context_window: u32,
    pub max_tokens: u32,
    /// Position in the cascade; `None` when only reachable by alias.
    pub position: Option<usize>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Deployment")
            .field("alias", &self.alias)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("credential", &self.credential)
            .field("missing_key", &self.missing_key)
            .finish()
    }
}

impl Deployment {
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    pub fn usable(&self) -> bool {
        self.missing_key.is_none()
    }
    /// Where an attempt on this deployment goes.
    pub fn target(&self) -> Target<'_> {
        Target {
            alias: &self.alias,
            kind: self.kind,
            base_url: &self.base_url,
            model: &self.model,
            key: self.key(),
            max_tokens: self.max_tokens,
        }
    }
    /// Keyless, but the vault may have its key by now.
    pub fn awaits_vault_key(&self) -> bool {
        self.missing_key.is_some() && !self.secret.is_empty()
    }
}

/// Where keys come from: the process environment and vault secrets
/// fetched at start.
pub trait KeySource {
    fn env(&self, name: &str) -> Option<String>;
    fn secret(&self, name: &str) -> Option<String>;
}

pub struct ProcessKeys<'a> {
    pub secrets: &'a HashMap<String, String>,
}

impl KeySource for ProcessKeys<'_> {
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
    fn secret(&self, name: &str) -> Option<String> {
        self.secrets.get(name).cloned()
    }
}

/// The credential of a deployment that sends no key. Keyless deployments
/// share no credential: an auth failure of one local server says nothing
/// about another.
pub const NO_CREDENTIAL: &str = "none";

fn deployment(alias: &str, e: &ModelEntry, keys: &dyn KeySource) -> Option<Deployment> {
    let kind = WireKind::parse(&e.kind)?;
    let (key, credential, missing_key) = if e.no_key {
        (None, NO_CREDENTIAL.to_string(), None)
    } else if let Some(k) = (!e.api_key_env.is_empty())
        .then(|| keys.env(&e.api_key_env))
        .flatten()
    {
        (Some(k), format!("env:{}", e.api_key_env), None)
    } else if let Some(k) = (!e.api_key_secret.is_empty())
        .then(|| keys.secret(&e.api_key_secret))
        .flatten()
    {
        (Some(k), format!("vault:{}", e.api_key_secret), None)
    } else {
        let mut wanted = Vec::new();
        if !e.api_key_env.is_empty() {
            wanted.push(format!("${}", e.api_key_env));
        }
        if !e.api_key_secret.is_empty() {
            wanted.push(format!("vault secret '{}'", e.api_key_secret));
        }
        let why = if wanted.is_empty() {
            "no api_key_env or api_key_secret is configured (set no_key = true for a local server)"
                .to_string()
        } else {
            format!("no key: set {}", wanted.join(" or "))
        };
        (None, NO_CREDENTIAL.to_string(), Some(why))
    };
    Some(Deployment {
        alias: alias.to_string(),
        kind,
        base_url: e.base_url.trim_end_matches('/').to_string(),
        model: e.model.clone(),
        key,
        credential,
        missing_key,
        secret: if e.no_key {
            String::new()
        } else {
            e.api_key_secret.clone()
        },
        context_window: e.context_window,
        max_tokens: e.max_tokens,
        position: None,
    })
}

/// Every configured deployment: `[provider]` (when set) first, then the
/// cascade order, then the aliases outside the cascade.
pub fn from_config(config: &RouterConfig, keys: &dyn KeySource) -> Vec<Deployment> {
    let mut out = Vec::new();
    if !config.provider.kind.is_empty()
        && let Some(d) = deployment(PRIMARY_ALIAS, &config.provider, keys)
    {
        out.push(d);
    }
    for alias in &config.cascade.order {
        if let Some(d) = config
            .models
            .get(alias)
            .and_then(|e| deployment(alias, e, keys))
        {
            out.push(d);
        }
    }
    let n = out.len();
    for (i, d) in out.iter_mut().enumerate().take(n) {
        d.position = Some(i);
    }
    for (alias, e) in &config.models {
        if !out.iter().any(|d| &d.alias == alias)
            && let Some(d) = deployment(alias, e, keys)
        {
            out.push(d);
        }
    }
    out
}

/// The alias the `[embeddings]` deployment gets (in logs and health).
pub const EMBEDDINGS_ALIAS: &str = "embeddings";

/// The `[embeddings]` deployment, when one is configured.
pub fn embeddings_from_config(config: &RouterConfig, keys: &dyn KeySource) -> Option<Deployment> {
    if !config.embeddings.enabled() {
        return None;
    }
    deployment(EMBEDDINGS_ALIAS, &config.embeddings.as_model_entry(), keys)
}

/// Vault secret names the config refers to, for keys not in the environment.
pub fn wanted_secrets(config: &RouterConfig) -> Vec<String> {
    let embeddings = config
        .embeddings
        .enabled()
        .then(|| config.embeddings.as_model_entry());
    let mut names: Vec<String> = std::iter::once(&config.provider)
        .chain(config.models.values())
        .chain(embeddings.as_ref())
        .filter(|e| !e.no_key && !e.api_key_secret.is_empty())
        .filter(|e| {
            e.api_key_env.is_empty()
                || std::env::var(&e.api_key_env)
                    .map(|v| v.trim().is_empty())
                    .unwrap_or(true)
        })
        .map(|e| e.api_key_secret.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_kernel::config::Config;
    use std::path::Path;

    struct Keys(
        HashMap<&'static str, &'static str>,
        HashMap<&'static str, &'static str>,
    );
    impl KeySource for Keys {
        fn env(&self, name: &str) -> Option<String> {
            self.0.get(name).map(|s| s.to_string())
        }
        fn secret(&self, name: &str) -> Option<String> {
            self.1.get(name).map(|s| s.to_string())
        }
    }

    #[test]
    fn shipped_cascade_resolves_keys_and_skips_the_keyless() {
        let config = RouterConfig::of(&Config::defaults()).unwrap();
        let keys = Keys(
            HashMap::from([("NVIDIA_API_KEY", "nvapi-x")]),
            HashMap::from([("groq-api-key", "gsk-y")]),
        );
        let ds = from_config(&config, &keys);
        let names: Vec<&str> = ds.iter().map(|d| d.alias.as_str()).collect();
        assert_eq!(names[0], "nvidia");
        assert_eq!(ds.len(), config.models.len());
        let by = |a: &str| ds.iter().find(|d| d.alias == a).unwrap();
        assert_eq!(by("nvidia").key(), Some("nvapi-x"));
        assert_eq!(by("nvidia").credential, "env:NVIDIA_API_KEY");
        assert_eq!(by("nvidia-kimi").credential, "env:NVIDIA_API_KEY");
        assert_eq!(by("groq").key(), Some("gsk-y"));
        assert_eq!(by("groq").credential, "vault:groq-api-key");
        assert!(by("ollama").usable() && by("ollama").key().is_none());
        let claude = by("claude");
        assert!(!claude.usable());
        assert!(
            claude
                .missing_key
                .as_ref()
                .unwrap()
                .contains("$ANTHROPIC_API_KEY")
        );
        assert_eq!(by("gemini").kind, WireKind::Gemini);
        // The key never shows in debug output.
        assert!(!format!("{:?}", by("nvidia")).contains("nvapi-x"));
    }

    #[test]
    fn provider_section_is_the_primary() {
        let config = Config::parse_checked(
            Some("[provider]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\nno_key = true\n"),
            Path::new("c.toml"),
            Some(crate::config::SECTIONS),
        )
        .unwrap();
        let config = RouterConfig::of(&config).unwrap();
        let ds = from_config(&config, &Keys(HashMap::new(), HashMap::new()));
        assert_eq!(ds[0].alias, PRIMARY_ALIAS);
        assert_eq!(ds[0].position, Some(0));
        assert_eq!(ds[1].alias, "nvidia");
    }
}
