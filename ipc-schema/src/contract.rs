//! The typed contract of the bus: every service's destination name and, for
//! each of its methods, the request type paired with the reply type (or the
//! stream's event type).
//!
//! A caller names a method by its constant (`llm::CHAT`, `vault::GET`) and
//! the client's `call` and `stream` take it, so the pairing is checked by
//! the compiler instead of living in comments. A service matches on the
//! method's name (`llm::methods::CHAT`) and reads and answers with the same
//! constant, so both sides share one definition.

use std::marker::PhantomData;

use crate::frame::{Decode, Encode, FrameError, Kind, decode_payload, encode_payload};

/// How one side of a method travels in a payload.
pub trait Body: Sized {
    fn encode_body(&self) -> Result<Vec<u8>, FrameError>;
    fn decode_body(bytes: &[u8], kind: Kind, corr: u64) -> Result<Self, FrameError>;
}

/// No payload: zero bytes on the wire (what was sent, if anything, is
/// ignored, as every service has always done).
impl Body for () {
    fn encode_body(&self) -> Result<Vec<u8>, FrameError> {
        Ok(Vec::new())
    }
    fn decode_body(_: &[u8], _: Kind, _: u64) -> Result<Self, FrameError> {
        Ok(())
    }
}

/// JSON text, for the few methods whose payload is open-ended (as tool
/// arguments and results are).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Json(pub String);

/// UTF-8 text; empty when the service had nothing to say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

fn utf8(bytes: &[u8], kind: Kind, corr: u64) -> Result<String, FrameError> {
    String::from_utf8(bytes.to_vec()).map_err(|e| FrameError::Invalid {
        kind,
        corr,
        len: bytes.len(),
        reason: format!("not UTF-8: {e}"),
    })
}

impl Body for Json {
    fn encode_body(&self) -> Result<Vec<u8>, FrameError> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn decode_body(bytes: &[u8], kind: Kind, corr: u64) -> Result<Self, FrameError> {
        utf8(bytes, kind, corr).map(Json)
    }
}

impl Body for Text {
    fn encode_body(&self) -> Result<Vec<u8>, FrameError> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn decode_body(bytes: &[u8], kind: Kind, corr: u64) -> Result<Self, FrameError> {
        utf8(bytes, kind, corr).map(Text)
    }
}

fn archived<T: Encode>(value: &T) -> Result<Vec<u8>, FrameError> {
    encode_payload(value)
}

fn unarchived<T: Decode>(bytes: &[u8], kind: Kind, corr: u64) -> Result<T, FrameError> {
    decode_payload(bytes, kind, corr)
}

/// Makes rkyv-archived message types bodies.
macro_rules! archived_bodies {
    ($($ty:path),* $(,)?) => {$(
        impl $crate::contract::Body for $ty {
            fn encode_body(&self) -> Result<Vec<u8>, $crate::frame::FrameError> {
                archived(self)
            }
            fn decode_body(
                bytes: &[u8],
                kind: $crate::frame::Kind,
                corr: u64,
            ) -> Result<Self, $crate::frame::FrameError> {
                unarchived(bytes, kind, corr)
            }
        }
    )*};
}

