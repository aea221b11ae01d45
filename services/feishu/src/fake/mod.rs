//! A fake Feishu open platform on 127.0.0.1, for tests and benchmarks
//! (feature `fake`). Its REST API answers as the platform does, and PyPI
//! `lark-oapi` (the official client) is run against it in the tests:
//!
//! - `POST /open-apis/auth/v3/tenant_access_token/internal`: the app's id
//!   and secret give a `t-...` token with its `expire`; a wrong secret is
//!   code 10014;
//! - a missing, unknown or expired token (tokens expire on cue) is HTTP
//!   400 with code 99991663 or 99991661;
//! - `GET /open-apis/im/v1/chats`: the groups the bot is in, `page_size`
//!   (at most 100) and `page_token` paging with `has_more`;
//! - `POST /open-apis/im/v1/messages?receive_id_type=...` and
//!   `POST /open-apis/im/v1/messages/{id}/reply`: `content` must be a JSON
//!   *string* whose object fits `msg_type` (text, post, interactive), else
//!   230001; a chat the bot is not in is 230002; an unknown person 230013;
//!   an unknown message 230011. Sent messages are recorded;
//! - the long connection ([`ws`]): `POST /callback/ws/endpoint` and a
//!   WebSocket of `pbbp2.Frame`s.

pub mod ws;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A message the app sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub message_id: String,
    pub chat_id: String,
    pub msg_type: String,
    /// `content`, parsed.
    pub content: Value,
    pub reply_to: Option<String>,
}

impl Sent {
    /// The text a person reads: a text's, or a post's lines.
    pub fn text(&self) -> String {
        if let Some(t) = self.content["text"].as_str() {
            return t.to_string();
        }
        let lines: Vec<String> = self.content["zh_cn"]["content"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                p.as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["text"].as_str())
                    .collect::<String>()
            })
            .collect();
        lines.join("\n")
    }
}

#[derive(Default)]
struct State {
    app_id: String,
    app_secret: String,
    next: u64,
    /// Tokens issued and whether they still count.
    tokens: HashMap<String, bool>,
    token_requests: u32,
    /// (chat_id, name, bot is a member).
    chats: Vec<(String, String, bool)>,
    /// (open_id, email).
    users: Vec<(String, String)>,
    sent: Vec<Sent>,
    /// Refused calls, by code.
    refused: Vec<i64>,
    ws_port: u16,
}

