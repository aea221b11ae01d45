//! Each user who writes in an allowed chat has an account in the memory
//! service (`account.seen`): name, @username, language, chats, first and
//! last seen, message count; `oictl memory accounts` lists them. The call
//! is sent off beside the message's handling and never delays or blocks
//! it: with memory down, the message is answered and the account catches
//! up with the user's next message.

use std::sync::Arc;

use oi_client::CallOptions;
use oi_ipc_schema::ErrorCode;
use oi_ipc_schema::memory::{self, AccountSeen};
use tracing::{Instrument, debug, warn};

use crate::Gateway;
use crate::chat::chat_key;
use crate::types::Message;

/// What memory is told of the sender of `m`, if there is one (channel
/// posts have none).
pub fn seen(m: &Message) -> Option<AccountSeen> {
    let from = m.from.as_ref()?;
    let name = [Some(from.first_name.as_str()), from.last_name.as_deref()]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    Some(AccountSeen {
        user_id: from.id.to_string(),
        name,
        username: from.username.clone().unwrap_or_default(),
        language: from.language_code.clone().unwrap_or_default(),
        chat: chat_key(m.chat.id),
    })
}

/// Records the sender of `m` in memory, in the background.
pub fn record(gw: &Arc<Gateway>, m: &Message) {
    let Some(seen) = seen(m) else {
        return;
    };
    let gw = gw.clone();
    tokio::spawn(
        async move {
            let opts = CallOptions::deadline(std::time::Duration::from_secs(5));
            match gw.client.call(memory::ACCOUNT_SEEN, &seen, opts).await {
                Ok(_) => {}
                // Memory is down or not enabled: the next message updates
                // the account.
                Err(e) if matches!(e.code(), ErrorCode::Unavailable | ErrorCode::Timeout) => {
                    debug!(user = %seen.user_id, "account not recorded now: {e}")
                }
                Err(e) => warn!(user = %seen.user_id, "account not recorded: {e}"),
            }
        }
        .in_current_span(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_described_from_the_message() {
        let m: Message = serde_json::from_value(serde_json::json!({
            "message_id": 1, "chat": {"id": -100, "type": "group", "title": "G"},
            "from": {"id": 7, "is_bot": false, "first_name": "Ann", "last_name": "Lee",
                     "username": "ann", "language_code": "en"},
            "text": "hi"}))
        .unwrap();
        let s = seen(&m).unwrap();
        assert_eq!(
            (s.user_id.as_str(), s.name.as_str(), s.username.as_str()),
            ("7", "Ann Lee", "ann")
        );
        assert_eq!(
            (s.language.as_str(), s.chat.as_str()),
            ("en", "telegram:-100")
        );
        let post: Message = serde_json::from_value(serde_json::json!({
            "message_id": 2, "chat": {"id": -5, "type": "channel"}, "text": "news"}))
        .unwrap();
        assert!(seen(&post).is_none(), "a channel post has no sender");
    }
}
