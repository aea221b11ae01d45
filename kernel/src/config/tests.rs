use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_layers(Some(text), Path::new("/etc/oi/config.toml"))
}

#[test]
fn shipped_defaults_are_complete() {
    let c = Config::defaults();
    assert_eq!(c.bus.max_frame_bytes, 8 * 1024 * 1024);
    assert_eq!(c.bus.heartbeat_interval_ms, 1000);
    assert_eq!(c.supervisor.backoff_max_ms, 30_000);
    assert_eq!(c.supervisor.missed_heartbeats, 3);
    assert_eq!(c.groups["core"].strategy, Strategy::RestForOne);
    assert_eq!(c.groups["adapters"].strategy, Strategy::OneForOne);
    assert_eq!(
        (c.groups["core"].intensity, c.groups["core"].period_secs),
        (5, 30)
    );
    // Every key of every section is present in the file: parsing the
    // defaults over zeroed structs must not leave any zero behind.
    let s = &c.supervisor;
    for v in [
        s.intensity as u64,
        s.period_secs,
        s.backoff_initial_ms,
        s.backoff_max_ms,
        s.min_unready_backoff_ms,
        s.backoff_reset_secs,
        s.start_timeout_secs,
        s.shutdown_timeout_secs,
        s.log_lines as u64,
        s.config_poll_ms,
        c.bus.default_deadline_ms,
    ] {
        assert_ne!(v, 0);
    }
}

#[test]
fn user_file_overrides_key_by_key() {
    let c =
        parse("[supervisor]\nintensity = 9\n\n[services.chaos]\ngroup = \"adapters\"\n").unwrap();
    assert_eq!(c.supervisor.intensity, 9);
    assert_eq!(c.supervisor.period_secs, 120);
    assert_eq!(c.services["chaos"].group, "adapters");
    assert!(c.services["chaos"].enabled);
    assert_eq!(c.services["chaos"].restart, RestartType::Permanent);
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = parse("[bus]\nmax_frame_bytes = = 3\n").unwrap_err();
    assert_eq!(e.location, Some((2, 19)), "{e}");
    assert!(
        e.to_string().starts_with("/etc/oi/config.toml:2:19: "),
        "{e}"
    );
}

#[test]
fn type_error_has_line_column_and_expectation() {
    let e = parse("[supervisor]\n\nintensity = \"five\"\n").unwrap_err();
    assert_eq!(e.location.map(|l| l.0), Some(3), "{e}");
    assert!(
        e.message.contains("u32") || e.message.contains("integer"),
        "{e}"
    );
}

