//! A fake Telegram Bot API on 127.0.0.1 for tests and benchmarks (feature
//! `fake`). It speaks the real protocol as the gateway uses it:
//!
//! - `POST /bot<token>/<method>` with a JSON body; a wrong token gets 401,
//!   an unknown method 404, each as `{"ok": false, "error_code", "description"}`;
//! - `getUpdates` long-polls: it answers as soon as an update at or after
//!   `offset` is queued, or with `[]` after `timeout` seconds; updates
//!   before `offset` are confirmed and forgotten for good; a newer
//!   `getUpdates` ends a pending one with 409 Conflict, as Telegram does;
//! - `sendMessage` and `editMessageText` check what Telegram checks: an
//!   empty text, more than 4096 characters after entity parsing (UTF-16
//!   units), and, with `parse_mode: HTML`, unsupported tags, unbalanced
//!   tags and bad entities ("can't parse entities"); editing to the same
//!   text is "message is not modified";
//! - the other calls check what Telegram checks ([`checks`]): chat
//!   actions, callback answers (an issued id, 200 characters), commands,
//!   replies to and deletions of messages that exist, inline keyboards, and
//!   a chat edited more than 3 times a second gets 429 (counted by
//!   [`FakeBotApi::rate_limited`], which tests hold at 0);
//! - any method can be made to fail on cue (409, 429 with `retry_after`,
//!   400, 5xx).
//!
//! Everything received is recorded for the tests to inspect.

pub mod checks;

use checks::check_text;
pub use checks::parse_html;

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// A call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub params: Value,
    pub at: Instant,
}

/// A message the bot sent, with its later edits.
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: i64,
    pub message_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
    pub reply_markup: Option<Value>,
    pub reply_to: Option<i64>,
    pub edits: Vec<String>,
}

impl Sent {
    /// The text as it reads now (after edits).
    pub fn current(&self) -> &str {
        self.edits.last().unwrap_or(&self.text)
    }
}

/// What a push queued: the update's id and its message's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pushed {
    pub update_id: i64,
    pub message_id: i64,
}

struct Failure {
    method: String,
    status: u16,
    description: String,
    retry_after: Option<u64>,
    /// Only calls with `parse_mode` set.
    formatted_only: bool,
}

#[derive(Default)]
struct State {
    updates: VecDeque<Value>,
    next_update: i64,
    next_message: i64,
    /// Updates below this were confirmed.
    confirmed: i64,
    /// Bumped by each getUpdates; a pending poll that sees it change ends
    /// with 409.
    poll_generation: u64,
    calls: Vec<Call>,
    sent: Vec<Sent>,
    failures: Vec<Failure>,
    /// getUpdates calls still to fail (502) when they would confirm a
    /// queued update: the confirmation never reaches "Telegram".
    lose_confirmations: u32,
    /// Queued updates are not handed out while this is set.
    holding: bool,
    /// While set, `sendMessage` is carried out but its answer held back,
    /// as when the connection stalls after Telegram took the message.
    stalling_replies: bool,
    /// (chat, message id) of every message there is: pushed and sent.
    messages: HashSet<(i64, i64)>,
    /// Callback query ids handed out.
    callbacks: Vec<String>,
    /// Each chat's recent edits, for the rate limit.
    edits: HashMap<i64, VecDeque<Instant>>,
    /// 429s given for editing too fast.
    rate_limited: u32,
}

