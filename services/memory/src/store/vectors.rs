//! The vectors of one embedding space and their HNSW index: scanned
//! exactly while there are few, searched through a usearch index from
//! [`ANN_THRESHOLD`] on, the index built off the lock.

use std::sync::{Arc, RwLock};

use crate::embed;

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
}

enum Change {
    Add(i64, Arc<[f32]>),
    Remove(i64),
}

impl Vectors {
    pub(super) fn new(dim: usize, all: Vec<(i64, Arc<[f32]>)>) -> Vectors {
        Vectors {
            dim,
            all,
            ann: None,
            building: None,
            failed: false,
        }
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
/// filled without it, and the changes made meanwhile are replayed before
/// it is swapped in. Returns whether an index was built.
pub(super) fn build_index(lock: &RwLock<Vectors>) -> bool {
    let (dim, snapshot) = {
        let mut v = write(lock);
        if !v.needs_index() {
            return false;
        }
        v.building = Some(Vec::new());
        (v.dim, v.all.clone())
    };
    let t0 = std::time::Instant::now();
    let built = Vectors::new_index(dim, snapshot.len()).filter(|index| {
        snapshot
            .iter()
            .all(|(id, v)| Vectors::index_add(index, *id, v))
    });
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
    tracing::info!(
        vectors = index.size(),
        dimensions = dim,
        secs = t0.elapsed().as_secs_f64(),
        "vector index built"
    );
    v.ann = Some(index);
    true
}
