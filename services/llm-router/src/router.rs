//! The cascade: pick the highest-priority usable deployment, speak its wire
//! format, classify any failure and act on it. This is the only retry loop:
//! the HTTP client never retries by itself.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use oi_ipc_schema::llm::{Attempt, ChatRequest, ChatResponse, StreamEvent};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::classify::{Action, Class, Failure, classify_http};
use crate::deployments::Deployment;
use crate::health::{Health, Unusable};
use crate::stream::Framing;
use crate::wire::{self, Assembler, Step};

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_attempts: u32,
    pub first_token_timeout: Duration,
    pub idle_timeout: Duration,
    pub failover_on_content_policy: bool,
    /// Longest wait for a cooling deployment (`[cascade]
    /// max_cooldown_wait_secs`).
    pub max_cooldown_wait: Duration,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RouterError {
    #[error(
        "no model provider is usable: {0}. Set a provider's API key (for example OPENAI_API_KEY, or `oictl vault set openai-api-key`), or run a local llama.cpp or Ollama server (the `ollama` alias); `oictl models` shows each alias and what it lacks"
    )]
    NoProvider(String),
    #[error("'{0}' is not a configured model alias (see `oictl models`)")]
    UnknownAlias(String),
    #[error(
        "every model provider is cooling down; the earliest, '{alias}', is available again at {at} (in {secs} s)"
    )]
    AllCooling {
        alias: String,
        at: String,
        secs: u64,
    },
    #[error("{deployment} refused the request: {failure}")]
    Refused { deployment: String, failure: String },
    #[error("the request does not fit any configured model's context window ({0})")]
    ContextTooLarge(String),
    #[error("{deployment} failed mid-stream after the answer had started: {failure}")]
    StreamBroken { deployment: String, failure: String },
    #[error("the request's deadline passed after {attempts} attempt(s)")]
    Deadline { attempts: usize },
    #[error("gave up after {0} attempts: {1}")]
    Exhausted(usize, String),
}

/// How an attempt ended badly.
struct AttemptFailure {
    failure: Failure,
    /// Text had already gone to the caller.
    forwarded: bool,
    /// The caller's own deadline cut it: not the provider's fault.
    caller_deadline: bool,
}

pub struct Router {
    deployments: Vec<Deployment>,
    pub(crate) health: Health,
    pub(crate) http: reqwest::Client,
    pub(crate) settings: Settings,
    /// The `[embeddings]` deployment, the dimensions to ask for, and its
    /// own health (see [`crate::embed`]).
    pub(crate) embedder: Option<(Deployment, u32, Health)>,
}

