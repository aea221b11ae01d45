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

use oi_ipc_schema::memory::{ChatMessage, Episode, EpisodeQuery, Turn};
use oi_kernel::clock::now_ms;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde::Serialize;

use crate::embed;

mod accounts;
mod episodes;
mod history;
mod index_file;
mod schema;
mod settings;
mod spaces;
mod turns;
mod vectors;
pub use accounts::Account;
use index_file::IndexFile;
use schema::migrate;
pub use schema::{SCHEMA_VERSION, create_v1};
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
}

/// A store in `dir`, for tests.
#[cfg(test)]
pub(crate) fn test_store(dir: &Path) -> Store {
    Store::open(&dir.join("memory.db"), &Tuning::default()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_store as store;

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
        // Some of those changes did land during the build (the test would
        // prove nothing if all came before its snapshot or after it).
        assert!(v.replayed > 0, "no change landed during the build");
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

    /// A toy provider model for the tests: words map to concepts, so
    /// paraphrases with no word in common land together.

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
