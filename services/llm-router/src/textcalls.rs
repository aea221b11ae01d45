//! Tool calls that a model wrote as text instead of as real calls (common
//! with small local models): `<tool_call>{...}</tool_call>` tags, or the
//! whole answer being the call's JSON (bare or in a ```json fence).
//! Only calls to tools that were offered are recovered.

use oi_ipc_schema::llm::ToolDef;
use serde_json::Value;

/// Returns the text with recovered calls removed, and the calls as
/// (name, arguments JSON). Nothing recovered: the text unchanged.
pub fn recover(text: &str, tools: &[ToolDef]) -> (String, Vec<(String, String)>) {
    let offered = |name: &str| tools.iter().any(|t| t.name == name);
    // 1. Tagged calls.
    if text.contains("<tool_call>") {
        let mut rest = String::new();
        let mut calls = Vec::new();
        let mut cursor = text;
        while let Some(start) = cursor.find("<tool_call>") {
            rest.push_str(&cursor[..start]);
            let after = &cursor[start + "<tool_call>".len()..];
            let (inner, next) = match after.find("</tool_call>") {
                Some(end) => (&after[..end], &after[end + "</tool_call>".len()..]),
                None => (after, ""),
            };
            match call_of(inner.trim(), &offered) {
                Some(c) => calls.push(c),
                None => {
                    rest.push_str("<tool_call>");
                    rest.push_str(inner);
                }
            }
            cursor = next;
        }
        rest.push_str(cursor);
        if !calls.is_empty() {
            return (rest.trim().to_string(), calls);
        }
    }
    // 2. The whole answer is the call.
    let trimmed = text.trim();
    let body = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|s| s.strip_suffix("```"))
        .unwrap_or(trimmed)
        .trim();
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        let items: Vec<&Value> = match &v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let calls: Option<Vec<_>> = items
            .iter()
            .map(|item| call_of_value(item, &offered))
            .collect();
        if let Some(calls) = calls.filter(|c| !c.is_empty()) {
            return (String::new(), calls);
        }
    }
    (text.to_string(), Vec::new())
}

fn call_of(json: &str, offered: &impl Fn(&str) -> bool) -> Option<(String, String)> {
    call_of_value(&serde_json::from_str::<Value>(json).ok()?, offered)
}

fn call_of_value(v: &Value, offered: &impl Fn(&str) -> bool) -> Option<(String, String)> {
    let v = if v["function"].is_object() {
        &v["function"]
    } else {
        v
    };
    let name = v["name"].as_str()?;
    if !offered(name) {
        return None;
    }
    let args = match v.get("arguments").or_else(|| v.get("parameters")) {
        Some(Value::String(s)) => s.clone(),
        Some(a) => a.to_string(),
        None => "{}".to_string(),
    };
    Some((name.to_string(), args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools() -> Vec<ToolDef> {
        ["web_search", "fs_read_file"]
            .iter()
            .map(|n| ToolDef {
                name: n.to_string(),
                description: String::new(),
                parameters_json: "{}".into(),
            })
            .collect()
    }

    #[test]
    fn tagged_calls() {
        let (rest, calls) = recover(
            "Let me look.\n<tool_call>\n{\"name\": \"web_search\", \"arguments\": {\"query\": \"rust\"}}\n</tool_call>\n<tool_call>{\"name\":\"fs_read_file\",\"arguments\":{\"path\":\"a.md\"}}</tool_call>",
            &tools(),
        );
        assert_eq!(rest, "Let me look.");
        assert_eq!(
            calls,
            vec![
                ("web_search".into(), "{\"query\":\"rust\"}".into()),
                ("fs_read_file".into(), "{\"path\":\"a.md\"}".into())
            ]
        );
    }

    #[test]
    fn whole_answer_json_fenced_or_bare() {
        for text in [
            "{\"name\": \"web_search\", \"parameters\": {\"query\": \"x\"}}",
            "```json\n{\"name\": \"web_search\", \"arguments\": {\"query\": \"x\"}}\n```",
            "[{\"type\":\"function\",\"function\":{\"name\":\"web_search\",\"arguments\":\"{\\\"query\\\":\\\"x\\\"}\"}}]",
        ] {
            let (rest, calls) = recover(text, &tools());
            assert_eq!(rest, "", "{text}");
            assert_eq!(calls.len(), 1, "{text}");
            assert_eq!(calls[0].0, "web_search");
            let args: Value = serde_json::from_str(&calls[0].1).unwrap();
            assert_eq!(args["query"], "x");
        }
    }

    #[test]
    fn unknown_tools_and_prose_are_left_alone() {
        let (rest, calls) = recover("{\"name\": \"rm_rf\", \"arguments\": {}}", &tools());
        assert!(calls.is_empty());
        assert_eq!(rest, "{\"name\": \"rm_rf\", \"arguments\": {}}");
        let (rest, calls) = recover("The answer is 42.", &tools());
        assert!(calls.is_empty());
        assert_eq!(rest, "The answer is 42.");
    }
}
