//! `oictl telegram ...`: which chats the Telegram gateway answers, and
//! pairing a new one without editing the config.

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use oi_ipc_schema::telegram::{self, ChatList, ChatRef, PairCode};
use oi_kernel::client::{BusClient, CallOptions};
use serde_json::json;

#[derive(Subcommand)]
pub enum TelegramCmd {
    /// Print a one-time code; send `/pair <code>` to the bot from the chat
    /// that should get answers.
    Pair,
    /// The chats that get answers: from telegram.allowed_chat_ids and
    /// paired ones.
    Chats {
        #[arg(long)]
        json: bool,
    },
    /// Stop answering a paired chat.
    Unpair {
        /// The chat id, as `oictl telegram chats` shows it.
        #[arg(allow_hyphen_values = true)]
        chat: i64,
    },
}

fn opts() -> CallOptions {
    CallOptions::deadline(Duration::from_secs(10))
}

pub async fn telegram(client: &BusClient, cmd: TelegramCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TelegramCmd::Pair => {
            let p: PairCode = client.call(telegram::PAIR, &(), opts()).await?;
            let bot = if p.bot_username.is_empty() {
                "your bot".to_string()
            } else {
                format!("@{}", p.bot_username)
            };
            println!(
                "Send this message to {bot} from the chat that should get answers, within {} minutes:\n\n    /pair {}\n",
                p.expires_in_secs.div_ceil(60),
                p.code
            );
            println!(
                "The code works once. `oictl telegram chats` lists the chats that get answers."
            );
        }
        TelegramCmd::Chats { json } => {
            let list: ChatList = client.call(telegram::CHATS, &(), opts()).await?;
            if json {
                let v: Vec<_> = list
                    .chats
                    .iter()
                    .map(|c| json!({"id": c.id, "source": c.source, "title": c.title, "paired_ms": c.paired_ms}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if list.chats.is_empty() {
                println!(
                    "No chat gets answers yet: run `oictl telegram pair`, or list chat ids in [telegram] allowed_chat_ids."
                );
            } else {
                println!("{:<16} {:<8} TITLE", "CHAT", "SOURCE");
                for c in &list.chats {
                    println!("{:<16} {:<8} {}", c.id, c.source, c.title);
                }
            }
        }
        TelegramCmd::Unpair { chat } => {
            client
                .call(telegram::UNPAIR, &ChatRef { id: chat }, opts())
                .await?;
            println!("Chat {chat} no longer gets answers.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
