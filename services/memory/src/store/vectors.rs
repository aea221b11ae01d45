//! The vectors of one embedding space and their HNSW index: scanned
//! exactly while there are few, searched through a usearch index from
//! [`ANN_THRESHOLD`] on, the index built (or loaded from its file, see
//! [`super::index_file`]) off the lock, and saved again after a build and
//! every [`SAVE_EVERY`] while it changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::index_file::IndexFile;
use crate::embed;

/// How often a changed index is saved to its file. Changes since the last
/// save are redone from the database after a crash (see
/// [`IndexFile::load`]), so this bounds that work, not what is lost.
pub const SAVE_EVERY: Duration = Duration::from_secs(300);

pub(super) fn read(v: &RwLock<Vectors>) -> std::sync::RwLockReadGuard<'_, Vectors> {
    v.read().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn write(v: &RwLock<Vectors>) -> std::sync::RwLockWriteGuard<'_, Vectors> {
    v.write().unwrap_or_else(|p| p.into_inner())
}

/// Fact count from which similarity search goes through the HNSW index
/// instead of scanning every vector.
pub const ANN_THRESHOLD: usize = 5_000;

/// Unit vectors of one space, scanned exactly while there are few, and
/// searched through a usearch HNSW index (inner product) once there are
/// [`ANN_THRESHOLD`]. The index is built off the lock (see
/// [`Store::build_pending_indexes`]): a 100k-fact index takes a minute or
/// more on a small machine, and neither the service's start nor its
/// writes wait for it; searches scan meanwhile.
pub(super) struct Vectors {
    pub(super) dim: usize,
    pub(super) all: Vec<(i64, Arc<[f32]>)>,
    pub(super) ann: Option<usearch::Index>,
    /// While an index is being built: the changes made since its snapshot,
    /// replayed onto it when it is swapped in.
    building: Option<Vec<Change>>,
    /// The index could not be built or kept (search keeps scanning, and no
    /// new build is tried).
    failed: bool,
    /// Where the index is kept between runs; `None` keeps it in memory only.
    file: Option<IndexFile>,
    /// Changes to the index since it was last saved.
    unsaved: AtomicU64,
    /// The index came from its file rather than a build.
    pub(super) loaded: bool,
    /// Changes made during the last build and replayed onto its index.
    pub(super) replayed: usize,
}

enum Change {
    Add(i64, Arc<[f32]>),
    Remove(i64),
}

impl Vectors {
    pub(super) fn new(dim: usize, all: Vec<(i64, Arc<[f32]>)>, file: Option<IndexFile>) -> Vectors {
        Vectors {
            dim,
            all,
            ann: None,
            building: None,
            failed: false,
            file,
            unsaved: AtomicU64::new(0),
            loaded: false,
            replayed: 0,
        }
    }

    /// The same file, for the vectors that replace these.
    pub(super) fn file(&self) -> Option<IndexFile> {
        self.file.clone()
    }

    pub(super) fn needs_index(&self) -> bool {
        self.ann.is_none()
            && self.building.is_none()
            && !self.failed
            && self.all.len() >= ANN_THRESHOLD
    }

