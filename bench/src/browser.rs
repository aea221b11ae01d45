//! `oi-bench browser`: the browser adapter with a real headless Chromium
//! and a local page on 127.0.0.1.
//!
//! - `browser_adapter_idle_pss_kb`: the adapter before any call (no
//!   browser runs yet).
//! - `browser_cold_first_page_ms`: the first `browser_navigate`, which
//!   starts Chromium, proves it ready and loads the page.
//! - `browser_navigate_text_p50_ms` / `_p99_ms`: `browser_navigate` then
//!   `browser_text` of the page, next to `baseline_http_get_p50_ms` (the
//!   same page fetched with a plain HTTP GET in the same run).
//! - `browser_adapter_pss_kb` and `chromium_pss_kb` (every other process
//!   of the adapter's group) with the browser running.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use oi_kernel::client::CallOptions;
use serde_json::json;

use crate::daemon::{Daemon, only, pid_of, pss_kb, release_bins};
use crate::figure;
use crate::stats::Samples;

const PAGE: &str = "<html><head><title>Bench</title></head><body><main><h1>Bench</h1><p>A page with a little text and a script.</p><div id=x></div></main><script>document.getElementById('x').textContent = 'written by a script';</script></body></html>";

/// Serves `PAGE` on 127.0.0.1 until the process ends.
fn serve() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            );
        }
    });
    Ok(port)
}

fn http_get(port: u16) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    anyhow::ensure!(out.ends_with(b"</html>"), "short answer");
    Ok(t0.elapsed())
}

fn group_pss(pgid: u32, except: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| *p != except)
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(2)?
                        .parse::<u32>()
                        .ok()
                })
                == Some(pgid)
        })
        .filter_map(pss_kb)
        .sum()
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let port = serve()?;
    let url = format!("http://127.0.0.1:{port}/");
    let off = only(&["fs", "browser"]);
    let config = format!("{off}[web]\nallow_addresses = [\"127.0.0.1:{port}\"]\n");
    let daemon = Daemon::start(&release_bins()?.join("openintentd"), &config)?;
    daemon.wait_ready()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = daemon.client().await?;
        let adapter = pid_of(&client, oi_ipc_schema::browser::SERVICE).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        figure("browser_adapter_idle_pss_kb", pss_kb(adapter).unwrap_or(0));
        let call = |name: &'static str, args: serde_json::Value| {
            let client = client.clone();
            async move {
                oi_kernel::tool::call_on(
                    &client,
                    oi_ipc_schema::browser::SERVICE,
                    name,
                    &args.to_string(),
                    CallOptions::deadline(Duration::from_secs(60)),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))
            }
        };
        let t0 = Instant::now();
        call("browser_navigate", json!({"url": url})).await?;
        figure("browser_cold_first_page_ms", t0.elapsed().as_millis());
        let n = if quick { 20 } else { 200 };
        let (mut browser, mut baseline) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let t0 = Instant::now();
            call("browser_navigate", json!({"url": url})).await?;
            let text = call("browser_text", json!({})).await?;
            anyhow::ensure!(
                text["text"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("written by a script"),
                "{text}"
            );
            browser.push(t0.elapsed());
            baseline.push(http_get(port)?);
        }
        let b = Samples::new(browser);
        figure("browser_navigate_text_p50_ms", b.ms(50.0));
        figure("browser_navigate_text_p99_ms", b.ms(99.0));
        figure("baseline_http_get_p50_ms", Samples::new(baseline).ms(50.0));
        figure("browser_adapter_pss_kb", pss_kb(adapter).unwrap_or(0));
        figure("chromium_pss_kb", group_pss(adapter, adapter));
        anyhow::Ok(())
    })
}
