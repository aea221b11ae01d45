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

use std::time::Duration;

use oi_ipc_schema::{ErrorCode, ToolSpec};
use oi_kernel::accounts::LiveAccounts;
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::harness::{self, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply};
use serde_json::Value;

use crate::account::{Account, EmailError};
pub use crate::config::EmailConfig;

pub struct EmailAdapter {
    bus: BusClient,
    accounts: LiveAccounts<EmailConfig, Account>,
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

/// One account of `[email.accounts]`, built.
fn make(name: &str, a: &config::Account, c: &EmailConfig) -> Result<Account, String> {
    Account::new(
        name,
        a.clone(),
        Duration::from_secs(c.timeout_secs),
        Duration::from_secs(c.refresh_skew_secs),
    )
}

impl EmailAdapter {
    pub async fn call(&self, req: &IncomingRequest) -> Result<Value, ServiceError> {
        let name = req.method();
        let args: tools::Args = tool::args(req)?;
        let st = self.accounts.get();
        let acc = st.pick(name, args.account.as_deref())?;
        let (bus, c) = (&self.bus, &st.cfg);
        let v = match name {
            tools::FOLDERS => {
                let mut v = ops::folders(&acc, bus).await?;
                v["accounts"] = st.names().into();
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
        self.accounts.config_changed(generation, config_toml);
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
        Ok(EmailAdapter {
            bus: client,
            accounts: LiveAccounts::start(make)?,
        })
    })
}
