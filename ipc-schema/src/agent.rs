//! Payloads of the agent service's methods (destination `agent`): intents
//! in, progress events and the outcome out. Every interface (oictl, chat
//! gateways, scheduled jobs) speaks these.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::{Call, Stream};

pub mod methods {
    /// [`super::IntentRequest`] -> a stream of [`super::AgentEvent`]; the
    /// last event is always `Done`, or the stream ends with an error.
    /// Dropping the stream cancels the intent and its running tool calls.
    pub const RUN: &str = "agent.run";
    /// [`super::CommandRequest`] -> [`super::CommandReply`]: the chat
    /// commands (`/model`, `/models`, `/tokens`, `/status`, `/clear`,
    /// `/reset`, `/help`) shared by `oictl chat` and the gateways.
    pub const COMMAND: &str = "agent.command";
}

/// The agent's destination.
pub const SERVICE: &str = "agent";

pub const RUN: Stream<IntentRequest, AgentEvent> = Stream::new(SERVICE, methods::RUN);
pub const COMMAND: Call<CommandRequest, CommandReply> = Call::new(SERVICE, methods::COMMAND);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct IntentRequest {
    /// The intent's id; empty for the agent to assign one.
    pub id: String,
    /// The conversation (`cli:<user>`, `telegram:<chat id>`); may be empty.
    pub chat: String,
    pub text: String,
    /// Start the model cascade at this alias; empty for the chat's model.
    pub alias: String,
    /// Load the chat's history from memory and append this exchange to it.
    pub history: bool,
}

/// One tool call made for an intent.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCallRecord {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text).
    pub arguments: String,
    /// The service that ran it; empty when no service has the tool.
    pub service: String,
    pub duration_ms: u64,
    /// Empty on success.
    pub error: String,
}

/// Why an intent ended.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub enum Stop {
    /// The model answered.
    Answered,
    /// A pattern of the intent router answered without a model.
    Routed,
    /// `max_react_turns` was reached; the answer is the model's summary.
    TurnLimit,
    /// The next model call would have exceeded the token budget.
    TokenBudget,
    /// The intent's deadline passed.
    Deadline,
}

impl Stop {
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Answered => "answered",
            Stop::Routed => "routed",
            Stop::TurnLimit => "turn_limit",
            Stop::TokenBudget => "token_budget",
            Stop::Deadline => "deadline",
        }
    }
    /// Whether the user got what they asked for (or a summary of it).
    pub fn is_success(self) -> bool {
        matches!(self, Stop::Answered | Stop::Routed | Stop::TurnLimit)
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IntentResult {
    pub id: String,
    pub answer: String,
    pub stop: Stop,
    /// `agent`, or `intent-router:<pattern>`.
    pub route: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The deployment alias that gave the last answer, and its model.
    pub provider: String,
    pub model: String,
    /// Deployments that failed over during the intent, summed over calls.
    pub fallbacks: u32,
    /// Model calls made.
    pub turns: u32,
}

impl IntentResult {
    /// An empty result of intent `id`, to fill in.
    pub fn new(id: &str, route: impl Into<String>, stop: Stop) -> IntentResult {
        IntentResult {
            id: id.to_string(),
            answer: String::new(),
            stop,
            route: route.into(),
            tool_calls: Vec::new(),
            prompt_tokens: 0,
            completion_tokens: 0,
            provider: String::new(),
            model: String::new(),
            fallbacks: 0,
            turns: 0,
        }
    }
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    /// The intent was accepted under this id.
    Started {
        id: String,
        /// The agent's limit of this intent (`[agent] intent_timeout_secs`),
        /// so a client bounds its wait without reading the agent's config.
        limit_secs: u64,
    },
    /// A tool call began.
    ToolStarted {
        id: String,
        name: String,
        arguments: String,
    },
    /// A tool call ended (successfully or not).
    ToolFinished(ToolCallRecord),
    /// Something the user should know while the intent runs (a failover).
    Notice(String),
    Done(IntentResult),
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommandRequest {
    pub chat: String,
    /// The whole line, starting with `/`.
    pub text: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CommandReply {
    pub text: String,
    /// Choices to offer as buttons (model aliases for `/models`); each is
    /// the command to send when pressed.
    pub choices: Vec<String>,
}
