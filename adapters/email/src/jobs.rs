//! The IMAP work of each tool as a value: [`crate::account::Account`]
//! runs a [`Job`] on its session, and runs it again on a fresh one when
//! the reused session turns out dead.

use serde_json::{Value, json};

use crate::imap::{Folder, Imap, ImapError};
use crate::message::{self, Original};
use crate::search::{self, Filters};

/// The header fields a listing needs, then the start of the text: joined,
/// they parse as a message cut short.
const SUMMARY_ITEMS: &str = "(UID FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE MESSAGE-ID MIME-VERSION CONTENT-TYPE CONTENT-TRANSFER-ENCODING)] BODY.PEEK[TEXT]<0.8192>)";
const WHOLE: &str = "(UID FLAGS BODY.PEEK[])";
const HEADERS: &str = "(UID FLAGS BODY.PEEK[HEADER])";

pub enum Job<'a> {
    Folders,
    Listing {
        folder: &'a str,
        filters: &'a Filters,
        limit: usize,
        snippet: usize,
    },
    Read {
        folder: &'a str,
        uid: u32,
        max_chars: usize,
    },
    /// The message a reply answers.
    Original {
        folder: &'a str,
        uid: u32,
    },
    Move {
        folder: &'a str,
        uids: &'a [u32],
        to: &'a str,
    },
    Mark {
        folder: &'a str,
        uids: &'a [u32],
        change: &'a str,
    },
    /// After sending: the copy in Sent, the original marked answered.
    Filed {
        save: bool,
        raw: &'a [u8],
        answered: Option<(u32, &'a Folder)>,
    },
}

pub enum Done {
    Value(Value),
    Original(Original, Folder),
    /// Where the copy went, if one was saved.
    Filed(Option<String>),
}

/// Selects the folder a tool names and gives it back.
async fn open(imap: &mut Imap, wanted: &str) -> Result<Folder, ImapError> {
    let f = imap.resolve(wanted).await?;
    if !f.selectable {
        return Err(ImapError::Invalid(format!(
            "folder '{}' holds no messages (only other folders)",
            f.name
        )));
    }
    imap.select(&f).await?;
    Ok(f)
}

/// Checks that `uids` exist in the selected folder; the missing ones are
/// an error that names them.
async fn existing(imap: &mut Imap, f: &Folder, uids: &[u32]) -> Result<(), ImapError> {
    let have = imap.existing(uids).await?;
    let missing: Vec<String> = uids
        .iter()
        .filter(|u| !have.contains(u))
        .map(u32::to_string)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ImapError::Invalid(format!(
            "no message with uid {} in {}",
            missing.join(", "),
            f.name
        )))
    }
}

pub async fn exec(imap: &mut Imap, job: &Job<'_>) -> Result<Done, ImapError> {
    match *job {
        Job::Folders => {
            let all = imap.folders().await?;
            let mut out = Vec::new();
            for f in all.iter() {
                let mut v = json!({"name": f.name, "special_use": f.special});
                if f.selectable && out.len() < 100 {
                    let s = imap.session.status(&f.wire, "(MESSAGES UNSEEN)").await?;
                    v["messages"] = json!(s.exists);
                    v["unread"] = json!(s.unseen.unwrap_or(0));
                }
                out.push(v);
            }
            Ok(Done::Value(json!({ "folders": out })))
        }
        Job::Listing {
            folder,
            filters,
            limit,
            snippet,
        } => {
            let q = search::criteria(filters, imap.literal_plus).map_err(ImapError::Invalid)?;
            let f = open(imap, folder).await?;
            let uids = imap.search(&q).await?;
            let shown: Vec<u32> = uids.iter().take(limit).copied().collect();
            let fetched = imap.fetch(&shown, SUMMARY_ITEMS).await?;
            let messages: Vec<Value> = fetched
                .iter()
                .map(|(uid, flags, raw)| message::summary(*uid, flags, raw, snippet))
                .collect();
            Ok(Done::Value(json!({
                "folder": f.name,
                "matching": uids.len(),
                "shown": messages.len(),
                "messages": messages,
            })))
        }
        Job::Read {
            folder,
            uid,
            max_chars,
        } => {
            let f = open(imap, folder).await?;
            let got = imap.fetch(&[uid], WHOLE).await?;
            let Some((_, flags, raw)) = got.into_iter().next() else {
                return Err(ImapError::Invalid(format!(
                    "no message with uid {uid} in {} (email_list_inbox gives the uids)",
                    f.name
                )));
            };
            Ok(Done::Value(message::read(
                uid, &f.name, &flags, &raw, max_chars,
            )))
        }
        Job::Original { folder, uid } => {
            let f = open(imap, folder).await?;
            let got = imap.fetch(&[uid], HEADERS).await?;
            let Some((_, _, raw)) = got.into_iter().next() else {
                return Err(ImapError::Invalid(format!(
                    "no message with uid {uid} in {} to reply to",
                    f.name
                )));
            };
            Ok(Done::Original(
                message::original(&raw).unwrap_or_default(),
                f,
            ))
        }
        Job::Move { folder, uids, to } => {
            let dest = imap.resolve(to).await?;
            let f = open(imap, folder).await?;
            if dest.wire == f.wire {
                return Err(ImapError::Invalid(format!(
                    "the messages are already in {}",
                    f.name
                )));
            }
            existing(imap, &f, uids).await?;
            imap.move_to(uids, &dest).await?;
            Ok(Done::Value(
                json!({"moved": uids, "from": f.name, "to": dest.name}),
            ))
        }
        Job::Mark {
            folder,
            uids,
            change,
        } => {
            let f = open(imap, folder).await?;
            existing(imap, &f, uids).await?;
            imap.store(uids, change).await?;
            Ok(Done::Value(json!({"folder": f.name, "marked": uids})))
        }
        Job::Filed {
            save,
            raw,
            answered,
        } => {
            let mut saved = None;
            if save {
                let sent = imap.resolve("Sent").await?;
                imap.append(&sent, "(\\Seen)", raw).await?;
                saved = Some(sent.name);
            }
            if let Some((uid, f)) = answered {
                imap.select(f).await?;
                imap.store(&[uid], "+FLAGS.SILENT (\\Answered)").await?;
            }
            Ok(Done::Filed(saved))
        }
    }
}
