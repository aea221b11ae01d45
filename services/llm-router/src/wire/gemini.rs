//! Gemini `generateContent` / `streamGenerateContent` (SSE with `alt=sse`):
//! `functionCall` / `functionResponse` parts, function responses as
//! objects, tool schemas reduced to the subset Gemini accepts, thought
//! signatures carried back on the calls they came with.

use oi_ipc_schema::llm::{ChatRequest, Role};
use serde_json::{Map, Value, json};

use super::{
    Assembler, Embeddings, HttpCall, Step, Target, args_object, event_json, extra, json_vector,
};
use crate::classify::{Class, Failure, classify_in_band};
use crate::stream::SseEvent;

pub fn build(t: &Target<'_>, req: &ChatRequest, stream: bool) -> HttpCall {
    let mut system = Vec::new();
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for m in &req.messages {
        let (role, parts): (&str, Vec<Value>) = match m.role {
            Role::System => {
                system.push(json!({"text": m.content}));
                continue;
            }
            Role::User => ("user", vec![json!({"text": m.content})]),
            Role::Tool => {
                let response = match serde_json::from_str::<Value>(&m.content) {
                    Ok(v @ Value::Object(_)) => v,
                    Ok(other) => json!({"result": other}),
                    Err(_) => json!({"result": m.content}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": m.name, "response": response}})],
                )
            }
            Role::Assistant => {
                let mut parts = Vec::new();
                if !m.content.is_empty() {
                    parts.push(json!({"text": m.content}));
                }
                for c in &m.tool_calls {
                    let mut p = json!({"functionCall": {"name": c.name, "args": args_object(&c.arguments)}});
                    if let Some(sig) = extra(m, t.alias, &format!("thought_signature:{}", c.id))
                        .and_then(|s| serde_json::from_str::<String>(s).ok())
                    {
                        p["thoughtSignature"] = json!(sig);
                    }
                    parts.push(p);
                }
                ("model", parts)
            }
        };
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((r, p)) if *r == role => p.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let contents: Vec<Value> = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    let mut body = json!({"contents": contents});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": system});
    }
    let mut gen_cfg = Map::new();
    let max = if req.max_tokens > 0 {
        req.max_tokens
    } else {
        t.max_tokens
    };
    if max > 0 {
        gen_cfg.insert("maxOutputTokens".into(), json!(max));
    }
    if req.temperature >= 0.0 {
        gen_cfg.insert("temperature".into(), json!(req.temperature));
    }
    if !gen_cfg.is_empty() {
        body["generationConfig"] = Value::Object(gen_cfg);
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|tool| {
                let schema = serde_json::from_str::<Value>(&tool.parameters_json)
                    .unwrap_or_else(|_| json!({"type": "object"}));
                json!({"name": tool.name, "description": tool.description, "parameters": reduce_schema(&schema)})
            })
            .collect();
        body["tools"] = json!([{"functionDeclarations": decls}]);
    }
    let headers = headers(t);
    let base = t.base_url.trim_end_matches('/');
    let url = if stream {
        format!("{base}/models/{}:streamGenerateContent?alt=sse", t.model)
    } else {
        format!("{base}/models/{}:generateContent", t.model)
    };
    HttpCall { url, headers, body }
}

fn headers(t: &Target<'_>) -> Vec<(&'static str, String)> {
    let mut headers = vec![("content-type", "application/json".to_string())];
    if let Some(key) = t.key {
        headers.push(("x-goog-api-key", key.to_string()));
    }
    headers
}

/// `POST {base}/models/{model}:batchEmbedContents`, one request per text.
pub fn build_embeddings(t: &Target<'_>, texts: &[String], dimensions: u32) -> HttpCall {
    let model = format!("models/{}", t.model);
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut r = json!({"model": model, "content": {"parts": [{"text": text}]}});
            if dimensions > 0 {
                r["outputDimensionality"] = json!(dimensions);
            }
            r
        })
        .collect();
    HttpCall {
        url: format!(
            "{}/models/{}:batchEmbedContents",
            t.base_url.trim_end_matches('/'),
            t.model
        ),
        headers: headers(t),
        body: json!({"requests": requests}),
    }
}

