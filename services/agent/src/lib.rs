//! The agent service (`openintentd service agent`): runs intents for every
//! interface. An intent the intent router matches is answered directly;
//! any other goes through the one ReAct loop ([`react`]) with the model
//! behind the llm-router and the tools in the kernel's registry. Each
//! intent becomes an episode in memory.

pub mod bus;
pub mod commands;
pub mod compact;
pub mod display;
pub mod prompt;
pub mod react;
pub mod route;
pub mod scripted;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oi_ipc_schema::agent::{
    AgentEvent, CommandRequest, IntentRequest, IntentResult, Stop, methods,
};
use oi_ipc_schema::llm::ChatMessage;
use oi_ipc_schema::memory::{self, ChatId, Episode, History, HistoryAppend};
use oi_ipc_schema::{ErrorCode, encode_payload};
use oi_kernel::audit::now_ms;
use oi_kernel::client::{BusClient, CallOptions, IncomingRequest};
use oi_kernel::config::Config;
use oi_kernel::harness::{
    self, Live, Reply, Service, ServiceError, archived_reply, decode_request,
};
use oi_kernel::intent::IntentRouter;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument, info, info_span, warn};

use crate::bus::{BusLlm, BusTools};
use crate::commands::MEMORY;
use crate::react::{Input, Limits};

/// What a config change replaces.
struct Settings {
    limits: Limits,
    router: IntentRouter,
    slots: Arc<Semaphore>,
    config: Config,
}

fn settings(config: Config) -> Result<Settings, ServiceError> {
    let router = IntentRouter::from_config(&config.intents)
        .map_err(|e| ServiceError::config_error(e.to_string()))?;
    Ok(Settings {
        limits: Limits::from_config(&config.agent),
        router,
        slots: Arc::new(Semaphore::new(config.agent.max_concurrent_intents as usize)),
        config,
    })
}

struct Agent {
    client: BusClient,
    settings: Live<Settings>,
    next_id: AtomicU64,
}

/// How to get a model, for the messages when there is none.
pub const CONFIGURE: &str = "To configure a provider: set an API key variable for openintentd (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, DEEPSEEK_API_KEY, GROQ_API_KEY, NVIDIA_API_KEY, ...) or store the key with `oictl vault set openai-api-key`; or run a local llama.cpp or Ollama server and point [provider] at it (kind = \"openai\", base_url = \"http://127.0.0.1:8080/v1\", model = \"...\", no_key = true). `oictl models` shows what is configured. Simple requests work without a model: try `oictl ask help`.";

impl Agent {
    fn intent_id(&self) -> String {
        format!(
            "i{}-{}",
            now_ms(),
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Runs one intent to its result, sending progress to `events`.
    async fn work(
        client: BusClient,
        s: Arc<Settings>,
        req: IntentRequest,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> Result<IntentResult, ServiceError> {
        let _ = events.send(AgentEvent::Started { id: req.id.clone() });
        if let Some(routed) = s.router.route(&req.text) {
            info!(pattern = %routed.pattern, "answered by the intent router");
            let a = route::dispatch(&client, &s.router, &routed, &req.id, s.limits.tool_timeout)
                .await?;
            if let Some(call) = &a.call {
                let _ = events.send(AgentEvent::ToolFinished(call.clone()));
            }
            return Ok(IntentResult {
                answer: a.answer,
                tool_calls: a.call.into_iter().collect(),
                ..IntentResult::new(
                    &req.id,
                    format!("intent-router:{}", routed.pattern),
                    Stop::Routed,
                )
            });
        }
        // Wait for a slot; the caller may cancel meanwhile.
        let _slot = s
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ServiceError::internal("the agent is shutting down"))?;
        let llm = BusLlm(client.clone());
        let wait = s.limits.intent_timeout.min(ROUTER_WAIT);
        let window = match usable_window(&client, &req, wait).await {
            Ok(w) => w,
            Err(NoModel::NotConfigured) => {
                return Err(ServiceError::new(
                    ErrorCode::Unavailable,
                    format!("No model is configured to work on this. {CONFIGURE}"),
                ));
            }
            Err(NoModel::Router(e)) if e.code() == ErrorCode::Timeout => {
                return Err(ServiceError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "The model router is restarting and was not back within {} s; try again in a moment (`oictl status` shows it).",
                        wait.as_secs()
                    ),
                ));
            }
            Err(NoModel::Router(e)) => {
                return Err(ServiceError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "The model router is not running ({e}); `oictl status` and `oictl logs llm-router` say why."
                    ),
                ));
            }
        };
        let history = if req.history && !req.chat.is_empty() {
            load_history(&client, &req.chat).await
        } else {
            Vec::new()
        };
        let input = Input {
            id: req.id.clone(),
            chat: req.chat.clone(),
            alias: req.alias.clone(),
            text: req.text.clone(),
            history,
            window,
        };
        let result = react::run(&llm, &BusTools(client.clone()), &s.limits, input, &events)
            .await
            .map_err(|e| {
                if e.unavailable {
                    ServiceError::new(
                        ErrorCode::Unavailable,
                        format!("No model could answer ({}). {CONFIGURE}", e.message),
                    )
                } else {
                    ServiceError::internal(format!("the model call failed: {}", e.message))
                }
            })?;
        if req.history && !req.chat.is_empty() && result.stop.is_success() {
            save_history(&client, &req.chat, &req.text, &result.answer).await;
        }
        Ok(result)
    }
}

