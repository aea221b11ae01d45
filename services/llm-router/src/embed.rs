//! Embeddings for semantic memory (`llm.embed`): the one `[embeddings]`
//! deployment, in its own wire format. There is no failover to another
//! model, since vectors of two models cannot be compared: a failure that
//! outlasts the caller's deadline (or a cooldown longer than it) goes back
//! to the caller, which has a local embedding to fall back on.
//!
//! Its health is its own, with a short base cooldown ([`cooldown_policy`]):
//! with nothing to fail over to, a rate limit whose hint fits the caller's
//! deadline is waited out; any other failure goes back at once, and a
//! provider that stays down cools for longer each time, so callers get
//! "cooling down" at once instead of waiting.

use std::time::{Duration, Instant, SystemTime};

use oi_ipc_schema::llm::EmbedResponse;
use tracing::{info, warn};

use crate::classify::{Action, Class, Failure, classify_http};
use crate::deployments::Deployment;
use crate::health::{CooldownPolicy, Health, Unusable};
use crate::router::{Router, RouterError, transport_failure};
use crate::wire::{self, Embeddings};

/// Texts per provider request (Gemini takes at most 100).
pub const MAX_BATCH: usize = 96;

/// The name of the vector space `d` produces at `dimensions` (vectors of
/// different spaces are never compared).
pub fn space(d: &Deployment, dimensions: usize) -> String {
    format!(
        "{} {} {} {dimensions}",
        d.kind.as_str(),
        d.base_url,
        d.model
    )
}

/// The embeddings deployment's cooldowns: 1 s doubling (or the provider's
/// hint when larger) up to `[cascade] max_cooldown_secs` but at most 5
/// minutes; auth failures as long as the cascade's.
pub fn cooldown_policy(config: &crate::config::RouterConfig) -> CooldownPolicy {
    let c = &config.cascade;
    CooldownPolicy {
        base: Duration::from_secs(1),
        max: Duration::from_secs(c.max_cooldown_secs.clamp(1, 300)),
        auth: Duration::from_secs(c.auth_cooldown_secs),
    }
}

/// Scales `v` to unit length (a zero vector stays zero).
fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

impl Router {
    /// The `[embeddings]` deployment, when one is configured.
    pub fn embedder(&self) -> Option<&Deployment> {
        self.embedder.as_ref().map(|(d, _, _)| d)
    }

    /// Embeds `texts` within `deadline`, in batches of [`MAX_BATCH`].
    pub async fn embed(
        &self,
        texts: &[String],
        deadline: Duration,
    ) -> Result<EmbedResponse, RouterError> {
        let Some((d, dimensions, health)) = &self.embedder else {
            return Err(RouterError::NoProvider(
                "no embeddings provider is configured ([embeddings] kind is empty)".into(),
            ));
        };
        if let Some(why) = &d.missing_key {
            return Err(RouterError::NoProvider(format!("embeddings: {why}")));
        }
        let started = Instant::now();
        let mut vectors: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
        let mut prompt_tokens: u32 = 0;
        for batch in texts.chunks(MAX_BATCH) {
            let left = deadline.saturating_sub(started.elapsed());
            let e = self
                .embed_batch(d, health, *dimensions, batch, left)
                .await?;
            prompt_tokens = prompt_tokens.saturating_add(e.prompt_tokens);
            vectors.extend(e.vectors);
        }
        let dim = vectors.first().map_or(0, Vec::len);
        if vectors.iter().any(|v| v.len() != dim) {
            return Err(RouterError::Exhausted(
                1,
                "the provider changed the vector size between batches".into(),
            ));
        }
        vectors.iter_mut().for_each(|v| normalise(v));
        info!(
            texts = texts.len(),
            dimensions = dim,
            prompt_tokens,
            latency_ms = started.elapsed().as_millis() as u64,
            "embeddings"
        );
        Ok(EmbedResponse {
            space: space(d, dim),
            dimensions: dim as u32,
            vectors,
            prompt_tokens,
        })
    }

