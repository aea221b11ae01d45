//! One logged-in IMAP session and the commands the tools use: folders
//! with their special uses, SEARCH, FETCH, STORE, MOVE and APPEND.

use std::collections::BTreeSet;

use async_imap::types::{Fetch, NameAttribute};
use futures_util::TryStreamExt;

use crate::tls::Conn;
use crate::utf7;

pub type Session = async_imap::Session<Conn>;

/// What went wrong with a command.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The connection is gone or unusable: the next call connects again.
    #[error("the connection to the IMAP server broke: {0}")]
    Connection(String),
    /// The server said NO or BAD; the session goes on.
    #[error("the IMAP server refused: {0}")]
    Server(String),
    /// An argument that cannot be sent.
    #[error("{0}")]
    Invalid(String),
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        use async_imap::error::Error as E;
        match e {
            E::No(m) | E::Bad(m) => ImapError::Server(m.trim().to_string()),
            E::Append => ImapError::Server("APPEND was refused".into()),
            E::Validate(v) => ImapError::Invalid(format!("not allowed in a folder name: {v}")),
            other => ImapError::Connection(other.to_string()),
        }
    }
}

/// A folder: its name decoded, as sent, and its special use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    pub name: String,
    pub wire: String,
    pub special: Option<&'static str>,
    pub selectable: bool,
}

/// The special uses a tool may name instead of a folder (RFC 6154).
pub const SPECIAL: &[&str] = &["Archive", "Trash", "Sent", "Junk", "Drafts"];

/// Folder names that servers without special-use flags commonly use.
const USUAL: &[(&str, &[&str])] = &[
    ("Archive", &["Archive", "Archives"]),
    (
        "Trash",
        &["Trash", "Deleted Items", "Deleted Messages", "Deleted"],
    ),
    (
        "Sent",
        &["Sent", "Sent Items", "Sent Messages", "Sent Mail"],
    ),
    ("Junk", &["Junk", "Spam", "Junk E-mail", "Junk Email"]),
    ("Drafts", &["Drafts", "Draft"]),
];

/// A session and what it learned of the server.
pub struct Imap {
    pub session: Session,
    pub literal_plus: bool,
    pub moves: bool,
    pub uidplus: bool,
    folders: Option<Vec<Folder>>,
    selected: Option<String>,
}

/// A message's flags as text (`\Seen`, `$Label`).
fn flags(f: &Fetch) -> Vec<String> {
    use async_imap::types::Flag;
    f.flags()
        .filter_map(|x| match x {
            Flag::Seen => Some("\\Seen".to_string()),
            Flag::Answered => Some("\\Answered".into()),
            Flag::Flagged => Some("\\Flagged".into()),
            Flag::Deleted => Some("\\Deleted".into()),
            Flag::Draft => Some("\\Draft".into()),
            Flag::Recent => None,
            Flag::MayCreate => None,
            Flag::Custom(c) => Some(c.to_string()),
        })
        .collect()
}

