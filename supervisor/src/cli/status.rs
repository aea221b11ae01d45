//! `oictl status`: the supervisor's report, as a table or JSON.

use std::time::Duration;

use oi_ipc_schema::control::{self, StatusReport};
use oi_kernel::client::{BusClient, CallOptions};

use oi_ipc_schema::control::ChildState;

/// The connection health of each running chat gateway (a bot can be
/// READY while every poll fails).
pub(super) async fn gateway_health(
    client: &BusClient,
    r: &StatusReport,
) -> Vec<(String, oi_ipc_schema::gateway::LinkHealth)> {
    let mut out = Vec::new();
    let running = |name: &str| {
        r.services
            .iter()
            .any(|s| s.name == name && s.state == ChildState::Ready)
    };
    if running(oi_ipc_schema::telegram::SERVICE) {
        let opts = CallOptions::deadline(Duration::from_secs(2));
        let h = match client
            .call(oi_ipc_schema::telegram::HEALTH, &(), opts)
            .await
        {
            Ok(h) => h,
            Err(e) => oi_ipc_schema::gateway::LinkHealth {
                healthy: false,
                summary: format!("does not say how polling goes ({e})"),
            },
        };
        out.push((oi_ipc_schema::telegram::SERVICE.to_string(), h));
    }
    out
}

/// The scheduler's jobs that need a look: (jobs in all, lines on the
/// disabled and the failing ones); `None` while it is not running.
pub(super) async fn scheduler_problems(
    client: &BusClient,
    r: &StatusReport,
) -> Option<(usize, Vec<String>)> {
    let name = oi_ipc_schema::scheduler::SERVICE;
    if !r
        .services
        .iter()
        .any(|s| s.name == name && s.state == ChildState::Ready)
    {
        return None;
    }
    let opts = CallOptions::deadline(Duration::from_secs(5));
    let list = match client.call(oi_ipc_schema::scheduler::LIST, &(), opts).await {
        Ok(l) => l,
        Err(e) => return Some((0, vec![format!("does not list its jobs ({e})")])),
    };
    let problems = list
        .jobs
        .iter()
        .filter_map(|j| {
            if !j.enabled && !j.disabled_reason.contains("oictl cron disable") {
                Some(format!(
                    "job {} ({}) is disabled: {}",
                    j.id, j.name, j.disabled_reason
                ))
            } else if j.enabled && j.consecutive_failures > 0 {
                let why = j
                    .last
                    .as_ref()
                    .map(|r| r.reason.as_str())
                    .unwrap_or_default();
                Some(format!(
                    "job {} ({}) failed {} times in a row: {why}",
                    j.id, j.name, j.consecutive_failures
                ))
            } else {
                None
            }
        })
        .collect();
    Some((list.jobs.len(), problems))
}

/// The supervisor's status report.
pub(super) async fn supervisor_status(client: &BusClient) -> anyhow::Result<StatusReport> {
    let opts = CallOptions::deadline(Duration::from_secs(10));
    Ok(client.call(control::STATUS, &(), opts).await?)
}

/// The `--json` shape of `oictl status`.
pub fn status_json(r: &StatusReport) -> serde_json::Value {
    serde_json::json!({
        "supervisor": {
            "pid": r.supervisor_pid,
            "uptime_s": r.uptime_ms / 1000,
            "config": r.config_path,
            "config_generation": r.config_generation,
            "config_error": r.config_error,
        },
        "services": r.services.iter().map(|s| serde_json::json!({
            "name": s.name,
            "state": s.state.as_str(),
            "pid": s.pid,
            "uptime_s": s.uptime_ms.map(|ms| ms / 1000),
            "restarts": s.restarts_window,
            "restarts_total": s.restarts_total,
            "last_exit": s.last_exit,
            "heartbeat_age_ms": s.heartbeat_age_ms,
            "rss_kb": s.rss_kb,
            "backoff_remaining_ms": s.backoff_remaining_ms,
        })).collect::<Vec<_>>(),
    })
}

pub fn human_duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

