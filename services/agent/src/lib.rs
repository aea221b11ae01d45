//! The agent service (`openintentd service agent`): runs intents for every
//! interface. An intent the intent router matches is answered directly;
//! any other goes through the one ReAct loop ([`react`]) with the model
//! behind the llm-router and the tools in the kernel's registry. Each
//! intent becomes an episode in memory.

pub mod bus;
pub mod commands;
pub mod compact;
pub mod config;
pub mod intent;
pub mod prompt;
pub mod react;
pub mod route;
pub mod scripted;
pub mod turn;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::intent::IntentRouter;
use oi_ipc_schema::agent::{
    AgentEvent, CommandRequest, IntentRequest, IntentResult, Stop, methods,
};
use oi_ipc_schema::{ErrorCode, encode_payload};
use oi_kernel::audit::now_ms;
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::{Config, ConfigError};

use crate::config::{AgentConfig, IntentsConfig};
use oi_kernel::harness::{
    self, Live, Reply, Service, ServiceError, archived_reply, decode_request,
};
use tokio::sync::{Semaphore, mpsc};
use tracing::{Instrument, info, info_span};

use crate::bus::{BusLlm, BusTools};
use crate::react::{Input, Limits};
use crate::turn::Books;

/// What a config change replaces.
struct Settings {
    limits: Limits,
    router: IntentRouter,
    slots: Arc<Semaphore>,
    config: (AgentConfig, IntentsConfig),
}

/// The agent's sections of a config.
fn sections(c: &Config) -> Result<(AgentConfig, IntentsConfig), ConfigError> {
    Ok((c.section()?, c.section()?))
}

fn settings(config: (AgentConfig, IntentsConfig)) -> Result<Settings, ServiceError> {
    let (agent, intents) = &config;
    let router = IntentRouter::from_config(intents)
        .map_err(|e| ServiceError::config_error(e.to_string()))?;
    Ok(Settings {
        limits: Limits::from_config(agent),
        router,
        slots: Arc::new(Semaphore::new(agent.max_concurrent_intents as usize)),
        config,
    })
}

struct Agent {
    client: BusClient,
    settings: Live<Settings>,
    books: Arc<Books>,
    tools: BusTools,
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
        books: Arc<Books>,
        tools: BusTools,
        req: IntentRequest,
        events: mpsc::UnboundedSender<AgentEvent>,
    ) -> Result<IntentResult, ServiceError> {
        let _ = events.send(AgentEvent::Started {
            id: req.id.clone(),
            limit_secs: s.limits.intent_timeout.as_secs(),
        });
        if let Some(routed) = s.router.route(&req.text) {
            info!(pattern = %routed.pattern, "answered by the intent router");
            let a = route::dispatch(
                &client,
                &tools,
                &s.router,
                &routed,
                &req.id,
                s.limits.tool_timeout,
            )
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
        let llm = BusLlm::new(client.clone());
        let window = books.window(&req.chat, &req.alias);
        let history = if req.history && !req.chat.is_empty() {
            books.settled(&req.chat).await;
            turn::load_history(&client, &req.chat).await
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
        let result = react::run(&llm, &tools, &s.limits, input, &events)
            .await
            .map_err(|e| {
                if e.explained {
                    ServiceError::new(ErrorCode::Unavailable, e.message)
                } else if e.unavailable {
                    ServiceError::new(
                        ErrorCode::Unavailable,
                        format!("No model could answer ({}). {CONFIGURE}", e.message),
                    )
                } else {
                    ServiceError::internal(format!("the model call failed: {}", e.message))
                }
            })?;
        books.note_window(&req.chat, &req.alias, llm.window());
        Ok(result)
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
                let books = self.books.clone();
                let tools = self.tools.clone();
                let s = self.settings.get();
                let (out_tx, out_rx) = mpsc::channel::<Result<Vec<u8>, ServiceError>>(64);
                let span = info_span!("intent", id = %intent.id, chat = %intent.chat);
                tokio::spawn(
                    async move {
                        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
                        let chat = intent.chat.clone();
                        let text = intent.text.clone();
                        let history = intent.history;
                        let work =
                            Agent::work(client.clone(), s, books.clone(), tools, intent, ev_tx);
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
                        match result {
                            Ok(r) => {
                                info!(
                                    stop = r.stop.as_str(),
                                    tools = r.tool_calls.len(),
                                    tokens = r.prompt_tokens + r.completion_tokens,
                                    provider = %r.provider,
                                    "intent done"
                                );
                                // The answer goes first; memory is written
                                // after, in one call, while the chat's next
                                // intent waits for it.
                                let keep = history && r.stop != Stop::Routed;
                                let t = turn::turn(&chat, &text, keep, &r);
                                let guard = books.claim(&chat).await;
                                let _ = out_tx.send(encode_event(&AgentEvent::Done(r))).await;
                                drop(out_tx);
                                turn::write(&client, &t).await;
                                books.release(&chat, guard);
                            }
                            Err(e) => {
                                info!(error = %e.message, "intent failed");
                                let _ = out_tx.send(Err(e)).await;
                            }
                        }
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
        let Some(c) = harness::config_update(generation, config_toml, sections) else {
            return;
        };
        if c == self.settings.get().config {
            return;
        }
        self.settings.rebuild("agent", || settings(c));
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "agent",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// Entry point of `openintentd service agent`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let s = settings(sections(&harness::service_config()?)?)?;
        info!(
            patterns = s.router.describe().len(),
            max_turns = s.limits.max_turns,
            "agent ready"
        );
        Ok(Agent {
            client: client.clone(),
            settings: Live::new(s),
            books: Arc::new(Books::default()),
            tools: BusTools::watching(client.clone()),
            next_id: AtomicU64::new(1),
        })
    })
}
