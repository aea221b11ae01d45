//! The ReAct loop: the one place an intent is worked on with a model, for
//! every interface.
//!
//! Each turn asks the model (with the tools registered right now) what to
//! do; the tool calls it returns run in parallel, each under the tool
//! timeout; their results go back as untrusted data; repeat. Whatever goes
//! wrong with a tool (unknown name, arguments that are not JSON, an error,
//! a timeout, its process dying) becomes a tool result the model can react
//! to. The loop ends when the model answers without tools, at the turn
//! limit (after one last call for a summary), before a call that would go
//! over the token budget, or at the intent's deadline.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use oi_ipc_schema::agent::{AgentEvent, IntentResult, Stop, ToolCallRecord};
use oi_ipc_schema::llm::{ChatMessage, ChatRequest, ChatResponse, Role, ToolCall, ToolDef};
use tokio::sync::mpsc::UnboundedSender;

use crate::{compact, prompt};

/// A tool the model may call, and the service that serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolInfo {
    pub service: String,
    pub def: ToolDef,
}

/// A failed model call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    /// No deployment could answer (none configured, all failing).
    pub unavailable: bool,
    pub message: String,
    /// The message already tells the user what happened (the router is
    /// away, nothing is configured): it is reported as it is, even when
    /// the intent's deadline has passed meanwhile.
    pub explained: bool,
}

/// The model, as the loop sees it.
pub trait Llm: Send + Sync {
    /// One completion. `say` passes on what the caller should know while
    /// it waits (the router waiting out a cooldown).
    fn chat(
        &self,
        req: ChatRequest,
        intent: &str,
        timeout: Duration,
        say: &(dyn Fn(String) + Send + Sync),
    ) -> impl Future<Output = Result<ChatResponse, LlmError>> + Send;
}

/// The tools, as the loop sees them.
pub trait Tools: Send + Sync {
    fn list(&self) -> impl Future<Output = Vec<ToolInfo>> + Send;

    /// Runs one call; `Ok` is the result's JSON text, `Err` says what went
    /// wrong in words the model can act on.
    fn call(
        &self,
        service: &str,
        name: &str,
        arguments: &str,
        intent: &str,
        chat: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<String, String>> + Send;
}

/// Limits of one intent (from `[agent]`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_turns: u32,
    pub tool_timeout: Duration,
    pub intent_timeout: Duration,
    pub token_budget: u64,
    /// 0: the model's window.
    pub context_tokens: u32,
    pub max_result_chars: usize,
    pub instructions: String,
}

impl Limits {
    pub fn from_config(c: &crate::config::AgentConfig) -> Limits {
        Limits {
            max_turns: c.max_react_turns,
            tool_timeout: Duration::from_secs(c.tool_timeout_secs),
            intent_timeout: Duration::from_secs(c.intent_timeout_secs),
            token_budget: c.token_budget,
            context_tokens: c.context_tokens,
            max_result_chars: usize::try_from(c.max_tool_result_chars).unwrap_or(usize::MAX),
            instructions: c.instructions.clone(),
        }
    }
}

/// What the loop works on.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub id: String,
    pub chat: String,
    pub alias: String,
    pub text: String,
    /// Earlier messages of the chat, oldest first.
    pub history: Vec<ChatMessage>,
    /// The context window of the model the intent starts with; 0 when
    /// unknown.
    pub window: u32,
}

/// Completion tokens left for the answer below which a call is not made.
const MIN_COMPLETION: u64 = 256;
/// Context window assumed when the model's is unknown.
const DEFAULT_WINDOW: u32 = 32_768;
/// Failures of one tool in a row after which the model is asked to change
/// course.
const FAILURES_BEFORE_NOTE: u32 = 3;

const SUMMARY_REQUEST: &str = "You have used all the steps allowed for this request. Do not call any more tools. Sum up for the user what you found and did, and what is left undone.";

struct Progress {
    result: IntentResult,
    /// Consecutive failures per tool name.
    failures: HashMap<String, u32>,
}

