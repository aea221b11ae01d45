use super::*;

fn job(schedule: &str, created_ms: i64) -> NewJob {
    NewJob {
        name: "weather".into(),
        schedule: schedule.into(),
        intent: "check the weather".into(),
        overlap: "skip".into(),
        missed: "skip".into(),
        created_ms,
        ..NewJob::default()
    }
}

fn row(slot_ms: i64, status: Status, reason: &str) -> NewRow {
    NewRow {
        slot_ms,
        trigger: "schedule",
        status,
        reason: reason.into(),
    }
}

#[test]
fn a_run_cut_short_by_a_crash_is_interrupted_and_its_slot_never_gets_a_second_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    let (store, _) = Store::open(&path).unwrap();
    let id = store.add(&job("every 1h", 0)).unwrap();
    assert_eq!(store.job(id).unwrap().chat, format!("cron:{id}"));
    // 01:00 is due: its row is written before the intent starts...
    store
        .record(id, &[row(3_600_000, Status::Running, "")], 3_600_100)
        .unwrap();
    // ...and a slot waits behind it (overlap = queue).
    store
        .record(id, &[row(7_200_000, Status::Queued, "")], 7_200_100)
        .unwrap();
    // The scheduler dies.
    drop(store);
    let (store, recovered) = Store::open(&path).unwrap();
    assert_eq!(
        recovered,
        Recovered {
            interrupted: 1,
            queued: 1
        }
    );
    let h = store.history(Some(id), 10).unwrap();
    let seen: Vec<(&str, i64)> = h.iter().map(|r| (r.status.as_str(), r.slot_ms)).collect();
    assert_eq!(seen, [("missed", 7_200_000), ("interrupted", 3_600_000)]);
    assert!(h[0].reason.contains("waited for the previous run"), "{h:?}");
    assert_eq!(store.job(id).unwrap().last_slot_ms, 7_200_000);
    // A slot can never get two rows; a manual run at the same instant can.
    assert!(
        store
            .record(id, &[row(3_600_000, Status::Running, "")], 1)
            .is_err()
    );
    let manual = NewRow {
        trigger: "manual",
        ..row(3_600_000, Status::Running, "")
    };
    store.record(id, &[manual], 8_000_000).unwrap();
    assert_eq!(
        store.job(id).unwrap().last_slot_ms,
        7_200_000,
        "a manual run is no slot"
    );
}

#[test]
fn rows_runs_and_deliveries_survive_a_restart_and_go_with_their_job() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    let (store, _) = Store::open(&path).unwrap();
    let id = store
        .add(&NewJob {
            chat: "telegram:7".into(),
            deliver: vec!["telegram:7".into(), "telegram:8".into()],
            ..job("0 * * * *", 0)
        })
        .unwrap();
    let ids = store
        .record(
            id,
            &[
                row(3_600_000, Status::Missed, "the scheduler was not running"),
                row(7_200_000, Status::Running, ""),
            ],
            7_200_500,
        )
        .unwrap();
    store
        .finish(
            ids[1],
            &Finish {
                status: Status::Ran,
                reason: String::new(),
                duration_ms: 1200,
                tokens: 42,
                model: "m".into(),
                excerpt: "sunny".into(),
            },
        )
        .unwrap();
    let d = store
        .add_deliveries(ids[1], &store.job(id).unwrap().deliver, "sunny", 7_201_700)
        .unwrap();
    store
        .delivery_attempt(d[0].id, "delivered", "", 7_201_800)
        .unwrap();
    store
        .delivery_attempt(d[1].id, "pending", "telegram is down", 7_203_800)
        .unwrap();
    drop(store);
    let (store, recovered) = Store::open(&path).unwrap();
    assert_eq!(recovered, Recovered::default());
    let h = store.history(Some(id), 10).unwrap();
    assert_eq!(
        (
            h[0].status.as_str(),
            h[0].tokens,
            h[0].excerpt.as_str(),
            h[0].duration_ms
        ),
        ("ran", 42, "sunny", 1200)
    );
    assert_eq!(h[1].status, "missed");
    let states: Vec<(&str, &str, u32)> = h[0]
        .deliveries
        .iter()
        .map(|d| (d.status.as_str(), d.text.as_str(), d.attempts))
        .collect();
    assert_eq!(
        states,
        [("delivered", "", 1), ("pending", "sunny", 1)],
        "the text is kept only while it is pending"
    );
    let pending = store.pending_deliveries().unwrap();
    assert_eq!(
        (
            pending.len(),
            pending[0].next_ms,
            pending[0].target.as_str()
        ),
        (1, 7_203_800, "telegram:8")
    );
    assert_eq!(store.job(id).unwrap().deliver, ["telegram:7", "telegram:8"]);
    store.remove(id).unwrap();
    assert!(store.history(Some(id), 10).unwrap().is_empty());
    assert!(store.pending_deliveries().unwrap().is_empty());
    assert!(matches!(store.remove(id), Err(StoreError::NoJob(_))));
    assert!(matches!(
        store.record(id, &[row(1, Status::Missed, "")], 1),
        Err(StoreError::NoJob(_))
    ));
}

#[test]
fn enabling_resets_failures_and_pruning_keeps_the_newest_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(&dir.path().join("s.db")).unwrap();
    let id = store.add(&job("every 1s", 0)).unwrap();
    store.set_failures(id, 5).unwrap();
    store
        .set_enabled(id, false, "failed 5 times in a row")
        .unwrap();
    let j = store.job(id).unwrap();
    assert_eq!(
        (j.enabled, j.failures, j.disabled_reason.as_str()),
        (false, 5, "failed 5 times in a row")
    );
    store.set_enabled(id, true, "").unwrap();
    let j = store.job(id).unwrap();
    assert_eq!((j.enabled, j.failures), (true, 0));
    let rows: Vec<NewRow> = (1..=10)
        .map(|s| row(s * 1000, Status::Missed, "x"))
        .collect();
    store.record(id, &rows, 10_000).unwrap();
    assert_eq!(store.prune(id, 3).unwrap(), 7);
    let left: Vec<i64> = store
        .history(Some(id), 10)
        .unwrap()
        .iter()
        .map(|r| r.slot_ms)
        .collect();
    assert_eq!(left, [10_000, 9_000, 8_000]);
    assert_eq!(store.last_rows().unwrap()[0].slot_ms, 10_000);
    assert!(matches!(
        store.set_enabled(99, true, ""),
        Err(StoreError::NoJob(99))
    ));
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler.db");
    Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let e = Store::open(&path).err().unwrap();
    assert!(
        e.to_string().contains("schema 99, this build knows 1"),
        "{e}"
    );
}
