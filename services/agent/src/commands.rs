//! The chat commands, one implementation for `oictl chat` and every
//! gateway: `/model <alias>`, `/models`, `/tokens on|off`, `/status`,
//! `/clear`, `/reset`, `/help`.

use std::time::Duration;

use oi_ipc_schema::agent::CommandReply;
use oi_ipc_schema::llm::{self, ModelChoice};
use oi_ipc_schema::memory::{self, ChatId, SettingSet};
use oi_kernel::client::BusClient;
use oi_kernel::harness::ServiceError;

use crate::bus;
use crate::route;

pub use oi_client::chat::{LAST_ANSWER_SETTING, TOKENS_SETTING};

pub const HELP: &str = "Commands:
  /model <alias>   answer with this model from now on (kept across restarts)
  /model           show the model this chat uses
  /models          list the models and which are usable
  /tokens on|off   show token counts after each answer
  /status          the model in use and the health of the services
  /clear           forget this chat's history
  /reset           forget the history, the model choice and the settings
  /help            this list
Anything else is a request: say what you want.";

fn reply(text: impl Into<String>) -> Result<CommandReply, ServiceError> {
    Ok(CommandReply {
        text: text.into(),
        choices: Vec::new(),
    })
}

/// The alias this chat starts with (its override, else the primary).
async fn current_model(client: &BusClient, chat: &str) -> Result<String, ServiceError> {
    let primary = bus::models(client, Duration::from_secs(5)).await?.primary;
    Ok(bus::chat_alias(client, chat, &primary).await?)
}

pub use oi_client::chat::setting;

pub(crate) async fn set_setting(
    client: &BusClient,
    chat: &str,
    key: &str,
    value: &str,
) -> Result<(), ServiceError> {
    bus::send(
        client,
        memory::SETTINGS_SET,
        &SettingSet {
            chat: chat.into(),
            key: key.into(),
            value: value.into(),
        },
    )
    .await
    .map_err(Into::into)
}

async fn set_model(client: &BusClient, chat: &str, alias: &str) -> Result<(), ServiceError> {
    bus::send(
        client,
        llm::MODEL_SET,
        &ModelChoice {
            chat: chat.into(),
            alias: alias.into(),
        },
    )
    .await
    .map_err(Into::into)
}

async fn clear_history(client: &BusClient, chat: &str) -> Result<(), ServiceError> {
    bus::send(client, memory::HISTORY_CLEAR, &ChatId { chat: chat.into() })
        .await
        .map_err(Into::into)
}

pub async fn run(client: &BusClient, chat: &str, line: &str) -> Result<CommandReply, ServiceError> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    // Telegram sends "/models@my_bot" in groups.
    let command = command.split('@').next().unwrap_or(command);
    let arg = words.next();
    if chat.is_empty() && !matches!(command, "/help" | "/models" | "/status") {
        return Err(ServiceError::bad_request(format!("{command} needs a chat")));
    }
    match (command, arg) {
        ("/help" | "/start", _) => reply(HELP),
        ("/models", _) => {
            let m = bus::models(client, Duration::from_secs(5)).await?;
            let current = bus::chat_alias(client, chat, &m.primary)
                .await
                .unwrap_or_default();
            let mut text = String::from("Models (* = this chat's):\n");
            let mut choices = Vec::new();
            for s in &m.models {
                text.push_str(&format!(
                    "{} {:<14} {:<36} {}\n",
                    if s.alias == current { "*" } else { " " },
                    s.alias,
                    s.model,
                    if s.key_present { "usable" } else { "no key" }
                ));
                if s.key_present {
                    choices.push(format!("/model {}", s.alias));
                }
            }
            Ok(CommandReply {
                text: text.trim_end().into(),
                choices,
            })
        }
        ("/model", None) => reply(format!(
            "This chat uses {}.",
            current_model(client, chat).await?
        )),
        ("/model", Some(alias)) => {
            set_model(client, chat, alias).await?;
            reply(format!("This chat now uses {alias}."))
        }
        ("/tokens", Some(v @ ("on" | "off"))) => {
            set_setting(client, chat, TOKENS_SETTING, v).await?;
            reply(format!("Token counts {v}."))
        }
        ("/tokens", None) => reply(format!(
            "Token counts are {}. Use /tokens on or /tokens off.",
            setting(client, chat, TOKENS_SETTING)
                .await
                .unwrap_or_else(|| "off".into())
        )),
        ("/tokens", Some(other)) => Err(ServiceError::bad_request(format!(
            "/tokens takes on or off, not '{other}'"
        ))),
        ("/status", _) => {
            let services = route::status(client).await?;
            let model = match current_model(client, chat).await {
                Ok(m) if !m.is_empty() => m,
                Ok(_) => "none configured".into(),
                Err(e) => format!("unknown ({})", e.message),
            };
            let last = match setting(client, chat, LAST_ANSWER_SETTING).await {
                Some(l) if !l.is_empty() => format!("\nLast answer: {l}"),
                _ => String::new(),
            };
            reply(format!("Model: {model}{last}\n{services}"))
        }
        ("/clear", _) => {
            clear_history(client, chat).await?;
            reply("History cleared.")
        }
        ("/reset", _) => {
            clear_history(client, chat).await?;
            set_model(client, chat, "").await?;
            set_setting(client, chat, TOKENS_SETTING, "off").await?;
            set_setting(client, chat, LAST_ANSWER_SETTING, "").await?;
            reply("Chat reset: history cleared, model back to the default, token counts off.")
        }
        _ => Err(ServiceError::bad_request(format!(
            "unknown command '{command}'; /help lists the commands"
        ))),
    }
}
