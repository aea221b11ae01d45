//! The open platform's REST API as the app: the tenant access token from
//! the app id and the vault's app secret, renewed `refresh_skew_secs`
//! before it expires and once more when a call says it is no longer
//! valid; every answer's `{code, msg, data}` envelope read, and a refusal
//! named with what to do.

use std::time::{Duration, Instant};

use oi_ipc_schema::ErrorCode;
use oi_kernel::client::BusClient;
use oi_kernel::harness::ServiceError;
use oi_kernel::{secrets, tool};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::info;
use zeroize::Zeroizing;

use crate::config::FeishuConfig;

/// Codes that mean the tenant token is missing, invalid or expired.
pub const TOKEN_CODES: &[i64] = &[99991661, 99991663, 99991668];

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The arguments, or what Feishu said of them.
    #[error("{0}")]
    Bad(String),
    /// Refused: credentials, scopes, a chat the bot is not in.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
}

impl From<FsError> for ServiceError {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Bad(m) => ServiceError::bad_request(m),
            FsError::Denied(m) => tool::denied(m),
            FsError::Unavailable(m) => ServiceError::new(ErrorCode::Unavailable, m),
            FsError::Timeout(m) => tool::timed_out(m),
        }
    }
}

struct Token {
    value: Zeroizing<String>,
    until: Instant,
}

pub struct Feishu {
    pub cfg: FeishuConfig,
    base: String,
    http: reqwest::Client,
    token: Mutex<Option<Token>>,
}

/// What a refusal code means for the user, where it is known.
fn hint(code: i64) -> &'static str {
    match code {
        10003 | 10014 => "; check [feishu] app_id and the app secret in the vault",
        230002 => "; add the bot to the chat first",
        99991672 | 99991679 => "; grant the app that permission in the developer console",
        _ => "",
    }
}

impl Feishu {
    pub fn new(cfg: FeishuConfig) -> Result<Feishu, String> {
        oi_sandbox::netguard::install_crypto();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Feishu {
            base: cfg.domain.trim_end_matches('/').to_string(),
            cfg,
            http,
            token: Mutex::new(None),
        })
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, FsError> {
        let url = format!("{}{path}", self.base);
        let what = format!("Feishu {method} {}", path.split('?').next().unwrap_or(path));
        let mut req = self.http.request(method, &url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/json; charset=utf-8",
                )
                .body(b.to_string());
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                FsError::Timeout(format!(
                    "{what}: no answer within {} s",
                    self.cfg.timeout_secs
                ))
            } else {
                FsError::Unavailable(format!("{what}: {}", oi_sandbox::netguard::error_chain(&e)))
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| {
            FsError::Unavailable(format!(
                "{what}: the answer was cut off: {}",
                oi_sandbox::netguard::error_chain(&e)
            ))
        })?;
        let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
            FsError::Unavailable(format!("{what}: HTTP {status}, and the answer is not JSON"))
        })?;
        Ok(v)
    }

    /// A tenant token, fetched when there is none or it is near its end.
    async fn token(&self, bus: &BusClient, fresh: bool) -> Result<Zeroizing<String>, FsError> {
        let mut t = self.token.lock().await;
        let skew = Duration::from_secs(self.cfg.refresh_skew_secs);
        if !fresh
            && let Some(tok) = t.as_ref()
            && Instant::now() + skew < tok.until
        {
            return Ok(tok.value.clone());
        }
        if self.cfg.app_id.trim().is_empty() {
            return Err(FsError::Unavailable(
                "[feishu] app_id is empty: give the app's id (cli_...) from the developer console"
                    .into(),
            ));
        }
        let name = &self.cfg.app_secret_secret;
        let secret = secrets::read_text(bus, name, Duration::from_secs(10))
            .await
            .map_err(|e| {
                FsError::Unavailable(format!(
                    "cannot read the app secret from vault secret '{name}' ({e}); store it with `oictl vault set {name}`"
                ))
            })?;
        let body = json!({"app_id": self.cfg.app_id, "app_secret": secret.as_str()});
        let v = self
            .send_raw(
                Method::POST,
                "/open-apis/auth/v3/tenant_access_token/internal",
                None,
                Some(&body),
            )
            .await?;
        let code = v["code"].as_i64().unwrap_or(-1);
        let (Some(value), 0) = (v["tenant_access_token"].as_str(), code) else {
            return Err(FsError::Denied(format!(
                "Feishu refused the app's credentials (code {code}: {}){}",
                v["msg"].as_str().unwrap_or(""),
                hint(if code == -1 { 10014 } else { code })
            )));
        };
        let expire = v["expire"].as_u64().unwrap_or(7200);
        info!(expire_s = expire, "tenant access token renewed");
        let value = Zeroizing::new(value.to_string());
        *t = Some(Token {
            value: value.clone(),
            until: Instant::now() + Duration::from_secs(expire),
        });
        Ok(value)
    }

    /// A call as the app; its `data`. A token the platform no longer
    /// takes is renewed and the call sent once more.
    pub async fn call(
        &self,
        bus: &BusClient,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, FsError> {
        let mut fresh = false;
        loop {
            let token = self.token(bus, fresh).await?;
            let v = self
                .send_raw(method.clone(), path, Some(&token), body)
                .await?;
            let code = v["code"].as_i64().unwrap_or(-1);
            if code == 0 {
                return Ok(v.get("data").cloned().unwrap_or(Value::Null));
            }
            if TOKEN_CODES.contains(&code) && !fresh {
                info!(code, "the tenant token was refused; renewing it once");
                fresh = true;
                continue;
            }
            let what = format!("Feishu {method} {}", path.split('?').next().unwrap_or(path));
            let msg = v["msg"].as_str().unwrap_or("");
            let text = format!("{what}: code {code}: {msg}{}", hint(code));
            return Err(match code {
                230002 | 99991672 | 99991679 | 10003 | 10014 => FsError::Denied(text),
                c if TOKEN_CODES.contains(&c) => FsError::Denied(text),
                -1 => FsError::Unavailable(text),
                _ => FsError::Bad(text),
            });
        }
    }
}
