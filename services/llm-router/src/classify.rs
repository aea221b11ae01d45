//! What a provider failure means: classified from the status code, the error
//! code in the body and the headers, with the provider's own retry hint.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use serde_json::Value;

/// Failure classes, each with one action (see [`Class::action`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// 429 rate limit.
    RateLimited,
    /// 529, Anthropic `overloaded_error` (also in-band in a 200 stream), 503.
    Overloaded,
    /// 408, 409, 500, 502, 504.
    Server,
    /// Could not connect, or the connection broke before an answer.
    Connect,
    /// No first byte within the time-to-first-token limit, or silence mid-stream.
    Stalled,
    /// The stream broke the protocol: cut without its terminator, bad JSON.
    Protocol,
    /// 401/403: the credential is bad.
    Auth,
    /// Quota or billing exhausted (429 `insufficient_quota`, 402, daily quota).
    Quota,
    /// 404: the model does not exist here.
    NotFound,
    /// The prompt does not fit the model's window.
    ContextOverflow,
    /// The provider refused the content.
    ContentPolicy,
    /// The request itself is wrong (400/422): another provider would refuse it too.
    BadRequest,
    /// Groq's `tool_use_failed`: the model botched a tool call; another may not.
    ToolUseFailed,
}

/// What the router does about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Next deployment at once; cool this one down.
    FailOver,
    /// Next deployment at once; long cooldown on the credential (auth,
    /// billing) or deployment (model not found); a loud log line.
    FailOverLong,
    /// Only to a deployment with a larger context window; no cooldown.
    LargerWindow,
    /// Next deployment, no cooldown (a fluke of this model's output).
    FailOverNoCooldown,
    /// Back to the caller.
    Return,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Class::RateLimited => "rate_limited",
            Class::Overloaded => "overloaded",
            Class::Server => "server_error",
            Class::Connect => "connect_failed",
            Class::Stalled => "stalled",
            Class::Protocol => "protocol_error",
            Class::Auth => "auth",
            Class::Quota => "quota_exhausted",
            Class::NotFound => "model_not_found",
            Class::ContextOverflow => "context_overflow",
            Class::ContentPolicy => "content_policy",
            Class::BadRequest => "bad_request",
            Class::ToolUseFailed => "tool_use_failed",
        }
    }

    pub fn action(self, failover_on_content_policy: bool) -> Action {
        match self {
            Class::RateLimited
            | Class::Overloaded
            | Class::Server
            | Class::Connect
            | Class::Stalled
            | Class::Protocol => Action::FailOver,
            Class::Auth | Class::Quota | Class::NotFound => Action::FailOverLong,
            Class::ContextOverflow => Action::LargerWindow,
            Class::ToolUseFailed => Action::FailOverNoCooldown,
            Class::ContentPolicy if failover_on_content_policy => Action::FailOverNoCooldown,
            Class::ContentPolicy | Class::BadRequest => Action::Return,
        }
    }

    /// Auth and billing failures belong to the credential, not the deployment.
    pub fn is_credential(self) -> bool {
        matches!(self, Class::Auth | Class::Quota)
    }
}

/// A classified failure of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: Class,
    /// HTTP status; 0 when there was none.
    pub status: u16,
    /// The provider's message (never contains our credential: providers
    /// echo at most a masked prefix, and we strip anything key-shaped).
    pub message: String,
    /// The provider's own hint of when to come back.
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(class: Class, message: impl Into<String>) -> Failure {
        Failure {
            class,
            status: 0,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status != 0 {
            write!(
                f,
                "{} (HTTP {}): {}",
                self.class.as_str(),
                self.status,
                self.message
            )
        } else {
            write!(f, "{}: {}", self.class.as_str(), self.message)
        }
    }
}

