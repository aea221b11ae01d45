//! The Telegram gateway end to end: the real daemon, telegram, agent,
//! llm-router and memory processes, with a fake Telegram Bot API
//! (`oi_telegram::fake`, speaking the Bot API's JSON on 127.0.0.1 and
//! checking what Telegram checks) and a scripted fake model.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use oi_llm_router::fake::{FakeProvider, Reply, openai};
use oi_telegram::fake::{FakeBotApi, Sent};
use serde_json::{Value, json};

use crate::support::*;

const TOKEN: &str = "123456:AAE-test-token-do-not-log";
const ME: i64 = 111;
const USER: i64 = 7;

/// A daemon with the gateway (token from the environment), the agent,
/// the llm-router with `fakes` as its cascade, memory, and `on`.
fn start(tg: &FakeBotApi, fakes: &[(&str, String)], on: &[&str], extra: &str) -> Daemon {
    let mut models = String::new();
    for (alias, url) in fakes {
        models.push_str(&model(alias, "openai", url, "no_key = true"));
    }
    let order: Vec<String> = fakes.iter().map(|(a, _)| format!("\"{a}\"")).collect();
    let enabled: Vec<&str> = ["memory", "llm-router", "agent", "telegram"]
        .iter()
        .chain(on)
        .copied()
        .collect();
    let cfg = config_enabling(
        &enabled,
        "",
        &format!(
            "{models}[cascade]\norder = [{}]\n\n[telegram]\napi_base_url = \"{}\"\nallowed_chat_ids = [{ME}]\npoll_timeout_secs = 1\nedit_interval_ms = 400\n\n{extra}",
            order.join(", "),
            tg.url()
        ),
    );
    let d = Daemon::start_with(&cfg, &[("TELEGRAM_BOT_TOKEN", TOKEN)]);
    for s in &enabled {
        d.ready_pid(s);
    }
    d
}

