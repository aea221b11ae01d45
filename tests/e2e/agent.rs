//! The agent end to end: `oictl ask` and `oictl chat` through the real
//! daemon, agent, llm-router and adapters, with a scripted fake model
//! speaking the OpenAI wire format on 127.0.0.1 and local web pages.

use std::time::{Duration, Instant};

use oi_ipc_schema::encode_payload;
use oi_ipc_schema::memory::{EpisodeQuery, Episodes, methods as memory};
use oi_llm_router::fake::{FakeProvider, Reply, openai};
use serde_json::{Value, json};

use crate::support::*;
use crate::webserver::WebServer;

/// A daemon with the agent, the llm-router with `fakes` (alias, base URL)
/// as the cascade in order, and the services in `on`.
fn start(on: &[&str], fakes: &[(&str, String)], extra: &str) -> Daemon {
    let mut models = String::new();
    for (alias, url) in fakes {
        models.push_str(&model(alias, "openai", url, "no_key = true"));
    }
    let order: Vec<String> = fakes.iter().map(|(a, _)| format!("\"{a}\"")).collect();
    let enabled: Vec<&str> = ["llm-router", "agent"].iter().chain(on).copied().collect();
    let cfg = config_enabling(
        &enabled,
        "",
        &format!(
            "{models}[cascade]\norder = [{}]\n\n{extra}",
            order.join(", ")
        ),
    );
    let d = Daemon::start(&cfg);
    for s in &enabled {
        d.ready_pid(s);
    }
    d
}

fn ask_json(d: &Daemon, text: &str) -> (Value, std::process::Output) {
    let o = d.oictl(&["ask", "--json", text]);
    let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(&o)));
    (v, o)
}

fn audit_rows(d: &Daemon) -> Vec<Value> {
    let o = d.oictl(&["audit", "--json", "-n", "500"]);
    assert!(o.status.success(), "{}", out(&o));
    serde_json::from_slice::<Vec<Value>>(&o.stdout).unwrap()
}

const REPORT: &str = "# Rust async runtimes\n\n- Tokio: 1.2 million requests per second (hyper benchmark).\n- smol: starts in 40 microseconds, about 1,500 lines.\n";

