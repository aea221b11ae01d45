//! OpenAI Chat Completions: OpenAI, NVIDIA NIM, DeepSeek, Groq, OpenRouter,
//! xAI, Mistral, llama.cpp's server, Ollama's `/v1`, any compatible URL.

use oi_ipc_schema::llm::{ChatRequest, Role};
use serde_json::{Value, json};

use super::{
    Assembler, Embeddings, HttpCall, Step, Target, event_json, extra, json_vector, original_ids,
};
use crate::classify::{Class, Failure, classify_in_band};
use crate::stream::SseEvent;

pub fn build(t: &Target<'_>, req: &ChatRequest, stream: bool) -> HttpCall {
    let ids = original_ids(req, t.alias);
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let v = match m.role {
            Role::System => json!({"role": "system", "content": m.content}),
            Role::User => json!({"role": "user", "content": m.content}),
            Role::Tool => json!({
                "role": "tool",
                "tool_call_id": ids.get(&m.tool_call_id).unwrap_or(&m.tool_call_id),
                "content": m.content,
            }),
            Role::Assistant => {
                let mut v = json!({"role": "assistant", "content": m.content});
                if !m.tool_calls.is_empty() {
                    v["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            json!({
                                "id": ids.get(&c.id).unwrap_or(&c.id),
                                "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments},
                            })
                        })
                        .collect();
                    if m.content.is_empty() {
                        v["content"] = Value::Null;
                    }
                }
                if let Some(r) = extra(m, t.alias, "reasoning_content")
                    .and_then(|r| serde_json::from_str::<Value>(r).ok())
                {
                    v["reasoning_content"] = r;
                }
                v
            }
        };
        messages.push(v);
    }
    let mut body = json!({"model": t.model, "messages": messages, "stream": stream});
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    let max = if req.max_tokens > 0 {
        req.max_tokens
    } else {
        t.max_tokens
    };
    if max > 0 {
        // OpenAI itself wants the newer name (its reasoning models refuse
        // the old one); every compatible server takes `max_tokens`.
        let key = if t.base_url.contains("api.openai.com") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[key] = json!(max);
    }
    if req.temperature >= 0.0 {
        body["temperature"] = json!(req.temperature);
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|tool| {
                json!({"type": "function", "function": {
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": serde_json::from_str::<Value>(&tool.parameters_json)
                        .unwrap_or_else(|_| json!({"type": "object"})),
                }})
            })
            .collect();
    }
    HttpCall {
        url: format!("{}/chat/completions", t.base_url.trim_end_matches('/')),
        headers: headers(t),
        body,
    }
}

fn headers(t: &Target<'_>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(key) = t.key {
        headers.push(("authorization", format!("Bearer {key}")));
    }
    headers
}

/// `POST {base}/embeddings` (OpenAI, Voyage AI, Ollama's `/v1`, llama.cpp's
/// server with `--embeddings`, vLLM, ...).
pub fn build_embeddings(t: &Target<'_>, texts: &[String], dimensions: u32) -> HttpCall {
    let mut body = json!({"model": t.model, "input": texts, "encoding_format": "float"});
    if dimensions > 0 {
        body["dimensions"] = json!(dimensions);
    }
    HttpCall {
        url: format!("{}/embeddings", t.base_url.trim_end_matches('/')),
        headers: headers(t),
        body,
    }
}

/// `{"data": [{"index": i, "embedding": [..]}], "usage": {"prompt_tokens"}}`,
/// put back in input order by `index`.
pub fn parse_embeddings(body: &Value) -> Result<Embeddings, Failure> {
    if body.get("error").is_some_and(|e| !e.is_null()) {
        return Err(classify_in_band(crate::classify::error_object(body)));
    }
    let data = body["data"].as_array().ok_or_else(|| {
        Failure::new(Class::Protocol, "the embeddings answer has no 'data' array")
    })?;
    let mut rows: Vec<(u64, Vec<f32>)> = Vec::with_capacity(data.len());
    for (i, d) in data.iter().enumerate() {
        let v = json_vector(&d["embedding"]).ok_or_else(|| {
            Failure::new(
                Class::Protocol,
                format!("data[{i}].embedding is not an array of numbers"),
            )
        })?;
        rows.push((d["index"].as_u64().unwrap_or(i as u64), v));
    }
    rows.sort_by_key(|(i, _)| *i);
    Ok(Embeddings {
        vectors: rows.into_iter().map(|(_, v)| v).collect(),
        prompt_tokens: body["usage"]["prompt_tokens"]
            .as_u64()
            .or_else(|| body["usage"]["total_tokens"].as_u64())
            .unwrap_or(0)
            .min(u32::MAX as u64) as u32,
    })
}

fn finish_reason(r: &str) -> &str {
    match r {
        "tool_calls" | "function_call" => "tool_calls",
        "length" => "length",
        "content_filter" => "content_filter",
        _ => "stop",
    }
}

fn usage(v: &Value, asm: &mut Assembler) {
    if let Some(p) = v["prompt_tokens"].as_u64() {
        asm.usage.prompt_tokens = p.min(u32::MAX as u64) as u32;
    }
    if let Some(c) = v["completion_tokens"].as_u64() {
        asm.usage.completion_tokens = c.min(u32::MAX as u64) as u32;
    }
}

pub fn parse_body(body: &Value, asm: &mut Assembler) -> Result<(), Failure> {
    if !body["error"].is_null() {
        return Err(classify_in_band(body));
    }
    let choice = &body["choices"][0];
    if choice.is_null() {
        return Err(Failure::new(Class::Protocol, "the answer has no choices"));
    }
    let msg = &choice["message"];
    asm.push_text(msg["content"].as_str().unwrap_or(""));
    asm.push_reasoning(msg["reasoning_content"].as_str().unwrap_or(""));
    for (i, c) in msg["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        asm.call_delta(
            i as u64,
            c["id"].as_str(),
            c["function"]["name"].as_str(),
            c["function"]["arguments"].as_str().unwrap_or(""),
        );
    }
    asm.finish = finish_reason(choice["finish_reason"].as_str().unwrap_or("stop")).into();
    asm.model = body["model"].as_str().unwrap_or("").into();
    usage(&body["usage"], asm);
    Ok(())
}

pub fn on_event(ev: &SseEvent, asm: &mut Assembler) -> Result<Step, Failure> {
    if ev.data.trim() == "[DONE]" {
        return Ok(Step::Done);
    }
    let v = event_json(ev)?;
    if !v["error"].is_null() {
        return Err(classify_in_band(&v));
    }
    if let Some(m) = v["model"].as_str() {
        asm.model = m.to_string();
    }
    if v["usage"].is_object() {
        usage(&v["usage"], asm);
    }
    let choice = &v["choices"][0];
    let delta = &choice["delta"];
    if let Some(t) = delta["content"].as_str() {
        asm.push_text(t);
    }
    if let Some(r) = delta["reasoning_content"].as_str() {
        asm.push_reasoning(r);
    }
    for (n, c) in delta["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let index = c["index"].as_u64().unwrap_or(n as u64);
        asm.call_delta(
            index,
            c["id"].as_str(),
            c["function"]["name"].as_str(),
            c["function"]["arguments"].as_str().unwrap_or(""),
        );
    }
    if let Some(r) = choice["finish_reason"].as_str() {
        asm.finish = finish_reason(r).into();
    }
    Ok(Step::More)
}
