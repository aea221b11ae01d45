//! The router against fake providers on 127.0.0.1 that speak each wire
//! format, with scripted faults.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oi_ipc_schema::llm::{ChatMessage, ChatRequest, StreamEvent, ToolDef};
use oi_kernel::config::Config;
use oi_llm_router::config::{RouterConfig, SECTIONS};

/// The router's sections of `toml` laid over the defaults, checked as
/// `openintentd` checks them.
fn router_config(toml: &str) -> RouterConfig {
    let config = Config::parse_checked(Some(toml), Path::new("test.toml"), Some(SECTIONS));
    RouterConfig::of(&config.unwrap()).unwrap()
}
use oi_llm_router::deployments::{KeySource, from_config};
use oi_llm_router::fake::{FakeProvider, Reply, anthropic, gemini, openai};
use oi_llm_router::health::{Clock, Health, ManualClock, SystemClock};
use oi_llm_router::router::{Router, RouterError};
use oi_llm_router::{cooldown_policy, settings};
use serde_json::json;
use tokio::sync::mpsc;

struct TestKeys;
impl KeySource for TestKeys {
    fn env(&self, name: &str) -> Option<String> {
        name.starts_with("KEY_")
            .then(|| format!("sk-test-{}", name.to_lowercase()))
    }
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

/// One deployment of the test cascade.
struct Dep<'a> {
    alias: &'a str,
    kind: &'a str,
    /// Credential variable (deployments sharing it share auth failures).
    key: &'a str,
    window: u32,
}

fn dep<'a>(alias: &'a str, kind: &'a str) -> Dep<'a> {
    Dep {
        alias,
        kind,
        key: alias,
        window: 128_000,
    }
}

struct Env {
    fakes: Vec<FakeProvider>,
    router: Router,
    clock: Arc<ManualClock>,
}

/// 2 s stall limits: a fake answers within milliseconds, and a loaded
/// machine must not make that look like a stall (1 s could).
const CASCADE: &str = "cooldown_secs = 120\nmax_cooldown_secs = 3600\nauth_cooldown_secs = 3600\nfirst_token_timeout_secs = 2\nidle_timeout_secs = 2\nmax_attempts = 6\n";

async fn env_with(deps: &[Dep<'_>], cascade: &str, clock: Option<Arc<dyn Clock>>) -> Env {
    let mut fakes = Vec::new();
    let mut toml = String::new();
    let mut order = Vec::new();
    for d in deps {
        let f = FakeProvider::start().await.unwrap();
        // As a provider does: a chat request without this key is a 401.
        f.expect_key(&format!(
            "sk-test-key_{}",
            d.key.to_lowercase().replace('-', "_")
        ));
        let path = if d.kind == "gemini" { "/v1beta" } else { "/v1" };
        toml.push_str(&format!(
            "[models.{}]\nkind = \"{}\"\nbase_url = \"{}\"\nmodel = \"m-{}\"\napi_key_env = \"KEY_{}\"\ncontext_window = {}\n\n",
            d.alias,
            d.kind,
            f.url(path),
            d.alias,
            d.key.to_uppercase().replace('-', "_"),
            d.window
        ));
        order.push(format!("\"{}\"", d.alias));
        fakes.push(f);
    }
    toml.push_str(&format!(
        "[cascade]\norder = [{}]\n{cascade}",
        order.join(", ")
    ));
    let config = router_config(&toml);
    let manual = Arc::new(ManualClock::default());
    let clock: Arc<dyn Clock> = clock.unwrap_or_else(|| manual.clone());
    let health = Health::new(clock, cooldown_policy(&config));
    let router = Router::new(from_config(&config, &TestKeys), health, settings(&config));
    Env {
        fakes,
        router,
        clock: manual,
    }
}

async fn env(deps: &[Dep<'_>]) -> Env {
    env_with(deps, CASCADE, None).await
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user(text),
    ])
}

fn tools() -> Vec<ToolDef> {
    ["web_search", "fs_read_file", "fs_write_file"]
        .iter()
        .map(|n| ToolDef {
            name: n.to_string(),
            description: format!("the {n} tool"),
            parameters_json: json!({"type": "object", "properties": {"q": {"type": "string"}}})
                .to_string(),
        })
        .collect()
}

const LONG: Duration = Duration::from_secs(20);

impl Env {
    async fn chat(
        &self,
        req: &ChatRequest,
    ) -> Result<oi_ipc_schema::llm::ChatResponse, RouterError> {
        self.router.chat(req, None, LONG, None).await
    }
    /// Streams, returning the events and the result.
    async fn stream(
        &self,
        req: &ChatRequest,
    ) -> (
        Vec<StreamEvent>,
        Result<oi_ipc_schema::llm::ChatResponse, RouterError>,
    ) {
        let (tx, mut rx) = mpsc::channel(1024);
        let r = self.router.chat(req, None, LONG, Some(tx)).await;
        let mut evs = Vec::new();
        while let Ok(e) = rx.try_recv() {
            evs.push(e);
        }
        (evs, r)
    }
    fn cooling(&self, alias: &str) -> bool {
        let d = self
            .router
            .deployments()
            .iter()
            .find(|d| d.alias == alias)
            .unwrap();
        self.router
            .health()
            .snapshot(alias, &d.credential)
            .cooling_until
            .is_some()
    }
}

