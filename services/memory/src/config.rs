//! `[memory]`: history, episode retention, the store's tuning and how long
//! a save waits for the provider's embedding. The `[embeddings]` endpoint
//! itself is the LLM router's section (it holds the key); memory reads it
//! to know when the provider's vector space changes.

use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one};
use serde::{Deserialize, Serialize};

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

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<MemoryConfig>()];

impl Section for MemoryConfig {
    const NAME: &'static str = "memory";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[
            ("memory.retention_check_secs", self.retention_check_secs),
            ("memory.embed_timeout_ms", self.embed_timeout_ms),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn memory_settings_are_checked_with_their_location() {
        let d: MemoryConfig = Config::defaults().section().unwrap();
        assert_eq!(d.retention_check_secs, 60);
        let e = Config::parse_checked(
            Some("[memory]\nembed_timeout_ms = 0\n"),
            Path::new("c.toml"),
            Some(SECTIONS),
        )
        .unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert_eq!(e.message, "memory.embed_timeout_ms must be at least 1");
    }
}