impl Router {
    pub fn new(deployments: Vec<Deployment>, health: Health, settings: Settings) -> Router {
        oi_sandbox::netguard::install_crypto();
        // The router is the only retry loop: the client's own retries (which
        // reqwest 0.13 has for protocol-level refusals) are off, and
        // redirects are not followed for API calls.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .connect_timeout(settings.first_token_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Router {
            deployments,
            health,
            http,
            settings,
            embedder: None,
        }
    }

    /// Adds the `[embeddings]` deployment (`dimensions` 0: the model's
    /// own), with its health kept apart from the chat cascade's.
    pub fn with_embeddings(
        mut self,
        d: Option<Deployment>,
        dimensions: u32,
        health: Health,
    ) -> Router {
        self.embedder = d.map(|d| (d, dimensions, health));
        self
    }

    pub fn deployments(&self) -> &[Deployment] {
        &self.deployments
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The order to try deployments in: `first` (an explicit alias or the
    /// chat's override) then the cascade.
    fn order(&self, first: Option<&str>) -> Result<Vec<&Deployment>, RouterError> {
        let mut order: Vec<&Deployment> = Vec::new();
        if let Some(alias) = first.filter(|a| !a.is_empty()) {
            let d = self
                .deployments
                .iter()
                .find(|d| d.alias == alias)
                .ok_or_else(|| RouterError::UnknownAlias(alias.to_string()))?;
            order.push(d);
        }
        for d in self.deployments.iter().filter(|d| d.position.is_some()) {
            if !order.iter().any(|o| o.alias == d.alias) {
                order.push(d);
            }
        }
        Ok(order)
    }

    /// One completion, failing over as needed. With `events`, text is sent
    /// as it arrives, then the tool calls, then `Done`.
    pub async fn chat(
        &self,
        req: &ChatRequest,
        first: Option<&str>,
        deadline: Duration,
        events: Option<mpsc::Sender<StreamEvent>>,
    ) -> Result<ChatResponse, RouterError> {
        let events = events.as_ref();
        let started = Instant::now();
        let order = self.order(first)?;
        if !order.iter().any(|d| d.usable()) {
            let reasons: Vec<String> = order
                .iter()
                .map(|d| {
                    format!(
                        "{} ({})",
                        d.alias,
                        d.missing_key.as_deref().unwrap_or("usable")
                    )
                })
                .collect();
            return Err(RouterError::NoProvider(if reasons.is_empty() {
                "no models are configured".into()
            } else {
                reasons.join("; ")
            }));
        }
        let mut attempts: Vec<Attempt> = Vec::new();
        // Deployments this request must not use again (failures that did
        // not cool them down, such as a botched tool call).
        let mut excluded: HashSet<&str> = HashSet::new();
        // After a context overflow: only larger windows.
        let mut min_window: Option<u32> = None;
        loop {
            let elapsed = started.elapsed();
            if elapsed >= deadline {
                return Err(RouterError::Deadline {
                    attempts: attempts.len(),
                });
            }
            if attempts.len() as u32 >= self.settings.max_attempts {
                return Err(RouterError::Exhausted(attempts.len(), summary(&attempts)));
            }
            let remaining = deadline - elapsed;
            let mut soonest: Option<(Instant, &str)> = None;
            let mut chosen = None;
            for d in order.iter().filter(|d| d.usable()) {
                if excluded.contains(d.alias.as_str()) {
                    continue;
                }
                if let Some(min) = min_window
                    && d.context_window <= min
                {
                    continue;
                }
                match self.health.try_claim(&d.alias, &d.credential) {
                    Ok(claim) => {
                        chosen = Some((*d, claim));
                        break;
                    }
                    Err(Unusable::CoolingUntil(until)) => {
                        if soonest.is_none_or(|(s, _)| until < s) {
                            soonest = Some((until, d.alias.as_str()));
                        }
                    }
                    Err(Unusable::Probing) => {}
                }
            }
            let Some((d, claim)) = chosen else {
                if let Some(min) = min_window
                    && soonest.is_none()
                {
                    return Err(RouterError::ContextTooLarge(format!(
                        "no usable deployment has a window over {min} tokens"
                    )));
                }
                if soonest.is_none() && !excluded.is_empty() {
                    return Err(RouterError::Exhausted(attempts.len(), summary(&attempts)));
                }
                let (until, alias) = match soonest {
                    Some(s) => s,
                    // Only probes in flight: wait briefly for them.
                    None => (self.health.now() + Duration::from_millis(50), ""),
                };
                let wait = until.saturating_duration_since(self.health.now());
                if wait < remaining && wait <= self.settings.max_cooldown_wait {
                    if let Some(tx) = events
                        && !alias.is_empty()
                        && wait >= SAY_WAIT
                    {
                        let _ = tx
                            .send(StreamEvent::Waiting(waiting_note(alias, wait)))
                            .await;
                    }
                    tokio::time::sleep(wait).await;
                    continue;
                }
                let at = SystemTime::now() + wait;
                return Err(RouterError::AllCooling {
                    alias: alias.to_string(),
                    at: httpdate::fmt_http_date(at),
                    secs: wait.as_secs().max(1),
                });
            };

            let t0 = Instant::now();
            let result = self.attempt(d, req, remaining, events).await;
            let latency_ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
            match result {
                Ok((mut response, usage)) => {
                    self.health.success(claim);
                    attempts.push(Attempt {
                        deployment: d.alias.clone(),
                        class: "ok".into(),
                        status: 200,
                        latency_ms,
                        prompt_tokens: usage.prompt_tokens,
                        completion_tokens: usage.completion_tokens,
                        cooldown_ms: 0,
                        message: String::new(),
                    });
                    info!(
                        deployment = %d.alias, model = %d.model, latency_ms,
                        fallbacks = attempts.len() - 1,
                        prompt_tokens = usage.prompt_tokens,
                        completion_tokens = usage.completion_tokens,
                        "completion"
                    );
                    response.fallbacks = (attempts.len() - 1) as u32;
                    response.attempts = attempts;
                    if let Some(tx) = events {
                        for c in &response.message.tool_calls {
                            let _ = tx.send(StreamEvent::ToolCall(c.clone())).await;
                        }
                    }
                    return Ok(response);
                }
                Err(af) => {
                    let f = af.failure;
                    if af.caller_deadline {
                        // The caller's deadline, not the provider's fault:
                        // release the claim without a cooldown.
                        drop(claim);
                        return Err(RouterError::Deadline {
                            attempts: attempts.len() + 1,
                        });
                    }
                    let cooldown = self.health.failure(
                        claim,
                        &d.credential,
                        f.class,
                        f.retry_after,
                        &f.message,
                        self.settings.failover_on_content_policy,
                    );
                    let action = f.class.action(self.settings.failover_on_content_policy);
                    attempts.push(Attempt {
                        deployment: d.alias.clone(),
                        class: f.class.as_str().into(),
                        status: f.status,
                        latency_ms,
                        prompt_tokens: 0,
                        completion_tokens: 0,
                        cooldown_ms: cooldown.as_millis().min(u64::MAX as u128) as u64,
                        message: f.message.clone(),
                    });
                    if action == Action::FailOverLong {
                        error!(
                            deployment = %d.alias, credential = %d.credential,
                            class = f.class.as_str(), status = f.status,
                            cooldown_s = cooldown.as_secs(),
                            "provider refused the credential or model; fix the configuration or key: {}",
                            f.message
                        );
                    } else {
                        warn!(
                            deployment = %d.alias, class = f.class.as_str(), status = f.status,
                            latency_ms, cooldown_ms = cooldown.as_millis() as u64,
                            "attempt failed: {}", f.message
                        );
                    }
                    if af.forwarded {
                        return Err(RouterError::StreamBroken {
                            deployment: d.alias.clone(),
                            failure: f.to_string(),
                        });
                    }
                    match action {
                        Action::Return => {
                            return Err(RouterError::Refused {
                                deployment: d.alias.clone(),
                                failure: f.to_string(),
                            });
                        }
                        Action::LargerWindow => {
                            if d.context_window == 0 {
                                return Err(RouterError::ContextTooLarge(format!(
                                    "{} overflowed and its window is not configured",
                                    d.alias
                                )));
                            }
                            min_window = Some(min_window.unwrap_or(0).max(d.context_window));
                            excluded.insert(d.alias.as_str());
                        }
                        Action::FailOverNoCooldown => {
                            excluded.insert(d.alias.as_str());
                        }
                        Action::FailOver | Action::FailOverLong => {
                            // Without a cooldown (cooldown_secs = 0) it
                            // would be picked again at once: not in this
                            // request.
                            if cooldown.is_zero() {
                                excluded.insert(d.alias.as_str());
                            }
                        }
                    }
                }
            }
        }
    }

    async fn attempt(
        &self,
        d: &Deployment,
        req: &ChatRequest,
        remaining: Duration,
        events: Option<&mpsc::Sender<StreamEvent>>,
    ) -> Result<(ChatResponse, oi_ipc_schema::llm::Usage), AttemptFailure> {
        let stream = events.is_some();
        let call = wire::build(&d.target(), req, stream);
        let body = serde_json::to_vec(&call.body).unwrap_or_default();
        let mut rb = self.http.post(&call.url).body(body);
        for (k, v) in &call.headers {
            rb = rb.header(*k, v);
        }
        let t0 = Instant::now();
        let fail = |failure: Failure, forwarded: bool| AttemptFailure {
            failure,
            forwarded,
            caller_deadline: false,
        };
        // Time left for the next byte: the stall limit, or the caller's
        // deadline when that comes first.
        let limit = |stall: Duration| -> (Duration, bool) {
            let left = remaining.saturating_sub(t0.elapsed());
            if left <= stall {
                (left, true)
            } else {
                (stall, false)
            }
        };
        let timed_out = |by_caller: bool, what: &str| AttemptFailure {
            failure: Failure::new(Class::Stalled, what.to_string()),
            forwarded: false,
            caller_deadline: by_caller,
        };

        let (wait, by_caller) = limit(self.settings.first_token_timeout);
        let resp = match tokio::time::timeout(wait, rb.send()).await {
            Err(_) => {
                return Err(timed_out(
                    by_caller,
                    &format!("no answer within {} ms", wait.as_millis()),
                ));
            }
            Ok(Err(e)) => return Err(fail(transport_failure(&e), false)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let headers = resp.headers().clone();
            let (wait, _) = limit(self.settings.idle_timeout);
            let text = tokio::time::timeout(wait, resp.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(fail(classify_http(status, &headers, &text), false));
        }
        let mut asm = Assembler::default();
        if !stream {
            let (wait, by_caller) = limit(self.settings.first_token_timeout);
            let bytes = match tokio::time::timeout(wait, resp.bytes()).await {
                Err(_) => return Err(timed_out(by_caller, "the answer stalled")),
                Ok(Err(e)) => return Err(fail(transport_failure(&e), false)),
                Ok(Ok(b)) => b,
            };
            let json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
                fail(
                    Failure::new(Class::Protocol, format!("the answer is not JSON: {e}")),
                    false,
                )
            })?;
            wire::parse_body(d.kind, &json, &mut asm).map_err(|f| fail(f, false))?;
        } else {
            let content_type = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut framing = Framing::for_content_type(&content_type);
            let mut resp = resp;
            let mut done = false;
            while !done {
                let stall = if asm.started {
                    self.settings.idle_timeout
                } else {
                    self.settings.first_token_timeout
                };
                let (wait, by_caller) = limit(stall);
                let chunk = match tokio::time::timeout(wait, resp.chunk()).await {
                    Err(_) => {
                        let forwarded = asm.forwarded_any();
                        let mut f = timed_out(
                            by_caller,
                            &format!("the stream stalled for {} ms", wait.as_millis()),
                        );
                        f.forwarded = forwarded;
                        return Err(f);
                    }
                    Ok(Err(e)) => {
                        return Err(fail(transport_failure(&e), asm.forwarded_any()));
                    }
                    Ok(Ok(c)) => c,
                };
                let evs = match &chunk {
                    Some(bytes) => framing.push(bytes),
                    None => framing.finish(),
                }
                .map_err(|e| {
                    fail(
                        Failure::new(Class::Protocol, e.to_string()),
                        asm.forwarded_any(),
                    )
                })?;
                for ev in &evs {
                    match wire::on_event(d.kind, ev, &mut asm) {
                        Ok(Step::Done) => done = true,
                        Ok(Step::More) => {}
                        Err(f) => return Err(fail(f, asm.forwarded_any())),
                    }
                    if done {
                        break;
                    }
                }
                // Text goes out only to a caller that shows it; what was
                // not shown can still be answered by another deployment.
                if let Some(tx) = events.filter(|_| req.deltas)
                    && let Some(text) = asm.take_text_delta()
                {
                    let _ = tx.send(StreamEvent::Text(text)).await;
                }
                if chunk.is_none() && !done {
                    return Err(fail(
                        Failure::new(Class::Protocol, "the stream ended without its terminator"),
                        asm.forwarded_any(),
                    ));
                }
            }
        }
        let model = if asm.model.is_empty() {
            d.model.clone()
        } else {
            asm.model.clone()
        };
        let (message, finish_reason, usage) = asm.finish(&d.alias, req);
        Ok((
            ChatResponse {
                message,
                finish_reason,
                usage,
                deployment: d.alias.clone(),
                model,
                context_window: d.context_window,
                fallbacks: 0,
                attempts: Vec::new(),
            },
            usage,
        ))
    }
}

pub(crate) fn transport_failure(e: &reqwest::Error) -> Failure {
    let class = if e.is_connect() {
        Class::Connect
    } else if e.is_timeout() {
        Class::Stalled
    } else if e.is_body() || e.is_decode() {
        // The answer had begun and its body was cut: a broken stream, not
        // an address where nothing listens.
        Class::Protocol
    } else {
        // A reset before any answer.
        Class::Connect
    };
    // reqwest's message names the URL, never headers; still strip keys.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    Failure::new(class, crate::classify::redact(&msg))
}

/// Waits shorter than this are not worth a word to the caller.
pub const SAY_WAIT: Duration = Duration::from_millis(500);

/// What the caller is told while the router waits out a cooldown.
fn waiting_note(alias: &str, wait: Duration) -> String {
    format!(
        "waiting {:.0} s for a model: every usable deployment is cooling down, {alias} first back",
        wait.as_secs_f64().ceil()
    )
}

fn summary(attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("{} {}", a.deployment, a.class))
        .collect::<Vec<_>>()
        .join(", ")
}