pub struct FakeFeishu {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    ws: Arc<Mutex<ws::Ws>>,
    task: tokio::task::JoinHandle<()>,
    ws_task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeFeishu {
    fn drop(&mut self) {
        self.task.abort();
        self.ws_task.abort();
        ws::drop_all(&self.ws);
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeFeishu {
    pub async fn start(app_id: &str, app_secret: &str) -> std::io::Result<FakeFeishu> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let ws_listener = TcpListener::bind("127.0.0.1:0").await?;
        let ws_port = ws_listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(State {
            app_id: app_id.into(),
            app_secret: app_secret.into(),
            ws_port,
            ..State::default()
        }));
        let wss = Arc::new(Mutex::new(ws::Ws {
            ping_interval: 1,
            ..ws::Ws::default()
        }));
        let ws_task = tokio::spawn(ws::serve(ws_listener, wss.clone()));
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(handle(req, &st).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Ok(FakeFeishu {
            addr,
            state,
            ws: wss,
            task,
            ws_task,
        })
    }

    /// The `[feishu] domain` to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A group called `name`; its chat id. `member`: whether the bot is in it.
    pub fn add_chat(&self, name: &str, member: bool) -> String {
        let mut s = lock(&self.state);
        s.next += 1;
        let id = format!("oc_{:032x}", s.next);
        s.chats.push((id.clone(), name.into(), member));
        id
    }

    /// A person; their open id.
    pub fn add_user(&self, email: &str) -> String {
        let mut s = lock(&self.state);
        s.next += 1;
        let id = format!("ou_{:032x}", s.next);
        s.users.push((id.clone(), email.into()));
        id
    }

    /// Every token issued so far stops counting, as at its expiry.
    pub fn expire_tokens(&self) {
        for v in lock(&self.state).tokens.values_mut() {
            *v = false;
        }
    }

    pub fn token_requests(&self) -> u32 {
        lock(&self.state).token_requests
    }

    pub fn sent(&self) -> Vec<Sent> {
        lock(&self.state).sent.clone()
    }

    /// Sends an event of schema 2.0 (`event_type`, `event`) over every open
    /// long connection; its frame's message id. Kept until acknowledged.
    pub fn push_event(&self, event_type: &str, event: Value) -> String {
        let (app_id, n) = {
            let mut s = lock(&self.state);
            s.next += 1;
            (s.app_id.clone(), s.next)
        };
        let body = json!({"schema": "2.0", "header": {"event_id": format!("ev_{n:032x}"), "event_type": event_type,
            "create_time": "1764633600000", "token": "", "app_id": app_id, "tenant_key": "tk_fake"}, "event": event});
        ws::push(&self.ws, body.to_string().into_bytes())
    }

    /// The next event goes out in `parts` frames.
    pub fn split_next(&self, parts: usize) {
        ws::lock(&self.ws).split = parts;
    }

    /// Acknowledgements received: (message id, payload).
    pub fn acks(&self) -> Vec<(String, String)> {
        ws::lock(&self.ws).acks.clone()
    }

    /// Long connections accepted so far.
    pub fn connections(&self) -> u32 {
        ws::lock(&self.ws).accepted
    }

    pub fn pings(&self) -> u32 {
        ws::lock(&self.ws).pings
    }

    /// While `on`, pings get no pong.
    pub fn silent(&self, on: bool) {
        ws::lock(&self.ws).silent = on;
    }

    /// Ends every open long connection.
    pub fn drop_connections(&self) {
        ws::drop_all(&self.ws)
    }

    /// Codes of the calls refused so far.
    pub fn refused(&self) -> Vec<i64> {
        lock(&self.state).refused.clone()
    }
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn ok(data: Value) -> Response<Full<Bytes>> {
    answer(200, json!({"code": 0, "msg": "success", "data": data}))
}

fn refuse(s: &mut State, status: u16, code: i64, msg: &str) -> Response<Full<Bytes>> {
    s.refused.push(code);
    answer(
        status,
        json!({"code": code, "msg": msg, "error": {"log_id": "20261202000000000000FAKE"}}),
    )
}

/// Whether `content` is a JSON string whose object fits `msg_type`.
fn content_fits(msg_type: &str, content: &Value) -> Option<Value> {
    let v: Value = serde_json::from_str(content.as_str()?).ok()?;
    let fits = match msg_type {
        "text" => v["text"].is_string(),
        "post" => v.as_object().is_some_and(|o| {
            !o.is_empty()
                && o.values().all(|l| {
                    l["content"]
                        .as_array()
                        .is_some_and(|ps| ps.iter().all(Value::is_array))
                })
        }),
        "interactive" => v.is_object(),
        _ => false,
    };
    fits.then_some(v)
}

async fn handle(req: Request<Incoming>, st: &Mutex<State>) -> Response<Full<Bytes>> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = lock(st);
    if (method.as_str(), path.as_str())
        == ("POST", "/open-apis/auth/v3/tenant_access_token/internal")
    {
        s.token_requests += 1;
        if body["app_id"] != s.app_id.as_str() || body["app_secret"] != s.app_secret.as_str() {
            return answer(200, json!({"code": 10014, "msg": "app secret invalid"}));
        }
        s.next += 1;
        let t = format!("t-g1044{:024x}", s.next);
        s.tokens.insert(t.clone(), true);
        return answer(
            200,
            json!({"code": 0, "msg": "ok", "tenant_access_token": t, "expire": 7200}),
        );
    }
    if (method.as_str(), path.as_str()) == ("POST", "/callback/ws/endpoint") {
        if body["AppID"] != s.app_id.as_str() || body["AppSecret"] != s.app_secret.as_str() {
            return answer(
                200,
                json!({"code": 1000040344, "msg": "app credential invalid"}),
            );
        }
        s.next += 1;
        let url = format!(
            "ws://127.0.0.1:{}/ws/v2?device_id={}&service_id=77",
            s.ws_port, s.next
        );
        return answer(
            200,
            json!({"code": 0, "msg": "ok", "data": {"URL": url,
            "ClientConfig": {"ReconnectCount": 5, "ReconnectInterval": 1, "ReconnectNonce": 0, "PingInterval": 1}}}),
        );
    }
    let Some(token) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) else {
        return refuse(
            &mut s,
            400,
            99991661,
            "Missing access token for authorization. Please make a request with token attached.",
        );
    };
    if s.tokens.get(token) != Some(&true) {
        return refuse(
            &mut s,
            400,
            99991663,
            "Invalid access token for authorization. Please make a request with token attached.",
        );
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("GET", ["open-apis", "im", "v1", "chats"]) => {
            let size = query
                .get("page_size")
                .and_then(|v| v.parse().ok())
                .unwrap_or(20usize);
            if !(1..=100).contains(&size) {
                return refuse(&mut s, 400, 99992402, "field validation failed: page_size");
            }
            let from = query
                .get("page_token")
                .and_then(|v| v.strip_prefix("pt_"))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0usize);
            let mine: Vec<&(String, String, bool)> = s.chats.iter().filter(|c| c.2).collect();
            let items: Vec<Value> = mine
                .iter()
                .skip(from)
                .take(size)
                .map(|(id, name, _)| {
                    json!({"chat_id": id, "name": name, "description": "", "avatar": "", "owner_id": "ou_owner",
                           "owner_id_type": "open_id", "external": false, "tenant_key": "tk_fake", "chat_status": "normal"})
                })
                .collect();
            let more = from + size < mine.len();
            ok(
                json!({"items": items, "page_token": if more { format!("pt_{}", from + size) } else { String::new() }, "has_more": more}),
            )
        }
        ("POST", ["open-apis", "im", "v1", "messages"]) => {
            let kind = query.get("receive_id_type").cloned().unwrap_or_default();
            let to = body["receive_id"].as_str().unwrap_or("").to_string();
            let msg_type = body["msg_type"].as_str().unwrap_or("").to_string();
            let chat = match kind.as_str() {
                "chat_id" => match s.chats.iter().find(|c| c.0 == to) {
                    Some(c) if c.2 => c.0.clone(),
                    _ => {
                        return refuse(&mut s, 400, 230002, "Bot/User can NOT be out of the chat.");
                    }
                },
                "open_id" | "email" => {
                    let found = s.users.iter().find(|(id, email)| {
                        if kind == "open_id" {
                            *id == to
                        } else {
                            *email == to
                        }
                    });
                    match found {
                        Some((id, _)) => format!("oc_p2p_{id}"),
                        None => {
                            return refuse(
                                &mut s,
                                400,
                                230013,
                                "Bot has NO availability to this user.",
                            );
                        }
                    }
                }
                _ => {
                    return refuse(
                        &mut s,
                        400,
                        99992402,
                        "field validation failed: receive_id_type",
                    );
                }
            };
            let Some(content) = content_fits(&msg_type, &body["content"]) else {
                return refuse(
                    &mut s,
                    400,
                    230001,
                    "Your request contains an invalid request parameter, ext=invalid message content",
                );
            };
            record(&mut s, chat, msg_type, content, None)
        }
        ("POST", ["open-apis", "im", "v1", "messages", id, "reply"]) => {
            let Some(chat) = s
                .sent
                .iter()
                .find(|m| m.message_id == *id)
                .map(|m| m.chat_id.clone())
            else {
                return refuse(
                    &mut s,
                    400,
                    230011,
                    "The message is not found or has been recalled.",
                );
            };
            let msg_type = body["msg_type"].as_str().unwrap_or("").to_string();
            let Some(content) = content_fits(&msg_type, &body["content"]) else {
                return refuse(
                    &mut s,
                    400,
                    230001,
                    "Your request contains an invalid request parameter, ext=invalid message content",
                );
            };
            record(&mut s, chat, msg_type, content, Some(id.to_string()))
        }
        _ => refuse(&mut s, 404, 404, "404 page not found"),
    }
}

fn record(
    s: &mut State,
    chat: String,
    msg_type: String,
    content: Value,
    reply_to: Option<String>,
) -> Response<Full<Bytes>> {
    s.next += 1;
    let id = format!("om_{:032x}", s.next);
    let v = json!({
        "message_id": id, "root_id": reply_to.clone().unwrap_or_default(), "parent_id": reply_to.clone().unwrap_or_default(),
        "msg_type": msg_type, "create_time": "1764633600000", "update_time": "1764633600000",
        "deleted": false, "updated": false, "chat_id": chat,
        "sender": {"id": s.app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": "tk_fake"},
        "body": {"content": content.to_string()}, "mentions": [], "upper_message_id": "",
    });
    s.sent.push(Sent {
        message_id: id,
        chat_id: chat,
        msg_type,
        content,
        reply_to,
    });
    ok(v)
}
