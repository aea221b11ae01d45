//! The loop's model and tools over the bus: the llm-router for the model,
//! the kernel's registry and the adapters for tools.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use oi_ipc_schema::control::{self, ToolList};
use oi_ipc_schema::llm::{
    self, ChatRequest, ChatResponse, ModelChoice, ModelsStatus, StreamEvent, ToolDef,
};
use oi_ipc_schema::{Body, Call, ErrorCode};
use oi_kernel::client::{BusClient, BusError, CallOptions};
use oi_kernel::tool::{self, ToolCallError};

use crate::react::{Llm, LlmError, ToolInfo, Tools, timeout_message};

/// The model over the bus, for one intent.
pub struct BusLlm {
    client: BusClient,
    /// Whether the router has answered in this intent yet: only the first
    /// call waits for a restarting router and explains its absence.
    answered: AtomicBool,
    /// The context window of the model that answered last (0: none yet).
    window: AtomicU32,
}

impl BusLlm {
    pub fn new(client: BusClient) -> Self {
        BusLlm {
            client,
            answered: AtomicBool::new(false),
            window: AtomicU32::new(0),
        }
    }

    pub fn window(&self) -> u32 {
        self.window.load(Ordering::Acquire)
    }
}

impl Llm for BusLlm {
    /// Streamed from the router, so its first-token limit is the first
    /// token's (not the whole answer's), and what it waits for is said
    /// while it waits.
    async fn chat(
        &self,
        req: ChatRequest,
        intent: &str,
        timeout: Duration,
        say: &(dyn Fn(String) + Send + Sync),
    ) -> Result<ChatResponse, LlmError> {
        let first = !self.answered.load(Ordering::Acquire);
        let mut opts = CallOptions::deadline(timeout).for_intent(intent);
        if first {
            // A router the supervisor is bringing back is waited for; one
            // nobody is starting fails at once (the broker knows which).
            opts = opts.waiting();
        }
        let t0 = Instant::now();
        // Streamed for the first-token limit, not to show: the router may
        // still fail over when a deployment breaks mid-answer.
        let req = ChatRequest {
            deltas: false,
            ..req
        };
        match self.answer(&req, opts, say).await {
            Ok(r) => {
                self.answered.store(true, Ordering::Release);
                self.window.store(r.context_window, Ordering::Release);
                Ok(r)
            }
            Err(e) if first => Err(explain(&self.client, e, t0.elapsed()).await),
            Err(e) => Err(plain(e)),
        }
    }
}

impl BusLlm {
    /// The router's stream of one request, to its `Done`.
    async fn answer(
        &self,
        req: &ChatRequest,
        opts: CallOptions,
        say: &(dyn Fn(String) + Send + Sync),
    ) -> Result<ChatResponse, BusError> {
        let mut events = self.client.stream(llm::CHAT_STREAM, req, opts)?;
        loop {
            match events.next().await? {
                Some(StreamEvent::Done(r)) => return Ok(r),
                Some(StreamEvent::Waiting(w)) => say(w),
                // The answer comes whole in `Done`.
                Some(StreamEvent::Text(_) | StreamEvent::ToolCall(_)) => {}
                None => {
                    return Err(BusError::Protocol(
                        "the model router's stream ended without its answer".into(),
                    ));
                }
            }
        }
    }
}

fn plain(e: BusError) -> LlmError {
    LlmError {
        unavailable: matches!(e.code(), ErrorCode::Unavailable),
        message: e.to_string(),
        explained: false,
    }
}

/// Why the intent's first model call failed, in the user's terms, when the
/// reason is the router or its configuration rather than a model: asks
/// the router (only on this failure path) whether it is there and what is
/// configured.
async fn explain(client: &BusClient, e: BusError, waited: Duration) -> LlmError {
    if !matches!(e.code(), ErrorCode::Unavailable | ErrorCode::Timeout) {
        return plain(e);
    }
    let said = |message: String| LlmError {
        unavailable: true,
        message,
        explained: true,
    };
    match client
        .call(llm::MODELS, &(), CallOptions::deadline(PROBE))
        .await
    {
        Err(p) if p.code() == ErrorCode::Unavailable => said(if e.code() == ErrorCode::Timeout {
            format!(
                "The model router is restarting and was not back within {} s; try again in a moment (`oictl status` shows it).",
                waited.as_secs_f64().round()
            )
        } else {
            format!(
                "The model router is not running ({e}); `oictl status` and `oictl logs llm-router` say why."
            )
        }),
        Ok(m) if !m.models.iter().any(|d| d.key_present && d.position >= 0) => said(format!(
            "No model is configured to work on this. {}",
            crate::CONFIGURE
        )),
        _ => plain(e),
    }
}

/// How long the failure path waits for the router to say what it has.
const PROBE: Duration = Duration::from_secs(2);

