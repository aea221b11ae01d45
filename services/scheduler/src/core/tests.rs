use super::*;
use oi_ipc_schema::scheduler::{JobSpec, Missed, Overlap};

fn t(s: &str) -> Timestamp {
    format!("2026-12-01T{s}Z").parse().unwrap()
}

fn cfg() -> SchedulerConfig {
    SchedulerConfig {
        grace_secs: 10,
        catchup_window_secs: 3 * 3600,
        max_catchup_runs: 3,
        max_rows_per_catchup: 100,
        run_timeout_secs: 60,
        max_consecutive_failures: 3,
        delivery_max_age_secs: 60,
        max_jobs: 100,
        history_per_job: 1000,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn open(&self) -> (Core, Recovered) {
        Core::open(&self.dir.path().join("scheduler.db"), cfg(), "UTC".into()).unwrap()
    }
}

fn spec(schedule: &str) -> JobSpec {
    JobSpec {
        schedule: schedule.into(),
        zone: "UTC".into(),
        intent: "check the weather".into(),
        ..JobSpec::default()
    }
}

fn starts(actions: &[Action]) -> Vec<i64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Start(o) => Some(o.run),
            _ => None,
        })
        .collect()
}

/// (slot time, status, trigger, reason) of a job's rows, oldest first.
fn rows(core: &Core, job: i64) -> Vec<(String, String, String, String)> {
    let mut h = core.history(Some(job), 1000).unwrap();
    h.reverse();
    h.into_iter()
        .map(|r| {
            (
                ts(r.slot_ms).strftime("%H:%M").to_string(),
                r.status,
                r.trigger,
                r.reason,
            )
        })
        .collect()
}

fn status(core: &Core, job: i64) -> Vec<String> {
    rows(core, job).into_iter().map(|r| r.1).collect()
}

fn ran(answer: &str) -> Outcome {
    Outcome {
        status: Status::Ran,
        reason: String::new(),
        duration_ms: 5,
        tokens: 3,
        model: "fake (m)".into(),
        answer: answer.into(),
    }
}

#[test]
fn an_on_time_slot_runs_once_with_the_jobs_intent_and_chat() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let job = core
        .add(&spec("0 * * * *"), "oictl", t("09:30:00"))
        .unwrap();
    assert_eq!(job.next_utc, "2026-12-01T10:00:00Z");
    assert_eq!(core.next_wake(), Some(t("10:00:00")));
    assert!(core.wake(t("09:59:59"), Why::Timer).is_empty());
    let a = core.wake(t("10:00:00.004"), Why::Timer);
    let [Action::Start(order)] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(order.request.chat, format!("cron:{}", job.id));
    assert_eq!(order.request.text, "check the weather");
    assert_eq!(order.request.id, intent_id(order.run));
    assert!(order.request.history);
    assert_eq!(order.timeout, Duration::from_secs(60));
    // A second wake-up at the same time does not fire it again.
    assert!(core.wake(t("10:00:01"), Why::Timer).is_empty());
    core.finished(job.id, order.run, &ran("sunny"), t("10:00:03"))
        .unwrap();
    let r = rows(&core, job.id);
    assert_eq!(
        r,
        [(
            "10:00".into(),
            "ran".into(),
            "schedule".into(),
            String::new()
        )]
    );
    let info = core.info(job.id).unwrap();
    assert_eq!(info.next_utc, "2026-12-01T11:00:00Z");
    let last = info.last.unwrap();
    assert_eq!((last.excerpt.as_str(), last.tokens), ("sunny", 3));
}

