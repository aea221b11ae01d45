//! The three wire formats, one module each, around one provider-neutral
//! assembler. Every format builds its request from the neutral
//! [`ChatRequest`] and feeds what it receives (a whole body or stream
//! events) into an [`Assembler`], which produces the neutral answer.

pub mod anthropic;
pub mod gemini;
pub mod openai;

use std::collections::BTreeMap;

use oi_ipc_schema::llm::{ChatMessage, ChatRequest, Extra, Role, ToolCall, ToolDef, Usage};
use serde_json::Value;

use crate::classify::{Class, Failure};
use crate::stream::SseEvent;
use crate::textcalls;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireKind {
    OpenAi,
    Anthropic,
    Gemini,
}

impl WireKind {
    /// Every kind, in the order the config's errors name them.
    pub const ALL: [WireKind; 3] = [WireKind::OpenAi, WireKind::Anthropic, WireKind::Gemini];

    pub fn parse(kind: &str) -> Option<WireKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
    /// The kinds a config may name, for its errors.
    pub fn names() -> String {
        Self::ALL.map(WireKind::as_str).join(", ")
    }
    pub fn as_str(self) -> &'static str {
        match self {
            WireKind::OpenAi => "openai",
            WireKind::Anthropic => "anthropic",
            WireKind::Gemini => "gemini",
        }
    }
}

/// Where one attempt goes.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub alias: &'a str,
    pub kind: WireKind,
    pub base_url: &'a str,
    pub model: &'a str,
    pub key: Option<&'a str>,
    pub max_tokens: u32,
}

/// An HTTP request ready to send.
#[derive(Debug)]
pub struct HttpCall {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

pub fn build(t: &Target<'_>, req: &ChatRequest, stream: bool) -> HttpCall {
    match t.kind {
        WireKind::OpenAi => openai::build(t, req, stream),
        WireKind::Anthropic => anthropic::build(t, req, stream),
        WireKind::Gemini => gemini::build(t, req, stream),
    }
}

/// The vectors of an embeddings answer, one per input, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}

/// The embeddings request for `texts`; `None` for a format with no
/// embeddings endpoint (Anthropic).
pub fn build_embeddings(t: &Target<'_>, texts: &[String], dimensions: u32) -> Option<HttpCall> {
    match t.kind {
        WireKind::OpenAi => Some(openai::build_embeddings(t, texts, dimensions)),
        WireKind::Gemini => Some(gemini::build_embeddings(t, texts, dimensions)),
        WireKind::Anthropic => None,
    }
}

/// Parses an embeddings answer for `n` inputs: exactly `n` vectors of one
/// non-zero length, every component a finite number.
pub fn parse_embeddings(kind: WireKind, body: &Value, n: usize) -> Result<Embeddings, Failure> {
    let e = match kind {
        WireKind::OpenAi => openai::parse_embeddings(body)?,
        WireKind::Gemini => gemini::parse_embeddings(body)?,
        WireKind::Anthropic => {
            return Err(Failure::new(
                Class::BadRequest,
                "Anthropic has no embeddings endpoint",
            ));
        }
    };
    let bad = |m: String| Err(Failure::new(Class::Protocol, m));
    if e.vectors.len() != n {
        return bad(format!(
            "{} vectors came back for {n} inputs",
            e.vectors.len()
        ));
    }
    let dim = e.vectors.first().map_or(0, Vec::len);
    if n > 0 && dim == 0 {
        return bad("an embedding came back empty".into());
    }
    if let Some(i) = e.vectors.iter().position(|v| v.len() != dim) {
        return bad(format!(
            "vector {i} has {} dimensions, vector 0 has {dim}",
            e.vectors[i].len()
        ));
    }
    Ok(e)
}

/// A JSON array of numbers as a vector; `None` when anything in it is not
/// a finite number.
pub(crate) fn json_vector(v: &Value) -> Option<Vec<f32>> {
    v.as_array()?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32).filter(|f| f.is_finite()))
        .collect()
}

/// Parses a whole (non-streamed) answer.
pub fn parse_body(kind: WireKind, body: &Value, asm: &mut Assembler) -> Result<(), Failure> {
    match kind {
        WireKind::OpenAi => openai::parse_body(body, asm),
        WireKind::Anthropic => anthropic::parse_body(body, asm),
        WireKind::Gemini => gemini::parse_body(body, asm),
    }
}

/// Whether a stream has reached its terminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    More,
    Done,
}

