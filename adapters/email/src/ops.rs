//! What each tool does on an account: its arguments checked, its IMAP
//! [`Job`] run, and for `email_send` the message built, the recipients
//! checked against the policy, and the message sent and filed.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use oi_kernel::client::BusClient;
use serde_json::{Value, json};

use crate::account::{Account, EmailError};
use crate::config::EmailConfig;
use crate::jobs::{Done, Job};
use crate::message;
use crate::policy;
use crate::search::Filters;
use crate::tools::{self, Args};

fn bad(e: String) -> EmailError {
    EmailError::Bad(e)
}

fn folder_arg(a: &Args) -> String {
    a.folder.clone().unwrap_or_else(|| "INBOX".into())
}

/// A job's JSON answer, with the account named.
async fn value(acc: &Account, bus: &BusClient, job: &Job<'_>) -> Result<Value, EmailError> {
    match acc.with_imap(bus, job).await? {
        Done::Value(mut v) => {
            v["account"] = json!(acc.name);
            Ok(v)
        }
        _ => Err(EmailError::Unavailable(
            "an IMAP job answered out of kind".into(),
        )),
    }
}

pub async fn folders(acc: &Account, bus: &BusClient) -> Result<Value, EmailError> {
    value(acc, bus, &Job::Folders).await
}

async fn listing(
    acc: &Account,
    bus: &BusClient,
    c: &EmailConfig,
    a: &Args,
    filters: Filters,
) -> Result<Value, EmailError> {
    let folder = folder_arg(a);
    let job = Job::Listing {
        folder: &folder,
        filters: &filters,
        limit: a.limit.unwrap_or(20).clamp(1, c.max_list) as usize,
        snippet: c.snippet_chars as usize,
    };
    value(acc, bus, &job).await
}

pub async fn list(
    acc: &Account,
    bus: &BusClient,
    c: &EmailConfig,
    a: &Args,
) -> Result<Value, EmailError> {
    let f = Filters {
        unread: a.unread.unwrap_or(false),
        since: a.since.clone(),
        ..Filters::default()
    };
    listing(acc, bus, c, a, f).await
}

pub async fn search(
    acc: &Account,
    bus: &BusClient,
    c: &EmailConfig,
    a: &Args,
) -> Result<Value, EmailError> {
    let to = match &a.to {
        Some(t) => Some(t.one(tools::SEARCH).map_err(bad)?),
        None => None,
    };
    let f = Filters {
        unread: a.unread.unwrap_or(false),
        from: a.from.clone(),
        to,
        subject: a.subject.clone(),
        text: a.text.clone(),
        since: a.since.clone(),
        before: a.before.clone(),
    };
    listing(acc, bus, c, a, f).await
}

pub async fn read(
    acc: &Account,
    bus: &BusClient,
    c: &EmailConfig,
    a: &Args,
) -> Result<Value, EmailError> {
    let uid = *Args::need(&a.uid, tools::READ, "uid").map_err(bad)?;
    let folder = folder_arg(a);
    let job = Job::Read {
        folder: &folder,
        uid,
        max_chars: c.max_body_chars as usize,
    };
    value(acc, bus, &job).await
}

pub async fn move_to(acc: &Account, bus: &BusClient, a: &Args) -> Result<Value, EmailError> {
    let uids = a.uid_list(tools::MOVE).map_err(bad)?;
    let to = Args::need(&a.to, tools::MOVE, "to")
        .map_err(bad)?
        .one(tools::MOVE)
        .map_err(bad)?;
    let folder = folder_arg(a);
    let job = Job::Move {
        folder: &folder,
        uids: &uids,
        to: &to,
    };
    value(acc, bus, &job).await
}

pub async fn mark(acc: &Account, bus: &BusClient, a: &Args) -> Result<Value, EmailError> {
    let uids = a.uid_list(tools::MARK).map_err(bad)?;
    let how = Args::need(&a.mark, tools::MARK, "as").map_err(bad)?;
    let change = match how.as_str() {
        "read" => "+FLAGS.SILENT (\\Seen)",
        "unread" => "-FLAGS.SILENT (\\Seen)",
        "flagged" => "+FLAGS.SILENT (\\Flagged)",
        "unflagged" => "-FLAGS.SILENT (\\Flagged)",
        other => {
            return Err(bad(format!(
                "{}: as '{other}' is not one of read, unread, flagged, unflagged",
                tools::MARK
            )));
        }
    };
    let folder = folder_arg(a);
    let job = Job::Mark {
        folder: &folder,
        uids: &uids,
        change,
    };
    let mut v = value(acc, bus, &job).await?;
    v["as"] = json!(how);
    Ok(v)
}

