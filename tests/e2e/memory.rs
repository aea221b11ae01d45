//! The memory service as a supervised process: oictl memory, its tools in
//! the kernel registry, working and episodic memory over the bus, bad tool
//! arguments, and durability under kill -9.

use std::collections::HashSet;
use std::time::Duration;

use oi_ipc_schema::memory::{
    AccountSeen, ChatId, Episode, EpisodeId, EpisodeQuery, Episodes, History, HistoryAppend,
    methods,
};
use oi_ipc_schema::{ErrorCode, encode_payload};
use oi_kernel::client::{BusClient, CallOptions};
use oi_kernel::tool::ToolCallError;
use serde_json::{Value, json};

use crate::support::*;

async fn tool(c: &BusClient, name: &str, args: Value) -> Result<Value, ToolCallError> {
    let opts = CallOptions::deadline(Duration::from_secs(10)).waiting();
    oi_kernel::tool::call_on(c, "memory", name, &args.to_string(), opts).await
}

#[test]
fn oictl_memory_tools_history_and_episodes() {
    let d = Daemon::start(&memory_config(""));
    d.ready_pid("memory");
    let o = d.oictl(&[
        "memory", "save", "The", "user", "prefers", "dark", "roast", "coffee", "--tag", "food",
    ]);
    assert!(
        o.status.success() && out(&o).contains("saved memory 1"),
        "{}",
        out(&o)
    );
    for t in [
        "Alice's birthday is in September",
        "The office wifi password rotates monthly",
        "Deploy on Fridays",
    ] {
        assert!(d.oictl(&["memory", "save", t]).status.success());
    }
    let o = d.oictl(&["memory", "search", "preferred", "roast", "--json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["results"][0]["id"], 1, "{r}");
    assert_eq!(r["results"][0]["tags"], json!(["food"]));
    assert!(out(&d.oictl(&["memory", "list"])).contains("Deploy on Fridays"));
    assert!(out(&d.oictl(&["memory", "rm", "1"])).contains("deleted memory 1"));
    let o = d.oictl(&["memory", "rm", "1"]);
    assert!(
        !o.status.success() && out(&o).contains("no memory with id 1"),
        "{}",
        out(&o)
    );

    let rt = bus_runtime();
    rt.block_on(async {
        let c = d.bus_client().await;
        // The tools are in the kernel's registry for the agent, with valid JSON schemas.
        let tools = oi_kernel::tool::list(&c, Duration::from_secs(10))
            .await
            .unwrap();
        let names: Vec<&str> = tools
            .tools
            .iter()
            .filter(|t| t.service == "memory")
            .map(|t| t.spec.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "memory_delete",
                "memory_get",
                "memory_list",
                "memory_save",
                "memory_search"
            ]
        );
        for t in &tools.tools {
            let schema: Value = serde_json::from_str(&t.spec.args_schema_json).unwrap();
            assert_eq!(schema["type"], "object");
        }
        // Bad arguments from a model are an error it can act on.
        let e = c
            .request(
                oi_ipc_schema::memory::SERVICE,
                "memory_save",
                b"{not json",
                CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest);
        assert!(
            e.to_string()
                .contains("memory_save: arguments are not valid JSON"),
            "{e}"
        );
        let e = tool(&c, "memory_save", json!({"txt": "typo"}))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("'text' (a string) is required"),
            "{e}"
        );

        // Working memory: the window keeps the last 20, oldest first.
        for i in 0..25 {
            let p = encode_payload(&HistoryAppend {
                chat: "tg:42".into(),
                role: "user".into(),
                content: format!("m{i}"),
            })
            .unwrap();
            c.request(
                oi_ipc_schema::memory::SERVICE,
                methods::HISTORY_APPEND,
                &p,
                CallOptions::default(),
            )
            .await
            .unwrap();
        }
        let chat = encode_payload(&ChatId {
            chat: "tg:42".into(),
        })
        .unwrap();
        let h: History = typed(&c, "memory", methods::HISTORY_WINDOW, &chat)
            .await
            .unwrap();
        assert_eq!(h.messages.len(), 20);
        assert_eq!(
            (
                h.messages[0].content.as_str(),
                h.messages[19].content.as_str()
            ),
            ("m5", "m24")
        );
        c.request(
            oi_ipc_schema::memory::SERVICE,
            methods::HISTORY_CLEAR,
            &chat,
            CallOptions::default(),
        )
        .await
        .unwrap();
        let h: History = typed(&c, "memory", methods::HISTORY_WINDOW, &chat)
            .await
            .unwrap();
        assert!(h.messages.is_empty());

        // Episodic memory.
        let ep = Episode {
            id: 0,
            chat: "cli".into(),
            intent: "search the web for rust benchmarks".into(),
            answer: "3 links".into(),
            tool_calls_json: "[]".into(),
            prompt_tokens: 900,
            completion_tokens: 120,
            provider: "deepseek".into(),
            ts_ms: 0,
        };
        let id: EpisodeId = typed(
            &c,
            "memory",
            methods::EPISODE_RECORD,
            &encode_payload(&ep).unwrap(),
        )
        .await
        .unwrap();
        let q = encode_payload(&EpisodeQuery {
            text: "benchmarks".into(),
            chat: String::new(),
            since_ms: 0,
            until_ms: 0,
            limit: 5,
        })
        .unwrap();
        let found: Episodes = typed(&c, "memory", methods::EPISODE_SEARCH, &q)
            .await
            .unwrap();
        assert_eq!(found.episodes.len(), 1);
        assert_eq!(
            (found.episodes[0].id, found.episodes[0].prompt_tokens),
            (id.id, 900)
        );

        // Accounts are written by chat gateways only (the Telegram tests
        // show one doing it); a connection that is no service is refused
        // and nothing is written.
        let seen = encode_payload(&AccountSeen {
            user_id: "7".into(),
            name: "Mallory".into(),
            username: String::new(),
            language: String::new(),
            chat: "telegram:7".into(),
        })
        .unwrap();
        let e = c
            .request(
                oi_ipc_schema::memory::SERVICE,
                methods::ACCOUNT_SEEN,
                &seen,
                CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::Denied, "{e}");
        assert!(e.to_string().contains("for chat gateways"), "{e}");
        let listed = tool(&c, methods::ACCOUNT_LIST, json!({})).await.unwrap();
        assert_eq!(listed, json!({"accounts": []}));
        let e = tool(&c, methods::ACCOUNT_FORGET, json!({"gateway": "telegram"}))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("'gateway' and 'user_id'"), "{e}");
    });
    let o = d.oictl(&["memory", "accounts"]);
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("ACCOUNT"),
        "{}",
        out(&o)
    );
}

