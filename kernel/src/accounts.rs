//! An adapter over the named accounts of `[<section>.accounts.<name>]`
//! (email, calendar): each account built once from its settings, kept
//! across a configuration change that leaves its settings (and those all
//! accounts share) alone, so its sessions, tokens and discovered state
//! survive; picked by a tool's `account` argument, the first by default.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{Config, Section, pick_account};
use crate::harness::{self, Live, ServiceError};

/// A configuration section with named accounts.
pub trait WithAccounts: Section + Clone + Send + Sync + 'static {
    /// One account's settings.
    type Account: PartialEq + Send + Sync;

    fn accounts(&self) -> &BTreeMap<String, Self::Account>;

    /// Whether the settings every account is built with are the same in
    /// `self` and `other` (timeouts and the like).
    fn same_shared(&self, other: &Self) -> bool;
}

/// Builds one account `A` from its name, its settings and the section.
pub type Make<C, A> = fn(&str, &<C as WithAccounts>::Account, &C) -> Result<A, String>;

/// The section's settings and the accounts built from them.
pub struct Accounts<C: WithAccounts, A> {
    pub cfg: C,
    built: BTreeMap<String, Arc<A>>,
}

impl<C: WithAccounts, A> Accounts<C, A> {
    /// The accounts of `cfg`; one whose settings did not change is taken
    /// over from `old`. A failure names the account.
    pub fn build(cfg: C, old: Option<&Self>, make: Make<C, A>) -> Result<Self, ServiceError> {
        let old = old.filter(|o| o.cfg.same_shared(&cfg));
        let mut built = BTreeMap::new();
        for (name, a) in cfg.accounts() {
            let kept = old
                .filter(|o| o.cfg.accounts().get(name) == Some(a))
                .and_then(|o| o.built.get(name))
                .cloned();
            let acc = match kept {
                Some(k) => k,
                None => Arc::new(make(name, a, &cfg).map_err(|e| {
                    ServiceError::config_error(format!("[{}.accounts.{name}] {e}", C::NAME))
                })?),
            };
            built.insert(name.clone(), acc);
        }
        Ok(Accounts { cfg, built })
    }

    /// The account a tool named (the first when `name` is `None`); the
    /// error names the tool and the accounts there are.
    pub fn pick(&self, tool: &str, name: Option<&str>) -> Result<Arc<A>, ServiceError> {
        let (key, _) = pick_account(self.cfg.accounts(), name, C::NAME)
            .map_err(|e| ServiceError::bad_request(format!("{tool}: {e}")))?;
        self.built
            .get(key)
            .cloned()
            .ok_or_else(|| ServiceError::internal(format!("account '{key}' is not built")))
    }

    /// The accounts' names, in order.
    pub fn names(&self) -> Vec<String> {
        self.built.keys().cloned().collect()
    }
}

/// The live accounts of a running adapter.
pub struct LiveAccounts<C: WithAccounts, A> {
    state: Live<Accounts<C, A>>,
    make: Make<C, A>,
}

impl<C: WithAccounts, A> LiveAccounts<C, A> {
    /// Built from the service's configuration file, at start.
    pub fn start(make: Make<C, A>) -> Result<Self, ServiceError> {
        let cfg: C = harness::service_config()?.section()?;
        Ok(LiveAccounts {
            state: Live::new(Accounts::build(cfg, None, make)?),
            make,
        })
    }

    /// The settings and accounts now.
    pub fn get(&self) -> Arc<Accounts<C, A>> {
        self.state.get()
    }

    /// A `ConfigChanged`: rebuilt, keeping unchanged accounts; refused
    /// settings leave the old ones (logged).
    pub fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(cfg) =
            harness::config_update(generation, config_toml, |c: &Config| c.section::<C>())
        else {
            return;
        };
        let old = self.state.get();
        self.state
            .rebuild(C::NAME, || Accounts::build(cfg, Some(&old), self.make));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Invalid;
    use serde::{Deserialize, Serialize};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Clone, Default, Serialize, Deserialize)]
    struct Mail {
        timeout_secs: u64,
        accounts: BTreeMap<String, String>,
    }

    impl Section for Mail {
        const NAME: &'static str = "mail";
        fn validate(&self, _config: &Config) -> Result<(), Invalid> {
            Ok(())
        }
    }

    impl WithAccounts for Mail {
        type Account = String;
        fn accounts(&self) -> &BTreeMap<String, String> {
            &self.accounts
        }
        fn same_shared(&self, other: &Self) -> bool {
            self.timeout_secs == other.timeout_secs
        }
    }

    static MADE: AtomicUsize = AtomicUsize::new(0);

    // The signature is `Make`'s, with String as the account type.
    #[allow(clippy::ptr_arg)]
    fn make(name: &str, host: &String, _: &Mail) -> Result<(String, usize), String> {
        if host.is_empty() {
            return Err("host is empty".into());
        }
        Ok((name.to_string(), MADE.fetch_add(1, Ordering::SeqCst)))
    }

    fn mail(timeout: u64, accounts: &[(&str, &str)]) -> Mail {
        Mail {
            timeout_secs: timeout,
            accounts: accounts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn unchanged_accounts_are_kept_changed_ones_rebuilt_and_picked_by_name() {
        let a = Accounts::build(mail(5, &[("home", "h"), ("work", "w")]), None, make).unwrap();
        let home = a.pick("t", Some("home")).unwrap();
        assert_eq!(a.pick("t", None).unwrap().0, "home", "the first by default");
        // work's host changes: home is the same object, work a new one.
        let b = Accounts::build(mail(5, &[("home", "h"), ("work", "w2")]), Some(&a), make).unwrap();
        assert!(Arc::ptr_eq(&home, &b.pick("t", Some("home")).unwrap()));
        assert!(!Arc::ptr_eq(
            &a.pick("t", Some("work")).unwrap(),
            &b.pick("t", Some("work")).unwrap()
        ));
        // A shared setting changes: everything is rebuilt.
        let c = Accounts::build(mail(9, &[("home", "h"), ("work", "w2")]), Some(&b), make).unwrap();
        assert!(!Arc::ptr_eq(&home, &c.pick("t", Some("home")).unwrap()));
        assert_eq!(c.names(), vec!["home", "work"]);
        let e = c.pick("mail_send", Some("play")).unwrap_err();
        assert_eq!(
            e.message,
            "mail_send: no mail account 'play' (accounts: home, work)"
        );
        let e = Accounts::build(mail(9, &[("bad", "")]), None, make)
            .err()
            .unwrap();
        assert_eq!(e.message, "[mail.accounts.bad] host is empty");
    }
}
