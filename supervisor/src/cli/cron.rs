//! `oictl cron ...`: scheduled intents, their next runs and what happened
//! to every slot.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use oi_ipc_schema::scheduler::{
    self, History, HistoryQuery, JobInfo, JobList, JobRef, JobSpec, Missed, Overlap, RunInfo,
};
use oi_kernel::client::{BusClient, CallOptions};
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum CronCmd {
    /// A new job: `oictl cron add "0 8 * * 1-5" "check the weather in
    /// Berlin" --tz Europe/Berlin --deliver telegram:42`. Schedules: cron
    /// of 5 or 6 fields (with L, W, # and @daily...), `every 10m`, `at
    /// <RFC 3339 time>`, `in 2h`.
    Add(Box<AddCmd>),
    /// Every job: its schedule in words, next run (in its zone and UTC),
    /// last outcome; disabled and failing jobs are marked.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a job and its history.
    #[command(alias = "remove")]
    Rm {
        id: i64,
    },
    /// Run a disabled job again (slots missed meanwhile are recorded).
    Enable {
        id: i64,
    },
    Disable {
        id: i64,
    },
    /// Run a job now (recorded as manual).
    Run {
        id: i64,
    },
    /// What happened to each slot, newest first.
    History {
        id: Option<i64>,
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct AddCmd {
    schedule: String,
    intent: String,
    /// IANA time zone of a cron expression (default: the host's).
    #[arg(long)]
    tz: Option<String>,
    /// Where answers go besides the run history (repeatable).
    #[arg(long)]
    deliver: Vec<String>,
    /// Start the model cascade at this alias.
    #[arg(long)]
    model: Option<String>,
    /// skip, run_once or run_all.
    #[arg(long, default_value = "skip")]
    missed: String,
    /// skip, queue or cancel_previous.
    #[arg(long, default_value = "skip")]
    overlap: String,
    #[arg(long)]
    name: Option<String>,
    /// The chat it runs in (default: cron:<id>).
    #[arg(long)]
    chat: Option<String>,
    /// Seconds a run may take (default: [scheduler] run_timeout_secs).
    #[arg(long, default_value_t = 0)]
    timeout: u64,
    /// Up to this many seconds of delay per slot.
    #[arg(long, default_value_t = 0)]
    jitter: u64,
    #[arg(long)]
    json: bool,
}

fn opts() -> CallOptions {
    CallOptions::deadline(Duration::from_secs(15))
}

pub async fn cron(client: &BusClient, cmd: CronCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        CronCmd::Add(add) => {
            let AddCmd {
                schedule,
                intent,
                tz,
                deliver,
                model,
                missed,
                overlap,
                name,
                chat,
                timeout,
                jitter,
                json,
            } = *add;
            let spec = JobSpec {
                name: name.unwrap_or_default(),
                schedule,
                zone: tz.unwrap_or_default(),
                intent,
                chat: chat.unwrap_or_default(),
                alias: model.unwrap_or_default(),
                deliver,
                timeout_secs: timeout,
                overlap: Overlap::parse(&overlap).map_err(|e| anyhow::anyhow!("--overlap {e}"))?,
                missed: Missed::parse(&missed).map_err(|e| anyhow::anyhow!("--missed {e}"))?,
                jitter_secs: jitter,
            };
            let j: JobInfo = client.call(scheduler::ADD, &spec, opts()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&job_json(&j))?);
            } else {
                println!("Job {} added.\n", j.id);
                print!("{}", job_block(&j));
            }
        }
        CronCmd::List { json } => {
            let list: JobList = client.call(scheduler::LIST, &(), opts()).await?;
            if json {
                let v: Vec<Value> = list.jobs.iter().map(job_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.jobs.is_empty() {
                println!(
                    "No scheduled jobs. Add one with `oictl cron add \"<schedule>\" \"<intent>\"`."
                );
            } else {
                let blocks: Vec<String> = list.jobs.iter().map(job_block).collect();
                print!("{}", blocks.join("\n"));
            }
        }
        CronCmd::Rm { id } => {
            client
                .call(scheduler::REMOVE, &JobRef { id }, opts())
                .await?;
            println!("Job {id} removed, with its history.");
        }
        CronCmd::Enable { id } => {
            let j: JobInfo = client
                .call(scheduler::ENABLE, &JobRef { id }, opts())
                .await?;
            println!("Job {id} enabled; next run {}.", next_text(&j));
        }
        CronCmd::Disable { id } => {
            client
                .call(scheduler::DISABLE, &JobRef { id }, opts())
                .await?;
            println!("Job {id} disabled; `oictl cron enable {id}` turns it on again.");
        }
        CronCmd::Run { id } => {
            let r: RunInfo = client.call(scheduler::RUN, &JobRef { id }, opts()).await?;
            println!(
                "Job {id} is running now (run {}, intent {}); `oictl cron history {id}` shows how it ends.",
                r.id, r.intent_id
            );
        }
        CronCmd::History { id, limit, json } => {
            let q = HistoryQuery {
                job: id.unwrap_or(0),
                limit,
            };
            let h: History = client.call(scheduler::HISTORY, &q, opts()).await?;
            if json {
                let v: Vec<Value> = h.runs.iter().map(run_json).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if h.runs.is_empty() {
                println!("No runs yet.");
            } else {
                print!("{}", history_table(&h.runs));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A unix time in ms as RFC 3339 UTC, to the second.
fn utc(ms: i64) -> String {
    oi_scheduler::job::ts(ms.div_euclid(1000) * 1000).to_string()
}

fn next_text(j: &JobInfo) -> String {
    if !j.enabled {
        "none (disabled)".into()
    } else if j.next_ms == 0 {
        "none (no slot is left)".into()
    } else {
        format!("{} ({})", j.next_local, j.next_utc)
    }
}

pub fn job_block(j: &JobInfo) -> String {
    let state = if !j.enabled {
        format!("DISABLED: {}", j.disabled_reason)
    } else if j.consecutive_failures > 0 {
        format!("FAILING: {} in a row", j.consecutive_failures)
    } else {
        "enabled".into()
    };
    let mut s = format!(
        "#{} {}  [{state}]\n  {}  `{}`\n  next: {}\n",
        j.id,
        j.name,
        j.described,
        j.schedule,
        next_text(j)
    );
    s.push_str(&format!("  intent: {}\n", j.intent));
    if let Some(r) = &j.last {
        s.push_str(&format!("  last: {} {}", r.status, utc(r.slot_ms)));
        if !r.reason.is_empty() {
            s.push_str(&format!(" ({})", r.reason));
        }
        s.push('\n');
    }
    if !j.deliver.is_empty() {
        s.push_str(&format!("  delivers to: {}\n", j.deliver.join(", ")));
    }
    s
}

pub fn job_json(j: &JobInfo) -> Value {
    json!({
        "id": j.id, "name": j.name, "schedule": j.schedule, "described": j.described,
        "zone": j.zone, "intent": j.intent, "chat": j.chat, "model": j.alias,
        "deliver": j.deliver, "timeout_secs": j.timeout_secs, "overlap": j.overlap.as_str(),
        "missed": j.missed.as_str(), "jitter_secs": j.jitter_secs, "enabled": j.enabled,
        "disabled_reason": j.disabled_reason, "consecutive_failures": j.consecutive_failures,
        "next_ms": j.next_ms, "next_local": j.next_local, "next_utc": j.next_utc,
        "created_ms": j.created_ms, "last": j.last.as_ref().map(run_json),
    })
}

pub fn run_json(r: &RunInfo) -> Value {
    json!({
        "id": r.id, "job": r.job, "slot_ms": r.slot_ms, "slot_utc": utc(r.slot_ms),
        "status": r.status, "reason": r.reason, "trigger": r.trigger, "intent_id": r.intent_id,
        "started_ms": r.started_ms, "duration_ms": r.duration_ms, "tokens": r.tokens,
        "model": r.model, "excerpt": r.excerpt, "delivery": r.delivery,
    })
}

fn history_table(runs: &[RunInfo]) -> String {
    let mut s = format!(
        "{:<5} {:<20} {:<11} {:<9} {:>7} {:>6}  WHAT\n",
        "JOB", "SLOT (UTC)", "STATUS", "TRIGGER", "TIME", "TOKENS"
    );
    for r in runs {
        let took = if r.started_ms > 0 {
            format!("{:.1}s", r.duration_ms as f64 / 1000.0)
        } else {
            "-".into()
        };
        let what = if r.reason.is_empty() {
            r.excerpt.replace('\n', " ").chars().take(60).collect()
        } else {
            r.reason.clone()
        };
        s.push_str(&format!(
            "{:<5} {:<20} {:<11} {:<9} {:>7} {:>6}  {what}\n",
            r.job,
            utc(r.slot_ms),
            r.status,
            r.trigger,
            took,
            r.tokens
        ));
        for d in &r.delivery {
            s.push_str(&format!("{:<5} {:<20} → {d}\n", "", ""));
        }
    }
    s
}
