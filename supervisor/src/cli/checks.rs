//! `oictl doctor`'s checks of what the daemon holds: whether the models
//! answer (one tiny request each, with its latency), the disk, and the
//! integrity of the memory database and the audit chain.

use std::path::Path;
use std::time::{Duration, Instant};

use oi_ipc_schema::control::audit;
use oi_ipc_schema::llm::{self, ChatMessage, ChatRequest, ModelStatus};
use oi_ipc_schema::memory;
use oi_kernel::client::{BusClient, CallOptions};

/// One line of the report: `ok` (with notes that need no action) or a
/// problem with what to do.
pub(super) type Report<'a> = dyn FnMut(bool, String) + 'a;

/// Free space below this is a problem (SQLite needs room to write).
const LOW_DISK: u64 = 200 << 20;
/// How long one model has to answer its probe.
const PROBE: Duration = Duration::from_secs(30);

/// Each model of the cascade that has its key gets one tiny request,
/// addressed to it; none configured is how a fresh install is (a note, not
/// a problem), and so is a keyless local server that is not running.
pub(super) async fn models(client: &BusClient, report: &mut Report<'_>) {
    let quick = CallOptions::deadline(Duration::from_secs(5)).waiting();
    let status = match client.call(llm::MODELS, &(), quick).await {
        Ok(s) => s,
        Err(e) => {
            return report(
                false,
                format!("models: the router does not answer ({e}); see `oictl logs llm-router`"),
            );
        }
    };
    let mut wanted: Vec<&ModelStatus> = status
        .models
        .iter()
        .filter(|m| m.key_present && m.position >= 0)
        .collect();
    wanted.sort_by_key(|m| m.position);
    if wanted.is_empty() {
        return report(
            true,
            "models: none configured yet; simple requests work without one, and `oictl models` says what each alias needs".into(),
        );
    }
    let aliases: Vec<String> = wanted.iter().map(|m| m.alias.clone()).collect();
    for alias in aliases {
        // Asked afresh each time: a probe that failed over to the next
        // deployment may have tried (and cooled) it already.
        let Some(m) = fresh(client, &alias).await else {
            continue;
        };
        let failed = if m.cooling_until_ms > oi_kernel::clock::now_ms() {
            m.last_error.clone()
        } else {
            let mut req = ChatRequest::new(vec![ChatMessage::user("Reply with the word OK.")]);
            req.alias = alias.clone();
            req.max_tokens = 16;
            let t0 = Instant::now();
            match client
                .call(llm::CHAT, &req, CallOptions::deadline(PROBE))
                .await
            {
                Ok(r) if r.deployment == alias => {
                    report(
                        true,
                        format!(
                            "model {alias}: answered in {} ms ({})",
                            t0.elapsed().as_millis(),
                            r.model
                        ),
                    );
                    continue;
                }
                // It failed (another answered, or none did): the router
                // knows how.
                other => match fresh(client, &alias).await {
                    Some(after) if !after.last_error.is_empty() => after.last_error,
                    _ => match other {
                        Ok(r) => format!("{} answered in its place", r.deployment),
                        Err(e) => e.to_string(),
                    },
                },
            }
        };
        let local = m.key_source == "none";
        if local && failed.contains("connect_failed") {
            report(
                true,
                format!(
                    "model {}: nothing answers at {} (a local server that is not running; start it, or take {} out of [cascade] order)",
                    alias, m.base_url, alias
                ),
            );
        } else {
            report(
                false,
                format!(
                    "model {alias}: {failed}; check its key and address (`oictl models`, `oictl vault set`)"
                ),
            );
        }
    }
}

/// The router's state of one deployment now.
async fn fresh(client: &BusClient, alias: &str) -> Option<ModelStatus> {
    let quick = CallOptions::deadline(Duration::from_secs(5));
    let status = client.call(llm::MODELS, &(), quick).await.ok()?;
    status.models.into_iter().find(|m| m.alias == alias)
}

/// Free space where the daemon keeps its data.
pub(super) fn disk(data: &Path, report: &mut Report<'_>) {
    let at = std::iter::successors(Some(data), |p| p.parent())
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    match nix::sys::statvfs::statvfs(at) {
        Ok(s) => {
            // The field types differ by platform (u64 on Linux, u32 on macOS).
            #[allow(clippy::unnecessary_cast)]
            let free = (s.blocks_available() as u64).saturating_mul(s.fragment_size() as u64);
            let line = format!("disk: {} free at {}", bytes(free), at.display());
            if free < LOW_DISK {
                report(
                    false,
                    format!("{line}; the databases need room to write: free some space"),
                );
            } else {
                report(true, line);
            }
        }
        Err(e) => report(false, format!("disk: cannot measure {}: {e}", at.display())),
    }
}

/// SQLite's integrity check of the memory database, and the audit chain.
pub(super) async fn databases(client: &BusClient, has_memory: bool, report: &mut Report<'_>) {
    let slow = CallOptions::deadline(Duration::from_secs(60));
    if has_memory {
        match client.call(memory::CHECK, &(), slow.clone()).await {
            Ok(r) if r.result == "ok" => report(
                true,
                format!(
                    "memory database: intact ({} facts, {} episodes)",
                    r.facts, r.episodes
                ),
            ),
            Ok(r) => report(
                false,
                format!(
                    "memory database: {}; stop the daemon and restore memory.db from a backup",
                    r.result
                ),
            ),
            Err(e) => report(false, format!("memory database: not checked ({e})")),
        }
    }
    match client.call(audit::VERIFY, &(), slow).await {
        Ok(v) if v.problems.is_empty() => {
            report(true, format!("audit log: chain intact ({} rows)", v.rows))
        }
        Ok(v) => report(
            false,
            format!(
                "audit log: {} (`oictl audit --verify` lists them)",
                v.problems.join("; ")
            ),
        ),
        Err(e) => report(false, format!("audit log: not checked ({e})")),
    }
}

fn bytes(n: u64) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    const MIB: f64 = (1u64 << 20) as f64;
    if n as f64 >= GIB {
        format!("{:.1} GiB", n as f64 / GIB)
    } else {
        format!("{:.0} MiB", n as f64 / MIB)
    }
}
