//! `[shell]`: what commands may run, their limits and their sandbox. The
//! roots a command sees are `[fs] roots`, owned by the fs adapter.

use oi_kernel::config::{Config, Invalid, Section, SectionRule};
use serde::{Deserialize, Serialize};

oi_kernel::vocabulary! {
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

oi_kernel::vocabulary! {
    /// Whether commands run under Landlock.
    LandlockMode default Auto {
        /// When the kernel has it.
        Auto = "auto",
        /// Or the adapter refuses to start (exit 78).
        Required = "required",
        Off = "off",
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

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<ShellConfig>()];

impl Section for ShellConfig {
    const NAME: &'static str = "shell";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        if self.timeout_secs == 0 || self.max_timeout_secs < self.timeout_secs {
            return Err(Invalid::new(
                "shell.timeout_secs",
                "shell.timeout_secs must be at least 1 and at most shell.max_timeout_secs",
            ));
        }
        Ok(())
    }
}

/// The variables the user chose to hand to commands (`env_passthrough`),
/// which `openintentd` passes to the adapter; the adapter drops any that
/// look secret.
pub fn passthrough(config: &Config) -> Vec<String> {
    config
        .section::<ShellConfig>()
        .map(|s| s.env_passthrough)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, oi_kernel::config::ConfigError> {
        Config::parse_checked(Some(text), Path::new("c.toml"), Some(SECTIONS))
    }

    #[test]
    fn shell_settings_are_checked_with_their_location() {
        // A closed vocabulary is an enum: the error points at the value and
        // names what is allowed.
        let e = parse("[shell]\npolicy = \"anything\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 10)), "{e}");
        assert!(
            e.message
                .contains("expected one of `allowlist`, `denylist`, `approval`"),
            "{e}"
        );
        let e = parse("[shell]\nlandlock = \"maybe\"\n").unwrap_err();
        assert!(
            e.message
                .contains("expected one of `auto`, `required`, `off`"),
            "{e}"
        );
        let e = parse("[shell]\n\ntimeout_secs = 900\n").unwrap_err();
        assert_eq!(e.location, Some((3, 1)), "{e}");
        assert!(e.message.contains("at most shell.max_timeout_secs"), "{e}");
        let d: ShellConfig = Config::defaults().section().unwrap();
        assert_eq!((d.timeout_secs, d.policy.as_str()), (30, "allowlist"));
        assert!(d.deny.contains(&"sudo".to_string()));
    }
}