/// The router's deployments and their health. A router that is
/// restarting (the supervisor is bringing it back) is waited for, up to
/// `wait`; one nobody is starting fails at once.
pub async fn models(client: &BusClient, wait: Duration) -> Result<ModelsStatus, BusError> {
    client
        .call(llm::MODELS, &(), CallOptions::deadline(wait).waiting())
        .await
}

/// The alias a chat's requests start at: its override, else `primary`.
pub async fn chat_alias(client: &BusClient, chat: &str, primary: &str) -> Result<String, BusError> {
    let choice: ModelChoice = client
        .call(
            llm::MODEL_GET,
            &ModelChoice {
                chat: chat.to_string(),
                alias: String::new(),
            },
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await?;
    Ok(if choice.alias.is_empty() {
        primary.to_string()
    } else {
        choice.alias
    })
}

/// Calls a method whose reply is empty, with a short deadline.
pub async fn send<Req: Body>(
    client: &BusClient,
    method: Call<Req, ()>,
    payload: &Req,
) -> Result<(), BusError> {
    client
        .call(
            method,
            payload,
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await
}

/// The tools of the kernel's registry, as the broker last pushed them
/// (`registry.watch`); `None` while no list has arrived or the watch is
/// being renewed, when each turn asks instead.
#[derive(Default)]
struct ToolCache(std::sync::RwLock<Option<Arc<Vec<ToolInfo>>>>);

impl ToolCache {
    fn get(&self) -> Option<Arc<Vec<ToolInfo>>> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
    fn set(&self, v: Option<Vec<ToolInfo>>) {
        let v = v.map(Arc::new);
        match self.0.write() {
            Ok(mut g) => *g = v,
            Err(p) => *p.into_inner() = v,
        }
    }
}

fn infos(l: ToolList) -> Vec<ToolInfo> {
    l.tools
        .into_iter()
        .map(|t| ToolInfo {
            service: t.service,
            def: ToolDef {
                name: t.spec.name,
                description: t.spec.description,
                parameters_json: t.spec.args_schema_json,
            },
        })
        .collect()
}

/// How long the watch waits before it is opened again after it ended.
const REWATCH: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct BusTools {
    client: BusClient,
    cache: Arc<ToolCache>,
}

impl BusTools {
    /// Asks the registry on every `list`.
    pub fn new(client: BusClient) -> Self {
        BusTools {
            client,
            cache: Arc::default(),
        }
    }

    /// Follows the registry's changes, so a turn lists the tools without
    /// a bus round trip.
    pub fn watching(client: BusClient) -> Self {
        let t = Self::new(client);
        let (client, cache) = (t.client.clone(), t.cache.clone());
        tokio::spawn(async move {
            while !client.is_closed() {
                let forever = CallOptions::deadline(Duration::from_millis(u64::from(u32::MAX)));
                match client.stream(control::REGISTRY_WATCH, &(), forever) {
                    Ok(mut s) => loop {
                        match s.next().await {
                            Ok(Some(list)) => cache.set(Some(infos(list))),
                            Ok(None) => break,
                            Err(e) => {
                                tracing::info!("the tool list watch ended: {e}");
                                break;
                            }
                        }
                    },
                    Err(e) => tracing::info!("cannot watch the tool list: {e}"),
                }
                cache.set(None);
                tokio::time::sleep(REWATCH).await;
            }
        });
        t
    }
}

impl Tools for BusTools {
    async fn list(&self) -> Vec<ToolInfo> {
        if let Some(tools) = self.cache.get() {
            return tools.as_ref().clone();
        }
        match tool::list(&self.client, Duration::from_secs(5)).await {
            Ok(l) => infos(l),
            Err(e) => {
                tracing::warn!("cannot list tools: {e}");
                Vec::new()
            }
        }
    }

    async fn call(
        &self,
        service: &str,
        name: &str,
        arguments: &str,
        intent: &str,
        chat: &str,
        timeout: Duration,
    ) -> Result<String, String> {
        // Waiting: a restarting adapter serves the call once it is back.
        let opts = CallOptions::deadline(timeout)
            .waiting()
            .for_intent(intent)
            .in_chat(chat);
        match tool::call_on(&self.client, service, name, arguments, opts).await {
            Ok(v) => Ok(v.to_string()),
            Err(ToolCallError::Bus(BusError::Timeout { .. })) => {
                Err(timeout_message(name, timeout))
            }
            Err(ToolCallError::Bus(BusError::Remote { code, message })) => Err(match code {
                ErrorCode::Timeout => timeout_message(name, timeout),
                // Only where the supervisor is bringing the service back.
                ErrorCode::Unavailable
                    if message.contains("exited while handling the request")
                        || message.contains("is restarting") =>
                {
                    format!(
                        "{name} could not finish: {message}. The supervisor is restarting the service; the call may be retried."
                    )
                }
                ErrorCode::Unavailable => format!("{name} could not finish: {message}."),
                _ => message,
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}
