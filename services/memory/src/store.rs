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

use oi_ipc_schema::memory::{ChatMessage, Episode, EpisodeQuery};
use oi_kernel::clock::now_ms;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::embed;

mod accounts;
mod index_file;
mod vectors;
pub use accounts::Account;
use index_file::IndexFile;
pub use vectors::{ANN_THRESHOLD, SAVE_EVERY};
use vectors::{Vectors, build_index, read, save_index, write};

/// Where the HNSW index of the local embedding (`which` = "local") or of
/// the provider's space in use ("provider") is kept: beside the database.
fn index_file(db: &Path, which: &str, space: &str) -> IndexFile {
    IndexFile::new(
        index_file::with_suffix(db, &format!(".{which}.hnsw")),
        space,
    )
}

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

/// `meta` key of the provider vector space in use.
const META_SPACE: &str = "embedding_space";

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
    /// The blocking thread running a store call died (panicked).
    #[error("memory task failed: {0}")]
    Task(String),
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

/// What a search ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keywords (FTS5 BM25) and embeddings, fused.
    Hybrid,
    Keyword,
    Vector,
}

impl Mode {
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "hybrid" => Some(Mode::Hybrid),
            "keyword" => Some(Mode::Keyword),
            "vector" => Some(Mode::Vector),
            _ => None,
        }
    }
}

/// The provider's embedding of a query or a fact, in its space.
#[derive(Debug, Clone, Copy)]
pub struct SpaceVector<'a> {
    pub space: &'a str,
    pub vector: &'a [f32],
}

/// Which embeddings a search used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// No embeddings (keyword mode).
    None,
    /// The built-in local embedding.
    Local,
    /// The provider's.
    Provider,
    /// The provider's, and the local one for facts it has not embedded yet.
    ProviderAndLocal,
}

/// Counts for `memory.stats`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub facts: usize,
    pub episodes: u64,
    /// The chat gateways' user accounts.
    pub accounts: u64,
    pub local_indexed: bool,
    /// The provider's vector space in use ("" for none yet).
    pub space: String,
    pub provider_vectors: usize,
    pub provider_dimensions: usize,
    pub provider_indexed: bool,
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
    /// Every fact's local embedding, for similarity search.
    vectors: RwLock<Vectors>,
    /// The provider's embeddings in the space in use, when there is one.
    provider: RwLock<Option<Arc<SpaceVectors>>>,
}

