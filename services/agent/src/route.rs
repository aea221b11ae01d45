//! Intents the intent router matched: built-in answers and direct tool
//! calls, without a model.

use std::time::{Duration, SystemTime};

use crate::intent::{Action, IntentRouter, Routed};
use oi_ipc_schema::agent::ToolCallRecord;
use oi_ipc_schema::control::{self, StatusReport};
use oi_kernel::client::{BusClient, CallOptions};
use oi_kernel::harness::ServiceError;
use serde_json::Value;

use crate::bus::{self, BusTools};
use crate::react::Tools;

/// The answer, and the tool call made for it (if any).
pub struct Answered {
    pub answer: String,
    pub call: Option<ToolCallRecord>,
}

pub async fn dispatch(
    client: &BusClient,
    tools: &BusTools,
    router: &IntentRouter,
    routed: &Routed,
    intent: &str,
    tool_timeout: Duration,
) -> Result<Answered, ServiceError> {
    match &routed.action {
        Action::Answer(what) => Ok(Answered {
            answer: builtin(client, tools, router, what).await?,
            call: None,
        }),
        Action::Tool { name, arguments } => {
            let catalog = tools.list().await;
            let Some(t) = catalog.iter().find(|t| t.def.name == *name) else {
                return Err(ServiceError::new(
                    oi_ipc_schema::ErrorCode::Unavailable,
                    format!(
                        "'{}' needs the tool {name}, and no running service offers it (`oictl tools` lists the tools)",
                        routed.pattern
                    ),
                ));
            };
            let started = std::time::Instant::now();
            let outcome = tools
                .call(&t.service, name, arguments, intent, "", tool_timeout)
                .await;
            let mut record = ToolCallRecord {
                id: "routed".into(),
                name: name.clone(),
                arguments: arguments.clone(),
                service: t.service.clone(),
                duration_ms: started.elapsed().as_millis() as u64,
                error: String::new(),
            };
            match outcome {
                Ok(text) => Ok(Answered {
                    answer: render(name, &text),
                    call: Some(record),
                }),
                Err(e) => {
                    record.error = e.clone();
                    Err(ServiceError::bad_request(format!("{name}: {e}")))
                }
            }
        }
    }
}

async fn builtin(
    client: &BusClient,
    tools: &BusTools,
    router: &IntentRouter,
    what: &str,
) -> Result<String, ServiceError> {
    match what {
        "status" => status(client).await,
        "help" => {
            let mut out = String::from(
                "Tell me what you want in your own words; I plan it and use the tools below. These requests are answered at once, without a model:\n",
            );
            for (name, phrase, description) in router.describe() {
                out.push_str(&format!("  {phrase:<22} {description} [{name}]\n"));
            }
            out.push_str("Chat commands: /model <alias>, /models, /tokens on|off, /status, /clear, /reset, /help.");
            Ok(out)
        }
        "models" => {
            let m = bus::models(client, Duration::from_secs(5)).await?;
            let mut out = format!(
                "Primary: {}\n",
                if m.primary.is_empty() {
                    "(none)"
                } else {
                    &m.primary
                }
            );
            for s in &m.models {
                out.push_str(&format!(
                    "  {:<14} {:<10} {:<36} {}\n",
                    s.alias,
                    s.kind,
                    s.model,
                    if s.key_present { "usable" } else { "no key" }
                ));
            }
            Ok(out.trim_end().to_string())
        }
        "tools" => {
            let list = tools.list().await;
            let mut out = format!("{} tools:\n", list.len());
            for t in &list {
                out.push_str(&format!(
                    "  {:<16} ({}) {}\n",
                    t.def.name, t.service, t.def.description
                ));
            }
            Ok(out.trim_end().to_string())
        }
        "time" => Ok(format!(
            "It is {} (UTC).",
            httpdate::fmt_http_date(SystemTime::now())
        )),
        other => Err(ServiceError::bad_request(format!(
            "no built-in answer named '{other}'"
        ))),
    }
}

/// Every service's state, from the supervisor, one line each.
pub async fn status(client: &BusClient) -> Result<String, ServiceError> {
    let r: StatusReport = client
        .call(
            control::STATUS,
            &(),
            CallOptions::deadline(Duration::from_secs(5)),
        )
        .await?;
    Ok(status_text(&r))
}