    pub(super) fn new_index(dim: usize, n: usize) -> Option<usearch::Index> {
        let opts = usearch::IndexOptions {
            dimensions: dim,
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

    /// Adds one vector to the index, growing it when full.
    pub(super) fn index_add(index: &usearch::Index, id: i64, v: &[f32]) -> bool {
        if index.size() + 1 >= index.capacity() && index.reserve(index.capacity() * 2).is_err() {
            return false;
        }
        index.add(id as u64, v).is_ok()
    }

    pub(super) fn insert(&mut self, id: i64, v: Vec<f32>) {
        if v.len() != self.dim {
            return;
        }
        let v: Arc<[f32]> = v.into();
        if let Some(index) = &self.ann
            && !Self::index_add(index, id, &v)
        {
            self.ann = None;
            self.failed = true;
            tracing::warn!("cannot add to the vector index; similarity search scans instead");
        }
        if let Some(log) = &mut self.building {
            log.push(Change::Add(id, v.clone()));
        }
        *self.unsaved.get_mut() += 1;
        self.all.push((id, v));
    }

    pub(super) fn remove(&mut self, id: i64) {
        self.all.retain(|(i, _)| *i != id);
        if let Some(index) = &self.ann
            && index.remove(id as u64).is_err()
        {
            self.ann = None;
            self.failed = true;
        }
        if let Some(log) = &mut self.building {
            log.push(Change::Remove(id));
        }
        *self.unsaved.get_mut() += 1;
    }

    /// Nearest `k` by dot product: through the index when there is one.
    pub(super) fn nearest(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        if query.len() != self.dim {
            return Vec::new();
        }
        if let Some(index) = &self.ann
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
        self.scan(query, k)
    }

    /// Exact nearest neighbours by scanning every vector.
    pub(super) fn scan(&self, query: &[f32], k: usize) -> Vec<(i64, f32)> {
        let mut best: Vec<(i64, f32)> = Vec::with_capacity(k + 1);
        for (id, v) in self.all.iter() {
            let s = embed::dot(query, v);
            if best.len() < k || s > best[best.len() - 1].1 {
                let at = best.partition_point(|(_, b)| *b >= s);
                best.insert(at, (*id, s));
                best.truncate(k);
            }
        }
        best
    }
}

/// Builds the index of `lock`'s vectors if they need one: a snapshot is
/// taken under the lock (cheap: the vectors are shared), the index is
/// loaded from its file and reconciled with the snapshot, or else built
/// from it, without the lock, and the changes made meanwhile are replayed
/// before it is swapped in. A built or repaired index is saved. Returns
/// whether an index was made.
pub(super) fn build_index(lock: &RwLock<Vectors>) -> bool {
    let (dim, snapshot, file) = {
        let mut v = write(lock);
        if !v.needs_index() {
            return false;
        }
        v.building = Some(Vec::new());
        (v.dim, v.all.clone(), v.file.clone())
    };
    let t0 = std::time::Instant::now();
    let loaded = file.as_ref().and_then(|f| f.load(dim, &snapshot));
    let repairs = loaded.as_ref().map(|(_, r)| *r);
    let built = match loaded {
        Some((index, _)) => Some(index),
        None => Vectors::new_index(dim, snapshot.len()).filter(|index| {
            snapshot
                .iter()
                .all(|(id, v)| Vectors::index_add(index, *id, v))
        }),
    };
    drop(snapshot);
    let mut v = write(lock);
    let log = v.building.take().unwrap_or_default();
    let Some(index) = built else {
        v.failed = true;
        tracing::warn!("cannot build the vector index; similarity search scans instead");
        return false;
    };
    let replayed = log.iter().all(|c| match c {
        Change::Add(id, vec) => Vectors::index_add(&index, *id, vec),
        Change::Remove(id) => index.remove(*id as u64).is_ok(),
    });
    if !replayed || v.dim != dim {
        v.failed = true;
        return false;
    }
    let secs = t0.elapsed().as_secs_f64();
    match repairs {
        Some(r) => tracing::info!(
            vectors = index.size(),
            dimensions = dim,
            secs,
            added = r.added,
            replaced = r.replaced,
            removed = r.removed,
            "vector index loaded"
        ),
        None => tracing::info!(
            vectors = index.size(),
            dimensions = dim,
            secs,
            "vector index built"
        ),
    }
    v.loaded = repairs.is_some();
    v.replayed = log.len();
    let changed = repairs.is_none_or(|r| r.any()) || !log.is_empty();
    v.unsaved.store(u64::from(changed), Ordering::Relaxed);
    v.ann = Some(index);
    drop(v);
    if changed {
        save_index(lock);
    }
    true
}

/// Saves the index to its file if it changed since the last save: it is
/// serialised under the read lock (searches go on; writes wait for the
/// copy) and written without it. Returns whether a file was written.
pub(super) fn save_index(lock: &RwLock<Vectors>) -> bool {
    let (file, bytes, dimensions, size, max_key) = {
        let v = read(lock);
        let (Some(index), Some(file)) = (&v.ann, &v.file) else {
            return false;
        };
        if v.unsaved.load(Ordering::Relaxed) == 0 || v.building.is_some() {
            return false;
        }
        let bytes = match IndexFile::serialise(index) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("{e}");
                return false;
            }
        };
        v.unsaved.store(0, Ordering::Relaxed);
        let max_key = v.all.iter().map(|(id, _)| *id as u64).max().unwrap_or(0);
        (
            file.clone(),
            bytes,
            index.dimensions(),
            index.size(),
            max_key,
        )
    };
    let t0 = std::time::Instant::now();
    match file.save_bytes(&bytes, dimensions, size, max_key) {
        Ok(()) => {
            tracing::info!(
                vectors = size,
                bytes = bytes.len(),
                secs = t0.elapsed().as_secs_f64(),
                file = %file.path().display(),
                "vector index saved"
            );
            true
        }
        Err(e) => {
            // Unsaved changes are redone from the database at the next
            // load; the next periodic save tries again.
            read(lock).unsaved.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{e}");
            false
        }
    }
}