/// `oictl memory accounts --json`.
fn accounts(d: &Daemon) -> Vec<Value> {
    let o = d.oictl(&["memory", "accounts", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap()
}

/// The messages that answer user message `message_id`.
fn replies_to(tg: &FakeBotApi, chat: i64, message_id: i64) -> Vec<Sent> {
    tg.sent_to(chat)
        .into_iter()
        .filter(|m| m.reply_to == Some(message_id))
        .collect()
}

/// Waits for a message to `chat` whose text (as it reads now) contains
/// `text_has`. (The fake numbers messages from 1, counting both sides.)
fn wait_reply(tg: &FakeBotApi, chat: i64, text_has: &str) -> Sent {
    wait_for(Duration::from_secs(20), text_has, || {
        tg.sent_to(chat)
            .into_iter()
            .find(|m| m.current().contains(text_has))
    })
}

#[test]
fn a_message_becomes_an_intent_with_progress_and_the_answer_comes_back() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    llm.push([
        openai::calls(
            None,
            &[(
                "c1",
                "fs_write_file",
                r#"{"path":"note.txt","content":"hi"}"#,
            )],
        ),
        openai::says("**Done**: wrote `note.txt` (a < b & c)."),
        openai::says("You asked me to write a note."),
    ]);
    let d = start(&tg, &[("main", llm.url("/v1"))], &["fs"], "");
    // The commands are registered with Telegram.
    let cmds = wait_for(Duration::from_secs(10), "setMyCommands", || {
        tg.calls_of("setMyCommands").pop()
    });
    let names: Vec<&str> = cmds.params["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "help", "models", "model", "status", "tokens", "clear", "reset", "cancel"
        ]
    );

    let asked = tg.push_message(ME, USER, "write hi to note.txt");
    let answer = wait_reply(&tg, ME, "wrote");
    assert_eq!(answer.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(
        answer.text,
        "<b>Done</b>: wrote <code>note.txt</code> (a &lt; b &amp; c)."
    );
    assert_eq!(
        answer.reply_to,
        Some(asked.message_id),
        "the answer replies to the user's message"
    );
    assert_eq!(
        std::fs::read_to_string(d.path("data/workspace/note.txt")).unwrap(),
        "hi"
    );
    // The status message showed the call and was edited when it finished.
    let sent = tg.sent_to(ME);
    let status = sent
        .iter()
        .find(|m| m.text.starts_with("Working…"))
        .unwrap();
    assert!(status.text.contains("→ fs_write_file("), "{status:?}");
    assert!(!status.edits.is_empty(), "{status:?}");
    let last = status.current();
    assert!(
        last.starts_with("Done:\n→ fs_write_file(") && last.contains("s]"),
        "{last}"
    );
    assert!(
        tg.calls_of("sendChatAction")
            .iter()
            .any(|c| c.params == json!({"chat_id": ME, "action": "typing"}))
    );
    // The model saw the user's words, in chat telegram:111.
    let first = &llm.requests()[0].body;
    assert!(
        first["messages"]
            .to_string()
            .contains("write hi to note.txt")
    );

    // The next message carries the chat's history.
    tg.push_message(ME, USER, "what did I ask?");
    wait_reply(&tg, ME, "You asked me");
    let third = &llm.requests()[2].body;
    let msgs = third["messages"].to_string();
    assert!(
        msgs.contains("write hi to note.txt") && msgs.contains("wrote"),
        "{msgs}"
    );
    // The token is in no log line.
    assert!(
        !d.log_text().contains("AAE-test-token"),
        "the bot token leaked into the log"
    );
}

#[test]
fn commands_buttons_failover_notice_and_status() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let one = rt.block_on(FakeProvider::start()).unwrap();
    let two = rt.block_on(FakeProvider::start()).unwrap();
    two.set_default(openai::says("two here"));
    let d = start(
        &tg,
        &[("one", one.url("/v1")), ("two", two.url("/v1"))],
        &[],
        "",
    );

    // /models: a keyboard with one button per usable alias.
    tg.push_message(ME, USER, "/models@openintent_test_bot");
    let list = wait_reply(&tg, ME, "Models");
    assert_eq!(list.parse_mode.as_deref(), Some("HTML"));
    assert!(
        list.text.starts_with("<pre>") && list.text.contains("* one"),
        "{}",
        list.text
    );
    // Two buttons a row; the shipped local `ollama` alias needs no key, so
    // it is usable too.
    assert_eq!(
        list.reply_markup.clone().unwrap(),
        json!({"inline_keyboard": [[{"text": "one", "callback_data": "/model one"},
                                     {"text": "two", "callback_data": "/model two"}],
                                    [{"text": "ollama", "callback_data": "/model ollama"}]]})
    );
    // Pressing "two" switches the chat's model.
    tg.push_callback(ME, USER, list.message_id, "/model two");
    wait_reply(&tg, ME, "This chat now uses two.");
    let answered = tg.calls_of("answerCallbackQuery");
    assert_eq!(
        answered.last().unwrap().params["text"],
        "This chat now uses two."
    );
    tg.push_message(ME, USER, "hello");
    wait_reply(&tg, ME, "two here");
    assert_eq!(one.request_count(), 0);

    // Back to one, which now fails over: one notice, then the answer.
    tg.push_message(ME, USER, "/model one");
    wait_reply(&tg, ME, "This chat now uses one.");
    one.set_default(Reply::status(
        429,
        &[("retry-after", "30")],
        r#"{"error":{"message":"rate limited"}}"#,
    ));
    tg.push_message(ME, USER, "hello again");
    let before = tg.sent_to(ME).len();
    wait_for(Duration::from_secs(20), "the second answer", || {
        (tg.sent_to(ME)
            .iter()
            .filter(|m| m.text == "two here")
            .count()
            == 2)
            .then_some(())
    });
    let new: Vec<String> = tg.sent_to(ME)[before..]
        .iter()
        .map(|m| m.text.clone())
        .collect();
    let notices: Vec<&String> = new.iter().filter(|t| t.starts_with("⚠️")).collect();
    assert_eq!(notices.len(), 1, "{new:?}");
    assert!(
        notices[0].contains("one (rate_limited) did not answer; two answered instead"),
        "{new:?}"
    );

    // /status: the chat's model, the one that answered, the services.
    tg.push_message(ME, USER, "/status");
    let st = wait_reply(&tg, ME, "Last answer");
    let text = st.current();
    assert!(text.contains("Model: one"), "{text}");
    assert!(
        text.contains("Last answer: two (fake-model), after 1 failover"),
        "{text}"
    );
    assert!(
        text.contains("telegram") && text.contains("READY"),
        "{text}"
    );

    // /tokens on adds the summary line; /help lists /cancel; a bad command
    // is refused with the reason.
    tg.push_message(ME, USER, "/tokens on");
    wait_reply(&tg, ME, "Token counts on.");
    tg.push_message(ME, USER, "count please");
    let counted = wait_reply(&tg, ME, "tokens, via two");
    assert!(
        counted.current().starts_with("two here"),
        "{}",
        counted.current()
    );
    tg.push_message(ME, USER, "/help");
    wait_reply(&tg, ME, "/cancel");
    tg.push_message(ME, USER, "/frobnicate");
    wait_reply(&tg, ME, "⚠️ unknown command '/frobnicate'");

    // The model choice outlives the gateway.
    let pid = d.ready_pid("telegram");
    signal(pid, libc::SIGKILL);
    d.new_ready_pid("telegram", pid);
    tg.push_message(ME, USER, "/model");
    wait_reply(&tg, ME, "This chat uses one.");
}