#[test]
fn unknown_key_is_refused_with_its_location() {
    let e = parse("[bus]\nheartbeat_ms = 5\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)), "{e}");
    assert!(e.message.contains("heartbeat_ms"), "{e}");
    let e = parse("[services.x]\nrestart = \"sometimes\"\n").unwrap_err();
    assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
    assert!(e.message.contains("permanent"), "{e}");
}

#[test]
fn semantic_errors_point_at_the_service() {
    let e = parse("[services.a]\ngroup = \"nope\"\n").unwrap_err();
    assert_eq!(e.location, Some((1, 1)));
    assert!(
        e.message.contains("group 'nope', which is not defined"),
        "{e}"
    );
    let e = parse("[services.a]\ndepends_on = [\"b\"]\n[services.b]\ndepends_on = [\"a\"]\n")
        .unwrap_err();
    assert!(e.message.contains("cycle: a -> b -> a"), "{e}");
    let e = parse("[services.a]\ndepends_on = [\"ghost\"]\n").unwrap_err();
    assert!(
        e.message
            .contains("'ghost', which is not a configured service"),
        "{e}"
    );
    let e = parse("[services.Bad]\n").unwrap_err();
    assert!(e.message.contains("may only contain"), "{e}");
}

#[test]
fn timings_outside_their_range_are_refused_with_their_location() {
    for (text, key, line) in [
        (
            "[bus]\nheartbeat_interval_ms = 1\n",
            "bus.heartbeat_interval_ms is 1",
            2,
        ),
        (
            "[bus]\nheartbeat_interval_ms = 99999999999\n",
            "bus.heartbeat_interval_ms is 99999999999",
            2,
        ),
        (
            "[supervisor]\nstart_timeout_secs = 0\n",
            "supervisor.start_timeout_secs is 0",
            2,
        ),
        (
            "[supervisor]\nbackoff_initial_ms = 500\nbackoff_max_ms = 100\n",
            "supervisor.backoff_max_ms is 100; it must be between 500",
            3,
        ),
        (
            "[supervisor]\nmissed_heartbeats = 0\n",
            "supervisor.missed_heartbeats is 0",
            2,
        ),
        (
            "[services.vault]\nstart_timeout_secs = 0\n",
            "services.vault.start_timeout_secs is 0",
            1,
        ),
        (
            "[groups.core]\nperiod_secs = 0\n",
            "groups.core.period_secs is 0",
            1,
        ),
    ] {
        let e = parse(text).unwrap_err();
        assert!(e.message.contains(key), "{text}: {e}");
        assert!(e.message.contains("it must be between"), "{e}");
        assert_eq!(e.location.map(|l| l.0), Some(line), "{text}: {e}");
    }
    // Edges are accepted.
    parse(
        "[bus]\nheartbeat_interval_ms = 50\n[supervisor]\nstart_timeout_secs = 1\nintensity = 0\n",
    )
    .unwrap();
}

#[test]
fn unknown_service_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.toml");
    std::fs::write(&p, "\n[services.mail]\nkind = \"imap\"\n").unwrap();
    let kinds = [
        "vault",
        "memory",
        "llm-router",
        "fs",
        "shell",
        "web",
        "http",
        "agent",
        "telegram",
    ];
    let e = Config::load_checked(&p, Some(&kinds)).unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(
            e.message.contains(
                "kind 'imap', which this build does not have (kinds: vault, memory, llm-router, fs, shell, web, http, agent, telegram)"
            ),
            "{e}"
        );
    assert!(Config::load_checked(&p, None).is_ok());
}

