//! How an intent's progress and result read for a person: one line per
//! tool call and a summary line. Shared by `oictl` and the chat gateways.

use oi_ipc_schema::agent::{IntentResult, ToolCallRecord};
use serde_json::Value;

/// `1204` -> `1,204`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `{"query": "rust async"}` -> `"rust async"`; several fields as
/// `key=value`; cut at 60 characters.
pub fn short_args(arguments: &str) -> String {
    let text = match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(m)) if m.len() == 1 => {
            m.values().next().map(show_value).unwrap_or_default()
        }
        Ok(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", show_value(v)))
            .collect::<Vec<_>>()
            .join(", "),
        _ => arguments.to_string(),
    };
    let text = text.replace('\n', " ");
    match text.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

pub fn tool_line(c: &ToolCallRecord) -> String {
    let mut line = format!(
        "→ {}({}) [{:.1}s]",
        c.name,
        short_args(&c.arguments),
        c.duration_ms as f64 / 1000.0
    );
    if !c.error.is_empty() {
        let first = c.error.lines().next().unwrap_or("");
        line.push_str(&format!(" ✗ {}", short_args(&format!("{first:?}"))));
    }
    line
}

pub fn summary_line(r: &IntentResult) -> String {
    if r.route != "agent" {
        let how = r.route.trim_start_matches("intent-router:");
        return format!("✓ Done — answered by the intent router ({how}), no model");
    }
    let calls = r.tool_calls.len();
    let mut s = format!(
        "✓ Done{} — {} tool call{}, {} tokens, via {}",
        if r.stop == oi_ipc_schema::agent::Stop::TurnLimit {
            " (turn limit reached)"
        } else {
            ""
        },
        calls,
        if calls == 1 { "" } else { "s" },
        thousands(r.prompt_tokens + r.completion_tokens),
        r.provider
    );
    if r.fallbacks > 0 {
        s.push_str(&format!(
            " ({} fallback{})",
            r.fallbacks,
            if r.fallbacks == 1 { "" } else { "s" }
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_and_numbers_read_short() {
        assert_eq!(
            short_args(r#"{"query":"rust async runtime benchmarks"}"#),
            "\"rust async runtime benchmarks\""
        );
        assert_eq!(
            short_args(r#"{"path":"a.md","offset":3}"#),
            "offset=3, path=\"a.md\""
        );
        let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(100));
        assert_eq!(short_args(&long).chars().count(), 61);
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
