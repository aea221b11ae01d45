//! `oictl models`, `oictl model` and `oictl llm`: the LLM router from the
//! command line.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use oi_ipc_schema::llm::{
    self, ChatMessage, ChatRequest, ChatResponse, ModelChoice, ModelsStatus, StreamEvent,
};
use oi_ipc_schema::{Body, Call};
use oi_kernel::client::{BusClient, CallOptions};
use serde_json::{Value, json};

/// The chat `oictl` itself speaks as.
pub const CLI_CHAT: &str = "oictl";

/// Calls a router method; waits for a restarting router.
async fn call<Req: Body, Resp: Body>(
    client: &BusClient,
    method: Call<Req, Resp>,
    payload: &Req,
) -> anyhow::Result<Resp> {
    let opts = CallOptions::deadline(Duration::from_secs(15)).waiting();
    Ok(client.call(method, payload, opts).await?)
}

pub fn models_json(s: &ModelsStatus) -> Value {
    json!({
        "primary": s.primary,
        "models": s.models.iter().map(|m| json!({
            "alias": m.alias,
            "kind": m.kind,
            "model": m.model,
            "base_url": m.base_url,
            "position": (m.position >= 0).then_some(m.position),
            "available": m.key_present && m.cooling_until_ms == 0 && !m.unreachable,
            "unreachable": m.unreachable,
            "key_present": m.key_present,
            "key_source": m.key_source,
            "cooling_until_ms": (m.cooling_until_ms > 0).then_some(m.cooling_until_ms),
            "last_error": (!m.last_error.is_empty()).then_some(&m.last_error),
            "context_window": m.context_window,
            "successes": m.successes,
            "failures": m.failures,
        })).collect::<Vec<_>>(),
    })
}

pub fn models_table(s: &ModelsStatus) -> String {
    let now_ms = oi_kernel::clock::now_ms();
    let mut out = format!(
        "{:<3} {:<12} {:<9} {:<36} {:<22} {}\n",
        "#", "ALIAS", "KIND", "MODEL", "STATE", "DETAIL"
    );
    let mut models: Vec<_> = s.models.iter().collect();
    models.sort_by_key(|m| (m.position < 0, m.position, m.alias.clone()));
    for m in models {
        let pos = if m.position >= 0 {
            (m.position + 1).to_string()
        } else {
            "-".into()
        };
        let (state, detail) = if !m.key_present {
            ("no key".to_string(), m.key_source.clone())
        } else if m.unreachable {
            let again = match m.cooling_until_ms > now_ms {
                true => format!(
                    " (tried again in {} s)",
                    (m.cooling_until_ms - now_ms + 999) / 1000
                ),
                false => String::new(),
            };
            (
                "unreachable".to_string(),
                format!("{}{again}", m.last_error),
            )
        } else if m.cooling_until_ms > now_ms {
            (
                format!("cooling {}s", (m.cooling_until_ms - now_ms + 999) / 1000),
                m.last_error.clone(),
            )
        } else {
            ("available".to_string(), m.key_source.clone())
        };
        out.push_str(&format!(
            "{pos:<3} {:<12} {:<9} {:<36} {:<22} {detail}\n",
            m.alias, m.kind, m.model, state
        ));
    }
    out
}

