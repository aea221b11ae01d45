//! The Telegram gateway (`openintentd service telegram`): a bot that turns
//! every message of an allowed chat into an intent of the chat
//! `telegram:<chat id>` and sends the answer back, with the chat commands
//! of [`oi_agent::commands`], progress while the agent works, and access
//! control.
//!
//! - [`api`]: the Bot API client; [`types`] the objects it reads.
//! - [`poll`]: long polling with the offset kept in [`store`].
//! - [`chat`]: one worker per chat: commands, buttons, intents.
//! - [`format`]: Markdown to Telegram HTML, cut into messages.
//! - [`access`]: the allowlist and pairing codes; [`progress`] the status
//!   message.
//! - [`account`]: each user's account in the memory service.

pub mod account;
pub mod api;
pub mod chat;
pub mod config;
#[cfg(feature = "fake")]
pub mod fake;
pub mod format;
pub mod poll;
pub mod store;
pub mod types;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oi_ipc_schema::gateway::Delivery;
use oi_ipc_schema::telegram::{AllowedChat, ChatList, ChatRef, PairCode, methods};
use oi_kernel::client::{BusClient, IncomingRequest};
use oi_kernel::config::Config;

pub use crate::config::TelegramConfig;
use oi_kernel::harness::{
    self, Live, Reply, Service, ServiceError, archived_reply, decode_request,
};
use oi_kernel::secrets;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::api::BotApi;
use crate::store::Store;
use oi_client::gateway::{Access, Link};

/// The environment variable read before the vault.
pub const TOKEN_ENV: &str = "TELEGRAM_BOT_TOKEN";
/// The vault secret with the bot token.
pub const TOKEN_SECRET: &str = "telegram-bot-token";

/// The settings a config change can replace.
pub struct Settings {
    pub telegram: TelegramConfig,
}

/// What the poller, the chat workers and the bus methods share.
pub struct Gateway {
    pub client: BusClient,
    pub api: Live<BotApi>,
    pub store: Store,
    pub settings: Live<Settings>,
    pub access: Mutex<Access<i64>>,
    /// The bot's @username, once getMe answered.
    pub username: Mutex<String>,
    pub chats: chat::Chats,
    /// How polling goes, for `oictl status` and `oictl doctor`.
    pub link: Mutex<Link>,
    token: Zeroizing<String>,
}

impl Gateway {
    pub fn access(&self) -> std::sync::MutexGuard<'_, Access<i64>> {
        self.access.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Telegram(Arc<Gateway>);

/// The bot token: `TELEGRAM_BOT_TOKEN`, else the vault's
/// `telegram-bot-token`.
async fn token(client: &BusClient) -> Result<Zeroizing<String>, ServiceError> {
    if let Ok(t) = std::env::var(TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Ok(Zeroizing::new(t.trim().to_string()));
    }
    match secrets::read_text(client, TOKEN_SECRET, Duration::from_secs(10)).await {
        Ok(t) if !t.is_empty() => Ok(t),
        Ok(_) => Err(ServiceError::config_error(format!(
            "the vault secret {TOKEN_SECRET} is empty"
        ))),
        Err(e) => Err(ServiceError::config_error(format!(
            "no bot token: {TOKEN_ENV} is not set and the vault secret {TOKEN_SECRET} cannot be read ({e}); set one with `oictl vault set {TOKEN_SECRET}`"
        ))),
    }
}

/// The services that may hand the gateway messages for its chats.
const MAY_DELIVER: &[&str] = &[oi_ipc_schema::scheduler::SERVICE];

/// `telegram.deliver`: a message for an allowed chat, from the owner or a
/// service that may deliver. A chat nobody allowed gets nothing, whoever
/// asks; a Telegram failure is the caller's to retry.
async fn deliver(gw: &Gateway, req: &IncomingRequest) -> Result<Reply, ServiceError> {
    if !req.caller().is_empty() && !MAY_DELIVER.contains(&req.caller()) {
        return Err(ServiceError::denied(format!(
            "service '{}' may not send messages through the Telegram gateway",
            req.caller()
        )));
    }
    let d: Delivery = decode_request(req)?;
    let chat: i64 = d.chat.trim().parse().map_err(|_| {
        ServiceError::bad_request(format!(
            "telegram.deliver: `{}` is not a Telegram chat id (a number such as 42 or -100123)",
            d.chat
        ))
    })?;
    if !gw.access().allows(chat) {
        return Err(ServiceError::denied(format!(
            "chat {chat} is not allowed to talk to this bot (`oictl telegram chats` lists those that are; `oictl telegram pair` adds one)"
        )));
    }
    chat::deliver(gw, chat, &d.text).await.map_err(|e| {
        ServiceError::new(
            oi_ipc_schema::ErrorCode::Unavailable,
            format!("Telegram did not take the message for chat {chat}: {e}"),
        )
    })?;
    info!(chat, caller = req.caller(), "message delivered");
    Ok(Reply::Once(Vec::new()))
}

impl Service for Telegram {
    async fn handle(&self, req: IncomingRequest) -> Result<Reply, ServiceError> {
        let gw = &self.0;
        if req.method() == methods::DELIVER {
            return deliver(gw, &req).await;
        }
        // Pairing decides who talks to the agent: only the owner (oictl)
        // may do it, never another service.
        if !req.caller().is_empty() {
            return Err(ServiceError::denied(format!(
                "service '{}' may not manage the Telegram gateway's chats",
                req.caller()
            )));
        }
        match req.method() {
            methods::PAIR => {
                let ttl = Duration::from_secs(gw.settings.get().telegram.pair_code_minutes * 60);
                let code = gw.access().new_code(ttl).map_err(ServiceError::internal)?;
                info!("pairing code issued");
                archived_reply(&PairCode {
                    code,
                    expires_in_secs: ttl.as_secs(),
                    bot_username: gw.username.lock().map(|u| u.clone()).unwrap_or_default(),
                })
            }
            methods::HEALTH => archived_reply(&gw.link().health(std::time::Instant::now())),
            methods::CHATS => {
                let paired = gw
                    .store
                    .paired()
                    .await
                    .map_err(|e| ServiceError::internal(e.to_string()))?;
                let mut chats: Vec<AllowedChat> = gw
                    .access()
                    .config_chats()
                    .map(|id| AllowedChat {
                        id,
                        source: "config".into(),
                        title: String::new(),
                        paired_ms: 0,
                    })
                    .collect();
                chats.extend(paired.into_iter().map(|p| AllowedChat {
                    id: p.chat_id,
                    source: "paired".into(),
                    title: p.title,
                    paired_ms: p.paired_ms,
                }));
                archived_reply(&ChatList { chats })
            }
            methods::UNPAIR => {
                let ChatRef { id } = decode_request(&req)?;
                let removed = gw
                    .store
                    .unpair(id)
                    .await
                    .map_err(|e| ServiceError::internal(e.to_string()))?;
                gw.access().remove_paired(id);
                if removed {
                    info!(chat = id, "chat unpaired");
                    Ok(Reply::Once(Vec::new()))
                } else if gw.access().in_config(id) {
                    Err(ServiceError::bad_request(format!(
                        "chat {id} is listed in telegram.allowed_chat_ids; remove it there"
                    )))
                } else {
                    Err(ServiceError::bad_request(format!(
                        "chat {id} is not paired (`oictl telegram chats` lists the chats)"
                    )))
                }
            }
            other => Err(ServiceError::bad_request(format!(
                "the telegram gateway has no method '{other}'"
            ))),
        }
    }