fn text_of(evs: &[StreamEvent]) -> String {
    evs.iter()
        .filter_map(|e| match e {
            StreamEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn each_wire_format_answers_plain_and_streamed() {
    let e = env(&[
        dep("o", "openai"),
        dep("a", "anthropic"),
        dep("g", "gemini"),
    ])
    .await;
    let cases: [(usize, &str, Reply, Reply); 3] = [
        (
            0,
            "o",
            openai::text("hello from openai"),
            openai::stream_text(&["hello ", "from ", "openai"]),
        ),
        (
            1,
            "a",
            anthropic::text("hello from openai"),
            anthropic::stream_text(&["hello ", "from ", "openai"]),
        ),
        (
            2,
            "g",
            gemini::text("hello from openai"),
            gemini::stream_text(&["hello ", "from ", "openai"]),
        ),
    ];
    for (i, alias, plain, streamed) in cases {
        e.fakes[i].push([plain, streamed]);
        let r = e
            .router
            .chat(&ask("hi"), Some(alias), LONG, None)
            .await
            .unwrap();
        assert_eq!(r.message.content, "hello from openai", "{alias}");
        assert_eq!(r.deployment, alias);
        assert_eq!(r.fallbacks, 0);
        assert!(
            r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0,
            "{alias}: {:?}",
            r.usage
        );
        let (tx, mut rx) = mpsc::channel(64);
        let r = e
            .router
            .chat(&ask("hi"), Some(alias), LONG, Some(tx))
            .await
            .unwrap();
        let mut evs = Vec::new();
        while let Ok(ev) = rx.try_recv() {
            evs.push(ev);
        }
        assert!(evs.len() >= 2, "{alias}: text arrived in pieces: {evs:?}");
        assert_eq!(text_of(&evs), "hello from openai", "{alias}");
        assert_eq!(r.message.content, "hello from openai");
        assert!(
            r.usage.completion_tokens > 0,
            "{alias}: usage reported in stream"
        );
    }
    // What went on the wire, per format.
    let o = &e.fakes[0].requests();
    assert_eq!(o[0].path, "/v1/chat/completions");
    assert_eq!(o[0].header("authorization"), Some("Bearer sk-test-key_o"));
    assert_eq!(o[1].body["stream_options"]["include_usage"], true);
    assert_eq!(o[0].body["messages"][0]["role"], "system");
    let a = &e.fakes[1].requests();
    assert_eq!(a[0].path, "/v1/messages");
    assert_eq!(a[0].header("x-api-key"), Some("sk-test-key_a"));
    assert_eq!(a[0].header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(a[0].body["system"], "You are terse.");
    assert!(a[0].body["max_tokens"].as_u64().unwrap() > 0);
    let g = &e.fakes[2].requests();
    assert_eq!(g[0].path, "/v1beta/models/m-g:generateContent");
    assert_eq!(
        g[1].path,
        "/v1beta/models/m-g:streamGenerateContent?alt=sse"
    );
    assert_eq!(g[0].header("x-goog-api-key"), Some("sk-test-key_g"));
    assert_eq!(
        g[0].body["systemInstruction"]["parts"][0]["text"],
        "You are terse."
    );
}

#[tokio::test]
async fn rate_limit_hints_in_every_format_fail_over_at_once_and_set_the_cooldown() {
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(900));
    let cases: Vec<(&str, Reply)> = vec![
        (
            "retry-after-ms",
            Reply::status(
                429,
                &[("retry-after-ms", "900000")],
                r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#,
            ),
        ),
        (
            "retry-after seconds",
            Reply::status(429, &[("retry-after", "900")], "{}"),
        ),
        (
            "retry-after date",
            Reply::status(429, &[("retry-after", &date)], "{}"),
        ),
        (
            "x-ratelimit-reset",
            Reply::status(429, &[("x-ratelimit-reset-requests", "15m0s")], "{}"),
        ),
        ("gemini retryDelay", gemini::rate_limited("900s")),
        ("no hint", Reply::status(429, &[], "{}")),
    ];
    for (name, reply) in cases {
        let e = env(&[dep("primary", "openai"), dep("backup", "openai")]).await;
        e.fakes[0].push([reply]);
        e.fakes[1].push([openai::text("from backup")]);
        let t0 = Instant::now();
        let r = e.chat(&ask("hi")).await.unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{name}: no sleeping while a healthy deployment exists"
        );
        assert_eq!(r.message.content, "from backup", "{name}");
        assert_eq!(r.fallbacks, 1);
        assert_eq!(r.attempts[0].class, "rate_limited", "{name}");
        assert_eq!(r.attempts[0].status, 429);
        let want = if name == "no hint" { 120_000 } else { 900_000 };
        let got = r.attempts[0].cooldown_ms;
        assert!(
            got.abs_diff(want) <= 2_000,
            "{name}: cooldown {got} ms, want {want}"
        );
        assert!(e.cooling("primary"));
        assert!(!e.cooling("backup"));
    }
}

#[tokio::test]
async fn auth_quota_and_missing_model_cool_down_long_and_per_credential() {
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "401",
            Reply::status(
                401,
                &[],
                r#"{"error":{"message":"Incorrect API key provided: sk-abcdefghijklmnopqrstuvwxyz"}}"#,
            ),
            "auth",
        ),
        (
            "quota",
            Reply::status(
                429,
                &[],
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
            ),
            "quota_exhausted",
        ),
        (
            "404",
            Reply::status(
                404,
                &[],
                r#"{"error":{"message":"model not found","code":"model_not_found"}}"#,
            ),
            "model_not_found",
        ),
    ];
    for (name, reply, class) in cases {
        // a1 and a2 share a credential; b has its own.
        let e = env(&[
            Dep {
                key: "shared",
                ..dep("a1", "openai")
            },
            Dep {
                key: "shared",
                ..dep("a2", "openai")
            },
            dep("b", "openai"),
        ])
        .await;
        e.fakes[0].push([reply]);
        e.fakes[1].set_default(openai::text("from a2"));
        e.fakes[2].push([openai::text("from b")]);
        let r = e.chat(&ask("hi")).await.unwrap();
        assert_eq!(r.attempts[0].class, class, "{name}");
        assert_eq!(r.attempts[0].cooldown_ms, 3_600_000, "{name}");
        assert!(
            !r.attempts[0].message.contains("abcdefghijkl"),
            "keys are redacted"
        );
        if class == "model_not_found" {
            // The model is missing, not the credential: a2 still serves.
            assert_eq!(r.message.content, "from a2", "{name}");
        } else {
            assert_eq!(
                r.message.content, "from b",
                "{name}: a2 shares the bad credential"
            );
            assert_eq!(e.fakes[1].request_count(), 0, "{name}");
        }
    }
}

