use super::*;
use proptest::prelude::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn rules(missed: Missed) -> Rules {
    Rules {
        missed,
        grace: SignedDuration::from_secs(30),
        catchup_window: SignedDuration::from_hours(2),
        max_runs: 3,
        max_slots: 100,
    }
}

fn hourly() -> Schedule {
    Schedule::parse("0 * * * *", Some("UTC"), ts("2026-12-01T00:00:00Z")).unwrap()
}

#[test]
fn an_on_time_slot_runs_and_the_next_is_the_following_one() {
    let d = decide(
        &hourly(),
        ts("2026-12-01T00:00:00Z"),
        ts("2026-12-01T09:00:00Z"),
        ts("2026-12-01T10:00:02Z"),
        &rules(Missed::Skip),
    );
    assert_eq!(d.run, [ts("2026-12-01T10:00:00Z")]);
    assert!(d.missed.is_empty());
    assert_eq!(d.next, Some(ts("2026-12-01T11:00:00Z")));
}

#[test]
fn each_missed_policy_after_the_daemon_was_down() {
    // Down from 09:30 to 13:10: the 10, 11, 12 and 13 o'clock slots passed.
    let (anchor, after, now) = (
        ts("2026-12-01T00:00:00Z"),
        ts("2026-12-01T09:00:00Z"),
        ts("2026-12-01T13:10:00Z"),
    );
    let at = |h: &str| ts(&format!("2026-12-01T{h}:00:00Z"));
    let skip = decide(&hourly(), anchor, after, now, &rules(Missed::Skip));
    assert!(skip.run.is_empty());
    assert_eq!(skip.missed, [at("10"), at("11"), at("12"), at("13")]);
    let once = decide(&hourly(), anchor, after, now, &rules(Missed::RunOnce));
    assert_eq!(once.run, [at("13")]);
    assert_eq!(once.missed, [at("10"), at("11"), at("12")]);
    let all = decide(&hourly(), anchor, after, now, &rules(Missed::RunAll));
    assert_eq!(all.run, [at("10"), at("11"), at("12")], "bounded at 3");
    assert_eq!(all.missed, [at("13")]);
    for d in [&skip, &once, &all] {
        assert_eq!(d.next, Some(at("14")));
    }
    // RunOnce only within its window: the latest slot (13:00) is 40 min
    // old, past a 30 min window: nothing is caught up.
    let narrow = Rules {
        catchup_window: SignedDuration::from_mins(30),
        ..rules(Missed::RunOnce)
    };
    let late = decide(
        &hourly(),
        anchor,
        after,
        ts("2026-12-02T13:40:00Z"),
        &narrow,
    );
    assert!(late.run.is_empty());
    assert_eq!(late.missed.len(), 28);
}

#[test]
fn a_clock_that_jumps_back_decides_nothing_twice_and_one_that_jumps_ahead_records_the_gap() {
    let anchor = ts("2026-12-01T00:00:00Z");
    let after = ts("2026-12-01T10:00:00Z");
    // Back to 08:00: no slot after the last recorded one has come.
    let back = decide(
        &hourly(),
        anchor,
        after,
        ts("2026-12-01T08:00:00Z"),
        &rules(Missed::Skip),
    );
    assert_eq!(
        back,
        Decision {
            next: Some(ts("2026-12-01T11:00:00Z")),
            ..Decision::default()
        }
    );
    // Ahead by six hours: each slot in between has its row.
    let ahead = decide(
        &hourly(),
        anchor,
        after,
        ts("2026-12-01T16:00:01Z"),
        &rules(Missed::Skip),
    );
    assert_eq!(ahead.missed.len(), 5);
    assert_eq!(ahead.run, [ts("2026-12-01T16:00:00Z")]);
}

#[test]
fn a_long_outage_of_a_fast_job_is_counted_not_walked() {
    let anchor = ts("2026-01-01T00:00:00Z");
    let every = Schedule::parse("every 1s", None, anchor).unwrap();
    // A year down at one slot a second: 31.5 million slots.
    let now = ts("2027-01-01T00:00:00Z");
    let d = decide(&every, anchor, anchor, now, &rules(Missed::Skip));
    let (counted, last) = d.missed_more.unwrap();
    assert_eq!(
        counted + d.missed.len() as u64 + d.run.len() as u64,
        365 * 86_400
    );
    assert_eq!(d.missed.len() + d.run.len(), 100);
    assert_eq!(last, now - SignedDuration::from_secs(100));
    assert_eq!(d.run, [now]);
}

proptest! {
    /// Every slot in (after, now] gets exactly one outcome, none outside it;
    /// at most one on-time run; `next` is after `now`.
    #[test]
    fn every_slot_gets_exactly_one_outcome(
        every_s in 1i64..5_000,
        after_s in 0i64..200_000,
        gap_s in 0i64..400_000,
        policy in 0u8..3,
    ) {
        let anchor = ts("2026-12-01T00:00:00Z");
        let every = Schedule::Every(SignedDuration::from_secs(every_s));
        let after = anchor + SignedDuration::from_secs(after_s);
        let now = after + SignedDuration::from_secs(gap_s);
        let policy = [Missed::Skip, Missed::RunOnce, Missed::RunAll][policy as usize];
        let d = decide(&every, anchor, after, now, &rules(policy));
        let mut all: Vec<Timestamp> = d.run.iter().chain(&d.missed).copied().collect();
        all.sort();
        let mut expected = Vec::new();
        let mut t = after;
        while let Some(s) = every.next_after(t, anchor).filter(|s| *s <= now) {
            expected.push(s);
            t = s;
        }
        let counted = d.missed_more.map_or(0, |(n, _)| n) as usize;
        prop_assert_eq!(all.len() + counted, expected.len());
        prop_assert_eq!(&all[..], &expected[counted..]);
        // At most `max_runs` catch-ups, and the on-time slot.
        prop_assert!(d.run.len() <= 4);
        if policy == Missed::Skip {
            prop_assert!(d.run.len() <= 1);
        }
        prop_assert!(d.next.is_none_or(|n| n > now));
    }
}
