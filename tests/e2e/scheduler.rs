//! The scheduler end to end: the real daemon with the scheduler, agent,
//! llm-router and memory processes, a scripted fake model, and for
//! deliveries the fake Telegram Bot API. Times are real: `every 2s` jobs
//! and a daemon stopped for 7 s.

use std::time::Duration;

use oi_llm_router::fake::{FakeProvider, openai};
use oi_telegram::fake::FakeBotApi;
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "123456:AAE-scheduler-test-token";
const ME: i64 = 111;

/// The services a scheduled intent goes through, with `[scheduler]` keys.
fn cfg(llm: Option<&FakeProvider>, tg: Option<&FakeBotApi>, scheduler: &str) -> String {
    let mut on = vec!["memory", "agent", "scheduler"];
    let mut extra = String::new();
    if let Some(llm) = llm {
        on.push("llm-router");
        extra.push_str(&model("main", "openai", &llm.url("/v1"), "no_key = true"));
        extra.push_str("[cascade]\norder = [\"main\"]\n\n");
    }
    if let Some(tg) = tg {
        on.push("telegram");
        extra.push_str(&format!(
            "[telegram]\napi_base_url = \"{}\"\nallowed_chat_ids = [{ME}]\npoll_timeout_secs = 1\n\n",
            tg.url()
        ));
    }
    extra.push_str(&format!("[scheduler]\n{scheduler}\n"));
    config_enabling(&on, "", &extra)
}

fn start(config: &str, tg: bool) -> Daemon {
    let env: &[(&str, &str)] = if tg {
        &[("TELEGRAM_BOT_TOKEN", TOKEN)]
    } else {
        &[]
    };
    let d = Daemon::start_with(config, env);
    d.ready_pid("scheduler");
    d.ready_pid("agent");
    d
}

