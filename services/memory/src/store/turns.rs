//! What one finished intent leaves behind, written in one transaction:
//! the exchange for the chat's history, the episode, and which model gave
//! the chat its last answer.

use super::episodes::insert_episode;
use super::history::insert_message;
use super::settings::upsert_setting;
use super::*;
use oi_ipc_schema::memory::LAST_ANSWER_SETTING;

impl Store {
    /// Writes the whole turn or, on any failure, none of it.
    pub fn record_turn(&self, t: &Turn) -> Result<i64, MemoryError> {
        let mut w = lock(&self.writer);
        let tx = self.db(w.transaction())?;
        let chat = t.episode.chat.as_str();
        if let Some((user, assistant)) = &t.exchange {
            let now = now_ms();
            self.db(insert_message(&tx, chat, "user", user, now))?;
            self.db(insert_message(&tx, chat, "assistant", assistant, now))?;
        }
        let id = self.db(insert_episode(&tx, &t.episode))?;
        if let Some(value) = &t.last_answer {
            self.db(upsert_setting(&tx, chat, LAST_ANSWER_SETTING, value))?;
        }
        self.db(tx.commit())?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use oi_ipc_schema::memory::{Episode, EpisodeQuery, Turn};

    use crate::store::lock;
    use crate::store::test_store as store;

    fn turn(chat: &str, answer: &str) -> Turn {
        Turn {
            exchange: Some(("hello".into(), answer.into())),
            episode: Episode {
                id: 0,
                chat: chat.into(),
                intent: "hello".into(),
                answer: answer.into(),
                tool_calls_json: "[]".into(),
                prompt_tokens: 3,
                completion_tokens: 2,
                provider: "fake".into(),
                ts_ms: 0,
            },
            last_answer: Some("fake (m)".into()),
        }
    }

    #[test]
    fn a_turn_is_written_whole_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = store(dir.path());
            let id = s.record_turn(&turn("cli:ann", "hi there")).unwrap();
            assert!(id > 0);
        }
        let s = store(dir.path());
        let w = s.window("cli:ann", 10).unwrap();
        let roles: Vec<_> = w
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect();
        assert_eq!(roles, [("user", "hello"), ("assistant", "hi there")]);
        let settings = s.settings("cli:ann").unwrap();
        assert!(
            settings.contains(&("last_answer".into(), "fake (m)".into())),
            "{settings:?}"
        );
        let q = EpisodeQuery {
            text: String::new(),
            chat: "cli:ann".into(),
            since_ms: 0,
            until_ms: 0,
            limit: 10,
        };
        let eps = s.search_episodes(&q).unwrap();
        assert_eq!(eps.len(), 1);
        assert_eq!(eps[0].answer, "hi there");
    }

    #[test]
    fn a_failing_part_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        // The episode insert fails (its table is gone) after the history
        // rows were written in the same transaction: both are rolled back.
        lock(&s.writer)
            .execute_batch("ALTER TABLE episodes RENAME TO episodes_gone")
            .unwrap();
        assert!(s.record_turn(&turn("cli:bob", "lost")).is_err());
        assert!(s.window("cli:bob", 10).unwrap().is_empty());
        assert!(s.settings("cli:bob").unwrap().is_empty());
    }
}
