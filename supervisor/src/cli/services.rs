//! `oictl status`, `restart`, `stop`, `start` and `shutdown`: the
//! supervisor's control methods.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use oi_ipc_schema::control::{self, ServiceName};
use oi_ipc_schema::{Call, DEFAULT_MAX_FRAME_BYTES, Text};
use oi_kernel::client::{BusClient, BusError, CallOptions};
use oi_kernel::paths::Paths;

use super::status::{
    gateway_health, scheduler_problems, status_json, status_table, supervisor_status,
};
use super::vault::vault_status;

/// `oictl status`: the services' table (or JSON) and the vault's state.
pub(super) async fn status(client: &BusClient, json: bool) -> anyhow::Result<ExitCode> {
    let report = supervisor_status(client).await?;
    let vault = vault_status(client).await;
    let gateways = gateway_health(client, &report).await;
    let scheduler = scheduler_problems(client, &report).await;
    if json {
        let mut j = status_json(&report);
        if let Some((jobs, problems)) = &scheduler {
            j["scheduler"] = serde_json::json!({"jobs": jobs, "problems": problems});
        }
        j["gateways"] = gateways
            .iter()
            .map(|(name, h)| {
                (
                    name.clone(),
                    serde_json::json!({"healthy": h.healthy, "summary": h.summary}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        j["vault"] = match &vault {
            Some(v) => {
                serde_json::json!({"key_source": v.key_source, "secrets": v.secrets, "key_epoch": v.key_epoch})
            }
            None => serde_json::Value::Null,
        };
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        print!("{}", status_table(&report));
        for (name, h) in &gateways {
            let mark = if h.healthy { "" } else { "PROBLEM: " };
            println!("{name}: {mark}{}", h.summary);
        }
        if let Some((jobs, problems)) = &scheduler {
            println!("scheduler: {jobs} jobs");
            for p in problems {
                println!("scheduler: PROBLEM: {p}");
            }
        }
        if let Some(v) = vault {
            println!("vault: key source {}, {} secrets", v.key_source, v.secrets);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `oictl shutdown`: asks the daemon to stop and waits until it is gone.
pub(super) async fn shutdown(paths: &Paths) -> anyhow::Result<ExitCode> {
    let client = match BusClient::connect(&paths.bus_socket(), None, DEFAULT_MAX_FRAME_BYTES).await
    {
        Ok((c, _)) => c,
        Err(BusError::NoDaemon { .. }) => {
            eprintln!("oictl: openintentd is not running");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    client
        .call(
            control::SHUTDOWN,
            &(),
            CallOptions::deadline(Duration::from_secs(10)),
        )
        .await?;
    // Wait for the daemon to be gone (its socket closes last).
    let t0 = Instant::now();
    while BusClient::connect(&paths.bus_socket(), None, DEFAULT_MAX_FRAME_BYTES)
        .await
        .is_ok()
    {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("openintentd was asked to shut down but is still running after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("oictl: openintentd stopped");
    Ok(ExitCode::SUCCESS)
}

/// `oictl restart` and `oictl stop`.
pub(super) async fn control(
    client: &BusClient,
    method: Call<ServiceName, ()>,
    service: &str,
    verb: &str,
) -> anyhow::Result<ExitCode> {
    let name = ServiceName {
        name: service.to_string(),
    };
    let opts = CallOptions::deadline(Duration::from_secs(10));
    client.call(method, &name, opts).await?;
    eprintln!("oictl: {verb} {service}");
    Ok(ExitCode::SUCCESS)
}

/// `oictl start`: says why a service stays WAITING.
pub(super) async fn start(client: &BusClient, service: &str) -> anyhow::Result<ExitCode> {
    let name = ServiceName {
        name: service.to_string(),
    };
    let opts = CallOptions::deadline(Duration::from_secs(10));
    let Text(note) = client.call(control::START, &name, opts).await?;
    if note.is_empty() {
        eprintln!("oictl: starting {service}");
    } else {
        eprintln!("oictl: {service} stays WAITING, {note}; it starts by itself once that is there");
    }
    Ok(ExitCode::SUCCESS)
}