    /// One batch, retried on the same deployment while the deadline allows.
    async fn embed_batch(
        &self,
        d: &Deployment,
        health: &Health,
        dimensions: u32,
        texts: &[String],
        deadline: Duration,
    ) -> Result<Embeddings, RouterError> {
        let started = Instant::now();
        let mut tries: u32 = 0;
        let mut last = String::new();
        loop {
            let elapsed = started.elapsed();
            if elapsed >= deadline {
                return Err(RouterError::Deadline {
                    attempts: tries as usize,
                });
            }
            if tries >= self.settings.max_attempts {
                return Err(RouterError::Exhausted(tries as usize, last));
            }
            let remaining = deadline - elapsed;
            let claim = match health.try_claim(&d.alias, &d.credential) {
                Ok(c) => c,
                Err(Unusable::CoolingUntil(until)) => {
                    let wait = until.saturating_duration_since(health.now());
                    if wait < remaining {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Err(RouterError::AllCooling {
                        alias: d.alias.clone(),
                        at: httpdate::fmt_http_date(SystemTime::now() + wait),
                        secs: wait.as_secs().max(1),
                    });
                }
                Err(Unusable::Probing) => {
                    tokio::time::sleep(Duration::from_millis(50).min(remaining)).await;
                    continue;
                }
            };
            tries += 1;
            match self.embed_once(d, dimensions, texts, remaining).await {
                Ok(e) => {
                    health.success(claim);
                    return Ok(e);
                }
                Err(f) => {
                    let cooldown = health.failure(
                        claim,
                        &d.credential,
                        f.class,
                        f.retry_after,
                        &f.message,
                        false,
                    );
                    warn!(
                        deployment = %d.alias, class = f.class.as_str(), status = f.status,
                        cooldown_ms = cooldown.as_millis() as u64,
                        "embeddings request failed: {}", f.message
                    );
                    last = f.to_string();
                    // Refusals, and answers that do not fit (asking again
                    // gets the same answer), go back at once.
                    if f.class == Class::Protocol
                        || matches!(
                            f.class.action(false),
                            Action::Return | Action::FailOverLong | Action::LargerWindow
                        )
                    {
                        return Err(RouterError::Refused {
                            deployment: d.alias.clone(),
                            failure: last,
                        });
                    }
                    // A rate limit with a hint is waited out when it fits
                    // (the claim above sleeps through the cooldown); any
                    // other failure goes back now, the cooldown keeping
                    // the next callers off the provider.
                    let left = deadline.saturating_sub(started.elapsed());
                    if f.retry_after.is_none() || cooldown >= left {
                        return Err(RouterError::Exhausted(tries as usize, last));
                    }
                }
            }
        }
    }

    async fn embed_once(
        &self,
        d: &Deployment,
        dimensions: u32,
        texts: &[String],
        remaining: Duration,
    ) -> Result<Embeddings, Failure> {
        let call = wire::build_embeddings(&d.target(), texts, dimensions).ok_or_else(|| {
            Failure::new(
                Class::BadRequest,
                format!("{} has no embeddings endpoint", d.kind.as_str()),
            )
        })?;
        let mut rb = self
            .http
            .post(&call.url)
            .body(serde_json::to_vec(&call.body).unwrap_or_default())
            .timeout(remaining);
        for (k, v) in &call.headers {
            rb = rb.header(*k, v);
        }
        let resp = rb.send().await.map_err(|e| transport_failure(&e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| transport_failure(&e))?;
        if !(200..300).contains(&status) {
            return Err(classify_http(
                status,
                &headers,
                &String::from_utf8_lossy(&bytes),
            ));
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                Class::Protocol,
                format!("the embeddings answer is not JSON: {e}"),
            )
        })?;
        wire::parse_embeddings(d.kind, &json, texts.len())
    }
}
