//! The provider's embeddings, asked of the llm-router (`llm.embed`), which
//! holds the key and speaks the provider's wire format.
//!
//! Saves and searches wait for them at most `[memory] embed_timeout_ms`.
//! A failure that took long (a timeout) makes them stop asking for
//! [`SKIP_AFTER_FAILURE`] and use the local embedding, so a provider that
//! hangs costs one slow request, not one per search; a quick failure (the
//! router is not up yet, the provider is cooling down) costs nothing and
//! pauses nothing. The backfill keeps asking and lifts a pause once it
//! gets vectors.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use oi_ipc_schema::llm::{self, EmbedRequest, EmbedResponse};
use oi_kernel::client::{BusClient, CallOptions};
use tracing::{info, warn};

/// How long saves and searches use only the local embedding after a slow
/// failure.
pub const SKIP_AFTER_FAILURE: Duration = Duration::from_secs(30);

/// A failure slower than this pauses the provider for saves and searches.
const SLOW_FAILURE: Duration = Duration::from_millis(250);

struct State {
    /// Bumped by every `configure`.
    generation: u64,
    enabled: bool,
    timeout: Duration,
    skip_until: Option<Instant>,
    last_error: String,
}

pub struct ProviderEmbeddings {
    client: BusClient,
    state: Mutex<State>,
}

impl ProviderEmbeddings {
    pub fn new(client: BusClient, enabled: bool, timeout: Duration) -> ProviderEmbeddings {
        ProviderEmbeddings {
            client,
            state: Mutex::new(State {
                generation: 0,
                enabled,
                timeout,
                skip_until: None,
                last_error: String::new(),
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Applies a new `[embeddings]` / `[memory]`; a changed provider is
    /// asked again at once.
    pub fn configure(&self, enabled: bool, timeout: Duration) {
        self.with(|s| {
            s.generation += 1;
            s.enabled = enabled;
            s.timeout = timeout;
            s.skip_until = None;
        });
    }

    /// Which configuration is in effect (see [`Self::configure`]).
    pub fn generation(&self) -> u64 {
        self.with(|s| s.generation)
    }

    pub fn enabled(&self) -> bool {
        self.with(|s| s.enabled)
    }

    /// Why the last request failed ("" after a success).
    pub fn last_error(&self) -> String {
        self.with(|s| s.last_error.clone())
    }

    /// Whether the last request failed.
    pub fn failing(&self) -> bool {
        self.with(|s| !s.last_error.is_empty())
    }

    /// Whether saves and searches ask the provider now.
    pub fn usable_now(&self) -> bool {
        self.with(|s| s.enabled && s.skip_until.is_none_or(|t| Instant::now() >= t))
    }

    /// For a save or a search: the provider's vectors, or `None` (not
    /// configured, paused after a failure, or failing now).
    pub async fn for_request(&self, texts: Vec<String>) -> Option<EmbedResponse> {
        if !self.usable_now() {
            return None;
        }
        self.embed(texts).await.ok()
    }

    /// Asks the router, within `embed_timeout_ms`. A failure pauses
    /// [`Self::for_request`]; a success lifts the pause.
    pub async fn embed(&self, texts: Vec<String>) -> Result<EmbedResponse, String> {
        let (enabled, timeout) = self.with(|s| (s.enabled, s.timeout));
        if !enabled {
            return Err("no embeddings provider is configured".into());
        }
        let n = texts.len();
        let t0 = Instant::now();
        let result: Result<EmbedResponse, String> = self
            .client
            .call(
                llm::EMBED,
                &EmbedRequest { texts },
                CallOptions::deadline(timeout),
            )
            .await
            .map_err(|e| e.to_string())
            .and_then(|r: EmbedResponse| {
                if r.vectors.len() == n {
                    Ok(r)
                } else {
                    Err(format!("{} vectors for {n} texts", r.vectors.len()))
                }
            });
        match &result {
            Ok(_) => {
                let was_failing = self.with(|s| {
                    let was = !s.last_error.is_empty();
                    s.skip_until = None;
                    s.last_error.clear();
                    was
                });
                if was_failing {
                    info!("provider embeddings work again");
                }
            }
            Err(e) => {
                let slow = t0.elapsed() >= SLOW_FAILURE;
                let first = self.with(|s| {
                    let first = s.last_error.is_empty();
                    if slow {
                        s.skip_until = Some(Instant::now() + SKIP_AFTER_FAILURE);
                    }
                    s.last_error = e.clone();
                    first
                });
                if first {
                    warn!("provider embeddings unavailable, using the local embedding: {e}");
                }
            }
        }
        result
    }
}
