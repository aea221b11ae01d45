//! The memory service's background work: vector index builds, episode
//! retention, and the backfill that gives every fact the provider's
//! embedding.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oi_kernel::harness::Live;
use tracing::{info, warn};

use crate::provider::ProviderEmbeddings;
use crate::store::{SAVE_EVERY, Store};
use crate::{Settings, blocking};

/// Facts embedded per backfill request.
pub const BACKFILL_BATCH: usize = 64;
/// Pause of the backfill when there is nothing to do, and after a first
/// failure of the provider.
pub const BACKFILL_IDLE: Duration = Duration::from_secs(2);
/// Longest pause after failures in a row (each doubles it): a provider
/// that cannot work (no key) is asked a few times an hour, not every 2 s.
pub const BACKFILL_MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The pause after `failures` failures in a row.
pub fn backfill_backoff(failures: u32) -> Duration {
    BACKFILL_IDLE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(BACKFILL_MAX_BACKOFF)
}

/// Waits `pause`, cut short when the provider's configuration changes
/// (a key set, a model changed).
async fn wait_or_reconfigured(provider: &ProviderEmbeddings, pause: Duration) {
    let generation = provider.generation();
    let until = Instant::now() + pause;
    while Instant::now() < until && provider.generation() == generation {
        tokio::time::sleep(BACKFILL_IDLE.min(until.saturating_duration_since(Instant::now())))
            .await;
    }
}

/// How often the indexer looks for a vector index that is due.
pub const INDEX_CHECK: Duration = Duration::from_millis(500);

/// Builds (or loads) vector indexes when they are due (at start for a
/// store with many facts, when a space crosses the threshold), and saves
/// changed ones every [`SAVE_EVERY`], on a blocking thread, so neither the
/// service's start nor its requests wait for them.
pub async fn indexer(store: Arc<Store>) {
    let mut last_save = Instant::now();
    loop {
        if store.needs_index()
            && blocking(&store, |s| Ok(s.build_pending_indexes()))
                .await
                .is_err()
        {
            warn!("the vector index build panicked; similarity search scans instead");
            return;
        }
        if last_save.elapsed() >= SAVE_EVERY {
            last_save = Instant::now();
            if blocking(&store, |s| Ok(s.save_indexes())).await.is_err() {
                warn!("saving the vector index panicked");
            }
        }
        tokio::time::sleep(INDEX_CHECK).await;
    }
}

/// Applies `[memory] episode_max_count` / `episode_max_age_days` at start
/// and every `retention_check_secs`. Deletes run on the writer connection;
/// readers go on meanwhile (WAL).
pub async fn retention(store: Arc<Store>, settings: Arc<Live<Settings>>) {
    loop {
        let s = settings.get();
        if s.episode_max_count > 0 || s.episode_max_age_days > 0 {
            let (count, age_ms) = (
                s.episode_max_count,
                (s.episode_max_age_days as i64).saturating_mul(86_400_000),
            );
            match blocking(&store, move |st| st.apply_retention(count, age_ms)).await {
                Ok(0) => {}
                Ok(gone) => info!(
                    gone,
                    max_count = count,
                    max_age_days = s.episode_max_age_days,
                    "episode retention"
                ),
                Err(e) => warn!("episode retention failed: {e}"),
            }
        }
        tokio::time::sleep(s.retention_check).await;
    }
}

/// Gives facts saved without the provider's embedding (saved offline, or
/// before a model change) their vectors, a batch at a time; once every
/// fact has one, vectors of other spaces are deleted.
pub async fn backfill(store: Arc<Store>, provider: Arc<ProviderEmbeddings>) {
    // The configuration generation whose space was last confirmed.
    let mut confirmed: Option<u64> = None;
    // Where the current pass is: ids up to here have been asked for.
    let mut cursor: i64 = 0;
    // The provider's failures in a row, for the backoff.
    let mut failures: u32 = 0;
    let mut last_generation = provider.generation();
    loop {
        if provider.generation() != last_generation {
            last_generation = provider.generation();
            failures = 0;
        }
        if !provider.enabled() {
            tokio::time::sleep(BACKFILL_IDLE).await;
            continue;
        }
        let space = store.space();
        let missing = match blocking(&store, move |s| {
            s.facts_missing_vectors(space.as_deref(), cursor, BACKFILL_BATCH)
        })
        .await
        {
            Ok(m) => m,
            Err(e) => {
                warn!("backfill: {e}");
                tokio::time::sleep(BACKFILL_IDLE).await;
                continue;
            }
        };
        let generation = provider.generation();
        if missing.is_empty() && cursor > 0 {
            // End of a pass: the next starts from the beginning.
            cursor = 0;
            continue;
        }
        if missing.is_empty() {
            if confirmed == Some(generation) {
                tokio::time::sleep(BACKFILL_IDLE).await;
                continue;
            }
            // Every fact has a vector in the space in use: make sure it is
            // still the provider's (the model may have changed).
            match provider.embed(vec!["space probe".into()]).await {
                Ok(r) if Some(&r.space) != store.space().as_ref() => {
                    cursor = 0;
                    let space = r.space.clone();
                    if let Err(e) = blocking(&store, move |s| s.use_space(&space)).await {
                        warn!("backfill: {e}");
                    }
                }
                Ok(_) => {
                    failures = 0;
                    confirmed = Some(generation);
                    match blocking(&store, |s| s.drop_other_spaces()).await {
                        Ok(0) => {}
                        Ok(n) => info!(vectors = n, "old embedding space deleted"),
                        Err(e) => warn!("backfill: {e}"),
                    }
                }
                Err(_) => {
                    failures += 1;
                    wait_or_reconfigured(&provider, backfill_backoff(failures)).await;
                }
            }
            continue;
        }
        let (ids, texts): (Vec<i64>, Vec<String>) = missing.into_iter().unzip();
        match provider.embed(texts).await {
            Ok(r) => {
                failures = 0;
                cursor = ids.last().copied().unwrap_or(cursor);
                let rows: Vec<(i64, Vec<f32>)> = ids.into_iter().zip(r.vectors).collect();
                let space = r.space;
                match blocking(&store, move |s| s.put_vectors(&space, &rows)).await {
                    Ok(n) => info!(vectors = n, "backfill: facts embedded by the provider"),
                    Err(e) => {
                        warn!("backfill: {e}");
                        tokio::time::sleep(BACKFILL_IDLE).await;
                    }
                }
            }
            Err(_) => {
                failures += 1;
                wait_or_reconfigured(&provider, backfill_backoff(failures)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_back_off_doubling_to_a_cap() {
        let secs: Vec<u64> = (1..=10).map(|n| backfill_backoff(n).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backfill_backoff(u32::MAX), BACKFILL_MAX_BACKOFF);
    }
}
