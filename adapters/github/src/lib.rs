//! The GitHub adapter (`openintentd service github`): GitHub's REST API
//! with the token of the vault secret `[github] token_secret`.
//!
//! - [`config`]: `[github]`: the API's URL (GitHub Enterprise, tests), the
//!   token's name, the repositories that may be written to, the limits.
//! - [`client`]: requests as a good client makes them: [`paging`] by
//!   `Link`, [`limits`] waited out, [`cache`] for conditional GETs,
//!   [`error`] bodies passed on.
//! - [`ops`]: what each tool does ([`tools`]), over the [`types`] GitHub
//!   sends.
//! - `fake` (feature): a stateful fake of the API for tests.

pub mod cache;
pub mod client;
pub mod config;
pub mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod limits;
pub mod ops;
pub mod paging;
pub mod tools;
pub mod types;

use std::time::Duration;

use oi_ipc_schema::ToolSpec;
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Live, Reply, Service, ServiceError};
use oi_kernel::tool::{self, json_reply};
use serde_json::Value;

use crate::client::Github;
pub use crate::config::GithubConfig;

/// Kept from the caller's deadline, so the tool's own error (a rate limit
/// that outlasts the call, say) reaches it first.
const MARGIN: Duration = Duration::from_millis(500);

pub struct GithubAdapter {
    bus: BusClient,
    gh: Live<Github>,
}

fn build(cfg: GithubConfig) -> Result<Github, ServiceError> {
    Github::new(cfg).map_err(|e| ServiceError::config_error(format!("[github] {e}")))
}

impl GithubAdapter {
    pub async fn call(&self, req: &IncomingRequest) -> Result<Value, ServiceError> {
        let name = req.method();
        let args: tools::Args = tool::args(req)?;
        let gh = self.gh.get();
        let c = &gh.cfg;
        let call = gh
            .call(&self.bus, req.deadline().saturating_sub(MARGIN))
            .await?;
        let v = match name {
            tools::LIST_REPOS => ops::list_repos(&call, c, &args).await?,
            tools::GET_REPO => ops::get_repo(&call, &args).await?,
            tools::LIST_ISSUES => ops::list_issues(&call, c, &args).await?,
            tools::GET_ISSUE => ops::get_issue(&call, c, &args).await?,
            tools::CREATE_ISSUE => ops::create_issue(&call, c, &args).await?,
            tools::COMMENT => ops::comment(&call, c, &args).await?,
            tools::LIST_PULLS => ops::list_pulls(&call, c, &args).await?,
            tools::GET_PULL => ops::get_pull(&call, c, &args).await?,
            tools::SEARCH => ops::search(&call, c, &args).await?,
            tools::GET_FILE => ops::get_file(&call, c, &args).await?,
            tools::LIST_RUNS => ops::list_runs(&call, c, &args).await?,
            other => {
                return Err(ServiceError::bad_request(format!(
                    "the github adapter has no tool '{other}'"
                )));
            }
        };
        Ok(v)
    }
}

impl Service for GithubAdapter {
    fn tools(&self) -> Vec<ToolSpec> {
        tools::specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        json_reply(self.call(&req).await?)
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(cfg) = harness::config_update(generation, config_toml, |c: &Config| {
            c.section::<GithubConfig>()
        }) else {
            return;
        };
        if cfg != self.gh.get().cfg {
            self.gh.rebuild("github", || build(cfg));
        }
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "github",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// `openintentd service github`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let cfg: GithubConfig = harness::service_config()?.section()?;
        Ok(GithubAdapter {
            bus: client,
            gh: Live::new(build(cfg)?),
        })
    })
}
