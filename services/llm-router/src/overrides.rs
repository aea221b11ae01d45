//! Per-chat model overrides (`/model <alias>`, `oictl model <alias>`),
//! kept in SQLite so they survive restarts.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
#[error("model override store {path}: {source}")]
pub struct StoreError {
    path: String,
    #[source]
    source: rusqlite::Error,
}

pub struct Overrides {
    conn: Mutex<Connection>,
    path: String,
}

impl Overrides {
    pub fn open(path: &Path) -> Result<Overrides, StoreError> {
        let p = path.display().to_string();
        let err = |source| StoreError {
            path: p.clone(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS chat_model (
                 chat TEXT PRIMARY KEY, alias TEXT NOT NULL, updated_ms INTEGER NOT NULL)",
        )
        .map_err(err)?;
        Ok(Overrides {
            conn: Mutex::new(conn),
            path: p,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        }
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source,
        }
    }

    pub fn get(&self, chat: &str) -> Result<Option<String>, StoreError> {
        self.conn()
            .query_row(
                "SELECT alias FROM chat_model WHERE chat = ?1",
                [chat],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets the chat's alias; an empty alias clears it.
    pub fn set(&self, chat: &str, alias: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let r = if alias.is_empty() {
            conn.execute("DELETE FROM chat_model WHERE chat = ?1", [chat])
        } else {
            let now = oi_kernel::clock::now_ms();
            conn.execute(
                "INSERT INTO chat_model (chat, alias, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(chat) DO UPDATE SET alias = excluded.alias, updated_ms = excluded.updated_ms",
                params![chat, alias, now],
            )
        };
        r.map(drop).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_persist_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("llm-router.db");
        {
            let o = Overrides::open(&path).unwrap();
            assert_eq!(o.get("tg:1").unwrap(), None);
            o.set("tg:1", "groq").unwrap();
            o.set("tg:1", "claude").unwrap();
            o.set("tg:2", "gemini").unwrap();
            o.set("tg:2", "").unwrap();
        }
        let o = Overrides::open(&path).unwrap();
        assert_eq!(o.get("tg:1").unwrap().as_deref(), Some("claude"));
        assert_eq!(o.get("tg:2").unwrap(), None);
    }
}