#[test]
fn each_missed_policy_after_the_scheduler_was_down() {
    // Down from 09:30 to 13:10: the 10, 11, 12 and 13 o'clock slots passed.
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let mut ids = Vec::new();
    for missed in [Missed::Skip, Missed::RunOnce, Missed::RunAll] {
        let s = JobSpec {
            missed,
            ..spec("0 * * * *")
        };
        ids.push(core.add(&s, "oictl", t("09:30:00")).unwrap().id);
    }
    drop(core);
    let (mut core, _) = f.open();
    let a = core.wake(t("13:10:00"), Why::Start);
    let down = "the scheduler was not running";
    let missed = |h: &str| {
        (
            h.to_string(),
            "missed".to_string(),
            "schedule".to_string(),
            down.to_string(),
        )
    };
    let running = |h: &str| {
        (
            h.to_string(),
            "running".to_string(),
            "catch-up".to_string(),
            String::new(),
        )
    };
    let queued = |h: &str| {
        (
            h.to_string(),
            "queued".to_string(),
            "catch-up".to_string(),
            String::new(),
        )
    };
    assert_eq!(
        rows(&core, ids[0]),
        [
            missed("10:00"),
            missed("11:00"),
            missed("12:00"),
            missed("13:00")
        ]
    );
    assert_eq!(
        rows(&core, ids[1]),
        [
            missed("10:00"),
            missed("11:00"),
            missed("12:00"),
            running("13:00")
        ]
    );
    // run_all: bounded at 3, one after another.
    assert_eq!(
        rows(&core, ids[2]),
        [
            running("10:00"),
            queued("11:00"),
            queued("12:00"),
            missed("13:00")
        ]
    );
    assert_eq!(starts(&a).len(), 2, "{a:?}");
    // The queued catch-up runs start as each ends.
    let first = starts(&a)[1];
    let next = core
        .finished(ids[2], first, &ran("a"), t("13:11:00"))
        .unwrap();
    assert_eq!(starts(&next).len(), 1);
    for id in &ids {
        assert_eq!(core.info(*id).unwrap().next_utc, "2026-12-01T14:00:00Z");
    }
}

#[test]
fn run_once_catches_up_only_within_its_window() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let s = JobSpec {
        missed: Missed::RunOnce,
        ..spec("0 6 * * *")
    };
    let id = core.add(&s, "oictl", t("05:00:00")).unwrap().id;
    drop(core);
    // Back at 09:30: 06:00 is 3.5 h old, past the 3 h window.
    let (mut core, _) = f.open();
    assert!(starts(&core.wake(t("09:30:00"), Why::Start)).is_empty());
    assert_eq!(rows(&core, id)[0].1, "missed");
}

#[test]
fn each_overlap_policy_when_a_slot_comes_due_during_a_run() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let mut ids = Vec::new();
    for overlap in [Overlap::Skip, Overlap::Queue, Overlap::CancelPrevious] {
        let s = JobSpec {
            overlap,
            ..spec("every 1m")
        };
        ids.push(core.add(&s, "oictl", t("10:00:00")).unwrap().id);
    }
    let first = starts(&core.wake(t("10:01:00"), Why::Timer));
    assert_eq!(first.len(), 3);
    // 10:02 comes due while all three still run; then 10:03.
    let a = core.wake(t("10:02:00"), Why::Timer);
    let b = core.wake(t("10:03:00"), Why::Timer);
    assert_eq!(status(&core, ids[0]), ["running", "missed", "missed"]);
    assert!(rows(&core, ids[0])[1].3.contains("overlap = skip"));
    assert_eq!(status(&core, ids[1]), ["running", "queued", "missed"]);
    assert!(rows(&core, ids[1])[2].3.contains("already waited"));
    // cancel_previous: each new slot cancels the run before it.
    let cancels: Vec<i64> = a
        .iter()
        .chain(&b)
        .filter_map(|x| match x {
            Action::Cancel { run, .. } => Some(*run),
            _ => None,
        })
        .collect();
    assert_eq!(cancels.len(), 2);
    assert_eq!(cancels[0], first[2]);
    for (run, at) in [(first[2], "10:02:00"), (cancels[1], "10:03:00")] {
        core.finished(
            ids[2],
            run,
            &Outcome::cancelled(overlap::REPLACED, 1),
            t(at),
        )
        .unwrap();
    }
    assert_eq!(status(&core, ids[2]), ["cancelled", "cancelled", "running"]);
    // The queue: when the first run ends, the waiting slot starts.
    let next = core
        .finished(ids[1], first[1], &ran("x"), t("10:03:30"))
        .unwrap();
    assert_eq!(starts(&next).len(), 1);
    assert_eq!(status(&core, ids[1]), ["ran", "running", "missed"]);
}

