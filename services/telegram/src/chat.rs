//! Telegram as a gateway-kit [`Surface`], and its updates routed: strangers
//! refused or paired here, `/cancel` at once, everything else in its
//! chat's worker (in order, one at a time; chats run in parallel), where
//! the kit's `conversation` makes it a command or an intent. Button
//! presses (the `/model <alias>` buttons of `/models`) are Telegram's own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oi_client::gateway::conversation::{self, Kind, NOTHING_RUNNING};
use oi_client::gateway::{Redeemed, Running, Surface, Workers};
use oi_ipc_schema::agent::CommandReply;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::config::Format;

use crate::Gateway;
use crate::api::ApiError;
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
    running: Running<i64>,
    /// The update each chat's worker is handling, for [`Surface::replying`].
    current: Mutex<HashMap<i64, i64>>,
}

impl Chats {
    fn current(&self) -> std::sync::MutexGuard<'_, HashMap<i64, i64>> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Chats {
    fn default() -> Self {
        Chats {
            workers: Arc::new(Workers::new(WORKER_IDLE)),
            running: Running::default(),
            current: Mutex::new(HashMap::new()),
        }
    }
}

/// Records that the reply ending an update is being sent (see
/// [`Surface::replying`]).
async fn replying(gw: &Gateway, update_id: i64) {
    if let Err(e) = gw.store.mark_replying(update_id).await {
        warn!(update = update_id, "{e}");
    }
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
        replying(gw, id).await;
        send_text(
            gw,
            chat,
            "I can only read text messages so far.",
            Some(m.message_id),
        )
        .await;
        return done(gw, id).await;
    }
    if conversation::kind(&text) == Kind::Cancel {
        if !gw.chats.running.cancel(&chat) {
            replying(gw, id).await;
            send_text(gw, chat, NOTHING_RUNNING, Some(m.message_id)).await;
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
    gw.chats.current().insert(chat, q.update_id);
    match q.job {
        Job::Text { message_id, text } if conversation::kind(&text) != Kind::Intent => {
            conversation::command(&*gw, &gw.client, chat, message_id, &text).await;
        }
        Job::Text { message_id, text } => {
            let every = Duration::from_millis(gw.settings.get().telegram.edit_interval_ms);
            conversation::intent(
                &*gw,
                &gw.client,
                &gw.chats.running,
                chat,
                message_id,
                text,
                every,
            )
            .await
        }
        Job::Button { query_id, data } => button(&gw, chat, &query_id, &data).await,
    }
    gw.chats.current().remove(&chat);
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
    if conversation::kind(text) == Kind::Pair {
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
    match conversation::command_text(&gw.client, &chat_key(chat), data).await {
        Ok(reply) => {
            let _ = api.answer_callback_query(query_id, &reply.text).await;
            send_text(gw, chat, &reply.text, None).await;
        }
        Err(e) => {
            let _ = api.answer_callback_query(query_id, &e).await;
        }
    }
}

/// Sends one message: formatted if it has HTML, plain if Telegram refuses
/// the formatting. Returns its id; a failure is logged.
async fn send(
    gw: &Gateway,
    chat: i64,
    c: &Chunk,
    reply_to: Option<i64>,
    markup: Option<Value>,
) -> Option<i64> {
    match try_send(gw, chat, c, reply_to, markup).await {
        Ok(id) => Some(id),
        Err(e) => {
            warn!(chat, "cannot send a message: {e}");
            None
        }
    }
}

/// [`send`], with the failure for the caller.
async fn try_send(
    gw: &Gateway,
    chat: i64,
    c: &Chunk,
    reply_to: Option<i64>,
    markup: Option<Value>,
) -> Result<i64, ApiError> {
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
            Ok(id) => return Ok(id),
            Err(e) if e.is_bad_formatting() => {
                warn!(
                    chat,
                    "Telegram refused the formatting ({e}); sending plain text"
                );
            }
            Err(e) => return Err(e),
        }
    }
    params["text"] = json!(c.plain);
    api.send_message(params).await
}

/// Markdown rendered as answers are, in as many messages as it takes.
fn render(gw: &Gateway, markdown: &str) -> Vec<Chunk> {
    if gw.settings.get().telegram.format == Format::Html {
        format::render_markdown(markdown, MESSAGE_LIMIT)
    } else {
        format::render_plain(markdown, MESSAGE_LIMIT)
    }
}

/// A message another service hands the gateway (`telegram.deliver`): sent
/// like an answer, and the first failure is the caller's to retry.
pub async fn deliver(gw: &Gateway, chat: i64, markdown: &str) -> Result<(), ApiError> {
    for c in render(gw, markdown) {
        try_send(gw, chat, &c, None, None).await?;
    }
    Ok(())
}

impl Surface for Gateway {
    type Chat = i64;
    type Message = i64;

    fn chat_key(&self, chat: i64) -> String {
        chat_key(chat)
    }

    fn fits(&self, text: &str) -> bool {
        tg_len(text) <= MESSAGE_LIMIT
    }

    async fn send(&self, chat: i64, text: &str, reply_to: Option<i64>) {
        send_text(self, chat, text, reply_to).await
    }

    async fn send_status(&self, chat: i64, text: &str) -> Option<i64> {
        let params = json!({"chat_id": chat, "text": text, "disable_notification": true});
        match self.api.get().send_message(params).await {
            Ok(id) => Some(id),
            Err(e) => {
                warn!(chat, "cannot send the status message: {e}");
                None
            }
        }
    }

    async fn edit(&self, chat: i64, message: i64, text: &str) {
        let params = json!({"chat_id": chat, "message_id": message, "text": text});
        if let Err(e) = self.api.get().edit_message_text(params).await {
            warn!(chat, "cannot update the status message: {e}");
        }
    }

    async fn typing(&self, chat: i64) {
        // Not awaited: a slow Bot API must not hold up the intent's events.
        let api = self.api.get();
        tokio::spawn(async move {
            let _ = api.send_chat_action(chat, "typing").await;
        });
    }

    fn typing_every(&self) -> Duration {
        TYPING_EVERY
    }

    async fn answer(&self, chat: i64, reply_to: i64, markdown: &str) {
        let chunks = render(self, markdown);
        for (i, c) in chunks.iter().enumerate() {
            send(self, chat, c, (i == 0).then_some(reply_to), None).await;
        }
    }

    async fn replying(&self, chat: i64) {
        let update = self.chats.current().get(&chat).copied();
        if let Some(id) = update {
            replying(self, id).await;
        }
    }

    async fn command_reply(&self, chat: i64, reply_to: i64, reply: &CommandReply) {
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
        send_preformatted(self, chat, &reply.text, Some(reply_to), markup).await;
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
    fn chat_keys() {
        assert_eq!(chat_key(-100), "telegram:-100");
    }
}