pub struct FakeBotApi {
    addr: SocketAddr,
    token: String,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    /// Signalled on every message the bot sends.
    sent: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBotApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl FakeBotApi {
    /// Starts on 127.0.0.1 with a free port, for the bot `token`.
    pub async fn start(token: &str) -> std::io::Result<FakeBotApi> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            next_update: 1000,
            next_message: 1,
            ..State::default()
        }));
        let notify = Arc::new(Notify::new());
        let sent = Arc::new(Notify::new());
        let (st, nt, sn, tok) = (
            state.clone(),
            notify.clone(),
            sent.clone(),
            token.to_string(),
        );
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let (st, nt, sn, tok) = (st.clone(), nt.clone(), sn.clone(), tok.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let sn = sn.clone();
                        let r = handle(req, st.clone(), nt.clone(), tok.clone());
                        async move {
                            let r = r.await;
                            sn.notify_waiters();
                            r
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        Ok(FakeBotApi {
            addr,
            token: token.to_string(),
            state,
            notify,
            sent,
            task,
        })
    }

    /// The `api_base_url` to configure.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn push(&self, build: impl FnOnce(i64, i64) -> Value) -> Pushed {
        let pushed = {
            let mut s = lock(&self.state);
            let (uid, mid) = (s.next_update, s.next_message);
            s.next_update += 1;
            s.next_message += 1;
            let u = build(uid, mid);
            s.updates.push_back(u);
            Pushed {
                update_id: uid,
                message_id: mid,
            }
        };
        self.notify.notify_waiters();
        pushed
    }

    /// Queues a text message from user `user` in chat `chat`. (Message
    /// ids count the bot's messages and the users' together.)
    pub fn push_message(&self, chat: i64, user: i64, text: &str) -> Pushed {
        let pushed = self.push(|uid, mid| {
            json!({"update_id": uid, "message": {
                "message_id": mid,
                "date": 1_700_000_000,
                "chat": {"id": chat, "type": if chat < 0 { "group" } else { "private" },
                         "first_name": format!("User{user}"), "title": if chat < 0 { Some("Group") } else { None }},
                "from": {"id": user, "is_bot": false, "first_name": format!("User{user}"), "username": format!("user{user}")},
                "text": text,
            }})
        });
        lock(&self.state).messages.insert((chat, pushed.message_id));
        pushed
    }

    /// Queues a button press on message `message_id` of chat `chat`.
    pub fn push_callback(&self, chat: i64, user: i64, message_id: i64, data: &str) -> Pushed {
        let pushed = self.push(|uid, _| {
            json!({"update_id": uid, "callback_query": {
                "id": format!("cb{uid}"),
                "from": {"id": user, "is_bot": false, "first_name": format!("User{user}")},
                "chat_instance": "1",
                "message": {"message_id": message_id, "date": 1_700_000_000,
                            "chat": {"id": chat, "type": "private"}, "text": "…"},
                "data": data,
            }})
        });
        lock(&self.state)
            .callbacks
            .push(format!("cb{}", pushed.update_id));
        pushed
    }

    /// 429s given to a chat edited faster than Telegram allows.
    pub fn rate_limited(&self) -> u32 {
        lock(&self.state).rate_limited
    }

    /// The next call of `method` fails with `status` (`retry_after` for
    /// 429s).
    pub fn fail_next(
        &self,
        method: &str,
        status: u16,
        description: &str,
        retry_after: Option<u64>,
    ) {
        lock(&self.state).failures.push(Failure {
            method: method.into(),
            status,
            description: description.into(),
            retry_after,
            formatted_only: false,
        });
    }

    /// The next `sendMessage` with a `parse_mode` is refused as Telegram
    /// refuses formatting it cannot parse.
    pub fn refuse_next_formatting(&self) {
        lock(&self.state).failures.push(Failure {
            method: "sendMessage".into(),
            status: 400,
            description: "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 0".into(),
            retry_after: None,
            formatted_only: true,
        });
    }

    /// The next `n` `getUpdates` calls whose offset would confirm a queued
    /// update fail with 502, so the batch stays unconfirmed.
    pub fn lose_confirmations(&self, n: u32) {
        lock(&self.state).lose_confirmations = n;
    }

    /// While `on`, polls see no queued update; releasing hands out all
    /// that were queued meanwhile in one batch.
    pub fn hold_updates(&self, on: bool) {
        lock(&self.state).holding = on;
        self.notify.notify_waiters();
    }

    /// While `on`, each `sendMessage` is carried out at once (the message
    /// is in the chat) but its response is held until this is turned off.
    pub fn stall_replies(&self, on: bool) {
        lock(&self.state).stalling_replies = on;
    }

    pub fn calls(&self) -> Vec<Call> {
        lock(&self.state).calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        lock(&self.state)
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Messages the bot sent to `chat`, in order.
    pub fn sent_to(&self, chat: i64) -> Vec<Sent> {
        lock(&self.state)
            .sent
            .iter()
            .filter(|m| m.chat_id == chat)
            .cloned()
            .collect()
    }

    /// Messages the bot has sent, to every chat.
    pub fn sent_count(&self) -> usize {
        lock(&self.state).sent.len()
    }

    /// Waits until the bot has sent `total` messages in all.
    pub async fn until_sent(&self, total: usize) {
        loop {
            let wake = self.sent.notified();
            if self.sent_count() >= total {
                return;
            }
            wake.await;
        }
    }

    /// Updates queued and not yet confirmed by an offset.
    pub fn unconfirmed(&self) -> usize {
        lock(&self.state).updates.len()
    }
}