pub async fn models(client: &BusClient, json: bool) -> anyhow::Result<ExitCode> {
    let s: ModelsStatus = call(client, llm::MODELS, &()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&models_json(&s))?);
    } else {
        print!("{}", models_table(&s));
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows or sets a chat's model override.
pub async fn model(
    client: &BusClient,
    alias: Option<String>,
    chat: String,
    clear: bool,
) -> anyhow::Result<ExitCode> {
    if alias.is_none() && !clear {
        let c: ModelChoice = call(
            client,
            llm::MODEL_GET,
            &ModelChoice {
                chat: chat.clone(),
                alias: String::new(),
            },
        )
        .await?;
        if c.alias.is_empty() {
            println!("{chat}: the cascade's primary (no override)");
        } else {
            println!("{chat}: {}", c.alias);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let alias = alias.unwrap_or_default();
    let choice = ModelChoice {
        chat: chat.clone(),
        alias: alias.clone(),
    };
    call(client, llm::MODEL_SET, &choice).await?;
    if alias.is_empty() {
        eprintln!("oictl: {chat} uses the cascade's primary again");
    } else {
        eprintln!("oictl: {chat} now starts with '{alias}' (failover still applies)");
    }
    Ok(ExitCode::SUCCESS)
}

fn response_json(r: &ChatResponse) -> Value {
    json!({
        "answer": r.message.content,
        "tool_calls": r.message.tool_calls.iter().map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments, "error": (!c.error.is_empty()).then_some(&c.error)})).collect::<Vec<_>>(),
        "finish_reason": r.finish_reason,
        "tokens": {"prompt": r.usage.prompt_tokens, "completion": r.usage.completion_tokens},
        "provider": r.deployment,
        "model": r.model,
        "fallbacks": r.fallbacks,
        "attempts": r.attempts.iter().map(|a| json!({"deployment": a.deployment, "class": a.class, "status": a.status, "latency_ms": a.latency_ms, "cooldown_ms": a.cooldown_ms, "message": a.message})).collect::<Vec<_>>(),
    })
}

/// One completion without tools, straight from the router.
pub async fn llm(
    client: &BusClient,
    prompt: String,
    model: Option<String>,
    chat: String,
    stream: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut req = ChatRequest::new(vec![ChatMessage::user(prompt)]);
    req.chat = chat;
    req.alias = model.unwrap_or_default();
    let opts = CallOptions::deadline(Duration::from_secs(300)).waiting();
    let response = if stream {
        let mut s = client.stream(llm::CHAT_STREAM, &req, opts)?;
        let mut out = std::io::stdout().lock();
        let mut done = None;
        loop {
            match s.next().await {
                Ok(Some(StreamEvent::Text(t))) => {
                    if !json {
                        write!(out, "{t}")?;
                        out.flush()?;
                    }
                }
                Ok(Some(StreamEvent::ToolCall(_))) => {}
                Ok(Some(StreamEvent::Waiting(w))) => eprintln!("oictl: {w}"),
                Ok(Some(StreamEvent::Done(r))) => done = Some(r),
                Ok(None) => break,
                Err(e) => {
                    if !json {
                        writeln!(out)?;
                    }
                    return Err(e.into());
                }
            }
        }
        if !json {
            writeln!(out)?;
        }
        done.ok_or_else(|| anyhow::anyhow!("the stream ended without an answer"))?
    } else {
        let r = client.call(llm::CHAT, &req, opts).await?;
        if !json {
            println!("{}", r.message.content);
        }
        r
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&response_json(&response))?
        );
    } else {
        let via = if response.fallbacks > 0 {
            format!(
                "{} after {} fallback(s)",
                response.deployment, response.fallbacks
            )
        } else {
            response.deployment.clone()
        };
        eprintln!(
            "✓ {} tokens in, {} out, via {via} ({})",
            response.usage.prompt_tokens, response.usage.completion_tokens, response.model
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `oictl models reset [ALIAS]`: ends cooldowns now.
pub async fn reset(client: &BusClient, alias: Option<String>) -> anyhow::Result<ExitCode> {
    let choice = oi_ipc_schema::llm::ModelChoice {
        chat: String::new(),
        alias: alias.clone().unwrap_or_default(),
    };
    let r = call(client, llm::MODELS_RESET, &choice).await?;
    let what = alias.map_or("every model".to_string(), |a| format!("'{a}'"));
    println!("cooldowns of {what} ended ({} were cooling)", r.alias);
    Ok(ExitCode::SUCCESS)
}
