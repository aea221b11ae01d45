//! `oi-bench memory`: the memory service's read paths, in-process and
//! through the bus, and search over 100,000 facts (20,000 with `--quick`),
//! each as p50 and p99.
//!
//! In-process (the `Store` this benchmark opens):
//! - `hot_read_ns`: a fact from the hot cache (moka). Reads are timed in
//!   batches of 1,000, so the figure is the per-read time of a batch.
//! - `warm_read_us`: the same fact from SQLite (page cache warm).
//! - `vector_search_100k_p50_us`: nearest 10 by the local embedding through
//!   the HNSW index, with `vector_recall_at_10` against the exact scan,
//!   which is timed too as the baseline (`vector_scan_100k_p50_us`).
//! - `hybrid_search_100k_p50_us`: BM25 + embedding fused.
//! - `index_build_100k_s`: building the HNSW index (in the service this
//!   happens in the background after start).
//! - `index_load_100k_s`: loading the saved index after a restart (read,
//!   checksum, reconcile with the database), and `index_file_100k_mb` its
//!   size on disk.
//! - `local_*_paraphrase_top1`: how often the local embedding puts the
//!   right fact first (see `fallback_quality`).
//!
//! Through the bus, from this process to the memory service process
//! (started on the same 100k-fact database):
//! - `bus_read_p50_us`: `memory_get` of one fact (the service's hot cache);
//! - `bus_warm_read_p50_us`: `memory_list` of one fact (SQLite each time);
//! - `bus_vector_search_100k_p50_us`: `memory_search` in vector mode.

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

/// Times `f` `n` times after `warm` untimed runs.
fn sample(
    warm: usize,
    n: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<Samples> {
    for _ in 0..warm {
        f()?;
    }
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        f()?;
        v.push(t0.elapsed());
    }
    Ok(Samples::new(v))
}

/// p50 and p99 as `<name>` / `<name with p99>` figures in µs.
fn us_pair(p50: &str, p99: &str, s: &Samples) {
    figure(p50, s.us(50.0));
    figure(p99, s.us(99.0));
}

/// Facts, each with a paraphrase that shares a word or stem with it and
/// one that shares only meaning; then facts that answer none of them.
const EVAL: &[(&str, &str, &str)] = &[
    (
        "The user prefers dark roast coffee",
        "preferred roast of coffee",
        "which hot drink do I enjoy",
    ),
    (
        "Alice's birthday is on the 14th of September",
        "when is Alice's birthday",
        "when was she born",
    ),
    (
        "The staging server runs at 10.0.0.5",
        "address of the staging server",
        "where is our test environment hosted",
    ),
    (
        "Bob is allergic to peanuts",
        "Bob's allergies",
        "which food makes him sick",
    ),
    (
        "The car needs new tyres before winter",
        "tyres for the car",
        "vehicle maintenance due",
    ),
    (
        "Dentist appointment on Tuesday at 3pm",
        "when is the dentist appointment",
        "when do I see someone about my teeth",
    ),
    (
        "The flight to Lisbon leaves at 7:40",
        "Lisbon flight time",
        "when does my plane to Portugal depart",
    ),
    (
        "The wifi password is rotated every month",
        "wifi password rotation",
        "how often do network credentials change",
    ),
];
const DISTRACTORS: &[&str] = &[
    "The quarterly report is due on the first Monday of April",
    "Carol moved to Berlin last spring",
    "The garden hose leaks near the tap",
    "Invoices go to accounts@example.com",
    "The book club meets on Thursdays",
    "Backups run nightly at 2am",
    "The kettle in the office is broken",
    "Dave plays the cello",
];