fn mailbox(tool: &str, s: &str) -> Result<Mailbox, EmailError> {
    s.trim()
        .parse::<Mailbox>()
        .map_err(|e| bad(format!("{tool}: '{s}' is not an email address: {e}")))
}

/// A new Message-ID at the sender's domain.
fn new_message_id(from: &str) -> Result<String, EmailError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| EmailError::Unavailable("no randomness from the system".into()))?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let domain = policy::bare(from)
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| "localhost".into());
    Ok(format!("<{hex}@{domain}>"))
}

pub async fn send(
    acc: &Account,
    bus: &BusClient,
    c: &EmailConfig,
    a: &Args,
) -> Result<Value, EmailError> {
    let tool = tools::SEND;
    let body = Args::need(&a.body, tool, "body").map_err(bad)?;
    let from = acc.cfg.from_address().to_string();
    // The message answered, read before anything is sent.
    let original = match a.reply_to_uid {
        None => None,
        Some(uid) => {
            let folder = a.reply_folder.clone().unwrap_or_else(|| "INBOX".into());
            match acc
                .with_imap(
                    bus,
                    &Job::Original {
                        folder: &folder,
                        uid,
                    },
                )
                .await
            {
                Ok(Done::Original(o, f)) => Some((uid, o, f)),
                Ok(_) => {
                    return Err(EmailError::Unavailable(
                        "an IMAP job answered out of kind".into(),
                    ));
                }
                Err(EmailError::Bad(e)) => return Err(bad(format!("{tool}: {e}"))),
                Err(e) => return Err(e),
            }
        }
    };
    let to: Vec<String> = match (&a.to, &original) {
        (Some(t), _) => t.list(),
        (None, Some((_, o, _))) => o.reply_to.clone(),
        (None, None) => Vec::new(),
    };
    if to.is_empty() {
        return Err(bad(format!("{tool}: to is missing")));
    }
    let cc = a.cc.clone().unwrap_or_default();
    let everyone: Vec<String> = to.iter().chain(cc.iter()).cloned().collect();
    policy::refused(c.send_to, &from, &c.allowed_recipients, &everyone)
        .map_err(|e| EmailError::Denied(format!("{tool}: {e}")))?;
    let subject = match (&a.subject, &original) {
        (Some(s), _) => s.clone(),
        (None, Some((_, o, _))) => o.reply_subject(),
        (None, None) => return Err(bad(format!("{tool}: subject is missing"))),
    };
    let id = new_message_id(&from)?;
    let mut b = lettre::Message::builder()
        .from(mailbox(tool, &from)?)
        .subject(subject.clone())
        .message_id(Some(id.clone()))
        .header(ContentType::TEXT_PLAIN);
    for t in &to {
        b = b.to(mailbox(tool, t)?);
    }
    for t in &cc {
        b = b.cc(mailbox(tool, t)?);
    }
    if let Some((_, o, _)) = &original {
        if !o.message_id.is_empty() {
            b = b.in_reply_to(message::angle(&o.message_id));
        }
        let refs = o.thread();
        if !refs.is_empty() {
            b = b.references(refs.join(" "));
        }
    }
    let msg = b
        .body(body.clone())
        .map_err(|e| bad(format!("{tool}: cannot build the message: {e}")))?;
    acc.send(bus, &msg).await?;
    tracing::info!(account = %acc.name, recipients = everyone.len(), "message sent");
    // Sent: the copy in Sent and the answered mark are follow-ups; their
    // failure is reported, never a reason to send again.
    let raw = msg.formatted();
    let filed = Job::Filed {
        save: acc.cfg.save_sent,
        raw: &raw,
        answered: original.as_ref().map(|(uid, _, f)| (*uid, f)),
    };
    let after = acc.with_imap(bus, &filed).await;
    let mut v = json!({
        "account": acc.name, "sent": true, "message_id": id,
        "from": from, "to": to, "cc": cc, "subject": subject,
    });
    if let Some((uid, _, _)) = &original {
        v["in_reply_to_uid"] = json!(uid);
    }
    match after {
        Ok(Done::Filed(saved)) => v["saved_to"] = json!(saved),
        Ok(_) => {}
        Err(e) => v["note"] = json!(format!("sent, but filing it failed: {e}")),
    }
    Ok(v)
}
