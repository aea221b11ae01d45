//! A message's `msg_type` and `content` (a JSON object sent as a *string*,
//! as the platform wants it), checked against the platform's size limits
//! before anything is sent.

use serde_json::{Value, json};

/// Bytes of content a text message may have; a post or a card.
pub const TEXT_LIMIT: usize = 150 * 1024;
pub const RICH_LIMIT: usize = 30 * 1024;

/// `msg_type` and the content string of a message.
pub fn build(
    msg_type: &str,
    text: Option<&str>,
    title: Option<&str>,
    card: Option<&Value>,
) -> Result<(&'static str, String), String> {
    let (kind, content, limit) = match msg_type {
        "text" => {
            let t = text
                .filter(|t| !t.trim().is_empty())
                .ok_or("a text message needs 'text'")?;
            ("text", json!({ "text": t }), TEXT_LIMIT)
        }
        "post" => {
            let t = text
                .filter(|t| !t.trim().is_empty())
                .ok_or("a post needs 'text'")?;
            // One paragraph per line, as the platform lays out rich text.
            let paragraphs: Vec<Value> = t
                .lines()
                .map(|l| json!([{ "tag": "text", "text": l }]))
                .collect();
            (
                "post",
                json!({"zh_cn": {"title": title.unwrap_or(""), "content": paragraphs}}),
                RICH_LIMIT,
            )
        }
        "interactive" => {
            let c = card.filter(|c| c.is_object()).ok_or(
                "an interactive message needs 'card', a card object (from the card builder)",
            )?;
            ("interactive", c.clone(), RICH_LIMIT)
        }
        other => {
            return Err(format!(
                "msg_type '{other}' is not text, post or interactive"
            ));
        }
    };
    let s = content.to_string();
    if s.len() > limit {
        return Err(format!(
            "the {kind} message is {} bytes; Feishu takes at most {limit}",
            s.len()
        ));
    }
    Ok((kind, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_built_and_checked() {
        let (k, c) = build("text", Some("hi"), None, None).unwrap();
        assert_eq!((k, c.as_str()), ("text", r#"{"text":"hi"}"#));
        let (k, c) = build("post", Some("a\nb"), Some("T"), None).unwrap();
        assert_eq!(k, "post");
        let v: Value = serde_json::from_str(&c).unwrap();
        assert_eq!(v["zh_cn"]["content"][1][0]["text"], "b");
        assert!(build("interactive", None, None, Some(&json!("x"))).is_err());
        assert!(
            build("image", Some("x"), None, None)
                .unwrap_err()
                .contains("not text, post")
        );
        let big = "x".repeat(RICH_LIMIT);
        assert!(
            build("post", Some(&big), None, None)
                .unwrap_err()
                .contains("at most 30720")
        );
        assert!(build("text", Some(&big), None, None).is_ok());
        assert!(build("text", Some(" "), None, None).is_err());
    }
}
