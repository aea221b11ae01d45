//! Services that start only once something they need is there
//! (`requires` of `[services.<name>]`): a non-empty environment variable,
//! a secret in the vault, or a table of the config (an email account). The Telegram gateway, for one, waits for a bot
//! token. A waiting service is in state WAITING and holds nothing back.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use oi_ipc_schema::vault::{self, SecretList};
use oi_kernel::client::{BusClient, CallOptions};
use oi_kernel::config::{Config, Requirement, ServiceSpec};
use tokio::sync::Mutex;

/// What is missing, when none of `spec.requires` is present; `None` when
/// one is (or nothing is required). `secrets` is `None` while the vault's
/// list is unknown.
pub fn missing(
    spec: &ServiceSpec,
    config: &Config,
    secrets: Option<&BTreeSet<String>>,
) -> Option<String> {
    if spec.requires.is_empty() {
        return None;
    }
    let reqs: Vec<Requirement> = spec
        .requires
        .iter()
        .filter_map(|r| Requirement::parse(r))
        .collect();
    let present = |r: &Requirement| match r {
        Requirement::Env(name) => {
            spec.env.get(name).is_some_and(|v| !v.is_empty())
                || std::env::var_os(name).is_some_and(|v| !v.is_empty())
        }
        Requirement::Secret(name) => secrets.is_some_and(|s| s.contains(name)),
        Requirement::Config(path) => config.has(path),
    };
    if reqs.iter().any(present) {
        return None;
    }
    let wanted: Vec<String> = reqs.iter().map(ToString::to_string).collect();
    Some(format!("waiting for {}", wanted.join(" or ")))
}

/// Whether any of `spec.requires` is a vault secret.
pub fn needs_secret(spec: &ServiceSpec) -> bool {
    spec.requires
        .iter()
        .any(|r| matches!(Requirement::parse(r), Some(Requirement::Secret(_))))
}

/// Asks the vault for the names of its secrets, over the bus as the owner
/// (like `oictl vault list`; names only, never values). One connection,
/// kept between lookups.
#[derive(Clone)]
pub struct SecretLookup {
    socket: PathBuf,
    client: Arc<Mutex<Option<BusClient>>>,
}

impl SecretLookup {
    pub fn new(socket: PathBuf) -> Self {
        SecretLookup {
            socket,
            client: Arc::default(),
        }
    }

    pub async fn names(&self) -> Result<BTreeSet<String>, String> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(BusClient::is_closed) {
            let (c, _inbound) =
                BusClient::connect(&self.socket, None, oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES)
                    .await
                    .map_err(|e| e.to_string())?;
            *guard = Some(c);
        }
        let Some(client) = guard.as_ref() else {
            return Err("no bus connection".into());
        };
        let list: SecretList = client
            .call(
                vault::LIST,
                &(),
                CallOptions::deadline(Duration::from_secs(2)),
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(list.secrets.into_iter().map(|s| s.name).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(requires: &[&str]) -> ServiceSpec {
        ServiceSpec {
            requires: requires.iter().map(|s| s.to_string()).collect(),
            ..ServiceSpec::default()
        }
    }

    #[test]
    fn any_one_requirement_is_enough() {
        let names: BTreeSet<String> = ["telegram-bot-token".to_string()].into();
        let s = spec(&["env:OI_TEST_SURELY_UNSET_VAR", "secret:telegram-bot-token"]);
        assert_eq!(missing(&s, &Config::defaults(), Some(&names)), None);
        assert_eq!(
            missing(&s, &Config::defaults(), None).as_deref(),
            Some(
                "waiting for the environment variable OI_TEST_SURELY_UNSET_VAR or the vault secret telegram-bot-token"
            )
        );
        assert!(missing(&s, &Config::defaults(), Some(&BTreeSet::new())).is_some());
        assert!(needs_secret(&s));
        assert_eq!(missing(&spec(&[]), &Config::defaults(), None), None);
    }

    #[test]
    fn a_config_table_counts_once_it_has_an_entry() {
        let s = spec(&["config:email.accounts"]);
        let none = Config::defaults();
        assert_eq!(
            missing(&s, &none, None).as_deref(),
            Some("waiting for a [email.accounts] table in the config")
        );
        let some = Config::parse_layers(
            Some("[email.accounts.a]\nusername = \"u\"\n"),
            std::path::Path::new("c.toml"),
        )
        .unwrap();
        assert_eq!(missing(&s, &some, None), None);
        assert!(!needs_secret(&s));
    }

    #[test]
    fn env_of_the_service_spec_counts_and_empty_values_do_not() {
        let mut s = spec(&["env:OI_TEST_TOKEN_IN_SPEC"]);
        assert!(missing(&s, &Config::defaults(), None).is_some());
        s.env.insert("OI_TEST_TOKEN_IN_SPEC".into(), String::new());
        assert!(missing(&s, &Config::defaults(), None).is_some());
        s.env.insert("OI_TEST_TOKEN_IN_SPEC".into(), "x".into());
        assert_eq!(missing(&s, &Config::defaults(), None), None);
        assert!(!needs_secret(&s));
    }
}