/// Feeds one stream event.
pub fn on_event(kind: WireKind, ev: &SseEvent, asm: &mut Assembler) -> Result<Step, Failure> {
    match kind {
        WireKind::OpenAi => openai::on_event(ev, asm),
        WireKind::Anthropic => anthropic::on_event(ev, asm),
        WireKind::Gemini => gemini::on_event(ev, asm),
    }
}

/// Parses a stream event's JSON, or says it is malformed.
pub(crate) fn event_json(ev: &SseEvent) -> Result<Value, Failure> {
    serde_json::from_str(&ev.data).map_err(|e| {
        Failure::new(
            Class::Protocol,
            format!(
                "malformed JSON in stream event: {e}: {}",
                ev.data.chars().take(120).collect::<String>()
            ),
        )
    })
}

#[derive(Debug, Default, Clone)]
struct PartialCall {
    id: String,
    name: String,
    args: String,
    /// Gemini's thought signature for this call.
    signature: Option<String>,
}

/// Collects an answer from a body or from stream deltas.
#[derive(Debug, Default)]
pub struct Assembler {
    text: String,
    forwarded: usize,
    calls: BTreeMap<u64, PartialCall>,
    pub usage: Usage,
    /// Neutral finish reason: `stop`, `tool_calls`, `length`, `content_filter`.
    pub finish: String,
    pub model: String,
    /// Provider-private extras (key, JSON value).
    pub extras: Vec<(String, String)>,
    reasoning: String,
    /// Whether any content (text or a call) has arrived.
    pub started: bool,
}

impl Assembler {
    pub fn push_text(&mut self, t: &str) {
        if !t.is_empty() {
            self.started = true;
            self.text.push_str(t);
        }
    }
    pub fn push_reasoning(&mut self, t: &str) {
        self.reasoning.push_str(t);
    }
    /// Adds to the call at `index` (a stream's index, a content block's
    /// index, or the order of appearance).
    pub fn call_delta(&mut self, index: u64, id: Option<&str>, name: Option<&str>, args: &str) {
        self.started = true;
        let c = self.calls.entry(index).or_default();
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            c.id = id.to_string();
        }
        if let Some(n) = name.filter(|s| !s.is_empty()) {
            c.name.push_str(n);
        }
        c.args.push_str(args);
    }
    pub fn call_signature(&mut self, index: u64, sig: &str) {
        self.calls.entry(index).or_default().signature = Some(sig.to_string());
    }
    pub fn call_count(&self) -> u64 {
        self.calls.len() as u64
    }
    /// Text received since the last call (for streaming to the caller).
    pub fn take_text_delta(&mut self) -> Option<String> {
        (self.forwarded < self.text.len()).then(|| {
            let d = self.text[self.forwarded..].to_string();
            self.forwarded = self.text.len();
            d
        })
    }
    pub fn forwarded_any(&self) -> bool {
        self.forwarded > 0
    }

    /// The assistant message: canonical ids, validated arguments, tool calls
    /// written as text recovered, extras tagged with `origin`.
    pub fn finish(mut self, origin: &str, req: &ChatRequest) -> (ChatMessage, String, Usage) {
        let turn = req.messages.len();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut extras: Vec<Extra> = Vec::new();
        for (i, (_, c)) in std::mem::take(&mut self.calls).into_iter().enumerate() {
            let args = if c.args.trim().is_empty() {
                "{}".to_string()
            } else {
                c.args
            };
            let id = canonical_id(&c.id, turn, i, &c.name, &args);
            if !c.id.is_empty() && c.id != id {
                extras.push(Extra {
                    origin: origin.into(),
                    key: format!("tool_call_id:{id}"),
                    value_json: Value::String(c.id.clone()).to_string(),
                });
            }
            if let Some(sig) = c.signature {
                extras.push(Extra {
                    origin: origin.into(),
                    key: format!("thought_signature:{id}"),
                    value_json: Value::String(sig).to_string(),
                });
            }
            let error = validate_args(&c.name, &args, &req.tools);
            calls.push(ToolCall {
                id,
                name: c.name,
                arguments: args,
                error,
            });
        }
        let mut text = std::mem::take(&mut self.text);
        if calls.is_empty() && !req.tools.is_empty() {
            let (rest, recovered) = textcalls::recover(&text, &req.tools);
            if !recovered.is_empty() {
                text = rest;
                for (i, (name, args)) in recovered.into_iter().enumerate() {
                    let error = validate_args(&name, &args, &req.tools);
                    calls.push(ToolCall {
                        id: canonical_id("", turn, i, &name, &args),
                        name,
                        arguments: args,
                        error,
                    });
                }
            }
        }
        if !self.reasoning.is_empty() {
            extras.push(Extra {
                origin: origin.into(),
                key: "reasoning_content".into(),
                value_json: Value::String(self.reasoning).to_string(),
            });
        }
        for (key, value_json) in self.extras {
            extras.push(Extra {
                origin: origin.into(),
                key,
                value_json,
            });
        }
        let finish = if !calls.is_empty() {
            "tool_calls".to_string()
        } else if self.finish.is_empty() {
            "stop".to_string()
        } else {
            self.finish
        };
        let mut msg = ChatMessage::assistant(text);
        msg.tool_calls = calls;
        msg.extras = extras;
        (msg, finish, self.usage)
    }
}