#[tokio::test]
async fn server_errors_then_success_and_the_primary_returns_after_its_cooldown() {
    let e = env(&[dep("primary", "openai"), dep("backup", "anthropic")]).await;
    e.fakes[0].push([Reply::status(500, &[], "boom")]);
    e.fakes[1].set_default(anthropic::text("backup answers"));
    let r = e.chat(&ask("one")).await.unwrap();
    assert_eq!((r.deployment.as_str(), r.fallbacks), ("backup", 1));
    assert_eq!(r.attempts[0].class, "server_error");
    // While the primary cools, the backup serves without trying it.
    let r = e.chat(&ask("two")).await.unwrap();
    assert_eq!((r.deployment.as_str(), r.fallbacks), ("backup", 0));
    assert_eq!(e.fakes[0].request_count(), 1);
    // Cooldown over: one probe goes to the primary, which is healthy again.
    e.clock.advance(Duration::from_secs(121));
    e.fakes[0].set_default(openai::text("primary again"));
    let r = e.chat(&ask("three")).await.unwrap();
    assert_eq!(r.deployment, "primary");
    assert!(!e.cooling("primary"));
    let r = e.chat(&ask("four")).await.unwrap();
    assert_eq!(r.deployment, "primary");
}

#[tokio::test]
async fn anthropic_529_and_in_band_overloaded_fail_over() {
    let e = env(&[dep("claude", "anthropic"), dep("backup", "openai")]).await;
    e.fakes[0].push([anthropic::overloaded_529()]);
    e.fakes[1].set_default(openai::text("ok"));
    let r = e.chat(&ask("x")).await.unwrap();
    assert_eq!(r.attempts[0].class, "overloaded");
    assert_eq!(r.attempts[0].status, 529);

    let e = env(&[dep("claude", "anthropic"), dep("backup", "openai")]).await;
    e.fakes[0].push([anthropic::stream_overloaded()]);
    e.fakes[1].set_default(openai::stream_text(&["fine ", "here"]));
    let (evs, r) = e.stream(&ask("x")).await;
    let r = r.unwrap();
    assert_eq!(r.attempts[0].class, "overloaded");
    assert_eq!(r.deployment, "backup");
    assert_eq!(
        text_of(&evs),
        "fine here",
        "nothing of the failed attempt reached the caller"
    );
}

#[tokio::test]
async fn stall_before_first_byte_fails_over_after_the_ttft_limit() {
    let e = env(&[dep("slow", "openai"), dep("fast", "gemini")]).await;
    e.fakes[0].push([Reply::Stall]);
    e.fakes[1].set_default(gemini::text("quick"));
    let t0 = Instant::now();
    let r = e.chat(&ask("x")).await.unwrap();
    assert_eq!(r.attempts[0].class, "stalled");
    assert_eq!(r.deployment, "fast");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A stream whose headers come but whose first event never does.
    let e = env(&[dep("slow", "openai"), dep("fast", "gemini")]).await;
    e.fakes[0].push([openai::stream_text(&["never"]).stalling_after(0)]);
    e.fakes[1].set_default(gemini::stream_text(&["quick"]));
    let (evs, r) = e.stream(&ask("x")).await;
    assert_eq!(r.unwrap().attempts[0].class, "stalled");
    assert_eq!(text_of(&evs), "quick");
}