    async fn config_changed(&self, generation: u64, config_toml: &str) {
        let Some(telegram) =
            harness::config_update(generation, config_toml, Config::section::<TelegramConfig>)
        else {
            return;
        };
        let gw = &self.0;
        let old = gw.settings.get();
        if old.telegram == telegram {
            return;
        }
        gw.access().set_config(&telegram.allowed_chat_ids);
        if old.telegram.api_base_url != telegram.api_base_url {
            gw.api.set(BotApi::new(&telegram.api_base_url, &gw.token));
        }
        gw.settings.set(Settings { telegram });
        info!("new [telegram] settings applied");
    }
}

/// This kind of service, for `openintentd`'s service table.
pub const KIND: oi_kernel::kind::ServiceKind = oi_kernel::kind::ServiceKind {
    name: "telegram",
    run,
    sections: config::SECTIONS,
    env: oi_kernel::kind::no_env,
};

/// Entry point of `openintentd service telegram`.
pub fn run(name: &'static str) -> i32 {
    harness::run(name, |client| async move {
        let config: TelegramConfig = harness::service_config()?.section()?;
        let token = token(&client).await?;
        let dir = harness::data_dir(name)?.join("telegram");
        std::fs::create_dir_all(&dir).map_err(|e| {
            ServiceError::config_error(format!("cannot create {}: {e}", dir.display()))
        })?;
        let store = Store::open(&dir.join("telegram.db"))
            .map_err(|e| ServiceError::config_error(e.to_string()))?;
        let paired = store
            .paired()
            .await
            .map_err(|e| ServiceError::config_error(e.to_string()))?;
        let api = BotApi::new(&config.api_base_url, &token);
        // A wrong token is a configuration error: exit 78, no restarts.
        let username = match api.get_me().await {
            Ok(me) => me["username"].as_str().unwrap_or_default().to_string(),
            Err(e) if e.is_bad_token() => {
                return Err(ServiceError::config_error(format!(
                    "Telegram refused the bot token ({e}); check it with @BotFather and store it again"
                )));
            }
            Err(e) => {
                warn!("cannot reach Telegram yet ({e}); polling will retry");
                String::new()
            }
        };
        let gw = Arc::new(Gateway {
            access: Mutex::new(Access::new(
                &config.allowed_chat_ids,
                paired.into_iter().map(|p| (p.chat_id, p.title)),
            )),
            api: Live::new(api),
            settings: Live::new(Settings {
                telegram: config.clone(),
            }),
            username: Mutex::new(username.clone()),
            chats: chat::Chats::default(),
            link: Mutex::new(Link::new("polling", std::time::Instant::now())),
            store,
            client,
            token,
        });
        if gw.access().config_chats().next().is_none() {
            info!(
                "no chat is allowed yet: run `oictl telegram pair` or set telegram.allowed_chat_ids"
            );
        }
        info!(bot = %username, "telegram gateway ready");
        tokio::spawn(poll::run(gw.clone()));
        Ok(Telegram(gw))
    })
}
