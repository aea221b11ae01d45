//! Following one intent: the agent's events as they happen, then how it
//! ended. The one loop every interface runs; an interface only decides
//! how each [`Step`] looks (a line on stderr, an edited chat message).
//!
//! Dropping an [`Intent`] cancels it, with its model call and tool calls.

use std::time::Duration;

use oi_ipc_schema::agent::{self, AgentEvent, IntentRequest, IntentResult, ToolCallRecord};
use oi_kernel::client::{BusClient, BusError, CallOptions, EventStream};

/// What the agent said, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Started {
        id: String,
    },
    ToolStarted {
        id: String,
        name: String,
        arguments: String,
    },
    ToolFinished(ToolCallRecord),
    /// A failover or a similar note for the user; each distinct text once
    /// per intent.
    Notice(String),
    /// The end: the answer and what it took.
    Done(IntentResult),
    /// The end: why there is no answer, in the user's terms.
    Failed(String),
}

impl Step {
    pub fn is_end(&self) -> bool {
        matches!(self, Step::Done(_) | Step::Failed(_))
    }
}

/// The message for an intent that ended without its `Done`.
pub const NO_ANSWER: &str = "the agent ended the intent without an answer";

/// One running intent.
pub struct Intent {
    events: EventStream<AgentEvent>,
    notices: Vec<String>,
    ended: bool,
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
        Ok(Intent {
            events,
            notices: Vec::new(),
            ended: false,
        })
    }

    /// The next step; after an end (`Done` or `Failed`) always `None`.
    pub async fn next(&mut self) -> Option<Step> {
        loop {
            if self.ended {
                return None;
            }
            let step = match self.events.next().await {
                Ok(Some(ev)) => match ev {
                    AgentEvent::Started { id } => Step::Started { id },
                    AgentEvent::ToolStarted {
                        id,
                        name,
                        arguments,
                    } => Step::ToolStarted {
                        id,
                        name,
                        arguments,
                    },
                    AgentEvent::ToolFinished(c) => Step::ToolFinished(c),
                    AgentEvent::Notice(n) => {
                        if self.notices.contains(&n) {
                            continue;
                        }
                        self.notices.push(n.clone());
                        Step::Notice(n)
                    }
                    AgentEvent::Done(r) => Step::Done(r),
                },
                Ok(None) => Step::Failed(NO_ANSWER.into()),
                Err(BusError::Remote { message, .. }) => Step::Failed(message),
                Err(e) => Step::Failed(e.to_string()),
            };
            self.ended = step.is_end();
            return Some(step);
        }
    }

    /// The notices said so far.
    pub fn notices(&self) -> &[String] {
        &self.notices
    }
}