archived_bodies!(
    crate::agent::IntentRequest,
    crate::agent::AgentEvent,
    crate::agent::CommandRequest,
    crate::agent::CommandReply,
    crate::control::RegistrySnapshot,
    crate::control::ToolList,
    crate::control::ServiceName,
    crate::control::StatusReport,
    crate::control::LogsRequest,
    crate::control::LogLines,
    crate::control::BusStats,
    crate::control::audit::AuditQuery,
    crate::control::audit::AuditRows,
    crate::control::audit::AuditVerify,
    crate::llm::ChatRequest,
    crate::llm::ChatResponse,
    crate::llm::StreamEvent,
    crate::llm::ModelsStatus,
    crate::llm::ModelChoice,
    crate::llm::EmbedRequest,
    crate::llm::EmbedResponse,
    crate::memory::HistoryAppend,
    crate::memory::ChatId,
    crate::memory::History,
    crate::memory::Episode,
    crate::memory::EpisodeId,
    crate::memory::EpisodeQuery,
    crate::memory::Episodes,
    crate::memory::ChatSettings,
    crate::memory::SettingSet,
    crate::memory::IntegrityReport,
    crate::memory::AccountSeen,
    crate::memory::Turn,
    crate::gateway::LinkHealth,
    crate::gateway::Delivery,
    crate::browser::RenderRequest,
    crate::browser::Rendered,
    crate::scheduler::JobSpec,
    crate::scheduler::JobInfo,
    crate::scheduler::JobList,
    crate::scheduler::JobRef,
    crate::scheduler::RunInfo,
    crate::scheduler::HistoryQuery,
    crate::scheduler::History,
    crate::telegram::PairCode,
    crate::telegram::ChatList,
    crate::telegram::ChatRef,
    crate::vault::SecretName,
    crate::vault::SecretValue,
    crate::vault::SetSecret,
    crate::vault::SecretMeta,
    crate::vault::SecretList,
    crate::vault::VaultStatus,
);

/// A method answered by one reply: `Req` in, `Resp` out.
pub struct Call<Req, Resp> {
    pub service: &'static str,
    pub method: &'static str,
    types: PhantomData<fn(Req) -> Resp>,
}

/// A method answered by a stream of `Event`s.
pub struct Stream<Req, Event> {
    pub service: &'static str,
    pub method: &'static str,
    types: PhantomData<fn(Req) -> Event>,
}

// Derives would demand `Req: Clone`; the constants are plain names.
impl<Req, Resp> Clone for Call<Req, Resp> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Req, Resp> Copy for Call<Req, Resp> {}
impl<Req, Event> Clone for Stream<Req, Event> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Req, Event> Copy for Stream<Req, Event> {}

impl<Req, Resp> std::fmt::Debug for Call<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.service, self.method)
    }
}
impl<Req, Event> std::fmt::Debug for Stream<Req, Event> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} (stream)", self.service, self.method)
    }
}

impl<Req: Body, Resp: Body> Call<Req, Resp> {
    pub const fn new(service: &'static str, method: &'static str) -> Self {
        Call {
            service,
            method,
            types: PhantomData,
        }
    }
    /// Service side: the request's payload.
    pub fn decode_request(&self, bytes: &[u8], corr: u64) -> Result<Req, FrameError> {
        Req::decode_body(bytes, Kind::Request, corr)
    }
    /// Service side: the reply's payload.
    pub fn encode_reply(&self, reply: &Resp) -> Result<Vec<u8>, FrameError> {
        reply.encode_body()
    }
    /// Caller side.
    pub fn encode_request(&self, req: &Req) -> Result<Vec<u8>, FrameError> {
        req.encode_body()
    }
    /// Caller side.
    pub fn decode_reply(&self, bytes: &[u8]) -> Result<Resp, FrameError> {
        Resp::decode_body(bytes, Kind::Response, 0)
    }
}

impl<Req: Body, Event: Body> Stream<Req, Event> {
    pub const fn new(service: &'static str, method: &'static str) -> Self {
        Stream {
            service,
            method,
            types: PhantomData,
        }
    }
    /// Service side: the request's payload.
    pub fn decode_request(&self, bytes: &[u8], corr: u64) -> Result<Req, FrameError> {
        Req::decode_body(bytes, Kind::Request, corr)
    }
    /// Service side: one event's payload.
    pub fn encode_event(&self, event: &Event) -> Result<Vec<u8>, FrameError> {
        event.encode_body()
    }
    /// Caller side.
    pub fn encode_request(&self, req: &Req) -> Result<Vec<u8>, FrameError> {
        req.encode_body()
    }
    /// Caller side: one chunk.
    pub fn decode_event(&self, bytes: &[u8]) -> Result<Event, FrameError> {
        Event::decode_body(bytes, Kind::StreamChunk, 0)
    }
}