impl Progress {
    fn used(&self) -> u64 {
        self.result.prompt_tokens + self.result.completion_tokens
    }
}

/// The loop over one intent. Events go to `events` as they happen; the
/// result is also sent as the final `Done`.
pub async fn run<L: Llm, T: Tools>(
    llm: &L,
    tools: &T,
    limits: &Limits,
    input: Input,
    events: &UnboundedSender<AgentEvent>,
) -> Result<IntentResult, LlmError> {
    let started = Instant::now();
    let deadline = started + limits.intent_timeout;
    let mut p = Progress {
        result: IntentResult::new(&input.id, "agent", Stop::Answered),
        failures: HashMap::new(),
    };
    let mut window = match (limits.context_tokens, input.window) {
        (0, 0) => DEFAULT_WINDOW,
        (0, w) | (w, _) => w,
    };
    let mut messages = vec![ChatMessage::system(prompt::system_prompt(
        &limits.instructions,
    ))];
    messages.extend(input.history.iter().cloned());
    let mut anchor = messages.len();
    messages.push(ChatMessage::user(input.text.clone()));
    let mut notes: Vec<String> = Vec::new();
    let mut catalog: Vec<ToolInfo> = Vec::new();

    for turn in 0..=limits.max_turns {
        let last = turn == limits.max_turns;
        if !last {
            // The registry now, plus tools seen earlier in this intent whose
            // service is away (restarting): a call to one waits for it.
            let mut now = tools.list().await;
            for t in catalog.drain(..) {
                if !now.iter().any(|n| n.def.name == t.def.name) {
                    now.push(t);
                }
            }
            catalog = now;
        }
        let offered = if last { &[][..] } else { &catalog[..] };
        let defs: Vec<ToolDef> = offered.iter().map(|t| t.def.clone()).collect();
        if last {
            messages.push(ChatMessage::user(SUMMARY_REQUEST));
        }
        // Keep within the window, leaving room for the answer.
        let target = u64::from(window).saturating_mul(3) / 4;
        if prompt::prompt_tokens(&messages, &defs) > target {
            let (a, dropped) = compact::compact(&mut messages, anchor, &defs, target);
            anchor = a;
            notes.extend(dropped);
            messages[anchor].content = compact::with_notes(&input.text, &notes);
        }
        let estimate = prompt::prompt_tokens(&messages, &defs);
        let left = limits.token_budget.saturating_sub(p.used());
        if estimate + MIN_COMPLETION > left {
            p.result.stop = Stop::TokenBudget;
            p.result.answer = format!(
                "Stopped: the next step needs about {} tokens, and this request has {} of its {}-token budget left ([agent] token_budget). {} tool call(s) were made before stopping.",
                estimate + MIN_COMPLETION,
                left,
                limits.token_budget,
                p.result.tool_calls.len()
            );
            return Ok(p.result);
        }
        let Some(remaining) = deadline.checked_duration_since(Instant::now()) else {
            return Ok(deadline_stop(p, limits));
        };
        let mut req = ChatRequest::new(messages.clone());
        req.chat = input.chat.clone();
        req.alias = input.alias.clone();
        req.tools = defs;
        let room = left - estimate;
        if room < 8192 {
            req.max_tokens = u32::try_from(room).unwrap_or(u32::MAX);
        }
        let say = |note: String| {
            let _ = events.send(AgentEvent::Notice(note));
        };
        let response = match llm.chat(req, &input.id, remaining, &say).await {
            Ok(r) => r,
            Err(e) if !e.explained && Instant::now() >= deadline => {
                return Ok(deadline_stop(p, limits));
            }
            Err(e) => return Err(e),
        };
        account(&mut p, &response, estimate, events);
        // The router says the window of the model that answered; later
        // turns are sized for it (unless [agent] context_tokens is set).
        if limits.context_tokens == 0 && response.context_window > 0 {
            window = response.context_window;
        }
        let mut reply = response.message;
        if last || reply.tool_calls.is_empty() {
            p.result.answer = reply.content.trim().to_string();
            p.result.stop = if last {
                Stop::TurnLimit
            } else {
                Stop::Answered
            };
            return Ok(p.result);
        }
        reply.role = Role::Assistant;
        let calls = reply.tool_calls.clone();
        messages.push(reply);
        let tool_deadline = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_default()
            .min(limits.tool_timeout);
        let results = join_all(calls.iter().map(|c| {
            call_one(
                tools,
                &catalog,
                c,
                &input,
                tool_deadline,
                limits.tool_timeout,
                events,
            )
        }))
        .await;
        for (call, (record, outcome)) in calls.iter().zip(results) {
            let mut content =
                prompt::tool_result(&call.name, &call.id, &outcome, limits.max_result_chars);
            let streak = p.failures.entry(call.name.clone()).or_insert(0);
            if outcome.is_err() {
                *streak += 1;
                if *streak >= FAILURES_BEFORE_NOTE {
                    content.push_str(&format!(
                        "\nNote: {} has failed {} times in a row. Do not call it the same way again; try another approach or another tool, or tell the user what is blocking you.",
                        call.name, streak
                    ));
                }
            } else {
                *streak = 0;
            }
            p.result.tool_calls.push(record);
            messages.push(ChatMessage::tool_result(&call.id, &call.name, content));
        }
    }
    // The last turn always returns above.
    Ok(p.result)
}

