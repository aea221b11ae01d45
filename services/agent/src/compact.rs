//! Keeping the conversation within the model's context window.
//!
//! The prompt is: the system prompt, the chat's history, the user's
//! current request (the *anchor*), then the steps taken for it. A step is
//! an assistant message that called tools together with the tool results
//! that answer it; it is dropped whole, never split, because every
//! provider refuses a tool result without its call (and a call without
//! its result). History goes first, then the oldest steps; the newest step
//! always stays. Each dropped step leaves one line of summary.

use oi_ipc_schema::llm::{ChatMessage, Role, ToolDef};

use crate::prompt;

/// One dropped step, summed up in a line.
fn summarize(step: &[ChatMessage]) -> String {
    let Some((call, results)) = step.split_first() else {
        return String::new();
    };
    let mut parts = Vec::new();
    for c in &call.tool_calls {
        let outcome = results
            .iter()
            .find(|r| r.tool_call_id == c.id)
            .map(|r| {
                // The body of the <tool_result> block, on one line.
                let body = r.content.lines().skip(1).collect::<Vec<_>>().join(" ");
                let status = if r.content.contains("status=\"error\"") {
                    "failed: "
                } else {
                    ""
                };
                format!(
                    "{status}{}",
                    oi_kernel::audit::cut(body.trim_end_matches("</tool_result>").trim(), 200)
                )
            })
            .unwrap_or_else(|| "no result".into());
        parts.push(format!(
            "{}({}) -> {outcome}",
            c.name,
            oi_kernel::audit::cut(&c.arguments, 120)
        ));
    }
    if !call.content.trim().is_empty() {
        parts.insert(0, oi_kernel::audit::cut(call.content.trim(), 200));
    }
    format!("- {}", parts.join("; "))
}

/// The end of the step starting at `start` (an assistant message): the
/// index after its tool results.
fn step_end(messages: &[ChatMessage], start: usize) -> usize {
    let mut end = start + 1;
    while end < messages.len() && messages[end].role == Role::Tool {
        end += 1;
    }
    end
}

/// Drops history, then whole steps, oldest first, until the estimate is at
/// most `target` or only the newest step is left. Returns the new anchor
/// index and a line for each dropped step.
pub fn compact(
    messages: &mut Vec<ChatMessage>,
    mut anchor: usize,
    tools: &[ToolDef],
    target: u64,
) -> (usize, Vec<String>) {
    let mut notes = Vec::new();
    while prompt::prompt_tokens(messages, tools) > target {
        if anchor > 1 {
            messages.remove(1);
            anchor -= 1;
            continue;
        }
        let first = anchor + 1;
        if first >= messages.len() {
            break;
        }
        let end = step_end(messages, first);
        if end >= messages.len() {
            break; // the newest step stays
        }
        let step: Vec<ChatMessage> = messages.drain(first..end).collect();
        notes.push(summarize(&step));
    }
    (anchor, notes)
}

