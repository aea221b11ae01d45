//! `oi-bench tools`: a tool call's round trip through the bus, against the
//! same work done in-process, in one run.
//!
//! - `fs_read_direct`: `std::fs::read_to_string` of a 1 KiB file.
//! - `fs_read_inprocess`: the fs adapter's own read (openat2 beneath the
//!   root, UTF-8 cut, JSON result), called as a function.
//! - `fs_read_file_bus`: `fs_read_file` from this process through the
//!   broker to the fs adapter process and back (JSON arguments in, JSON
//!   result out), as the agent will call it.
//!
//! Samples alternate in batches so drift hits all three alike.

use std::time::{Duration, Instant};

use oi_kernel::client::CallOptions;

use crate::daemon::{Daemon, disabled, release_bins};
use crate::figure;
use crate::stats::Samples;

pub fn run(quick: bool) -> anyhow::Result<()> {
    let bins = release_bins()?;
    let off = disabled(&[
        "vault",
        "memory",
        "llm-router",
        "shell",
        "web",
        "http",
        "agent",
    ]);
    let daemon = Daemon::start(&bins.join("openintentd"), &off)?;
    daemon.wait_ready()?;
    let ws = daemon.home.path().join("data/workspace");
    let text: String = "The quick brown fox jumps over the lazy dog. 日本語.\n"
        .repeat(20)
        .chars()
        .take(1024)
        .collect();
    std::fs::write(ws.join("small.txt"), &text)?;
    let roots = oi_sandbox::roots::Roots::open(&[&ws])?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let n = if quick { 500 } else { 5000 };
    let (direct, inproc, bus) = rt.block_on(async {
        let client = daemon.client().await?;
        let args = br#"{"path": "small.txt"}"#;
        let opts = || CallOptions::deadline(Duration::from_secs(10)).waiting();
        let path = ws.join("small.txt");
        let one_direct = || -> anyhow::Result<Duration> {
            let t = Instant::now();
            let s = std::fs::read_to_string(&path)?;
            std::hint::black_box(s);
            Ok(t.elapsed())
        };
        let one_inproc = || -> anyhow::Result<Duration> {
            let t = Instant::now();
            let r = oi_adapter_fs::ops::read(&roots, "small.txt", 0, 16384)?;
            std::hint::black_box(serde_json::to_vec(&r)?);
            Ok(t.elapsed())
        };
        for _ in 0..200 {
            one_direct()?;
            one_inproc()?;
            client.request("fs", "fs_read_file", args, opts()).await?;
        }
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        let batch = 50;
        for _ in 0..n / batch {
            for _ in 0..batch {
                a.push(one_direct()?);
            }
            for _ in 0..batch {
                b.push(one_inproc()?);
            }
            for _ in 0..batch {
                let t = Instant::now();
                let out = client.request("fs", "fs_read_file", args, opts()).await?;
                c.push(t.elapsed());
                anyhow::ensure!(out.len() > 1024, "short result");
            }
        }
        anyhow::Ok((Samples::new(a), Samples::new(b), Samples::new(c)))
    })?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    figure("fs_read_direct_p50_us", direct.us(50.0));
    figure("fs_read_direct_p99_us", direct.us(99.0));
    figure("fs_read_inprocess_p50_us", inproc.us(50.0));
    figure("fs_read_inprocess_p99_us", inproc.us(99.0));
    figure("fs_read_file_bus_p50_us", bus.us(50.0));
    figure("fs_read_file_bus_p99_us", bus.us(99.0));
    figure(
        "tool_call_overhead_p50_us",
        format!("{:.1}", us(bus.pct(50.0)) - us(inproc.pct(50.0))),
    );
    figure("samples", n);
    drop(daemon);
    Ok(())
}
