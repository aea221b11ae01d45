//! `oictl tools` and `oictl tool`: the adapters' tools from the command
//! line.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use oi_kernel::client::{BusClient, CallOptions};
use oi_kernel::tool::{self, ToolCallError};
use serde_json::{Value, json};

pub async fn tools(client: &BusClient, as_json: bool) -> anyhow::Result<ExitCode> {
    let list = tool::list(client, Duration::from_secs(10)).await?;
    if as_json {
        let v: Vec<Value> = list
            .tools
            .iter()
            .map(|t| {
                json!({
                    "name": t.spec.name,
                    "service": t.service,
                    "description": t.spec.description,
                    "parameters": serde_json::from_str::<Value>(&t.spec.args_schema_json).unwrap_or(Value::Null),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{:<16} {:<12} DESCRIPTION", "TOOL", "SERVICE");
        for t in &list.tools {
            println!(
                "{:<16} {:<12} {}",
                t.spec.name, t.service, t.spec.description
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tool(
    client: &BusClient,
    name: &str,
    args: &str,
    timeout: u64,
) -> anyhow::Result<ExitCode> {
    let parsed: Value = serde_json::from_str(args)
        .with_context(|| format!("the arguments of {name} are not valid JSON: {args}"))?;
    if !parsed.is_object() {
        anyhow::bail!(
            "the arguments of {name} must be a JSON object, like '{{\"path\": \"notes.md\"}}'"
        );
    }
    let opts = CallOptions::deadline(Duration::from_secs(timeout.max(1)));
    match tool::call(client, name, args, opts).await {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(ExitCode::SUCCESS)
        }
        Err(ToolCallError::Bus(e)) => {
            eprintln!("oictl: {name} failed: {e}");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("oictl: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
