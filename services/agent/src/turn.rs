//! What the agent keeps between the intents of a chat: its history in
//! memory (read before an intent, written with the episode in one call
//! after `Done`), and the context window the router last reported.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oi_ipc_schema::agent::IntentResult;
use oi_ipc_schema::llm::ChatMessage;
use oi_ipc_schema::memory::{self, ChatId, Episode, Turn};
use oi_kernel::audit::now_ms;
use oi_kernel::client::{BusClient, CallOptions};
use serde_json::json;
use tokio::sync::OwnedMutexGuard;
use tracing::{info, warn};

/// Above this many remembered windows the map starts over.
const MAX_WINDOWS: usize = 4096;

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-chat bookkeeping shared by the agent's intents.
#[derive(Default)]
pub struct Books {
    /// Held from just before a chat's `Done` until its turn is written, so
    /// the chat's next intent reads its history only after that.
    writes: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The window of the model that last answered, by chat and requested
    /// alias: the next intent's first request is sized for it.
    windows: Mutex<HashMap<(String, String), u32>>,
}

impl Books {
    fn write_lock(&self, chat: &str) -> Arc<tokio::sync::Mutex<()>> {
        locked(&self.writes)
            .entry(chat.to_string())
            .or_default()
            .clone()
    }

    /// Waits until the chat's last turn is written.
    pub async fn settled(&self, chat: &str) {
        if chat.is_empty() {
            return;
        }
        let lock = self.write_lock(chat);
        drop(lock.lock().await);
        drop(lock);
        self.release(chat, None);
    }

    /// Claims the chat until its turn is written (dropping the guard).
    pub async fn claim(&self, chat: &str) -> Option<OwnedMutexGuard<()>> {
        if chat.is_empty() {
            return None;
        }
        Some(self.write_lock(chat).lock_owned().await)
    }

    /// Forgets the chat's lock when nobody else holds or waits on it.
    pub fn release(&self, chat: &str, guard: Option<OwnedMutexGuard<()>>) {
        drop(guard);
        let mut writes = locked(&self.writes);
        if writes.get(chat).is_some_and(|l| Arc::strong_count(l) == 1) {
            writes.remove(chat);
        }
    }

    pub fn window(&self, chat: &str, alias: &str) -> u32 {
        locked(&self.windows)
            .get(&(chat.to_string(), alias.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub fn note_window(&self, chat: &str, alias: &str, window: u32) {
        if window == 0 {
            return;
        }
        let mut w = locked(&self.windows);
        if w.len() >= MAX_WINDOWS {
            w.clear();
        }
        w.insert((chat.to_string(), alias.to_string()), window);
    }
}

/// The chat's history window from memory (empty, logged, when memory
/// does not answer).
pub async fn load_history(client: &BusClient, chat: &str) -> Vec<ChatMessage> {
    match client
        .call(
            memory::HISTORY_WINDOW,
            &ChatId { chat: chat.into() },
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await
    {
        Ok(h) => h
            .messages
            .into_iter()
            .filter_map(|m| match m.role.as_str() {
                "user" => Some(ChatMessage::user(m.content)),
                "assistant" => Some(ChatMessage::assistant(m.content)),
                _ => None,
            })
            .collect(),
        Err(e) => {
            warn!(%chat, "no history from memory: {e}");
            Vec::new()
        }
    }
}

/// What the finished intent leaves in memory: the exchange (when the
/// chat keeps history and the intent succeeded), the episode, and which
/// model answered (for `/status`; after a failover it is not the chat's
/// own model).
pub fn turn(chat: &str, text: &str, keep_history: bool, r: &IntentResult) -> Turn {
    let calls: Vec<serde_json::Value> = r
        .tool_calls
        .iter()
        .map(|c| {
            json!({"name": c.name, "arguments": c.arguments, "service": c.service,
                   "duration_ms": c.duration_ms, "error": c.error})
        })
        .collect();
    let exchange = (keep_history && !chat.is_empty() && r.stop.is_success())
        .then(|| (text.to_string(), r.answer.clone()));
    let last_answer = (!chat.is_empty() && !r.provider.is_empty()).then(|| {
        let mut value = format!("{} ({})", r.provider, r.model);
        if r.fallbacks > 0 {
            value.push_str(&format!(
                ", after {} failover{}",
                r.fallbacks,
                if r.fallbacks == 1 { "" } else { "s" }
            ));
        }
        value
    });
    Turn {
        exchange,
        episode: Episode {
            id: 0,
            chat: chat.into(),
            intent: text.into(),
            answer: r.answer.clone(),
            tool_calls_json: serde_json::Value::Array(calls).to_string(),
            prompt_tokens: u32::try_from(r.prompt_tokens).unwrap_or(u32::MAX),
            completion_tokens: u32::try_from(r.completion_tokens).unwrap_or(u32::MAX),
            provider: r.provider.clone(),
            ts_ms: now_ms(),
        },
        last_answer,
    }
}

/// Writes the turn with one memory call; a failure is logged (the user
/// already has the answer).
pub async fn write(client: &BusClient, t: &Turn) {
    if let Err(e) = client
        .call(
            memory::TURN,
            t,
            CallOptions::deadline(Duration::from_secs(10)),
        )
        .await
    {
        info!(chat = %t.episode.chat, "turn not recorded in memory: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_ipc_schema::agent::Stop;

    #[test]
    fn a_turn_keeps_history_only_for_a_successful_intent_of_a_chat() {
        let mut r = IntentResult::new("i1", "agent", Stop::Answered);
        r.answer = "four".into();
        r.provider = "fast".into();
        r.model = "m".into();
        r.fallbacks = 1;
        let t = turn("cli:ann", "2+2?", true, &r);
        assert_eq!(t.exchange, Some(("2+2?".into(), "four".into())));
        assert_eq!(t.last_answer.as_deref(), Some("fast (m), after 1 failover"));
        assert_eq!(turn("cli:ann", "2+2?", false, &r).exchange, None);
        assert_eq!(turn("", "2+2?", true, &r).exchange, None);
        assert_eq!(turn("", "2+2?", true, &r).last_answer, None);
        r.stop = Stop::Deadline;
        assert_eq!(turn("cli:ann", "2+2?", true, &r).exchange, None);
    }

    #[tokio::test]
    async fn the_next_intent_of_a_chat_waits_for_the_last_turn_to_be_written() {
        let books = Arc::new(Books::default());
        let guard = books.claim("cli:ann").await;
        let waiter = {
            let books = books.clone();
            tokio::spawn(async move { books.settled("cli:ann").await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "read history before the write");
        // Another chat is not held up.
        tokio::time::timeout(Duration::from_secs(1), books.settled("cli:bob"))
            .await
            .unwrap();
        books.release("cli:ann", guard);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .unwrap()
            .unwrap();
        assert!(
            locked(&books.writes).is_empty(),
            "a settled chat left its lock behind"
        );
    }
}
