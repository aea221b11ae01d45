//! The intent router: the fast path that answers simple intents without a
//! model. Every phrase of every enabled pattern (`[intents.patterns.*]`)
//! goes into one Aho-Corasick automaton, searched anchored at the start of
//! the intent, leftmost-longest and ignoring ASCII case. What follows the
//! phrase must fit the pattern's `rest` (nothing, one word, a URL, any
//! text); it becomes the tool argument. No match means the agent's model
//! handles the intent.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, Input, MatchKind, StartKind};
use serde_json::{Map, Value};

use crate::config::{IntentPattern, IntentsConfig, Rest};

#[derive(Debug, thiserror::Error)]
#[error("intent patterns: {0}")]
pub struct IntentError(String);

/// What a matched intent does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A built-in answer (`status`, `help`, `models`, `tools`, `time`).
    Answer(String),
    /// A direct tool call with these JSON arguments.
    Tool { name: String, arguments: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// The pattern's name.
    pub pattern: String,
    pub action: Action,
}

struct Compiled {
    name: String,
    pattern: IntentPattern,
}

pub struct IntentRouter {
    ac: Option<AhoCorasick>,
    /// Phrase index -> pattern index.
    owner: Vec<usize>,
    patterns: Vec<Compiled>,
}

impl IntentRouter {
    pub fn from_config(config: &IntentsConfig) -> Result<IntentRouter, IntentError> {
        let mut phrases = Vec::new();
        let mut owner = Vec::new();
        let mut patterns = Vec::new();
        if config.enabled {
            for (name, p) in config.patterns.iter().filter(|(_, p)| p.enabled) {
                for ph in &p.phrases {
                    phrases.push(normalize(ph).to_string());
                    owner.push(patterns.len());
                }
                patterns.push(Compiled {
                    name: name.clone(),
                    pattern: p.clone(),
                });
            }
        }
        let ac = if phrases.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostLongest)
                    .start_kind(StartKind::Anchored)
                    .ascii_case_insensitive(true)
                    .build(&phrases)
                    .map_err(|e| IntentError(e.to_string()))?,
            )
        };
        Ok(IntentRouter {
            ac,
            owner,
            patterns,
        })
    }

    /// The direct action for `text`, or `None` for the agent's model.
    pub fn route(&self, text: &str) -> Option<Routed> {
        let ac = self.ac.as_ref()?;
        let t = normalize(text);
        let m = ac.find(Input::new(t).anchored(Anchored::Yes))?;
        let c = &self.patterns[self.owner[m.pattern().as_usize()]];
        let after = &t[m.end()..];
        // The phrase must end at a word boundary ("status", not "statuses").
        let phrase_ends_word = t[..m.end()]
            .chars()
            .next_back()
            .is_some_and(|ch| ch.is_alphanumeric());
        if phrase_ends_word && after.chars().next().is_some_and(|ch| !ch.is_whitespace()) {
            return None;
        }
        let rest = after.trim();
        let max = c.pattern.max_words as usize;
        if max > 0 && rest.split_whitespace().count() > max {
            return None;
        }
        let value = rest_value(c.pattern.rest, rest, &c.pattern.default)?;
        let action = if c.pattern.tool.is_empty() {
            Action::Answer(c.pattern.answer.clone())
        } else {
            let mut args = Map::new();
            if let Some(v) = value {
                args.insert(c.pattern.argument.clone(), Value::String(v));
            }
            Action::Tool {
                name: c.pattern.tool.clone(),
                arguments: Value::Object(args).to_string(),
            }
        };
        Some(Routed {
            pattern: c.name.clone(),
            action,
        })
    }

    /// (name, first phrase, description) of every enabled pattern.
    pub fn describe(&self) -> Vec<(&str, &str, &str)> {
        self.patterns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.pattern.phrases.first().map_or("", String::as_str),
                    c.pattern.description.as_str(),
                )
            })
            .collect()
    }
}

/// Trims whitespace and closing punctuation ("what time is it?").
fn normalize(text: &str) -> &str {
    text.trim().trim_end_matches(['?', '!', '.']).trim_end()
}

/// The argument for what followed the phrase; `None` (outer) when it does
/// not fit, `Some(None)` when the pattern takes no argument.
fn rest_value(kind: Rest, rest: &str, default: &str) -> Option<Option<String>> {
    if rest.is_empty() {
        return match kind {
            Rest::None => Some(None),
            _ if default.is_empty() => None,
            _ => Some(Some(default.to_string())),
        };
    }
    match kind {
        Rest::None => None,
        Rest::Text => Some(Some(rest.to_string())),
        Rest::Word => word(rest).map(Some),
        Rest::Url => word(rest)
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .map(Some),
    }
}

