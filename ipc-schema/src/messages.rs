//! The message types of the bus. Each travels in frames of one [`Kind`].

use rkyv::{Archive, Deserialize, Serialize};

use crate::frame::{Kind, Message};

macro_rules! message {
    ($ty:ident => $kind:ident) => {
        impl Message for $ty {
            const KIND: Kind = Kind::$kind;
        }
    };
}

/// First frame on every connection. `service` is set by service processes
/// (the broker checks the peer's pid against the one the supervisor spawned)
/// and empty for plain clients such as `oictl`.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Hello {
    pub service: Option<String>,
    pub pid: u32,
    pub protocol_version: u16,
    pub build_id: String,
}
message!(Hello => Hello);

/// The broker's answer to an accepted [`Hello`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Welcome {
    pub connection_id: u64,
    pub broker_pid: u32,
    pub protocol_version: u16,
    pub build_id: String,
    pub heartbeat_interval_ms: u32,
}
message!(Welcome => Welcome);

/// Sent by a service once it is initialised and able to serve.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
#[rkyv(derive(Debug))]
pub struct Ready {
    pub detail: String,
}
message!(Ready => Ready);

/// Sent by the broker to each service every heartbeat interval; the service
/// echoes it back with the same sequence number.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Heartbeat {
    pub seq: u64,
}
message!(Heartbeat => Heartbeat);

/// A call to a method of a service. The correlation id in the header ties
/// every reply frame to it.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Request {
    pub destination: String,
    /// Who sends it: the sender's service name, or empty for a plain client.
    /// The broker refuses a request whose caller is not the identity its
    /// connection proved in `Hello`, so a destination may trust it.
    pub caller: String,
    pub method: String,
    /// Relative deadline in milliseconds from the moment it was sent; 0 means
    /// the broker's default.
    pub deadline_ms: u32,
    /// Wait for a down or restarting destination until the deadline instead
    /// of failing at once with `unavailable`.
    pub wait_for_service: bool,
    /// The caller wants a stream of chunks rather than one response.
    pub stream: bool,
    /// The intent this request serves (empty when none): the audit log and
    /// the services' logs tie a tool call or provider request to it.
    pub intent: String,
    /// The conversation that intent belongs to (`telegram:<chat id>`,
    /// `cli:<user>`; empty when none), set by the agent on its tool calls:
    /// a tool that answers there (`cron_add`'s default delivery) reads it.
    /// A destination takes it only from the agent.
    pub chat: String,
    pub payload: Vec<u8>,
}
message!(Request => Request);

/// The one reply to a non-streaming request.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Response {
    pub payload: Vec<u8>,
}
message!(Response => Response);

/// One chunk of a streamed reply (LLM tokens, tool progress).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct StreamChunk {
    pub seq: u32,
    pub payload: Vec<u8>,
}
message!(StreamChunk => StreamChunk);

/// The end of a streamed reply, with an optional final payload.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct StreamEnd {
    pub payload: Vec<u8>,
}
message!(StreamEnd => StreamEnd);

/// What a caller can act on when a request fails.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[rkyv(derive(Debug, PartialEq, Eq), compare(PartialEq))]
pub enum ErrorCode {
    /// The destination is down, restarting or unknown; retrying later may work.
    Unavailable,
    /// The deadline passed.
    Timeout,
    /// Peer credentials or policy refused the request.
    Denied,
    /// The request itself is wrong; retrying it unchanged will fail again.
    BadRequest,
    /// The service failed while handling it.
    Internal,
    /// The caller cancelled it.
    Cancelled,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Denied => "denied",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Internal => "internal",
            ErrorCode::Cancelled => "cancelled",
        }
    }
}

impl From<&ArchivedErrorCode> for ErrorCode {
    fn from(code: &ArchivedErrorCode) -> Self {
        match code {
            ArchivedErrorCode::Unavailable => ErrorCode::Unavailable,
            ArchivedErrorCode::Timeout => ErrorCode::Timeout,
            ArchivedErrorCode::Denied => ErrorCode::Denied,
            ArchivedErrorCode::BadRequest => ErrorCode::BadRequest,
            ArchivedErrorCode::Internal => ErrorCode::Internal,
            ArchivedErrorCode::Cancelled => ErrorCode::Cancelled,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request, or a refused connection (correlation 0).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub message: String,
}
message!(ErrorReply => Error);

/// Asks a service to finish in-flight work and exit.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Shutdown {
    pub reason: String,
    pub grace_ms: u32,
}
message!(Shutdown => Shutdown);

/// A new configuration took effect; services re-read their section.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ConfigChanged {
    pub generation: u64,
    /// The merged effective configuration, as TOML text.
    pub config_toml: String,
}
message!(ConfigChanged => ConfigChanged);

/// A tool a service offers to the agent.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments, as JSON text.
    pub args_schema_json: String,
}

/// Registers (replaces) the tools of the sending service.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct RegisterTools {
    pub tools: Vec<ToolSpec>,
}
message!(RegisterTools => RegisterTools);

/// The caller gave up on the request with this correlation id.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[rkyv(derive(Debug))]
pub struct Cancel {
    pub reason: String,
}
message!(Cancel => Cancel);
