//! Following one intent: the agent's events as they happen, then how it
//! ended. The one loop every interface runs; an interface only decides
//! how each [`Step`] looks (a line on stderr, an edited chat message).
//!
//! Dropping an [`Intent`] cancels it, with its model call and tool calls.

use std::time::Duration;

use oi_ipc_schema::agent::{self, AgentEvent, IntentRequest};
use oi_kernel::client::{BusClient, BusError, CallOptions, EventStream};

/// One step of an intent: what the agent said, in order (`Ok`), ending
/// with its `Done`, or why there is no answer (`Err`, in the user's
/// terms). Notices come once each.
pub type Step = Result<AgentEvent, String>;

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

    /// The next step; after the end (`Done` or an error) always `None`.
    pub async fn next(&mut self) -> Option<Step> {
        loop {
            if self.ended {
                return None;
            }
            let step = match self.events.next().await {
                Ok(Some(AgentEvent::Notice(n))) => {
                    if self.notices.contains(&n) {
                        continue;
                    }
                    self.notices.push(n.clone());
                    Ok(AgentEvent::Notice(n))
                }
                Ok(Some(ev)) => Ok(ev),
                Ok(None) => Err(NO_ANSWER.into()),
                Err(BusError::Remote { message, .. }) => Err(message),
                Err(e) => Err(e.to_string()),
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