fn deadline_stop(mut p: Progress, limits: &Limits) -> IntentResult {
    p.result.stop = Stop::Deadline;
    p.result.answer = format!(
        "Stopped: this request ran into its {}-second limit ([agent] intent_timeout_secs) after {} tool call(s).",
        limits.intent_timeout.as_secs(),
        p.result.tool_calls.len()
    );
    p.result
}

/// Adds a model call's tokens, provider and failovers to the result.
fn account(
    p: &mut Progress,
    r: &ChatResponse,
    estimate: u64,
    events: &UnboundedSender<AgentEvent>,
) {
    p.result.turns += 1;
    let (prompt_t, completion_t) = if r.usage.prompt_tokens == 0 && r.usage.completion_tokens == 0 {
        // The provider did not say: count what was sent and received.
        let out = prompt::tokens(&r.message.content)
            + r.message
                .tool_calls
                .iter()
                .map(|c| prompt::tokens(&c.arguments))
                .sum::<u64>();
        (estimate, out)
    } else {
        (
            u64::from(r.usage.prompt_tokens),
            u64::from(r.usage.completion_tokens),
        )
    };
    p.result.prompt_tokens += prompt_t;
    p.result.completion_tokens += completion_t;
    if r.fallbacks > 0
        && let Some(notice) = fallback_notice(&r.attempts, &r.deployment)
    {
        let _ = events.send(AgentEvent::Notice(notice));
    }
    p.result.fallbacks += r.fallbacks;
    p.result.provider = r.deployment.clone();
    p.result.model = r.model.clone();
}

/// The failover notice: the deployments that failed, each once, and the
/// one that answered, never named on both sides (a deployment that failed
/// and then answered answered "on a retry").
pub fn fallback_notice(attempts: &[oi_ipc_schema::llm::Attempt], answered: &str) -> Option<String> {
    let mut others: Vec<String> = Vec::new();
    let mut own: Vec<&str> = Vec::new();
    for a in attempts.iter().filter(|a| a.class != "ok") {
        if a.deployment == answered {
            own.push(&a.class);
        } else if !others
            .iter()
            .any(|o| o.starts_with(&format!("{} (", a.deployment)))
        {
            others.push(format!("{} ({})", a.deployment, a.class));
        }
    }
    match (others.is_empty(), own.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!(
            "{} did not answer; {answered} answered instead",
            others.join(", ")
        )),
        (false, false) => Some(format!(
            "{} did not answer; {answered} answered on a retry (after {})",
            others.join(", "),
            own.join(", ")
        )),
        (true, false) => Some(format!(
            "{answered} answered on a retry (after {})",
            own.join(", ")
        )),
    }
}

