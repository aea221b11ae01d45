//! Episodic memory (every intent and its outcome) and its upkeep:
//! retention and the integrity check.

use super::*;

/// One episode (also written as part of a turn); its id.
pub(super) fn insert_episode(conn: &Connection, e: &Episode) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO episodes(chat, intent, answer, tool_calls_json, prompt_tokens, completion_tokens, provider, ts_ms)
         VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![e.chat, e.intent, e.answer, e.tool_calls_json, e.prompt_tokens, e.completion_tokens, e.provider, if e.ts_ms == 0 { now_ms() } else { e.ts_ms }])?;
    Ok(conn.last_insert_rowid())
}

impl Store {
    // ---- maintenance ----

    /// Deletes episodes beyond `max_count` (newest kept) and older than
    /// `max_age_ms`; 0 means no limit. Returns how many went. Readers are
    /// not blocked (WAL).
    pub fn apply_retention(&self, max_count: u64, max_age_ms: i64) -> Result<usize, MemoryError> {
        let w = lock(&self.writer);
        let mut gone = 0;
        if max_age_ms > 0 {
            gone += self.db(w.execute(
                "DELETE FROM episodes WHERE ts_ms < ?1",
                [now_ms() - max_age_ms],
            ))?;
        }
        if max_count > 0 {
            gone += self.db(w.execute(
                "DELETE FROM episodes WHERE id NOT IN (SELECT id FROM episodes ORDER BY ts_ms DESC, id DESC LIMIT ?1)",
                [max_count as i64],
            ))?;
        }
        Ok(gone)
    }

