//! The agent's tools: `cron_add`, `cron_list` and `cron_remove`, the
//! scheduler's own operations as JSON.
//!
//! A job made by a tool belongs to the chat the agent was serving (the
//! request's chat, taken only from the agent): it delivers there, and that
//! chat's tools see and remove only its own jobs. A model cannot name
//! other delivery targets, so a prompt in a tool result cannot send a
//! job's answers elsewhere.

use oi_ipc_schema::ToolSpec;
use oi_ipc_schema::scheduler::{JobInfo, JobSpec, Missed, Overlap};
use oi_kernel::tool::spec;
use serde::Deserialize;
use serde_json::{Value, json};

pub const ADD: &str = "cron_add";
pub const LIST: &str = "cron_list";
pub const REMOVE: &str = "cron_remove";

pub fn specs() -> Vec<ToolSpec> {
    vec![
        spec(
            ADD,
            "Schedule an intent: it runs on its own at the times given, and its answer is sent to this chat. Use it for reminders and recurring checks ('every weekday at 8 check the weather in Berlin').",
            json!({"type": "object", "required": ["schedule", "intent"], "properties": {
                "schedule": {"type": "string", "description": "A cron expression of 5 fields (minute hour day-of-month month day-of-week: `0 8 * * 1-5` is 08:00 Monday to Friday; also @daily, @hourly), `every 30m`, `at 2026-12-24T09:00:00+01:00`, or `in 2h`."},
                "intent": {"type": "string", "description": "What to do at each run, said as the user would say it."},
                "name": {"type": "string", "description": "A short name; default: the intent's first words."},
                "zone": {"type": "string", "description": "IANA time zone of a cron expression (Europe/Berlin); default: the host's."},
                "missed": {"type": "string", "enum": Missed::WORDS, "description": "Runs missed while the system was off: skip (default), run_once (catch up the latest), run_all."}}}),
        ),
        spec(
            LIST,
            "List the scheduled jobs of this chat, with their schedule in words, next run and last outcome.",
            json!({"type": "object", "properties": {}}),
        ),
        spec(
            REMOVE,
            "Remove a scheduled job of this chat by its id (from cron_list).",
            json!({"type": "object", "required": ["id"], "properties": {
                "id": {"type": "integer"}}}),
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddArgs {
    schedule: String,
    intent: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    missed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    pub id: i64,
}

/// The job a `cron_add` from `chat` asks for: it delivers to `chat` when a
/// gateway serves it.
pub fn add_spec(a: AddArgs, chat: &str) -> Result<JobSpec, String> {
    let missed = match a.missed.as_deref() {
        None | Some("") => Missed::Skip,
        Some(w) => Missed::parse(w).map_err(|e| format!("missed: {e}"))?,
    };
    let deliver = oi_ipc_schema::gateway::target(chat)
        .map(|_| vec![chat.to_string()])
        .unwrap_or_default();
    Ok(JobSpec {
        name: a.name,
        schedule: a.schedule,
        zone: a.zone,
        intent: a.intent,
        chat: String::new(),
        alias: String::new(),
        deliver,
        timeout_secs: 0,
        overlap: Overlap::Skip,
        missed,
        jitter_secs: 0,
    })
}

/// A job as a tool shows it to the model.
pub fn job_json(j: &JobInfo) -> Value {
    json!({
        "id": j.id,
        "name": j.name,
        "schedule": j.schedule,
        "described": j.described,
        "zone": j.zone,
        "intent": j.intent,
        "enabled": j.enabled,
        "disabled_reason": j.disabled_reason,
        "next_run": j.next_local,
        "next_run_utc": j.next_utc,
        "deliver": j.deliver,
        "last": j.last.as_ref().map(|r| json!({"status": r.status, "reason": r.reason})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> AddArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_job_from_a_chat_delivers_there_and_nowhere_else() {
        let s = add_spec(
            args(json!({"schedule": "0 8 * * 1-5", "intent": "check the weather in Berlin", "zone": "Europe/Berlin"})),
            "telegram:7",
        )
        .unwrap();
        assert_eq!(s.deliver, ["telegram:7"]);
        assert_eq!((s.zone.as_str(), s.missed), ("Europe/Berlin", Missed::Skip));
        // From oictl's chat, no gateway: the history only.
        let s = add_spec(args(json!({"schedule": "@daily", "intent": "x"})), "cli:me").unwrap();
        assert!(s.deliver.is_empty());
        // A target is not an argument a model may give.
        assert!(
            serde_json::from_value::<AddArgs>(
                json!({"schedule": "@daily", "intent": "x", "deliver": ["telegram:9"]})
            )
            .is_err()
        );
        let e = add_spec(
            args(json!({"schedule": "@daily", "intent": "x", "missed": "all"})),
            "",
        )
        .unwrap_err();
        assert!(e.contains("expected one of skip, run_once, run_all"), "{e}");
    }
}
