//! `[browser]`: which Chromium, when it stops, the page limits, and
//! whether the model may run its own JavaScript.

use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserConfig {
    /// The browser to run; "" finds chromium-headless-shell, chromium,
    /// chromium-browser or google-chrome on PATH.
    pub executable: String,
    /// Seconds without a call after which the browser is stopped.
    pub idle_secs: u64,
    /// Seconds without a call after which a tab is closed.
    pub tab_idle_secs: u64,
    /// A call's limit when it gives none.
    pub timeout_secs: u64,
    pub max_timeout_secs: u64,
    /// Characters of a snapshot or a text at most.
    pub max_snapshot_chars: u64,
    pub max_text_chars: u64,
    pub window_width: u32,
    pub window_height: u32,
    /// Whether `browser_eval` runs the model's JavaScript.
    pub allow_eval: bool,
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<BrowserConfig>()];

impl Section for BrowserConfig {
    const NAME: &'static str = "browser";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[
            ("browser.idle_secs", self.idle_secs),
            ("browser.tab_idle_secs", self.tab_idle_secs),
            ("browser.timeout_secs", self.timeout_secs),
            ("browser.max_snapshot_chars", self.max_snapshot_chars),
            ("browser.max_text_chars", self.max_text_chars),
            ("browser.window_width", u64::from(self.window_width)),
            ("browser.window_height", u64::from(self.window_height)),
        ])?;
        if self.max_timeout_secs < self.timeout_secs {
            return Err(Invalid::new(
                "browser.max_timeout_secs",
                "browser.max_timeout_secs must be at least browser.timeout_secs",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn browser_settings_are_checked_with_their_location() {
        let parse = |t: &str| Config::parse_checked(Some(t), Path::new("c.toml"), Some(SECTIONS));
        let c: BrowserConfig = parse("").unwrap().section().unwrap();
        assert_eq!((c.idle_secs, c.allow_eval), (300, false));
        let e = parse("[browser]\nidle_secs = 0\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(
            e.message.contains("browser.idle_secs must be at least 1"),
            "{e}"
        );
        let e = parse("[browser]\ntimeout_secs = 60\nmax_timeout_secs = 10\n").unwrap_err();
        assert!(e.message.contains("at least browser.timeout_secs"), "{e}");
    }
}