#[tokio::test]
async fn mid_stream_failures_before_output_fail_over_and_after_output_end_the_stream() {
    // Cut after the role chunk (no text yet): transparent.
    let e = env(&[dep("p", "openai"), dep("s", "openai")]).await;
    e.fakes[0].push([openai::stream_text(&["never sent"]).without_last(99).cut()]);
    e.fakes[1].set_default(openai::stream_text(&["from s"]));
    let (evs, r) = e.stream(&ask("x")).await;
    assert_eq!(r.unwrap().deployment, "s");
    assert_eq!(text_of(&evs), "from s");

    // Text already went out, then silence: an explicit error, no splice.
    let e = env(&[dep("p", "openai"), dep("s", "openai")]).await;
    e.fakes[0].push([openai::stream_text(&["partial ", "answer"]).stalling_after(2)]);
    e.fakes[1].set_default(openai::stream_text(&["from s"]));
    let (evs, r) = e.stream(&ask("x")).await;
    assert!(matches!(r, Err(RouterError::StreamBroken { .. })), "{r:?}");
    assert_eq!(text_of(&evs), "partial ");
    assert_eq!(
        e.fakes[1].request_count(),
        0,
        "never spliced onto another provider"
    );
    assert!(e.cooling("p"));

    // The same break for a caller that does not show text as it comes
    // (the agent): nothing was shown, so the backup answers.
    let e = env(&[dep("p", "openai"), dep("s", "openai")]).await;
    e.fakes[0].push([openai::stream_text(&["partial ", "answer"]).stalling_after(2)]);
    e.fakes[1].set_default(openai::stream_text(&["from s"]));
    let mut whole = ask("x");
    whole.deltas = false;
    let (evs, r) = e.stream(&whole).await;
    let r = r.unwrap();
    assert_eq!((r.deployment.as_str(), r.fallbacks), ("s", 1), "{r:?}");
    assert_eq!(r.attempts[0].class, "stalled");
    assert_eq!(r.message.content, "from s");
    assert_eq!(text_of(&evs), "", "no text went out: {evs:?}");

    // Text went out, then the stream ended without [DONE].
    let e = env(&[dep("p", "openai"), dep("s", "openai")]).await;
    e.fakes[0].push([openai::stream_text(&["partial"]).without_last(1)]);
    let (_evs, r) = e.stream(&ask("x")).await;
    match r {
        Err(RouterError::StreamBroken { failure, .. }) => {
            assert!(failure.contains("without its terminator"), "{failure}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_stream_without_terminator_or_with_bad_json_is_a_failure() {
    // No text forwarded yet (tool call only) and no [DONE]: fails over.
    let e = env(&[dep("p", "openai"), dep("s", "anthropic")]).await;
    e.fakes[0].push([
        openai::stream_tool_calls(&[("c1", "web_search", "{\"q\":\"x\"}")], 2).without_last(1),
    ]);
    e.fakes[1].set_default(anthropic::stream_text(&["ok"]));
    let mut req = ask("x");
    req.tools = tools();
    let (_, r) = e.stream(&req).await;
    let r = r.unwrap();
    assert_eq!(r.attempts[0].class, "protocol_error");
    assert!(r.attempts[0].message.contains("terminator"));
    assert!(
        r.message.tool_calls.is_empty(),
        "no tool call from the failed provider"
    );

    let e = env(&[dep("p", "openai"), dep("s", "anthropic")]).await;
    e.fakes[0].push([Reply::sse(&[(None, "{\"choices\": [".into())])]);
    e.fakes[1].set_default(anthropic::stream_text(&["ok"]));
    let (_, r) = e.stream(&ask("x")).await;
    let r = r.unwrap();
    assert_eq!(r.attempts[0].class, "protocol_error");
    assert!(
        r.attempts[0].message.contains("malformed JSON"),
        "{}",
        r.attempts[0].message
    );
}

#[tokio::test]
async fn keep_alive_comments_and_cjk_split_across_reads() {
    let e = env(&[dep("a", "anthropic")]).await;
    let reply = anthropic::stream_text(&["你好", "，世界 🌍"]).with_keepalives();
    let total = reply.stream_len();
    // Re-cut the body at every byte of the CJK region (and a few more).
    for at in (0..total).step_by(7).chain(300..total.min(700)) {
        e.fakes[0].push([reply.clone().resplit(at)]);
        let (evs, r) = e.stream(&ask("x")).await;
        let r = r.unwrap_or_else(|err| panic!("split at {at}: {err}"));
        assert_eq!(r.message.content, "你好，世界 🌍", "split at {at}");
        assert_eq!(text_of(&evs), "你好，世界 🌍");
    }
}

#[tokio::test]
async fn tool_call_deltas_split_at_every_byte_offset_assemble_the_same() {
    let e = env(&[dep("o", "openai"), dep("a", "anthropic")]).await;
    let mut req = ask("find things");
    req.tools = tools();
    let calls = [
        ("call_1", "web_search", "{\"q\":\"rust 異步 runtimes\"}"),
        ("call_2", "fs_read_file", "{\"path\":\"notes/日記.md\"}"),
    ];
    let reply = openai::stream_tool_calls(&calls, 4);
    for at in 0..reply.stream_len() {
        e.fakes[0].push([reply.clone().resplit(at)]);
        let (evs, r) = e.stream(&req).await;
        let r = r.unwrap_or_else(|err| panic!("split at {at}: {err}"));
        let got: Vec<(&str, &str, &str)> = r
            .message
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(got, calls, "split at {at}");
        assert!(r.message.tool_calls.iter().all(|c| c.error.is_empty()));
        assert_eq!(r.finish_reason, "tool_calls");
        let streamed: Vec<_> = evs
            .iter()
            .filter(|e| matches!(e, StreamEvent::ToolCall(_)))
            .collect();
        assert_eq!(streamed.len(), 2, "parallel calls delivered whole");
    }
    let reply = anthropic::stream_tool_use(
        "Let me look.",
        "toolu_01",
        "web_search",
        "{\"q\":\"東京 weather\"}",
        5,
    );
    for at in 0..reply.stream_len() {
        e.fakes[1].push([reply.clone().resplit(at)]);
        let r = e
            .router
            .chat(&req, Some("a"), LONG, Some(mpsc::channel(256).0))
            .await;
        let r = r.unwrap_or_else(|err| panic!("split at {at}: {err}"));
        assert_eq!(
            r.message.content, "Let me look.",
            "text and call in one turn"
        );
        assert_eq!(r.message.tool_calls.len(), 1);
        assert_eq!(r.message.tool_calls[0].id, "toolu_01");
        assert_eq!(
            r.message.tool_calls[0].arguments,
            "{\"q\":\"東京 weather\"}"
        );
    }
}

#[tokio::test]
async fn malformed_arguments_and_text_tool_calls() {
    let e = env(&[dep("o", "openai")]).await;
    let mut req = ask("x");
    req.tools = tools();
    e.fakes[0].push([
        openai::tool_calls(None, &[("c1", "web_search", "{\"q\": \"unterminated")]),
        openai::text("<tool_call>\n{\"name\": \"fs_read_file\", \"arguments\": {\"path\": \"a.txt\"}}\n</tool_call>"),
    ]);
    let r = e.chat(&req).await.unwrap();
    let c = &r.message.tool_calls[0];
    assert!(c.error.contains("not valid JSON"), "{}", c.error);
    assert_eq!(c.arguments, "{\"q\": \"unterminated");
    let r = e.chat(&req).await.unwrap();
    assert_eq!(r.message.tool_calls.len(), 1, "recovered from text");
    assert_eq!(r.message.tool_calls[0].name, "fs_read_file");
    assert_eq!(r.message.content, "");
    assert_eq!(r.finish_reason, "tool_calls");
    assert!(r.message.tool_calls[0].id.starts_with("call_"));
}

#[tokio::test]
async fn groq_tool_use_failed_moves_on_without_cooling() {
    let e = env(&[dep("groq", "openai"), dep("backup", "openai")]).await;
    e.fakes[0].push([Reply::status(
        400,
        &[],
        r#"{"error":{"message":"Failed to call a function. Please adjust your prompt.","type":"invalid_request_error","code":"tool_use_failed","failed_generation":"<function=web_search>{\"q\": 1</function>"}}"#,
    )]);
    e.fakes[1].push([openai::tool_calls(
        None,
        &[("c9", "web_search", "{\"q\":\"x\"}")],
    )]);
    let mut req = ask("x");
    req.tools = tools();
    let r = e.chat(&req).await.unwrap();
    assert_eq!(r.attempts[0].class, "tool_use_failed");
    assert_eq!(r.deployment, "backup");
    assert!(!e.cooling("groq"), "a botched tool call is not an outage");
}

#[tokio::test]
async fn plain_bad_requests_and_content_policy_go_back_to_the_caller() {
    let e = env(&[dep("p", "openai"), dep("s", "openai")]).await;
    e.fakes[0].push([
        Reply::status(
            400,
            &[],
            r#"{"error":{"message":"messages[1].role is invalid"}}"#,
        ),
        Reply::status(
            400,
            &[],
            r#"{"error":{"message":"flagged","code":"content_policy_violation"}}"#,
        ),
    ]);
    e.fakes[1].set_default(openai::text("should not be asked"));
    let err = e.chat(&ask("x")).await.unwrap_err();
    assert!(
        err.to_string().contains("messages[1].role is invalid"),
        "{err}"
    );
    let err = e.chat(&ask("x")).await.unwrap_err();
    assert!(err.to_string().contains("content_policy"), "{err}");
    assert_eq!(e.fakes[1].request_count(), 0);
    assert!(!e.cooling("p"));
}

#[tokio::test]
async fn context_overflow_goes_only_to_a_larger_window() {
    let e = env(&[
        Dep {
            window: 8_000,
            ..dep("small", "openai")
        },
        Dep {
            window: 4_000,
            ..dep("smaller", "anthropic")
        },
        Dep {
            window: 200_000,
            ..dep("large", "gemini")
        },
    ])
    .await;
    e.fakes[0].push([Reply::status(400, &[], r#"{"error":{"message":"This model's maximum context length is 8000 tokens","code":"context_length_exceeded"}}"#)]);
    e.fakes[1].set_default(anthropic::text("too small to be asked"));
    e.fakes[2].push([gemini::text("the big one")]);
    let r = e.chat(&ask("a very long prompt")).await.unwrap();
    assert_eq!(r.deployment, "large");
    assert_eq!(r.attempts[0].class, "context_overflow");
    assert_eq!(
        e.fakes[1].request_count(),
        0,
        "a smaller window is never tried"
    );
    assert!(
        !e.cooling("small"),
        "an overflow is not the provider's fault"
    );
}

#[tokio::test]
async fn all_cooling_names_the_earliest_time_or_waits_when_it_fits() {
    let e = env(&[dep("p", "openai"), dep("s", "openai")]).await;
    e.fakes[0].push([Reply::status(429, &[("retry-after", "300")], "{}")]);
    e.fakes[1].push([Reply::status(503, &[], "down")]);
    let err = e.chat(&ask("x")).await.unwrap_err();
    match &err {
        RouterError::AllCooling { alias, secs, at } => {
            assert_eq!(
                alias, "s",
                "the backup's 120 s ends before the primary's 300 s"
            );
            assert!((110..=120).contains(secs), "{secs}");
            assert!(at.ends_with("GMT"), "{at}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("available again at"));

    // A short cooldown that fits the deadline is waited out.
    let e = env_with(
        &[dep("only", "openai")],
        "cooldown_secs = 1\nmax_cooldown_secs = 1\nfirst_token_timeout_secs = 2\nidle_timeout_secs = 2\n",
        Some(Arc::new(SystemClock)),
    )
    .await;
    e.fakes[0].push([
        Reply::status(429, &[], "{}"),
        openai::text("after the wait"),
    ]);
    let t0 = Instant::now();
    let r = e.chat(&ask("x")).await.unwrap();
    assert_eq!(r.message.content, "after the wait");
    assert_eq!(r.attempts.len(), 2);
    assert!(t0.elapsed() >= Duration::from_millis(900));

    // A streamed caller is told what the router waits for, before it waits.
    e.fakes[0].push([
        Reply::status(429, &[], "{}"),
        openai::stream_text(&["after ", "the wait"]),
    ]);
    let (evs, r) = e.stream(&ask("x")).await;
    assert_eq!(r.unwrap().message.content, "after the wait");
    let waiting: Vec<&String> = evs
        .iter()
        .filter_map(|ev| match ev {
            StreamEvent::Waiting(w) => Some(w),
            _ => None,
        })
        .collect();
    assert_eq!(waiting.len(), 1, "{evs:?}");
    assert!(
        waiting[0].starts_with("waiting 1 s for a model") && waiting[0].contains("only first back"),
        "{}",
        waiting[0]
    );
    assert!(
        matches!(evs.first(), Some(StreamEvent::Waiting(_))),
        "{evs:?}"
    );
}

#[tokio::test]
async fn a_cooldown_longer_than_the_wait_cap_is_answered_at_once() {
    // The deadline (20 s) would fit the 3 s cooldown, but the cap is 1 s:
    // the caller hears when the provider is back, instead of silence.
    let e = env_with(
        &[dep("only", "openai")],
        "cooldown_secs = 3\nmax_cooldown_secs = 3\nmax_cooldown_wait_secs = 1\nfirst_token_timeout_secs = 2\nidle_timeout_secs = 2\n",
        Some(Arc::new(SystemClock)),
    )
    .await;
    e.fakes[0].push([Reply::status(503, &[], "down"), openai::text("not asked")]);
    let t0 = Instant::now();
    let err = e.chat(&ask("x")).await.unwrap_err();
    assert!(matches!(err, RouterError::AllCooling { .. }), "{err}");
    assert!(err.to_string().contains("available again at"), "{err}");
    assert!(
        t0.elapsed() < Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(e.fakes[0].request_count(), 1);
}

#[tokio::test]
async fn a_cancelled_request_does_not_cool_the_provider_down() {
    let e = env(&[dep("p", "openai"), dep("s", "openai")]).await;
    e.fakes[0].push([Reply::Stall]);
    let req = ask("x");
    // The caller gives up (its future is dropped) before the TTFT limit.
    let r = tokio::time::timeout(Duration::from_millis(300), e.chat(&req)).await;
    assert!(r.is_err());
    assert!(!e.cooling("p"));
    e.fakes[0].push([openai::text("still the primary")]);
    let r = e.chat(&req).await.unwrap();
    assert_eq!(r.deployment, "p");
    // The caller's own short deadline does not cool it down either.
    e.fakes[0].push([Reply::Stall]);
    let err = e
        .router
        .chat(&req, None, Duration::from_millis(300), None)
        .await
        .unwrap_err();
    assert!(matches!(err, RouterError::Deadline { .. }), "{err:?}");
    assert!(!e.cooling("p"));
    assert_eq!(e.fakes[1].request_count(), 0);
}

#[tokio::test]
async fn missing_keys_are_skipped_and_reported() {
    let toml = "[cascade]\norder = [\"claude\", \"gpt4o\"]\n";
    let config = router_config(toml);
    struct NoKeys;
    impl KeySource for NoKeys {
        fn env(&self, _: &str) -> Option<String> {
            None
        }
        fn secret(&self, _: &str) -> Option<String> {
            None
        }
    }
    let router = Router::new(
        from_config(&config, &NoKeys),
        Health::new(Arc::new(SystemClock), cooldown_policy(&config)),
        settings(&config),
    );
    let err = router.chat(&ask("x"), None, LONG, None).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("$ANTHROPIC_API_KEY") && msg.contains("$OPENAI_API_KEY"),
        "{msg}"
    );
    assert!(msg.contains("llama.cpp or Ollama"), "{msg}");
    let err = router
        .chat(&ask("x"), Some("nope"), LONG, None)
        .await
        .unwrap_err();
    assert_eq!(err, RouterError::UnknownAlias("nope".into()));
}

#[tokio::test]
async fn conversations_translate_faithfully_between_formats() {
    let e = env(&[
        dep("g", "gemini"),
        dep("a", "anthropic"),
        dep("o", "openai"),
    ])
    .await;
    let mut req = ask("read two files");
    req.tools = vec![ToolDef {
        name: "fs_read_file".into(),
        description: "read".into(),
        parameters_json: json!({"type": "object", "additionalProperties": false, "properties": {"path": {"type": ["string", "null"]}}}).to_string(),
    }];
    // Gemini makes two calls without ids, the first with a thought signature.
    e.fakes[0].push([gemini::function_calls(
        &[
            ("fs_read_file", json!({"path": "a"})),
            ("fs_read_file", json!({"path": "b"})),
        ],
        Some("sig-123"),
    )]);
    let r = e.router.chat(&req, Some("g"), LONG, None).await.unwrap();
    let calls = r.message.tool_calls.clone();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].id.starts_with("call_") && calls[0].id != calls[1].id);
    let g_body = &e.fakes[0].requests()[0].body;
    assert_eq!(
        g_body["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object", "properties": {"path": {"type": "string", "nullable": true}}})
    );
    // The conversation continues with both results.
    req.messages.push(r.message.clone());
    req.messages.push(ChatMessage::tool_result(
        &calls[0].id,
        "fs_read_file",
        "{\"text\":\"A\"}",
    ));
    req.messages.push(ChatMessage::tool_result(
        &calls[1].id,
        "fs_read_file",
        "plain B",
    ));

    // Sent back to Gemini: signature restored, responses as objects.
    e.fakes[0].push([gemini::text("done")]);
    e.router.chat(&req, Some("g"), LONG, None).await.unwrap();
    let body = &e.fakes[0].requests()[1].body;
    let contents = body["contents"].as_array().unwrap();
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(contents[1]["parts"][0]["thoughtSignature"], "sig-123");
    assert_eq!(contents[2]["role"], "user");
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"]["response"],
        json!({"text": "A"})
    );
    assert_eq!(
        contents[2]["parts"][1]["functionResponse"]["response"],
        json!({"result": "plain B"})
    );

    // To Anthropic: both results merged into one user message; no Gemini extras.
    e.fakes[1].push([anthropic::text("done")]);
    e.router.chat(&req, Some("a"), LONG, None).await.unwrap();
    let body = &e.fakes[1].requests()[0].body;
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    assert_eq!(msgs[1]["content"][0]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][0]["id"], calls[0].id.as_str());
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
    assert_eq!(msgs[2]["content"][1]["tool_use_id"], calls[1].id.as_str());
    assert!(
        !body.to_string().contains("sig-123"),
        "extras go back only to their origin"
    );

    // To OpenAI: assistant tool_calls with the canonical ids, tool messages.
    e.fakes[2].push([openai::text("done")]);
    e.router.chat(&req, Some("o"), LONG, None).await.unwrap();
    let body = &e.fakes[2].requests()[0].body;
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs[2]["tool_calls"][1]["id"], calls[1].id.as_str());
    assert_eq!(msgs[2]["content"], serde_json::Value::Null);
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[4]["tool_call_id"], calls[1].id.as_str());
}

#[tokio::test]
async fn reasoning_content_goes_back_only_to_its_origin() {
    let e = env(&[dep("r1", "openai"), dep("other", "openai")]).await;
    e.fakes[0].push([Reply::json(200, json!({
        "model": "deepseek-reasoner",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "",
            "reasoning_content": "think think",
            "tool_calls": [{"id": "call_x", "type": "function", "function": {"name": "web_search", "arguments": "{}"}}]}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}}))]);
    let mut req = ask("x");
    req.tools = tools();
    let r = e.router.chat(&req, Some("r1"), LONG, None).await.unwrap();
    req.messages.push(r.message);
    req.messages
        .push(ChatMessage::tool_result("call_x", "web_search", "[]"));
    e.fakes[0].push([openai::text("a")]);
    e.fakes[1].push([openai::text("b")]);
    e.router.chat(&req, Some("r1"), LONG, None).await.unwrap();
    e.router
        .chat(&req, Some("other"), LONG, None)
        .await
        .unwrap();
    assert_eq!(
        e.fakes[0].requests()[1].body["messages"][2]["reasoning_content"],
        "think think"
    );
    assert!(
        e.fakes[1].requests()[0].body["messages"][2]
            .get("reasoning_content")
            .is_none()
    );
}

