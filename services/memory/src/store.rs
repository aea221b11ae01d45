//! The memory database: one SQLite file (WAL, mmap), one writer and a pool
//! of readers, versioned migrations, and three layers:
//!
//! - working memory: each chat's recent messages;
//! - episodic memory: every intent and its outcome, full-text searchable;
//! - semantic memory: saved facts, found by hybrid search (FTS5 BM25
//!   ranking fused with embedding similarity by reciprocal rank fusion).
//!
//! Frequent fact reads are served from a hot cache that every write to
//! that fact invalidates.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use oi_ipc_schema::memory::{ChatMessage, Episode, EpisodeQuery};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::embed;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = 2;

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

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("memory database {path}: {source}")]
    Db {
        path: String,
        source: rusqlite::Error,
    },
    #[error(
        "memory database {path} is damaged ({detail}); the memory service will not start on it. Restore a backup or move the file away"
    )]
    Corrupt { path: String, detail: String },
    #[error(
        "memory database {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; run a newer openintentd"
    )]
    TooNew { path: String, found: i64 },
    #[error("no memory with id {0}")]
    NotFound(i64),
    #[error("{0}")]
    BadRequest(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fact {
    pub id: i64,
    pub text: String,
    pub tags: Vec<String>,
    pub source: String,
    pub ts_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    #[serde(flatten)]
    pub fact: Fact,
    pub score: f64,
}

/// Tuning from `[memory]`.
#[derive(Debug, Clone)]
pub struct Tuning {
    pub readers: usize,
    pub mmap_bytes: u64,
    pub cache_entries: u64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            readers: 2,
            mmap_bytes: 256 << 20,
            cache_entries: 10_000,
        }
    }
}

pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    hot: moka::sync::Cache<i64, Arc<Fact>>,
    /// Every fact's embedding, for similarity search.
    vectors: RwLock<Vectors>,
}

/// Fact count from which similarity search goes through the HNSW index
/// instead of scanning every vector.
pub const ANN_THRESHOLD: usize = 5_000;

/// The embeddings, scanned exactly while there are few, and indexed by
/// usearch (HNSW, inner product) once there are [`ANN_THRESHOLD`].
struct Vectors {
    all: Vec<(i64, Vec<f32>)>,
    ann: Option<usearch::Index>,
}

impl Vectors {
    fn new_index(n: usize) -> Option<usearch::Index> {
        let opts = usearch::IndexOptions {
            dimensions: embed::DIM,
            metric: usearch::MetricKind::IP,
            quantization: usearch::ScalarKind::F32,
            connectivity: 0,
            expansion_add: 0,
            // Wider search than usearch's default (64) for recall.
            expansion_search: 128,
            multi: false,
        };
        let index = usearch::new_index(&opts).ok()?;
        index.reserve(n.max(1024) * 2).ok()?;
        Some(index)
    }

    fn build_index(&mut self) {
        let Some(index) = Self::new_index(self.all.len()) else {
            tracing::warn!("cannot create the vector index; similarity search scans instead");
            return;
        };
        for (id, v) in &self.all {
            if index.add(*id as u64, v).is_err() {
                tracing::warn!("cannot fill the vector index; similarity search scans instead");
                return;
            }
        }
        self.ann = Some(index);
    }

    fn insert(&mut self, id: i64, v: Vec<f32>) {
        if let Some(index) = &self.ann {
            if index.size() + 1 >= index.capacity() {
                let _ = index.reserve(index.capacity() * 2);
            }
            if index.add(id as u64, &v).is_err() {
                self.ann = None;
            }
        }
        self.all.push((id, v));
        if self.ann.is_none() && self.all.len() >= ANN_THRESHOLD {
            self.build_index();
        }
    }