/// How often the local embedding (alone, and fused with keywords) puts the
/// right fact first, for paraphrases sharing a word and for paraphrases
/// sharing only meaning: the README's account of the offline fallback.
fn fallback_quality() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("memory.db"), &Tuning::default())?;
    let mut ids = Vec::new();
    for (fact, _, _) in EVAL {
        ids.push(store.save_fact(fact, &[], "bench", None)?);
    }
    for d in DISTRACTORS {
        store.save_fact(d, &[], "bench", None)?;
    }
    for (mode, name) in [(Mode::Vector, "local"), (Mode::Hybrid, "hybrid_local")] {
        let mut lexical = 0;
        let mut meaning = 0;
        for ((_, lq, mq), id) in EVAL.iter().zip(&ids) {
            let first = |q: &str| -> anyhow::Result<bool> {
                let (hits, _) = store.search(q, 1, mode, None)?;
                Ok(hits.first().is_some_and(|h| h.fact.id == *id))
            };
            lexical += usize::from(first(lq)?);
            meaning += usize::from(first(mq)?);
        }
        figure(
            &format!("{name}_shared_word_paraphrase_top1"),
            format!("{lexical}/{}", EVAL.len()),
        );
        figure(
            &format!("{name}_meaning_only_paraphrase_top1"),
            format!("{meaning}/{}", EVAL.len()),
        );
    }
    Ok(())
}

