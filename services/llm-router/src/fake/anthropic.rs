//! Anthropic Messages answers.

use super::*;

pub fn text(text: &str) -> Reply {
    Reply::json(
        200,
        json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-fake",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 6}
        }),
    )
}

pub fn tool_use(text: Option<&str>, calls: &[(&str, &str, Value)]) -> Reply {
    let mut content = Vec::new();
    if let Some(t) = text {
        content.push(json!({"type": "text", "text": t}));
    }
    for (id, name, input) in calls {
        content.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
    }
    Reply::json(
        200,
        json!({
            "id": "msg_fake", "type": "message", "role": "assistant", "model": "claude-fake",
            "content": content, "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 30, "output_tokens": 10}
        }),
    )
}

fn start() -> Vec<Event> {
    vec![(
        Some("message_start"),
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant",
            "model": "claude-fake", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}})
        .to_string(),
    )]
}

fn end(events: &mut Vec<Event>, stop: &str) {
    events.push((
        Some("message_delta"),
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": 6}}).to_string(),
    ));
    events.push((
        Some("message_stop"),
        json!({"type": "message_stop"}).to_string(),
    ));
}

type Event = (Option<&'static str>, String);

/// One content block: its start, the events inside it, its stop.
fn block(ev: &mut Vec<Event>, index: usize, content_block: Value, inner: Vec<Event>) {
    ev.push((
        Some("content_block_start"),
        json!({"type": "content_block_start", "index": index, "content_block": content_block})
            .to_string(),
    ));
    ev.extend(inner);
    ev.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": index}).to_string(),
    ));
}

fn delta(index: usize, delta: Value) -> Event {
    (
        Some("content_block_delta"),
        json!({"type": "content_block_delta", "index": index, "delta": delta}).to_string(),
    )
}

/// A text block; `before` goes ahead of the first delta (a ping).
fn text_block(ev: &mut Vec<Event>, index: usize, before: Option<Event>, pieces: &[&str]) {
    let inner = before
        .into_iter()
        .chain(
            pieces
                .iter()
                .map(|p| delta(index, json!({"type": "text_delta", "text": p}))),
        )
        .collect();
    block(ev, index, json!({"type": "text", "text": ""}), inner);
}

pub fn stream_text(pieces: &[&str]) -> Reply {
    let mut ev = start();
    let ping = (Some("ping"), json!({"type": "ping"}).to_string());
    text_block(&mut ev, 0, Some(ping), pieces);
    end(&mut ev, "end_turn");
    Reply::sse(&ev)
}

/// Text, then one tool_use block whose input JSON arrives in `parts` pieces.
pub fn stream_tool_use(text: &str, id: &str, name: &str, input: &str, parts: usize) -> Reply {
    let mut ev = start();
    text_block(&mut ev, 0, None, &[text]);
    let chars: Vec<char> = input.chars().collect();
    let step = chars.len().div_ceil(parts.max(1)).max(1);
    let inner = chars
        .chunks(step)
        .map(|piece| {
            let part: String = piece.iter().collect();
            delta(1, json!({"type": "input_json_delta", "partial_json": part}))
        })
        .collect();
    block(
        &mut ev,
        1,
        json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
        inner,
    );
    end(&mut ev, "tool_use");
    Reply::sse(&ev)
}

/// A 200 stream that reports `overloaded_error` in band.
pub fn stream_overloaded() -> Reply {
    let mut ev = start();
    ev.push((
        Some("error"),
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
            .to_string(),
    ));
    Reply::sse(&ev)
}

pub fn overloaded_529() -> Reply {
    Reply::json(
        529,
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
}
