//! OpenAI Chat Completions answers.

use super::*;

pub fn text(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        }),
    )
}

/// `calls`: (id, name, arguments JSON text).
pub fn tool_calls(content: Option<&str>, calls: &[(&str, &str, &str)]) -> Reply {
    let tc: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    Reply::json(
        200,
        json!({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 1, "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "tool_calls": tc}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
        }),
    )
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake-model",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    .to_string()
}

fn tail(events: &mut Vec<(Option<&'static str>, String)>, finish: &str) {
    tail_with(events, finish, (11, 7));
}

fn tail_with(events: &mut Vec<(Option<&'static str>, String)>, finish: &str, usage: (u32, u32)) {
    let (p, c) = usage;
    events.push((None, chunk(json!({}), Some(finish))));
    events.push((
        None,
        json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": "fake-model",
               "choices": [], "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}})
        .to_string(),
    ));
    events.push((None, "[DONE]".into()));
}

/// The model says `text`, in whichever form the request asks for.
pub fn says(text: &str) -> Reply {
    Reply::either(self::text(text), stream_text(&[text]))
}

/// The model calls tools (with `content` beside them), in whichever
/// form the request asks for; the same usage either way.
pub fn calls(content: Option<&str>, calls: &[(&str, &str, &str)]) -> Reply {
    let mut events = vec![(
        None,
        chunk(
            json!({"role": "assistant", "content": content.map(|_| "")}),
            None,
        ),
    )];
    if let Some(c) = content {
        events.push((None, chunk(json!({"content": c}), None)));
    }
    for (i, (id, name, args)) in calls.iter().enumerate() {
        events.push((
            None,
            chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": args}}]}),
                None,
            ),
        ));
    }
    tail_with(&mut events, "tool_calls", (20, 9));
    Reply::either(tool_calls(content, calls), Reply::sse(&events))
}

/// A streamed text answer, one event per piece.
pub fn stream_text(pieces: &[&str]) -> Reply {
    let mut events = vec![(
        None,
        chunk(json!({"role": "assistant", "content": ""}), None),
    )];
    for p in pieces {
        events.push((None, chunk(json!({"content": p}), None)));
    }
    tail(&mut events, "stop");
    Reply::sse(&events)
}

/// Streamed tool calls: each call's arguments split in `parts` pieces;
/// calls interleaved by index when `interleave`.
pub fn stream_tool_calls(calls: &[(&str, &str, &str)], parts: usize) -> Reply {
    let mut events = vec![(
        None,
        chunk(json!({"role": "assistant", "content": null}), None),
    )];
    for (i, (id, name, _)) in calls.iter().enumerate() {
        events.push((
            None,
            chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
            ),
        ));
    }
    for (i, (_, _, args)) in calls.iter().enumerate() {
        let chars: Vec<char> = args.chars().collect();
        let step = chars.len().div_ceil(parts.max(1)).max(1);
        for piece in chars.chunks(step) {
            let s: String = piece.iter().collect();
            events.push((
                None,
                chunk(
                    json!({"tool_calls": [{"index": i, "function": {"arguments": s}}]}),
                    None,
                ),
            ));
        }
    }
    tail(&mut events, "tool_calls");
    Reply::sse(&events)
}
