//! `oictl doctor`: one line per check, `ok` or `PROBLEM` with what to do.

use std::process::ExitCode;

use oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES;
use oi_kernel::client::BusClient;
use oi_kernel::paths::Paths;

use super::checks;
use super::status::{gateway_health, human_duration, supervisor_status};
use super::vault::vault_status;

/// `oictl doctor`: every check prints one line, `ok` or `PROBLEM` with what
/// to do.
pub(super) async fn doctor(paths: &Paths) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::MetadataExt;
    let mut problems = 0;
    let mut report = |ok: bool, line: String| {
        println!("{} {line}", if ok { "ok     " } else { "PROBLEM" });
        if !ok {
            problems += 1;
        }
    };
    let build = crate::services::build();
    match oi_kernel::config::Config::load_checked(&paths.config_file, Some(&build)) {
        Ok(c) => report(
            true,
            format!(
                "config {}: valid, {} services enabled",
                paths.config_file.display(),
                c.services.values().filter(|s| s.enabled).count()
            ),
        ),
        Err(e) => report(false, format!("config: {e}")),
    }
    match std::fs::metadata(&paths.runtime_dir) {
        Ok(m) if m.mode() & 0o077 == 0 && m.uid() == nix::unistd::geteuid().as_raw() => report(
            true,
            format!("runtime directory {}: private", paths.runtime_dir.display()),
        ),
        Ok(m) => report(
            false,
            format!(
                "runtime directory {} has mode {:04o} (owner uid {}); fix: chmod 700 {}",
                paths.runtime_dir.display(),
                m.mode() & 0o7777,
                m.uid(),
                paths.runtime_dir.display()
            ),
        ),
        Err(_) => report(
            true,
            format!(
                "runtime directory {}: not created yet (the daemon creates it)",
                paths.runtime_dir.display()
            ),
        ),
    }
    let client = match BusClient::connect(&paths.bus_socket(), None, DEFAULT_MAX_FRAME_BYTES).await
    {
        Ok((c, _)) => c,
        Err(e) => {
            report(false, format!("daemon: {e}"));
            return Ok(ExitCode::from(1));
        }
    };
    let st = supervisor_status(&client).await?;
    report(
        true,
        format!(
            "daemon: openintentd pid {}, up {}",
            st.supervisor_pid,
            human_duration(st.uptime_ms)
        ),
    );
    if let Some(e) = &st.config_error {
        report(
            false,
            format!("config reload refused, still running the previous config: {e}"),
        );
    }
    for s in &st.services {
        let state = s.state.as_str();
        let last = s.last_exit.as_deref().unwrap_or("none");
        match s.state {
            oi_ipc_schema::control::ChildState::Ready => report(
                true,
                format!(
                    "service {}: READY (restarts {}/{})",
                    s.name, s.restarts_window, s.restarts_total
                ),
            ),
            // Waiting for a token it was never given is how a fresh install
            // is (the Telegram bot before its token): not a problem.
            oi_ipc_schema::control::ChildState::Waiting => {
                report(true, format!("service {}: WAITING, {last}", s.name))
            }
            _ => report(
                false,
                format!(
                    "service {}: {state} (last exit: {last}); see `oictl logs {}`",
                    s.name, s.name
                ),
            ),
        }
    }
    for (name, h) in gateway_health(&client, &st).await {
        report(h.healthy, format!("gateway {name}: {}", h.summary));
    }
    checks::disk(&paths.data_dir, &mut report);
    let runs = |name: &str| {
        st.services
            .iter()
            .any(|s| s.name == name && s.state == oi_ipc_schema::control::ChildState::Ready)
    };
    if runs("llm-router") {
        checks::models(&client, &mut report).await;
    }
    checks::databases(&client, runs("memory"), &mut report).await;
    if st.services.iter().any(|s| s.name == "vault") {
        match vault_status(&client).await {
            Some(v) => report(
                true,
                format!(
                    "vault: key source {}, {} secrets, key epoch {}",
                    v.key_source, v.secrets, v.key_epoch
                ),
            ),
            None => report(
                false,
                "vault: not answering; see `oictl logs vault`".to_string(),
            ),
        }
    }
    Ok(if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