#[test]
fn kill_9_between_polls_loses_no_update_and_repeats_none() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let d = start(&tg, &[], &[], "");
    let pid = d.ready_pid("telegram");
    wait_for(Duration::from_secs(10), "the first poll", || {
        (!tg.calls_of("getUpdates").is_empty()).then_some(())
    });
    // The polls that would confirm the batch below fail, so it stays
    // unconfirmed at Telegram while the gateway is killed: a gateway that
    // forgot its offset would get these updates again.
    tg.lose_confirmations(3);
    let mut pushed = Vec::new();
    // One batch of three.
    tg.hold_updates(true);
    for _ in 0..3 {
        pushed.push(tg.push_message(ME, USER, "what time is it"));
    }
    tg.hold_updates(false);
    wait_for(Duration::from_secs(20), "three answers", || {
        (pushed
            .iter()
            .all(|p| !replies_to(&tg, ME, p.message_id).is_empty()))
        .then_some(())
    });
    assert_eq!(
        tg.unconfirmed(),
        3,
        "the kill must come before Telegram saw the new offset"
    );
    signal(pid, libc::SIGKILL);
    let killed = Instant::now();
    // Two more arrive while it is down.
    pushed.push(tg.push_message(ME, USER, "what time is it"));
    pushed.push(tg.push_message(ME, USER, "what time is it"));
    d.new_ready_pid("telegram", pid);
    wait_for(Duration::from_secs(30), "five answers", || {
        (pushed
            .iter()
            .all(|p| !replies_to(&tg, ME, p.message_id).is_empty()))
        .then_some(())
    });
    // Two more polls, to give a duplicate every chance to appear.
    let polls = tg.calls_of("getUpdates").len();
    wait_for(Duration::from_secs(10), "two more polls", || {
        (tg.calls_of("getUpdates").len() >= polls + 2).then_some(())
    });
    for p in &pushed {
        assert_eq!(
            replies_to(&tg, ME, p.message_id).len(),
            1,
            "{p:?} answered once"
        );
    }
    assert_eq!(tg.sent_to(ME).len(), 5);
    // The restarted gateway asked from the stored offset on.
    let after: Vec<i64> = tg
        .calls_of("getUpdates")
        .iter()
        .filter_map(|c| c.params["offset"].as_i64())
        .collect();
    let next = pushed[2].update_id + 1;
    let first_after_restart = tg
        .calls_of("getUpdates")
        .into_iter()
        .find(|c| c.at > killed)
        .unwrap();
    assert_eq!(first_after_restart.params["offset"], next, "{after:?}");
    // Never an offset that would ask for the first batch again.
    assert!(
        !after.iter().any(|o| *o > pushed[0].update_id && *o < next),
        "{after:?}"
    );
}

