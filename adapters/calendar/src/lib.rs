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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use oi_ipc_schema::{ErrorCode, ToolSpec};
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply};
use serde_json::Value;

use crate::account::{Account, CalError};
pub use crate::config::CalendarConfig;

struct State {
    cfg: CalendarConfig,
    accounts: BTreeMap<String, Arc<Account>>,
}

pub struct CalendarAdapter {
    bus: BusClient,
    state: Live<State>,
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

/// The accounts of `cfg`; one whose settings did not change keeps its
/// discovered calendars.
fn build(cfg: CalendarConfig, old: Option<&State>) -> Result<State, ServiceError> {
    let limit = Duration::from_secs(cfg.timeout_secs);
    let mut accounts = BTreeMap::new();
    for (name, a) in &cfg.accounts {
        let kept = old
            .filter(|o| o.cfg.timeout_secs == cfg.timeout_secs)
            .and_then(|o| o.accounts.get(name))
            .filter(|acc| acc.cfg == *a)
            .cloned();
        let acc = match kept {
            Some(k) => k,
            None => Arc::new(Account::new(name, a.clone(), limit).map_err(|e| {
                ServiceError::config_error(format!("[calendar.accounts.{name}] {e}"))
            })?),
        };
        accounts.insert(name.clone(), acc);
    }
    Ok(State { cfg, accounts })
}

impl CalendarAdapter {
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
        let Some(cfg) = harness::config_update(generation, config_toml, |c: &Config| {
            c.section::<CalendarConfig>()
        }) else {
            return;
        };
        let old = self.state.get();
        self.state.rebuild("calendar", || build(cfg, Some(&old)));
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
        let config = harness::service_config()?;
        let cfg: CalendarConfig = config.section()?;
        let state = build(cfg, None)?;
        Ok(CalendarAdapter {
            bus: client,
            state: Live::new(state),
        })
    })
}