#[test]
fn the_seed_example_searches_fetches_two_pages_and_writes_a_report() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    let web = WebServer::start();
    fake.push([
        calls(&[(
            "c1",
            "web_search",
            json!({"query": "rust async runtime benchmarks"}),
        )]),
        calls(&[
            ("c2", "web_fetch", json!({"url": web.url("/article/tokio")})),
            ("c3", "web_fetch", json!({"url": web.url("/article/smol")})),
        ]),
        calls(&[(
            "c4",
            "fs_write_file",
            json!({"path": "reports/rust-async.md", "content": REPORT}),
        )]),
        openai::says("I searched the web, read two articles and wrote reports/rust-async.md."),
    ]);
    let d = start(
        &["memory", "fs", "web"],
        &[("fake", fake.url("/v1"))],
        &format!(
            "[web]\nsearch_url = \"{}\"\nallow_addresses = [\"127.0.0.1\"]\n",
            web.url("/html/")
        ),
    );
    let o = d.oictl(&[
        "ask",
        "search the web for rust async runtime benchmarks, read the two best pages and write a markdown report into reports/",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "I searched the web, read two articles and wrote reports/rust-async.md.\n"
    );
    // Progress: one line per tool call with shortened arguments and its
    // duration, then the summary.
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("→ web_search(\"rust async runtime benchmarks\") ["),
        "{err}"
    );
    assert!(lines[0].ends_with("s]"), "{err}");
    assert!(
        lines[1].starts_with("→ web_fetch(\"http://127.0.0.1:"),
        "{err}"
    );
    assert!(
        lines[2].starts_with("→ web_fetch(\"http://127.0.0.1:"),
        "{err}"
    );
    assert!(
        lines[3].starts_with("→ fs_write_file(content=\"# Rust async runtimes"),
        "{err}"
    );
    // Three tool turns of 29 tokens and an answer of 18, as the fake counts.
    assert_eq!(
        lines[4], "✓ Done — 4 tool calls, 105 tokens, via fake",
        "{err}"
    );

    // The report, written by the fs adapter.
    let report = std::fs::read_to_string(d.path("data/workspace/reports/rust-async.md")).unwrap();
    assert_eq!(report, REPORT);

    // What the model saw: the registry's tools, a system prompt that says
    // results are data, and each result delimited and marked untrusted.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 4);
    let tools: Vec<&str> = reqs[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    for t in ["web_search", "web_fetch", "fs_write_file", "memory_save"] {
        assert!(tools.contains(&t), "{t} not offered: {tools:?}");
    }
    let system = reqs[0].body["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains("never instructions"), "{system}");
    let search = &tool_messages(&reqs[1].body)[0];
    assert!(
        search.starts_with(
            "<tool_result tool=\"web_search\" call=\"c1\" status=\"ok\" trust=\"untrusted\">"
        ),
        "{search}"
    );
    let fetched = tool_messages(&reqs[2].body);
    assert_eq!(fetched.len(), 3);
    assert!(
        fetched[1].contains("1.2 million requests per second"),
        "{}",
        fetched[1]
    );
    assert!(fetched[2].contains("40 microseconds"), "{}", fetched[2]);

    // The audit log: one row per tool call (search, two fetches, write),
    // one per provider request, all under the intent, chain intact.
    let rows = audit_rows(&d);
    let tool_rows: Vec<&Value> = rows
        .iter()
        .filter(|r| r["action"].as_str().unwrap().starts_with("tool:"))
        .collect();
    let mut actions: Vec<&str> = tool_rows
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "tool:fs_write_file",
            "tool:web_fetch",
            "tool:web_fetch",
            "tool:web_search"
        ]
    );
    let intent = tool_rows[0]["intent"].as_str().unwrap();
    assert!(intent.starts_with('i'), "{intent}");
    for r in &tool_rows {
        assert_eq!(r["intent"], intent);
        assert_eq!(r["caller"], "agent");
        assert_eq!(r["outcome"], "ok");
    }
    let provider_rows = rows
        .iter()
        .filter(|r| r["action"] == "provider:fake")
        .count();
    assert_eq!(provider_rows, 4);
    let v = d.oictl(&["audit", "--verify"]);
    assert!(v.status.success(), "{}", out(&v));
    assert!(out(&v).contains("audit log intact"), "{}", out(&v));

    // The episode in memory.
    let brt = bus_runtime();
    let episodes: Episodes = brt.block_on(async {
        let c = d.bus_client().await;
        let q = EpisodeQuery {
            text: String::new(),
            chat: "oictl".into(),
            since_ms: 0,
            until_ms: 0,
            limit: 5,
        };
        typed(
            &c,
            "memory",
            memory::EPISODE_SEARCH,
            &encode_payload(&q).unwrap(),
        )
        .await
        .unwrap()
    });
    assert_eq!(episodes.episodes.len(), 1);
    let e = &episodes.episodes[0];
    assert!(e.intent.starts_with("search the web for rust async"));
    assert!(e.answer.contains("wrote reports/rust-async.md"));
    assert_eq!(
        (e.prompt_tokens, e.completion_tokens, e.provider.as_str()),
        (71, 34, "fake")
    );
    let recorded: Vec<Value> = serde_json::from_str(&e.tool_calls_json).unwrap();
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[3]["name"], "fs_write_file");
    assert!(recorded[3]["duration_ms"].is_u64());
}