#[tokio::test]
async fn without_cooldowns_a_failed_deployment_is_not_retried_in_the_same_request() {
    let e = env_with(
        &[dep("p", "openai"), dep("s", "openai")],
        "cooldown_secs = 0\nmax_cooldown_secs = 0\n",
        None,
    )
    .await;
    e.fakes[0].set_default(Reply::status(429, &[], "{}"));
    e.fakes[1].set_default(openai::text("ok"));
    for _ in 0..3 {
        let r = e.chat(&ask("x")).await.unwrap();
        assert_eq!((r.deployment.as_str(), r.fallbacks), ("s", 1));
    }
    assert_eq!(
        e.fakes[0].request_count(),
        3,
        "tried once per request, first each time"
    );
}

/// A router whose `[embeddings]` is a fake speaking `kind`, its health
/// on `clock`.
async fn embed_env(kind: &str, extra: &str, clock: Arc<dyn Clock>) -> (FakeProvider, Router) {
    let f = FakeProvider::start().await.unwrap();
    f.set_embedder(oi_llm_router::fake::toy_semantic_embedding);
    let path = if kind == "gemini" { "/v1beta" } else { "/v1" };
    let toml = format!(
        "[embeddings]\nkind = \"{kind}\"\nbase_url = \"{}\"\nmodel = \"embed-1\"\napi_key_env = \"KEY_EMBED\"\n{extra}\n[cascade]\n{CASCADE}",
        f.url(path)
    );
    let config = router_config(&toml);
    let chat_health = Health::new(Arc::new(SystemClock), cooldown_policy(&config));
    let router = Router::new(Vec::new(), chat_health, settings(&config)).with_embeddings(
        oi_llm_router::deployments::embeddings_from_config(&config, &TestKeys),
        config.embeddings.dimensions,
        Health::new(clock, oi_llm_router::embed::cooldown_policy(&config)),
    );
    (f, router)
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("text {i} about espresso")).collect()
}