/// The anchor's text with the dropped steps' summary appended.
pub fn with_notes(request: &str, notes: &[String]) -> String {
    if notes.is_empty() {
        return request.to_string();
    }
    // The newest 30 lines; older ones are not worth their space.
    let skip = notes.len().saturating_sub(30);
    format!(
        "{request}\n\n[Earlier steps for this request, compacted to fit the context window:\n{}]",
        notes[skip..].join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_ipc_schema::llm::ToolCall;
    use proptest::prelude::*;

    fn step(n: usize, calls: usize, size: usize) -> Vec<ChatMessage> {
        let mut a = ChatMessage::assistant("");
        for k in 0..calls {
            a.tool_calls.push(ToolCall {
                id: format!("c{n}-{k}"),
                name: "fs_read_file".into(),
                arguments: format!("{{\"path\":\"f{n}\"}}"),
                error: String::new(),
            });
        }
        let mut out = vec![a];
        for k in 0..calls {
            out.push(ChatMessage::tool_result(
                format!("c{n}-{k}"),
                "fs_read_file",
                prompt::tool_result("fs_read_file", "c", &Ok("x".repeat(size)), 100_000),
            ));
        }
        out
    }

    fn conversation(history: usize, steps: &[(usize, usize)]) -> (Vec<ChatMessage>, usize) {
        let mut m = vec![ChatMessage::system("system")];
        for i in 0..history {
            m.push(if i % 2 == 0 {
                ChatMessage::user(format!("earlier question {i}"))
            } else {
                ChatMessage::assistant(format!("earlier answer {i}"))
            });
        }
        let anchor = m.len();
        m.push(ChatMessage::user("the request"));
        for (n, (calls, size)) in steps.iter().enumerate() {
            m.extend(step(n, *calls, *size));
        }
        (m, anchor)
    }

    /// Every tool result follows the assistant message that made its call,
    /// and every call has its result.
    fn pairs_intact(m: &[ChatMessage]) -> bool {
        let mut i = 0;
        while i < m.len() {
            if m[i].role == Role::Tool {
                return false; // a result not preceded by its call
            }
            if !m[i].tool_calls.is_empty() {
                let end = step_end(m, i);
                let ids: Vec<&str> = m[i + 1..end]
                    .iter()
                    .map(|r| r.tool_call_id.as_str())
                    .collect();
                if m[i]
                    .tool_calls
                    .iter()
                    .any(|c| !ids.contains(&c.id.as_str()))
                    || ids
                        .iter()
                        .any(|id| !m[i].tool_calls.iter().any(|c| c.id == *id))
                {
                    return false;
                }
                i = end;
            } else {
                i += 1;
            }
        }
        true
    }

    #[test]
    fn history_goes_first_then_the_oldest_steps() {
        let (mut m, anchor) = conversation(4, &[(1, 2000), (2, 2000), (1, 2000)]);
        let (anchor, notes) = compact(&mut m, anchor, &[], 1200);
        assert_eq!(anchor, 1, "history dropped");
        assert_eq!(m[1].content, "the request");
        assert_eq!(notes.len(), 2);
        assert!(
            notes[0].starts_with("- fs_read_file({\"path\":\"f0\"}) -> xxxx"),
            "{}",
            notes[0]
        );
        // The newest step is kept even though it alone is over the target.
        assert_eq!(m[2].tool_calls[0].id, "c2-0");
        assert!(pairs_intact(&m));
        let text = with_notes("the request", &notes);
        assert!(text.contains("[Earlier steps for this request, compacted"));
    }

    #[test]
    fn nothing_changes_under_the_target() {
        let (mut m, anchor) = conversation(2, &[(1, 10)]);
        let before = m.clone();
        assert_eq!(compact(&mut m, anchor, &[], 100_000), (anchor, vec![]));
        assert_eq!(m, before);
    }

    proptest! {
        #[test]
        fn compaction_never_separates_a_call_from_its_result(
            history in 0usize..6,
            steps in proptest::collection::vec((1usize..4, 1usize..3000), 1..12),
            target in 50u64..6000,
        ) {
            let (mut m, anchor) = conversation(history, &steps);
            let (anchor, notes) = compact(&mut m, anchor, &[], target);
            prop_assert!(pairs_intact(&m));
            prop_assert_eq!(m[anchor].content.as_str(), "the request");
            prop_assert_eq!(m[0].role, Role::System);
            // The newest step survives; each dropped one left a line.
            let last = steps.len() - 1;
            let newest = m.iter().rev().find(|x| !x.tool_calls.is_empty()).map(|x| x.tool_calls[0].id.clone());
            prop_assert_eq!(newest, Some(format!("c{last}-0")));
            let kept = m.iter().filter(|x| !x.tool_calls.is_empty()).count();
            prop_assert_eq!(kept + notes.len(), steps.len());
            // Either within the target, or nothing more could go.
            prop_assert!(
                prompt::prompt_tokens(&m, &[]) <= target
                    || (anchor == 1 && step_end(&m, anchor + 1) == m.len())
            );
        }
    }
}
