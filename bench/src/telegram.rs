//! `oi-bench telegram`: the Telegram gateway.
//!
//! - `tg_render_10kb_us`: a 10 KB Markdown answer rendered as Telegram
//!   HTML and cut into messages, next to `tg_split_plain_10kb_us` (the
//!   same text only cut, no rendering) measured in the same run.
//! - `tg_message_to_answer_p50_ms` / `_p99_ms`: a message pushed to a fake
//!   Bot API (in this process) until the gateway's `sendMessage` with the
//!   answer arrives, through the real daemon (telegram, agent, memory;
//!   "what time is it" is answered by the intent router, so no model is
//!   involved). `tg_baseline_intent_p50_ms` is the same intent sent to the
//!   agent over the bus directly, in the same run: the difference is the
//!   gateway's own cost (long poll wake-up, two SQLite commits, the Bot API
//!   calls).
//! - `tg_50_chats_msgs_per_s`: 200 messages from 50 chats at once.

use std::time::{Duration, Instant};

use anyhow::Context;
use oi_telegram::fake::FakeBotApi;
use oi_telegram::format;

use crate::agent::one_intent;
use crate::daemon::{Daemon, disabled, release_bins};
use crate::figure;
use crate::stats::Samples;

const TOKEN: &str = "1:bench-token";

fn answer_10kb() -> String {
    let mut md = String::from(
        "# Rust async runtimes\n\nA **short** intro with `code` and [a link](https://tokio.rs).\n\n",
    );
    while md.len() < 10_000 {
        md.push_str("- Tokio: 1.2 million requests per second (hyper benchmark) & <more>.\n");
        md.push_str("- smol: starts in *40 microseconds*, about 1,500 lines.\n\n");
        md.push_str(
            "```rust\nlet rt = tokio::runtime::Builder::new_current_thread().build()?;\n```\n\n",
        );
    }
    md
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    render(quick);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    end_to_end(&rt, quick)
}

fn render(quick: bool) {
    let md = answer_10kb();
    let n = if quick { 200 } else { 2_000 };
    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t0 = Instant::now();
        std::hint::black_box(format::render_markdown(
            std::hint::black_box(&md),
            format::MESSAGE_LIMIT,
        ));
        ours.push(t0.elapsed());
        let t0 = Instant::now();
        std::hint::black_box(format::render_plain(
            std::hint::black_box(&md),
            format::MESSAGE_LIMIT,
        ));
        plain.push(t0.elapsed());
    }
    let chunks = format::render_markdown(&md, format::MESSAGE_LIMIT).len();
    figure("tg_render_10kb_us", Samples::new(ours).us(50.0));
    figure("tg_split_plain_10kb_us", Samples::new(plain).us(50.0));
    figure("tg_render_10kb_messages", chunks);
}

fn end_to_end(rt: &tokio::runtime::Runtime, quick: bool) -> anyhow::Result<()> {
    let tg = rt.block_on(FakeBotApi::start(TOKEN))?;
    let chats: Vec<String> = (1..=50).map(|c| c.to_string()).collect();
    let off = disabled(&["vault", "llm-router", "fs", "shell", "web", "http"]);
    let config = format!(
        "{off}[services.telegram]\nenv = {{ TELEGRAM_BOT_TOKEN = \"{TOKEN}\" }}\n[telegram]\napi_base_url = \"{}\"\nallowed_chat_ids = [{}]\npoll_timeout_secs = 30\n",
        tg.url(),
        chats.join(", ")
    );
    let daemon = Daemon::start(&release_bins()?.join("openintentd"), &config)?;
    daemon.wait_ready()?;
    rt.block_on(async {
        let client = daemon.client().await?;
        // The gateway is polling once it has registered its commands.
        let t0 = Instant::now();
        while tg.calls_of("getUpdates").is_empty() {
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(30),
                "the gateway never polled"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n = if quick { 30 } else { 300 };
        let (mut via_tg, mut baseline) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let before = tg.sent_count();
            let t0 = Instant::now();
            tg.push_message(1, 1, "what time is it");
            tokio::time::timeout(Duration::from_secs(30), tg.until_sent(before + 1))
                .await
                .context("no answer from the gateway")?;
            via_tg.push(t0.elapsed());
            baseline.push(one_intent(&client, "bench".into(), "what time is it").await?);
        }
        let via_tg = Samples::new(via_tg);
        figure("tg_message_to_answer_p50_ms", via_tg.ms(50.0));
        figure("tg_message_to_answer_p99_ms", via_tg.ms(99.0));
        figure("tg_baseline_intent_p50_ms", Samples::new(baseline).ms(50.0));
        // 50 chats at once, 4 messages each.
        let rounds = if quick { 1 } else { 5 };
        let mut rates = Vec::new();
        for _ in 0..rounds {
            let before = tg.sent_count();
            let t0 = Instant::now();
            for _ in 0..4 {
                for c in 1..=50 {
                    tg.push_message(c, c, "what time is it");
                }
            }
            tokio::time::timeout(Duration::from_secs(120), tg.until_sent(before + 200))
                .await
                .context("not every chat got its answers")?;
            rates.push(200.0 / t0.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        figure(
            "tg_50_chats_msgs_per_s",
            format!("{:.0}", rates[rates.len() / 2]),
        );
        figure("tg_bot_api_calls", tg.calls().len());
        anyhow::Ok(())
    })
}
