//! The gateway's own state, in `<data>/telegram/telegram.db` (SQLite, WAL,
//! synchronous=FULL: what is acknowledged is on disk):
//!
//! - the `getUpdates` offset, stored in the same transaction as the updates
//!   it confirms, so a restart neither loses nor repeats one;
//! - each update received, by id (a duplicate delivery is dropped), and
//!   how far its handling got: received, replying (the reply that ends it
//!   is being sent) or handled;
//! - the chats paired with `oictl telegram pair`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

#[derive(Debug, thiserror::Error)]
#[error("telegram state database {path}: {message}")]
pub struct StoreError {
    path: String,
    message: String,
}

/// An update as received, before it is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub update_id: i64,
    pub body: String,
}

/// An update whose handling a stop cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    pub update: Received,
    /// Its last reply had begun: the chat may have it already.
    pub replying: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    pub chat_id: i64,
    pub title: String,
    pub paired_ms: i64,
}

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Arc<str>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS updates (
    update_id INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    -- 0 received, 2 replying, 1 handled
    handled INTEGER NOT NULL DEFAULT 0,
    received_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS paired (
    chat_id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    paired_ms INTEGER NOT NULL
);
";

/// Handled updates kept for deduplication.
const KEEP_HANDLED: i64 = 10_000;

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let shown = path.display().to_string();
        let err = |e: rusqlite::Error| StoreError {
            path: shown.clone(),
            message: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            path: shown.into(),
        })
    }

    /// Runs `f` on the connection off the async runtime.
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let path = self.path.clone();
        let wrap = move |message: String| StoreError {
            path: path.to_string(),
            message,
        };
        match tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        {
            Ok(r) => r.map_err(|e| wrap(e.to_string())),
            Err(e) => Err(wrap(format!("the database task failed: {e}"))),
        }
    }

    /// The next `getUpdates` offset (0 before the first update).
    pub async fn offset(&self) -> Result<i64, StoreError> {
        self.with(|c| {
            c.query_row("SELECT value FROM meta WHERE key = 'offset'", [], |r| {
                r.get(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0))
        })
        .await
    }

    /// Records a batch from `getUpdates` and moves the offset past it, in
    /// one transaction. Returns the updates not seen before, in order.
    pub async fn receive(
        &self,
        batch: Vec<Received>,
        now_ms: i64,
    ) -> Result<Vec<Received>, StoreError> {
        self.with(move |c| {
            let tx = c.transaction()?;
            let mut fresh = Vec::new();
            let mut next = 0i64;
            for u in batch {
                next = next.max(u.update_id + 1);
                let n = tx.execute(
                    "INSERT OR IGNORE INTO updates (update_id, body, received_ms) VALUES (?1, ?2, ?3)",
                    params![u.update_id, u.body, now_ms],
                )?;
                if n == 1 {
                    fresh.push(u);
                }
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('offset', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                params![next],
            )?;
            tx.commit()?;
            Ok(fresh)
        })
        .await
    }

    pub async fn mark_handled(&self, update_id: i64) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE updates SET handled = 1 WHERE update_id = ?1",
                params![update_id],
            )?;
            c.execute(
                "DELETE FROM updates WHERE handled = 1 AND update_id <= ?1 - ?2",
                params![update_id, KEEP_HANDLED],
            )?;
            Ok(())
        })
        .await
    }

    /// Records that the reply ending an update's handling is being sent,
    /// before it is sent.
    pub async fn mark_replying(&self, update_id: i64) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "UPDATE updates SET handled = 2 WHERE update_id = ?1 AND handled = 0",
                params![update_id],
            )
            .map(drop)
        })
        .await
    }

    /// Updates received but not handled (the process stopped meanwhile).
    pub async fn unhandled(&self) -> Result<Vec<Unfinished>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT update_id, body, handled FROM updates WHERE handled != 1 ORDER BY update_id",
            )?;
            let rows = st.query_map([], |r| {
                Ok(Unfinished {
                    update: Received {
                        update_id: r.get(0)?,
                        body: r.get(1)?,
                    },
                    replying: r.get::<_, i64>(2)? == 2,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn pair(&self, chat_id: i64, title: String, now_ms: i64) -> Result<(), StoreError> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO paired (chat_id, title, paired_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT(chat_id) DO UPDATE SET title = excluded.title",
                params![chat_id, title, now_ms],
            )
            .map(drop)
        })
        .await
    }

    /// Returns whether the chat was paired.
    pub async fn unpair(&self, chat_id: i64) -> Result<bool, StoreError> {
        self.with(move |c| {
            c.execute("DELETE FROM paired WHERE chat_id = ?1", params![chat_id])
                .map(|n| n > 0)
        })
        .await
    }

    pub async fn paired(&self) -> Result<Vec<Paired>, StoreError> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT chat_id, title, paired_ms FROM paired ORDER BY paired_ms")?;
            let rows = st.query_map([], |r| {
                Ok(Paired {
                    chat_id: r.get(0)?,
                    title: r.get(1)?,
                    paired_ms: r.get(2)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(id: i64) -> Received {
        Received {
            update_id: id,
            body: format!("{{\"update_id\":{id}}}"),
        }
    }

    #[tokio::test]
    async fn offset_and_updates_survive_reopening_and_duplicates_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        let s = Store::open(&p).unwrap();
        assert_eq!(s.offset().await.unwrap(), 0);
        let fresh = s.receive(vec![r(10), r(11)], 1).await.unwrap();
        assert_eq!(fresh, vec![r(10), r(11)]);
        s.mark_handled(10).await.unwrap();
        drop(s);
        let s = Store::open(&p).unwrap();
        assert_eq!(s.offset().await.unwrap(), 12);
        let cut = |id, replying| Unfinished {
            update: r(id),
            replying,
        };
        assert_eq!(s.unhandled().await.unwrap(), vec![cut(11, false)]);
        // Telegram delivers 11 again (its confirmation was lost) and 12.
        let fresh = s.receive(vec![r(11), r(12)], 2).await.unwrap();
        assert_eq!(fresh, vec![r(12)]);
        assert_eq!(s.offset().await.unwrap(), 13);
        // An older batch never moves the offset back.
        assert!(s.receive(vec![r(5)], 3).await.unwrap().len() == 1);
        assert_eq!(s.offset().await.unwrap(), 13);
        // A reply begun is remembered as such; a handled update stays
        // handled whatever comes late.
        s.mark_replying(12).await.unwrap();
        s.mark_replying(10).await.unwrap();
        s.mark_handled(5).await.unwrap();
        drop(s);
        let s = Store::open(&p).unwrap();
        assert_eq!(
            s.unhandled().await.unwrap(),
            vec![cut(11, false), cut(12, true)]
        );
    }

    #[tokio::test]
    async fn pairing_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        let s = Store::open(&p).unwrap();
        s.pair(-100, "Team".into(), 5).await.unwrap();
        s.pair(7, "Ann".into(), 6).await.unwrap();
        let s = Store::open(&p).unwrap();
        let chats: Vec<i64> = s
            .paired()
            .await
            .unwrap()
            .iter()
            .map(|p| p.chat_id)
            .collect();
        assert_eq!(chats, vec![-100, 7]);
        assert!(s.unpair(7).await.unwrap());
        assert!(!s.unpair(7).await.unwrap());
        assert_eq!(s.paired().await.unwrap().len(), 1);
    }
}
