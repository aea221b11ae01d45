//! Supervisor benchmarks on the real release binary: cold start, restart
//! latency, idle memory, binary size.
//!
//! Of the core services the vault and memory are built so far: cold start,
//! restart and idle memory run them for real (vault key in a file) and two
//! `chaos` services (the test-only harness service, built into a separate
//! release binary) as stand-ins for the LLM router and the agent, last in
//! the `rest_for_one` core chain. The stand-ins measure the supervisor, the
//! bus and the harness, not any service's own initialisation.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use oi_ipc_schema::control::{ChildState, StatusReport, methods};
use oi_ipc_schema::frame::Kind;
use oi_ipc_schema::{DEFAULT_MAX_FRAME_BYTES, KERNEL_DESTINATION, decode_payload};
use oi_kernel::client::{BusClient, CallOptions};

use crate::daemon::{Daemon, chaos_openintentd, pss_kb, release_bins};
use crate::figure;
use crate::stats::Samples;

const CORE: [&str; 2] = ["llm-router-standin", "agent-standin"];

/// The shipped services these benchmarks leave out, so that their figures
/// keep measuring the same set: vault, memory and the stand-ins.
const OFF: &str = "[services.agent]\nenabled = false\n[services.telegram]\nenabled = false\n[services.llm-router]\nenabled = false\n[services.fs]\nenabled = false\n[services.shell]\nenabled = false\n[services.web]\nenabled = false\n[services.http]\nenabled = false\n[vault]\nkey_source = \"file\"\n";

fn chain_config(extra: &str) -> String {
    let mut c =
        String::from("[supervisor]\nbackoff_reset_secs = 0\n[groups.core]\nintensity = 100000\n");
    c.push_str(OFF);
    c.push_str(extra);
    for (i, n) in CORE.iter().enumerate() {
        c.push_str(&format!(
            "[services.{n}]\nkind = \"chaos\"\ngroup = \"core\"\norder = {}\n",
            30 + 10 * i
        ));
    }
    c
}

pub fn coldstart(quick: bool) -> anyhow::Result<()> {
    let exe = chaos_openintentd()?;
    let runs = if quick { 5 } else { 21 };
    let measure = |config: &str| -> anyhow::Result<Samples> {
        let mut v = Vec::new();
        for _ in 0..runs {
            let d = Daemon::start(&exe, config)?;
            v.push(d.wait_ready()?);
        }
        Ok(Samples::new(v))
    };
    let empty = measure(OFF)?;
    let chain = measure(&chain_config(""))?;
    figure("coldstart_ms", chain.ms(50.0));
    figure("coldstart_max_ms", chain.ms(100.0));
    figure("coldstart_services", CORE.len() + 2);
    figure("coldstart_vault_memory_ms", empty.ms(50.0));
    Ok(())
}

