//! One worker per chat: its messages are handled in order, one at a time
//! (different chats run in parallel). A message is a command (`/models`,
//! `/model`, ... through `agent.command`), a press of one of the bot's
//! buttons, or an intent: the agent's events become a typing indicator, a
//! status message edited with each tool call, one notice on failover, and
//! the answer. `/cancel` is handled at once, outside the queue.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Format;
use oi_client::display::summary_line;
use oi_client::gateway::{Progress, Redeemed, Workers};
use oi_client::intent::{Intent, UNTIL_THE_AGENTS_LIMIT};
use oi_client::{BusError, chat as commands};
use oi_ipc_schema::agent::{AgentEvent, CommandReply, IntentRequest, IntentResult};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::Gateway;
use crate::format::{self, Chunk, MESSAGE_LIMIT, escape, tg_len};
use crate::types::{Message, Update};

/// Telegram shows "typing…" for 5 s; it is renewed before that.
const TYPING_EVERY: Duration = Duration::from_secs(4);
/// A chat's worker ends after this long without messages.
const WORKER_IDLE: Duration = Duration::from_secs(600);

pub const REFUSAL: &str = "This bot is private: it answers only the chats its owner allowed.";

/// The agent's chat for a Telegram chat.
pub fn chat_key(chat: i64) -> String {
    format!("telegram:{chat}")
}

enum Job {
    Text { message_id: i64, text: String },
    Button { query_id: String, data: String },
}

struct Queued {
    update_id: i64,
    job: Job,
}

pub struct Chats {
    workers: Arc<Workers<i64, Queued>>,
    /// The running intent of each chat, to cancel it.
    running: Mutex<HashMap<i64, oneshot::Sender<()>>>,
}

