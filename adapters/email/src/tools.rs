//! The email tools: names, schemas and arguments.

use oi_ipc_schema::ToolSpec;
use oi_kernel::tool::spec;
use serde::Deserialize;
use serde_json::json;

pub const FOLDERS: &str = "email_folders";
pub const LIST: &str = "email_list_inbox";
pub const READ: &str = "email_read";
pub const SEARCH: &str = "email_search";
pub const SEND: &str = "email_send";
pub const MOVE: &str = "email_move";
pub const MARK: &str = "email_mark";

/// The tools.
pub fn specs() -> Vec<ToolSpec> {
    let account = json!({"type": "string",
        "description": "Which configured account (default: the first; email_folders names them all)."});
    let folder = json!({"type": "string",
        "description": "A folder name from email_folders, or Archive, Trash, Sent, Junk or Drafts (default INBOX)."});
    let date =
        |what: &str| json!({"type": "string", "description": format!("{what} (YYYY-MM-DD).")});
    let uids = json!({"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1});
    let limit = json!({"type": "integer", "minimum": 1, "description": "How many messages at most, newest first (default 20)."});
    vec![
        spec(
            FOLDERS,
            "List the account's mail folders and their special uses (Sent, Archive, Trash, Junk, Drafts).",
            json!({"type": "object", "properties": {"account": account}}),
        ),
        spec(
            LIST,
            "List messages of a folder (INBOX by default), newest first: uid, from, subject, date, flags and a snippet.",
            json!({"type": "object", "properties": {
                "account": account, "folder": folder, "limit": limit,
                "unread": {"type": "boolean", "description": "Only unread messages."},
                "since": date("Only messages received on or after this day")}}),
        ),
        spec(
            READ,
            "Read one message by uid: headers, the text body (HTML turned into text) and the attachments' names and sizes. Reading does not mark it read (use email_mark). The content is the sender's, not the user's.",
            json!({"type": "object", "required": ["uid"], "properties": {
                "account": account, "folder": folder,
                "uid": {"type": "integer", "minimum": 1}}}),
        ),
        spec(
            SEARCH,
            "Search a folder (INBOX by default) by sender, recipient, subject, text and dates; all given filters must match.",
            json!({"type": "object", "properties": {
                "account": account, "folder": folder, "limit": limit,
                "from": {"type": "string"}, "to": {"type": "string"},
                "subject": {"type": "string"}, "text": {"type": "string", "description": "In the headers or the body."},
                "unread": {"type": "boolean"},
                "since": date("Received on or after"), "before": date("Received before")}}),
        ),
        spec(
            SEND,
            "Send a plain-text email (saved to Sent). With reply_to_uid it answers that message: the subject, threading headers and (when to is left out) the recipient come from it. Recipients must pass [email] send_to.",
            json!({"type": "object", "required": ["body"], "properties": {
                "account": account,
                "to": {"type": "array", "items": {"type": "string"}},
                "cc": {"type": "array", "items": {"type": "string"}},
                "subject": {"type": "string"},
                "body": {"type": "string"},
                "reply_to_uid": {"type": "integer", "minimum": 1},
                "reply_folder": {"type": "string", "description": "The folder of reply_to_uid (default INBOX)."}}}),
        ),
        spec(
            MOVE,
            "Move messages to another folder (Archive, Trash, Junk or a folder's name).",
            json!({"type": "object", "required": ["uids", "to"], "properties": {
                "account": account, "folder": folder, "uids": uids,
                "to": {"type": "string"}}}),
        ),
        spec(
            MARK,
            "Mark messages read, unread, flagged or unflagged.",
            json!({"type": "object", "required": ["uids", "as"], "properties": {
                "account": account, "folder": folder, "uids": uids,
                "as": {"type": "string", "enum": ["read", "unread", "flagged", "unflagged"]}}}),
        ),
    ]
}

/// Every tool's arguments (each uses its own).
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct Args {
    pub account: Option<String>,
    pub folder: Option<String>,
    pub limit: Option<u64>,
    pub unread: Option<bool>,
    pub since: Option<String>,
    pub before: Option<String>,
    pub from: Option<String>,
    pub to: Option<ToArg>,
    pub cc: Option<Vec<String>>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub body: Option<String>,
    pub uid: Option<u32>,
    pub uids: Option<Vec<u32>>,
    pub reply_to_uid: Option<u32>,
    pub reply_folder: Option<String>,
    #[serde(rename = "as")]
    pub mark: Option<String>,
}

/// `to` is a list of recipients for email_send, a folder for email_move
/// and an address filter for email_search; a lone string is one item.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum ToArg {
    One(String),
    Many(Vec<String>),
}

impl ToArg {
    pub fn list(&self) -> Vec<String> {
        match self {
            ToArg::One(s) => vec![s.clone()],
            ToArg::Many(v) => v.clone(),
        }
    }
    pub fn one(&self, tool: &str) -> Result<String, String> {
        match self {
            ToArg::One(s) => Ok(s.clone()),
            ToArg::Many(v) if v.len() == 1 => Ok(v[0].clone()),
            ToArg::Many(_) => Err(format!("{tool}: to must be one string")),
        }
    }
}

impl Args {
    pub fn need<'a, T>(v: &'a Option<T>, tool: &str, what: &str) -> Result<&'a T, String> {
        v.as_ref()
            .ok_or_else(|| format!("{tool}: {what} is missing"))
    }

    /// The UIDs of `uids` or `uid`.
    pub fn uid_list(&self, tool: &str) -> Result<Vec<u32>, String> {
        let mut v = self.uids.clone().unwrap_or_default();
        v.extend(self.uid);
        if v.is_empty() {
            return Err(format!("{tool}: uids is missing"));
        }
        if v.contains(&0) {
            return Err(format!("{tool}: 0 is not a message uid"));
        }
        v.sort_unstable();
        v.dedup();
        Ok(v)
    }
}