fn json_out(d: &Daemon, args: &[&str]) -> Value {
    let o = d.oictl(args);
    assert!(o.status.success(), "oictl {args:?}: {}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)))
}

/// `oictl cron add ... --json`: the job's id.
fn add(d: &Daemon, args: &[&str]) -> i64 {
    let mut all = vec!["cron", "add"];
    all.extend_from_slice(args);
    all.push("--json");
    json_out(d, &all)["id"].as_i64().unwrap()
}

/// A job's rows, oldest first.
fn history(d: &Daemon, id: i64) -> Vec<Value> {
    let mut h = json_out(
        d,
        &["cron", "history", &id.to_string(), "-n", "1000", "--json"],
    )
    .as_array()
    .unwrap()
    .clone();
    h.reverse();
    h
}

fn count(rows: &[Value], status: &str) -> usize {
    rows.iter().filter(|r| r["status"] == status).count()
}

#[test]
fn an_every_2s_job_fires_and_each_slot_gets_exactly_one_row() {
    let rt = fake_runtime();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    llm.set_default(openai::says("tick"));
    let d = start(&cfg(Some(&llm), None, "grace_secs = 1\n"), false);
    let id = add(&d, &["every 2s", "say tick", "--name", "ticker"]);
    let listed = d.oictl(&["cron", "list"]);
    let text = out(&listed);
    assert!(
        text.contains("ticker") && text.contains("every 2s") && text.contains("next: "),
        "{text}"
    );
    wait_for(Duration::from_secs(20), "4 runs", || {
        (count(&history(&d, id), "ran") >= 4).then_some(())
    });
    let rows = history(&d, id);
    let slots: Vec<i64> = rows
        .iter()
        .map(|r| r["slot_ms"].as_i64().unwrap())
        .collect();
    for w in slots.windows(2) {
        assert_eq!(
            w[1] - w[0],
            2000,
            "one row per slot, none skipped or doubled: {rows:?}"
        );
    }
    for r in rows.iter().filter(|r| r["status"] == "ran") {
        assert_eq!(r["excerpt"], "tick");
        assert_eq!(r["trigger"], "schedule");
        assert!(r["intent_id"].as_str().unwrap().starts_with("cron-"), "{r}");
        assert!(r["tokens"].as_u64().unwrap() > 0, "{r}");
    }
    // Each run was one intent: the model saw as many requests as rows ran
    // (the one running at this moment may have asked too).
    let ran = count(&history(&d, id), "ran");
    assert!(llm.request_count() >= ran && llm.request_count() <= ran + 2);
    // Its runs are a chat of their own, with history.
    let job = &json_out(&d, &["cron", "list", "--json"])[0];
    assert_eq!(job["chat"], format!("cron:{id}"));
}

#[test]
fn slots_missed_while_the_daemon_was_down_are_recorded_and_run_once_catches_up_one() {
    let rt = fake_runtime();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    llm.set_default(openai::says("ok"));
    let config = cfg(Some(&llm), None, "grace_secs = 1\n");
    let d = start(&config, false);
    let skip = add(&d, &["every 2s", "job a", "--missed", "skip"]);
    let once = add(&d, &["every 2s", "job b", "--missed", "run_once"]);
    wait_for(Duration::from_secs(20), "both ran", || {
        (count(&history(&d, skip), "ran") >= 1 && count(&history(&d, once), "ran") >= 1)
            .then_some(())
    });
    let before: Vec<usize> = [skip, once].iter().map(|j| history(&d, *j).len()).collect();
    let home = d.stop_keeping_home();
    std::thread::sleep(Duration::from_secs(7));
    let d = Daemon::start_in(home, &config, &[]);
    d.ready_pid("scheduler");
    // The jobs survived the restart, and go on.
    let jobs = json_out(&d, &["cron", "list", "--json"]);
    assert_eq!(jobs.as_array().unwrap().len(), 2);
    wait_for(Duration::from_secs(20), "runs after the restart", || {
        let a = history(&d, skip);
        let b = history(&d, once);
        (a[before[0]..]
            .iter()
            .any(|r| r["status"] == "ran" && r["trigger"] == "schedule")
            && b[before[1]..]
                .iter()
                .any(|r| r["status"] == "ran" && r["trigger"] == "schedule"))
        .then_some(())
    });
    for (job, n) in [(skip, before[0]), (once, before[1])] {
        let rows = history(&d, job);
        let down: Vec<&Value> = rows[n..]
            .iter()
            .filter(|r| r["reason"] == "the scheduler was not running")
            .collect();
        assert!(down.len() >= 2, "7 s down at 2 s a slot: {rows:#?}");
        let catchups = rows.iter().filter(|r| r["trigger"] == "catch-up").count();
        if job == skip {
            assert_eq!(catchups, 0, "skip never catches up: {rows:#?}");
        } else {
            assert_eq!(catchups, 1, "run_once runs exactly one: {rows:#?}");
        }
        // Still one row per slot: no gap, no double.
        let slots: Vec<i64> = rows
            .iter()
            .map(|r| r["slot_ms"].as_i64().unwrap())
            .collect();
        for w in slots.windows(2) {
            assert_eq!(w[1] - w[0], 2000, "{rows:#?}");
        }
    }
}

#[test]
fn a_scheduler_killed_during_a_run_records_it_interrupted_and_never_fires_it_twice() {
    let rt = fake_runtime();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    // Slow: the answer takes about 8 s.
    llm.set_default(
        openai::stream_text(&["a ", "slow ", "answer ", "at ", "last"])
            .with_delay(Duration::from_secs(2)),
    );
    let d = start(&cfg(Some(&llm), None, ""), false);
    let id = add(&d, &["in 2s", "take your time"]);
    let pid = d.ready_pid("scheduler");
    wait_for(
        Duration::from_secs(15),
        "the run and its model request",
        || {
            (llm.request_count() == 1
                && history(&d, id)
                    .last()
                    .is_some_and(|r| r["status"] == "running"))
            .then_some(())
        },
    );
    signal(pid, libc::SIGKILL);
    d.new_ready_pid("scheduler", pid);
    let rows = history(&d, id);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["status"], "interrupted");
    assert_eq!(rows[0]["reason"], "the scheduler stopped during the run");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(llm.request_count(), 1, "the slot did not fire again");
    assert_eq!(history(&d, id).len(), 1);
    let job = &json_out(&d, &["cron", "list", "--json"])[0];
    assert_eq!(
        job["next_ms"],
        0,
        "a one-shot has no slot left: {job}\n{}",
        d.log_text()
    );
}

