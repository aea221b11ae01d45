//! How a run ended and how a delivery attempt went, as the service reports
//! them to the core.

use oi_ipc_schema::agent::IntentResult;

use crate::store::{Finish, Status};

/// Characters of the answer kept in the run's row.
pub const EXCERPT_CHARS: usize = 300;

/// A run's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `Ran`, `Failed` or `Cancelled`.
    pub status: Status,
    pub reason: String,
    pub duration_ms: i64,
    pub tokens: u64,
    pub model: String,
    pub answer: String,
}

impl Outcome {
    /// The agent's result: a stop that gave the user what they asked for
    /// ran; any other failed, with why.
    pub fn from_result(r: &IntentResult, duration_ms: i64) -> Outcome {
        let ok = r.stop.is_success();
        Outcome {
            status: if ok { Status::Ran } else { Status::Failed },
            reason: if ok {
                String::new()
            } else {
                format!("the intent stopped: {}", r.stop.as_str())
            },
            duration_ms,
            tokens: r.prompt_tokens + r.completion_tokens,
            model: if r.model.is_empty() {
                r.route.clone()
            } else {
                format!("{} ({})", r.provider, r.model)
            },
            answer: r.answer.clone(),
        }
    }

    pub fn failed(reason: impl Into<String>, duration_ms: i64) -> Outcome {
        Outcome {
            status: Status::Failed,
            reason: reason.into(),
            duration_ms,
            tokens: 0,
            model: String::new(),
            answer: String::new(),
        }
    }

    pub fn cancelled(reason: impl Into<String>, duration_ms: i64) -> Outcome {
        Outcome {
            status: Status::Cancelled,
            ..Outcome::failed(reason, duration_ms)
        }
    }

    /// What the run's row keeps.
    pub fn finish(&self) -> Finish {
        Finish {
            status: self.status,
            reason: self.reason.clone(),
            duration_ms: self.duration_ms,
            tokens: self.tokens,
            model: self.model.clone(),
            excerpt: self.answer.chars().take(EXCERPT_CHARS).collect(),
        }
    }
}

impl Finish {
    /// A queued run dropped before it started.
    pub fn cancelled(reason: &str) -> Finish {
        Outcome::cancelled(reason, 0).finish()
    }
}

/// How a delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Yes,
    /// It may work later (the gateway is down or Telegram is busy).
    NotYet(String),
    /// It never will (the chat is not allowed, the target is wrong).
    Never(String),
}
