//! Long polling: `getUpdates` from the stored offset; each batch is written
//! to the store (moving the offset past it) before any of it is handled,
//! so a crash at any point loses nothing and handles nothing twice.
//!
//! Errors back off:
//! - 409 Conflict (another process polls this bot, or a webhook is set):
//!   wait longer than the poll timeout, so the other poller's request ends
//!   first and the two do not keep cutting each other off;
//! - 429: wait `retry_after`;
//! - 401/404 (the token was revoked): exit 78, a configuration error the
//!   supervisor does not restart;
//! - anything else (network down, 5xx): 1 s doubling up to 60 s.

use std::sync::Arc;
use std::time::Duration;

use tracing::{error, info, warn};

use crate::Gateway;
use crate::store::{Received, Unfinished};
use crate::types::Update;

/// The commands shown in Telegram's command menu.
pub const COMMANDS: &[(&str, &str)] = &[
    ("help", "what the bot does and its commands"),
    ("models", "list the models; tap one to use it"),
    ("model", "show or set this chat's model"),
    ("status", "the model in use and the health of the services"),
    ("tokens", "show token counts after answers (on/off)"),
    ("clear", "forget this chat's history"),
    ("reset", "forget history, model choice and settings"),
    ("cancel", "stop the request being worked on"),
];

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How long to wait after a failed `getUpdates`.
pub fn backoff(e: &crate::api::ApiError, failures: u32, poll_timeout: Duration) -> Duration {
    if e.is_conflict() {
        return poll_timeout + Duration::from_secs(1);
    }
    if let Some(wait) = e.retry_after() {
        return wait.max(Duration::from_secs(1));
    }
    Duration::from_secs(1u64 << failures.min(6)).min(MAX_BACKOFF)
}

pub async fn run(gw: Arc<Gateway>) {
    if let Err(e) = gw.api.get().set_my_commands(COMMANDS).await {
        warn!("cannot register the bot's commands: {e}");
    }
    resume_interrupted(&gw).await;
    let mut offset = match gw.store.offset().await {
        Ok(o) => o,
        Err(e) => {
            error!("{e}");
            std::process::exit(oi_kernel::harness::EXIT_CONFIG);
        }
    };
    info!(offset, "polling for updates");
    let mut failures = 0u32;
    loop {
        let api = gw.api.get();
        let timeout = Duration::from_secs(gw.settings.get().telegram.poll_timeout_secs);
        let items = match api.get_updates(offset, timeout).await {
            Ok(items) => {
                failures = 0;
                gw.link().ok(std::time::Instant::now());
                items
            }
            Err(e) if e.is_bad_token() => {
                error!(
                    "Telegram no longer accepts the bot token ({e}); store a new one and restart the service"
                );
                std::process::exit(oi_kernel::harness::EXIT_CONFIG);
            }
            Err(e) => {
                let wait = backoff(&e, failures, timeout);
                failures = failures.saturating_add(1);
                gw.link().failed(&e.to_string());
                if e.is_conflict() {
                    warn!(
                        wait_s = wait.as_secs(),
                        "{e}: another process is polling this bot (or a webhook is set); waiting longer than the poll timeout"
                    );
                } else {
                    warn!(wait_ms = wait.as_millis() as u64, "getUpdates failed: {e}");
                }
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        if items.is_empty() {
            continue;
        }
        let batch: Vec<Received> = items
            .iter()
            .filter_map(|v| {
                Some(Received {
                    update_id: v["update_id"].as_i64()?,
                    body: v.to_string(),
                })
            })
            .collect();
        let next = batch
            .iter()
            .map(|r| r.update_id + 1)
            .max()
            .unwrap_or(offset);
        let fresh = match gw.store.receive(batch, oi_kernel::audit::now_ms()).await {
            Ok(f) => f,
            Err(e) => {
                // Not stored, not confirmed: Telegram sends them again.
                error!("cannot store updates: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let dropped = items.len() - fresh.len();
        if dropped > 0 {
            info!(dropped, "updates seen before were dropped");
        }
        offset = offset.max(next);
        for r in fresh {
            dispatch(&gw, r).await;
        }
    }
}

/// Hands one stored update to its chat's worker.
async fn dispatch(gw: &Arc<Gateway>, r: Received) {
    match serde_json::from_str::<Update>(&r.body) {
        Ok(u) => crate::chat::dispatch(gw, u).await,
        Err(e) => {
            warn!(
                update = r.update_id,
                "an update the gateway cannot read: {e}"
            );
            crate::chat::done(gw, r.update_id).await;
        }
    }
}

/// Updates received before a restart but not finished: their intents may
/// have had effects, so they are not run again; the chat is told, unless
/// the reply that finished it was already being sent.
async fn resume_interrupted(gw: &Arc<Gateway>) {
    let pending = match gw.store.unhandled().await {
        Ok(p) => p,
        Err(e) => {
            warn!("cannot read unfinished updates: {e}");
            return;
        }
    };
    if !pending.is_empty() {
        info!(count = pending.len(), "updates interrupted by a restart");
    }
    for Unfinished {
        update: r,
        replying,
    } in pending
    {
        if replying {
            // Its reply was on the way: the chat may have it, and a notice
            // now would be a second reply to the same message.
            warn!(
                update = r.update_id,
                "the reply to this update was being sent when the gateway stopped; not sent again"
            );
            crate::chat::done(gw, r.update_id).await;
            continue;
        }
        let u = serde_json::from_str::<Update>(&r.body).ok();
        if let Some(m) = u.and_then(|u| u.message)
            && gw.access().allows(m.chat.id)
        {
            crate::chat::send_text(
                gw,
                m.chat.id,
                "I was restarted while working on this message, so it was not finished. Send it again if you still want it.",
                Some(m.message_id),
            )
            .await;
        }
        crate::chat::done(gw, r.update_id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;

    fn refused(code: u16, retry_after: Option<u64>) -> ApiError {
        ApiError::Refused {
            method: "getUpdates",
            code,
            description: String::new(),
            retry_after,
        }
    }

    #[test]
    fn backoff_outlasts_the_poll_after_a_conflict_and_obeys_retry_after() {
        let poll = Duration::from_secs(30);
        assert!(backoff(&refused(409, None), 0, poll) > poll);
        assert_eq!(
            backoff(&refused(429, Some(7)), 0, poll),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff(&refused(502, None), 0, poll),
            Duration::from_secs(1)
        );
        assert_eq!(
            backoff(&refused(502, None), 3, poll),
            Duration::from_secs(8)
        );
        assert_eq!(backoff(&refused(502, None), 40, poll), MAX_BACKOFF);
    }
}
