//! `oictl approve`: the user approves (or refuses) a command the shell
//! adapter holds back under `[shell] policy = "approval"`.
//!
//! Approval is bound to a person at a terminal: `oictl approve <id>` shows
//! the exact command, its directory and the intent that asked, then asks
//! the adapter for a one-time code and has the user type it back. Without
//! a terminal it refuses: a script, or anything a model runs, cannot
//! approve. What the user approves runs once, when the call is made again.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use oi_ipc_schema::shell::{APPROVALS, CHALLENGE, GRANT, REFUSE};
use oi_ipc_schema::{Call, Json};
use oi_kernel::client::{BusClient, CallOptions};
use serde_json::{Value, json};

async fn call(client: &BusClient, method: Call<Json, Json>, args: Value) -> anyhow::Result<Value> {
    let opts = CallOptions::deadline(Duration::from_secs(10));
    let Json(reply) = client.call(method, &Json(args.to_string()), opts).await?;
    Ok(serde_json::from_str(&reply)?)
}

/// Who is approving, for the audit log: the login name, uid and terminal.
fn who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let uid = nix::unistd::getuid();
    let tty = std::fs::read_link("/proc/self/fd/0")
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "a terminal".into());
    format!("{user} (uid {uid}) on {tty}")
}

fn show(a: &Value) {
    println!("  command: {}", a["command"].as_str().unwrap_or(""));
    println!("  in:      {}", a["cwd"].as_str().unwrap_or(""));
    let intent = a["intent"].as_str().unwrap_or("");
    println!(
        "  for:     {}",
        if intent.is_empty() {
            "a direct call (no intent)"
        } else {
            intent
        }
    );
    if let Some(p) = a["programs"].as_array() {
        let names: Vec<&str> = p.iter().filter_map(Value::as_str).collect();
        println!("  needs:   {} (not on [shell] allow)", names.join(", "));
    }
}

pub async fn approve(
    client: &BusClient,
    id: Option<String>,
    refuse: bool,
) -> anyhow::Result<ExitCode> {
    let Some(id) = id else {
        let list = call(client, APPROVALS, json!({})).await?;
        let pending = list["pending"].as_array().cloned().unwrap_or_default();
        if pending.is_empty() {
            println!("no command waits for approval");
        }
        for a in &pending {
            println!(
                "{}  {} s ago{}",
                a["id"].as_str().unwrap_or(""),
                a["age_secs"],
                if a["granted"] == true {
                    "  (approved, not run yet)"
                } else {
                    ""
                }
            );
            show(a);
        }
        return Ok(ExitCode::SUCCESS);
    };
    if refuse {
        let r = call(client, REFUSE, json!({"id": id})).await?;
        println!(
            "refused: {}",
            r["refused"]["command"].as_str().unwrap_or("")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!(
            "approving needs a terminal: `oictl approve {id}` shows you the exact command and asks you to type a one-time code, so no script (and nothing a model runs) can approve; `oictl approve {id} --refuse` works anywhere"
        );
    }
    let c = call(client, CHALLENGE, json!({"id": id})).await?;
    let code = c["code"].as_str().unwrap_or("").to_string();
    println!("Approval {id} asks to run, once:");
    show(&c["approval"]);
    print!("Type {code} to approve it, or anything else to refuse: ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    if line.trim() != code {
        call(client, REFUSE, json!({"id": id})).await?;
        println!("refused; nothing ran");
        return Ok(ExitCode::from(1));
    }
    call(
        client,
        GRANT,
        json!({"id": id, "code": line.trim(), "who": who()}),
    )
    .await?;
    println!(
        "approved: the next call of exactly this command, in this directory, for this intent, runs (within 10 minutes)"
    );
    Ok(ExitCode::SUCCESS)
}
