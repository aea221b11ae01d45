//! Per-chat settings that survive restarts.

use super::*;

/// Sets one per-chat setting (also written as part of a turn).
pub(super) fn upsert_setting(
    conn: &Connection,
    chat: &str,
    key: &str,
    value: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO chat_settings(chat, key, value) VALUES(?1, ?2, ?3)
         ON CONFLICT(chat, key) DO UPDATE SET value = excluded.value",
        params![chat, key, value],
    )
    .map(drop)
}

impl Store {
    // ---- per-chat settings ----

    pub fn set_setting(&self, chat: &str, key: &str, value: &str) -> Result<(), MemoryError> {
        self.db(upsert_setting(&lock(&self.writer), chat, key, value))
    }

    pub fn settings(&self, chat: &str) -> Result<Vec<(String, String)>, MemoryError> {
        let r = self.reader();
        let mut stmt = self.db(
            r.prepare_cached("SELECT key, value FROM chat_settings WHERE chat = ?1 ORDER BY key")
        )?;
        let rows = stmt
            .query_map([chat], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        self.db(rows)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_store as store;

    #[test]
    fn chat_settings_survive_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        s.set_setting("tg:1", "model", "deepseek").unwrap();
        s.set_setting("tg:1", "tokens", "on").unwrap();
        s.set_setting("tg:1", "model", "claude").unwrap();
        s.set_setting("tg:2", "model", "groq").unwrap();
        drop(s);
        let s = store(d.path());
        assert_eq!(
            s.settings("tg:1").unwrap(),
            [
                ("model".to_string(), "claude".to_string()),
                ("tokens".into(), "on".into())
            ]
        );
        assert!(s.settings("tg:3").unwrap().is_empty());
    }
}
