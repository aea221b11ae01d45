//! The Telegram Bot API over HTTPS: `POST <api_base_url>/bot<token>/<method>`
//! with a JSON body; every answer is `{"ok": true, "result": ...}` or
//! `{"ok": false, "error_code": ..., "description": ..., "parameters":
//! {"retry_after": ...}}`.
//!
//! The token is part of every URL, so no error from here carries a URL:
//! reqwest's errors are stripped of theirs, and this client's `Debug` does
//! not show the token.

use std::time::Duration;

use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::types::Message;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Telegram answered and said no.
    #[error("Telegram refused {method}: {code} {description}")]
    Refused {
        method: &'static str,
        code: u16,
        description: String,
        /// Seconds to wait, from `parameters.retry_after` (429).
        retry_after: Option<u64>,
    },
    /// No answer: connection refused, TLS, timeout.
    #[error("cannot reach the Bot API for {method}: {reason}")]
    Transport {
        method: &'static str,
        reason: String,
    },
    /// An answer that is not the Bot API's JSON.
    #[error("unreadable answer to {method}: {reason}")]
    Unreadable {
        method: &'static str,
        reason: String,
    },
}

impl ApiError {
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Refused {
                retry_after: Some(s),
                ..
            } => Some(Duration::from_secs(*s)),
            _ => None,
        }
    }
    fn description(&self) -> &str {
        match self {
            ApiError::Refused { description, .. } => description,
            _ => "",
        }
    }
    /// 409: another process polls this bot, or a webhook is set.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }
    /// 401/404 on the token: it is wrong or was revoked.
    pub fn is_bad_token(&self) -> bool {
        matches!(self.code(), Some(401 | 404))
    }
    /// 400 "can't parse entities": the formatting was refused.
    pub fn is_bad_formatting(&self) -> bool {
        self.code() == Some(400) && self.description().contains("can't parse entities")
    }
    /// 400 "message is not modified": an edit with the same text.
    pub fn is_not_modified(&self) -> bool {
        self.code() == Some(400) && self.description().contains("message is not modified")
    }
}

/// One bot's API.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    /// `<api_base_url>/bot<token>`; never logged.
    base: std::sync::Arc<Zeroizing<String>>,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotApi { token: [redacted] }")
    }
}

/// Time allowed for a call that is not a long poll.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Characters of a callback answer's popup text.
pub const CALLBACK_TEXT_LIMIT: usize = 200;

/// Times a call is retried after a 429 with `retry_after`.
const RETRIES_AFTER_429: u32 = 3;
/// Longest `retry_after` waited for inside one call.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

impl BotApi {
    pub fn new(api_base_url: &str, token: &str) -> BotApi {
        oi_sandbox::netguard::install_crypto();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .unwrap_or_default();
        BotApi {
            http,
            base: std::sync::Arc::new(Zeroizing::new(format!(
                "{}/bot{token}",
                api_base_url.trim_end_matches('/')
            ))),
        }
    }

    /// Calls `method` once.
    pub async fn call_once(
        &self,
        method: &'static str,
        params: &Value,
        timeout: Duration,
    ) -> Result<Value, ApiError> {
        let transport = |e: reqwest::Error| ApiError::Transport {
            method,
            reason: e.without_url().to_string(),
        };
        let resp = self
            .http
            .post(format!("{}/{method}", self.base.as_str()))
            .header("content-type", "application/json")
            .body(params.to_string())
            .timeout(timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map_err(transport)?;
        let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError::Unreadable {
            method,
            reason: format!("HTTP {status}, not JSON ({e})"),
        })?;
        if v["ok"].as_bool() == Some(true) {
            return Ok(v["result"].clone());
        }
        Err(ApiError::Refused {
            method,
            code: v["error_code"]
                .as_u64()
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(status),
            description: v["description"]
                .as_str()
                .unwrap_or("(no description)")
                .to_string(),
            retry_after: v["parameters"]["retry_after"].as_u64(),
        })
    }

    /// Calls `method`, waiting out a 429's `retry_after` a few times.
    pub async fn call(&self, method: &'static str, params: &Value) -> Result<Value, ApiError> {
        let mut tries = 0;
        loop {
            match self.call_once(method, params, CALL_TIMEOUT).await {
                Err(e) if tries < RETRIES_AFTER_429 && e.code() == Some(429) => {
                    let wait = e
                        .retry_after()
                        .unwrap_or(Duration::from_secs(1))
                        .min(MAX_RETRY_AFTER);
                    tracing::warn!(
                        method,
                        wait_s = wait.as_secs(),
                        "Telegram says too many requests; waiting"
                    );
                    tokio::time::sleep(wait).await;
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    /// The bot's own user (checks the token).
    pub async fn get_me(&self) -> Result<Value, ApiError> {
        self.call("getMe", &json!({})).await
    }

    /// Long-polls for updates from `offset` on (Telegram forgets those
    /// before it). Returns each update as received.
    pub async fn get_updates(
        &self,
        offset: i64,
        timeout: Duration,
    ) -> Result<Vec<Value>, ApiError> {
        let params = json!({
            "offset": offset,
            "timeout": timeout.as_secs(),
            "allowed_updates": ["message", "callback_query"],
        });
        // The HTTP request must outlive the long poll.
        match self
            .call_once("getUpdates", &params, timeout + Duration::from_secs(10))
            .await?
        {
            Value::Array(items) => Ok(items),
            _ => Err(ApiError::Unreadable {
                method: "getUpdates",
                reason: "result is not an array".into(),
            }),
        }
    }

    /// Sends a message; returns its id.
    pub async fn send_message(&self, params: Value) -> Result<i64, ApiError> {
        let v = self.call("sendMessage", &params).await?;
        let m: Message = serde_json::from_value(v).map_err(|e| ApiError::Unreadable {
            method: "sendMessage",
            reason: e.to_string(),
        })?;
        Ok(m.message_id)
    }

    pub async fn edit_message_text(&self, params: Value) -> Result<(), ApiError> {
        match self.call("editMessageText", &params).await {
            Err(e) if e.is_not_modified() => Ok(()),
            other => other.map(drop),
        }
    }

    pub async fn send_chat_action(&self, chat_id: i64, action: &str) -> Result<(), ApiError> {
        self.call_once(
            "sendChatAction",
            &json!({"chat_id": chat_id, "action": action}),
            CALL_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// Answers a button press; the popup text is cut to Telegram's 200
    /// characters (the whole reply goes to the chat as a message).
    pub async fn answer_callback_query(&self, id: &str, text: &str) -> Result<(), ApiError> {
        let text: String = match text.chars().count() > CALLBACK_TEXT_LIMIT {
            true => text
                .chars()
                .take(CALLBACK_TEXT_LIMIT - 1)
                .chain(std::iter::once('…'))
                .collect(),
            false => text.to_string(),
        };
        self.call(
            "answerCallbackQuery",
            &json!({"callback_query_id": id, "text": text}),
        )
        .await
        .map(drop)
    }

    pub async fn set_my_commands(&self, commands: &[(&str, &str)]) -> Result<(), ApiError> {
        let list: Vec<Value> = commands
            .iter()
            .map(|(c, d)| json!({"command": c, "description": d}))
            .collect();
        self.call("setMyCommands", &json!({"commands": list}))
            .await
            .map(drop)
    }
}