#[test]
fn a_failing_job_is_disabled_and_its_telegram_chat_is_told_why() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    // No model router: every run fails at once, saying so.
    let d = start(
        &cfg(None, Some(&tg), "max_consecutive_failures = 3\n"),
        true,
    );
    d.ready_pid("telegram");
    let target = format!("telegram:{ME}");
    // Chat 999 never paired: the gateway refuses it, and the row says so.
    let id = add(
        &d,
        &[
            "every 1s",
            "check the weather",
            "--deliver",
            &target,
            "--deliver",
            "telegram:999",
        ],
    );
    let disabled = wait_for(Duration::from_secs(30), "the notice", || {
        tg.sent_to(ME)
            .into_iter()
            .find(|m| m.current().contains("was disabled"))
    });
    let text = disabled.current().to_string();
    assert!(
        text.contains(&format!("(#{id}) was disabled: it failed 3 times in a row"))
            && text.contains(&format!("oictl cron enable {id}")),
        "{text}"
    );
    let first = tg
        .sent_to(ME)
        .into_iter()
        .filter(|m| m.current().contains("failed:"))
        .count();
    assert_eq!(
        first, 1,
        "the first failure is said once, the next ones are not"
    );
    let job = &json_out(&d, &["cron", "list", "--json"])[0];
    assert_eq!(job["enabled"], false);
    assert!(
        job["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("the last error: The model router is not running"),
        "{job}"
    );
    // Both attempts are recorded (the refusal may come a moment later).
    let rows = wait_for(Duration::from_secs(10), "both delivery outcomes", || {
        let rows = history(&d, id);
        let last = rows.iter().rev().find(|r| r["status"] == "failed")?;
        (!last["delivery"].to_string().contains("pending")).then(|| rows.clone())
    });
    assert_eq!(count(&rows, "failed"), 3, "{rows:#?}");
    let last_failed = rows.iter().rev().find(|r| r["status"] == "failed").unwrap();
    let delivery = last_failed["delivery"].as_array().unwrap();
    assert_eq!(
        delivery[0],
        format!("telegram:{ME} delivered"),
        "{last_failed}"
    );
    assert!(
        delivery[1]
            .as_str()
            .unwrap()
            .starts_with("telegram:999 not delivered: chat 999 is not allowed to talk to this bot"),
        "{last_failed}"
    );
    assert!(tg.sent_to(999).is_empty());
    // oictl status names the problem.
    let st = d.oictl(&["status"]);
    assert!(
        out(&st).contains(&format!(
            "scheduler: PROBLEM: job {id} (check the weather) is disabled"
        )),
        "{}",
        out(&st)
    );
    // A target nobody allowed is refused when the job is made.
    let bad = d.oictl(&["cron", "add", "@daily", "x", "--deliver", "slack:general"]);
    assert!(!bad.status.success());
    assert!(out(&bad).contains("no gateway `slack`"), "{}", out(&bad));
}

#[test]
fn a_chat_message_creates_a_job_with_cron_add_and_its_first_run_answers_in_that_chat() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    llm.push([
        calls(&[(
            "c1",
            "cron_add",
            json!({"schedule": "in 3s", "intent": "tell me the weather in Berlin", "name": "weather"}),
        )]),
        openai::says("Done: I will tell you in 3 seconds."),
        openai::says("Berlin: sunny, 21 degrees."),
    ]);
    let d = start(&cfg(Some(&llm), Some(&tg), ""), true);
    d.ready_pid("telegram");
    tg.push_message(ME, 7, "in 3 seconds, tell me the weather in Berlin");
    wait_for(Duration::from_secs(20), "the confirmation", || {
        tg.sent_to(ME)
            .into_iter()
            .find(|m| m.current().contains("I will tell you"))
    });
    let job = &json_out(&d, &["cron", "list", "--json"])[0];
    assert_eq!(job["deliver"], json!([format!("telegram:{ME}")]), "{job}");
    assert_eq!(job["name"], "weather");
    let answer = wait_for(Duration::from_secs(20), "the job's answer", || {
        tg.sent_to(ME)
            .into_iter()
            .find(|m| m.current().contains("sunny, 21 degrees"))
    });
    assert!(
        answer.current().starts_with("<b>weather</b>\n\n"),
        "{}",
        answer.current()
    );
    // The tool's result told the model where answers go.
    let req = &llm.requests()[1];
    let tool = tool_messages(&req.body);
    assert!(tool[0].contains("sent to this chat"), "{tool:?}");
    let rows = history(&d, job["id"].as_i64().unwrap());
    assert_eq!(rows[0]["status"], "ran");
}
