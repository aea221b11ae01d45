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
        "browser",
        "agent",
        "telegram",
        "scheduler",
        "email",
        "calendar",
        "github",
        "feishu",
    ];
    let build = Build {
        kinds: kinds.to_vec(),
        sections: Vec::new(),
    };
    let e = Config::load_checked(&p, Some(&build)).unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(
            e.message.contains(
                "kind 'imap', which this build does not have (kinds: vault, memory, llm-router, fs, shell, web, http, browser, agent, telegram, scheduler, email, calendar, github, feishu)"
            ),
            "{e}"
        );
    assert!(Config::load_checked(&p, None).is_ok());
}

#[test]
fn service_requirements_are_checked_with_their_location() {
    let c = parse("").unwrap();
    assert_eq!(
        c.services["telegram"].requires,
        ["env:TELEGRAM_BOT_TOKEN", "secret:telegram-bot-token"]
    );
    let e = parse("\n[services.telegram]\nrequires = [\"token:X\"]\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)));
    assert!(
        e.message.contains(
            "'token:X' is not 'env:<VARIABLE>', 'secret:<vault secret>' or 'config:<table>'"
        ),
        "{e}"
    );
    assert_eq!(
        Requirement::parse("secret:telegram-bot-token"),
        Some(Requirement::Secret("telegram-bot-token".into()))
    );
    assert_eq!(Requirement::parse("env:"), None);
    assert_eq!(
        Requirement::parse("config:email.accounts"),
        Some(Requirement::Config("email.accounts".into()))
    );
}

#[test]
fn has_finds_non_empty_values_at_a_dotted_path() {
    let c = parse("[x.accounts.a]\nhost = \"h\"\n[y]\nlist = []\n").unwrap();
    assert!(c.has("x.accounts"));
    assert!(c.has("x.accounts.a.host"));
    assert!(!c.has("x.accounts.b"));
    assert!(!c.has("y.list"));
    assert!(!c.has("z"));
}

crate::vocabulary! {
    /// A vocabulary of the test section.
    Flavour default Plain {
        Plain = "plain",
        Spicy = "spicy",
    }
}

/// A section as a service crate would own one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Kitchen {
    flavour: Flavour,
    pots: u64,
    url: String,
}

impl Section for Kitchen {
    const NAME: &'static str = "kitchen";
    fn validate(&self, config: &Config) -> Result<(), Invalid> {
        at_least_one(&[("kitchen.pots", self.pots)])?;
        if !self.url.is_empty() && !http_url(&self.url) {
            return Err(Invalid::new("kitchen.url", "kitchen.url must be http(s)"));
        }
        // A section may refer to the kernel's.
        if config.services.contains_key("kitchen") && self.flavour == Flavour::Spicy {
            return Err(Invalid::new("kitchen.flavour", "no spicy kitchen service"));
        }
        Ok(())
    }
}

fn with_kitchen(text: &str) -> Result<Config, ConfigError> {
    Config::parse_checked(
        Some(text),
        Path::new("/etc/oi/config.toml"),
        Some(&[SectionRule::of::<Kitchen>()]),
    )
}

#[test]
fn an_owned_section_is_typed_checked_and_located_by_the_loader() {
    let c = with_kitchen("[kitchen]\npots = 2\nflavour = \"spicy\"\n").unwrap();
    let k: Kitchen = c.section().unwrap();
    assert_eq!((k.pots, k.flavour), (2, Flavour::Spicy));
    // A type error inside the section points at the value.
    let e = with_kitchen("\n[kitchen]\nflavour = \"sweet\"\n").unwrap_err();
    assert_eq!(e.location, Some((3, 11)), "{e}");
    assert!(e.message.contains("expected `plain` or `spicy`"), "{e}");
    let e = with_kitchen("[kitchen]\npans = 1\n").unwrap_err();
    assert_eq!(e.location, Some((2, 1)), "{e}");
    assert!(e.message.contains("unknown field `pans`"), "{e}");
    // A refusal of its checks is located at its key.
    let e = with_kitchen("[kitchen]\nflavour = \"plain\"\npots = 0\n").unwrap_err();
    assert_eq!(e.location, Some((3, 1)), "{e}");
    assert_eq!(e.message, "kitchen.pots must be at least 1");
    let e =
        with_kitchen("[kitchen]\npots = 1\nflavour = \"spicy\"\n[services.kitchen]\n").unwrap_err();
    assert_eq!(e.message, "no spicy kitchen service");
    // Absent: its default, whose checks run too.
    let e = with_kitchen("").unwrap_err();
    assert_eq!(e.message, "kitchen.pots must be at least 1");
}

#[test]
fn a_section_nobody_owns_is_refused_only_when_the_owners_are_known() {
    let e = with_kitchen("[kitchen]\npots = 1\n\n[kichen]\npots = 1\n").unwrap_err();
    assert_eq!(e.location, Some((4, 1)), "{e}");
    assert!(
        e.message.contains(
            "unknown section 'kichen' (sections: bus, supervisor, groups, services, kitchen)"
        ),
        "{e}"
    );
    // A service reading its own config does not know the others' sections.
    let c = parse("[kichen]\npots = 1\n").unwrap();
    // And its section() checks what the loader did not.
    let k = Kitchen::default();
    let mut c2 = c.clone();
    c2.set_section(&k);
    let e = c2.section::<Kitchen>().unwrap_err();
    assert_eq!(e.message, "[kitchen] kitchen.pots must be at least 1");
}

#[test]
fn the_config_survives_its_own_text() {
    // What the supervisor sends in ConfigChanged parses back to the same.
    let mut c = with_kitchen("[kitchen]\npots = 3\n[supervisor]\nintensity = 7\n").unwrap();
    let back = Config::parse_layers(Some(&c.to_toml()), Path::new("<ConfigChanged>")).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.section::<Kitchen>().unwrap().pots, 3);
    c.set_section(&Kitchen {
        pots: 9,
        ..Kitchen::default()
    });
    let back = Config::parse_layers(Some(&c.to_toml()), Path::new("x")).unwrap();
    assert_eq!(back.section::<Kitchen>().unwrap().pots, 9);
}

#[test]
fn missing_file_means_defaults() {
    let c = Config::load(Path::new("/nonexistent/openintent/config.toml")).unwrap();
    assert_eq!(c, Config::defaults());
}
