//! Gemini generateContent answers.

use super::*;

fn response(parts: Value, finish: Option<&str>) -> Value {
    let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        cand["finishReason"] = json!(f);
    }
    json!({"candidates": [cand],
           "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 5, "totalTokenCount": 14},
           "modelVersion": "gemini-fake"})
}

pub fn text(text: &str) -> Reply {
    Reply::json(200, response(json!([{"text": text}]), Some("STOP")))
}

pub fn function_calls(calls: &[(&str, Value)], signature: Option<&str>) -> Reply {
    let parts: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, args))| {
            let mut p = json!({"functionCall": {"name": name, "args": args}});
            if let (0, Some(sig)) = (i, signature) {
                p["thoughtSignature"] = json!(sig);
            }
            p
        })
        .collect();
    Reply::json(200, response(Value::Array(parts), Some("STOP")))
}

pub fn stream_text(pieces: &[&str]) -> Reply {
    let n = pieces.len();
    let events: Vec<(Option<&str>, String)> = pieces
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let finish = (i + 1 == n).then_some("STOP");
            (None, response(json!([{"text": p}]), finish).to_string())
        })
        .collect();
    Reply::sse(&events)
}

pub fn rate_limited(retry_delay: &str) -> Reply {
    Reply::json(
        429,
        json!({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED",
               "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]}}),
    )
}