#[test]
fn kill_9_of_memory_during_a_write_loop_loses_no_acknowledged_write() {
    let d = Daemon::start(&memory_config(""));
    let pid = d.ready_pid("memory");
    let rt = bus_runtime();
    rt.block_on(async {
        let c = d.bus_client().await;
        let mut acked = HashSet::new();
        let mut failed = 0;
        for i in 0..400 {
            if i == 150 {
                signal(pid, libc::SIGKILL);
            }
            match tool(&c, "memory_save", json!({"text": format!("fact {i}")})).await {
                Ok(r) => {
                    acked.insert(r["id"].as_i64().unwrap());
                }
                Err(_) => failed += 1,
            }
        }
        assert!(failed <= 1, "{failed} writes failed");
        let mut present = HashSet::new();
        for offset in [0, 200, 400] {
            let r = tool(&c, "memory_list", json!({"limit": 200, "offset": offset}))
                .await
                .unwrap();
            for m in r["memories"].as_array().unwrap() {
                present.insert(m["id"].as_i64().unwrap());
            }
        }
        let lost: Vec<_> = acked.difference(&present).collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
        assert!(acked.len() >= 399);
    });
    assert_ne!(d.ready_pid("memory"), pid, "memory was not restarted");
}

/// `[embeddings]` pointing at a fake OpenAI-compatible server.
fn embeddings_config(base_url: &str) -> String {
    config_enabling(
        &["memory", "llm-router"],
        "",
        &format!(
            "[embeddings]\nkind = \"openai\"\nbase_url = \"{base_url}\"\nmodel = \"toy-embed\"\nno_key = true\n\n[memory]\nembed_timeout_ms = 3000\n"
        ),
    )
}