/// Classifies an HTTP error answer.
pub fn classify_http(status: u16, headers: &HeaderMap, body: &str) -> Failure {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let err = json.as_ref().map(error_object);
    let code = err
        .map(|e| {
            [&e["code"], &e["type"], &e["status"]]
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.to_lowercase()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let message = err
        .and_then(|e| e["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(300).collect());
    let lower = message.to_lowercase();
    let reasons = json.as_ref().map(gemini_reasons).unwrap_or_default();

    let class = if code.contains("insufficient_quota")
        || code.contains("billing")
        || status == 402
        || lower.contains("per day")
        || lower.contains("daily")
        || lower.contains("credit balance")
        || lower.contains("exceeded your current quota")
        || reasons.iter().any(|r| r.contains("PerDay"))
    {
        Class::Quota
    } else if code.contains("context_length")
        || code.contains("exceed_context")
        || lower.contains("context length")
        || lower.contains("context window")
        || lower.contains("maximum context")
        || lower.contains("prompt is too long")
        || lower.contains("exceeds the maximum number of tokens")
        || lower.contains("exceeds the available context")
        || lower.contains("too many tokens")
    {
        Class::ContextOverflow
    } else if code.contains("tool_use_failed") {
        Class::ToolUseFailed
    } else if code.contains("content_policy")
        || code.contains("content_filter")
        || code.contains("safety")
    {
        Class::ContentPolicy
    } else if code.contains("overloaded") {
        Class::Overloaded
    } else if reasons.iter().any(|r| r == "API_KEY_INVALID") {
        Class::Auth
    } else {
        match status {
            401 | 403 => Class::Auth,
            404 => Class::NotFound,
            429 => Class::RateLimited,
            503 | 529 => Class::Overloaded,
            408 | 409 | 500 | 502 | 504 => Class::Server,
            s if s >= 500 => Class::Server,
            _ => Class::BadRequest,
        }
    };
    Failure {
        class,
        status,
        message: redact(&message),
        retry_after: retry_hint(headers, json.as_ref(), SystemTime::now()),
    }
}

/// The error object of any of the three formats (`{"error": {...}}`, or
/// Anthropic's `{"type": "error", "error": {...}}`).
pub fn error_object(v: &Value) -> &Value {
    match &v["error"] {
        Value::Null => v,
        e => e,
    }
}

/// Classifies an error that arrived inside a 200 stream.
pub fn classify_in_band(err: &Value) -> Failure {
    let e = error_object(err);
    let ty = e["type"]
        .as_str()
        .or(e["code"].as_str())
        .unwrap_or("")
        .to_lowercase();
    let message = e["message"]
        .as_str()
        .unwrap_or("error in stream")
        .to_string();
    let class = if ty.contains("overloaded") {
        Class::Overloaded
    } else if ty.contains("rate_limit") {
        Class::RateLimited
    } else if ty.contains("invalid_request") {
        Class::BadRequest
    } else {
        Class::Server
    };
    Failure {
        class,
        status: 0,
        message: redact(&message),
        retry_after: None,
    }
}

fn gemini_reasons(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for d in v["error"]["details"].as_array().into_iter().flatten() {
        if let Some(r) = d["reason"].as_str() {
            out.push(r.to_string());
        }
        for viol in d["violations"].as_array().into_iter().flatten() {
            if let Some(q) = viol["quotaId"].as_str() {
                out.push(q.to_string());
            }
        }
    }
    out
}

/// The provider's hint of when to retry, from headers or body.
pub fn retry_hint(headers: &HeaderMap, body: Option<&Value>, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let mut hints = Vec::new();
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        hints.push(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    if let Some(v) = header("retry-after") {
        let v = v.trim();
        if let Ok(secs) = v.parse::<f64>() {
            hints.push(Duration::from_secs_f64(secs.max(0.0)));
        } else if let Ok(at) = httpdate::parse_http_date(v) {
            hints.push(at.duration_since(now).unwrap_or_default());
        }
    }
    for (name, value) in headers {
        if name.as_str().starts_with("x-ratelimit-reset")
            && let Some(d) = value.to_str().ok().and_then(parse_go_duration)
        {
            hints.push(d);
        }
    }
    if let Some(body) = body {
        for d in body["error"]["details"].as_array().into_iter().flatten() {
            if let Some(delay) = d["retryDelay"].as_str().and_then(parse_go_duration) {
                hints.push(delay);
            }
        }
    }
    hints.into_iter().max()
}

/// Parses `1.5s`, `20ms`, `6m0s`, `1h2m3.5s` (OpenAI's and Gemini's forms),
/// or a bare number of seconds.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<f64>() {
        return (secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let mut total = 0.0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Removes anything that looks like an API key from provider text before it
/// is logged or returned (some providers echo a prefix of the key).
pub fn redact(message: &str) -> String {
    message
        .split_inclusive(char::is_whitespace)
        .map(|word| {
            let w = word
                .trim_end()
                .trim_matches(|c: char| "\"'.,;:()".contains(c));
            let keyish = w.len() >= 20
                && (w.starts_with("sk-")
                    || w.starts_with("nvapi-")
                    || w.starts_with("gsk_")
                    || w.starts_with("AIza")
                    || w.starts_with("xai-"));
            if keyish {
                word.replace(w, "[redacted]")
            } else {
                word.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn statuses_and_codes_classify() {
        let h = HeaderMap::new();
        let cases = [
            (
                429,
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
                Class::RateLimited,
            ),
            (
                429,
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
                Class::Quota,
            ),
            (
                429,
                r#"{"error":{"message":"Rate limit reached for model on tokens per day (TPD): Limit 100000","type":"tokens","code":"rate_limit_exceeded"}}"#,
                Class::Quota,
            ),
            (
                402,
                r#"{"error":{"message":"Insufficient Balance"}}"#,
                Class::Quota,
            ),
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided"}}"#,
                Class::Auth,
            ),
            (403, "forbidden", Class::Auth),
            (
                404,
                r#"{"error":{"message":"The model `gpt-9` does not exist","code":"model_not_found"}}"#,
                Class::NotFound,
            ),
            (500, "oops", Class::Server),
            (502, "bad gateway", Class::Server),
            (503, "unavailable", Class::Overloaded),
            (504, "", Class::Server),
            (408, "", Class::Server),
            (409, "", Class::Server),
            (
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
                Class::Overloaded,
            ),
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#,
                Class::ContextOverflow,
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
                Class::ContextOverflow,
            ),
            (
                400,
                r#"{"error":{"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}"#,
                Class::ContextOverflow,
            ),
            (
                400,
                r#"{"error":{"message":"Failed to call a function","type":"invalid_request_error","code":"tool_use_failed"}}"#,
                Class::ToolUseFailed,
            ),
            (
                400,
                r#"{"error":{"message":"rejected","code":"content_policy_violation"}}"#,
                Class::ContentPolicy,
            ),
            (
                400,
                r#"{"error":{"message":"messages: bad role"}}"#,
                Class::BadRequest,
            ),
            (422, "unprocessable", Class::BadRequest),
            (
                400,
                r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID"}]}}"#,
                Class::Auth,
            ),
            (
                429,
                r#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#,
                Class::Quota,
            ),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                classify_http(status, &h, body).class,
                want,
                "{status} {body}"
            );
        }
    }

    #[test]
    fn actions() {
        assert_eq!(Class::RateLimited.action(false), Action::FailOver);
        assert_eq!(Class::Auth.action(false), Action::FailOverLong);
        assert_eq!(Class::ContextOverflow.action(false), Action::LargerWindow);
        assert_eq!(Class::BadRequest.action(true), Action::Return);
        assert_eq!(Class::ContentPolicy.action(false), Action::Return);
        assert_eq!(
            Class::ContentPolicy.action(true),
            Action::FailOverNoCooldown
        );
    }

    #[test]
    fn every_hint_format() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let h = |p: &[(&str, &str)]| retry_hint(&headers(p), None, now);
        assert_eq!(
            h(&[("retry-after-ms", "1500")]),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(h(&[("retry-after", "7")]), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(h(&[("retry-after", &date)]), Some(Duration::from_secs(90)));
        assert_eq!(
            h(&[
                ("x-ratelimit-reset-requests", "1m30s"),
                ("x-ratelimit-reset-tokens", "6.5s")
            ]),
            Some(Duration::from_secs(90))
        );
        assert_eq!(h(&[]), None);
        let gemini: Value = serde_json::from_str(r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#).unwrap();
        assert_eq!(
            retry_hint(&HeaderMap::new(), Some(&gemini), now),
            Some(Duration::from_secs(37))
        );
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_secs_f64(3723.5))
        );
        assert_eq!(parse_go_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_go_duration("abc"), None);
        assert_eq!(parse_go_duration("5x"), None);
    }

    #[test]
    fn keys_are_redacted_from_messages() {
        let m = redact("Incorrect API key provided: sk-proj-abcdefghijklmnopqrstuvwx. See docs.");
        assert!(!m.contains("abcdefghij"), "{m}");
        assert!(m.contains("[redacted]"));
    }

    #[test]
    fn in_band_overloaded() {
        let v: Value = serde_json::from_str(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .unwrap();
        assert_eq!(classify_in_band(&v).class, Class::Overloaded);
    }
}