/// A UID set: `3,7,9`.
fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl Imap {
    pub async fn new(mut session: Session) -> Result<Imap, ImapError> {
        let caps = session.capabilities().await?;
        Ok(Imap {
            literal_plus: caps.has_str("LITERAL+"),
            moves: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
            session,
            folders: None,
            selected: None,
        })
    }

    /// Every folder, listed once per session.
    pub async fn folders(&mut self) -> Result<Vec<Folder>, ImapError> {
        if let Some(f) = &self.folders {
            return Ok(f.clone());
        }
        let names: Vec<_> = self
            .session
            .list(Some(""), Some("*"))
            .await?
            .try_collect()
            .await?;
        let mut out: Vec<Folder> = names
            .iter()
            .map(|n| {
                let attrs = n.attributes();
                let special = attrs.iter().find_map(|a| match a {
                    NameAttribute::Archive => Some("Archive"),
                    NameAttribute::Trash => Some("Trash"),
                    NameAttribute::Sent => Some("Sent"),
                    NameAttribute::Junk => Some("Junk"),
                    NameAttribute::Drafts => Some("Drafts"),
                    _ => None,
                });
                Folder {
                    name: utf7::decode(n.name()),
                    wire: n.name().to_string(),
                    special,
                    selectable: !attrs.iter().any(|a| matches!(a, NameAttribute::NoSelect)),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            (a.name != "INBOX", a.name.to_lowercase())
                .cmp(&(b.name != "INBOX", b.name.to_lowercase()))
        });
        self.folders = Some(out.clone());
        Ok(out)
    }

    /// The folder a tool means: a special use (Archive, Trash, Sent,
    /// Junk, Drafts), INBOX, or a folder's name.
    pub async fn resolve(&mut self, wanted: &str) -> Result<Folder, ImapError> {
        let all = self.folders().await?;
        let w = wanted.trim();
        if w.eq_ignore_ascii_case("inbox") {
            return Ok(all
                .iter()
                .find(|f| f.name.eq_ignore_ascii_case("INBOX"))
                .cloned()
                .unwrap_or(Folder {
                    name: "INBOX".into(),
                    wire: "INBOX".into(),
                    special: None,
                    selectable: true,
                }));
        }
        if let Some(f) = all.iter().find(|f| f.name == w) {
            return Ok(f.clone());
        }
        let spam = w.eq_ignore_ascii_case("spam");
        if let Some(use_) = SPECIAL
            .iter()
            .find(|s| s.eq_ignore_ascii_case(w) || (spam && **s == "Junk"))
        {
            if let Some(f) = all.iter().find(|f| f.special == Some(use_)) {
                return Ok(f.clone());
            }
            let usual = USUAL
                .iter()
                .find(|(u, _)| u == use_)
                .map(|(_, n)| *n)
                .unwrap_or_default();
            if let Some(f) = all.iter().find(|f| {
                let leaf = f.name.rsplit(['/', '.']).next().unwrap_or(&f.name);
                usual.iter().any(|n| n.eq_ignore_ascii_case(leaf))
            }) {
                return Ok(f.clone());
            }
        }
        if let Some(f) = all.iter().find(|f| f.name.eq_ignore_ascii_case(w)) {
            return Ok(f.clone());
        }
        Err(ImapError::Invalid(format!(
            "no folder '{wanted}' (folders: {})",
            all.iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    /// Selects `folder` (read-write) unless it is already selected.
    pub async fn select(&mut self, folder: &Folder) -> Result<(), ImapError> {
        if self.selected.as_deref() == Some(folder.wire.as_str()) {
            // A NOOP brings the server's news (new and expunged messages).
            self.session.noop().await?;
            return Ok(());
        }
        self.selected = None;
        self.session.select(&folder.wire).await?;
        self.selected = Some(folder.wire.clone());
        Ok(())
    }

    /// UIDs matching `criteria`, newest first.
    pub async fn search(&mut self, criteria: &str) -> Result<Vec<u32>, ImapError> {
        let found = self.session.uid_search(criteria).await?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(uids)
    }

    /// For each UID: its flags and the raw bytes `items` fetched (header
    /// fields and the start of the text joined, or the whole message).
    pub async fn fetch(
        &mut self,
        uids: &[u32],
        items: &str,
    ) -> Result<Vec<(u32, Vec<String>, Vec<u8>)>, ImapError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let fetched: Vec<Fetch> = self
            .session
            .uid_fetch(uid_set(uids), items)
            .await?
            .try_collect()
            .await?;
        let mut out = Vec::with_capacity(fetched.len());
        for f in &fetched {
            let Some(uid) = f.uid else { continue };
            let raw = match f.body() {
                Some(b) => b.to_vec(),
                None => {
                    let mut r = f.header().unwrap_or_default().to_vec();
                    r.extend_from_slice(f.text().unwrap_or_default());
                    r
                }
            };
            out.push((uid, flags(f), raw));
        }
        // In the order asked for (newest first), not the server's.
        out.sort_by_key(|(uid, _, _)| uids.iter().position(|u| u == uid));
        Ok(out)
    }

    /// Adds or removes flags.
    pub async fn store(&mut self, uids: &[u32], change: &str) -> Result<(), ImapError> {
        let _: Vec<Fetch> = self
            .session
            .uid_store(uid_set(uids), change)
            .await?
            .try_collect()
            .await?;
        Ok(())
    }

    /// Moves messages (MOVE, else COPY, delete and expunge).
    pub async fn move_to(&mut self, uids: &[u32], to: &Folder) -> Result<(), ImapError> {
        let set = uid_set(uids);
        if self.moves {
            self.session.uid_mv(&set, &to.wire).await?;
            return Ok(());
        }
        self.session.uid_copy(&set, &to.wire).await?;
        self.store(uids, "+FLAGS.SILENT (\\Deleted)").await?;
        if self.uidplus {
            let _: Vec<_> = self.session.uid_expunge(&set).await?.try_collect().await?;
        }
        Ok(())
    }

    /// Saves a message into a folder with `flags` (`(\Seen)`).
    pub async fn append(&mut self, to: &Folder, flags: &str, raw: &[u8]) -> Result<(), ImapError> {
        self.session
            .append(&to.wire, Some(flags), None, raw)
            .await?;
        Ok(())
    }

    /// Which of `uids` exist in the selected folder.
    pub async fn existing(&mut self, uids: &[u32]) -> Result<BTreeSet<u32>, ImapError> {
        let found = self
            .session
            .uid_search(format!("UID {}", uid_set(uids)))
            .await?;
        Ok(found.into_iter().collect())
    }
}
