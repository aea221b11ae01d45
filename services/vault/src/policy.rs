//! Which service may read which secret (`[vault.policy]`): a service name
//! maps to name patterns, where `*` matches any run of characters. `oictl`
//! (the user, same uid) may read and write every secret; services may only
//! read what their patterns allow.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    rules: BTreeMap<String, Vec<String>>,
}

impl Policy {
    pub fn new(rules: BTreeMap<String, Vec<String>>) -> Self {
        Policy { rules }
    }

    /// `caller` is the sender's service name as the broker verified it, or
    /// empty for a plain client.
    pub fn may_read(&self, caller: &str, secret: &str) -> bool {
        if caller.is_empty() {
            return true;
        }
        self.rules
            .get(caller)
            .is_some_and(|pats| pats.iter().any(|p| matches(p, secret)))
    }

    /// Only the user writes, removes, lists and rotates.
    pub fn may_manage(&self, caller: &str) -> bool {
        caller.is_empty()
    }
}

/// Glob match with `*` as the only wildcard.
fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_and_callers() {
        let p = Policy::new(BTreeMap::from([
            ("llm-router".to_string(), vec!["*-api-key".to_string()]),
            (
                "telegram".to_string(),
                vec!["telegram-bot-token".to_string()],
            ),
        ]));
        assert!(p.may_read("llm-router", "openai-api-key"));
        assert!(!p.may_read("llm-router", "openai-api-key-old"));
        assert!(p.may_read("telegram", "telegram-bot-token"));
        assert!(!p.may_read("telegram", "openai-api-key"));
        assert!(!p.may_read("shell", "telegram-bot-token"));
        assert!(p.may_read("", "anything"));
        assert!(p.may_manage("") && !p.may_manage("llm-router"));
        let p = Policy::new(BTreeMap::from([(
            "llm-router".to_string(),
            vec!["provider-*".to_string()],
        )]));
        assert!(p.may_read("llm-router", "provider-openai"));
        assert!(!p.may_read("llm-router", "github-token"));
        for (pat, name, want) in [
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "acb", false),
            ("*", "", true),
            ("x", "xy", false),
            ("*y", "xy", true),
            ("a*a", "a", false),
        ] {
            assert_eq!(matches(pat, name), want, "{pat} ~ {name}");
        }
    }
}
