//! Working memory: each chat's recent messages.

use super::*;

/// One message of a chat's history (also written as part of a turn).
pub(super) fn insert_message(
    conn: &Connection,
    chat: &str,
    role: &str,
    content: &str,
    ts_ms: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT INTO messages(chat, role, content, ts_ms) VALUES(?1, ?2, ?3, ?4)")?
        .execute(params![chat, role, content, ts_ms])
        .map(drop)
}

impl Store {
    // ---- working memory ----

    pub fn append_message(&self, chat: &str, role: &str, content: &str) -> Result<(), MemoryError> {
        self.db(insert_message(
            &lock(&self.writer),
            chat,
            role,
            content,
            now_ms(),
        ))
    }

    /// The last `n` messages of a chat, oldest first.
    pub fn window(&self, chat: &str, n: u32) -> Result<Vec<ChatMessage>, MemoryError> {
        let r = self.reader();
        let mut stmt = self.db(r.prepare_cached(
            "SELECT role, content, ts_ms FROM messages WHERE chat = ?1 ORDER BY id DESC LIMIT ?2",
        ))?;
        let rows = stmt
            .query_map(params![chat, n], |r| {
                Ok(ChatMessage {
                    role: r.get(0)?,
                    content: r.get(1)?,
                    ts_ms: r.get(2)?,
                })
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        let mut v = self.db(rows)?;
        v.reverse();
        Ok(v)
    }

    pub fn clear_chat(&self, chat: &str) -> Result<usize, MemoryError> {
        self.db(lock(&self.writer).execute("DELETE FROM messages WHERE chat = ?1", [chat]))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_store as store;

    #[test]
    fn working_memory_window_and_clear() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        for i in 0..30 {
            s.append_message(
                "chat-1",
                if i % 2 == 0 { "user" } else { "assistant" },
                &format!("m{i}"),
            )
            .unwrap();
        }
        s.append_message("chat-2", "user", "other").unwrap();
        let w = s.window("chat-1", 20).unwrap();
        assert_eq!(w.len(), 20);
        assert_eq!(
            (w[0].content.as_str(), w[19].content.as_str()),
            ("m10", "m29")
        );
        assert_eq!(s.clear_chat("chat-1").unwrap(), 30);
        assert!(s.window("chat-1", 20).unwrap().is_empty());
        assert_eq!(s.window("chat-2", 20).unwrap().len(), 1);
    }
}
