//! `oi-bench calendar`: the calendar adapter against a real Radicale
//! (PyPI `radicale`) holding December 2026 with 200 events, 40 of them
//! weekly series (Europe/Berlin).
//!
//! - `calendar_events_month_p50_ms` / `_p99_ms`: `calendar_events` for the
//!   month through the bus, next to `baseline_radicale_report_p50_ms`: the
//!   same REPORT (calendar-query with the month's time-range) sent to
//!   Radicale directly in the same run.
//! - `calendar_month_occurrences`: what the listing held.
//! - `calendar_adapter_idle_pss_kb` before any call, `calendar_adapter_pss_kb`
//!   after the calls.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use oi_kernel::client::CallOptions;
use serde_json::json;

use crate::daemon::{Daemon, Group, only, pid_of, pss_kb, release_bins, set_secret, wait_port};
use crate::figure;
use crate::stats::Samples;

const USER: &str = "alice";
const PASSWORD: &str = "bench-pw";
const EVENTS: usize = 200;
const RECURRING: usize = 40;
const REPORT: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<c:calendar-query xmlns:d=\"DAV:\" xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:prop><d:getetag/><c:calendar-data/></d:prop><c:filter><c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"><c:time-range start=\"20261130T230000Z\" end=\"20261231T230000Z\"/></c:comp-filter></c:comp-filter></c:filter></c:calendar-query>";

fn start_radicale(dir: &std::path::Path, port: u16) -> anyhow::Result<Group> {
    std::fs::write(dir.join("users"), format!("{USER}:{PASSWORD}\n"))?;
    std::fs::write(
        dir.join("config"),
        format!(
            "[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {}\nhtpasswd_encryption = plain\ndelay = 0\n[rights]\ntype = owner_only\n[storage]\nfilesystem_folder = {}\n[logging]\nlevel = warning\n",
            dir.join("users").display(),
            dir.join("collections").display()
        ),
    )?;
    let child = Command::new("python3")
        .args(["-m", "radicale", "--config"])
        .arg(dir.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("radicale did not start: python3 -m pip install radicale==3.9.0")?;
    let g = Group(child);
    wait_port(port, "Radicale", Duration::from_secs(20))?;
    Ok(g)
}

/// Event `i`: one-off events spread over December, and weekly series
/// that began in November.
fn event(i: usize) -> String {
    let (start, rule) = if i < RECURRING {
        (
            format!("202611{:02}T{:02}0000", 2 + i % 28, 8 + i % 9),
            "RRULE:FREQ=WEEKLY;COUNT=20\r\n",
        )
    } else {
        (
            format!(
                "202612{:02}T{:02}{:02}00",
                1 + i % 31,
                8 + i % 10,
                (i % 4) * 15
            ),
            "",
        )
    };
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//oi-bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;TZID=Europe/Berlin:{start}\r\nDURATION:PT45M\r\n{rule}SUMMARY:Event number {i}\r\nLOCATION:Room {}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        i % 7
    )
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let dir = tempfile::Builder::new().prefix("oi-bench-cal").tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let _radicale = start_radicale(dir.path(), port)?;
    let n = if quick { 20 } else { 200 };
    let base = format!("http://127.0.0.1:{port}/{USER}/work/");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    oi_sandbox::netguard::install_crypto();
    let http = reqwest::Client::new();
    let baseline = rt.block_on(async {
        let mk = http
            .request(reqwest::Method::from_bytes(b"MKCALENDAR")?, &base)
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await?;
        anyhow::ensure!(mk.status().as_u16() == 201, "MKCALENDAR: {}", mk.status());
        for i in 0..EVENTS {
            let r = http
                .put(format!("{base}bench-{i}.ics"))
                .basic_auth(USER, Some(PASSWORD))
                .header("Content-Type", "text/calendar")
                .body(event(i))
                .send()
                .await?;
            anyhow::ensure!(r.status().is_success(), "PUT {i}: {}", r.status());
        }
        let mut v = Vec::new();
        for k in 0..=n {
            let t0 = Instant::now();
            let r = http
                .request(reqwest::Method::from_bytes(b"REPORT")?, &base)
                .basic_auth(USER, Some(PASSWORD))
                .header("Depth", "1")
                .header("Content-Type", "application/xml")
                .body(REPORT)
                .send()
                .await?;
            anyhow::ensure!(r.status().as_u16() == 207, "REPORT: {}", r.status());
            let body = r.text().await?;
            // The first one warms Radicale's cache.
            if k > 0 {
                v.push(t0.elapsed());
            }
            anyhow::ensure!(
                body.matches("BEGIN:VEVENT").count() == EVENTS,
                "REPORT held {} events",
                body.matches("BEGIN:VEVENT").count()
            );
        }
        anyhow::Ok(Samples::new(v))
    })?;

    let config = format!(
        "{}[vault]\nkey_source = \"file\"\n\n[calendar]\ntimezone = \"Europe/Berlin\"\n\n[calendar.accounts.bench]\nurl = \"http://127.0.0.1:{port}/\"\nusername = \"{USER}\"\npassword_secret = \"caldav-bench-password\"\n",
        only(&["vault", "calendar"])
    );
    let daemon = Daemon::start(&release_bins()?.join("openintentd"), &config)?;
    daemon.wait_ready()?;
    rt.block_on(async {
        let client = daemon.client().await?;
        set_secret(&client, "caldav-bench-password", PASSWORD).await?;
        let adapter = pid_of(&client, "calendar").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        figure("calendar_adapter_idle_pss_kb", pss_kb(adapter).unwrap_or(0));
        let args = json!({"from": "2026-12-01", "to": "2026-12-31"}).to_string();
        let call = || {
            oi_kernel::tool::call_on(
                &client,
                "calendar",
                "calendar_events",
                &args,
                CallOptions::deadline(Duration::from_secs(60)),
            )
        };
        let first = call()
            .await
            .map_err(|e| anyhow::anyhow!("calendar_events: {e}"))?;
        let count = first["count"].as_u64().unwrap_or(0);
        let mut v = Vec::new();
        for _ in 0..n {
            let t0 = Instant::now();
            let r = call()
                .await
                .map_err(|e| anyhow::anyhow!("calendar_events: {e}"))?;
            anyhow::ensure!(r["count"].as_u64() == Some(count), "{r}");
            v.push(t0.elapsed());
        }
        let s = Samples::new(v);
        figure("calendar_events_month_p50_ms", s.ms(50.0));
        figure("calendar_events_month_p99_ms", s.ms(99.0));
        figure("baseline_radicale_report_p50_ms", baseline.ms(50.0));
        figure("calendar_month_occurrences", count);
        figure("calendar_adapter_pss_kb", pss_kb(adapter).unwrap_or(0));
        anyhow::Ok(())
    })
}
