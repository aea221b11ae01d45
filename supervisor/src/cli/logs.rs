//! `oictl logs`: a service's captured output from the supervisor, or the
//! daemon's own log.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use oi_ipc_schema::control::{self, LogsRequest};
use oi_kernel::client::{BusClient, CallOptions};
use oi_kernel::paths::Paths;

/// `oictl logs <service>`, once or followed.
pub(super) async fn logs(
    client: &BusClient,
    service: String,
    lines: u32,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let req = LogsRequest {
        name: service,
        lines,
        follow,
    };
    let opts = CallOptions::deadline(Duration::from_secs(if follow {
        u32::MAX as u64 / 1000
    } else {
        10
    }));
    let mut out = std::io::stdout().lock();
    if !follow {
        let l = client.call(control::LOGS, &req, opts).await?;
        for line in l.lines {
            writeln!(out, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut stream = client.stream(control::LOGS_FOLLOW, &req, opts)?;
    while let Some(l) = stream.next().await? {
        for line in l.lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `oictl logs openintentd`: the daemon's own log, when oictl started it in
/// the background (`<runtime>/openintentd.log`); under systemd or launchd
/// it goes to their logs, which this says.
pub(super) async fn daemon_log(
    paths: &Paths,
    lines: u32,
    follow: bool,
) -> anyhow::Result<ExitCode> {
    let file = paths.runtime_dir.join("openintentd.log");
    let Ok(text) = std::fs::read_to_string(&file) else {
        bail!(
            "{} does not exist: openintentd was not started by oictl, so its log is its standard error (under systemd: `journalctl -u openintentd`, or `journalctl --user-unit openintentd` for a user unit; under launchd: the file its plist names as StandardErrorPath)",
            file.display()
        );
    };
    let all: Vec<&str> = text.lines().collect();
    let mut out = std::io::stdout().lock();
    for l in &all[all.len().saturating_sub(lines as usize)..] {
        writeln!(out, "{l}")?;
    }
    drop(out);
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let mut seen = text.len() as u64;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        if (bytes.len() as u64) < seen {
            seen = 0;
        }
        let new = &bytes[seen as usize..];
        if !new.is_empty() {
            std::io::stdout().lock().write_all(new)?;
            seen = bytes.len() as u64;
        }
    }
}
