//! `oi-bench github`: the GitHub adapter against the fake GitHub API
//! (`oi_adapter_github::fake`) holding one repository with 500 issues.
//!
//! - `github_list_500_issues_p50_ms` / `_p99_ms`: `github_list_issues` with
//!   `max_items = 500` through the bus: five pages of 100 followed by
//!   `Link`, ETags off so each page is whole.
//! - `github_adapter_per_page_net_p50_ms`: the same call's time per page
//!   net of the fake's own time (measured inside the fake, same run), next
//!   to `github_fake_per_page_p50_ms`.
//! - `github_list_500_issues_cached_p50_ms`: with ETags on, each page a
//!   304 answered from the adapter's cache (the fake still renders the
//!   page to compare its ETag), and `github_adapter_per_page_cached_net_p50_ms`
//!   net of the fake's time.
//! - `github_adapter_idle_pss_kb` before any call, `github_adapter_pss_kb`
//!   after the calls.

use std::time::{Duration, Instant};

use oi_adapter_github::fake::FakeGithub;
use oi_kernel::client::CallOptions;
use serde_json::json;

use crate::daemon::{Daemon, only, pid_of, pss_kb, release_bins, set_secret};
use crate::figure;
use crate::stats::Samples;

const TOKEN: &str = "ghp_bench000000000000000000000000000000";
const ISSUES: u64 = 500;
const PAGES: u32 = 5;

pub fn run(quick: bool) -> anyhow::Result<()> {
    let n = if quick { 10 } else { 100 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let gh = rt.block_on(FakeGithub::start(TOKEN, "me"))?;
    gh.add_repo("me/big", false);
    for i in 0..ISSUES {
        gh.add_issue(
            "me/big",
            &format!("Issue number {i}"),
            &["bench"],
            &format!("2026-10-{:02}T{:02}:00:00Z", 1 + i / 24, i % 24),
        );
    }
    let config = format!(
        "{}[vault]\nkey_source = \"file\"\n\n[github]\napi_url = \"{}\"\n",
        only(&["vault", "github"]),
        gh.url()
    );
    let daemon = Daemon::start(&release_bins()?.join("openintentd"), &config)?;
    daemon.wait_ready()?;
    rt.block_on(async {
        let client = daemon.client().await?;
        set_secret(&client, "github-token", TOKEN).await?;
        // WAITING until the token is there; then it starts.
        let deadline = Instant::now() + Duration::from_secs(20);
        let adapter = loop {
            match pid_of(&client, "github").await {
                Ok(p) if p > 0 => break p,
                _ if Instant::now() > deadline => anyhow::bail!("the github adapter did not start"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        figure("github_adapter_idle_pss_kb", pss_kb(adapter).unwrap_or(0));
        let args = json!({"repo": "me/big", "max_items": ISSUES, "direction": "asc"}).to_string();
        let call = || {
            oi_kernel::tool::call_on(
                &client,
                "github",
                "github_list_issues",
                &args,
                CallOptions::deadline(Duration::from_secs(60)),
            )
        };
        let timed = |cached: bool| {
            let gh = &gh;
            async move {
                gh.set_etags(cached);
                // Warms the connection (and, with ETags, the cache).
                call()
                    .await
                    .map_err(|e| anyhow::anyhow!("github_list_issues: {e}"))?;
                let (mut whole, mut net, mut fake) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..n {
                    gh.reset_counters();
                    let t0 = Instant::now();
                    let r = call()
                        .await
                        .map_err(|e| anyhow::anyhow!("github_list_issues: {e}"))?;
                    let took = t0.elapsed();
                    anyhow::ensure!(r["count"].as_u64() == Some(ISSUES), "{}", r["count"]);
                    let pages = gh.journal().len() as u32;
                    anyhow::ensure!(pages == PAGES, "{pages} pages asked");
                    let busy = gh.busy();
                    whole.push(took);
                    net.push(took.saturating_sub(busy) / PAGES);
                    fake.push(busy / PAGES);
                }
                anyhow::Ok((Samples::new(whole), Samples::new(net), Samples::new(fake)))
            }
        };
        let (whole, net, fake) = timed(false).await?;
        figure("github_list_500_issues_p50_ms", whole.ms(50.0));
        figure("github_list_500_issues_p99_ms", whole.ms(99.0));
        figure("github_adapter_per_page_net_p50_ms", net.ms(50.0));
        figure("github_fake_per_page_p50_ms", fake.ms(50.0));
        let (cached, cached_net, _) = timed(true).await?;
        anyhow::ensure!(
            gh.not_modified() == u64::from(PAGES),
            "the last call's pages were 304s"
        );
        figure("github_list_500_issues_cached_p50_ms", cached.ms(50.0));
        figure(
            "github_adapter_per_page_cached_net_p50_ms",
            cached_net.ms(50.0),
        );
        figure("github_adapter_pss_kb", pss_kb(adapter).unwrap_or(0));
        anyhow::Ok(())
    })
}
