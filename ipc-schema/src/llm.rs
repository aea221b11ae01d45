//! Payloads of the LLM router's methods (destination `llm-router`): the
//! provider-neutral conversation model every wire format is translated to and
//! from.
//!
//! Tool arguments travel as JSON text, as everywhere on the bus. A tool call
//! whose arguments are not valid JSON arrives with `error` set, so the agent
//! can hand the problem back to the model instead of failing.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::{Call, Stream};

pub mod methods {
    /// [`super::ChatRequest`] -> [`super::ChatResponse`]
    pub const CHAT: &str = "llm.chat";
    /// [`super::ChatRequest`] -> a stream of [`super::StreamEvent`]; the last
    /// event is always `Done`, or the stream ends with an error.
    pub const CHAT_STREAM: &str = "llm.chat_stream";
    /// empty -> [`super::ModelsStatus`]
    pub const MODELS: &str = "llm.models";
    /// [`super::ModelChoice`] -> empty (an empty alias clears the override)
    pub const MODEL_SET: &str = "llm.model.set";
    /// [`super::ModelChoice`] (alias ignored) -> [`super::ModelChoice`]
    pub const MODEL_GET: &str = "llm.model.get";
    /// [`super::EmbedRequest`] -> [`super::EmbedResponse`]: the configured
    /// `[embeddings]` provider's vectors (never failed over to another
    /// model: vectors of two models cannot be compared).
    pub const EMBED: &str = "llm.embed";
    /// [`super::ModelChoice`] (chat ignored; an empty alias for all) ->
    /// [`super::ModelChoice`] whose alias is how many were cooling: ends
    /// cooldowns now (`oictl models reset`).
    pub const MODELS_RESET: &str = "llm.models.reset";
}

/// The LLM router's destination.
pub const SERVICE: &str = "llm-router";

pub const CHAT: Call<ChatRequest, ChatResponse> = Call::new(SERVICE, methods::CHAT);
pub const CHAT_STREAM: Stream<ChatRequest, StreamEvent> =
    Stream::new(SERVICE, methods::CHAT_STREAM);
pub const MODELS: Call<(), ModelsStatus> = Call::new(SERVICE, methods::MODELS);
pub const MODEL_SET: Call<ModelChoice, ()> = Call::new(SERVICE, methods::MODEL_SET);
pub const MODEL_GET: Call<ModelChoice, ModelChoice> = Call::new(SERVICE, methods::MODEL_GET);
pub const EMBED: Call<EmbedRequest, EmbedResponse> = Call::new(SERVICE, methods::EMBED);
pub const MODELS_RESET: Call<ModelChoice, ModelChoice> = Call::new(SERVICE, methods::MODELS_RESET);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EmbedRequest {
    pub texts: Vec<String>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EmbedResponse {
    /// Names the vector space: wire kind, base URL, model and dimensions.
    /// Vectors with different spaces are not comparable.
    pub space: String,
    pub dimensions: u32,
    /// One per text, in order, each L2-normalised.
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One tool call the model asked for. `id` is canonical: the provider's own
/// id when it gave one, else synthesised deterministically.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments, as the model wrote them.
    pub arguments: String,
    /// Non-empty when `arguments` is not a JSON object: what is wrong and
    /// where, for the model to correct.
    pub error: String,
}

/// Provider-private data attached to a message (reasoning content, thought
/// signatures). Sent back only to the deployment named in `origin`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub origin: String,
    pub key: String,
    pub value_json: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
    /// Assistant turns: the calls made (text and calls may both be present).
    pub tool_calls: Vec<ToolCall>,
    /// Tool turns: the call this result answers.
    pub tool_call_id: String,
    /// Tool turns: the tool's name (Gemini needs it).
    pub name: String,
    pub extras: Vec<Extra>,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: String::new(),
            name: String::new(),
            extras: Vec::new(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
    pub fn tool_result(
        call_id: impl Into<String>,
        name: impl Into<String>,
        content: impl Into<String>,
    ) -> Self {
        ChatMessage {
            tool_call_id: call_id.into(),
            name: name.into(),
            ..Self::new(Role::Tool, content)
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ToolDef {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments, as JSON text.
    pub parameters_json: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The conversation this belongs to (for its model override); may be empty.
    pub chat: String,
    /// Start the cascade at this alias; empty for the chat's override or the
    /// configured primary.
    pub alias: String,
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolDef>,
    /// 0 for the deployment's default.
    pub max_tokens: u32,
    /// Negative for the provider's default.
    pub temperature: f32,
    /// A streaming caller that shows the text as it comes (`oictl llm
    /// --stream`) gets `Text` events; one that only wants the whole answer
    /// streamed for its first-token limit (the agent) does not, and the
    /// router can still fail over when a deployment breaks mid-answer,
    /// since nothing of it was shown.
    pub deltas: bool,
}

impl ChatRequest {
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            chat: String::new(),
            alias: String::new(),
            messages,
            tools: Vec::new(),
            max_tokens: 0,
            temperature: -1.0,
            deltas: true,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// One try at one deployment.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub deployment: String,
    /// `ok`, or the failure class (`rate_limited`, `overloaded`, `auth`, ...).
    pub class: String,
    /// HTTP status, 0 when there was none (connect failure, stall).
    pub status: u16,
    pub latency_ms: u32,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Cooldown this attempt put on the deployment; 0 for none.
    pub cooldown_ms: u64,
    pub message: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatResponse {
    pub message: ChatMessage,
    /// `stop`, `tool_calls`, `length`, `content_filter`.
    pub finish_reason: String,
    pub usage: Usage,
    /// The alias of the deployment that answered, and its model.
    pub deployment: String,
    pub model: String,
    /// The context window of the deployment that answered (0 when its
    /// config does not say), so a caller sizes its next request without
    /// asking beforehand.
    pub context_window: u32,
    /// Deployments that failed before this one answered.
    pub fallbacks: u32,
    pub attempts: Vec<Attempt>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// Text as it arrives.
    Text(String),
    /// A complete tool call (assembled from its deltas).
    ToolCall(ToolCall),
    /// The router is waiting for a deployment to come back from its
    /// cooldown (at most `[cascade] max_cooldown_wait_secs`): what for and
    /// how long, for the caller to show.
    Waiting(String),
    /// The whole answer; always last.
    Done(ChatResponse),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ModelChoice {
    pub chat: String,
    pub alias: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ModelStatus {
    pub alias: String,
    /// `openai`, `anthropic` or `gemini`.
    pub kind: String,
    pub model: String,
    pub base_url: String,
    /// Position in the cascade (0 first); -1 when not in it.
    pub position: i32,
    pub key_present: bool,
    /// Where the key comes from (`env:NAME`, `vault:NAME`, `none needed`).
    pub key_source: String,
    /// Unix milliseconds the cooldown ends; 0 when not cooling.
    pub cooling_until_ms: i64,
    pub last_error: String,
    /// The last attempt found nothing listening at `base_url`.
    pub unreachable: bool,
    pub context_window: u32,
    pub successes: u64,
    pub failures: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ModelsStatus {
    pub primary: String,
    pub models: Vec<ModelStatus>,
}
