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
        "alpha", "bravo", "coffee", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
        "kilo", "lima",
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