fn reply(status: u16, body: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn error(
    code: u16,
    description: &str,
    retry_after: Option<u64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut body = json!({"ok": false, "error_code": code, "description": description});
    if let Some(s) = retry_after {
        body["parameters"] = json!({"retry_after": s});
    }
    reply(code, body)
}

fn ok(result: Value) -> Result<Response<Full<Bytes>>, Infallible> {
    reply(200, json!({"ok": true, "result": result}))
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    notify: Arc<Notify>,
    token: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return error(400, "Bad Request: unreadable body", None),
    };
    let Some((bot, method)) = path.trim_start_matches('/').split_once('/') else {
        return error(404, "Not Found", None);
    };
    if bot.strip_prefix("bot") != Some(token.as_str()) {
        return error(401, "Unauthorized", None);
    }
    let params: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) => return error(400, "Bad Request: the request body is not JSON", None),
        }
    };
    let method = method.to_string();
    {
        let mut s = lock(&state);
        s.calls.push(Call {
            method: method.clone(),
            params: params.clone(),
            at: Instant::now(),
        });
        let formatted = params.get("parse_mode").is_some();
        if let Some(i) = s
            .failures
            .iter()
            .position(|f| f.method == method && (!f.formatted_only || formatted))
        {
            let f = s.failures.remove(i);
            return error(f.status, &f.description, f.retry_after);
        }
    }
    match method.as_str() {
        "getMe" => ok(
            json!({"id": 4242, "is_bot": true, "first_name": "OpenIntent", "username": "openintent_test_bot"}),
        ),
        "getUpdates" => get_updates(&params, &state, &notify).await,
        "sendMessage" => {
            let r = send_message(&params, &state);
            let until = Instant::now() + Duration::from_secs(60);
            while lock(&state).stalling_replies && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            r
        }
        "editMessageText" => edit_message(&params, &state),
        "sendChatAction" => answer(checks::chat_action(&params)),
        "answerCallbackQuery" => {
            let issued = lock(&state).callbacks.clone();
            answer(checks::callback_answer(&params, &issued))
        }
        "setMyCommands" => answer(checks::commands(&params)),
        "deleteMessage" => {
            let key = (
                params["chat_id"].as_i64().unwrap_or(0),
                params["message_id"].as_i64().unwrap_or(0),
            );
            let mut s = lock(&state);
            if s.messages.remove(&key) {
                ok(json!(true))
            } else {
                error(400, "Bad Request: message to delete not found", None)
            }
        }
        _ => error(404, "Not Found", None),
    }
}

async fn get_updates(
    params: &Value,
    state: &Mutex<State>,
    notify: &Notify,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
    let generation = {
        let mut s = lock(state);
        let confirms = s
            .updates
            .iter()
            .any(|u| u["update_id"].as_i64().unwrap_or(0) < offset);
        if confirms && s.lose_confirmations > 0 {
            s.lose_confirmations -= 1;
            return error(502, "Bad Gateway", None);
        }
        s.poll_generation += 1;
        if offset > s.confirmed {
            s.confirmed = offset;
            s.updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
        }
        s.poll_generation
    };
    // Wake an older poll so it can end with 409.
    notify.notify_waiters();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let wake = notify.notified();
        {
            let s = lock(state);
            if s.poll_generation != generation {
                return error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                    None,
                );
            }
            let ready: Vec<Value> = s
                .updates
                .iter()
                .filter(|_| !s.holding)
                .filter(|u| u["update_id"].as_i64().unwrap_or(0) >= offset)
                .take(100)
                .cloned()
                .collect();
            if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                return ok(Value::Array(ready));
            }
        }
        let _ = tokio::time::timeout_at(deadline, wake).await;
    }
}

/// `true`, or the refusal.
fn answer(checked: Result<(), checks::Refusal>) -> Result<Response<Full<Bytes>>, Infallible> {
    match checked {
        Ok(()) => ok(json!(true)),
        Err((status, description, retry)) => error(status, &description, retry),
    }
}

fn send_message(params: &Value, state: &Mutex<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    let Some(chat_id) = params["chat_id"].as_i64() else {
        return error(400, "Bad Request: chat_id is empty", None);
    };
    if let Err(e) = check_text(params) {
        return error(400, &e, None);
    }
    let mut s = lock(state);
    let checked = checks::reply_markup(params.get("reply_markup"))
        .and_then(|()| checks::reply_to(params, |id| s.messages.contains(&(chat_id, id))));
    if let Err((status, description, retry)) = checked {
        return error(status, &description, retry);
    }
    let message_id = s.next_message;
    s.next_message += 1;
    s.messages.insert((chat_id, message_id));
    s.sent.push(Sent {
        chat_id,
        message_id,
        text: params["text"].as_str().unwrap_or("").to_string(),
        parse_mode: params["parse_mode"].as_str().map(str::to_string),
        reply_markup: params.get("reply_markup").cloned(),
        reply_to: params["reply_parameters"]["message_id"].as_i64(),
        edits: Vec::new(),
    });
    ok(json!({"message_id": message_id, "date": 1_700_000_000,
              "chat": {"id": chat_id, "type": "private"},
              "text": params["text"]}))
}