/// Runs one tool call and reports it; never fails: problems become the
/// error the model is shown.
async fn call_one<T: Tools>(
    tools: &T,
    catalog: &[ToolInfo],
    call: &ToolCall,
    input: &Input,
    timeout: Duration,
    configured_timeout: Duration,
    events: &UnboundedSender<AgentEvent>,
) -> (ToolCallRecord, Result<String, String>) {
    let mut record = ToolCallRecord {
        id: call.id.clone(),
        name: call.name.clone(),
        arguments: call.arguments.clone(),
        ..Default::default()
    };
    let _ = events.send(AgentEvent::ToolStarted {
        id: call.id.clone(),
        name: call.name.clone(),
        arguments: call.arguments.clone(),
    });
    let started = Instant::now();
    let outcome = match catalog.iter().find(|t| t.def.name == call.name) {
        None => Err(format!(
            "there is no tool named '{}'. Available tools: {}.",
            call.name,
            catalog
                .iter()
                .map(|t| t.def.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Some(_) if !call.error.is_empty() => Err(format!(
            "the arguments are not a valid JSON object ({}). Call {} again with its arguments as one JSON object.",
            call.error, call.name
        )),
        Some(t) => {
            record.service = t.service.clone();
            // The bus enforces the deadline; this is the backstop.
            match tokio::time::timeout(
                timeout + Duration::from_millis(500),
                tools.call(
                    &t.service,
                    &call.name,
                    &call.arguments,
                    &input.id,
                    &input.chat,
                    timeout,
                ),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(timeout_message(&call.name, timeout.min(configured_timeout))),
            }
        }
    };
    record.duration_ms = started.elapsed().as_millis() as u64;
    if let Err(e) = &outcome {
        record.error = e.clone();
    }
    let _ = events.send(AgentEvent::ToolFinished(record.clone()));
    (record, outcome)
}

/// The error a model sees when a tool ran out of time.
pub fn timeout_message(name: &str, limit: Duration) -> String {
    let secs = limit.as_secs_f64();
    let shown = if secs.fract() == 0.0 {
        format!("{secs:.0}")
    } else {
        format!("{secs:.1}")
    };
    format!(
        "{name} did not finish within {shown} s and was stopped ([agent] tool_timeout_secs, or the intent's time was up). Try a smaller task, or another way."
    )
}

#[cfg(test)]
mod notice_tests {
    use super::*;
    use oi_ipc_schema::llm::Attempt;

    fn a(deployment: &str, class: &str) -> Attempt {
        Attempt {
            deployment: deployment.into(),
            class: class.into(),
            status: 0,
            latency_ms: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            cooldown_ms: 0,
            message: String::new(),
        }
    }

    #[test]
    fn the_notice_never_names_one_deployment_on_both_sides() {
        // The case from the first hour: the primary stalled, ollama was
        // down, and the primary answered on its retry.
        let n = fallback_notice(
            &[
                a("provider", "stalled"),
                a("ollama", "connect_failed"),
                a("provider", "ok"),
            ],
            "provider",
        );
        assert_eq!(
            n.as_deref(),
            Some(
                "ollama (connect_failed) did not answer; provider answered on a retry (after stalled)"
            )
        );
        let n = fallback_notice(
            &[a("p", "rate_limited"), a("p", "rate_limited"), a("s", "ok")],
            "s",
        );
        assert_eq!(
            n.as_deref(),
            Some("p (rate_limited) did not answer; s answered instead")
        );
        let n = fallback_notice(&[a("p", "server_error"), a("p", "ok")], "p");
        assert_eq!(
            n.as_deref(),
            Some("p answered on a retry (after server_error)")
        );
        assert_eq!(fallback_notice(&[a("p", "ok")], "p"), None);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::scripted::{FnTools, ScriptedLlm, answering, calling};

    fn limits() -> Limits {
        Limits::from_config(&oi_kernel::config::Config::defaults().section().unwrap())
    }

    fn input(text: &str) -> Input {
        Input {
            id: "t".into(),
            text: text.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn several_calls_of_one_turn_run_at_the_same_time() {
        // Each call waits until the other has started: run one after the
        // other, they would both time out.
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let tools = FnTools {
            names: vec!["a".into(), "b".into()],
            run: move |name: String, _args: String| {
                let b = barrier.clone();
                async move {
                    tokio::time::timeout(Duration::from_secs(5), b.wait())
                        .await
                        .map(|_| format!("{{\"{name}\":\"done\"}}"))
                        .map_err(|_| "ran alone".to_string())
                }
            },
        };
        let llm = ScriptedLlm::new(
            vec![calling(&[("a", "{}"), ("b", "{}")])],
            answering("both done"),
        );
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let r = run(&llm, &tools, &limits(), input("do a and b"), &tx)
            .await
            .unwrap();
        assert_eq!(r.answer, "both done");
        assert!(
            r.tool_calls.iter().all(|c| c.error.is_empty()),
            "{:?}",
            r.tool_calls
        );
        // Events: two starts, two finishes.
        let mut finished = 0;
        while let Ok(ev) = rx.try_recv() {
            finished += matches!(ev, AgentEvent::ToolFinished(_)) as u32;
        }
        assert_eq!(finished, 2);
        // Results went back in the order of the calls.
        let second = &llm.requests()[1].messages;
        let tool_ids: Vec<&str> = second
            .iter()
            .filter(|m| m.role == Role::Tool)
            .map(|m| m.tool_call_id.as_str())
            .collect();
        assert_eq!(tool_ids, ["call0", "call1"]);
    }

    #[tokio::test]
    async fn a_long_intent_is_compacted_to_fit_the_window() {
        let tools = FnTools {
            names: vec!["read".into()],
            run: |_n: String, _a: String| async { Ok(format!("\"{}\"", "x".repeat(4000))) },
        };
        let script: Vec<ChatResponse> = (0..6).map(|_| calling(&[("read", "{}")])).collect();
        let llm = ScriptedLlm::new(script, answering("done"));
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let long = Input {
            window: 4000,
            ..input("read it all")
        };
        let r = run(&llm, &tools, &limits(), long, &tx).await.unwrap();
        assert_eq!(r.answer, "done");
        for req in llm.requests() {
            // Within 3/4 of the window, every request.
            let est = prompt::prompt_tokens(&req.messages, &req.tools);
            assert!(est <= 3000, "{est}");
            // Every tool result follows its call.
            for (i, m) in req.messages.iter().enumerate() {
                if m.role == Role::Tool {
                    let call = req.messages[..i]
                        .iter()
                        .rev()
                        .find(|p| p.role != Role::Tool)
                        .unwrap();
                    assert!(call.tool_calls.iter().any(|c| c.id == m.tool_call_id));
                }
            }
        }
        let last = llm.requests().pop().unwrap();
        assert!(
            last.messages[1]
                .content
                .contains("compacted to fit the context window")
        );
        assert!(last.messages[1].content.starts_with("read it all"));
    }

    #[tokio::test]
    async fn the_deadline_ends_an_intent_whose_tool_runs_long() {
        let tools = FnTools {
            names: vec!["slow".into()],
            run: |_n: String, _a: String| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok("{}".to_string())
            },
        };
        let llm = ScriptedLlm::new(vec![calling(&[("slow", "{}")])], answering("never"));
        let mut l = limits();
        l.intent_timeout = Duration::from_millis(300);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let r = run(&llm, &tools, &l, input("wait"), &tx).await.unwrap();
        assert_eq!(r.stop, Stop::Deadline);
        assert_eq!(r.tool_calls.len(), 1);
        assert!(
            r.tool_calls[0].error.contains("did not finish"),
            "{:?}",
            r.tool_calls
        );
        assert_eq!(llm.requests().len(), 1);
    }
}