/// From one look at the router's models: `None` when no deployment has
/// what it needs to be called, else the context window of the model the
/// intent starts with (0 when unknown).
/// How long an intent waits for a restarting model router (within its
/// own time limit).
const ROUTER_WAIT: Duration = Duration::from_secs(60);

/// Why an intent has no model.
enum NoModel {
    /// The router answered: nothing usable is configured.
    NotConfigured,
    /// The router did not answer.
    Router(oi_kernel::client::BusError),
}

async fn usable_window(
    client: &BusClient,
    req: &IntentRequest,
    wait: Duration,
) -> Result<u32, NoModel> {
    let models = match bus::models(client, wait).await {
        Ok(m) => m,
        Err(e) => {
            warn!("cannot ask the llm-router for its models: {e}");
            return Err(NoModel::Router(e));
        }
    };
    if !models
        .models
        .iter()
        .any(|d| d.key_present && d.position >= 0)
    {
        return Err(NoModel::NotConfigured);
    }
    let alias = if req.alias.is_empty() {
        bus::chat_alias(client, &req.chat, &models.primary)
            .await
            .unwrap_or_else(|_| models.primary.clone())
    } else {
        req.alias.clone()
    };
    Ok(models
        .models
        .iter()
        .find(|m| m.alias == alias)
        .map_or(0, |m| m.context_window))
}