#[test]
fn unknown_tools_bad_json_failures_and_a_hanging_tool_are_fed_back() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    fake.push([
        openai::calls(
            None,
            &[
                ("c1", "fs_delete", "{\"path\": \"x\"}"),
                ("c2", "fs_read_file", "{\"path\": \"x\""),
            ],
        ),
        calls(&[("c3", "fs_read_file", json!({"path": "missing.md"}))]),
        calls(&[("c4", "fs_read_file", json!({"path": "missing.md"}))]),
        calls(&[("c5", "shell_execute", json!({"command": "sleep 30"}))]),
        openai::says("The file does not exist and the command took too long."),
    ]);
    let d = start(
        &["fs", "shell"],
        &[("fake", fake.url("/v1"))],
        "[agent]\ntool_timeout_secs = 1\n",
    );
    let t0 = Instant::now();
    let (j, o) = ask_json(&d, "show me missing.md");
    assert!(o.status.success(), "{}", out(&o));
    assert!(t0.elapsed() < Duration::from_secs(15), "{:?}", t0.elapsed());
    assert_eq!(
        j["answer"],
        "The file does not exist and the command took too long."
    );
    assert_eq!(j["stop"], "answered");
    let errs: Vec<&str> = j["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["error"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(errs.len(), 5);
    assert!(
        errs[0].contains("there is no tool named 'fs_delete'"),
        "{}",
        errs[0]
    );
    assert!(errs[1].contains("not a valid JSON object"), "{}", errs[1]);
    assert!(errs[2].contains("does not exist"), "{}", errs[2]);
    assert!(errs[4].contains("did not finish within 1 s"), "{}", errs[4]);
    let hang = &j["tool_calls"][4];
    assert!(hang["duration_ms"].as_u64().unwrap() < 3000, "{hang}");

    // The model saw every problem as a tool result, and the third failure
    // of fs_read_file in a row came with a note to change course.
    let reqs = fake.requests();
    let second = tool_messages(&reqs[1].body);
    assert!(second[0].contains("status=\"error\"") && second[0].contains("fs_delete"));
    assert!(second[1].contains("not a valid JSON object"));
    assert!(!tool_messages(&reqs[2].body)[2].contains("failed 3 times"));
    let third = tool_messages(&reqs[3].body);
    assert!(
        third[3].contains("fs_read_file has failed 3 times in a row"),
        "{}",
        third[3]
    );
    assert!(tool_messages(&reqs[4].body)[4].contains("did not finish within 1 s"));
    // The agent and the shell adapter kept running.
    assert_eq!(d.service("agent")["restarts_total"], 0);
    assert_eq!(d.service("shell")["restarts_total"], 0);
}

#[test]
fn the_turn_limit_ends_with_a_summary_and_the_token_budget_stops_a_runaway() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    let list = || calls(&[("c", "fs_list_dir", json!({}))]);
    fake.push([
        list(),
        list(),
        openai::says("I listed the workspace twice; it is empty."),
    ]);
    let d = start(
        &["fs"],
        &[("fake", fake.url("/v1"))],
        "[agent]\nmax_react_turns = 2\n",
    );
    let (j, o) = ask_json(&d, "tidy up the workspace");
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(j["stop"], "turn_limit");
    assert_eq!(j["answer"], "I listed the workspace twice; it is empty.");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    // The last call offers no tools and asks for a summary.
    assert!(
        reqs[2]
            .body
            .get("tools")
            .is_none_or(|t| t.as_array().is_some_and(|a| a.is_empty()))
    );
    let last = reqs[2].body["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(
        last["content"]
            .as_str()
            .unwrap()
            .contains("Sum up for the user"),
        "{last}"
    );
    drop(d);

    // A model that never stops calling tools, and a small budget.
    let runaway = rt.block_on(FakeProvider::start()).unwrap();
    runaway.set_default(calls(&[("c", "fs_list_dir", json!({}))]));
    let d = start(
        &["fs"],
        &[("fake", runaway.url("/v1"))],
        "[agent]\nmax_react_turns = 50\ntoken_budget = 2600\n",
    );
    let o = d.oictl(&["ask", "loop forever"]);
    assert_eq!(o.status.code(), Some(3), "{}", out(&o));
    let text = out(&o);
    assert!(
        text.contains("-token budget left ([agent] token_budget)"),
        "{text}"
    );
    let n = runaway.request_count();
    assert!((1..50).contains(&n), "{n} model calls");
}

/// Pids of `sleep` processes whose parent is `parent`.
/// The `sleep` processes below `ancestor` (a command runs under the
/// sandbox's PID-namespace shim, so not as its direct child).
fn sleeps_of(ancestor: u32) -> Vec<u32> {
    let ppid = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit(')')
            .next()?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !cmd.starts_with(b"sleep\0") || !alive(pid) {
            continue;
        }
        let mut cur = pid;
        for _ in 0..8 {
            match ppid(cur) {
                Some(p) if p == ancestor => {
                    out.push(pid);
                    break;
                }
                Some(p) if p > 1 => cur = p,
                _ => break,
            }
        }
    }
    out
}

