//! The chat gateways' user accounts: who has talked to the system through
//! which gateway, under what name, in which chats, since when and how
//! often. An account is keyed by the gateway's service name and the user's
//! id on that platform.
//!
//! Accounts are a record, not access control: which chats get answers is
//! the gateway's own allowlist and pairings, so a memory outage can
//! neither let a stranger in nor lock an owner out.

use oi_ipc_schema::memory::AccountSeen;
use rusqlite::params;
use serde::Serialize;

use super::{MemoryError, Store, lock, now_ms};

/// The longest name, username, language or chat key accepted, in bytes
/// (Telegram allows 64 characters for a first and a last name).
pub const MAX_FIELD_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    /// The gateway's service name (`telegram`).
    pub gateway: String,
    pub user_id: String,
    pub name: String,
    pub username: String,
    pub language: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Messages seen from the user.
    pub messages: u64,
    /// The chats the user wrote in, sorted.
    pub chats: Vec<String>,
}

fn check_field(field: &str, value: &str) -> Result<(), MemoryError> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(MemoryError::BadRequest(format!(
            "account.seen: '{field}' is {} bytes, more than {MAX_FIELD_BYTES}",
            value.len()
        )));
    }
    Ok(())
}

impl Store {
    /// Records a message from `seen.user_id` on `gateway`: creates the
    /// account or updates its name, username and last-seen time (a
    /// language the platform stopped reporting is kept), counts the
    /// message, and adds the chat to the account's chats.
    pub fn account_seen(&self, gateway: &str, seen: &AccountSeen) -> Result<(), MemoryError> {
        if gateway.is_empty() || seen.user_id.trim().is_empty() {
            return Err(MemoryError::BadRequest(
                "account.seen: the gateway and 'user_id' must not be empty".into(),
            ));
        }
        for (field, value) in [
            ("user_id", &seen.user_id),
            ("name", &seen.name),
            ("username", &seen.username),
            ("language", &seen.language),
            ("chat", &seen.chat),
        ] {
            check_field(field, value)?;
        }
        let now = now_ms();
        let mut w = lock(&self.writer);
        let tx = self.db(w.transaction())?;
        self.db(tx.prepare_cached(
            "INSERT INTO accounts(gateway, user_id, name, username, language, first_seen_ms, last_seen_ms, messages)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
             ON CONFLICT(gateway, user_id) DO UPDATE SET
                 name = excluded.name, username = excluded.username,
                 language = CASE WHEN excluded.language = '' THEN language ELSE excluded.language END,
                 last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms), messages = messages + 1",
        ).and_then(|mut s| s.execute(
            params![gateway, seen.user_id, seen.name, seen.username, seen.language, now],
        )))?;
        if !seen.chat.is_empty() {
            self.db(
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO account_chats(gateway, user_id, chat) VALUES(?1, ?2, ?3)",
                )
                .and_then(|mut s| s.execute(params![gateway, seen.user_id, seen.chat])),
            )?;
        }
        self.db(tx.commit())
    }

    /// Accounts, most recently seen first; `gateway` empty for every
    /// gateway.
    pub fn accounts(&self, gateway: &str, limit: u32) -> Result<Vec<Account>, MemoryError> {
        let r = self.reader();
        let rows = r
            .prepare_cached(
                "SELECT a.gateway, a.user_id, a.name, a.username, a.language, a.first_seen_ms,
                        a.last_seen_ms, a.messages,
                        (SELECT json_group_array(chat) FROM (SELECT chat FROM account_chats c
                          WHERE c.gateway = a.gateway AND c.user_id = a.user_id ORDER BY chat))
                 FROM accounts a WHERE ?1 = '' OR a.gateway = ?1
                 ORDER BY a.last_seen_ms DESC, a.gateway, a.user_id LIMIT ?2",
            )
            .and_then(|mut s| {
                s.query_map(params![gateway, limit], |r| {
                    let chats: String = r.get(8)?;
                    Ok(Account {
                        gateway: r.get(0)?,
                        user_id: r.get(1)?,
                        name: r.get(2)?,
                        username: r.get(3)?,
                        language: r.get(4)?,
                        first_seen_ms: r.get(5)?,
                        last_seen_ms: r.get(6)?,
                        messages: r.get::<_, i64>(7)?.max(0) as u64,
                        chats: serde_json::from_str(&chats).unwrap_or_default(),
                    })
                })?
                .collect::<Result<Vec<_>, _>>()
            });
        self.db(rows)
    }

    /// Deletes an account and its list of chats. The chats' history,
    /// settings and episodes are the chats', not the account's, and stay.
    pub fn forget_account(&self, gateway: &str, user_id: &str) -> Result<bool, MemoryError> {
        let n = self.db(lock(&self.writer).execute(
            "DELETE FROM accounts WHERE gateway = ?1 AND user_id = ?2",
            params![gateway, user_id],
        ))?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Tuning;

    fn seen(user: &str, name: &str, language: &str, chat: &str) -> AccountSeen {
        AccountSeen {
            user_id: user.into(),
            name: name.into(),
            username: format!("{}_u", name.to_lowercase()),
            language: language.into(),
            chat: chat.into(),
        }
    }

    #[test]
    fn accounts_are_created_updated_listed_and_forgotten_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            let s = Store::open(&path, &Tuning::default()).unwrap();
            s.account_seen("telegram", &seen("7", "Ann", "en", "telegram:7"))
                .unwrap();
            s.account_seen("telegram", &seen("8", "Bob", "de", "telegram:-100"))
                .unwrap();
            // The same user again, renamed, in a group, language unreported.
            std::thread::sleep(std::time::Duration::from_millis(2));
            s.account_seen("telegram", &seen("7", "Annie", "", "telegram:-100"))
                .unwrap();
            s.account_seen("telegram", &seen("7", "Annie", "", "telegram:7"))
                .unwrap();
            // The same id on another gateway is another account.
            s.account_seen("discord", &seen("7", "Zed", "fr", "discord:1"))
                .unwrap();
            assert_eq!(s.stats().unwrap().accounts, 3);
        }
        let s = Store::open(&path, &Tuning::default()).unwrap();
        let tg = s.accounts("telegram", 100).unwrap();
        assert_eq!(tg.len(), 2);
        let ann = &tg[0];
        assert_eq!(
            (
                ann.user_id.as_str(),
                ann.name.as_str(),
                ann.username.as_str()
            ),
            ("7", "Annie", "annie_u"),
            "the most recently seen first, with its new name"
        );
        assert_eq!(ann.language, "en", "a language not reported is kept");
        assert_eq!(ann.messages, 3);
        assert!(ann.last_seen_ms > ann.first_seen_ms);
        assert_eq!(ann.chats, ["telegram:-100", "telegram:7"]);
        assert_eq!(tg[1].user_id, "8");
        assert_eq!(tg[1].messages, 1);
        assert_eq!(s.accounts("", 100).unwrap().len(), 3);
        assert_eq!(s.accounts("", 1).unwrap().len(), 1);
        let zed = s.accounts("discord", 100).unwrap();
        assert_eq!((zed[0].name.as_str(), zed[0].messages), ("Zed", 1));

        assert!(s.forget_account("telegram", "7").unwrap());
        assert!(!s.forget_account("telegram", "7").unwrap(), "already gone");
        let left: Vec<String> = s
            .accounts("", 100)
            .unwrap()
            .into_iter()
            .map(|a| format!("{}:{}", a.gateway, a.user_id))
            .collect();
        assert_eq!(left, ["discord:7", "telegram:8"]);
        // Its chat list went with it: seen again, it starts afresh.
        s.account_seen("telegram", &seen("7", "Annie", "en", "telegram:7"))
            .unwrap();
        let again = &s.accounts("telegram", 1).unwrap()[0];
        assert_eq!((again.messages, again.chats.len()), (1, 1));
    }

    #[test]
    fn bad_account_records_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("m.db"), &Tuning::default()).unwrap();
        let e = s
            .account_seen("telegram", &seen(" ", "Ann", "en", "telegram:7"))
            .unwrap_err();
        assert!(e.to_string().contains("'user_id' must not be empty"), "{e}");
        let e = s
            .account_seen("", &seen("7", "Ann", "en", "telegram:7"))
            .unwrap_err();
        assert!(e.to_string().contains("gateway"), "{e}");
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        let e = s
            .account_seen("telegram", &seen("7", &long, "en", "telegram:7"))
            .unwrap_err();
        assert!(
            e.to_string().contains("'name' is 257 bytes, more than 256"),
            "{e}"
        );
        assert!(s.accounts("", 10).unwrap().is_empty());
    }
}