#[test]
fn kill_9_while_an_answer_is_on_its_way_does_not_reply_twice() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let d = start(&tg, &[], &[], "");
    let pid = d.ready_pid("telegram");
    wait_for(Duration::from_secs(10), "the first poll", || {
        (!tg.calls_of("getUpdates").is_empty()).then_some(())
    });
    // The answer reaches the chat, but the gateway never hears back, so
    // it is killed before it could mark the update done.
    tg.stall_replies(true);
    let asked = tg.push_message(ME, USER, "what time is it");
    wait_for(Duration::from_secs(20), "the answer in the chat", || {
        (!replies_to(&tg, ME, asked.message_id).is_empty()).then_some(())
    });
    signal(pid, libc::SIGKILL);
    tg.stall_replies(false);
    d.new_ready_pid("telegram", pid);
    // A later message is answered, so the restarted gateway has gone
    // through what the stop left unfinished.
    let later = tg.push_message(ME, USER, "what time is it");
    wait_for(Duration::from_secs(20), "the later answer", || {
        (!replies_to(&tg, ME, later.message_id).is_empty()).then_some(())
    });
    let replies: Vec<String> = replies_to(&tg, ME, asked.message_id)
        .iter()
        .map(|m| m.current().to_string())
        .collect();
    assert_eq!(
        replies.len(),
        1,
        "one reply, no restart notice: {replies:?}"
    );
    assert_eq!(tg.sent_to(ME).len(), 2);
}

#[test]
fn an_intent_cut_by_a_restart_is_reported_not_repeated() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    llm.push([Reply::Stall]);
    let d = start(&tg, &[("main", llm.url("/v1"))], &[], "");
    let pid = d.ready_pid("telegram");
    let asked = tg.push_message(ME, USER, "write a long essay");
    wait_for(Duration::from_secs(10), "the model request", || {
        (llm.request_count() == 1).then_some(())
    });
    signal(pid, libc::SIGKILL);
    d.new_ready_pid("telegram", pid);
    let r = wait_reply(&tg, ME, "I was restarted while working on this message");
    assert_eq!(r.reply_to, Some(asked.message_id));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(llm.request_count(), 1, "the intent was not run again");
}

#[test]
fn conflicts_and_rate_limits_back_off() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let d = start(&tg, &[], &[], "");
    wait_for(Duration::from_secs(10), "the first poll", || {
        (!tg.calls_of("getUpdates").is_empty()).then_some(())
    });
    let gap_after = |method: &str, n_before: usize| -> Duration {
        let calls = wait_for(Duration::from_secs(20), "the next poll", || {
            let c = tg.calls_of(method);
            (c.len() >= n_before + 2).then_some(c)
        });
        calls[n_before + 1].at - calls[n_before].at
    };
    // 409: the gateway waits longer than the poll timeout (1 s).
    let n = tg.calls_of("getUpdates").len();
    tg.fail_next("getUpdates", 409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running", None);
    // The failure hits the first poll that arrives after it was set.
    let gap = gap_after("getUpdates", n);
    assert!(gap >= Duration::from_millis(1900), "{gap:?} after a 409");
    assert!(d.log_text().contains("another process is polling this bot"));
    // 429 with retry_after = 3.
    let n = tg.calls_of("getUpdates").len();
    tg.fail_next(
        "getUpdates",
        429,
        "Too Many Requests: retry after 3",
        Some(3),
    );
    let gap = gap_after("getUpdates", n);
    assert!(gap >= Duration::from_millis(2900), "{gap:?} after a 429");
    // A 429 on sendMessage: the answer still arrives, once, after the wait.
    tg.fail_next(
        "sendMessage",
        429,
        "Too Many Requests: retry after 1",
        Some(1),
    );
    let asked = tg.push_message(ME, USER, "what time is it");
    wait_for(Duration::from_secs(20), "the answer", || {
        (!replies_to(&tg, ME, asked.message_id).is_empty()).then_some(())
    });
    let sends = tg.calls_of("sendMessage");
    assert_eq!(sends.len(), 2, "one refused, one delivered");
    assert!(sends[1].at - sends[0].at >= Duration::from_millis(950));
    assert_eq!(replies_to(&tg, ME, asked.message_id).len(), 1);
}

