//! `[github]`: where the API is, the vault name of the token, which
//! repositories may be written to, and the limits of one call.

use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one, http_url};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GithubConfig {
    /// The REST API's root: `https://api.github.com`, or
    /// `https://<host>/api/v3` for GitHub Enterprise Server.
    pub api_url: String,
    /// The vault secret holding the token (a fine-grained or classic
    /// personal access token). It is sent to `api_url`'s host only, and
    /// not at all if the secret is bound to other hosts.
    pub token_secret: String,
    /// Repositories `github_create_issue` and `github_comment` may write
    /// to, as `owner/name` patterns (`me/*`, `acme/docs`). Empty: none.
    pub write_repos: Vec<String>,
    /// The whole call's limit, rate-limit waits included.
    pub timeout_secs: u64,
    /// Items a listing returns when the call gives no `max_items`, and
    /// the most it may ask for.
    pub default_items: u64,
    pub max_items: u64,
    /// Bytes of a file `github_get_file` returns at most.
    pub max_file_bytes: u64,
    /// Characters of an issue's or comment's body shown at most.
    pub max_body_chars: u64,
    /// Responses kept for conditional requests (ETag / 304).
    pub cache_entries: u64,
}

impl Default for GithubConfig {
    fn default() -> Self {
        GithubConfig {
            api_url: "https://api.github.com".into(),
            token_secret: "github-token".into(),
            write_repos: Vec::new(),
            timeout_secs: 60,
            default_items: 30,
            max_items: 1000,
            max_file_bytes: 100_000,
            max_body_chars: 4000,
            cache_entries: 256,
        }
    }
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<GithubConfig>()];

impl GithubConfig {
    /// Whether `repo` (`owner/name`) may be written to.
    pub fn may_write(&self, repo: &str) -> bool {
        self.write_repos
            .iter()
            .any(|p| oi_kernel::glob::matches(p, repo))
    }
}

impl Section for GithubConfig {
    const NAME: &'static str = "github";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[
            ("github.timeout_secs", self.timeout_secs),
            ("github.default_items", self.default_items),
            ("github.max_items", self.max_items),
            ("github.max_file_bytes", self.max_file_bytes),
            ("github.max_body_chars", self.max_body_chars),
        ])?;
        if !http_url(&self.api_url) {
            return Err(Invalid::new(
                "github.api_url",
                format!(
                    "github.api_url '{}' is not an http(s) URL (https://api.github.com, or https://<host>/api/v3)",
                    self.api_url
                ),
            ));
        }
        if self.token_secret.trim().is_empty() {
            return Err(Invalid::new(
                "github.token_secret",
                "github.token_secret names the vault secret holding the token (github-token)",
            ));
        }
        if let Some(p) = self.write_repos.iter().find(|p| !p.contains('/')) {
            return Err(Invalid::new(
                "github.write_repos",
                format!("github.write_repos: '{p}' is not an owner/name pattern (like \"me/*\")"),
            ));
        }
        if self.max_file_bytes > 1_000_000 {
            return Err(Invalid::new(
                "github.max_file_bytes",
                "github.max_file_bytes is at most 1000000 (GitHub's contents API gives larger files without their content)",
            ));
        }
        if self.default_items > self.max_items {
            return Err(Invalid::new(
                "github.default_items",
                "github.default_items cannot be more than max_items",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_need_a_matching_pattern_and_bad_settings_are_named() {
        let mut c = GithubConfig::default();
        assert!(!c.may_write("me/repo"), "nothing by default");
        c.write_repos = vec!["me/*".into(), "acme/docs".into()];
        assert!(c.may_write("me/repo"));
        assert!(c.may_write("Me/Repo"), "GitHub's names ignore case");
        assert!(c.may_write("acme/docs"));
        assert!(!c.may_write("acme/site"));
        let cfg = Config::defaults();
        assert!(c.validate(&cfg).is_ok());
        c.write_repos = vec!["me".into()];
        let e = c.validate(&cfg).unwrap_err();
        assert_eq!(e.key, "github.write_repos");
        let c = GithubConfig {
            api_url: "api.github.com".into(),
            ..GithubConfig::default()
        };
        assert_eq!(c.validate(&cfg).unwrap_err().key, "github.api_url");
    }
}
