//! `oictl memory ...`: the memory service's facts (save, search, list,
//! delete), its statistics, and the chat gateways' user accounts.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::Subcommand;
use oi_kernel::client::{BusClient, CallOptions};

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
}

/// Calls one of the memory service's tools with JSON arguments.
async fn memory_tool(
    client: &BusClient,
    tool: &str,
    args: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let opts = CallOptions::deadline(Duration::from_secs(30)).waiting();
    Ok(oi_kernel::tool::call_on(client, "memory", tool, &args.to_string(), opts).await?)
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
            let r = memory_tool(client, oi_ipc_schema::memory::methods::STATS, json!({})).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("facts            {}", r["facts"]);
                println!("episodes         {}", r["episodes"]);
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
    }
    Ok(ExitCode::SUCCESS)
}