fn status_text(r: &StatusReport) -> String {
    let ready = r
        .services
        .iter()
        .filter(|s| s.state == oi_ipc_schema::control::ChildState::Ready)
        .count();
    let mut out = format!("{ready} of {} services ready:\n", r.services.len());
    for s in &r.services {
        out.push_str(&format!(
            "  {:<12} {:<8} pid {:<8} restarts {}\n",
            s.name,
            s.state.as_str(),
            s.pid.map_or("-".to_string(), |p| p.to_string()),
            s.restarts_total
        ));
    }
    out.trim_end().to_string()
}

/// A tool's JSON result as text for a person.
pub fn render(tool: &str, text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    match tool {
        "fs_list_dir" => {
            let mut out = format!("{}:\n", v["path"].as_str().unwrap_or("."));
            for e in v["entries"].as_array().into_iter().flatten() {
                let name = e["name"].as_str().unwrap_or("?");
                match e["type"].as_str() {
                    Some("dir") => out.push_str(&format!("  {name}/\n")),
                    _ => out.push_str(&format!("  {name}  ({} bytes)\n", e["size"])),
                }
            }
            if let Some(note) = v["note"].as_str() {
                out.push_str(note);
            }
            out.trim_end().to_string()
        }
        "fs_read_file" => {
            let mut out = v["content"].as_str().unwrap_or_default().to_string();
            if let Some(note) = v["note"].as_str() {
                out.push_str(&format!("\n[{note}]"));
            }
            out
        }
        "memory_save" => match v["id"].as_i64() {
            Some(id) => format!("Remembered (fact {id})."),
            None => text.to_string(),
        },
        "memory_search" | "memory_list" => {
            let key = if tool == "memory_search" {
                "results"
            } else {
                "memories"
            };
            let items: Vec<&str> = v[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["text"].as_str())
                .collect();
            if items.is_empty() {
                return if tool == "memory_search" {
                    "Nothing in memory matches.".into()
                } else {
                    "Nothing is saved in memory yet.".into()
                };
            }
            let head = if tool == "memory_search" {
                "From memory:"
            } else {
                "Saved in memory:"
            };
            let lines: Vec<String> = items.iter().map(|t| format!("- {t}")).collect();
            format!("{head}\n{}", lines.join("\n"))
        }
        "web_search" => {
            let mut out = String::new();
            for (i, r) in v["results"].as_array().into_iter().flatten().enumerate() {
                out.push_str(&format!(
                    "{}. {}\n   {}\n",
                    i + 1,
                    r["title"].as_str().unwrap_or(""),
                    r["url"].as_str().unwrap_or("")
                ));
            }
            if out.is_empty() {
                "No results.".into()
            } else {
                out.trim_end().to_string()
            }
        }
        "web_fetch" => format!(
            "{}\n\n{}",
            v["title"].as_str().unwrap_or(""),
            v["text"].as_str().unwrap_or("")
        )
        .trim()
        .to_string(),
        _ => serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_read_as_text() {
        let list = r#"{"path":"notes","entries":[{"name":"a.md","type":"file","size":12,"modified":1},{"name":"sub","type":"dir","size":0,"modified":1}]}"#;
        assert_eq!(
            render("fs_list_dir", list),
            "notes:\n  a.md  (12 bytes)\n  sub/"
        );
        assert_eq!(render("fs_read_file", r#"{"content":"hi\n"}"#), "hi\n");
        assert_eq!(
            render(
                "web_search",
                r#"{"results":[{"title":"T","url":"https://u"}]}"#
            ),
            "1. T\n   https://u"
        );
        // Memory answers in sentences, never raw JSON or scores.
        assert_eq!(render("memory_save", r#"{"id":3}"#), "Remembered (fact 3).");
        assert_eq!(
            render(
                "memory_search",
                r#"{"results":[{"id":1,"text":"The user likes dark roast","score":0.03}],"via":"local"}"#
            ),
            "From memory:\n- The user likes dark roast"
        );
        assert_eq!(
            render("memory_search", r#"{"results":[],"via":"local"}"#),
            "Nothing in memory matches."
        );
        assert_eq!(
            render(
                "memory_list",
                r#"{"memories":[{"id":1,"text":"a"},{"id":2,"text":"b"}]}"#
            ),
            "Saved in memory:\n- a\n- b"
        );
    }
}