async fn load_history(client: &BusClient, chat: &str) -> Vec<ChatMessage> {
    match client
        .call::<_, History>(
            MEMORY,
            memory::methods::HISTORY_WINDOW,
            &ChatId { chat: chat.into() },
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await
    {
        Ok(h) => h
            .messages
            .into_iter()
            .filter_map(|m| match m.role.as_str() {
                "user" => Some(ChatMessage::user(m.content)),
                "assistant" => Some(ChatMessage::assistant(m.content)),
                _ => None,
            })
            .collect(),
        Err(e) => {
            warn!(%chat, "no history from memory: {e}");
            Vec::new()
        }
    }
}

async fn save_history(client: &BusClient, chat: &str, text: &str, answer: &str) {
    for (role, content) in [("user", text), ("assistant", answer)] {
        let m = HistoryAppend {
            chat: chat.into(),
            role: role.into(),
            content: content.into(),
        };
        if let Err(e) = bus::send(client, MEMORY, memory::methods::HISTORY_APPEND, &m).await {
            warn!(%chat, "history not saved: {e}");
            return;
        }
    }
}

/// Records the intent in episodic memory, when memory is running.
async fn record_episode(client: &BusClient, chat: &str, text: &str, r: &IntentResult) {
    let calls: Vec<serde_json::Value> = r
        .tool_calls
        .iter()
        .map(|c| {
            json!({"name": c.name, "arguments": c.arguments, "service": c.service,
                   "duration_ms": c.duration_ms, "error": c.error})
        })
        .collect();
    let e = Episode {
        id: 0,
        chat: chat.into(),
        intent: text.into(),
        answer: r.answer.clone(),
        tool_calls_json: serde_json::Value::Array(calls).to_string(),
        prompt_tokens: u32::try_from(r.prompt_tokens).unwrap_or(u32::MAX),
        completion_tokens: u32::try_from(r.completion_tokens).unwrap_or(u32::MAX),
        provider: r.provider.clone(),
        ts_ms: now_ms(),
    };
    if let Err(e) = bus::send(client, MEMORY, memory::methods::EPISODE_RECORD, &e).await {
        info!("episode not recorded: {e}");
    }
}

/// Remembers which model answered the chat last, for `/status` (after a
/// failover it is not the chat's own model).
async fn note_last_answer(client: &BusClient, chat: &str, r: &IntentResult) {
    if chat.is_empty() || r.provider.is_empty() {
        return;
    }
    let mut value = format!("{} ({})", r.provider, r.model);
    if r.fallbacks > 0 {
        value.push_str(&format!(
            ", after {} failover{}",
            r.fallbacks,
            if r.fallbacks == 1 { "" } else { "s" }
        ));
    }
    if let Err(e) = commands::set_setting(client, chat, commands::LAST_ANSWER_SETTING, &value).await
    {
        info!("last answer not noted: {}", e.message);
    }
}

fn encode_event(ev: &AgentEvent) -> Result<Vec<u8>, ServiceError> {
    encode_payload(ev).map_err(|e| ServiceError::internal(e.to_string()))
}

impl Service for Agent {
    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        match req.method() {
            methods::RUN => {
                let mut intent: IntentRequest = decode_request(&req)?;
                if intent.text.trim().is_empty() {
                    return Err(ServiceError::bad_request(
                        "agent.run: the intent text is empty",
                    ));
                }
                if intent.id.is_empty() {
                    intent.id = self.intent_id();
                }
                let client = self.client.clone();
                let s = self.settings.get();
                let (out_tx, out_rx) = mpsc::channel::<Result<Vec<u8>, ServiceError>>(64);
                let span = info_span!("intent", id = %intent.id, chat = %intent.chat);
                tokio::spawn(
                    async move {
                        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
                        let chat = intent.chat.clone();
                        let text = intent.text.clone();
                        let work = Agent::work(client.clone(), s, intent, ev_tx);
                        let forward = async {
                            while let Some(ev) = ev_rx.recv().await {
                                if out_tx.send(encode_event(&ev)).await.is_err() {
                                    return;
                                }
                            }
                        };
                        // The caller going away (Ctrl-C, deadline) drops the
                        // stream: stop the intent, its model call and its
                        // tool calls (their bus requests are cancelled).
                        let result = tokio::select! {
                            (r, ()) = async { tokio::join!(work, forward) } => r,
                            _ = out_tx.closed() => {
                                info!("intent cancelled by the caller");
                                return;
                            }
                        };
                        let last = match result {
                            Ok(r) => {
                                info!(
                                    stop = r.stop.as_str(),
                                    tools = r.tool_calls.len(),
                                    tokens = r.prompt_tokens + r.completion_tokens,
                                    provider = %r.provider,
                                    "intent done"
                                );
                                record_episode(&client, &chat, &text, &r).await;
                                note_last_answer(&client, &chat, &r).await;
                                encode_event(&AgentEvent::Done(r))
                            }
                            Err(e) => {
                                info!(error = %e.message, "intent failed");
                                Err(e)
                            }
                        };
                        let _ = out_tx.send(last).await;
                    }
                    .instrument(span),
                );
                Ok(Reply::Stream(out_rx))
            }
            methods::COMMAND => {
                let c: CommandRequest = decode_request(&req)?;
                archived_reply(&commands::run(&self.client, &c.chat, &c.text).await?)
            }
            other => Err(ServiceError::bad_request(format!(
                "the agent has no method '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(c) = harness::config_update(generation, config_toml) else {
            return;
        };
        let current = self.settings.get();
        if c.agent == current.config.agent && c.intents == current.config.intents {
            return;
        }
        self.settings.rebuild("agent", || settings(c));
    }
}

/// Entry point of `openintentd service agent`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let config = harness::service_config()?;
        let s = settings(config)?;
        info!(
            patterns = s.router.describe().len(),
            max_turns = s.limits.max_turns,
            "agent ready"
        );
        Ok(Agent {
            client,
            settings: Live::new(s),
            next_id: AtomicU64::new(1),
        })
    })
}
