//! `oictl memory ...`: the memory service's facts (save, search, list,
//! delete), its statistics, and the chat gateways' user accounts.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use oi_ipc_schema::memory;
use oi_ipc_schema::{Call, Json};
use oi_kernel::client::{BusClient, CallOptions};
use serde_json::Value;

use crate::cli::human_duration;

#[derive(Subcommand)]
pub enum MemoryCmd {
    /// Save a fact.
    Save {
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
        /// A tag; repeat for more.
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Search by keywords and meaning.
    Search {
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
        #[arg(short = 'n', long, default_value_t = 5)]
        limit: u32,
        /// hybrid (keywords and meaning), keyword, or vector (meaning only).
        #[arg(long, default_value = "hybrid", value_parser = ["hybrid", "keyword", "vector"])]
        mode: String,
        #[arg(long)]
        json: bool,
    },
    /// Counts, and which embeddings search uses (the provider's or the
    /// local one) and how many facts have the provider's.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// List saved facts, newest first.
    List {
        #[arg(short = 'n', long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Delete a fact by id.
    Rm { id: i64 },
    /// The chat gateways' user accounts, most recently seen first.
    Accounts {
        /// Only this gateway's (its service name, e.g. telegram).
        #[arg(long)]
        gateway: Option<String>,
        #[arg(short = 'n', long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Delete a user's account (its name, chats and counts; the chats'
    /// history and settings stay).
    ForgetAccount {
        /// The gateway's service name, as `oictl memory accounts` shows it.
        gateway: String,
        /// The user's id on that gateway.
        user_id: String,
    },
}

/// Calls one of the memory service's tools with JSON arguments.
async fn memory_tool(
    client: &BusClient,
    tool: &str,
    args: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let opts = CallOptions::deadline(Duration::from_secs(30)).waiting();
    Ok(oi_kernel::tool::call_on(client, memory::SERVICE, tool, &args.to_string(), opts).await?)
}

/// Calls one of memory's own JSON methods.
async fn memory_json(
    client: &BusClient,
    method: Call<Json, Json>,
    args: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let opts = CallOptions::deadline(Duration::from_secs(30)).waiting();
    let Json(reply) = client.call(method, &Json(args.to_string()), opts).await?;
    Ok(serde_json::from_str(&reply)?)
}

pub async fn memory(client: &BusClient, action: MemoryCmd) -> anyhow::Result<ExitCode> {
    use serde_json::json;
    // A result as JSON, or the facts under `key` one per line.
    let print_facts = |r: &serde_json::Value, key: &str, as_json: bool| -> anyhow::Result<()> {
        if as_json {
            println!("{}", serde_json::to_string_pretty(r)?);
            return Ok(());
        }
        let items = r[key].as_array().map(Vec::as_slice).unwrap_or_default();
        for f in items {
            let tags = f["tags"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let score = f["score"]
                .as_f64()
                .map(|s| format!(" ({s:.3})"))
                .unwrap_or_default();
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!(" [{tags}]")
            };
            println!(
                "{:>6}  {}{tags}{score}",
                f["id"],
                f["text"].as_str().unwrap_or("")
            );
        }
        Ok(())
    };
    match action {
        MemoryCmd::Save { text, tags } => {
            let r = memory_tool(
                client,
                "memory_save",
                json!({"text": text.join(" "), "tags": tags}),
            )
            .await?;
            eprintln!("oictl: saved memory {}", r["id"]);
        }
        MemoryCmd::Search {
            query,
            limit,
            mode,
            json,
        } => {
            let r = memory_tool(
                client,
                "memory_search",
                json!({"query": query.join(" "), "limit": limit, "mode": mode}),
            )
            .await?;
            print_facts(&r, "results", json)?;
            if !json {
                eprintln!(
                    "oictl: embeddings used: {}",
                    r["via"].as_str().unwrap_or("?")
                );
            }
        }
        MemoryCmd::Stats { json } => {
            let opts = CallOptions::deadline(Duration::from_secs(30)).waiting();
            let Json(text) = client.call(memory::STATS, &(), opts).await?;
            let r: serde_json::Value = serde_json::from_str(&text)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("facts            {}", r["facts"]);
                println!("episodes         {}", r["episodes"]);
                println!("accounts         {}", r["accounts"]);
                println!(
                    "embeddings       {}",
                    r["embeddings"].as_str().unwrap_or("")
                );
                let space = r["space"].as_str().unwrap_or("");
                if !space.is_empty() {
                    println!("provider space   {space}");
                    println!(
                        "provider vectors {} of {} facts ({} dimensions)",
                        r["provider_vectors"], r["facts"], r["provider_dimensions"]
                    );
                }
            }
        }
        MemoryCmd::List { limit, json } => {
            let r = memory_tool(client, "memory_list", json!({"limit": limit})).await?;
            print_facts(&r, "memories", json)?;
        }
        MemoryCmd::Rm { id } => {
            let r = memory_tool(client, "memory_delete", json!({"id": id})).await?;
            if r["deleted"] != true {
                bail!("no memory with id {id}");
            }
            eprintln!("oictl: deleted memory {id}");
        }
        MemoryCmd::Accounts {
            gateway,
            limit,
            json,
        } => {
            let r = memory_json(
                client,
                memory::ACCOUNT_LIST,
                json!({"gateway": gateway.unwrap_or_default(), "limit": limit}),
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r["accounts"])?);
            } else {
                print!(
                    "{}",
                    accounts_table(&r["accounts"], oi_kernel::clock::now_ms())
                );
            }
        }
        MemoryCmd::ForgetAccount { gateway, user_id } => {
            let r = memory_json(
                client,
                memory::ACCOUNT_FORGET,
                json!({"gateway": gateway, "user_id": user_id}),
            )
            .await?;
            if r["forgotten"] != true {
                bail!("no account {user_id} on gateway '{gateway}'");
            }
            eprintln!("oictl: forgot account {gateway}:{user_id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The accounts as a table: who, on which gateway, how often, when last,
/// in which chats.
fn accounts_table(accounts: &Value, now_ms: i64) -> String {
    let mut out = format!(
        "{:<24} {:<28} {:<5} {:>8} {:>10}  CHATS\n",
        "ACCOUNT", "NAME", "LANG", "MESSAGES", "LAST SEEN"
    );
    for a in accounts.as_array().map(Vec::as_slice).unwrap_or_default() {
        let s = |k: &str| a[k].as_str().unwrap_or("").to_string();
        let mut name = s("name");
        if !s("username").is_empty() {
            name = format!("{name} (@{})", s("username"))
                .trim_start()
                .to_string();
        }
        let ago = now_ms.saturating_sub(a["last_seen_ms"].as_i64().unwrap_or(0));
        let chats: Vec<&str> = a["chats"]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<24} {:<28} {:<5} {:>8} {:>10}  {}\n",
            format!("{}:{}", s("gateway"), s("user_id")),
            name,
            s("language"),
            a["messages"].as_u64().unwrap_or(0),
            format!("{} ago", human_duration(ago.max(0) as u64)),
            chats.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_print_as_a_table() {
        let accounts = serde_json::json!([
            {"gateway": "telegram", "user_id": "7", "name": "Ann Lee", "username": "ann",
             "language": "en", "messages": 12, "last_seen_ms": 1_000_000 - 90_000,
             "chats": ["telegram:-100", "telegram:7"]},
            {"gateway": "telegram", "user_id": "8", "name": "", "username": "bob",
             "language": "", "messages": 1, "last_seen_ms": 1_000_000, "chats": []},
        ]);
        let t = accounts_table(&accounts, 1_000_000);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("ACCOUNT"), "{t}");
        assert!(lines[1].starts_with("telegram:7 "), "{t}");
        assert!(lines[1].contains("Ann Lee (@ann)"), "{t}");
        assert!(lines[1].contains(" en "), "{t}");
        assert!(
            lines[1].contains("12") && lines[1].contains("1m30s ago"),
            "{t}"
        );
        assert!(lines[1].ends_with("telegram:-100, telegram:7"), "{t}");
        assert!(
            lines[2].contains("(@bob)") && lines[2].contains("0s ago"),
            "{t}"
        );
    }
}