pub fn status_table(r: &StatusReport) -> String {
    let mut rows = vec![[
        "SERVICE".to_string(),
        "STATE".into(),
        "PID".into(),
        "UPTIME".into(),
        "RESTARTS".into(),
        "LAST EXIT".into(),
        "HEARTBEAT".into(),
        "RSS".into(),
    ]];
    // What a WAITING service waits for goes on a line of its own, not in
    // the LAST EXIT column (it is long).
    let mut notes: Vec<Option<String>> = vec![None];
    for s in &r.services {
        let waiting = s.state == ChildState::Waiting;
        // Not started yet (its turn has not come): not "EXITED".
        let pending = s.state == ChildState::Exited && s.pid.is_none() && s.last_exit.is_none();
        notes.push(waiting.then(|| s.last_exit.clone()).flatten());
        let state = match s.backoff_remaining_ms {
            Some(ms) => format!(
                "{} ({}.{}s)",
                s.state.as_str(),
                ms / 1000,
                (ms % 1000) / 100
            ),
            None if pending => "PENDING".to_string(),
            None => s.state.as_str().to_string(),
        };
        rows.push([
            s.name.clone(),
            state,
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            s.uptime_ms
                .map(human_duration)
                .unwrap_or_else(|| "-".into()),
            format!("{}/{}", s.restarts_window, s.restarts_total),
            s.last_exit
                .clone()
                .filter(|_| !waiting)
                .unwrap_or_else(|| "-".into()),
            s.heartbeat_age_ms
                .map(|ms| format!("{ms}ms"))
                .unwrap_or_else(|| "-".into()),
            s.rss_kb
                .map(|kb| format!("{:.1} MB", kb as f64 / 1024.0))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!(
        "openintentd pid {} up {} · config {} (generation {})\n",
        r.supervisor_pid,
        human_duration(r.uptime_ms),
        r.config_path,
        r.config_generation
    );
    if let Some(e) = &r.config_error {
        out.push_str(&format!(
            "config reload failed, still running the previous config: {e}\n"
        ));
    }
    if r.services.is_empty() {
        out.push_str("no services configured\n");
        return out;
    }
    for (row, note) in rows.iter().zip(notes) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if let Some(n) = note {
            out.push_str(&format!("  └ {n}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_ipc_schema::control::ServiceStatus;

    fn service(
        name: &str,
        state: ChildState,
        pid: Option<u32>,
        last_exit: Option<&str>,
    ) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            state,
            pid,
            uptime_ms: pid.map(|_| 5_000),
            restarts_window: 0,
            restarts_total: 0,
            last_exit: last_exit.map(String::from),
            heartbeat_age_ms: None,
            rss_kb: None,
            backoff_remaining_ms: None,
        }
    }

    #[test]
    fn waiting_reasons_get_a_line_and_unstarted_services_read_pending() {
        let why = "waiting for the environment variable TELEGRAM_BOT_TOKEN or the vault secret telegram-bot-token (`oictl vault set telegram-bot-token`)";
        let r = StatusReport {
            supervisor_pid: 7,
            uptime_ms: 5_000,
            config_path: "/c.toml".into(),
            config_generation: 1,
            config_error: None,
            services: vec![
                service("vault", ChildState::Ready, Some(11), None),
                service("telegram", ChildState::Waiting, None, Some(why)),
                service("agent", ChildState::Exited, None, None),
                service("shell", ChildState::Exited, None, Some("stopped by oictl")),
            ],
        };
        let t = status_table(&r);
        let lines: Vec<&str> = t.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with("telegram"))
            .unwrap();
        assert!(
            lines[at].contains("WAITING") && !lines[at].contains("TELEGRAM_BOT_TOKEN"),
            "{t}"
        );
        assert_eq!(lines[at + 1], format!("  └ {why}"));
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("agent") && l.contains("PENDING")),
            "{t}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("shell") && l.contains("EXITED")),
            "{t}"
        );
        // The rows stay narrow: the long reason is not in a column.
        assert!(
            lines
                .iter()
                .filter(|l| !l.starts_with("  └"))
                .all(|l| l.chars().count() < 100),
            "{t}"
        );
    }
}
