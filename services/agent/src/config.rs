//! `[agent]` (the limits of one intent) and `[intents]` (the phrases the
//! intent router answers without a model).

use std::collections::BTreeMap;

use oi_kernel::config::{Config, Invalid, Section, SectionRule, at_least_one};
use serde::{Deserialize, Serialize};

/// The agent's limits (`[agent]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Model calls with tools per intent; then one last call for a summary.
    pub max_react_turns: u32,
    /// Time limit of every tool call.
    pub tool_timeout_secs: u64,
    /// Time limit of a whole intent.
    pub intent_timeout_secs: u64,
    /// Prompt + completion tokens one intent may use.
    pub token_budget: u64,
    /// Context the conversation is kept within; 0 for the model's window.
    pub context_tokens: u32,
    /// Characters of one tool result put into the prompt at most.
    pub max_tool_result_chars: u64,
    /// Intents run at once; more wait their turn.
    pub max_concurrent_intents: u32,
    /// Instructions added to the system prompt.
    pub instructions: String,
}

impl Section for AgentConfig {
    const NAME: &'static str = "agent";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[
            ("agent.max_react_turns", u64::from(self.max_react_turns)),
            ("agent.tool_timeout_secs", self.tool_timeout_secs),
            ("agent.intent_timeout_secs", self.intent_timeout_secs),
            ("agent.token_budget", self.token_budget),
            (
                "agent.max_concurrent_intents",
                u64::from(self.max_concurrent_intents),
            ),
        ])
    }
}

/// The intent router (`[intents]`): phrases answered without a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentsConfig {
    pub enabled: bool,
    pub patterns: BTreeMap<String, IntentPattern>,
}

/// Built-in answers a pattern may give.
pub const INTENT_ANSWERS: &[&str] = &["status", "help", "models", "tools", "time"];

oi_kernel::vocabulary! {
    /// What may follow a pattern's phrase.
    Rest default None {
        /// Nothing.
        None = "none",
        /// One word or a quoted string.
        Word = "word",
        Url = "url",
        /// Anything.
        Text = "text",
    }
}

/// One pattern: phrases that start an intent, and what answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntentPattern {
    pub enabled: bool,
    /// Matched at the start of the intent, ignoring ASCII case.
    pub phrases: Vec<String>,
    /// A built-in answer (one of [`INTENT_ANSWERS`]); or
    pub answer: String,
    /// a tool to call directly.
    pub tool: String,
    /// The tool argument the rest of the intent fills.
    pub argument: String,
    /// What may follow the phrase.
    pub rest: Rest,
    /// The argument's value when nothing follows the phrase; empty means
    /// something must follow.
    pub default: String,
    /// A `text` rest of more words than this is a task for the model, not
    /// an argument ("search the web for X, then write a report"); 0 for
    /// no limit.
    pub max_words: u32,
    /// Shown by `help`.
    pub description: String,
}

impl Default for IntentPattern {
    fn default() -> Self {
        IntentPattern {
            enabled: true,
            phrases: Vec::new(),
            answer: String::new(),
            tool: String::new(),
            argument: String::new(),
            rest: Rest::None,
            default: String::new(),
            max_words: 0,
            description: String::new(),
        }
    }
}

impl Section for IntentsConfig {
    const NAME: &'static str = "intents";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        for (name, p) in self.patterns.iter().filter(|(_, p)| p.enabled) {
            let key = format!("intents.patterns.{name}");
            let fail = |m: String| Err(Invalid::new(key.clone(), format!("{key}: {m}")));
            if p.phrases.is_empty() || p.phrases.iter().any(|ph| ph.trim().is_empty()) {
                return fail("'phrases' must list at least one non-empty phrase".into());
            }
            match (p.answer.is_empty(), p.tool.is_empty()) {
                (true, true) | (false, false) => {
                    return fail("set exactly one of 'answer' (a built-in) and 'tool'".into());
                }
                (false, true) if !INTENT_ANSWERS.contains(&p.answer.as_str()) => {
                    return fail(format!(
                        "answer is '{}'; use {}",
                        p.answer,
                        INTENT_ANSWERS.join(", ")
                    ));
                }
                _ => {}
            }
            if !p.tool.is_empty() && p.rest != Rest::None && p.argument.is_empty() {
                return fail(
                    "a tool pattern with a rest needs 'argument' (the field it fills)".into(),
                );
            }
        }
        Ok(())
    }
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[
    SectionRule::of::<AgentConfig>(),
    SectionRule::of::<IntentsConfig>(),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, oi_kernel::config::ConfigError> {
        Config::parse_checked(Some(text), Path::new("c.toml"), Some(SECTIONS))
    }

    #[test]
    fn intent_patterns_and_agent_limits_are_checked_with_their_location() {
        let e = parse("[intents.patterns.deploy]\nphrases = [\"deploy\"]\ntool = \"shell_execute\"\nrest = \"text\"\n").unwrap_err();
        assert_eq!(e.location, Some((1, 1)));
        assert!(e.message.contains("needs 'argument'"), "{e}");
        let e =
            parse("\n[intents.patterns.x]\nphrases = [\"x\"]\nanswer = \"weather\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 1)));
        assert!(
            e.message.contains("answer is 'weather'; use status, help"),
            "{e}"
        );
        let e = parse("[intents.patterns.status]\ntool = \"fs_list_dir\"\n").unwrap_err();
        assert!(e.message.contains("exactly one of 'answer'"), "{e}");
        let e = parse("[intents.patterns.x]\nphrases = [\"x\"]\ntool = \"t\"\nrest = \"line\"\n")
            .unwrap_err();
        assert_eq!(e.location, Some((4, 8)), "{e}");
        assert!(
            e.message
                .contains("expected one of `none`, `word`, `url`, `text`"),
            "{e}"
        );
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
}