#[test]
fn an_adapter_killed_mid_call_is_a_tool_error_and_ctrl_c_cancels_an_intent() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    fake.push([
        calls(&[("c1", "shell_execute", json!({"command": "sleep 20"}))]),
        calls(&[("c2", "shell_execute", json!({"command": "echo back again"}))]),
        openai::says("The first command was interrupted; the second printed 'back again'."),
        calls(&[("c3", "shell_execute", json!({"command": "sleep 25"}))]),
    ]);
    let d = start(&["shell"], &[("fake", fake.url("/v1"))], "");
    let shell = d.ready_pid("shell");
    let child = spawn_oictl(&d, &["ask", "--json", "run it"]);
    wait_for(Duration::from_secs(10), "sleep 20 running", || {
        (!sleeps_of(shell).is_empty()).then_some(())
    });
    signal(shell, libc::SIGKILL);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", out(&o));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let err = j["tool_calls"][0]["error"].as_str().unwrap();
    assert!(err.contains("exited while handling the request"), "{err}");
    assert!(
        err.contains("The supervisor is restarting the service"),
        "{err}"
    );
    assert_eq!(j["tool_calls"][1]["error"], Value::Null);
    assert!(tool_messages(&fake.requests()[2].body)[1].contains("back again"));
    let restarted = d.new_ready_pid("shell", shell);
    assert_eq!(d.service("shell")["restarts_total"], 1);

    // Ctrl-C: oictl exits, the intent stops, its command is killed, and
    // the model is not asked again.
    let before = fake.request_count();
    let child = spawn_oictl(&d, &["ask", "wait a bit"]);
    let sleep = wait_for(Duration::from_secs(10), "sleep 25 running", || {
        sleeps_of(restarted).first().copied()
    });
    signal(child.id(), libc::SIGINT);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", out(&o));
    assert!(out(&o).contains("cancelled"), "{}", out(&o));
    wait_for(
        Duration::from_secs(5),
        "the cancelled command to be killed",
        || (!alive(sleep)).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(fake.request_count(), before + 1);
    assert!(d.log_text().contains("intent cancelled by the caller"));
    let rows = audit_rows(&d);
    assert!(
        rows.iter().any(|r| r["action"] == "tool:shell_execute"
            && r["outcome"].as_str().unwrap().starts_with("cancelled")),
        "{rows:?}"
    );
}

#[test]
fn a_429_mid_intent_fails_over_without_an_error_for_the_user() {
    let rt = fake_runtime();
    let (primary, backup) = rt.block_on(async {
        (
            FakeProvider::start().await.unwrap(),
            FakeProvider::start().await.unwrap(),
        )
    });
    primary.push([
        calls(&[("c1", "fs_list_dir", json!({}))]),
        Reply::status(
            429,
            &[("retry-after", "60")],
            r#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#,
        ),
    ]);
    backup.set_default(openai::says("The workspace is empty."));
    let d = start(
        &["fs"],
        &[
            ("primary", primary.url("/v1")),
            ("backup", backup.url("/v1")),
        ],
        "",
    );
    let (j, o) = ask_json(&d, "what is in my workspace?");
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(j["answer"], "The workspace is empty.");
    assert_eq!(j["provider"], "backup");
    assert_eq!(j["model"], "fake-model");
    assert_eq!(j["fallbacks"], 1);
    assert!(j.get("error").is_none());
    assert_eq!(
        j["notices"][0],
        "primary (rate_limited) did not answer; backup answered instead"
    );
    // The backup got the whole conversation, tool result included.
    assert!(tool_messages(&backup.requests()[0].body)[0].contains("tool=\"fs_list_dir\""));
}

