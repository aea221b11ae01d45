//! Semantic memory: saved facts, their embeddings and the hot cache, and
//! hybrid search (BM25 fused with embedding similarity).

use super::*;

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
pub(super) fn fts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{}\"", w.to_lowercase()))
        .collect();
    (!words.is_empty()).then(|| words.join(" OR "))
}

impl Store {
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
