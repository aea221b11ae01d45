//! The Feishu / Lark service (`openintentd service feishu`): the app's
//! messages to groups and people, as tools.
//!
//! - [`config`]: `[feishu]`: the platform's domain, the app id and the
//!   vault name of its secret.
//! - [`api`]: the REST API with the tenant token, renewed before its end.
//! - [`ops`]: what each tool does ([`tools`]); [`content`] the messages.
//! - `fake` (feature): a fake open platform for tests.

pub mod api;
pub mod config;
pub mod content;
#[cfg(feature = "fake")]
pub mod fake;
pub mod frame;
pub mod longconn;
pub mod ops;
pub mod tools;

use oi_ipc_schema::ToolSpec;
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply};
use serde_json::Value;

use crate::api::Feishu;
pub use crate::config::FeishuConfig;

pub struct FeishuService {
    bus: BusClient,
    fs: Live<Feishu>,
}

fn build(cfg: FeishuConfig) -> Result<Feishu, ServiceError> {
    Feishu::new(cfg).map_err(|e| ServiceError::config_error(format!("[feishu] {e}")))
}

impl FeishuService {
    pub async fn call(&self, req: &IncomingRequest) -> Result<Value, ServiceError> {
        let args: tools::Args = tool::args(req)?;
        let fs = self.fs.get();
        let v = match req.method() {
            tools::SEND => ops::send(&fs, &self.bus, &args).await?,
            tools::LIST_CHATS => ops::list_chats(&fs, &self.bus).await?,
            tools::REPLY => ops::reply(&fs, &self.bus, &args).await?,
            other => {
                return Err(ServiceError::bad_request(format!(
                    "the feishu service has no tool '{other}'"
                )));
            }
        };
        Ok(v)
    }
}

impl Service for FeishuService {
    fn tools(&self) -> Vec<ToolSpec> {
        tools::specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        json_reply(self.call(&req).await?)
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(cfg) = harness::config_update(generation, config_toml, |c: &Config| {
            c.section::<FeishuConfig>()
        }) else {
            return;
        };
        if cfg != self.fs.get().cfg {
            self.fs.rebuild("feishu", || build(cfg));
        }
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "feishu",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// `openintentd service feishu`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let cfg: FeishuConfig = harness::service_config()?.section()?;
        Ok(FeishuService {
            bus: client,
            fs: Live::new(build(cfg)?),
        })
    })
}
