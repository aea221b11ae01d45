//! The provider's vector spaces: which is in use, its vectors, the
//! facts still missing one, and dropping the others.

use super::*;

impl Store {
    // ---- provider vector spaces ----

    /// The provider vector space in use, if any.
    pub fn space(&self) -> Option<String> {
        self.space_vectors().map(|p| p.space.clone())
    }

    pub(super) fn space_vectors(&self) -> Option<Arc<SpaceVectors>> {
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

    pub(super) fn load_space(&self, space: &str) -> Result<(), MemoryError> {
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

    pub(super) fn provider_count(&self) -> usize {
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

    pub(super) fn add_provider_vectors(&self, space: &str, rows: Vec<(i64, Vec<f32>)>) {
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

    pub(super) fn reader(&self) -> MutexGuard<'_, Connection> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        lock(&self.readers[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_store as store;

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
}
