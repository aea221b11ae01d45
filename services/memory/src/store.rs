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
mod facts;

use facts::fts_query;
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
}

/// A store in `dir`, for tests.
#[cfg(test)]
pub(crate) fn test_store(dir: &Path) -> Store {
    Store::open(&dir.join("memory.db"), &Tuning::default()).unwrap()
}

#[cfg(test)]
mod tests;
