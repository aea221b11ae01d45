//! The chat commands (`/model`, `/models`, `/tokens`, `/status`, `/clear`,
//! `/reset`, `/help`) and the per-chat settings, as every interface calls
//! them. The agent runs the commands; memory keeps the settings.

use std::time::Duration;

use oi_ipc_schema::agent::{self, CommandReply, CommandRequest};
use oi_ipc_schema::memory::{self, ChatId};
use oi_kernel::client::{BusClient, BusError, CallOptions};

/// The per-chat setting that shows token counts after answers.
pub const TOKENS_SETTING: &str = "tokens";
/// The per-chat record of which model gave the last answer (for
/// `/status`); memory writes it with each turn.
pub use oi_ipc_schema::memory::LAST_ANSWER_SETTING;

fn quick() -> CallOptions {
    CallOptions::deadline(Duration::from_secs(5))
}

/// How long a chat command may take, a restarting agent included.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// Runs a chat command (the whole line, starting with `/`) for `chat`; an
/// agent that is restarting is waited for.
pub async fn command(client: &BusClient, chat: &str, line: &str) -> Result<CommandReply, BusError> {
    let opts = CallOptions::deadline(COMMAND_DEADLINE).waiting();
    client
        .call(
            agent::COMMAND,
            &CommandRequest {
                chat: chat.into(),
                text: line.into(),
            },
            opts,
        )
        .await
}

/// A per-chat setting from memory; `None` when unset or when memory does
/// not answer.
pub async fn setting(client: &BusClient, chat: &str, key: &str) -> Option<String> {
    let s = client
        .call(memory::SETTINGS_GET, &ChatId { chat: chat.into() }, quick())
        .await
        .ok()?;
    s.entries
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Whether the chat asked for token counts after answers (`/tokens on`).
pub async fn shows_tokens(client: &BusClient, chat: &str) -> bool {
    setting(client, chat, TOKENS_SETTING).await.as_deref() == Some("on")
}
