//! The calendar adapter (`openintentd service calendar`): the CalDAV
//! accounts of `[calendar.accounts]`.
//!
//! - [`config`]: `[calendar]`: accounts, the user's zone, working hours.
//! - [`account`]: discovery and the requests of one account, over [`dav`].
//! - [`ical`]: iCalendar objects read and their recurrences expanded.
//! - [`write`]: events created and updated; [`when`] the times tools give.
//! - [`ops`]: what each tool does ([`tools`]).

pub mod account;
pub mod config;
pub mod dav;
pub mod ical;
pub mod ops;
pub mod tools;
pub mod when;
pub mod write;

use std::time::Duration;

use oi_ipc_schema::{ErrorCode, ToolSpec};
use oi_kernel::accounts::LiveAccounts;
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::harness::{self, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply};
use serde_json::Value;

use crate::account::{Account, CalError};
pub use crate::config::CalendarConfig;

pub struct CalendarAdapter {
    bus: BusClient,
    accounts: LiveAccounts<CalendarConfig, Account>,
}

impl From<CalError> for ServiceError {
    fn from(e: CalError) -> Self {
        match e {
            CalError::Bad(m) => ServiceError::bad_request(m),
            CalError::Unavailable(m) => ServiceError::new(ErrorCode::Unavailable, m),
            // Retrying unchanged fails again: the caller must read it first.
            CalError::Changed(m) => ServiceError::bad_request(m),
        }
    }
}

/// One account of `[calendar.accounts]`, built.
fn make(name: &str, a: &config::Account, c: &CalendarConfig) -> Result<Account, String> {
    Account::new(name, a.clone(), Duration::from_secs(c.timeout_secs))
}

impl CalendarAdapter {
    pub async fn call(&self, req: &IncomingRequest) -> Result<Value, ServiceError> {
        let name = req.method();
        let args: tools::Args = tool::args(req)?;
        let st = self.accounts.get();
        let acc = st.pick(name, args.account.as_deref())?;
        let (bus, c) = (&self.bus, &st.cfg);
        let v = match name {
            tools::LIST => ops::list(&acc, bus).await?,
            tools::EVENTS => ops::events(&acc, bus, c, &args).await?,
            tools::CREATE => ops::create(&acc, bus, c, &args).await?,
            tools::UPDATE => ops::update(&acc, bus, c, &args).await?,
            tools::DELETE => ops::delete(&acc, bus, &args).await?,
            tools::FREE_BUSY => ops::free_busy(&acc, bus, c, &args).await?,
            other => {
                return Err(ServiceError::bad_request(format!(
                    "the calendar adapter has no tool '{other}'"
                )));
            }
        };
        Ok(v)
    }
}

impl Service for CalendarAdapter {
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
    name: "calendar",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// `openintentd service calendar`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        Ok(CalendarAdapter {
            bus: client,
            accounts: LiveAccounts::start(make)?,
        })
    })
}