#[test]
fn a_clock_jump_forward_records_the_slots_it_skipped_and_one_back_fires_nothing_twice() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let id = core
        .add(&spec("*/15 * * * *"), "oictl", t("10:00:00"))
        .unwrap()
        .id;
    let a = core.wake(t("10:15:00"), Why::Timer);
    core.finished(id, starts(&a)[0], &ran("x"), t("10:15:01"))
        .unwrap();
    // Suspended from 10:20 to 11:20.
    let skew = SignedDuration::from_hours(1);
    let a = core.wake(t("11:20:00"), Why::ClockJump(skew));
    assert!(starts(&a).is_empty(), "missed = skip: nothing runs");
    let r = rows(&core, id);
    let skipped: Vec<&str> = r[1..].iter().map(|r| r.0.as_str()).collect();
    assert_eq!(skipped, ["10:30", "10:45", "11:00", "11:15"]);
    assert!(
        r[1..]
            .iter()
            .all(|r| r.1 == "missed" && r.3.contains("jumped ahead by 1h")),
        "{r:?}"
    );
    assert_eq!(core.next_wake(), Some(t("11:30:00")));
    // Set back to 10:50: 11:00 and 11:15 have rows and do not fire again.
    let back = core.wake(
        t("10:50:00"),
        Why::ClockJump(SignedDuration::from_mins(-30)),
    );
    assert!(back.is_empty());
    assert!(core.wake(t("11:15:00"), Why::Timer).is_empty());
    assert_eq!(rows(&core, id).len(), 5);
    let a = core.wake(t("11:30:00"), Why::Timer);
    assert_eq!(starts(&a).len(), 1);
}

#[test]
fn a_job_failing_again_and_again_is_disabled_with_a_notice_to_its_targets() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let s = JobSpec {
        deliver: vec!["telegram:7".into()],
        ..spec("every 1m")
    };
    let id = core.add(&s, "oictl", t("10:00:00")).unwrap().id;
    let mut notices = Vec::new();
    for m in 1..=3 {
        let now = t(&format!("10:0{m}:00"));
        let run = starts(&core.wake(now, Why::Timer))[0];
        let out = core
            .finished(id, run, &Outcome::failed("no model could answer", 10), now)
            .unwrap();
        for a in out {
            if let Action::Deliver(d) = a {
                notices.push(d);
            }
        }
    }
    // The first failure and the disabling are said; the one between is not.
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(notices[0].text.contains("failed: no model could answer"));
    assert_eq!(notices[1].target, "telegram:7");
    assert!(
        notices[1]
            .text
            .contains("was disabled: it failed 3 times in a row")
            && notices[1].text.contains("`oictl cron enable"),
        "{}",
        notices[1].text
    );
    let info = core.info(id).unwrap();
    assert!(!info.enabled && info.disabled_reason.contains("no model could answer"));
    assert_eq!(info.next_ms, 0);
    for d in &notices {
        core.delivered(d.id, &Delivered::Yes, t("10:03:01"))
            .unwrap();
    }
    assert_eq!(
        core.next_wake(),
        None,
        "nothing is armed for a disabled job"
    );
    // Enabled at 10:10: the slots while it was off are missed, and it
    // runs from the next one with its failures reset.
    let info = core.enable(id, t("10:10:30")).unwrap();
    assert_eq!((info.enabled, info.consecutive_failures), (true, 0));
    assert_eq!(info.next_utc, "2026-12-01T10:11:00Z");
    let off: Vec<_> = rows(&core, id)
        .into_iter()
        .filter(|r| r.3 == "the job was disabled")
        .collect();
    assert_eq!(off.len(), 7, "10:04 to 10:10");
    // A success resets the count.
    let run = starts(&core.wake(t("10:11:00"), Why::Timer))[0];
    let out = core
        .finished(id, run, &ran("**sunny**"), t("10:11:02"))
        .unwrap();
    let [Action::Deliver(d)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert!(
        d.text.starts_with("**check the weather**\n\n**sunny**"),
        "{}",
        d.text
    );
}

