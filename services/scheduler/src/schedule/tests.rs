use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn cron_in(expr: &str, zone: &str) -> Schedule {
    Schedule::parse(expr, Some(zone), ts("2026-01-01T00:00:00Z")).unwrap()
}

/// The next `n` slots after `from`, as RFC 3339 in the schedule's zone.
fn slots(s: &Schedule, from: &str, n: usize) -> Vec<String> {
    let Schedule::Cron { tz, .. } = s else {
        panic!("not a cron schedule")
    };
    let mut t = ts(from);
    (0..n)
        .map(|_| {
            t = s.next_after(t, t).unwrap();
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M%:z")
                .to_string()
        })
        .collect()
}

#[test]
fn a_daily_job_in_the_spring_gap_runs_after_it_and_in_the_fall_repeat_once() {
    let berlin = cron_in("30 2 * * *", "Europe/Berlin");
    // 2027-03-28: 02:00 jumps to 03:00; 02:30 does not exist.
    assert_eq!(
        slots(&berlin, "2027-03-27T00:00:00Z", 3),
        [
            "2027-03-27T02:30+01:00",
            "2027-03-28T03:00+02:00",
            "2027-03-29T02:30+02:00"
        ]
    );
    // 2026-10-25: 03:00 falls back to 02:00; 02:30 happens twice, runs once.
    assert_eq!(
        slots(&berlin, "2026-10-24T00:00:00Z", 3),
        [
            "2026-10-24T02:30+02:00",
            "2026-10-25T02:30+02:00",
            "2026-10-26T02:30+01:00"
        ]
    );
    let ny = cron_in("30 2 * * *", "America/New_York");
    // 2027-03-14: 02:00 jumps to 03:00.
    assert_eq!(
        slots(&ny, "2027-03-13T12:00:00Z", 2),
        ["2027-03-14T03:00-04:00", "2027-03-15T02:30-04:00"]
    );
    let ny_fall = cron_in("30 1 * * *", "America/New_York");
    // 2026-11-01: 02:00 falls back to 01:00; 01:30 happens twice, runs once.
    assert_eq!(
        slots(&ny_fall, "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"]
    );
}

#[test]
fn an_interval_job_runs_in_both_repeated_hours_and_skips_the_missing_one() {
    let fall = cron_in("*/15 2 * * *", "Europe/Berlin");
    assert_eq!(
        slots(&fall, "2026-10-24T23:00:00Z", 8),
        [
            "2026-10-25T02:00+02:00",
            "2026-10-25T02:15+02:00",
            "2026-10-25T02:30+02:00",
            "2026-10-25T02:45+02:00",
            "2026-10-25T02:00+01:00",
            "2026-10-25T02:15+01:00",
            "2026-10-25T02:30+01:00",
            "2026-10-25T02:45+01:00",
        ]
    );
    let ny_fall = cron_in("*/30 1 * * *", "America/New_York");
    assert_eq!(
        slots(&ny_fall, "2026-11-01T04:00:00Z", 4),
        [
            "2026-11-01T01:00-04:00",
            "2026-11-01T01:30-04:00",
            "2026-11-01T01:00-05:00",
            "2026-11-01T01:30-05:00",
        ]
    );
}

#[test]
fn last_weekday_nth_and_leap_day_expressions() {
    let from = "2026-12-01T00:00:00Z";
    assert_eq!(
        slots(&cron_in("0 12 L * *", "UTC"), from, 1),
        ["2026-12-31T12:00+00:00"]
    );
    assert_eq!(
        slots(&cron_in("0 9 * * MON#2", "UTC"), from, 1),
        ["2026-12-14T09:00+00:00"]
    );
    // 2027-05-15 is a Saturday: the nearest weekday is Friday the 14th.
    assert_eq!(
        slots(&cron_in("0 9 15W * *", "UTC"), "2027-05-01T00:00:00Z", 1),
        ["2027-05-14T09:00+00:00"]
    );
    assert_eq!(
        slots(&cron_in("0 0 29 2 *", "UTC"), from, 1),
        ["2028-02-29T00:00+00:00"]
    );
    assert_eq!(
        slots(&cron_in("@daily", "UTC"), "2026-12-01T10:00:00Z", 1),
        ["2026-12-02T00:00+00:00"]
    );
    // Six fields: seconds first.
    assert_eq!(
        slots(&cron_in("30 0 9 * * *", "UTC"), from, 1),
        ["2026-12-01T09:00+00:00"]
    );
}

