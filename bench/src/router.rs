//! `oi-bench router`: what the LLM router adds to a request, excluding the
//! provider's own time, measured through the real bus against fake
//! providers on 127.0.0.1 that answer at once.
//!
//! - router overhead: a completion through the bus (oi-bench -> broker ->
//!   llm-router process -> provider) minus the same HTTP request sent
//!   straight to the provider, sampled in alternating batches.
//! - failover overhead: a completion whose primary answers 429 minus one
//!   that goes straight to the secondary, minus the primary's own 429 round
//!   trip: the time the router spends classifying and switching.

use std::time::{Duration, Instant};

use anyhow::Context;
use oi_ipc_schema::llm::{ChatMessage, ChatRequest, methods};
use oi_ipc_schema::{DEFAULT_MAX_FRAME_BYTES, encode_payload};
use oi_kernel::client::{BusClient, CallOptions};
use oi_llm_router::fake::{FakeProvider, Reply, openai};

use crate::daemon::{Daemon, release_bins};
use crate::figure;
use crate::stats::Samples;

fn model(alias: &str, url: &str) -> String {
    format!(
        "[models.{alias}]\nkind = \"openai\"\nbase_url = \"{url}\"\nmodel = \"m\"\nno_key = true\ncontext_window = 8000\n\n"
    )
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let bins = release_bins()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (ok, limited) = rt.block_on(async {
        anyhow::Ok((FakeProvider::start().await?, FakeProvider::start().await?))
    })?;
    ok.set_default(openai::text("ok"));
    limited.set_default(Reply::status(
        429,
        &[],
        r#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#,
    ));
    // cooldown_secs = 0: the rate-limited primary is tried on every
    // request, so every sample includes a failover.
    let config = format!(
        "[services.vault]\nenabled = false\n[services.memory]\nenabled = false\n\n{}{}[cascade]\norder = [\"limited\", \"ok\"]\ncooldown_secs = 0\nmax_cooldown_secs = 0\n",
        model("limited", &base_url(&limited)),
        model("ok", &base_url(&ok)),
    );
    let daemon = Daemon::start(&bins.join("openintentd"), &config)?;
    daemon.wait_ready()?;

    let n = if quick { 300 } else { 3000 };
    let (direct_ok, direct_429, bus_ok, bus_failover) = rt.block_on(async {
        let (client, _inbound) = BusClient::connect(&daemon.bus(), None, DEFAULT_MAX_FRAME_BYTES)
            .await
            .context("connecting to the bus")?;
        oi_sandbox::netguard::install_crypto();
        let http = reqwest::Client::builder().build()?;
        let mut req = ChatRequest::new(vec![ChatMessage::user("ping")]);
        let straight = encode_payload(&{
            req.alias = "ok".into();
            req.clone()
        })?;
        let cascade = encode_payload(&{
            req.alias = String::new();
            req.clone()
        })?;
        // The body the router sends, for the direct baseline.
        let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "ping"}], "stream": false}).to_string();
        let opts = || CallOptions::deadline(Duration::from_secs(10));
        let direct = |url: String| {
            let http = http.clone();
            let body = body.clone();
            async move {
                let t = Instant::now();
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let _ = r.bytes().await?;
                anyhow::Ok(t.elapsed())
            }
        };
        let ok_url = format!("{}/chat/completions", base_url(&ok));
        let limited_url = format!("{}/chat/completions", base_url(&limited));
        // Warm up every path (connection pools, caches).
        for _ in 0..200 {
            direct(ok_url.clone()).await?;
            direct(limited_url.clone()).await?;
            client.request(oi_ipc_schema::llm::SERVICE, methods::CHAT, &straight, opts()).await?;
            client.request(oi_ipc_schema::llm::SERVICE, methods::CHAT, &cascade, opts()).await?;
        }
        let (mut a, mut b, mut c, mut d) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let batch = 50;
        for _ in 0..n / batch {
            for _ in 0..batch {
                a.push(direct(ok_url.clone()).await?);
            }
            for _ in 0..batch {
                b.push(direct(limited_url.clone()).await?);
            }
            for _ in 0..batch {
                let t = Instant::now();
                client.request(oi_ipc_schema::llm::SERVICE, methods::CHAT, &straight, opts()).await?;
                c.push(t.elapsed());
            }
            for _ in 0..batch {
                let t = Instant::now();
                client.request(oi_ipc_schema::llm::SERVICE, methods::CHAT, &cascade, opts()).await?;
                d.push(t.elapsed());
            }
        }
        anyhow::Ok((Samples::new(a), Samples::new(b), Samples::new(c), Samples::new(d)))
    })?;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let diff = |x: &Samples, y: &Samples, p: f64| us(x.pct(p)) - us(y.pct(p));
    figure("provider_direct_p50_us", direct_ok.us(50.0));
    figure("provider_direct_429_p50_us", direct_429.us(50.0));
    figure("router_bus_p50_us", bus_ok.us(50.0));
    figure("router_bus_p99_us", bus_ok.us(99.0));
    figure("router_failover_bus_p50_us", bus_failover.us(50.0));
    figure(
        "router_overhead_p50_us",
        format!("{:.1}", diff(&bus_ok, &direct_ok, 50.0)),
    );
    figure(
        "router_overhead_p99_us",
        format!("{:.1}", diff(&bus_ok, &direct_ok, 99.0)),
    );
    figure(
        "failover_overhead_p50_us",
        format!(
            "{:.1}",
            diff(&bus_failover, &bus_ok, 50.0) - us(direct_429.pct(50.0))
        ),
    );
    figure("samples", n);
    drop(daemon);
    Ok(())
}

fn base_url(f: &FakeProvider) -> String {
    f.url("/v1")
}
