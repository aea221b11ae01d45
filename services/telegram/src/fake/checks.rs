//! What Telegram refuses in the calls the fake answers: a message's text
//! (its HTML, and its length once that is read), the chat actions, the
//! callback answers (200 characters), the bot's commands, deleting a
//! message that is not there, a reply to a message that is not there, an
//! inline keyboard Telegram would not draw, and a chat edited faster than
//! Telegram allows.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A refusal: the status and Telegram's description.
pub type Refusal = (u16, String, Option<u64>);

fn bad(description: &str) -> Refusal {
    (400, format!("Bad Request: {description}"), None)
}

/// The actions `sendChatAction` accepts.
const ACTIONS: &[&str] = &[
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

pub fn chat_action(params: &Value) -> Result<(), Refusal> {
    if params["chat_id"].as_i64().is_none() {
        return Err(bad("chat_id is empty"));
    }
    match params["action"].as_str() {
        Some(a) if ACTIONS.contains(&a) => Ok(()),
        _ => Err(bad("wrong parameter action in request")),
    }
}

/// `answerCallbackQuery`: an id the fake handed out, and at most 200
/// characters of text.
pub fn callback_answer(params: &Value, issued: &[String]) -> Result<(), Refusal> {
    let id = params["callback_query_id"].as_str().unwrap_or("");
    if !issued.iter().any(|i| i == id) {
        return Err(bad(
            "query is too old and response timeout expired or query ID is invalid",
        ));
    }
    let text = params["text"].as_str().unwrap_or("");
    if text.chars().count() > 200 {
        return Err(bad("MESSAGE_TOO_LONG"));
    }
    Ok(())
}

/// `setMyCommands`: 1–32 characters of `a-z`, `0-9` and `_` per command,
/// a description of 1–256 characters, at most 100 commands.
pub fn commands(params: &Value) -> Result<(), Refusal> {
    let Some(list) = params["commands"].as_array() else {
        return Err(bad("parameter \"commands\" is required"));
    };
    if list.len() > 100 {
        return Err(bad("too many commands"));
    }
    for c in list {
        let name = c["command"].as_str().unwrap_or("");
        let description = c["description"].as_str().unwrap_or("");
        let name_ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok || !(1..=256).contains(&description.chars().count()) {
            return Err(bad("BOT_COMMAND_INVALID"));
        }
    }
    Ok(())
}

/// An `inline_keyboard`: rows of buttons, each with a text and exactly one
/// action; `callback_data` 1–64 bytes.
pub fn reply_markup(markup: Option<&Value>) -> Result<(), Refusal> {
    let Some(m) = markup else {
        return Ok(());
    };
    let Some(rows) = m["inline_keyboard"].as_array() else {
        return Err(bad("can't parse reply keyboard markup JSON object"));
    };
    for row in rows {
        let Some(buttons) = row.as_array() else {
            return Err(bad("field \"inline_keyboard\" must be an Array of Arrays"));
        };
        for b in buttons {
            if b["text"].as_str().is_none_or(str::is_empty) {
                return Err(bad("BUTTON_TEXT_INVALID"));
            }
            let actions = ["url", "callback_data", "switch_inline_query", "pay"]
                .iter()
                .filter(|k| b.get(**k).is_some())
                .count();
            if actions != 1 {
                return Err(bad("BUTTON_TYPE_INVALID"));
            }
            if let Some(d) = b.get("callback_data") {
                let len = d.as_str().map_or(0, str::len);
                if !(1..=64).contains(&len) {
                    return Err(bad("BUTTON_DATA_INVALID"));
                }
            }
        }
    }
    Ok(())
}

/// A reply to a message that does not exist is refused unless the caller
/// allows sending without it.
pub fn reply_to(params: &Value, exists: impl Fn(i64) -> bool) -> Result<(), Refusal> {
    let r = &params["reply_parameters"];
    let Some(id) = r["message_id"].as_i64() else {
        return Ok(());
    };
    if exists(id) || r["allow_sending_without_reply"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err(bad("message to be replied not found"))
    }
}

/// Edits one chat may make within [`EDIT_WINDOW`].
pub const EDITS_PER_WINDOW: usize = 3;
pub const EDIT_WINDOW: Duration = Duration::from_secs(1);

/// A chat's recent edits: one more within the window is a 429, as
/// Telegram answers a bot that edits too fast.
pub fn edit_rate(recent: &mut VecDeque<Instant>, now: Instant) -> Result<(), Refusal> {
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) >= EDIT_WINDOW)
    {
        recent.pop_front();
    }
    if recent.len() >= EDITS_PER_WINDOW {
        return Err((429, "Too Many Requests: retry after 1".into(), Some(1)));
    }
    recent.push_back(now);
    Ok(())
}