#[test]
fn telegram_settings_and_service_requirements_are_checked_with_their_location() {
    let c = parse("").unwrap();
    assert_eq!(c.telegram.api_base_url, "https://api.telegram.org");
    assert!(c.telegram.allowed_chat_ids.is_empty());
    assert_eq!(
        c.services["telegram"].requires,
        ["env:TELEGRAM_BOT_TOKEN", "secret:telegram-bot-token"]
    );
    let e = parse("[telegram]\npoll_timeout_secs = 90\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(e.message.contains("between 1 and 50"), "{e}");
    let e = parse("\n[telegram]\napi_base_url = \"api.telegram.org\"\n").unwrap_err();
    assert_eq!(e.location, Some((3, 1)));
    assert!(e.message.contains("give an http(s) URL"), "{e}");
    let e = parse("[telegram]\nformat = \"markdown\"\n").unwrap_err();
    assert!(e.message.contains("use html or plain"), "{e}");
    let e = parse("[telegram]\nallowed_chat_ids = [\"me\"]\n").unwrap_err();
    assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
    let e = parse("\n[services.telegram]\nrequires = [\"token:X\"]\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(
        e.message
            .contains("'token:X' is neither 'env:<VARIABLE>' nor 'secret:<vault secret>'"),
        "{e}"
    );
    assert_eq!(
        Requirement::parse("secret:telegram-bot-token"),
        Some(Requirement::Secret("telegram-bot-token".into()))
    );
    assert_eq!(Requirement::parse("env:"), None);
}

#[test]
fn embeddings_and_memory_settings_are_checked_with_their_location() {
    let c = parse("").unwrap();
    assert!(c.embeddings.enabled());
    assert_eq!(c.embeddings.api_key_secret, "openai-api-key");
    assert_eq!(c.memory.retention_check_secs, 60);
    let off = parse("[embeddings]\nkind = \"\"\n").unwrap();
    assert!(!off.embeddings.enabled());
    let e = parse("\n[embeddings]\nkind = \"anthropic\"\n").unwrap_err();
    assert_eq!(e.location, Some((3, 1)));
    assert!(
        e.message.contains("Anthropic has no embeddings endpoint"),
        "{e}"
    );
    let e = parse("[embeddings]\nkind = \"cohere\"\n").unwrap_err();
    assert!(e.message.contains("use openai, gemini"), "{e}");
    let e = parse("[embeddings]\nbase_url = \"localhost:11434\"\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(e.message.contains("must start with http://"), "{e}");
    let e = parse("[memory]\nembed_timeout_ms = 0\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    let e = parse("[embeddings]\ndimensions = -1\n").unwrap_err();
    assert_eq!(e.location.map(|l| l.0), Some(2), "{e}");
}

#[test]
fn intent_patterns_and_agent_limits_are_checked_with_their_location() {
    let e = parse("[intents.patterns.deploy]\nphrases = [\"deploy\"]\ntool = \"shell_execute\"\nrest = \"text\"\n").unwrap_err();
    assert_eq!(e.location, Some((1, 1)));
    assert!(e.message.contains("needs 'argument'"), "{e}");
    let e = parse("\n[intents.patterns.x]\nphrases = [\"x\"]\nanswer = \"weather\"\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(
        e.message.contains("answer is 'weather'; use status, help"),
        "{e}"
    );
    let e = parse("[intents.patterns.status]\ntool = \"fs_list_dir\"\n").unwrap_err();
    assert!(e.message.contains("exactly one of 'answer'"), "{e}");
    let e = parse("[agent]\nmax_react_turns = 0\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(
        e.message
            .contains("agent.max_react_turns must be at least 1"),
        "{e}"
    );
    // A pattern switched off is not checked.
    assert!(parse("[intents.patterns.status]\nenabled = false\ntool = \"x\"\n").is_ok());
}

#[test]
fn adapter_settings_are_checked_with_their_location() {
    // A closed vocabulary is an enum: the error points at the value and
    // names what is allowed.
    let e = parse("[shell]\npolicy = \"anything\"\n").unwrap_err();
    assert_eq!(e.location, Some((2, 10)), "{e}");
    assert!(
        e.message
            .contains("expected one of `allowlist`, `denylist`, `approval`"),
        "{e}"
    );
    let e = parse("[web]\n\nallow_addresses = [\"127.0.0.1\", \"10.0.0.0/33\"]\n").unwrap_err();
    assert_eq!(e.location, Some((3, 1)), "{e}");
    assert!(
        e.message
            .contains("'10.0.0.0/33' is not an IP address or network"),
        "{e}"
    );
    let e = parse("[web]\nsearch_engine = \"bing\"\n").unwrap_err();
    assert_eq!(e.location, Some((2, 17)), "{e}");
    assert!(
        e.message.contains("expected `duckduckgo` or `searxng`"),
        "{e}"
    );
    let e = parse("[shell]\nlandlock = \"maybe\"\n").unwrap_err();
    assert!(
        e.message
            .contains("expected one of `auto`, `required`, `off`"),
        "{e}"
    );
    let e = parse("[vault]\nkey_source = \"tpm\"\n").unwrap_err();
    assert_eq!(e.location, Some((2, 14)), "{e}");
    assert!(
        e.message
            .contains("expected one of `auto`, `keyring`, `file`, `passphrase`"),
        "{e}"
    );
    let c = parse("[web]\nallow_addresses = [\"127.0.0.1\", \"fd00::/8\"]\n").unwrap();
    assert_eq!(c.web.allow_addresses.len(), 2);
    let d = Config::defaults();
    assert_eq!(d.fs.max_read_bytes, 16384);
    assert_eq!(
        (d.shell.timeout_secs, d.shell.policy.as_str()),
        (30, "allowlist")
    );
    assert!(d.shell.deny.contains(&"sudo".to_string()));
    assert_eq!(d.web.search_engine.as_str(), "duckduckgo");
}

#[test]
fn missing_file_means_defaults() {
    let c = Config::load(Path::new("/nonexistent/openintent/config.toml")).unwrap();
    assert_eq!(c, Config::defaults());
}
