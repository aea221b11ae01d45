//! `oi-bench intent-router` and `oi-bench agent`.
//!
//! intent-router: the shipped patterns over a corpus of intents (half
//! match, half go to the model), per intent and as throughput, next to a
//! naive baseline measured in the same run (lower-case the intent, then
//! `starts_with` against every phrase).
//!
//! agent:
//! - `agent_turn_overhead_p50_us`: the ReAct loop's own work per turn
//!   (prompt building, budget and compaction checks, tool dispatch, event
//!   sending), in-process with a model and a tool that answer at once.
//! - `concurrent_100_*`: 100 intents at once through the real daemon
//!   (oi-bench -> broker -> agent -> llm-router -> a fake OpenAI server in
//!   this process that answers at once, episode recorded in memory), so
//!   what is measured is the system's overhead, not a model's.

use std::time::{Duration, Instant};

use anyhow::bail;
use oi_agent::intent::IntentRouter;
use oi_agent::react::{self, Input, Limits};
use oi_agent::scripted::{FnTools, ScriptedLlm, answering, calling};
use oi_client::intent::Intent;
use oi_ipc_schema::agent::{AgentEvent, IntentRequest};
use oi_ipc_schema::control::{self, BusStats};
use oi_kernel::client::{BusClient, CallOptions};
use oi_kernel::config::Config;
use oi_llm_router::fake::{FakeProvider, openai};

use crate::daemon::{Daemon, disabled, release_bins};
use crate::figure;
use crate::stats::Samples;

const CORPUS: &[&str] = &[
    "status",
    "what time is it?",
    "list files in notes/2026",
    "read reports/rust-async.md",
    "search the web for tokio vs smol",
    "fetch https://example.com/article",
    "remember that the spare key is under the mat",
    "help",
    "list models",
    "recall spare key",
    "write a short poem about the sea and save it as poem.md",
    "summarize the three newest files in my notes folder and email me the result",
    "what's the weather like in Lisbon tomorrow morning",
    "find the cheapest flight from Berlin to Porto in March and list three options",
    "refactor src/main.rs so the config loading lives in its own module",
    "read the news about rust and tell me what changed this week",
];

pub fn intent_router(quick: bool) -> anyhow::Result<()> {
    let intents: oi_agent::config::IntentsConfig = Config::defaults().section()?;
    let router = IntentRouter::from_config(&intents)?;
    let phrases: Vec<String> = intents
        .patterns
        .values()
        .flat_map(|p| p.phrases.iter().map(|s| s.to_ascii_lowercase()))
        .collect();
    let hits = CORPUS.iter().filter(|t| router.route(t).is_some()).count();
    eprintln!(
        "oi-bench: {hits} of {} corpus intents match a pattern",
        CORPUS.len()
    );
    let rounds = if quick { 2_000 } else { 20_000 };
    let bytes: usize = CORPUS.iter().map(|t| t.len()).sum();
    let (mut ours, mut naive) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let t0 = Instant::now();
        for _ in 0..rounds / 10 {
            for t in CORPUS {
                std::hint::black_box(router.route(std::hint::black_box(t)));
            }
        }
        ours.push(t0.elapsed());
        let t0 = Instant::now();
        for _ in 0..rounds / 10 {
            for t in CORPUS {
                let lower = std::hint::black_box(t).to_ascii_lowercase();
                std::hint::black_box(phrases.iter().find(|p| lower.starts_with(p.as_str())));
            }
        }
        naive.push(t0.elapsed());
    }
    let per = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2].as_secs_f64() / ((rounds / 10) * CORPUS.len()) as f64
    };
    let ns = per(&ours) * 1e9;
    figure("intent_match_ns", format!("{ns:.0}"));
    figure(
        "intent_naive_prefix_ns",
        format!("{:.0}", per(&naive) * 1e9),
    );
    figure(
        "intent_scan_mb_per_s",
        format!(
            "{:.1}",
            bytes as f64 / CORPUS.len() as f64 / (ns / 1e9) / 1e6
        ),
    );
    figure("intent_patterns", router.describe().len());
    figure("intent_phrases", phrases.len());
    Ok(())
}

pub fn agent(quick: bool) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(turn_overhead(quick))?;
    concurrent(&rt, quick)
}