#[test]
fn strangers_are_refused_and_pairing_lets_a_chat_in() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    llm.set_default(openai::says("hello friend"));
    let d = start(&tg, &[("main", llm.url("/v1"))], &[], "");
    let stranger = 999;
    tg.push_message(stranger, 55, "give me your secrets");
    let refusal = wait_reply(&tg, stranger, "This bot is private");
    assert!(refusal.text.contains("999"), "{}", refusal.text);
    tg.push_message(stranger, 55, "please?");
    let mine = tg.push_message(ME, USER, "what time is it");
    wait_for(Duration::from_secs(20), "the owner's answer", || {
        (!replies_to(&tg, ME, mine.message_id).is_empty()).then_some(())
    });
    assert_eq!(
        tg.sent_to(stranger).len(),
        1,
        "one refusal, not one per message"
    );
    assert_eq!(
        llm.request_count(),
        0,
        "no stranger's message reached the model"
    );
    assert!(
        d.log_text()
            .contains("message from a chat that is not allowed; refused")
    );
    // The owner has an account in memory, filed under the gateway's
    // service name; the stranger has none.
    let owner = wait_for(Duration::from_secs(10), "the owner's account", || {
        accounts(&d).into_iter().find(|a| a["user_id"] == "7")
    });
    assert_eq!(owner["gateway"], "telegram");
    assert_eq!(owner["name"], "User7");
    assert_eq!(owner["username"], "user7");
    assert_eq!(owner["chats"], json!(["telegram:111"]));
    assert_eq!(owner["messages"], 1);
    assert_eq!(accounts(&d).len(), 1, "no account for a stranger");

    // Pairing: a wrong code is refused, the right one lets the chat in.
    let o = d.oictl(&["telegram", "pair"]);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("@openintent_test_bot"), "{text}");
    let code = text
        .split_whitespace()
        .skip_while(|w| *w != "/pair")
        .nth(1)
        .unwrap()
        .to_string();
    tg.push_message(stranger, 55, "/pair ABCD-EFGH");
    wait_reply(&tg, stranger, "That code is wrong or has expired");
    tg.push_message(stranger, 55, &format!("/pair {code}"));
    wait_reply(&tg, stranger, "Paired: this chat gets answers now.");
    tg.push_message(stranger, 55, "hi");
    wait_reply(&tg, stranger, "hello friend");
    // Once paired, the chat's user has an account too; the owner can
    // forget it.
    wait_for(Duration::from_secs(10), "the paired user's account", || {
        accounts(&d).into_iter().find(|a| a["user_id"] == "55")
    });
    let o = d.oictl(&["memory", "accounts"]);
    let table = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        table.contains("telegram:55") && table.contains("User55 (@user55)"),
        "{}",
        out(&o)
    );
    let o = d.oictl(&["memory", "forget-account", "telegram", "55"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = d.oictl(&["memory", "forget-account", "telegram", "55"]);
    assert!(
        !o.status.success() && out(&o).contains("no account 55 on gateway 'telegram'"),
        "{}",
        out(&o)
    );
    let ids: Vec<Value> = accounts(&d).iter().map(|a| a["user_id"].clone()).collect();
    assert_eq!(ids, [json!("7")]);

    // With memory stopped the owner is still answered; the account misses
    // that message and catches up with the next one.
    let memory = d.ready_pid("memory");
    let o = d.oictl(&["stop", "memory"]);
    assert!(o.status.success(), "{}", out(&o));
    wait_for(Duration::from_secs(10), "memory stopped", || {
        (d.state("memory") == "EXITED").then_some(())
    });
    let m = tg.push_message(ME, USER, "are you there?");
    wait_for(Duration::from_secs(20), "an answer without memory", || {
        (!replies_to(&tg, ME, m.message_id).is_empty()).then_some(())
    });
    assert!(d.oictl(&["start", "memory"]).status.success());
    d.new_ready_pid("memory", memory);
    let m = tg.push_message(ME, USER, "and now?");
    wait_for(
        Duration::from_secs(20),
        "an answer with memory back",
        || (!replies_to(&tg, ME, m.message_id).is_empty()).then_some(()),
    );
    wait_for(Duration::from_secs(10), "the account caught up", || {
        accounts(&d)
            .into_iter()
            .find(|a| a["user_id"] == "7" && a["messages"] == 2)
    });
    let o = d.oictl(&["telegram", "chats", "--json"]);
    let chats: Value = serde_json::from_slice(&o.stdout).unwrap();
    let listed: BTreeSet<(i64, String)> = chats
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_i64().unwrap(),
                c["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([(ME, "config".into()), (stranger, "paired".into())])
    );

    // The pairing outlives the gateway; unpairing ends it.
    let pid = d.ready_pid("telegram");
    signal(pid, libc::SIGKILL);
    d.new_ready_pid("telegram", pid);
    tg.push_message(stranger, 55, "still there?");
    wait_for(
        Duration::from_secs(20),
        "an answer after the restart",
        || {
            (tg.sent_to(stranger)
                .iter()
                .filter(|m| m.text == "hello friend")
                .count()
                == 2)
                .then_some(())
        },
    );
    let o = d.oictl(&["telegram", "unpair", "999"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = d.oictl(&["telegram", "unpair", "111"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("listed in telegram.allowed_chat_ids"),
        "{}",
        out(&o)
    );
    let before = llm.request_count();
    tg.push_message(stranger, 55, "and now?");
    wait_for(Duration::from_secs(20), "the second refusal", || {
        (tg.sent_to(stranger)
            .iter()
            .filter(|m| m.text.contains("This bot is private"))
            .count()
            == 2)
            .then_some(())
    });
    assert_eq!(llm.request_count(), before);
}

const LONG: &str = "# Report on <runtimes> & friends\n\nIntro with **bold**, _italics_, `code<T>` and a [link](https://example.com/?a=1&b=2).\n\n";

#[test]
fn long_and_markdown_heavy_answers_are_delivered() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    let mut md = LONG.to_string();
    for i in 0..60 {
        md.push_str(&format!("- item {i}: a < b && c > d, see *note {i}*\n"));
    }
    md.push_str("\n| name | value |\n|---|---|\n| a&b | <1> |\n\n```rust\n");
    for i in 0..250 {
        md.push_str(&format!("let v{i}: Vec<u8> = vec![{i}; 4]; // & <done>\n"));
    }
    md.push_str("```\n\n");
    for _ in 0..40 {
        md.push_str("A closing paragraph sentence that goes on. ");
    }
    llm.push([openai::says(&md), openai::says("**short** but <refused>")]);
    let d = start(&tg, &[("main", llm.url("/v1"))], &[], "");
    let asked = tg.push_message(ME, USER, "write the report");
    let parts = wait_for(Duration::from_secs(20), "the whole answer", || {
        let s = tg.sent_to(ME);
        s.iter()
            .any(|m| m.text.contains("closing paragraph"))
            .then_some(s)
    });
    assert!(parts.len() >= 4, "{} parts", parts.len());
    let mut visible = String::new();
    for p in &parts {
        // Every part was accepted with its formatting: no plain fallback.
        assert_eq!(p.parse_mode.as_deref(), Some("HTML"), "{}", p.text);
        let v = oi_telegram::fake::parse_html(&p.text).unwrap();
        assert!(v.encode_utf16().count() <= 4096);
        visible.push_str(&v);
        visible.push('\n');
    }
    assert_eq!(parts[0].reply_to, Some(asked.message_id));
    assert!(parts[1..].iter().all(|p| p.reply_to.is_none()));
    assert!(
        parts[0]
            .text
            .starts_with("<b>Report on &lt;runtimes&gt; &amp; friends</b>"),
        "{}",
        parts[0].text
    );
    for i in 0..250 {
        let line = format!("let v{i}: Vec<u8> = vec![{i}; 4]; // & <done>");
        assert_eq!(visible.matches(&line).count(), 1, "code line {i}");
    }
    for i in 0..60 {
        assert_eq!(
            visible
                .matches(&format!("• item {i}: a < b && c > d, see note {i}\n"))
                .count(),
            1,
            "item {i}"
        );
    }
    assert!(visible.contains("a&b  | <1>"), "the table");

    // When Telegram refuses the formatting, the text goes plain.
    tg.refuse_next_formatting();
    tg.push_message(ME, USER, "again");
    let plain = wait_reply(&tg, ME, "short but <refused>");
    assert_eq!(plain.parse_mode, None);
    assert_eq!(plain.text, "short but <refused>");
    assert!(d.log_text().contains("refused the formatting"));
}

/// A daemon with the vault and the gateway but no bot token anywhere,
/// once the gateway is WAITING for one.
fn waiting(tg: &FakeBotApi) -> Daemon {
    let cfg = config_enabling(
        &["vault", "memory", "llm-router", "agent", "telegram"],
        "",
        &format!(
            "[vault]\nkey_source = \"file\"\n\n[telegram]\napi_base_url = \"{}\"\nallowed_chat_ids = [{ME}]\npoll_timeout_secs = 1\n",
            tg.url()
        ),
    );
    let d = Daemon::start(&cfg);
    d.ready_pid("agent");
    wait_for(Duration::from_secs(10), "telegram WAITING", || {
        (d.state("telegram") == "WAITING").then_some(())
    });
    d
}

#[test]
fn the_bot_waits_for_a_token_and_starts_when_it_is_stored() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let d = waiting(&tg);
    let s = d.service("telegram");
    assert_eq!(
        s["last_exit"],
        "waiting for the environment variable TELEGRAM_BOT_TOKEN or the vault secret telegram-bot-token"
    );
    let o = d.oictl(&["status"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("WAITING"),
        "{}",
        out(&o)
    );
    assert!(tg.calls().is_empty());
    // A wrong token first: the gateway exits with a configuration error
    // and is not restarted.
    let o = oictl_input(&d, &["vault", "set", "telegram-bot-token"], b"999:wrong\n");
    assert!(o.status.success(), "{}", out(&o));
    let s = wait_for(Duration::from_secs(15), "telegram FATAL", || {
        let s = d.service("telegram");
        (s["state"] == "FATAL").then_some(s)
    });
    assert!(
        d.log_text().contains("Telegram refused the bot token"),
        "{s}"
    );
    // Ended by the exit status that means a configuration error, not
    // merely marked FATAL.
    assert_eq!(s["last_exit"], "exit 78 (configuration error)", "{s}");
    assert_eq!(s["restarts_total"], 0, "{s}");
    assert!(
        !d.log_text().contains("999:wrong"),
        "the token leaked into the log"
    );
    // The right token, and a start by hand.
    let o = oictl_input(
        &d,
        &["vault", "set", "telegram-bot-token"],
        format!("{TOKEN}\n").as_bytes(),
    );
    assert!(o.status.success(), "{}", out(&o));
    assert!(d.oictl(&["start", "telegram"]).status.success());
    d.ready_pid("telegram");
    let asked = tg.push_message(ME, USER, "what time is it");
    wait_for(Duration::from_secs(20), "the answer", || {
        (!replies_to(&tg, ME, asked.message_id).is_empty()).then_some(())
    });
}

#[test]
fn a_waiting_bot_starts_by_itself_once_the_token_is_in_the_vault() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let d = waiting(&tg);
    let t0 = Instant::now();
    let o = oictl_input(
        &d,
        &["vault", "set", "telegram-bot-token"],
        format!("{TOKEN}\n").as_bytes(),
    );
    assert!(o.status.success(), "{}", out(&o));
    d.ready_pid("telegram");
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(!tg.calls_of("getMe").is_empty());
    assert!(
        !d.log_text().contains("AAE-test-token"),
        "the token leaked into the log"
    );
}

#[test]
fn a_busy_intent_edits_its_status_no_faster_than_telegram_allows() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let llm = rt.block_on(FakeProvider::start()).unwrap();
    // Six tool calls, one per turn, each turn streamed over about 150 ms:
    // a status line each, and its end, faster than Telegram lets a chat
    // be edited if each were shown at once.
    let mut script: Vec<_> = (0..6)
        .map(|i| {
            let id = format!("c{i}");
            openai::stream_tool_calls(&[(&id, "fs_list_dir", r#"{"path":"."}"#)], 1)
                .with_delay(Duration::from_millis(30))
        })
        .collect();
    script.push(openai::says("Listed it six times."));
    llm.push(script);
    let d = start(&tg, &[("main", llm.url("/v1"))], &["fs"], "");
    tg.push_message(ME, USER, "list the workspace six times");
    wait_reply(&tg, ME, "six times");
    let status = tg
        .sent_to(ME)
        .into_iter()
        .find(|m| m.text.starts_with("Working…"))
        .unwrap();
    assert!(status.current().starts_with("Done:"), "{status:?}");
    assert_eq!(
        status.current().matches("fs_list_dir").count(),
        6,
        "{status:?}"
    );
    // The fake answers a fourth edit within a second with 429; the
    // gateway's throttle (edit_interval_ms) never lets it come to that.
    assert_eq!(tg.rate_limited(), 0, "{:?}", status.edits);
    drop(d);
}

#[test]
fn status_and_doctor_say_when_every_poll_fails() {
    let rt = fake_runtime();
    let tg = rt.block_on(FakeBotApi::start(TOKEN)).unwrap();
    let d = start(&tg, &[], &[], "");
    let status_text = || out(&d.oictl(&["status"]));
    let line = wait_for(Duration::from_secs(10), "a successful poll", || {
        status_text()
            .lines()
            .find(|l| l.starts_with("telegram: polling, last success"))
            .map(str::to_string)
    });
    assert!(!line.contains("PROBLEM"), "{line}");
    // Three polls in a row fail: READY, but status and doctor say so.
    for _ in 0..3 {
        tg.fail_next("getUpdates", 502, "Bad Gateway", None);
    }
    let line = wait_for(Duration::from_secs(20), "three failed polls", || {
        status_text()
            .lines()
            .find(|l| l.contains("failed 3 times in a row"))
            .map(str::to_string)
    });
    assert!(
        line.starts_with("telegram: PROBLEM: polling failed 3 times in a row (last success"),
        "{line}"
    );
    assert!(line.contains("Bad Gateway"), "{line}");
    assert_eq!(d.state("telegram"), "READY");
    let o = d.oictl(&["status", "--json"]);
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["gateways"]["telegram"]["healthy"], false, "{j}");
    let doc = d.oictl(&["doctor"]);
    let text = out(&doc);
    assert_eq!(doc.status.code(), Some(1), "{text}");
    assert!(
        text.contains("PROBLEM gateway telegram: polling failed"),
        "{text}"
    );
    assert!(!text.contains(TOKEN) && !line.contains(TOKEN));
    // The next poll that works heals it.
    wait_for(Duration::from_secs(20), "polling again", || {
        status_text()
            .lines()
            .any(|l| l.starts_with("telegram: polling, last success"))
            .then_some(())
    });
}
