//! `[telegram]`: the Bot API, who gets answers, polling and formatting.

use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one, http_url};
use serde::{Deserialize, Serialize};

oi_kernel::vocabulary! {
    /// How answers are sent.
    Format default Html {
        /// Markdown answers rendered as Telegram HTML.
        Html = "html",
        Plain = "plain",
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
    pub format: Format,
    /// Minutes a pairing code from `oictl telegram pair` stays valid.
    pub pair_code_minutes: u64,
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<TelegramConfig>()];

impl Section for TelegramConfig {
    const NAME: &'static str = "telegram";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        let url = self.api_base_url.trim_end_matches('/');
        if !http_url(url) || url.len() < 10 {
            return Err(Invalid::new(
                "telegram.api_base_url",
                format!(
                    "telegram.api_base_url is '{}'; give an http(s) URL such as https://api.telegram.org",
                    self.api_base_url
                ),
            ));
        }
        if !(1..=50).contains(&self.poll_timeout_secs) {
            return Err(Invalid::new(
                "telegram.poll_timeout_secs",
                "telegram.poll_timeout_secs must be between 1 and 50 (Telegram's limit)",
            ));
        }
        at_least_one(&[("telegram.pair_code_minutes", self.pair_code_minutes)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, oi_kernel::config::ConfigError> {
        Config::parse_checked(Some(text), Path::new("c.toml"), Some(SECTIONS))
    }

    #[test]
    fn telegram_settings_are_checked_with_their_location() {
        let c: TelegramConfig = parse("").unwrap().section().unwrap();
        assert_eq!(c.api_base_url, "https://api.telegram.org");
        assert!(c.allowed_chat_ids.is_empty());
        let e = parse("[telegram]\npoll_timeout_secs = 90\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(e.message.contains("between 1 and 50"), "{e}");
        let e = parse("\n[telegram]\napi_base_url = \"api.telegram.org\"\n").unwrap_err();
        assert_eq!(e.location, Some((3, 1)));
        assert!(e.message.contains("give an http(s) URL"), "{e}");
        let e = parse("[telegram]\nformat = \"markdown\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 10)), "{e}");
        assert!(e.message.contains("expected `html` or `plain`"), "{e}");
        let e = parse("[telegram]\nallowed_chat_ids = [\"me\"]\n").unwrap_err();
        assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
    }
}