/// `{"embeddings": [{"values": [..]}]}`, in request order. Gemini reports
/// no token count for embeddings.
pub fn parse_embeddings(body: &Value) -> Result<Embeddings, Failure> {
    if body.get("error").is_some_and(|e| !e.is_null()) {
        return Err(classify_in_band(crate::classify::error_object(body)));
    }
    let list = body["embeddings"]
        .as_array()
        .ok_or_else(|| Failure::new(Class::Protocol, "the answer has no 'embeddings' array"))?;
    let vectors = list
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json_vector(&e["values"]).ok_or_else(|| {
                Failure::new(
                    Class::Protocol,
                    format!("embeddings[{i}].values is not an array of numbers"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(Embeddings {
        vectors,
        prompt_tokens: 0,
    })
}

/// Keeps only the JSON-Schema keywords Gemini's function declarations
/// accept; `"type": ["string", "null"]` becomes `nullable`.
pub fn reduce_schema(schema: &Value) -> Value {
    const KEEP: &[&str] = &[
        "type",
        "format",
        "description",
        "nullable",
        "enum",
        "properties",
        "required",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "anyOf",
        "title",
    ];
    let Value::Object(obj) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if !KEEP.contains(&k.as_str()) {
            continue;
        }
        let v = match (k.as_str(), v) {
            ("type", Value::Array(types)) => {
                let non_null: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                if non_null.len() < types.len() {
                    out.insert("nullable".into(), json!(true));
                }
                non_null
                    .first()
                    .map(|t| (*t).clone())
                    .unwrap_or(json!("string"))
            }
            ("properties", Value::Object(props)) => Value::Object(
                props
                    .iter()
                    .map(|(name, s)| (name.clone(), reduce_schema(s)))
                    .collect(),
            ),
            ("items", s) => reduce_schema(s),
            ("anyOf", Value::Array(alts)) => Value::Array(alts.iter().map(reduce_schema).collect()),
            // Gemini takes enum values as strings only.
            ("enum", Value::Array(vals)) => Value::Array(
                vals.iter()
                    .map(|x| match x {
                        Value::String(_) => x.clone(),
                        other => Value::String(other.to_string()),
                    })
                    .collect(),
            ),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    Value::Object(out)
}

fn finish_reason(r: &str) -> &'static str {
    match r {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" => "content_filter",
        _ => "stop",
    }
}

/// Feeds one response object (a whole answer or one stream chunk); true
/// when it carried a finish reason.
fn feed(v: &Value, asm: &mut Assembler) -> Result<bool, Failure> {
    if !v["error"].is_null() {
        return Err(classify_in_band(v));
    }
    if let Some(reason) = v["promptFeedback"]["blockReason"].as_str() {
        return Err(Failure::new(
            Class::ContentPolicy,
            format!("the prompt was blocked ({reason})"),
        ));
    }
    if let Some(m) = v["modelVersion"].as_str() {
        asm.model = m.to_string();
    }
    let u = &v["usageMetadata"];
    if let Some(p) = u["promptTokenCount"].as_u64() {
        asm.usage.prompt_tokens = p.min(u32::MAX as u64) as u32;
    }
    if let Some(c) = u["candidatesTokenCount"].as_u64() {
        let thoughts = u["thoughtsTokenCount"].as_u64().unwrap_or(0);
        asm.usage.completion_tokens = (c + thoughts).min(u32::MAX as u64) as u32;
    }
    let cand = &v["candidates"][0];
    for part in cand["content"]["parts"].as_array().into_iter().flatten() {
        if part["thought"] == true {
            asm.push_reasoning(part["text"].as_str().unwrap_or(""));
        } else if let Some(t) = part["text"].as_str() {
            asm.push_text(t);
        } else if let Some(fc) = part.get("functionCall") {
            let index = asm.call_count();
            asm.call_delta(
                index,
                fc["id"].as_str(),
                fc["name"].as_str(),
                &fc["args"].to_string(),
            );
            if let Some(sig) = part["thoughtSignature"].as_str() {
                asm.call_signature(index, sig);
            }
        }
    }
    match cand["finishReason"].as_str() {
        Some(r) => {
            asm.finish = finish_reason(r).into();
            Ok(true)
        }
        None => Ok(false),
    }
}

pub fn parse_body(body: &Value, asm: &mut Assembler) -> Result<(), Failure> {
    if body["candidates"].is_null() && body["error"].is_null() && body["promptFeedback"].is_null() {
        return Err(Failure::new(
            Class::Protocol,
            "the answer has no candidates",
        ));
    }
    feed(body, asm).map(drop)
}

pub fn on_event(ev: &SseEvent, asm: &mut Assembler) -> Result<Step, Failure> {
    let v = event_json(ev)?;
    // Gemini has no terminator event: the chunk with a finish reason ends it.
    Ok(if feed(&v, asm)? {
        Step::Done
    } else {
        Step::More
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_is_reduced_to_gemini_subset() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "required": ["path"],
            "properties": {
                "path": {"type": "string", "pattern": "^/", "default": "/"},
                "limit": {"type": ["integer", "null"], "minimum": 1},
                "mode": {"enum": [1, "two"]},
                "tags": {"type": "array", "items": {"type": "string", "examples": ["a"]}}
            }
        });
        let r = reduce_schema(&s);
        assert_eq!(
            r,
            json!({
                "type": "object",
                "required": ["path"],
                "properties": {
                    "path": {"type": "string"},
                    "limit": {"type": "integer", "nullable": true, "minimum": 1},
                    "mode": {"enum": ["1", "two"]},
                    "tags": {"type": "array", "items": {"type": "string"}}
                }
            })
        );
    }
}
