//! The parts of the Bot API's objects the gateway reads. Unknown fields are
//! ignored, so newer API versions keep working.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Update {
    pub update_id: i64,
    pub message: Option<Message>,
    pub callback_query: Option<CallbackQuery>,
}

impl Update {
    /// The chat this update belongs to, if any.
    pub fn chat_id(&self) -> Option<i64> {
        self.message.as_ref().map(|m| m.chat.id).or_else(|| {
            self.callback_query
                .as_ref()
                .and_then(|q| q.message.as_ref().map(|m| m.chat.id))
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub message_id: i64,
    pub chat: Chat,
    pub from: Option<User>,
    pub text: Option<String>,
    pub caption: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Chat {
    pub id: i64,
    #[serde(rename = "type", default)]
    pub kind: String,
    pub title: Option<String>,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

impl Chat {
    /// A group's title, else the person's name or @username.
    pub fn display_name(&self) -> String {
        if let Some(t) = &self.title {
            return t.clone();
        }
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        match (&self.username, name.is_empty()) {
            (Some(u), true) => format!("@{u}"),
            (Some(u), false) => format!("{name} (@{u})"),
            (None, _) => name,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct User {
    pub id: i64,
    #[serde(default)]
    pub is_bot: bool,
    #[serde(default)]
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    /// The IETF language tag of the user's Telegram client.
    pub language_code: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CallbackQuery {
    pub id: String,
    pub from: User,
    pub message: Option<Message>,
    pub data: Option<String>,
}