/// One word, or one quoted string.
fn word(rest: &str) -> Option<String> {
    for q in ['"', '\'', '`'] {
        if rest.len() >= 2 && rest.starts_with(q) && rest.ends_with(q) {
            let inner = &rest[1..rest.len() - 1];
            return (!inner.contains(q) && !inner.is_empty()).then(|| inner.to_string());
        }
    }
    (!rest.contains(char::is_whitespace)).then(|| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oi_kernel::config::Config;

    fn shipped() -> IntentRouter {
        IntentRouter::from_config(&Config::defaults().section().unwrap()).unwrap()
    }

    fn tool(r: &IntentRouter, text: &str) -> Option<(String, Value)> {
        match r.route(text)?.action {
            Action::Tool { name, arguments } => {
                Some((name, serde_json::from_str(&arguments).unwrap()))
            }
            Action::Answer(a) => panic!("{text}: answered {a}"),
        }
    }

    fn answer(r: &IntentRouter, text: &str) -> Option<String> {
        match r.route(text)?.action {
            Action::Answer(a) => Some(a),
            Action::Tool { name, .. } => panic!("{text}: called {name}"),
        }
    }

    #[test]
    fn at_least_ten_shipped_patterns() {
        assert!(shipped().describe().len() >= 10);
    }

    #[test]
    fn built_in_answers_match_whole_phrases_in_any_case() {
        let r = shipped();
        assert_eq!(answer(&r, "status").as_deref(), Some("status"));
        assert_eq!(answer(&r, "  STATUS  ").as_deref(), Some("status"));
        assert_eq!(answer(&r, "What time is it?").as_deref(), Some("time"));
        assert_eq!(answer(&r, "help").as_deref(), Some("help"));
        assert_eq!(answer(&r, "list models").as_deref(), Some("models"));
        assert_eq!(answer(&r, "list tools").as_deref(), Some("tools"));
        // Not a word boundary, or more words after an exact phrase: the
        // model's job.
        assert_eq!(r.route("statuses"), None);
        assert_eq!(r.route("status of the rust 2024 edition rollout"), None);
        assert_eq!(r.route("helpful tips for writing async rust"), None);
    }

    #[test]
    fn tool_patterns_fill_their_argument_from_the_rest() {
        let r = shipped();
        assert_eq!(
            tool(&r, "list files in notes/2026"),
            Some((
                "fs_list_dir".into(),
                serde_json::json!({"path": "notes/2026"})
            ))
        );
        assert_eq!(
            tool(&r, "list files"),
            Some(("fs_list_dir".into(), serde_json::json!({"path": "."})))
        );
        assert_eq!(
            tool(&r, "read \"my notes.md\""),
            Some((
                "fs_read_file".into(),
                serde_json::json!({"path": "my notes.md"})
            ))
        );
        assert_eq!(
            tool(&r, "fetch https://example.com/a?b=c"),
            Some((
                "web_fetch".into(),
                serde_json::json!({"url": "https://example.com/a?b=c"})
            ))
        );
        assert_eq!(
            tool(&r, "search the web for rust async runtimes"),
            Some((
                "web_search".into(),
                serde_json::json!({"query": "rust async runtimes"})
            ))
        );
        assert_eq!(
            tool(&r, "remember that the wifi password is in the blue folder"),
            Some((
                "memory_save".into(),
                serde_json::json!({"text": "the wifi password is in the blue folder"})
            ))
        );
    }

    #[test]
    fn a_rest_that_does_not_fit_goes_to_the_model() {
        let r = shipped();
        // Several words where one path is expected: a sentence, not a file.
        assert_eq!(r.route("read the news about rust and summarize it"), None);
        assert_eq!(r.route("fetch me a coffee"), None);
        assert_eq!(r.route("read"), None);
        assert_eq!(r.route("search the web for"), None);
        assert_eq!(r.route("write a poem about the sea"), None);
        // A task that starts like a pattern but says more: the model's.
        assert_eq!(
            r.route("search the web for rust async runtime benchmarks, read the two best pages and write a report"),
            None
        );
        assert_eq!(r.route("remember to back up the laptop every friday"), None);
    }

    #[test]
    fn patterns_come_from_config_and_can_be_disabled() {
        let mut c: IntentsConfig = Config::defaults().section().unwrap();
        c.patterns.get_mut("status").unwrap().enabled = false;
        c.patterns.insert(
            "deploy".into(),
            IntentPattern {
                phrases: vec!["deploy".into()],
                tool: "shell_execute".into(),
                argument: "command".into(),
                rest: Rest::Text,
                ..IntentPattern::default()
            },
        );
        let r = IntentRouter::from_config(&c).unwrap();
        assert_eq!(r.route("status"), None);
        assert_eq!(
            tool(&r, "deploy make release"),
            Some((
                "shell_execute".into(),
                serde_json::json!({"command": "make release"})
            ))
        );
        c.enabled = false;
        assert_eq!(
            IntentRouter::from_config(&c).unwrap().route("deploy x"),
            None
        );
    }
}
