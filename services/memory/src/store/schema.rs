//! The schema: its versions and the migrations between them, one
//! transaction per step, none dropping data.

use super::*;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 4;

/// Version 1: the three layers and per-chat settings.
const M1: &str = "
CREATE TABLE messages(id INTEGER PRIMARY KEY, chat TEXT NOT NULL, role TEXT NOT NULL,
    content TEXT NOT NULL, ts_ms INTEGER NOT NULL);
CREATE INDEX messages_by_chat ON messages(chat, id);
CREATE TABLE episodes(id INTEGER PRIMARY KEY, chat TEXT NOT NULL, intent TEXT NOT NULL,
    answer TEXT NOT NULL, tool_calls_json TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL, provider TEXT NOT NULL, ts_ms INTEGER NOT NULL);
CREATE INDEX episodes_by_time ON episodes(ts_ms);
CREATE VIRTUAL TABLE episodes_fts USING fts5(intent, answer, content='episodes', content_rowid='id');
CREATE TRIGGER episodes_ai AFTER INSERT ON episodes BEGIN
    INSERT INTO episodes_fts(rowid, intent, answer) VALUES (new.id, new.intent, new.answer); END;
CREATE TRIGGER episodes_ad AFTER DELETE ON episodes BEGIN
    INSERT INTO episodes_fts(episodes_fts, rowid, intent, answer) VALUES ('delete', old.id, old.intent, old.answer); END;
CREATE TABLE facts(id INTEGER PRIMARY KEY, text TEXT NOT NULL, tags TEXT NOT NULL,
    source TEXT NOT NULL, ts_ms INTEGER NOT NULL);
CREATE VIRTUAL TABLE facts_fts USING fts5(text, tags, content='facts', content_rowid='id');
CREATE TRIGGER facts_ai AFTER INSERT ON facts BEGIN
    INSERT INTO facts_fts(rowid, text, tags) VALUES (new.id, new.text, new.tags); END;
CREATE TRIGGER facts_ad AFTER DELETE ON facts BEGIN
    INSERT INTO facts_fts(facts_fts, rowid, text, tags) VALUES ('delete', old.id, old.text, old.tags); END;
CREATE TABLE chat_settings(chat TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY(chat, key));
";

/// Version 2: facts carry their embedding (backfilled for existing facts).
const M2: &str = "ALTER TABLE facts ADD COLUMN embedding BLOB;";

/// Version 3: the provider's embeddings of each fact, per vector space
/// (wire kind, URL, model, dimensions), and small key/value state.
const M3: &str = "
CREATE TABLE fact_vectors(space TEXT NOT NULL, fact_id INTEGER NOT NULL
    REFERENCES facts(id) ON DELETE CASCADE, vec BLOB NOT NULL,
    PRIMARY KEY(space, fact_id)) WITHOUT ROWID;
CREATE INDEX fact_vectors_by_fact ON fact_vectors(fact_id);
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Version 4: the chat gateways' user accounts (see [`accounts`]).
const M4: &str = "
CREATE TABLE accounts(gateway TEXT NOT NULL, user_id TEXT NOT NULL, name TEXT NOT NULL,
    username TEXT NOT NULL, language TEXT NOT NULL, first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL, messages INTEGER NOT NULL,
    PRIMARY KEY(gateway, user_id)) WITHOUT ROWID;
CREATE INDEX accounts_by_last_seen ON accounts(last_seen_ms);
CREATE TABLE account_chats(gateway TEXT NOT NULL, user_id TEXT NOT NULL, chat TEXT NOT NULL,
    PRIMARY KEY(gateway, user_id, chat),
    FOREIGN KEY(gateway, user_id) REFERENCES accounts(gateway, user_id) ON DELETE CASCADE)
    WITHOUT ROWID;
";

/// Brings a database up to [`SCHEMA_VERSION`], one transaction per step.
/// No step drops data.
pub(super) fn migrate(conn: &Connection, path: &Path) -> Result<(), MemoryError> {
    let ps = path.display().to_string();
    let dberr = |source| MemoryError::Db {
        path: ps.clone(),
        source,
    };
    let mut version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(dberr)?;
    if version > SCHEMA_VERSION {
        return Err(MemoryError::TooNew {
            path: ps,
            found: version,
        });
    }
    while version < SCHEMA_VERSION {
        let next = version + 1;
        conn.execute_batch("BEGIN IMMEDIATE").map_err(dberr)?;
        let step = (|| -> rusqlite::Result<()> {
            match next {
                1 => conn.execute_batch(M1)?,
                2 => {
                    conn.execute_batch(M2)?;
                    let rows: Vec<(i64, String)> = conn
                        .prepare("SELECT id, text FROM facts")?
                        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect::<Result<_, _>>()?;
                    for (id, text) in rows {
                        conn.execute(
                            "UPDATE facts SET embedding = ?2 WHERE id = ?1",
                            params![id, embed::to_bytes(&embed::embed(&text))],
                        )?;
                    }
                }
                3 => conn.execute_batch(M3)?,
                4 => conn.execute_batch(M4)?,
                _ => {}
            }
            conn.execute_batch(&format!("PRAGMA user_version = {next}"))
        })();
        match step {
            Ok(()) => conn.execute_batch("COMMIT").map_err(dberr)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(dberr(e));
            }
        }
        version = next;
    }
    Ok(())
}

/// Creates a database at schema version 1 (for the migration test and the
/// upgrade path it proves).
#[doc(hidden)]
pub fn create_v1(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.execute_batch(M1)?;
    c.execute_batch("PRAGMA user_version = 1")?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_schema_is_migrated_without_losing_data() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("memory.db");
        {
            let c = create_v1(&path).unwrap();
            c.execute("INSERT INTO facts(text, tags, source, ts_ms) VALUES('The cat is called Miso', 'pets', 'user', 1)", []).unwrap();
            c.execute(
                "INSERT INTO messages(chat, role, content, ts_ms) VALUES('c', 'user', 'hello', 1)",
                [],
            )
            .unwrap();
        }
        let s = Store::open(&path, &Tuning::default()).unwrap();
        let v: i64 = lock(&s.writer)
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(
            s.list_facts(10, 0).unwrap()[0].text,
            "The cat is called Miso"
        );
        assert_eq!(s.window("c", 5).unwrap()[0].content, "hello");
        // The backfilled embedding makes the old fact findable by similarity.
        assert_eq!(
            s.search("cats called", 1, Mode::Hybrid, None)
                .map(|(h, _)| h)
                .unwrap()[0]
                .fact
                .text,
            "The cat is called Miso"
        );
        // The tables of the later versions are there and work.
        s.account_seen(
            "telegram",
            &oi_ipc_schema::memory::AccountSeen {
                user_id: "7".into(),
                name: "Ann".into(),
                username: String::new(),
                language: String::new(),
                chat: "telegram:7".into(),
            },
        )
        .unwrap();
        assert_eq!(s.accounts("telegram", 5).unwrap()[0].name, "Ann");
    }

    #[test]
    fn damaged_and_newer_databases_are_refused_untouched() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("memory.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let err = Store::open(&path, &Tuning::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("is damaged") && err.contains("will not start"),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            vec![0x42u8; 8192],
            "a damaged file must not be overwritten"
        );
        let path = d.path().join("new.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("PRAGMA user_version = 99")
            .unwrap();
        let err = Store::open(&path, &Tuning::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("schema version 99, newer"), "{err}");
    }
}
