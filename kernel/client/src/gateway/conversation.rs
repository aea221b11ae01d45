//! What a gateway does with one message of an allowed chat, on any
//! [`Surface`]: a command goes to the agent's chat commands, anything else
//! is an intent whose events become a typing indicator, a status message
//! edited (at most every `edit_every`) with each tool call, one notice on
//! failover and the answer. `/cancel` stops the chat's running intent.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use oi_ipc_schema::agent::{AgentEvent, IntentRequest};
use oi_kernel::client::BusClient;
use tokio::sync::oneshot;
use tracing::info;

use super::{Progress, Surface};
use crate::display::summary_line;
use crate::intent::{Intent, UNTIL_THE_AGENTS_LIMIT};

/// What a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `/cancel`: handled at once, outside the chat's queue.
    Cancel,
    /// `/pair <code>`: a stranger's way in.
    Pair,
    /// Another `/command` (its word, without a `@bot` suffix).
    Command(&'a str),
    Intent,
}

/// The command word of a message (`/models@my_bot` -> `/models`).
pub fn command_word(text: &str) -> Option<&str> {
    let w = text.split_whitespace().next()?;
    w.starts_with('/').then(|| w.split('@').next().unwrap_or(w))
}

/// Whether `text` is a command, and which, or an intent.
pub fn kind(text: &str) -> Kind<'_> {
    match command_word(text) {
        Some("/cancel") => Kind::Cancel,
        Some("/pair") => Kind::Pair,
        Some(w) => Kind::Command(w),
        None => Kind::Intent,
    }
}

/// The running intent of each chat, to cancel it.
pub struct Running<C>(Mutex<HashMap<C, oneshot::Sender<()>>>);

impl<C> Default for Running<C> {
    fn default() -> Self {
        Running(Mutex::new(HashMap::new()))
    }
}

impl<C: Eq + Hash> Running<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<C, oneshot::Sender<()>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn start(&self, chat: C) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(chat, tx);
        rx
    }
    fn finish(&self, chat: &C) {
        self.lock().remove(chat);
    }
    /// Stops the chat's running intent; false if none runs.
    pub fn cancel(&self, chat: &C) -> bool {
        match self.lock().remove(chat) {
            Some(stop) => stop.send(()).is_ok(),
            None => false,
        }
    }
}

/// Said to `/cancel` with nothing running.
pub const NOTHING_RUNNING: &str = "Nothing is running.";
/// Said to `/pair` in a chat that is already allowed.
pub const ALREADY_PAIRED: &str = "This chat already gets answers.";

/// A command's text from the agent (or why there is none).
pub async fn command_text(
    client: &BusClient,
    chat_key: &str,
    text: &str,
) -> Result<oi_ipc_schema::agent::CommandReply, String> {
    crate::chat::command(client, chat_key, text)
        .await
        .map_err(crate::intent::in_words)
}

/// Runs a chat command and sends its reply; `/help` learns `/cancel`,
/// which only gateways have.
pub async fn command<S: Surface>(
    surface: &S,
    client: &BusClient,
    chat: S::Chat,
    reply_to: S::Message,
    text: &str,
) {
    let word = command_word(text).unwrap_or("");
    if word == "/pair" {
        surface.replying(chat).await;
        return surface.send(chat, ALREADY_PAIRED, Some(reply_to)).await;
    }
    let reply = command_text(client, &surface.chat_key(chat), text).await;
    surface.replying(chat).await;
    match reply {
        Ok(mut reply) => {
            if matches!(word, "/help" | "/start") {
                reply.text = reply.text.replacen(
                    "\nAnything else",
                    "\n  /cancel          stop the request being worked on\nAnything else",
                    1,
                );
            }
            surface.command_reply(chat, reply_to, &reply).await;
        }
        Err(e) => surface.send(chat, &format!("⚠️ {e}"), Some(reply_to)).await,
    }
}