#[test]
fn a_delivery_is_retried_with_backoff_until_it_is_too_old() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let s = JobSpec {
        deliver: vec!["telegram:7".into(), "telegram:8".into()],
        ..spec("every 1h")
    };
    let id = core.add(&s, "oictl", t("10:00:00")).unwrap().id;
    let run = starts(&core.wake(t("11:00:00"), Why::Timer))[0];
    let out = core.finished(id, run, &ran("hi"), t("11:00:01")).unwrap();
    let ds: Vec<DeliveryRow> = out
        .into_iter()
        .filter_map(|a| match a {
            Action::Deliver(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(ds.len(), 2);
    core.delivered(
        ds[1].id,
        &Delivered::Never("chat 8 is not allowed".into()),
        t("11:00:01"),
    )
    .unwrap();
    let mut now = t("11:00:01");
    let mut waits = Vec::new();
    loop {
        core.delivered(
            ds[0].id,
            &Delivered::NotYet("the gateway is down".into()),
            now,
        )
        .unwrap();
        let Some(next) = core.next_wake().filter(|n| *n < t("12:00:00")) else {
            break;
        };
        waits.push(next.duration_since(now).as_secs());
        now = next;
        let a = core.wake(now, Why::Timer);
        assert!(
            matches!(a.as_slice(), [Action::Deliver(d)] if d.id == ds[0].id),
            "{a:?}"
        );
    }
    assert_eq!(
        waits,
        [1, 2, 4, 8, 16, 32],
        "1 s doubling, until the 60 s age"
    );
    let h = core.history(Some(id), 1).unwrap();
    let delivery = &h[0].delivery;
    assert!(
        delivery[0].starts_with("telegram:7 not delivered: gave up after 7 attempts over 63 s"),
        "{delivery:?}"
    );
    assert_eq!(
        delivery[1],
        "telegram:8 not delivered: chat 8 is not allowed"
    );
}

#[test]
fn pending_deliveries_and_a_crash_mid_run_survive_a_restart() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let s = JobSpec {
        deliver: vec!["telegram:7".into()],
        ..spec("every 1m")
    };
    let id = core.add(&s, "oictl", t("10:00:00")).unwrap().id;
    let run = starts(&core.wake(t("10:01:00"), Why::Timer))[0];
    core.finished(id, run, &ran("hi"), t("10:01:01")).unwrap();
    let run2 = starts(&core.wake(t("10:02:00"), Why::Timer))[0];
    assert_ne!(run, run2);
    drop(core);
    let (mut core, recovered) = f.open();
    assert_eq!(recovered.interrupted, 1);
    let a = core.wake(t("10:02:30"), Why::Start);
    assert!(
        matches!(a.as_slice(), [Action::Deliver(d)] if d.text.contains("hi")),
        "{a:?}"
    );
    let r = rows(&core, id);
    assert_eq!((r[1].0.as_str(), r[1].1.as_str()), ("10:02", "interrupted"));
    assert_eq!(
        core.next_wake(),
        Some(t("10:03:00")),
        "10:02 is not run again"
    );
}

#[test]
fn a_manual_run_is_recorded_as_such_and_refused_while_the_job_runs() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let id = core
        .add(&spec("0 0 1 1 *"), "oictl", t("10:00:00"))
        .unwrap()
        .id;
    let (info, a) = core.run_now(id, t("10:05:00")).unwrap();
    assert_eq!(
        (info.trigger.as_str(), info.status.as_str()),
        ("manual", "running")
    );
    assert_eq!(starts(&a), [info.id]);
    let e = core.run_now(id, t("10:05:01")).unwrap_err();
    assert!(e.to_string().contains("is running"), "{e}");
    assert_eq!(
        core.info(id).unwrap().next_utc,
        "2027-01-01T00:00:00Z",
        "the schedule is untouched"
    );
    assert!(matches!(
        core.run_now(99, t("10:06:00")),
        Err(CoreError::Store(StoreError::NoJob(99)))
    ));
}

#[test]
fn a_tool_sees_and_removes_only_the_jobs_of_its_own_chat() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    let mine = core
        .add(&spec("@daily"), "telegram:7", t("10:00:00"))
        .unwrap()
        .id;
    let theirs = core
        .add(&spec("@daily"), "oictl", t("10:00:00"))
        .unwrap()
        .id;
    let listed: Vec<i64> = core
        .list(Some("telegram:7"))
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [mine]);
    assert_eq!(core.list(None).unwrap().len(), 2);
    assert!(matches!(
        core.check_origin(theirs, Some("telegram:7")),
        Err(CoreError::NotYours(_))
    ));
    assert!(core.check_origin(theirs, None).is_ok());
}

#[test]
fn too_many_jobs_and_a_bad_spec_change_nothing() {
    let f = Fixture::new();
    let (mut core, _) = f.open();
    core.set_config(SchedulerConfig {
        max_jobs: 1,
        ..cfg()
    });
    core.add(&spec("@daily"), "oictl", t("10:00:00")).unwrap();
    let e = core
        .add(&spec("@hourly"), "oictl", t("10:00:00"))
        .unwrap_err();
    assert!(
        e.to_string().contains("limit ([scheduler] max_jobs)"),
        "{e}"
    );
    core.set_config(cfg());
    assert!(core.add(&spec("every 0s"), "oictl", t("10:00:00")).is_err());
    assert_eq!(core.list(None).unwrap().len(), 1);
}
