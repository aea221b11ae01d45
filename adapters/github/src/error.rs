//! What went wrong, in words that say what to do: GitHub's own error body
//! (`message`, `errors[]`, `documentation_url`) is passed on.

use oi_ipc_schema::ErrorCode;
use oi_kernel::harness::ServiceError;
use oi_kernel::tool;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum GhError {
    /// The call's arguments, or what GitHub said of them (404, 422).
    #[error("{0}")]
    Bad(String),
    /// Refused: the write policy, the token's rights, a secret's hosts.
    #[error("{0}")]
    Denied(String),
    /// GitHub did not answer, answered 5xx, or a rate limit outlasts the
    /// call.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
}

impl From<GhError> for ServiceError {
    fn from(e: GhError) -> Self {
        match e {
            GhError::Bad(m) => ServiceError::bad_request(m),
            GhError::Denied(m) => tool::denied(m),
            GhError::Unavailable(m) => ServiceError::new(ErrorCode::Unavailable, m),
            GhError::Timeout(m) => tool::timed_out(m),
        }
    }
}

/// GitHub's error body.
#[derive(Debug, Default, Deserialize)]
pub struct Body {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub errors: Vec<serde_json::Value>,
    #[serde(default)]
    pub documentation_url: String,
}

impl Body {
    pub fn parse(bytes: &[u8]) -> Body {
        serde_json::from_slice(bytes).unwrap_or_default()
    }

    /// `message: field code (resource.field); …; see documentation_url`.
    pub fn describe(&self) -> String {
        let mut s = if self.message.is_empty() {
            "no message".to_string()
        } else {
            self.message.clone()
        };
        let details: Vec<String> = self.errors.iter().map(detail).collect();
        if !details.is_empty() {
            s.push_str(": ");
            s.push_str(&details.join("; "));
        }
        if !self.documentation_url.is_empty() {
            s.push_str(" (see ");
            s.push_str(&self.documentation_url);
            s.push(')');
        }
        s
    }
}

/// One entry of `errors[]`: a string, or `{resource, field, code, message}`.
fn detail(e: &serde_json::Value) -> String {
    if let Some(s) = e.as_str() {
        return s.to_string();
    }
    let get = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let (resource, field, code, message) =
        (get("resource"), get("field"), get("code"), get("message"));
    let mut out = String::new();
    if !field.is_empty() {
        out.push_str(field);
        out.push(' ');
    }
    out.push_str(if code == "custom" || code.is_empty() {
        message
    } else {
        code
    });
    if code != "custom" && !message.is_empty() && !code.is_empty() {
        out.push_str(": ");
        out.push_str(message);
    }
    if !resource.is_empty() {
        out.push_str(&format!(
            " ({resource}{}{field})",
            if field.is_empty() { "" } else { "." }
        ));
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_passed_on_whole() {
        let b = Body::parse(
            br#"{"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"},{"resource":"Issue","code":"custom","message":"labels are too many"},"plain"],"documentation_url":"https://docs.github.com/rest/issues/issues#create-an-issue","status":"422"}"#,
        );
        assert_eq!(
            b.describe(),
            "Validation Failed: title missing_field (Issue.title); labels are too many (Issue); plain (see https://docs.github.com/rest/issues/issues#create-an-issue)"
        );
        assert_eq!(Body::parse(b"<html>").describe(), "no message");
    }
}
