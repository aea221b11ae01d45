//! The email adapter (`openintentd service email`): the accounts of
//! `[email.accounts]` over IMAP and SMTP.
//!
//! - [`config`]: the accounts and the recipient policy ([`policy`]).
//! - [`account`]: credentials from the vault ([`oauth`] for XOAUTH2), the
//!   one IMAP session per account ([`imap`] over [`tls`]), SMTP.
//! - [`ops`]: what each tool does; [`message`] what the model sees of a
//!   message; [`search`] the SEARCH criteria.
//! - [`login`]: `oictl email login`, the authorization-code flow.

pub mod account;
pub mod config;
pub mod imap;
pub mod jobs;
pub mod login;
pub mod message;
pub mod oauth;
pub mod ops;
pub mod policy;
pub mod search;
pub mod tls;
pub mod tools;
pub mod utf7;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oi_ipc_schema::{ErrorCode, ToolSpec};
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply};
use serde_json::Value;

use crate::account::{Account, EmailError};
pub use crate::config::EmailConfig;

/// The settings and the accounts built from them.
struct State {
    cfg: EmailConfig,
    accounts: BTreeMap<String, Arc<Account>>,
}

pub struct EmailAdapter {
    bus: BusClient,
    state: Live<State>,
}

impl From<EmailError> for ServiceError {
    fn from(e: EmailError) -> Self {
        match e {
            EmailError::Bad(m) => ServiceError::bad_request(m),
            EmailError::Denied(m) => tool::denied(m),
            EmailError::Unavailable(m) => ServiceError::new(ErrorCode::Unavailable, m),
            EmailError::Timeout(m) => tool::timed_out(m),
        }
    }
}

/// The accounts of `cfg`; an account whose settings did not change keeps
/// its session and token from `old`.
fn build(cfg: EmailConfig, old: Option<&State>) -> Result<State, ServiceError> {
    let limit = Duration::from_secs(cfg.timeout_secs);
    let skew = Duration::from_secs(cfg.refresh_skew_secs);
    let mut accounts = BTreeMap::new();
    for (name, a) in &cfg.accounts {
        let kept = old
            .filter(|o| o.cfg.timeout_secs == cfg.timeout_secs)
            .and_then(|o| o.accounts.get(name))
            .filter(|acc| acc.cfg == *a)
            .cloned();
        let acc =
            match kept {
                Some(k) => k,
                None => Arc::new(Account::new(name, a.clone(), limit, skew).map_err(|e| {
                    ServiceError::config_error(format!("[email.accounts.{name}] {e}"))
                })?),
            };
        accounts.insert(name.clone(), acc);
    }
    Ok(State { cfg, accounts })
}

impl EmailAdapter {
    pub async fn call(&self, req: &IncomingRequest) -> Result<Value, ServiceError> {
        let name = req.method();
        let args: tools::Args = tool::args(req)?;
        let st = self.state.get();
        let (key, _) = st
            .cfg
            .account(args.account.as_deref())
            .map_err(|e| ServiceError::bad_request(format!("{name}: {e}")))?;
        let acc = st
            .accounts
            .get(key)
            .ok_or_else(|| ServiceError::internal(format!("account '{key}' is not built")))?
            .clone();
        let (bus, c) = (&self.bus, &st.cfg);
        let v = match name {
            tools::FOLDERS => {
                let mut v = ops::folders(&acc, bus).await?;
                v["accounts"] = st.accounts.keys().cloned().collect();
                v
            }
            tools::LIST => ops::list(&acc, bus, c, &args).await?,
            tools::READ => ops::read(&acc, bus, c, &args).await?,
            tools::SEARCH => ops::search(&acc, bus, c, &args).await?,
            tools::SEND => ops::send(&acc, bus, c, &args).await?,
            tools::MOVE => ops::move_to(&acc, bus, &args).await?,
            tools::MARK => ops::mark(&acc, bus, &args).await?,
            other => {
                return Err(ServiceError::bad_request(format!(
                    "the email adapter has no tool '{other}'"
                )));
            }
        };
        Ok(v)
    }
}

impl Service for EmailAdapter {
    fn tools(&self) -> Vec<ToolSpec> {
        tools::specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        json_reply(self.call(&req).await?)
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(cfg) = harness::config_update(generation, config_toml, |c: &Config| {
            c.section::<EmailConfig>()
        }) else {
            return;
        };
        let old = self.state.get();
        self.state.rebuild("email", || build(cfg, Some(&old)));
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "email",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// `openintentd service email`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let config = harness::service_config()?;
        let cfg: EmailConfig = config.section()?;
        let state = build(cfg, None)?;
        Ok(EmailAdapter {
            bus: client,
            state: Live::new(state),
        })
    })
}
