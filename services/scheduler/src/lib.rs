//! The scheduler (`openintentd service scheduler`): intents on a schedule,
//! kept in `<data>/scheduler.db`, never silent.
//!
//! - [`schedule`]: when a job runs (cron in an explicit zone, every, at).
//! - [`slots`]: what happens to each slot that comes due; [`overlap`]
//!   when the last run still goes; [`jump`] a wall clock that jumps.
//! - [`job`]: a job checked and in memory; [`store`] its rows.
//! - [`core`]: the decisions on an injected clock; [`service`] the one
//!   timer, the runs and the deliveries around it; [`tools`] the agent's
//!   `cron_*` tools.

pub mod config;
pub mod core;
pub mod job;
pub mod jump;
pub mod overlap;
pub mod schedule;
pub mod service;
pub mod slots;
pub mod store;
pub mod timer;
pub mod tools;

use std::sync::Arc;

use jiff::tz::TimeZone;
use oi_ipc_schema::ToolSpec;
use oi_ipc_schema::scheduler::{History, HistoryQuery, JobList, JobRef, JobSpec, methods};
use oi_kernel::client::IncomingRequest;
use oi_kernel::config::Config;
use oi_kernel::harness::{self, Reply, Service, ServiceError, archived_reply, decode_request};
use oi_kernel::tool::{self, json_reply};
use serde_json::json;
use tracing::info;

pub use crate::config::SchedulerConfig;
use crate::core::Core;
use crate::service::{Shared, bus_error};

/// The origin of jobs made with `oictl cron add`.
pub const OICTL: &str = "oictl";

pub struct Scheduler(Arc<Shared>);

impl Scheduler {
    /// A request for the core, answered with its result or its error.
    async fn core<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> Result<T, core::CoreError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        self.0.core(f).await?.map_err(bus_error)
    }

    /// `cron_add`, `cron_list`, `cron_remove`: the agent's, for the chat
    /// it serves; the user's, for every job.
    async fn tool(&self, req: &IncomingRequest) -> Result<Reply, ServiceError> {
        let sh = &self.0;
        let (user, chat) = match req.caller() {
            "" => (true, ""),
            oi_ipc_schema::agent::SERVICE => (false, req.chat()),
            other => {
                return Err(tool::denied(format!(
                    "service '{other}' may not manage scheduled jobs"
                )));
            }
        };
        let origin = match (user, chat) {
            (true, _) => None,
            (false, "") => Some(oi_ipc_schema::agent::SERVICE.to_string()),
            (false, c) => Some(c.to_string()),
        };
        let now = timer::now();
        match req.method() {
            tools::ADD => {
                let a: tools::AddArgs = tool::args(req)?;
                let spec = tools::add_spec(a, chat)
                    .map_err(|e| ServiceError::bad_request(format!("{}: {e}", tools::ADD)))?;
                let origin = origin.unwrap_or_else(|| OICTL.into());
                let j = self.core(move |c| c.add(&spec, &origin, now)).await?;
                sh.rearm();
                let mut v = tools::job_json(&j);
                v["note"] = json!(if j.deliver.is_empty() {
                    format!(
                        "Each run's answer is kept in the run history (`oictl cron history {}`).",
                        j.id
                    )
                } else {
                    "Each run's answer is sent to this chat.".to_string()
                });
                json_reply(v)
            }
            tools::LIST => {
                let jobs = self.core(move |c| c.list(origin.as_deref())).await?;
                json_reply(json!({"jobs": jobs.iter().map(tools::job_json).collect::<Vec<_>>()}))
            }
            _ => {
                let a: tools::RemoveArgs = tool::args(req)?;
                let actions = self
                    .core(move |c| {
                        c.check_origin(a.id, origin.as_deref())?;
                        c.remove(a.id)
                    })
                    .await?;
                sh.perform(actions);
                sh.rearm();
                json_reply(json!({"removed": a.id}))
            }
        }
    }
}

impl Service for Scheduler {
    fn tools(&self) -> Vec<ToolSpec> {
        tools::specs()
    }

    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        let sh = &self.0;
        if matches!(req.method(), tools::ADD | tools::LIST | tools::REMOVE) {
            return self.tool(&req).await;
        }
        if !req.caller().is_empty() {
            return Err(ServiceError::denied(format!(
                "service '{}' may not manage scheduled jobs",
                req.caller()
            )));
        }
        let now = timer::now();
        match req.method() {
            methods::ADD => {
                let spec: JobSpec = decode_request(&req)?;
                let info = self.core(move |c| c.add(&spec, OICTL, now)).await?;
                sh.rearm();
                archived_reply(&info)
            }
            methods::LIST => {
                let jobs = self.core(|c| c.list(None)).await?;
                archived_reply(&JobList { jobs })
            }
            methods::REMOVE => {
                let JobRef { id } = decode_request(&req)?;
                let actions = self.core(move |c| c.remove(id)).await?;
                sh.perform(actions);
                sh.rearm();
                Ok(Reply::Once(Vec::new()))
            }
            methods::ENABLE => {
                let JobRef { id } = decode_request(&req)?;
                let info = self.core(move |c| c.enable(id, now)).await?;
                sh.rearm();
                archived_reply(&info)
            }
            methods::DISABLE => {
                let JobRef { id } = decode_request(&req)?;
                let info = self
                    .core(move |c| c.disable(id, "disabled with `oictl cron disable`"))
                    .await?;
                sh.rearm();
                archived_reply(&info)
            }
            methods::RUN => {
                let JobRef { id } = decode_request(&req)?;
                let (info, actions) = self.core(move |c| c.run_now(id, now)).await?;
                sh.perform(actions);
                archived_reply(&info)
            }
            methods::HISTORY => {
                let q: HistoryQuery = decode_request(&req)?;
                let job = (q.job != 0).then_some(q.job);
                let limit = q.limit.clamp(1, 10_000);
                let runs = self.core(move |c| c.history(job, limit)).await?;
                archived_reply(&History { runs })
            }
            other => Err(ServiceError::bad_request(format!(
                "the scheduler has no method '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(cfg) =
            harness::config_update(generation, config_toml, Config::section::<SchedulerConfig>)
        else {
            return;
        };
        if self.0.core(move |c| c.set_config(cfg)).await.is_ok() {
            info!("new [scheduler] settings applied");
            self.0.rearm();
        }
    }
}

/// The host's zone by its IANA name ("UTC" when it has none).
pub fn host_zone() -> String {
    TimeZone::system().iana_name().unwrap_or("UTC").to_string()
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "scheduler",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// Entry point of `openintentd service scheduler`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let cfg: SchedulerConfig = harness::service_config()?.section()?;
        let dir = harness::data_dir(name)?;
        std::fs::create_dir_all(&dir).map_err(|e| {
            ServiceError::config_error(format!("cannot create {}: {e}", dir.display()))
        })?;
        let path = dir.join("scheduler.db");
        let (core, recovered) = Core::open(&path, cfg, host_zone())
            .map_err(|e| ServiceError::config_error(e.to_string()))?;
        if recovered.interrupted + recovered.queued > 0 {
            info!(
                interrupted = recovered.interrupted,
                queued = recovered.queued,
                "runs cut short by the last stop are recorded, not run again"
            );
        }
        info!(jobs = core.job_count(), zone = %host_zone(), "scheduler ready");
        let sh = Shared::new(core, client)?;
        tokio::spawn(service::timer_loop(sh.clone()));
        Ok(Scheduler(sh))
    })
}