async fn status(c: &BusClient) -> anyhow::Result<StatusReport> {
    let b = c
        .request(
            KERNEL_DESTINATION,
            methods::STATUS,
            b"",
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await?;
    Ok(decode_payload(&b, Kind::Response, 0)?)
}

fn ready_pid(r: &StatusReport, name: &str) -> Option<u32> {
    r.services
        .iter()
        .find(|s| s.name == name && s.state == ChildState::Ready)
        .and_then(|s| s.pid)
}

pub fn restart(quick: bool) -> anyhow::Result<()> {
    let exe = chaos_openintentd()?;
    let d = Daemon::start(&exe, &chain_config(""))?;
    d.wait_ready()?;
    let rounds = if quick { 10 } else { 50 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let samples = rt.block_on(async {
        let (c, _) = BusClient::connect(&d.bus(), None, DEFAULT_MAX_FRAME_BYTES).await?;
        let mut v = Vec::new();
        // The last service of the chain: restarting it restarts nothing else.
        let name = CORE[CORE.len() - 1];
        for _ in 0..rounds {
            let old = ready_pid(&status(&c).await?, name).context("service not ready")?;
            let t0 = Instant::now();
            // SAFETY: signalling a child of the daemon we started.
            unsafe {
                libc::kill(old as i32, libc::SIGKILL);
            }
            loop {
                if let Some(p) = ready_pid(&status(&c).await?, name)
                    && p != old
                {
                    v.push(t0.elapsed());
                    break;
                }
                if t0.elapsed() > Duration::from_secs(10) {
                    bail!("no restart within 10 s");
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::Ok(Samples::new(v))
    })?;
    figure("restart_ms", samples.ms(50.0));
    figure("restart_p99_ms", samples.ms(99.0));
    Ok(())
}

pub fn idle_memory(quick: bool) -> anyhow::Result<()> {
    let exe = chaos_openintentd()?;
    let d = Daemon::start(&exe, &chain_config(""))?;
    d.wait_ready()?;
    let idle = Duration::from_secs(if quick { 5 } else { 60 });
    eprintln!("oi-bench: idling for {}s", idle.as_secs());
    std::thread::sleep(idle);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = rt.block_on(async {
        let (c, _) = BusClient::connect(&d.bus(), None, DEFAULT_MAX_FRAME_BYTES).await?;
        status(&c).await
    })?;
    let mut total = 0;
    let sup = pss_kb(d.child.id()).context("reading openintentd's smaps_rollup")?;
    total += sup;
    figure("idle_pss_kb_openintentd", sup);
    for s in &report.services {
        let pid = s.pid.context("service not running")?;
        let kb = pss_kb(pid).context("reading a service's smaps_rollup")?;
        total += kb;
        figure(&format!("idle_pss_kb_{}", s.name.replace('-', "_")), kb);
    }
    figure("idle_pss_kb_total", total);
    Ok(())
}

pub fn size() -> anyhow::Result<()> {
    let dir = release_bins()?;
    for bin in ["openintentd", "oictl"] {
        let len = std::fs::metadata(dir.join(bin))
            .with_context(|| format!("{bin} not built"))?
            .len();
        figure(&format!("{bin}_bytes"), len);
    }
    Ok(())
}

pub fn vault(quick: bool) -> anyhow::Result<()> {
    use oi_ipc_schema::vault::{SecretName, SetSecret, methods as vm};
    let dir = release_bins()?;
    let d = Daemon::start(&dir.join("openintentd"), "[vault]\nkey_source = \"file\"\n")?;
    d.wait_ready()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (samples, vault_pid) = rt.block_on(async {
        let (c, _) = BusClient::connect(&d.bus(), None, DEFAULT_MAX_FRAME_BYTES).await?;
        let set = oi_ipc_schema::encode_payload(&SetSecret {
            name: "openai-api-key".into(),
            value: vec![b'k'; 51],
            hosts: None,
        })?;
        c.request(
            oi_ipc_schema::vault::SERVICE,
            vm::SET,
            &set,
            CallOptions::default(),
        )
        .await?;
        let get = oi_ipc_schema::encode_payload(&SecretName {
            name: "openai-api-key".into(),
        })?;
        let n = if quick { 500 } else { 5000 };
        let mut v = Vec::with_capacity(n);
        for i in 0..n + 200 {
            let t0 = Instant::now();
            c.request(
                oi_ipc_schema::vault::SERVICE,
                vm::GET,
                &get,
                CallOptions::default(),
            )
            .await?;
            if i >= 200 {
                v.push(t0.elapsed());
            }
        }
        let pid = status(&c)
            .await?
            .services
            .iter()
            .find(|s| s.name == "vault")
            .and_then(|s| s.pid)
            .context("vault not running")?;
        anyhow::Ok((Samples::new(v), pid))
    })?;
    figure("vault_read_p50_us", samples.us(50.0));
    figure("vault_read_p99_us", samples.us(99.0));
    let idle = Duration::from_secs(if quick { 5 } else { 60 });
    eprintln!("oi-bench: idling for {}s", idle.as_secs());
    std::thread::sleep(idle);
    figure(
        "vault_idle_pss_kb",
        pss_kb(vault_pid).context("reading the vault's smaps_rollup")?,
    );
    Ok(())
}