/// Checks Telegram HTML; returns the visible text, or the error Telegram
/// gives.
pub fn parse_html(s: &str) -> Result<String, String> {
    const TAGS: &[&str] = &[
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-spoiler",
        "span",
        "tg-emoji",
    ];
    let mut visible = String::new();
    let mut stack: Vec<String> = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < s.len() {
        match bytes[i] {
            b'<' => {
                let Some(end) = s[i..].find('>') else {
                    return Err(format!("Unclosed start tag at byte offset {i}"));
                };
                let inner = &s[i + 1..i + end];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim();
                    match stack.pop() {
                        Some(open) if open == name => {}
                        Some(open) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {i}, expected \"</{open}>\", found \"</{name}>\""
                            ));
                        }
                        None => return Err(format!("Unexpected end tag at byte offset {i}")),
                    }
                } else {
                    let name = inner.split_whitespace().next().unwrap_or("");
                    if !TAGS.contains(&name) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {i}"
                        ));
                    }
                    if name == "a" && !inner.contains("href=\"") {
                        return Err(format!(
                            "Tag \"a\" must have attribute href at byte offset {i}"
                        ));
                    }
                    stack.push(name.to_string());
                }
                i += end + 1;
            }
            b'&' => {
                let Some(end) = s[i..].find(';').filter(|e| *e <= 10) else {
                    return Err(format!("Character entity expected at byte offset {i}"));
                };
                let ent = &s[i + 1..i + end];
                let ch = match ent {
                    "lt" => '<',
                    "gt" => '>',
                    "amp" => '&',
                    "quot" => '"',
                    n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("Unsupported HTML entity at byte offset {i}"))?,
                    n if n.starts_with('#') => n[1..]
                        .parse::<u32>()
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("Unsupported HTML entity at byte offset {i}"))?,
                    _ => {
                        return Err(format!(
                            "Unsupported HTML entity \"&{ent};\" at byte offset {i}"
                        ));
                    }
                };
                visible.push(ch);
                i += end + 1;
            }
            _ => {
                let ch = s[i..].chars().next().unwrap_or(' ');
                visible.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{open}\""
        ));
    }
    Ok(visible)
}

/// The text as Telegram would show it, or the 400 it would give.
pub fn check_text(params: &Value) -> Result<String, String> {
    let text = params["text"].as_str().unwrap_or("");
    let visible = match params["parse_mode"].as_str() {
        None => text.to_string(),
        Some("HTML") => {
            parse_html(text).map_err(|e| format!("Bad Request: can't parse entities: {e}"))?
        }
        Some(other) => {
            return Err(format!(
                "Bad Request: unsupported parse_mode {other} in this fake"
            ));
        }
    };
    if visible.trim().is_empty() {
        return Err("Bad Request: message text is empty".into());
    }
    if visible.encode_utf16().count() > 4096 {
        return Err("Bad Request: message is too long".into());
    }
    Ok(visible)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_telegram_refuses() {
        assert!(chat_action(&json!({"chat_id": 1, "action": "typing"})).is_ok());
        assert!(chat_action(&json!({"chat_id": 1, "action": "thinking"})).is_err());
        let issued = ["cb1".to_string()];
        assert!(
            callback_answer(&json!({"callback_query_id": "cb1", "text": "ok"}), &issued).is_ok()
        );
        assert!(callback_answer(&json!({"callback_query_id": "cb9"}), &issued).is_err());
        let long = "x".repeat(201);
        assert_eq!(
            callback_answer(&json!({"callback_query_id": "cb1", "text": long}), &issued)
                .unwrap_err()
                .1,
            "Bad Request: MESSAGE_TOO_LONG"
        );
        assert!(
            commands(&json!({"commands": [{"command": "model", "description": "pick"}]})).is_ok()
        );
        assert!(
            commands(&json!({"commands": [{"command": "Model", "description": "pick"}]})).is_err()
        );
        let ok = json!({"inline_keyboard": [[{"text": "a", "callback_data": "/model a"}]]});
        assert!(reply_markup(Some(&ok)).is_ok());
        let two =
            json!({"inline_keyboard": [[{"text": "a", "callback_data": "x", "url": "https://x"}]]});
        assert!(reply_markup(Some(&two)).is_err());
        let long = json!({"inline_keyboard": [[{"text": "a", "callback_data": "y".repeat(65)}]]});
        assert!(reply_markup(Some(&long)).is_err());
        let p = json!({"reply_parameters": {"message_id": 5}});
        assert!(reply_to(&p, |_| false).is_err());
        assert!(reply_to(&p, |id| id == 5).is_ok());
        let allowed =
            json!({"reply_parameters": {"message_id": 5, "allow_sending_without_reply": true}});
        assert!(reply_to(&allowed, |_| false).is_ok());
        let t0 = Instant::now();
        let mut recent = VecDeque::new();
        for i in 0..3 {
            assert!(edit_rate(&mut recent, t0 + Duration::from_millis(i * 10)).is_ok());
        }
        assert_eq!(
            edit_rate(&mut recent, t0 + Duration::from_millis(50))
                .unwrap_err()
                .0,
            429
        );
        assert!(edit_rate(&mut recent, t0 + Duration::from_millis(1001)).is_ok());
    }
}
