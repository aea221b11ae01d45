//! Anthropic Messages: `tool_use` / `tool_result` blocks, system prompt at
//! the top level, strictly alternating roles (consecutive tool results are
//! merged into one user message), and errors that can arrive inside a 200
//! stream (`overloaded_error`).

use oi_ipc_schema::llm::{ChatRequest, Role};
use serde_json::{Value, json};

use super::{Assembler, HttpCall, Step, Target, args_object, event_json, extra, original_ids};
use crate::classify::{Class, Failure, classify_in_band};
use crate::stream::SseEvent;

pub const API_VERSION: &str = "2023-06-01";
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub fn build(t: &Target<'_>, req: &ChatRequest, stream: bool) -> HttpCall {
    let ids = original_ids(req, t.alias);
    let id_of = |id: &String| ids.get(id).cloned().unwrap_or_else(|| id.clone());
    let mut system = Vec::new();
    // (role, content blocks); adjacent turns of one role are merged.
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, blocks): (&str, Vec<Value>) = match m.role {
            Role::System => {
                system.push(m.content.as_str());
                continue;
            }
            Role::User => ("user", vec![json!({"type": "text", "text": m.content})]),
            Role::Tool => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": id_of(&m.tool_call_id),
                    "content": m.content,
                })],
            ),
            Role::Assistant => {
                let mut blocks = Vec::new();
                if let Some(thinking) = extra(m, t.alias, "thinking_blocks")
                    .and_then(|v| serde_json::from_str::<Vec<Value>>(v).ok())
                {
                    blocks.extend(thinking);
                }
                if !m.content.is_empty() {
                    blocks.push(json!({"type": "text", "text": m.content}));
                }
                for c in &m.tool_calls {
                    blocks.push(json!({
                        "type": "tool_use",
                        "id": id_of(&c.id),
                        "name": c.name,
                        "input": args_object(&c.arguments),
                    }));
                }
                ("assistant", blocks)
            }
        };
        // Anthropic refuses empty text blocks.
        let blocks: Vec<Value> = blocks
            .into_iter()
            .filter(|b| !(b["type"] == "text" && b["text"].as_str().is_some_and(str::is_empty)))
            .collect();
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, b)) if *r == role => b.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let max = match (req.max_tokens, t.max_tokens) {
        (0, 0) => DEFAULT_MAX_TOKENS,
        (0, m) => m,
        (m, _) => m,
    };
    let mut body = json!({"model": t.model, "max_tokens": max, "messages": messages});
    if stream {
        body["stream"] = json!(true);
    }
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if req.temperature >= 0.0 {
        body["temperature"] = json!(req.temperature.min(1.0));
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": serde_json::from_str::<Value>(&tool.parameters_json)
                        .unwrap_or_else(|_| json!({"type": "object"})),
                })
            })
            .collect();
    }
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("anthropic-version", API_VERSION.to_string()),
    ];
    if let Some(key) = t.key {
        headers.push(("x-api-key", key.to_string()));
    }
    HttpCall {
        url: format!("{}/messages", t.base_url.trim_end_matches('/')),
        headers,
        body,
    }
}

