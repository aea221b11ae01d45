//! `[feishu]`: which open platform (Feishu, Lark, or the test fake), the
//! app's id and the vault name of its secret, and the limits of a call.

use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one, http_url};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeishuConfig {
    /// `https://open.feishu.cn` (Feishu), `https://open.larksuite.com`
    /// (Lark), or a test server.
    pub domain: String,
    /// The app's id (`cli_...`), from the developer console.
    pub app_id: String,
    /// The vault secret holding the app secret.
    pub app_secret_secret: String,
    /// A request's limit.
    pub timeout_secs: u64,
    /// Seconds before the tenant token's expiry at which it is renewed.
    pub refresh_skew_secs: u64,
}

impl Default for FeishuConfig {
    fn default() -> Self {
        FeishuConfig {
            domain: "https://open.feishu.cn".into(),
            app_id: String::new(),
            app_secret_secret: "feishu-app-secret".into(),
            timeout_secs: 30,
            refresh_skew_secs: 120,
        }
    }
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<FeishuConfig>()];

impl Section for FeishuConfig {
    const NAME: &'static str = "feishu";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[("feishu.timeout_secs", self.timeout_secs)])?;
        if !http_url(&self.domain) {
            return Err(Invalid::new(
                "feishu.domain",
                format!(
                    "feishu.domain '{}' is not an http(s) URL (https://open.feishu.cn or https://open.larksuite.com)",
                    self.domain
                ),
            ));
        }
        if self.app_secret_secret.trim().is_empty() {
            return Err(Invalid::new(
                "feishu.app_secret_secret",
                "feishu.app_secret_secret names the vault secret holding the app secret (feishu-app-secret)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_domain_and_the_secrets_name_are_checked() {
        let cfg = Config::defaults();
        assert!(FeishuConfig::default().validate(&cfg).is_ok());
        let c = FeishuConfig {
            domain: "open.feishu.cn".into(),
            ..FeishuConfig::default()
        };
        assert_eq!(c.validate(&cfg).unwrap_err().key, "feishu.domain");
        let c = FeishuConfig {
            app_secret_secret: " ".into(),
            ..FeishuConfig::default()
        };
        assert_eq!(
            c.validate(&cfg).unwrap_err().key,
            "feishu.app_secret_secret"
        );
    }
}