#[tokio::test]
async fn embeddings_in_both_wire_formats_come_back_in_order_normalised_and_batched() {
    for kind in ["openai", "gemini"] {
        let (f, router) = embed_env(kind, "dimensions = 16", Arc::new(SystemClock)).await;
        let input = texts(200);
        let r = router.embed(&input, LONG).await.unwrap();
        assert_eq!(r.vectors.len(), 200, "{kind}");
        assert_eq!(r.dimensions, 16);
        let base = f.url(if kind == "gemini" { "/v1beta" } else { "/v1" });
        assert_eq!(r.space, format!("{kind} {base} embed-1 16"));
        for (t, v) in input.iter().zip(&r.vectors) {
            let want = oi_llm_router::fake::toy_semantic_embedding(t);
            let d: f32 = v.iter().zip(&want).map(|(a, b)| a * b).sum();
            assert!((d - 1.0).abs() < 1e-5, "{kind}: vector out of order");
        }
        // 200 texts in batches of at most 96.
        let reqs = f.embedding_requests();
        assert_eq!(reqs.len(), 3, "{kind}");
        let r0 = &reqs[0];
        if kind == "openai" {
            assert_eq!(r0.path, "/v1/embeddings");
            assert_eq!(r0.body["model"], "embed-1");
            assert_eq!(r0.body["encoding_format"], "float");
            assert_eq!(r0.body["dimensions"], 16);
            assert_eq!(r0.body["input"].as_array().unwrap().len(), 96);
            assert_eq!(r0.header("authorization"), Some("Bearer sk-test-key_embed"));
        } else {
            assert_eq!(r0.path, "/v1beta/models/embed-1:batchEmbedContents");
            let q = &r0.body["requests"][0];
            assert_eq!(q["model"], "models/embed-1");
            assert_eq!(q["content"]["parts"][0]["text"], "text 0 about espresso");
            assert_eq!(q["outputDimensionality"], 16);
            assert_eq!(r0.header("x-goog-api-key"), Some("sk-test-key_embed"));
        }
    }
}

