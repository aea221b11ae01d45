//! `oi-bench memory`: the memory service's read paths, in-process and
//! through the bus, and search over 100,000 facts.
//!
//! - `hot_read_ns`: a fact from the hot cache (moka), in-process.
//! - `warm_read_us`: the same fact from SQLite (page cache warm), in-process.
//! - `bus_read_p50_us`: `memory_list` of one fact, from this process to the
//!   memory service process through the broker.
//! - `vector_search_100k_p50_us`: nearest 10 by embedding over 100k facts
//!   (exact search, every vector scanned).
//! - `hybrid_search_100k_p50_us`: `memory_search` (BM25 + embedding) in-process.

use std::time::{Duration, Instant};

use oi_ipc_schema::DEFAULT_MAX_FRAME_BYTES;
use oi_kernel::client::{BusClient, CallOptions};
use oi_memory::store::{Mode, Store, Tuning};

use crate::daemon::{Daemon, release_bins};
use crate::figure;
use crate::stats::Samples;

const WORDS: &[&str] = &[
    "server", "deploy", "coffee", "birthday", "meeting", "report", "invoice", "rust", "python",
    "garden", "travel", "flight", "hotel", "budget", "backup", "password", "doctor", "recipe",
    "music", "book", "project", "client", "friday", "monday", "kernel", "memory", "network",
    "storage", "dinner", "holiday",
];

fn sentence(i: usize) -> String {
    let mut x = i as u64 * 0x9E37_79B9_7F4A_7C15 + 1;
    let mut words = Vec::new();
    for _ in 0..8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        words.push(WORDS[(x % WORDS.len() as u64) as usize]);
    }
    format!("note {i}: {}", words.join(" "))
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("memory.db"), &Tuning::default())?;
    let n = if quick { 20_000 } else { 100_000 };
    eprintln!("oi-bench: saving {n} facts");
    let t0 = Instant::now();
    let mut first = 0;
    for i in 0..n {
        let id = store.save_fact(&sentence(i), &[], "bench", None)?;
        if i == 0 {
            first = id;
        }
    }
    eprintln!("oi-bench: saved in {:.1}s", t0.elapsed().as_secs_f64());

    store.fact(first)?;
    let iters = 200_000;
    let t0 = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(store.fact(first)?);
    }
    figure(
        "hot_read_ns",
        format!("{:.0}", t0.elapsed().as_nanos() as f64 / iters as f64),
    );
    let iters = 20_000;
    let t0 = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(store.fact_uncached(first)?);
    }
    figure(
        "warm_read_us",
        format!("{:.2}", t0.elapsed().as_secs_f64() * 1e6 / iters as f64),
    );

    let queries: Vec<String> = (0..200).map(|i| sentence(n + i)).collect();
    let mut v = Vec::new();
    for q in &queries {
        let qv = oi_memory::embed::embed(q);
        let t0 = Instant::now();
        std::hint::black_box(store.nearest(&qv, 10));
        v.push(t0.elapsed());
    }
    let s = Samples::new(v);
    figure(
        if quick {
            "vector_search_20k_p50_us"
        } else {
            "vector_search_100k_p50_us"
        },
        s.us(50.0),
    );
    let mut v = Vec::new();
    for q in &queries {
        let t0 = Instant::now();
        std::hint::black_box(store.search(q, 10, Mode::Hybrid, None)?);
        v.push(t0.elapsed());
    }
    let s = Samples::new(v);
    figure(
        if quick {
            "hybrid_search_20k_p50_us"
        } else {
            "hybrid_search_100k_p50_us"
        },
        s.us(50.0),
    );
    drop(store);

    // Through the bus, from this process to the memory service.
    let bins = release_bins()?;
    let d = Daemon::start(
        &bins.join("openintentd"),
        "[services.vault]\nenabled = false\n",
    )?;
    d.wait_ready()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let s = rt.block_on(async {
        let (c, _) = BusClient::connect(&d.bus(), None, DEFAULT_MAX_FRAME_BYTES).await?;
        c.request(
            "memory",
            "memory_save",
            br#"{"text":"The user prefers dark roast coffee"}"#,
            CallOptions::default(),
        )
        .await?;
        let mut v = Vec::new();
        for i in 0..2200 {
            let t0 = Instant::now();
            c.request(
                "memory",
                "memory_list",
                br#"{"limit":1}"#,
                CallOptions::deadline(Duration::from_secs(5)),
            )
            .await?;
            if i >= 200 {
                v.push(t0.elapsed());
            }
        }
        anyhow::Ok(Samples::new(v))
    })?;
    figure("bus_read_p50_us", s.us(50.0));
    figure("bus_read_p99_us", s.us(99.0));
    Ok(())
}