    /// SQLite's full integrity check, and the row counts.
    pub fn check(&self) -> Result<(String, u64, u64), MemoryError> {
        let r = self.reader();
        let result: Vec<String> = self.db(r
            .prepare("PRAGMA integrity_check")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect::<Result<_, _>>()))?;
        let facts: i64 = self.db(r.query_row("SELECT COUNT(*) FROM facts", [], |x| x.get(0)))?;
        let episodes: i64 =
            self.db(r.query_row("SELECT COUNT(*) FROM episodes", [], |x| x.get(0)))?;
        Ok((result.join("; "), facts as u64, episodes as u64))
    }

    // ---- episodic memory ----

    pub fn record_episode(&self, e: &Episode) -> Result<i64, MemoryError> {
        self.db(insert_episode(&lock(&self.writer), e))
    }

    pub fn search_episodes(&self, q: &EpisodeQuery) -> Result<Vec<Episode>, MemoryError> {
        let r = self.reader();
        let until = if q.until_ms == 0 {
            i64::MAX
        } else {
            q.until_ms
        };
        let limit = if q.limit == 0 { 20 } else { q.limit };
        let cols = "e.id, e.chat, e.intent, e.answer, e.tool_calls_json, e.prompt_tokens, e.completion_tokens, e.provider, e.ts_ms";
        let map = |r: &rusqlite::Row<'_>| {
            Ok(Episode {
                id: r.get(0)?,
                chat: r.get(1)?,
                intent: r.get(2)?,
                answer: r.get(3)?,
                tool_calls_json: r.get(4)?,
                prompt_tokens: r.get(5)?,
                completion_tokens: r.get(6)?,
                provider: r.get(7)?,
                ts_ms: r.get(8)?,
            })
        };
        let rows = match fts_query(&q.text) {
            Some(fq) => r
                .prepare_cached(&format!(
                    "SELECT {cols} FROM episodes_fts f JOIN episodes e ON e.id = f.rowid
                     WHERE episodes_fts MATCH ?1 AND (?2 = '' OR e.chat = ?2) AND e.ts_ms >= ?3 AND e.ts_ms <= ?4
                     ORDER BY bm25(episodes_fts) LIMIT ?5"
                ))
                .and_then(|mut s| s.query_map(params![fq, q.chat, q.since_ms, until, limit], map)?.collect::<Result<Vec<_>, _>>()),
            None => r
                .prepare_cached(&format!(
                    "SELECT {cols} FROM episodes e WHERE (?1 = '' OR e.chat = ?1) AND e.ts_ms >= ?2 AND e.ts_ms <= ?3
                     ORDER BY e.ts_ms DESC LIMIT ?4"
                ))
                .and_then(|mut s| s.query_map(params![q.chat, q.since_ms, until, limit], map)?.collect::<Result<Vec<_>, _>>()),
        };
        self.db(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store as store;

    #[test]
    fn retention_by_count_and_age_and_the_integrity_check() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let ep = |ts: i64| Episode {
            id: 0,
            chat: "c".into(),
            intent: format!("i{ts}"),
            answer: String::new(),
            tool_calls_json: "[]".into(),
            prompt_tokens: 0,
            completion_tokens: 0,
            provider: String::new(),
            ts_ms: ts,
        };
        let now = now_ms();
        for i in 0..10 {
            s.record_episode(&ep(now - i * 1000)).unwrap();
        }
        s.record_episode(&ep(now - 40 * 86_400_000)).unwrap();
        assert_eq!(
            s.apply_retention(0, 30 * 86_400_000).unwrap(),
            1,
            "the 40-day-old episode goes"
        );
        assert_eq!(s.apply_retention(4, 0).unwrap(), 6);
        let left = s
            .search_episodes(&EpisodeQuery {
                text: String::new(),
                chat: String::new(),
                since_ms: 0,
                until_ms: 0,
                limit: 100,
            })
            .unwrap();
        let intents: Vec<String> = left.into_iter().map(|e| e.intent).collect();
        assert_eq!(
            intents,
            [
                format!("i{now}"),
                format!("i{}", now - 1000),
                format!("i{}", now - 2000),
                format!("i{}", now - 3000)
            ]
        );
        assert_eq!(
            s.apply_retention(0, 0).unwrap(),
            0,
            "no limits, nothing deleted"
        );
        // The full-text index follows the deletions.
        assert!(
            s.search_episodes(&EpisodeQuery {
                text: format!("i{}", now - 9000),
                chat: String::new(),
                since_ms: 0,
                until_ms: 0,
                limit: 5
            })
            .unwrap()
            .is_empty()
        );
        assert_eq!(s.check().unwrap(), ("ok".to_string(), 0, 4));
    }

    #[test]
    fn episodes_search_by_text_chat_and_time() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let ep = |chat: &str, intent: &str, ts: i64| Episode {
            id: 0,
            chat: chat.into(),
            intent: intent.into(),
            answer: "done".into(),
            tool_calls_json: r#"[{"name":"web_search","arguments":{"q":"x"},"duration_ms":800}]"#
                .into(),
            prompt_tokens: 100,
            completion_tokens: 20,
            provider: "deepseek".into(),
            ts_ms: ts,
        };
        s.record_episode(&ep("a", "search rust async runtimes", 1000))
            .unwrap();
        s.record_episode(&ep("b", "write a report about tokio", 2000))
            .unwrap();
        s.record_episode(&ep("a", "summarise the rust book", 3000))
            .unwrap();
        let q = |text: &str, chat: &str, since: i64, until: i64| EpisodeQuery {
            text: text.into(),
            chat: chat.into(),
            since_ms: since,
            until_ms: until,
            limit: 10,
        };
        assert_eq!(s.search_episodes(&q("rust", "", 0, 0)).unwrap().len(), 2);
        assert_eq!(
            s.search_episodes(&q("rust", "a", 2000, 0)).unwrap()[0].intent,
            "summarise the rust book"
        );
        assert_eq!(
            s.search_episodes(&q("", "", 1500, 2500)).unwrap()[0].chat,
            "b"
        );
        assert_eq!(
            s.search_episodes(&q("", "", 0, 0)).unwrap()[0].provider,
            "deepseek"
        );
    }
}
