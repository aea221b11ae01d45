//! The calendar tools: names, schemas and arguments.

use oi_ipc_schema::ToolSpec;
use oi_kernel::tool::spec;
use serde::Deserialize;
use serde_json::json;

pub const LIST: &str = "calendar_list";
pub const EVENTS: &str = "calendar_events";
pub const CREATE: &str = "calendar_create_event";
pub const UPDATE: &str = "calendar_update_event";
pub const DELETE: &str = "calendar_delete_event";
pub const FREE_BUSY: &str = "calendar_free_busy";

/// The tools.
pub fn specs() -> Vec<ToolSpec> {
    let account =
        json!({"type": "string", "description": "Which configured account (default: the first)."});
    let calendar = json!({"type": "string", "description": "A calendar's name from calendar_list (default: the account's)."});
    let time = |what: &str| {
        json!({"type": "string", "description": format!(
            "{what}: 2026-12-04T14:30 (in timezone), 2026-12-04T14:30:00+01:00, or a date 2026-12-04 for a whole day.")})
    };
    let zone = json!({"type": "string", "description": "IANA zone for times without an offset (default: the user's)."});
    let fields = json!({
        "title": {"type": "string"},
        "start": time("Start"),
        "end": time("End (or give duration_minutes)"),
        "duration_minutes": {"type": "integer", "minimum": 1},
        "timezone": zone,
        "location": {"type": "string"},
        "description": {"type": "string"},
        "attendees": {"type": "array", "items": {"type": "string"}, "description": "Email addresses."},
        "rrule": {"type": "string", "description": "An RFC 5545 rule, e.g. FREQ=WEEKLY;BYDAY=MO;COUNT=10 (\"\" removes it)."},
        "reminders": {"type": "array", "items": {"type": "integer", "minimum": 0}, "description": "Minutes before the start."}
    });
    let with = |extra: serde_json::Value| {
        let mut p = fields.clone();
        if let (Some(p), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        p
    };
    vec![
        spec(
            LIST,
            "List the account's calendars with their names and colours.",
            json!({"type": "object", "properties": {"account": account}}),
        ),
        spec(
            EVENTS,
            "The events between two times (default: the next 7 days), recurring ones expanded; each time in the user's zone and in UTC, all-day events marked.",
            json!({"type": "object", "properties": {"account": account, "calendar": calendar,
                "from": time("From"), "to": time("To"), "timezone": zone}}),
        ),
        spec(
            CREATE,
            "Create an event.",
            json!({"type": "object", "required": ["title", "start"],
                "properties": with(json!({"account": account, "calendar": calendar}))}),
        ),
        spec(
            UPDATE,
            "Change an event by uid: only the fields given change (a recurring event changes as a whole series).",
            json!({"type": "object", "required": ["uid"],
                "properties": with(json!({"account": account, "calendar": calendar, "uid": {"type": "string"},
                    "etag": {"type": "string", "description": "The etag calendar_events gave: refused if the event changed since."}}))}),
        ),
        spec(
            DELETE,
            "Delete an event by uid (a recurring event as a whole series).",
            json!({"type": "object", "required": ["uid"], "properties": {"account": account, "calendar": calendar, "uid": {"type": "string"},
                "etag": {"type": "string", "description": "The etag calendar_events gave: refused if the event changed since."}}}),
        ),
        spec(
            FREE_BUSY,
            "Busy blocks and free slots of at least min_minutes within working hours ([calendar] work_start, work_end, work_days) between two times.",
            json!({"type": "object", "required": ["from", "to"], "properties": {"account": account, "calendar": calendar,
                "from": time("From"), "to": time("To"), "timezone": zone,
                "min_minutes": {"type": "integer", "minimum": 1, "description": "Shortest free slot (default 30)."}}}),
        ),
    ]
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub account: Option<String>,
    pub calendar: Option<String>,
    pub uid: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub timezone: Option<String>,
    pub title: Option<String>,
    pub start: Option<String>,
    pub end: Option<String>,
    pub duration_minutes: Option<i64>,
    pub location: Option<String>,
    pub description: Option<String>,
    pub attendees: Option<Vec<String>>,
    pub rrule: Option<String>,
    pub reminders: Option<Vec<i64>>,
    pub min_minutes: Option<i64>,
    /// The version the caller read (from calendar_events): a change made
    /// on the server since then is refused, not overwritten.
    pub etag: Option<String>,
}