pub fn run(quick: bool) -> anyhow::Result<()> {
    fallback_quality()?;
    let home = tempfile::tempdir()?;
    let data = home.path().join("data");
    std::fs::create_dir_all(&data)?;
    let store = Store::open(&data.join("memory.db"), &Tuning::default())?;
    let n = if quick { 20_000 } else { 100_000 };
    let k = if quick { "20k" } else { "100k" };
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
    // The HNSW index, as the service's indexer builds it in the background
    // (searches scan until it is in), then saves it beside the database.
    let t0 = Instant::now();
    store.build_pending_indexes();
    figure(
        &format!("index_build_{k}_s"),
        format!("{:.1}", t0.elapsed().as_secs_f64()),
    );
    // After a restart the saved index is loaded, checked and reconciled
    // with the database instead (here with 10 facts saved since).
    let file = data.join("memory.db.local.hnsw");
    figure(
        &format!("index_file_{k}_mb"),
        format!("{:.1}", std::fs::metadata(&file)?.len() as f64 / 1e6),
    );
    for i in 0..10 {
        store.save_fact(&sentence(n + 1000 + i), &[], "bench", None)?;
    }
    drop(store);
    let store = Store::open(&data.join("memory.db"), &Tuning::default())?;
    let t0 = Instant::now();
    store.build_pending_indexes();
    anyhow::ensure!(store.index_loaded(), "the saved index was not loaded");
    figure(
        &format!("index_load_{k}_s"),
        format!("{:.2}", t0.elapsed().as_secs_f64()),
    );

    // Hot: per-read time of batches of 1,000 cache hits.
    store.fact(first)?;
    const BATCH: u32 = 1000;
    let s = sample(20, 400, || {
        for _ in 0..BATCH {
            std::hint::black_box(store.fact(std::hint::black_box(first))?);
        }
        Ok(())
    })?;
    let per = |p: f64| format!("{:.0}", s.pct(p).as_nanos() as f64 / f64::from(BATCH));
    figure("hot_read_ns", per(50.0));
    figure("hot_read_p99_ns", per(99.0));

    let s = sample(1000, 20_000, || {
        std::hint::black_box(store.fact_uncached(first)?);
        Ok(())
    })?;
    figure(
        "warm_read_us",
        format!("{:.2}", s.pct(50.0).as_secs_f64() * 1e6),
    );
    figure(
        "warm_read_p99_us",
        format!("{:.2}", s.pct(99.0).as_secs_f64() * 1e6),
    );

    let queries: Vec<Vec<f32>> = (0..300)
        .map(|i| oi_memory::embed::embed(&sentence(n + i)))
        .collect();
    let mut q = queries.iter().cycle();
    let s = sample(20, 300, || {
        std::hint::black_box(store.nearest(q.next().unwrap_or(&queries[0]), 10));
        Ok(())
    })?;
    us_pair(
        &format!("vector_search_{k}_p50_us"),
        &format!("vector_search_{k}_p99_us"),
        &s,
    );
    let mut q = queries.iter().cycle();
    let s = sample(5, 100, || {
        std::hint::black_box(store.nearest_exact(q.next().unwrap_or(&queries[0]), 10));
        Ok(())
    })?;
    us_pair(
        &format!("vector_scan_{k}_p50_us"),
        &format!("vector_scan_{k}_p99_us"),
        &s,
    );
    // Recall@10 of the index against the exact scan; facts tied with the
    // exact 10th best count as found.
    let (mut found, mut total) = (0usize, 0usize);
    for qv in queries.iter().take(100) {
        let exact = store.nearest_exact(qv, 10);
        let tenth = exact.last().map_or(f32::MIN, |e| e.1 - 1e-5);
        found += store
            .nearest(qv, 10)
            .iter()
            .filter(|(_, sim)| *sim >= tenth)
            .count();
        total += exact.len();
    }
    figure(
        "vector_recall_at_10",
        format!("{:.3}", found as f64 / total.max(1) as f64),
    );

    let texts: Vec<String> = (0..100).map(|i| sentence(n + i)).collect();
    let mut t = texts.iter().cycle();
    let s = sample(5, 100, || {
        let q = t.next().map_or("", String::as_str);
        std::hint::black_box(store.search(q, 10, Mode::Hybrid, None)?);
        Ok(())
    })?;
    us_pair(
        &format!("hybrid_search_{k}_p50_us"),
        &format!("hybrid_search_{k}_p99_us"),
        &s,
    );
    drop(store);

    // Through the bus: the memory service on the same database, the local
    // embedding only (no provider round trip in the figures).
    let bins = release_bins()?;
    let d = Daemon::start_in(
        &bins.join("openintentd"),
        home,
        "[services.vault]\nenabled = false\n[services.llm-router]\nenabled = false\n\
         [services.telegram]\nenabled = false\n[services.agent]\nenabled = false\n\
         [services.fs]\nenabled = false\n[services.shell]\nenabled = false\n\
         [services.web]\nenabled = false\n[services.http]\nenabled = false\n\
         [embeddings]\nkind = \"\"\n",
    )?;
    d.wait_ready()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (c, _) = BusClient::connect(&d.bus(), None, DEFAULT_MAX_FRAME_BYTES).await?;
        let opts = || CallOptions::deadline(Duration::from_secs(10));
        // The service answers at once; its index is built in the background.
        let t0 = Instant::now();
        loop {
            let oi_ipc_schema::Json(st) = c.call(oi_ipc_schema::memory::STATS, &(), opts()).await?;
            let st: serde_json::Value = serde_json::from_str(&st)?;
            if st["local_indexed"] == true {
                break;
            }
            anyhow::ensure!(
                t0.elapsed() < Duration::from_secs(900),
                "the memory service built no index in 15 minutes"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        eprintln!(
            "oi-bench: the service's index was ready {:.1}s after start",
            t0.elapsed().as_secs_f64()
        );
        let get = format!("{{\"id\":{first}}}");
        let mut v = Vec::new();
        for (method, args, warm, n) in [
            ("memory_get", get.as_str(), 200, 3000),
            ("memory_list", r#"{"limit":1}"#, 200, 3000),
        ] {
            let mut s = Vec::with_capacity(n);
            for i in 0..warm + n {
                let t0 = Instant::now();
                c.request(
                    oi_ipc_schema::memory::SERVICE,
                    method,
                    args.as_bytes(),
                    opts(),
                )
                .await?;
                if i >= warm {
                    s.push(t0.elapsed());
                }
            }
            v.push(Samples::new(s));
        }
        us_pair("bus_read_p50_us", "bus_read_p99_us", &v[0]);
        us_pair("bus_warm_read_p50_us", "bus_warm_read_p99_us", &v[1]);
        let mut s = Vec::new();
        for (i, q) in texts.iter().cycle().take(320).enumerate() {
            let args = serde_json::json!({"query": q, "limit": 10, "mode": "vector"}).to_string();
            let t0 = Instant::now();
            c.request(
                oi_ipc_schema::memory::SERVICE,
                "memory_search",
                args.as_bytes(),
                opts(),
            )
            .await?;
            if i >= 20 {
                s.push(t0.elapsed());
            }
        }
        let s = Samples::new(s);
        us_pair(
            &format!("bus_vector_search_{k}_p50_us"),
            &format!("bus_vector_search_{k}_p99_us"),
            &s,
        );
        anyhow::Ok(())
    })?;
    Ok(())
}
