//! Payloads of the memory service's kernel-facing methods (destination
//! `memory`). The tools it offers the agent (`memory_save`,
//! `memory_search`, `memory_list`, `memory_delete`) take and return JSON
//! text, as every tool does.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::{Call, Json};

pub mod methods {
    /// [`super::HistoryAppend`] -> empty
    pub const HISTORY_APPEND: &str = "history.append";
    /// [`super::ChatId`] -> [`super::History`] (the chat's window)
    pub const HISTORY_WINDOW: &str = "history.window";
    /// [`super::ChatId`] -> empty
    pub const HISTORY_CLEAR: &str = "history.clear";
    /// [`super::Episode`] -> [`super::EpisodeId`]
    pub const EPISODE_RECORD: &str = "episode.record";
    /// [`super::EpisodeQuery`] -> [`super::Episodes`]
    pub const EPISODE_SEARCH: &str = "episode.search";
    /// [`super::ChatId`] -> [`super::ChatSettings`]
    pub const SETTINGS_GET: &str = "settings.get";
    /// [`super::SettingSet`] -> empty
    pub const SETTINGS_SET: &str = "settings.set";
    /// empty -> [`super::IntegrityReport`]
    pub const CHECK: &str = "memory.check";
    /// empty -> JSON: fact and episode counts, the provider's vector space
    /// in use and how many facts have a vector in it, and which embedding
    /// saves and searches use now.
    pub const STATS: &str = "memory.stats";
    /// [`super::AccountSeen`] -> empty. Only a service (a chat gateway)
    /// may call it; the account is filed under the caller's service name,
    /// so one gateway cannot write another's accounts.
    pub const ACCOUNT_SEEN: &str = "account.seen";
    /// JSON `{"gateway": "", "limit": 100}` -> JSON `{"accounts": [...]}`,
    /// most recently seen first; an empty gateway means every gateway.
    /// Only oictl (the owner) may call it.
    pub const ACCOUNT_LIST: &str = "account.list";
    /// JSON `{"gateway": "...", "user_id": "..."}` -> JSON
    /// `{"forgotten": bool}`. Only oictl may call it.
    pub const ACCOUNT_FORGET: &str = "account.forget";
    /// [`super::Turn`] -> [`super::EpisodeId`]: what one intent leaves
    /// behind (the exchange for the chat's history, the episode, the model
    /// that answered), written in one transaction.
    pub const TURN: &str = "memory.turn";
}

/// The memory service's destination.
pub const SERVICE: &str = "memory";

pub const HISTORY_APPEND: Call<HistoryAppend, ()> = Call::new(SERVICE, methods::HISTORY_APPEND);
pub const HISTORY_WINDOW: Call<ChatId, History> = Call::new(SERVICE, methods::HISTORY_WINDOW);
pub const HISTORY_CLEAR: Call<ChatId, ()> = Call::new(SERVICE, methods::HISTORY_CLEAR);
pub const EPISODE_RECORD: Call<Episode, EpisodeId> = Call::new(SERVICE, methods::EPISODE_RECORD);
pub const EPISODE_SEARCH: Call<EpisodeQuery, Episodes> =
    Call::new(SERVICE, methods::EPISODE_SEARCH);
pub const SETTINGS_GET: Call<ChatId, ChatSettings> = Call::new(SERVICE, methods::SETTINGS_GET);
pub const SETTINGS_SET: Call<SettingSet, ()> = Call::new(SERVICE, methods::SETTINGS_SET);
pub const CHECK: Call<(), IntegrityReport> = Call::new(SERVICE, methods::CHECK);
pub const STATS: Call<(), Json> = Call::new(SERVICE, methods::STATS);
pub const ACCOUNT_SEEN: Call<AccountSeen, ()> = Call::new(SERVICE, methods::ACCOUNT_SEEN);
pub const ACCOUNT_LIST: Call<Json, Json> = Call::new(SERVICE, methods::ACCOUNT_LIST);
pub const ACCOUNT_FORGET: Call<Json, Json> = Call::new(SERVICE, methods::ACCOUNT_FORGET);
pub const TURN: Call<Turn, EpisodeId> = Call::new(SERVICE, methods::TURN);

/// The per-chat setting that names the model of the last answer: written
/// by `memory.turn` from [`Turn::last_answer`], read by `/status`.
pub const LAST_ANSWER_SETTING: &str = "last_answer";

/// What one finished intent leaves behind, written in one transaction.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// Appended to the chat's history as a user and an assistant message,
    /// when set.
    pub exchange: Option<(String, String)>,
    pub episode: Episode,
    /// The value of the chat's `last_answer` setting (which model
    /// answered), when set.
    pub last_answer: Option<String>,
}

/// A chat gateway saw a message from one of its users (in an allowed
/// chat). Creates the account, or updates its name and last-seen time and
/// counts the message.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AccountSeen {
    /// The user's id on the gateway's platform (Telegram's user id).
    pub user_id: String,
    /// The display name, as the platform gives it now.
    pub name: String,
    /// `@username` without the `@`; empty when the user has none.
    pub username: String,
    /// The user's language (IETF tag) as the platform reports it; may be
    /// empty.
    pub language: String,
    /// The chat the message came in (`telegram:<chat id>`).
    pub chat: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SettingSet {
    pub chat: String,
    pub key: String,
    pub value: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatSettings {
    /// (key, value) pairs, sorted by key.
    pub entries: Vec<(String, String)>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct IntegrityReport {
    /// `ok`, or SQLite's list of problems.
    pub result: String,
    pub facts: u64,
    pub episodes: u64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatId {
    pub chat: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    pub ts_ms: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct HistoryAppend {
    pub chat: String,
    pub role: String,
    pub content: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub messages: Vec<ChatMessage>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Episode {
    pub id: i64,
    pub chat: String,
    pub intent: String,
    pub answer: String,
    /// The tool calls with arguments and durations, as JSON text.
    pub tool_calls_json: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub provider: String,
    pub ts_ms: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EpisodeId {
    pub id: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EpisodeQuery {
    /// Full-text query; empty for all.
    pub text: String,
    /// Only this chat; empty for every chat.
    pub chat: String,
    pub since_ms: i64,
    pub until_ms: i64,
    pub limit: u32,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Episodes {
    pub episodes: Vec<Episode>,
}