fn edit_message(params: &Value, state: &Mutex<State>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (Some(chat_id), Some(message_id)) =
        (params["chat_id"].as_i64(), params["message_id"].as_i64())
    else {
        return error(
            400,
            "Bad Request: message identifier is not specified",
            None,
        );
    };
    if let Err(e) = check_text(params) {
        return error(400, &e, None);
    }
    let text = params["text"].as_str().unwrap_or("").to_string();
    let mut s = lock(state);
    if let Err((status, description, retry)) = checks::reply_markup(params.get("reply_markup")) {
        return error(status, &description, retry);
    }
    let recent = s.edits.entry(chat_id).or_default();
    if let Err((status, description, retry)) = checks::edit_rate(recent, Instant::now()) {
        s.rate_limited += 1;
        return error(status, &description, retry);
    }
    let Some(m) = s
        .sent
        .iter_mut()
        .find(|m| m.chat_id == chat_id && m.message_id == message_id)
    else {
        return error(400, "Bad Request: message to edit not found", None);
    };
    if m.current() == text {
        return error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
            None,
        );
    }
    m.edits.push(text.clone());
    ok(json!({"message_id": message_id, "date": 1_700_000_000,
              "chat": {"id": chat_id, "type": "private"}, "text": text}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::BotApi;

    #[tokio::test]
    async fn a_second_poller_ends_the_first_with_409() {
        let fake = FakeBotApi::start("1:t").await.unwrap();
        let first = BotApi::new(&fake.url(), "1:t");
        let second = BotApi::new(&fake.url(), "1:t");
        let t0 = std::time::Instant::now();
        let pending =
            tokio::spawn(async move { first.get_updates(0, Duration::from_secs(20)).await });
        // The first poll is in: its call is recorded.
        while fake.calls_of("getUpdates").is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let newer =
            tokio::spawn(async move { second.get_updates(0, Duration::from_secs(1)).await });
        let ended = pending.await.unwrap().unwrap_err();
        assert!(ended.is_conflict(), "{ended}");
        assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
        // The newer poll is the one that stays: it ends by its own timeout.
        assert_eq!(newer.await.unwrap().unwrap(), Vec::<Value>::new());
    }

    #[tokio::test]
    async fn a_long_button_answer_is_cut_to_what_telegram_takes() {
        let fake = FakeBotApi::start("1:t").await.unwrap();
        let pressed = fake.push_callback(5, 7, 1, "/model x");
        let api = BotApi::new(&fake.url(), "1:t");
        let id = format!("cb{}", pressed.update_id);
        api.answer_callback_query(&id, &"é".repeat(300))
            .await
            .unwrap();
        let sent = fake.calls_of("answerCallbackQuery").pop().unwrap();
        let text = sent.params["text"].as_str().unwrap();
        assert_eq!(text.chars().count(), 200);
        assert!(text.ends_with('…'));
        // An id the fake never handed out is refused, as Telegram does.
        assert!(api.answer_callback_query("cb999", "x").await.is_err());
    }

    #[test]
    fn html_is_checked_as_telegram_checks_it() {
        assert_eq!(
            parse_html("<b>a &lt; b</b> &amp; &#128512;").unwrap(),
            "a < b & 😀"
        );
        assert!(
            parse_html("<b>x</i>")
                .unwrap_err()
                .contains("Unmatched end tag")
        );
        assert!(
            parse_html("<h1>x</h1>")
                .unwrap_err()
                .contains("Unsupported start tag \"h1\"")
        );
        assert!(
            parse_html("a & b")
                .unwrap_err()
                .contains("Character entity expected")
        );
        assert!(
            parse_html("<b>open")
                .unwrap_err()
                .contains("Can't find end tag")
        );
        assert!(parse_html("<a>x</a>").unwrap_err().contains("href"));
    }

    /// Whatever the renderer makes of any Markdown is HTML Telegram
    /// accepts, and its plain text is what Telegram would show.
    #[test]
    fn rendered_markdown_always_parses() {
        let samples = [
            "# T\n\n**b** *i* ~~s~~ `c<d>` [l](https://a.b/?x=1&y=2) <b>raw</b> & ; &amp;",
            "- a\n  - b\n    1. c\n\n> q *x*\n> > deeper\n\n```\n<&>\n```",
            "| h | i |\n|---|---|\n| <x> | & |\n\n***\n\n- [ ] todo\n- [x] done",
            "*unclosed **mixed _things `and [links](javascript:x) ![img](http://i/p.png)",
        ];
        for md in samples {
            for c in crate::format::render_markdown(md, 4096) {
                let html = c.html.unwrap();
                let visible = parse_html(&html).unwrap_or_else(|e| panic!("{e}\n{html}"));
                assert_eq!(visible, c.plain, "{html}");
            }
        }
    }
}
