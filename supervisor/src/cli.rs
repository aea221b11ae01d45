//! `oictl`: the control CLI. One file per command or command group (the
//! clap tree in `args`); this file parses, connects and dispatches.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;
use oi_ipc_schema::agent::IntentRequest;
use oi_kernel::paths::Paths;

pub mod agent;
pub mod approve;
mod args;
mod browser;
mod checks;
pub mod cron;
mod doctor;
mod email;
mod lifecycle;
mod logs;
pub mod memory;
pub mod models;
mod prompt;
mod services;
mod status;
pub mod telegram;
pub mod tools;
mod vault;

use agent::Output;
use args::{Args, Cmd, ModelsCmd, not_an_intent};
use doctor::doctor;
use lifecycle::{connect, service_cmd};
use logs::{daemon_log, logs};
use services::{control, shutdown, start, status};
pub use status::{human_duration, status_json, status_table};
pub use vault::KNOWN_ENV_SECRETS;
use vault::vault_cmd;

pub fn main() -> ExitCode {
    // A closed stdout (`oictl status | head -1`) ends oictl quietly, as it
    // ends `ls`, instead of a panic on the failed print.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("oictl: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oictl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let paths = Paths::resolve(args.home.as_deref())?;
    let connect = || connect(&paths, args.home.as_deref(), !args.no_autostart);
    match args.command {
        Cmd::Status { json } => status(&connect().await?, json).await,
        Cmd::Restart { service } => {
            control(
                &connect().await?,
                oi_ipc_schema::control::RESTART,
                &service,
                "restarting",
            )
            .await
        }
        Cmd::Stop { service } => {
            control(
                &connect().await?,
                oi_ipc_schema::control::STOP,
                &service,
                "stopping",
            )
            .await
        }
        Cmd::Shutdown => shutdown(&paths).await,
        Cmd::Start { service } => start(&connect().await?, &service).await,
        Cmd::Logs {
            service,
            follow,
            lines,
        } if service == "openintentd" => daemon_log(&paths, lines, follow).await,
        Cmd::Logs {
            service,
            follow,
            lines,
        } => logs(&connect().await?, service, lines, follow).await,
        Cmd::Service { action } => service_cmd(action, args.home.as_deref()),
        Cmd::Vault { action } => vault_cmd(&connect().await?, action).await,
        Cmd::Doctor => doctor(&paths).await,
        Cmd::Memory { action } => crate::cli::memory::memory(&connect().await?, action).await,
        Cmd::Models {
            action: Some(ModelsCmd::Reset { alias }),
            ..
        } => crate::cli::models::reset(&connect().await?, alias).await,
        Cmd::Models { action, json } => {
            let json = json || matches!(action, Some(ModelsCmd::Status { json: true }));
            crate::cli::models::models(&connect().await?, json).await
        }
        Cmd::Model { alias, chat, clear } => {
            crate::cli::models::model(&connect().await?, alias, chat, clear).await
        }
        Cmd::Llm {
            prompt,
            model,
            chat,
            stream,
            json,
        } => {
            crate::cli::models::llm(
                &connect().await?,
                prompt.join(" "),
                model,
                chat,
                stream,
                json,
            )
            .await
        }
        Cmd::Ask {
            intent,
            json,
            model,
            chat,
            timeout,
        } => {
            let req = IntentRequest {
                chat,
                text: intent.join(" "),
                alias: model.unwrap_or_default(),
                ..Default::default()
            };
            let out = if json { Output::Json } else { Output::Human };
            crate::cli::agent::ask(&connect().await?, req, out, Duration::from_secs(timeout)).await
        }
        Cmd::Intent(words) => {
            if let Some(why) = not_an_intent(&words) {
                bail!("{why}");
            }
            let req = IntentRequest {
                chat: crate::cli::models::CLI_CHAT.into(),
                text: words.join(" "),
                ..Default::default()
            };
            crate::cli::agent::ask(
                &connect().await?,
                req,
                Output::Human,
                Duration::from_secs(900),
            )
            .await
        }
        Cmd::Chat {
            chat,
            model,
            timeout,
        } => {
            crate::cli::agent::chat(
                &connect().await?,
                &chat,
                model,
                Duration::from_secs(timeout),
                paths.data_dir.join("chat_history"),
            )
            .await
        }
        Cmd::Audit {
            verify,
            intent,
            limit,
            json,
        } => crate::cli::agent::audit(&connect().await?, verify, intent, limit, json).await,
        Cmd::Tools { json } => crate::cli::tools::tools(&connect().await?, json).await,
        Cmd::Approve { id, refuse } => {
            crate::cli::approve::approve(&connect().await?, id, refuse).await
        }
        Cmd::Telegram { action } => crate::cli::telegram::telegram(&connect().await?, action).await,
        Cmd::Cron { action } => crate::cli::cron::cron(&connect().await?, action).await,
        Cmd::Email { action } => crate::cli::email::email(&paths, &connect().await?, action).await,
        Cmd::Browser { action } => crate::cli::browser::browser(&connect().await?, action).await,
        Cmd::Tool {
            name,
            args,
            timeout,
        } => crate::cli::tools::tool(&connect().await?, &name, &args, timeout).await,
    }
}