#[test]
fn what_cannot_work_is_refused_with_the_part_that_is_wrong() {
    let now = ts("2026-12-01T00:00:00Z");
    let e = Schedule::parse("0 0 31 2 *", Some("UTC"), now).unwrap_err();
    assert_eq!(
        e,
        ScheduleError::NeverFires {
            expr: "0 0 31 2 *".into()
        }
    );
    let e = Schedule::parse("0 25 * * *", Some("UTC"), now).unwrap_err();
    assert!(matches!(e, ScheduleError::Cron { .. }), "{e}");
    assert!(
        e.to_string().starts_with("cron expression `0 25 * * *`: "),
        "{e}"
    );
    let e = Schedule::parse("0 9 * * *", Some("Mars/Olympus"), now).unwrap_err();
    assert!(matches!(e, ScheduleError::TimeZone { .. }), "{e}");
    let e = Schedule::parse("every 500ms", None, now).unwrap_err();
    assert_eq!(
        e,
        ScheduleError::TooShort {
            text: "500ms".into()
        }
    );
    let e = Schedule::parse("every soon", None, now).unwrap_err();
    assert!(matches!(e, ScheduleError::Duration { .. }), "{e}");
    let e = Schedule::parse("every -5m", None, now).unwrap_err();
    assert!(e.to_string().contains("must be positive"), "{e}");
    let e = Schedule::parse("at 2026-11-30T09:00:00Z", None, now).unwrap_err();
    assert!(matches!(e, ScheduleError::Past { .. }), "{e}");
    let e = Schedule::parse("at tomorrow", None, now).unwrap_err();
    assert!(matches!(e, ScheduleError::At { .. }), "{e}");
    assert_eq!(
        Schedule::parse("  ", None, now).unwrap_err(),
        ScheduleError::Empty
    );
    // Seven fields (a year) are not ours.
    assert!(Schedule::parse("0 0 9 * * * 2027", Some("UTC"), now).is_err());
}

#[test]
fn every_counts_from_its_anchor_and_a_one_shot_runs_once() {
    let anchor = ts("2026-12-01T10:00:00Z");
    let every = Schedule::parse("every 1h30m", None, anchor).unwrap();
    assert_eq!(
        every.next_after(anchor, anchor),
        Some(ts("2026-12-01T11:30:00Z"))
    );
    // Asked late, the next slot is still on the anchor's grid.
    assert_eq!(
        every.next_after(ts("2026-12-01T14:10:00Z"), anchor),
        Some(ts("2026-12-01T14:30:00Z"))
    );
    // Before the anchor: the anchor.
    assert_eq!(
        every.next_after(ts("2026-12-01T09:00:00Z"), anchor),
        Some(anchor)
    );
    assert_eq!(
        Schedule::parse("every 2d", None, anchor)
            .unwrap()
            .next_after(anchor, anchor),
        Some(ts("2026-12-03T10:00:00Z"))
    );
    let once = Schedule::parse("in 10m", None, anchor).unwrap();
    let at = ts("2026-12-01T10:10:00Z");
    assert_eq!(once.next_after(anchor, anchor), Some(at));
    assert_eq!(once.next_after(at, anchor), None);
    let at2 = Schedule::parse("at 2026-12-24T09:00:00+01:00", None, anchor).unwrap();
    assert_eq!(
        at2.next_after(anchor, anchor),
        Some(ts("2026-12-24T08:00:00Z"))
    );
}

#[test]
fn schedules_are_described_in_words_with_their_zone() {
    let s = cron_in("0 9 * * 1-5", "Europe/Berlin");
    let d = s.describe();
    assert!(d.contains("09:00") && d.ends_with("(Europe/Berlin)"), "{d}");
    assert_eq!(s.zone(), Some("Europe/Berlin"));
    let now = ts("2026-12-01T10:00:00Z");
    assert_eq!(
        Schedule::parse("every 90m", None, now).unwrap().describe(),
        "every 1h 30m"
    );
}

#[test]
fn what_is_stored_parses_back_to_the_same_schedule_later() {
    let created = ts("2026-12-01T10:00:00Z");
    let later = ts("2026-12-01T11:00:00Z");
    for text in [
        "every 90m",
        "in 2h",
        "at 2026-12-24T09:00:00+01:00",
        "@daily",
    ] {
        let s = Schedule::parse(text, Some("Europe/Berlin"), created).unwrap();
        let back = Schedule::parse(&s.canonical(), s.zone(), later).unwrap();
        assert_eq!(
            back.next_after(later, created),
            s.next_after(later, created),
            "{text} stored as {}",
            s.canonical()
        );
    }
    assert_eq!(
        Schedule::parse("in 2h", None, created).unwrap().canonical(),
        "at 2026-12-01T12:00:00Z"
    );
    // Slots are whole milliseconds, as their rows keep them: a one-shot
    // whose row says it ran has no slot left.
    let fine = ts("2026-12-01T10:00:00.828288685Z");
    let once = Schedule::parse("in 2s", None, fine).unwrap();
    let slot = once.next_after(fine, fine).unwrap();
    assert_eq!(slot, ts("2026-12-01T10:00:02.828Z"));
    let row = Timestamp::from_millisecond(slot.as_millisecond()).unwrap();
    assert_eq!(once.next_after(row, fine), None);
}
