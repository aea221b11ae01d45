//! The services compiled into this build: one line per crate, each the
//! crate's own [`ServiceKind`] (its entry point, the config sections it
//! owns and the variables it is handed). `openintentd service <kind>
//! --name <name>` runs one of them in the current process.

use oi_kernel::config::Build;
use oi_kernel::kind::ServiceKind;

/// Every kind, in the order `known_kinds` lists them.
const KINDS: &[ServiceKind] = &[
    oi_vault::KIND,
    oi_memory::KIND,
    oi_llm_router::KIND,
    oi_adapter_fs::KIND,
    oi_adapter_shell::KIND,
    oi_adapter_web::KIND,
    oi_adapter_http::KIND,
    oi_adapter_browser::KIND,
    oi_adapter_email::KIND,
    oi_adapter_calendar::KIND,
    oi_adapter_github::KIND,
    oi_agent::KIND,
    oi_telegram::KIND,
    oi_feishu::KIND,
    oi_scheduler::KIND,
    #[cfg(feature = "chaos")]
    crate::chaos::KIND,
];

/// Kinds a config entry may name.
pub fn known_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

/// The kind called `name`, if this build has it.
pub fn kind(name: &str) -> Option<&'static ServiceKind> {
    KINDS.iter().find(|k| k.name == name)
}

/// What the config loader checks a file against: the kinds and every
/// section their crates own.
pub fn build() -> Build {
    Build {
        kinds: known_kinds(),
        sections: KINDS
            .iter()
            .flat_map(|k| k.sections.iter().copied())
            .collect(),
    }
}

/// Runs the service and returns the process exit status.
pub fn run(kind_name: &str, name: &str) -> i32 {
    // The harness keeps the name for the life of the process.
    let name: &'static str = Box::leak(name.to_string().into_boxed_str());
    match kind(kind_name) {
        Some(k) => (k.run)(name),
        None => {
            eprintln!(
                "openintentd: no service of kind '{kind_name}' in this build (kinds: {})",
                known_kinds().join(", ")
            );
            oi_kernel::harness::EXIT_CONFIG
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_kernel::config::Config;
    use std::path::Path;

    #[test]
    fn the_shipped_defaults_pass_every_crates_checks_and_every_section_has_an_owner() {
        let b = build();
        let defaults = Config::parse_checked(
            Some(oi_kernel::config::DEFAULT_TOML),
            Path::new("config/default.toml"),
            Some(&b.sections),
        );
        assert!(defaults.is_ok(), "{:?}", defaults.err());
        // Each section has one owner.
        let mut names: Vec<&str> = b.sections.iter().map(|s| s.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "a section is owned twice: {names:?}");
    }

    #[test]
    fn a_bad_value_of_any_crates_section_is_refused_with_its_place() {
        let b = build();
        for (text, at, says) in [
            (
                "[shell]\npolicy = \"x\"\n",
                (2, 10),
                "expected one of `allowlist`",
            ),
            (
                "[web]\ntimeout_secs = 0\n",
                (2, 1),
                "web.timeout_secs must be at least 1",
            ),
            (
                "\n[telegram]\nformat = \"md\"\n",
                (3, 10),
                "expected `html` or `plain`",
            ),
            (
                "[cascade]\norder = [\"nope\"]\n",
                (2, 1),
                "not a [models.nope] entry",
            ),
            (
                "[agent]\ntoken_budget = 0\n",
                (2, 1),
                "agent.token_budget must be at least 1",
            ),
            (
                "[vault]\nkey_source = \"tpm\"\n",
                (2, 14),
                "expected one of `auto`",
            ),
            ("[memory]\nretention_check_secs = 0\n", (2, 1), "at least 1"),
            ("[fs]\nmax_read_bytes = \"big\"\n", (2, 18), "u64"),
            (
                "[shel]\npolicy = \"allowlist\"\n",
                (1, 1),
                "unknown section 'shel'",
            ),
        ] {
            let e = Config::parse_checked(Some(text), Path::new("c.toml"), Some(&b.sections))
                .unwrap_err();
            assert_eq!(e.location, Some(at), "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
        }
    }
}