fn stop_reason(r: &str) -> &'static str {
    match r {
        "tool_use" => "tool_calls",
        "max_tokens" => "length",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

fn usage(u: &Value, asm: &mut Assembler) {
    if let Some(i) = u["input_tokens"].as_u64() {
        let cached = u["cache_read_input_tokens"].as_u64().unwrap_or(0)
            + u["cache_creation_input_tokens"].as_u64().unwrap_or(0);
        asm.usage.prompt_tokens = (i + cached).min(u32::MAX as u64) as u32;
    }
    if let Some(o) = u["output_tokens"].as_u64() {
        asm.usage.completion_tokens = o.min(u32::MAX as u64) as u32;
    }
}

pub fn parse_body(body: &Value, asm: &mut Assembler) -> Result<(), Failure> {
    if body["type"] == "error" {
        return Err(classify_in_band(body));
    }
    let content = body["content"]
        .as_array()
        .ok_or_else(|| Failure::new(Class::Protocol, "the answer has no content array"))?;
    let mut thinking = Vec::new();
    for (i, block) in content.iter().enumerate() {
        match block["type"].as_str() {
            Some("text") => asm.push_text(block["text"].as_str().unwrap_or("")),
            Some("tool_use") => asm.call_delta(
                i as u64,
                block["id"].as_str(),
                block["name"].as_str(),
                &block["input"].to_string(),
            ),
            Some("thinking") | Some("redacted_thinking") => thinking.push(block.clone()),
            _ => {}
        }
    }
    if !thinking.is_empty() {
        asm.extras
            .push(("thinking_blocks".into(), Value::Array(thinking).to_string()));
    }
    asm.finish = stop_reason(body["stop_reason"].as_str().unwrap_or("end_turn")).into();
    asm.model = body["model"].as_str().unwrap_or("").into();
    usage(&body["usage"], asm);
    Ok(())
}

pub fn on_event(ev: &SseEvent, asm: &mut Assembler) -> Result<Step, Failure> {
    let v = event_json(ev)?;
    let index = v["index"].as_u64().unwrap_or(0);
    match v["type"].as_str().unwrap_or(ev.event.as_str()) {
        "message_start" => {
            asm.model = v["message"]["model"].as_str().unwrap_or("").into();
            usage(&v["message"]["usage"], asm);
        }
        "content_block_start" => {
            let b = &v["content_block"];
            match b["type"].as_str() {
                Some("text") => asm.push_text(b["text"].as_str().unwrap_or("")),
                Some("tool_use") => asm.call_delta(index, b["id"].as_str(), b["name"].as_str(), ""),
                Some("thinking") | Some("redacted_thinking") => {
                    asm.extras
                        .push((format!("thinking_block:{index}"), b.to_string()));
                }
                _ => {}
            }
        }
        "content_block_delta" => {
            let d = &v["delta"];
            match d["type"].as_str() {
                Some("text_delta") => asm.push_text(d["text"].as_str().unwrap_or("")),
                Some("input_json_delta") => {
                    asm.call_delta(index, None, None, d["partial_json"].as_str().unwrap_or(""))
                }
                Some("thinking_delta") => {
                    append_thinking(asm, index, "thinking", d["thinking"].as_str().unwrap_or(""))
                }
                Some("signature_delta") => append_thinking(
                    asm,
                    index,
                    "signature",
                    d["signature"].as_str().unwrap_or(""),
                ),
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(r) = v["delta"]["stop_reason"].as_str() {
                asm.finish = stop_reason(r).into();
            }
            if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                asm.usage.completion_tokens = o.min(u32::MAX as u64) as u32;
            }
        }
        "message_stop" => {
            collect_thinking(asm);
            return Ok(Step::Done);
        }
        "error" => return Err(classify_in_band(&v)),
        _ => {}
    }
    Ok(Step::More)
}

fn append_thinking(asm: &mut Assembler, index: u64, field: &str, text: &str) {
    let key = format!("thinking_block:{index}");
    if let Some((_, json)) = asm.extras.iter_mut().find(|(k, _)| *k == key)
        && let Ok(mut b) = serde_json::from_str::<Value>(json)
    {
        let cur = b[field].as_str().unwrap_or("").to_string();
        b[field] = Value::String(cur + text);
        *json = b.to_string();
    }
}

/// Streamed thinking blocks become one `thinking_blocks` extra, in order.
fn collect_thinking(asm: &mut Assembler) {
    let (blocks, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut asm.extras)
        .into_iter()
        .partition(|(k, _)| k.starts_with("thinking_block:"));
    asm.extras = rest;
    if !blocks.is_empty() {
        let arr: Vec<Value> = blocks
            .iter()
            .filter_map(|(_, j)| serde_json::from_str(j).ok())
            .collect();
        asm.extras
            .push(("thinking_blocks".into(), Value::Array(arr).to_string()));
    }
}
