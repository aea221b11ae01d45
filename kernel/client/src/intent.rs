//! Following one intent: the agent's events as they happen, then how it
//! ended. The one loop every interface runs; an interface only decides
//! how each [`Step`] looks (a line on stderr, an edited chat message).
//!
//! Dropping an [`Intent`] cancels it, with its model call and tool calls.

use std::time::Duration;

use tokio::time::Instant;

use oi_ipc_schema::agent::{self, AgentEvent, IntentRequest};
use oi_kernel::client::{BusClient, BusError, CallOptions, EventStream};

/// One step of an intent: what the agent said, in order (`Ok`), ending
/// with its `Done`, or why there is no answer (`Err`, in the user's
/// terms). Notices come once each.
pub type Step = Result<AgentEvent, String>;

/// A bus error in the user's terms: what the service said, else the error.
pub fn in_words(e: BusError) -> String {
    match e {
        BusError::Remote { message, .. } => message,
        other => other.to_string(),
    }
}

/// The message for an intent that ended without its `Done`.
pub const NO_ANSWER: &str = "the agent ended the intent without an answer";

/// How long an intent may take to start (the agent restarting, or busy
/// with its other intents); a caller with a longer patience passes it.
pub const START_WAIT: Duration = Duration::from_secs(120);
/// Time allowed past the agent's own limit of an intent (its summary and
/// the last model call are still on their way when the limit strikes).
pub const GRACE: Duration = Duration::from_secs(60);
/// The outer bound of an interface with no limit of its own (a chat
/// gateway): the agent's limit, said in its `Started`, bounds the rest.
pub const UNTIL_THE_AGENTS_LIMIT: Duration = Duration::from_secs(86_400);

/// One running intent.
pub struct Intent {
    events: EventStream<AgentEvent>,
    notices: Vec<String>,
    ended: bool,
    /// Until when the next event is waited for.
    until: Instant,
    /// What is waited for: the start (before `Started`, [`START_WAIT`]), or
    /// the end within the agent's limit plus the grace.
    waiting: Waiting,
    grace: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Waiting {
    Start(Duration),
    End { limit_secs: u64 },
}

impl Intent {
    /// Why a wait that ran out ended the intent.
    fn ran_out(&self) -> String {
        match self.waiting {
            Waiting::Start(wait) => format!(
                "the agent did not start the intent within {} s (`oictl status` shows why)",
                wait.as_secs()
            ),
            Waiting::End { limit_secs } => format!(
                "the agent did not finish the intent within its {limit_secs}-second limit ([agent] intent_timeout_secs) and {} s more",
                self.grace.as_secs()
            ),
        }
    }
}

impl Intent {
    /// Sends the intent. `timeout` bounds the whole intent; an agent that
    /// is restarting is waited for within it.
    pub fn start(
        client: &BusClient,
        req: &IntentRequest,
        timeout: Duration,
    ) -> Result<Intent, BusError> {
        let events = client.stream(agent::RUN, req, CallOptions::deadline(timeout).waiting())?;
        let start = START_WAIT.min(timeout);
        Ok(Intent {
            events,
            notices: Vec::new(),
            ended: false,
            grace: GRACE,
            until: Instant::now() + start,
            waiting: Waiting::Start(start),
        })
    }

    /// Waits `grace` past the agent's limit instead of [`GRACE`].
    pub fn with_grace(mut self, grace: Duration) -> Intent {
        self.grace = grace;
        self
    }

    /// The next step; after the end (`Done` or an error) always `None`.
    pub async fn next(&mut self) -> Option<Step> {
        loop {
            if self.ended {
                return None;
            }
            let Ok(event) = tokio::time::timeout_at(self.until, self.events.next()).await else {
                self.ended = true;
                return Some(Err(self.ran_out()));
            };
            let step = match event {
                Ok(Some(AgentEvent::Started { id, limit_secs })) => {
                    self.until = Instant::now() + Duration::from_secs(limit_secs) + self.grace;
                    self.waiting = Waiting::End { limit_secs };
                    Ok(AgentEvent::Started { id, limit_secs })
                }
                Ok(Some(AgentEvent::Notice(n))) => {
                    if self.notices.contains(&n) {
                        continue;
                    }
                    self.notices.push(n.clone());
                    Ok(AgentEvent::Notice(n))
                }
                Ok(Some(ev)) => Ok(ev),
                Ok(None) => Err(NO_ANSWER.into()),
                Err(e) => Err(in_words(e)),
            };
            self.ended = matches!(step, Ok(AgentEvent::Done(_)) | Err(_));
            return Some(step);
        }
    }

    /// The notices said so far.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }
}
