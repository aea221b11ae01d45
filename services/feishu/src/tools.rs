//! The Feishu tools: names, schemas and arguments.

use oi_ipc_schema::ToolSpec;
use oi_kernel::tool::spec;
use serde::Deserialize;
use serde_json::{Value, json};

pub const SEND: &str = "feishu_send_message";
pub const LIST_CHATS: &str = "feishu_list_chats";
pub const REPLY: &str = "feishu_reply";

pub fn specs() -> Vec<ToolSpec> {
    let msg_type = json!({"type": "string", "enum": ["text", "post", "interactive"], "description": "Default text; post is rich text with a title."});
    let text = json!({"type": "string", "description": "The message (text, or a post's lines)."});
    let title = json!({"type": "string", "description": "A post's title."});
    let card =
        json!({"type": "object", "description": "An interactive card (msg_type interactive)."});
    vec![
        spec(
            SEND,
            "Send a message to a group by its name or chat_id, or to a person by open_id or email.",
            json!({"type": "object", "properties": {
                "group": {"type": "string", "description": "A group's name, as feishu_list_chats shows it."},
                "chat_id": {"type": "string"}, "open_id": {"type": "string"}, "email": {"type": "string"},
                "msg_type": msg_type, "text": text, "title": title, "card": card}}),
        ),
        spec(
            LIST_CHATS,
            "List the groups the bot is in: names and chat ids.",
            json!({"type": "object", "properties": {}}),
        ),
        spec(
            REPLY,
            "Reply to a message by its message_id (om_...).",
            json!({"type": "object", "required": ["message_id"], "properties": {
                "message_id": {"type": "string"}, "msg_type": msg_type, "text": text, "title": title, "card": card}}),
        ),
    ]
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub group: Option<String>,
    pub chat_id: Option<String>,
    pub open_id: Option<String>,
    pub email: Option<String>,
    pub message_id: Option<String>,
    pub msg_type: Option<String>,
    pub text: Option<String>,
    pub title: Option<String>,
    pub card: Option<Value>,
}