/// A call id every provider accepts (`[A-Za-z0-9_-]{1,40}`): the
/// provider's own when it is one, else derived from the call itself, so the
/// same answer always gets the same id.
pub fn canonical_id(given: &str, turn: usize, index: usize, name: &str, args: &str) -> String {
    let ok = !given.is_empty()
        && given.len() <= 40
        && given
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        return given.to_string();
    }
    // FNV-1a over everything that identifies the call.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [
        given.as_bytes(),
        &turn.to_le_bytes(),
        &index.to_le_bytes(),
        name.as_bytes(),
        args.as_bytes(),
    ] {
        for &b in part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("call_{h:016x}")
}

/// Empty when the arguments are a JSON object for a known tool; otherwise
/// what is wrong, for the model to correct.
fn validate_args(name: &str, args: &str, tools: &[ToolDef]) -> String {
    if !tools.is_empty() && !tools.iter().any(|t| t.name == name) {
        let known: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        return format!("unknown tool '{name}'; the tools are: {}", known.join(", "));
    }
    match serde_json::from_str::<Value>(args) {
        Ok(Value::Object(_)) => String::new(),
        Ok(_) => format!("the arguments of '{name}' must be a JSON object"),
        Err(e) => format!(
            "the arguments of '{name}' are not valid JSON ({e}); send them again as one JSON object"
        ),
    }
}

/// The extras of `msg` made by `origin`, by key.
pub(crate) fn extra<'m>(msg: &'m ChatMessage, origin: &str, key: &str) -> Option<&'m str> {
    msg.extras
        .iter()
        .find(|e| e.origin == origin && e.key == key)
        .map(|e| e.value_json.as_str())
}

/// The id to send for a call: the provider's original when this provider
/// made it and it was rewritten.
pub(crate) fn outgoing_call_id(msg: &ChatMessage, origin: &str, id: &str) -> String {
    extra(msg, origin, &format!("tool_call_id:{id}"))
        .and_then(|v| serde_json::from_str::<String>(v).ok())
        .unwrap_or_else(|| id.to_string())
}

/// Arguments as a JSON object (what Anthropic and Gemini take); invalid
/// arguments become an empty object.
pub(crate) fn args_object(args: &str) -> Value {
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    }
}

/// Maps each tool-result id back to the provider's original id for the
/// messages that made the calls.
pub(crate) fn original_ids(req: &ChatRequest, origin: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for m in req.messages.iter().filter(|m| m.role == Role::Assistant) {
        for c in &m.tool_calls {
            map.insert(c.id.clone(), outgoing_call_id(m, origin, &c.id));
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_are_deterministic_and_valid() {
        let a = canonical_id("", 3, 0, "web_search", "{\"q\":1}");
        assert_eq!(a, canonical_id("", 3, 0, "web_search", "{\"q\":1}"));
        assert_ne!(a, canonical_id("", 3, 1, "web_search", "{\"q\":1}"));
        assert!(a.len() <= 40 && a.starts_with("call_"));
        assert_eq!(canonical_id("toolu_01A", 0, 0, "x", "{}"), "toolu_01A");
        let long = "x".repeat(64);
        assert_ne!(canonical_id(&long, 0, 0, "x", "{}"), long);
        assert_ne!(canonical_id("call:1/2", 0, 0, "x", "{}"), "call:1/2");
    }

    #[test]
    fn bad_arguments_are_reported_not_crashed_on() {
        let tools = vec![ToolDef {
            name: "fs_read_file".into(),
            description: String::new(),
            parameters_json: "{}".into(),
        }];
        assert_eq!(
            validate_args("fs_read_file", "{\"path\":\"a\"}", &tools),
            ""
        );
        let e = validate_args("fs_read_file", "{\"path\": ", &tools);
        assert!(e.contains("not valid JSON") && e.contains("line 1"), "{e}");
        assert!(validate_args("fs_read_file", "[1]", &tools).contains("JSON object"));
        assert!(validate_args("nope", "{}", &tools).contains("unknown tool 'nope'"));
    }
}
