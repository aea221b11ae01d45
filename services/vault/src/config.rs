//! `[vault]`: where the master key comes from and which service may read
//! which secrets.

use std::collections::BTreeMap;

use oi_kernel::config::{Section, SectionRule};
use serde::{Deserialize, Serialize};

oi_kernel::vocabulary! {
    /// Where the vault's master key comes from.
    KeySetting default Auto {
        /// The passphrase when set, else the keyring when it answers, else
        /// the key file.
        Auto = "auto",
        Keyring = "keyring",
        File = "file",
        Passphrase = "passphrase",
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaultConfig {
    pub key_source: KeySetting,
    /// Service name -> secret name patterns it may read.
    pub policy: BTreeMap<String, Vec<String>>,
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<VaultConfig>()];

impl Section for VaultConfig {
    const NAME: &'static str = "vault";
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_kernel::config::Config;
    use std::path::Path;

    #[test]
    fn an_unknown_key_source_names_the_known_ones_at_the_value() {
        let e = Config::parse_checked(
            Some("[vault]\nkey_source = \"tpm\"\n"),
            Path::new("c.toml"),
            Some(SECTIONS),
        )
        .unwrap_err();
        assert_eq!(e.location, Some((2, 14)), "{e}");
        assert!(
            e.message
                .contains("expected one of `auto`, `keyring`, `file`, `passphrase`"),
            "{e}"
        );
    }
}