fn search(d: &Daemon, args: &[&str]) -> Value {
    let mut a = vec!["memory", "search", "--json"];
    a.extend_from_slice(args);
    let o = d.oictl(&a);
    assert!(o.status.success(), "{}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn stats(d: &Daemon) -> Value {
    let o = d.oictl(&["memory", "stats", "--json"]);
    assert!(o.status.success(), "{}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn provider_embeddings_through_the_router_fall_back_to_local_and_backfill() {
    use oi_llm_router::fake::{FakeProvider, Reply, toy_semantic_embedding};
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    fake.set_embedder(toy_semantic_embedding);
    let d = Daemon::start(&embeddings_config(&fake.url("/v1")));
    d.ready_pid("memory");
    d.ready_pid("llm-router");
    let facts = [
        "The user enjoys a double espresso every morning",
        "Deploy the staging server on Fridays",
        "Alice's birthday is in September",
        "The office wifi password rotates monthly",
    ];
    for t in facts {
        let o = d.oictl(&["memory", "save", t]);
        assert!(o.status.success(), "{}", out(&o));
    }
    // Each save was embedded by the provider, through the router, in the
    // OpenAI wire format.
    let reqs = fake.embedding_requests();
    let embedded: Vec<&str> = reqs
        .iter()
        .filter_map(|r| r.body["input"][0].as_str())
        .collect();
    for t in facts {
        assert!(embedded.contains(&t), "{t} not embedded: {embedded:?}");
    }
    assert!(
        reqs.iter()
            .all(|r| r.path == "/v1/embeddings" && r.body["model"] == "toy-embed")
    );
    let st = stats(&d);
    assert_eq!(st["provider_vectors"], 4, "{st}");
    assert_eq!(st["provider_dimensions"], 16, "{st}");
    assert_eq!(st["embeddings"], "provider", "{st}");

    // A paraphrase with no word in common: only the provider's embedding
    // finds it.
    let r = search(&d, &["--mode", "vector", "favourite", "coffee"]);
    assert_eq!(r["via"], "provider", "{r}");
    assert_eq!(r["results"][0]["text"], facts[0], "{r}");

    // The provider goes down: saving still works (acknowledged, with the
    // local embedding), and search falls back to the local embedding.
    fake.fail_embeddings(Some(Reply::status(503, &[], "upstream connect error")));
    let o = d.oictl(&["memory", "save", "Rex the puppy sleeps all day"]);
    assert!(o.status.success(), "{}", out(&o));
    let r = search(&d, &["espresso"]);
    assert_eq!(r["via"], "local", "{r}");
    assert_eq!(r["results"][0]["text"], facts[0], "{r}");
    let st = stats(&d);
    assert_eq!(
        (st["facts"].as_u64(), st["provider_vectors"].as_u64()),
        (Some(5), Some(4)),
        "{st}"
    );
    assert!(
        st["embeddings"]
            .as_str()
            .unwrap()
            .starts_with("local for now"),
        "{st}"
    );

    // Back up: the backfill gives the new fact its vector, and search uses
    // the provider again.
    fake.fail_embeddings(None);
    wait_for(Duration::from_secs(20), "the backfill", || {
        (stats(&d)["provider_vectors"] == 5).then_some(())
    });
    let r = search(&d, &["--mode", "vector", "my", "pet"]);
    assert_eq!(r["via"], "provider", "{r}");
    assert_eq!(
        r["results"][0]["text"], "Rex the puppy sleeps all day",
        "{r}"
    );
    drop(d);
    drop(rt);
}

#[test]
fn episode_retention_runs_in_the_service_while_it_serves() {
    let d = Daemon::start(&memory_config(
        "[memory]\nepisode_max_count = 3\nretention_check_secs = 1\n",
    ));
    d.ready_pid("memory");
    let rt = bus_runtime();
    rt.block_on(async {
        let c = d.bus_client().await;
        for i in 1..=6 {
            let e = encode_payload(&Episode {
                id: 0,
                chat: "cli".into(),
                intent: format!("intent {i}"),
                answer: "done".into(),
                tool_calls_json: "[]".into(),
                prompt_tokens: 1,
                completion_tokens: 1,
                provider: "fake".into(),
                ts_ms: 1_700_000_000_000 + i,
            })
            .unwrap();
            typed::<EpisodeId>(&c, "memory", methods::EPISODE_RECORD, &e)
                .await
                .unwrap();
        }
        let q = encode_payload(&EpisodeQuery {
            text: String::new(),
            chat: String::new(),
            since_ms: 0,
            until_ms: 0,
            limit: 100,
        })
        .unwrap();
        let t0 = std::time::Instant::now();
        loop {
            let found: Episodes = typed(&c, "memory", methods::EPISODE_SEARCH, &q)
                .await
                .unwrap();
            let intents: Vec<&str> = found.episodes.iter().map(|e| e.intent.as_str()).collect();
            if intents == ["intent 6", "intent 5", "intent 4"] {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "retention did not run: {intents:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(d.log_text().contains("episode retention"), "not logged");
}

#[test]
fn memory_answers_at_once_on_a_big_database_and_indexes_in_the_background() {
    use oi_memory::store::{ANN_THRESHOLD, Store, Tuning};
    let home = new_home();
    let data = home.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    {
        let s = Store::open(&data.join("memory.db"), &Tuning::default()).unwrap();
        for i in 0..ANN_THRESHOLD * 3 {
            let t = format!("note {i}: topic {} and item {}", i % 89, i % 131);
            s.save_fact(&t, &[], "t", None).unwrap();
        }
    }
    // A start timeout far below what the index takes to build on a small
    // machine: the service must be ready without waiting for it.
    let d = Daemon::start_in(
        home,
        &memory_config("[services.memory]\nstart_timeout_secs = 1\n"),
        &[],
    );
    d.ready_pid("memory");
    let r = search(&d, &["--mode", "vector", "note 4242: topic 59 and item 50"]);
    assert_eq!(
        r["results"][0]["text"], "note 4242: topic 59 and item 50",
        "{r}"
    );
    wait_for(Duration::from_secs(120), "the background index", || {
        (stats(&d)["local_indexed"] == true).then_some(())
    });
    let r = search(&d, &["--mode", "vector", "note 777: topic 65 and item 122"]);
    assert_eq!(
        r["results"][0]["text"], "note 777: topic 65 and item 122",
        "{r}"
    );
    assert_eq!(d.service("memory")["restarts"], 0);
    assert!(d.log_text().contains("vector index built"), "not logged");

    // The index was saved beside the database; killed and restarted, the
    // service loads it, with the fact saved meanwhile added to it.
    wait_for(Duration::from_secs(30), "the index saved", || {
        d.log_text().contains("vector index saved").then_some(())
    });
    assert!(d.path("data/memory.db.local.hnsw").exists());
    assert!(d.path("data/memory.db.local.hnsw.json").exists());
    let o = d.oictl(&["memory", "save", "a fact saved after the index was"]);
    assert!(o.status.success(), "{}", out(&o));
    let pid = d.ready_pid("memory");
    signal(pid, libc::SIGKILL);
    d.new_ready_pid("memory", pid);
    let loaded = wait_for(Duration::from_secs(60), "the index loaded", || {
        d.log_text()
            .lines()
            .find(|l| l.contains("vector index loaded"))
            .map(str::to_string)
    });
    assert!(
        loaded.contains("added=1") && loaded.contains("removed=0"),
        "{loaded}"
    );
    assert!(stats(&d)["local_indexed"] == true);
    let r = search(
        &d,
        &["--mode", "vector", "a fact saved after the index was"],
    );
    assert_eq!(
        r["results"][0]["text"], "a fact saved after the index was",
        "{r}"
    );
    assert_eq!(
        d.log_text().matches("vector index built").count(),
        1,
        "built once, then loaded"
    );
}

#[test]
fn a_provider_that_cannot_work_is_asked_ever_less_often() {
    // The shipped embeddings (OpenAI) with no key: the router can only say
    // so. The backfill used to ask every 2 s, forever (an audit row and
    // log lines each time); now its pauses double up to 5 minutes.
    let cfg = config_enabling(
        &["memory", "llm-router"],
        "",
        "[embeddings]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\nmodel = \"text-embedding-3-small\"\napi_key_env = \"OI_E2E_NO_SUCH_KEY\"\n",
    );
    let d = Daemon::start(&cfg);
    d.ready_pid("memory");
    d.ready_pid("llm-router");
    assert!(
        d.oictl(&["memory", "save", "a fact the provider never embeds"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_secs(20));
    let rows =
        String::from_utf8_lossy(&d.oictl(&["audit", "--json", "-n", "500"]).stdout).into_owned();
    let asked = rows.matches("provider:embeddings").count();
    // Every 2 s would be 10 or more; doubling from 2 s is 0, 2, 6, 14 s,
    // plus the save's own request.
    assert!(
        (2..=6).contains(&asked),
        "{asked} embedding requests in 20 s: {rows}"
    );
}