impl Default for Chats {
    fn default() -> Self {
        Chats {
            workers: Arc::new(Workers::new(WORKER_IDLE)),
            running: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The command word of a message (`/models@my_bot` -> `/models`).
fn command_word(text: &str) -> Option<&str> {
    let w = text.split_whitespace().next()?;
    w.starts_with('/').then(|| w.split('@').next().unwrap_or(w))
}

/// Marks an update handled.
pub async fn done(gw: &Gateway, update_id: i64) {
    if let Err(e) = gw.store.mark_handled(update_id).await {
        warn!(update = update_id, "{e}");
    }
}

/// Routes one new update: strangers are refused here, `/cancel` acts at
/// once, everything else queues in its chat's worker.
pub async fn dispatch(gw: &Arc<Gateway>, u: Update) {
    let id = u.update_id;
    if let Some(q) = u.callback_query {
        let Some(chat) = q.message.as_ref().map(|m| m.chat.id) else {
            let _ = gw
                .api
                .get()
                .answer_callback_query(&q.id, "This button has expired.")
                .await;
            return done(gw, id).await;
        };
        if !gw.access().allows(chat) {
            warn!(
                chat,
                user = q.from.id,
                "button press from a chat that is not allowed; refused"
            );
            let _ = gw.api.get().answer_callback_query(&q.id, REFUSAL).await;
            return done(gw, id).await;
        }
        return enqueue(
            gw,
            chat,
            Queued {
                update_id: id,
                job: Job::Button {
                    query_id: q.id,
                    data: q.data.unwrap_or_default(),
                },
            },
        );
    }
    let Some(m) = u.message else {
        return done(gw, id).await;
    };
    if m.from.as_ref().is_some_and(|f| f.is_bot) {
        return done(gw, id).await;
    }
    let chat = m.chat.id;
    let text = m
        .text
        .clone()
        .or_else(|| m.caption.clone())
        .unwrap_or_default();
    if !gw.access().allows(chat) {
        stranger(gw, &m, &text).await;
        return done(gw, id).await;
    }
    crate::account::record(gw, &m);
    if text.trim().is_empty() {
        send_text(
            gw,
            chat,
            "I can only read text messages so far.",
            Some(m.message_id),
        )
        .await;
        return done(gw, id).await;
    }
    if command_word(&text) == Some("/cancel") {
        let running = lock(&gw.chats.running).remove(&chat);
        match running {
            Some(stop) => {
                let _ = stop.send(());
            }
            None => send_text(gw, chat, "Nothing is running.", Some(m.message_id)).await,
        }
        return done(gw, id).await;
    }
    enqueue(
        gw,
        chat,
        Queued {
            update_id: id,
            job: Job::Text {
                message_id: m.message_id,
                text,
            },
        },
    );
}

fn enqueue(gw: &Arc<Gateway>, chat: i64, q: Queued) {
    let handle = {
        let gw = gw.clone();
        move |chat, q| handle(gw.clone(), chat, q)
    };
    gw.chats.workers.enqueue(chat, q, &handle);
}

/// One message of a chat, in its turn.
async fn handle(gw: Arc<Gateway>, chat: i64, q: Queued) {
    match q.job {
        Job::Text { message_id, text } if command_word(&text).is_some() => {
            command(&gw, chat, message_id, &text).await;
        }
        Job::Text { message_id, text } => intent(&gw, chat, message_id, text).await,
        Job::Button { query_id, data } => button(&gw, chat, &query_id, &data).await,
    }
    done(&gw, q.update_id).await;
}

/// A stranger wrote: `/pair <code>` may let the chat in; anything else
/// gets the refusal (at most once per interval) and is logged.
async fn stranger(gw: &Gateway, m: &Message, text: &str) {
    let chat = m.chat.id;
    let (user, username) = m
        .from
        .as_ref()
        .map(|f| (f.id, f.username.clone().unwrap_or_default()))
        .unwrap_or_default();
    if command_word(text) == Some("/pair") {
        let code = text.split_whitespace().nth(1).unwrap_or("");
        let outcome = gw.access().redeem(code, Instant::now());
        let reply = match outcome {
            Redeemed::Paired => {
                let title = m.chat.display_name();
                if let Err(e) = gw
                    .store
                    .pair(chat, title.clone(), oi_kernel::audit::now_ms())
                    .await
                {
                    warn!("{e}");
                    send_text(
                        gw,
                        chat,
                        "Pairing failed: the gateway cannot save it. Try again.",
                        None,
                    )
                    .await;
                    return;
                }
                gw.access().add_paired(chat, title.clone());
                info!(chat, user, %username, %title, "chat paired");
                "Paired: this chat gets answers now. Send /help to see what you can do."
            }
            Redeemed::Wrong => {
                warn!(chat, user, %username, "wrong pairing code");
                "That code is wrong or has expired. Run `oictl telegram pair` for a new one."
            }
            Redeemed::Voided => {
                warn!(chat, user, %username, "too many wrong pairing codes; open codes voided");
                "Too many wrong codes: every open code is void now. Run `oictl telegram pair` again."
            }
        };
        return send_text(gw, chat, reply, Some(m.message_id)).await;
    }
    warn!(chat, user, %username, "message from a chat that is not allowed; refused");
    if gw.access().refuse_now(chat, Instant::now()) {
        let text = format!(
            "{REFUSAL} This chat's id is {chat}. If you are the owner, run `oictl telegram pair` and send the code here."
        );
        send_text(gw, chat, &text, Some(m.message_id)).await;
    }
}

async fn run_command(gw: &Gateway, chat: i64, text: &str) -> Result<CommandReply, String> {
    commands::command(&gw.client, &chat_key(chat), text)
        .await
        .map_err(|e| match e {
            BusError::Remote { message, .. } => message,
            other => other.to_string(),
        })
}

async fn command(gw: &Gateway, chat: i64, message_id: i64, text: &str) {
    let word = command_word(text).unwrap_or("");
    if word == "/pair" {
        return send_text(
            gw,
            chat,
            "This chat already gets answers.",
            Some(message_id),
        )
        .await;
    }
    match run_command(gw, chat, text).await {
        Ok(reply) => {
            let mut body = reply.text;
            if matches!(word, "/help" | "/start") {
                body = body.replacen(
                    "\nAnything else",
                    "\n  /cancel          stop the request being worked on\nAnything else",
                    1,
                );
            }
            let buttons: Vec<Value> = reply
                .choices
                .iter()
                .filter(|c| c.len() <= 64)
                .map(|c| {
                    let label = c.strip_prefix("/model ").unwrap_or(c);
                    json!({"text": label, "callback_data": c})
                })
                .collect();
            let markup = (!buttons.is_empty()).then(|| {
                let rows: Vec<Value> = buttons.chunks(2).map(|r| Value::from(r.to_vec())).collect();
                json!({"inline_keyboard": rows})
            });
            send_preformatted(gw, chat, &body, Some(message_id), markup).await;
        }
        Err(e) => send_text(gw, chat, &format!("⚠️ {e}"), Some(message_id)).await,
    }
}

/// A press of one of the bot's buttons: only the `/model <alias>` buttons
/// of `/models` exist.
async fn button(gw: &Gateway, chat: i64, query_id: &str, data: &str) {
    let api = gw.api.get();
    if !data.starts_with("/model ") {
        let _ = api
            .answer_callback_query(query_id, "This button is not one of mine.")
            .await;
        return;
    }
    match run_command(gw, chat, data).await {
        Ok(reply) => {
            let _ = api.answer_callback_query(query_id, &reply.text).await;
            send_text(gw, chat, &reply.text, None).await;
        }
        Err(e) => {
            let _ = api.answer_callback_query(query_id, &e).await;
        }
    }
}

/// Runs an intent for the chat and delivers what happens.
async fn intent(gw: &Gateway, chat: i64, message_id: i64, text: String) {
    let s = gw.settings.get();
    let api = gw.api.get();
    let req = IntentRequest {
        chat: chat_key(chat),
        text,
        history: true,
        ..IntentRequest::default()
    };
    let mut stream = match Intent::start(&gw.client, &req, UNTIL_THE_AGENTS_LIMIT) {
        Ok(st) => st,
        Err(e) => return send_text(gw, chat, &format!("⚠️ {e}"), Some(message_id)).await,
    };
    let (stop_tx, mut stop_rx) = oneshot::channel();
    lock(&gw.chats.running).insert(chat, stop_tx);
    let edit_every = Duration::from_millis(s.telegram.edit_interval_ms);
    let mut typing = tokio::time::interval(TYPING_EVERY);
    let mut progress = Progress::default();
    let mut status: Option<i64> = None;
    let mut dirty = false;
    let mut last_edit = tokio::time::Instant::now() - edit_every;
    let mut noticed = false;
    loop {
        tokio::select! {
            _ = &mut stop_rx => {
                drop(stream);
                info!(chat, "intent cancelled from the chat");
                if !progress.is_empty() {
                    show_progress(gw, chat, &mut status, &progress, true).await;
                }
                send_text(gw, chat, "Cancelled.", Some(message_id)).await;
                return;
            }
            _ = typing.tick() => {
                let api = api.clone();
                tokio::spawn(async move { let _ = api.send_chat_action(chat, "typing").await; });
            }
            _ = tokio::time::sleep_until(last_edit + edit_every), if dirty => {
                show_progress(gw, chat, &mut status, &progress, false).await;
                last_edit = tokio::time::Instant::now();
                dirty = false;
            }
            step = stream.next() => match step {
                Some(Ok(AgentEvent::ToolStarted { id, name, arguments })) => {
                    progress.started(&id, &name, &arguments);
                    dirty = true;
                }
                Some(Ok(AgentEvent::ToolFinished(call))) => {
                    progress.finished(&call);
                    dirty = true;
                }
                Some(Ok(AgentEvent::Notice(n))) => {
                    // One notice per intent, however many failovers.
                    if !noticed {
                        noticed = true;
                        send_text(gw, chat, &format!("⚠️ {n}"), None).await;
                    }
                }
                Some(Ok(AgentEvent::Done(r))) => {
                    if !progress.is_empty() {
                        show_progress(gw, chat, &mut status, &progress, true).await;
                    }
                    answer(gw, chat, message_id, &r).await;
                    break;
                }
                Some(Err(why)) => {
                    send_text(gw, chat, &format!("⚠️ {}", capitalised(&why)), Some(message_id)).await;
                    break;
                }
                Some(Ok(AgentEvent::Started { .. })) => {}
                None => break,
            }
        }
    }
    lock(&gw.chats.running).remove(&chat);
}

/// "the agent ended ..." -> "The agent ended ...".
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Sends or edits the status message.
async fn show_progress(
    gw: &Gateway,
    chat: i64,
    status: &mut Option<i64>,
    p: &Progress,
    done: bool,
) {
    let text = p.text(done, |t| tg_len(t) <= MESSAGE_LIMIT);
    let api = gw.api.get();
    match status {
        Some(id) => {
            if let Err(e) = api
                .edit_message_text(json!({"chat_id": chat, "message_id": id, "text": text}))
                .await
            {
                warn!(chat, "cannot update the status message: {e}");
            }
        }
        None => {
            match api
                .send_message(json!({"chat_id": chat, "text": text, "disable_notification": true}))
                .await
            {
                Ok(id) => *status = Some(id),
                Err(e) => warn!(chat, "cannot send the status message: {e}"),
            }
        }
    }
}

async fn answer(gw: &Gateway, chat: i64, message_id: i64, r: &IntentResult) {
    let mut text = if r.answer.trim().is_empty() {
        "(The model gave an empty answer.)".to_string()
    } else {
        r.answer.clone()
    };
    if commands::shows_tokens(&gw.client, &chat_key(chat)).await {
        text.push_str("\n\n");
        text.push_str(&summary_line(r));
    }
    let chunks = if gw.settings.get().telegram.format == Format::Html {
        format::render_markdown(&text, MESSAGE_LIMIT)
    } else {
        format::render_plain(&text, MESSAGE_LIMIT)
    };
    for (i, c) in chunks.iter().enumerate() {
        send(gw, chat, c, (i == 0).then_some(message_id), None).await;
    }
}

/// Sends one message: formatted if it has HTML, plain if Telegram refuses
/// the formatting. Returns its id.
async fn send(
    gw: &Gateway,
    chat: i64,
    c: &Chunk,
    reply_to: Option<i64>,
    markup: Option<Value>,
) -> Option<i64> {
    let api = gw.api.get();
    let mut params = json!({"chat_id": chat, "link_preview_options": {"is_disabled": true}});
    if let Some(id) = reply_to {
        params["reply_parameters"] = json!({"message_id": id, "allow_sending_without_reply": true});
    }
    if let Some(m) = markup {
        params["reply_markup"] = m;
    }
    if let Some(html) = &c.html {
        let mut p = params.clone();
        p["text"] = json!(html);
        p["parse_mode"] = json!("HTML");
        match api.send_message(p).await {
            Ok(id) => return Some(id),
            Err(e) if e.is_bad_formatting() => {
                warn!(
                    chat,
                    "Telegram refused the formatting ({e}); sending plain text"
                );
            }
            Err(e) => {
                warn!(chat, "cannot send a message: {e}");
                return None;
            }
        }
    }
    params["text"] = json!(c.plain);
    match api.send_message(params).await {
        Ok(id) => Some(id),
        Err(e) => {
            warn!(chat, "cannot send a message: {e}");
            None
        }
    }
}

/// Sends plain text (split if long).
pub async fn send_text(gw: &Gateway, chat: i64, text: &str, reply_to: Option<i64>) {
    for (i, c) in format::render_plain(text, MESSAGE_LIMIT).iter().enumerate() {
        send(gw, chat, c, reply_to.filter(|_| i == 0), None).await;
    }
}

/// A command's reply: several lines go in a monospace block (the columns
/// of `/models` and `/status` line up); the buttons go on the last message.
async fn send_preformatted(
    gw: &Gateway,
    chat: i64,
    text: &str,
    reply_to: Option<i64>,
    markup: Option<Value>,
) {
    let chunks: Vec<Chunk> = if text.contains('\n') {
        format::split_plain(text, MESSAGE_LIMIT)
            .into_iter()
            .map(|p| Chunk {
                html: Some(format!("<pre>{}</pre>", escape(&p))),
                plain: p,
            })
            .collect()
    } else {
        format::render_plain(text, MESSAGE_LIMIT)
    };
    let last = chunks.len().saturating_sub(1);
    for (i, c) in chunks.iter().enumerate() {
        debug_assert!(tg_len(&c.plain) <= MESSAGE_LIMIT);
        let m = if i == last { markup.clone() } else { None };
        send(gw, chat, c, reply_to.filter(|_| i == 0), m).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_words() {
        assert_eq!(command_word("/models@my_bot"), Some("/models"));
        assert_eq!(command_word("  /model two"), Some("/model"));
        assert_eq!(command_word("what is /etc"), None);
        assert_eq!(chat_key(-100), "telegram:-100");
    }
}
