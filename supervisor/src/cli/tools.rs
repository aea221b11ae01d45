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
            eprintln!("oictl: {}", failure(name, &e));
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("oictl: {e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// A tool's failure in one line, its name said once: the adapters already
/// start their messages with the tool's name.
fn failure(name: &str, e: &oi_kernel::client::BusError) -> String {
    match e {
        oi_kernel::client::BusError::Remote { code, message } => {
            let message = message
                .strip_prefix(&format!("{name}: "))
                .unwrap_or(message);
            format!("{name} failed ({code}): {message}")
        }
        other => format!("{name} failed: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_ipc_schema::ErrorCode;
    use oi_kernel::client::BusError;

    #[test]
    fn a_failure_names_the_tool_and_its_class_once() {
        let e = BusError::Remote {
            code: ErrorCode::BadRequest,
            message: "fs_list_dir: 'nope' does not exist".into(),
        };
        assert_eq!(
            failure("fs_list_dir", &e),
            "fs_list_dir failed (bad_request): 'nope' does not exist"
        );
        let e = BusError::Remote {
            code: ErrorCode::Denied,
            message: "a refusal without the name".into(),
        };
        assert_eq!(
            failure("shell_execute", &e),
            "shell_execute failed (denied): a refusal without the name"
        );
    }
}
