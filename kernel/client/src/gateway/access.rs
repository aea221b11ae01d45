//! Who gets answers, for any chat gateway: the chats its config lists
//! (`[telegram] allowed_chat_ids`, say), and chats paired with a one-time
//! code (`oictl telegram pair`). An empty list means nobody. Strangers get
//! a short refusal, at most once per `REFUSAL_INTERVAL` per chat, so a
//! stranger cannot make the bot spam. `C` is the gateway's chat id.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;
use std::time::{Duration, Instant};

use ring::rand::{SecureRandom, SystemRandom};

/// Letters and digits that cannot be mistaken for one another.
const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Wrong codes tried (from any chat) before every open code is void.
const MAX_FAILURES: u32 = 5;
pub const REFUSAL_INTERVAL: Duration = Duration::from_secs(600);

struct Code {
    code: String,
    expires: Instant,
}

pub struct Access<C> {
    config: BTreeSet<C>,
    /// Paired chats and their titles.
    paired: BTreeMap<C, String>,
    codes: Vec<Code>,
    failures: u32,
    refused: HashMap<C, Instant>,
}

/// What a `/pair <code>` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Redeemed {
    Paired,
    Wrong,
    /// Too many wrong codes: the open codes were voided.
    Voided,
}

fn normalise(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl<C: Ord + Hash + Clone> Access<C> {
    pub fn new(config: &[C], paired: impl IntoIterator<Item = (C, String)>) -> Access<C> {
        Access {
            config: config.iter().cloned().collect(),
            paired: paired.into_iter().collect(),
            codes: Vec::new(),
            failures: 0,
            refused: HashMap::new(),
        }
    }

    pub fn set_config(&mut self, config: &[C]) {
        self.config = config.iter().cloned().collect();
    }

    pub fn allows(&self, chat: C) -> bool {
        self.config.contains(&chat) || self.paired.contains_key(&chat)
    }

    pub fn in_config(&self, chat: C) -> bool {
        self.config.contains(&chat)
    }

    pub fn config_chats(&self) -> impl Iterator<Item = C> + '_ {
        self.config.iter().cloned()
    }

    pub fn add_paired(&mut self, chat: C, title: String) {
        self.paired.insert(chat, title);
    }

    pub fn remove_paired(&mut self, chat: C) {
        self.paired.remove(&chat);
    }

    /// A new one-time code, valid for `ttl`: `ABCD-EFGH`, 40 random bits.
    pub fn new_code(&mut self, ttl: Duration) -> Result<String, String> {
        let mut bytes = [0u8; 8];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "the system's random source failed".to_string())?;
        // 256 is a multiple of 32: every letter is equally likely.
        let code: String = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(*b) % 32]))
            .collect();
        let now = Instant::now();
        self.codes.retain(|c| c.expires > now);
        self.codes.push(Code {
            code: code.clone(),
            expires: now + ttl,
        });
        self.failures = 0;
        Ok(format!("{}-{}", &code[..4], &code[4..]))
    }

    /// Checks a code sent with `/pair`; a right one is used up.
    pub fn redeem(&mut self, code: &str, now: Instant) -> Redeemed {
        self.codes.retain(|c| c.expires > now);
        let given = normalise(code);
        if let Some(i) = self.codes.iter().position(|c| c.code == given) {
            self.codes.remove(i);
            return Redeemed::Paired;
        }
        if self.codes.is_empty() {
            return Redeemed::Wrong;
        }
        self.failures += 1;
        if self.failures >= MAX_FAILURES {
            self.codes.clear();
            self.failures = 0;
            return Redeemed::Voided;
        }
        Redeemed::Wrong
    }

    /// Whether a stranger's chat should get the refusal now (once per
    /// `REFUSAL_INTERVAL`).
    pub fn refuse_now(&mut self, chat: C, now: Instant) -> bool {
        match self.refused.get(&chat) {
            Some(t) if now.saturating_duration_since(*t) < REFUSAL_INTERVAL => false,
            _ => {
                if self.refused.len() > 10_000 {
                    self.refused.clear();
                }
                self.refused.insert(chat, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_allowlist_means_nobody() {
        let a = Access::<i64>::new(&[], []);
        assert!(!a.allows(1));
        assert!(!a.allows(0));
        let a = Access::new(&[42, -100], [(7, "Ann".to_string())]);
        assert!(a.allows(42) && a.allows(-100) && a.allows(7));
        assert!(!a.allows(43));
    }

    #[test]
    fn a_code_pairs_once_and_expires() {
        let mut a = Access::<i64>::new(&[], []);
        let code = a.new_code(Duration::from_secs(60)).unwrap();
        assert_eq!(code.len(), 9);
        let now = Instant::now();
        assert_eq!(
            a.redeem(&code.to_lowercase().replace('-', " "), now),
            Redeemed::Paired
        );
        assert_eq!(a.redeem(&code, now), Redeemed::Wrong);
        let code = a.new_code(Duration::from_secs(60)).unwrap();
        assert_eq!(
            a.redeem(&code, now + Duration::from_secs(61)),
            Redeemed::Wrong
        );
    }

    #[test]
    fn guessing_voids_the_open_codes() {
        let mut a = Access::<i64>::new(&[], []);
        let code = a.new_code(Duration::from_secs(60)).unwrap();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            assert_eq!(a.redeem("AAAA-AAAA", now), Redeemed::Wrong);
        }
        assert_eq!(a.redeem("AAAA-AAAB", now), Redeemed::Voided);
        assert_eq!(a.redeem(&code, now), Redeemed::Wrong);
    }

    #[test]
    fn strangers_are_refused_once_per_interval() {
        let mut a = Access::<i64>::new(&[], []);
        let t = Instant::now();
        assert!(a.refuse_now(5, t));
        assert!(!a.refuse_now(5, t + Duration::from_secs(10)));
        assert!(a.refuse_now(6, t));
        assert!(a.refuse_now(5, t + REFUSAL_INTERVAL));
    }
}
