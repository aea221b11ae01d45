//! An in-process model and tools for the loop's tests and the `agent`
//! benchmark: the model answers from a script (then a default), the
//! tools run a function. Nothing here crosses the bus.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use oi_ipc_schema::llm::{ChatMessage, ChatRequest, ChatResponse, ToolCall, ToolDef, Usage};

use crate::react::{Llm, LlmError, ToolInfo, Tools};

/// A model reply that calls `calls` (name, JSON arguments).
pub fn calling(calls: &[(&str, &str)]) -> ChatResponse {
    let mut m = ChatMessage::assistant("");
    m.tool_calls = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| ToolCall {
            id: format!("call{i}"),
            name: name.to_string(),
            arguments: args.to_string(),
            error: String::new(),
        })
        .collect();
    response(m, "tool_calls")
}

/// A model reply that answers `text`.
pub fn answering(text: &str) -> ChatResponse {
    response(ChatMessage::assistant(text), "stop")
}

fn response(message: ChatMessage, finish: &str) -> ChatResponse {
    ChatResponse {
        message,
        finish_reason: finish.into(),
        usage: Usage {
            prompt_tokens: 100,
            completion_tokens: 10,
        },
        deployment: "scripted".into(),
        model: "scripted-model".into(),
        context_window: 0,
        fallbacks: 0,
        attempts: Vec::new(),
    }
}

pub struct ScriptedLlm {
    script: Mutex<VecDeque<ChatResponse>>,
    default: ChatResponse,
    /// Every request, in order.
    pub seen: Mutex<Vec<ChatRequest>>,
}

impl ScriptedLlm {
    pub fn new(script: Vec<ChatResponse>, default: ChatResponse) -> ScriptedLlm {
        ScriptedLlm {
            script: Mutex::new(script.into()),
            default,
            seen: Mutex::new(Vec::new()),
        }
    }

    pub fn requests(&self) -> Vec<ChatRequest> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Llm for ScriptedLlm {
    async fn chat(
        &self,
        req: ChatRequest,
        _intent: &str,
        _t: Duration,
        _say: &(dyn Fn(String) + Send + Sync),
    ) -> Result<ChatResponse, LlmError> {
        if let Ok(mut s) = self.seen.lock() {
            s.push(req);
        }
        let next = self.script.lock().ok().and_then(|mut s| s.pop_front());
        Ok(next.unwrap_or_else(|| self.default.clone()))
    }
}

/// Tools named `names`, each answered by `run(name, arguments)`.
pub struct FnTools<F> {
    pub names: Vec<String>,
    pub run: F,
}

impl<F, Fut> Tools for FnTools<F>
where
    F: Fn(String, String) -> Fut + Send + Sync,
    Fut: Future<Output = Result<String, String>> + Send,
{
    async fn list(&self) -> Vec<ToolInfo> {
        self.names
            .iter()
            .map(|n| ToolInfo {
                service: "scripted".into(),
                def: ToolDef {
                    name: n.clone(),
                    description: format!("the {n} tool"),
                    parameters_json: r#"{"type":"object"}"#.into(),
                },
            })
            .collect()
    }

    async fn call(
        &self,
        _service: &str,
        name: &str,
        arguments: &str,
        _intent: &str,
        _chat: &str,
        _t: Duration,
    ) -> Result<String, String> {
        (self.run)(name.to_string(), arguments.to_string()).await
    }
}