/// One provider space's vectors. Replaced whole when the space changes, so
/// an index built for a space that is no longer in use is dropped with it.
struct SpaceVectors {
    space: String,
    vectors: RwLock<Vectors>,
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
            .filter_map(|(id, b)| Some((id, embed::from_bytes(&b?, embed::DIM)?.into())))
            .collect()
        };
        let space: Option<String> = writer
            .query_row("SELECT value FROM meta WHERE key = ?1", [META_SPACE], |r| {
                r.get(0)
            })
            .optional()
            .map_err(dberr)?;
        let store = Store {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            hot: moka::sync::Cache::new(tuning.cache_entries.max(1)),
            vectors: RwLock::new(Vectors::new(
                embed::DIM,
                all,
                Some(index_file(path, "local", &format!("local-{}", embed::DIM))),
            )),
            provider: RwLock::new(None),
        };
        if let Some(space) = space {
            store.load_space(&space)?;
        }
        Ok(store)
    }

    // ---- provider vector spaces ----

    /// The provider vector space in use, if any.
    pub fn space(&self) -> Option<String> {
        self.space_vectors().map(|p| p.space.clone())
    }

    fn space_vectors(&self) -> Option<Arc<SpaceVectors>> {
        self.provider
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Makes `space` the one in use (remembered across restarts), loading
    /// the vectors already stored for it. Vectors of other spaces stay in
    /// the database (switching back costs nothing) until `drop_other_spaces`.
    pub fn use_space(&self, space: &str) -> Result<(), MemoryError> {
        if self.space().as_deref() == Some(space) {
            return Ok(());
        }
        self.db(lock(&self.writer).execute(
            "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![META_SPACE, space],
        ))?;
        self.load_space(space)?;
        tracing::info!(
            space,
            vectors = self.provider_count(),
            "embedding space in use"
        );
        Ok(())
    }

    fn load_space(&self, space: &str) -> Result<(), MemoryError> {
        let rows: Vec<(i64, Vec<u8>)> = {
            let r = self.reader();
            let mut stmt =
                self.db(r.prepare("SELECT fact_id, vec FROM fact_vectors WHERE space = ?1"))?;
            let rows = stmt
                .query_map([space], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|it| it.collect::<Result<Vec<_>, _>>());
            self.db(rows)?
        };
        let dim = rows.first().map_or(0, |(_, b)| b.len() / 4);
        let all = rows
            .into_iter()
            .filter_map(|(id, b)| Some((id, embed::from_bytes(&b, dim)?.into())))
            .collect();
        *self.provider.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(SpaceVectors {
            space: space.to_string(),
            vectors: RwLock::new(Vectors::new(
                dim,
                all,
                Some(index_file(&self.path, "provider", space)),
            )),
        }));
        Ok(())
    }

    fn provider_count(&self) -> usize {
        self.space_vectors()
            .map_or(0, |p| read(&p.vectors).all.len())
    }

    /// Up to `limit` facts (id, text) after id `after` with no vector in
    /// `space`, oldest first (all facts when `space` is `None`).
    pub fn facts_missing_vectors(
        &self,
        space: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, MemoryError> {
        let r = self.reader();
        let mut stmt = self.db(r.prepare(
            "SELECT id, text FROM facts f WHERE id > ?2 AND NOT EXISTS
               (SELECT 1 FROM fact_vectors v WHERE v.space = ?1 AND v.fact_id = f.id)
             ORDER BY id LIMIT ?3",
        ))?;
        let rows = stmt
            .query_map(params![space.unwrap_or(""), after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        self.db(rows)
    }

    /// Stores the provider's vectors of existing facts in `space` (facts
    /// deleted meanwhile are skipped) and makes `space` the one in use.
    /// Returns how many were stored.
    pub fn put_vectors(&self, space: &str, rows: &[(i64, Vec<f32>)]) -> Result<usize, MemoryError> {
        self.use_space(space)?;
        let mut stored = Vec::with_capacity(rows.len());
        {
            let mut w = lock(&self.writer);
            let tx = self.db(w.transaction())?;
            {
                let mut stmt = self.db(tx.prepare(
                    "INSERT OR REPLACE INTO fact_vectors(space, fact_id, vec)
                     SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM facts WHERE id = ?2)",
                ))?;
                for (id, v) in rows {
                    if self.db(stmt.execute(params![space, id, embed::to_bytes(v)]))? > 0 {
                        stored.push((*id, v.clone()));
                    }
                }
            }
            self.db(tx.commit())?;
        }
        let n = stored.len();
        self.add_provider_vectors(space, stored);
        Ok(n)
    }

    fn add_provider_vectors(&self, space: &str, rows: Vec<(i64, Vec<f32>)>) {
        let Some(sv) = self.space_vectors().filter(|sv| sv.space == space) else {
            return;
        };
        let mut vectors = write(&sv.vectors);
        for (id, v) in rows {
            if vectors.all.is_empty() && vectors.dim != v.len() {
                *vectors = Vectors::new(v.len(), Vec::new(), vectors.file());
            }
            vectors.insert(id, v);
        }
    }

    /// Deletes the stored vectors of every space but the one in use (after
    /// a model change, once nothing needs the old vectors).
    pub fn drop_other_spaces(&self) -> Result<usize, MemoryError> {
        let Some(space) = self.space() else {
            return Ok(0);
        };
        self.db(lock(&self.writer).execute("DELETE FROM fact_vectors WHERE space != ?1", [space]))
    }

    pub fn stats(&self) -> Result<Stats, MemoryError> {
        let (episodes, accounts): (i64, i64) = self.db(self.reader().query_row(
            "SELECT (SELECT COUNT(*) FROM episodes), (SELECT COUNT(*) FROM accounts)",
            [],
            |x| Ok((x.get(0)?, x.get(1)?)),
        ))?;
        let (facts, local_indexed) = {
            let local = read(&self.vectors);
            (local.all.len(), local.ann.is_some())
        };
        let p = self.space_vectors();
        let pv = p.as_ref().map(|p| read(&p.vectors));
        Ok(Stats {
            facts,
            episodes: episodes as u64,
            accounts: accounts as u64,
            local_indexed,
            space: p.as_ref().map(|p| p.space.clone()).unwrap_or_default(),
            provider_vectors: pv.as_ref().map_or(0, |v| v.all.len()),
            provider_dimensions: pv.as_ref().map_or(0, |v| v.dim),
            provider_indexed: pv.as_ref().is_some_and(|v| v.ann.is_some()),
        })
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        lock(&self.readers[i])
    }

    // ---- semantic memory ----

    /// Saves a fact with its local embedding and, when given, the
    /// provider's (in one transaction).
    pub fn save_fact(
        &self,
        text: &str,
        tags: &[String],
        source: &str,
        provider: Option<SpaceVector<'_>>,
    ) -> Result<i64, MemoryError> {
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
        if let Some(p) = provider {
            self.use_space(p.space)?;
        }
        let id = {
            let mut w = lock(&self.writer);
            let tx = self.db(w.transaction())?;
            self.db(
                tx.prepare_cached(
                    "INSERT INTO facts(text, tags, source, ts_ms, embedding) VALUES(?1, ?2, ?3, ?4, ?5)",
                )
                .and_then(|mut s| {
                    s.execute(params![text, tags.join(","), source, now_ms(), embed::to_bytes(&v)])
                }),
            )?;
            let id = tx.last_insert_rowid();
            if let Some(p) = provider {
                self.db(tx.execute(
                    "INSERT INTO fact_vectors(space, fact_id, vec) VALUES(?1, ?2, ?3)",
                    params![p.space, id, embed::to_bytes(p.vector)],
                ))?;
            }
            self.db(tx.commit())?;
            id
        };
        write(&self.vectors).insert(id, v);
        if let Some(p) = provider {
            self.add_provider_vectors(p.space, vec![(id, p.vector.to_vec())]);
        }
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
            .prepare_cached("SELECT id, text, tags, source, ts_ms FROM facts WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], fact_row))
            .optional();
        self.db(row)?.ok_or(MemoryError::NotFound(id))
    }

    pub fn delete_fact(&self, id: i64) -> Result<bool, MemoryError> {
        let n = self.db(lock(&self.writer).execute("DELETE FROM facts WHERE id = ?1", [id]))?;
        self.hot.invalidate(&id);
        write(&self.vectors).remove(id);
        if let Some(p) = self.space_vectors() {
            write(&p.vectors).remove(id);
        }
        Ok(n > 0)
    }

    pub fn list_facts(&self, limit: u32, offset: u32) -> Result<Vec<Fact>, MemoryError> {
        let r = self.reader();
        let mut stmt = self.db(r.prepare_cached(
            "SELECT id, text, tags, source, ts_ms FROM facts ORDER BY id DESC LIMIT ?1 OFFSET ?2",
        ))?;
        let rows = stmt
            .query_map(params![limit, offset], fact_row)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>());
        self.db(rows)
    }

    pub fn fact_count(&self) -> usize {
        read(&self.vectors).all.len()
    }

    /// Whether a vector index is due (the local one, or the provider
    /// space's) and not being built.
    pub fn needs_index(&self) -> bool {
        read(&self.vectors).needs_index()
            || self
                .space_vectors()
                .is_some_and(|p| read(&p.vectors).needs_index())
    }

    /// Builds the vector indexes that are due (see [`Store::needs_index`]);
    /// slow for many facts, so meant for a background thread: searches,
    /// saves and deletes go on meanwhile. Returns how many were built.
    pub fn build_pending_indexes(&self) -> usize {
        let local = build_index(&self.vectors);
        let provider = self
            .space_vectors()
            .is_some_and(|p| build_index(&p.vectors));
        usize::from(local) + usize::from(provider)
    }

    /// Saves the vector indexes that changed since their last save (see
    /// [`SAVE_EVERY`]). Returns how many files were written.
    pub fn save_indexes(&self) -> usize {
        let local = save_index(&self.vectors);
        let provider = self.space_vectors().is_some_and(|p| save_index(&p.vectors));
        usize::from(local) + usize::from(provider)
    }

    /// Whether similarity search goes through the HNSW index.
    pub fn indexed(&self) -> bool {
        read(&self.vectors).ann.is_some()
    }

    /// Whether the local HNSW index was loaded from its file (not built).
    pub fn index_loaded(&self) -> bool {
        read(&self.vectors).loaded
    }

    /// Ids of the `k` facts whose local embeddings are closest to `query`,
    /// with their similarity (dot product): approximate through the index
    /// once there is one, exact otherwise.
    pub fn nearest(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        read(&self.vectors).nearest(query, k)
    }

    /// Exact nearest neighbours by scanning every local vector.
    pub fn nearest_exact(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        read(&self.vectors).scan(query, k)
    }

    /// The provider vectors nearest `q`, and whether every fact has one;
    /// `None` when `q` is not in the space in use.
    fn nearest_provider(&self, q: SpaceVector<'_>, k: usize) -> Option<(Vec<(i64, f32)>, bool)> {
        let sv = self.space_vectors().filter(|sv| sv.space == q.space)?;
        let facts = self.fact_count();
        let v = read(&sv.vectors);
        Some((v.nearest(q.vector, k), v.all.len() >= facts))
    }

    /// Search by keywords (BM25 over the text and tags), by embedding
    /// similarity, or both fused by reciprocal rank (k = 60). Similarity
    /// uses the provider's embedding of the query when given (and in the
    /// space in use), plus the local one for facts the provider has not
    /// embedded yet; else the local embedding.
    pub fn search(
        &self,
        query: &str,
        limit: usize,
        mode: Mode,
        provider: Option<SpaceVector<'_>>,
    ) -> Result<(Vec<Hit>, Via), MemoryError> {
        const K: f64 = 60.0;
        let depth = (limit * 4).max(20);
        let mut scores: std::collections::HashMap<i64, f64> = std::collections::HashMap::new();
        let mut fuse = |ids: &mut dyn Iterator<Item = i64>| {
            for (rank, id) in ids.enumerate() {
                *scores.entry(id).or_default() += 1.0 / (K + rank as f64 + 1.0);
            }
        };
        if mode != Mode::Vector
            && let Some(q) = fts_query(query)
        {
            let r = self.reader();
            let mut stmt = self.db(r.prepare_cached("SELECT rowid FROM facts_fts WHERE facts_fts MATCH ?1 ORDER BY bm25(facts_fts) LIMIT ?2"))?;
            let ids = stmt
                .query_map(params![q, depth as i64], |r| r.get::<_, i64>(0))
                .and_then(|it| it.collect::<Result<Vec<_>, _>>());
            fuse(&mut self.db(ids)?.into_iter());
        }
        let mut via = Via::None;
        if mode != Mode::Keyword {
            let (complete, provider_hits) =
                match provider.and_then(|q| self.nearest_provider(q, depth)) {
                    Some((hits, complete)) => (complete, Some(hits)),
                    None => (false, None),
                };
            if let Some(hits) = provider_hits {
                fuse(&mut hits.into_iter().map(|(id, _)| id));
                via = Via::Provider;
            }
            if !complete {
                let qv = embed::embed(query);
                fuse(
                    &mut self
                        .nearest(&qv, depth)
                        .into_iter()
                        .filter(|(_, sim)| *sim > 0.05)
                        .map(|(id, _)| id),
                );
                via = if via == Via::Provider {
                    Via::ProviderAndLocal
                } else {
                    Via::Local
                };
            }
        }
        let mut ranked: Vec<(i64, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        ranked.truncate(limit);
        let hits = ranked
            .into_iter()
            .map(|(id, score)| {
                Ok(Hit {
                    fact: (*self.fact(id)?).clone(),
                    score,
                })
            })
            .collect::<Result<Vec<_>, MemoryError>>()?;
        Ok((hits, via))
    }

    // ---- working memory ----

    pub fn append_message(&self, chat: &str, role: &str, content: &str) -> Result<(), MemoryError> {
        self.db(lock(&self.writer)
            .prepare_cached(
                "INSERT INTO messages(chat, role, content, ts_ms) VALUES(?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| s.execute(params![chat, role, content, now_ms()])))?;
        Ok(())
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
        let mut stmt = self.db(
            r.prepare_cached("SELECT key, value FROM chat_settings WHERE chat = ?1 ORDER BY key")
        )?;
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
        self.db(w.prepare_cached(
            "INSERT INTO episodes(chat, intent, answer, tool_calls_json, prompt_tokens, completion_tokens, provider, ts_ms)
             VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        ).and_then(|mut s| s.execute(
            params![e.chat, e.intent, e.answer, e.tool_calls_json, e.prompt_tokens, e.completion_tokens, e.provider, if e.ts_ms == 0 { now_ms() } else { e.ts_ms }],
        )))?;
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
                None,
            )
            .unwrap();
        let b = s
            .save_fact("The staging server is at 10.0.0.5", &[], "agent", None)
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
        assert!(s.save_fact("  ", &[], "user", None).is_err());
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
            s.save_fact(t, &[], "user", None).unwrap();
        }
        let exact = s
            .save_fact("Project Nightingale uses PostgreSQL 16", &[], "user", None)
            .unwrap();
        let para = s
            .save_fact(
                "The user prefers dark roast coffee in the morning",
                &[],
                "user",
                None,
            )
            .unwrap();
        let hits = s
            .search("Nightingale", 3, Mode::Hybrid, None)
            .map(|(h, _)| h)
            .unwrap();
        assert_eq!(hits[0].fact.id, exact, "{hits:?}");
        // A paraphrase that shares stems but not the exact words.
        let hits = s
            .search("preferred roast of coffee", 3, Mode::Hybrid, None)
            .map(|(h, _)| h)
            .unwrap();
        assert_eq!(hits[0].fact.id, para, "{hits:?}");
        assert!(hits.iter().all(|h| h.score > 0.0));
        // FTS syntax in a query is just text.
        assert!(
            s.search("NEAR( \"x\" OR) * -", 5, Mode::Hybrid, None)
                .is_ok()
        );
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
            s.save_fact(&text(i), &[], "t", None).unwrap();
        }
        assert!(!s.indexed() && !s.needs_index());
        let last = s
            .save_fact(&text(ANN_THRESHOLD - 1), &[], "t", None)
            .unwrap();
        // Due, but built off the save's path.
        assert!(s.needs_index() && !s.indexed());
        assert_eq!(s.build_pending_indexes(), 1);
        assert!(s.indexed(), "no index at {ANN_THRESHOLD} facts");
        assert_eq!(s.build_pending_indexes(), 0);
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
        assert!(!s.index_loaded());
        assert_eq!(s.save_indexes(), 0, "saved when built; unchanged since");
        // Deletes reach the index.
        s.delete_fact(last).unwrap();
        let qv = embed::embed(&text(ANN_THRESHOLD - 1));
        assert!(s.nearest(&qv, 10).iter().all(|(id, _)| *id != last));
        // The store goes away without saving (as in a crash): the file
        // still holds `last`.
        drop(s);
        let s = store(d.path());
        assert!(!s.needs_index(), "one below the threshold after the delete");
        let more = s.save_fact("one more zulu", &[], "t", None).unwrap();
        assert_eq!(more, last, "SQLite gave the deleted id to the new fact");
        assert_eq!(s.build_pending_indexes(), 1);
        assert!(s.indexed() && s.index_loaded(), "loaded, not rebuilt");
        // Reconciled: the reused id carries the new fact's vector.
        let top = s.nearest(&embed::embed("one more zulu"), 1);
        assert_eq!(top[0].0, more);
        assert!((top[0].1 - 1.0).abs() < 1e-4, "{top:?}");
        let old = s.nearest(&qv, 10);
        let exact = s.nearest_exact(&qv, 10);
        assert!(old[0].1 >= exact[0].1 - 1e-5, "{old:?} {exact:?}");
        // Saved again every SAVE_EVERY when changed (the indexer calls it).
        assert_eq!(s.save_indexes(), 0, "saved after the repair");
        let newest = s.save_fact("newest yankee", &[], "t", None).unwrap();
        assert_eq!(s.save_indexes(), 1);
        assert_eq!(s.save_indexes(), 0);
        drop(s);
        let s = store(d.path());
        assert_eq!(s.build_pending_indexes(), 1);
        assert!(s.index_loaded());
        assert_eq!(s.nearest(&embed::embed("newest yankee"), 1)[0].0, newest);
        drop(s);
        // A damaged file is not used: the index is built again.
        let file = d.path().join("memory.db.local.hnsw");
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.len() - 100;
        bytes[at] ^= 1;
        std::fs::write(&file, bytes).unwrap();
        let s = store(d.path());
        assert_eq!(s.build_pending_indexes(), 1);
        assert!(s.indexed() && !s.index_loaded());
        assert_eq!(s.nearest(&embed::embed("newest yankee"), 1)[0].0, newest);
    }

    #[test]
    fn writes_during_an_index_build_reach_the_index() {
        let d = tempfile::tempdir().unwrap();
        let s = Arc::new(store(d.path()));
        for i in 0..ANN_THRESHOLD + 2000 {
            s.save_fact(&format!("fact {i} about topic {}", i % 97), &[], "t", None)
                .unwrap();
        }
        assert!(s.needs_index());
        let builder = {
            let s = s.clone();
            std::thread::spawn(move || s.build_pending_indexes())
        };
        // Saves and deletes while it builds (some land before the
        // snapshot, some during the build, some after).
        let mut added = Vec::new();
        for i in 0..300 {
            added.push(
                s.save_fact(&format!("late arrival number {i} zebra"), &[], "t", None)
                    .unwrap(),
            );
        }
        let gone: Vec<i64> = (1..=300).step_by(3).collect();
        for id in &gone {
            assert!(s.delete_fact(*id).unwrap());
        }
        assert_eq!(builder.join().unwrap(), 1);
        assert!(s.indexed());
        // Every late fact is in the index and no deleted one is, so the
        // changes made during the build were replayed onto it.
        let v = read(&s.vectors);
        let index = v.ann.as_ref().unwrap();
        assert_eq!(index.size(), v.all.len());
        for id in &added {
            assert!(
                index.contains(*id as u64),
                "late fact {id} not in the index"
            );
        }
        for id in &gone {
            assert!(
                !index.contains(*id as u64),
                "deleted fact {id} in the index"
            );
        }
        // And they are found through it (HNSW is approximate: these 300
        // differ only in a number, so a few may rank below their twins).
        let found = added
            .iter()
            .enumerate()
            .filter(|(i, id)| {
                let qv = embed::embed(&format!("late arrival number {i} zebra"));
                v.nearest(&qv, 10).iter().any(|(x, _)| x == *id)
            })
            .count();
        assert!(found >= 285, "{found}/300 late facts found");
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

    /// A toy provider model for the tests: words map to concepts, so
    /// paraphrases with no word in common land together.
    fn concept(text: &str) -> Vec<f32> {
        const C: &[&[&str]] = &[
            &["coffee", "espresso", "latte"],
            &["likes", "favourite", "loves"],
            &["server", "deploy", "staging"],
            &["dog", "puppy", "pet"],
        ];
        let mut v = [0.05f32; 6];
        for w in text.to_lowercase().split(|c: char| !c.is_alphanumeric()) {
            if let Some(i) = C.iter().position(|c| c.contains(&w)) {
                v[i] += 1.0;
            }
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn provider_vectors_rank_by_meaning_fill_gaps_and_follow_the_space() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        const SPACE: &str = "openai http://x/v1 toy 6";
        let save = |t: &str, with: bool| {
            let v = concept(t);
            let pv = with.then_some(SpaceVector {
                space: SPACE,
                vector: &v,
            });
            s.save_fact(t, &[], "user", pv).unwrap()
        };
        let espresso = save("The user enjoys a double espresso every day", true);
        save("Deploy the staging server on Fridays", true);
        save("Alice's birthday is in September", true);
        let q = concept("favourite coffee");
        let pq = Some(SpaceVector {
            space: SPACE,
            vector: &q,
        });
        let (hits, via) = s.search("favourite coffee", 3, Mode::Vector, pq).unwrap();
        assert_eq!(via, Via::Provider);
        assert_eq!(hits[0].fact.id, espresso, "{hits:?}");
        // The lexical local embedding cannot see that paraphrase.
        let (hits, via) = s.search("favourite coffee", 3, Mode::Vector, None).unwrap();
        assert_eq!(via, Via::Local);
        assert!(
            hits.first().is_none_or(|h| h.fact.id != espresso),
            "{hits:?}"
        );

        // A fact saved while the provider was away: found locally until the
        // backfill gives it a vector.
        let dog = save("Rex the puppy", false);
        assert_eq!(
            s.facts_missing_vectors(Some(SPACE), 0, 10).unwrap(),
            [(dog, "Rex the puppy".to_string())]
        );
        let (_, via) = s.search("coffee", 3, Mode::Hybrid, pq).unwrap();
        assert_eq!(via, Via::ProviderAndLocal);
        assert_eq!(
            s.put_vectors(
                SPACE,
                &[(dog, concept("Rex the puppy")), (9999, concept("gone"))]
            )
            .unwrap(),
            1
        );
        let (_, via) = s.search("coffee", 3, Mode::Hybrid, pq).unwrap();
        assert_eq!(via, Via::Provider);
        let qp = concept("my pet");
        let (hits, _) = s
            .search(
                "my pet",
                1,
                Mode::Vector,
                Some(SpaceVector {
                    space: SPACE,
                    vector: &qp,
                }),
            )
            .unwrap();
        assert_eq!(hits[0].fact.id, dog);
        // A query from another space is not compared with these vectors.
        let (_, via) = s
            .search(
                "coffee",
                3,
                Mode::Vector,
                Some(SpaceVector {
                    space: "other 6",
                    vector: &q,
                }),
            )
            .unwrap();
        assert_eq!(via, Via::Local);

        // Deleting a fact deletes its vector; a reopened store remembers the
        // space and its vectors.
        assert!(s.delete_fact(dog).unwrap());
        let st = s.stats().unwrap();
        assert_eq!(
            (st.facts, st.provider_vectors, st.provider_dimensions),
            (3, 3, 6)
        );
        drop(s);
        let s = store(d.path());
        let st = s.stats().unwrap();
        assert_eq!(st.space, SPACE);
        assert_eq!(st.provider_vectors, 3);
        let stored: i64 = lock(&s.writer)
            .query_row("SELECT COUNT(*) FROM fact_vectors", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, 3, "the deleted fact's vector went with it");

        // A model change: a new space starts empty, every fact is missing,
        // and the old vectors go once it is complete.
        s.use_space("openai http://x/v1 toy-2 6").unwrap();
        assert_eq!(s.stats().unwrap().provider_vectors, 0);
        let missing = s
            .facts_missing_vectors(s.space().as_deref(), 0, 10)
            .unwrap();
        assert_eq!(missing.len(), 3);
        let rows: Vec<(i64, Vec<f32>)> = missing.iter().map(|(id, t)| (*id, concept(t))).collect();
        s.put_vectors("openai http://x/v1 toy-2 6", &rows).unwrap();
        assert_eq!(s.drop_other_spaces().unwrap(), 3);
        assert_eq!(s.stats().unwrap().provider_vectors, 3);
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
                    s.save_fact(&format!("fact number {i}"), &[], "t", None)
                        .unwrap();
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
