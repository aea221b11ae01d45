//! The shell adapter's own methods (destination `shell`), beside its tools:
//! approvals of held-back commands, for the user's own client only (the
//! adapter refuses any service caller). Payloads are JSON text.

use crate::contract::{Call, Json};

pub mod methods {
    /// empty -> `{"pending": [View]}`
    pub const LIST: &str = "shell.approvals";
    /// `{"id"}` -> `{"approval": View, "code"}`
    pub const CHALLENGE: &str = "shell.approval.challenge";
    /// `{"id", "code", "who"}` -> `{"approval": View}`
    pub const GRANT: &str = "shell.approval.grant";
    /// `{"id"}` -> `{"refused": Subject}`
    pub const REFUSE: &str = "shell.approval.refuse";
}

/// The shell adapter's destination.
pub const SERVICE: &str = "shell";

pub const APPROVALS: Call<Json, Json> = Call::new(SERVICE, methods::LIST);
pub const CHALLENGE: Call<Json, Json> = Call::new(SERVICE, methods::CHALLENGE);
pub const GRANT: Call<Json, Json> = Call::new(SERVICE, methods::GRANT);
pub const REFUSE: Call<Json, Json> = Call::new(SERVICE, methods::REFUSE);