    fn remove(&mut self, id: i64) {
        self.all.retain(|(i, _)| *i != id);
        if let Some(index) = &self.ann
            && index.remove(id as u64).is_err()
        {
            self.ann = None;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `facts` row selected as `id, text, tags, source, ts_ms`.
fn fact_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Fact> {
    Ok(Fact {
        id: r.get(0)?,
        text: r.get(1)?,
        tags: split_tags(&r.get::<_, String>(2)?),
        source: r.get(3)?,
        ts_ms: r.get(4)?,
    })
}

fn split_tags(t: &str) -> Vec<String> {
    t.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An FTS5 query that matches any of the words of `text`, each quoted so
/// that no user input is read as FTS syntax.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

impl Store {
    fn db<T>(&self, r: rusqlite::Result<T>) -> Result<T, MemoryError> {
        r.map_err(|source| MemoryError::Db {
            path: self.path.display().to_string(),
            source,
        })
    }

    /// Opens the database, refusing a damaged or too-new one, and migrates
    /// an older one.
    pub fn open(path: &Path, tuning: &Tuning) -> Result<Store, MemoryError> {
        let ps = path.display().to_string();
        let dberr = |source| MemoryError::Db {
            path: ps.clone(),
            source,
        };
        let pragmas = format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA mmap_size={}; PRAGMA busy_timeout=5000;",
            tuning.mmap_bytes
        );
        let writer = Connection::open(path).map_err(dberr)?;
        let check: String = match writer.query_row("PRAGMA quick_check", [], |r| r.get(0)) {
            Ok(s) => s,
            Err(e) => {
                return Err(MemoryError::Corrupt {
                    path: ps,
                    detail: e.to_string(),
                });
            }
        };
        if check != "ok" {
            return Err(MemoryError::Corrupt {
                path: ps,
                detail: check,
            });
        }
        writer.execute_batch(&pragmas).map_err(dberr)?;
        migrate(&writer, path)?;
        let mut readers = Vec::new();
        for _ in 0..tuning.readers.max(1) {
            let r = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(dberr)?;
            r.execute_batch(&format!(
                "PRAGMA mmap_size={}; PRAGMA busy_timeout=5000;",
                tuning.mmap_bytes
            ))
            .map_err(dberr)?;
            readers.push(Mutex::new(r));
        }
        let all = {
            let mut stmt = writer
                .prepare("SELECT id, embedding FROM facts")
                .map_err(dberr)?;
            stmt.query_map([], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(dberr)?
            .into_iter()
            .filter_map(|(id, b)| Some((id, embed::from_bytes(&b?)?)))
            .collect()
        };
        let mut vectors = Vectors { all, ann: None };
        if vectors.all.len() >= ANN_THRESHOLD {
            vectors.build_index();
        }
        Ok(Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            hot: moka::sync::Cache::new(tuning.cache_entries.max(1)),
            vectors: RwLock::new(vectors),
        })
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        lock(&self.readers[i])
    }

    // ---- semantic memory ----

    pub fn save_fact(&self, text: &str, tags: &[String], source: &str) -> Result<i64, MemoryError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MemoryError::BadRequest("a memory needs some text".into()));
        }
        if let Some(bad) = tags.iter().find(|t| t.contains(',')) {
            return Err(MemoryError::BadRequest(format!(
                "tag {bad:?} contains a comma"
            )));
        }
        let v = embed::embed(text);
        let id = {
            let w = lock(&self.writer);
            self.db(w.execute(
                "INSERT INTO facts(text, tags, source, ts_ms, embedding) VALUES(?1, ?2, ?3, ?4, ?5)",
                params![text, tags.join(","), source, now_ms(), embed::to_bytes(&v)],
            ))?;
            w.last_insert_rowid()
        };
        self.vectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, v);
        Ok(id)
    }

    /// A fact by id, from the hot cache when it is there.
    pub fn fact(&self, id: i64) -> Result<Arc<Fact>, MemoryError> {
        if let Some(f) = self.hot.get(&id) {
            return Ok(f);
        }
        let f = Arc::new(self.fact_uncached(id)?);
        self.hot.insert(id, f.clone());
        Ok(f)
    }

    /// A fact by id, always from SQLite.
    pub fn fact_uncached(&self, id: i64) -> Result<Fact, MemoryError> {
        let r = self.reader();
        let row = r
            .query_row(
                "SELECT id, text, tags, source, ts_ms FROM facts WHERE id = ?1",
                [id],
                fact_row,
            )
            .optional();
        self.db(row)?.ok_or(MemoryError::NotFound(id))
    }

    pub fn delete_fact(&self, id: i64) -> Result<bool, MemoryError> {
        let n = self.db(lock(&self.writer).execute("DELETE FROM facts WHERE id = ?1", [id]))?;
        self.hot.invalidate(&id);
        self.vectors
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        Ok(n > 0)
    }

    pub fn list_facts(&self, limit: u32, offset: u32) -> Result<Vec<Fact>, MemoryError> {
        let r = self.reader();
        let mut stmt = self.db(r.prepare(
            "SELECT id, text, tags, source, ts_ms FROM facts ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        ))?;
        let rows = stmt
            .query_map(params![limit, offset], fact_row)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        self.db(rows)
    }

    pub fn fact_count(&self) -> usize {
        self.vectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .all
            .len()
    }

    /// Whether similarity search goes through the HNSW index.
    pub fn indexed(&self) -> bool {
        self.vectors
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .ann
            .is_some()
    }

    /// Ids of the `k` facts whose embeddings are closest to `query`, with
    /// their similarity (dot product): approximate through the index once
    /// there is one, exact otherwise.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        let vectors = self.vectors.read().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = &vectors.ann
            && let Ok(m) = index.search(query, k)
        {
            // usearch's inner-product distance is 1 - dot.
            return m
                .keys
                .iter()
                .zip(&m.distances)
                .map(|(id, d)| (*id as i64, 1.0 - d))
                .collect();
        }
        Self::scan(&vectors.all, query, k)
    }

    /// Exact nearest neighbours by scanning every vector.
    pub fn nearest_exact(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        Self::scan(
            &self.vectors.read().unwrap_or_else(|p| p.into_inner()).all,
            query,
            k,
        )
    }

    fn scan(all: &[(i64, Vec<f32>)], query: &[f32], k: usize) -> Vec<(i64, f32)> {
        let mut best: Vec<(i64, f32)> = Vec::with_capacity(k + 1);
        for (id, v) in all.iter() {
            let s = embed::dot(query, v);
            if best.len() < k || s > best[best.len() - 1].1 {
                let at = best.partition_point(|(_, b)| *b >= s);
                best.insert(at, (*id, s));
                best.truncate(k);
            }
        }
        best
    }

    /// Hybrid search: BM25 over the text and tags, and embedding
    /// similarity, fused by reciprocal rank (k = 60).
    pub fn search(&self, query: &str, limit: usize) -> Result<Vec<Hit>, MemoryError> {
        const K: f64 = 60.0;
        let depth = (limit * 4).max(20);
        let mut scores: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
        if let Some(q) = fts_query(query) {
            let r = self.reader();
            let mut stmt = self.db(r.prepare("SELECT rowid FROM facts_fts WHERE facts_fts MATCH ?1 ORDER BY bm25(facts_fts) LIMIT ?2"))?;
            let ids = stmt
                .query_map(params![q, depth as i64], |r| r.get::<_, i64>(0))
                .and_then(|it| it.collect::<Result<Vec<_>, _>>());
            for (rank, id) in self.db(ids)?.into_iter().enumerate() {
                *scores.entry(id).or_default() += 1.0 / (K + rank as f64 + 1.0);
            }
        }
        let qv = embed::embed(query);
        for (rank, (id, sim)) in self.nearest(&qv, depth).into_iter().enumerate() {
            if sim > 0.05 {
                *scores.entry(id).or_default() += 1.0 / (K + rank as f64 + 1.0);
            }
        }
        let mut ranked: Vec<(i64, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        ranked.truncate(limit);
        ranked
            .into_iter()
            .map(|(id, score)| {
                Ok(Hit {
                    fact: (*self.fact(id)?).clone(),
                    score,
                })
            })
            .collect()
    }

    // ---- working memory ----

    pub fn append_message(&self, chat: &str, role: &str, content: &str) -> Result<(), MemoryError> {
        self.db(lock(&self.writer).execute(
            "INSERT INTO messages(chat, role, content, ts_ms) VALUES(?1, ?2, ?3, ?4)",
            params![chat, role, content, now_ms()],
        ))?;
        Ok(())
    }

    /// The last `n` messages of a chat, oldest first.
    pub fn window(&self, chat: &str, n: u32) -> Result<Vec<ChatMessage>, MemoryError> {
        let r = self.reader();
        let mut stmt = self.db(r.prepare(
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

    // ---- per-chat settings ----

    pub fn set_setting(&self, chat: &str, key: &str, value: &str) -> Result<(), MemoryError> {
        self.db(lock(&self.writer).execute(
            "INSERT INTO chat_settings(chat, key, value) VALUES(?1, ?2, ?3)
             ON CONFLICT(chat, key) DO UPDATE SET value = excluded.value",
            params![chat, key, value],
        ))?;
        Ok(())
    }

    pub fn settings(&self, chat: &str) -> Result<Vec<(String, String)>, MemoryError> {
        let r = self.reader();
        let mut stmt = self
            .db(r.prepare("SELECT key, value FROM chat_settings WHERE chat = ?1 ORDER BY key"))?;
        let rows = stmt
            .query_map([chat], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        self.db(rows)
    }

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
        let w = lock(&self.writer);
        self.db(w.execute(
            "INSERT INTO episodes(chat, intent, answer, tool_calls_json, prompt_tokens, completion_tokens, provider, ts_ms)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![e.chat, e.intent, e.answer, e.tool_calls_json, e.prompt_tokens, e.completion_tokens, e.provider, if e.ts_ms == 0 { now_ms() } else { e.ts_ms }],
        ))?;
        Ok(w.last_insert_rowid())
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
                .prepare(&format!(
                    "SELECT {cols} FROM episodes_fts f JOIN episodes e ON e.id = f.rowid
                     WHERE episodes_fts MATCH ?1 AND (?2 = '' OR e.chat = ?2) AND e.ts_ms >= ?3 AND e.ts_ms <= ?4
                     ORDER BY bm25(episodes_fts) LIMIT ?5"
                ))
                .and_then(|mut s| s.query_map(params![fq, q.chat, q.since_ms, until, limit], map)?.collect::<Result<Vec<_>, _>>()),
            None => r
                .prepare(&format!(
                    "SELECT {cols} FROM episodes e WHERE (?1 = '' OR e.chat = ?1) AND e.ts_ms >= ?2 AND e.ts_ms <= ?3
                     ORDER BY e.ts_ms DESC LIMIT ?4"
                ))
                .and_then(|mut s| s.query_map(params![q.chat, q.since_ms, until, limit], map)?.collect::<Result<Vec<_>, _>>()),
        };
        self.db(rows)
    }
}

/// Brings a database up to [`SCHEMA_VERSION`], one transaction per step.
/// No step drops data.
fn migrate(conn: &Connection, path: &Path) -> Result<(), MemoryError> {
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

    fn store(dir: &Path) -> Store {
        Store::open(&dir.join("memory.db"), &Tuning::default()).unwrap()
    }

    #[test]
    fn semantic_memory_save_get_list_delete_and_cache_invalidation() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let a = s
            .save_fact(
                "The user prefers dark roast coffee",
                &["food".into()],
                "user",
            )
            .unwrap();
        let b = s
            .save_fact("The staging server is at 10.0.0.5", &[], "agent")
            .unwrap();
        assert_eq!(s.fact(a).unwrap().tags, ["food"]);
        assert_eq!(
            s.fact(a).unwrap().text,
            "The user prefers dark roast coffee"
        );
        let ids: Vec<i64> = s.list_facts(10, 0).unwrap().iter().map(|f| f.id).collect();
        assert_eq!(ids, [b, a]);
        assert!(s.delete_fact(a).unwrap());
        assert!(
            matches!(s.fact(a), Err(MemoryError::NotFound(_))),
            "a cached fact must go with its row"
        );
        assert!(!s.delete_fact(a).unwrap());
        assert!(s.save_fact("  ", &[], "user").is_err());
    }

    #[test]
    fn hybrid_search_ranks_keyword_and_paraphrase_above_unrelated() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let unrelated = [
            "The quarterly report is due on the first Monday of April",
            "Alice's birthday is in September",
            "The office wifi password rotates every month",
            "Deploy the staging server on Friday afternoons",
            "Bob is allergic to peanuts",
        ];
        for t in unrelated {
            s.save_fact(t, &[], "user").unwrap();
        }
        let exact = s
            .save_fact("Project Nightingale uses PostgreSQL 16", &[], "user")
            .unwrap();
        let para = s
            .save_fact(
                "The user prefers dark roast coffee in the morning",
                &[],
                "user",
            )
            .unwrap();
        let hits = s.search("Nightingale", 3).unwrap();
        assert_eq!(hits[0].fact.id, exact, "{hits:?}");
        // A paraphrase that shares stems but not the exact words.
        let hits = s.search("preferred roast of coffee", 3).unwrap();
        assert_eq!(hits[0].fact.id, para, "{hits:?}");
        assert!(hits.iter().all(|h| h.score > 0.0));
        // FTS syntax in a query is just text.
        assert!(s.search("NEAR( \"x\" OR) * -", 5).is_ok());
    }

    #[test]
    fn the_index_takes_over_at_the_threshold_and_agrees_with_the_scan() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let words = [
            "alpha", "bravo", "coffee", "delta", "echo", "foxtrot", "golf", "hotel", "india",
            "juliet", "kilo", "lima",
        ];
        let text = |i: usize| {
            format!(
                "{} {} {} {}",
                words[i % 12],
                words[(i / 12) % 12],
                words[(i / 144) % 12],
                i
            )
        };
        for i in 0..ANN_THRESHOLD - 1 {
            s.save_fact(&text(i), &[], "t").unwrap();
        }
        assert!(!s.indexed());
        let last = s.save_fact(&text(ANN_THRESHOLD - 1), &[], "t").unwrap();
        assert!(s.indexed(), "no index at {ANN_THRESHOLD} facts");
        // Recall@10 against the exact scan. Many facts tie on similarity,
        // so an approximate hit counts when it is as similar as the exact
        // 10th best.
        let mut hits = 0;
        for q in 0..50 {
            let qv = embed::embed(&text(q * 37));
            let exact = s.nearest_exact(&qv, 10);
            let tenth = exact[9].1 - 1e-5;
            let approx = s.nearest(&qv, 10);
            assert_eq!(approx.len(), 10);
            hits += approx.iter().filter(|(_, sim)| *sim >= tenth).count();
        }
        eprintln!("recall@10 {hits}/500");
        assert!(hits >= 475, "recall@10 {hits}/500");
        // Deletes reach the index; a reopened store rebuilds it.
        s.delete_fact(last).unwrap();
        let qv = embed::embed(&text(ANN_THRESHOLD - 1));
        assert!(s.nearest(&qv, 10).iter().all(|(id, _)| *id != last));
        drop(s);
        let s = store(d.path());
        assert!(!s.indexed(), "one below the threshold after the delete");
        s.save_fact("one more", &[], "t").unwrap();
        assert!(s.indexed());
    }

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
            s.search("cats called", 1).unwrap()[0].fact.text,
            "The cat is called Miso"
        );
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

    #[test]
    fn readers_see_writes_while_a_writer_runs() {
        let d = tempfile::tempdir().unwrap();
        let s = std::sync::Arc::new(store(d.path()));
        let w = {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..300 {
                    s.save_fact(&format!("fact number {i}"), &[], "t").unwrap();
                }
            })
        };
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..200 {
                        let n = s.list_facts(1000, 0).unwrap().len();
                        assert!(n >= last, "a reader went back in time");
                        last = n;
                    }
                })
            })
            .collect();
        w.join().unwrap();
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(s.list_facts(1000, 0).unwrap().len(), 300);
    }
}
