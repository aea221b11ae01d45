//! `oictl ask`, `oictl chat` and `oictl audit`: intents from the command
//! line, and the audit log of what they did.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oi_client::display::{short_args, summary_line, tool_line};
use oi_client::intent::{Intent, NO_ANSWER};
use oi_client::{BusClient, CallOptions};
use oi_ipc_schema::agent::{AgentEvent, CommandReply, IntentRequest, IntentResult};
use oi_ipc_schema::control::audit::{self, AuditQuery, AuditRows, AuditVerify};
use serde_json::{Value, json};

/// Exit status of an intent cancelled with Ctrl-C (128 + SIGINT).
const EXIT_CANCELLED: u8 = 130;

/// How `ask` prints.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Progress lines and a summary on stderr, the answer on stdout.
    Human,
    /// Like `Human`, with the token line only when the chat asked for it.
    Chat { tokens: bool },
    /// One JSON object on stdout.
    Json,
}

/// How an intent ended for the command line.
enum Ended {
    Done(IntentResult),
    Failed(String),
    Cancelled,
}

pub fn result_json(r: &IntentResult, notices: &[String]) -> Value {
    json!({
        "id": r.id,
        "answer": r.answer,
        "stop": r.stop.as_str(),
        "route": r.route,
        "tool_calls": r.tool_calls.iter().map(|c| json!({
            "name": c.name,
            "arguments": serde_json::from_str::<Value>(&c.arguments).unwrap_or_else(|_| Value::String(c.arguments.clone())),
            "service": c.service,
            "duration_ms": c.duration_ms,
            "error": if c.error.is_empty() { Value::Null } else { Value::String(c.error.clone()) },
        })).collect::<Vec<_>>(),
        "tokens": {"prompt": r.prompt_tokens, "completion": r.completion_tokens},
        "provider": r.provider,
        "model": r.model,
        "fallbacks": r.fallbacks,
        "turns": r.turns,
        "notices": notices,
    })
}

/// Follows an intent's steps until it ends or Ctrl-C; prints progress.
async fn follow(mut intent: Intent, out: Output) -> (Ended, Vec<String>) {
    let human = out != Output::Json;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let step = tokio::select! {
            step = intent.next() => step,
            _ = &mut ctrl_c => {
                // Dropping the intent cancels it and its tool calls.
                return (Ended::Cancelled, intent.notices().to_vec());
            }
        };
        let ended = match step {
            Some(Ok(AgentEvent::ToolFinished(c))) => {
                if human {
                    eprintln!("{}", tool_line(&c));
                }
                continue;
            }
            Some(Ok(AgentEvent::Notice(n))) => {
                if human {
                    eprintln!("! {n}");
                }
                continue;
            }
            Some(Ok(AgentEvent::Started { .. } | AgentEvent::ToolStarted { .. })) => continue,
            Some(Ok(AgentEvent::Done(r))) => Ended::Done(r),
            Some(Err(why)) => Ended::Failed(why),
            None => Ended::Failed(NO_ANSWER.into()),
        };
        return (ended, intent.notices().to_vec());
    }
}

/// Runs one intent and prints it; the exit status says how it ended.
pub async fn ask(
    client: &BusClient,
    req: IntentRequest,
    out: Output,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let (ended, notices) = follow(Intent::start(client, &req, timeout)?, out).await;
    let mut stdout = std::io::stdout().lock();
    match ended {
        Ended::Done(r) => {
            let ok = r.stop.is_success();
            if out == Output::Json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&result_json(&r, &notices))?
                )?;
            } else if ok {
                writeln!(stdout, "{}", r.answer)?;
                stdout.flush()?;
                if out != (Output::Chat { tokens: false }) {
                    eprintln!("{}", summary_line(&r));
                }
            } else {
                eprintln!("✗ {}", r.answer);
            }
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Ended::Failed(message) => {
            if out == Output::Json {
                writeln!(
                    stdout,
                    "{}",
                    serde_json::to_string_pretty(&json!({"error": message, "notices": notices}))?
                )?;
            } else {
                eprintln!("oictl: {message}");
            }
            Ok(ExitCode::FAILURE)
        }
        Ended::Cancelled => {
            eprintln!("✗ cancelled");
            Ok(ExitCode::from(EXIT_CANCELLED))
        }
    }
}

async fn command(client: &BusClient, chat: &str, line: &str) -> anyhow::Result<CommandReply> {
    Ok(oi_client::chat::command(client, chat, line).await?)
}

/// An interactive session: each line is an intent with the chat's history,
/// or a `/command`. Ctrl-C cancels the running intent; Ctrl-D leaves.
pub async fn chat(
    client: &BusClient,
    chat: &str,
    alias: Option<String>,
    timeout: Duration,
    history: std::path::PathBuf,
) -> anyhow::Result<ExitCode> {
    eprintln!(
        "OpenIntentOS chat '{chat}'. Say what you want; /help lists the commands; Ctrl-D leaves."
    );
    let mut prompt = super::prompt::Prompt::new(history);
    loop {
        let Some(line) = prompt.line().await? else {
            eprintln!();
            return Ok(ExitCode::SUCCESS);
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('/') {
            match command(client, chat, line).await {
                Ok(r) => println!("{}", r.text),
                Err(e) => eprintln!("oictl: {e:#}"),
            }
            continue;
        }
        let req = IntentRequest {
            id: String::new(),
            chat: chat.into(),
            text: line.into(),
            alias: alias.clone().unwrap_or_default(),
            history: true,
        };
        let tokens = oi_client::chat::shows_tokens(client, chat).await;
        ask(client, req, Output::Chat { tokens }, timeout).await?;
    }
}

fn time_text(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    httpdate::fmt_http_date(t.min(SystemTime::now() + Duration::from_secs(86_400 * 365 * 100)))
}

/// `oictl audit [--verify]`.
pub async fn audit(
    client: &BusClient,
    verify: bool,
    intent: Option<String>,
    limit: u32,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let quick = CallOptions::deadline(Duration::from_secs(30));
    if verify {
        let v: AuditVerify = client.call(audit::VERIFY, &(), quick).await?;
        if as_json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"rows": v.rows, "intact": v.problems.is_empty(), "problems": v.problems})
                )?
            );
        } else if v.problems.is_empty() {
            println!("audit log intact: {} rows, hash chain verified", v.rows);
        } else {
            println!("audit log TAMPERED ({} rows):", v.rows);
            for p in &v.problems {
                println!("  {p}");
            }
        }
        return Ok(if v.problems.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let q = AuditQuery {
        intent: intent.unwrap_or_default(),
        limit,
    };
    let rows: AuditRows = client.call(audit::LIST, &q, quick).await?;
    if as_json {
        let v: Vec<Value> = rows
            .rows
            .iter()
            .map(|r| {
                json!({"id": r.id, "ts_ms": r.ts_ms, "intent": r.intent, "service": r.service,
                       "caller": r.caller, "action": r.action, "arguments": r.arguments,
                       "outcome": r.outcome, "duration_ms": r.duration_ms, "hash": r.hash})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in rows.rows.iter().rev() {
        println!(
            "{:>5} {} {:<22} {:<24} {:>6}ms {} {}\n      {}",
            r.id,
            time_text(r.ts_ms),
            if r.intent.is_empty() { "-" } else { &r.intent },
            r.action,
            r.duration_ms,
            if r.caller.is_empty() {
                "user"
            } else {
                &r.caller
            },
            short_args(&r.outcome),
            short_args(&r.arguments)
        );
    }
    Ok(ExitCode::SUCCESS)
}
