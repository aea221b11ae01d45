//! Payloads of the Telegram gateway's methods (destination `telegram`),
//! used by `oictl telegram ...`.

use rkyv::{Archive, Deserialize, Serialize};

use crate::contract::Call;

pub mod methods {
    /// empty -> [`super::PairCode`]: a one-time code that, sent to the bot
    /// as `/pair <code>`, lets that chat in.
    pub const PAIR: &str = "telegram.pair";
    /// empty -> [`super::ChatList`]: the chats that get answers.
    pub const CHATS: &str = "telegram.chats";
    /// [`super::ChatRef`] -> empty: a paired chat no longer gets answers.
    pub const UNPAIR: &str = "telegram.unpair";
    /// empty -> [`crate::gateway::LinkHealth`]: how polling goes.
    pub const HEALTH: &str = "telegram.health";
    /// [`crate::gateway::Delivery`] -> empty: sends a message to an allowed
    /// chat (the scheduler's answers).
    pub const DELIVER: &str = "telegram.deliver";
}

/// The Telegram gateway's destination.
pub const SERVICE: &str = "telegram";

pub const PAIR: Call<(), PairCode> = Call::new(SERVICE, methods::PAIR);
pub const CHATS: Call<(), ChatList> = Call::new(SERVICE, methods::CHATS);
pub const UNPAIR: Call<ChatRef, ()> = Call::new(SERVICE, methods::UNPAIR);
pub const HEALTH: Call<(), crate::gateway::LinkHealth> = Call::new(SERVICE, methods::HEALTH);
pub const DELIVER: Call<crate::gateway::Delivery, ()> = Call::new(SERVICE, methods::DELIVER);

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct PairCode {
    pub code: String,
    pub expires_in_secs: u64,
    /// The bot's @username, when Telegram has told it.
    pub bot_username: String,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AllowedChat {
    pub id: i64,
    /// `config` (telegram.allowed_chat_ids) or `paired`.
    pub source: String,
    /// The chat's title or the user's name, when known.
    pub title: String,
    /// When it was paired (unix ms); 0 for config entries.
    pub paired_ms: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatList {
    pub chats: Vec<AllowedChat>,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ChatRef {
    pub id: i64,
}