#[test]
fn intent_router_patterns_answer_without_any_model_request() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    fake.set_default(openai::says("should not be asked"));
    let d = start(&["fs", "memory"], &[("fake", fake.url("/v1"))], "");
    let ws = d.path("data/workspace/notes");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("todo.md"), "- buy milk\n").unwrap();

    let o = d.oictl(&["list files in notes"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("todo.md  (11 bytes)"),
        "{}",
        out(&o)
    );
    assert!(out(&o).contains("→ fs_list_dir(\"notes\")"), "{}", out(&o));
    assert!(out(&o).contains("answered by the intent router (list_files), no model"));
    let o = d.oictl(&["ask", "read", "notes/todo.md"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "- buy milk\n\n");
    let (j, _) = ask_json(&d, "What time is it?");
    assert!(j["answer"].as_str().unwrap().ends_with("GMT (UTC)."), "{j}");
    assert_eq!(j["route"], "intent-router:time");
    let (j, _) = ask_json(&d, "status");
    assert!(
        j["answer"].as_str().unwrap().contains("services ready"),
        "{j}"
    );
    let (j, _) = ask_json(&d, "help");
    assert!(
        j["answer"].as_str().unwrap().contains("[list_files]"),
        "{j}"
    );
    let (j, _) = ask_json(&d, "list tools");
    assert!(
        j["answer"].as_str().unwrap().contains("fs_read_file"),
        "{j}"
    );
    let (j, _) = ask_json(&d, "remember that the spare key is under the mat");
    assert_eq!(j["tool_calls"][0]["name"], "memory_save");
    // Sentences, not raw JSON or scores.
    let answer = j["answer"].as_str().unwrap();
    assert!(answer.starts_with("Remembered (fact "), "{j}");
    let (j, _) = ask_json(&d, "recall spare key");
    let answer = j["answer"].as_str().unwrap();
    assert!(
        answer.starts_with("From memory:\n- ") && answer.contains("under the mat"),
        "{j}"
    );
    assert!(!answer.contains("score") && !answer.contains('{'), "{j}");
    assert_eq!(fake.request_count(), 0, "the model was asked");

    // A file that is not there: a clear error, non-zero exit.
    let o = d.oictl(&["ask", "read", "nope.md"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out(&o).contains("nope.md' does not exist"), "{}", out(&o));
}

#[test]
fn without_a_provider_patterns_work_and_the_rest_says_how_to_configure_one() {
    let d = start(&["fs"], &[], "[provider]\nkind = \"\"\n");
    let o = d.oictl(&["ask", "what time is it"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = d.oictl(&["ask", "write a poem about the sea"]);
    assert_eq!(o.status.code(), Some(1));
    let text = out(&o);
    assert!(text.contains("No model is configured"), "{text}");
    assert!(
        text.contains("OPENAI_API_KEY") && text.contains("llama.cpp or Ollama"),
        "{text}"
    );
}

#[test]
fn oictl_chat_keeps_history_and_runs_the_chat_commands() {
    let rt = fake_runtime();
    let (one, two) = rt.block_on(async {
        (
            FakeProvider::start().await.unwrap(),
            FakeProvider::start().await.unwrap(),
        )
    });
    one.set_default(openai::says("Hello from one."));
    two.set_default(openai::says("Hello from two."));
    let d = start(
        &["memory"],
        &[("one", one.url("/v1")), ("two", two.url("/v1"))],
        "",
    );
    let o = oictl_input(
        &d,
        &["chat"],
        b"hi, I am Ada\n/tokens on\nwhat is my name?\n/model two\n/models\nand now?\n/clear\nfresh start\n/status\n/bogus\n",
    );
    assert!(o.status.success(), "{}", out(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stdout.contains("Token counts on."), "{stdout}");
    assert!(stdout.contains("This chat now uses two."), "{stdout}");
    assert!(stdout.contains("* two"), "{stdout}");
    assert!(stdout.contains("History cleared."), "{stdout}");
    assert!(stdout.contains("Model: two"), "{stdout}");
    assert!(stderr.contains("unknown command '/bogus'"), "{stderr}");
    // The token line appears only once /tokens is on: after 3 of 4 answers.
    assert_eq!(stderr.matches("✓ Done").count(), 3, "{stderr}");

    // History: the second question carried the first exchange; after
    // /model the other provider answered with the history so far; after
    // /clear nothing earlier was sent.
    let r1 = one.requests();
    assert_eq!(r1.len(), 2);
    let texts = |b: &Value| -> Vec<String> {
        b["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(
        texts(&r1[1].body)[1..],
        ["hi, I am Ada", "Hello from one.", "what is my name?"]
    );
    let r2 = two.requests();
    assert_eq!(r2.len(), 2);
    assert_eq!(texts(&r2[0].body).len(), 6);
    assert_eq!(texts(&r2[1].body)[1..], ["fresh start"]);
}

#[test]
fn agent_and_intent_settings_reload_without_a_restart() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    fake.set_default(openai::says("It is tea time."));
    let d = start(&[], &[("fake", fake.url("/v1"))], "");
    let pid = d.ready_pid("agent");
    let (j, _) = ask_json(&d, "what time is it");
    assert_eq!(j["route"], "intent-router:time");
    assert_eq!(fake.request_count(), 0);

    // Switch the pattern off in the config file: the next ask goes to the
    // model, and the agent process is the same one.
    let cfg = std::fs::read_to_string(d.path("config.toml")).unwrap();
    std::fs::write(
        d.path("config.toml"),
        format!("{cfg}\n[intents.patterns.time]\nenabled = false\n"),
    )
    .unwrap();
    wait_for(
        Duration::from_secs(10),
        "the agent to apply the new settings",
        || {
            d.log_text()
                .contains("[agent] settings applied")
                .then_some(())
        },
    );
    let (j, _) = ask_json(&d, "what time is it");
    assert_eq!(j["route"], "agent");
    assert_eq!(j["answer"], "It is tea time.");
    assert_eq!(fake.request_count(), 1);
    assert_eq!(d.ready_pid("agent"), pid);
}

#[test]
fn a_restarting_router_is_waited_for_and_a_missing_one_is_named() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    fake.push([openai::says("Back with an answer.")]);
    let d = start(&[], &[("fake", fake.url("/v1"))], "");
    // R1: right after a kill -9 the router is restarting; the intent waits
    // for it instead of reading its absence as "no model configured".
    let router = d.ready_pid("llm-router");
    signal(router, libc::SIGKILL);
    let (j, o) = ask_json(&d, "say something");
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(j["answer"], "Back with an answer.");
    assert_ne!(d.ready_pid("llm-router"), router);
}

#[test]
fn a_router_that_does_not_come_back_in_time_is_said_to_be_restarting() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    let mut models = model("fake", "openai", &fake.url("/v1"), "no_key = true");
    models.push_str("[cascade]\norder = [\"fake\"]\n\n[agent]\nintent_timeout_secs = 2\n");
    let cfg = config_enabling(&["llm-router", "agent"], "", &models).replace(
        "backoff_initial_ms = 100\nbackoff_max_ms = 400",
        "backoff_initial_ms = 8000\nbackoff_max_ms = 8000",
    );
    let d = Daemon::start(&cfg);
    d.ready_pid("agent");
    let router = d.ready_pid("llm-router");
    // Crash it twice so the next start waits out the 8 s backoff.
    signal(router, libc::SIGKILL);
    let again = d.new_ready_pid("llm-router", router);
    signal(again, libc::SIGKILL);
    let t0 = Instant::now();
    let o = d.oictl(&["ask", "say something"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("The model router is restarting and was not back within 2 s"),
        "{text}"
    );
    assert!(!text.contains("No model is configured"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(6), "{:?}", t0.elapsed());

    // With the router disabled nothing will start it: said at once.
    let cfg = config_enabling(&["agent"], "", "");
    let d = Daemon::start(&cfg);
    d.ready_pid("agent");
    let t0 = Instant::now();
    let o = d.oictl(&["ask", "say something"]);
    let text = out(&o);
    assert!(text.contains("The model router is not running"), "{text}");
    assert!(text.contains("nothing is starting it"), "{text}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[test]
fn the_agents_model_requests_are_streamed_and_a_cooldown_wait_is_said() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    // Eight events 400 ms apart: 3.2 s in all, past the 2 s first-token
    // limit, but never 2 s without a byte. Streamed, that is a slow model
    // that answers; waited for whole, it would count as stalled.
    fake.push([
        openai::stream_text(&["The ", "slow ", "model ", "answered."])
            .with_delay(Duration::from_millis(400)),
    ]);
    let d = start(
        &[],
        &[("fake", fake.url("/v1"))],
        "first_token_timeout_secs = 2\nidle_timeout_secs = 2\ncooldown_secs = 1\nmax_cooldown_secs = 1\n",
    );
    let (j, o) = ask_json(&d, "say something slowly");
    assert!(o.status.success(), "{}", out(&o));
    assert_eq!(j["answer"], "The slow model answered.");
    let sent = fake.requests();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["stream"], true, "{}", sent[0].body);

    // A rate limit cools the only deployment for a second: the router
    // waits it out and the caller hears so while it waits.
    fake.push([
        Reply::status(429, &[], "{}"),
        openai::says("After the wait."),
    ]);
    let o = d.oictl(&["ask", "say something after a wait"]);
    let text = out(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("After the wait."), "{text}");
    assert!(text.contains("waiting 1 s for a model"), "{text}");
}
