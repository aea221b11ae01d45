//! What a real provider refuses, the fake refuses too, with the status the
//! provider would send: a wrong method or path, a body that is not JSON, a
//! missing required field, a missing or wrong key (when the test set one),
//! and a scripted answer whose form (a stream or one JSON body) is not what
//! the request asked for. So a test passes only when the router sent what
//! the provider needs.

use serde_json::{Value, json};

use super::Reply;

/// The wire format a request was sent in, from its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Wire {
    pub fn of(path: &str) -> Option<Wire> {
        let path = path.split('?').next().unwrap_or(path);
        if path.ends_with("/chat/completions") {
            Some(Wire::OpenAi)
        } else if path.ends_with("/messages") {
            Some(Wire::Anthropic)
        } else if path.contains(":generateContent") || path.contains(":streamGenerateContent") {
            Some(Wire::Gemini)
        } else {
            None
        }
    }
}

fn refuse(status: u16, message: String) -> Reply {
    Reply::json(
        status,
        json!({"error": {"message": format!("fake provider: {message}"), "type": "invalid_request_error"}}),
    )
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A required field and the check of its type.
type Field = (&'static str, fn(&Value) -> bool);

/// Checks a chat request (its body as parsed, or why it would not parse);
/// `Ok` says whether it asked for a stream, `Err` is the provider's
/// refusal.
pub fn chat_request(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Result<&Value, &serde_json::Error>,
    key: Option<&str>,
) -> Result<bool, Reply> {
    if method != "POST" {
        return Err(refuse(405, format!("{method} {path}: only POST is served")));
    }
    let Some(wire) = Wire::of(path) else {
        return Err(refuse(404, format!("no endpoint {path}")));
    };
    if let Some(key) = key {
        let given = match wire {
            Wire::OpenAi => header(headers, "authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string),
            Wire::Anthropic => header(headers, "x-api-key").map(str::to_string),
            Wire::Gemini => header(headers, "x-goog-api-key")
                .map(str::to_string)
                .or_else(|| {
                    path.split_once("key=")
                        .map(|(_, k)| k.split('&').next().unwrap_or(k).to_string())
                }),
        };
        if given.as_deref() != Some(key) {
            return Err(refuse(
                401,
                format!("{wire:?}: the API key is missing or wrong"),
            ));
        }
    }
    let body = body.map_err(|e| refuse(400, format!("the body is not JSON: {e}")))?;
    let Some(obj) = body.as_object() else {
        return Err(refuse(400, "the body is not a JSON object".into()));
    };
    let need: &[Field] = match wire {
        Wire::OpenAi => &[("model", Value::is_string), ("messages", Value::is_array)],
        Wire::Anthropic => &[
            ("model", Value::is_string),
            ("messages", Value::is_array),
            ("max_tokens", Value::is_u64),
        ],
        Wire::Gemini => &[("contents", Value::is_array)],
    };
    for (field, ok) in need {
        match obj.get(*field) {
            Some(v) if ok(v) => {}
            Some(_) => return Err(refuse(400, format!("'{field}' has the wrong type"))),
            None => return Err(refuse(400, format!("'{field}' is required"))),
        }
    }
    if wire == Wire::Anthropic && header(headers, "anthropic-version").is_none() {
        return Err(refuse(
            400,
            "the anthropic-version header is required".into(),
        ));
    }
    Ok(match wire {
        Wire::Gemini => path.contains(":streamGenerateContent"),
        _ => obj.get("stream") == Some(&Value::Bool(true)),
    })
}

/// A scripted success must have the form the request asked for: a stream
/// for `stream`, one JSON body otherwise. Errors (any status but 200) and
/// stalls are the same either way.
pub fn reply_form(stream: bool, reply: &Reply) -> Result<(), Reply> {
    let streamed = match reply {
        Reply::Stream { .. } => true,
        Reply::Http { status: 200, .. } => false,
        Reply::Http { .. } | Reply::Stall | Reply::Either { .. } => return Ok(()),
    };
    match (stream, streamed) {
        (true, false) => Err(refuse(
            400,
            "the request asked for a stream, and the script answers with one body".into(),
        )),
        (false, true) => Err(refuse(
            400,
            "the request did not ask for a stream, and the script streams".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The check of a raw body, as the server parses it.
    fn check(
        method: &str,
        path: &str,
        headers: &[(String, String)],
        raw: &[u8],
        key: Option<&str>,
    ) -> Result<bool, Reply> {
        let parsed: Result<Value, serde_json::Error> = serde_json::from_slice(raw);
        chat_request(method, path, headers, parsed.as_ref(), key)
    }

    fn status(r: Result<bool, Reply>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(Reply::Http { status, .. }) => status,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_a_provider_refuses_the_fake_refuses() {
        let ok = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
        let p = "/v1/chat/completions";
        assert_eq!(status(check("POST", p, &[], ok, None)), 200);
        assert_eq!(status(check("GET", p, &[], ok, None)), 405);
        assert_eq!(status(check("POST", "/v1/chat", &[], ok, None)), 404);
        assert_eq!(status(check("POST", p, &[], b"{nope", None)), 400);
        assert_eq!(
            status(check("POST", p, &[], br#"{"messages":[]}"#, None)),
            400
        );
        assert_eq!(status(check("POST", p, &[], ok, Some("k1"))), 401);
        let auth = h(&[("Authorization", "Bearer k1")]);
        assert_eq!(status(check("POST", p, &auth, ok, Some("k1"))), 200);
        // Anthropic needs max_tokens and its version header.
        let a = "/v1/messages";
        let v = h(&[("anthropic-version", "2023-06-01")]);
        assert_eq!(status(check("POST", a, &v, ok, None)), 400);
        let with_max = br#"{"model":"m","messages":[],"max_tokens":5}"#;
        assert_eq!(status(check("POST", a, &v, with_max, None)), 200);
        assert_eq!(status(check("POST", a, &[], with_max, None)), 400);
        // The stream flag, from the body or (Gemini) the path.
        let s = br#"{"model":"m","messages":[],"stream":true}"#;
        assert!(matches!(check("POST", p, &[], s, None), Ok(true)));
        assert!(matches!(check("POST", p, &[], ok, None), Ok(false)));
        let g = "/v1beta/models/x:streamGenerateContent?alt=sse";
        assert_eq!(Wire::of(g), Some(Wire::Gemini));
        assert!(matches!(
            check("POST", g, &[], br#"{"contents":[]}"#, None),
            Ok(true)
        ));
    }

    #[test]
    fn a_scripted_answer_must_have_the_form_asked_for() {
        let body = Reply::json(200, json!({}));
        let stream = Reply::sse(&[(None, "{}".into())]);
        assert!(reply_form(false, &body).is_ok());
        assert!(reply_form(true, &stream).is_ok());
        assert!(reply_form(true, &body).is_err());
        assert!(reply_form(false, &stream).is_err());
        // Errors read the same to a streaming request.
        assert!(reply_form(true, &Reply::json(429, json!({}))).is_ok());
    }
}