/// Per-turn time of the loop with an instant model and tool.
async fn turn_overhead(quick: bool) -> anyhow::Result<()> {
    const TURNS: u32 = 10;
    let limits = Limits::from_config(&Config::defaults().section()?);
    let tools = FnTools {
        names: [
            "fs_read_file",
            "fs_write_file",
            "fs_list_dir",
            "web_search",
            "web_fetch",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        run: |_n: String, _a: String| async {
            Ok(r#"{"path":"notes.md","content":"a short file\n"}"#.to_string())
        },
    };
    let mut samples = Vec::new();
    let n = if quick { 200 } else { 2_000 };
    for i in 0..n {
        let script = (0..TURNS - 1)
            .map(|_| calling(&[("fs_read_file", r#"{"path":"notes.md"}"#)]))
            .collect();
        let llm = ScriptedLlm::new(script, answering("done"));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let input = Input {
            id: format!("b{i}"),
            text: "read notes.md again and again".into(),
            ..Default::default()
        };
        let t0 = Instant::now();
        let r = react::run(&llm, &tools, &limits, input, &tx).await?;
        let el = t0.elapsed();
        if r.turns != TURNS {
            bail!("expected {TURNS} turns, got {}", r.turns);
        }
        while rx.try_recv().is_ok() {}
        samples.push(el / TURNS);
    }
    let s = Samples::new(samples);
    figure("agent_turn_overhead_p50_us", s.us(50.0));
    figure("agent_turn_overhead_p99_us", s.us(99.0));
    Ok(())
}

/// Runs one intent over the bus to its `Done`; returns its latency.
pub(crate) async fn one_intent(
    client: &BusClient,
    chat: String,
    text: &str,
) -> anyhow::Result<Duration> {
    let req = IntentRequest {
        id: String::new(),
        chat,
        text: text.into(),
        alias: String::new(),
        history: false,
    };
    let t0 = Instant::now();
    let mut intent = Intent::start(client, &req, Duration::from_secs(60))?;
    while let Some(step) = intent.next().await {
        match step {
            Ok(AgentEvent::Done(_)) => return Ok(t0.elapsed()),
            Err(why) => bail!("intent failed: {why}"),
            _ => {}
        }
    }
    bail!("the intent ended without Done")
}

/// The requests the broker routed for one intent of one turn with no
/// tools, in a new chat: counted by the broker (`bus.stats`) before and
/// after, with nothing else running. The agent writes memory after
/// `Done`, so the count waits for the broker to go quiet.
async fn round_trips(client: &BusClient) -> anyhow::Result<u64> {
    async fn stats(client: &BusClient) -> anyhow::Result<BusStats> {
        let opts = CallOptions::deadline(Duration::from_secs(5));
        Ok(client.call(control::BUS_STATS, &(), opts).await?)
    }
    let before = stats(client).await?;
    one_intent(client, "bench:trips".into(), "say hello").await?;
    let mut after = stats(client).await?;
    let t0 = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = stats(client).await?;
        if now.requests == after.requests || t0.elapsed() > Duration::from_secs(5) {
            break;
        }
        after = now;
    }
    let by: Vec<String> = after
        .by_method
        .iter()
        .filter_map(|(m, n)| {
            let was = before
                .by_method
                .iter()
                .find(|(b, _)| b == m)
                .map_or(0, |(_, c)| *c);
            (*n > was).then(|| format!("{m} x{}", n - was))
        })
        .collect();
    eprintln!("oi-bench: one turn's requests: {}", by.join(", "));
    Ok(after.requests - before.requests)
}

fn concurrent(rt: &tokio::runtime::Runtime, quick: bool) -> anyhow::Result<()> {
    let fake = rt.block_on(FakeProvider::start())?;
    fake.set_default(openai::says("hello"));
    let bins = release_bins()?;
    let off = disabled(&["vault", "fs", "shell", "web", "http"]);
    let config = format!(
        "{off}[models.fake]\nkind = \"openai\"\nbase_url = \"{}\"\nmodel = \"fake\"\nno_key = true\ncontext_window = 32000\n[cascade]\norder = [\"fake\"]\n[agent]\nmax_concurrent_intents = 100\n",
        fake.url("/v1")
    );
    let daemon = Daemon::start(&bins.join("openintentd"), &config)?;
    daemon.wait_ready()?;
    rt.block_on(async {
        let client = daemon.client().await?;
        // Warm up, and the single-intent baseline.
        let mut single = Vec::new();
        for i in 0..(if quick { 20 } else { 200 }) {
            single.push(one_intent(&client, format!("bench:{i}"), "say hello").await?);
        }
        let single = Samples::new(single);
        let trips = round_trips(&client).await?;
        let rounds = if quick { 3 } else { 10 };
        let mut rates = Vec::new();
        let mut latencies = Vec::new();
        for round in 0..rounds {
            let t0 = Instant::now();
            let tasks: Vec<_> = (0..100)
                .map(|i| {
                    let c = client.clone();
                    tokio::spawn(async move {
                        one_intent(&c, format!("bench:{}", round * 100 + i), "say hello").await
                    })
                })
                .collect();
            for t in tasks {
                latencies.push(t.await??);
            }
            rates.push(100.0 / t0.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let lat = Samples::new(latencies);
        figure("single_intent_p50_ms", single.ms(50.0));
        figure("one_turn_bus_round_trips", trips);
        figure(
            "concurrent_100_intents_per_s",
            format!("{:.0}", rates[rates.len() / 2]),
        );
        figure("concurrent_100_overhead_p50_ms", lat.ms(50.0));
        figure("concurrent_100_overhead_p99_ms", lat.ms(99.0));
        figure("fake_llm_requests", fake.request_count());
        anyhow::Ok(())
    })
}