#[tokio::test]
async fn embeddings_wait_out_a_short_rate_limit() {
    let (f, router) = embed_env("openai", "", Arc::new(SystemClock)).await;
    f.fail_embeddings(Some(Reply::status(
        429,
        &[("retry-after", "1")],
        r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#,
    )));
    let t0 = Instant::now();
    let input = texts(2);
    let r = router.embed(&input, LONG);
    let recover = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        f.fail_embeddings(None);
    };
    let (r, ()) = tokio::join!(r, recover);
    assert_eq!(r.unwrap().vectors.len(), 2);
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(f.embedding_requests().len(), 2);
}

#[tokio::test]
async fn embeddings_of_a_dead_provider_cool_longer_each_time_and_answer_at_once() {
    let clock = Arc::new(ManualClock::default());
    let (f, router) = embed_env("openai", "", clock.clone()).await;
    f.fail_embeddings(Some(Reply::status(503, &[], "upstream connect error")));
    // The first failure cools it for 1 s, longer than the caller's
    // 500 ms: "cooling down" after one request, and none for the next.
    let e = router
        .embed(&texts(1), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(e, RouterError::Exhausted(1, _)), "{e}");
    assert!(e.to_string().contains("HTTP 503"), "{e}");
    assert_eq!(f.embedding_requests().len(), 1);
    let t0 = Instant::now();
    let e = router
        .embed(&texts(1), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(e, RouterError::AllCooling { .. }), "{e}");
    // At once: well inside the 500 ms it would have waited.
    assert!(
        t0.elapsed() < Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(
        f.embedding_requests().len(),
        1,
        "a cooling provider is not asked"
    );
    // After the cooldown it is tried again, fails, and cools for 2 s.
    clock.advance(Duration::from_millis(1100));
    router
        .embed(&texts(1), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(f.embedding_requests().len(), 2);
    clock.advance(Duration::from_millis(1100));
    let e = router
        .embed(&texts(1), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(matches!(e, RouterError::AllCooling { .. }), "{e}");
    assert_eq!(
        f.embedding_requests().len(),
        2,
        "the second cooldown is 2 s"
    );
    // Back up: served after its cooldown.
    f.fail_embeddings(None);
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        router.embed(&texts(1), LONG).await.unwrap().vectors.len(),
        1
    );
    // A refused key is not retried and says why.
    f.fail_embeddings(Some(Reply::status(
        401,
        &[],
        r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
    )));
    let e = router.embed(&texts(1), LONG).await.unwrap_err();
    assert!(matches!(e, RouterError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("Incorrect API key"), "{e}");
}

#[tokio::test]
async fn embeddings_answers_that_do_not_fit_are_refused() {
    let (f, router) = embed_env("openai", "", Arc::new(SystemClock)).await;
    f.set_embedder(|t| {
        if t.contains('1') {
            vec![1.0; 3]
        } else {
            vec![1.0; 4]
        }
    });
    let e = router
        .embed(&texts(2), Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("vector 1 has 3 dimensions"), "{e}");
    let none = Router::new(
        Vec::new(),
        router.health().clone(),
        settings(&router_config("")),
    );
    let e = none.embed(&texts(1), LONG).await.unwrap_err();
    assert!(e.to_string().contains("[embeddings] kind is empty"), "{e}");
}
