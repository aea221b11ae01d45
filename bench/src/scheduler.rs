//! `oi-bench scheduler`: the real daemon with the scheduler, agent and
//! memory (the jobs' intent, "what time is it", is answered by the intent
//! router, so no model is involved).
//!
//! - `sched_lateness_p50_ms` / `_p99_ms`: 100 `every 1s` jobs; for each
//!   slot, when its row was written and its intent started, minus the
//!   slot's time. `sched_missed_slots` counts the slots of those jobs that
//!   were recorded missed (overlap or lateness); `sched_runs` the runs.
//! - With 10,000 jobs loaded (each its own cron expression, due about six
//!   months from now):
//!   `sched_idle_cpu_ms_per_min` (the scheduler's user+system CPU over a
//!   minute), `sched_idle_wakeups_per_min` (its context switches, all
//!   threads) next to `baseline_idle_wakeups_per_min` (the same of the fs
//!   adapter, an idle service that only answers heartbeats, measured over
//!   the same minute), `sched_pss_kb_10k_jobs` next to `sched_pss_kb_empty`
//!   (before any job), `sched_list_10k_ms` (`scheduler.list` over the bus,
//!   p50), and `sched_add_p50_ms` (one job created: checked, stored with
//!   `synchronous=FULL`, armed).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oi_ipc_schema::scheduler::{self, History, HistoryQuery, JobList, JobRef, JobSpec};
use oi_kernel::client::{BusClient, CallOptions};

use crate::daemon::{Daemon, disabled, pid_of, pss_kb, release_bins};
use crate::figure;
use crate::stats::Samples;

fn opts() -> CallOptions {
    CallOptions::deadline(Duration::from_secs(60))
}

/// CPU ms of a process so far, and the context switches of each of its
/// threads (threads come and go: the blocking pool's exit when idle).
fn cpu_and_switches(pid: u32) -> anyhow::Result<(u64, HashMap<String, u64>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based; 12 and 13 after the
    // name), in clock ticks.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut switches = HashMap::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let t = t?;
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue; // it exited meanwhile
        };
        let mut n = 0;
        for l in status.lines() {
            if let Some(v) = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<u64>()?;
            }
        }
        switches.insert(t.file_name().to_string_lossy().into_owned(), n);
    }
    Ok((ticks * 1000 / hz, switches))
}

/// Switches between two samples: of the threads alive at the end (a
/// thread that exited in between is not counted).
fn switched(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .iter()
        .map(|(tid, n)| n.saturating_sub(before.get(tid).copied().unwrap_or(0)))
        .sum()
}

/// A cron expression of its own for job `n`, due about half a year from
/// now (none fires while the benchmark runs).
fn far_cron(n: usize) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let month_now = (secs as f64 / 86_400.0 / 30.44) as u64 % 12;
    let month = (month_now + 6) % 12 + 1;
    format!(
        "{} {} {} {month} *",
        n % 60,
        (n / 60) % 24,
        1 + (n / 1440) % 28
    )
}

fn job(schedule: &str, n: usize) -> JobSpec {
    JobSpec {
        name: format!("bench {n}"),
        schedule: schedule.into(),
        zone: "UTC".into(),
        intent: "what time is it".into(),
        ..JobSpec::default()
    }
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let off = disabled(&["vault", "llm-router", "shell", "web", "http", "telegram"]);
    let config = format!("{off}[scheduler]\nmax_jobs = 20000\ngrace_secs = 1\n");
    let daemon = Daemon::start(&release_bins()?.join("openintentd"), &config)?;
    daemon.wait_ready()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = daemon.client().await?;
        let sched = pid_of(&client, "scheduler").await?;
        figure("sched_pss_kb_empty", pss_kb(sched).unwrap_or(0));
        lateness(&client, quick).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        figure("sched_pss_kb_after_runs", pss_kb(sched).unwrap_or(0));
        loaded(&client, sched, quick).await
    })
}

async fn lateness(client: &BusClient, quick: bool) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for n in 0..100 {
        let j: scheduler::JobInfo = client
            .call(scheduler::ADD, &job("every 1s", n), opts())
            .await?;
        ids.push(j.id);
    }
    tokio::time::sleep(Duration::from_secs(if quick { 5 } else { 20 })).await;
    for id in &ids {
        client
            .call(scheduler::DISABLE, &JobRef { id: *id }, opts())
            .await?;
    }
    // The runs going end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let h: History = client
        .call(
            scheduler::HISTORY,
            &HistoryQuery {
                job: 0,
                limit: 10_000,
            },
            opts(),
        )
        .await?;
    let mut late = Vec::new();
    let (mut missed, mut runs) = (0, 0);
    for r in &h.runs {
        match r.status.as_str() {
            "missed" => missed += 1,
            _ if r.started_ms > 0 => {
                runs += 1;
                late.push(Duration::from_millis(
                    (r.started_ms - r.slot_ms).max(0) as u64
                ));
            }
            _ => {}
        }
    }
    let late = Samples::new(late);
    figure("sched_lateness_p50_ms", late.ms(50.0));
    figure("sched_lateness_p99_ms", late.ms(99.0));
    figure("sched_runs", runs);
    figure("sched_missed_slots", missed);
    for id in ids {
        client
            .call(scheduler::REMOVE, &JobRef { id }, opts())
            .await?;
    }
    Ok(())
}

async fn loaded(client: &BusClient, sched: u32, quick: bool) -> anyhow::Result<()> {
    let n = if quick { 1_000 } else { 10_000 };
    let mut adds = Vec::with_capacity(n);
    for i in 0..n {
        let t0 = Instant::now();
        client
            .call(scheduler::ADD, &job(&far_cron(i), i), opts())
            .await?;
        adds.push(t0.elapsed());
    }
    figure("sched_jobs_loaded", n);
    figure("sched_add_p50_ms", Samples::new(adds).ms(50.0));
    tokio::time::sleep(Duration::from_secs(2)).await;
    figure("sched_pss_kb_10k_jobs", pss_kb(sched).unwrap_or(0));
    let mut lists = Vec::new();
    for _ in 0..if quick { 3 } else { 10 } {
        let t0 = Instant::now();
        let l: JobList = client.call(scheduler::LIST, &(), opts()).await?;
        anyhow::ensure!(l.jobs.len() == n, "listed {} jobs of {n}", l.jobs.len());
        lists.push(t0.elapsed());
    }
    figure("sched_list_10k_ms", Samples::new(lists).ms(50.0));
    let fs = pid_of(client, "fs").await?;
    // Settle, then a quiet minute.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = Duration::from_secs(if quick { 10 } else { 60 });
    let (c0, s0) = cpu_and_switches(sched)?;
    let (_, b0) = cpu_and_switches(fs)?;
    tokio::time::sleep(window).await;
    let (c1, s1) = cpu_and_switches(sched)?;
    let (_, b1) = cpu_and_switches(fs)?;
    let per_min = |v: u64| v * 60 / window.as_secs();
    figure("sched_idle_cpu_ms_per_min", per_min(c1 - c0));
    figure("sched_idle_wakeups_per_min", per_min(switched(&s0, &s1)));
    figure("baseline_idle_wakeups_per_min", per_min(switched(&b0, &b1)));
    figure("sched_pss_kb_after_lists", pss_kb(sched).unwrap_or(0));
    Ok(())
}