/// Runs an intent for the chat and delivers what happens, until its end
/// or `/cancel`.
pub async fn intent<S: Surface>(
    surface: &S,
    client: &BusClient,
    running: &Running<S::Chat>,
    chat: S::Chat,
    reply_to: S::Message,
    text: String,
    edit_every: Duration,
) where
    S::Chat: Eq + Hash,
{
    let req = IntentRequest {
        chat: surface.chat_key(chat),
        text,
        history: true,
        ..IntentRequest::default()
    };
    let mut stream = match Intent::start(client, &req, UNTIL_THE_AGENTS_LIMIT) {
        Ok(st) => st,
        Err(e) => {
            surface.replying(chat).await;
            return surface.send(chat, &format!("⚠️ {e}"), Some(reply_to)).await;
        }
    };
    let mut stop = running.start(chat);
    let mut status = Status::default();
    let mut typing = tokio::time::interval(surface.typing_every());
    let mut dirty = false;
    let mut last_edit = tokio::time::Instant::now() - edit_every;
    let mut noticed = false;
    loop {
        tokio::select! {
            _ = &mut stop => {
                drop(stream);
                info!(%chat, "intent cancelled from the chat");
                status.show(surface, chat, true).await;
                surface.replying(chat).await;
                surface.send(chat, "Cancelled.", Some(reply_to)).await;
                return;
            }
            _ = typing.tick() => surface.typing(chat).await,
            _ = tokio::time::sleep_until(last_edit + edit_every), if dirty => {
                status.show(surface, chat, false).await;
                last_edit = tokio::time::Instant::now();
                dirty = false;
            }
            step = stream.next() => match step {
                Some(Ok(AgentEvent::ToolStarted { id, name, arguments })) => {
                    status.progress.started(&id, &name, &arguments);
                    dirty = true;
                }
                Some(Ok(AgentEvent::ToolFinished(call))) => {
                    status.progress.finished(&call);
                    dirty = true;
                }
                Some(Ok(AgentEvent::Notice(n))) => {
                    // One notice per intent, however many failovers.
                    if !noticed {
                        noticed = true;
                        surface.send(chat, &format!("⚠️ {n}"), None).await;
                    }
                }
                Some(Ok(AgentEvent::Done(r))) => {
                    status.show(surface, chat, true).await;
                    let mut text = if r.answer.trim().is_empty() {
                        "(The model gave an empty answer.)".to_string()
                    } else {
                        r.answer.clone()
                    };
                    if crate::chat::shows_tokens(client, &surface.chat_key(chat)).await {
                        text.push_str("\n\n");
                        text.push_str(&summary_line(&r));
                    }
                    surface.replying(chat).await;
                    surface.answer(chat, reply_to, &text).await;
                    break;
                }
                Some(Err(why)) => {
                    surface.replying(chat).await;
                    surface.send(chat, &format!("⚠️ {}", capitalised(&why)), Some(reply_to)).await;
                    break;
                }
                Some(Ok(AgentEvent::Started { .. })) => {}
                None => break,
            }
        }
    }
    running.finish(&chat);
}

/// The status message of one intent: sent with the first tool call, then
/// edited.
struct Status<M> {
    progress: Progress,
    message: Option<M>,
}

impl<M> Default for Status<M> {
    fn default() -> Self {
        Status {
            progress: Progress::default(),
            message: None,
        }
    }
}

impl<M: Copy> Status<M> {
    async fn show<S: Surface<Message = M>>(&mut self, surface: &S, chat: S::Chat, done: bool) {
        if self.progress.is_empty() {
            return;
        }
        let text = self.progress.text(done, |t| surface.fits(t));
        match self.message {
            Some(id) => surface.edit(chat, id, &text).await,
            None => self.message = surface.send_status(chat, &text).await,
        }
    }
}

/// "the agent ended ..." -> "The agent ended ...".
fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_message_is() {
        assert_eq!(command_word("/models@my_bot"), Some("/models"));
        assert_eq!(command_word("  /model two"), Some("/model"));
        assert_eq!(command_word("what is /etc"), None);
        assert_eq!(kind("/cancel@bot"), Kind::Cancel);
        assert_eq!(kind("/pair 123"), Kind::Pair);
        assert_eq!(kind("/model two"), Kind::Command("/model"));
        assert_eq!(kind("list files"), Kind::Intent);
        assert_eq!(capitalised("the agent"), "The agent");
    }

    #[test]
    fn cancel_reaches_the_running_intent_once() {
        let r: Running<i64> = Running::default();
        assert!(!r.cancel(&1));
        let mut rx = r.start(1);
        assert!(r.cancel(&1));
        assert!(rx.try_recv().is_ok());
        assert!(!r.cancel(&1));
        let _rx = r.start(2);
        r.finish(&2);
        assert!(!r.cancel(&2));
    }
}
